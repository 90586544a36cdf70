package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/safefile"
)

// duringSearch makes the next search with a context call do once, at its
// first look at its context, and reports whether the log's lock was free
// then (do runs only if it was: with the lock held by the search, another
// append would wait for it forever).
func duringSearch(t *testing.T, path string, do func()) (free *bool) {
	t.Helper()
	free = new(bool)
	done := false
	audit.SlowSearches(t, 0, func() {
		if done {
			return
		}
		done = true
		lf, err := os.OpenFile(path+".lock", os.O_RDWR, 0)
		if err != nil {
			t.Errorf("open the lock: %v", err)
			return
		}
		err = unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		lf.Close()
		if err != nil {
			return
		}
		*free = true
		do()
	})
	return free
}

// startsOf counts the start records of container id in the log's files.
func startsOf(t *testing.T, path, id string) int {
	t.Helper()
	files, err := audit.Files(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for r, err := range audit.Records(files...) {
		if err != nil {
			t.Fatal(err)
		}
		if r.ContainerID == id && audit.IsStart(r.Stage) {
			n++
		}
	}
	return n
}

// TestAppendStartSearchesBeforeLock checks that the search for a start
// the log does not hold, which reads the whole search window, does not
// hold the log's lock (other writers, a container start waiting for its
// record, would wait all that time), and that a start another writer
// appends meanwhile is still found: no second start is recorded.
func TestAppendStartSearchesBeforeLock(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 64*8)
	free := duringSearch(t, path, func() {
		if err := l.Append(context.Background(), rec("new")); err != nil {
			t.Errorf("append by another writer during the search: %v", err)
		}
	})
	mine := rec("new")
	mine.Source = audit.SourceContainerdEvents
	got, err := l.AppendStart(context.Background(), mine, 4242, 99)
	if !*free {
		t.Fatal("the log's lock was held while the search read the log")
	}
	if got != nil || err != nil {
		t.Errorf("AppendStart of a start another writer recorded during its search = %v, %v; want nil, nil", got, err)
	}
	if n := startsOf(t, path, "new"); n != 1 {
		t.Errorf("%d start records of the container; want 1", n)
	}
	// Nothing appended meanwhile: the start is appended, once.
	audit.SlowSearches(t, 0, nil)
	for range 2 {
		if _, err := l.AppendStart(context.Background(), rec("other"), 4242, 99); err != nil {
			t.Fatal(err)
		}
	}
	if n := startsOf(t, path, "other"); n != 1 {
		t.Errorf("%d start records of a new container appended twice; want 1", n)
	}
}

// TestAppendAfterLastNewerInTail checks that build gets the last match
// also when the search before the lock found an earlier one and another
// writer appended a later one before the lock was taken.
func TestAppendAfterLastNewerInTail(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	first := rec("x")
	if err := l.Append(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 64*3) // the search looks at its context before it finds x
	var later *audit.Record
	free := duringSearch(t, path, func() {
		later = rec("x")
		if err := l.Append(context.Background(), later); err != nil {
			t.Errorf("append during the search: %v", err)
		}
	})
	var prev *audit.Record
	_, err := l.AppendAfterLast(context.Background(), "x", audit.StartMatcher(4242, 99), func(p *audit.Record) (*audit.Record, error) {
		prev = p
		return nil, nil
	})
	if err != nil || !*free || later == nil {
		t.Fatalf("AppendAfterLast: %v (lock free during the search: %v)", err, *free)
	}
	if prev == nil || prev.Seq != later.Seq {
		t.Errorf("build got %+v; want the later record, seq %d (the earlier is seq %d)", prev, later.Seq, first.Seq)
	}
}

// TestAppendStartRotatedDuringSearch checks that a rotation between the
// search before the lock and the lock is not missed: the start another
// writer appended to the file then current, now rotated, is found (a
// search of the new current file's lines alone would not find it).
func TestAppendStartRotatedDuringSearch(t *testing.T) {
	l, path := newLog(t, audit.Options{RotateBytes: 256 << 10})
	// Until a rotation, which leaves one record in the current file: the
	// search's first look at its context is in the rotated file, after
	// it listed the rotated files, so it does not see the next.
	rotateBy := func(id string, rotated int) {
		for range 10_000 {
			if files, _ := filepath.Glob(path + ".*[0-9]"); len(files) >= rotated {
				return
			}
			if err := l.Append(context.Background(), rec(id)); err != nil {
				t.Fatal(err)
			}
		}
		t.Fatalf("no rotation in 10,000 records")
	}
	rotateBy("filler", 1)
	free := duringSearch(t, path, func() {
		if err := l.Append(context.Background(), rec("new")); err != nil {
			t.Errorf("append during the search: %v", err)
			return
		}
		rotateBy("filler", 2)
	})
	got, err := l.AppendStart(context.Background(), rec("new"), 4242, 99)
	if !*free {
		t.Fatal("the log's lock was held while the search read the log")
	}
	if got != nil || err != nil {
		t.Errorf("AppendStart after a rotation during its search = %v, %v; want nil, nil", got, err)
	}
	if n := startsOf(t, path, "new"); n != 1 {
		t.Errorf("%d start records of the container; want 1", n)
	}
}

