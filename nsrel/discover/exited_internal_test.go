package discover

import (
	"os/exec"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/nstest"
)

// TestExitedNotDenied: a namespace link whose task is reaped between
// the link's lookup and its read reads EACCES (proc_ns_get_link finds no
// task), and such a process, exited during the scan, was counted as one
// the caller may not read ("could not read the namespaces of 2 processes
// [PID 1 9788] (permission denied)" under churn, seen once). After
// EACCES the scan asks exited, which tells a reaped process (its /proc
// directory's entries gone) from a live one. The race itself is too
// narrow to make here; a lookup after the reap reads ESRCH or ENOENT.
func TestExitedNotDenied(t *testing.T) {
	cmd := exec.Command(nstest.RequireCmd(t, "sleep"), "infinity")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Open("/proc/"+strconv.Itoa(cmd.Process.Pid), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	w := &worker{}
	if w.exited(dfd) {
		t.Error("a live process taken for exited")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !w.exited(dfd) {
		t.Error("a reaped process not taken for exited")
	}
}
