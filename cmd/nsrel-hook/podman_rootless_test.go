package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/internal/nstest"
)

// rootlessUID is the user TestRootlessPodman runs podman as: no passwd
// entry, no subordinate IDs, and no other test's (killUID ends all of its
// processes).
const rootlessUID = 4386

// TestRootlessPodman runs a user's rootless podman end to end: podman as
// a user (no subordinate IDs: podman maps that one UID), crun, the
// shipped hooks.d files in the directory podman reads by default, which a
// user's podman reads too, and root's config. The hook runs in the user's
// namespace, where root's config and log belong to no one mapped, and
// steps aside: the detached container runs, nothing is written to the
// audit log. The trees, run as root, put the container on the user's own
// namespaces, in the engine namespace uid=UID, named as the user's
// storage names it, and --container finds it by that name and by its
// label.
func TestRootlessPodman(t *testing.T) {
	requireRuntime(t, "crun")
	image := rootfsTar(t)
	e := newEnv(t, "hook-enforce.json", nil)
	// The hook and its config as installed: reachable by everyone.
	if err := os.Chmod(filepath.Dir(e.dir), 0o711); err != nil {
		t.Fatal(err)
	}
	e.crun, e.defaultHooksDir, e.rootless = true, true, rootlessUID
	name := fmt.Sprintf("web-rootless-%d", os.Getpid())
	cid, stderr, err := e.podmanRun(t, image, "--detach", "--name", name, "--", "/bin/sleep", "600")
	if err != nil {
		t.Fatalf("rootless podman run: %v\n%s", err, stderr)
	}
	state := filepath.Join(e.store, "run", "crun")

	// podman gave crun the shipped hooks (those of root's directory,
	// pointing at root's config), and the container runs.
	data, err := os.ReadFile(filepath.Join(state, cid, "config.json"))
	if err != nil {
		t.Fatalf("the container's crun state: %v", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Hooks == nil || len(spec.Hooks.CreateRuntime) != 1 || spec.Hooks.CreateRuntime[0].Path != hookBin || !strings.Contains(strings.Join(spec.Hooks.CreateRuntime[0].Args, " "), e.config) {
		t.Fatalf("hooks given to crun: %+v", spec.Hooks)
	}
	pid := containerPID(t, state, cid)
	if st, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil || st.Sys().(*syscall.Stat_t).Uid != rootlessUID {
		t.Fatalf("container process %d: %v", pid, err)
	}
	if _, err := os.Stat(e.log); !os.IsNotExist(err) {
		t.Errorf("the rootless run wrote the audit log: %v", err)
	}

	// The trees, as root, with the user's runtime directory among their
	// roots.
	bin := t.TempDir()
	env := append(os.Environ(), "NSREL_RUNTIME_ROOTS=crun="+state)
	label := fmt.Sprintf("podman uid=%d/%s (%s)", rootlessUID, cid[:12], name)
	for _, tool := range []struct{ name, ns string }{{"lsuserns", "user"}, {"lspidns", "pid"}} {
		exe := filepath.Join(bin, tool.name)
		if err := nstest.Build(exe, "github.com/nsrel/nsrel/cmd/"+tool.name); err != nil {
			t.Fatal(err)
		}
		ns := fmt.Sprintf("%s:[%d]", tool.ns, nstest.Ino(t, pid, tool.ns))
		for _, arg := range []string{"", name, fmt.Sprintf("uid=%d/%s", rootlessUID, cid), cid[:12]} {
			args := []string{}
			if arg != "" {
				args = []string{"--container", arg}
			}
			cmd := exec.Command(exe, args...)
			cmd.Env = env
			out, err := cmd.Output()
			if err != nil {
				t.Errorf("%s %q: %v", tool.name, args, err)
				continue
			}
			var line string
			for l := range strings.SplitSeq(string(out), "\n") {
				if strings.Contains(l, ns) {
					line = l
				}
			}
			if !strings.HasSuffix(line, "containers: "+label) {
				t.Errorf("%s %q: the container's %s namespace is %q, want it labelled %q:\n%s", tool.name, args, tool.ns, line, label, out)
			}
		}
	}
}

// containerPID returns the PID crun's state (ROOT/ID/status) gives a
// container's init.
func containerPID(t *testing.T, root, id string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, id, "status"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(data, &st); err != nil || st.PID <= 0 {
		t.Fatalf("crun status %s: %v", data, err)
	}
	return st.PID
}

// copyOwned copies the file src to dst, owned by uid.
func copyOwned(t *testing.T, src, dst string, uid int) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Chown(uid, uid); err != nil {
		t.Fatal(err)
	}
	return dst
}

// killUID kills every process whose real UID is uid and waits (up to
// 30 s) until none is left but zombies.
func killUID(t *testing.T, uid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := 0
		ents, _ := os.ReadDir("/proc")
		for _, ent := range ents {
			pid, err := strconv.Atoi(ent.Name())
			if err != nil {
				continue
			}
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				continue
			}
			var real int
			var zombie bool
			for l := range strings.SplitSeq(string(status), "\n") {
				if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
					real, _ = strconv.Atoi(f[1])
				} else if len(f) > 1 && f[0] == "State:" {
					zombie = f[1] == "Z"
				}
			}
			if real == uid && !zombie {
				left++
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d processes of UID %d still run after 30 s", left, uid)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
