package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/bundle"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/vocab"
)

// hooksDFile is the podman/CRI-O hooks.d schema 1.0.0.
type hooksDFile struct {
	Version string     `json:"version"`
	Hook    specs.Hook `json:"hook"`
	When    struct {
		Always *bool `json:"always"`
	} `json:"when"`
	Stages []string `json:"stages"`
}

// hooksDir copies the shipped config/hooks.d files (with e.poststart,
// also config/poststart/nsrel-poststart.json) into a directory, pointing
// them at the test binary and config, and checks that there is one file
// per stage.
func (e *env) hooksDir(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "hooks.d", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(e.stages())
	if e.poststart {
		files = append(files, filepath.Join("..", "..", "config", "poststart", "nsrel-poststart.json"))
	}
	dir := filepath.Join(e.dir, "hooks.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var stages []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var h hooksDFile
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&h); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if h.Version != "1.0.0" || len(h.Stages) != 1 || h.When.Always == nil || !*h.When.Always {
			t.Fatalf("%s: want version 1.0.0, when.always and one stage: %+v", f, h)
		}
		if h.Hook.Args[len(h.Hook.Args)-1] != h.Stages[0] {
			t.Errorf("%s: hook runs stage %q for stage %q", f, h.Hook.Args[len(h.Hook.Args)-1], h.Stages[0])
		}
		stages = append(stages, h.Stages[0])
		h.Hook = e.rewrite(t, h.Hook)
		out, _ := json.Marshal(h)
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(stages)
	sort.Strings(want)
	if d := cmp.Diff(want, stages); d != "" {
		t.Fatalf("hooks.d stages (-want +got):\n%s", d)
	}
	return dir
}

// podman runs `podman run --rm` with the shipped hooks.d files, private
// storage and the flags that work on this VM (see NOTES.md), in a user
// namespace of its own when userns is set. It returns the container ID
// and podman's stderr.
func (e *env) podman(t *testing.T, rootfs string, userns bool) (string, string, error) {
	t.Helper()
	if userns {
		return e.podmanRun(t, rootfs, "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536")
	}
	return e.podmanRun(t, rootfs)
}

