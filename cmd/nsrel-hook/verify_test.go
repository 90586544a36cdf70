package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
)

// runBinTimeout runs nsrel-hook with args, killing it after d: a verify
// that does not end is a failure of its own.
func runBinTimeout(t *testing.T, d time.Duration, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, hookBin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("nsrel-hook %s: still running after %v (killed)", strings.Join(args, " "), d)
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	case err != nil:
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

// newVerifyKey makes a sealing key as seal-init does and writes its
// verification key to a file for --key @FILE.
func newVerifyKey(t *testing.T) (audit.VerifyKey, string) {
	t.Helper()
	dir := t.TempDir()
	key, err := audit.InitSeal(filepath.Join(dir, "state", "audit.seal"), false)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "key")
	if err := os.WriteFile(file, []byte(key.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, file
}

// TestVerifyFarEpoch gives `audit verify --key` (and --nodes) a one-line
// log whose record, seq 2^40, claims a seal of the given key at epoch
// 2^40-1 (the key's ID is in every seal it made: anyone may know it):
// verify derived every key up to that epoch before it compared the tag,
// about 10^12 HMACs, and gave no verdict. It must fail at once, naming
// the record.
func TestVerifyFarEpoch(t *testing.T) {
	key, keyFile := newVerifyKey(t)
	seq := uint64(1) << 40
	r := &audit.Record{Seq: seq, Time: "2026-12-03T08:00:00Z", Host: "node-a", Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime,
		ContainerID: "far", Prev: strings.Repeat("a", 64), Seal: key.ID.String() + "." + strconv.FormatUint(seq-1, 10) + "." + strings.Repeat("0", 64)}
	line, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	lg := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(lg, line, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--key", "@" + keyFile, lg},
		{"--key", "@" + keyFile, "--partial", lg},
		{"--key", "@" + keyFile, "--nodes", lg},
		{"--key", "@" + keyFile, "--node", "node-a", lg},
	} {
		code, out, stderr := runBinTimeout(t, 20*time.Second, append([]string{"audit", "verify"}, args...)...)
		if code != 1 || !strings.Contains(stderr, "FAILED") || !strings.Contains(stderr, ":1: seq 1099511627776: sealed with epoch 1099511627775") ||
			!strings.Contains(stderr, "further than verify derives keys") {
			t.Errorf("audit verify %s: exit %d, want 1 and the record named\n%s%s", strings.Join(args, " "), code, out, stderr)
		}
	}
}
