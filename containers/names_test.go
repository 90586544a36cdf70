package containers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// writeOwned writes data to path (making its directory) owned by uid.
func writeOwned(t *testing.T, path, data string, uid int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// TestPodmanStoreName reads names from a containers/storage list as
// podman 4.3 writes it, and refuses what does not fit.
func TestPodmanStoreName(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	id := "b1db863565b0b2a5a5c215965c4221f056423405ed0b4c306a4e6e47c3fe8f0c"
	list := `[{"id":"` + id + `","names":["myweb"],"image":"","layer":"b0fa","metadata":"{\"name\":\"myweb\"}","flags":{}},{"id":"other","names":[]}]`
	writeOwned(t, filepath.Join(dir, "root/overlay-containers/containers.json"), list, 0)
	writeOwned(t, filepath.Join(dir, "user/overlay-containers/containers.json"), list, 1000)
	if err := os.MkdirAll(filepath.Join(dir, "sym/overlay-containers"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "root/overlay-containers/containers.json"), filepath.Join(dir, "sym/overlay-containers/containers.json")); err != nil {
		t.Fatal(err)
	}
	writeOwned(t, filepath.Join(dir, "bad/overlay-containers/containers.json"), `{"id":"x"}`, 0)
	// Rootless podman's storage without fuse-overlayfs: the vfs driver's
	// (it had no name).
	writeOwned(t, filepath.Join(dir, "vfs/vfs-containers/containers.json"), list, 1000)
	bundle := func(store string) string { return filepath.Join(dir, store, "overlay-containers", id, "userdata") }
	for _, tc := range []struct {
		name, bundle, id string
		owner            uint32
		want             string
	}{
		{"root's storage", bundle("root"), id, 0, "myweb"},
		// A user's state may name any path: root's storage gave a
		// user's container a root container's ID and name.
		{"root's storage, rootless state", bundle("root"), id, 1000, ""},
		{"user's storage, user's state", bundle("user"), id, 1000, "myweb"},
		{"vfs driver", filepath.Join(dir, "vfs/vfs-containers", id, "userdata"), id, 1000, "myweb"},
		{"not a driver's", filepath.Join(dir, "vfs/x-containers", id, "userdata"), id, 1000, ""},
		{"user's storage, another user's state", bundle("user"), id, 1001, ""},
		{"user's storage, root's state", bundle("user"), id, 0, ""},
		{"not the container's bundle", bundle("root"), "other", 0, ""},
		{"not podman's layout", filepath.Join(dir, "root", id, "userdata"), id, 0, ""},
		{"relative", filepath.Join("root/overlay-containers", id, "userdata"), id, 0, ""},
		{"no names", filepath.Join(dir, "root/overlay-containers/other/userdata"), "other", 0, ""},
		{"not a list", bundle("bad"), id, 0, ""},
		{"symlink", bundle("sym"), id, 0, ""},
		{"missing", bundle("none"), id, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := podmanName(context.Background(), tc.bundle, tc.id, tc.owner); got != tc.want {
				t.Errorf("name(%s, %s, %d) = %q, want %q", tc.bundle, tc.id, tc.owner, got, tc.want)
			}
		})
	}
	// One read per storage, whatever the containers asking.
	reads := readsSeen(t)
	fs := []*found{
		{discover.Container{ID: id, Engine: EnginePodman}, bundle("root"), 0},
		{discover.Container{ID: "other", Engine: EnginePodman}, filepath.Join(dir, "root/overlay-containers/other/userdata"), 0},
	}
	newNameReads(context.Background()).addPodmanNames(fs)
	if got := reads(); len(got) != 1 || got[0].Entries != 2 || got[0].Kept != 1 {
		t.Errorf("reads %+v; want one of 2 entries, 1 kept", got)
	}
}

// podmanName returns the name addPodmanNames gives one podman container.
func podmanName(ctx context.Context, bundle, id string, owner uint32) string {
	f := &found{discover.Container{ID: id, Engine: EnginePodman}, bundle, owner}
	newNameReads(ctx).addPodmanNames([]*found{f})
	return f.c.Name
}

