package audit

import (
	"fmt"
	"math"
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
