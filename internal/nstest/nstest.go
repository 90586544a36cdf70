package nstest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// CI reports whether the tests run under CI (CI=true), where missing
// prerequisites are failures.
func CI() bool { return os.Getenv("CI") == "true" }

// Require skips the test with the reason unless ok; under CI it fails it.
func Require(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatalf("prerequisite missing (CI=true, so this fails instead of skipping): %s", msg)
	}
	t.Skipf("skipping: %s", msg)
}

// RequireRoot requires that the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	Require(t, os.Geteuid() == 0, "needs root to create namespaces for other UIDs and to read every process")
}

// RequireCmd requires a program on PATH (or at an absolute path) and
// returns its path.
func RequireCmd(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	Require(t, err == nil, "needs %s (%v); `make test` installs it", name, err)
	return p
}

// Proc is a process a test started; it is killed (with its whole process
// group) when the test ends.
type Proc struct {
	Cmd *exec.Cmd
	// Pid is the host PID of the process of interest (for chains, the
	// innermost sleep).
	Pid int
}

// Start starts name with args in its own process group, with stdin, stdout
// and stderr on /dev/null, and arranges for the group to be killed at the
// end of the test. attr, if non-nil, is merged into the SysProcAttr.
func Start(t testing.TB, attr *syscall.SysProcAttr, name string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	if attr == nil {
		attr = &syscall.SysProcAttr{}
	}
	attr.Setpgid = true
	attr.Pdeathsig = syscall.SIGKILL
	cmd.SysProcAttr = attr
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Proc{Cmd: cmd, Pid: cmd.Process.Pid}
	done := make(chan struct{})
	var reaped uint64 // when, in clock ticks since boot; set before done closes
	go func() { cmd.Wait(); reaped = bootTicks(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
			// Reaped: the group's ID (its leader's PID) may be another
			// process's since, another package's group leader.
			killGroupOf(cmd.Process.Pid, reaped)
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // its ID is the group's
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("process %d did not exit after SIGKILL", cmd.Process.Pid)
		}
	})
	return p
}

// killGroupOf kills process group pgid, whose leader was reaped at
// reaped (clock ticks since boot), if it is still the group the leader
// made: one of its processes started before the reap's tick (an ID
// stays its group's while a process is in that group); else nothing (a group that
// became empty freed the ID, which another process may have taken and
// made its group's: a test of another package's, killed by this
// cleanup).
func killGroupOf(pgid int, reaped uint64) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		f := statFields("/proc/" + e.Name() + "/stat")
		if len(f) < 20 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		if start, err := strconv.ParseUint(f[19], 10, 64); err == nil && start < reaped {
			syscall.Kill(-pgid, syscall.SIGKILL)
			return
		}
	}
}

// WaitGroup waits for cmd's process, the leader of a process group of
// its own (Setpgid), to exit, kills what is left in its group while the
// leader, not yet reaped, still holds the group's ID, and then reaps it:
// cmd.Wait's error. A kill of the group once the leader was reaped
// could reach another package's group that took the ID since.
func WaitGroup(cmd *exec.Cmd) error {
	pid := cmd.Process.Pid
	var info unix.Siginfo
	for unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	return cmd.Wait()
}

// bootTicks returns the time since boot in clock ticks (USER_HZ, 100),
// as process start times count it; the largest value when it cannot be
// read (every process started before).
func bootTicks() uint64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return ^uint64(0)
	}
	return uint64(ts.Nano() / int64(10*time.Millisecond))
}

// Sleep starts `sleep infinity` through the given unshare arguments
// (unshare -Ur ... sleep infinity) and waits until the sleep runs. With
// fork (-f) in the arguments the sleep is a descendant, found by walking
// /proc/PID/task/PID/children.
func Sleep(t testing.TB, attr *syscall.SysProcAttr, unshareArgs ...string) *Proc {
	t.Helper()
	unshare := RequireCmd(t, "unshare")
	sleep := RequireCmd(t, "sleep")
	var args []string
	if len(unshareArgs) > 0 {
		args = append(args, unshareArgs...)
		args = append(args, sleep, "infinity")
	} else {
		unshare = sleep
		args = []string{"infinity"}
	}
	p := Start(t, attr, unshare, args...)
	p.Pid = WaitLeaf(t, p.Pid, "sleep")
	return p
}

