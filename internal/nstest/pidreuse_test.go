package nstest

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestTakePID: the PID is taken by the process started; one another
// process holds (another test package's that forked first) fails with
// ErrStolen in well under a second, where it failed the test after 5 s
// (past a lookup's 2-s deadline); and the host's next PID is not left
// back at the PID taken, where other packages' tests would see a PID
// they just freed come back at once.
func TestTakePID(t *testing.T) {
	RequireRoot(t)
	sleep := RequireCmd(t, "sleep")
	r := StartReused(t, sleep, "100")
	lastPID := func() int {
		b, err := os.ReadFile("/proc/sys/kernel/ns_last_pid")
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Past the victim: a process of its own after it.
	after := exec.Command(sleep, "100")
	if err := after.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { after.Process.Kill(); after.Wait() }()
	was := lastPID()
	if err := r.Take(sleep, "100"); err != nil || !r.Taken() || r.other == nil || r.other.Process.Pid != r.Pid {
		t.Fatalf("Take: %v (taken %v); want the PID %d taken by the process started", err, r.Taken(), r.Pid)
	}
	if now := lastPID(); was > r.Pid && now < was {
		t.Errorf("the host's next PID after %d, was after %d before the PID %d was taken", now, was, r.Pid)
	}
	if c, err := TakePID(r.Pid, sleep, "100"); !errors.Is(err, ErrStolen) {
		if c != nil {
			c.Process.Kill()
			c.Wait()
		}
		t.Errorf("TakePID of a PID a process holds: %v; want ErrStolen", err)
	}
}
