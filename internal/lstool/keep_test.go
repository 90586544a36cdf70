package lstool_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/internal/lstool"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

func TestKeepContainer(t *testing.T) {
	// top -> a (web-1, abc123... = shop/web-0/app, its pod's sandbox);
	// top -> b (web-10, abd... = shop/web-1/app, podman db named web-1)
	m := discover.NewModel()
	top := &discover.Namespace{Type: nsrel.TypeUser, Dev: 4, Ino: nsrel.InitialUserNSIno}
	a := &discover.Namespace{Type: nsrel.TypeUser, Dev: 4, Ino: 100, Parent: top,
		Containers: []discover.Container{{ID: "web-1", Engine: "runc"}, {ID: "abc1230000000000", Name: "shop/web-0/app"}, {ID: "f00d000000000000", Name: "shop/web-0"},
			{ID: "3f1c2a9b7e0d5555", Engine: "containerd", Namespace: "k8s.io"}}}
	b := &discover.Namespace{Type: nsrel.TypeUser, Dev: 4, Ino: 200, Parent: top,
		Containers: []discover.Container{{ID: "web-10"}, {ID: "abd4560000000000", Name: "shop/web-1/app"}, {ID: "dbdb000000000000", Name: "db"}, {ID: "e0e0000000000000", Name: "web-1"},
			{ID: "1111000000000000", Name: "twin"}, {ID: "2222000000000000", Name: "twin"},
			{ID: "9a9a000000000000", Engine: "containerd", Namespace: "k8s.io", Name: "tenant/3f1c2a9b7e0d/app"},
			{ID: "c0c0000000000000", Name: "shop/web, x/svc"}, {ID: "c1c1000000000000", Name: "shop/other/svc"}}}
	// Twelve of one name: the error lists ten.
	for i := range 12 {
		b.Containers = append(b.Containers, discover.Container{ID: fmt.Sprintf("%02d00000000000000", 50+i), Name: "many"})
	}
	for _, n := range []*discover.Namespace{top, a, b} {
		m.Add(n)
	}
	m.Link()
	kept := func(keep func(*discover.Namespace) bool) []uint64 {
		var out []uint64
		for _, n := range []*discover.Namespace{top, a, b} {
			if keep(n) {
				out = append(out, n.Ino)
			}
		}
		return out
	}
	for _, tc := range []struct {
		prefix string
		want   []uint64
		err    string
	}{
		// An exact ID wins over the prefix of web-10, but not over the
		// name of another container (the pod shop/web-1, the podman
		// container web-1): the label's form names it.
		{"web-1", nil, `container "web-1" is ambiguous: it is the ID of runc web-1 and a name of abd4560000000000, e0e0000000000000`},
		{"runc web-1", []uint64{top.Ino, 100}, ""},
		{"web-10", []uint64{top.Ino, 200}, ""},
		{"abc", []uint64{top.Ino, 100}, ""},
		{"ab", nil, `container ID prefix "ab" is ambiguous: it matches abc1230000000000, abd4560000000000`},
		{"web", nil, `ambiguous`},
		{"zzz", nil, `no running container named "zzz" or with an ID starting with it`},
		// Names: whole, the Kubernetes container alone or with its pod,
		// the pod; an exact ID beats a name, a name beats a prefix.
		{"db", []uint64{top.Ino, 200}, ""},
		{"shop/web-0/app", []uint64{top.Ino, 100}, ""},
		{"web-0/app", []uint64{top.Ino, 100}, ""},
		{"web-0", []uint64{top.Ino, 100}, ""},
		{"shop/web-1", []uint64{top.Ino, 200}, ""},
		{"app", nil, `container name "app" is ambiguous: it matches shop/web-0/app, shop/web-1/app`},
		{"f00d", []uint64{top.Ino, 100}, ""},
		{"twin", nil, `container name "twin" is ambiguous: containers 1111000000000000, 2222000000000000 have it`},
		// A pod named after another container's short ID (its author's
		// to choose) does not take it over: it selected the pod.
		{"3f1c2a9b7e0d", nil, `container "3f1c2a9b7e0d" is ambiguous: it names tenant/3f1c2a9b7e0d and starts the ID of containerd k8s.io/3f1c2a9b7e0d5555`},
		{"3f1c2a9b7e0d5", []uint64{top.Ino, 100}, ""},
		{"tenant/3f1c2a9b7e0d", []uint64{top.Ino, 200}, ""},
		{"\x1b[31m", nil, `container named "\x1b[31m" or`},
		// A name that could pass for two is quoted (a pod's author
		// chooses "web, x"); a long list is cut.
		{"svc", nil, `container name "svc" is ambiguous: it matches shop/other/svc, "shop/web, x/svc"`},
		{"many", nil, `containers 5000000000000000, 5100000000000000, 5200000000000000, 5300000000000000, 5400000000000000, 5500000000000000, 5600000000000000, 5700000000000000, 5800000000000000, 5900000000000000 and 2 more have it`},
	} {
		keep, err := lstool.KeepContainer(m, nsrel.TypeUser, tc.prefix)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("KeepContainer(%q) error = %v, want %q", tc.prefix, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("KeepContainer(%q): %v", tc.prefix, err)
			continue
		}
		if diff := cmp.Diff(tc.want, kept(keep)); diff != "" {
			t.Errorf("KeepContainer(%q) kept (-want +got):\n%s", tc.prefix, diff)
		}
	}
}