// BenchmarkAppendStartNewID measures AppendStart of a container the log
// does not hold, with a full search window (the current file and
// SearchFiles rotated files of 16 MiB each, as the shipped rotation
// leaves them), and what it costs another writer: writer-wait-ms is the
// longest an append by another writer took during it (at least one
// fdatasync; the whole search, while it held the log's lock), in the
// writer sub-benchmark; alone, no other writer runs; indexed, alone with
// the rotated files indexed (Options.IndexRotated).
func BenchmarkAppendStartNewID(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		if err := l.Append(context.Background(), rec("c"+strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
	}
	block, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	fill := bytes.Repeat(block, (16<<20)/len(block))
	for i := 1; i <= audit.SearchFiles; i++ {
		if err := os.WriteFile(fmt.Sprintf("%s.%012d", path, i), fill, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(path, fill, 0o600); err != nil {
		b.Fatal(err)
	}
	b.Run("alone", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := l.AppendStart(context.Background(), rec("alone"+strconv.Itoa(i)), 4242, 99); err != nil {
				b.Fatal(err)
			}
		}
	})
	// As the event recorder and the NRI plugin search: the rotated
	// files read once (before the timing), the current file at each.
	indexed, err := audit.Open(path, audit.Options{IndexRotated: true})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := indexed.Searcher().Last("warm", nil); err != nil {
		b.Fatal(err)
	}
	b.Run("indexed", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := indexed.AppendStart(context.Background(), rec("indexed"+strconv.Itoa(i)), 4242, 99); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("writer", func(b *testing.B) {
		var waited time.Duration
		for i := 0; b.Loop(); i++ {
			stop := make(chan struct{})
			done := make(chan time.Duration)
			go func() {
				var longest time.Duration
				for {
					select {
					case <-stop:
						done <- longest
						return
					default:
					}
					t0 := time.Now()
					if err := l.Append(context.Background(), rec("other")); err != nil {
						b.Error(err)
					}
					longest = max(longest, time.Since(t0))
				}
			}()
			if _, err := l.AppendStart(context.Background(), rec("new"+strconv.Itoa(i)), 4242, 99); err != nil {
				b.Fatal(err)
			}
			close(stop)
			waited += <-done
		}
		b.ReportMetric(float64(waited.Microseconds())/1000/float64(b.N), "writer-wait-ms/op")
	})
}

// TestRotatedFileUntrusted: what writers read of a rotated file another
// user may write (a wrong mode or owner, root's mistake or another
// tool's) is not believed: a start planted in it (a line with its hash,
// which needs no key) made an append of that container's start take it
// for recorded and record nothing; the chain's last record is not taken
// from it; retention does not describe it by its lines, nor remove it.
// The current file was refused so already.
func TestRotatedFileUntrusted(t *testing.T) {
	nstest.RequireRoot(t)
	rotatedLog := func(t *testing.T, opts audit.Options) (*audit.Log, []string) {
		t.Helper()
		opts.RotateBytes = 4096
		l, _ := newLog(t, opts)
		appendN(t, l, 12)
		files, err := l.Files()
		if err != nil || len(files) < 3 {
			t.Fatalf("files %v (%v); want two rotated at least", files, err)
		}
		return l, files
	}
	t.Run("a start planted", func(t *testing.T) {
		l, files := rotatedLog(t, audit.Options{})
		rotated := files[len(files)-2]
		untrust(t, rotated)
		forged := rec("victim")
		forged.Seq, forged.Ancestry.PID, forged.Ancestry.StartTime = 3, 777, 555
		plant(t, rotated, forged)
		start := rec("victim")
		start.Ancestry.PID, start.Ancestry.StartTime = 777, 555
		got, err := l.AppendStart(context.Background(), start, 777, 555)
		if got != nil || !errors.Is(err, safefile.ErrUntrusted) {
			t.Errorf("AppendStart: found %v, err %v; want the rotated file refused", got, err)
		}
	})
	t.Run("the last record", func(t *testing.T) {
		l, files := rotatedLog(t, audit.Options{})
		untrust(t, files[len(files)-2])
		// A current file with no record: the chain's last is read from
		// the newest rotated file.
		if err := os.Truncate(files[len(files)-1], 0); err != nil {
			t.Fatal(err)
		}
		if err := l.Append(context.Background(), rec("next")); !errors.Is(err, safefile.ErrUntrusted) {
			t.Errorf("Append: %v; want the rotated file refused", err)
		}
	})
	t.Run("retention", func(t *testing.T) {
		var warned []error
		_, files := rotatedLog(t, audit.Options{})
		untrust(t, files[0])
		l2, err := audit.Open(files[len(files)-1], audit.Options{RotateBytes: 4096, KeepFiles: 1, Warn: func(err error) { warned = append(warned, err) }})
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, l2, 6)
		if _, err := os.Stat(files[0]); err != nil {
			t.Errorf("the untrusted rotated file was removed: %v", err)
		}
		if len(warned) == 0 || !errors.Is(warned[0], safefile.ErrUntrusted) || !strings.Contains(warned[0].Error(), "retention stops at it") {
			t.Errorf("warnings %v; want retention stopped at the untrusted file", warned)
		}
	})
}

// untrust makes file another user's, writable by all.
func untrust(t *testing.T, file string) {
	t.Helper()
	if err := os.Chown(file, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o666); err != nil {
		t.Fatal(err)
	}
}

// plant appends r, encoded with its hash, to file, as someone who may
// write it could (no key needed).
func plant(t *testing.T, file string, r *audit.Record) {
	t.Helper()
	line, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	tear(t, file, line) // a whole line: Encode ends it
}
