package audit

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFlockWaitAbandoned: waits for a lock another open file holds,
// given up at their deadlines, leave their waiters blocked in the kernel
// (up to maxAbandoned; later waits poll); once the lock is released,
// every waiter given up drops it at once, so the next wait gets it, and
// none is left blocked.
func TestFlockWaitAbandoned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	open := func() *os.File {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	holder := open()
	if err := unix.Flock(int(holder.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	before := abandonedWaits.Load()
	for i := range maxAbandoned + 4 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := flockWait(ctx, open(), unix.LOCK_EX)
		cancel()
		if err == nil {
			t.Fatalf("wait %d got a lock that is held", i)
		}
	}
	if n := abandonedWaits.Load() - before; n != maxAbandoned {
		t.Errorf("%d waits given up still blocked; want %d (the rest polled)", n, maxAbandoned)
	}
	holder.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	unlock, err := flockWait(ctx, open(), unix.LOCK_EX)
	if err != nil {
		t.Fatalf("after the release: %v (a wait given up kept the lock)", err)
	}
	unlock()
	for abandonedWaits.Load() != before {
		if ctx.Err() != nil {
			t.Fatalf("%d waits given up still blocked after the release", abandonedWaits.Load()-before)
		}
		time.Sleep(time.Millisecond)
	}
}