// UserChain starts a sleep in depth nested user namespaces below the
// caller's (unshare -Ur, depth times, each mapping root to the one above).
func UserChain(t testing.TB, depth int) *Proc {
	t.Helper()
	var args []string
	for i := 0; i < depth; i++ {
		if i > 0 {
			args = append(args, "unshare")
		}
		args = append(args, "-Ur")
	}
	return Sleep(t, nil, args...)
}

// PIDChain starts a sleep in depth nested PID namespaces below the
// caller's, each in its own new user namespace (unshare -Urpf, depth
// times).
func PIDChain(t testing.TB, depth int) *Proc {
	t.Helper()
	var args []string
	for i := 0; i < depth; i++ {
		if i > 0 {
			args = append(args, "unshare")
		}
		args = append(args, "-Urpf", "--kill-child")
	}
	return Sleep(t, nil, args...)
}

// NestedUserNS starts a sleep in a new user namespace below the one of
// process parent (nsenter -U, then unshare --user), writes its uid_map
// and gid_map (the same line, "INSIDE OUTSIDE COUNT", outside IDs
// relative to the parent) from the parent namespace as a process there
// would, and returns its PID. setgroups is deny.
func NestedUserNS(t testing.TB, parent int, line string) int {
	t.Helper()
	nsenter := RequireCmd(t, "nsenter")
	p := Start(t, nil, nsenter, "-U", "-t", strconv.Itoa(parent), "--", RequireCmd(t, "unshare"), "--user", "sleep", "infinity")
	leaf := WaitLeaf(t, p.Cmd.Process.Pid, "sleep")
	dir := "/proc/" + strconv.Itoa(leaf)
	script := "echo deny > " + dir + "/setgroups && echo " + line + " > " + dir + "/uid_map && echo " + line + " > " + dir + "/gid_map"
	if out, err := exec.Command(nsenter, "-U", "-t", strconv.Itoa(parent), "--", "/bin/sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("write the maps of %d from the namespace of %d: %v: %s", leaf, parent, err, out)
	}
	return leaf
}

// WaitLeaf follows the first child of pid down to a process without
// children and waits (up to 10 s) until that process runs comm. It returns
// the leaf's PID.
func WaitLeaf(t testing.TB, pid int, comm string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		leaf := Leaf(pid)
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(leaf) + "/comm")
		if strings.TrimSpace(string(b)) == comm {
			return leaf
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d: no descendant running %s after 10s (leaf %d runs %q)", pid, comm, leaf, strings.TrimSpace(string(b)))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Leaf follows the first child of pid down to a process without children.
func Leaf(pid int) int {
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			return pid
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return pid
		}
		c, err := strconv.Atoi(f[0])
		if err != nil {
			return pid
		}
		pid = c
	}
}

// FDCount returns the number of open file descriptors of this process.
func FDCount(t testing.TB) int {
	t.Helper()
	pollerUp(t)
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("count fds: %v", err)
	}
	return len(ents) - 1 // the directory's own fd
}

// NoFDLeak records the fd count now and checks at cleanup that it is the
// same. Register it first in a test so it runs after other cleanups.
func NoFDLeak(t testing.TB) {
	t.Helper()
	pollerUp(t)
	before := fdList(t)
	t.Cleanup(func() {
		after := fdList(t)
		// A child the code killed and waits for in a goroutine of its
		// own (discover's socket helper that met a file where a socket
		// was: its close may never return) holds a pidfd until it is
		// reaped, after the call returned: waited for a while.
		for deadline := time.Now().Add(5 * time.Second); len(after) > len(before) && onlyPidfds(before, after) && time.Now().Before(deadline); after = fdList(t) {
			time.Sleep(10 * time.Millisecond)
		}
		if len(after) != len(before) {
			t.Errorf("fd leak: %d open fds before, %d after\nbefore: %v\nafter:  %v", len(before), len(after), before, after)
		}
	})
}

