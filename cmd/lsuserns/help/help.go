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
