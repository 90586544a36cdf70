// Package quickhelp answers a command's --help while the program is still
// initialising its packages, before those the rest of the command needs
// (the flag parser, the container lookup, syslog's network code): a
// help that costs about what an empty Go program costs to start.
//
// A command gets it from a package of its own that embeds the help text
// (written from the command's flag set and checked against it by the
// command's tests) and calls [Answer] from its init function. Go
// initialises packages one at a time, each time the first in the order
// of import paths whose imports are all initialised (the language
// specification, "Package initialization"); such a package imports only
// this one and package os, and its path sorts before all but a few
// small packages, so its turn comes right after os. When it does not
// answer, nothing is lost: the command starts as usual and its flag
// parser prints the same text.
package quickhelp

import "os"

// Answer writes text to stdout and ends the process with status 0 when
// the command line is exactly --help or -h and none of the environment
// variables in env is set (the help shows their values, which text,
// written without them, does not). Otherwise it returns.
func Answer(text string, env ...string) {
	if !answers(os.Args, os.Getenv, env) {
		return
	}
	// As the flag parser's help: a failed write does not change the
	// status.
	os.Stdout.WriteString(text)
	os.Exit(0)
}

// answers says whether a command run with args and the environment
// getenv reads gets the written help.
func answers(args []string, getenv func(string) string, env []string) bool {
	if len(args) != 2 || (args[1] != "--help" && args[1] != "-h") {
		return false
	}
	for _, e := range env {
		if getenv(e) != "" {
			return false
		}
	}
	return true
}
