package main

import (
	"testing"

	"github.com/nsrel/nsrel/cmd/lspidns/help"
	"github.com/nsrel/nsrel/internal/lstool/lstooltest"
	"github.com/nsrel/nsrel/nsrel"
)

func TestMain(m *testing.M) { lstooltest.Main(m, "lspidns", main) }

func TestCommand(t *testing.T) { lstooltest.CheckCommand(t, "lspidns", nsrel.TypePID) }

func TestHelp(t *testing.T) { lstooltest.CheckHelp(t, "help/help.txt", help.Text) }
