package main

import (
	"bytes"
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
