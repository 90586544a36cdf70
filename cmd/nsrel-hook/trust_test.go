package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// The tests of this file hold the hook binary to its file trust rule
// (package safefile): the config, the audit log's directories, the log,
// its lock and the sealing state must be regular files (directories)
// owned by root or the hook's user, writable by nobody else, with no
// symlink in the last component; otherwise the hook refuses with one
// line naming the path and the reason, and on_error decides. Each test
// breaks one thing in an env that is otherwise trusted (t.TempDir() is
// below /tmp, root's and sticky).

// nobody is the unprivileged user that replaces files in the scenarios.
const nobody = 65534

// TestBinaryUntrustedConfig runs the stages with a config that is not
// trusted: createRuntime refuses (there is no on_error to go by), the
// other stages let the container be, each with one line naming the path
// and the reason, at once (a FIFO or device does not block), and nothing
// is recorded (an untrusted config could name any log).
func TestBinaryUntrustedConfig(t *testing.T) {
	nstest.RequireRoot(t)
	// copyConfig writes the env's config into dir (made with mode) and
	// returns its path there.
	copyConfig := func(t *testing.T, e *env, dir string, mode os.FileMode) string {
		t.Helper()
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(e.config)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "hook.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name string
		// setup breaks the config; it returns the path to run the hook
		// with and the path the refusal names.
		setup  func(t *testing.T, e *env) (config, named string)
		reason string
	}{
		{"owned by uid 65534", func(t *testing.T, e *env) (string, string) {
			if err := os.Chown(e.config, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return e.config, e.config
		}, "owned by uid 65534, not root or uid 0: refusing it"},
		{"group-writable", func(t *testing.T, e *env) (string, string) {
			if err := os.Chmod(e.config, 0o664); err != nil {
				t.Fatal(err)
			}
			return e.config, e.config
		}, "writable by group (mode 0664): refusing it (chmod go-w)"},
		{"in a directory anyone may write", func(t *testing.T, e *env) (string, string) {
			// Anyone could have replaced the file with mv.
			dir := filepath.Join(e.dir, "etc")
			return copyConfig(t, e, dir, 0o777), dir
		}, "writable by group and others (mode 0777): refusing it (chmod go-w)"},
		{"symlink", func(t *testing.T, e *env) (string, string) {
			link := filepath.Join(e.dir, "link.json")
			if err := os.Symlink(e.config, link); err != nil {
				t.Fatal(err)
			}
			return link, link
		}, "refusing a symlink"},
		{"symlinked directory of uid 65534 in a sticky directory", func(t *testing.T, e *env) (string, string) {
			// Anyone may make a link in a sticky directory (/tmp) that
			// points at a trusted directory of their choice.
			etc := filepath.Join(e.dir, "etc")
			copyConfig(t, e, etc, 0o755)
			sticky := filepath.Join(e.dir, "tmp")
			if err := os.Mkdir(sticky, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(sticky, 0o777|os.ModeSticky); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(sticky, "nsrel")
			if err := os.Symlink(etc, link); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(link, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(link, "hook.json"), link
		}, "a symlink owned by uid 65534, not root or uid 0: refusing it"},
		{"FIFO", func(t *testing.T, e *env) (string, string) {
			fifo := filepath.Join(e.dir, "fifo.json")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			return fifo, fifo
		}, "refusing a FIFO"},
		{"/dev/null", func(*testing.T, *env) (string, string) { return "/dev/null", "/dev/null" }, "refusing a character device"},
		{"/dev/zero", func(*testing.T, *env) (string, string) { return "/dev/zero", "/dev/zero" }, "refusing a character device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "hook.json", func(c map[string]any) { c["on_error"] = policy.OnErrorAllow; c["syslog"] = "" })
			config, named := tt.setup(t, e)
			for stage, want := range map[string]int{audit.StageCreateRuntime: 1, audit.StagePoststart: 0, audit.StagePoststop: 0} {
				r := runBinary(t, bytes.NewReader(stateOf(idMember("c"), pidMember(os.Getpid()), bundleMember)), "--config", config, stage)
				if r.code != want {
					t.Errorf("%s: exit %d, want %d (stderr %q)", stage, r.code, want, r.stderr)
				}
				if r.took > policy.DefaultDeadlineMS*time.Millisecond/2 {
					t.Errorf("%s: took %v: the refusal must not wait", stage, r.took)
				}
				oneLine(t, stage, r.stderr)
				if !strings.Contains(r.stderr, "config: "+named+": "+tt.reason) {
					t.Errorf("%s: stderr %q does not say %q", stage, r.stderr, named+": "+tt.reason)
				}
			}
			if _, err := os.Stat(e.log); !os.IsNotExist(err) {
				t.Errorf("audit log %s written from an untrusted config (%v)", e.log, err)
			}
		})
	}
}

// TestBinaryUntrustedAuditFiles runs createRuntime after someone other
// than root got hold of the audit log's directory, the log or its lock:
// the hook refuses to append at once (it does not wait for a lock it
// should not take), says so in one line naming the path and the reason,
// in the diagnostics log and in syslog, and on_error decides.
func TestBinaryUntrustedAuditFiles(t *testing.T) {
	nstest.RequireRoot(t)
	const deadlineMS = 10000
	tests := []struct {
		name string
		// setup runs after a first record; it breaks the log's files
		// and returns the path the refusal names.
		setup  func(t *testing.T, e *env) string
		reason string
	}{
		{"log directory anyone may write", func(t *testing.T, e *env) string {
			// Then the user renamed the log away and made an empty one.
			dir := filepath.Join(e.dir, "logs")
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(e.log, e.log+".away"); err != nil {
				t.Fatal(err)
			}
			e.log += ".away" // the log that must not grow
			f, err := os.OpenFile(filepath.Join(dir, "audit.jsonl"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			if err := os.Chown(f.Name(), nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "writable by group and others (mode 0777): refusing it (chmod go-w)"},
		{"log owned by uid 65534", func(t *testing.T, e *env) string {
			if err := os.Chown(e.log, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return e.log
		}, "owned by uid 65534, not root or uid 0: refusing it"},
		{"lock recreated by uid 65534 and held", func(t *testing.T, e *env) string {
			lock := e.log + ".lock"
			if err := os.Remove(lock); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			if err := f.Chown(nobody, nobody); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
				t.Fatal(err)
			}
			return lock
		}, "owned by uid 65534, not root or uid 0: refusing it"},
		{"log directory to be made below a symlink to a directory anyone may write", func(t *testing.T, e *env) string {
			open := filepath.Join(e.dir, "open")
			if err := os.Mkdir(open, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(open, 0o777); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(e.dir, "logs", "link")
			if err := os.Symlink(open, link); err != nil {
				t.Fatal(err)
			}
			// The log's directory does not exist yet: the hook would make
			// it in the directory others may write.
			e.log = filepath.Join(link, "sub", "audit.jsonl")
			setConfig(t, e, "audit_log", e.log)
			return open
		}, "writable by group and others (mode 0777): refusing it (chmod go-w)"},
	}
	for _, tt := range tests {
		for _, mode := range []string{policy.OnErrorAllow, policy.OnErrorDeny} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				sink := newSyslogSink(t, "unix")
				e := newEnv(t, "hook.json", func(c map[string]any) {
					c["on_error"] = mode
					c["deadline_ms"] = deadlineMS
					c["syslog"] = sink.dest
					c["audit_log"] = filepath.Join(filepath.Dir(c["audit_log"].(string)), "logs", "audit.jsonl")
				})
				e.log = filepath.Join(e.dir, "logs", "audit.jsonl")
				state := stateOf(idMember("first"), pidMember(os.Getpid()), bundleMember)
				if r := runBinary(t, bytes.NewReader(state), "--config", e.config, "createRuntime"); r.code != 0 || r.stderr != "" {
					t.Fatalf("first run: exit %d, stderr %q", r.code, r.stderr)
				}
				named := tt.setup(t, e)
				before := recordCount(t, e.log)

				state = stateOf(idMember("second"), pidMember(os.Getpid()), bundleMember)
				r := runBinary(t, bytes.NewReader(state), "--config", e.config, "createRuntime")
				if r.code != onErrorExit[mode] {
					t.Errorf("exit %d, want %d (stderr %q)", r.code, onErrorExit[mode], r.stderr)
				}
				if r.took > deadlineMS*time.Millisecond/2 {
					t.Errorf("took %v with deadline_ms %d: the refusal must not wait", r.took, deadlineMS)
				}
				oneLine(t, "stderr", r.stderr)
				line := named + ": " + tt.reason
				if !strings.Contains(r.stderr, line) || !strings.Contains(r.stderr, "container not recorded") || !strings.Contains(r.stderr, "on_error="+mode) {
					t.Errorf("stderr %q does not say %q, not recorded and on_error", r.stderr, line)
				}
				if n := recordCount(t, e.log); n != before {
					t.Errorf("%d records in %s, %d before", n, e.log, before)
				}
				msg := unrecorded(t, sink.next(t), r.pid)
				if !strings.Contains(msg, line) || !strings.Contains(msg, "container not recorded") {
					t.Errorf("syslog MSG %q does not say %q", msg, line)
				}
				sink.none(t)
				diag, err := os.ReadFile(filepath.Join(e.dir, "hook.log"))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(diag, []byte("no record written")) || !bytes.Contains(diag, []byte(line)) {
					t.Errorf("diagnostics log:\n%s", diag)
				}
			})
		}
	}
}

// TestBinarySealStateReadable runs the hook after its sealing state
// became readable by others: the container is recorded, unsealed, with
// a seal_error naming the state and the reason, and the hook says so in
// one line; audit verify reports the gap in the seals.
func TestBinarySealStateReadable(t *testing.T) {
	nstest.RequireRoot(t)
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = "" })
	seal := filepath.Join(e.dir, "audit.seal")
	setConfig(t, e, "seal_state", seal)
	if code, _, stderr := run("", "--config", e.config, "audit", "seal-init"); code != 0 {
		t.Fatalf("seal-init: exit %d: %s", code, stderr)
	}
	state := stateOf(idMember("sealed"), pidMember(os.Getpid()), bundleMember)
	if r := runBinary(t, bytes.NewReader(state), "--config", e.config, "createRuntime"); r.code != 0 || r.stderr != "" {
		t.Fatalf("sealed run: exit %d, stderr %q", r.code, r.stderr)
	}
	if err := os.Chmod(seal, 0o644); err != nil {
		t.Fatal(err)
	}
	const reason = "readable by group and others (mode 0644): refusing a secret others can read (chmod go-r)"
	for _, stage := range []string{audit.StageCreateRuntime, audit.StagePoststart, audit.StagePoststop} {
		state := stateOf(idMember("unsealed"), pidMember(os.Getpid()), bundleMember)
		r := runBinary(t, bytes.NewReader(state), "--config", e.config, stage)
		if r.code != 0 {
			t.Errorf("%s: exit %d, want 0 (recorded)", stage, r.code)
		}
		oneLine(t, stage, r.stderr)
		if !strings.Contains(r.stderr, "recorded unsealed") || !strings.Contains(r.stderr, seal+": "+reason) {
			t.Errorf("%s: stderr %q does not say the record is unsealed, and why", stage, r.stderr)
		}
	}
	recs := e.records(t, "")
	if len(recs) != 5 || recs[0].Stage != audit.StageSealStart || recs[1].ContainerID != "sealed" {
		t.Fatalf("records %+v", recs)
	}
	if recs[1].Seal == "" || recs[1].SealError != "" {
		t.Errorf("the first record: seal %q, seal_error %q", recs[1].Seal, recs[1].SealError)
	}
	for _, r := range recs[2:] {
		if r.ContainerID != "unsealed" || r.Seal != "" || !strings.Contains(r.SealError, seal+": "+reason) {
			t.Errorf("seq %d %s: container %q seal %q seal_error %q", r.Seq, r.Stage, r.ContainerID, r.Seal, r.SealError)
		}
	}
	// The chain is intact, but verify does not pass a sealed log whose
	// records stopped being sealed: it names the first and why.
	code, _, stderr := run("", "audit", "verify", e.log)
	if code != 1 || !strings.Contains(stderr, "seq 3: not sealed") || !strings.Contains(stderr, seal+": "+reason) {
		t.Errorf("audit verify: exit %d, stderr %q; want exit 1 naming seq 3 and the seal error", code, stderr)
	}
}

// recordCount is the number of records of the log at path; 0 when its
// directory does not exist.
func recordCount(t *testing.T, path string) int {
	t.Helper()
	if _, err := os.Stat(filepath.Dir(path)); os.IsNotExist(err) {
		return 0
	}
	return len(audittest.Records(t, path, ""))
}

// TestBinarySealInitKeyNotShown: when seal-init cannot print the
// verification key (stdout a full disk, or a pipe nobody reads), it
// exits 1 and writes nothing: no sealing state, no record sealed under a
// key nobody holds; with --replace the old state stays as it was. It
// used to exit 0 with the log sealed under the lost key.
func TestBinarySealInitKeyNotShown(t *testing.T) {
	nstest.RequireRoot(t)
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = "" })
	seal := filepath.Join(e.dir, "audit.seal")
	setConfig(t, e, "seal_state", seal)
	sealInit := func(stdout func(*exec.Cmd) (cleanup func()), args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(hookBin, append([]string{"--config", e.config, "audit", "seal-init"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cleanup := stdout(cmd)
		err := cmd.Run()
		cleanup()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), stderr.String()
	}
	full := func(cmd *exec.Cmd) func() {
		f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout = f
		return func() { f.Close() }
	}
	closedPipe := func(cmd *exec.Cmd) func() {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		cmd.Stdout = w
		return func() { w.Close() }
	}
	var key bytes.Buffer
	kept := func(cmd *exec.Cmd) func() { cmd.Stdout = &key; return func() {} }

	for name, stdout := range map[string]func(*exec.Cmd) func(){"full disk": full, "closed pipe": closedPipe} {
		code, stderr := sealInit(stdout)
		if code != 1 || !strings.Contains(stderr, "could not be shown, sealing not started") {
			t.Errorf("%s: exit %d, stderr %q; want 1 and why", name, code, stderr)
		}
		if _, err := os.Stat(seal); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: sealing state after a key nobody saw: %v", name, err)
		}
		if recs := e.records(t, ""); len(recs) != 0 {
			t.Errorf("%s: %d record(s) written", name, len(recs))
		}
	}

	if code, stderr := sealInit(kept); code != 0 {
		t.Fatalf("seal-init: exit %d: %s", code, stderr)
	}
	state := stateOf(idMember("sealed"), pidMember(os.Getpid()), bundleMember)
	if r := runBinary(t, bytes.NewReader(state), "--config", e.config, "createRuntime"); r.code != 0 {
		t.Fatalf("sealed run: exit %d, stderr %q", r.code, r.stderr)
	}
	before, err := os.ReadFile(seal)
	if err != nil {
		t.Fatal(err)
	}
	if code, stderr := sealInit(full, "--replace"); code != 1 {
		t.Errorf("--replace to a full disk: exit %d, stderr %q; want 1", code, stderr)
	}
	if after, _ := os.ReadFile(seal); !bytes.Equal(before, after) {
		t.Error("--replace whose key was not shown changed the sealing state")
	}
	state = stateOf(idMember("after"), pidMember(os.Getpid()), bundleMember)
	if r := runBinary(t, bytes.NewReader(state), "--config", e.config, "createRuntime"); r.code != 0 {
		t.Fatalf("run after: exit %d, stderr %q", r.code, r.stderr)
	}
	if code, out, stderr := run("", "--config", e.config, "audit", "verify", "--key", shownKey(key.String())); code != 0 {
		t.Errorf("verify with the key shown: exit %d: %s%s", code, out, stderr)
	}
}

// TestBinarySealInitDevNull: seal-init with stdout /dev/null, or closed
// (which Go opens on /dev/null), writes the key where nobody reads it
// and no write fails: it refuses, exit 1, and writes nothing. It used
// to start sealing under the lost key and exit 0.
func TestBinarySealInitDevNull(t *testing.T) {
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = "" })
	seal := filepath.Join(e.dir, "audit.seal")
	setConfig(t, e, "seal_state", seal)
	for name, script := range map[string]string{"/dev/null": `exec "$0" "$@" >/dev/null`, "closed": `exec "$0" "$@" >&-`} {
		cmd := exec.Command("/bin/sh", "-c", script, hookBin, "--config", e.config, "audit", "seal-init")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		if code := cmd.ProcessState.ExitCode(); code != 1 || strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), "stdout is /dev/null") {
			t.Errorf("%s: exit %d, stderr %q; want 1 and one line why", name, code, stderr.String())
		}
		if _, err := os.Stat(seal); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: sealing state after a key nobody saw: %v", name, err)
		}
		if n := recordCount(t, e.log); n != 0 {
			t.Errorf("%s: %d record(s) written", name, n)
		}
	}
}

