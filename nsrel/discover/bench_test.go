package discover_test

import (
	"os"
	"testing"

	"github.com/nsrel/nsrel/internal/nstest"
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

// BenchmarkFDHeldMountNS scans the user namespaces with 300 mount
// namespaces no task is in, each held by a descriptor of one process:
// each is read through a helper process that joins it (one per worker,
// joining each in turn; it was one per namespace).
func BenchmarkFDHeldMountNS(b *testing.B) {
	nstest.RequireRoot(b)
	const n = 300
	var files []*os.File
	for range n {
		p := nstest.Sleep(b, nil, "-m", "--propagation", "private")
		f, err := os.Open(nstest.NSPath(p.Pid, "mnt"))
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, f)
		killWait(b, p, p.Pid)
	}
	holdFiles(b, files)
	for _, f := range files {
		f.Close()
	}
	benchDiscover(b, discover.Options{Types: []nsrel.Type{nsrel.TypeUser}})
}
