package lstool_test

import (
	"bytes"
	"context"
	"io"
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
	"unicode/utf8"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
)

// runOnTTY runs the built command with stdout on a terminal cols wide and
// returns what it printed.
func runOnTTY(t *testing.T, cols uint16, bin string, args ...string) string {
	t.Helper()
	m, s := nstest.OpenPTY(t, cols)
	cmd := exec.Command(bin, args...)
	// The terminal's width alone: COLUMNS, in the tester's environment,
	// would set it.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "COLUMNS=") })
	cmd.Stdout = s
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	out, _ := io.ReadAll(m) // EIO when the last slave fd closes
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s %q: %v: %s", bin, args, err, errb.String())
	}
	return string(out)
}

// TestTerminalWidth runs lsuserns on a 40-column terminal: every line is
// cut to 40 characters; with -u, and to a pipe, none is.
func TestTerminalWidth(t *testing.T) {
	nstest.RequireRoot(t)
	bin := nstest.Tool(t, "lsuserns")
	leaf := nstest.UserChain(t, 12) // a deep chain makes long lines
	longest := func(out string) int {
		n := 0
		for _, l := range strings.Split(out, "\n") {
			n = max(n, utf8.RuneCountInString(l))
		}
		return n
	}
	// The chain's branch only: other tests' namespaces come and go
	// between the two runs.
	branch := []string{"--no-containers", "-p", strconv.Itoa(leaf.Pid)}
	whole, err := exec.Command(bin, branch...).Output()
	if err != nil {
		t.Fatal(err)
	}
	if n := longest(string(whole)); n <= 40 {
		t.Fatalf("the longest line to a pipe is %d characters: nothing to cut", n)
	}
	cut := runOnTTY(t, 40, bin, branch...)
	if n := longest(cut); n != 40 {
		t.Errorf("on a 40-column terminal the longest line has %d characters:\n%s", n, cut)
	}
	if !strings.Contains(cut, "user:[") || strings.Count(cut, "\n") != strings.Count(string(whole), "\n") {
		t.Errorf("cut output lost lines:\n%s", cut)
	}
	leafIno := strconv.FormatUint(nstest.Ino(t, leaf.Pid, "user"), 10)
	if full := runOnTTY(t, 40, bin, append(branch, "-u")...); longest(full) <= 40 || !strings.Contains(full, leafIno) {
		t.Errorf("-u cut the lines:\n%s", full)
	}
	// -r is for programs: never cut, as lsns -r (it was). Columns
	// other tests cannot change (the initial namespace's process count
	// changes as they run).
	rawArgs := append(branch, "-r", "-o", "NS,TYPE,NSID,PARENT,OWNERNS,UID,USER,DEPTH")
	raw, err := exec.Command(bin, rawArgs...).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := runOnTTY(t, 40, bin, rawArgs...); got != string(raw) || longest(got) <= 40 {
		t.Errorf("-r on a 40-column terminal:\n%s\nwant as to a pipe:\n%s", got, raw)
	}
}

// TestListOnNarrowTerminal: the list was cut line by line at a
// terminal's edge, so a number showed only its start (a PARENT inode
// 4026531837 as 40, read as a whole value in its column). On a terminal
// too narrow for its numbers it is printed as to a pipe now, COMMAND no
// narrower than its heading, as lsns does; the tree is still cut, never
// inside a number.
func TestListOnNarrowTerminal(t *testing.T) {
	nstest.RequireRoot(t)
	bin := nstest.Tool(t, "lsuserns")
	leaf := nstest.UserChain(t, 3)
	branch := []string{"--no-containers", "-p", strconv.Itoa(leaf.Pid)}
	args := append(branch, "-o", "NS,TYPE,USER,PARENT,COMMAND")
	pipe, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := string(pipe)
	// COMMAND narrowed to its heading's width (the processes' names may
	// be longer).
	start := strings.Index(want, "COMMAND")
	lines := strings.SplitAfter(want, "\n")
	for i, l := range lines {
		if l = strings.TrimSuffix(l, "\n"); len(l) > start+len("COMMAND") {
			lines[i] = strings.TrimRight(l[:start+len("COMMAND")], " ") + "\n"
		}
	}
	want = strings.Join(lines, "")
	if got := runOnTTY(t, 30, bin, args...); got != want {
		t.Errorf("-o NS,TYPE,USER,PARENT,COMMAND on a 30-column terminal:\n%s\nwant every number whole:\n%s", got, want)
	}
	tree, err := exec.Command(bin, branch...).Output()
	if err != nil {
		t.Fatal(err)
	}
	inode := regexp.MustCompile(`user:\[([0-9]*)`)
	for _, m := range inode.FindAllStringSubmatch(runOnTTY(t, 16, bin, branch...), -1) {
		if m[1] != "" && !strings.Contains(string(tree), m[0]+"]") {
			t.Errorf("the tree on a 16-column terminal shows %q, an inode cut short", m[0])
		}
	}
}

