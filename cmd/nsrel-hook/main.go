package main

import (
	"os"

	"github.com/nsrel/nsrel/hook"
)

func main() {
	os.Exit(hook.MainProcess(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
