package audit

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestStableSnapshotRotating: a snapshot without the log's lock (a
// reader who may not read it) taken while a writer appends and rotates
// holds a chain that verifies: one a rotation came between (the current
// file listed, then renamed before it was opened) is taken again, and so
// is one that ends in an append under way. The writer appends a record
// every 2 ms, rotating every 20 or so (4 KiB): more than a node's
// container starts, rotating 4,000 times as often as the shipped 16 MiB.
func TestStableSnapshotRotating(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "audit.jsonl"), Options{RotateBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 20 {
		if err := l.Append(ctx, &Record{Source: SourceOCIHook, Stage: StagePoststop, ContainerID: fmt.Sprint("c", i)}); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := l.Append(ctx, &Record{Source: SourceOCIHook, Stage: StagePoststop, ContainerID: fmt.Sprint("w", i)}); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	defer wg.Wait()
	defer close(stop)
	for i := range 300 {
		s, err := l.stableSnapshot(ctx)
		if err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
		_, err = VerifySnapshot(s, VerifyOptions{})
		s.Close()
		if err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
	}
}
