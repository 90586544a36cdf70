package nstest

import (
	"bufio"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// FirstLine starts cmd and returns the first line it writes to stdout,
// without its newline, or "no line: " and what it said on stderr when it
// wrote none. kill stops what cmd started: FirstLine calls it, and waits
// for cmd, when cmd wrote no line, and else when the test ends.
func FirstLine(t testing.TB, cmd *exec.Cmd, kill func()) string {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		kill()
		cmd.Wait()
		return "no line: " + stderr.String()
	}
	return strings.TrimSuffix(line, "\n")
}

// MkdirDown makes the directory name (mode 0o755) in the directory open
// as dfd, closes dfd and returns an O_PATH descriptor of the new
// directory, failing the test if it cannot.
func MkdirDown(t testing.TB, dfd int, name string) int {
	t.Helper()
	if err := unix.Mkdirat(dfd, name, 0o755); err != nil {
		t.Fatal(err)
	}
	next, err := unix.Openat(dfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	unix.Close(dfd)
	if err != nil {
		t.Fatal(err)
	}
	return next
}
