package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// beforeLock makes AppendAfterLast call f between its search and the
// lock, until the test ends.
func beforeLock(t *testing.T, f func(*searchMark)) {
	testHookBeforeLock = f
	t.Cleanup(func() { testHookBeforeLock = nil })
}

func startOf(id string) *Record {
	return &Record{Source: SourceOCIHook, Stage: StageCreateRuntime, ContainerID: id,
		Ancestry: &Ancestry{PID: 4242, StartTime: 99}, Verdict: VerdictAllow, Version: "test"}
}

// TestUnchangedChecksEachGuard checks that the search before the log's
// lock is made again under it whenever its result may have changed, and
// only then: a mark changed in any one way (as a rotation, retention or
// a file replaced would change what it notes), or a record of the
// container appended since, makes it search again; records of other
// containers appended since do not.
func TestUnchangedChecksEachGuard(t *testing.T) {
	old := SearchFiles
	SearchFiles = 1000
	t.Cleanup(func() { SearchFiles = old })
	for _, tc := range []struct {
		name   string
		change func(*Log, *searchMark)
		again  bool
	}{
		{"unchanged", func(*Log, *searchMark) {}, false},
		{"others' records appended", func(l *Log, _ *searchMark) { appendStarts(t, l, "other", "another") }, false},
		{"the container's record appended", func(l *Log, _ *searchMark) { appendStarts(t, l, "other", "victim", "other") }, true},
		{"current inode", func(_ *Log, m *searchMark) { m.files[0].id.ino++ }, true},
		{"current device", func(_ *Log, m *searchMark) { m.files[0].id.dev++ }, true},
		{"current birth time", func(_ *Log, m *searchMark) { m.files[0].id.nsec++ }, true},
		{"current cut below the end read", func(_ *Log, m *searchMark) { m.files[0].end = m.files[0].size + 1 }, true},
		{"current not there then", func(_ *Log, m *searchMark) { m.files[0].id = fileID{} }, true},
		{"rotated file's inode", func(_ *Log, m *searchMark) { m.files[1].id.ino++ }, true},
		{"rotated file's birth time", func(_ *Log, m *searchMark) { m.files[2].id.born++ }, true},
		{"rotated files swapped", func(_ *Log, m *searchMark) { m.files[1], m.files[2] = m.files[2], m.files[1] }, true},
		// Found nothing in fewer files than the window holds now.
		{"window smaller then", func(_ *Log, m *searchMark) { m.files, m.found = m.files[:len(m.files)-1], false }, true},
		{"a second search", func(_ *Log, m *searchMark) { m.invalid = true }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			l, err := Open(path, Options{RotateBytes: 1 << 10})
			if err != nil {
				t.Fatal(err)
			}
			appendStarts(t, l, append([]string{"victim"}, slices.Repeat([]string{"other"}, 20)...)...)
			// Without rotation: this append must not rotate.
			if l, err = Open(path, Options{}); err != nil {
				t.Fatal(err)
			}
			beforeLock(t, func(m *searchMark) {
				if m == nil || len(m.files) < 4 || !m.found {
					t.Fatalf("the search read %+v; want the start found in the oldest of 3 rotated files or more", m)
				}
				tc.change(l, m)
			})
			searches := 0
			var got *Record
			if _, err := AppendAfterSearch(context.Background(), l, func(s *Searcher) (*Record, error) {
				searches++
				return s.Last("victim", StartMatcher(4242, 99))
			}, func(r *Record, err error) (*Record, error) {
				got = r
				return nil, err
			}); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{false: 1, true: 2}[tc.again]; searches != want {
				t.Errorf("%d searches; want %d", searches, want)
			}
			if got == nil || (got.Seq == 1) == (tc.name == "the container's record appended") {
				t.Errorf("build got %v; want the container's last start", got)
			}
		})
	}
}

