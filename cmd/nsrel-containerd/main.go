// Command nsrel-containerd is nsrel's long-lived containerd companion: `watch`
// records every container start containerd reports into the nsrel-hook
// audit chain. See `nsrel-containerd --help` and docs/containerd.md.
package main

import (
	"os"

	"github.com/nsrel/nsrel/containerd"
)

func main() {
	os.Exit(containerd.Main(os.Args[1:], os.Stdout, os.Stderr))
}
