package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstallHook installs a hook and a config into a directory, twice
// (the second run replaces both), and refuses a config that does not
// parse without touching what is installed.
func TestInstallHook(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "dest")
	os.Mkdir(dest, 0o755)
	hook := filepath.Join(dir, "nsrel-hook")
	cfg := filepath.Join(dir, "hook.json")
	for i, content := range []string{"#!/bin/true first\n", "#!/bin/true second\n"} {
		os.WriteFile(hook, []byte(content), 0o700)
		policy := `{"version": 1, "audit_log": "/var/log/nsrel/audit.jsonl", "default": {"name": "d` + content[11:len(content)-1] + `", "mode": "audit"}}`
		os.WriteFile(cfg, []byte(policy), 0o600)
		var out, errb bytes.Buffer
		if code := run([]string{"install-hook", "--dest", dest, "--hook", hook, "--config", cfg}, &out, &errb); code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, code, errb.String())
		}
		for name, want := range map[string]string{"nsrel-hook": content, "hook.json": policy} {
			p := filepath.Join(dest, name)
			got, err := os.ReadFile(p)
			if err != nil || string(got) != want {
				t.Errorf("run %d: %s = %q, %v; want %q", i, name, got, err, want)
			}
			st, _ := os.Stat(p)
			if wantMode := map[string]os.FileMode{"nsrel-hook": 0o755, "hook.json": 0o644}[name]; st.Mode().Perm() != wantMode {
				t.Errorf("run %d: %s mode %v, want %v", i, name, st.Mode().Perm(), wantMode)
			}
		}
	}
	os.WriteFile(cfg, []byte(`{"version": 1, "polices": []}`), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"install-hook", "--dest", dest, "--hook", hook, "--config", cfg}, &out, &errb); code != 1 || strings.Count(strings.TrimSpace(errb.String()), "\n") != 0 {
		t.Errorf("bad config: exit %d, stderr %q; want 1 and one line", code, errb.String())
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "hook.json")); !strings.Contains(string(got), "second") {
		t.Errorf("a refused config replaced the installed one: %s", got)
	}
	entries, _ := os.ReadDir(dest)
	if len(entries) != 2 {
		t.Errorf("%d files in the destination, want 2 (no temporary files left)", len(entries))
	}
	ready := filepath.Join(dir, "ready")
	os.WriteFile(ready, nil, 0o644)
	if code := run([]string{"ready", ready}, &out, &errb); code != 0 {
		t.Errorf("ready with the file present: exit %d", code)
	}
}
