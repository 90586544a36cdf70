package nstest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Reused is a process whose PID a test has another process take: the
// first runs until [Reused.End], the other from [Reused.Take]; both are
// killed and waited for at the end of the test.
type Reused struct {
	Pid          int
	first, other *exec.Cmd
	ended        bool
	stolen       bool // the PID taken by another process ([Reused.Take])
}

// StartReused starts name with args, the process whose PID is taken
// later.
func StartReused(t testing.TB, name string, args ...string) *Reused {
	t.Helper()
	r := &Reused{first: exec.Command(name, args...)}
	if err := r.first.Start(); err != nil {
		t.Fatal(err)
	}
	r.Pid = r.first.Process.Pid
	t.Cleanup(func() {
		r.End()
		if r.other != nil {
			r.other.Process.Kill()
			r.other.Wait()
		}
	})
	return r
}

// End kills the first process and waits for it: its PID is free.
func (r *Reused) End() {
	if !r.ended {
		r.ended = true
		r.first.Process.Kill()
		r.first.Wait()
	}
}

// Take ends the first process (if [Reused.End] has not) and starts name
// with args with its PID ([TakePID]). When another process (another test
// package's) took the PID first and holds it, that process is the one
// that took it: what the test makes happen happened, by another's hand.
func (r *Reused) Take(name string, args ...string) error {
	r.End()
	other, err := TakePID(r.Pid, name, args...)
	if errors.Is(err, ErrStolen) {
		r.stolen = true
		return nil
	}
	r.other = other
	return err
}

// Taken reports whether the PID was taken again ([Reused.Take]): by the
// process it started, or by another.
func (r *Reused) Taken() bool { return r.other != nil || r.stolen }

// Stolen reports whether another process took the PID ([Reused.Take]).
func (r *Reused) Stolen() bool { return r.stolen }

// ErrStolen is [TakePID]'s error when another process took the PID
// first and still holds it.
var ErrStolen = errors.New("PID taken by another process")

// TakePID starts a process of name and args that gets PID pid (free
// now: its process exited and was reaped), through ns_last_pid (root).
// Another process's fork (another test package's) may come between the
// write and this one's: up to 2000 tries, waiting (up to 500 ms) for
// another process that took pid to exit; one that holds it longer (a
// compiler, another test's sleep) fails it with [ErrStolen]. The host's
// next PID is left where it was (not back at pid: other packages' tests
// count on a PID they just freed not coming back at once). The caller
// kills and waits for the process.
func TakePID(pid int, name string, args ...string) (*exec.Cmd, error) {
	const lastPID = "/proc/sys/kernel/ns_last_pid"
	if b, err := os.ReadFile(lastPID); err == nil {
		if was, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			defer func() {
				// Forward only: forks since may have gone past it.
				if b, err := os.ReadFile(lastPID); err == nil {
					if now, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && now < was {
						os.WriteFile(lastPID, []byte(strconv.Itoa(was)), 0)
					}
				}
			}()
		}
	}
	// Every process and thread made anywhere on the host between the
	// write and the fork takes the next PID first: while other test
	// binaries fork (a CI run's packages in parallel), 50 tries all
	// missed. The command is made before the write, to keep the window
	// to the fork itself.
	for range 2000 {
		c := exec.Command(name, args...)
		if err := os.WriteFile(lastPID, []byte(strconv.Itoa(pid-1)), 0); err != nil {
			return nil, err
		}
		if err := c.Start(); err != nil {
			return nil, err
		}
		if c.Process.Pid == pid {
			return c, nil
		}
		c.Process.Kill()
		c.Wait()
		// Another process took it (a fork of another test package's
		// between the write and this one's): most live for a moment (a
		// test's helper); it is waited for, up to 500 ms.
		for deadline := time.Now().Add(500 * time.Millisecond); syscall.Kill(pid, 0) == nil; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%w: PID %d, still running after 500 ms", ErrStolen, pid)
			}
		}
	}
	return nil, fmt.Errorf("PID %d not taken again in 2000 forks", pid)
}
