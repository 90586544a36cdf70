package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nsrel/nsrel/internal/clidoc"
)

// TestHelpReadsAsManPage: the help is what the man page and the shell
// completions are made from at install (clidoc): a line clidoc cannot
// read failed only there, in make install and the package build.
func TestHelpReadsAsManPage(t *testing.T) {
	var b bytes.Buffer
	if err := printUsage(&b); err != nil {
		t.Fatal(err)
	}
	if _, err := clidoc.Parse("nsrel-containerd", "8", b.String()); err != nil {
		t.Error(err)
	}
}

// TestHelpWord: `help` after a subcommand prints the usage, exit 0, as
// `nsrel-hook audit help` does (it was an unexpected argument, exit 2);
// another word still is one.
func TestHelpWord(t *testing.T) {
	var usage bytes.Buffer
	if err := printUsage(&usage); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"watch", "nri", "install-hook", "ready"} {
		var out, errb bytes.Buffer
		if code := run([]string{sub, "help"}, &out, &errb); code != 0 || out.String() != usage.String() || errb.Len() != 0 {
			t.Errorf("%s help: exit %d, stderr %q, usage printed: %t; want 0 and the usage", sub, code, errb.String(), out.String() == usage.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"nri", "helpme"}, &out, &errb); code != 2 || errb.String() != "nsrel-containerd nri: unexpected argument \"helpme\" (see --help)\n" {
		t.Errorf("nri helpme: exit %d, stderr %q; want 2, unexpected argument", code, errb.String())
	}
}

// TestHelpExitStatus: the help (and the man page made from it) said exit
// status 0 meant "stopped by a signal", though containers, ready and
// install-hook exit 0 when they succeed; it says success now, and that
// watch and nri end so.
func TestHelpExitStatus(t *testing.T) {
	var b bytes.Buffer
	if err := printUsage(&b); err != nil {
		t.Fatal(err)
	}
	help := strings.Join(strings.Fields(b.String()), " ")
	if want := "Exit status: 0 success (watch and nri: stopped by a signal), 1 failure, 2 usage error."; !strings.Contains(help, want) {
		t.Errorf("help says %q; want %q", help[strings.Index(help, "Exit status"):], want)
	}
	ready := filepath.Join(t.TempDir(), "ready")
	if err := os.WriteFile(ready, []byte("registered\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"ready", ready}, &out, &errb); code != 0 {
		t.Errorf("ready %s: exit %d (%s); want 0, the success the help names", ready, code, errb.String())
	}
}

// TestReadyWantsRegularFile: ready exited 0 for any path that existed,
// so a probe given the ready file's directory (/run/nsrel, which the
// pod's volume makes before nri registers) passed at once; the file nri
// writes is a regular file, and only that passes now.
func TestReadyWantsRegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, kind string }{{dir, "a directory"}, {fifo, "a FIFO"}} {
		var out, errb bytes.Buffer
		code := run([]string{"ready", tc.path}, &out, &errb)
		if want := "nsrel-containerd ready: not ready: " + tc.path + ": " + tc.kind + ", not the file nri writes once registered\n"; code != 1 || errb.String() != want {
			t.Errorf("ready %s: exit %d, stderr %q; want 1, %q", tc.path, code, errb.String(), want)
		}
	}
}