// sealInit runs `audit seal-init` with e's config and returns the
// verification key it showed.
func sealInit(t *testing.T, e *env) string {
	t.Helper()
	out, err := exec.Command(hookBin, "--config", e.config, "audit", "seal-init").Output()
	if err != nil {
		t.Fatalf("seal-init: %v", err)
	}
	return shownKey(string(out))
}

// shownKey returns the verification key seal-init printed in out.
func shownKey(out string) string {
	key := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "nsrel-seal-v1:") {
			key = l
		}
	}
	return key
}

// createRuntime runs the createRuntime stage of container id (this
// process) with e's config, which must record it.
func createRuntime(t *testing.T, e *env, id string) {
	t.Helper()
	state := stateOf(idMember(id), pidMember(os.Getpid()), bundleMember)
	if r := runBinary(t, bytes.NewReader(state), "--config", e.config, "createRuntime"); r.code != 0 {
		t.Fatalf("%s: exit %d, stderr %q", id, r.code, r.stderr)
	}
}

// TestBinarySealInitReplaceAppendFails runs seal-init --replace whose
// seal-start record cannot be written (the file size limit, RLIMIT_FSIZE,
// fails the append, as a full disk would; its seal-end record is
// written): it exits 1, the sealing state it replaced is put back, and
// the log goes on sealed with the old key, which verifies it. When its
// seal-end record cannot be written, it exits 1 before it replaces the
// state. It used to remove the new state and
// leave the log unsealed from then on. (Without rotation: under a file
// size limit the log rotates at half of it, and the records would fit.)
func TestBinarySealInitReplaceAppendFails(t *testing.T) {
	nstest.RequireRoot(t)
	prlimit := nstest.RequireCmd(t, "prlimit")
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"], c["rotate_bytes"] = "", 0 })
	seal := filepath.Join(e.dir, "audit.seal")
	setConfig(t, e, "seal_state", seal)
	key1 := sealInit(t, e)
	createRuntime(t, e, "before")
	// Room for 40 bytes of the seal-end record: nothing changes (no
	// torn line either: the append checks the limit first).
	st, err := os.Stat(e.log)
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(seal)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prlimit, fmt.Sprintf("--fsize=%d", st.Size()+40), hookBin, "--config", e.config, "audit", "seal-init", "--replace")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	err = cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(stderr.String(), "the record ending the sealing key replaced was not written, sealing not started") {
		t.Fatalf("seal-init --replace, its seal-end record over the size limit: exit %d (%v), stderr %q; want 1 and that sealing was not started", code, err, stderr.String())
	}
	oneLine(t, "seal-init --replace", stderr.String())
	if after, _ := os.ReadFile(seal); !bytes.Equal(before, after) {
		t.Errorf("the sealing state %q; want it as it was, %q", after, before)
	}
	createRuntime(t, e, "after-torn")
	// A seal-init --replace that works: its seal-end record (the line
	// before its seal-start) is as long as the next one's, but for its
	// time (RFC 3339 with up to 9 digits of nanoseconds).
	out, err := exec.Command(hookBin, "--config", e.config, "audit", "seal-init", "--replace").Output()
	if err != nil {
		t.Fatalf("seal-init --replace: %v", err)
	}
	key := shownKey(string(out))
	data, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
	sealEnd := int64(len(lines[len(lines)-2]))
	if !strings.Contains(lines[len(lines)-2], `"stage":"seal-end"`) {
		t.Fatalf("the line before the seal-start record: %q; want the seal-end record", lines[len(lines)-2])
	}
	createRuntime(t, e, "before-2")
	if before, err = os.ReadFile(seal); err != nil {
		t.Fatal(err)
	}
	if st, err = os.Stat(e.log); err != nil {
		t.Fatal(err)
	}
	// Room for the seal-end record and 40 bytes (31 to 49) of the
	// seal-start record, not for all of it.
	cmd = exec.Command(prlimit, fmt.Sprintf("--fsize=%d", st.Size()+sealEnd+40), hookBin, "--config", e.config, "audit", "seal-init", "--replace")
	stderr.Reset()
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	err = cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(stderr.String(), "the sealing state replaced was put back") {
		t.Fatalf("seal-init --replace over the size limit: exit %d (%v), stderr %q; want 1 and that the state was put back", code, err, stderr.String())
	}
	oneLine(t, "seal-init --replace", stderr.String())
	// The state replaced, one key on: it sealed the seal-end record.
	after, _ := os.ReadFile(seal)
	bf, af := strings.Fields(string(before)), strings.Fields(string(after))
	if epoch, err := strconv.ParseUint(bf[3], 10, 64); err != nil || len(af) != 5 || af[2] != bf[2] || af[3] != fmt.Sprintf("%020d", epoch+1) {
		t.Errorf("the sealing state %q; want the one replaced (%q), one key on", after, before)
	}
	t.Logf("seal-init --replace: %s", stderr.String())
	createRuntime(t, e, "after")
	recs := e.records(t, "")
	if last := recs[len(recs)-1]; last.ContainerID != "after" || last.Seal == "" || last.SealError != "" {
		t.Errorf("the record after: container %q seal %q seal_error %q", last.ContainerID, last.Seal, last.SealError)
	}
	if code, out, stderr := run("", "--config", e.config, "audit", "verify", "--key", key1, "--key", key); code != 0 {
		t.Errorf("verify with the old keys: exit %d: %s%s", code, out, stderr)
	}
}

