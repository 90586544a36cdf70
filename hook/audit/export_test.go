package audit

import (
	"encoding/hex"
	"os"
	"testing"
	"time"
)

// ForgeSealer plays an attacker who read the node's sealing state (its
// bytes): it seals the records it is given, in order, with the keys that
// follow from that state, as well as anyone on the node could.
func ForgeSealer(t testing.TB, state []byte) func(seq uint64, hash string) string {
	st, err := parseSealState(state)
	if err != nil {
		t.Fatal(err)
	}
	return func(_ uint64, hash string) string {
		h, _ := hex.DecodeString(hash)
		seal := formatSeal(st.ID, st.Epoch, sealTag(st.Key, st.ID, st.Epoch, h))
		st.Key = nextSealKey(st.Key)
		st.Epoch++
		return seal
	}
}

// BurnEpoch evolves the sealing state at path by one key without sealing
// a record, as records cut off the end of the log leave it.
func BurnEpoch(t testing.TB, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseSealState(data)
	if err != nil {
		t.Fatal(err)
	}
	st.Key = nextSealKey(st.Key)
	st.Epoch++
	if err := os.WriteFile(path, st.marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// CheckpointsFileForTest returns the checkpoints file of the log's options.
func (l *Log) CheckpointsFileForTest() string { return l.opts.Checkpoints.File }

// PauseBeforeTornWrite makes every append that found a torn tail call
// pause right before its write.
func PauseBeforeTornWrite(pause func()) { testHookTornWrite = pause }

// FailSyncDir has every sync of a directory fail with err (nil: none)
// until restore is called.
func FailSyncDir(err error) (restore func()) {
	testHookSyncDir = func(string) error { return err }
	return func() { testHookSyncDir = nil }
}

// SlowSearches makes every search with a context sleep d and call look
// (if not nil) at each look at its context, as a search reading a cold
// page cache would take long, until the test ends.
func SlowSearches(t testing.TB, d time.Duration, look func()) {
	searchedLines = func() {
		if look != nil {
			look()
		}
		time.Sleep(d)
	}
	t.Cleanup(func() { searchedLines = nil })
}

// SealStateForTest returns the sealing state path of the log's options.
func (l *Log) SealStateForTest() string { return l.opts.SealState }

// DerivedForTest returns how many keys the checker derived.
func (sc *SealChecker) DerivedForTest() uint64 { return sc.derived }

// ForgeCheckpoint gives c, whose Seal is set, the checkpoint seal root
// after T can make with the sealing state it read: of the epoch after
// c's record's, derived from the state's, which must not be later.
func ForgeCheckpoint(t testing.TB, state []byte, c *Checkpoint) {
	st, err := parseSealState(state)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseSeal(c.Seal)
	if err != nil {
		t.Fatal(err)
	}
	e := p.Epoch + 1
	if e < st.Epoch {
		t.Fatalf("ForgeCheckpoint: the state is at epoch %d, past %d", st.Epoch, e)
	}
	k := st.Key
	for i := st.Epoch; i < e; i++ {
		k = nextSealKey(k)
	}
	c.CheckpointSeal = formatSeal(st.ID, e, headTag(k, st.ID, e, c))
}
