package main

import (
	"os"

	_ "github.com/nsrel/nsrel/cmd/lspidns/help" // --help answered before the other packages initialise
	"github.com/nsrel/nsrel/containers"
	"github.com/nsrel/nsrel/internal/lstool"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

func main() {
	os.Exit(lstool.Main(lstool.Tool{Name: "lspidns", Type: nsrel.TypePID, Sources: sources}))
}

// sources returns the container sources that annotate the tree.
func sources(c lstool.SourceConfig) []discover.ContainerSource {
	return containers.TreeSources(c.ContainerdAddress, c.Timeout)
}