// garble appends a line that is no record to the log at path, as a
// crash or an edit leaves one: the next append records it as damaged.
func garble(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("zzzz damaged\n"); err != nil {
		t.Fatal(err)
	}
}

// damageSeq returns the seq of the first damage record in the log at
// path (its current file), for audit ack.
func damageSeq(t *testing.T, path string) string {
	t.Helper()
	for _, r := range audittest.Records(t, path, "") {
		if r.Stage == audit.StageDamaged {
			return strconv.FormatUint(r.Seq, 10)
		}
	}
	t.Fatalf("no damage record in %s", path)
	return ""
}

// rotatedFiles lists the rotated files of e's log, oldest first.
func rotatedFiles(e *env) []string {
	files, _ := filepath.Glob(e.log + ".[0-9]*")
	return files
}

// TestAuditAck acknowledges recorded damage in the config's sealed log
// and in another log: the other log is written without the config's
// sealing state and checkpoints (one key sealed two logs, and the main
// log failed verify), and a sealed other log is refused.
func TestAuditAck(t *testing.T) {
	nstest.RequireRoot(t)
	e := newEnv(t, "hook.json", nil)
	seal := filepath.Join(e.dir, "audit.seal")
	checkpoints := filepath.Join(e.dir, "checkpoints.jsonl")
	setConfig(t, e, "seal_state", seal)
	key := sealInit(t, e)
	verify := func(args ...string) (int, string) {
		code, out, stderr := run("", append([]string{"--config", e.config, "audit", "verify"}, args...)...)
		return code, out + stderr
	}

	createRuntime(t, e, "a1")
	garble(t, e.log)
	createRuntime(t, e, "a2")
	if code, out := verify("--key", key); code == 0 || !strings.Contains(out, "not acknowledged") {
		t.Fatalf("verify with unacknowledged damage: exit %d: %s", code, out)
	}
	if code, out, stderr := run("", "--config", e.config, "audit", "ack", damageSeq(t, e.log), "--reason", "checked"); code != 0 {
		t.Fatalf("ack: exit %d: %s%s", code, out, stderr)
	}
	if code, out := verify("--key", key); code != 0 {
		t.Fatalf("verify after the ack: exit %d: %s", code, out)
	}
	// A second ack of it is refused: it hid the first, whose reason
	// verify no longer said.
	before, _ := os.ReadFile(e.log)
	if code, _, stderr := run("", "--config", e.config, "audit", "ack", damageSeq(t, e.log), "--reason", "again"); code != 1 ||
		!strings.Contains(stderr, "is acknowledged already, by seq ") || !strings.Contains(stderr, `("checked"): nothing written`) {
		t.Errorf("a second ack: exit %d, stderr %q; want it refused, naming the first", code, stderr)
	}
	if after, _ := os.ReadFile(e.log); !bytes.Equal(before, after) {
		t.Errorf("a second ack wrote %q", after[len(before):])
	}

	// Another, unsealed log.
	other := filepath.Join(t.TempDir(), "other.jsonl")
	ol, err := audit.Open(other, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ol.Append(ctx, &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StagePoststop, ContainerID: "b1"})
	garble(t, other)
	ol.Append(ctx, &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StagePoststop, ContainerID: "b2"})
	stateBefore, _ := os.ReadFile(seal)
	cpBefore, _ := os.ReadFile(checkpoints)
	if code, out, stderr := run("", "--config", e.config, "audit", "ack", damageSeq(t, other), "--reason", "checked", other); code != 0 {
		t.Fatalf("ack of another log: exit %d: %s%s", code, out, stderr)
	}
	if after, _ := os.ReadFile(seal); !bytes.Equal(stateBefore, after) {
		t.Error("the ack of another log advanced the config's sealing state")
	}
	if after, _ := os.ReadFile(checkpoints); !bytes.Equal(cpBefore, after) {
		t.Errorf("the ack of another log wrote the config's checkpoints:\n%s", after[len(cpBefore):])
	}
	for _, r := range audittest.Records(t, other, "") {
		if r.Seal != "" {
			t.Errorf("seq %d of the other log sealed with the config's key", r.Seq)
		}
	}
	if code, out := verify(other); code != 0 {
		t.Errorf("verify of the other log: exit %d: %s", code, out)
	}
	createRuntime(t, e, "a3")
	if code, out := verify("--key", key, "--checkpoints", checkpoints); code != 0 {
		t.Errorf("verify of the config's log after the other's ack: exit %d: %s", code, out)
	}

	// Another, sealed log: refused.
	sealedLog := filepath.Join(t.TempDir(), "sealed.jsonl")
	sl, err := audit.Open(sealedLog, audit.Options{SealState: filepath.Join(filepath.Dir(sealedLog), "own.seal")})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := sl.StartSealing(ctx, false); err != nil {
		t.Fatal(err)
	}
	garble(t, sealedLog)
	sl.Append(ctx, &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StagePoststop, ContainerID: "c1"})
	code, _, stderr := run("", "--config", e.config, "audit", "ack", damageSeq(t, sealedLog), "--reason", "checked", sealedLog)
	if code != 1 || !strings.Contains(stderr, "is sealed and is not the audit_log of") {
		t.Errorf("ack of another sealed log: exit %d, stderr %q; want it refused", code, stderr)
	}
	// Its current file empty (a crash right after a rotation's rename):
	// the ack looked at the current file only and wrote unsealed.
	if err := os.Rename(sealedLog, sealedLog+".000000000001"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sealedLog, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = run("", "--config", e.config, "audit", "ack", damageSeq(t, sealedLog+".000000000001"), "--reason", "checked", sealedLog)
	if code != 1 || !strings.Contains(stderr, "is sealed and is not the audit_log of") {
		t.Errorf("ack of another sealed log with an empty current file: exit %d, stderr %q; want it refused", code, stderr)
	}
	if fi, err := os.Stat(sealedLog); err != nil || fi.Size() != 0 {
		t.Errorf("ack of another sealed log with an empty current file wrote to it (%v)", err)
	}
}

