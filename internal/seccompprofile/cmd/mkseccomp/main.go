// Command mkseccomp writes the node agent's Localhost seccomp profile
// (package seccompprofile) as JSON, for the build machine's
// architecture: mkseccomp -o FILE (make image).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/nsrel/nsrel/internal/seccompprofile"
)

func main() {
	out := flag.String("o", "", "the file to write")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: mkseccomp -o FILE")
		os.Exit(2)
	}
	data, err := json.MarshalIndent(seccompprofile.NodeAgent(), "", "\t")
	if err == nil {
		err = os.WriteFile(*out, append(data, '\n'), 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkseccomp: %v\n", err)
		os.Exit(1)
	}
}
