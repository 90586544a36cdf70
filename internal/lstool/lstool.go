package lstool

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/syslog"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
	"github.com/nsrel/nsrel/tree"
)

// DefaultSourceTimeout bounds the time all container sources together may
// take; a slower source is reported and ignored.
const DefaultSourceTimeout = vocab.DefaultContainerdTimeout

// SourceConfig is what the command line tells container sources.
type SourceConfig struct {
	// ContainerdAddress is the containerd socket: --containerd-address,
	// else $CONTAINERD_ADDRESS, else vocab.DefaultContainerdAddress.
	ContainerdAddress string
	// Timeout is the deadline for listing containers (also set on the
	// context passed to List).
	Timeout time.Duration
}

// Tool describes one command.
type Tool struct {
	// Name is the command name, e.g. "lsuserns".
	Name string
	// Type is the namespace type shown: nsrel.TypeUser or nsrel.TypePID.
	Type nsrel.Type
	// Sources returns the container sources to ask; nil or returning nil
	// means none. It is not called with --no-containers.
	Sources func(SourceConfig) []discover.ContainerSource
}

// Main runs the tool with os.Args, stdout and stderr, and returns the exit
// code for os.Exit.
func Main(t Tool) int {
	return Run(context.Background(), t, os.Args[1:], os.Stdout, os.Stderr)
}

type config struct {
	json, details, noContainers  bool
	noThreads, noFDs, noMounts   bool
	noOtherTypes                 bool
	version                      bool
	container, containerdAddress string
	logTo                        string
	timeout                      time.Duration
}

