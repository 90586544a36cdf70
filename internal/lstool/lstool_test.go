package lstool_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/containers"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/lstool"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
	"github.com/nsrel/nsrel/tree"
)

// fakeSource is an in-memory container source.
type fakeSource struct {
	name  string
	cs    []discover.Container
	err   error
	delay time.Duration // ignores the context on purpose
}

func (f *fakeSource) Name() string { return f.name }

func (f *fakeSource) List(ctx context.Context) ([]discover.Container, error) {
	time.Sleep(f.delay)
	return f.cs, f.err
}

// TestLocalFailedWholeWithPartial: every local source failed, the runtime
// state in part (a root not read in time, no containers) and the audit
// log whole: each reason is said. The partial one hid the other, whose
// containers were then left out without a word.
func TestLocalFailedWholeWithPartial(t *testing.T) {
	local := containers.Local{
		&fakeSource{name: "runtime-state", err: &containers.PartialError{Err: errors.New("runc state /run/runc: not read in time")}},
		&fakeSource{name: "audit-log", err: errors.New("audit: /var/log/nsrel: writable by group and others")},
	}
	_, notices := lstool.ListContainers(context.Background(), []discover.ContainerSource{local}, 5*time.Second, false)
	want := []string{
		"containers: runtime-state: runc state /run/runc: not read in time; containers there are not shown",
		"containers: runtime-state: audit-log: audit: /var/log/nsrel: writable by group and others; containers there are not shown",
	}
	if !slices.Equal(notices, want) {
		t.Errorf("notices %q; want %q", notices, want)
	}
}

func tool(t nsrel.Type, sources ...discover.ContainerSource) lstool.Tool {
	name := "lsuserns"
	if t == nsrel.TypePID {
		name = "lspidns"
	}
	return lstool.Tool{Name: name, Type: t, Sources: func(lstool.SourceConfig) []discover.ContainerSource { return sources }}
}

func run(t *testing.T, tl lstool.Tool, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = lstool.Run(context.Background(), tl, args, &o, &e)
	return code, o.String(), e.String()
}

func ino(t *testing.T, pid int, typ string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(nstest.NSPath(pid, typ), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// chain returns the inodes from the namespace at path up to the top.
func chain(t *testing.T, path string) []uint64 {
	t.Helper()
	ns, err := nsrel.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for {
		id, err := nsrel.Identify(ns)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, id.Ino)
		p, err := nsrel.Parent(ns)
		ns.Close()
		if err != nil {
			return out
		}
		ns = p
	}
}

func TestUsageAndExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"help", []string{"--help"}, 0, "Examples:", ""},
		{"short help", []string{"-h"}, 0, "--containerd-address", ""},
		{"unknown flag", []string{"--bogus"}, 2, "", "lsuserns: unknown option --bogus (see --help)\n"},
		{"hostile flag", []string{"--a\x1b[2J"}, 2, "", "lsuserns: unknown option --a\\x1b[2J (see --help)\n"},
		{"bad value", []string{"--container-timeout", "soon"}, 2, "", `invalid value "soon" for option --container-timeout: must be a duration`},
		{"missing value", []string{"--container"}, 2, "", "option --container needs an argument"},
		{"bad boolean", []string{"--json=maybe"}, 2, "", `invalid value "maybe" for option --json: must be true or false`},
		{"unknown short option", []string{"-x"}, 2, "", "lsuserns: unknown option -x (see --help)\n"},
		{"short option without value", []string{"-o"}, 2, "", "lsuserns: option -o needs an argument (see --help)\n"},
		{"version", []string{"-V"}, 0, "lsuserns ", ""},
		{"bad column", []string{"-o", "NS,bogus"}, 2, "", `lsuserns: --output: unknown column "bogus"`},
		{"no columns", []string{"-o", ""}, 2, "", "lsuserns: --output: want a comma-separated list of columns (see --help)\n"},
		{"no long columns", []string{"--output="}, 2, "", "lsuserns: --output: want a comma-separated list of columns (see --help)\n"},
		{"blank columns", []string{"--output", " "}, 2, "", "lsuserns: --output: want a comma-separated list of columns (see --help)\n"},
		{"list and json", []string{"-J", "-l"}, 2, "", "--list (and --output, --noheadings, --raw) print a text table"},
		{"raw and dot", []string{"-r", "--format", "dot"}, 2, "", "--list (and --output, --noheadings, --raw) print a text table"},
		{"list and details", []string{"-l", "--details"}, 2, "", "--details adds to the tree"},
		{"dot and details", []string{"--format", "dot", "--details"}, 2, "", "--details adds to the text tree; --format dot shows"},
		{"output and details", []string{"-o", "NS,VIA", "--details"}, 2, "", "--details adds to the tree"},
		{"pid tool has no --no-other-types", []string{"--no-other-types"}, 2, "", "unknown option --no-other-types"},
		{"argument", []string{"extra"}, 2, "", `unexpected argument "extra"`},
		{"conflict", []string{"--no-containers", "--container", "x"}, 2, "", "lsuserns: --container needs the container lookup; drop --no-containers (see --help)\n"},
		{"empty containerd address", []string{"--containerd-address="}, 2, "", "lsuserns: option --containerd-address needs a socket path, not an empty string (see --help)\n"},
		{"empty containerd address, separate", []string{"--containerd-address", ""}, 2, "", "lsuserns: option --containerd-address needs a socket path, not an empty string (see --help)\n"},
		{"empty audit log", []string{"--format", "html", "--audit-log="}, 2, "", "lsuserns: option --audit-log needs a file, not an empty string (see --help)\n"},
		{"empty audit log without html", []string{"--audit-log="}, 2, "", "lsuserns: option --audit-log needs a file, not an empty string (see --help)\n"},
		{"empty title", []string{"--format", "html", "--title="}, 2, "", "lsuserns: option --title needs a title, not an empty string (see --help)\n"},
		{"bad format", []string{"--format", "png"}, 2, "", `--format "png": want text, json, dot, svg or html`},
		// Escaped once: \x1b, not \\x1b.
		{"hostile format", []string{"--format", "\x1bdot\""}, 2, "", `lsuserns: --format "\x1bdot\"": want`},
		{"hostile column", []string{"-o", "NS,\x1b]0;pwn"}, 2, "", `lsuserns: --output: unknown column "\x1b]0;pwn"`},
		{"json and dot", []string{"--json", "--format", "dot"}, 2, "", "--json and --format dot contradict each other"},
		{"json and text", []string{"--json", "--format", "text"}, 2, "", "--json and --format text contradict each other"},
		{"collapse 1", []string{"--format", "dot", "--collapse", "1"}, 2, "", "--collapse: want 0 (off) or 2 or more"},
		{"negative pid", []string{"--pid", "-3"}, 2, "", "--pid: want a process ID"},
		{"pid and container", []string{"--pid", "1", "--container", "x"}, 2, "", "--pid and --container: give one"},
		{"pid 0", []string{"--pid", "0"}, 2, "", "--pid: want a process ID"},
		{"empty container", []string{"--container", ""}, 2, "", "--container: want a container name or ID"},
		{"zero container timeout", []string{"--container-timeout", "0"}, 2, "", "lsuserns: --container-timeout 0s: want a positive duration (see --help)\n"},
		{"negative container timeout", []string{"--container-timeout", "-1s"}, 2, "", "lsuserns: --container-timeout -1s: want a positive duration (see --help)\n"},
		{"overlaps as a picture", []string{"--overlaps", "--format", "svg"}, 2, "", "--overlaps lists the shared host IDs as text or JSON: drop --format svg"},
		{"overlaps of a process", []string{"--overlaps", "-p", "1", "-l"}, 2, "", "drop --list and --pid"},
		{"overlaps raw", []string{"--overlaps", "--raw"}, 2, "", "drop --raw ("},
		{"audit log without html", []string{"--audit-log", "/x", "--format", "svg"}, 2, "", "--audit-log needs --format html"},
		// Taken and ignored before.
		{"collapse of the tree", []string{"--collapse", "3"}, 2, "", "--collapse needs --format dot, svg or html"},
		{"collapse of JSON", []string{"--json", "--collapse", "3"}, 2, "", "--collapse needs --format dot, svg or html"},
		{"title of an svg", []string{"--format", "svg", "--title", "x"}, 2, "", "--title needs --format html"},
		{"missing audit log", []string{"--no-containers", "--format", "html", "--audit-log", "/nonexistent/audit.jsonl"}, 1, "",
			"lsuserns: audit log: audit: open /nonexistent: no such file or directory\n"},
		// Said before the scan, alone: it came after the scan's
		// notices, as "open /proc/PID/ns/user: no such file or
		// directory".
		{"gone pid", []string{"--pid", "2147483647"}, 1, "", "lsuserns: --pid 2147483647: no such process\n"},
		{"gone pid, graph", []string{"--pid", "2147483647", "--format", "dot"}, 1, "", "lsuserns: --pid 2147483647: no such process\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ := nsrel.TypeUser
			if strings.HasPrefix(tc.name, "pid tool") {
				typ = nsrel.TypePID
			}
			code, out, errOut := run(t, tool(typ), tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.err) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q", code, out, errOut, tc.code, tc.out, tc.err)
			}
			if (tc.code == 2 || strings.HasPrefix(tc.name, "gone pid")) && strings.Count(errOut, "\n") != 1 {
				t.Errorf("error is not one line: %q", errOut)
			}
		})
	}
}