// podmanRun is podman with extra flags for `podman run`; after a "--"
// in extra comes the container's command instead of `sh -c "exit 0"`.
// A rootfs ending in ".tar" is imported as a local image (podman import,
// nothing pulled) and run as one: --userns=auto sizes its range from an
// image, and refuses a bare --rootfs.
func (e *env) podmanRun(t *testing.T, rootfs string, extra ...string) (string, string, error) {
	t.Helper()
	command := []string{"/bin/sh", "-c", "exit 0"}
	if i := slices.Index(extra, "--"); i >= 0 {
		extra, command = extra[:i], extra[i+1:]
	}
	podman := nstest.RequireCmd(t, "podman")
	runtime := nstest.RequireCmd(t, "runc")
	if e.crun {
		runtime = nstest.RequireCmd(t, "crun")
	}
	// podman wants a runroot shorter than 50 characters, so its storage
	// cannot live in t.TempDir().
	store, err := os.MkdirTemp("", "nsp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if e.rootless != 0 {
			// The user's podman leaves its pause process (which holds
			// the user's namespaces) and, for a detached container,
			// conmon and the container running.
			killUID(t, e.rootless)
		}
		// conmon starts `podman container cleanup` when the container
		// exits, after podman run returned; it mounts and unmounts the
		// storage. Wait for it before unmounting what is left.
		waitForProcesses(t, store)
		unmountBelow(t, store)
		os.RemoveAll(store)
	})
	e.store = store
	cidFile := filepath.Join(e.dir, "cid")
	var asUser []string
	if e.rootless != 0 {
		// What a user's login gives its podman: a home and a runtime
		// directory of its own (podman keeps the crun state there).
		for _, d := range []string{"", "home", "run"} {
			if err := os.MkdirAll(filepath.Join(store, d), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(filepath.Join(store, d), e.rootless, e.rootless); err != nil {
				t.Fatal(err)
			}
		}
		id := strconv.Itoa(e.rootless)
		asUser = []string{nstest.RequireCmd(t, "setpriv"), "--reuid", id, "--regid", id, "--clear-groups", "--",
			"env", "-i", "HOME=" + filepath.Join(store, "home"), "XDG_RUNTIME_DIR=" + filepath.Join(store, "run"), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		cidFile = filepath.Join(store, "home", "cid")
	}
	os.Remove(cidFile)
	// --tmpdir too: podman's default, /run/libpod, is shared with every
	// other podman on the host (other packages' tests included).
	global := []string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "runroot"), "--tmpdir", filepath.Join(store, "tmp"),
		"--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", runtime}
	prefix := slices.Concat(asUser, []string{podman})
	if e.crun {
		prefix = slices.Concat(requireRuntime(t, "crun").wrap, prefix)
	}
	if e.defaultHooksDir {
		// The directory podman and CRI-O read by default, in a mount
		// namespace of the run's own: a tmpfs over /usr/share/containers
		// with its files copied in, and the hooks.d files added.
		share := filepath.Join(e.dir, "share")
		if err := os.MkdirAll(share, 0o755); err != nil {
			t.Fatal(err)
		}
		const script = `set -e; cp -a /usr/share/containers/. "$1"; mount -t tmpfs -o mode=0755 nsrel-test /usr/share/containers; cp -a "$1/." /usr/share/containers/
mkdir -p /usr/share/containers/oci/hooks.d; cp "$2"/*.json /usr/share/containers/oci/hooks.d/; shift 2; exec "$@"`
		prefix = append([]string{nstest.RequireCmd(t, "unshare"), "--mount", "--propagation", "private", "sh", "-c", script, "sh", share, e.hooksDir(t)}, prefix...)
	} else {
		global = append(global, "--hooks-dir", e.hooksDir(t))
	}
	image := []string{"--rootfs", rootfs}
	if strings.HasSuffix(rootfs, ".tar") {
		const name = "localhost/nsrel-test:latest"
		imp := slices.Concat([]string{podman}, global, []string{"import", rootfs, name})
		if e.rootless != 0 {
			// Where the user can read it; and the user's podman keeps a
			// pause process, whose namespaces its later runs join:
			// start it where the run will be.
			rootfs = copyOwned(t, rootfs, filepath.Join(store, "home", "rootfs.tar"), e.rootless)
			imp = slices.Concat(prefix, global, []string{"import", rootfs, name})
		}
		if out, err := exec.Command(imp[0], imp[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("podman import %s: %v\n%s", rootfs, err, out)
		}
		image = []string{name}
	}
	args := append(global, "run", "--rm", "--cidfile", cidFile, "--network", "none")
	if e.rootless == 0 {
		// A user's podman cannot raise its hard limits.
		args = append(args, "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768")
	}
	args = append(append(append(args, extra...), image...), command...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prefix[0], append(prefix[1:], args...)...)
	errFile, err := os.Create(filepath.Join(e.dir, "podman.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	cmd.Stderr = errFile
	err = cmd.Run()
	stderr, _ := os.ReadFile(errFile.Name())
	cid, _ := os.ReadFile(cidFile)
	return strings.TrimSpace(string(cid)), string(stderr), err
}

// waitForProcesses waits (up to 30 s) until no process has s in its
// command line.
func waitForProcesses(t *testing.T, s string) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		busy := ""
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			if e.Name()[0] < '0' || e.Name()[0] > '9' {
				continue
			}
			cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if strings.Contains(string(cmdline), s) {
				busy = e.Name()
				break
			}
		}
		if busy == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("process %s still uses %s after 30s", busy, s)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unmountBelow detaches every mount below dir (podman leaves its storage
// mounted), deepest first.
func unmountBelow(t *testing.T, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			mounts = append(mounts, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", m, err)
		}
	}
}

// TestPodmanHooksDir runs podman with the shipped hooks.d files: audit
// mode records createRuntime and poststop (and poststart too with the
// opt-in file); the enforcing policy refuses a container without a user
// namespace (podman's error names the rule) and allows one with its own.
func TestPodmanHooksDir(t *testing.T) {
	requireRuntime(t, "runc")
	// podman writes into the rootfs (/etc/hosts, /run/.containerenv):
	// give it its own copy, owned by the mapped root for userns runs.
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := bundle.Rootfs(rootfs, ""); err != nil {
		t.Fatal(err)
	}
	if err := bundle.Reachable(rootfs); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ poststart, defaultDir bool }{{false, false}, {true, false}, {false, true}} {
		poststart := tc.poststart
		// defaultDir: the files where podman reads them without
		// --hooks-dir (as README says to install them).
		t.Run(fmt.Sprintf("audit/poststart=%v/default-dir=%v", poststart, tc.defaultDir), func(t *testing.T) {
			e := newEnv(t, "hook.json", nil)
			e.poststart, e.defaultHooksDir = poststart, tc.defaultDir
			cid, stderr, err := e.podman(t, rootfs, false)
			if err != nil {
				t.Fatalf("podman run: %v\n%s", err, stderr)
			}
			recs := e.records(t, cid)
			if d := cmp.Diff(e.stages(), audittest.Stages(recs)); d != "" {
				t.Fatalf("podman container %s stages (-want +got):\n%s", cid, d)
			}
			if d := cmp.Diff([]string{policy.RuleRequireUserNS}, audittest.Rules(recs[0])); d != "" {
				t.Errorf("violations (-want +got):\n%s", d)
			}
			if recs[0].Ancestry == nil || recs[0].UserDepth() != 0 || recs[0].PIDDepth() != 1 {
				t.Errorf("ancestry %+v", recs[0].Ancestry)
			}
			if poststart && (recs[1].Ref == nil || recs[1].Ref.Seq != recs[0].Seq) {
				t.Errorf("poststart does not refer to createRuntime: %+v", recs[1].Ref)
			}
			e.verify(t)
		})
	}

	t.Run("enforce", func(t *testing.T) {
		e := newEnv(t, "hook-enforce.json", nil)
		cid, stderr, err := e.podman(t, rootfs, false)
		if err == nil {
			t.Fatal("podman ran a container without user namespace under enforce")
		}
		if !strings.Contains(stderr, policy.RuleRequireUserNS) {
			t.Errorf("podman's error does not name the rule:\n%s", stderr)
		}
		recs := e.records(t, cid)
		if len(recs) == 0 || recs[0].Verdict != audit.VerdictDeny {
			t.Fatalf("records for refused %s: %v", cid, audittest.Stages(recs))
		}

		if err := bundle.Chown(rootfs, 100000, 100000); err != nil {
			t.Fatal(err)
		}
		cid, stderr, err = e.podman(t, rootfs, true)
		if err != nil {
			t.Fatalf("podman run with a user namespace: %v\n%s", err, stderr)
		}
		recs = e.records(t, cid)
		if d := cmp.Diff(vocab.ShippedStages, audittest.Stages(recs)); d != "" {
			t.Fatalf("stages (-want +got):\n%s", d)
		}
		if recs[0].Verdict != audit.VerdictAllow || recs[0].UserDepth() != 1 {
			t.Errorf("verdict %q depth %d", recs[0].Verdict, recs[0].UserDepth())
		}
		e.verify(t)
	})
}

