package tree_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
	"github.com/nsrel/nsrel/tree"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// synthetic builds a model with fixed inodes: two user roots (the second
// as seen from inside a user namespace), nesting with middle and last
// children, an owner without passwd entry, an unknown owner, containers,
// a hostile process name, and a PID tree owned across user namespaces.
func synthetic() *discover.Model {
	m := discover.NewModel()
	add := func(t nsrel.Type, ino uint64, parent, owner *discover.Namespace, uid int64, name string) *discover.Namespace {
		n := &discover.Namespace{Type: t, Dev: 4, Ino: ino, Parent: parent, Owner: owner, OwnerUID: uid, OwnerName: name, NSID: ino - 4026531800, HasNSID: true}
		if t == nsrel.TypeUser {
			n.Owner = parent
		}
		m.Add(n)
		return n
	}
	user := nsrel.TypeUser
	root := add(user, 4026531837, nil, nil, 0, "root")
	root.Processes = []discover.Process{{PID: 1, Comm: "systemd"}, {PID: 2, Comm: "kthreadd"}}
	root.FoundVia = []discover.Found{{Via: discover.ViaProcess, PID: 1}}
	alice := add(user, 4026532300, root, nil, 1000, "alice")
	alice.FoundVia = []discover.Found{{Via: discover.ViaMount, PID: 77, Path: "/run/ns/a\nb", MountNS: 4026532250}}
	nobody := add(user, 4026532400, alice, nil, 4242, "")
	nobody.Processes = []discover.Process{{PID: 4000, Comm: "evil\x1b[31m\u202e"}}
	nobody.FoundVia = []discover.Found{{Via: discover.ViaProcess, PID: 4000}, {Via: discover.ViaFD, PID: 12, Path: "/proc/12/fd/3"}}
	nobody.Containers = []discover.Container{{ID: "zoo-1", Engine: "runc", PID: 4000}}
	web := add(user, 4026532200, root, nil, 0, "root")
	web.Processes = []discover.Process{{PID: 500, Comm: "pause"}}
	web.FoundVia = []discover.Found{{Via: discover.ViaProcess, PID: 500}}
	web.Containers = []discover.Container{
		{ID: "3f1c2a9b7e0d5a6b7c8d9e0f", Engine: "containerd", Namespace: "k8s.io", PID: 500, Name: "default/web-0"},
		{ID: "0a1b2c3d4e5f6a7b", Engine: "podman", PID: 501, Name: "db"},
	}
	mid := add(user, 4026532201, web, nil, 0, "root")
	mid.FoundVia = []discover.Found{{Via: discover.ViaParent, Of: "user:[4026532202]"}}
	leaf := add(user, 4026532202, mid, nil, 0, "root")
	leaf.FoundVia = []discover.Found{{Via: discover.ViaTask, PID: 600, TID: 601}}
	other := add(user, 4026532999, nil, nil, -1, "")
	other.FoundVia = []discover.Found{{Via: discover.ViaOwner, Of: "net:[4026533000]"}}
	add(user, 4026533001, other, nil, 5, "daemon").FoundVia = []discover.Found{{Via: discover.ViaProcess, PID: 9}}

	pid := nsrel.TypePID
	proot := add(pid, 4026531836, nil, root, -1, "")
	proot.Processes = root.Processes
	proot.FoundVia = root.FoundVia
	p1 := add(pid, 4026532500, proot, nobody, -1, "")
	p1.FoundVia = []discover.Found{{Via: discover.ViaPIDForChildren, PID: 4000}}
	add(pid, 4026532501, p1, nil, -1, "").FoundVia = []discover.Found{{Via: discover.ViaProcess, PID: 4001}}
	add(pid, 4026532499, proot, web, -1, "").FoundVia = []discover.Found{{Via: discover.ViaProcess, PID: 500}}
	m.Link()
	return m
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./tree -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

func TestTextGolden(t *testing.T) {
	m := synthetic()
	for _, tc := range []struct {
		file string
		typ  nsrel.Type
		opts tree.Options
	}{
		{"user.txt", nsrel.TypeUser, tree.Options{}},
		{"user-details.txt", nsrel.TypeUser, tree.Options{Details: true}},
		{"pid.txt", nsrel.TypePID, tree.Options{}},
		{"user-keep.txt", nsrel.TypeUser, tree.Options{Keep: func(n *discover.Namespace) bool {
			return n.Ino == 4026531837 || n.Ino == 4026532300 || n.Ino == 4026532400
		}}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := tree.Text(&b, m, tc.typ, tc.opts); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.file, b.Bytes())
		})
	}
}

