package main

import "os"

func main() {
	os.Exit(mainWith(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, true))
}
