package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/clidoc"
	"github.com/nsrel/nsrel/internal/forge"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
)

// run calls mainWith in-process.
func run(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = mainWith(args, strings.NewReader(stdin), &out, &errb, false)
	return code, out.String(), errb.String()
}

func selfState(id string) string {
	b, _ := json.Marshal(map[string]any{"ociVersion": "1.0.2", "id": id, "status": "creating", "pid": os.Getpid(), "bundle": "/b", "root": "/crun/adds/this",
		"annotations": map[string]string{"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "prod", "secret": "not recorded"}})
	return string(b)
}

// inInitialNamespaces reports whether the test runs in the initial user
// and PID namespaces, as the hook does on a host.
func inInitialNamespaces() bool {
	u, _ := os.Readlink("/proc/self/ns/user")
	p, _ := os.Readlink("/proc/self/ns/pid")
	return u == nsrel.Name{Type: nsrel.TypeUser, Ino: nsrel.InitialUserNSIno}.String() && p == nsrel.Name{Type: nsrel.TypePID, Ino: nsrel.InitialPIDNSIno}.String()
}

func TestMainStagesInProcess(t *testing.T) {
	e := newEnv(t, "hook.json", nil)
	code, _, stderr := run(selfState("self-1"), "--config", e.config, "createRuntime")
	if code != 0 {
		t.Fatalf("createRuntime exit %d: %s", code, stderr)
	}
	code, _, stderr = run(selfState("self-1"), "--config", e.config, "poststart")
	if code != 0 {
		t.Fatalf("poststart exit %d: %s", code, stderr)
	}
	code, _, stderr = run(`{"ociVersion":"1.0.2","id":"self-1","status":"stopped","bundle":"/b"}`, "--config", e.config, "poststop")
	if code != 0 {
		t.Fatalf("poststop exit %d: %s", code, stderr)
	}
	recs := e.records(t, "self-1")
	if len(recs) != 3 {
		t.Fatalf("records: %v", audittest.Stages(recs))
	}
	want := map[string]string{"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "prod"}
	if fmt.Sprint(recs[0].Annotations) != fmt.Sprint(want) {
		t.Errorf("recorded annotations %v, want %v", recs[0].Annotations, want)
	}
	if recs[0].PID != os.Getpid() || recs[1].Ref == nil || recs[2].Ref == nil || recs[2].Ref.Seq != recs[1].Seq {
		t.Errorf("records %+v %+v %+v", recs[0], recs[1].Ref, recs[2].Ref)
	}
	if recs[0].Version != vocab.Version || recs[0].Host == "" {
		t.Errorf("version %q host %q", recs[0].Version, recs[0].Host)
	}
	logData, _ := os.ReadFile(filepath.Join(e.dir, "hook.log"))
	if !strings.Contains(string(logData), "self-1") {
		t.Errorf("diagnostics log lacks the container:\n%s", logData)
	}

	// show: text and JSON, filtered by container prefix.
	code, out, _ := run("", "--config", e.config, "audit", "show", "--container", "self")
	if code != 0 || !strings.Contains(out, "container self-1 (pod prod/web-0, by its annotations)") || strings.Count(out, "\n  seq ") != 3 {
		t.Errorf("audit show exit %d:\n%s", code, out)
	}
	if want := fmt.Sprintf("        process: start time %d (clock ticks since boot), boot %s\n", recs[0].StartTime, audit.BootID()); !strings.Contains(out, want) {
		t.Errorf("audit show does not name the process's start time and boot (%q):\n%s", want, out)
	}
	code, out, _ = run("", "audit", "show", "--json", "--container", "self-1", e.log)
	if code != 0 || strings.Count(out, "\n") != 3 {
		t.Fatalf("audit show --json exit %d:\n%s", code, out)
	}
	// No such container: one line, exit 1, text or JSON.
	for _, args := range [][]string{{"audit", "show", "--container", "nosuch", e.log}, {"audit", "show", "--json", "--container", "nosuch", e.log}} {
		code, out, stderr := run("", args...)
		if want := `nsrel-hook: audit show: no record of a container with an ID starting with "nosuch" in ` + e.log + "\n"; code != 1 || out != "" || stderr != want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 1, nothing, %q", args, code, out, stderr, want)
		}
	}
	// A container-controlled ID asked for, escaped once (it was quoted
	// twice: "\"\\x1b[2J\"").
	if code, _, stderr := run("", "audit", "show", "--container", "\x1b[2J", e.log); code != 1 || !strings.Contains(stderr, `starting with "\x1b[2J" in `) {
		t.Errorf("audit show --container ESC[2J: exit %d, stderr %q; want 1 and the ID escaped once", code, stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if _, err := audit.Decode([]byte(line)); err != nil {
			t.Errorf("show --json line is not a record: %v", err)
		}
	}
	code, out, _ = run("", "--config", e.config, "audit", "verify")
	if code != 0 || !strings.Contains(out, "OK: 3 records") {
		t.Errorf("verify exit %d: %s", code, out)
	}
}

func TestMainEnforceInProcess(t *testing.T) {
	if !inInitialNamespaces() {
		t.Skip("the test must run in the initial namespaces to be refused")
	}
	e := newEnv(t, "hook-enforce.json", nil)
	code, stdout, stderr := run(selfState("self-bad"), "--config", e.config, "createRuntime")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "require_user_namespace:") || !strings.Contains(stderr, "user_depth_min:") {
		t.Errorf("want one line naming the rules on stderr, got stdout %q stderr %q", stdout, stderr)
	}
	// A container's own kube-system annotation exempts it from nothing.
	st := strings.Replace(selfState("self-sys"), `"prod"`, `"kube-system"`, 1)
	if code, _, _ := run(st, "--config", e.config, "createRuntime"); code != 1 {
		t.Errorf("a container claiming kube-system: exit %d, want 1", code)
	}
	recs := e.records(t, "")
	if len(recs) != 2 || recs[0].Verdict != audit.VerdictDeny || recs[1].Policy != "userns-required" || recs[1].Verdict != audit.VerdictDeny {
		t.Errorf("records %+v", recs)
	}
}

// TestMainRefusalUnrecorded: a container the enforcing block refuses is
// refused when its record cannot be written (a directory where the log
// should be), under on_error=allow too: on_error weighs what could not
// be checked, and this was. It used to run: anyone who could make the
// append fail (fill the disk) could run what the policy refuses.
func TestMainRefusalUnrecorded(t *testing.T) {
	if !inInitialNamespaces() {
		t.Skip("the test must run in the initial namespaces to be refused")
	}
	e := newEnv(t, "hook-enforce.json", func(c map[string]any) { c["on_error"] = policy.OnErrorAllow })
	if err := os.Mkdir(e.log, 0o700); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(selfState("refused"), "--config", e.config, "createRuntime")
	if code != 1 || !strings.Contains(stderr, "refused by nsrel policy") || !strings.Contains(stderr, "could not be written") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("exit %d, stderr %q; want 1 and one line with the refusal", code, stderr)
	}
}

func TestMainOnError(t *testing.T) {
	for _, mode := range []string{policy.OnErrorAllow, policy.OnErrorDeny} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, "hook.json", func(c map[string]any) { c["on_error"] = mode })
			// A directory where the log should be: appends fail.
			if err := os.Mkdir(e.log, 0o700); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := run(selfState("x"), "--config", e.config, "createRuntime")
			want := map[string]int{policy.OnErrorAllow: 0, policy.OnErrorDeny: 1}[mode]
			if code != want || !strings.Contains(stderr, "refusing a directory") || !strings.Contains(stderr, "on_error="+mode) {
				t.Errorf("exit %d (want %d), stderr %q", code, want, stderr)
			}
			// A process that is gone: recorded as an error, decided by on_error.
			os.Remove(e.log)
			gone := strings.Replace(selfState("gone"), fmt.Sprintf(`"pid":%d`, os.Getpid()), `"pid":4194303`, 1)
			code, _, stderr = run(gone, "--config", e.config, "createRuntime")
			recs := e.records(t, "gone")
			// The line names the record, as every stage's line does.
			if code != want || len(recs) != 1 || !strings.Contains(stderr, fmt.Sprintf("cannot inspect its namespaces (on_error=%s: %s; audit record seq %d)", mode, map[string]string{policy.OnErrorAllow: "allowed", policy.OnErrorDeny: "refused"}[mode], recs[0].Seq)) {
				t.Errorf("gone process: exit %d (want %d), stderr %q", code, want, stderr)
			}
			if len(recs) != 1 || recs[0].Error == "" || (mode == policy.OnErrorDeny) != (recs[0].Verdict == audit.VerdictDeny) {
				t.Errorf("record for a gone process: %+v", recs)
			}
		})
	}
}

