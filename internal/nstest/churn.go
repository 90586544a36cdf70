package nstest

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// churnSource is a program whose main thread exits while one other
// thread at a time runs: each starts its successor and exits, so that
// the ID of the thread that runs changes every few microseconds. It says
// "ready1", waits for a byte on stdin, moves to a new user namespace of
// its own when its first argument is "unshare", says "ready2" and
// churns. (Go cannot do this: its runtime keeps threads of its own.)
// With "waiter", its main thread exits at once and its other thread says
// its ID and exits (alone) at a byte on stdin. With "traced", it says
// the PID of a child that churns so, which it traces, leaving the
// threads that exit zombies (reaped every 2,000 stops).
const churnSource = `#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long left = -1; /* threads still to make; -1: for ever */

static void *next(void *arg) {
	pthread_t t;
	pthread_attr_t a;
	if (left >= 0 && __atomic_sub_fetch(&left, 1, __ATOMIC_SEQ_CST) < 0)
		return 0;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 65536);
	while (pthread_create(&t, &a, next, 0) != 0)
		sched_yield();
	return 0;
}

static void *waiter(void *arg) {
	char c;
	printf("%ld\n", (long)syscall(SYS_gettid));
	fflush(stdout);
	if (read(0, &c, 1) != 1)
		syscall(SYS_exit_group, 1);
	syscall(SYS_exit, 0); /* this thread alone */
	return 0;
}

/* The tracer of a churning child: it lets every stop go on and leaves
   the threads that exit zombies, reaping them only now and then (every
   2,000 stops), or, with hold, keeps the first hold of them zombies for
   good and reaps the later ones at once, or, with left set, reaps none
   (the child makes that many threads and ends). */
static int traced(long hold) {
	int go[2];
	char c;
	pthread_t t;
	long events = 0;
	if (pipe(go) != 0)
		return 1;
	pid_t child = fork();
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (read(go[0], &c, 1) != 1)
			return 1;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		pthread_create(&t, &a, next, 0);
		pthread_exit(0);
	}
	if (ptrace(PTRACE_SEIZE, child, 0, PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXIT) != 0)
		return 1;
	printf("%d\n", child);
	fflush(stdout);
	if (write(go[1], "x", 1) != 1)
		return 1;
	for (;;) {
		siginfo_t si;
		if (waitid(P_ALL, 0, &si, WSTOPPED | __WALL) != 0) {
			pause();
			return 1;
		}
		pid_t x = si.si_pid;
		int exiting = si.si_code == CLD_TRAPPED && (si.si_status >> 8) == PTRACE_EVENT_EXIT;
		ptrace(PTRACE_CONT, x, 0, 0);
		if (left >= 0)
			continue;
		if (hold > 0) {
			if (exiting && x != child && events++ >= hold)
				waitid(P_PID, x, &si, WEXITED | __WALL);
			continue;
		}
		if (++events % 2000 == 0)
			while (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | __WALL) == 0 && si.si_pid != 0 && si.si_pid != child)
				;
	}
}

int main(int argc, char **argv) {
	char c;
	pthread_t t;
	pthread_attr_t a;
	if (argc > 1 && strcmp(argv[1], "traced") == 0)
		return traced(0);
	if (argc > 2 && strcmp(argv[1], "holder") == 0)
		return traced(atol(argv[2]));
	if (argc > 2 && strcmp(argv[1], "tracedend") == 0) {
		left = atol(argv[2]);
		return traced(0);
	}
	if (argc > 1 && strcmp(argv[1], "waiter") == 0) {
		pthread_create(&t, 0, waiter, 0);
		pthread_exit(0);
	}
	printf("ready1\n");
	fflush(stdout);
	if (read(0, &c, 1) != 1)
		return 1;
	if (argc > 1 && strcmp(argv[1], "unshare") == 0 && unshare(CLONE_NEWUSER) != 0) {
		perror("unshare");
		return 1;
	}
	printf("ready2\n");
	fflush(stdout);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_create(&t, &a, next, 0);
	pthread_exit(0);
}
`

