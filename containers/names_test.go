package containers

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

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
	bundle := func(store string) string { return filepath.Join(dir, store, "overlay-containers", id, "userdata") }
	for _, tc := range []struct {
		name, bundle, id string
		owner            uint32
		want             string
	}{
		{"root's storage", bundle("root"), id, 0, "myweb"},
		{"root's storage, rootless state", bundle("root"), id, 1000, "myweb"},
		{"user's storage, user's state", bundle("user"), id, 1000, "myweb"},
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
			if got := make(podmanStores).name(tc.bundle, tc.id, tc.owner); got != tc.want {
				t.Errorf("name(%s, %s, %d) = %q, want %q", tc.bundle, tc.id, tc.owner, got, tc.want)
			}
		})
	}
	// One read per storage and owner.
	p := make(podmanStores)
	p.name(bundle("root"), id, 0)
	p.name(bundle("root"), "other", 0)
	if len(p) != 1 {
		t.Errorf("%d storages cached, want 1", len(p))
	}
}

// FuzzParsePodmanNames checks that every name returned is the first,
// non-empty name of a listed container, and holds no '/' (podman allows
// none; a user's file with one would name a Kubernetes pod).
func FuzzParsePodmanNames(f *testing.F) {
	f.Add([]byte(`[{"id":"b1db","names":["myweb","alias"],"image":"","layer":"b0fa","metadata":"{}","flags":{}}]`))
	f.Add([]byte(`[{"id":"x","names":[]},{"id":"y","names":[""]},{"id":"x","names":["dup"]}]`))
	f.Add([]byte(`{"id":"x"}`))
	f.Add([]byte(`[{"id":"x","names":["prod/web-0"]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		names := parsePodmanNames(data)
		var list []storageContainer
		if json.Unmarshal(data, &list) != nil {
			if names != nil {
				t.Fatalf("names %v from input that does not decode", names)
			}
			return
		}
		for id, name := range names {
			if name == "" || strings.Contains(name, "/") || !slices.ContainsFunc(list, func(c storageContainer) bool {
				return c.ID == id && len(c.Names) > 0 && c.Names[0] == name
			}) {
				t.Fatalf("name %q for %q not in %s", name, id, data)
			}
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
