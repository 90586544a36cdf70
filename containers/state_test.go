package containers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/bundle"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/runtest"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// TestStateSourceRunc lists plain runc containers without any daemon.
func TestStateSourceRunc(t *testing.T) {
	nstest.RequireRoot(t)
	root := filepath.Join(t.TempDir(), "runc")
	a := runtest.Runc(t, root, ctrdtest.Uniq("zoo-1"), false, nil)
	b := runtest.Runc(t, root, ctrdtest.Uniq("zoo-2"), true, nil)
	got, err := (&StateSource{Roots: []Root{{EngineRunc, root}, {EngineCrun, filepath.Join(t.TempDir(), "absent")}}}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []discover.Container{
		{ID: ctrdtest.Uniq("zoo-1"), Engine: EngineRunc, PID: a},
		{ID: ctrdtest.Uniq("zoo-2"), Engine: EngineRunc, PID: b},
	}
	if diff := cmp.Diff(want, Merge(got), ignoreStart); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// The start time runc recorded, which tells the process from a later
	// one with its PID (lsuserns checks it after reading the namespaces).
	for _, c := range got {
		if st, err := inspect.StartTime(c.PID); err != nil || c.StartTime != st {
			t.Errorf("%s: start time %d; the process's is %d (%v)", c.ID, c.StartTime, st, err)
		}
	}
}

// TestStateSourceSlowRoot: a root that does not answer in time (a
// user's root with 300,000 directories took 2 s; here one held back)
// leaves the others' containers shown, real runc containers, and the
// source says which root it did not read, through Local too. The whole
// source used to time out, every local container hidden.
func TestStateSourceSlowRoot(t *testing.T) {
	nstest.RequireRoot(t)
	root := filepath.Join(t.TempDir(), "runc")
	pid := runtest.Runc(t, root, ctrdtest.Uniq("fast-1"), false, nil)
	slow := t.TempDir()
	release := make(chan struct{})
	hook := func(dir string) {
		if dir == slow {
			<-release
		}
	}
	beforeListRoot.Store(&hook)
	t.Cleanup(func() { close(release); beforeListRoot.Store(nil) })
	for _, src := range []discover.ContainerSource{
		&StateSource{Roots: []Root{{EngineRunc, slow}, {EngineRunc, root}}},
		Local{&StateSource{Roots: []Root{{EngineRunc, slow}, {EngineRunc, root}}}, &AuditSource{Path: filepath.Join(t.TempDir(), "none.jsonl")}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		got, err := src.List(ctx)
		cancel()
		var pe *PartialError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "runc state "+slow+": not read in time") {
			t.Errorf("%T: error %v; want one naming the root not read", src, err)
		}
		if diff := cmp.Diff([]discover.Container{{ID: ctrdtest.Uniq("fast-1"), Engine: EngineRunc, PID: pid}}, Merge(got), ignoreStart); diff != "" {
			t.Errorf("%T: containers (-want +got):\n%s", src, diff)
		}
	}
	// The slow root alone (with one missing): it is said too, and only
	// it; no root read is no reason to be silent.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	got, err := (&StateSource{Roots: []Root{{EngineRunc, filepath.Join(t.TempDir(), "absent")}, {EngineCrun, slow}}}).List(ctx)
	var pe *PartialError
	if !errors.As(err, &pe) || err.Error() != "crun state "+slow+": not read in time" || len(got) != 0 {
		t.Errorf("the slow root alone: %v, %v; want no container and the root named alone", got, err)
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
	writeState(t, root, "crio", "state.json", fmt.Sprintf(`{"id":"crio","init_process_pid":%d,"init_process_start":%d,"config":{"labels":["bundle=/run/containers/storage/overlay-containers/crio/userdata","io.kubernetes.cri-o.ContainerType=container","io.kubernetes.pod.name=api-1","io.kubernetes.pod.namespace=prod","io.kubernetes.container.name=api"]}}`, p.Pid, start))
	writeState(t, root, "nerd", "state.json", fmt.Sprintf(`{"id":"nerd","init_process_pid":%d,"init_process_start":%d,"config":{"labels":["bundle=/run/containerd/io.containerd.runtime.v2.task/default/nerd","nerdctl/name=web"]}}`, p.Pid, start))
	// containerd's, with CRI-O's keys a pod's author added (its
	// pod_annotations passes them): containerd's, named by its CRI's
	// keys (CRI-O's, named as the author chose, before).
	writeState(t, root, "ctrdcrio", "state.json", fmt.Sprintf(`{"id":"ctrdcrio","init_process_pid":%d,"init_process_start":%d,"config":{"labels":["bundle=/run/containerd/io.containerd.runtime.v2.task/k8s.io/ctrdcrio","io.kubernetes.cri.sandbox-name=web-0","io.kubernetes.cri.sandbox-namespace=tenant","io.kubernetes.cri-o.ContainerType=container","io.kubernetes.pod.name=kube-apiserver-node1","io.kubernetes.pod.namespace=kube-system"]}}`, p.Pid, start))
	writeState(t, root, "reused", "state.json", runc("reused", start+1, "/b"))
	writeState(t, root, "liar", "state.json", runc("other-id", start, "/b"))
	writeState(t, root, "bad json", "state.json", runc("bad json", start, "/b"))
	writeState(t, root, "trunc", "state.json", runc("trunc", start, "/b")[:40])
	writeState(t, root, "huge", "state.json", runc("huge", start, "/b")[:20]+`"pad":"`+string(make([]byte, vocab.MaxStateSize))+`"}`)
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
		{ID: "crio", Engine: EngineCRIO, PID: p.Pid, Name: "prod/api-1/api"},
		{ID: "nerd", Engine: EngineContainerd, Namespace: "default", PID: p.Pid, Name: "web"},
		{ID: "ctrdcrio", Engine: EngineContainerd, Namespace: "k8s.io", PID: p.Pid, Name: "tenant/web-0"},
		{ID: "good", Engine: EngineRunc, PID: p.Pid},
	}
	if diff := cmp.Diff(Merge(want), Merge(got), ignoreStart); diff != "" {
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
			if diff := cmp.Diff(tc.want, got, ignoreStart); !tc.wantErr && diff != "" {
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
		if st.PID <= 0 || st.PID >= vocab.PIDLimit {
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
		if st.PID <= 0 || st.PID >= vocab.PIDLimit {
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
	userRunc := discover.Container{ID: "r", Engine: EngineRunc, Namespace: "uid=4242", PID: 11, Name: "attacker"}
	userPodman := discover.Container{ID: "r", Engine: EnginePodman, Namespace: "uid=4243", PID: 11, Name: "attacker2"}
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
		// A user's state file naming root's container's ID and PID (a
		// process Alive believes the user's): both stay, root's unchanged
		// and first (a user picks its engine's name: crun sorts first).
		{"a user's never merged into root's", [][]discover.Container{{runc}, {userRunc}, {userPodman}},
			[]discover.Container{runc, userPodman, userRunc}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Merge(tc.lists...), ignoreStart); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestStateSourcePodman finds a podman container as a podman container,
// with the name podman's storage has for it.
func TestStateSourcePodman(t *testing.T) {
	id, pid, runcRoot := runtest.Podman(t)
	got, err := (&StateSource{Roots: []Root{{EngineRunc, runcRoot}}}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []discover.Container{{ID: id, Engine: EnginePodman, PID: pid, Name: runtest.PodmanName()}}
	if diff := cmp.Diff(want, got, ignoreStart); diff != "" {
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
		if diff := cmp.Diff(tc.want, got, ignoreStart); diff != "" {
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
	bad := fakeSource{err: errors.New("NSREL_RUNTIME_ROOTS: \"run/crun\" is not runc=/DIR or crun=/DIR")}
	missing := fakeSource{err: os.ErrNotExist}
	// The error: none, a partial answer (the others' containers, the
	// failure said), or a failure.
	const none, partial, failed = 0, 1, 2
	for _, tc := range []struct {
		name    string
		l       Local
		want    []discover.Container
		wantErr int
	}{
		{"merged", Local{fakeSource{cs: []discover.Container{a}}, fakeSource{cs: []discover.Container{aLog}}}, []discover.Container{{ID: "a", Engine: EngineRunc, PID: 5, Name: "ns/p"}}, none},
		{"one fails", Local{fakeSource{cs: []discover.Container{a}}, bad}, []discover.Container{a}, partial},
		{"one fails, other empty", Local{fakeSource{}, bad}, []discover.Container{}, partial},
		{"one has nothing to read", Local{fakeSource{cs: []discover.Container{a}}, missing}, []discover.Container{a}, none},
		{"all fail", Local{bad, bad}, nil, failed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.l.List(context.Background())
			var pe *PartialError
			if kind := map[bool]int{true: partial, false: failed}[errors.As(err, &pe)]; err == nil && tc.wantErr != none || err != nil && kind != tc.wantErr {
				t.Fatalf("err = %v; want %d (0 none, 1 partial, 2 failed)", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got, ignoreStart); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestStateSourceCrun lists a real crun container from its status file.
func TestStateSourceCrun(t *testing.T) {
	nstest.RequireRoot(t)
	root := filepath.Join(t.TempDir(), "crun")
	id := ctrdtest.Uniq("crun-1")
	pid := runtest.Crun(t, root, id)
	got, err := (&StateSource{Roots: []Root{{EngineCrun, root}}}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]discover.Container{{ID: id, Engine: EngineCrun, PID: pid}}, got, ignoreStart); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestValidID: the ID syntax of runc and crun, [A-Za-z0-9_+.-]+, and
// nothing else (no separators, no control characters, no UTF-8).
func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"abc": true, "A-b_c.d+e": true, "0123456789abcdef": true, "a": true,
		"": false, "a/b": false, "a b": false, "a\nb": false, "ü": false, "a:b": false, "..\x00": false,
	} {
		if got := validID(id); got != want {
			t.Errorf("validID(%q) = %v, want %v", id, got, want)
		}
	}
}

// TestStateSourceRootless: a state file owned by the user its process
// runs as (a rootless runtime's, which that user writes) that claims a
// containerd Kubernetes container, a CRI-O one or a podman one named as a
// Kubernetes pod is listed as the runtime's container (podman's stays
// podman's), without the Kubernetes name, in the engine namespace
// uid=UID: a local user cannot pose as a system pod, nor as a root
// container with the same ID.
func TestStateSourceRootless(t *testing.T) {
	nstest.RequireRoot(t)
	// In a user namespace of the user's, as a rootless runtime's.
	p := nstest.Sleep(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4242, Gid: 4242}}, "--user")
	start, err := inspect.StartTime(p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	k8s := `"io.kubernetes.pod.namespace=kube-system","io.kubernetes.pod.name=etcd-node1","io.kubernetes.container.name=etcd"`
	state := func(id, labels string) string {
		return fmt.Sprintf(`{"id":%q,"init_process_pid":%d,"init_process_start":%d,"config":{"labels":[%s]}}`, id, p.Pid, start, labels)
	}
	root := t.TempDir()
	for id, labels := range map[string]string{
		"f00dbabe0000": `"bundle=/run/containerd/io.containerd.runtime.v2.task/k8s.io/f00dbabe0000",` + k8s,
		"crio1":        `"bundle=/run/containers/storage/overlay-containers/crio1/userdata","io.kubernetes.cri-o.ContainerType=container",` + k8s,
		"pod1":         `"bundle=/run/user/4242/containers/overlay-containers/pod1/userdata","io.container.manager=libpod",` + k8s,
		"nerd1":        `"bundle=/run/user/4242/containerd/io.containerd.runtime.v2.task/default/nerd1","nerdctl/name=web"`,
	} {
		if err := os.Chown(writeState(t, root, id, "state.json", state(id, labels)), 4242, 4242); err != nil {
			t.Fatal(err)
		}
	}
	got, err := (&StateSource{Roots: []Root{{EngineRunc, root}}}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []discover.Container{
		{ID: "f00dbabe0000", Engine: EngineRunc, Namespace: "uid=4242", PID: p.Pid},
		{ID: "crio1", Engine: EngineRunc, Namespace: "uid=4242", PID: p.Pid},
		{ID: "pod1", Engine: EnginePodman, Namespace: "uid=4242", PID: p.Pid},
		{ID: "nerd1", Engine: EngineRunc, Namespace: "uid=4242", PID: p.Pid, Name: "web"},
	}
	if diff := cmp.Diff(Merge(want), Merge(got), ignoreStart); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// copyState copies the state file src to root/id/file, keeping its owner
// (root) and mode, in directories owned by uid: what a user's root holds
// once a directory of its own was swapped with one of root's state.
func copyState(t *testing.T, src, root, id, file string, uid int) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeState(t, root, id, file, string(data))
	for _, d := range []string{root, filepath.Join(root, id)} {
		if err := os.Chown(d, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStateSourceUsersRootNotRoots: a user can make a directory of its
// own root (its rootless runtime's, /run/user/UID/crun) lead to the
// state of root's container, swapping it with a symlink to
// /run/crun/REALID between the listing and the open. crun's status holds
// no ID, so the directory name, the user's choice (kube-apiserver), was
// taken as the ID of a root container (the file is root's) with the
// real container's PID. Here the swap's outcome, root's status of a real
// crun container in a user's root (a copy, owned by root), and in a
// root of root's below a directory of the user's, is not listed; nor is
// a root that is a symlink to root's. The real container is, from its
// own root.
func TestStateSourceUsersRootNotRoots(t *testing.T) {
	nstest.RequireRoot(t)
	realRoot := filepath.Join(t.TempDir(), "crun")
	id := ctrdtest.Uniq("crun-real")
	pid := runtest.Crun(t, realRoot, id)
	status := filepath.Join(realRoot, id, "status")

	usersRoot := filepath.Join(t.TempDir(), "crun")
	copyState(t, status, usersRoot, "kube-apiserver", "status", 65534)
	home := t.TempDir()
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	belowUsers := filepath.Join(home, "crun")
	copyState(t, status, belowUsers, "kube-apiserver", "status", 0)
	link := filepath.Join(t.TempDir(), "crun")
	if err := os.Symlink(realRoot, link); err != nil {
		t.Fatal(err)
	}
	real := discover.Container{ID: id, Engine: EngineCrun, PID: pid}
	for _, tc := range []struct {
		name    string
		root    string
		want    []discover.Container
		wantErr bool
	}{
		{"root's root", realRoot, []discover.Container{real}, false},
		{"root's state in a user's root", usersRoot, nil, false},
		{"root's state in a root below a user's directory", belowUsers, nil, false},
		{"a root that is a symlink", link, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := (&StateSource{Roots: []Root{{EngineCrun, tc.root}}}).List(context.Background())
			if (err != nil) != tc.wantErr {
				t.Errorf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got, ignoreStart); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestReadContainerNoSymlink: the ID directory is opened from the
// root's descriptor without following a symlink, so one the listing saw
// as a directory and a user then swapped with a symlink to another
// root's ID directory (renameat2 RENAME_EXCHANGE) is refused, in a
// user's root as in root's. It used to be opened by its path, the
// symlink followed, and root's state of a real crun container read as a
// container of the user's directory name.
func TestReadContainerNoSymlink(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.NoFDLeak(t)
	realRoot := filepath.Join(t.TempDir(), "crun")
	id := ctrdtest.Uniq("crun-linked")
	runtest.Crun(t, realRoot, id)
	usersRoot := t.TempDir()
	if err := os.Chown(usersRoot, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(realRoot, id), filepath.Join(usersRoot, "kube-apiserver")); err != nil {
		t.Fatal(err)
	}
	open := func(dir string) int {
		fd, err := openDir(unix.AT_FDCWD, dir, unix.O_RDONLY)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	realFD, usersFD := open(realRoot), open(usersRoot)
	for _, tc := range []struct {
		name string
		root stateRoot
		id   string
		want bool
	}{
		{"the real directory", stateRoot{realFD, realRoot, 0}, id, true},
		{"a symlink in a user's root", stateRoot{usersFD, usersRoot, 65534}, "kube-apiserver", false},
		{"a symlink in root's root", stateRoot{usersFD, usersRoot, 0}, "kube-apiserver", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := readContainer(EngineCrun, tc.root, tc.id, "status")
			if got := f != nil; got != tc.want {
				t.Errorf("read %v (%+v), want %v", got, f, tc.want)
			}
		})
	}
}

// writeMaps writes the uid_map and gid_map of the user namespace of pid
// (one with none yet) as root, from the initial user namespace.
func writeMaps(t *testing.T, pid int, maps string) {
	t.Helper()
	for _, f := range []string{"uid_map", "gid_map"} {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/%s", pid, f), []byte(maps), 0); err != nil {
			t.Fatalf("write %s of %d: %v", f, pid, err)
		}
	}
}

// TestAliveUsersNamespace: a state file owned by a user other than root
// is believed of a process in a user namespace that user created below
// the initial one, or below such a namespace, whatever UID the process
// runs as: a real runc container in the user's namespace whose process
// runs as a user inside (host UID one of the user's subordinate IDs)
// used to be refused, since the process's UID was not the file's. A
// process in the initial user namespace is refused, whether a plain
// process of the user's or root's container run as the user's UID (both
// used to be believed), and so is one in a namespace of root's
// container, also one the user's UID created inside it (a UID inside
// root's container mapped to the user's).
func TestAliveUsersNamespace(t *testing.T) {
	nstest.RequireRoot(t)
	const user = 4242
	sub := nstest.HostIDBase(t) // holds a socket for the test process's life
	nstest.NoFDLeak(t)
	root := filepath.Join(t.TempDir(), "runc")

	usersNS := nstest.Sleep(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: user, Gid: user}}, "--user")
	writeMaps(t, usersNS.Pid, fmt.Sprintf("0 %d 1\n1 %d 65536\n", user, sub))
	rootless := runtest.RuncBundle(t, root, ctrdtest.Uniq("rootless"), bundle.Options{
		UserNS: true, UserNSPath: nstest.NSPath(usersNS.Pid, "user"),
		Mappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: user, Size: 1}, {ContainerID: 1, HostID: sub, Size: 65536}},
		User:     specs.User{UID: 1000, GID: 1000},
	})
	usersTop := nstest.Sleep(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: user, Gid: user}}, "-Ur")
	usersNested := nstest.NestedUserNS(t, usersTop.Pid, "0 0 1")
	plain := nstest.Sleep(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: user, Gid: user}})
	runAsUser := runtest.RuncBundle(t, root, ctrdtest.Uniq("as-user"), bundle.Options{User: specs.User{UID: user, GID: user}})
	rootsUserNS := runtest.Runc(t, root, ctrdtest.Uniq("userns"), true, nil)
	rootsNS := nstest.Sleep(t, nil, "--user")
	writeMaps(t, rootsNS.Pid, fmt.Sprintf("0 %d 1\n", user))
	belowRoots := nstest.NestedUserNS(t, rootsNS.Pid, "0 0 1")

	for _, tc := range []struct {
		name string
		pid  int
		uid  uint32 // the process's host UID, checked so that each row is what it says
		want bool
	}{
		{"rootless runc container, a user inside", rootless, sub + 999, true},
		{"nested in the user's namespace", usersNested, user, true},
		{"the user's plain process", plain.Pid, user, false},
		{"root's container run as the user's UID", runAsUser, user, false},
		{"root's container with a user namespace", rootsUserNS, 100000, false},
		{"created by the user's UID below a namespace of root's", belowRoots, user, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ps unix.Stat_t
			if err := unix.Stat(fmt.Sprintf("/proc/%d", tc.pid), &ps); err != nil || ps.Uid != tc.uid {
				t.Fatalf("pid %d runs as %d (%v), want %d", tc.pid, ps.Uid, err, tc.uid)
			}
			start, err := inspect.StartTime(tc.pid)
			if err != nil {
				t.Fatal(err)
			}
			st := State{ID: "x", PID: tc.pid, StartTime: start}
			if got := st.Alive(user); got != tc.want {
				t.Errorf("Alive(%d) of pid %d = %v, want %v", user, tc.pid, got, tc.want)
			}
			// Root's state is believed of any live process.
			if !st.Alive(0) {
				t.Errorf("Alive(0) of pid %d = false", tc.pid)
			}
		})
	}
}

// TestAliveStartTime: a state that records no start time
// (init_process_start 0) skipped the start-time check, so its PID could
// be reused by another process before lsuserns attached the container.
// A user's such state is now refused (runc and crun always record one);
// root's is believed, with the start time read from /proc recorded, so
// that Annotate's check after reading the namespaces applies.
func TestAliveStartTime(t *testing.T) {
	nstest.RequireRoot(t)
	const user = 4242
	usersProc := nstest.Sleep(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: user, Gid: user}}, "--user")
	start, err := inspect.StartTime(usersProc.Pid)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		Alive     bool
		StartTime uint64
	}
	for _, tc := range []struct {
		name    string
		fileUID uint32
		start   uint64
		want    result
	}{
		{"a user's, no start time", user, 0, result{false, 0}},
		{"a user's, the start time", user, start, result{true, start}},
		{"a user's, another start time", user, start + 1, result{false, start + 1}},
		{"root's, no start time", 0, 0, result{true, start}},
		{"root's, the start time", 0, start, result{true, start}},
		{"root's, another start time", 0, start + 1, result{false, start + 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := State{ID: "x", PID: usersProc.Pid, StartTime: tc.start}
			alive := st.Alive(tc.fileUID)
			if diff := cmp.Diff(tc.want, result{alive, st.StartTime}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestRootUserFromDirectory: the user a state root belongs to is found
// walking up from the directory opened, not along its path's text: a
// root-owned symlink on the way to a directory of a user's, and a
// relative path (below a working directory of a user's), hid the user's
// directory, and root's state there was believed as root's.
func TestRootUserFromDirectory(t *testing.T) {
	nstest.RequireRoot(t)
	base := t.TempDir()
	users := filepath.Join(base, "u")
	if err := os.MkdirAll(filepath.Join(users, "s", "rt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(users, 4711, 4711); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(users, "s"), filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(base, "r", "rt"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		open, name string
		want       uint32
	}{
		{filepath.Join(users, "s", "rt"), filepath.Join(users, "s", "rt"), 4711},
		{filepath.Join(base, "link", "rt"), filepath.Join(base, "link", "rt"), 4711},
		{filepath.Join(users, "s", "rt"), "rt", 4711},
		{filepath.Join(base, "r", "rt"), filepath.Join(base, "r", "rt"), 0},
	} {
		fd, err := unix.Open(tc.open, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := rootUser(fd, tc.name)
		unix.Close(fd)
		if err != nil || got != tc.want {
			t.Errorf("rootUser of %s (named %q): %d, %v; want %d", tc.open, tc.name, got, err, tc.want)
		}
	}
	// A directory bind-mounted onto one below it is its own parent
	// there, in another mount: the walk stopped as at the root, and
	// missed the user's directory above. It goes on above now.
	loop := filepath.Join(users, "s", "rt")
	if err := unix.Mount(filepath.Join(users, "s"), loop, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(loop, unix.MNT_DETACH) })
	fd, err := unix.Open(loop, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if got, err := rootUser(fd, loop); err != nil || got != 4711 {
		t.Errorf("rootUser of a directory bind-mounted below itself: %d, %v; want 4711, the user's directory above", got, err)
	}
	// Roots in a mount namespace whose root is another file system
	// (pivot_root, as a container's), reached through /proc/PID/root:
	// the top of that namespace ends the walk (it failed when only the
	// caller's "/" could), and a user's directory there is found.
	pivoted := t.TempDir()
	script := `mount -t tmpfs tmpfs "$1" && mkdir -p "$1/old" "$1/home/u/st/rt" "$1/run/runc" && chown 4711 "$1/home/u" &&
		cd "$1" && pivot_root . old && exec /old` + bundle.DefaultBusybox + ` sleep infinity`
	pv := nstest.Start(t, nil, nstest.RequireCmd(t, "unshare"), "--mount", "--propagation", "private", "sh", "-c", script, "sh", pivoted)
	pv.Pid = nstest.WaitLeaf(t, pv.Pid, "busybox")
	for name, want := range map[string]uint32{"/run/runc": 0, "/home/u/st/rt": 4711} {
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/root%s", pv.Pid, name), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := rootUser(fd, "/proc/N/root"+name)
		unix.Close(fd)
		if err != nil || got != want {
			t.Errorf("rootUser of %s in a pivot_root'ed mount namespace: %d, %v; want %d", name, got, err, want)
		}
	}
	// A root in another mount namespace, reached through /proc/PID/root:
	// the top of that namespace ends the walk (a root of root's).
	other := nstest.Sleep(t, nil, "--mount", "--propagation", "private")
	fd2, err := unix.Open(fmt.Sprintf("/proc/%d/root%s", other.Pid, filepath.Join(base, "r", "rt")), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd2)
	if got, err := rootUser(fd2, "/proc/N/root/r/rt"); err != nil || got != 0 {
		t.Errorf("rootUser through /proc/PID/root: %d, %v; want 0 (root's)", got, err)
	}
}
