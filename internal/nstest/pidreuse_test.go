package nstest

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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
	var r *Reused
	var was int
	for attempt := 1; ; attempt++ {
		r = StartReused(t, sleep, "100")
		// Past the victim: a process of its own after it.
		after := exec.Command(sleep, "100")
		if err := after.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { after.Process.Kill(); after.Wait() }()
		was = lastPID()
		err := r.Take(sleep, "100")
		if r.Stolen() && attempt < 10 {
			// Another package's process took the PID first (and holds
			// it): Take says so, and this test tries again, as every
			// caller does.
			continue
		}
		if err != nil || !r.Taken() || r.other == nil || r.other.Process.Pid != r.Pid {
			t.Fatalf("Take: %v (taken %v, stolen %v, attempt %d); want the PID %d taken by the process started", err, r.Taken(), r.Stolen(), attempt, r.Pid)
		}
		break
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

// TestStartCleanupSparesReusedGroup: a process Start started and the test
// ended (reaped at once) left its PID, its group's ID, free; another
// package's process that took it and leads a group of its own (setsid)
// was killed by this test's cleanup, which signalled the group by that
// ID.
func TestStartCleanupSparesReusedGroup(t *testing.T) {
	RequireRoot(t)
	sleep, setsid := RequireCmd(t, "sleep"), RequireCmd(t, "setsid")
	var other *exec.Cmd
	for attempt := 0; other == nil; attempt++ {
		t.Run("ended early", func(t *testing.T) {
			p := Start(t, nil, sleep, "100")
			p.Cmd.Process.Kill()
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				if _, err := os.Stat("/proc/" + strconv.Itoa(p.Pid)); err != nil {
					break // reaped by Start's waiter
				}
				if time.Now().After(deadline) {
					t.Fatalf("process %d not reaped 10 s after SIGKILL", p.Pid)
				}
			}
			// Taken a few ticks later (by a wrap of the host's PIDs,
			// seconds at least, were this test not taking it).
			time.Sleep(30 * time.Millisecond)
			c, err := TakePID(p.Pid, setsid, sleep, "100")
			if errors.Is(err, ErrStolen) && attempt < 10 {
				return // another's: again
			}
			if err != nil {
				t.Fatal(err)
			}
			other = c
			// Its own group once setsid has run.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				if f := statFields("/proc/" + strconv.Itoa(p.Pid) + "/stat"); len(f) > 2 && f[2] == strconv.Itoa(p.Pid) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("process %d leads no group 10 s after setsid", p.Pid)
				}
			}
		})
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	// (A SIGKILL takes effect when the process next runs: a moment.)
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var ws syscall.WaitStatus
		if pid, _ := syscall.Wait4(other.Process.Pid, &ws, syscall.WNOHANG, nil); pid != 0 {
			t.Fatalf("the process that took the PID and leads its own group: %v after the cleanup; want it running", ws)
		}
	}
}
