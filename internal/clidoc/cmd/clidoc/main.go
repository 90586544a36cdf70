// Command clidoc writes the man pages and shell completions of nsrel's
// commands from their --help text:
//
//	clidoc -bin bin -out bin/doc -version 0.1.0 -date 2026-12-03
//
// writes OUT/man/man1/lsuserns.1, OUT/man/man8/nsrel-hook.8, ...,
// OUT/bash/NAME, OUT/zsh/_NAME and OUT/fish/NAME.fish.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/nsrel/nsrel/internal/clidoc"
)

// Commands are nsrel's commands and their man sections.
var Commands = []struct{ Name, Section string }{
	{"lsuserns", "1"}, {"lspidns", "1"}, {"nsrel-hook", "8"}, {"nsrel-containerd", "8"},
}

func main() {
	bin := flag.String("bin", "bin", "directory of the built commands")
	out := flag.String("out", "bin/doc", "output directory")
	version := flag.String("version", "", "version for the man pages' title line")
	date := flag.String("date", "", "date for the man pages' title line (YYYY-MM-DD)")
	flag.Parse()
	if *version == "" || *date == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "clidoc: usage: clidoc -bin DIR -out DIR -version V -date YYYY-MM-DD")
		os.Exit(2)
	}
	for _, c := range Commands {
		if err := write(*bin, *out, c.Name, c.Section, *version, *date); err != nil {
			fmt.Fprintf(os.Stderr, "clidoc: %v\n", err)
			os.Exit(1)
		}
	}
}

func write(bin, out, name, section, version, date string) error {
	var help, stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(bin, name), "--help")
	cmd.Stdout, cmd.Stderr = &help, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s --help: %v: %s", name, err, stderr.String())
	}
	p, err := clidoc.Parse(name, section, help.String())
	if err != nil {
		return err
	}
	files := []struct {
		path   string
		render func(*bytes.Buffer) error
	}{
		{filepath.Join("man", "man"+section, name+"."+section), func(b *bytes.Buffer) error { return p.Man(b, date, version) }},
		{filepath.Join("bash", name), func(b *bytes.Buffer) error { return p.Bash(b) }},
		{filepath.Join("zsh", "_"+name), func(b *bytes.Buffer) error { return p.Zsh(b) }},
		{filepath.Join("fish", name+".fish"), func(b *bytes.Buffer) error { return p.Fish(b) }},
	}
	for _, f := range files {
		var b bytes.Buffer
		if err := f.render(&b); err != nil {
			return err
		}
		path := filepath.Join(out, f.path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}
