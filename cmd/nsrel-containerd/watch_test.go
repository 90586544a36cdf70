package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/containerd/recorder"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
)

const evStart = "containerd-events/start"

func TestMain(m *testing.M) { nstest.Main(m) }

// watchProc is a running `nsrel-containerd watch` (or any command line
// that ends in it).
type watchProc struct {
	cmd    *exec.Cmd
	stderr *nstest.LockedBuffer
	done   chan error
}

// launch runs argv until the test ends, without waiting for it.
func launch(t *testing.T, argv ...string) *watchProc {
	t.Helper()
	w := &watchProc{cmd: exec.Command(argv[0], argv[1:]...), stderr: &nstest.LockedBuffer{}, done: make(chan error, 1)}
	w.cmd.Stderr = w.stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.done <- w.cmd.Wait() }()
	t.Cleanup(func() {
		w.cmd.Process.Kill()
		<-w.done
	})
	return w
}

// startService runs argv until the test ends and waits until its
// diagnostics say ready.
func startService(t *testing.T, ready string, argv ...string) *watchProc {
	t.Helper()
	w := launch(t, argv...)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(w.stderr.String(), ready) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q from %s:\n%s", ready, argv[0], w.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return w
}

// startWatch runs argv until the test ends and waits until it has
// subscribed to the daemon's events.
func startWatch(t *testing.T, argv ...string) *watchProc {
	t.Helper()
	return startService(t, "subscribed", argv...)
}

// stop sends SIGTERM and checks that watch exits cleanly and promptly.
func (w *watchProc) stop(t *testing.T) {
	t.Helper()
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-w.done:
		w.done <- err
		if err != nil {
			t.Errorf("watch exited with %v after SIGTERM:\n%s", err, w.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop on SIGTERM")
	}
}

// TestWatchCommand runs the nsrel-containerd binary as a service would:
// it records a container start and its own start and stop, and stops
// cleanly on SIGTERM.
func TestWatchCommand(t *testing.T) {
	bin := nstest.Tool(t, "nsrel-containerd")
	cfgPath, cfg := ctrdtest.HookConfig(t)
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	w := startWatch(t, bin, "watch", "--config", cfgPath, "--address", d.Socket, "--log-level", "debug")
	id := ctrdtest.Uniq("ctr")
	d.Run(t, d.Client(t), "default", id, nil)
	audittest.Wait(t, cfg.AuditLog, "start record", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evStart) == 1 })
	w.stop(t)
	// The recorder's own start and stop bracket what it recorded.
	recs := audittest.Records(t, cfg.AuditLog, "")
	if first, last := recs[0], recs[len(recs)-1]; first.Stage != recorder.StageRecorderStart || last.Stage != recorder.StageRecorderStop {
		t.Errorf("first record %s, last %s; want %s and %s", first.Stage, last.Stage, recorder.StageRecorderStart, recorder.StageRecorderStop)
	}
	audittest.Verify(t, cfg.AuditLog)
}

func TestMainUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"--help"}, 0},
		{[]string{"--version"}, 0},
		{[]string{"-V"}, 0},
		{[]string{"bogus"}, 2},
		{[]string{"watch", "--bogus"}, 2},
		{[]string{"watch", "extra"}, 2},
		{[]string{"watch", "--log-level", "loud"}, 2},
		{[]string{"watch", "--metrics-address", "9498"}, 2},
		{[]string{"watch", "--log-to", "/var/log/x"}, 2},
		{[]string{"nri", "--metrics-address", "localhost"}, 2},
		{[]string{"watch", "--metrics-address", "127.0.0.1:notaport"}, 2},
		{[]string{"watch", "--metrics-address", "127.0.0.1:99999"}, 2},
		{[]string{"watch", "--metrics-address", "127.0.0.1:+80"}, 2},
		{[]string{"nri", "--metrics-address", "bad host:80"}, 2},
		{[]string{"watch", "--config", "/nonexistent/hook.json"}, 1},
		{[]string{"nri", "--index", "1x"}, 2},
		{[]string{"nri", "--timeout", "0s"}, 2},
		{[]string{"nri", "--timeout", "soon"}, 2},
		{[]string{"nri", "--address", "/x"}, 2},
		{[]string{"nri", "--config", "/nonexistent/hook.json"}, 1},
		{[]string{"nri", "--inject-hook", "relative/nsrel-hook"}, 2},
		{[]string{"nri", "--hook-config", "hook.json"}, 2},
		{[]string{"install-hook"}, 2},
		{[]string{"install-hook", "--dest", "rel"}, 2},
		{[]string{"install-hook", "--dest", "/x", "extra"}, 2},
		{[]string{"install-hook", "--dest", "/x", "--config", "/nonexistent/hook.json"}, 1},
		{[]string{"ready"}, 2},
		{[]string{"ready", "/nonexistent/ready"}, 1},
		{[]string{"ready", "--help"}, 0},
		{[]string{"watch", "-h"}, 0},
		{[]string{"--bogus"}, 2},
	} {
		var out, errb bytes.Buffer
		if got := run(tc.args, &out, &errb); got != tc.code {
			t.Errorf("Main(%q) = %d, want %d (stderr %q)", tc.args, got, tc.code, errb.String())
		}
		if tc.code != 0 && strings.Count(strings.TrimSpace(errb.String()), "\n") != 0 {
			t.Errorf("Main(%q): stderr is not one line: %q", tc.args, errb.String())
		}
		if tc.code == 0 && len(tc.args) > 0 && tc.args[len(tc.args)-1] != "--version" && tc.args[len(tc.args)-1] != "-V" && !strings.Contains(out.String(), "Examples:") {
			t.Errorf("Main(%q): no usage on stdout: %q", tc.args, out.String())
		}
	}
	// Worded for the user, not as the code that found it.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"install-hook"}, "nsrel-containerd install-hook: --dest DIR is required (see --help)\n"},
		{[]string{"watch", "--log-level", "loud"}, "nsrel-containerd watch: --log-level \"loud\": want trace, debug, info, warn, error, fatal or panic (see --help)\n"},
	} {
		var out, errb bytes.Buffer
		if run(tc.args, &out, &errb); errb.String() != tc.want {
			t.Errorf("%q: stderr %q; want %q", tc.args, errb.String(), tc.want)
		}
	}
	// An unknown option is worded as by the other commands.
	var out, errb bytes.Buffer
	for _, arg := range []string{"--bogus", "--bogus=1"} {
		errb.Reset()
		if run([]string{arg}, &out, &errb); errb.String() != "nsrel-containerd: unknown option --bogus (see --help)\n" {
			t.Errorf("%s: stderr %q", arg, errb.String())
		}
	}
	// ready is parsed as the other commands: --bogus was taken for a
	// file that is not there (exit 1), and "--" was refused.
	errb.Reset()
	if code := run([]string{"ready", "--bogus"}, &out, &errb); code != 2 || errb.String() != "nsrel-containerd ready: unknown option --bogus (see --help)\n" {
		t.Errorf("ready --bogus: exit %d, stderr %q", code, errb.String())
	}
	ready := filepath.Join(t.TempDir(), "-ready")
	if err := os.WriteFile(ready, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := run([]string{"ready", "--", ready}, &out, &errb); code != 0 {
		t.Errorf("ready -- FILE: exit %d, stderr %q", code, errb.String())
	}
}

// TestNRIRelativeInjection checks that a relative path for the injected
// hook or its config is refused naming the flag it came from: --config
// when no --hook-config was given.
func TestNRIRelativeInjection(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nri", "--inject-hook", "relative/nsrel-hook"}, "nsrel-containerd nri: --inject-hook wants an absolute path, not \"relative/nsrel-hook\" (see --help)\n"},
		{[]string{"nri", "--hook-config", "hook.json"}, "nsrel-containerd nri: --hook-config wants an absolute path, not \"hook.json\" (see --help)\n"},
		{[]string{"nri", "--config", "/etc/nsrel/hook.json", "--hook-config", "hook.json"}, "nsrel-containerd nri: --hook-config wants an absolute path, not \"hook.json\" (see --help)\n"},
		{[]string{"nri", "--config", "rel.json"}, "nsrel-containerd nri: --config \"rel.json\" is relative: with no --hook-config, the injected hook reads it and needs an absolute path (see --help)\n"},
	} {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != 2 || errb.String() != tc.want {
			t.Errorf("Main(%q) = %d, stderr %q; want 2, %q", tc.args, code, errb.String(), tc.want)
		}
	}
	// With --inject-hook none, or an absolute --hook-config, a relative
	// --config is only read by nri (here: not found, exit 1).
	for _, args := range [][]string{
		{"nri", "--config", "nonexistent/hook.json", "--inject-hook", "none"},
		{"nri", "--config", "nonexistent/hook.json", "--hook-config", "/opt/nsrel/hook.json"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 1 || !strings.Contains(errb.String(), "config: ") {
			t.Errorf("Main(%q) = %d, stderr %q; want 1 and the config's error", args, code, errb.String())
		}
	}
}

