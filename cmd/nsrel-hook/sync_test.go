package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/nstest"
)

// TestSyncFailureVerdictStands: an fdatasync that fails after the record
// was written (strace injects EIO) left an allow record in the log, which
// verifies, while the hook said "not recorded" and, under on_error=deny,
// refused the container. The record's verdict stands now, and the
// diagnostics say the records may not survive a crash.
func TestSyncFailureVerdictStands(t *testing.T) {
	nstest.RequireRoot(t)
	strace := nstest.RequireCmd(t, "strace")
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = ""; c["on_error"] = "deny" })
	if code, _, stderr := run("", "--config", e.config, "audit", "seal-init"); code != 0 {
		t.Fatalf("seal-init: exit %d: %s", code, stderr)
	}
	state := stateOf(idMember("sync-eio"), pidMember(os.Getpid()), bundleMember)
	cmd := exec.Command(strace, "-f", "-o", "/dev/null", "-e", "trace=fdatasync", "-e", "inject=fdatasync:error=EIO", hookBin, "--config", e.config, audit.StageCreateRuntime)
	cmd.Stdin = bytes.NewReader(state)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("createRuntime with fdatasync failing: %v: %s", err, stderr.String())
	}
	recs := e.records(t, "sync-eio")
	if len(recs) != 1 || recs[0].Verdict != audit.VerdictAllow {
		t.Fatalf("records of sync-eio: %+v", recs)
	}
	diag, _ := os.ReadFile(filepath.Join(e.dir, "hook.log"))
	if want := "may not survive a crash"; !strings.Contains(string(diag)+stderr.String(), want) {
		t.Errorf("diagnostics do not say %q:\n%s\nstderr %s", want, diag, stderr.String())
	}
	if code, out, errs := run("", "audit", "verify", e.log); code != 0 {
		t.Errorf("verify: exit %d\n%s%s", code, out, errs)
	}
}
