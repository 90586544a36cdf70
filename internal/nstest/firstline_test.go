package nstest_test

import (
	"os/exec"
	"syscall"
	"testing"

	"github.com/nsrel/nsrel/internal/nstest"
)

// TestFirstLine: the line of a command that goes on running, the line of
// one that exits right after it, and, for one that fails without a line
// while what it started in the background keeps its stdout and stderr
// open, what it said on stderr: a clean-clone run hung there for good.
func TestFirstLine(t *testing.T) {
	sh := nstest.RequireCmd(t, "sh")
	for _, c := range []struct{ script, want string }{
		{"echo hi; exec sleep infinity", "hi"},
		{"echo hi", "hi"},
		{"sleep infinity & echo oops >&2; exit 1", "no line: oops\n"},
	} {
		cmd := exec.Command(sh, "-c", c.script)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		got := nstest.FirstLine(t, cmd, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
		if got != c.want {
			t.Errorf("%q: %q, want %q", c.script, got, c.want)
		}
	}
}
