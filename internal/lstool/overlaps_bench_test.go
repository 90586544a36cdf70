package lstool_test

import (
	"fmt"
	"testing"

	"github.com/nsrel/nsrel/internal/lstool"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
	"github.com/nsrel/nsrel/nsrel/idmap"
	"github.com/nsrel/nsrel/tree"
)

// countingWriter counts the bytes written to it and keeps none.
type countingWriter struct{ n int }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// sameUIDModel is a model of n user namespaces below the host's, each
// with one process and each mapping the same single host UID and GID
// (what any user gets from `unshare -Ur`, n times).
func sameUIDModel(n int) (*discover.Model, map[discover.Key]*tree.Maps) {
	one := idmapOf(1000, 1)
	return benchModel(n, func(int) idmap.Map { return one })
}

// distinctModel is a model of n user namespaces below the host's, each
// mapping host UID and GID 1000 and one subordinate ID of its own
// (100000+i): what any user with a subuid range gets from newuidmap, n
// times. No two have the same host IDs, and every two share 1000.
func distinctModel(n int) (*discover.Model, map[discover.Key]*tree.Maps) {
	return benchModel(n, func(i int) idmap.Map {
		return idmap.Map{{Inside: 0, Outside: 1000, Count: 1}, {Inside: 1, Outside: uint32(100000 + i), Count: 1}}
	})
}

func benchModel(n int, mapOf func(int) idmap.Map) (*discover.Model, map[discover.Key]*tree.Maps) {
	m := discover.NewModel()
	host := &discover.Namespace{Type: nsrel.TypeUser, Ino: 1}
	m.Add(host)
	maps := map[discover.Key]*tree.Maps{}
	for i := range n {
		ns := &discover.Namespace{Type: nsrel.TypeUser, Ino: uint64(100 + i), Parent: host, Owner: host, OwnerUID: 1000,
			Processes: []discover.Process{{PID: 10000 + i, Comm: "sleep"}}}
		m.Add(ns)
		mp := mapOf(i)
		maps[ns.Key()] = &tree.Maps{HostUIDMap: mp, HostGIDMap: mp}
	}
	m.Link()
	return m, maps
}

func benchOverlaps(b *testing.B, model func(int) (*discover.Model, map[discover.Key]*tree.Maps), sizes []int) {
	for _, c := range []struct {
		name string
		json bool
	}{{"text", false}, {"json", true}} {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("%s-%d", c.name, n), func(b *testing.B) {
				m, maps := model(n)
				b.ReportAllocs()
				var w countingWriter
				for b.Loop() {
					w.n = 0
					if code, err := lstool.OverlapCheck(&w, m, maps, c.json, false, ""); code != 1 || err != nil {
						b.Fatalf("exit %d, %v", code, err)
					}
				}
				b.ReportMetric(float64(w.n), "out-bytes")
			})
		}
	}
}

// BenchmarkOverlapsSameUID runs the --overlaps check, text and JSON, on
// 2,000 and 20,000 user namespaces mapping the same host UID: memory
// (B/op) and output (out-bytes) stay linear in the namespaces, not in
// the ~2M pairs.
func BenchmarkOverlapsSameUID(b *testing.B) {
	benchOverlaps(b, sameUIDModel, []int{2000, 20000})
}

// BenchmarkOverlapsDistinct runs the check on 2,000 and 20,000 user
// namespaces each mapping host ID 1000 and one ID of its own: no two
// have the same host IDs, so grouping by host ID set does not help, and
// time must stay near-linear in the spans, not in the ~2·10⁸ pairs.
func BenchmarkOverlapsDistinct(b *testing.B) {
	benchOverlaps(b, distinctModel, []int{2000, 20000})
}
