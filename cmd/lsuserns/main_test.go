package main

import (
	"testing"

	"github.com/nsrel/nsrel/cmd/lsuserns/help"
	"github.com/nsrel/nsrel/internal/lstool/lstooltest"
	"github.com/nsrel/nsrel/nsrel"
)

func TestMain(m *testing.M) { lstooltest.Main(m, "lsuserns", main) }

func TestCommand(t *testing.T) { lstooltest.CheckCommand(t, "lsuserns", nsrel.TypeUser) }

func TestHelp(t *testing.T) { lstooltest.CheckHelp(t, "help/help.txt", help.Text) }