// readsSeen records the containers.json reads from now on (until the
// test ends); the function returned gives those so far.
func readsSeen(t *testing.T) func() []podmanRead {
	var mu sync.Mutex
	var reads []podmanRead
	hook := func(r podmanRead) {
		mu.Lock()
		defer mu.Unlock()
		reads = append(reads, r)
	}
	podmanReadHook.Store(&hook)
	t.Cleanup(func() { podmanReadHook.Store(nil) })
	return func() []podmanRead {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(reads)
	}
}

// parsePodmanNames is what containers.json used to be read with: all of
// it into an ID to first name map; nil if it does not decode. The
// streaming decoder must agree with it.
func parsePodmanNames(data []byte) map[string]string {
	var list []storageContainer
	if json.Unmarshal(data, &list) != nil {
		return nil
	}
	names := make(map[string]string, len(list))
	for _, c := range list {
		if len(c.Names) > 0 && c.Names[0] != "" && !strings.Contains(c.Names[0], "/") {
			names[c.ID] = c.Names[0]
		}
	}
	return names
}

// FuzzDecodePodmanNames checks that the streaming decoder refuses what
// json.Unmarshal refuses, and otherwise returns the first, non-empty
// name, without '/' (podman allows none; a user's file with one would
// name a Kubernetes pod), of each wanted container: the last such of
// an ID listed twice, as a map of them all had it.
func FuzzDecodePodmanNames(f *testing.F) {
	f.Add([]byte(`[{"id":"b1db","names":["myweb","alias"],"image":"","layer":"b0fa","metadata":"{}","flags":{}}]`))
	f.Add([]byte(`[{"id":"x","names":[]},{"id":"y","names":[""]},{"id":"x","names":["dup"]}]`))
	f.Add([]byte(`{"id":"x"}`))
	f.Add([]byte(`[{"id":"x","names":["prod/web-0"]}]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[{"id":"x","names":["a"]}] [`))
	f.Add([]byte(`[{"id":"x","names":["a"]},{"id":"y","names":[1]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		all := parsePodmanNames(data)
		// Every other container listed is wanted, and one not listed.
		wanted := map[string]bool{"absent": true}
		var list []storageContainer
		_ = json.Unmarshal(data, &list)
		for i, c := range list {
			wanted[c.ID] = wanted[c.ID] || i%2 == 0
		}
		got, entries, err := decodePodmanNames(context.Background(), bytes.NewReader(data), wanted)
		if all == nil {
			if got != nil || err == nil {
				t.Fatalf("names %v, error %v from input that does not decode", got, err)
			}
			return
		}
		want := make(map[string]string)
		for id, name := range all {
			if wanted[id] {
				want[id] = name
			}
		}
		if err != nil || entries != len(list) {
			t.Fatalf("error %v, %d entries; want none, %d", err, entries, len(list))
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%s (-want +got):\n%s", data, diff)
		}
	})
}

// TestAddDockerNames names Docker containers from configs laid out as
// Docker keeps them, and only those.
func TestAddDockerNames(t *testing.T) {
	nstest.RequireRoot(t)
	root := t.TempDir()
	const a, b, c = "aaaa", "bbbb", "cccc"
	writeOwned(t, filepath.Join(root, "containers", a, "config.v2.json"), `{"ID":"aaaa","Name":"/web","Config":{"Env":["X=1"]}}`, 0)
	writeOwned(t, filepath.Join(root, "containers", b, "config.v2.json"), `{"ID":"bbbb","Name":"/mine"}`, 1000)
	writeOwned(t, filepath.Join(root, "containers", c, "config.v2.json"), `{"ID":"other","Name":"/lie"}`, 0)
	cs := []discover.Container{
		{ID: a, Engine: EngineContainerd, Namespace: "moby", PID: 1},
		{ID: a, Engine: EngineContainerd, Namespace: "default", PID: 2},
		{ID: a, Engine: EngineContainerd, Namespace: "moby", PID: 3, Name: "kept"},
		{ID: b, Engine: EngineContainerd, Namespace: "moby", PID: 4},
		{ID: c, Engine: EngineContainerd, Namespace: "moby", PID: 5},
		{ID: "../" + a, Engine: EngineContainerd, Namespace: "moby", PID: 6},
		{ID: "dddd", Engine: EngineContainerd, Namespace: "moby", PID: 7},
		{ID: a, Engine: EngineAuditLog, Namespace: "moby", PID: 8},
		{ID: a, Engine: EngineRunc, PID: 9},
	}
	want := append([]discover.Container(nil), cs...)
	want[0].Name = "web"
	want[7].Name = "web"
	AddDockerNames(cs, root)
	if diff := cmp.Diff(want, cs, ignoreStart); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// fakePodman is a user's runtime root of fake podman containers, as a
// local user can make them: state files it owns naming its own process
// (a sleep running as uid 4242), marked io.container.manager=libpod,
// with bundle paths of its choice; another user's (4243) too, naming a
// process of that user's.
type fakePodman struct {
	t    *testing.T
	root string
	pid  int
	// start is the process's start time.
	start uint64
	// other is the process of uid 4243, started at its first container.
	other *nstest.Proc
}

func newFakePodman(t *testing.T) *fakePodman {
	nstest.RequireRoot(t)
	p := nstest.Sleep(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4242, Gid: 4242}}, "--user") // in a user namespace of the user's, as a rootless runtime's
	start, err := inspect.StartTime(p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return &fakePodman{t: t, root: t.TempDir(), pid: p.Pid, start: start}
}

// proc returns the PID and start time of uid's process (4243's, or
// 4242's for 4242 and root).
func (f *fakePodman) proc(uid int) (int, uint64) {
	if uid != 4243 {
		return f.pid, f.start
	}
	if f.other == nil {
		f.other = nstest.Sleep(f.t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4243, Gid: 4243}}, "--user")
	}
	start, err := inspect.StartTime(f.other.Pid)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.other.Pid, start
}

// add writes container id's state, owned by uid, with the bundle
// STORE/overlay-containers/ID/userdata.
func (f *fakePodman) add(id, store string, uid int) {
	bundle := filepath.Join(store, "overlay-containers", id, "userdata")
	pid, start := f.proc(uid)
	st := fmt.Sprintf(`{"id":%q,"init_process_pid":%d,"init_process_start":%d,"config":{"labels":["bundle=%s","io.container.manager=libpod"]}}`, id, pid, start, bundle)
	if err := os.Chown(writeState(f.t, f.root, id, "state.json", st), uid, uid); err != nil {
		f.t.Fatal(err)
	}
}

// list lists f's root.
func (f *fakePodman) list() ([]discover.Container, error) {
	return (&StateSource{Roots: []Root{{EngineRunc, f.root}}}).List(context.Background())
}

// want is container id, named name, as a user's podman container
// (owner 4242) or root's.
func (f *fakePodman) want(id, name string, uid int) discover.Container {
	pid, _ := f.proc(uid)
	c := discover.Container{ID: id, Engine: EnginePodman, PID: pid, Name: name}
	if uid != 0 {
		c.Namespace = UserNamespacePrefix + strconv.Itoa(uid)
	}
	return c
}

// TestPodmanNamesReadOnce: 40 containers of a user whose bundles lead,
// through 40 symlinks, to one storage directory are named from one read
// of its containers.json, keeping their 40 names of its 2,040. Each
// path was read and kept whole (a 15.5 MB file 40 times: 1.6 GB).
func TestPodmanNamesReadOnce(t *testing.T) {
	f := newFakePodman(t)
	dir := t.TempDir()
	var list []string
	var want []discover.Container
	for i := range 40 {
		id := fmt.Sprintf("ctr%02d", i)
		link := filepath.Join(dir, fmt.Sprintf("link%02d", i))
		if err := os.Symlink(filepath.Join(dir, "store"), link); err != nil {
			t.Fatal(err)
		}
		f.add(id, link, 4242)
		list = append(list, fmt.Sprintf(`{"id":%q,"names":["name%02d"]}`, id, i))
		want = append(want, f.want(id, fmt.Sprintf("name%02d", i), 4242))
	}
	for i := range 2000 {
		list = append(list, fmt.Sprintf(`{"id":"other%d","names":["n%d"]}`, i, i))
	}
	writeOwned(t, filepath.Join(dir, "store/overlay-containers/containers.json"), "["+strings.Join(list, ",")+"]", 4242)
	reads := readsSeen(t)
	got, err := f.list()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Merge(want), Merge(got), ignoreStart); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if r := reads(); len(r) != 1 || r[0].Entries != 2040 || r[0].Kept != 40 {
		t.Errorf("reads %+v; want one of 2,040 entries, 40 kept", r)
	}
}

// podmanList returns a containers.json of n containers, ID
// fmt.Sprintf("%x", i), named fmt.Sprintf("%X", i), about 32 bytes each.
func podmanList(n int) []byte {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i := range n {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"id":"%x","names":["%X"]}`, i, i)
	}
	buf.WriteByte(']')
	return buf.Bytes()
}