// TestTextExact pins the seed format independently of the golden files.
func TestTextExact(t *testing.T) {
	var b bytes.Buffer
	tree.Text(&b, synthetic(), nsrel.TypeUser, tree.Options{})
	want := `user:[4026531837] owner root (0)
├── user:[4026532200] owner root (0) containers: containerd k8s.io/3f1c2a9b7e0d (pod default/web-0), podman 0a1b2c3d4e5f (db)
│   └── user:[4026532201] owner root (0)
│       └── user:[4026532202] owner root (0)
└── user:[4026532300] owner alice (1000)
    └── user:[4026532400] owner 4242 containers: runc zoo-1
user:[4026532999] owner ?
└── user:[4026533001] owner daemon (5)
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	b.Reset()
	tree.Text(&b, synthetic(), nsrel.TypePID, tree.Options{})
	want = `pid:[4026531836] owner user:[4026531837] root (0)
├── pid:[4026532499] owner user:[4026532200] root (0)
└── pid:[4026532500] owner user:[4026532400] 4242
    └── pid:[4026532501] owner ?
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestJSONGolden(t *testing.T) {
	var b bytes.Buffer
	if err := tree.JSON(&b, synthetic(), nsrel.TypeUser, tree.Options{}); err != nil {
		t.Fatal(err)
	}
	golden(t, "user.json", b.Bytes())
	var doc map[string][]map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, e := range doc["namespaces"] {
		for _, k := range []string{"type", "ino", "nsid", "parent", "owner", "owner_uid", "owner_name", "processes", "found_via", "containers"} {
			if _, ok := e[k]; !ok {
				t.Errorf("entry %v lacks %q", e["ino"], k)
			}
		}
	}
	b.Reset()
	tree.JSON(&b, synthetic(), nsrel.TypePID, tree.Options{})
	golden(t, "pid.json", b.Bytes())
}

func TestContainerLabel(t *testing.T) {
	for _, tc := range []struct {
		c    discover.Container
		want string
	}{
		{discover.Container{ID: "3f1c2a9b7e0d5a6b", Engine: "containerd", Namespace: "k8s.io", Name: "default/web-0"}, "containerd k8s.io/3f1c2a9b7e0d (pod default/web-0)"},
		{discover.Container{ID: "3f1c2a9b7e0d5a6b", Engine: "containerd", Namespace: "k8s.io", Name: "default/web-0/app"}, "containerd k8s.io/3f1c2a9b7e0d (pod default/web-0, container app)"},
		{discover.Container{ID: "a", Engine: "cri-o", Name: "a/b/c/d"}, `cri-o a ("a/b/c/d")`},
		{discover.Container{ID: "zoo-1", Engine: "runc"}, "runc zoo-1"},
		{discover.Container{ID: "nsrel-demo-ok-8098", Engine: "runc"}, "runc nsrel-demo-ok-8098"},
		{discover.Container{ID: "3F1C2A9B7E0D5A6B7C8D", Engine: "runc"}, "runc 3F1C2A9B7E0D5A6B7C8D"},
		{discover.Container{ID: "3f1c2a9b7e0d5a6", Engine: "runc"}, "runc 3f1c2a9b7e0d5a6"},
		{discover.Container{ID: "abc", Engine: "podman", Name: "db"}, "podman abc (db)"},
		// A user's container: its name quoted whole, never a pod's.
		{discover.Container{ID: "evil", Engine: "runc", Namespace: "uid=4242", Name: "shop/web-0/app"}, `runc uid=4242/evil ("shop/web-0/app")`},
		{discover.Container{ID: "evil2", Engine: "runc", Namespace: "uid=4242", Name: "x), containerd k8s.io/3f1c2a9b7e0d (pod kube-system/etcd-0\u202e"}, `runc uid=4242/evil2 ("x), containerd k8s.io/3f1c2a9b7e0d (pod kube-system/etcd-0\u{202e}")`},
		{discover.Container{ID: "x\x1b", Engine: "crun", Name: "n\n"}, `crun x\x1b ("n\x0a")`},
		// Any name that could fake a separator is quoted, root's too.
		{discover.Container{ID: "ctr2", Engine: "runc", Name: "ok), runc fake (spoof"}, `runc ctr2 ("ok), runc fake (spoof")`},
		{discover.Container{ID: "c", Engine: "containerd", Namespace: "k8s.io", Name: "shop/web-0/app, container x"}, `containerd k8s.io/c (pod shop/web-0, container "app, container x")`},
		{discover.Container{ID: "c", Engine: "containerd", Namespace: "k8s.io", Name: "shop/web-0 (x)/app"}, `containerd k8s.io/c (pod "shop/web-0 (x)", container app)`},
		{discover.Container{ID: "c", Engine: "podman", Name: `db", "x`}, `podman c ("db\", \"x")`},
		{discover.Container{ID: "c", Engine: "podman", Name: "db\uff0c podman x"}, "podman c (\"db\uff0c podman x\")"},
		{discover.Container{ID: "c", Engine: "podman", Name: "web_1.prod-x:8@a+b=c"}, `podman c (web_1.prod-x:8@a+b=c)`},
		// A user's name names no pod: its slashes are quoted as any
		// other punctuation; a plain name is as root's.
		{discover.Container{ID: "c", Engine: "runc", Namespace: "uid=4242", Name: "db"}, `runc uid=4242/c (db)`},
	} {
		if got := tree.ContainerLabel(tc.c); got != tc.want {
			t.Errorf("ContainerLabel(%+v) = %q, want %q", tc.c, got, tc.want)
		}
	}
}

// TestDetailsFoundCapped: "found via" lists the first MaxDetailProcs
// ways and "+N more", as the processes do; JSON lists them all.
func TestDetailsFoundCapped(t *testing.T) {
	m := discover.NewModel()
	n := &discover.Namespace{Type: nsrel.TypeUser, Ino: 4026531837, OwnerUID: 0, OwnerName: "root"}
	for fd := 3; fd < 3+tree.MaxDetailProcs+12; fd++ {
		n.FoundVia = append(n.FoundVia, discover.Found{Via: discover.ViaFD, PID: 7, Path: "/proc/7/fd/" + strconv.Itoa(fd)})
	}
	m.Add(n)
	m.Link()
	var first []string
	for _, f := range n.FoundVia[:tree.MaxDetailProcs] {
		first = append(first, tree.FoundLabel(f))
	}
	want := "user:[4026531837] owner root (0); found via: " + strings.Join(first, ", ") + " +12 more"
	if got := tree.Label(n, true); got != want {
		t.Errorf("Label with details:\n%s\nwant\n%s", got, want)
	}
	if got := tree.Entries(m, nsrel.TypeUser, tree.Options{}); len(got[0].FoundVia) != tree.MaxDetailProcs+12 {
		t.Errorf("JSON: %d ways found, want all %d", len(got[0].FoundVia), tree.MaxDetailProcs+12)
	}
}
