package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/nsrel/nsrel/containerd"
	"github.com/nsrel/nsrel/internal/vocab"
)

// containersCmd prints the containers of the containerd daemon at
// --address as JSON (discover.Container objects): the tree commands run
// it instead of linking the containerd client themselves.
func containersCmd(args []string, stdout, stderr io.Writer) int {
	const prog = "nsrel-containerd containers"
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	address := fs.String("address", "", "")
	timeout := fs.Duration("timeout", vocab.DefaultContainerdTimeout, "")
	if code, done := parseArgs(fs, prog, args, stdout, stderr); done {
		return code
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "%s: --timeout %v: want a positive duration (see --help)\n", prog, *timeout)
		return 2
	}
	src := &containerd.Source{Address: vocab.ContainerdAddress(*address), Timeout: *timeout}
	// What was listed is printed even when a namespace failed: the error
	// names it, and the status says the list is not whole.
	cs, err := src.List(context.Background())
	if err != nil && len(cs) == 0 {
		fmt.Fprintf(stderr, "%s: %s\n", prog, vocab.OneLine(err))
		return 1
	}
	var werr error
	if cs == nil {
		_, werr = io.WriteString(stdout, "[]\n")
	} else {
		werr = vocab.WriteSafeJSON(stdout, cs, false)
	}
	if werr != nil {
		return vocab.Written(prog, werr, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s (its containers are not listed)\n", prog, vocab.OneLine(err))
		return 1
	}
	return 0
}