// TestAckNamedLog acknowledges damage in a LOG that is not the config's.
// verify's command to acknowledge it names that LOG (quoted for a
// shell): it named none, and the command acknowledged the same seq of
// the config's log, with the reason meant for the other. A rotated file
// of a log, which verify names as where damage is, is refused as LOG:
// the ack went into it, out of its log's chain and under a lock of its
// own, and the log failed verify for good.
func TestAckNamedLog(t *testing.T) {
	nstest.RequireRoot(t)
	e := newEnv(t, "hook.json", nil)
	createRuntime(t, e, "a1")
	garble(t, e.log)
	createRuntime(t, e, "a2")

	other := filepath.Join(t.TempDir(), "other log.jsonl")
	ol, err := audit.Open(other, audit.Options{RotateBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ol.Append(ctx, &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StagePoststop, ContainerID: "b1"})
	garble(t, other)
	for _, id := range []string{"b2", "b3"} {
		ol.Append(ctx, &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StagePoststop, ContainerID: id})
	}
	rotated, _ := filepath.Glob(other + ".[0-9]*")
	if len(rotated) == 0 {
		t.Fatal("no rotated file")
	}
	seq, damageFile := "", ""
	for _, f := range append(rotated, other) {
		for _, r := range audittest.Records(t, f, "") {
			if r.Stage == audit.StageDamaged {
				seq, damageFile = strconv.FormatUint(r.Seq, 10), f
			}
		}
	}
	if seq != damageSeq(t, e.log) {
		t.Fatalf("damage at seq %s of the other log, %s of the config's: want the same seq", seq, damageSeq(t, e.log))
	}

	snapshot := func() map[string]string {
		files := map[string]string{}
		names, _ := filepath.Glob(filepath.Join(filepath.Dir(other), "*"))
		for _, n := range names {
			b, _ := os.ReadFile(n)
			files[n] = string(b)
		}
		return files
	}
	before := snapshot()
	for _, f := range []string{rotated[0], other + ".lock"} {
		code, _, stderr := run("", "--config", e.config, "audit", "ack", seq, "--reason", "checked", f)
		if code != 1 || !strings.Contains(stderr, " of the audit log "+other+": give that log as LOG") {
			t.Errorf("ack in %s: exit %d, stderr %q; want it refused, naming the log", f, code, stderr)
		}
	}
	if diff := cmp.Diff(before, snapshot()); diff != "" {
		t.Errorf("refused acks changed the other log's directory (-before +after):\n%s", diff)
	}
	// The damage record's file rotated, and the current file moved
	// aside (a crash between a rotation's rename and the new file): the
	// rotated file was taken for a log of its own, the ack appended to
	// it, and the log failed verify for good. Its lock tells it is the
	// log's.
	ol.Append(ctx, &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StagePoststop, ContainerID: "b4"})
	rotated, _ = filepath.Glob(other + ".[0-9]*")
	for _, f := range rotated {
		for _, r := range audittest.Records(t, f, "") {
			if strconv.FormatUint(r.Seq, 10) == seq {
				damageFile = f
			}
		}
	}
	if damageFile == other {
		t.Fatal("the damage record did not rotate")
	}
	if err := os.Rename(other, other+".aside"); err != nil {
		t.Fatal(err)
	}
	before = snapshot()
	code, _, stderr := run("", "--config", e.config, "audit", "ack", seq, "--reason", "checked", damageFile)
	if code != 1 || !strings.Contains(stderr, " of the audit log "+other+": give that log as LOG") {
		t.Errorf("ack in %s, the current file moved aside: exit %d, stderr %q; want it refused, naming the log", damageFile, code, stderr)
	}
	if diff := cmp.Diff(before, snapshot()); diff != "" {
		t.Errorf("the refused ack changed the other log's directory (-before +after):\n%s", diff)
	}
	if err := os.Rename(other+".aside", other); err != nil {
		t.Fatal(err)
	}
	// A hard link to the rotated file, elsewhere: its name tells
	// nothing; it was acknowledged in, and the log failed verify.
	link := filepath.Join(t.TempDir(), "r.jsonl")
	if err := os.Link(damageFile, link); err != nil {
		t.Fatal(err)
	}
	before = snapshot()
	code, _, stderr = run("", "--config", e.config, "audit", "ack", seq, "--reason", "checked", link)
	if code != 1 || !strings.Contains(stderr, "has 2 names (hard links)") {
		t.Errorf("ack in a hard link to %s: exit %d, stderr %q; want it refused", damageFile, code, stderr)
	}
	if diff := cmp.Diff(before, snapshot()); diff != "" {
		t.Errorf("the refused ack changed the other log's directory (-before +after):\n%s", diff)
	}
	os.Remove(link)

	code, _, stderr = run("", "--config", e.config, "audit", "verify", other)
	want := "`nsrel-hook --config " + e.config + " audit ack " + seq + " --reason TEXT '" + other + "'`"
	if code != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("verify of the other log: exit %d, stderr %q; want the command %s", code, stderr, want)
	}
	if code, out, stderr := run("", "--config", e.config, "audit", "ack", seq, "--reason", "checked", other); code != 0 {
		t.Fatalf("the ack verify gave: exit %d: %s%s", code, out, stderr)
	}
	if code, out, stderr := run("", "--config", e.config, "audit", "verify", other); code != 0 {
		t.Errorf("verify of the other log after its ack: exit %d: %s%s", code, out, stderr)
	}
	// A copy: named, with the caveat (a copy cannot be told from a log
	// whose lock was removed, nor one with its lock copied from a
	// writer's); a collector's is the node's to acknowledge, in its own
	// log.
	cp := filepath.Join(t.TempDir(), "copy.jsonl")
	data, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for args, want := range map[string]string{
		cp:                   "then `nsrel-hook --config " + e.config + " audit ack " + seq + " --reason TEXT " + cp + "` (for a copy of a log: in the original, on the node that writes it)",
		"--shipped\x00" + cp: "then on the node, `nsrel-hook [--config FILE] audit ack " + seq + " --reason TEXT [LOG]` (in the log these files copy)",
	} {
		code, _, stderr = run("", append([]string{"--config", e.config, "audit", "verify"}, strings.Split(args, "\x00")...)...)
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("verify %q of a copy: exit %d, stderr %q; want %s", args, code, stderr, want)
		}
	}
	// The config's log: still not acknowledged, and its command names
	// no LOG.
	code, _, stderr = run("", "--config", e.config, "audit", "verify")
	if want := "`nsrel-hook --config " + e.config + " audit ack " + seq + " --reason TEXT`"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("verify of the config's log: exit %d, stderr %q; want %s", code, stderr, want)
	}
}

