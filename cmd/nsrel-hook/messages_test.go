package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/nstest"
)

// TestPoststopMessages: poststop never refuses, and its lines say so
// rather than name on_error, whose verdict is not what decided: with
// on_error=deny they said "on_error=allow: allowed" (a state refused, a
// record that could not be written) or "on_error=deny" (not recorded)
// while the stage exited 0.
func TestPoststopMessages(t *testing.T) {
	for _, tc := range []struct {
		name, state string
		locked      bool
	}{
		{"state refused", `{"ociVersion":"1.0.2","id":"bad","status":"stopped"`, false},
		{"not recorded", `{"ociVersion":"1.0.2","id":"locked","status":"stopped","bundle":"/b"}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "hook.json", func(c map[string]any) {
				c["on_error"] = policy.OnErrorDeny
				c["deadline_ms"] = 200
				c["syslog"] = ""
			})
			if tc.locked {
				holdLock(t, e.log)
			}
			code, _, stderr := run(tc.state, "--config", e.config, "poststop")
			if code != 0 || !strings.Contains(stderr, "poststop never refuses") || strings.Contains(stderr, "on_error") {
				t.Errorf("exit %d, stderr %q; want 0 and a line that says poststop never refuses, not on_error", code, stderr)
			}
		})
	}
}

// TestDeadlineNamesContainer: the line of a deadline passed before the
// record was written names the container (escaped: the ID is the
// container creator's to choose) once the state is read; it said only
// "the container".
func TestDeadlineNamesContainer(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"web-1", "container web-1 may not be recorded (on_error=allow)"},
		{"web\x1b[2J", `container "web\x1b[2J" may not be recorded (on_error=allow)`},
	} {
		e := newEnv(t, "hook.json", func(c map[string]any) {
			c["deadline_ms"] = 200
			c["syslog"] = ""
		})
		holdLock(t, e.log)
		code, _, stderr := run(selfState(tc.id), "--config", e.config, "createRuntime")
		if code != 0 || !strings.Contains(stderr, "internal deadline of 200 ms passed; "+tc.want) {
			t.Errorf("exit %d, stderr %q; want 0 and %q", code, stderr, tc.want)
		}
	}
}

// TestPolicyCheckEscapes: `nsrel-hook policy check` prints the config's
// paths, annotation keys and patterns escaped, as the tools print every
// string they did not write: a terminal escape in one cleared the
// screen or hid text. A recorded annotation key (as a trusted one) must
// not be empty nor hold a C0 control character or DEL; one with a C1,
// bidirectional or formatting character or a space, which an earlier
// release took, is taken and printed escaped (TestAnnotationKeys has the
// rest).
func TestPolicyCheckEscapes(t *testing.T) {
	const esc, bidi = "\x1b[2J", "\u202e"
	e := newEnv(t, "hook.json", func(c map[string]any) {
		dir := filepath.Dir(c["audit_log"].(string))
		c["audit_log"] = filepath.Join(dir, "audit"+esc+".jsonl")
		c["log_file"] = filepath.Join(dir, "hook"+esc+".log")
		c["seal_state"] = filepath.Join(dir, "seal\a")
		c["checkpoints"].(map[string]any)["file"] = filepath.Join(dir, "cp"+esc)
		c["trusted_selectors"] = map[string]any{"annotations": []any{"sel"}}
		c["policies"] = []any{map[string]any{"name": "p", "mode": "audit", "match": map[string]any{"annotations": map[string]any{"sel": "v\x1b\\[2J" + bidi}}}}
	})
	code, stdout, stderr := run("", "policy", "check", e.config)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if strings.ContainsAny(stdout, "\x1b\a"+bidi) {
		t.Errorf("unescaped config strings in:\n%s", stdout)
	}
	for _, want := range []string{`audit\x1b[2J.jsonl"`, `hook\x1b[2J.log"`, `seal\a"`, `cp\x1b[2J"`, `annotation sel = "v\x1b\\[2J\u202e"`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %s in:\n%s", want, stdout)
		}
	}
	for _, key := range []string{"", "key\x1b", "key\x7f"} {
		e := newEnv(t, "hook.json", func(c map[string]any) { c["record_annotations"] = []any{"io.kubernetes.pod.name", key} })
		code, stdout, stderr := run("", "policy", "check", e.config)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "record_annotations[1]: must be an annotation key: not empty, without control characters (C0 or DEL)") {
			t.Errorf("record_annotations key %q: exit %d, stdout %q, stderr %q; want refused", key, code, stdout, stderr)
		}
	}
	// rotate_bytes 0 never rotates: it said "rotate at 0 bytes".
	for rotate, want := range map[float64]string{0: "(never rotated)\n", 8192: "(rotate at 8192 bytes, keep "} {
		e := newEnv(t, "hook.json", func(c map[string]any) { c["rotate_bytes"] = rotate })
		if code, stdout, stderr := run("", "policy", "check", e.config); code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("rotate_bytes %v: exit %d, stderr %q; want %q in:\n%s", rotate, code, stderr, want, stdout)
		}
	}
	for key, want := range map[string]string{"a key": "a key", "key" + bidi: `"key\u202e"`, "key\u0085": `"key\u0085"`, "key\u00a0": `"key\u00a0"`} {
		e := newEnv(t, "hook.json", func(c map[string]any) { c["record_annotations"] = []any{"io.kubernetes.pod.name", key} })
		code, stdout, stderr := run("", "policy", "check", e.config)
		if code != 0 || strings.ContainsAny(stdout, bidi+"\u0085\u00a0") || !strings.Contains(stdout, "records annotations: io.kubernetes.pod.name, "+want+"\n") {
			t.Errorf("record_annotations key %q: exit %d, stderr %q; want taken and printed as %s in:\n%s", key, code, stderr, want, stdout)
		}
	}
}

// TestPolicyCheckWarnings: a config that loads but may not do what its
// author meant gets a warning from policy check (exit 0; the hook loads
// it as it is): a trusted annotation key that is none of those CRI sets
// (a typo made its block exempt nothing, OK), and a block that selects
// by a pod's or container's name, which the pod's author chooses in any
// namespace, without the namespace. The shipped configs get none.
func TestPolicyCheckWarnings(t *testing.T) {
	const typo = "io.kubernetes.cri.sandbox-namespce"
	tests := []struct {
		name    string
		trusted []any
		match   map[string]any
		want    []string
	}{
		{"misspelt key", []any{typo}, map[string]any{strings.ReplaceAll(typo, ".", `\.`): "prod"},
			[]string{"warning: trusted_selectors.annotations[0]: " + typo + " is not a key containerd's CRI plugin sets"}},
		{"container name alone", []any{"io.kubernetes.cri.container-name"}, map[string]any{"io\\.kubernetes\\.cri\\.container-name": "istio-proxy"},
			[]string{`warning: policy "p" selects by io.kubernetes.cri.container-name, whose value the pod's author chooses in any namespace: any pod that takes it is only audited; add io.kubernetes.cri.sandbox-namespace to its match`}},
		{"container name in a namespace", []any{"io.kubernetes.cri.container-name", "io.kubernetes.cri.sandbox-namespace"},
			map[string]any{"io\\.kubernetes\\.cri\\.container-name": "istio-proxy", "io\\.kubernetes\\.cri\\.sandbox-namespace": "istio-system"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "hook.json", func(c map[string]any) {
				c["trusted_selectors"] = map[string]any{"annotations": tt.trusted}
				c["policies"] = []any{map[string]any{"name": "p", "mode": "audit", "match": map[string]any{"annotations": tt.match}}}
			})
			code, stdout, stderr := run("", "policy", "check", e.config)
			if code != 0 || !strings.Contains(stdout, ": OK\n") || strings.Count(stderr, "warning: ") != len(tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 0, OK and %d warning(s)", code, stdout, stderr, len(tt.want))
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("no %q in stderr %q", w, stderr)
				}
			}
		})
	}
	for _, f := range []string{"hook.json", "hook-enforce.json", "hook-enforce-cri.json", "../deploy/kubernetes/hook.json"} {
		if code, _, stderr := run("", "policy", "check", filepath.Join("../../config", f)); code != 0 || strings.Contains(stderr, "warning") {
			t.Errorf("shipped %s: exit %d, stderr %q; want 0 and no warning", f, code, stderr)
		}
	}
}

