package containerd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/containerd/internal/ctrdtest"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/bundle"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// runcRun starts a detached runc container id from a fresh busybox bundle
// with state in root, and deletes it when the test ends.
func runcRun(t *testing.T, root, id string, userNS bool, hooks *specs.Hooks) int {
	t.Helper()
	runc := nstest.RequireCmd(t, "runc")
	tmp := t.TempDir()
	// A container with its own user namespace must traverse to its rootfs.
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	b, err := bundle.Create(filepath.Join(tmp, "b"), bundle.Options{UserNS: userNS, Hooks: hooks})
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
	data, err := os.ReadFile(filepath.Join(root, id, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseRuncState(data)
	if err != nil {
		t.Fatal(err)
	}
	return st.PID
}

// TestStateSourceRunc lists plain runc containers without any daemon.
func TestStateSourceRunc(t *testing.T) {
	nstest.RequireRoot(t)
	root := filepath.Join(t.TempDir(), "runc")
	a := runcRun(t, root, uniq("zoo-1"), false, nil)
	b := runcRun(t, root, uniq("zoo-2"), true, nil)
	got, err := (&StateSource{Roots: []Root{{EngineRunc, root}, {EngineCrun, filepath.Join(t.TempDir(), "absent")}}}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []discover.Container{
		{ID: uniq("zoo-1"), Engine: EngineRunc, PID: a},
		{ID: uniq("zoo-2"), Engine: EngineRunc, PID: b},
	}
	if diff := cmp.Diff(want, Merge(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// writeState makes root/id/file with content data.
func writeState(t *testing.T, root, id, file, data string) string {
	t.Helper()
	dir := filepath.Join(root, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, file)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestStateSourceValidates feeds crafted state directories naming a live
// process (a sleep started here) and checks that only truthful, safe ones
// are listed.
func TestStateSourceValidates(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.Sleep(t, nil)
	start, err := inspect.StartTime(p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	runc := func(id string, start uint64, bundle string) string {
		return fmt.Sprintf(`{"id":%q,"init_process_pid":%d,"init_process_start":%d,"config":{"labels":["bundle=%s"]},"extra":[1,2]}`, id, p.Pid, start, bundle)
	}
	root := t.TempDir()
	crunRoot := t.TempDir()
	writeState(t, root, "good", "state.json", runc("good", start, "/b"))
	writeState(t, root, "ctrd", "state.json", runc("ctrd", start, "/run/containerd/io.containerd.runtime.v2.task/k8s.io/ctrd"))
	writeState(t, root, "pod", "state.json", runc("pod", start, "/run/containers/storage/overlay-containers/pod/userdata"))
	writeState(t, root, "crio", "state.json", fmt.Sprintf(`{"id":"crio","init_process_pid":%d,"init_process_start":%d,"config":{"labels":["bundle=/run/containers/storage/overlay-containers/crio/userdata","io.kubernetes.cri-o.ContainerType=container","io.kubernetes.pod.name=api-1","io.kubernetes.pod.namespace=prod"]}}`, p.Pid, start))
	writeState(t, root, "reused", "state.json", runc("reused", start+1, "/b"))
	writeState(t, root, "liar", "state.json", runc("other-id", start, "/b"))
	writeState(t, root, "bad json", "state.json", runc("bad json", start, "/b"))
	writeState(t, root, "trunc", "state.json", runc("trunc", start, "/b")[:40])
	writeState(t, root, "huge", "state.json", runc("huge", start, "/b")[:20]+`"pad":"`+string(make([]byte, MaxStateSize))+`"}`)
	chowned := writeState(t, root, "chowned", "state.json", runc("chowned", start, "/b"))
	if err := os.Chown(chowned, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	target := writeState(t, t.TempDir(), "x", "state.json", runc("link", start, "/b"))
	os.MkdirAll(filepath.Join(root, "link"), 0o700)
	if err := os.Symlink(target, filepath.Join(root, "link", "state.json")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "fifo"), 0o700)
	if err := unix.Mkfifo(filepath.Join(root, "fifo", "state.json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "file-not-dir"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	writeState(t, crunRoot, "crun-good", "status", fmt.Sprintf(`{"pid":%d,"process-start-time":%d,"bundle":"/b","created":"x"}`, p.Pid, start))
	writeState(t, crunRoot, "crun-reused", "status", fmt.Sprintf(`{"pid":%d,"process-start-time":%d}`, p.Pid, start+7))

	got, err := (&StateSource{Roots: []Root{{EngineRunc, root}, {EngineCrun, crunRoot}}}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []discover.Container{
		{ID: "ctrd", Engine: EngineContainerd, Namespace: "k8s.io", PID: p.Pid},
		{ID: "crun-good", Engine: EngineCrun, PID: p.Pid},
		{ID: "pod", Engine: EnginePodman, PID: p.Pid},
		{ID: "crio", Engine: EngineCRIO, PID: p.Pid, Name: "prod/api-1"},
		{ID: "good", Engine: EngineRunc, PID: p.Pid},
	}
	if diff := cmp.Diff(Merge(want), Merge(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	// Once the process is gone, nothing is attributed to its PID.
	syscall.Kill(p.Pid, syscall.SIGKILL)
	p.Cmd.Process.Wait()
	got, _ = (&StateSource{Roots: []Root{{EngineRunc, root}}}).List(context.Background())
	if len(got) != 0 {
		t.Errorf("dead process still attributed: %+v", got)
	}
}

func TestParseState(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		crun     bool
		want     State
		wantErr  bool
	}{
		{name: "runc", in: `{"id":"a","init_process_pid":12,"init_process_start":99,"config":{"labels":["x=y","bundle=/b/a"]}}`, want: State{ID: "a", PID: 12, StartTime: 99, Bundle: "/b/a", Annotations: map[string]string{"x": "y"}}},
		{name: "runc no labels", in: `{"id":"a","init_process_pid":12}`, want: State{ID: "a", PID: 12}},
		{name: "runc zero pid", in: `{"id":"a","init_process_pid":0}`, wantErr: true},
		{name: "runc negative pid", in: `{"id":"a","init_process_pid":-5}`, wantErr: true},
		{name: "runc huge pid", in: `{"id":"a","init_process_pid":99999999999}`, wantErr: true},
		{name: "runc pid string", in: `{"id":"a","init_process_pid":"12"}`, wantErr: true},
		{name: "runc trailing", in: `{"id":"a","init_process_pid":12} {}`, wantErr: true},
		{name: "runc array", in: `[]`, wantErr: true},
		{name: "crun", crun: true, in: `{"pid":7,"process-start-time":5,"bundle":"/b","owner":"root","detached":true}`, want: State{PID: 7, StartTime: 5, Bundle: "/b"}},
		{name: "crun empty", crun: true, in: `{}`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parse := ParseRuncState
			if tc.crun {
				parse = ParseCrunStatus
			}
			got, err := parse([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); !tc.wantErr && diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseRuncState(f *testing.F) {
	f.Add([]byte(`{"id":"a","init_process_pid":12,"init_process_start":99,"config":{"labels":["bundle=/run/containerd/io.containerd.runtime.v2.task/ns/a"]}}`))
	f.Add([]byte(`{"id":"a","init_process_pid":-1}`))
	f.Add([]byte(`{"config":{"labels":[1]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseRuncState(data)
		if err != nil {
			return
		}
		if st.PID <= 0 || st.PID > maxPID {
			t.Fatalf("accepted pid %d", st.PID)
		}
		c := st.Container(EngineRunc)
		if c.PID != st.PID || c.ID != st.ID {
			t.Fatalf("container %+v from %+v", c, st)
		}
	})
}

func FuzzParseCrunStatus(f *testing.F) {
	f.Add([]byte(`{"pid":7,"process-start-time":5,"bundle":"/run/containers/storage/overlay-containers/x/userdata"}`))
	f.Add([]byte(`{"pid":1e99}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseCrunStatus(data)
		if err != nil {
			return
		}
		if st.PID <= 0 || st.PID > maxPID {
			t.Fatalf("accepted pid %d", st.PID)
		}
		_ = st.Container(EngineCrun)
	})
}

func TestMerge(t *testing.T) {
	ctrd := discover.Container{ID: "a", Engine: EngineContainerd, Namespace: "k8s.io", PID: 10, Name: "shop/web-0"}
	state := discover.Container{ID: "a", Engine: EngineContainerd, Namespace: "k8s.io", PID: 10}
	runc := discover.Container{ID: "r", Engine: EngineRunc, PID: 11}
	audit := discover.Container{ID: "r", Engine: EngineAuditLog, PID: 11, Name: "ns/pod"}
	for _, tc := range []struct {
		name  string
		lists [][]discover.Container
		want  []discover.Container
	}{
		{"empty", nil, []discover.Container{}},
		{"daemon wins", [][]discover.Container{{state}, {ctrd}}, []discover.Container{ctrd}},
		{"daemon wins either order", [][]discover.Container{{ctrd}, {state}}, []discover.Container{ctrd}},
		{"name filled from audit", [][]discover.Container{{runc}, {audit}}, []discover.Container{{ID: "r", Engine: EngineRunc, PID: 11, Name: "ns/pod"}}},
		{"different pids kept", [][]discover.Container{{runc, {ID: "r", Engine: EngineRunc, PID: 12}}}, []discover.Container{runc, {ID: "r", Engine: EngineRunc, PID: 12}}},
		{"sorted", [][]discover.Container{{runc, ctrd}}, []discover.Container{ctrd, runc}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Merge(tc.lists...)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// podmanRun runs a podman container (runc, state in a private root
// through --runtime-flag, storage and cgroups private too) and returns its
// ID, host PID and runc root.
func podmanRun(t *testing.T) (string, int, string) {
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
	cgroup := "/nsrel-test-" + uniq("podman")
	name := uniq("pm")
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
		// conmon runs `podman container cleanup` on its own; stop it
		// before taking the storage mounts down.
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			ctrdtest.KillMentioning(tmp)
			if err = ctrdtest.UnmountUnder(tmp); err == nil {
				err = os.RemoveAll(filepath.Join(tmp, "storage"))
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
	})
	id := run("run", "-d", "--name", name, "--network", "none", "--cgroup-parent", cgroup,
		"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768", "--rootfs", rootfs, "/bin/sleep", "300")
	pid, err := strconv.Atoi(run("inspect", "--format", "{{.State.Pid}}", name))
	if err != nil {
		t.Fatal(err)
	}
	return id, pid, runcRoot
}

// TestStateSourcePodman finds a podman container as a podman container.
func TestStateSourcePodman(t *testing.T) {
	id, pid, runcRoot := podmanRun(t)
	got, err := (&StateSource{Roots: []Root{{EngineRunc, runcRoot}}}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []discover.Container{{ID: id, Engine: EnginePodman, PID: pid}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestRootsFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env     string
		want    []Root
		wantErr bool
	}{
		{"", nil, false},
		{"runc=/a, crun=/b/*", []Root{{EngineRunc, "/a"}, {EngineCrun, "/b/*"}}, false},
		{"runc=relative", nil, true},
		{"docker=/x", nil, true},
		{"/x", nil, true},
	} {
		t.Setenv("NSREL_RUNTIME_ROOTS", tc.env)
		got, err := RootsFromEnv()
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: err = %v", tc.env, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tc.env, diff)
		}
	}
}

// fakeSource is a canned [discover.ContainerSource], in addition to the
// real sources tested above, for the combination rules.
type fakeSource struct {
	cs  []discover.Container
	err error
}

func (f fakeSource) Name() string { return "fake" }
func (f fakeSource) List(context.Context) ([]discover.Container, error) {
	return f.cs, f.err
}

func TestLocal(t *testing.T) {
	a := discover.Container{ID: "a", Engine: EngineRunc, PID: 5}
	aLog := discover.Container{ID: "a", Engine: EngineAuditLog, PID: 5, Name: "ns/p"}
	bad := fakeSource{err: os.ErrPermission}
	for _, tc := range []struct {
		name    string
		l       Local
		want    []discover.Container
		wantErr bool
	}{
		{"merged", Local{fakeSource{cs: []discover.Container{a}}, fakeSource{cs: []discover.Container{aLog}}}, []discover.Container{{ID: "a", Engine: EngineRunc, PID: 5, Name: "ns/p"}}, false},
		{"one fails", Local{fakeSource{cs: []discover.Container{a}}, bad}, []discover.Container{a}, false},
		{"one fails, other empty", Local{fakeSource{}, bad}, []discover.Container{}, false},
		{"all fail", Local{bad, bad}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.l.List(context.Background())
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// crunRun starts a detached crun container id from a fresh busybox bundle
// with state in root and deletes it when the test ends. crun 1.8 refuses
// this VM's hybrid cgroup layout, so, as in the hook tests, it runs in a
// private mount namespace without /sys/fs/cgroup/unified.
func crunRun(t *testing.T, root, id string) int {
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
	data, err := os.ReadFile(filepath.Join(root, id, "status"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseCrunStatus(data)
	if err != nil {
		t.Fatal(err)
	}
	return st.PID
}

// TestStateSourceCrun lists a real crun container from its status file.
func TestStateSourceCrun(t *testing.T) {
	nstest.RequireRoot(t)
	root := filepath.Join(t.TempDir(), "crun")
	id := uniq("crun-1")
	pid := crunRun(t, root, id)
	got, err := (&StateSource{Roots: []Root{{EngineCrun, root}}}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]discover.Container{{ID: id, Engine: EngineCrun, PID: pid}}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
