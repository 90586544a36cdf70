package audit

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFlockWaitAbandoned: waits for a lock another open file holds,
// given up at their deadlines, leave their waiters blocked in the kernel;
// at most maxBlocked block so, however many wait at once (300 appends at
// once held 300 threads and 600 descriptors), the others poll. Once the
// lock is released, every waiter given up drops it at once, so the next
// wait gets it, and every place is free again. A lock released at about
// a wait's deadline (its waiter woken as the wait is given up) frees its
// place too: a count of waits given up kept some for good, and past 16
// every later wait of the process polled.
func TestFlockWaitAbandoned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	open := func() *os.File {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	free := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); len(blockedWaits) > 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d waits still blocked 30 s after the lock was released", what, len(blockedWaits))
			}
		}
	}
	holder := open()
	if err := unix.Flock(int(holder.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 3 * maxBlocked {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if _, err := flockWait(ctx, open(), unix.LOCK_EX); err == nil {
				t.Error("a wait got a lock that is held")
			}
		})
	}
	wg.Wait()
	if n := len(blockedWaits); n != maxBlocked {
		t.Errorf("%d waits given up still blocked; want %d (the rest polled)", n, maxBlocked)
	}
	holder.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	unlock, err := flockWait(ctx, open(), unix.LOCK_EX)
	if err != nil {
		t.Fatalf("after the release: %v (a wait given up kept the lock)", err)
	}
	unlock()
	free("after the release")
	for i := range 200 {
		holder := open()
		if err := unix.Flock(int(holder.Fd()), unix.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		d := time.Duration(1+i%5) * time.Millisecond
		time.AfterFunc(d, func() { holder.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), d)
		if unlock, err := flockWait(ctx, open(), unix.LOCK_EX); err == nil {
			unlock()
		}
		cancel()
	}
	free("after locks released at the waits' deadlines")
}
