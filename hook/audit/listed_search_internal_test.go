package audit

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// The hook's own search goes by the damage records as the readers do
// (Listed): also those in rotated files the index would skip, the one
// the append holding the lock is about to write, and those appended
// between the search made before the lock and the lock.

// staleCopyOfFirstStart writes two starts of container X (pids 4242,
// then 5555) among others into the log at path, then a stale copy of the
// first at the end (a crash's stale block), not recorded yet.
func staleCopyOfFirstStart(t *testing.T, path string) {
	t.Helper()
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendStarts(t, l, "c1", "X", "c3")
	second := startOf("X")
	second.Ancestry = &Ancestry{PID: 5555, StartTime: 7}
	if err := l.Append(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	appendRawLine(t, path, bytes.SplitAfter(data, []byte("\n"))[1])
}

// madeUpOverVictim writes starts of containers c1, victim and c3 into the
// log at path, then a made-up damage record listing the victim's.
func madeUpOverVictim(t *testing.T, path string) {
	t.Helper()
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendStarts(t, l, "c1", "victim", "c3")
	madeUpDamage(t, path, 1)
}

// madeUpDamage appends to the log at path a damage record of seq 1 (made
// up by root on the node later) that lists the log's line n.
func madeUpDamage(t *testing.T, path string, n int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	off := 0
	for _, l := range lines[:n] {
		off += len(l)
	}
	k := LineKeyOf(bytes.TrimSuffix(lines[n], []byte("\n")))
	made := &Record{Seq: 1, Time: "2026-12-07T08:00:00Z", Host: "vm", Source: SourceAudit, Stage: StageDamaged, Version: "x",
		Damage: []DamagedLine{{File: filepath.Base(path), Offset: int64(off), Bytes: k.Bytes, SHA256: k.SHA256, Kind: "garbled", Reason: "made up"}}}
	line, err := made.Encode()
	if err != nil {
		t.Fatal(err)
	}
	appendRawLine(t, path, line)
}

func appendRawLine(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !bytes.HasSuffix(b, []byte("\n")) {
		b = append(b, '\n')
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func pidOf(r *Record) int {
	if r == nil || r.Ancestry == nil {
		return 0
	}
	return r.Ancestry.PID
}

// TestIndexKeepsFilesWithDamage: a stale copy of a container's older
// start at the end of one file, listed by the damage record the next
// append wrote first in a new file (it rotated), which later rotated
// holding no record of the container: the index skipped that file, and
// the recorder's search took the copy for the container's last start.
// Likewise a made-up damage record's listing, which a damage record in
// the skipped file makes count for nothing.
func TestIndexKeepsFilesWithDamage(t *testing.T) {
	t.Run("stale copy", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		staleCopyOfFirstStart(t, path)
		small, err := Open(path, Options{RotateBytes: 1500})
		if err != nil {
			t.Fatal(err)
		}
		appendStarts(t, small, "o0", "o", "o", "o", "o", "o", "o", "o", "o", "o", "o", "o", "o")
		for _, index := range []bool{false, true} {
			l, err := Open(path, Options{RotateBytes: 1500, IndexRotated: index})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // the index read, then used
				if r, err := l.Searcher().Last("X", nil); err != nil || pidOf(r) != 5555 {
					t.Errorf("index %v: X's last %+v, %v; want its start of pid 5555, not the stale copy", index, r, err)
				}
			}
		}
	})
	t.Run("made-up damage record", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		madeUpOverVictim(t, path)
		small, err := Open(path, Options{RotateBytes: 1500})
		if err != nil {
			t.Fatal(err)
		}
		appendStarts(t, small, "o0", "o", "o", "o", "o", "o", "o", "o", "o", "o", "o", "o", "o")
		idx, err := Open(path, Options{RotateBytes: 1500, IndexRotated: true})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := idx.Searcher().Last("victim", nil); err != nil || r == nil {
			t.Errorf("the victim's last: %+v, %v; want its start", r, err)
		}
		if r, err := idx.AppendStart(context.Background(), startOf("victim"), 4242, 99); err != nil || r != nil {
			t.Errorf("AppendStart of the victim's recorded start: %+v, %v; want nothing appended", r, err)
		}
	})
}

// TestSearchUnderLockPendingDamage: the append that finds damaged lines
// writes their damage record after its build's search: that search took
// a stale copy of a container's older start at the end of the log for
// its last (a stop matched with the wrong start), and a made-up damage
// record, which the one to be written makes count for nothing, hid a
// recorded start (recorded again).
func TestSearchUnderLockPendingDamage(t *testing.T) {
	t.Run("stale copy", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		staleCopyOfFirstStart(t, path)
		l, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var got *Record
		if _, err := l.AppendAfterLast(context.Background(), "X", nil, func(prev *Record) (*Record, error) {
			got = prev
			return &Record{Source: SourceOCIHook, Stage: StagePoststop, ContainerID: "X", Version: "t"}, nil
		}); err != nil {
			t.Fatal(err)
		}
		if pidOf(got) != 5555 {
			t.Errorf("X's poststop got %+v; want its start of pid 5555, not the stale copy", got)
		}
	})
	t.Run("made-up damage record", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		madeUpOverVictim(t, path)
		l, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := l.AppendStart(context.Background(), startOf("victim"), 4242, 99); err != nil || r != nil {
			t.Errorf("AppendStart of the victim's recorded start: %+v, %v; want nothing appended", r, err)
		}
	})
}

// TestUnchangedAfterDamage: a damage record another writer appended
// between the search before the lock and the lock may list what the
// search found (a stale copy) or make a damage record it went by count
// for nothing (a made-up one that hid the container's start): the
// search is made again.
func TestUnchangedAfterDamage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, path string)
		id    string
		want  int
	}{
		{"stale copy", staleCopyOfFirstStart, "X", 5555},
		{"made-up damage record", madeUpOverVictim, "victim", 4242},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			tc.setup(t, path)
			l, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			other, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			beforeLock(t, func(*searchMark) { appendStarts(t, other, "c4") })
			searches := 0
			var got *Record
			if _, err := AppendAfterSearch(context.Background(), l, func(s *Searcher) (*Record, error) {
				searches++
				return s.Last(tc.id, nil)
			}, func(r *Record, err error) (*Record, error) {
				got = r
				return nil, err
			}); err != nil {
				t.Fatal(err)
			}
			if searches != 2 || pidOf(got) != tc.want {
				t.Errorf("build got %+v after %d search(es); want the start of pid %d, searched again", got, searches, tc.want)
			}
		})
	}
}
