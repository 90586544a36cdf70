package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nsrel/nsrel/internal/nstest"
)

// TestTamperingClasses runs the campaign's lines, forge and inject
// classes (the bytes class, 40 s, is left to make reliability): a change
// of verify that lets through a case it must catch, or fails a log it
// must pass, fails the suite, not only a rerun of the campaign. (An
// empty line in a shipped copy, skipped by design since 1ac3133, failed
// the campaign unseen for a day.)
func TestTamperingClasses(t *testing.T) {
	nstest.RequireRoot(t)
	bin := filepath.Join(t.TempDir(), "reliability")
	if err := nstest.Build(bin, "."); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-only", "lines,forge,inject", "-go", nstest.GoTool()).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("\nPASS: nothing missed, no record lost")) {
		t.Fatalf("reliability -only lines,forge,inject: %v\n%s", err, out)
	}
}
