package main

import (
	"os"

	_ "github.com/nsrel/nsrel/internal/bigstack" // one early stack growth instead of three deep ones
)

func main() {
	os.Exit(mainWith(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, true))
}
