// Command mkbundle writes a busybox OCI bundle for runc or crun, for the
// demo and for trying the hook by hand.
//
//	go run ./internal/bundle/cmd/mkbundle [--userns] [--hooks FILE] DIR [ARG...]
//
// With --userns the container gets its own user namespace mapping
// container root to host UID/GID 100000 (65536 IDs). --hooks merges the
// "hooks" object of FILE (such as config/runc/hooks.json) into the spec.
// The container runs ARG... (default: sleep 3600).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/internal/bundle"
)

func main() {
	fs := flag.NewFlagSet("mkbundle", flag.ContinueOnError)
	userns := fs.Bool("userns", false, "give the container its own user namespace (root mapped to host 100000)")
	hooks := fs.String("hooks", "", "merge the `hooks` object of this JSON `file` into config.json")
	rootfs := fs.String("rootfs", "", "use this existing absolute rootfs `dir` instead of building one")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: mkbundle [--userns] [--hooks FILE] [--rootfs DIR] BUNDLE-DIR [ARG...]")
		fmt.Fprintln(fs.Output(), "example: mkbundle --userns --hooks config/runc/hooks.json /tmp/b sleep 60")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() < 1 {
		fs.Usage()
		os.Exit(2)
	}
	opts := bundle.Options{UserNS: *userns, Args: fs.Args()[1:], Rootfs: *rootfs}
	if *hooks != "" {
		data, err := os.ReadFile(*hooks)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mkbundle:", err)
			os.Exit(1)
		}
		var v struct {
			Hooks *specs.Hooks `json:"hooks"`
		}
		if err := json.Unmarshal(data, &v); err != nil {
			fmt.Fprintf(os.Stderr, "mkbundle: %s: %v\n", *hooks, err)
			os.Exit(1)
		}
		opts.Hooks = v.Hooks
	}
	b, err := bundle.Create(fs.Arg(0), opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkbundle:", err)
		os.Exit(1)
	}
	fmt.Println(b.Dir)
}
