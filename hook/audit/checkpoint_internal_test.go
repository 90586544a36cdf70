package audit

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCheckpointUnshippedRetries: a checkpoint made but never shipped
// (the hook killed at its deadline while it sent it, so neither a
// success nor a failure was said) leaves the next one due RetryAfter
// later, not a whole every_seconds later; one that was shipped, a whole
// every_seconds later.
func TestCheckpointUnshippedRetries(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	l, err := Open(filepath.Join(dir, "audit.jsonl"), Options{Now: func() time.Time { return now }, Warn: func(err error) { t.Log(err) },
		Checkpoints: &CheckpointOptions{EveryRecords: 100, EverySeconds: 300, File: filepath.Join(dir, "cp.jsonl")}})
	if err != nil {
		t.Fatal(err)
	}
	last := &Record{Seq: 1, Host: "h", Hash: strings.Repeat("ab", 32)}
	due := func() *Checkpoint {
		t.Helper()
		_, unlock, err := l.lock(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		return l.checkpointDue(last, false, false, func(*Checkpoint) {}, func(err error) { t.Error(err) })
	}
	c := due()
	if c == nil {
		t.Fatal("no first checkpoint")
	}
	// Not shipped: due again RetryAfter later.
	now = now.Add(RetryAfter + time.Second)
	last.Seq = 2
	if c = due(); c == nil {
		t.Fatalf("no checkpoint %v after one never shipped", RetryAfter+time.Second)
	}
	// Shipped: not due again before every_seconds.
	l.ship(context.Background(), c, nil)
	now = now.Add(RetryAfter + time.Second)
	last.Seq = 3
	if c := due(); c != nil {
		t.Errorf("checkpoint of seq %d %v after one that was shipped", c.Seq, RetryAfter+time.Second)
	}
}
