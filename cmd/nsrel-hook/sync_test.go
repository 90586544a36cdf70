package main

import (
	"bytes"
	"fmt"
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
	sealState := filepath.Join(e.dir, "audit.seal")
	stateBefore, err := os.ReadFile(sealState)
	if err != nil {
		t.Fatal(err)
	}
	state := stateOf(idMember("sync-eio"), pidMember(os.Getpid()), bundleMember)
	cmd := exec.Command(strace, "-f", "-o", "/dev/null", "-e", "trace=fdatasync", "-e", "inject=fdatasync:error=EIO", hookBin, "--config", e.config, audit.StageCreateRuntime)
	cmd.Stdin = bytes.NewReader(state)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("createRuntime with fdatasync failing: %v: %s", err, stderr.String())
	}
	// The state keeps the record's key until an append syncs, as after
	// a crash before the sync: were the line lost, the next record
	// would take its seq with that key, and verify would pass.
	if after, _ := os.ReadFile(sealState); !bytes.Equal(after, stateBefore) {
		t.Error("the sealing state moved past a record whose sync failed")
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

// TestSyncFailureWarnsOperator: seal-init and audit ack, whose appends
// no longer fail on a sync that failed after the write, say so on
// stderr (their logs were opened without a warning sink: said nowhere).
func TestSyncFailureWarnsOperator(t *testing.T) {
	nstest.RequireRoot(t)
	strace := nstest.RequireCmd(t, "strace")
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = "" })
	eio := func(args ...string) (int, string, string) {
		cmd := exec.Command(strace, append([]string{"-f", "-o", "/dev/null", "-e", "trace=fdatasync", "-e", "inject=fdatasync:error=EIO", hookBin, "--config", e.config}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, stdout.String(), stderr.String()
	}
	const want = "may not survive a crash"
	if code, _, stderr := eio("audit", "seal-init"); code != 0 || !strings.Contains(stderr, "nsrel-hook: audit seal-init: warning: ") || !strings.Contains(stderr, want) {
		t.Errorf("seal-init with fdatasync failing: exit %d, stderr %q", code, stderr)
	}
	createRuntime(t, e, "w1")
	f, err := os.OpenFile(e.log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("zzzz damaged\n")
	f.Close()
	createRuntime(t, e, "w2")
	var seq uint64
	for _, r := range e.records(t, "") {
		if r.Stage == audit.StageDamaged {
			seq = r.Seq
		}
	}
	if code, _, stderr := eio("audit", "ack", fmt.Sprint(seq), "--reason", "checked"); code != 0 || !strings.Contains(stderr, "nsrel-hook: audit ack: warning: ") || !strings.Contains(stderr, want) {
		t.Errorf("ack with fdatasync failing: exit %d, stderr %q", code, stderr)
	}
}
