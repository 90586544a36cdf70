// Command forge rewrites an audit log file as an attacker with root on
// the node would (package forge): it replaces the first occurrence of
// OLD with NEW in the first line holding it, or removes that line, and
// recomputes the chain after it, so that `nsrel-hook audit verify`
// without the verification key or checkpoints cannot tell.
//
//	forge [-delete] LOG OLD [NEW]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/nsrel/nsrel/internal/forge"
)

func main() {
	del := flag.Bool("delete", false, "remove the line holding OLD instead of editing it")
	flag.Parse()
	if flag.NArg() < 2 || flag.NArg() > 3 || (*del != (flag.NArg() == 2)) {
		fmt.Fprintln(os.Stderr, "usage: forge LOG OLD NEW | forge -delete LOG OLD")
		os.Exit(2)
	}
	path, old := flag.Arg(0), []byte(flag.Arg(1))
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "forge:", err)
		os.Exit(1)
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	at := -1
	for i, l := range lines {
		if bytes.Contains(l, old) {
			at = i
			break
		}
	}
	if at < 0 {
		fmt.Fprintf(os.Stderr, "forge: %q is in no line of %s\n", old, path)
		os.Exit(1)
	}
	if *del {
		lines = append(lines[:at], lines[at+1:]...)
	} else {
		lines[at] = bytes.Replace(lines[at], old, []byte(flag.Arg(2)), 1)
	}
	out, err := forge.Rechain(lines, at)
	if err != nil {
		fmt.Fprintln(os.Stderr, "forge:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(path, append(bytes.Join(out, []byte("\n")), '\n'), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "forge:", err)
		os.Exit(1)
	}
}
