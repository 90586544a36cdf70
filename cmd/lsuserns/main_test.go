package main

import (
	"flag"
	"testing"

	"github.com/nsrel/nsrel/cmd/lsuserns/help"
	"github.com/nsrel/nsrel/internal/lstool/lstooltest"
	"github.com/nsrel/nsrel/nsrel"
)

func TestMain(m *testing.M) { lstooltest.Main(m, "lsuserns", main) }

func TestCommand(t *testing.T) { lstooltest.CheckCommand(t, "lsuserns", nsrel.TypeUser) }

var update = flag.Bool("update", false, "rewrite help/help.txt from the flag set")

func TestHelp(t *testing.T) { lstooltest.CheckHelp(t, "help/help.txt", help.Text, *update) }
