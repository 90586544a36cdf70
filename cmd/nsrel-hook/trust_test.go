package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
