package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsrel/nsrel/internal/nstest"
)

// TestDemoScript runs `make demo` (the README's main job) with its
// binaries in a temporary directory and checks its story: allowed,
// refused, history, intact chain, and nothing left behind; and that the
// binaries it built are make build's (version and commit in: the script
// built development versions over them).
func TestDemoScript(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireCmd(t, "runc")
	_, err := os.Stat("/bin/busybox")
	nstest.Require(t, err == nil, "needs /bin/busybox (apt busybox-static)")
	goBin := nstest.RequireCmd(t, "go")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := t.TempDir()
	cmd := exec.CommandContext(ctx, nstest.RequireCmd(t, "make"), "-C", "../..", "demo", "BIN="+bin, "GO="+goBin)
	outFile, err := os.Create(filepath.Join(t.TempDir(), "demo.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	cmd.Stdout, cmd.Stderr = outFile, outFile
	err = cmd.Run()
	out, _ := os.ReadFile(outFile.Name())
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"== 1. A container in its own user namespace: allowed and recorded",
		"refused; runc said:",
		"require_user_namespace: the container runs in the initial user namespace",
		"createRuntime allow policy userns-required (enforce)",
		"createRuntime deny  policy userns-required (enforce)",
		"poststop",
		"OK: 5 records (seq 1..5)",
		"sealed since seq 1: all 5 seals verified with the key",
		"checkpoint(s) of host",
		"the seal does not match the record (altered after it was sealed, or forged)",
		"the chain was rewritten",
		"demo: done",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	for _, tool := range []string{"nsrel-hook", "lsuserns"} {
		v, err := exec.Command(filepath.Join(bin, tool), "--version").Output()
		if err != nil || strings.Contains(string(v), "-dev") || !strings.Contains(string(v), "(commit ") {
			t.Errorf("%s --version after make demo: %q, %v; want make build's version and commit", tool, v, err)
		}
	}
	// The key file is root's alone: verify does not warn of it.
	if strings.Contains(string(out), "is readable by others") {
		t.Errorf("demo output warns of a readable file:\n%s", out)
	}
	// Its temporary directory is gone.
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, "/tmp/nsrel-demo."); i >= 0 {
			dir := strings.Fields(line[i:])[0]
			dir = dir[:len("/tmp/nsrel-demo.")+6]
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("demo left %s behind", dir)
			}
			break
		}
	}
}