// lineOf returns the line for ns in a text tree and its depth (the width
// of its branch prefix / 4).
func lineOf(t *testing.T, out string, name nsrel.Name) (string, int) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		i := strings.Index(l, name.String()+" owner ")
		if i >= 0 {
			return l[i:], len([]rune(l[:i])) / 4
		}
	}
	t.Fatalf("%v not in the output:\n%s", name, out)
	return "", 0
}

func TestTreesMatchKernel(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.NoFDLeak(t)
	for _, tc := range []struct {
		typ   nsrel.Type
		start func(t testing.TB, depth int) *nstest.Proc
	}{
		{nsrel.TypeUser, nstest.UserChain},
		{nsrel.TypePID, nstest.PIDChain},
	} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			leaf := tc.start(t, 4)
			want := chain(t, nstest.NSPath(leaf.Pid, tc.typ.String()))

			code, out, errOut := run(t, tool(tc.typ), "--no-containers")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for i, ino := range want {
				line, depth := lineOf(t, out, nsrel.Name{Type: tc.typ, Ino: ino})
				if wantDepth := len(want) - 1 - i; depth != wantDepth {
					t.Errorf("%s at depth %d, want %d", line, depth, wantDepth)
				}
				wantOwner := "owner root (0)"
				if tc.typ == nsrel.TypePID {
					o, err := nsrel.OwnerUserNS(nsrel.Path(nstest.NSPath(leaf.Pid, "pid")))
					if err != nil {
						t.Fatal(err)
					}
					oid, _ := nsrel.Identify(o)
					o.Close()
					wantOwner = fmt.Sprintf("owner user:[%d] root (0)", oid.Ino)
					if i > 0 {
						wantOwner = "owner user:["
					}
				}
				if !strings.Contains(line, wantOwner) {
					t.Errorf("line %q lacks %q", line, wantOwner)
				}
			}

			code, out, errOut = run(t, tool(tc.typ), "--no-containers", "--json")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var doc tree.Document
			if err := json.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatal(err)
			}
			byIno := map[uint64]tree.Entry{}
			for _, e := range doc.Namespaces {
				if e.Type != tc.typ.String() {
					t.Errorf("entry of type %q in %s output", e.Type, tc.typ)
				}
				byIno[e.Ino] = e
			}
			for i, ino := range want {
				e, ok := byIno[ino]
				if !ok {
					t.Fatalf("%d missing from JSON", ino)
				}
				var wantParent *uint64
				if i+1 < len(want) {
					wantParent = &want[i+1]
				}
				if diff := cmp.Diff(wantParent, e.Parent); diff != "" {
					t.Errorf("%d: parent (-kernel +json):\n%s", ino, diff)
				}
				if e.OwnerUID == nil || *e.OwnerUID != 0 || e.NSID == nil {
					t.Errorf("%d: owner_uid %v nsid %v, want 0 and a number", ino, e.OwnerUID, e.NSID)
				}
			}
			if e := byIno[want[0]]; len(e.Processes) == 0 || e.Processes[0].Comm == "" {
				t.Errorf("leaf processes %+v, want the sleep with its comm", e.Processes)
			}
		})
	}
}