func (t Tool) flags() (*flag.FlagSet, *config) {
	c := &config{}
	fs := flag.NewFlagSet(t.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // Run reports parse errors in one line
	fs.BoolVar(&c.json, "json", false, `print {"namespaces": [...]} (schema: docs/json.md)`)
	fs.BoolVar(&c.details, "details", false, "add the processes of each namespace and how it was found")
	fs.BoolVar(&c.noContainers, "no-containers", false, "do not look up containers")
	fs.StringVar(&c.container, "container", "", "print only the branches leading to the namespaces of the container whose ID starts with `ID`")
	fs.StringVar(&c.containerdAddress, "containerd-address", vocab.ContainerdAddress(""), "containerd socket `path` (env CONTAINERD_ADDRESS)")
	fs.DurationVar(&c.timeout, "container-timeout", DefaultSourceTimeout, "deadline for listing containers")
	fs.BoolVar(&c.noThreads, "no-threads", false, "do not read the threads of multi-threaded processes")
	fs.BoolVar(&c.noFDs, "no-fds", false, "do not look for namespaces held by open file descriptors")
	fs.BoolVar(&c.noMounts, "no-mounts", false, "do not look for namespaces held by bind mounts")
	if t.Type == nsrel.TypeUser {
		fs.BoolVar(&c.noOtherTypes, "no-other-types", false, "do not read the processes' cgroup, ipc, mnt, net, pid, time and uts namespaces for their owners (faster; misses a user namespace that only owns such a namespace)")
	}
	fs.StringVar(&c.logTo, "log-to", "stderr", "where notices and errors go (`TARGET`): stderr, syslog (/dev/log), unix:///PATH or tcp://HOST:PORT (syslog), journald or journald:///PATH; see docs/observability.md")
	fs.BoolVar(&c.version, "version", false, "print the version and exit")
	fs.Usage = func() {}
	return fs, c
}

func (t Tool) usage(w io.Writer, fs *flag.FlagSet) {
	what, example := "user", "user:[4026531837] owner root (0)\n  └── user:[4026532176] owner root (0) containers: runc web-1"
	if t.Type == nsrel.TypePID {
		what, example = "PID", "pid:[4026531836] owner user:[4026531837] root (0)\n  └── pid:[4026532178] owner user:[4026532176] root (0)"
	}
	fmt.Fprintf(w, `Usage: %[1]s [flags]

Print every %[2]s namespace on this host as a tree: found through every
process and thread, open file descriptors, bind mounts in every mount
namespace, and process-less ancestors and owners. Children are sorted by
inode. Containers are looked up (containerd, runtime state) and shown on the
namespaces their process lives in.

  %[3]s

Examples:
  %[1]s                        # the whole tree
  %[1]s --details              # with processes and how each namespace was found
  %[1]s --json | jq '.namespaces[] | select(.processes == [])'
  %[1]s --container 3f1c2a     # only the branches to that container
  %[1]s --no-containers        # skip the container lookup

Flags:
`, t.Name, what, example)
	fs.VisitAll(func(f *flag.Flag) {
		arg, help := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if arg != "" {
			fmt.Fprintf(w, " %s", arg)
		}
		fmt.Fprintf(w, "\n        %s", help)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
	fmt.Fprintf(w, "\nExit status: 0 success, 1 failure, 2 bad usage.\nRun as root to see every namespace.\n")
}

// Run runs the tool with args and returns the exit code.
func Run(ctx context.Context, t Tool, args []string, stdout, stderr io.Writer) int {
	fs, c := t.flags()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			t.usage(stdout, fs)
			return 0
		}
		fmt.Fprintf(stderr, "%s: %s (see --help)\n", t.Name, flagError(err))
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q (see --help)\n", t.Name, fs.Arg(0))
		return 2
	}
	if c.version {
		fmt.Fprintln(stdout, vocab.VersionLine(t.Name))
		return 0
	}
	if c.noContainers && c.container != "" {
		fmt.Fprintf(stderr, "%s: --container needs the container lookup; drop --no-containers\n", t.Name)
		return 2
	}
	target, err := syslog.ParseTarget(c.logTo)
	if err != nil {
		fmt.Fprintf(stderr, "%s: --log-to: %v (see --help)\n", t.Name, err)
		return 2
	}
	diag := diagnostics{ctx: ctx, target: target, name: t.Name, stderr: stderr}

	// Containers are listed while /proc is scanned.
	type listed struct {
		cs      []discover.Container
		notices []string
	}
	var containers chan listed
	if !c.noContainers && t.Sources != nil {
		containers = make(chan listed, 1)
		cfg := SourceConfig{ContainerdAddress: c.containerdAddress, Timeout: c.timeout}
		go func() {
			cs, notices := ListContainers(ctx, t.Sources(cfg), c.timeout)
			containers <- listed{cs, notices}
		}()
	}

	m, err := discover.Discover(discover.Options{
		Types:        []nsrel.Type{t.Type},
		NoThreads:    c.noThreads,
		NoFDs:        c.noFDs,
		NoMounts:     c.noMounts,
		NoOtherTypes: c.noOtherTypes,
		Comm:         c.json || c.details,
	})
	if err != nil {
		diag.print(syslog.Err, err.Error())
		return 1
	}
	if n := m.Notice(); n != "" {
		diag.print(syslog.Notice, "notice: "+n)
	}

	var opts tree.Options
	opts.Details = c.details
	if containers != nil {
		l := <-containers
		for _, n := range l.notices {
			diag.print(syslog.Notice, "notice: "+n)
		}
		Annotate(m, l.cs)
	}
	if c.container != "" {
		keep, err := KeepContainer(m, t.Type, c.container)
		if err != nil {
			diag.print(syslog.Err, err.Error())
			return 1
		}
		opts.Keep = keep
	}

	if c.json {
		err = tree.JSON(stdout, m, t.Type, opts)
	} else {
		err = tree.Text(stdout, m, t.Type, opts)
	}
	if errors.Is(err, unix.EPIPE) {
		// The reader is gone (lsuserns | head -1 with SIGPIPE ignored):
		// nothing is wrong with the listing, as util-linux's tools see it.
		return 0
	}
	if err != nil {
		diag.print(syslog.Err, "write: "+err.Error())
		return 1
	}
	return 0
}

// diagnostics prints a tool's notices and errors: on stderr as
// "NAME: MSG", or as one syslog or journald message each (--log-to),
// falling back to stderr when that fails.
type diagnostics struct {
	ctx    context.Context
	target syslog.Target
	name   string
	stderr io.Writer
}

func (d diagnostics) print(sev int, msg string) {
	if d.target.Kind != "stderr" {
		err := syslog.SendLine(d.ctx, d.target, sev, d.name, vocab.Printable(msg))
		if err == nil {
			return
		}
		fmt.Fprintf(d.stderr, "%s: --log-to %s: %v\n", d.name, d.target, err)
	}
	fmt.Fprintf(d.stderr, "%s: %s\n", d.name, msg)
}

// flagError rewrites the flag package's message in the spelling of the
// help text: "flag provided but not defined: -bogus" becomes "unknown flag
// --bogus", "for flag -x" becomes "for flag --x".
func flagError(err error) string {
	msg := firstLine(err)
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return "unknown flag --" + vocab.Escape(name)
	}
	for _, r := range []struct{ old, new string }{
		{"for flag -", "for flag --"}, {"for -", "for --"}, {"argument: -", "argument: --"},
	} {
		msg = strings.Replace(msg, r.old, r.new, 1)
	}
	return vocab.Escape(msg)
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// ListContainers asks every source concurrently, under one deadline, and
// returns all containers found plus one notice per source that failed or
// did not answer in time. It never waits longer than timeout (plus
// scheduling): a source that ignores its context is abandoned.
func ListContainers(ctx context.Context, sources []discover.ContainerSource, timeout time.Duration) ([]discover.Container, []string) {
	if len(sources) == 0 {
		return nil, nil
	}
	if timeout <= 0 {
		timeout = DefaultSourceTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		i   int
		cs  []discover.Container
		err error
	}
	results := make(chan result, len(sources))
	for i, s := range sources {
		go func() {
			cs, err := s.List(ctx)
			results <- result{i, cs, err}
		}()
	}
	got := make([]*result, len(sources))
	for n := 0; n < len(sources); n++ {
		select {
		case r := <-results:
			got[r.i] = &r
			continue
		case <-ctx.Done():
		}
		break
	}
	var all []discover.Container
	var notices []string
	for i, s := range sources {
		r := got[i]
		switch {
		case r == nil:
			notices = append(notices, fmt.Sprintf("containers: %s did not answer within %v; containers not shown", vocab.Escape(s.Name()), timeout))
		case r.err != nil:
			notices = append(notices, fmt.Sprintf("containers: %s: %s; its containers are not shown", vocab.Escape(s.Name()), vocab.Escape(firstLine(r.err))))
		default:
			all = append(all, r.cs...)
		}
	}
	return all, notices
}

// Annotate attaches each container to the user and PID namespaces of its
// process (stat /proc/PID/ns/user and /proc/PID/ns/pid), in the order
// given. Containers whose process is gone are dropped; a container whose
// namespace is not in the model (it appeared after the scan) is skipped.
func Annotate(m *discover.Model, cs []discover.Container) {
	if len(cs) == 0 {
		return
	}
	byKey := m.Namespaces
	seen := make(map[string]bool)
	for _, c := range cs {
		if c.PID <= 0 {
			continue
		}
		id := c.Engine + "\x00" + c.Namespace + "\x00" + c.ID
		if seen[id] {
			continue
		}
		seen[id] = true
		for _, link := range []string{"user", "pid"} {
			var st unix.Stat_t
			if unix.Stat(fmt.Sprintf("/proc/%d/ns/%s", c.PID, link), &st) != nil {
				continue
			}
			if n := byKey[discover.Key{Dev: st.Dev, Ino: st.Ino}]; n != nil {
				n.Containers = append(n.Containers, c)
			}
		}
	}
}

// KeepContainer returns a filter for [tree.Options].Keep that keeps the
// namespaces of type t of the container whose ID starts with prefix, and
// their ancestors. As with docker and crictl, a prefix must name one
// container: an exact ID wins, and a prefix shared by several IDs is an
// error, as is one that matches none.
func KeepContainer(m *discover.Model, t nsrel.Type, prefix string) (func(*discover.Namespace) bool, error) {
	matches := make(map[string][]*discover.Namespace)
	for _, n := range m.Namespaces {
		if n.Type != t {
			continue
		}
		for _, c := range n.Containers {
			if strings.HasPrefix(c.ID, prefix) {
				matches[c.ID] = append(matches[c.ID], n)
			}
		}
	}
	if exact, ok := matches[prefix]; ok {
		matches = map[string][]*discover.Namespace{prefix: exact}
	}
	switch len(matches) {
	case 0:
		return nil, fmt.Errorf("no running container with an ID starting with %q", vocab.Escape(prefix))
	case 1:
	default:
		ids := make([]string, 0, len(matches))
		for id := range matches {
			ids = append(ids, vocab.Escape(id))
		}
		slices.Sort(ids)
		return nil, fmt.Errorf("container ID prefix %q is ambiguous: it matches %s", vocab.Escape(prefix), strings.Join(ids, ", "))
	}
	keep := make(map[*discover.Namespace]bool)
	for _, ns := range matches {
		for _, n := range ns {
			for a := n; a != nil && !keep[a]; a = a.Parent {
				keep[a] = true
			}
		}
	}
	return func(n *discover.Namespace) bool { return keep[n] }, nil
}
