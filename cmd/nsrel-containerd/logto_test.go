package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/rsyslogtest"
)

// TestHelpToFullDisk: a help or version that cannot be written (a full
// disk) is said, exit 1, as util-linux does; it exited 0.
func TestHelpToFullDisk(t *testing.T) {
	bin := nstest.Tool(t, "nsrel-containerd")
	for _, args := range [][]string{{"--help"}, {"--version"}, {"watch", "--help"}, {"ready", "--help"}} {
		if code, stderr := nstest.ToFullDisk(t, bin, args...); code != 1 || !strings.HasPrefix(stderr, "nsrel-containerd") || !strings.HasSuffix(stderr, ": write error: no space left on device\n") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%q to /dev/full: exit %d, stderr %q; want 1 and a write error", args, code, stderr)
		}
	}
}

// TestWatchLogToSyslog runs `nsrel-containerd watch --log-to` against a
// private rsyslogd over TCP on 127.0.0.1, with no containerd to talk to:
// its start and the unavailable event stream arrive as RFC 5424
// messages with structured data, and nothing goes to stderr.
func TestWatchLogToSyslog(t *testing.T) {
	bin := nstest.Tool(t, "nsrel-containerd")
	cfgPath, _ := ctrdtest.HookConfig(t)
	d, _, port, out := rsyslogtest.Diagnostics(t)

	cmd := exec.Command(bin, "watch", "--config", cfgPath, "--metrics-address", "", "--address", filepath.Join(t.TempDir(), "none.sock"),
		"--log-to", fmt.Sprintf("tcp://127.0.0.1:%d", port))
	var stderr nstest.LockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &watchProc{cmd: cmd, stderr: &stderr, done: make(chan error, 1)}
	go func() { w.done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill(); <-w.done })

	waitFor(t, d, out, "containerd event stream unavailable")
	w.stop(t)
	lines := waitFor(t, d, out, "nsrel-containerd watch stopped")
	var start, unavailable, stopped bool
	for _, l := range lines {
		s := string(l)
		if !strings.HasPrefix(s, "nsrel-containerd diag ") || !strings.Contains(s, "[nsrel@32473 ") {
			t.Errorf("line %q: want APP-NAME nsrel-containerd, MSGID diag and nsrel's SD element", s)
		}
		start = start || strings.HasPrefix(s, "nsrel-containerd diag 6 ") && strings.Contains(s, `audit_log="`) && strings.HasSuffix(s, "nsrel-containerd watch starting")
		unavailable = unavailable || strings.HasPrefix(s, "nsrel-containerd diag 4 ") && strings.Contains(s, `retry_in="`)
		stopped = stopped || strings.HasSuffix(s, "nsrel-containerd watch stopped")
	}
	if !start || !unavailable || !stopped {
		t.Errorf("start %v, stream unavailable %v, stopped %v; want all:\n%s", start, unavailable, stopped, bytes.Join(lines, []byte("\n")))
	}
	if s := stderr.String(); s != "" {
		t.Errorf("stderr: %q", s)
	}
}

// waitFor waits until the file out of rsyslogd d has a line containing
// s, and returns its lines.
func waitFor(t *testing.T, d *rsyslogtest.Daemon, out, s string) [][]byte {
	t.Helper()
	deadline := time.Now().Add(rsyslogtest.Timeout)
	for {
		lines, _ := rsyslogtest.Lines(out)
		for _, l := range lines {
			if bytes.Contains(l, []byte(s)) {
				return lines
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in rsyslog's output:\n%s\n%s", s, bytes.Join(lines, []byte("\n")), d.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFatalToStalledStderr runs `nsrel-containerd nri` with a stderr
// nobody reads (a pipe filled up) and an NRI socket that is not there:
// the plugin fails, and exits 1 once its diagnostics and its last line
// are given up (3 s, then 1 s, then 3 s in main), so that systemd
// restarts it. The last line waited for good, and the process never
// exited.
func TestFatalToStalledStderr(t *testing.T) {
	bin := nstest.Tool(t, "nsrel-containerd")
	cfgPath, _ := ctrdtest.HookConfig(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fd := int(w.Fd()) // blocking from now on, as the child gets it
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	for buf := make([]byte, 4096); ; {
		if _, err := unix.Write(fd, buf); errors.Is(err, unix.EAGAIN) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "nri", "--config", cfgPath, "--metrics-address", "", "--inject-hook", "none",
		"--socket", filepath.Join(t.TempDir(), "none.sock"))
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if code := cmd.ProcessState.ExitCode(); code != 1 {
			t.Errorf("exit %d (%v), want 1", code, err)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("nsrel-containerd nri did not exit within 60 s of failing with a stalled stderr")
	}
}
