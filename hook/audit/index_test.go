package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// TestIndexRotatedSameAnswers: searches of a log whose rotated files are
// indexed (Options.IndexRotated) find what searches without the index
// find, for containers the log holds and does not, as records are
// appended, files rotate and retention removes them; and an append after
// a search (AppendStart) sees a start in a rotated file as recorded.
func TestIndexRotatedSameAnswers(t *testing.T) {
	ctx := context.Background()
	plain, path := newLog(t, audit.Options{RotateBytes: 4096, KeepFiles: 8})
	indexed, err := audit.Open(path, audit.Options{RotateBytes: 4096, KeepFiles: 8, IndexRotated: true})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	id := func(i int) string { return fmt.Sprintf("ctr-%d", i) }
	anc := func(pid int) *audit.Ancestry {
		return &audit.Ancestry{PID: pid, StartTime: uint64(pid) * 10, User: []audit.UserNS{{Ino: 1}}, PIDNS: []audit.PIDNS{{Ino: 2}}}
	}
	searches := 0
	for round := range 40 {
		for range 10 {
			i := rng.IntN(60)
			r := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: id(i), Namespace: "default", Ancestry: anc(1000 + i)}
			if rng.IntN(3) == 0 {
				r.Stage, r.Ancestry = audit.StageExit, nil
			}
			// Both writers append: the index must not miss what the
			// other one wrote.
			w := plain
			if rng.IntN(2) == 0 {
				w = indexed
			}
			if err := w.Append(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 80 { // 60 IDs written, 20 never
			for _, match := range []func(*audit.Record) bool{nil, audit.StartMatcher(1000+i, 0), audit.StartMatcher(1000+i+1, 0)} {
				want, err1 := plain.Searcher().Last(id(i), match)
				got, err2 := indexed.Searcher().Last(id(i), match)
				searches++
				if err1 != nil || err2 != nil || (want == nil) != (got == nil) || want != nil && want.Seq != got.Seq {
					t.Fatalf("round %d, %s: indexed search found %v (%v), plain %v (%v)", round, id(i), seqOf(got), err2, seqOf(want), err1)
				}
			}
		}
	}
	files, err := audit.Files(path)
	if err != nil || len(files) < audit.SearchFiles+2 {
		t.Fatalf("%d files (%v); want the search window full", len(files), err)
	}
	// The start of a container whose records are in a rotated file only.
	for i := range 60 {
		last, err := plain.Searcher().Last(id(i), audit.StartMatcher(1000+i, 0))
		if err != nil {
			t.Fatal(err)
		}
		got, err := indexed.AppendStart(ctx, &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: id(i), Namespace: "default", Ancestry: anc(1000 + i)}, 1000+i, uint64(1000+i)*10)
		if err != nil {
			t.Fatal(err)
		}
		if (last == nil) != (got != nil) {
			t.Errorf("%s: the log's start %v, the indexed append wrote %v; want one of the two", id(i), seqOf(last), seqOf(got))
		}
	}
	t.Logf("%d searches compared, %d files", searches, len(files))
}

func seqOf(r *audit.Record) any {
	if r == nil {
		return nil
	}
	return r.Seq
}

// TestIndexRotatedReadsLess: with rotated files indexed, a search for a
// container the log does not hold reads the current file alone, once the
// rotated ones were read; without, it reads the whole search window at
// every search.
func TestIndexRotatedReadsLess(t *testing.T) {
	ctx := context.Background()
	const rotate = 32 << 10
	plain, path := newLog(t, audit.Options{RotateBytes: rotate})
	indexed, err := audit.Open(path, audit.Options{RotateBytes: rotate, IndexRotated: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		files, err := audit.Files(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == audit.SearchFiles+2 {
			break
		}
		if err := plain.Append(ctx, &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageExit, ContainerID: fmt.Sprintf("other-%d", i), Namespace: "default"}); err != nil {
			t.Fatal(err)
		}
	}
	read := func(l *audit.Log) int {
		before := audittest.BytesRead(t)
		if r, err := l.Searcher().Last("absent", nil); r != nil || err != nil {
			t.Fatalf("search for a container the log does not hold: %v, %v", r, err)
		}
		return audittest.BytesRead(t) - before
	}
	read(indexed) // reads the rotated files once
	if p, x := read(plain), read(indexed); p < audit.SearchFiles*rotate || x > 2*rotate {
		t.Errorf("a search read %d bytes without the index, %d with it; want more than %d, and at most %d", p, x, audit.SearchFiles*rotate, 2*rotate)
	}
}

// fillRotated appends records of other containers through l until the
// log at path has n rotated files.
func fillRotated(t *testing.T, l *audit.Log, path string, n int) {
	t.Helper()
	for i := 0; ; i++ {
		files, err := audit.Files(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) >= n+1 {
			return
		}
		if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageExit, ContainerID: fmt.Sprintf("other-%d", i), Namespace: "default"}); err != nil {
			t.Fatal(err)
		}
	}
}

// absentReads returns the bytes a search of l for a container the log
// does not hold reads.
func absentReads(t *testing.T, l *audit.Log) int {
	t.Helper()
	before := audittest.BytesRead(t)
	if r, err := l.Searcher().Last("absent", nil); r != nil || err != nil {
		t.Fatalf("search for a container the log does not hold: %v, %v", r, err)
	}
	return audittest.BytesRead(t) - before
}

