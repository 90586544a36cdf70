package audit_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
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
