package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nsrel/nsrel/internal/nstest"
)

// TestTamperingClasses runs the campaign's lines, forge and inject
// classes (the bytes class, 40 s, is left to make reliability), and 60
// events of the stale class with a fixed seed: a change of verify that
// lets through a case it must catch, or fails a log it must pass, or of
// the append that takes an older record for the chain's head, fails the
// suite, not only a rerun of the campaign. (An empty line in a shipped
// copy, skipped by design since 1ac3133, failed the campaign unseen for
// a day.)
func TestTamperingClasses(t *testing.T) {
	nstest.RequireRoot(t)
	bin := filepath.Join(t.TempDir(), "reliability")
	if err := nstest.Build(bin, "."); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-only", "lines,forge,inject,stale", "-stale-events", "60", "-seed", "1", "-go", nstest.GoTool()).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("\nPASS: nothing missed, no record lost")) {
		t.Fatalf("reliability -only lines,forge,inject,stale: %v\n%s", err, out)
	}
}