// TestPodmanIDMappedVolume: podman's ":idmap" volume option, run by crun
// with the shipped hooks.d files under the enforcing config: a host
// directory mounted idmapped into a container with a user namespace of
// its own gives its root UID 0 of the directory (files owned by host
// root written there): refused for host_root_unmapped, the record holding
// the mount and its maps; the same volume without ":idmap" runs.
func TestPodmanIDMappedVolume(t *testing.T) {
	requireRuntime(t, "crun")
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := bundle.Rootfs(rootfs, ""); err != nil {
		t.Fatal(err)
	}
	if err := bundle.Reachable(rootfs); err != nil {
		t.Fatal(err)
	}
	if err := bundle.Chown(rootfs, 100000, 100000); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	if err := bundle.Reachable(data); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "hook-enforce.json", nil)
	e.crun = true
	maps := []string{"--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"}
	cid, stderr, err := e.podmanRun(t, rootfs, append(slices.Clone(maps), "-v", data+":/data:idmap")...)
	recs := e.records(t, cid)
	if err == nil || len(recs) == 0 || recs[0].Verdict != audit.VerdictDeny || !slices.Contains(audittest.Rules(recs[0]), policy.RuleHostRootUnmapped) {
		t.Fatalf("podman run -v DIR:/data:idmap with crun: %v\n%s\nrecords %+v; want refused for %s", err, stderr, recs, policy.RuleHostRootUnmapped)
	}
	if m := recs[0].IDMapped; len(m) != 1 || m[0].Point != "/data" && !strings.HasSuffix(m[0].Point, "/data") || len(m[0].UIDMap) == 0 || len(m[0].GIDMap) == 0 {
		t.Errorf("the record's idmapped mounts %+v; want /data with its maps", m)
	}
	cid, stderr, err = e.podmanRun(t, rootfs, append(slices.Clone(maps), "-v", data+":/data")...)
	if err != nil {
		t.Fatalf("podman run -v DIR:/data with crun: %v\n%s\nrecords %+v", err, stderr, e.records(t, cid))
	}
	if recs := e.records(t, cid); len(recs) == 0 || recs[0].Verdict != audit.VerdictAllow || len(recs[0].IDMapped) != 0 {
		t.Errorf("records of the container without :idmap %+v; want allowed, no idmapped mount", recs)
	}
	e.verify(t)
}
