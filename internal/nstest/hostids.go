package nstest

import (
	"fmt"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// HostIDSpan is how many host UIDs and GIDs from [HostIDBase] a test
// process may map.
const HostIDSpan = 1_000_000

// hostIDs is the range this process holds, taken once.
var hostIDs struct {
	once sync.Once
	base uint32
	err  error
}

// HostIDBase returns the first of [HostIDSpan] host UIDs and GIDs that
// this test process may map in user namespaces of its own, apart from
// every other process that calls it meanwhile: the other packages' tests
// that `go test ./...` runs alongside (policies such as
// disjoint_from_running see every process on the host), another run of
// the suite. It takes the first free of 3000 ranges from 1,000,000,000,
// each held by binding an abstract unix socket named for it
// (@nsrel-test-host-ids-N), which the process keeps until it exits and
// which leaves nothing behind. Ranges taken from the PID (PID % 1000
// ranges in a band of each package's) overlapped between packages one
// time in a thousand per pair.
func HostIDBase(t testing.TB) uint32 {
	t.Helper()
	hostIDs.once.Do(func() {
		for slot := range 3000 {
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				hostIDs.err = err
				return
			}
			err = unix.Bind(fd, &unix.SockaddrUnix{Name: fmt.Sprintf("@nsrel-test-host-ids-%d", slot)})
			if err == nil {
				// fd stays open, the name taken, until the process exits.
				hostIDs.base = 1_000_000_000 + uint32(slot)*HostIDSpan
				return
			}
			unix.Close(fd)
			if err != unix.EADDRINUSE {
				hostIDs.err = fmt.Errorf("bind @nsrel-test-host-ids-%d: %w", slot, err)
				return
			}
		}
		hostIDs.err = fmt.Errorf("all 3000 ranges of host IDs are taken")
	})
	if hostIDs.err != nil {
		t.Fatalf("host IDs for the test: %v", hostIDs.err)
	}
	return hostIDs.base
}