// TestPodmanNamesHugeFile: a user's containers.json of 500,000
// containers (16.3 MB, near MaxNamesFile) names the user's two
// containers listed in it, keeping two entries, not a map of them all
// (525,000 entries a read held 383 MB of memory in all).
func TestPodmanNamesHugeFile(t *testing.T) {
	f := newFakePodman(t)
	store := t.TempDir()
	data := podmanList(500_000)
	writeOwned(t, filepath.Join(store, "overlay-containers/containers.json"), string(data), 4242)
	f.add("7", store, 4242)
	f.add("7a11f", store, 4242)
	reads := readsSeen(t)
	got, err := f.list()
	if err != nil {
		t.Fatal(err)
	}
	want := []discover.Container{f.want("7", "7", 4242), f.want("7a11f", "7A11F", 4242)}
	if diff := cmp.Diff(Merge(want), Merge(got), ignoreStart); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]podmanRead{{filepath.Join(store, "overlay-containers/containers.json"), int64(len(data)), 500_000, 2}}, reads()); diff != "" {
		t.Errorf("reads (-want +got):\n%s", diff)
	}
}

// TestPodmanNamesCap: a user's containers with a storage each, of 15 MiB
// (distinct files), are named while the bytes read stay within
// MaxNamesRead; the storage beyond is not read, and the listing says
// so, naming it. Root's storage and another user's, read after, have a
// budget of their own: the user's files do not take their containers'
// names (users shared one: a user took another's).
func TestPodmanNamesCap(t *testing.T) {
	f := newFakePodman(t)
	dir := t.TempDir()
	const size = 15 << 20
	store := func(id, name string, uid int) string {
		s := filepath.Join(dir, id)
		entry := fmt.Sprintf(`[{"id":%q,"names":[%q]}`, id, name)
		writeOwned(t, filepath.Join(s, "overlay-containers/containers.json"), entry+strings.Repeat(" ", size-len(entry)-1)+"]", uid)
		f.add(id, s, uid)
		return filepath.Join(s, "overlay-containers/containers.json")
	}
	store("u1", "one", 4242)
	store("u2", "two", 4242)
	third := store("u3", "three", 4242)
	store("v-other", "others", 4243)
	store("z-root", "rootweb", 0)
	reads := readsSeen(t)
	got, err := f.list()
	var pe *PartialError
	if wantErr := fmt.Sprintf("podman names %s: not read, over the %d bytes of names a listing reads; containers shown without names", third, MaxNamesRead); !errors.As(err, &pe) || err.Error() != wantErr {
		t.Errorf("error %v; want %s", err, wantErr)
	}
	want := []discover.Container{f.want("u1", "one", 4242), f.want("u2", "two", 4242), f.want("u3", "", 4242), f.want("v-other", "others", 4243), f.want("z-root", "rootweb", 0)}
	if diff := cmp.Diff(Merge(want), Merge(got), ignoreStart); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var users, total int64
	for _, r := range reads() {
		if strings.Contains(r.Path, "/u") {
			users += r.Bytes
		}
		total += r.Bytes
	}
	if users > MaxNamesRead || total != 4*size {
		t.Errorf("read %d bytes of the user's files (at most %d), %d in all; want 4 files of %d", users, MaxNamesRead, total, size)
	}
}