// pollerUp sets up the Go runtime's poller, if it is not yet: its two
// descriptors (an epoll instance and an eventfd), made once for the
// process at its first pollable file (a pipe to a child's stderr) and
// kept, are no leak of the code a test runs. Counted before and after,
// they were one in the test that first made a pipe.
func pollerUp(t testing.TB) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatalf("pipe: %v", err)
	}
	r.Close()
	w.Close()
}

// onlyPidfds reports whether every descriptor of after that before has
// not is a pidfd.
func onlyPidfds(before, after []string) bool {
	for _, fd := range after {
		if !slices.Contains(before, fd) && !strings.HasSuffix(fd, "->anon_inode:[pidfd]") {
			return false
		}
	}
	return true
}

func fdList(t testing.TB) []string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("list fds: %v", err)
	}
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		out = append(out, e.Name()+"->"+l)
	}
	return out
}

// NSPath returns /proc/PID/ns/TYPE.
func NSPath(pid int, typ string) string {
	return "/proc/" + strconv.Itoa(pid) + "/ns/" + typ
}

// Ino returns the inode of /proc/PID/ns/TYPE: the namespace's number in
// "type:[inode]".
func Ino(t testing.TB, pid int, typ string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(NSPath(pid, typ), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// HoldUserNamespaces starts n processes, each in a user namespace of its
// own (unshare -U sleep infinity, from one shell), killed when the test
// ends, and waits (up to 30 s) until they all run. They also die with the
// shell (setpriv --pdeathsig), which dies with the test binary: one that
// crashed or timed out left them all running.
func HoldUserNamespaces(t testing.TB, n int) {
	t.Helper()
	sh := RequireCmd(t, "sh")
	RequireCmd(t, "unshare")
	RequireCmd(t, "setpriv")
	RequireCmd(t, "sleep")
	p := Start(t, nil, sh, "-c", `i=0; while [ $i -lt $0 ]; do unshare -U setpriv --pdeathsig KILL sleep infinity & i=$((i+1)); done; wait`, strconv.Itoa(n))
	self := Ino(t, os.Getpid(), "user")
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.Pid, p.Pid))
		running := 0
		for _, c := range strings.Fields(string(b)) {
			comm, _ := os.ReadFile("/proc/" + c + "/comm")
			var st syscall.Stat_t
			if strings.TrimSpace(string(comm)) == "sleep" && syscall.Stat("/proc/"+c+"/ns/user", &st) == nil && st.Ino != self {
				running++
			}
		}
		if running == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d processes in user namespaces of their own after 30s", running, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ReportQuantiles reports the median and 90th percentile of t as the
// benchmark metrics median-NAME-UNIT and p90-NAME-UNIT (t is sorted).
func ReportQuantiles(b *testing.B, name string, t []time.Duration, unit time.Duration, unitName string) {
	slices.Sort(t)
	b.ReportMetric(float64(t[len(t)/2])/float64(unit), "median-"+name+"-"+unitName)
	b.ReportMetric(float64(t[len(t)*9/10])/float64(unit), "p90-"+name+"-"+unitName)
}

// TheirSocket makes dir/theirs, a directory of uid 65534 (nobody), and
// binds a datagram socket in it, log.sock, owned by that user too: a
// socket an unprivileged user made, which root must not send to. It
// returns the socket, closed when the test ends, and its path.
func TheirSocket(t testing.TB, dir string) (net.PacketConn, string) {
	t.Helper()
	theirs := filepath.Join(dir, "theirs")
	if err := os.Mkdir(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(theirs, "log.sock")
	c, err := net.ListenPacket("unixgram", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, p := range []string{theirs, sock} {
		if err := os.Lchown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	return c, sock
}

// Mkdirs makes each of dirs with perm (less the umask), failing the
// test if it cannot.
func Mkdirs(t testing.TB, perm os.FileMode, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.Mkdir(d, perm); err != nil {
			t.Fatal(err)
		}
	}
}
