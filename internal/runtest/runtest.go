// Package runtest runs real containers for tests with runc, crun and
// podman from busybox bundles, each with private state (and, for podman,
// private storage and cgroups), removed when the test ends.
package runtest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/internal/bundle"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// Runc starts a detached runc container id from a fresh busybox bundle
// with state in root, deletes it when the test ends, and returns the
// host PID of its process.
func Runc(t testing.TB, root, id string, userNS bool, hooks *specs.Hooks) int {
	t.Helper()
	return RuncBundle(t, root, id, bundle.Options{UserNS: userNS, Hooks: hooks})
}

// RuncBundle is [Runc] with every option of the bundle (annotations,
// arguments, mappings).
func RuncBundle(t testing.TB, root, id string, o bundle.Options) int {
	t.Helper()
	runc := nstest.RequireCmd(t, "runc")
	tmp := t.TempDir()
	// A container with its own user namespace must traverse to its rootfs.
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	b, err := bundle.Create(filepath.Join(tmp, "b"), o)
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(tmp, "runc.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(runc, "--root", root, "run", "-d", "--bundle", b.Dir, id)
	// Detached containers need stdio that outlives us (NOTES.md).
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, logf
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(logf.Name())
		t.Fatalf("runc run %s: %v: %s", id, err, out)
	}
	t.Cleanup(func() { exec.Command(runc, "--root", root, "delete", "-f", id).Run() })
	return statePID(t, runc, root, id)
}

// Crun starts a detached crun container id from a fresh busybox bundle
// with state in root and deletes it when the test ends. crun 1.8 refuses
// this VM's hybrid cgroup layout, so, as in the hook tests, it runs in a
// private mount namespace without /sys/fs/cgroup/unified.
func Crun(t testing.TB, root, id string) int {
	t.Helper()
	crun := nstest.RequireCmd(t, "crun")
	unshare := nstest.RequireCmd(t, "unshare")
	tmp := t.TempDir()
	b, err := bundle.Create(filepath.Join(tmp, "b"), bundle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) error {
		cmd := exec.Command(unshare, append([]string{"--mount", "--propagation", "private", "/bin/sh", "-c",
			`umount -l /sys/fs/cgroup/unified 2>/dev/null; exec "$0" "$@"`, crun, "--root", root}, args...)...)
		logf, err := os.Create(filepath.Join(tmp, "crun.log"))
		if err != nil {
			return err
		}
		defer logf.Close()
		cmd.Stdout, cmd.Stderr = logf, logf // a file, not a pipe: the container outlives us
		if err := cmd.Run(); err != nil {
			out, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("crun %v: %v: %s", args, err, out)
		}
		return nil
	}
	if err := run("run", "-d", "--bundle", b.Dir, id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run("delete", "-f", id) })
	return statePID(t, crun, root, id)
}

// PodmanName is the name [Podman] gives its container.
func PodmanName() string { return ctrdtest.Uniq("pm") }

// Podman runs a podman container named [PodmanName] (runc, state in a
// private root through --runtime-flag, storage and cgroups private too)
// and returns its ID, host PID and runc root.
func Podman(t testing.TB) (string, int, string) {
	t.Helper()
	nstest.RequireRoot(t)
	podman := nstest.RequireCmd(t, "podman")
	runc := nstest.RequireCmd(t, "runc")
	tmp := t.TempDir()
	rootfs := filepath.Join(tmp, "rootfs")
	if err := bundle.Rootfs(rootfs, ""); err != nil {
		t.Fatal(err)
	}
	runcRoot := filepath.Join(tmp, "runc")
	cgroup := "/nsrel-test-" + ctrdtest.Uniq("podman")
	name := PodmanName()
	base := []string{"--root", filepath.Join(tmp, "storage"), "--runroot", filepath.Join(tmp, "run"),
		"--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", runc, "--runtime-flag", "root=" + runcRoot}
	run := func(args ...string) string {
		out, err := exec.Command(podman, append(slices.Clone(base), args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("podman %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	t.Cleanup(func() {
		exec.Command(podman, append(slices.Clone(base), "rm", "-f", "-t", "0", name)...).Run()
		RemovePodmanState(t, tmp, filepath.Join(tmp, "storage"), cgroup)
	})
	id := run("run", "-d", "--name", name, "--network", "none", "--cgroup-parent", cgroup,
		"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768", "--rootfs", rootfs, "/bin/sleep", "300")
	pid, err := strconv.Atoi(run("inspect", "--format", "{{.State.Pid}}", name))
	if err != nil {
		t.Fatal(err)
	}
	return id, pid, runcRoot
}

// RemovePodmanState takes down what podman runs with private state below
// dir leave behind: it kills every process whose command line names dir
// (conmon runs `podman container cleanup` on its own after a container
// exits), detaches the mounts below dir, removes store (podman's storage
// there) and the cgroup directories below cgroup, retrying for a few
// seconds while those processes go.
func RemovePodmanState(t testing.TB, dir, store, cgroup string) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ctrdtest.KillMentioning(dir)
		if err = ctrdtest.UnmountUnder(dir); err == nil {
			err = os.RemoveAll(store)
		}
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Error(err)
	}
	if left := ctrdtest.RemoveCgroups(cgroup); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
}

// statePID asks the runtime (runc or crun, state in root) for the host
// PID of container id (`state` prints the OCI state, with "pid").
func statePID(t testing.TB, runtime, root, id string) int {
	t.Helper()
	out, err := exec.Command(runtime, "--root", root, "state", id).Output()
	if err != nil {
		t.Fatalf("%s state %s: %v", runtime, id, err)
	}
	var st specs.State
	if err := json.Unmarshal(out, &st); err != nil || st.Pid <= 0 {
		t.Fatalf("%s state %s: %v (pid %d)", runtime, id, err, st.Pid)
	}
	return st.Pid
}
