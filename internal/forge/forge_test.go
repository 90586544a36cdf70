package forge_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/forge"
)

// TestRechain forges a sealed log: the chain alone passes, the key and
// the checkpoints do not.
func TestRechain(t *testing.T) {
	dir := t.TempDir()
	cpFile := filepath.Join(dir, "cp.jsonl")
	opts := audit.Options{SealState: filepath.Join(dir, "audit.seal"), Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: cpFile}}
	l, err := audit.Open(filepath.Join(dir, "audit.jsonl"), opts)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := l.StartSealing(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{audit.VerdictAllow, audit.VerdictDeny, audit.VerdictAllow} {
		if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "c-" + v, Verdict: v}); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(l.Path())
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	lines[2] = bytes.Replace(lines[2], []byte(`"verdict":"deny"`), []byte(`"verdict":"allow"`), 1)
	out, err := forge.Rechain(lines, 2)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(l.Path(), append(bytes.Join(out, []byte("\n")), '\n'), 0o600)
	files, _ := l.Files()
	if _, err := audit.Verify(files, audit.VerifyOptions{}); err != nil {
		t.Errorf("the chain alone: %v", err)
	}
	if _, err := audit.Verify(files, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}); err == nil || !strings.Contains(err.Error(), "seal does not match") {
		t.Errorf("with the key: %v", err)
	}
	var cps []audit.Checkpoint
	for c, err := range audit.ReadCheckpoints(cpFile) {
		if err != nil {
			t.Fatal(err)
		}
		cps = append(cps, c)
	}
	if _, err := audit.Verify(files, audit.VerifyOptions{Checkpoints: cps}); err == nil || !strings.Contains(err.Error(), "rewritten") {
		t.Errorf("with the checkpoints: %v", err)
	}
}