// TestRootlessRunStepsAside runs the hook as a rootless runtime does
// with the host's hooks.d: as UID 1000, in a user namespace of its own
// where it is root and the host's root is not mapped. Root's config
// then seems owned by an unmapped UID (65534), which no trust check can
// take; the hook used to refuse every container of every rootless
// podman on the host. It now steps aside: exit 0, one line, no record
// (the user could leave the hook out anyway). As root, the same config
// records as always.
func TestRootlessRunStepsAside(t *testing.T) {
	nstest.RequireRoot(t)
	setpriv, unshare := nstest.RequireCmd(t, "setpriv"), nstest.RequireCmd(t, "unshare")
	e := newEnv(t, "hook.json", nil)
	if err := os.Chmod(filepath.Dir(e.dir), 0o711); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid", "1000", "--regid", "1000", "--clear-groups", "--",
		unshare, "--user", "--map-root-user", "--", hookBin, "--config", e.config, "createRuntime")
	cmd.Stdin = strings.NewReader(shipState("rootless", "creating", "web"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil || !strings.Contains(stderr.String(), "nsrel-hook: createRuntime: a rootless run (host root is not mapped in this user namespace)") || strings.Count(stderr.String(), "\n") != 1 {
		t.Fatalf("rootless run: %v, stderr %q; want exit 0 and one line", err, stderr.String())
	}
	if _, err := os.Stat(e.log); !os.IsNotExist(err) {
		t.Errorf("the rootless run wrote the audit log: %v", err)
	}
	// A config of the namespace's own (its root's: UID 1000 outside)
	// that fails the checks is refused there as anywhere: a runtime
	// running as root in a container's user namespace does not step
	// aside.
	own := filepath.Join(e.dir, "own")
	if err := os.Mkdir(own, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(own, "hook.json"), data, 0o664); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(own, "hook.json"), 0o664)
	if err := os.Chown(own, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(own, "hook.json"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(setpriv, "--reuid", "1000", "--regid", "1000", "--clear-groups", "--",
		unshare, "--user", "--map-root-user", "--", hookBin, "--config", filepath.Join(own, "hook.json"), "createRuntime")
	cmd.Stdin = strings.NewReader(shipState("nested", "creating", "web"))
	stderr.Reset()
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || strings.Contains(stderr.String(), "rootless") || !strings.Contains(stderr.String(), "not trusted") {
		t.Errorf("an untrusted config of the namespace's own: %v, stderr %q; want a refusal", err, stderr.String())
	}
	if code, _, stderr := runBin(t, shipState("rootful", "creating", "web"), "--config", e.config, "createRuntime"); code != 0 || stderr != "" {
		t.Errorf("as root: exit %d, stderr %q", code, stderr)
	}
	if recs := audittest.Records(t, e.log, ""); len(recs) != 1 || recs[0].ContainerID != "rootful" {
		t.Errorf("records %+v, want the rootful container's", recs)
	}
}

// TestBrokenConfigKeepsSealedLog: a config with a syntax error before its
// seal_state (the salvage of the log's path stops there) wrote the
// run's record unsealed into the sealed log, which then failed verify
// for good (no ack covers an unsealed record). The record is not written
// now; the run says so, as any unrecorded run, and the log verifies.
func TestBrokenConfigKeepsSealedLog(t *testing.T) {
	nstest.RequireRoot(t)
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = "" })
	key := sealInit(t, e)
	createRuntime(t, e, "before")
	good, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(good), `"on_error": "allow",`, `"on_error": "allow"`, 1)
	if broken == string(good) || !strings.Contains(broken, `"seal_state"`) {
		t.Fatalf("cannot break the config:\n%s", good)
	}
	if err := os.WriteFile(e.config, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, stage := range []string{audit.StageCreateRuntime, audit.StagePoststop} {
		state := stateOf(idMember("broken-"+stage), pidMember(os.Getpid()), bundleMember)
		if r := runBinary(t, bytes.NewReader(state), "--config", e.config, stage); !strings.Contains(r.stderr, "JSON syntax error") {
			t.Errorf("%s with a broken config: exit %d, stderr %q", stage, r.code, r.stderr)
		}
	}
	diag, _ := os.ReadFile(filepath.Join(e.dir, "hook.log"))
	if n := strings.Count(string(diag), "cannot record the config error"); n != 2 || !strings.Contains(string(diag), "an unsealed record would fail verify") {
		t.Errorf("diagnostics do not say twice that the config error cannot be recorded in the sealed log:\n%s", diag)
	}
	if recs := e.records(t, ""); len(recs) != 2 { // seal-start, before
		t.Errorf("%d records after the broken runs, want 2", len(recs))
	}
	if err := os.WriteFile(e.config, good, 0o644); err != nil {
		t.Fatal(err)
	}
	createRuntime(t, e, "after")
	if code, out, stderr := run("", "--config", e.config, "audit", "verify", "--key", key); code != 0 {
		t.Errorf("verify after the broken runs: exit %d: %s%s", code, out, stderr)
	}
	// Sealing turned off (no seal_state): the runs are recorded
	// unsealed, saying why, and so is a broken config's, since the log
	// no longer ends sealed.
	setConfig(t, e, "seal_state", "")
	createRuntime(t, e, "unsealed")
	good, err = os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	broken = strings.Replace(string(good), `"on_error": "allow",`, `"on_error": "allow"`, 1)
	if err := os.WriteFile(e.config, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	state := stateOf(idMember("broken-unsealed"), pidMember(os.Getpid()), bundleMember)
	runBinary(t, bytes.NewReader(state), "--config", e.config, audit.StageCreateRuntime)
	if recs := e.records(t, "broken-unsealed"); len(recs) != 1 {
		t.Errorf("a broken config's run after unsealed records: %d records, want 1", len(recs))
	}
}

// TestAckOldDamage: audit ack searched only the current file and the four
// newest rotated ones, so damage further back (kept for ever with
// keep_files 0) could never be acknowledged and verify failed for good.
func TestAckOldDamage(t *testing.T) {
	nstest.RequireRoot(t)
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = ""; c["rotate_bytes"] = 4096 })
	key := sealInit(t, e)
	createRuntime(t, e, "d0")
	garble(t, e.log)
	createRuntime(t, e, "d1") // records the damage
	seq := damageSeq(t, e.log)
	for i := 0; len(rotatedFiles(e)) <= audit.SearchFiles+1; i++ {
		createRuntime(t, e, fmt.Sprint("later-", i))
	}
	if code, out, stderr := run("", "--config", e.config, "audit", "ack", seq, "--reason", "checked: power loss"); code != 0 {
		t.Fatalf("ack of damage %d rotated files back: exit %d: %s%s", audit.SearchFiles+2, code, out, stderr)
	}
	if code, out, stderr := run("", "--config", e.config, "audit", "verify", "--key", key); code != 0 {
		t.Errorf("verify after the ack: exit %d: %s%s", code, out, stderr)
	}
}

