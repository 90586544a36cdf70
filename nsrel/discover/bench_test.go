package discover_test

import (
	"testing"

	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// The benchmarks scan whatever runs on the machine; bench/ls/run.sh builds
// a reproducible load and compares the commands with lsns.

func BenchmarkDiscoverUser(b *testing.B) {
	benchDiscover(b, discover.Options{Types: []nsrel.Type{nsrel.TypeUser}})
}

func BenchmarkDiscoverPID(b *testing.B) {
	benchDiscover(b, discover.Options{Types: []nsrel.Type{nsrel.TypePID}})
}

func BenchmarkDiscoverUserProcessesOnly(b *testing.B) {
	benchDiscover(b, discover.Options{Types: []nsrel.Type{nsrel.TypeUser}, NoThreads: true, NoFDs: true, NoMounts: true})
}

func BenchmarkDiscoverAllWithComm(b *testing.B) {
	benchDiscover(b, discover.Options{Comm: true})
}

func benchDiscover(b *testing.B, o discover.Options) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := discover.Discover(o); err != nil {
			b.Fatal(err)
		}
	}
}