// TestListAndShortOptions checks the flat list against the tree on the
// real host: the same namespaces, one line each, with the chosen columns,
// and -p selects a process's branch as --pid does.
func TestListAndShortOptions(t *testing.T) {
	nstest.RequireRoot(t)
	leaf := nstest.UserChain(t, 3)
	pid := strconv.Itoa(leaf.Pid)
	for _, typ := range []nsrel.Type{nsrel.TypeUser, nsrel.TypePID} {
		code, treeOut, errOut := run(t, tool(typ), "-p", pid)
		if code != 0 {
			t.Fatalf("-p %s: exit %d: %s", pid, code, errOut)
		}
		code, listOut, errOut := run(t, tool(typ), "-p", pid, "-l", "-o", "NS,DEPTH,TYPE", "-n")
		if code != 0 {
			t.Fatalf("-l: exit %d: %s", code, errOut)
		}
		treeLines := strings.Split(strings.TrimSpace(treeOut), "\n")
		listLines := strings.Split(strings.TrimSpace(listOut), "\n")
		if len(treeLines) != len(listLines) {
			t.Fatalf("%s: %d tree lines, %d list lines:\n%s\n%s", typ, len(treeLines), len(listLines), treeOut, listOut)
		}
		for i, l := range listLines {
			f := strings.Fields(l)
			if len(f) != 3 || f[2] != typ.String() {
				t.Fatalf("list line %q", l)
			}
			if !strings.Contains(treeLines[i], typ.String()+":["+f[0]+"] owner") {
				t.Errorf("line %d: list %q, tree %q", i, l, treeLines[i])
			}
			depth, _ := strconv.Atoi(f[1])
			if prefix := len([]rune(treeLines[i][:strings.Index(treeLines[i], typ.String()+":[")])) / 4; prefix != depth {
				t.Errorf("line %d: depth %d, tree indent %d", i, depth, prefix)
			}
		}
	}
	// The process's own user namespace is in the list with its PID.
	_, out, _ := run(t, tool(nsrel.TypeUser), "-p", pid, "--raw", "-o", "NS,PID")
	want := strconv.FormatUint(nstest.Ino(t, leaf.Pid, "user"), 10) + " " + pid + "\n"
	if !strings.HasPrefix(out, "NS PID\n") || !strings.Contains(out, want) {
		t.Errorf("--raw -o NS,PID:\n%s\nwant a line %q", out, want)
	}
	// COMMAND, chosen or in the default columns, is the process's comm.
	comm, err := os.ReadFile("/proc/" + pid + "/comm")
	if err != nil {
		t.Fatal(err)
	}
	ino := strconv.FormatUint(nstest.Ino(t, leaf.Pid, "user"), 10)
	_, out, _ = run(t, tool(nsrel.TypeUser), "-p", pid, "--raw", "-o", "NS,PID,COMMAND")
	if want := ino + " " + pid + " " + strings.TrimSpace(string(comm)) + "\n"; !strings.Contains(out, want) {
		t.Errorf("--raw -o NS,PID,COMMAND:\n%s\nwant a line %q", out, want)
	}
	pidLeaf := nstest.PIDChain(t, 1) // alone in its PID namespace
	for _, p := range []struct {
		typ  nsrel.Type
		proc *nstest.Proc
	}{{nsrel.TypeUser, leaf}, {nsrel.TypePID, pidLeaf}} {
		pid := strconv.Itoa(p.proc.Pid)
		comm, err := os.ReadFile("/proc/" + pid + "/comm")
		if err != nil {
			t.Fatal(err)
		}
		_, out, _ = run(t, tool(p.typ), "-p", pid, "--raw", "--no-containers")
		ino := strconv.FormatUint(nstest.Ino(t, p.proc.Pid, p.typ.String()), 10)
		found := false
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 3 && f[0] == ino && f[3] == pid {
				found = slices.Contains(f[4:], strings.TrimSpace(string(comm)))
			}
		}
		if !found {
			t.Errorf("%s --raw: no line for %s with PID %s and COMMAND %q:\n%s", p.typ, ino, pid, strings.TrimSpace(string(comm)), out)
		}
	}
}