// TestAckNotDamage: audit ack said "not a damage record" of a log that
// does not exist, a seq past its end and one whose file retention
// removed; it says which. The config's sealed log named through a
// symlinked directory was refused as "not the audit_log" (paths were
// compared, not files): it is acknowledged, sealed with its state.
func TestAckNotDamage(t *testing.T) {
	nstest.RequireRoot(t)
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = ""; c["rotate_bytes"] = 4096; c["keep_files"] = 1 })
	key := sealInit(t, e)
	ack := func(args ...string) (int, string) {
		t.Helper()
		code, out, stderr := run("", append([]string{"--config", e.config, "audit", "ack", "--reason", "checked"}, args...)...)
		if code != 0 {
			oneLine(t, "audit ack", stderr)
		}
		return code, out + stderr
	}
	createRuntime(t, e, "d0")
	garble(t, e.log)
	createRuntime(t, e, "d1") // records the damage
	seq := damageSeq(t, e.log)
	recs := e.records(t, "")
	last := recs[len(recs)-1].Seq

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"1"}, "seq 1 of " + e.log + " is a seal-start record, not a damage record"},
		// It said "is not a damage record" of a container's record.
		{[]string{"2"}, "seq 2 of " + e.log + " is a container's record, not a damage record"},
		{[]string{fmt.Sprint(last + 1)}, fmt.Sprintf("seq %d is past the last record of %s (seq %d)", last+1, e.log, last)},
		{[]string{seq, filepath.Join(e.dir, "none.jsonl")}, filepath.Join(e.dir, "none.jsonl") + " does not exist"},
	} {
		if code, out := ack(c.args...); code != 1 || !strings.Contains(out, c.want) {
			t.Errorf("ack %q: exit %d, %q; want 1 and %q", c.args, code, out, c.want)
		}
	}

	// Through a symlinked directory: the config's log, acknowledged
	// with its sealing state.
	link := filepath.Join(t.TempDir(), "logs")
	if err := os.Symlink(e.dir, link); err != nil {
		t.Fatal(err)
	}
	if code, out := ack(seq, filepath.Join(link, filepath.Base(e.log))); code != 0 {
		t.Fatalf("ack through a symlinked directory: exit %d: %s", code, out)
	}
	if code, out, stderr := run("", "--config", e.config, "audit", "verify", "--key", key); code != 0 {
		t.Fatalf("verify after the ack: exit %d: %s%s", code, out, stderr)
	}

	// The config's log with a second name elsewhere (a backup's hard
	// link): still the config's, given or not (the ack refused it).
	hard := filepath.Join(t.TempDir(), "backup.jsonl")
	if err := os.Link(e.log, hard); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"1"}, {"1", e.log}} {
		if code, out := ack(args...); code != 1 || strings.Contains(out, "has 2 names") || !strings.Contains(out, "is a seal-start record") {
			t.Errorf("ack %q with a hard link to the config's log elsewhere: exit %d, %q; want the seq judged", args, code, out)
		}
	}
	os.Remove(hard)

	// Retention removes the file the damage record was in.
	n, _ := strconv.ParseUint(seq, 10, 64)
	for i := 0; ; i++ {
		if r := e.records(t, ""); len(r) > 0 && r[0].Seq > n+2 && len(rotatedFiles(e)) == 1 {
			if f := audittest.Records(t, rotatedFiles(e)[0], ""); len(f) > 0 && f[0].Seq > n {
				break
			}
		}
		if i > 200 {
			t.Fatal("retention removed no file after 200 containers")
		}
		createRuntime(t, e, fmt.Sprint("later-", i))
	}
	if code, out := ack(seq); code != 1 || !strings.Contains(out, "was in a rotated file that retention removed (seq ") {
		t.Errorf("ack of damage retention removed: exit %d, %q", code, out)
	}
}

