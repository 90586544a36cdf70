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
