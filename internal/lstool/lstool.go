package lstool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	flag "github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/containers"
	"github.com/nsrel/nsrel/graph"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/safefile"
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
	// A reader gone early (lsuserns | head -1) fails the write with
	// EPIPE, which Run takes for the end of the output (exit 0). Not
	// notified, Go's runtime ends the process of SIGPIPE at a write to
	// standard output, even where the signal was inherited ignored
	// (trap '' PIPE): its caller saw the tool killed.
	signal.Notify(make(chan os.Signal, 1), unix.SIGPIPE)
	return Run(context.Background(), t, os.Args[1:], os.Stdout, os.Stderr)
}

// skipped names the sources of namespaces the scan was told not to read
// (--no-threads, --no-fds, --no-mounts, --no-other-types), "" for none:
// the overlap check cannot be complete without them.
func (c *config) skipped() string {
	var s []string
	for _, f := range []struct {
		on   bool
		name string
	}{{c.noThreads, "--no-threads"}, {c.noFDs, "--no-fds"}, {c.noMounts, "--no-mounts"}, {c.noOtherTypes, "--no-other-types"}} {
		if f.on {
			s = append(s, f.name)
		}
	}
	return strings.Join(s, " ")
}

type config struct {
	json, details, noContainers  bool
	verbose                      bool
	noThreads, noFDs, noMounts   bool
	noOtherTypes                 bool
	version                      bool
	list, noHeadings, raw        bool
	noTruncate                   bool
	output                       string
	overlaps                     bool
	container, containerdAddress string
	logTo                        string
	timeout                      time.Duration
	pictureFlags
}