// TestAckUnderAnotherConfig: audit ack of the sealed log with a config
// that names it without seal_state, or with a seal_state that is
// missing, wrote its record unsealed (exit 0), and verify failed for
// good; and it rotated and removed files by that config's rotate_bytes
// and keep_files (keep_files 1 removed the file of the damage it
// acknowledged). It refuses, writing nothing, and neither rotates nor
// removes a file.
func TestAckUnderAnotherConfig(t *testing.T) {
	nstest.RequireRoot(t)
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = ""; c["rotate_bytes"] = 8192; c["keep_files"] = 0 })
	key := sealInit(t, e)
	createRuntime(t, e, "d0")
	garble(t, e.log)
	createRuntime(t, e, "d1") // records the damage
	seq := damageSeq(t, e.log)
	size := func() int64 {
		st, err := os.Stat(e.log)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	for i := 0; len(rotatedFiles(e)) < 3 || size() <= 4096; i++ {
		createRuntime(t, e, fmt.Sprint("later-", i))
	}
	other := func(edit func(c map[string]any)) string {
		path := filepath.Join(t.TempDir(), "other.json")
		editConfig(t, e.config, path, edit)
		return path
	}
	for name, cfg := range map[string]string{
		"no seal_state":      other(func(c map[string]any) { delete(c, "seal_state") }),
		"missing seal_state": other(func(c map[string]any) { c["seal_state"] = filepath.Join(e.dir, "none.seal") }),
	} {
		before := size()
		code, out, stderr := run("", "--config", cfg, "audit", "ack", seq, "--reason", "checked")
		if code != 1 || !strings.Contains(stderr, "cannot seal it") || size() != before {
			t.Errorf("%s: ack: exit %d, %s%s, the log %d -> %d bytes; want 1, that it cannot seal, nothing written", name, code, out, stderr, before, size())
		}
		oneLine(t, "audit ack", stderr)
	}

	files := rotatedFiles(e)
	keep1 := other(func(c map[string]any) { c["keep_files"] = 1; c["rotate_bytes"] = 4096 })
	if code, out, stderr := run("", "--config", keep1, "audit", "ack", seq, "--reason", "checked"); code != 0 {
		t.Fatalf("ack with keep_files 1: exit %d: %s%s", code, out, stderr)
	}
	if after := rotatedFiles(e); !slices.Equal(files, after) {
		t.Errorf("ack with rotate_bytes 4096 (the current file larger), keep_files 1: rotated files %q -> %q; want them as they were", files, after)
	}
	if code, out, stderr := run("", "--config", e.config, "audit", "verify", "--key", key); code != 0 {
		t.Errorf("verify after the ack: exit %d: %s%s", code, out, stderr)
	}
	// The log's last record unsealed, its sealing state gone (a hook
	// wrote on, saying so): the ack wrote unsealed too. (Of new damage:
	// the first is acknowledged, and a second ack of it is refused.)
	garble(t, e.log)
	createRuntime(t, e, "d2")
	for _, r := range audittest.Records(t, e.log, "") {
		if r.Stage == audit.StageDamaged {
			seq = strconv.FormatUint(r.Seq, 10) // the last
		}
	}
	seal := filepath.Join(e.dir, "audit.seal")
	if err := os.Rename(seal, seal+".aside"); err != nil {
		t.Fatal(err)
	}
	createRuntime(t, e, "unsealed")
	before := size()
	if code, _, stderr := run("", "--config", e.config, "audit", "ack", seq, "--reason", "again"); code != 1 || !strings.Contains(stderr, "cannot seal it") || size() != before {
		t.Errorf("ack after an unsealed record, the state missing: exit %d, %s, the log %d -> %d bytes; want 1, that it cannot seal, nothing written", code, stderr, before, size())
	}
}

// TestBinaryFileSizeLimit runs the hook under a file size limit
// (RLIMIT_FSIZE: the runtime's or its unit's) below the size of the log:
// the write stopped at the limit and left a torn line (fallocate does
// not enforce the limit), and with the limit below rotate_bytes every
// append failed from then on, since the file never grew to rotate. The
// log rotates at half the limit now, and an append that cannot fit even
// so fails whole, saying why.
func TestBinaryFileSizeLimit(t *testing.T) {
	nstest.RequireRoot(t)
	prlimit := nstest.RequireCmd(t, "prlimit")
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"], c["on_error"] = "", "deny" })
	for i := range 3 {
		createRuntime(t, e, fmt.Sprint("before-", i))
	}
	st, err := os.Stat(e.log)
	if err != nil {
		t.Fatal(err)
	}
	limited := func(id string, limit int64) (int, string) {
		t.Helper()
		return createRuntimeLimited(t, e, prlimit, id, limit)
	}
	// Room for 100 bytes more: the file is rotated, the record goes in
	// the new one.
	if code, stderr := limited("limited", st.Size()+100); code != 0 || len(e.records(t, "limited")) != 1 {
		t.Errorf("createRuntime with room for 100 bytes: exit %d, %d record(s); want 0 and its record\n%s", code, len(e.records(t, "limited")), stderr)
	}
	if _, err := os.Stat(e.log + ".000000000001"); err != nil {
		t.Errorf("the file before the limited append: %v; want it rotated", err)
	}
	// Room for no record even in a new file: nothing written. (The
	// diagnostics log made longer than the limit first.)
	if err := os.WriteFile(filepath.Join(e.dir, "hook.log"), bytes.Repeat([]byte("earlier entry\n"), 40), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stderr := limited("too-small", 300)
	if code != 1 || !strings.Contains(stderr, "the file size limit of this process (RLIMIT_FSIZE, 300 bytes) leaves no room for ") || len(e.records(t, "too-small")) != 0 {
		t.Errorf("createRuntime with room for 300 bytes: exit %d, %d record(s); want 1 (on_error deny), none, and why\n%s", code, len(e.records(t, "too-small")), stderr)
	}
	// The diagnostics log, past the limit too, is said once, in the
	// hook's words (not logrus's at every entry).
	if lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "nsrel-hook: diagnostics log: the file size limit of this process (RLIMIT_FSIZE, 300 bytes) leaves no room for ") || !strings.HasSuffix(lines[0], "file too large (entries dropped)") {
		t.Errorf("stderr of the limited hook: %q; want the diagnostics log's failure once, then why the record was not written", stderr)
	}
	if data, err := os.ReadFile(filepath.Join(e.dir, "hook.log")); err != nil || !bytes.Equal(data, bytes.Repeat([]byte("earlier entry\n"), 40)) {
		t.Errorf("the diagnostics log past the limit: %v, %d bytes; want it as it was (no part of an entry)", err, len(data))
	}
	createRuntime(t, e, "after")
	// Rotations that must also record retention: with many rotated
	// files to remove (keep_files set late), their retention records and
	// the record did not fit under the limit, every rotation failed and
	// the files piled up.
	setConfig(t, e, "keep_files", 0)
	for i := range 30 {
		if code, stderr := limited(fmt.Sprint("pile-", i), 2400); code != 0 {
			t.Fatalf("createRuntime under a limit of 2400 bytes: exit %d\n%s", code, stderr)
		}
	}
	setConfig(t, e, "keep_files", 2)
	for i := range 60 {
		if code, stderr := limited(fmt.Sprint("retained-", i), 8000); code != 0 {
			t.Fatalf("createRuntime %d under a limit of 8000 bytes, keep_files 2: exit %d\n%s", i, code, stderr)
		}
	}
	if files, _ := filepath.Glob(e.log + ".0*"); len(files) > 2 {
		t.Errorf("%d rotated files after the limited appends; want keep_files 2", len(files))
	}
	// The checkpoints file near the limit: not written past it.
	// (The record goes in under a limit of 6000 bytes, rotating at 3000;
	// the checkpoint of it, about 220 bytes, does not fit after the
	// 5,900 bytes of the checkpoints file, padded with a line that is
	// no checkpoint.)
	setConfig(t, e, "checkpoints", map[string]any{"every_records": 1, "file": filepath.Join(e.dir, "checkpoints.jsonl"), "syslog": []any{}})
	createRuntime(t, e, "checkpointed")
	cps := filepath.Join(e.dir, "checkpoints.jsonl")
	f, err := os.OpenFile(cps, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(append(bytes.Repeat([]byte("x"), int(5900-fileSize(t, cps)-1)), '\n')); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if code, stderr := limited("checkpoint-limited", 6000); code != 0 || len(e.records(t, "checkpoint-limited")) != 1 {
		t.Errorf("createRuntime under a limit of 6000 bytes: exit %d; want 0 and its record\n%s", code, stderr)
	}
	if data, _ := os.ReadFile(cps); len(data) != 5900 || data[len(data)-1] != '\n' {
		t.Errorf("the checkpoints file after a limited append: %d bytes, want 5,900 ended by a newline: part of a checkpoint written", len(data))
	}
	for _, r := range e.records(t, "") {
		if r.Stage == audit.StageTornTail || r.Stage == audit.StageDamaged {
			t.Errorf("seq %d: a %s record: a limited append left part of a line", r.Seq, r.Stage)
		}
	}
	if code, out, stderr := run("", "--config", e.config, "audit", "verify"); code != 0 {
		t.Errorf("verify: exit %d\n%s%s", code, out, stderr)
	}
}

// TestBinaryLateSealsUnderLimit: under a file size limit, the append
// that seals a long stretch late (about 90 bytes a record) did not fit
// after what the current file held, below the size at which it rotates:
// the same append failed again and again, every container refused (or
// unrecorded) until the limit was raised. It rotates first now.
func TestBinaryLateSealsUnderLimit(t *testing.T) {
	nstest.RequireRoot(t)
	prlimit := nstest.RequireCmd(t, "prlimit")
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"], c["on_error"] = "", "deny" })
	key := sealInit(t, e)
	limited := func(id string) (int, string) {
		t.Helper()
		return createRuntimeLimited(t, e, prlimit, id, 8000)
	}
	seal := filepath.Join(e.dir, "audit.seal")
	if err := os.Rename(seal, seal+".aside"); err != nil {
		t.Fatal(err)
	}
	// Records unsealed (about 1,260 bytes each: the files rotate at
	// 4000 bytes) until there are 40 or more and the current file holds
	// more than 3,200 bytes: their late seals (about 95 bytes each) and
	// the record then do not fit after them under the limit.
	n := 0
	for ; n < 40 || fileSize(t, e.log) <= 3200; n++ {
		if n == 80 {
			t.Fatalf("80 records unsealed, the current file %d bytes: the records are not of the size this test counts on", fileSize(t, e.log))
		}
		if code, stderr := limited(fmt.Sprintf("unsealed-%02d", n)); code != 0 {
			t.Fatalf("createRuntime %d, the state aside: exit %d\n%s", n, code, stderr)
		}
	}
	if err := os.Rename(seal+".aside", seal); err != nil {
		t.Fatal(err)
	}
	if code, stderr := limited("sealed"); code != 0 {
		t.Fatalf("createRuntime with the state back: exit %d\n%s", code, stderr)
	}
	// The record that seals them late is the first of a new file.
	data, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := bytes.Cut(data, []byte("\n"))
	if r, err := audit.Decode(first); err != nil || len(r.LateSeals) != n {
		t.Errorf("the current file's first record: %v, %d late seals; want the %d, in a file of their own", err, len(r.LateSeals), n)
	}
	if code, stderr := limited("after"); code != 0 {
		t.Fatalf("createRuntime after: exit %d\n%s", code, stderr)
	}
	if code, out, stderr := run("", "--config", e.config, "audit", "verify", "--key", key); code != 0 || !strings.Contains(out, "were written unsealed") {
		t.Errorf("verify: exit %d\n%s%s", code, out, stderr)
	}
}

// createRuntimeLimited runs the createRuntime stage of container id under
// a file size limit of limit bytes (prlimit --fsize), and returns its
// exit status and standard error.
func createRuntimeLimited(t *testing.T, e *env, prlimit, id string, limit int64) (int, string) {
	t.Helper()
	cmd := exec.Command(prlimit, fmt.Sprintf("--fsize=%d", limit), hookBin, "--config", e.config, "createRuntime")
	cmd.Stdin = bytes.NewReader(stateOf(idMember(id), pidMember(os.Getpid()), bundleMember))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// TestBinarySealInitUnderLimit: seal-init of an unsealed log that owes a
// damage record (20 damaged lines, about 5.7 KiB of it), under a file
// size limit the append does not fit below: the append rotates first
// and is built again, and seal-init's build made a new sealing state
// each time (the second failed, "sealing state exists", with the log
// sealed all the same; under --replace the state put back on failure
// was the first attempt's new one). After a torn tail too, its
// seal-start record was written with the torn tail's record, then built
// and written again in the new file (two seal-start records of one key,
// the log failing verify for good).
func TestBinarySealInitUnderLimit(t *testing.T) {
	nstest.RequireRoot(t)
	prlimit := nstest.RequireCmd(t, "prlimit")
	for _, tc := range []struct {
		name string
		log  func(*testing.T, *env)
	}{{"damaged lines", damagedLog}, {"damaged lines and a torn tail", damagedTornLog}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = "" })
			tc.log(t, e)
			cmd := exec.Command(prlimit, "--fsize=6500", hookBin, "--config", e.config, "audit", "seal-init")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || !strings.Contains(string(out), "from seq 2") {
				t.Fatalf("seal-init under a limit of 6500 bytes: %v, said %q\n%s; want sealing from seq 2", err, out, stderr.String())
			}
			if _, err := os.Stat(e.log + ".000000000001"); err != nil {
				t.Errorf("the file with the damaged lines: %v; want it rotated (the append did not fit after it)", err)
			}
			starts := 0
			for _, r := range e.records(t, "") {
				if r.Stage == audit.StageSealStart {
					starts++
				}
			}
			if starts != 1 {
				t.Errorf("%d seal-start records; want 1", starts)
			}
			ackAll(t, e)
			if code, vout, verr := run("", "--config", e.config, "audit", "verify", "--key", shownKey(string(out))); code != 0 {
				t.Errorf("verify with the key seal-init printed: exit %d\n%s%s", code, vout, verr)
			}
		})
	}
}