func TestContainerAnnotation(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.NoFDLeak(t)
	a := nstest.UserChain(t, 1)
	b := nstest.PIDChain(t, 2)
	src := &fakeSource{name: "fake", cs: []discover.Container{
		{ID: "3f1c2a9b7e0d5a6b7c8d", Engine: "containerd", Namespace: "k8s.io", PID: a.Pid, Name: "default/web-0"},
		{ID: "zoo-1", Engine: "runc", PID: b.Pid},
		{ID: "gone", Engine: "runc", PID: 1 << 30}, // no such process
	}}

	code, out, errOut := run(t, tool(nsrel.TypeUser, src))
	// Notices only: what the scan could not read, or not ask (another
	// package's test may bind net_cls meanwhile: sockets not asked).
	for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
		if code != 0 || l != "" && !strings.Contains(l, ": notice: ") {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
	}
	line, _ := lineOf(t, out, nsrel.Name{Type: nsrel.TypeUser, Ino: ino(t, a.Pid, "user")})
	if want := " containers: containerd k8s.io/3f1c2a9b7e0d (pod default/web-0)"; !strings.HasSuffix(line, want) {
		t.Errorf("line %q, want suffix %q", line, want)
	}
	line, _ = lineOf(t, out, nsrel.Name{Type: nsrel.TypeUser, Ino: ino(t, b.Pid, "user")})
	if want := " containers: runc zoo-1"; !strings.HasSuffix(line, want) {
		t.Errorf("line %q, want suffix %q", line, want)
	}

	code, out, _ = run(t, tool(nsrel.TypePID, src), "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var doc tree.Document
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	for _, e := range doc.Namespaces {
		var want []discover.Container
		switch e.Ino {
		case ino(t, a.Pid, "pid"): // the host PID namespace
			want = src.cs[:1]
		case ino(t, b.Pid, "pid"):
			want = src.cs[1:2]
		}
		if diff := cmp.Diff(want, e.Containers, cmp.Comparer(func(x, y []discover.Container) bool { return len(x) == 0 && len(y) == 0 || cmp.Equal(x, y) })); diff != "" {
			t.Errorf("pid:[%d] containers (-want +got):\n%s", e.Ino, diff)
		}
	}

	// --container keeps only the branch to zoo-1's PID namespace.
	code, out, _ = run(t, tool(nsrel.TypePID, src), "--container", "zoo")
	want := chain(t, nstest.NSPath(b.Pid, "pid"))
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != len(want) {
		t.Fatalf("exit %d, %d lines, want %d:\n%s", code, len(lines), len(want), out)
	}
	for _, i := range want {
		lineOf(t, out, nsrel.Name{Type: nsrel.TypePID, Ino: i})
	}
	code, out, errOut = run(t, tool(nsrel.TypePID, src), "--container", "nomatch")
	if code != 1 || out != "" || !strings.Contains(errOut, `no running container named "nomatch" or with an ID starting with it`) {
		t.Errorf("no match: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// By name: the pod's, as for the ID, its branch only.
	code, out, _ = run(t, tool(nsrel.TypeUser, src), "--container", "web-0")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != len(chain(t, nstest.NSPath(a.Pid, "user"))) {
		t.Errorf("--container web-0: exit %d:\n%s", code, out)
	}
	// --no-containers: no lookup at all.
	called := false
	tl := tool(nsrel.TypeUser)
	tl.Sources = func(lstool.SourceConfig) []discover.ContainerSource { called = true; return nil }
	if code, out, _ := run(t, tl, "--no-containers"); code != 0 || called || strings.Contains(out, "containers:") {
		t.Errorf("--no-containers: exit %d, sources called %v", code, called)
	}
}

func TestSlowAndFailingSources(t *testing.T) {
	nstest.RequireRoot(t)
	slow := &fakeSource{name: "slow", delay: 20 * time.Second}
	bad := &fakeSource{name: "containerd", err: errors.New("connection refused\nsecond line")}
	// A source that read part: its containers shown, the rest said.
	partial := &fakeSource{name: "runtime-state", cs: []discover.Container{{ID: "shown-1", Engine: "runc", PID: os.Getpid()}},
		err: &containers.PartialError{Err: errors.Join(errors.New("runc state /run/user/1000/runc: not read in time"),
			fmt.Errorf("podman names /home/u/st3\nFORGED NOTICE: shown/overlay-containers/containers.json: beyond what a listing reads; %w", containers.ErrUnnamed))}}
	start := time.Now()
	code, out, errOut := run(t, tool(nsrel.TypeUser, slow, bad, partial), "--container-timeout", "300ms")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v with a source that hangs; the deadline did not hold", d)
	}
	if code != 0 || !strings.HasPrefix(out, "user:[4026531837] owner root (0) containers: runc shown-1\n") {
		t.Errorf("exit %d, stdout %q; want the tree, with the partial source's container", code, out)
	}
	for _, want := range []string{
		"lsuserns: notice: containers: slow did not answer within 300ms; containers not shown\n",
		"lsuserns: notice: containers: runtime-state: runc state /run/user/1000/runc: not read in time; containers there are not shown\n",
		// Each reason its own notice, saying what it costs: names
		// skipped were said to hide containers, joined on one line.
		// A path in it, a user's to choose, escaped within its line:
		// split on newlines it made a line of the user's.
		"lsuserns: notice: containers: runtime-state: podman names /home/u/st3\\x0aFORGED NOTICE: shown/overlay-containers/containers.json: beyond what a listing reads; containers shown without names\n",
		"lsuserns: notice: containers: containerd: connection refused\\x0asecond line; its containers are not shown\n",
	} {
		if strings.Count(errOut, want) != 1 {
			t.Errorf("stderr %q lacks one %q", errOut, want)
		}
	}
	if strings.Contains(errOut, "\nFORGED") {
		t.Errorf("stderr %q: a line of the user's", errOut)
	}
}

// TestQuietAndOnce checks that a container two sources found shows once
// (the containerd daemon's entry, named; the audit log's dropped), and
// that an engine whose socket is missing (not installed) is not
// mentioned unless asked with --verbose or its socket was named.
func TestQuietAndOnce(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.UserChain(t, 1)
	id := strings.Repeat("ab", 32)
	daemon := &fakeSource{name: "containerd", cs: []discover.Container{{ID: id, Engine: "containerd", Namespace: "k8s.io", PID: p.Pid, Name: "shop/web-0/app"}}}
	local := &fakeSource{name: "runtime-state", cs: []discover.Container{{ID: id, Engine: "audit-log", PID: p.Pid, Name: "shop/web-0/app"}}}
	missing := &fakeSource{name: "containerd", err: fmt.Errorf("no socket at /run/containerd/containerd.sock (not running?): %w", unix.ENOENT)}
	code, out, errOut := run(t, tool(nsrel.TypeUser, daemon, local, missing))
	if code != 0 || strings.Contains(errOut, "containers:") {
		t.Fatalf("exit %d, stderr %q; want no notice about containers", code, errOut)
	}
	want := " containers: containerd k8s.io/" + id[:12] + " (pod shop/web-0, container app)"
	line, _ := lineOf(t, out, nsrel.Name{Type: nsrel.TypeUser, Ino: ino(t, p.Pid, "user")})
	if !strings.HasSuffix(line, want) {
		t.Errorf("line %q, want the container once: %q", line, want)
	}
	_, out, _ = run(t, tool(nsrel.TypeUser, daemon, local, missing), "--details")
	if line, _ := lineOf(t, out, nsrel.Name{Type: nsrel.TypeUser, Ino: ino(t, p.Pid, "user")}); !strings.Contains(line, want+"; processes: ") {
		t.Errorf("--details: line %q, want the container once: %q", line, want)
	}
	notice := "lsuserns: notice: containers: containerd: no socket at /run/containerd/containerd.sock (not running?): no such file or directory; its containers are not shown\n"
	for _, args := range [][]string{{"--verbose"}, {"--containerd-address", "/run/containerd/containerd.sock"}} {
		if _, _, errOut := run(t, tool(nsrel.TypeUser, missing), args...); !strings.HasSuffix(errOut, notice) {
			t.Errorf("%q: stderr %q, want %q", args, errOut, notice)
		}
	}
	t.Setenv("CONTAINERD_ADDRESS", "/run/containerd/containerd.sock")
	if _, _, errOut := run(t, tool(nsrel.TypeUser, missing)); !strings.HasSuffix(errOut, notice) {
		t.Errorf("CONTAINERD_ADDRESS set: stderr %q, want %q", errOut, notice)
	}
}

// TestSocketDenied runs lsuserns as nobody with the containerd socket in
// a directory only root may search (as /run/containerd, mode 0700): the
// notice says the socket cannot be reached, not that there is none.
func TestSocketDenied(t *testing.T) {
	nstest.RequireRoot(t)
	sock := filepath.Join(t.TempDir(), "containerd.sock") // t.TempDir is root's, mode 0700
	cmd := exec.Command(nstest.Tool(t, "lsuserns"), "--containerd-address", sock, "--no-fds", "--no-mounts")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lsuserns as nobody: %v\n%s", err, stderr.String())
	}
	want := "lsuserns: notice: containers: containerd: cannot reach the socket at " + sock + ": permission denied; its containers are not shown\n"
	if !strings.Contains(stderr.String(), want) || strings.Contains(stderr.String(), "no socket at") {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
}

// TestRootsFilesQuietUnprivileged: a user (or root of a user's namespace,
// unshare -Ur, who sees root's files as nobody's) cannot read root's
// runtime state; while the other local source answers, that failure is
// not said (as root it is: TestBadRuntimeRootsSaid), else every such run
// printed a notice of what no user may read. A log of the user's own
// that is refused (in a directory anyone may write) is said.
func TestRootsFilesQuietUnprivileged(t *testing.T) {
	nstest.RequireRoot(t)
	unshare := nstest.RequireCmd(t, "unshare")
	private := filepath.Join(t.TempDir(), "runc") // t.TempDir is root's, mode 0700
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	open := t.TempDir()
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(open), 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(open, "audit.jsonl")
	if err := os.WriteFile(log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A user's own log in a directory anyone may write: refused, and said.
	shared := filepath.Join(open, "shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	usersLog := filepath.Join(shared, "audit.jsonl")
	if err := os.WriteFile(usersLog, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(usersLog, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	readable := filepath.Join(open, "runc") // root's, empty: read
	if err := os.Mkdir(readable, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := nstest.Tool(t, "lsuserns")
	for _, tc := range []struct {
		args      []string
		root, log string
		said      string // the notice wanted, "" for none
	}{
		// The state refused, the log read (root's, trusted).
		{[]string{bin}, private, log, ""},
		// The state refused, no log (unshare -Ur as the docs show it):
		// the log NSREL_AUDIT_LOG names is not there, which is said
		// (containers.NamedError), the state's refusal is not.
		{[]string{unshare, "-Ur", bin}, private, filepath.Join(open, "none.jsonl"), "audit-log: NSREL_AUDIT_LOG names \"" + filepath.Join(open, "none.jsonl") + "\": lstat " + filepath.Join(open, "none.jsonl") + ": no such file or directory"},
		// Both refused (root's log in root's private directory): no
		// source answered, and nothing is said either.
		{[]string{bin}, private, filepath.Join(private, "audit.jsonl"), ""},
		{[]string{unshare, "-Ur", bin}, private, log, ""},
		// The state read, the user's log refused.
		{[]string{bin}, readable, usersLog, "audit-log: audit: " + shared + ": writable by group and others"},
	} {
		args := tc.args
		cmd := exec.Command(args[0], append(args[1:], "--no-fds", "--no-mounts")...)
		cmd.Env = append(os.Environ(), "NSREL_RUNTIME_ROOTS=runc="+tc.root, "NSREL_AUDIT_LOG="+tc.log)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s as nobody: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		if got := stderr.String(); tc.said == "" && strings.Contains(got, "runtime-state") || tc.said != "" && !strings.Contains(got, tc.said) || strings.Contains(got, "runc state") {
			t.Errorf("%s as nobody, NSREL_AUDIT_LOG=%s: stderr %q; want no notice of root's state or log, and %q", strings.Join(args, " "), tc.log, got, tc.said)
		}
	}
}

// TestSourceErrorEscaped names a containerd socket with a newline in it:
// the notice that there is no socket there shows the whole path, the
// newline escaped, on one line (it showed the path up to the newline).
func TestSourceErrorEscaped(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "no") + "\nsuch.sock"
	tl := lstool.Tool{Name: "lsuserns", Type: nsrel.TypeUser, Sources: func(c lstool.SourceConfig) []discover.ContainerSource {
		return []discover.ContainerSource{&containers.HelperSource{Address: c.ContainerdAddress, Timeout: c.Timeout}}
	}}
	_, _, errOut := run(t, tl, "--containerd-address", sock, "--verbose", "--no-fds", "--no-mounts")
	want := "lsuserns: notice: containers: containerd: no socket at " + strings.ReplaceAll(sock, "\n", `\x0a`) + " (not running?): no such file or directory; its containers are not shown\n"
	if !strings.Contains(errOut, want) {
		t.Errorf("stderr %q, want %q", errOut, want)
	}
}

func TestContainerdAddress(t *testing.T) {
	var got lstool.SourceConfig
	tl := lstool.Tool{Name: "lsuserns", Type: nsrel.TypeUser, Sources: func(c lstool.SourceConfig) []discover.ContainerSource {
		got = c
		return nil
	}}
	for _, tc := range []struct {
		env  string
		args []string
		want string
	}{
		{"", nil, vocab.DefaultContainerdAddress},
		{"/env.sock", nil, "/env.sock"},
		{"/env.sock", []string{"--containerd-address", "/flag.sock"}, "/flag.sock"},
	} {
		t.Setenv("CONTAINERD_ADDRESS", tc.env)
		got = lstool.SourceConfig{}
		if code, _, errOut := run(t, tl, append(tc.args, "--no-fds", "--no-mounts")...); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if got.ContainerdAddress != tc.want || got.Timeout != lstool.DefaultSourceTimeout {
			t.Errorf("env %q args %q: config %+v, want address %q", tc.env, tc.args, got, tc.want)
		}
	}
}

// TestMain runs the tool itself when the helper environment says so (see
// TestSeveralRoots).
func TestMain(m *testing.M) {
	if os.Getenv("NSREL_LSTOOL_HELPER") == "lsuserns" {
		if n, err := strconv.ParseUint(os.Getenv("NSREL_LSTOOL_NOFILE"), 10, 64); err == nil {
			// TestMoreNamespacesThanFDs: before anything opens a file.
			if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: n, Max: n}); err != nil {
				fmt.Fprintln(os.Stderr, "setrlimit:", err)
				os.Exit(3)
			}
		}
		os.Exit(lstool.Run(context.Background(), tool(nsrel.TypeUser), []string{"--no-containers"}, os.Stdout, os.Stderr))
	}
	code := m.Run()
	nstest.RemoveTools()
	os.Exit(code)
}

func TestSeveralRoots(t *testing.T) {
	// Inside a new user namespace U1, a process holds an fd to a sibling
	// U2. From inside U1 neither parent is visible (NS_GET_PARENT fails
	// with EPERM): U1 and U2 print as two trees, sorted by inode, and one
	// notice says what could not be read.
	nstest.RequireRoot(t)
	unshare := nstest.RequireCmd(t, "unshare")
	sh := nstest.RequireCmd(t, "sh")
	sibling := nstest.UserChain(t, 1)
	f, err := os.Open(nstest.NSPath(sibling.Pid, "user"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(unshare, "-Ur", sh, "-c", `echo "U1=$(readlink /proc/$$/ns/user)" >&2; sleep 1000 3<&3 & "$0"; s=$?; kill $!; exit $s`, os.Args[0])
	cmd.ExtraFiles = []*os.File{f}
	cmd.Env = append(os.Environ(), "NSREL_LSTOOL_HELPER=lsuserns")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Its sleep goes with it: its group is killed before it is reaped
	// (killed after, by its ID, the group could have been another's).
	if err := nstest.WaitGroup(cmd); err != nil {
		t.Fatalf("lsuserns in a user namespace: %v\n%s", err, stderr.String())
	}
	var u1 uint64
	if _, err := fmt.Sscanf(stderr.String(), "U1=user:[%d]", &u1); err != nil {
		t.Fatalf("no U1 inode in stderr %q: %v", stderr.String(), err)
	}
	u2 := ino(t, sibling.Pid, "user")
	var roots []string
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if strings.HasPrefix(l, "user:[") {
			roots = append(roots, l)
		}
	}
	for _, u := range []uint64{u1, u2} {
		if !slices.Contains(roots, fmt.Sprintf("user:[%d] owner root (0)", u)) {
			t.Errorf("roots %q, want user:[%d] (U1 %d, U2 %d) among them; output:\n%s", roots, u, u1, u2, stdout.String())
		}
	}
	// Other packages' tests create user namespaces at the same time; a
	// process caught between clone and exec can be visible from U1 for a
	// moment, so more roots than U1 and U2 are not an error here.
	if len(roots) > 2 {
		t.Logf("extra roots (concurrent tests): %q", roots)
	}
	if !slices.IsSortedFunc(roots, strings.Compare) {
		t.Errorf("roots %q not sorted", roots)
	}
	if n := strings.Count(stderr.String(), "notice: could not read"); n != 1 {
		t.Errorf("stderr %q, want one notice", stderr.String())
	}
}

// TestMoreNamespacesThanFDs runs lsuserns --no-containers with
// RLIMIT_NOFILE lower than the number of user namespaces. At 64, the
// scan holds none of them open (NS_GET_ID tells them apart): it prints
// them all, says nothing and exits 0 (it held each open, ran out of
// descriptors and exited 1 before). At 12, too low for the scan's own
// files, it must not die (the Go runtime could not set up its poller
// once the scan had used every descriptor: exit 2, "fatal error:
// runtime: eventfd failed"), and must print the tree it could build, say
// in the notice that it ran out of descriptors and exit 1.
func TestMoreNamespacesThanFDs(t *testing.T) {
	nstest.RequireRoot(t)
	_, err := nsrel.ID(nsrel.Path("/proc/self/ns/user"))
	nstest.Require(t, err == nil, "NS_GET_ID (Linux 6.18): %v", err)
	const many = 128
	nstest.HoldUserNamespaces(t, many)
	run := func(limit int) (int, string, string) {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "NSREL_LSTOOL_HELPER=lsuserns", "NSREL_LSTOOL_NOFILE="+strconv.Itoa(limit))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, stdout.String(), stderr.String()
	}
	code, stdout, stderr := run(64)
	if n := strings.Count(stdout, "user:["); code != 0 || strings.Contains(stderr, "file descriptors") || n <= many {
		t.Errorf("RLIMIT_NOFILE 64: exit %d, %d user namespaces, stderr %q; want exit 0, more than %d, no word of descriptors", code, n, stderr, many)
	}
	code, stdout, stderr = run(12)
	if code != 1 || !strings.Contains(stderr, "lsuserns: notice: ") || !strings.Contains(stderr, "ran out of file descriptors (too many open files)") {
		t.Errorf("RLIMIT_NOFILE 12: exit %d, stderr %q; want exit 1 and a notice that the scan ran out of file descriptors", code, stderr)
	}
	if want := fmt.Sprintf("user:[%d] owner ", uint64(nsrel.InitialUserNSIno)); !strings.HasPrefix(stdout, want) {
		t.Errorf("RLIMIT_NOFILE 12: stdout %.200q; want the tree it could build, from %q", stdout, want)
	}
}

// TestHidepidNotice runs lsuserns as an unprivileged user against a
// private /proc mounted with hidepid=invisible: a root process's user
// namespace is missing from the tree, and a notice says why (the
// processes are invisible, so nothing is denied); against the host's
// /proc the denial is what the notice says.
func TestHidepidNotice(t *testing.T) {
	nstest.RequireRoot(t)
	unshare := nstest.RequireCmd(t, "unshare")
	setpriv := nstest.RequireCmd(t, "setpriv")
	sh := nstest.RequireCmd(t, "sh")
	hidden := nstest.UserChain(t, 1) // root's, invisible to nobody
	// The test binary runs as the tool (TestMain); nobody must reach it.
	dir, err := os.MkdirTemp("", "nsrel-hidepid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := dir + "/lsuserns"
	data, err := os.ReadFile(os.Args[0])
	if err == nil {
		err = os.WriteFile(bin, data, 0o755)
	}
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, mount string
		notice      bool
		root        bool // as root (euid 0) of a user namespace of nobody's
	}{
		{"hidepid=invisible", "mount -t proc -o hidepid=invisible proc /proc && ", true, false},
		{"host proc", "", false, false},
		{"hidepid=invisible, root of a child user namespace", "mount -t proc -o hidepid=invisible proc /proc && ", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script := tc.mount + `exec "$0" --reuid 65534 --regid 65534 --clear-groups "$1"`
			if tc.root {
				script = tc.mount + `exec "$0" --reuid 65534 --regid 65534 --clear-groups "$2" -Ur "$1"`
			}
			cmd := exec.Command(unshare, "-m", "--propagation", "private", sh, "-c", script, setpriv, bin, unshare)
			cmd.Env = append(os.Environ(), "NSREL_LSTOOL_HELPER=lsuserns")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			want := "lsuserns: notice: /proc is mounted with hidepid=invisible: other users' processes are hidden"
			if got := strings.Contains(stderr.String(), want); got != tc.notice {
				t.Errorf("stderr %q: notice %v, want %v", stderr.String(), got, tc.notice)
			}
			// Either way root's namespace is not shown to nobody: with the
			// host's /proc the denial has its own notice.
			name := nsrel.Name{Type: nsrel.TypeUser, Ino: ino(t, hidden.Pid, "user")}.String()
			if strings.Contains(stdout.String(), name) {
				t.Errorf("%s shown to nobody:\n%s", name, stdout.String())
			}
			if denied := strings.Contains(stderr.String(), "notice: could not read the namespaces of"); denied == tc.notice {
				t.Errorf("stderr %q: denial notice %v, want %v", stderr.String(), denied, !tc.notice)
			}
		})
	}
}

// failWriter fails every write with err.
type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestWriteErrors(t *testing.T) {
	// A reader that went away (EPIPE with SIGPIPE ignored) ends the
	// listing quietly with exit 0, as util-linux's tools do; any other
	// write error is one line and exit 1.
	for _, tc := range []struct {
		err     error
		code    int
		wantErr string
	}{
		{&os.PathError{Op: "write", Path: "/dev/stdout", Err: syscall.EPIPE}, 0, ""},
		{&os.PathError{Op: "write", Path: "/dev/stdout", Err: syscall.ENOSPC}, 1, "lsuserns: write: write /dev/stdout: no space left on device\n"},
	} {
		for _, args := range [][]string{{"--no-containers"}, {"--no-containers", "--json"}} {
			var e bytes.Buffer
			code := lstool.Run(context.Background(), tool(nsrel.TypeUser), args, failWriter{tc.err}, &e)
			var errs []string
			for _, l := range strings.SplitAfter(e.String(), "\n") {
				if l != "" && !strings.Contains(l, ": notice: ") {
					errs = append(errs, l)
				}
			}
			if code != tc.code || strings.Join(errs, "") != tc.wantErr {
				t.Errorf("%v %q: exit %d, stderr %q; want exit %d, %q", tc.err, args, code, errs, tc.code, tc.wantErr)
			}
		}
	}
}

func TestOwnerOfJoinedNetNamespace(t *testing.T) {
	// A process of this user namespace joins the network namespace of a
	// child user namespace U, whose own processes then exit: U lives on
	// only as the owner of that network namespace. lsuserns shows it
	// under its parent, with how it was found; --no-other-types does not.
	nstest.RequireRoot(t)
	nstest.NoFDLeak(t)
	creator := nstest.Sleep(t, nil, "-Ur", "--net")
	netPath := nstest.NSPath(creator.Pid, "net")
	u := ino(t, creator.Pid, "user")
	joiner := nstest.Start(t, nil, nstest.RequireCmd(t, "nsenter"), "--net="+netPath, nstest.RequireCmd(t, "sleep"), "infinity")
	joiner.Pid = nstest.WaitLeaf(t, joiner.Pid, "sleep")
	net := ino(t, joiner.Pid, "net")
	syscall.Kill(-creator.Cmd.Process.Pid, syscall.SIGKILL)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", creator.Pid)); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("creator %d still there", creator.Pid)
		}
	}

	code, out, errOut := run(t, tool(nsrel.TypeUser), "--no-containers", "--details")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// Whatever else scans namespaces meanwhile (other packages' tests,
	// any lsns) holds U by fd for a moment: such holders are left out.
	foreignFDs := regexp.MustCompile(`fd /proc/[0-9]+/fd/[0-9]+, `)
	line, depth := lineOf(t, out, nsrel.Name{Type: nsrel.TypeUser, Ino: u})
	want := fmt.Sprintf("user:[%d] owner root (0); found via: owner of net:[%d]; maps: not readable (no process in this namespace)", u, net)
	if got := foreignFDs.ReplaceAllString(line, ""); got != want || depth != 1 {
		t.Errorf("line %q at depth %d, want %q at depth 1", line, depth, want)
	}
	// U's only tie is the joiner's net link, which --no-other-types
	// skips: U is not shown. Whatever else scans the host (other
	// packages' tests, any lsns) holds U and its net namespace by fd
	// while it scans, which found U (as the net namespace's owner too):
	// the check leaves fds out (--no-fds). With several scanners
	// running, five tries in a row all met one.
	code, out, errOut = run(t, tool(nsrel.TypeUser), "--no-containers", "--no-other-types", "--no-fds", "--details")
	if code != 0 {
		t.Fatalf("--no-other-types: exit %d: %s", code, errOut)
	}
	if strings.Contains(out, fmt.Sprintf("user:[%d]", u)) {
		line, _ := lineOf(t, out, nsrel.Name{Type: nsrel.TypeUser, Ino: u})
		t.Errorf("--no-other-types --no-fds: output has %q", line)
	}
}

// TestRootlessIDNotRoots gives the state source two runc containers
// with one ID: root's (a process in a user namespace of its own), and one
// whose state file a local user wrote in its own runtime root, pointing
// at a process of its own in a user namespace of its own (as a rootless
// runtime's). The user's container used to take the ID's label (the
// lower PID won) and root's vanished, so `--container web-2` showed the
// user's namespaces. Each is now labelled where it runs, the user's in
// the namespace uid=65534, and the bare ID is ambiguous; the label's
// form names each.
func TestRootlessIDNotRoots(t *testing.T) {
	nstest.RequireRoot(t)
	intruder := nstest.Sleep(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}, "--user")
	real := nstest.UserChain(t, 1)
	rootDir, userDir := t.TempDir(), t.TempDir()
	writeRuncState(t, rootDir, "web-2", real.Pid, 0)
	writeRuncState(t, userDir, "web-2", intruder.Pid, 65534)
	src := &containers.StateSource{Roots: []containers.Root{{Runtime: containers.EngineRunc, Dir: rootDir}, {Runtime: containers.EngineRunc, Dir: userDir}}}

	code, out, errOut := run(t, tool(nsrel.TypeUser, src), "--no-mounts")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	line, _ := lineOf(t, out, nsrel.Name{Type: nsrel.TypeUser, Ino: ino(t, real.Pid, "user")})
	if want := " containers: runc web-2"; !strings.HasSuffix(line, want) {
		t.Errorf("root's container: line %q, want suffix %q", line, want)
	}
	line, _ = lineOf(t, out, nsrel.Name{Type: nsrel.TypeUser, Ino: ino(t, intruder.Pid, "user")})
	if want := " containers: runc uid=65534/web-2"; !strings.HasSuffix(line, want) {
		t.Errorf("the user's container: line %q, want suffix %q", line, want)
	}

	code, out, errOut = run(t, tool(nsrel.TypeUser, src), "--no-mounts", "--container", "web-2")
	if code != 1 || out != "" || !strings.Contains(errOut, `container ID "web-2" is ambiguous: it is that of runc uid=65534/web-2, runc web-2`) {
		t.Errorf("--container web-2: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for arg, pid := range map[string]int{"runc web-2": real.Pid, "uid=65534/web-2": intruder.Pid, "runc uid=65534/web-2": intruder.Pid} {
		code, out, errOut = run(t, tool(nsrel.TypeUser, src), "--no-mounts", "--container", arg)
		if code != 0 {
			t.Errorf("--container %q: exit %d: %s", arg, code, errOut)
			continue
		}
		if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != len(chain(t, nstest.NSPath(pid, "user"))) {
			t.Errorf("--container %q: want the branch to pid %d's user namespace:\n%s", arg, pid, out)
		}
		lineOf(t, out, nsrel.Name{Type: nsrel.TypeUser, Ino: ino(t, pid, "user")})
	}
}

// writeRuncState writes ROOT/ID/state.json as runc does for a container
// whose init is pid, owned by uid.
func writeRuncState(t *testing.T, root, id string, pid int, uid int) {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	dir := filepath.Join(root, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "state.json")
	// Field 22 of stat: the 20th after the command's closing parenthesis.
	state := fmt.Sprintf(`{"id":%q,"init_process_pid":%d,"init_process_start":%s,"config":{"labels":["bundle=/run/%s"]}}`, id, pid, fields[19], id)
	if err := os.WriteFile(file, []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{root, dir, file} {
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAnnotateStartTime: a container whose PID a later process has (its
// start time is not the one its source knew) is not put on that
// process's namespaces; one with the right start time is, and so is one
// whose source knew none.
func TestAnnotateStartTime(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	start, err := inspect.StartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	m, err := discover.Discover(discover.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lstool.Annotate(m, []discover.Container{
		{ID: "right", Engine: "runc", PID: pid, StartTime: start},
		{ID: "reused", Engine: "runc", PID: pid, StartTime: start + 1},
		{ID: "unknown", Engine: "runc", PID: pid},
	})
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/user", pid), &st); err != nil {
		t.Fatal(err)
	}
	n := m.Namespaces[discover.Key{Dev: st.Dev, Ino: st.Ino}]
	if n == nil {
		t.Fatal("the process's user namespace is not in the model")
	}
	var ids []string
	for _, c := range n.Containers {
		ids = append(ids, c.ID)
	}
	if diff := cmp.Diff([]string{"right", "unknown"}, ids); diff != "" {
		t.Errorf("containers on the namespace (-want +got):\n%s", diff)
	}
}

// TestAnnotateSameIDTwoPIDs: entries of one engine, namespace and ID
// with different PIDs are different containers ([containers.Merge]
// keeps both), and an entry that is dropped (its PID's start time is
// not its source's) does not stand for its ID. Annotate used to skip
// every entry after the first of an ID, attached or not: a user's fake
// entry of a root container's ID, sorted first, hid the real one.
func TestAnnotateSameIDTwoPIDs(t *testing.T) {
	nstest.RequireRoot(t)
	a, b := nstest.UserChain(t, 1), nstest.UserChain(t, 1)
	startOf := func(pid int) uint64 {
		s, err := inspect.StartTime(pid)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	aStart, bStart := startOf(a.Pid), startOf(b.Pid)
	for _, tc := range []struct {
		name string
		cs   []discover.Container
		want map[int][]int // user namespace of PID: PIDs of the containers there
	}{
		{"first dropped", []discover.Container{
			{ID: "kube-apiserver", Engine: "crun", PID: a.Pid, StartTime: aStart + 1},
			{ID: "kube-apiserver", Engine: "crun", PID: b.Pid, StartTime: bStart},
		}, map[int][]int{a.Pid: nil, b.Pid: {b.Pid}}},
		{"both attached", []discover.Container{
			{ID: "kube-apiserver", Engine: "crun", PID: a.Pid, StartTime: aStart},
			{ID: "kube-apiserver", Engine: "crun", PID: b.Pid, StartTime: bStart},
		}, map[int][]int{a.Pid: {a.Pid}, b.Pid: {b.Pid}}},
		{"one entry twice", []discover.Container{
			{ID: "kube-apiserver", Engine: "crun", PID: a.Pid, StartTime: aStart},
			{ID: "kube-apiserver", Engine: "crun", PID: a.Pid, StartTime: aStart},
		}, map[int][]int{a.Pid: {a.Pid}, b.Pid: nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := discover.Discover(discover.Options{})
			if err != nil {
				t.Fatal(err)
			}
			lstool.Annotate(m, tc.cs)
			got := make(map[int][]int)
			for pid := range tc.want {
				var st unix.Stat_t
				if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/user", pid), &st); err != nil {
					t.Fatal(err)
				}
				n := m.Namespaces[discover.Key{Dev: st.Dev, Ino: st.Ino}]
				if n == nil {
					t.Fatalf("the user namespace of %d is not in the model", pid)
				}
				got[pid] = nil
				for _, c := range n.Containers {
					got[pid] = append(got[pid], c.PID)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("containers' PIDs by namespace (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAnnotateInodeReused: the model's namespaces are not held once the
// scan ended; one gone since may have its inode given to a new one (the
// kernel hands out the lowest free), and a container started in that
// one was attached to the dead namespace's node, under its parent, by
// the inode alone. The model's namespace of a live process is made to
// stand for such a dead one (the same inode, another ID): the container
// is not attached to it; with the model's own ID, it is.
func TestAnnotateInodeReused(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.Sleep(t, nil, "--user", "--map-root-user", "--pid", "--fork")
	m, err := discover.Discover(discover.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/user", p.Pid), &st); err != nil {
		t.Fatal(err)
	}
	n := m.Namespaces[discover.Key{Dev: st.Dev, Ino: st.Ino}]
	if n == nil || !n.HasNSID {
		t.Fatalf("the user namespace of %d: %+v; want it in the model with its ID (NS_GET_ID, Linux 6.18)", p.Pid, n)
	}
	own := n.NSID
	n.NSID = own + 1<<40 // a namespace of the same inode, gone since
	lstool.Annotate(m, []discover.Container{{ID: "started-later", Engine: "runc", PID: p.Pid}})
	if len(n.Containers) != 0 {
		t.Errorf("a container attached to a namespace of its process's inode and another ID: %+v", n.Containers)
	}
	n.NSID = own
	lstool.Annotate(m, []discover.Container{{ID: "its-own", Engine: "runc", PID: p.Pid}})
	if len(n.Containers) != 1 || n.Containers[0].ID != "its-own" {
		t.Errorf("containers of its own namespace: %+v; want its-own", n.Containers)
	}
}

// TestAnnotateUsersNamespacesOnly: a user's container (a rootless
// runtime's state, engine namespace uid=UID) is attached only to the
// namespaces of the user's: a process of the user's in a user namespace
// of its own but in the host's PID namespace (unshare -U) put the user's
// container, named as the user chose, on the host's PID namespace. One
// with a PID namespace of its own is attached to both; root's container
// of the same process stays attached to both.
func TestAnnotateUsersNamespacesOnly(t *testing.T) {
	nstest.RequireRoot(t)
	user := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4242, Gid: 4242}}
	hostPID := nstest.Sleep(t, user, "--user")
	ownPID := nstest.Sleep(t, user, "--user", "--map-root-user", "--pid", "--fork")
	nsOf := func(m *discover.Model, pid int, link string) *discover.Namespace {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, link), &st); err != nil {
			t.Fatal(err)
		}
		n := m.Namespaces[discover.Key{Dev: st.Dev, Ino: st.Ino}]
		if n == nil {
			t.Fatalf("the %s namespace of %d is not in the model", link, pid)
		}
		return n
	}
	m, err := discover.Discover(discover.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lstool.Annotate(m, []discover.Container{
		{ID: "kube-apiserver", Engine: "runc", Namespace: "uid=4242", PID: hostPID.Pid},
		{ID: "mine", Engine: "runc", Namespace: "uid=4242", PID: ownPID.Pid},
		{ID: "claims-other-user", Engine: "runc", Namespace: "uid=4243", PID: ownPID.Pid},
		{ID: "roots", Engine: "runc", PID: hostPID.Pid},
	})
	ids := func(n *discover.Namespace) []string {
		var s []string
		for _, c := range n.Containers {
			s = append(s, c.ID)
		}
		return s
	}
	for _, tc := range []struct {
		pid  int
		link string
		want []string
	}{
		{hostPID.Pid, "user", []string{"kube-apiserver", "roots"}},
		{hostPID.Pid, "pid", []string{"roots"}},
		{ownPID.Pid, "user", []string{"mine"}},
		{ownPID.Pid, "pid", []string{"mine"}},
	} {
		if diff := cmp.Diff(tc.want, ids(nsOf(m, tc.pid, tc.link))); diff != "" {
			t.Errorf("containers on the %s namespace of %d (-want +got):\n%s", tc.link, tc.pid, diff)
		}
	}
}

// TestAnnotateUsersInUserNS: run inside a user namespace (unshare -Ur
// lsuserns, a tool in an unprivileged container), where the model's
// user namespaces end at the caller's own, a user's container in a user
// namespace the user created below it is attached to its namespaces.
// It was attached nowhere: the top had to be the host's initial one.
func TestAnnotateUsersInUserNS(t *testing.T) {
	const env = "NSREL_TEST_ANNOTATE_IN_USERNS"
	if os.Getenv(env) == "" {
		nstest.RequireRoot(t)
		cmd := exec.Command(nstest.RequireCmd(t, "unshare"), "-Ur", os.Args[0], "-test.run=^TestAnnotateUsersInUserNS$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), env+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestAnnotateUsersInUserNS") {
			t.Errorf("in a user namespace: %v\n%s", err, out)
		}
		return
	}
	p := nstest.Sleep(t, nil, "-Ur", "--pid", "--fork")
	m, err := discover.Discover(discover.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lstool.Annotate(m, []discover.Container{{ID: "mine", Engine: "runc", Namespace: "uid=0", PID: p.Pid}})
	for _, link := range []string{"user", "pid"} {
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/%s", p.Pid, link), &st); err != nil {
			t.Fatal(err)
		}
		n := m.Namespaces[discover.Key{Dev: st.Dev, Ino: st.Ino}]
		if n == nil || len(n.Containers) != 1 {
			t.Errorf("the %s namespace of %d: %+v; want the container on it", link, p.Pid, n)
		}
	}
}

// TestHelperErrorEscapedOnce: the container helper's message, printed
// terminal-safe by the helper, is relayed in the notice as it is: it was
// escaped again, a socket path's ESC read "\\x1b" (backslash doubled).
func TestHelperErrorEscapedOnce(t *testing.T) {
	nstest.RequireRoot(t)
	sock := filepath.Join(t.TempDir(), "s\x1b[2Jk")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the socket stays, refusing connections
	var stdout, stderr strings.Builder
	cmd := exec.Command(nstest.Tool(t, "lsuserns"), "--containerd-address", sock, "--no-fds", "--no-mounts")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lsuserns: %v\n%s", err, stderr.String())
	}
	if errOut := stderr.String(); !strings.Contains(errOut, `s\x1b[2Jk: connect: connection refused`) || strings.Contains(errOut, `\\x1b`) || strings.Contains(errOut, "\x1b") {
		t.Errorf("stderr %q: want the socket's path escaped once", errOut)
	}
}
