package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/internal/nstest"
)

// TestLogrotateConfig runs logrotate(8) with the shipped config
// (config/logrotate/nsrel, its paths moved into the test's directory) on
// the diagnostics log and the checkpoints file the shipped hook config
// writes: both are renamed, the audit log is left alone, and the next
// runs of the hook write new files, which its checks accept, while the
// chain verifies.
func TestLogrotateConfig(t *testing.T) {
	e := newEnv(t, "hook.json", nil)
	shipStages(t, e, "a")
	for _, f := range []string{"hook.log", "checkpoints.jsonl"} {
		if _, err := os.Stat(filepath.Join(e.dir, f)); err != nil {
			t.Fatalf("before rotation: %v", err)
		}
	}
	logrotate(t, e.dir)
	for _, f := range []string{"hook.log", "checkpoints.jsonl"} {
		if _, err := os.Stat(filepath.Join(e.dir, f+".1")); err != nil {
			t.Errorf("%s not rotated: %v", f, err)
		}
		if _, err := os.Stat(filepath.Join(e.dir, f)); err == nil {
			t.Errorf("%s still there after rotation (nocreate: the hook makes it)", f)
		}
	}
	// A checkpoint is due again by time only (every 300 s) or count: a
	// hundred records more. The diagnostics log comes back at once.
	for range 50 {
		shipStages(t, e, "b")
	}
	for _, f := range []string{"hook.log", "checkpoints.jsonl"} {
		st, err := os.Stat(filepath.Join(e.dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s after rotation: %v %v; want it made again, 0600", f, st, err)
		}
	}
	if code, out, stderr := runBin(t, "", "audit", "verify", e.log); code != 0 || !strings.Contains(out, "OK: ") {
		t.Errorf("the audit log after rotation: exit %d\n%s%s", code, out, stderr)
	}
}

// logrotate runs logrotate(8) once, forced, with the shipped config, its
// /var/log/nsrel/ moved to dir.
func logrotate(t *testing.T, dir string) {
	t.Helper()
	bin := nstest.RequireCmd(t, "logrotate")
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "logrotate", "nsrel"))
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "nsrel")
	if err := os.WriteFile(conf, []byte(strings.ReplaceAll(string(data), "/var/log/nsrel/", dir+"/")), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state")
	if out, err := exec.Command(bin, "--force", "--verbose", "--state", state, conf).CombinedOutput(); err != nil {
		t.Fatalf("logrotate: %v\n%s", err, out)
	}
}