// ackAll acknowledges every damage record of the log of e.
func ackAll(t *testing.T, e *env) {
	t.Helper()
	for _, r := range e.records(t, "") {
		if r.Stage == audit.StageDamaged {
			if code, out, stderr := run("", "--config", e.config, "audit", "ack", strconv.FormatUint(r.Seq, 10), "--reason", "test garbage"); code != 0 {
				t.Fatalf("audit ack %d: exit %d\n%s%s", r.Seq, code, out, stderr)
			}
		}
	}
}

// fileSize returns the size of the file at path.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestBinaryTornTailUnderLimit: a torn tail (a crash) after which the
// records an append owes (here the damage record of 20 damaged lines,
// about 5.7 KiB) do not fit under a file size limit: no append could end
// it (its record must follow it, in its file, which is not rotated with
// a torn tail), and every append failed the same way. The torn tail's
// record is written alone now, ending it, and the rest goes in a new
// file.
func TestBinaryTornTailUnderLimit(t *testing.T) {
	nstest.RequireRoot(t)
	prlimit := nstest.RequireCmd(t, "prlimit")
	t.Run("unsealed", func(t *testing.T) { tornTailUnderLimit(t, prlimit, false) })
	t.Run("sealed", func(t *testing.T) { tornTailUnderLimit(t, prlimit, true) })
}

func tornTailUnderLimit(t *testing.T, prlimit string, sealed bool) {
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"], c["on_error"] = "", "deny" })
	var verifyArgs []string
	if sealed {
		verifyArgs = []string{"--key", sealInit(t, e)}
	}
	damagedTornLog(t, e)
	for i := range 2 {
		if code, stderr := createRuntimeLimited(t, e, prlimit, fmt.Sprint("limited-", i), 6500); code != 0 {
			t.Fatalf("createRuntime %d under a limit of 6500 bytes after a torn tail: exit %d\n%s", i, code, stderr)
		}
	}
	if _, err := os.Stat(e.log + ".000000000001"); err != nil {
		t.Errorf("the file with the torn tail: %v; want it rotated after its record", err)
	}
	stages := map[string]int{}
	for _, r := range e.records(t, "") {
		stages[r.Stage]++
	}
	if stages[audit.StageTornTail] != 1 || stages[audit.StageDamaged] != 1 || stages[audit.StageCreateRuntime] != 3 {
		t.Errorf("records by stage: %v; want the torn tail's, the damage record and the three containers'", stages)
	}
	ackAll(t, e)
	if code, out, stderr := run("", append([]string{"--config", e.config, "audit", "verify"}, verifyArgs...)...); code != 0 {
		t.Errorf("verify: exit %d\n%s%s", code, out, stderr)
	}
}

// damagedLog appends a record to the log of e, then 20 damaged lines: a
// damage record of about 5.7 KiB owed.
func damagedLog(t *testing.T, e *env) {
	t.Helper()
	createRuntime(t, e, "before")
	for range 20 {
		garble(t, e.log)
	}
}

// damagedTornLog makes the log of e as damagedLog does, then a torn tail.
func damagedTornLog(t *testing.T, e *env) {
	t.Helper()
	damagedLog(t, e)
	f, err := os.OpenFile(e.log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(`{"format":"1.6","seq":2,"tor`); err != nil {
		t.Fatal(err)
	}
}