// appendStarts appends a start record of each container.
func appendStarts(t *testing.T, l *Log, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := l.Append(context.Background(), startOf(id)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSecondSearchInvalidatesMark checks that a search function that
// searches twice (the mark notes one search) is searched again under
// the lock.
func TestSecondSearchInvalidatesMark(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "audit.jsonl"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendStarts(t, l, "a", "b")
	searches := 0
	if _, err := AppendAfterSearch(context.Background(), l, func(s *Searcher) (bool, error) {
		searches++
		a, err := s.Last("a", nil)
		if err != nil {
			return false, err
		}
		b, err := s.Last("b", nil)
		return a != nil && b != nil, err
	}, func(both bool, err error) (*Record, error) {
		if !both || err != nil {
			t.Errorf("build got %v, %v", both, err)
		}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if searches != 2 {
		t.Errorf("%d searches; want 2", searches)
	}
}

// TestSearchBeforeLockRefusesUntrusted checks that the search before the
// log's lock, which has not had the log's directory checked, reads no
// file someone else owns: where the directory is missing in a sticky
// directory, another user may make it first, with a current file holding
// a start of the container; should its inode number go to the log's
// current file once the writer made it, that start, taken as in the log,
// would leave the container unrecorded. The search is made again under
// the lock, which refuses the directory.
func TestSearchBeforeLockRefusesUntrusted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (chown)")
	}
	sticky := filepath.Join(t.TempDir(), "sticky")
	if err := os.Mkdir(sticky, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, 0o1777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(sticky, "nsrel", "audit.jsonl")
	forgery := filepath.Join(t.TempDir(), "audit.jsonl")
	fl, err := Open(forgery, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := fl.Append(context.Background(), startOf("victim")); err != nil {
		t.Fatal(err)
	}
	forged, err := os.ReadFile(forgery)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, forged, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Dir(path), path} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	read := true
	beforeLock(t, func(m *searchMark) { read = m != nil })
	_, err = l.AppendStart(context.Background(), startOf("victim"), 4242, 99)
	if read {
		t.Error("the search before the lock read a file another user owns")
	}
	if err == nil {
		t.Error("AppendStart in a directory another user owns succeeded")
	}
}

// TestSearchBeforeLockHasTheTime checks that the search before the lock
// has the whole of the append's time (with half, a search that needed
// more than half ran out, and ran again under the lock, from the start,
// past the deadline: a poststop lost its reference to the start record),
// and that one out of time is not made again under the lock: build gets
// its error, with the lock taken.
func TestSearchBeforeLockHasTheTime(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "audit.jsonl"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendStarts(t, l, "a")
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	want, _ := ctx.Deadline()
	searches := 0
	if _, err := AppendAfterSearch(ctx, l, func(s *Searcher) (*Record, error) {
		searches++
		if got, ok := s.ctx.Deadline(); !ok || !got.Equal(want) {
			t.Errorf("search %d: deadline %v (%v); want the append's, %v", searches, got, ok, want)
		}
		return s.Last("a", nil)
	}, func(r *Record, err error) (*Record, error) {
		if r == nil || err != nil {
			t.Errorf("build got %v, %v", r, err)
		}
		return nil, nil
	}); err != nil || searches != 1 {
		t.Fatalf("%d searches, %v; want 1", searches, err)
	}

	late, cancelLate := context.WithCancel(context.Background())
	searches = 0
	built := false
	_, err = AppendAfterSearch(late, l, func(s *Searcher) (*Record, error) {
		searches++
		cancelLate() // out of time during the search
		return nil, late.Err()
	}, func(r *Record, err error) (*Record, error) {
		built = true
		if !errors.Is(err, context.Canceled) {
			t.Errorf("build got %v, %v; want the search's error", r, err)
		}
		return startOf("b"), nil
	})
	if err != nil || searches != 1 || !built {
		t.Errorf("a search out of time: %d searches, built %v, %v; want 1, built, the record appended", searches, built, err)
	}
}