func TestMainDeadline(t *testing.T) {
	e := newEnv(t, "hook.json", func(c map[string]any) { c["on_error"] = "deny"; c["deadline_ms"] = 100 })
	holdLock(t, e.log)
	start := time.Now()
	code, _, stderr := run(selfState("slow"), "--config", e.config, "createRuntime")
	if took := time.Since(start); code != 1 || took > 2*time.Second {
		t.Errorf("exit %d after %v, stderr %q", code, took, stderr)
	}
}

// holdLock takes the audit log's lock until the test ends.
func holdLock(t *testing.T, log string) {
	t.Helper()
	f, err := os.OpenFile(log+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
}

// TestBinaryDeadlineRefusal: the policy refuses the container, and the
// deadline passes while the record waits for the log's lock: the
// container is refused under on_error=allow too, as when the record
// cannot be written; a container the policy allows gets on_error's
// status. The deadline's exit used to take on_error's status for both.
func TestBinaryDeadlineRefusal(t *testing.T) {
	for _, enforce := range []bool{true, false} {
		t.Run(fmt.Sprintf("enforce=%v", enforce), func(t *testing.T) {
			e := newEnv(t, "hook.json", func(c map[string]any) {
				c["on_error"] = policy.OnErrorAllow
				c["deadline_ms"] = 300
				c["syslog"] = ""
				mode := policy.ModeAudit
				if enforce {
					mode = policy.ModeEnforce
				}
				// The test process is in the initial user namespace.
				c["default"] = map[string]any{"mode": mode, "rules": map[string]any{"require_user_namespace": true}}
			})
			holdLock(t, e.log)
			// The binary, whose lock wait ends at the deadline, and the
			// stage in this process, whose caller gives up at the
			// deadline (the watchdog's path) first.
			r := runBinary(t, strings.NewReader(selfState("locked")), "--config", e.config, "createRuntime")
			code, _, stderr := run(selfState("locked-in-process"), "--config", e.config, "createRuntime")
			// Poststart refuses too (its comparison only adds violations).
			pcode, _, pstderr := run(selfState("locked-poststart"), "--config", e.config, "poststart")
			for _, got := range []struct {
				code   int
				stderr string
			}{{r.code, r.stderr}, {code, stderr}, {pcode, pstderr}} {
				switch {
				case enforce && (got.code != 1 || !strings.Contains(got.stderr, "refused by nsrel policy")):
					t.Errorf("refused: exit %d, stderr %q; want 1 and the refusal", got.code, got.stderr)
				case !enforce && got.code != 0:
					t.Errorf("allowed: exit %d, stderr %q; want 0 (on_error=allow)", got.code, got.stderr)
				}
			}
		})
	}
}

// TestBinaryDeadline runs the binary with a stdin that never ends: the
// hook stops reading at half of deadline_ms, records the container with
// what it read, and exits with the on_error status and one line on
// stderr, within the deadline. The deadline is the shipped one: the
// half left for the record must hold an fdatasync while other suites
// load the disk (with 100 ms, one that took over 100 ms made the
// watchdog end the run, rightly, with its own line).
func TestBinaryDeadline(t *testing.T) {
	const deadlineMS = 2000
	for mode, want := range map[string]int{policy.OnErrorAllow: 0, policy.OnErrorDeny: 1} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, "hook.json", func(c map[string]any) { c["on_error"] = mode; c["deadline_ms"] = deadlineMS })
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close() // held open: the hook's read never ends
			cmd := exec.Command(hookBin, "--config", e.config, "createRuntime")
			cmd.Stdin = r
			var stderr strings.Builder
			cmd.Stderr = &stderr
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			r.Close()
			err = cmd.Wait()
			took := time.Since(start)
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != want || took > deadlineMS*time.Millisecond+time.Second || !strings.Contains(stderr.String(), "stdin was not closed in time") || strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("exit %d (want %d) after %v, stderr %q", code, want, took, stderr.String())
			}
			recs := e.records(t, "")
			if len(recs) != 1 || !strings.Contains(recs[0].Error, "stdin was not closed") {
				t.Errorf("records %+v; want one that says stdin stayed open", recs)
			}
		})
	}
}

