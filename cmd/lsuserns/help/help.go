// Package help is the --help of lsuserns, answered during package
// initialisation (cmd/internal/quickhelp) when the command line asks for
// nothing else. help.txt is what the flag parser prints for --help
// without CONTAINERD_ADDRESS (the default of --containerd-address); the
// command's tests check it and rewrite it with -update.
package help

import (
	_ "embed"

	"github.com/nsrel/nsrel/cmd/internal/quickhelp"
)

// Text is the help.
//
//go:embed help.txt
var Text string

func init() { quickhelp.Answer(Text, "CONTAINERD_ADDRESS") }
