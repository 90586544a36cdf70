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
	cs, err := src.List(context.Background())
	if err != nil {
		fmt.Fprintf(stderr, "nsrel-containerd: %s\n", vocab.OneLine(err))
		return 1
	}
	if cs == nil {
		io.WriteString(stdout, "[]\n")
		return 0
	}
	if err := vocab.WriteSafeJSON(stdout, cs, false); err != nil {
		fmt.Fprintf(stderr, "nsrel-containerd: write: %v\n", err)
		return 1
	}
	return 0
}