// TestPIDParentAboveNotice runs lspidns as root of the initial user
// namespace in a new PID namespace (unshare -pf): the parent of its own
// PID namespace lies above it, which no privilege shows; the notice says
// so (for it, and for other tests' PID namespaces running meanwhile),
// not that it is outside the user namespace or that root would see it.
func TestPIDParentAboveNotice(t *testing.T) {
	nstest.RequireRoot(t)
	cmd := exec.Command(nstest.RequireCmd(t, "unshare"), "-pf", "--kill-child", nstest.Tool(t, "lspidns"), "--no-containers")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	// (Reading the host's PID 1 from there may be refused as well. Other
	// notices may come too: the scan sees the host's processes, and the
	// mounts other tests make meanwhile.)
	got := stderr.String()
	var line string
	for _, l := range strings.Split(got, "\n") {
		if strings.HasPrefix(l, "lspidns: notice: could not read ") {
			line = l
		}
	}
	if !regexp.MustCompile(`the parent of [1-9][0-9]* PID namespaces? \(above this PID namespace\)`).MatchString(line) || strings.Contains(line, "outside this user namespace") ||
		!strings.HasSuffix(line, "; run in the initial PID namespace to see everything)") || strings.Contains(line, "as root") {
		t.Errorf("stderr %q; want a notice saying the parent of PID namespaces is above this one, to be seen from the initial PID namespace", got)
	}
}

// TestRawEscapesAsLsns: --raw writes a process name holding an escape
// sequence and a space as lsns -r does, each such byte once as \xHH
// (it wrote ESC as \x5cx1b: the table's escape, escaped again).
func TestRawEscapesAsLsns(t *testing.T) {
	nstest.RequireRoot(t)
	lsns := nstest.RequireCmd(t, "lsns")
	bin := filepath.Join(t.TempDir(), "s\x1b[31mX y")
	data, err := os.ReadFile(nstest.RequireCmd(t, "sleep"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := strconv.Itoa(cmd.Process.Pid)
	want := `s\x1b[31mX\x20y`
	_, out, _ := run(t, tool(nsrel.TypeUser), "-p", pid, "--raw", "--noheadings", "-o", "PID,COMMAND")
	if line := "\n" + pid + " " + want + "\n"; !strings.Contains("\n"+out, line) {
		t.Errorf("lsuserns --raw -o PID,COMMAND: %q, want a line %q", out, line[1:])
	}
	// lsns -r on the same name, in a PID namespace and /proc of its
	// own: lsns fails whole when any process it sees has a newline in
	// its name (other tests make such processes). Its COMMAND is the
	// command line: the name is in its first word.
	script := `unshare -U "$0" 60 & want=$(readlink -f "$0"); n=0
until [ "$(readlink /proc/$!/exe)" = "$want" ]; do n=$((n+1)); [ $n -lt 500 ] || { echo "no exec of $0" >&2; exit 1; }; sleep 0.01; done
"$1" -t user --raw --noheadings -o COMMAND; kill $!`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ref, err := exec.CommandContext(ctx, nstest.RequireCmd(t, "unshare"), "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", script, bin, lsns).Output()
	if err != nil {
		t.Fatalf("lsns -r in a PID namespace of its own: %v", err)
	}
	if !strings.Contains(string(ref), "/"+want+`\x2060`) {
		t.Errorf("lsns -r writes %q: not the name as %q", ref, want)
	}
}
