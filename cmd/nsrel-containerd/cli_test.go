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
