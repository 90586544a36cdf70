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
	// As the flag parser's help: a failed write is said, status 1.
	if _, err := os.Stdout.WriteString(text); err != nil {
		if pe, ok := err.(*os.PathError); ok {
			err = pe.Err
		}
		os.Stderr.WriteString(filepathBase(os.Args[0]) + ": write error: " + err.Error() + "\n")
		os.Exit(1)
	}
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

// filepathBase is filepath.Base of a command name, without importing
// more than os.
func filepathBase(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			return name[i+1:]
		}
	}
	return name
}
