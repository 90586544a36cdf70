package nstest

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// leaderExitsEnv makes a test binary, started by [StartLeaderExited],
// end its main thread (the thread-group leader) in this package's
// initializer while another thread runs on.
const leaderExitsEnv = "NSREL_TEST_LEADER_EXITS"

func init() {
	if os.Getenv(leaderExitsEnv) != "1" {
		return
	}
	go func() {
		for {
			time.Sleep(time.Hour)
		}
	}()
	if uid, err := strconv.Atoi(os.Getenv(leaderUIDEnv)); err == nil {
		// This thread alone (raw setresuid(2), not the C library's or
		// Go's, which change every thread).
		if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); errno != 0 {
			os.Stdout.WriteString("setresuid: " + errno.Error() + "\n")
			unix.Syscall(unix.SYS_EXIT_GROUP, 1, 0, 0)
		}
	}
	os.Stdout.WriteString("ready\n")
	unix.Syscall(unix.SYS_EXIT, 0, 0, 0)
}

// leaderUIDEnv, with [leaderExitsEnv], makes the leader take this UID
// (real, effective, saved) before it exits; the other threads keep
// theirs.
const leaderUIDEnv = "NSREL_TEST_LEADER_UID"

// StartLeaderExited starts a process (this test binary again, with attr)
// whose thread-group leader has exited while another thread runs on:
// its /proc/PID/stat says Z, as a zombie's, and it still runs. It
// returns the PID once the stat says so; the process is killed at the
// end of the test.
func StartLeaderExited(t testing.TB, attr *syscall.SysProcAttr) int {
	t.Helper()
	return startLeaderExited(t, attr, leaderExitsEnv+"=1")
}

// StartLeaderExitedAs is [StartLeaderExited] of a process whose leader
// took UID uid before it exited, its other threads not: the threads of
// one process may run with different credentials.
func StartLeaderExitedAs(t testing.TB, attr *syscall.SysProcAttr, uid int) int {
	t.Helper()
	return startLeaderExited(t, attr, leaderExitsEnv+"=1", leaderUIDEnv+"="+strconv.Itoa(uid))
}

func startLeaderExited(t testing.TB, attr *syscall.SysProcAttr, env ...string) int {
	t.Helper()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = env
	_, out := startPiped(t, cmd, attr)
	if line, _ := out.ReadString('\n'); line != "ready\n" {
		t.Fatalf("the child said %q", line)
	}
	WaitStateZ(t, cmd.Process.Pid)
	return cmd.Process.Pid
}

// WaitStateZ waits until /proc/PID/stat says Z, at most 10 s.
func WaitStateZ(t testing.TB, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !StateZ(pid); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: its stat does not say Z after 10 s", pid)
		}
	}
}

// StateZ reports whether /proc/PID/stat says Z: a zombie, or a process
// whose leader thread exited.
func StateZ(pid int) bool {
	return TaskStateZ(pid, pid)
}

// TaskStateZ reports whether the stat of thread tid of process pid
// (/proc/PID/task/TID/stat) says Z.
func TaskStateZ(pid, tid int) bool {
	f := statFields("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid) + "/stat")
	return len(f) > 0 && f[0] == "Z"
}

// statFields returns the fields of a /proc stat file after the command
// (its field 3, the state, first); nil when it cannot be read.
func statFields(path string) []string {
	b, err := os.ReadFile(path)
	i := bytes.LastIndexByte(b, ')')
	if err != nil || i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// startPiped starts cmd with attr (killed with the test's process, and
// at the end of the test), its stdin and stdout piped to the test.
func startPiped(t testing.TB, cmd *exec.Cmd, attr *syscall.SysProcAttr) (io.WriteCloser, *bufio.Reader) {
	t.Helper()
	if attr == nil {
		attr = &syscall.SysProcAttr{}
	}
	attr.Pdeathsig = syscall.SIGKILL
	cmd.SysProcAttr = attr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return in, bufio.NewReader(out)
}
