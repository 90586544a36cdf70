package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/internal/nstest"
)

// TestMain runs main itself when the test binary is re-executed by
// runMain, so that the command's wiring is tested without a build step.
func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv("NSREL_RUN_MAIN"); ok {
		os.Args = append([]string{"lspidns"}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runMain(t *testing.T, args string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	// No daemon on this socket: the container lookup fails fast with a
	// notice, and a containerd of the host is never touched.
	cmd.Env = append(os.Environ(), "NSREL_RUN_MAIN="+args, "CONTAINERD_ADDRESS="+filepath.Join(t.TempDir(), "none.sock"))
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

func TestCommand(t *testing.T) {
	if code, out, _ := runMain(t, "--help"); code != 0 || !strings.HasPrefix(out, "Usage: lspidns ") {
		t.Errorf("--help: exit %d, stdout %q", code, out)
	}
	if code, _, errOut := runMain(t, "--no-such-flag"); code != 2 || !strings.HasPrefix(errOut, "lspidns: ") {
		t.Errorf("bad flag: exit %d, stderr %q; want 2", code, errOut)
	}
	nstest.RequireRoot(t)
	code, out, errOut := runMain(t, "")
	if want := "pid:[4026531836] owner "; code != 0 || !strings.HasPrefix(out, want) {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 0 and a tree starting with %q", code, out, errOut, want)
	}
	if code, out, _ := runMain(t, "--json --no-containers"); code != 0 || !strings.HasPrefix(out, "{\n  \"namespaces\": [") {
		t.Errorf("--json: exit %d, stdout %.80q", code, out)
	}
}
