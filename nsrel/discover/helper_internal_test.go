package discover

import (
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/nstest"
)

// TestHelperJoinsMany has one helper join two mount namespaces in turn
// 20,000 times, collecting garbage all the time. The helper unshared its
// filesystem state once, at its start: a thread the runtime starts later
// shares it, and setns(CLONE_NEWNS) then fails with EINVAL; a review saw
// every join fail after 19,359 (not reproduced here: when the runtime
// starts a thread from the main one varies). It unshares before each
// join now.
func TestHelperJoinsMany(t *testing.T) {
	nstest.RequireRoot(t)
	sleep := exec.Command("unshare", "-m", "--propagation", "private", "sleep", "60")
	sleep.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	var other int
	for range 200 { // until unshare has made its namespace
		fd, err := unix.Open("/proc/"+strconv.Itoa(sleep.Process.Pid)+"/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		var a, b unix.Stat_t
		unix.Fstat(fd, &a)
		unix.Stat("/proc/self/ns/mnt", &b)
		if a.Ino != b.Ino {
			other = fd
			break
		}
		unix.Close(fd)
		unix.Nanosleep(&unix.Timespec{Nsec: 10e6}, nil)
	}
	if other == 0 {
		t.Fatal("no second mount namespace")
	}
	defer unix.Close(other)
	own, err := unix.Open("/proc/self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(own)
	// A garbage collection at every turn: the runtime starts its
	// threads early.
	h, err := startHelper(-1, "GOGC=1") // no /proc: its PID is not read
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	for i := range 20000 {
		fd := own
		if i%2 == 1 {
			fd = other
		}
		if err := h.join(fd); err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
	}
}

// TestHelperJoinFails: a descriptor the helper cannot join (not a mount
// namespace: EINVAL) costs a second helper, then gives the first
// helper's error, which the scan counts and says (see TestNotice); the
// scan used to take it silently, as ECHILD.
func TestHelperJoinFails(t *testing.T) {
	nstest.RequireRoot(t)
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	procfd, err := unix.Open("/proc", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(procfd)
	w := &worker{s: &scanner{procfd: procfd}}
	defer w.closeHelper()
	before := helpersStarted.Load()
	err = w.mountsByHelper(&node{fd: fd})
	if err == nil || !strings.Contains(err.Error(), "mount namespace helper: invalid argument") {
		t.Errorf("mountsByHelper of /dev/null: %v", err)
	}
	if n := helpersStarted.Load() - before; n != 2 {
		t.Errorf("%d helpers started; want 2 (one replaced)", n)
	}
}
