package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
)

// TestReplaySoak: random appends to logs that rotate small and keep few
// files, sealed or not, between which a crash leaves copies of one to
// three earlier records, or of ten to forty, a line of NUL bytes or a
// garbled line at the end of the current file, or the lock file's hint
// as an earlier append left it (maybe rotations before), or none. Once
// every damage record is acknowledged, verify passes: no append took a
// copy for the chain's head (a fork fails verify), and every damaged
// line is recorded. Seeds are fixed.
func TestReplaySoak(t *testing.T) {
	for seed := range uint64(24) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			opts := audit.Options{RotateBytes: int64(1000 + rng.IntN(40000)), KeepFiles: rng.IntN(4)}
			sealed, path, keys := logMaybeSealed(t, seed%2 == 1)
			opts.SealState = sealed.SealStateForTest()
			l, err := audit.Open(path, opts)
			if err != nil {
				t.Fatal(err)
			}
			var seen [][]byte // lines met, to copy
			var hint []byte   // a lock file saved
			for step := range 80 {
				switch p := rng.IntN(20); {
				case p < 2 && len(seen) > 0:
					var block []byte
					for range 1 + rng.IntN(3) {
						block = append(block, seen[rng.IntN(len(seen))]...)
					}
					tear(t, path, block)
				case p == 2:
					tear(t, path, append(bytes.Repeat([]byte{0}, 1+rng.IntN(3000)), '\n'))
				case p == 3:
					tear(t, path, []byte("garbled line\n"))
				case p == 4 && len(seen) > 0:
					// A stale block of many records.
					var block []byte
					for range 10 + rng.IntN(30) {
						block = append(block, seen[rng.IntN(len(seen))]...)
					}
					tear(t, path, block)
				case p == 5 && hint != nil:
					// The lock file as an earlier append left it (its
					// later, unsynced writes lost in a crash), maybe
					// rotations ago.
					os.WriteFile(path+".lock", hint, 0o600)
				case p == 6:
					hint, _ = os.ReadFile(path + ".lock")
				case p == 7:
					// The lock file empty, as an nsrel before the hint
					// leaves it.
					os.Truncate(path+".lock", 0)
				default:
					if err := l.Append(context.Background(), rec(fmt.Sprint("c", step))); err != nil {
						t.Fatalf("step %d: %v", step, err)
					}
				}
				if data, err := os.ReadFile(path); err == nil {
					for _, line := range bytes.SplitAfter(data, []byte("\n")) {
						if _, err := audit.Decode(bytes.TrimSuffix(line, []byte("\n"))); err == nil && len(line) > 0 && line[len(line)-1] == '\n' {
							seen = append(seen, line)
						}
					}
				}
			}
			appendN(t, l, 1)
			files, err := l.Files()
			if err != nil {
				t.Fatal(err)
			}
			var damage []*audit.Record
			for r, err := range audit.Records(files...) {
				if err == nil && r.Stage == audit.StageDamaged {
					damage = append(damage, r)
				}
			}
			for _, d := range damage {
				if err := l.Append(context.Background(), audittest.AckOf(d, "soak")); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := verify(t, l, audit.VerifyOptions{Keys: keys}); err != nil {
				// The files' lines: seq/stage/seal epoch, X for a line
				// that does not decode.
				files, _ := l.Files()
				for _, f := range files {
					var ss []string
					for _, line := range readLines(t, f) {
						if r, err := audit.Decode(bytes.TrimSuffix(line, []byte("\n"))); err != nil {
							ss = append(ss, "X")
						} else {
							ss = append(ss, fmt.Sprintf("%d/%s/%s", r.Seq, r.Stage, strings.Split(r.Seal+"..", ".")[1]))
						}
					}
					t.Logf("%s %v", f, ss)
				}
				t.Errorf("rotate %d keep %d sealed %v: verify: %v", opts.RotateBytes, opts.KeepFiles, keys != nil, err)
			}
		})
	}
}