// TestWatchUnwritableLog checks that watch refuses to start, with one
// clear line, when the audit log cannot be written.
func TestWatchUnwritableLog(t *testing.T) {
	cfgPath, cfg := ctrdtest.HookConfig(t)
	if err := os.Mkdir(cfg.AuditLog, 0o700); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"watch", "--config", cfgPath, "--address", filepath.Join(t.TempDir(), "none.sock")}, &out, &errb); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if msg := errb.String(); !strings.Contains(msg, "cannot write the audit log") || strings.Count(msg, "\n") != 1 {
		t.Errorf("stderr %q, want one line naming the audit log", msg)
	}
}

// TestWatchMissingSocket starts watch at a socket that does not exist: it
// says so, and that it keeps retrying, at once (not after the client's
// 5 s dial timeout), and keeps running.
func TestWatchMissingSocket(t *testing.T) {
	bin := nstest.Tool(t, "nsrel-containerd")
	cfgPath, _ := ctrdtest.HookConfig(t)
	sock := filepath.Join(t.TempDir(), "nonexistent.sock")
	start := time.Now()
	w := launch(t, bin, "watch", "--config", cfgPath, "--address", sock)
	want := []string{"no containerd socket at " + sock + ": no such file or directory", "retrying until it is"}
	// Counted from its first line (a loaded machine may take a while to
	// start it): the message comes in milliseconds, and came only after
	// the 5 s dial timeout before.
	for w.stderr.String() == "" {
		if time.Since(start) > 30*time.Second {
			t.Fatal("watch said nothing in 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	first := time.Now()
	for !strings.Contains(w.stderr.String(), want[0]) || !strings.Contains(w.stderr.String(), want[1]) {
		if time.Since(first) > 3*time.Second {
			t.Fatalf("%v after its first line, stderr lacks %q:\n%s", time.Since(first), want, w.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("said after %v", time.Since(start))
	select {
	case err := <-w.done:
		w.done <- err
		t.Fatalf("watch exited (%v); it should keep retrying:\n%s", err, w.stderr.String())
	default:
	}
	w.stop(t)
}

// TestWatchStderrReaderGone: watch's stderr is a pipe whose reader goes
// away while it runs: it keeps running, and stops cleanly on SIGTERM with
// its stop record. It died of SIGPIPE at its next diagnostic.
func TestWatchStderrReaderGone(t *testing.T) {
	bin := nstest.Tool(t, "nsrel-containerd")
	cfgPath, cfg := ctrdtest.HookConfig(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "watch", "--config", cfgPath, "--address", filepath.Join(t.TempDir(), "none.sock"), "--log-level", "debug", "--metrics-address", "")
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	// The first line, then the reader goes: the retries at debug level
	// write more.
	if _, err := bufio.NewReader(r).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	r.Close()
	audittest.Wait(t, cfg.AuditLog, "the recorder's start", func(rs []*audit.Record) bool { return len(rs) > 0 })
	select {
	case err := <-done:
		done <- err
		t.Fatalf("watch exited (%v) once its stderr's reader was gone", err)
	case <-time.After(2 * time.Second): // retries every 100 ms to 5 s: several writes meanwhile
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("watch after SIGTERM: %v; want exit 0", err)
	}
	done <- nil
	recs := audittest.Records(t, cfg.AuditLog, "")
	if last := recs[len(recs)-1]; last.Stage != recorder.StageRecorderStop {
		t.Errorf("last record %s; want the recorder's stop", last.Stage)
	}
}

// slowEntries is a stderr on which a logger's entries (lines with a
// level= field) take 200 ms to be written, and other lines none.
type slowEntries struct{ nstest.LockedBuffer }

func (w *slowEntries) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("level=")) {
		time.Sleep(200 * time.Millisecond)
	}
	return w.LockedBuffer.Write(p)
}

// TestFatalLineLast: a service that fails after it logged (nri at a
// socket that does not exist) writes its one line of failure to stderr
// after the diagnostics logged before it. The line went straight to
// stderr while the logger still had them queued, so it came before them.
func TestFatalLineLast(t *testing.T) {
	cfgPath, _ := ctrdtest.ConfigWith(t, `"default": {"mode": "audit"}`)
	var out bytes.Buffer
	var errb slowEntries
	args := []string{"nri", "--config", cfgPath, "--socket", filepath.Join(t.TempDir(), "none.sock"), "--inject-hook", "none", "--metrics-address", ""}
	if code := run(args, &out, &errb); code != 1 {
		t.Errorf("exit %d, want 1; stderr:\n%s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	if !strings.Contains(errb.String(), "nsrel-containerd nri starting") || !strings.HasPrefix(lines[len(lines)-1], "nsrel-containerd nri: nri: ") {
		t.Errorf("stderr %q; want the failure last, after the entries logged before it", lines)
	}
}

// TestStandardLoggerThroughService: what a library logs through logrus's
// standard logger (ttrpc under the NRI stub, containerd's client) while
// a service runs goes through the service's logger, to its stderr and
// queue, not straight to the process's stderr, where a stderr nobody
// reads would hold the library (in the NRI plugin's requests too).
func TestStandardLoggerThroughService(t *testing.T) {
	nstest.RestoreStandardLogger(t)
	cfgPath, _ := ctrdtest.ConfigWith(t, `"default": {"mode": "audit"}`)
	var stdout bytes.Buffer
	var stderr nstest.LockedBuffer
	args := []string{"nri", "--config", cfgPath, "--socket", filepath.Join(t.TempDir(), "none.sock"), "--inject-hook", "none", "--metrics-address", ""}
	if code := run(args, &stdout, &stderr); code != 1 {
		t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr.String())
	}
	logrus.WithField("stream", 3).Error("ttrpc: received message on inactive stream")
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(stderr.String(), "inactive stream"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the standard logger's entry is not on the service's stderr:\n%s", stderr.String())
		}
	}
}

// TestWatchWarnsNoBirthTimes: on a file system that gives files no birth
// times, the log's rotated files cannot be indexed (a later file given a
// removed one's inode could pass for it): watch says so at its start, as
// the searches of each start read the whole window there (a review found
// it silent).
func TestWatchWarnsNoBirthTimes(t *testing.T) {
	bin := nstest.Tool(t, "nsrel-containerd")
	mnt := nstest.NoBirthTimes(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hook.json")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `{"version": 1, "audit_log": %q, "log_file": %q, "on_error": "allow", "default": {"name": "open", "mode": "audit"}}`,
		filepath.Join(mnt, "log", "audit.jsonl"), filepath.Join(dir, "hook.log")), 0o600); err != nil {
		t.Fatal(err)
	}
	w := startService(t, "keeps no birth times", bin, "watch", "--config", cfg, "--address", filepath.Join(t.TempDir(), "none.sock"), "--metrics-address", "")
	w.stop(t)
	// Nothing said on a file system that keeps them, also at the first
	// start, the log's directory not made yet (a review found the
	// warning said then, on any file system).
	fresh := filepath.Join(t.TempDir(), "hook.json")
	if err := os.WriteFile(fresh, fmt.Appendf(nil, `{"version": 1, "audit_log": %q, "log_file": %q, "on_error": "allow", "default": {"name": "open", "mode": "audit"}}`,
		filepath.Join(t.TempDir(), "log", "audit.jsonl"), filepath.Join(dir, "hook2.log")), 0o600); err != nil {
		t.Fatal(err)
	}
	w = startService(t, "starting", bin, "watch", "--config", fresh, "--address", filepath.Join(t.TempDir(), "none.sock"), "--metrics-address", "")
	w.stop(t)
	if strings.Contains(w.stderr.String(), "birth times") {
		t.Errorf("watch on a file system that keeps birth times said:\n%s", w.stderr.String())
	}
}
