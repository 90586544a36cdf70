package nstest

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
)

// TakePID starts a process of name and args that gets PID pid (free
// now: its process exited and was reaped), through ns_last_pid (root).
// Another process's fork (another test package's) may come between the
// write and this one's: up to 50 tries. The caller kills and waits for
// the process.
func TakePID(pid int, name string, args ...string) (*exec.Cmd, error) {
	for range 50 {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			return nil, err
		}
		c := exec.Command(name, args...)
		if err := c.Start(); err != nil {
			return nil, err
		}
		if c.Process.Pid == pid {
			return c, nil
		}
		c.Process.Kill()
		c.Wait()
	}
	return nil, fmt.Errorf("PID %d not taken again in 50 forks", pid)
}