func (t Tool) flags() (*flag.FlagSet, *config) {
	c := &config{}
	fs := flag.NewFlagSet(t.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // Run reports parse errors in one line
	fs.SortFlags = false     // --help lists them in this order
	fs.BoolVarP(&c.json, "json", "J", false, `print {"namespaces": [...]} (schema: docs/json.md)`)
	fs.BoolVarP(&c.list, "list", "l", false, "print a flat list, one namespace per line (tree order), instead of the tree")
	fs.StringVarP(&c.output, "output", "o", "", "the list's `COLUMNS`, separated by commas (see Columns below; +COLUMNS adds to the default); implies --list")
	fs.BoolVarP(&c.noHeadings, "noheadings", "n", false, "list without the header line; implies --list")
	fs.BoolVarP(&c.raw, "raw", "r", false, "list unaligned, values separated by one space (each byte of a space, backslash, control or invisible character or invalid UTF-8 in a value as \\xHH, as lsns -r; printable non-ASCII kept), never cut to the terminal; implies --list")
	fs.BoolVarP(&c.noTruncate, "notruncate", "u", false, "do not cut tree lines nor narrow the list's text columns to the terminal's width (output to a pipe or file is never cut)")
	fs.BoolVar(&c.details, "details", false, "add the processes of each namespace and how it was found")
	fs.StringVar(&c.container, "container", "", "print only the branches leading to the namespaces of the container with this `NAME-or-ID` (an ID, also as labelled: ENGINE [NAMESPACE/]ID; a name, a Kubernetes pod or container name; or an ID prefix)")
	c.pictureFlags.register(fs)
	fs.BoolVar(&c.noContainers, "no-containers", false, "do not look up containers")
	fs.StringVar(&c.containerdAddress, "containerd-address", vocab.ContainerdAddress(""), "containerd socket `path` (env CONTAINERD_ADDRESS)")
	fs.DurationVar(&c.timeout, "container-timeout", DefaultSourceTimeout, "deadline for listing containers")
	fs.BoolVar(&c.verbose, "verbose", false, "also say which container engines are not installed (no containerd socket; said anyway for a socket named with --containerd-address or CONTAINERD_ADDRESS)")
	fs.BoolVar(&c.noThreads, "no-threads", false, "do not read the threads of multi-threaded processes")
	fs.BoolVar(&c.noFDs, "no-fds", false, "do not look for namespaces held by open file descriptors")
	fs.BoolVar(&c.noMounts, "no-mounts", false, "do not look for namespaces held by bind mounts")
	if t.Type == nsrel.TypeUser {
		fs.BoolVar(&c.overlaps, "overlaps", false, "instead of the tree, list the host UID and GID ranges that user namespaces (with their containers) of different branches share; exit 1 if there is any, and also when the check is incomplete (some user namespace's maps or some processes' namespaces could not be read)")
		fs.BoolVar(&c.noOtherTypes, "no-other-types", false, "do not read the processes' cgroup, ipc, mnt, net, pid, time and uts namespaces for their owners nor the network namespaces of the processes' sockets (faster; misses a user namespace that only owns such a namespace)")
	}
	fs.StringVar(&c.logTo, "log-to", "stderr", "where notices and errors go (`TARGET`): stderr, syslog (/dev/log), unix:///PATH or tcp://HOST:PORT (syslog), journald or journald:///PATH; a message it does not take goes to stderr, after a line saying why; see docs/observability.md")
	fs.BoolVarP(&c.version, "version", "V", false, "print the version and exit")
	fs.Usage = func() {}
	return fs, c
}

func (t Tool) usage(out io.Writer, fs *flag.FlagSet) error {
	// One write, not one per option: the help is read more often than
	// written, and each write to a terminal or pipe is a system call.
	w := new(strings.Builder)
	what, example := "user", "user:[4026531837] owner root (0)\n  └── user:[4026532176] owner root (0) containers: runc web-1"
	if t.Type == nsrel.TypePID {
		what, example = "PID", "pid:[4026531836] owner user:[4026531837] root (0)\n  └── pid:[4026532178] owner user:[4026532176] root (0)"
	}
	fmt.Fprintf(w, `Usage: %[1]s [options]

Print every %[2]s namespace on this host as a tree: found through every
process and thread, open file descriptors, bind mounts in every mount
namespace, and process-less ancestors and owners. Children are sorted by
inode. Containers are looked up (containerd, runtime state) and shown on the
namespaces their process lives in. On a terminal, tree lines are cut to
its width, never inside a number, and the list's COMMAND and CONTAINERS
are narrowed to fit (-u keeps them whole).

  %[3]s

Examples:
  %[1]s                        # the whole tree
  %[1]s --details              # with processes and how each namespace was found
  %[1]s -J | jq '.namespaces[] | select(.processes == [])'
  %[1]s -l -o NS,NPROCS,PID,CONTAINERS   # a flat list with chosen columns
  %[1]s --container 3f1c2a     # only the branches to that container
  %[1]s --container web        # the same, by name
  %[1]s --no-containers        # skip the container lookup
  %[1]s -p 4711                # only the branches to that process
  %[1]s --format html --collapse 3 > ns.html   # a report to open in a browser
  %[1]s --format dot | dot -Tpng > ns.png      # both hierarchies as a picture
%[4]s
Options:
`, t.Name, what, example, overlapsExample(t.Type))
	fs.VisitAll(func(f *flag.Flag) {
		arg, help := flag.UnquoteUsage(f)
		arg = strings.ToUpper(arg)
		if f.Value.Type() == "bool" {
			arg = ""
		}
		if f.Shorthand != "" {
			fmt.Fprintf(w, "  -%s, --%s", f.Shorthand, f.Name)
		} else {
			fmt.Fprintf(w, "      --%s", f.Name)
		}
		if arg != "" {
			fmt.Fprintf(w, " %s", arg)
		}
		fmt.Fprintf(w, "\n        %s", help)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
	fmt.Fprintf(w, "  -h, --help\n        print this help and exit\n")
	fmt.Fprintf(w, "\nColumns:\n")
	for _, c := range tree.Columns {
		fmt.Fprintf(w, "  %-11s %s\n", c.Name, c.Help)
	}
	fmt.Fprintf(w, "  (default: %s)\n", strings.Join(tree.DefaultColumns(t.Type), ","))
	w.WriteString(`
Environment:
  COLUMNS              the terminal's width, if set (output to a terminal is
                       fitted to it)
  CONTAINERD_ADDRESS   containerd socket path, if --containerd-address is not
                       given
  NSREL_RUNTIME_ROOTS  runc and crun state roots to read instead of the
                       defaults: runc=/DIR,crun=/DIR,... (DIR may be a glob)
  NSREL_AUDIT_LOG      nsrel-hook audit log to find containers in (default:
                       the audit_log of nsrel-hook's default config)
`)
	fmt.Fprintf(w, "\nExit status: 0 success, 1 failure, 2 bad usage.\nRun as root to see every namespace.\n")
	_, err := io.WriteString(out, w.String())
	return err
}

// Run runs the tool with args and returns the exit code.
func Run(ctx context.Context, t Tool, args []string, stdout, stderr io.Writer) int {
	fs, c := t.flags()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return vocab.Written(t.Name, t.usage(stdout, fs), stderr)
		}
		fmt.Fprintf(stderr, "%s: %s (see --help)\n", t.Name, vocab.FlagError(err))
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q (see --help)\n", t.Name, fs.Arg(0))
		return 2
	}
	if c.version {
		_, err := fmt.Fprintln(stdout, vocab.VersionLine(t.Name))
		return vocab.Written(t.Name, err, stderr)
	}
	switch {
	case fs.Changed("pid") && c.pid == 0:
		fmt.Fprintf(stderr, "%s: --pid: want a process ID (see --help)\n", t.Name)
		return 2
	case fs.Changed("container") && c.container == "":
		fmt.Fprintf(stderr, "%s: --container: want a container name or ID (see --help)\n", t.Name)
		return 2
	case fs.Changed("output") && strings.TrimSpace(c.output) == "":
		fmt.Fprintf(stderr, "%s: --output: want a comma-separated list of columns (see --help)\n", t.Name)
		return 2
	case c.timeout <= 0:
		fmt.Fprintf(stderr, "%s: --container-timeout %v: want a positive duration (see --help)\n", t.Name, c.timeout)
		return 2
	// An empty path is no path: it was the default socket, or no
	// audit log at all, without a word.
	case fs.Changed("containerd-address") && c.containerdAddress == "":
		fmt.Fprintf(stderr, "%s: %s (see --help)\n", t.Name, vocab.EmptyValue("--containerd-address", "a socket path"))
		return 2
	case fs.Changed("audit-log") && c.auditLog == "":
		fmt.Fprintf(stderr, "%s: %s (see --help)\n", t.Name, vocab.EmptyValue("--audit-log", "a file"))
		return 2
	case fs.Changed("title") && strings.TrimSpace(c.title) == "":
		// It gave the default title without a word.
		fmt.Fprintf(stderr, "%s: %s (see --help)\n", t.Name, vocab.EmptyValue("--title", "a title"))
		return 2
	}
	if c.noContainers && c.container != "" {
		fmt.Fprintf(stderr, "%s: --container needs the container lookup; drop --no-containers (see --help)\n", t.Name)
		return 2
	}
	var columns []string
	if c.output != "" || c.noHeadings || c.raw {
		c.list = true
	}
	if c.output != "" {
		var err error
		if columns, err = tree.ParseColumns(c.output, t.Type); err != nil {
			fmt.Fprintf(stderr, "%s: --output: %v (see --help)\n", t.Name, err)
			return 2
		}
	}
	listColumns := columns
	if listColumns == nil {
		listColumns = tree.DefaultColumns(t.Type)
	}
	if c.list && (c.json || c.format != "text") {
		fmt.Fprintf(stderr, "%s: --list (and --output, --noheadings, --raw) print a text table: drop --json or --format (see --help)\n", t.Name)
		return 2
	}
	if c.list && c.details {
		// The list printed its columns alone, --details unheeded.
		fmt.Fprintf(stderr, "%s: --details adds to the tree, not to --list (and --output, --noheadings, --raw): drop it, or choose the list's columns with --output (see --help)\n", t.Name)
		return 2
	}
	c.formatGiven = fs.Changed("format")
	if msg := c.pictureFlags.check(c); msg != "" {
		fmt.Fprintf(stderr, "%s: %s (see --help)\n", t.Name, msg)
		return 2
	}
	if c.overlaps {
		var drop []string
		for _, f := range []struct {
			set  bool
			flag string
		}{{fs.Changed("list"), "--list"}, {fs.Changed("output"), "--output"}, {fs.Changed("noheadings"), "--noheadings"}, {fs.Changed("raw"), "--raw"},
			{c.graphic(), "--format " + vocab.Escape(c.format)}, {c.pid != 0, "--pid"}, {c.container != "", "--container"}} {
			if f.set {
				drop = append(drop, f.flag)
			}
		}
		if len(drop) > 0 {
			fmt.Fprintf(stderr, "%s: --overlaps lists the shared host IDs as text or JSON: drop %s (see --help)\n", t.Name, strings.Join(drop, " and "))
			return 2
		}
	}
	target, perr := syslog.ParseTarget(c.logTo)
	if perr != nil {
		fmt.Fprintf(stderr, "%s: --log-to: %v (see --help)\n", t.Name, perr)
		return 2
	}
	diag := diagnostics{ctx: ctx, target: target, name: t.Name, stderr: stderr}
	if c.pid > 0 {
		// Before the scan: a PID that names no process was said only
		// after it, under its notices.
		if err := checkPID(c.pid, c.pictureFlags.types(t.Type)); err != nil {
			diag.print(syslog.Err, err.Error())
			return 1
		}
	}

	// Containers are listed while /proc is scanned.
	type listed struct {
		cs      []discover.Container
		notices []string
	}
	var containers chan listed
	if !c.noContainers && t.Sources != nil {
		containers = make(chan listed, 1)
		cfg := SourceConfig{ContainerdAddress: c.containerdAddress, Timeout: c.timeout}
		// A missing socket is an engine not installed: said only when
		// asked, or when the user named the socket.
		verbose := c.verbose || os.Getenv("CONTAINERD_ADDRESS") != ""
		fs.Visit(func(f *flag.Flag) { verbose = verbose || f.Name == "containerd-address" })
		go func() {
			cs, notices := ListContainers(ctx, t.Sources(cfg), c.timeout, verbose)
			containers <- listed{cs, notices}
		}()
	}

	m, err := discover.Discover(discover.Options{
		Types:        c.pictureFlags.types(t.Type),
		NoThreads:    c.noThreads,
		NoFDs:        c.noFDs,
		NoMounts:     c.noMounts,
		NoOtherTypes: c.noOtherTypes,
		Comm:         c.json || c.details || c.overlaps || c.format != "text" || c.list && slices.Contains(listColumns, "COMMAND"),
	})
	if err != nil {
		diag.print(syslog.Err, err.Error())
		return 1
	}
	if n := m.Notice(); n != "" {
		diag.print(syslog.Notice, "notice: "+n)
	}
	hidden := HiddenNotice()
	if hidden != "" {
		diag.print(syslog.Notice, "notice: "+hidden)
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
	if c.container != "" || c.pid > 0 {
		var picked []*discover.Namespace
		if c.container != "" {
			picked, err = containerNamespaces(m, c.pictureFlags.types(t.Type), c.container)
		} else {
			picked, err = pidNamespaces(m, c.pictureFlags.types(t.Type), c.pid)
		}
		if err != nil {
			diag.print(syslog.Err, err.Error())
			return 1
		}
		opts.Keep = graph.Branches(picked)
	}

	if t.Type == nsrel.TypeUser && (c.json || c.format == "json" || c.details || c.overlaps) {
		opts.Maps = ReadMaps(m)
	}
	code := 0
	switch {
	case c.overlaps:
		code, err = overlapCheck(stdout, m, opts.Maps, c.json || c.format == "json", hidden != "", c.skipped())
	case c.graphic():
		err = t.picture(ctx, &c.pictureFlags, m, opts.Keep, stdout, diag)
	case c.json || c.format == "json":
		err = tree.JSON(stdout, m, t.Type, opts)
	default:
		// Text for people: fitted to a terminal's width, as lsns does;
		// not -r's, which is for programs (libsmartcols cuts no raw
		// output either).
		width := terminalWidth(stdout)
		if c.noTruncate || c.raw {
			width = 0
		}
		if c.list {
			// The table shrinks its text columns, as lsns does; cut
			// as lines at the edge, it printed the start of a number
			// (an inode 4026531837 as 40) in a column of whole ones.
			err = tree.List(stdout, m, t.Type, opts, tree.ListOptions{Columns: columns, NoHeadings: c.noHeadings, Raw: c.raw, Width: width})
		} else {
			out := stdout
			if width > 0 {
				out = &truncWriter{w: stdout, width: width}
			}
			err = tree.Text(out, m, t.Type, opts)
		}
	}
	if errors.Is(err, unix.EPIPE) {
		// The reader is gone (lsuserns | head -1): nothing is wrong
		// with the listing, as util-linux's tools see it where SIGPIPE
		// is ignored; the exit status is still the check's and the
		// scan's (below).
		err = nil
	}
	if err != nil {
		what := "write: "
		if errors.As(err, new(*pictureError)) {
			what = ""
		}
		diag.print(syslog.Err, what+err.Error())
		return 1
	}
	if m.OutOfFDs > 0 || m.ReusedInodes > 0 {
		// The notice said so: the scan ran out of file descriptors, or
		// a namespace replaced one it had found, and what it printed
		// may lack namespaces.
		return 1
	}
	return code
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
		// Said with where the line goes instead: a bare error read as
		// the tool's own failure, and the notices after it went to
		// stderr without a word.
		fmt.Fprintf(d.stderr, "%s: --log-to %s: %v; notices go to stderr\n", d.name, d.target, err)
	}
	fmt.Fprintf(d.stderr, "%s: %s\n", d.name, msg)
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// ListContainers asks every source concurrently, under one deadline, and
// returns all containers found, merged with [containers.Merge] so that a
// container several sources found appears once, with Docker's names
// added ([containers.AddDockerNames]); plus one notice per source that
// failed or did not answer in time. A source whose socket is missing
// (an error matching [fs.ErrNotExist]: the engine is not installed) gets
// a notice only when verbose. It never waits longer than timeout (plus
// scheduling): a source that ignores its context is abandoned.
func ListContainers(ctx context.Context, sources []discover.ContainerSource, timeout time.Duration, verbose bool) ([]discover.Container, []string) {
	if len(sources) == 0 {
		return nil, nil
	}
	if timeout <= 0 {
		timeout = DefaultSourceTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The sources' own deadline comes a little earlier, so that what a
	// source read by then (state roots but a slow one) arrives in time.
	sctx, scancel := context.WithTimeout(ctx, timeout-min(timeout/10, 200*time.Millisecond))
	defer scancel()
	type result struct {
		i   int
		cs  []discover.Container
		err error
	}
	results := make(chan result, len(sources))
	for i, s := range sources {
		go func() {
			cs, err := s.List(sctx)
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
	// quiet says whether a reason a local source failed for goes
	// unsaid: root's state and log, which a user may not read, or which
	// root of a user's namespace (unshare -Ur) sees as nobody's, are
	// expected to fail (a user's own log refused is said).
	quiet := func(e error) bool {
		return !verbose && (errors.Is(e, fs.ErrPermission) && unprivileged() || errors.Is(e, safefile.ErrUntrusted) && !inInitialUserNS())
	}
	for i, s := range sources {
		r := got[i]
		var pe *containers.PartialError
		_, local := s.(containers.Local)
		switch {
		case r == nil:
			notices = append(notices, fmt.Sprintf("containers: %s did not answer within %v; containers not shown", vocab.Escape(s.Name()), timeout))
		case r.err != nil && local, errors.As(r.err, &pe):
			// The local sources (runtime state, audit log), and any
			// that failed in part: one notice a reason (joined ones
			// were one line, with \x0a between), each escaped whole (a
			// path in it is a user's to name) and saying what it costs:
			// containers not shown, unless only their names
			// (ErrUnnamed). A local source's reasons are said alike for
			// a part and a whole that failed, but those expected to
			// fail; the containers of the others are shown.
			why := r.err
			if !local {
				why = pe.Err
			}
			for _, e := range reasons(why) {
				// A source the user named that is not there is
				// said (containers.NamedError).
				if local && (quiet(e) || !verbose && errors.Is(e, fs.ErrNotExist) && !errors.As(e, new(*containers.NamedError))) {
					continue
				}
				cost := "; containers there are not shown"
				if errors.Is(e, containers.ErrUnnamed) {
					cost = ""
				}
				notices = append(notices, fmt.Sprintf("containers: %s: %s%s", vocab.Escape(s.Name()), sourceErr(e), cost))
			}
			all = append(all, r.cs...)
		case r.err != nil && !verbose && errors.Is(r.err, fs.ErrNotExist):
		case r.err != nil:
			notices = append(notices, fmt.Sprintf("containers: %s: %s; its containers are not shown", vocab.Escape(s.Name()), sourceErr(r.err)))
		default:
			all = append(all, r.cs...)
		}
	}
	all = containers.Merge(all)
	containers.AddDockerNames(all, "")
	return all, notices
}

// reasons returns the errors joined in err (errors.Join), however
// deeply, and those of a [containers.PartialError] among them, each one
// notice; err alone when it joins none.
func reasons(err error) []error {
	if pe, ok := err.(*containers.PartialError); ok {
		return reasons(pe.Err)
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, reasons(e)...)
	}
	return out
}

// Annotate attaches each container to the user and PID namespaces of its
// process (/proc/PID/ns/user and /proc/PID/ns/pid: [procNS]), in the order
// given. Containers whose process is gone are dropped, and so are those
// whose PID a later process has (its start time, when the source knew
// it, read after the namespaces); a container whose namespace is not in the
// model (it appeared after the scan, with an inode of its own or one of
// a namespace of the model gone since) is skipped. A container is attached
// once: an entry with the [containers.Key] of one attached before (the
// key [containers.Merge] merges by, which tells apart entries of one ID
// and different PIDs) is skipped; one dropped does not keep a later one
// with its key from being attached.
func Annotate(m *discover.Model, cs []discover.Container) {
	if len(cs) == 0 {
		return
	}
	seen := make(map[containers.Key]bool)
	// The top of the user namespaces seen: the caller's own (the initial
	// one on the host; its own in a container, as `unshare -Ur lsuserns`).
	var self discover.Key
	var st unix.Stat_t
	if unix.Stat("/proc/self/ns/user", &st) == nil {
		self = discover.Key{Dev: st.Dev, Ino: st.Ino}
	}
	for _, c := range cs {
		if c.PID <= 0 {
			continue
		}
		k := containers.KeyOf(c)
		if seen[k] {
			continue
		}
		var at []*discover.Namespace
		for _, link := range []string{"user", "pid"} {
			if n, _ := procNS(m, c.PID, link); n != nil {
				at = append(at, n)
			}
		}
		if uid, ok := containers.UsersUID(c); ok {
			// A user's container is attached only to namespaces of
			// the user's: its state is the user's to write, and a
			// process in a user namespace of its own but in the
			// host's PID namespace (unshare -U) put the user's
			// container, named as it chose, on the host's.
			at = slices.DeleteFunc(at, func(n *discover.Namespace) bool { return !usersNamespace(n, uid, self) })
		}
		if c.StartTime != 0 && len(at) > 0 {
			// Read after the stats: the same start time then means the
			// namespaces were the container's process's.
			if now, err := inspect.StartTime(c.PID); err != nil || now != c.StartTime {
				continue
			}
		}
		for _, n := range at {
			n.Containers = append(n.Containers, c)
		}
		if len(at) > 0 {
			seen[k] = true
		}
	}
}

// procNS returns the namespace of the model that process pid is in
// (link: "user" or "pid"), or nil when the model does not hold it. The
// model's namespaces are no longer held open once the scan ended: one
// may be gone since and the kernel give its inode to a new one (it hands
// out the lowest free), which by the inode alone was taken for the
// model's, a container started meanwhile shown on a dead namespace's
// node, under that one's parent. Where the kernel tells namespace IDs
// (NS_GET_ID), which it never reuses, the ID must be the model's too.
func procNS(m *discover.Model, pid int, link string) (*discover.Namespace, error) {
	path := fmt.Sprintf("/proc/%d/ns/%s", pid, link)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	n := m.Namespaces[discover.Key{Dev: st.Dev, Ino: st.Ino}]
	if n == nil || !n.HasNSID {
		return n, nil
	}
	if id, err := nsrel.ID(nsrel.FD(fd)); err == nil && id != n.NSID {
		return nil, nil
	}
	return n, nil
}

// usersNamespace reports whether n is a namespace of user uid's: a user
// namespace, or a namespace owned by one, whose chain reaches top (the
// caller's own user namespace, the top of what the model sees) through a
// child of it that uid created. A chain cut short (a parent that could
// not be read) does not reach it.
func usersNamespace(n *discover.Namespace, uid int64, top discover.Key) bool {
	u := n
	if n.Type != nsrel.TypeUser {
		u = n.Owner
	}
	for i := 0; u != nil && i <= policy.MaxUserDepth; i, u = i+1, u.Parent {
		if p := u.Parent; p != nil && p.Parent == nil {
			return p.Dev == top.Dev && p.Ino == top.Ino && u.OwnerUID == uid
		}
	}
	return false
}

// KeepContainer returns a filter for [tree.Options].Keep that keeps the
// namespaces of type t of the container arg names, and their ancestors.
// As with docker, arg is tried as an exact ID (also as NAMESPACE/ID and
// ENGINE [NAMESPACE/]ID, the label's form), then as a name (see
// [nameKeys]: a Kubernetes container also answers to "pod/container" and
// "container", and its pod's name selects all the pod's containers),
// then as an ID prefix. Each must name one container (or pod): an ID,
// name or prefix several containers share is an error (a rootless
// user's container may have a root container's ID), as is one that
// matches none.
func KeepContainer(m *discover.Model, t nsrel.Type, arg string) (func(*discover.Namespace) bool, error) {
	picked, err := containerNamespaces(m, []nsrel.Type{t}, arg)
	if err != nil {
		return nil, err
	}
	keep := make(map[*discover.Namespace]bool)
	for _, n := range picked {
		for a := n; a != nil && !keep[a]; a = a.Parent {
			keep[a] = true
		}
	}
	return func(n *discover.Namespace) bool { return keep[n] }, nil
}

// containerNamespaces returns the namespaces of the given types of the
// one container (or pod) arg names (see KeepContainer).
func containerNamespaces(m *discover.Model, types []nsrel.Type, arg string) ([]*discover.Namespace, error) {
	byID := make(map[string][]*discover.Namespace)
	byName := make(map[string][]*discover.Namespace)
	named := make(map[string][]*discover.Namespace) // IDs with a name that is not a pod's
	prefixed := make(map[string][]*discover.Namespace)
	nameOf := make(map[string]bool)  // containers arg is a name (or pod name) of
	owner := make(map[string]string) // the uid=UID namespace of a local user's container or name group, by key
	for _, n := range m.Namespaces {
		if !slices.Contains(types, n.Type) {
			continue
		}
		for _, c := range n.Containers {
			// An exact ID: ID, NAMESPACE/ID or ENGINE [NAMESPACE/]ID (the
			// label's form), keyed by the last: one ID may be two
			// containers' (containerd namespaces, a rootless user's
			// runtime root: uid=UID).
			// The label shows a generated ID cut short (tree.ShortID):
			// that form counts too, and where two share it, it is
			// ambiguous.
			ident, short := labelForms(c)
			if vocab.UsersContainer(c.Namespace) {
				owner[ident] = c.Namespace
			}
			if arg == c.ID || arg == ident || arg == short || arg == afterEngine(ident) || arg == afterEngine(short) {
				byID[ident] = append(byID[ident], n)
			}
			for _, k := range nameKeys(c) {
				if k.key == arg {
					if vocab.UsersContainer(c.Namespace) {
						owner[k.group] = c.Namespace
					}
					byName[k.group] = append(byName[k.group], n)
					nameOf[ident] = true
					if !k.pod {
						named[ident] = append(named[ident], n)
					}
				}
			}
			if strings.HasPrefix(c.ID, arg) {
				prefixed[ident] = append(prefixed[ident], n)
			}
		}
	}
	q := vocab.Quote(arg)
	var matches map[string][]*discover.Namespace
	nameMatch := false // matches are by name
	switch {
	case len(byID) > 1:
		return nil, fmt.Errorf("container ID %s is ambiguous: it is that of %s (name one as ENGINE NAMESPACE/ID)", q, sortedKeys(byID))
	case len(byID) == 1:
		// One container's ID may be another's name (runc IDs are
		// anyone's to choose, a rootless user's too): neither wins.
		for id := range byID {
			delete(nameOf, id)
			if owner[id] != "" {
				continue
			}
			// Not a local user's: a user's name (its to choose, a
			// runc state's labels included) does not make another
			// owner's exact ID ambiguous (it made --container fail
			// for root's container, whatever form named it).
			for n := range nameOf {
				if owner[n] != "" {
					delete(nameOf, n)
				}
			}
		}
		if len(nameOf) > 0 {
			return nil, fmt.Errorf("container %s is ambiguous: it is the ID of %s and a name of %s (name one as ENGINE NAMESPACE/ID)", q, sortedKeys(byID), sortedKeys(nameOf))
		}
		matches = byID
	case len(byName) > 1:
		return nil, fmt.Errorf("container name %s is ambiguous: it matches %s", q, sortedKeys(byName))
	case len(named) > 1:
		// nerdctl, for one, lets containers share a name.
		return nil, fmt.Errorf("container name %s is ambiguous: containers %s have it", q, sortedKeys(named))
	case len(byName) == 1:
		matches, nameMatch = byName, true
	case len(prefixed) > 1:
		return nil, fmt.Errorf("container ID prefix %s is ambiguous: it matches %s", q, sortedKeys(prefixed))
	case len(prefixed) == 1:
		matches = prefixed
	default:
		return nil, fmt.Errorf("no running container named %s or with an ID starting with it", q)
	}
	for key, ns := range matches {
		// A local user's ID or name must not take over what the
		// argument also abbreviates: another owner's container ID. Nor
		// must any name (a pod's or container's, its author's to
		// choose: a pod named after another container's short ID).
		if user := owner[key]; user != "" || nameMatch {
			var others []string
			for k := range prefixed {
				if user != "" && owner[k] != user || user == "" && !nameOf[k] {
					others = append(others, vocab.Escape(k))
				}
			}
			if len(others) > 0 {
				slices.Sort(others)
				whose := ""
				if user != "" {
					whose = ", a local user's,"
				}
				return nil, fmt.Errorf("container %s is ambiguous: it names %s%s and starts the ID of %s (name one as ENGINE NAMESPACE/ID)", q, vocab.Escape(key), whose, strings.Join(others, ", "))
			}
		}
		return ns, nil
	}
	return nil, nil
}

// labelForms returns the forms a label gives c as: ENGINE [NAMESPACE/]ID
// with the whole ID (ident, which keys it) and with the ID as the label
// cuts it (short).
func labelForms(c discover.Container) (ident, short string) {
	ns := ""
	if c.Namespace != "" {
		ns = c.Namespace + "/"
	}
	engine := ""
	if c.Engine != "" {
		engine = c.Engine + " "
	}
	return engine + ns + c.ID, engine + ns + tree.ShortID(c.ID)
}

// afterEngine cuts "ENGINE " off a label form.
func afterEngine(form string) string {
	_, rest, ok := strings.Cut(form, " ")
	if !ok {
		return form
	}
	return rest
}

// nameKey is a name a container answers to, and what it selects: the
// container's full name, or (pod) its Kubernetes pod, whose containers it
// selects together.
type nameKey struct {
	key, group string
	pod        bool
}

// nameKeys returns the names container c answers to. A Kubernetes
// container "ns/pod/ctr" answers to that, "pod/ctr" and "ctr", and its
// pod's "ns/pod" and "pod" (which select every container of the pod); a
// pod sandbox "ns/pod" to that and "pod"; any other name to itself. A
// rootless user's container (engine namespace uid=UID) is no pod's
// whatever its name (a user names its podman containers as it likes):
// it answers to its whole name only, in a group of its own.
func nameKeys(c discover.Container) []nameKey {
	name := c.Name
	if name == "" {
		return nil
	}
	if vocab.UsersContainer(c.Namespace) {
		return []nameKey{{name, c.Namespace + "/" + name, false}}
	}
	parts := strings.Split(name, "/")
	switch len(parts) {
	case 3:
		pod := parts[0] + "/" + parts[1]
		return []nameKey{{name, name, false}, {parts[1] + "/" + parts[2], name, false}, {parts[2], name, false}, {pod, pod, true}, {parts[1], pod, true}}
	case 2:
		return []nameKey{{name, name, true}, {parts[1], name, true}}
	default:
		return []nameKey{{name, name, false}}
	}
}

// sortedKeys lists m's keys, sorted, for a message: quoted where a name
// could pass for more than one (a pod's author chooses "web, x") or is
// not printable, and at most maxListed of them.
func sortedKeys[V any](m map[string]V) string {
	keys := slices.Sorted(maps.Keys(m))
	for i, k := range keys {
		if strings.ContainsAny(k, `,"\`) || vocab.Escape(k) != k {
			keys[i] = vocab.Quote(k)
		}
	}
	if len(keys) > maxListed {
		return strings.Join(keys[:maxListed], ", ") + fmt.Sprintf(" and %d more", len(keys)-maxListed)
	}
	return strings.Join(keys, ", ")
}

// maxListed bounds the names an error lists.
const maxListed = 10

// sourceErr is a container source's error as a notice prints it:
// escaped, but for the container helper's own message, printed
// terminal-safe by the helper already ([containers.HelperError]).
func sourceErr(err error) string {
	if errors.As(err, new(*containers.HelperError)) {
		return vocab.Printable(err.Error())
	}
	return vocab.Escape(err.Error())
}