func TestMainUsage(t *testing.T) {
	e := newEnv(t, "hook.json", nil)
	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"help", "", []string{"--help"}, 0, "Examples:", ""},
		{"version", "", []string{"--version"}, 0, "nsrel-hook " + vocab.Version, ""},
		{"version short", "", []string{"-V"}, 0, "nsrel-hook " + vocab.Version, ""},
		{"nothing", "", nil, 2, "", "missing stage"},
		{"unknown stage", "", []string{"prestart"}, 2, "", "unknown stage or command \"prestart\""},
		{"hostile stage", "", []string{"\x1b[2J"}, 2, "", `"\x1b[2J"`},
		{"bad flag", "", []string{"--nope"}, 2, "", "nsrel-hook: unknown option --nope (see --help)"},
		{"extra args", "", []string{"--config", e.config, "poststop", "x"}, 2, "", "unexpected arguments"},
		{"missing config at createRuntime", "{}", []string{"--config", "/nonexistent/hook.json", "createRuntime"}, 1, "", "no such file"},
		{"missing config at poststart", "{}", []string{"--config", "/nonexistent/hook.json", "poststart"}, 0, "", "no such file"},
		// An empty path is no file (it was taken for the working
		// directory): at a stage, a config that does not load, as the
		// runtime expects of a broken one; elsewhere a usage error.
		{"empty config at createRuntime", "{}", []string{"--config=", "createRuntime"}, 1, "", "nsrel-hook: createRuntime: config: an empty path names no file\n"},
		{"empty config at poststop", "{}", []string{"--config", "", "poststop"}, 0, "", "nsrel-hook: poststop: config: an empty path names no file\n"},
		{"empty config audit show", "", []string{"--config=", "audit", "show"}, 2, "", "nsrel-hook: audit show: option --config needs a file, not an empty string (see --help)\n"},
		{"empty config audit verify", "", []string{"--config", "", "audit", "verify"}, 2, "", "nsrel-hook: audit verify: option --config needs a file"},
		{"empty config policy check", "", []string{"--config=", "policy", "check", e.config}, 2, "", "nsrel-hook: policy check: option --config needs a file"},
		// They pick among the checkpoints given: without any, they were
		// silently ignored.
		{"host without checkpoints", "", []string{"audit", "verify", "--host", "node-a", e.log}, 2, "", "nsrel-hook: audit verify: --host picks among the checkpoints given: it needs --checkpoints FILE (see --help)\n"},
		{"checkpoint-log without checkpoints", "", []string{"audit", "verify", "--checkpoint-log", "/var/log/nsrel/audit.jsonl", e.log}, 2, "", "nsrel-hook: audit verify: --checkpoint-log picks among the checkpoints given: it needs --checkpoints FILE"},
		// Usage errors before a config must load (no LOG given).
		{"host without checkpoints, no config", "", []string{"--config", "/nonexistent/hook.json", "audit", "verify", "--host", "node-a"}, 2, "", "it needs --checkpoints FILE"},
		// A hash mistyped was reported as records cut off the end.
		{"anchor not a hash", "", []string{"audit", "verify", "--anchor", "nonsense", e.log}, 2, "", "nsrel-hook: audit verify: --anchor \"nonsense\": want a record's hash, 64 hex digits, or SEQ:HASH (see --help)\n"},
		{"anchor cut short", "", []string{"audit", "verify", "--anchor", strings.Repeat("a", 63), e.log}, 2, "", "want a record's hash, 64 hex digits"},
		// Unset, each means something else: `--anchor "$PREV"` with
		// PREV unset verified without the anchor, OK.
		{"empty anchor", "", []string{"audit", "verify", "--anchor", "", e.log}, 2, "", "nsrel-hook: audit verify: option --anchor needs a record's hash, not an empty string (see --help)\n"},
		{"empty host", "", []string{"audit", "verify", "--host=", "--checkpoints", e.log, e.log}, 2, "", "option --host needs a host name"},
		{"empty checkpoint-log", "", []string{"audit", "verify", "--checkpoint-log", "", "--checkpoints", e.log, e.log}, 2, "", "option --checkpoint-log needs a path"},
		{"empty node", "", []string{"audit", "verify", "--node", "a", "--node", "", e.log}, 2, "", "option --node needs a host name"},
		{"empty container", "", []string{"audit", "show", "--container", "", e.log}, 2, "", "nsrel-hook: audit show: option --container needs an ID or its start"},
		// Checkpoints name the log's absolute path: a relative one
		// matched none, and verify failed.
		{"relative checkpoint-log", "", []string{"audit", "verify", "--checkpoint-log", "audit.jsonl", "--checkpoints", e.log, e.log}, 2, "", "--checkpoint-log \"audit.jsonl\": want the absolute path"},
		{"version and a command", "", []string{"--version", "audit"}, 2, "", "nsrel-hook: unexpected argument \"audit\" (see --help)\n"},
		{"empty checkpoints", "", []string{"audit", "verify", "--checkpoints", "", e.log}, 2, "", "nsrel-hook: audit verify: option --checkpoints needs a file, not an empty string (see --help)\n"},
		{"empty key file", "", []string{"audit", "verify", "--key", "@", e.log}, 2, "", "nsrel-hook: audit verify: option --key needs a key or @FILE, not an empty string (see --help)\n"},
		{"empty LOG verify", "", []string{"audit", "verify", ""}, 2, "", "nsrel-hook: audit verify: LOG needs a path, not an empty string (see --help)\n"},
		{"empty LOG show", "", []string{"audit", "show", ""}, 2, "", "nsrel-hook: audit show: LOG needs a path"},
		{"empty LOG ack", "", []string{"--config", e.config, "audit", "ack", "1", "--reason", "x", ""}, 2, "", "nsrel-hook: audit ack: LOG needs a path"},
		{"empty FILE policy check", "", []string{"policy", "check", ""}, 2, "", "nsrel-hook: policy check: FILE needs a path"},
		{"bad state", "not json", []string{"--config", e.config, "createRuntime"}, 0, "", "state:"},
		{"policy usage", "", []string{"policy"}, 2, "", "nsrel-hook: usage: nsrel-hook policy check FILE (see --help)\n"},
		// Parsed with a flag set: an unknown option is named, and "--"
		// ends the options. Both were a bare usage line.
		{"policy check bad option", "", []string{"policy", "check", "--bogus"}, 2, "", "nsrel-hook: policy check: unknown option --bogus (see --help)\n"},
		{"policy check bad option after FILE", "", []string{"policy", "check", e.config, "--bogus"}, 2, "", "nsrel-hook: policy check: unknown option --bogus (see --help)\n"},
		{"policy check --", "", []string{"policy", "check", "--", e.config}, 0, ": OK\n", ""},
		{"policy check -- dash FILE", "", []string{"policy", "check", "--", "-nonexistent.json"}, 1, "", "-nonexistent.json"},
		{"policy check two FILEs", "", []string{"policy", "check", e.config, e.config}, 2, "", "usage: nsrel-hook policy check FILE"},
		{"policy check shipped", "", []string{"policy", "check", "../../config/hook-enforce.json"}, 0, "default \"userns-required\"", ""},
		{"policy check bad", "", []string{"policy", "check", "cli_test.go"}, 1, "", "cli_test.go:1:1:"},
		// A newline in the path is escaped: it split the error into
		// two lines, the second one's text the path's to choose.
		{"policy check path with newline", "", []string{"policy", "check", "/nonexistent/a\nnsrel-hook: OK"}, 1, "", "\\nnsrel-hook: OK: no such file or directory\"\n"},
		{"audit usage", "", []string{"audit"}, 2, "", "usage"},
		{"audit bad command", "", []string{"audit", "fix"}, 2, "", "unknown audit command"},
		{"audit help", "", []string{"audit", "--help"}, 0, "Examples:", ""},
		{"audit verify help", "", []string{"audit", "verify", "-h"}, 0, "Examples:", ""},
		{"stage help", "", []string{"createRuntime", "--help"}, 0, "Examples:", ""},
		{"policy help", "", []string{"policy", "--help"}, 0, "usage: nsrel-hook policy check FILE", ""},
		{"policy check help", "", []string{"policy", "check", "-h"}, 0, "usage: nsrel-hook policy check FILE", ""},
		{"verify missing log", "", []string{"audit", "verify", filepath.Join(e.dir, "none.jsonl")}, 1, "", "no such audit log"},
		{"show two logs", "", []string{"audit", "show", "a", "b"}, 2, "", "nsrel-hook: audit show takes at most one LOG (see --help)\n"},
		{"ack without reason", "", []string{"--config", e.config, "audit", "ack", "1"}, 2, "", "say what you checked (see --help)\n"},
		{"ack without SEQ", "", []string{"--config", e.config, "audit", "ack"}, 2, "", "nsrel-hook: usage: nsrel-hook audit ack SEQ --reason TEXT [LOG] (see --help)\n"},
		{"ack bad SEQ", "", []string{"--config", e.config, "audit", "ack", "x", "--reason", "r"}, 2, "", "is not a sequence number (see --help)\n"},
		{"seal-init with an argument", "", []string{"--config", e.config, "audit", "seal-init", "x"}, 2, "", "the sealing state (see --help)\n"},
		{"key that does not parse", "", []string{"audit", "verify", "--key", "nope", e.log}, 2, "", "nsrel-hook: audit verify: --key: not an nsrel verification key (nsrel-seal-v1:ID:KEY) (see --help)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(tt.stdin, tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", code, tt.code, stdout, tt.stdout, stderr, tt.stderr)
			}
		})
	}
}

// TestHelpToFullDisk: a help or version that cannot be written (a full
// disk) is said, exit 1, as util-linux does; it exited 0.
func TestHelpToFullDisk(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"--version"}, {"audit", "--help"}, {"createRuntime", "--help"}, {"policy", "--help"}, {"policy", "check", "-h"}} {
		if code, stderr := nstest.ToFullDisk(t, hookBin, args...); code != 1 || stderr != "nsrel-hook: write error: no space left on device\n" {
			t.Errorf("%q to /dev/full: exit %d, stderr %q; want 1 and a write error", args, code, stderr)
		}
	}
}

// TestReportToFullDisk: verify (text, --json, --nodes), policy check
// and ack whose output cannot be written (a full disk) say so, exit 1,
// as help and show do; they exited 0 with nothing printed. A verify
// that failed exits 1 all the same.
func TestReportToFullDisk(t *testing.T) {
	e := newEnv(t, "hook.json", nil)
	for _, id := range []string{"w1", "w2"} {
		if code, _, stderr := run(selfState(id), "--config", e.config, "createRuntime"); code != 0 {
			t.Fatal(stderr)
		}
	}
	const writeError = "nsrel-hook: write error: no space left on device\n"
	for _, args := range [][]string{
		{"audit", "verify", e.log},
		{"audit", "verify", "--json", e.log},
		{"audit", "verify", "--nodes", e.log},
		{"audit", "verify", "--json", "--nodes", e.log},
		{"policy", "check", e.config},
		{"audit", "show", e.log},
		{"audit", "show", "--json", e.log},
	} {
		if code, stderr := nstest.ToFullDisk(t, hookBin, args...); code != 1 || stderr != writeError {
			t.Errorf("%q to /dev/full: exit %d, stderr %q; want 1 and a write error", args, code, stderr)
		}
	}

	garble(t, e.log)
	if code, _, stderr := run(selfState("w3"), "--config", e.config, "createRuntime"); code != 0 {
		t.Fatal(stderr)
	}
	// Verify fails (damage not acknowledged), and cannot say so on stdout.
	if code, stderr := nstest.ToFullDisk(t, hookBin, "audit", "verify", "--json", e.log); code != 1 || !strings.HasSuffix(stderr, writeError) {
		t.Errorf("failed verify --json to /dev/full: exit %d, stderr %q; want 1 and a write error", code, stderr)
	}
	var damage uint64
	for _, r := range e.records(t, "") {
		if r.Stage == audit.StageDamaged {
			damage = r.Seq
		}
	}
	code, stderr := nstest.ToFullDisk(t, hookBin, "--config", e.config, "audit", "ack", fmt.Sprint(damage), "--reason", "checked")
	if code != 1 || stderr != writeError {
		t.Errorf("ack to /dev/full: exit %d, stderr %q; want 1 and a write error", code, stderr)
	}
	if code, out, stderr := run("", "audit", "verify", e.log); code != 0 {
		t.Errorf("the ack whose line was not written was not recorded: exit %d: %s%s", code, out, stderr)
	}
}