// TestKeepContainerRootless: a rootless user chooses its containers' IDs
// and its podman containers' names. An ID that is a pod's name, or a
// name that is a Kubernetes container's, must not select the user's
// container instead of the pod's, nor add it to the pod's; the label's
// forms (ENGINE NAMESPACE/ID, the ID cut short as the label shows it)
// name each. Nor may a user's ID that is the start of another
// container's take over that prefix.
func TestKeepContainerRootless(t *testing.T) {
	m := discover.NewModel()
	top := &discover.Namespace{Type: nsrel.TypeUser, Dev: 4, Ino: nsrel.InitialUserNSIno}
	pod := &discover.Namespace{Type: nsrel.TypeUser, Dev: 4, Ino: 100, Parent: top,
		Containers: []discover.Container{{ID: "3f1c2a9b7e0d5a6b7c8d9e0f3f1c2a9b7e0d5a6b7c8d9e0f3f1c2a9b7e0d5a6b", Engine: "containerd", Namespace: "k8s.io", Name: "shop/web-0/app"},
			{ID: "api-5", Engine: "runc"}}}
	user := &discover.Namespace{Type: nsrel.TypeUser, Dev: 4, Ino: 200, Parent: top,
		Containers: []discover.Container{{ID: "web-0", Engine: "runc", Namespace: "uid=1000"}, {ID: "beef000000000000", Engine: "podman", Namespace: "uid=1000", Name: "shop/web-0/app"},
			{ID: "3f1c2a", Engine: "runc", Namespace: "uid=1000"},
			{ID: "bbbb000000000000", Engine: "podman", Namespace: "uid=1000", Name: "3f1c2a9b"},
			{ID: "web", Engine: "runc", Namespace: "uid=1000"}, {ID: "web-2", Engine: "runc", Namespace: "uid=1000"},
			{ID: "cccc000000000000", Engine: "runc", Namespace: "uid=1000", Name: "runc api-5"}, {ID: "dddd000000000000", Engine: "runc", Namespace: "uid=1000", Name: "api-5"}}}
	for _, n := range []*discover.Namespace{top, pod, user} {
		m.Add(n)
	}
	m.Link()
	for _, tc := range []struct {
		arg  string
		want uint64
		err  string
	}{
		{"web-0", 0, `container "web-0" is ambiguous: it is the ID of runc uid=1000/web-0 and a name of containerd k8s.io/3f1c2a9b7e0d5a6b7c8d9e0f3f1c2a9b7e0d5a6b7c8d9e0f3f1c2a9b7e0d5a6b`},
		{"runc uid=1000/web-0", 200, ""},
		{"uid=1000/web-0", 200, ""},
		{"shop/web-0", 100, ""}, // the pod: the user's podman container is no pod's
		{"shop/web-0/app", 0, `container name "shop/web-0/app" is ambiguous`},
		{"containerd k8s.io/3f1c2a9b7e0d", 100, ""}, // as labelled
		{"k8s.io/3f1c2a9b7e0d", 100, ""},
		{"podman uid=1000/beef00000000", 200, ""},
		// The user's whole ID is the start of the pod's: the user's
		// container took it over.
		{"3f1c2a", 0, `container "3f1c2a" is ambiguous: it names runc uid=1000/3f1c2a, a local user's, and starts the ID of containerd k8s.io/3f1c2a9b7e0d`},
		{"runc uid=1000/3f1c2a", 200, ""},
		// A name of the user's, likewise.
		{"3f1c2a9b", 0, `container "3f1c2a9b" is ambiguous: it names uid=1000/3f1c2a9b, a local user's, and starts the ID of containerd k8s.io/3f1c2a9b7e0d`},
		// The user's own IDs, one the start of the other: the whole one.
		{"web", 200, ""},
		// Root's exact ID, in either form, against the user's names
		// (labels of its runc state) of the same: root's (a review
		// found both refused as ambiguous).
		{"api-5", 100, ""},
		{"runc api-5", 100, ""},
	} {
		keep, err := lstool.KeepContainer(m, nsrel.TypeUser, tc.arg)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("KeepContainer(%q) error = %v, want %q", tc.arg, err, tc.err)
			}
		case err != nil:
			t.Errorf("KeepContainer(%q): %v", tc.arg, err)
		case !keep(m.Lookup(nsrel.TypeUser, tc.want)) || keep(m.Lookup(nsrel.TypeUser, 300-tc.want)):
			t.Errorf("KeepContainer(%q) does not keep user:[%d] alone", tc.arg, tc.want)
		}
	}
}