// TestIndexRotatedLongRun: as files rotate and retention removes them
// for weeks, a search after each rotation still reads the current file
// alone once the new rotated file was read; and the log that ships in
// the background (the NRI plugin appends through it) uses the same
// index. The review of the index found that every file read after the
// tenth was forgotten at once (searches read the window again, and more
// than without the index), and that the shipping log had none.
func TestIndexRotatedLongRun(t *testing.T) {
	const rotate = 16 << 10
	plain, path := newLog(t, audit.Options{RotateBytes: rotate, KeepFiles: 6})
	indexed, err := audit.Open(path, audit.Options{RotateBytes: rotate, KeepFiles: 6, IndexRotated: true})
	if err != nil {
		t.Fatal(err)
	}
	bg, stop := indexed.ShipInBackground()
	defer stop(context.Background())
	fillRotated(t, plain, path, 6)
	for round := range 25 {
		// One rotation more (retention keeps 6 rotated files).
		files, err := audit.Files(path)
		if err != nil {
			t.Fatal(err)
		}
		newest := files[len(files)-2]
		for i := 0; ; i++ {
			now, err := audit.Files(path)
			if err != nil {
				t.Fatal(err)
			}
			if now[len(now)-2] != newest {
				break
			}
			if err := plain.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StagePoststop, ContainerID: fmt.Sprintf("r%d-%d", round, i)}); err != nil {
				t.Fatal(err)
			}
		}
		absentReads(t, bg) // reads the new rotated file
		if x := absentReads(t, bg); x > 2*rotate {
			t.Fatalf("round %d: a warm search read %d bytes; want at most %d (the current file)", round, x, 2*rotate)
		}
	}
}

// TestIndexRotatedContextDone: a search whose context is done fails with
// its error, with the index as without it (the index read the rotated
// files whole, and answered that none held the container: an append
// past its deadline wrote the start; the review of the index found it).
func TestIndexRotatedContextDone(t *testing.T) {
	plain, path := newLog(t, audit.Options{RotateBytes: 64 << 10})
	indexed, err := audit.Open(path, audit.Options{RotateBytes: 64 << 10, IndexRotated: true})
	if err != nil {
		t.Fatal(err)
	}
	fillRotated(t, plain, path, audit.SearchFiles+1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err1 := plain.Searcher().WithContext(ctx).Last("absent", nil)
	_, err2 := indexed.Searcher().WithContext(ctx).Last("absent", nil)
	if !errors.Is(err1, context.Canceled) || !errors.Is(err2, context.Canceled) {
		t.Errorf("searches with a done context: %v without the index, %v with it; want both canceled", err1, err2)
	}
	// Warm (the files read before): the same (a review found "none").
	absentReads(t, indexed)
	if _, err := indexed.Searcher().WithContext(ctx).Last("absent", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("a search with a done context, the index warm: %v; want canceled", err)
	}
}

// TestIndexRotatedChangedInPlace: a rotated file written over in place at
// its size (restored from a copy after a crash zeroed a line: inode,
// birth time and size the same) is read again: the index answered from
// the damaged file, and an append wrote a second start (the review of
// the index found it).
func TestIndexRotatedChangedInPlace(t *testing.T) {
	ctx := context.Background()
	plain, path := newLog(t, audit.Options{RotateBytes: 4096})
	indexed, err := audit.Open(path, audit.Options{RotateBytes: 4096, IndexRotated: true})
	if err != nil {
		t.Fatal(err)
	}
	anc := &audit.Ancestry{PID: 42, StartTime: 420, User: []audit.UserNS{{Ino: 1}}, PIDNS: []audit.PIDNS{{Ino: 2}}}
	start := func() *audit.Record {
		return &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: "victim", Namespace: "default", Ancestry: anc}
	}
	if err := plain.Append(ctx, start()); err != nil {
		t.Fatal(err)
	}
	fillRotated(t, plain, path, 1)
	files, err := audit.Files(path)
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(good)
	for i := range bytes.IndexByte(bad, '\n') {
		bad[i] = 0
	}
	for _, data := range [][]byte{bad, good} {
		if err := os.WriteFile(files[0], data, 0o600); err != nil {
			t.Fatal(err)
		}
		want, err1 := plain.Searcher().Last("victim", audit.StartMatcher(42, 420))
		got, err2 := indexed.Searcher().Last("victim", audit.StartMatcher(42, 420))
		if err1 != nil || err2 != nil || (want == nil) != (got == nil) {
			t.Fatalf("plain search found %v (%v), indexed %v (%v)", seqOf(want), err1, seqOf(got), err2)
		}
	}
	if g, err := indexed.AppendStart(ctx, start(), 42, 420); g != nil || err != nil {
		t.Errorf("AppendStart of the start the restored file holds wrote %v (%v); want nothing", seqOf(g), err)
	}
}

// TestKeepsBirthTimes: a file system without birth times (ext4 with
// 128-byte inodes, as older mke2fs made small ones) is told, so that
// nsrel-containerd can say its searches are not indexed (the index needs
// them, and searched the whole window there without a word: a review
// found it); the test's own temporary directory keeps them.
func TestKeepsBirthTimes(t *testing.T) {
	if !audit.KeepsBirthTimes(t.TempDir()) {
		t.Errorf("the test's temporary directory keeps no birth times")
	}
	none := nstest.NoBirthTimes(t)
	if audit.KeepsBirthTimes(none) {
		t.Errorf("ext4 with 128-byte inodes said to keep birth times")
	}
	// Through a symlink: what it leads to (a review found the link's).
	link := filepath.Join(t.TempDir(), "log")
	if err := os.Symlink(none, link); err != nil {
		t.Fatal(err)
	}
	if audit.KeepsBirthTimes(link) {
		t.Errorf("a symlink to ext4 with 128-byte inodes said to keep birth times")
	}
	if audit.KeepsBirthTimes(filepath.Join(t.TempDir(), "missing")) {
		t.Errorf("a missing file said to keep birth times")
	}
}
