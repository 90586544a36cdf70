package lstool_test

import (
	"fmt"
	"testing"

	"github.com/nsrel/nsrel/internal/lstool"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
	"github.com/nsrel/nsrel/tree"
)

// countingWriter counts the bytes written to it and keeps none.
type countingWriter struct{ n int }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// sameUIDModel is a model of n user namespaces below the host's, each
// with one process and each mapping the same single host UID and GID
// (what any user gets from `unshare -Ur`, n times).
func sameUIDModel(n int) (*discover.Model, map[discover.Key]*tree.Maps) {
	m := discover.NewModel()
	host := &discover.Namespace{Type: nsrel.TypeUser, Ino: 1}
	m.Add(host)
	one := idmapOf(1000, 1)
	maps := map[discover.Key]*tree.Maps{}
	for i := range n {
		ns := &discover.Namespace{Type: nsrel.TypeUser, Ino: uint64(100 + i), Parent: host, Owner: host, OwnerUID: 1000,
			Processes: []discover.Process{{PID: 10000 + i, Comm: "sleep"}}}
		m.Add(ns)
		maps[ns.Key()] = &tree.Maps{HostUIDMap: one, HostGIDMap: one}
	}
	m.Link()
	return m, maps
}

// BenchmarkOverlapsSameUID runs the --overlaps check, text and JSON, on
// 2,000 and 20,000 user namespaces mapping the same host UID: memory (B/op) and
// output (out-bytes) stay linear in the namespaces, not in the ~2M pairs.
func BenchmarkOverlapsSameUID(b *testing.B) {
	for _, c := range []struct {
		name string
		json bool
	}{{"text", false}, {"json", true}} {
		for _, n := range []int{2000, 20000} {
			b.Run(fmt.Sprintf("%s-%d", c.name, n), func(b *testing.B) {
				m, maps := sameUIDModel(n)
				b.ReportAllocs()
				var w countingWriter
				for b.Loop() {
					w.n = 0
					if code, err := lstool.OverlapCheck(&w, m, maps, c.json, false); code != 1 || err != nil {
						b.Fatalf("exit %d, %v", code, err)
					}
				}
				b.ReportMetric(float64(w.n), "out-bytes")
			})
		}
	}
}