// TestPodmanNamesRootsStorageUsersPay: a user's containers whose
// bundles name root's storages (a user's state may name any path) get
// no name from them (they took root containers' names, which lsuserns
// --container then found on the user's namespaces), and cost nothing:
// they used up root's budget, and root's own container, read after,
// lost its name.
func TestPodmanNamesRootsStorageUsersPay(t *testing.T) {
	f := newFakePodman(t)
	dir := t.TempDir()
	const size = 15 << 20
	store := func(id, name string, fileUID, stateUID int) {
		s := filepath.Join(dir, id)
		entry := fmt.Sprintf(`[{"id":%q,"names":[%q]}`, id, name)
		writeOwned(t, filepath.Join(s, "overlay-containers/containers.json"), entry+strings.Repeat(" ", size-len(entry)-1)+"]", fileUID)
		f.add(id, s, stateUID)
	}
	store("r1", "one", 0, 4242)
	store("r2", "two", 0, 4242)
	store("r3", "three", 0, 4242)
	store("z-root", "rootweb", 0, 0)
	got, err := f.list()
	want := []discover.Container{f.want("r1", "", 4242), f.want("r2", "", 4242), f.want("r3", "", 4242), f.want("z-root", "rootweb", 0)}
	if diff := cmp.Diff(Merge(want), Merge(got), ignoreStart); diff != "" {
		t.Errorf("(-want +got), error %v:\n%s", err, diff)
	}
}