// churnBinary compiles churnSource (with the C compiler cgo uses) into
// a directory every user may reach, removed at the end of the test.
func churnBinary(t testing.TB) string {
	t.Helper()
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "gcc"
	}
	cc = RequireCmd(t, cc)
	dir, err := os.MkdirTemp("", "nsrel-churn-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, bin := filepath.Join(dir, "churn.c"), filepath.Join(dir, "churn")
	if err := os.WriteFile(src, []byte(churnSource), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-O2", "-pthread", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("%s churn.c: %v\n%s", cc, err, out)
	}
	return bin
}

// ThreadChurn is a process started by [StartThreadChurn].
type ThreadChurn struct {
	Pid    int
	stdin  io.Writer
	stdout *bufio.Reader
}

// StartThreadChurn starts a process (with attr) that waits until Churn
// is called; it is killed at the end of the test.
func StartThreadChurn(t testing.TB, attr *syscall.SysProcAttr, unshareUser bool) *ThreadChurn {
	t.Helper()
	var args []string
	if unshareUser {
		args = []string{"unshare"}
	}
	cmd := exec.Command(churnBinary(t), args...)
	in, out := startPiped(t, cmd, attr)
	c := &ThreadChurn{Pid: cmd.Process.Pid, stdin: in, stdout: out}
	if line, _ := c.stdout.ReadString('\n'); line != "ready1\n" {
		t.Fatalf("the churn program said %q", line)
	}
	return c
}

// Churn makes the process move to a user namespace of its own (if it
// was started so), end its main thread and churn its other thread; it
// returns once the main thread has exited.
func (c *ThreadChurn) Churn(t testing.TB) {
	t.Helper()
	if _, err := c.stdin.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if line, _ := c.stdout.ReadString('\n'); line != "ready2\n" {
		t.Fatalf("the churn program said %q", line)
	}
	WaitStateZ(t, c.Pid)
}

// StartLastThread starts a process whose main thread has exited and
// whose one other thread, whose ID it returns with the PID, exits when
// exit is called (the process is killed at the end of the test).
func StartLastThread(t testing.TB) (pid, tid int, exit func() error) {
	t.Helper()
	pid, tid, in := startSaying(t, "waiter")
	WaitStateZ(t, pid)
	return pid, tid, func() error {
		_, err := in.Write([]byte("x"))
		return err
	}
}

// StartTracedChurn starts a process that traces a child of its own whose
// main thread has exited and which churns its threads, one at a time,
// leaving those that exit zombies its tracer reaps only now and then:
// it returns the child's PID once its main thread has exited (both are
// killed at the end of the test). With hold, the tracer keeps the first
// hold threads that exit zombies for good and reaps the later ones at
// once; with a negative hold, the child makes -hold threads, one after
// the other, and ends, none reaped: all its threads exited.
func StartTracedChurn(t testing.TB, hold int) int {
	t.Helper()
	args := []string{"traced"}
	switch {
	case hold > 0:
		args = []string{"holder", strconv.Itoa(hold)}
	case hold < 0:
		args = []string{"tracedend", strconv.Itoa(-hold)}
	}
	_, child, _ := startSaying(t, args...)
	WaitStateZ(t, child)
	return child
}

// startSaying starts the churn program with args and returns its PID,
// the number its first line says (a thread's or a child's ID) and its
// stdin.
func startSaying(t testing.TB, args ...string) (pid, said int, stdin io.Writer) {
	t.Helper()
	cmd := exec.Command(churnBinary(t), args...)
	in, out := startPiped(t, cmd, nil)
	line, _ := out.ReadString('\n')
	said, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("the churn program (%s) said %q", strings.Join(args, " "), line)
	}
	return cmd.Process.Pid, said, in
}
