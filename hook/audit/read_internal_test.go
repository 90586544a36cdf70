package audit

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestLinesBackwardMatchesForward checks that linesBackwardIn yields the
// lines Lines does, in reverse, with their offsets: lines of every length
// around its chunk sizes, empty lines, lines too long to be a record (one
// far beyond MaxLine), and a torn last line, which neither yields.
func TestLinesBackwardMatchesForward(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 40 {
		var b bytes.Buffer
		lines := rng.IntN(400)
		for i := range lines {
			n := rng.IntN(1500)
			switch rng.IntN(40) {
			case 0:
				n = 0
			case 1:
				n = 8<<10 - 1 + rng.IntN(3) // around the first chunk
			case 2:
				n = 64<<10 - 1 + rng.IntN(3)
			case 3:
				if round%8 == 0 {
					n = MaxLine + 200<<10 // beyond a line and a chunk
				}
			}
			b.Write(bytes.Repeat([]byte{byte('a' + i%26)}, n))
			b.WriteByte('\n')
		}
		if round%2 == 1 {
			b.WriteString(`{"torn`)
		}
		path := filepath.Join(t.TempDir(), "lines")
		if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		type line struct {
			off, long int64
			data, sum string
		}
		var want, got []line
		for l, err := range Lines(path) {
			if err != nil {
				t.Fatal(err)
			}
			if !l.Torn {
				want = append(want, line{l.Offset, l.Long, string(l.Data), l.Sum})
			}
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		for l, err := range linesBackwardIn(f, path, int64(b.Len())) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, line{l.Offset, l.Long, string(l.Data), l.Sum})
		}
		f.Close()
		slices.Reverse(got)
		if len(got) != len(want) {
			t.Fatalf("round %d: %d lines backwards, %d forwards", round, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("round %d, line %d: backwards offset %d long %d len %d; forwards offset %d long %d len %d", round, i,
					got[i].off, got[i].long, len(got[i].data), want[i].off, want[i].long, len(want[i].data))
			}
		}
	}
}

// BenchmarkReplayed measures what telling a replayed record from the
// chain's head adds to every append: [replayed] on the last record of a
// sound log of records of about 1 KB, with the hint the last append left
// in the lock file (hint: it reads the head's line and checks its hash)
// and without (look-back: an nsrel before the hint wrote the last
// record; it reads [replayWindow] bytes before it and decodes none of
// their lines).
func BenchmarkReplayed(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.jsonl")
	l, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 200 {
		r := &Record{Source: SourceOCIHook, Stage: StageCreateRuntime, ContainerID: "c" + string(rune('a'+i%26)),
			Bundle: "/run/bundles/" + string(bytes.Repeat([]byte{'x'}, 700)), Policy: "default", Mode: "enforce", Verdict: VerdictAllow}
		if err := l.Append(b.Context(), r); err != nil {
			b.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	size, err := fileSize(f)
	if err != nil {
		b.Fatal(err)
	}
	var last Line
	for l := range linesBackwardIn(f, path, size) {
		last = l
		break
	}
	r, err := Decode(last.Data)
	if err != nil {
		b.Fatal(err)
	}
	lf, err := os.Open(path + lockSuffix)
	if err != nil {
		b.Fatal(err)
	}
	defer lf.Close()
	b.Run("hint", func(b *testing.B) {
		for b.Loop() {
			h := chainAt(f, readHint(lf), nil)
			if h == nil {
				b.Fatal("no hint")
			}
			if err := replayed(f, last, r, nil, h); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("look-back", func(b *testing.B) {
		for b.Loop() {
			if err := replayed(f, last, r, nil, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReplayedDerived: what an append costs to find the chain's
// head without a hint (an nsrel before the hint wrote the log, or a
// crash lost it) in a file of 4.7 MiB of 800-byte records: the anchor's
// look back and the walk of the last 2 MiB.
func BenchmarkReplayedDerived(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.jsonl")
	var data []byte
	prev := ""
	for i := range 6000 {
		r := &Record{Time: "2026-12-07T00:00:00Z", Host: "h", Source: SourceOCIHook, Stage: StageCreateRuntime, ContainerID: "c" + string(rune('a'+i%26)),
			Bundle: "/run/bundles/" + string(bytes.Repeat([]byte{'x'}, 600)), Policy: "default", Mode: "enforce", Verdict: VerdictAllow, Seq: uint64(i + 1), Prev: prev}
		line, err := r.Encode()
		if err != nil {
			b.Fatal(err)
		}
		data, prev = append(data, line...), r.Hash
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var last Line
	for l := range linesBackwardIn(f, path, int64(len(data))) {
		last = l
		break
	}
	r, err := Decode(last.Data)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(data))/(1<<20), "MiB")
	for b.Loop() {
		c := derivedChain(func() uint64 { return 0 }) // no file before it
		if err := replayed(f, last, r, nil, c); err != nil || !c.anchored {
			b.Fatal(err, c.anchored)
		}
	}
}
