package audit_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
)

// TestReplayedLines: older records again at the end of the log (stale
// blocks a crash exposed on a file system that shows what a block held
// before, or lines written again) are not the chain's head: the next
// append records them as damaged lines of kind "replayed" and goes on
// from the last good record, and verify, which before the append says
// the lines are not recorded yet, passes once the damage is
// acknowledged, sealed or not, as the node's log and as a shipper's
// copy. Before, the append chained after the older record: its seqs came
// again and verify failed for good.
func TestReplayedLines(t *testing.T) {
	for _, tc := range []struct {
		name    string
		replay  func(lines [][]byte) []byte // what is appended after the records
		replays int
		torn    bool
	}{
		{"older record", func(l [][]byte) []byte { return l[1] }, 1, false},
		{"last record again", func(l [][]byte) []byte { return append(bytes.TrimSuffix(l[len(l)-1], []byte("\n")), '\n') }, 1, false},
		{"stale block", func(l [][]byte) []byte {
			return append(bytes.Join(l[0:3], nil), l[3][:len(l[3])/2]...)
		}, 3, true},
	} {
		for _, sealed := range []bool{false, true} {
			name := tc.name
			if sealed {
				name += " sealed"
			}
			t.Run(name, func(t *testing.T) {
				var l *audit.Log
				var path string
				var keys []audit.VerifyKey
				if sealed {
					var key audit.VerifyKey
					l, path, key = sealedLog(t, audit.Options{})
					keys = []audit.VerifyKey{key}
				} else {
					l, path = newLog(t, audit.Options{})
				}
				appendN(t, l, 5)
				lines := readLines(t, path)
				head := uint64(len(lines)) // seq of the last record
				tear(t, path, tc.replay(lines))

				_, err := verify(t, l, audit.VerifyOptions{Keys: keys})
				if err == nil || !tc.torn && (!strings.Contains(err.Error(), "an older record again") || !strings.Contains(err.Error(), "not recorded yet")) {
					t.Fatalf("verify before the next append: %v", err)
				}

				appendN(t, l, 2)
				var d *audit.Record
				var seqs []uint64
				for r, err := range audit.Records(path) {
					if err != nil {
						t.Fatal(err)
					}
					seqs = append(seqs, r.Seq)
					if r.Stage == audit.StageDamaged {
						d = r
					}
				}
				if d == nil {
					t.Fatalf("no damage record; seqs %v", seqs)
				}
				if len(d.Damage) != tc.replays {
					t.Fatalf("damage record lists %d lines, want %d: %+v", len(d.Damage), tc.replays, d.Damage)
				}
				for _, dl := range d.Damage {
					if dl.Kind != "replayed" {
						t.Errorf("damaged line kind %q, want replayed: %+v", dl.Kind, dl)
					}
				}
				if !strings.Contains(d.Error, "repeat older records") {
					t.Errorf("damage record says %q", d.Error)
				}
				// The records after the last good one go on from its seq.
				want := head + 3
				if tc.torn {
					want++ // the torn-tail record
				}
				if last := seqs[len(seqs)-1]; last != want {
					t.Errorf("last seq %d, want %d (seqs %v)", last, want, seqs)
				}

				_, err = verify(t, l, audit.VerifyOptions{Keys: keys})
				if err == nil || !strings.Contains(err.Error(), "replayed) is not acknowledged") {
					t.Fatalf("verify before the ack: %v", err)
				}
				ack := &audit.Record{Source: audit.SourceOperator, Stage: audit.StageAck, Ref: &audit.Ref{Seq: d.Seq, Stage: d.Stage, Hash: d.Hash}, Note: "checked"}
				if err := l.Append(context.Background(), ack); err != nil {
					t.Fatal(err)
				}
				for _, shipped := range []bool{false, true} {
					s, err := verify(t, l, audit.VerifyOptions{Keys: keys, Shipped: shipped})
					if err != nil {
						t.Fatalf("verify (shipped %v) after the ack: %v", shipped, err)
					}
					if len(s.Damage) != 1 || s.Damage[0].Ack == nil {
						t.Errorf("verify (shipped %v): damage %+v", shipped, s.Damage)
					}
					if sealed && s.SealsVerified != s.Records {
						t.Errorf("verify (shipped %v): %d of %d seals verified", shipped, s.SealsVerified, s.Records)
					}
				}
			})
		}
	}
}
