package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	code, _, stderr := runBinEIO(t, string(state), "--config", e.config, audit.StageCreateRuntime)
	if code != 0 {
		t.Fatalf("createRuntime with fdatasync failing: exit %d: %s", code, stderr)
	}
	// The record's key is gone all the same: a disk that keeps failing
	// must not keep every key on the node.
	if after, _ := os.ReadFile(sealState); bytes.Equal(after, stateBefore) {
		t.Error("the sealing state kept the key of a record whose sync failed")
	}
	recs := e.records(t, "sync-eio")
	if len(recs) != 1 || recs[0].Verdict != audit.VerdictAllow {
		t.Fatalf("records of sync-eio: %+v", recs)
	}
	diag, _ := os.ReadFile(filepath.Join(e.dir, "hook.log"))
	if want := "may not survive a crash"; !strings.Contains(string(diag)+stderr, want) {
		t.Errorf("diagnostics do not say %q:\n%s\nstderr %s", want, diag, stderr)
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
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = "" })
	eio := func(args ...string) (int, string, string) {
		return runBinEIO(t, "", append([]string{"--config", e.config}, args...)...)
	}
	const want = "may not survive a crash"
	if code, _, stderr := eio("audit", "seal-init"); code != 0 || !strings.Contains(stderr, "nsrel-hook: audit seal-init: warning: ") || !strings.Contains(stderr, want) {
		t.Errorf("seal-init with fdatasync failing: exit %d, stderr %q", code, stderr)
	}
	createRuntime(t, e, "w1")
	garble(t, e.log)
	createRuntime(t, e, "w2")
	if code, _, stderr := eio("audit", "ack", damageSeq(t, e.log), "--reason", "checked"); code != 0 || !strings.Contains(stderr, "nsrel-hook: audit ack: warning: ") || !strings.Contains(stderr, want) {
		t.Errorf("ack with fdatasync failing: exit %d, stderr %q", code, stderr)
	}
}

// TestSyncFailureKeepsRetainedFiles: the append that rotates and removes
// old files records their removal; when its sync fails, those records
// may be lost, so the files stay (they were removed all the same, and a
// crash then left a chain starting without a record of what went). The
// next rotation removes and records them.
func TestSyncFailureKeepsRetainedFiles(t *testing.T) {
	nstest.RequireRoot(t)
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = ""; c["rotate_bytes"] = 4096; c["keep_files"] = 1 })
	key := sealInit(t, e)
	rotated := func() []string { return rotatedFiles(e) }
	// Until the next append rotates with a file to remove.
	for i := 0; ; i++ {
		fi, err := os.Stat(e.log)
		if err == nil && fi.Size() >= 4096 && len(rotated()) == 1 {
			break
		}
		createRuntime(t, e, fmt.Sprint("r", i))
	}
	before := rotated()
	state := stateOf(idMember("rotate-eio"), pidMember(os.Getpid()), bundleMember)
	if code, _, stderr := runBinEIO(t, string(state), "--config", e.config, audit.StageCreateRuntime); code != 0 {
		t.Fatalf("createRuntime with fdatasync failing: exit %d: %s", code, stderr)
	}
	after := rotated()
	if len(after) != len(before)+1 || after[0] != before[0] {
		t.Errorf("rotated files before the failed sync %q, after %q: want the old one kept and one more", before, after)
	}
	// retained returns the seqs of the log's retention records
	// that name the file kept, each checked for saying what a failed
	// sync leaves.
	retained := func() []uint64 {
		var seqs []uint64
		for _, r := range e.records(t, "") {
			if r.Stage != audit.StageRetention || r.Dropped == nil || r.Dropped.File != filepath.Base(before[0]) {
				continue
			}
			seqs = append(seqs, r.Seq)
			if !strings.Contains(r.Error, "if the sync fails, the file stays") {
				t.Errorf("retention record seq %d: %q does not say what a failed sync leaves", r.Seq, r.Error)
			}
		}
		return seqs
	}
	first := retained()
	if len(first) != 1 {
		t.Fatalf("retention records naming %s after the failed sync: seqs %v, want one", before[0], first)
	}
	for i := 0; len(rotated()) > 1; i++ {
		if i == 100 {
			t.Fatalf("rotated files never back to keep_files: %q", rotated())
		}
		createRuntime(t, e, fmt.Sprint("later-", i))
	}
	if again := retained(); len(again) == 0 || again[len(again)-1] <= first[0] {
		t.Errorf("retention records naming %s after the next rotation: seqs %v, want one after seq %d", before[0], again, first[0])
	}
	if code, out, stderr := run("", "--config", e.config, "audit", "verify", "--key", key); code != 0 {
		t.Errorf("verify: exit %d: %s%s", code, out, stderr)
	}
}