// TestPolicyCheckAsUser: `policy check` run by a user other than root
// trusts that user's files and sockets as root's, which the hook (run by
// root) refuses: a socket of the user's passed with OK alone. It says so.
func TestPolicyCheckAsUser(t *testing.T) {
	nstest.RequireRoot(t)
	dir, err := os.MkdirTemp("", "nsrel-policy-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, sock := nstest.TheirSocket(t, dir)
	config := filepath.Join(dir, "hook.json")
	if err := os.WriteFile(config, []byte(`{"version":1,"audit_log":"/var/log/nsrel/audit.jsonl","syslog":"unix://`+sock+`","default":{"mode":"audit"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hookBin, "policy", "check", config)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || !strings.Contains(stdout.String(), "OK") ||
		!strings.Contains(stderr.String(), "note: checked as uid 65534, not root: files and sockets of uid 65534 pass here, and the hook (run by root) refuses them") {
		t.Errorf("policy check as uid 65534: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if code, _, stderr := run("", "policy", "check", config); code != 1 || !strings.Contains(stderr, "not trusted") {
		t.Errorf("policy check as root: exit %d, %s; want the socket refused", code, stderr)
	}
}

// TestPolicyCheckWrittenDirs: `policy check` refuses a config whose
// audit log, diagnostics file, checkpoint file or sealing state lies in
// a directory the hook refuses to write in (writable by a group, as
// Ubuntu's /var/log; a sticky directory anyone may write): it said OK,
// and the hook then refused every append, each container run
// unrecorded under on_error allow.
func TestPolicyCheckWrittenDirs(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	mkdir := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok, group, sticky := mkdir("ok", 0o700), mkdir("group", 0o775), mkdir("sticky", 0o777|os.ModeSticky)
	n := 0
	config := func(logDir, diagDir, cpDir, sealDir string) string {
		n++
		p := filepath.Join(dir, fmt.Sprintf("hook%d.json", n))
		data := fmt.Sprintf(`{"version":1,"audit_log":%q,"log_file":%q,"checkpoints":{"file":%q},"seal_state":%q,"default":{"mode":"audit"}}`,
			logDir+"/nsrel/audit.jsonl", diagDir+"/hook.log", cpDir+"/checkpoints.jsonl", sealDir+"/audit.seal")
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if code, out, stderr := run("", "policy", "check", config(ok, ok, ok, ok)); code != 0 || !strings.Contains(out, ": OK") {
		t.Fatalf("private directories: exit %d, %s%s; want OK", code, out, stderr)
	}
	for _, tc := range []struct {
		name   string
		config string
		want   []string
	}{
		{"audit log below a group-writable directory", config(group, ok, ok, ok), []string{"audit_log: " + group + ": writable by group (mode 0775)"}},
		{"all four in a sticky directory", config(ok, sticky, sticky, sticky), []string{
			"log_file: " + sticky + ": writable by group and others (mode 1777): anyone could plant files",
			"checkpoints.file: " + sticky + ":", "seal_state: " + sticky + ":"}},
	} {
		code, _, stderr := run("", "policy", "check", tc.config)
		if code != 1 {
			t.Errorf("%s: exit %d, stderr %q; want 1", tc.name, code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr %q; want %q", tc.name, stderr, w)
			}
		}
	}
	// Files that exist are checked as a write opens them: an audit log
	// someone made group-writable passed, and every append refused it.
	for _, tc := range []struct {
		name  string
		setup func(files string)
		want  string
	}{
		{"audit log writable by its group", func(files string) {
			os.WriteFile(filepath.Join(files, "nsrel/audit.jsonl"), nil, 0o664)
			os.Chmod(filepath.Join(files, "nsrel/audit.jsonl"), 0o664)
		}, "audit_log: audit: {files}/nsrel/audit.jsonl: writable by group (mode 0664)"},
		{"lock readable by others", func(files string) {
			os.WriteFile(filepath.Join(files, "nsrel/audit.jsonl.lock"), nil, 0o644)
		}, "audit_log: audit: {files}/nsrel/audit.jsonl.lock: readable by group or others (mode 0644)"},
		{"sealing state readable by others", func(files string) {
			os.WriteFile(filepath.Join(files, "audit.seal"), nil, 0o644)
		}, "seal_state: {files}/audit.seal: readable by group and others (mode 0644)"},
		{"checkpoint file a symlink", func(files string) {
			os.Symlink("/dev/null", filepath.Join(files, "checkpoints.jsonl"))
		}, "checkpoints.file: audit: {files}/checkpoints.jsonl: refusing a symlink"},
		{"checkpoint file's lock readable by others", func(files string) {
			os.WriteFile(filepath.Join(files, "checkpoints.jsonl.lock"), nil, 0o640)
		}, "checkpoints.file: audit: {files}/checkpoints.jsonl.lock: readable by group or others (mode 0640)"},
	} {
		files := mkdir(strings.ReplaceAll(tc.name, " ", "-"), 0o700)
		if err := os.Mkdir(filepath.Join(files, "nsrel"), 0o700); err != nil {
			t.Fatal(err)
		}
		tc.setup(files)
		code, _, stderr := run("", "policy", "check", config(files, files, files, files))
		if want := strings.ReplaceAll(tc.want, "{files}", files); code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%s: exit %d, stderr %q; want 1 and %q", tc.name, code, stderr, want)
		}
	}
}
