package nstest

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// FirstLine starts cmd and returns the first line it writes to stdout,
// without its newline, or "no line: " and what it said on stderr when it
// wrote none. kill stops what cmd started: FirstLine calls it, and waits
// for cmd, when cmd wrote no line, and else when the test ends.
//
// A command that exits without a line is not waited for beyond a second
// when what it started in the background holds its stdout or stderr
// open: a shell script that failed before its line left FirstLine
// reading for good.
func FirstLine(t testing.TB, cmd *exec.Cmd, kill func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	var stderr strings.Builder // read once Wait returned
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		kill()
		<-exited
		r.Close()
	})
	type result struct {
		line string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		got <- result{line, err}
	}()
	var res result
	select {
	case res = <-got:
	case <-exited:
		// What it wrote before it exited is in the pipe; whatever it
		// left running may hold the pipe open.
		r.SetReadDeadline(time.Now().Add(time.Second))
		res = <-got
	}
	if res.err != nil {
		kill()
		<-exited
		return "no line: " + stderr.String()
	}
	return strings.TrimSuffix(res.line, "\n")
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
