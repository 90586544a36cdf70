package lstooltest

import (
	"bytes"
	"errors"
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
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), runEnv+"="+args, "CONTAINERD_ADDRESS="+filepath.Join(t.TempDir(), "none.sock"))
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
}
