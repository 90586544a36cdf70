package lstool_test

import (
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
		Containers: []discover.Container{{ID: "web-1"}, {ID: "abc1230000000000", Name: "shop/web-0/app"}, {ID: "f00d000000000000", Name: "shop/web-0"}}}
	b := &discover.Namespace{Type: nsrel.TypeUser, Dev: 4, Ino: 200, Parent: top,
		Containers: []discover.Container{{ID: "web-10"}, {ID: "abd4560000000000", Name: "shop/web-1/app"}, {ID: "dbdb000000000000", Name: "db"}, {ID: "e0e0000000000000", Name: "web-1"},
			{ID: "1111000000000000", Name: "twin"}, {ID: "2222000000000000", Name: "twin"}}}
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
		{"web-1", []uint64{top.Ino, 100}, ""}, // exact ID wins over the prefix of web-10
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
		{"\x1b[31m", nil, `"\\x1b[31m"`},
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