// TestSyncFailureLostSealStart: seal-init (with or without --replace)
// whose fdatasync fails, then a crash that loses its seal-start record:
// the state had moved past epoch 0 of a key no record introduced, and
// every later record was unsealed until another seal-init --replace. It
// stays at epoch 0 now, and the next append introduces the key.
func TestSyncFailureLostSealStart(t *testing.T) {
	nstest.RequireRoot(t)
	for _, replace := range []bool{false, true} {
		t.Run(fmt.Sprint("replace=", replace), func(t *testing.T) {
			e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = "" })
			args := []string{"--config", e.config, "audit", "seal-init"}
			var keys []string
			if replace {
				keys = append(keys, sealInit(t, e))
				args = append(args, "--replace")
			}
			createRuntime(t, e, "before")
			fi, err := os.Stat(e.log)
			if err != nil {
				t.Fatal(err)
			}
			code, out, stderr := runBinEIO(t, "", args...)
			if code != 0 {
				t.Fatalf("seal-init with fdatasync failing: exit %d: %s", code, stderr)
			}
			keys = append(keys, shownKey(out))
			if err := os.Truncate(e.log, fi.Size()); err != nil { // the crash
				t.Fatal(err)
			}
			createRuntime(t, e, "after")
			createRuntime(t, e, "after2")
			vargs := []string{"--config", e.config, "audit", "verify"}
			for _, k := range keys {
				vargs = append(vargs, "--key", k)
			}
			if code, out, stderr := run("", vargs...); code != 0 {
				t.Errorf("verify: exit %d: %s%s", code, out, stderr)
			}
		})
	}
}

// TestFirstAppendSyncsDirectory: the append that makes the audit log
// syncs the log's directory after the file, and the directory it made
// for it, the one above (a node's first run makes /var/log/nsrel), so
// that a power loss cannot lose the file whose first records a
// checkpoint may name already (the chain then started again at seq 1,
// and verify with the checkpoints took the node for tampered with).
// Later appends sync neither.
func TestFirstAppendSyncsDirectory(t *testing.T) {
	nstest.RequireRoot(t)
	strace := nstest.RequireCmd(t, "strace")
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["syslog"] = ""
		c["audit_log"] = filepath.Join(filepath.Dir(c["audit_log"].(string)), "made", "audit.jsonl")
	})
	e.log = filepath.Join(e.dir, "made", "audit.jsonl")
	dirSyncs := func(id string) int {
		t.Helper()
		trace := filepath.Join(t.TempDir(), "trace")
		state := stateOf(idMember(id), pidMember(os.Getpid()), bundleMember)
		if code, _, stderr := runProgram(t, string(state), strace, "-f", "-y", "-o", trace, "-e", "trace=fsync", hookBin, "--config", e.config, audit.StageCreateRuntime); code != 0 {
			t.Fatalf("createRuntime of %s: exit %d: %s", id, code, stderr)
		}
		data, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		// A call another thread's interrupts is traced on two lines
		// (`fsync(3</dir> <unfinished ...>`, then `<... fsync resumed>)
		// = 0`): the calls are counted by the line that names the
		// directory, whatever follows.
		n := 0
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, "fsync(") && (strings.Contains(line, "<"+filepath.Dir(e.log)+">") || strings.Contains(line, "<"+e.dir+">")) {
				n++
			}
		}
		return n
	}
	if _, err := os.Stat(e.log); err == nil {
		t.Fatalf("%s exists before the first stage", e.log)
	}
	if n := dirSyncs("first"); n != 2 {
		t.Errorf("the first append synced the log's directory and the one above %d times; want 2 (once each)", n)
	}
	if n := dirSyncs("second"); n != 0 {
		t.Errorf("the second append synced the log's directory or the one above %d times; want 0", n)
	}
}

