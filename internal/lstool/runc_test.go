package lstool_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/internal/bundle"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
	"github.com/nsrel/nsrel/tree"
)

// runcContainer starts a busybox sleep in a real runc container with its
// own state root under t.TempDir() and returns its ID and host PID.
func runcContainer(t *testing.T) (id string, pid int) {
	t.Helper()
	nstest.RequireRoot(t)
	runc := nstest.RequireCmd(t, "runc")
	_, err := os.Stat(bundle.DefaultBusybox)
	nstest.Require(t, err == nil, "needs %s (busybox-static) for the container rootfs: %v", bundle.DefaultBusybox, err)

	dir := t.TempDir()
	// In its own user namespace (IDs mapped from 100000), so that both
	// trees get a node of their own for it.
	b, err := bundle.Create(filepath.Join(dir, "bundle"), bundle.Options{Args: []string{"sleep", "1000"}, UserNS: true})
	if err != nil {
		t.Fatal(err)
	}
	bundleDir := b.Dir

	var rnd [6]byte
	rand.Read(rnd[:])
	id = "nsrel-lstool-" + hex.EncodeToString(rnd[:])
	root := filepath.Join(dir, "runc-root")
	// Detached with stdio on a file: a pipe that we close would kill it.
	logPath := filepath.Join(dir, "runc.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(runc, "--root", root, "run", "--detach", "--bundle", bundleDir, id)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(logPath)
		t.Fatalf("runc run: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		exec.Command(runc, "--root", root, "kill", id, "KILL").Run()
		exec.Command(runc, "--root", root, "delete", "--force", id).Run()
	})
	out, err := exec.Command(runc, "--root", root, "state", id).Output()
	if err != nil {
		t.Fatalf("runc state: %v", err)
	}
	var st struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal(out, &st); err != nil || st.Pid <= 0 {
		t.Fatalf("runc state %s: %v", out, err)
	}
	return id, st.Pid
}

func TestRealRuncContainer(t *testing.T) {
	id, pid := runcContainer(t)
	src := &fakeSource{name: "runc", cs: []discover.Container{{ID: id, Engine: "runc", PID: pid}}}
	pidNS := nsrel.Name{Type: nsrel.TypePID, Ino: ino(t, pid, "pid")}

	code, out, errOut := run(t, tool(nsrel.TypePID, src))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	line, depth := lineOf(t, out, pidNS)
	if want := " containers: runc " + tree.ShortID(id); !strings.HasSuffix(line, want) || depth != 1 {
		t.Errorf("line %q at depth %d, want suffix %q at depth 1", line, depth, want)
	}
	// The container has its own user namespace, a child of the initial
	// one, created by root.
	userNS := nsrel.Name{Type: nsrel.TypeUser, Ino: ino(t, pid, "user")}
	_, out, _ = run(t, tool(nsrel.TypeUser, src))
	line, depth = lineOf(t, out, userNS)
	if want := userNS.String() + " owner root (0) containers: runc " + tree.ShortID(id); line != want || depth != 1 {
		t.Errorf("line %q at depth %d, want %q at depth 1", line, depth, want)
	}
	code, out, _ = run(t, tool(nsrel.TypePID, src), "--container", id[:16])
	want := "pid:[4026531836] owner user:[4026531837] root (0)\n└── " + pidNS.String() + " owner " + userNS.String() + " root (0) containers: runc " + tree.ShortID(id) + "\n"
	if code != 0 || out != want {
		t.Errorf("--container: exit %d\n%s\nwant\n%s", code, out, want)
	}
}
