package lstooltest

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
)

// runEnv carries the arguments for main into the re-executed binary.
const runEnv = "NSREL_RUN_MAIN"

// Main is the body of the command's TestMain: in a binary re-executed by
// [Run] it runs main with os.Args set to name and the arguments, and
// exits; otherwise it runs the tests.
func Main(m *testing.M, name string, main func()) {
	if args, ok := os.LookupEnv(runEnv); ok {
		os.Args = append([]string{name}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Run runs the command's main in a re-executed test binary with args
// (split at spaces). CONTAINERD_ADDRESS points at a socket that does not
// exist, so the container lookup fails fast with a notice and a
// containerd of the host is never touched.
func Run(t testing.TB, args string) (code int, stdout, stderr string) {
	t.Helper()
	return run(t, exec.Command(os.Args[0]), runEnv+"="+args, "CONTAINERD_ADDRESS="+filepath.Join(t.TempDir(), "none.sock"))
}

// run runs cmd with env added to this process's environment (a later
// value of a variable wins).
func run(t testing.TB, cmd *exec.Cmd, env ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), o.String(), e.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, o.String(), e.String()
}

// CheckCommand checks the command name showing namespaces of type typ:
// --help (exit 0), a bad flag (exit 2), and as root the tree (starting at
// the initial namespace) and the JSON output (exit 0).
func CheckCommand(t *testing.T, name string, typ nsrel.Type) {
	t.Helper()
	if code, out, _ := Run(t, "--help"); code != 0 || !strings.HasPrefix(out, "Usage: "+name+" ") {
		t.Errorf("--help: exit %d, stdout %q", code, out)
	}
	if code, _, errOut := Run(t, "--no-such-flag"); code != 2 || !strings.HasPrefix(errOut, name+": ") {
		t.Errorf("bad flag: exit %d, stderr %q; want 2", code, errOut)
	}
	nstest.RequireRoot(t)
	root := nsrel.Name{Type: typ, Ino: nsrel.InitialUserNSIno}
	if typ == nsrel.TypePID {
		root.Ino = nsrel.InitialPIDNSIno
	}
	code, out, errOut := Run(t, "")
	if want := root.String() + " owner "; code != 0 || !strings.HasPrefix(out, want) {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 0 and a tree starting with %q", code, out, errOut, want)
	}
	if code, out, _ := Run(t, "--json --no-containers"); code != 0 || !strings.HasPrefix(out, "{\n  \"namespaces\": [") {
		t.Errorf("--json: exit %d, stdout %.80q", code, out)
	}
	checkReaderGone(t)
}

// checkReaderGone runs the command with its output a pipe whose reader
// is gone, SIGPIPE ignored (trap "" PIPE, inherited across exec) and
// not: it exits 0 without a word of the write either way, as
// docs/discovery.md says (notices of the scan may come). Go's runtime
// killed it of SIGPIPE, ignored or not.
func checkReaderGone(t *testing.T) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	for _, trap := range []string{`trap "" PIPE; `, ""} {
		cmd := exec.Command("/bin/sh", "-c", trap+`exec "$0"`, os.Args[0])
		cmd.Env = append(os.Environ(), runEnv+"=--no-containers", "CONTAINERD_ADDRESS="+filepath.Join(t.TempDir(), "none.sock"))
		var e bytes.Buffer
		cmd.Stdout, cmd.Stderr = w, &e
		err := cmd.Run()
		if cmd.ProcessState == nil {
			t.Fatal(err)
		}
		if cmd.ProcessState.ExitCode() != 0 || strings.Contains(e.String(), "write") || strings.Contains(e.String(), "pipe") {
			t.Errorf("%soutput to a pipe without a reader: %v, stderr %q; want exit 0 and nothing said of the write", trap, cmd.ProcessState, e.String())
		}
	}
}

// update makes CheckHelp rewrite the help file instead of checking it.
var update = flag.Bool("update", false, "rewrite help/help.txt from the flag set")

// CheckHelp checks the command's help written to file (relative to the
// command's directory) and embedded as text, which the command prints
// during package initialisation (cmd/internal/quickhelp): that it is what
// the flag parser prints for --help without CONTAINERD_ADDRESS (with
// -update, it rewrites file instead), that --help and -h alone print it
// before the flag parser's and the container lookup's packages initialise
// (GODEBUG=inittrace=1 lists the packages initialised), and that with
// CONTAINERD_ADDRESS set the early help declines and the flag parser's,
// which shows the variable's value, is printed.
func CheckHelp(t *testing.T, file, text string) {
	t.Helper()
	code, want, errOut := run(t, exec.Command(os.Args[0]), runEnv+"=--help", "CONTAINERD_ADDRESS=")
	if code != 0 || errOut != "" || !strings.HasPrefix(want, "Usage: ") {
		t.Fatalf("--help through the flag parser: exit %d, stdout %.80q, stderr %q", code, want, errOut)
	}
	if *update {
		if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if text != want {
		t.Fatalf("%s is not the help the flag parser prints (rewrite it: go test -run TestHelp -update in the command's directory); it prints:\n%s", file, want)
	}
	for _, arg := range []string{"--help", "-h"} {
		// The test binary itself with the argument (not through runEnv):
		// it initialises the command's packages as the command does.
		code, out, errOut := run(t, exec.Command(os.Args[0], arg), "CONTAINERD_ADDRESS=", "GODEBUG=inittrace=1")
		if code != 0 || out != text {
			t.Errorf("%s: exit %d, stdout %.80q; want exit 0 and the help", arg, code, out)
		}
		if !strings.Contains(errOut, "init os @") {
			t.Errorf("%s: GODEBUG=inittrace=1 lists no package initialisation: %.200q", arg, errOut)
		}
		for _, late := range []string{"github.com/spf13/pflag", "github.com/nsrel/nsrel/nsrel/discover", "net"} {
			if strings.Contains(errOut, "init "+late+" @") {
				t.Errorf("%s: %s was initialised before the help was printed", arg, late)
			}
		}
	}
	// A write that fails (a full disk: /dev/full) is said, exit 1, as
	// util-linux does: by the early help, the flag parser's and -V.
	for _, tc := range []struct {
		arg string
		env []string
	}{{"--help", nil}, {"", []string{runEnv + "=--help"}}, {"", []string{runEnv + "=-V"}}} {
		cmd := exec.Command(os.Args[0])
		if tc.arg != "" {
			cmd.Args = append(cmd.Args, tc.arg)
		}
		cmd.Env = append(os.Environ(), append(tc.env, "CONTAINERD_ADDRESS=")...)
		if code, stderr := nstest.ToFullDiskCmd(t, cmd); code != 1 || !strings.HasSuffix(stderr, ": write error: no space left on device\n") {
			t.Errorf("%s %v to /dev/full: exit %d, stderr %q; want exit 1 and a write error", tc.arg, tc.env, code, stderr)
		}
	}
	// --help as the argument too, so that the early help sees it: it
	// must decline, and the command (runEnv) prints the flag parser's.
	sock := filepath.Join(t.TempDir(), "other.sock")
	if code, out, _ := run(t, exec.Command(os.Args[0], "--help"), runEnv+"=--help", "CONTAINERD_ADDRESS="+sock); code != 0 || !strings.Contains(out, `(default "`+sock+`")`) {
		t.Errorf("--help with CONTAINERD_ADDRESS set: exit %d, stdout %.80q; want its value as the default", code, out)
	}
}