// TestDeadlineDuringWrite: the internal deadline passed while the
// record's line was being written (strace holds the write's return, as a
// slow disk would): the hook said the container "may not be recorded"
// and, under on_error=deny, refused it, while the log held its allow
// record. The deadline waits for the write (up to writeGrace): the
// verdict stands. A write still under way then may never land (the
// first version took it for written, and a write that failed after the
// wait ran the container unrecorded): on_error decides.
func TestDeadlineDuringWrite(t *testing.T) {
	nstest.RequireRoot(t)
	strace := nstest.RequireCmd(t, "strace")
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = ""; c["on_error"] = "deny"; c["deadline_ms"] = 500 })
	for _, c := range []struct {
		id    string
		delay time.Duration
		code  int
		want  string
	}{
		{"slow-write", 800 * time.Millisecond, 0, "was written; its verdict stands"},
		{"stalled-write", 1900 * time.Millisecond, 1, "was being written, still not written 500ms later; it may not be recorded (on_error=deny)"},
	} {
		state := stateOf(idMember(c.id), pidMember(os.Getpid()), bundleMember)
		code, _, stderr := runProgram(t, string(state), strace, "-f", "-o", "/dev/null", "-P", e.log, "-e", "trace=write",
			"-e", fmt.Sprintf("inject=write:delay_exit=%d", c.delay.Microseconds()), hookBin, "--config", e.config, audit.StageCreateRuntime)
		recs := e.records(t, c.id)
		if len(recs) != 1 || recs[0].Verdict != audit.VerdictAllow {
			t.Fatalf("%s: records %+v; want one allow record", c.id, recs)
		}
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: the write held %s past the deadline: exit %d, stderr %q; want %d and %q", c.id, c.delay, code, stderr, c.code, c.want)
		}
	}
	if code, out, errs := run("", "audit", "verify", e.log); code != 0 {
		t.Errorf("verify: exit %d\n%s%s", code, out, errs)
	}
}

// TestDeadlineUnderLockWritesNothing: the internal deadline passed once
// the log's lock was taken and before the record's write (strace holds
// the lock's return; a slow log_file, which the hook waits for before it
// exits, gives the append time to go on): the hook said the container
// "may not be recorded" and refused it under on_error=deny, and the
// append wrote its allow record all the same. Nothing is written once
// the deadline's verdict is out (audit.Options.Writing refuses).
func TestDeadlineUnderLockWritesNothing(t *testing.T) {
	nstest.RequireRoot(t)
	strace := nstest.RequireCmd(t, "strace")
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = ""; c["on_error"] = "deny"; c["deadline_ms"] = 500 })
	createRuntime(t, e, "first") // the lock file exists
	for i := range 3 {
		id := fmt.Sprint("late-lock-", i)
		state := stateOf(idMember(id), pidMember(os.Getpid()), bundleMember)
		code, _, stderr := runProgram(t, string(state), strace, "-f", "-o", "/dev/null", "-P", e.log+".lock", "-P", filepath.Join(e.dir, "hook.log"),
			"-e", "trace=flock,write", "-e", "inject=flock:delay_exit=570000", "-e", "inject=write:delay_enter=45000",
			hookBin, "--config", e.config, audit.StageCreateRuntime)
		if recs := e.records(t, id); code != 1 || len(recs) != 0 || !strings.Contains(stderr, "may not be recorded (on_error=deny)") {
			t.Errorf("%s: the lock taken past the deadline: exit %d, %d records, stderr %q; want 1, none, and that it may not be recorded", id, code, len(recs), stderr)
		}
	}
	if code, out, errs := run("", "audit", "verify", e.log); code != 0 {
		t.Errorf("verify: exit %d\n%s%s", code, out, errs)
	}
}

// TestTornOverwriteTruncateFails: the append that writes over a torn
// tail longer than a line cuts the old bytes left after its records;
// when that cut failed (strace injects EIO into ftruncate), the append
// failed, and the hook said "not recorded" and refused the container
// under on_error=deny while its allow record was whole in the log. The
// records stand: the failed cut is a warning, and the next append
// records what it left as a torn tail. A cut that hangs past the
// deadline and its wait (a soft NFS mount) did the same: the write
// counts as done once the lines are written, before the cut.
func TestTornOverwriteTruncateFails(t *testing.T) {
	nstest.RequireRoot(t)
	strace := nstest.RequireCmd(t, "strace")
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = ""; c["on_error"] = "deny"; c["deadline_ms"] = 1000 })
	createRuntime(t, e, "before")
	for _, inject := range []string{"error=EIO", "delay_enter=2500000"} {
		f, err := os.OpenFile(e.log, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(bytes.Repeat([]byte("x"), audit.MaxLine+100_000)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		id := "cut-" + strings.Split(inject, "=")[0]
		state := stateOf(idMember(id), pidMember(os.Getpid()), bundleMember)
		code, _, stderr := runProgram(t, string(state), strace, "-f", "-o", "/dev/null", "-P", e.log, "-e", "trace=ftruncate",
			"-e", "inject=ftruncate:"+inject, hookBin, "--config", e.config, audit.StageCreateRuntime)
		if recs := e.records(t, id); code != 0 || len(recs) != 1 || recs[0].Verdict != audit.VerdictAllow {
			t.Errorf("the cut after the records (%s): exit %d, %d records, stderr %q; want 0 and the allow record", inject, code, len(recs), stderr)
		}
		createRuntime(t, e, "after-"+id)
	}
	if code, out, errs := run("", "audit", "verify", e.log); code != 0 {
		t.Errorf("verify: exit %d\n%s%s", code, out, errs)
	}
}