// TestPodmanNamesDeadline: reading stops at the listing's deadline, in
// the middle of a file, and a storage not read then is said.
func TestPodmanNamesDeadline(t *testing.T) {
	data := podmanList(300_000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &cancelAfter{r: bytes.NewReader(data), after: 1 << 20, cancel: cancel}
	names, entries, err := decodePodmanNames(ctx, r, map[string]bool{"1": true})
	if !errors.Is(err, context.Canceled) || names != nil || entries >= 300_000 || r.n > 2<<20 {
		t.Errorf("names %v, %d entries, %d bytes read, error %v; want none, stopped after about 1 MiB of %d", names, entries, r.n, err, len(data))
	}
	nstest.RequireRoot(t)
	dir := t.TempDir()
	writeOwned(t, filepath.Join(dir, "overlay-containers/containers.json"), `[{"id":"x","names":["web"]}]`, 0)
	n := newNameReads(ctx)
	fs := []*found{{discover.Container{ID: "x", Engine: EnginePodman}, filepath.Join(dir, "overlay-containers/x/userdata"), 0}}
	n.addPodmanNames(fs)
	wantErr := "podman names " + filepath.Join(dir, "overlay-containers/containers.json") + ": not read in time; containers shown without names"
	if errs := n.errs(); fs[0].c.Name != "" || len(errs) != 1 || errs[0].Error() != wantErr {
		t.Errorf("after the deadline: name %q, errors %v; want none, %q", fs[0].c.Name, errs, wantErr)
	}
}

// cancelAfter reads r and calls cancel once more than after bytes were
// read.
type cancelAfter struct {
	r      io.Reader
	n      int64
	after  int64
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n += int64(n); c.n > c.after {
		c.cancel()
	}
	return n, err
}