func TestMainVerifyTampered(t *testing.T) {
	e := newEnv(t, "hook.json", nil)
	for i := 0; i < 3; i++ {
		if code, _, stderr := run(selfState(fmt.Sprintf("t%d", i)), "--config", e.config, "createRuntime"); code != 0 {
			t.Fatal(stderr)
		}
	}
	data, _ := os.ReadFile(e.log)
	os.WriteFile(e.log, bytes.Replace(data, []byte(`"container_id":"t1"`), []byte(`"container_id":"t9"`), 1), 0o600)
	code, _, stderr := run("", "audit", "verify", e.log)
	if code != 1 || !strings.Contains(stderr, e.log+":2: seq 2: hash does not match") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// TestShowTornLine: a line torn by a crash, which the next append ended
// with the torn mark (its head whole), is no container of audit show and
// no damage to warn of: the torn-tail record after it holds it.
func TestShowTornLine(t *testing.T) {
	e := newEnv(t, "hook.json", nil)
	if code, _, stderr := run(selfState("c1"), "--config", e.config, "createRuntime"); code != 0 {
		t.Fatal(stderr)
	}
	data, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	torn := bytes.Replace(data[:300], []byte(`"container_id":"c1"`), []byte(`"container_id":"c9"`), 1)
	if err := os.WriteFile(e.log, append(data, torn...), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(selfState("c2"), "--config", e.config, "createRuntime"); code != 0 {
		t.Fatal(stderr)
	}
	code, out, stderr := run("", "audit", "show", e.log)
	if code != 0 || stderr != "" || strings.Contains(out, "container c9") || !strings.Contains(out, "torn-tail") || !strings.Contains(out, "container c1") || !strings.Contains(out, "container c2") {
		t.Errorf("exit %d, stdout\n%s\nstderr %q", code, out, stderr)
	}
}

// TestShowOnlyDamagedContainer: a container whose only record is
// damaged (its head whole) is not shown as an empty group, and show
// --container of it says its lines are damaged and exits 1, text and
// --json: it printed the bare header (nothing with --json) and exited 0.
func TestShowOnlyDamagedContainer(t *testing.T) {
	e := newEnv(t, "hook.json", nil)
	for _, id := range []string{"c1", "victim"} {
		if code, _, stderr := run(selfState(id), "--config", e.config, "createRuntime"); code != 0 {
			t.Fatal(stderr)
		}
	}
	data, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	last := bytes.LastIndexByte(data[:len(data)-1], '\n') + 1
	if !bytes.Contains(data[last:last+300], []byte(`"container_id":"victim"`)) {
		t.Fatalf("victim's line does not name it in its first 300 bytes: %.300s", data[last:])
	}
	clear(data[last+300 : last+600])
	if err := os.WriteFile(e.log, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--container", "victim"}, {"--json", "--container", "victim"}} {
		code, out, stderr := run("", append([]string{"audit", "show"}, append(args, e.log)...)...)
		if code != 1 || strings.Contains(out, "victim") || !strings.Contains(stderr, `no record of a container with an ID starting with "victim" in `+e.log+` that reads whole (1 damaged line(s) name one: see audit verify)`) {
			t.Errorf("show %v: exit %d, stdout %q, stderr %q", args, code, out, stderr)
		}
	}
	if code, out, stderr := run("", "audit", "show", e.log); code != 0 || strings.Contains(out, "container victim") || !strings.Contains(out, "container c1") || !strings.Contains(stderr, "skipped 1 damaged") {
		t.Errorf("show: exit %d, stdout %q, stderr %q; want c1 and no empty group of victim", code, out, stderr)
	}
}

// TestShowLeavesOutListed: show leaves out the lines a damage record
// lists, as verify leaves them out of the chain: an older record again
// (a crash's stale block, a copy) is not shown a second time, and one
// that never was the chain's (a record root on the node made up later
// with a seq retention removed, which the next append files as an
// older record again, and an ack passes) is not shown as the log's
// history. show printed every line that decoded.
func TestShowLeavesOutListed(t *testing.T) {
	e := newEnv(t, "hook.json", nil)
	for _, id := range []string{"c1", "c2"} {
		if code, _, stderr := run(selfState(id), "--config", e.config, "createRuntime"); code != 0 {
			t.Fatal(stderr)
		}
	}
	data, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	// A record of seq 1 made up (hashed as the hook would) for a
	// container that never ran, and seq 2 again as it is.
	made := bytes.Replace(lines[0], []byte(`"container_id":"c1"`), []byte(`"container_id":"madeup"`), 1)
	out, err := forge.Rechain([][]byte{made}, 0)
	if err != nil {
		t.Fatal(err)
	}
	data = append(append(append(data, out[0]...), '\n'), append(lines[1], '\n')...)
	if err := os.WriteFile(e.log, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(selfState("c3"), "--config", e.config, "createRuntime"); code != 0 {
		t.Fatal(stderr)
	}
	recs := audittest.Records(t, e.log, "")
	if n := audittest.Count(recs, "", "audit/damaged"); n != 1 {
		t.Fatalf("%d damage records, want 1:\n%s", n, audittest.Listing(recs))
	}
	const note = "nsrel-hook: audit show: left out 2 line(s) that damage records list (older records again, or lines a crash or an edit damaged: no records of the chain; see `nsrel-hook audit verify`)\n"
	code, stdout, stderr := run("", "audit", "show", e.log)
	if code != 0 || stderr != note || strings.Contains(stdout, "madeup") || strings.Count(stdout, "\n  seq ") != 4 || !strings.Contains(stdout, "container c2") {
		t.Errorf("show: exit %d, stdout\n%s\nstderr %q; want c1, c2, c3 and the damage record, once each, and a note", code, stdout, stderr)
	}
	code, stdout, stderr = run("", "audit", "show", "--json", "--container", "c2", e.log)
	if code != 0 || strings.Count(stdout, "\n") != 1 || stderr != strings.Replace(note, "2 line(s)", "1 line(s)", 1) {
		t.Errorf("show --json --container c2: exit %d, stdout\n%s\nstderr %q; want its record once", code, stdout, stderr)
	}
	for _, args := range [][]string{{"--container", "madeup"}, {"--json", "--container", "madeup"}} {
		code, stdout, stderr := run("", append([]string{"audit", "show"}, append(args, e.log)...)...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, `no record of a container with an ID starting with "madeup" in `+e.log+` in the chain (1 line(s) that damage records list name one: see audit verify)`) {
			t.Errorf("show %v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}

// TestShowMadeUpDamageHidesNothing: a damage record written into the
// log out of the chain (root on the node later, with a seq retention
// removed, which the next append files as an older record again, and
// an ack passes), listing a record of the chain by its place and bytes:
// show left that record out (verify passed), and the hook's own search
// did not find it. Only the chain's damage records count.
func TestShowMadeUpDamageHidesNothing(t *testing.T) {
	e := newEnv(t, "hook.json", nil)
	for _, id := range []string{"c1", "victim", "c3"} {
		if code, _, stderr := run(selfState(id), "--config", e.config, "createRuntime"); code != 0 {
			t.Fatal(stderr)
		}
	}
	data, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	victim := bytes.TrimSuffix(lines[1], []byte("\n"))
	k := audit.LineKeyOf(victim)
	made := &audit.Record{Seq: 1, Time: "2026-12-07T08:00:00Z", Host: "vm", Source: audit.SourceAudit, Stage: audit.StageDamaged,
		Damage: []audit.DamagedLine{{File: "audit.jsonl", Offset: int64(len(lines[0])), Bytes: k.Bytes, SHA256: k.SHA256, Kind: "garbled", Reason: "made up"}}}
	line, err := made.Encode()
	if err != nil {
		t.Fatal(err)
	}
	audittest.AppendBytes(t, e.log, line)
	if code, _, stderr := run(selfState("c4"), "--config", e.config, "createRuntime"); code != 0 {
		t.Fatal(stderr)
	}
	for _, args := range [][]string{{"--container", "victim"}, {"--json", "--container", "victim"}} {
		code, stdout, stderr := run("", append([]string{"audit", "show"}, append(args, e.log)...)...)
		if code != 0 || !strings.Contains(stdout, "victim") {
			t.Errorf("show %v: exit %d, stdout %q, stderr %q; want the victim's record", args, code, stdout, stderr)
		}
	}
	if code, stdout, stderr := run("", "audit", "show", e.log); code != 0 || strings.Count(stdout, "\n  seq ") != 5 || !strings.Contains(stderr, "left out 1 line(s)") {
		t.Errorf("show: exit %d, stdout\n%s\nstderr %q; want the 4 records and the damage record of the chain, the made-up one left out", code, stdout, stderr)
	}
	// The hook's own search (a stop's start, ancestry_unchanged's
	// reference) went by every damage record it met: it lost the victim.
	l, err := audit.Open(e.log, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := l.Searcher().Last("victim", nil); err != nil || r == nil || r.Stage != "createRuntime" {
		t.Errorf("the hook's search for the victim: %+v, %v; want its createRuntime record", r, err)
	}
}

// TestVerifyJSONEarlyFailures: a verify --json that fails before any
// log's verdict (a --checkpoints or --key file, or a collector's LOG for
// --nodes, that cannot be read) prints one JSON object that says so, as
// one whose LOG cannot be read does; it printed nothing on stdout.
func TestVerifyJSONEarlyFailures(t *testing.T) {
	e := newEnv(t, "hook.json", nil)
	if code, _, stderr := run(selfState("c1"), "--config", e.config, "createRuntime"); code != 0 {
		t.Fatal(stderr)
	}
	missing := filepath.Join(e.dir, "missing")
	for _, args := range [][]string{
		{"--nodes", missing},
		{"--checkpoints", missing, e.log},
		{"--nodes", "--checkpoints", missing, e.log},
		{"--key", "@" + missing, e.log},
		{"--checkpoints", e.config, e.log}, // no checkpoint in it
	} {
		code, stdout, stderr := run("", append([]string{"audit", "verify", "--json"}, args...)...)
		var res struct {
			OK    *bool  `json:"ok"`
			Error string `json:"error"`
		}
		if code != 1 || strings.Count(stdout, "\n") != 1 || json.Unmarshal([]byte(stdout), &res) != nil || res.OK == nil || *res.OK || res.Error == "" || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 1, one JSON object with ok false and the error, one line on stderr", args, code, stdout, stderr)
		}
	}
}

// TestShowPodProvenance: show says where a pod name comes from. The
// hook's records have it from the annotations the container's creator
// writes (a plain runc container can name any pod): "by its
// annotations"; the NRI plugin's from the kubelet, which wins. A
// container ID that could pass for more (the hook takes any ID the
// state gives, "a b (pod kube-system/coredns)") is quoted. Records of
// one ID in two containerd namespaces name each pod and namespace (the
// first's pod was shown for both).
func TestShowPodProvenance(t *testing.T) {
	e := newEnv(t, "hook.json", nil)
	l, err := audit.Open(e.log, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	claim := map[string]string{"io.kubernetes.pod.name": "coredns", "io.kubernetes.pod.namespace": "kube-system"}
	for _, r := range []*audit.Record{
		{Source: audit.SourceOCIHook, Stage: audit.StagePoststop, ContainerID: "a b (pod kube-system/coredns)", Annotations: claim},
		{Source: audit.SourceOCIHook, Stage: audit.StagePoststop, ContainerID: "c2", Annotations: claim},
		{Source: audit.SourceNRI, Stage: audit.StagePoststop, ContainerID: "c2", Annotations: map[string]string{"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop"}},
		// One ID, two containers (one a containerd namespace): the
		// first's pod was shown for both.
		{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: "c3", Namespace: "k8s.io", Annotations: claim},
		{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: "c3", Namespace: "default", Annotations: map[string]string{"io.kubernetes.pod.name": "db-0", "io.kubernetes.pod.namespace": "prod"}},
		// The kubelet's word does not hide what other records claim
		// (a review of the fix found it did).
		{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: "c4", Annotations: map[string]string{"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop"}},
		{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: "c4", Namespace: "default", Annotations: map[string]string{"io.kubernetes.pod.name": "db-0", "io.kubernetes.pod.namespace": "prod"}},
		// Two pods of the kubelet's word (the ID taken again): both its.
		{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: "c5", Annotations: map[string]string{"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop"}},
		{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: "c5", Annotations: map[string]string{"io.kubernetes.pod.name": "db-0", "io.kubernetes.pod.namespace": "prod"}},
	} {
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	code, out, stderr := run("", "audit", "show", e.log)
	for _, want := range []string{"container \"a b (pod kube-system/coredns)\" (pod kube-system/coredns, by its annotations)\n", "container c2 (pod shop/web-0; by their annotations, records also name kube-system/coredns)\n",
		"container c3 (pods kube-system/coredns, prod/db-0, by their annotations: records of more than one container)\n", "source containerd-events namespace k8s.io\n", "source containerd-events namespace default\n",
		"container c4 (pod shop/web-0; by their annotations, records also name prod/db-0)\n", "container c5 (pods shop/web-0, prod/db-0)\n"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("exit %d, no %q in\n%s%s", code, want, out, stderr)
		}
	}
}

// TestShowContainersWithoutID: the records of containers whose state
// named no ID (a runtime's bug, or a state made by hand) are shown under
// a heading of their own, not among the log's events (seal-start,
// rotation, the recorder's), where a refusal was listed as one.
func TestShowContainersWithoutID(t *testing.T) {
	e := newEnv(t, "hook.json", nil)
	l, err := audit.Open(e.log, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*audit.Record{
		{Source: audit.SourceAudit, Stage: audit.StageRetention},
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, Verdict: audit.VerdictDeny},
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "c1", Verdict: audit.VerdictAllow},
		{Source: audit.SourceContainerdEvents, Stage: audit.StageExit},
	} {
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	code, out, stderr := run("", "audit", "show", e.log)
	groups := strings.Split(out, "\n\n")
	if code != 0 || len(groups) != 3 || !strings.HasPrefix(groups[0], "log events\n") || strings.Count(groups[0], "  seq ") != 1 ||
		!strings.HasPrefix(groups[1], "containers without an ID\n") || strings.Count(groups[1], "  seq ") != 2 || !strings.Contains(groups[1], "createRuntime deny") ||
		!strings.HasPrefix(groups[2], "container c1\n") {
		t.Errorf("exit %d; want the log's event, the two records without an ID, then c1, each under its heading:\n%s%s", code, out, stderr)
	}
}

// TestShowEscapesHostileData records a container whose ID and annotations
// hold terminal escapes: show must not print them raw.
func TestShowEscapesHostileData(t *testing.T) {
	e := newEnv(t, "hook.json", nil)
	l, err := audit.Open(e.log, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: "evil\x1b[2J\n", Verdict: "allow\x1b[31mFAKE\r",
		Annotations: map[string]string{"io.kubernetes.pod.name": "\x07bell"}, Ancestry: &audit.Ancestry{PID: 1}}
	if err := l.Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run("", "audit", "show", e.log)
	if code != 0 || strings.ContainsAny(out, "\x1b\x07\r") || !strings.Contains(out, `"evil\x1b[2J\n"`) || !strings.Contains(out, "source containerd-events") {
		t.Errorf("exit %d, output %q", code, out)
	}
	// JSON may hold DEL, C1 controls and formatting characters raw in its
	// strings: show --json prints them escaped, the same values.
	r = &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: "del\x7fX\u009b2J",
		Annotations: map[string]string{"io.kubernetes.pod.name": "p\u009b2J\u202e"}, Ancestry: &audit.Ancestry{PID: 1}}
	if err := l.Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run("", "audit", "show", "--json", "--container", "del", e.log)
	if code != 0 || strings.ContainsAny(out, "\x7f\u009b\u202e") || !strings.Contains(out, `"container_id":"del\u007fX\u009b2J"`) {
		t.Errorf("show --json: exit %d, output %q", code, out)
	}
	var got audit.Record
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.ContainerID != r.ContainerID || got.Annotations["io.kubernetes.pod.name"] != r.Annotations["io.kubernetes.pod.name"] {
		t.Errorf("show --json does not decode to the record: %v, %+v", err, got)
	}
}

// mover starts a process in the host's user namespace and returns its
// PID and a function that has it move to a user namespace of its own
// (unshare -U, which keeps its PID and start time) and waits, bounded,
// until it did.
func mover(t *testing.T) (pid int, move func()) {
	t.Helper()
	sh, unshare := nstest.RequireCmd(t, "sh"), nstest.RequireCmd(t, "unshare")
	sleep := nstest.RequireCmd(t, "sleep")
	cmd := exec.Command(sh, "-c", `read x; exec "$0" -U "$1" infinity`, unshare, sleep)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid = cmd.Process.Pid
	host := nstest.Ino(t, pid, "user")
	return pid, func() {
		t.Helper()
		in.Write([]byte("\n"))
		for deadline := time.Now().Add(10 * time.Second); nstest.Ino(t, pid, "user") == host; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the process did not move to a user namespace of its own")
			}
		}
	}
}

// TestPoststartSeesChangedAncestry records createRuntime for a process
// in the host's user namespace and poststart once it moved into one of
// its own (unshare -U, which keeps its PID and start time): the
// difference is an ancestry_unchanged violation, which enforce mode
// refuses. (poststart compares with the createRuntime record of the same
// process only: TestPoststartReusedID.)
func TestPoststartSeesChangedAncestry(t *testing.T) {
	nstest.RequireRoot(t)
	for _, mode := range []string{policy.ModeAudit, policy.ModeEnforce} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, "hook.json", func(c map[string]any) {
				c["default"] = map[string]any{"mode": mode}
			})
			pid, move := mover(t)
			st := strings.Replace(selfState("moved"), fmt.Sprintf(`"pid":%d`, os.Getpid()), fmt.Sprintf(`"pid":%d`, pid), 1)
			if code, _, stderr := run(st, "--config", e.config, "createRuntime"); code != 0 {
				t.Fatal(stderr)
			}
			move()
			code, _, stderr := run(st, "--config", e.config, "poststart")
			if want := map[string]int{policy.ModeAudit: 0, policy.ModeEnforce: 1}[mode]; code != want {
				t.Errorf("poststart exit %d, want %d (stderr %q)", code, want, stderr)
			}
			recs := e.records(t, "moved")
			if len(recs) != 2 || recs[1].Ref == nil || recs[1].Ref.Seq != recs[0].Seq {
				t.Fatalf("records %v", audittest.Stages(recs))
			}
			v := recs[1].Violations
			if len(v) != 1 || v[0].Rule != policy.RuleAncestryUnchanged || !strings.Contains(v[0].Reason, "user namespace depth 0 became 1") {
				t.Errorf("violations %+v", v)
			}
		})
	}
}

func TestMainVerifyJSON(t *testing.T) {
	e := newEnv(t, "hook.json", nil)
	for i := 0; i < 2; i++ {
		if code, _, stderr := run(selfState(fmt.Sprintf("j%d", i)), "--config", e.config, "createRuntime"); code != 0 {
			t.Fatal(stderr)
		}
	}
	code, out, _ := run("", "audit", "verify", "--json", e.log)
	var res struct {
		OK       bool   `json:"ok"`
		Records  int    `json:"records"`
		LastHash string `json:"last_hash"`
		Problem  *struct {
			Line   int    `json:"line"`
			Reason string `json:"reason"`
		} `json:"problem"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || !res.OK || res.Records != 2 {
		t.Fatalf("exit %d, %q: %+v %v", code, out, res, err)
	}
	// The anchor: cutting the last record off is caught.
	data, _ := os.ReadFile(e.log)
	first := data[:bytes.IndexByte(data, '\n')+1]
	os.WriteFile(e.log, first, 0o600)
	code, out, _ = run("", "audit", "verify", "--json", "--anchor", res.LastHash, e.log)
	res.Problem = nil
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 || res.OK || res.Problem == nil || !strings.Contains(res.Problem.Reason, "anchor") {
		t.Errorf("truncated log with anchor: exit %d, %q", code, out)
	}
	// The anchor in upper case is the same hash: it found the first
	// record, which it names, and reported the log cut.
	first1 := audittest.Records(t, e.log, "")[0].Hash
	if code, out, stderr := run("", "audit", "verify", "--anchor", strings.ToUpper(first1), e.log); code != 0 {
		t.Errorf("anchor in upper case: exit %d, %q %q; want the record found", code, out, stderr)
	}
	// SEQ:HASH, as the OK line gives both: the seq must be the record's.
	if code, out, stderr := run("", "audit", "verify", "--anchor", "1:"+first1, e.log); code != 0 {
		t.Errorf("anchor 1:HASH: exit %d, %q %q; want the record found", code, out, stderr)
	}
	for _, bad := range []string{"0:" + first1, "01:" + first1, "x:" + first1, ":" + first1, "1:"} {
		if code, _, stderr := run("", "audit", "verify", "--anchor", bad, e.log); code != 2 || !strings.Contains(stderr, "or SEQ:HASH") {
			t.Errorf("anchor %q: exit %d, %q; want a usage error", bad, code, stderr)
		}
	}
	if code, _, stderr := run("", "audit", "show", filepath.Join(e.dir, "none.jsonl")); code != 1 || !strings.Contains(stderr, "no such audit log") {
		t.Errorf("show of a missing log: exit %d %q", code, stderr)
	}
}

// TestPoststartAfterExit: a short-lived container may be gone when
// poststart runs; that is recorded, not treated as an internal error,
// even with on_error=deny; the record refers to the createRuntime record
// of the same PID.
func TestPoststartAfterExit(t *testing.T) {
	e := newEnv(t, "hook.json", func(c map[string]any) { c["on_error"] = "deny" })
	short := exec.Command(nstest.RequireCmd(t, "sleep"), "infinity")
	if err := short.Start(); err != nil {
		t.Fatal(err)
	}
	st := strings.Replace(selfState("short"), fmt.Sprintf(`"pid":%d`, os.Getpid()), fmt.Sprintf(`"pid":%d`, short.Process.Pid), 1)
	code, _, stderr := run(st, "--config", e.config, "createRuntime")
	short.Process.Kill()
	short.Wait()
	if code != 0 {
		t.Fatal(stderr)
	}
	code, _, stderr = run(st, "--config", e.config, "poststart")
	if code != 0 || stderr != "" {
		t.Errorf("poststart of an exited process: exit %d, stderr %q", code, stderr)
	}
	recs := e.records(t, "short")
	if len(recs) != 2 || recs[1].Verdict != audit.VerdictAllow || recs[1].Ref == nil || !strings.Contains(recs[1].Error, "exited") {
		t.Errorf("records %+v", recs[len(recs)-1])
	}
}

// TestRotationThroughTheHook runs the hook many times with a small
// rotate_bytes: the chain spans files and verify, show and the poststop
// back-reference follow it.
func TestRotationThroughTheHook(t *testing.T) {
	e := newEnv(t, "hook.json", func(c map[string]any) { c["rotate_bytes"] = 4096 })
	for i := 0; i < 12; i++ {
		id := fmt.Sprintf("rot-%d", i)
		for _, stage := range []string{"createRuntime", "poststart", "poststop"} {
			if code, _, stderr := run(selfState(id), "--config", e.config, stage); code != 0 {
				t.Fatalf("%s %s: %s", id, stage, stderr)
			}
		}
	}
	files, err := audit.Files(e.log)
	if err != nil || len(files) < 3 {
		t.Fatalf("files %v %v", files, err)
	}
	code, out, stderr := run("", "audit", "verify", e.log)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("OK: 36 records (seq 1..36) in %d file(s)", len(files))) {
		t.Errorf("verify exit %d: %s%s", code, out, stderr)
	}
	code, out, _ = run("", "audit", "show", "--container", "rot-0", e.log)
	if code != 0 || strings.Count(out, "\n  seq ") != 3 {
		t.Errorf("show across rotated files, exit %d:\n%s", code, out)
	}
	for _, r := range e.records(t, "") {
		if r.Stage == audit.StagePoststop && (r.Ref == nil || r.Ref.Stage != audit.StagePoststart) {
			t.Errorf("seq %d: poststop without its start: %+v", r.Seq, r.Ref)
		}
	}
}

// TestRetentionThroughTheHook runs the hook with a small rotate_bytes,
// keep_files 1 and a checkpoint after every record: verify with the
// checkpoints passes, says which records retention removed and counts
// the checkpoints that name them apart from those that match a record,
// with a note that only a collector's copy holds those records (root on
// the node after T could write the same retention records).
func TestRetentionThroughTheHook(t *testing.T) {
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["rotate_bytes"], c["keep_files"], c["syslog"] = 4096, 1, ""
		c["checkpoints"].(map[string]any)["every_records"] = 1
		c["checkpoints"].(map[string]any)["every_seconds"] = 0
	})
	for i := range 30 {
		if code, _, stderr := run(selfState(fmt.Sprintf("ret-%d", i)), "--config", e.config, "createRuntime"); code != 0 {
			t.Fatalf("ret-%d: %s", i, stderr)
		}
	}
	ckpts := filepath.Join(e.dir, "checkpoints.jsonl")
	n := 0
	for _, err := range audit.ReadCheckpoints(ckpts) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	code, out, stderr := run("", "audit", "verify", "--checkpoints", ckpts, e.log)
	if code != 0 || !strings.Contains(out, "removed by retention") ||
		!regexp.MustCompile(`note: [1-9][0-9]* checkpoint\(s\) name records the log says retention removed: .*only a collector's copy holds them`).MatchString(out) {
		t.Fatalf("verify exit %d:\n%s%s", code, out, stderr)
	}
	code, out, stderr = run("", "audit", "verify", "--json", "--checkpoints", ckpts, e.log)
	var res struct {
		OK                  bool `json:"ok"`
		Checkpoints         int  `json:"checkpoints"`
		CheckpointsRetained int  `json:"checkpoints_retained"`
		FirstSeq            int  `json:"first_seq"`
		RetentionUncovered  int  `json:"retention_uncovered"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || !res.OK {
		t.Fatalf("verify --json exit %d: %v\n%s%s", code, err, out, stderr)
	}
	// A checkpoint was made after every append: those of records before
	// first_seq are retained, the others match.
	if res.CheckpointsRetained == 0 || res.Checkpoints == 0 || res.Checkpoints+res.CheckpointsRetained != n || res.FirstSeq < 2 || res.RetentionUncovered != 0 {
		t.Errorf("%d checkpoints matched, %d retained, of %d; the log starts at seq %d; %d retention records after the last checkpoint", res.Checkpoints, res.CheckpointsRetained, n, res.FirstSeq, res.RetentionUncovered)
	}
	if strings.Contains(out, "covered by no checkpoint") || strings.Contains(out, "come after the last checkpoint") {
		t.Errorf("a log every record of which a checkpoint covers:\n%s", out)
	}

	// Root on the node after T removes every file and leaves one
	// retention record, its own, that says retention removed them all:
	// the shipped checkpoints then all name records "retention removed".
	// verify cannot tell this from retention (exit 0: the documented
	// limit) but says that nothing the log holds is covered by a
	// checkpoint and that the retention record came after the last one
	// (it said only that checkpoints named records retention removed).
	recs := audittest.Records(t, e.log, "")
	last := recs[len(recs)-1]
	rotated, _ := filepath.Glob(e.log + ".0*")
	for _, f := range rotated {
		os.Remove(f)
	}
	keepLastLine := func() {
		data, err := os.ReadFile(e.log)
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
		if err := os.WriteFile(e.log, append(lines[len(lines)-1], '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keepLastLine()
	l, err := audit.Open(e.log, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	forged := &audit.Record{Source: audit.SourceAudit, Stage: audit.StageRetention, Dropped: &audit.Dropped{File: filepath.Base(e.log) + ".000000000001", FirstSeq: 1, LastSeq: last.Seq, LastHash: last.Hash}}
	if err := l.Append(context.Background(), forged); err != nil {
		t.Fatal(err)
	}
	keepLastLine()
	code, out, stderr = run("", "audit", "verify", "--checkpoints", ckpts, e.log)
	wantNone := fmt.Sprintf("note: no checkpoint names a record the log holds: seq %d..%d are covered by no checkpoint", last.Seq+1, last.Seq+1)
	wantRet := fmt.Sprintf("note: 1 retention record(s), from seq %d, come after the last checkpoint: root on the node after T could have written them", last.Seq+1)
	if !strings.Contains(out, wantNone) || !strings.Contains(out, wantRet) {
		t.Errorf("verify of a log root emptied: exit %d:\n%s%s\nwant %q and %q", code, out, stderr, wantNone, wantRet)
	}
	code, out, _ = run("", "audit", "verify", "--json", "--checkpoints", ckpts, e.log)
	res.RetentionUncovered = 0
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.RetentionUncovered != 1 {
		t.Errorf("verify --json of a log root emptied: exit %d, %v: retention_uncovered %d, want 1\n%s", code, err, res.RetentionUncovered, out)
	}
}

// TestKill9Hooks kills nsrel-hook processes while they append: every
// hook that exited 0 has its record, and the chain verifies after the
// next append.
func TestKill9Hooks(t *testing.T) {
	// A hook past its deadline exits 0 without a record (on_error
	// allow): the deadline is not what this tests, and a loaded machine
	// stretches 40 hooks at once.
	e := newEnv(t, "hook.json", func(c map[string]any) { c["deadline_ms"] = 60000 })
	acked := map[string]bool{}
	for round := 0; round < 5; round++ {
		var cmds []*exec.Cmd
		for i := 0; i < 8; i++ {
			id := fmt.Sprintf("k%d-%d", round, i)
			cmd := exec.Command(hookBin, "--config", e.config, "createRuntime")
			cmd.Stdin = strings.NewReader(selfState(id))
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			cmds = append(cmds, cmd)
		}
		time.Sleep(time.Duration(round*3) * time.Millisecond) // a hook takes about 13 ms
		for i, cmd := range cmds {
			if i%2 == 0 {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		for i, cmd := range cmds {
			if cmd.Wait() == nil {
				acked[fmt.Sprintf("k%d-%d", round, i)] = true
			}
		}
	}
	if code, _, stderr := run(selfState("last"), "--config", e.config, "createRuntime"); code != 0 {
		t.Fatal(stderr)
	}
	e.verify(t)
	seen := map[string]bool{}
	for _, r := range e.records(t, "") {
		seen[r.ContainerID] = true
	}
	for id := range acked {
		if !seen[id] {
			t.Errorf("hook for %s exited 0 but its record is missing", id)
		}
	}
	t.Logf("%d of 40 hooks finished, %d records", len(acked), len(seen))
}

// TestVerifyCopyInOthersDirectory verifies and shows a copy of a log in
// a directory another user owns (a collector's, made by its daemon's
// user), the copy owned by that user too: the LOG named is read whoever
// owns it, as the docs say. The lock's directory was checked as a
// writer's, and both refused ("owned by uid 65534, not root").
func TestVerifyCopyInOthersDirectory(t *testing.T) {
	nstest.RequireRoot(t)
	e := newEnv(t, "hook.json", nil)
	if code, _, stderr := run(selfState("c1"), "--config", e.config, "createRuntime"); code != 0 {
		t.Fatal(stderr)
	}
	dir := filepath.Join(t.TempDir(), "collector")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(dir, "audit.jsonl")
	if err := os.WriteFile(copied, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, copied} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"audit", "verify", copied}, {"audit", "verify", "--shipped", copied}, {"audit", "show", copied}} {
		if code, stdout, stderr := run("", args...); code != 0 || !strings.Contains(stdout, "c1") && !strings.Contains(stdout, ": OK: ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want it read", args, code, stdout, stderr)
		}
	}
}

// TestVerifyCannotLock checks that audit verify and audit show never
// crash when the log's lock cannot be taken (a symlinked lock file, a
// lock another user cannot read) or the log cannot be read: one line on
// stderr and exit 1, also with --json.
func TestVerifyCannotLock(t *testing.T) {
	nstest.RequireRoot(t)
	e := newEnv(t, "hook.json", nil)
	if code, _, stderr := run(selfState("c1"), "--config", e.config, "createRuntime"); code != 0 {
		t.Fatal(stderr)
	}
	// oneLine checks the outcome of args: exit 1 and one line, on stderr
	// or, with --json, a JSON object on stdout that says what failed.
	oneLine := func(t *testing.T, args []string, code int, stdout, stderr string) {
		t.Helper()
		if slices.Contains(args, "--json") {
			var res struct {
				OK    bool   `json:"ok"`
				Error string `json:"error"`
			}
			if code != 1 || strings.Count(stdout, "\n") != 1 || json.Unmarshal([]byte(stdout), &res) != nil || res.OK || res.Error == "" {
				t.Errorf("%v: exit %d, stdout %q; want exit 1 and one JSON line with the error", args, code, stdout)
			}
			return
		}
		if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "nsrel-hook: audit ") {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and one line", args, code, stderr)
		}
	}
	t.Run("symlinked lock", func(t *testing.T) {
		lock := e.log + ".lock"
		if err := os.Rename(lock, lock+".saved"); err != nil {
			t.Fatal(err)
		}
		defer os.Rename(lock+".saved", lock)
		if err := os.Symlink("/etc/passwd", lock); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(lock)
		for _, args := range [][]string{{"audit", "verify", e.log}, {"audit", "verify", "--json", e.log}, {"audit", "show", e.log}} {
			code, stdout, stderr := run("", args...)
			oneLine(t, args, code, stdout, stderr)
		}
	})
	t.Run("unreadable lock", func(t *testing.T) {
		// The log is readable by everyone, its lock only by root: an
		// unprivileged user can read the records but not take the lock.
		if err := os.Chmod(e.log, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Dir(e.log), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"audit", "verify", e.log}, {"audit", "verify", "--json", e.log}, {"audit", "show", e.log}} {
			cmd := exec.Command(hookBin, args...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := cmd.ProcessState.ExitCode()
			if err != nil && code < 0 {
				t.Fatal(err)
			}
			oneLine(t, args, code, stdout.String(), stderr.String())
		}
	})
}

// TestDoubleDashOperands: after "--" every argument is a LOG, also one
// named like an option; only the first after "--" was, so `audit verify
// -- f.jsonl -h` printed the help and exited 0 without verifying.
func TestDoubleDashOperands(t *testing.T) {
	e := newEnv(t, "hook.json", nil)
	if code, _, stderr := run(selfState("dd-1"), "--config", e.config, "createRuntime"); code != 0 {
		t.Fatal(stderr)
	}
	log, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range []string{"-h", "--b.jsonl"} {
		if err := os.WriteFile(filepath.Join(dir, name), log, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	for _, args := range [][]string{
		{"audit", "verify", "--", "--b.jsonl", "-h"},
		{"audit", "verify", "--", "-h", "--b.jsonl"},
		{"audit", "verify", e.log, "--", "-h"},
	} {
		code, stdout, stderr := run("", args...)
		if code != 0 || strings.Count(stdout, "OK:") != len(args)-3 || stderr != "" {
			t.Errorf("%q: exit %d\nstdout %s\nstderr %s", args, code, stdout, stderr)
		}
	}
	if code, stdout, stderr := run("", "audit", "show", "--", "-h"); code != 0 || !strings.Contains(stdout, "dd-1") {
		t.Errorf("audit show -- -h: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
}

// TestHelpReadsAsManPage: the help is what the man page and the shell
// completions are made from at install (clidoc): a line clidoc cannot
// read failed only there, in make install and the package build.
func TestHelpReadsAsManPage(t *testing.T) {
	var b bytes.Buffer
	if err := printUsage(&b); err != nil {
		t.Fatal(err)
	}
	if _, err := clidoc.Parse("nsrel-hook", "8", b.String()); err != nil {
		t.Error(err)
	}
}

// TestMainPoststopOthersOfID runs the stages of four containers of one ID
// (as runc under different --root directories may run them), real
// processes each: the victim's createRuntime, then three others' whole
// lives (createRuntime, exit, poststop with the PID), then the victim's
// exit and poststop. The victim's poststop refers to its createRuntime
// record: it had none, the search giving up after the others' three
// poststops, which closed start records of other processes.
func TestMainPoststopOthersOfID(t *testing.T) {
	sleep := nstest.RequireCmd(t, "sleep")
	e := newEnv(t, "hook.json", nil)
	start := func() *exec.Cmd {
		cmd := exec.Command(sleep, "infinity")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	stage := func(stage string, pid int) {
		t.Helper()
		st := strings.Replace(selfState("victim"), fmt.Sprintf(`"pid":%d`, os.Getpid()), fmt.Sprintf(`"pid":%d`, pid), 1)
		if code, _, stderr := run(st, "--config", e.config, stage); code != 0 {
			t.Fatalf("%s of pid %d: exit %d: %s", stage, pid, code, stderr)
		}
	}
	exit := func(cmd *exec.Cmd) {
		cmd.Process.Kill()
		cmd.Wait()
	}
	victim := start()
	stage("createRuntime", victim.Process.Pid)
	for range 3 {
		other := start()
		stage("createRuntime", other.Process.Pid)
		exit(other)
		stage("poststop", other.Process.Pid)
	}
	exit(victim)
	stage("poststop", victim.Process.Pid)
	recs := e.records(t, "victim")
	if len(recs) != 8 {
		t.Fatalf("records %v, want 8", audittest.Stages(recs))
	}
	if last := recs[7]; last.Ref == nil || last.Ref.Seq != recs[0].Seq || last.Error != "" {
		t.Errorf("the victim's poststop: ref %+v, error %q; want its createRuntime record, seq %d", last.Ref, last.Error, recs[0].Seq)
	}
}

// TestShowNotALog: audit show of a file none of whose lines is a record
// (/etc/passwd) printed nothing, said it skipped them, and exited 0;
// verify said the damage was "not recorded yet: the next append records
// it", which no append to such a file ever does. Show fails, and both
// say it is a log damaged whole or none.
func TestShowNotALog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(path, []byte("root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/usr/sbin/nologin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"audit", "show", path}, {"audit", "show", "--json", path}} {
		code, out, stderr := run("", args...)
		if want := "nsrel-hook: audit show: none of the 2 line(s) of " + path + " reads as a record: a log damaged whole, or no audit log (see audit verify)\n"; code != 1 || out != "" || stderr != want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 1, nothing, %q", args, code, out, stderr, want)
		}
	}
	code, _, stderr := run("", "audit", "verify", path)
	if code != 1 || !strings.Contains(stderr, "no line reads as a record: a log damaged whole (its writer's next append records it) or no audit log") || strings.Contains(stderr, "the next append records it") {
		t.Errorf("verify: exit %d, stderr %q; want 1, asking whether it is an audit log", code, stderr)
	}
}
