package audit

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// TestSealStateMarshal pins the sealing state's bytes: fixed width (the
// file is rewritten in place), the epoch as 20 zero-padded digits, and
// what parseSealState reads back.
func TestSealStateMarshal(t *testing.T) {
	for _, epoch := range []uint64{0, 1, 9, 10, 12345, 1 << 40, math.MaxUint64 - 1, math.MaxUint64} {
		st := sealState{ID: SealID{0x2d, 0xcc, 0x72, 0x52, 0x06, 0x02, 0xc9, 0x73}, Epoch: epoch}
		for i := range st.Key {
			st.Key[i] = byte(i*7 + int(epoch%251))
		}
		got := st.marshal()
		want := fmt.Sprintf("nsrel-seal 1 %s %020d %x\n", st.ID, epoch, st.Key[:])
		if string(got) != want {
			t.Errorf("epoch %d: marshal = %q, want %q", epoch, got, want)
		}
		if len(got) != sealStateLen {
			t.Errorf("epoch %d: %d bytes, want %d", epoch, len(got), sealStateLen)
		}
		back, err := parseSealState(got)
		if err != nil || *back != st {
			t.Errorf("epoch %d: parse back = %+v, %v; want %+v", epoch, back, err, st)
		}
	}
}

// BenchmarkSealCheckpoint is what a checkpoint seal adds to an append
// that emits a checkpoint (every 100 records or 300 s as shipped): the
// line written and read back, and one HMAC.
//
//	go test -run '^$' -bench SealCheckpoint ./hook/audit/
func BenchmarkSealCheckpoint(b *testing.B) {
	s := &sealer{state: &sealState{Epoch: 3113}}
	c0 := Checkpoint{Host: "node-a", Log: "/var/log/nsrel/audit.jsonl", Seq: 3113, Hash: strings.Repeat("e4", 32),
		Seal: formatSeal(s.state.ID, 3112, make([]byte, 32)), Time: "2026-12-05T17:02:51.57921243Z"}
	for b.Loop() {
		c := c0
		s.sealCheckpoint(&c)
		if c.CheckpointSeal == "" {
			b.Fatal("not sealed")
		}
	}
}
