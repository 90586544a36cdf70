package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// sealedLog returns a log with sealing set up (a seal-start record
// first, as `nsrel-hook audit seal-init` appends it) and its key.
func sealedLog(t *testing.T, opts audit.Options) (*audit.Log, string, audit.VerifyKey) {
	t.Helper()
	dir := t.TempDir()
	opts.SealState = filepath.Join(dir, "state", "audit.seal")
	l, err := audit.Open(filepath.Join(dir, "audit.jsonl"), opts)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := l.StartSealing(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	return l, l.Path(), key
}

// lineHash is the hash of a record line as written: SHA-256 of its bytes
// up to the hash member, closed.
func lineHash(line []byte) string {
	i := bytes.LastIndex(line, []byte(`,"hash":"`))
	sum := sha256.Sum256(append(append([]byte{}, line[:i]...), '}'))
	return hex.EncodeToString(sum[:])
}

// rechain rewrites lines from index from on as an attacker who knows the
// format would: every seq, prev and hash recomputed, seals dropped or
// made with resealer (nil: dropped).
func rechain(t *testing.T, lines [][]byte, from int, resealer func(seq uint64, hash string) string) [][]byte {
	t.Helper()
	prev := ""
	if from > 0 {
		prev = lineHash(lines[from-1])
	}
	return append(append([][]byte{}, lines[:from]...), chainFrom(prev, lines[from:], uint64(from+1), resealer)...)
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

func writeLines(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	var b []byte
	for _, l := range lines {
		b = append(b, bytes.TrimSuffix(l, []byte("\n"))...)
		b = append(b, '\n')
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSealing checks that records are sealed from the seal-start record
// on, that the key verifies every seal and that verify without it says
// it checked the chain only, and that the state on the node no longer
// holds the key of any record written.
func TestSealing(t *testing.T) {
	l, path, key := sealedLog(t, audit.Options{})
	appendN(t, l, 5)
	s, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}})
	if err != nil || s.Sealed != 6 || s.SealsVerified != 6 || s.FirstSealed != 1 || len(s.SealIDs) != 1 || s.SealIDs[0] != key.ID.String() {
		t.Fatalf("with the key: %+v, %v", s, err)
	}
	s, err = verify(t, l, audit.VerifyOptions{})
	if err != nil || s.Sealed != 6 || s.SealsVerified != 0 {
		t.Errorf("without the key: %+v, %v", s, err)
	}
	// The state holds the key of the next record only.
	state, err := os.ReadFile(filepath.Join(filepath.Dir(path), "state", "audit.seal"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(state, []byte(hex.EncodeToString(key.Key[:]))) || !bytes.Contains(state, []byte(" 00000000000000000006 ")) {
		t.Errorf("state after 6 records: %q", state)
	}
	if st, _ := os.Stat(filepath.Join(filepath.Dir(path), "state", "audit.seal")); st.Mode().Perm() != 0o600 {
		t.Errorf("state mode %v", st.Mode())
	}
	wrong := key
	wrong.Key[0] ^= 1
	if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{wrong}}); err == nil || !strings.Contains(err.Error(), "seal does not match") {
		t.Errorf("a wrong key: %v", err)
	}
}

// stolenKey reads the node's sealing state as an attacker with root
// would, and returns a function sealing any later record with the keys
// derived from it.
func stolenKey(t *testing.T, statePath string) func(seq uint64, hash string) string {
	t.Helper()
	data, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	return audit.ForgeSealer(t, data)
}

// TestForwardSecure plays an attacker who gains root on the node after
// some records were sealed, reads the sealing state and rewrites the log:
// editing a record sealed before, removing one, inserting one, swapping
// two, recomputing every hash and prev and sealing what it can with the
// keys it holds. Verify with the key refuses every result; without the
// key, the same rewrites pass, which is why the key is kept off the node.
func TestForwardSecure(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func([][]byte) ([][]byte, int)
	}{
		{"edit a verdict", func(l [][]byte) ([][]byte, int) {
			l[3] = bytes.Replace(l[3], []byte(`"verdict":"deny"`), []byte(`"verdict":"allow"`), 1)
			return l, 3
		}},
		{"remove a record", func(l [][]byte) ([][]byte, int) { return append(l[:2], l[3:]...), 2 }},
		{"insert a record", func(l [][]byte) ([][]byte, int) {
			return append(l[:2], append([][]byte{bytes.Clone(l[4])}, l[2:]...)...), 2
		}},
		{"swap records", func(l [][]byte) ([][]byte, int) { l[2], l[3] = l[3], l[2]; return l, 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, path, key := sealedLog(t, audit.Options{})
			appendN(t, l, 5)
			statePath := filepath.Join(filepath.Dir(path), "state", "audit.seal")
			forge := stolenKey(t, statePath) // root on the node, now
			lines, from := tc.change(readLines(t, path))
			// Every seq renumbered from the change on, every hash and prev
			// recomputed, every seal made again with what the attacker has.
			for i := from; i < len(lines); i++ {
				lines[i] = renumber(lines[i], uint64(i+1))
			}
			writeLines(t, path, rechain(t, lines, from, forge))
			_, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}})
			var p *audit.Problem
			if !errors.As(err, &p) || p.Seq != uint64(from+1) {
				t.Errorf("with the key: %v; want a problem at seq %d", err, from+1)
			}
			// Without the key too: the keys the attacker holds come too
			// late in the sequence of keys to pass for the records'.
			if _, err := verify(t, l, audit.VerifyOptions{}); err == nil {
				t.Errorf("without the key: the rewrite passed")
			}
			// Seals made up with the right epochs and any tag pass
			// without the key, not with it: that is what the key is for.
			writeLines(t, path, rechain(t, readLines(t, path), from, func(seq uint64, hash string) string {
				return key.ID.String() + "." + strconv.FormatUint(seq-1, 10) + "." + strings.Repeat("0", 64)
			}))
			if _, err := verify(t, l, audit.VerifyOptions{}); err != nil {
				t.Errorf("made-up tags without the key: %v", err)
			}
			if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}); err == nil || !strings.Contains(err.Error(), "seal does not match") {
				t.Errorf("made-up tags with the key: %v", err)
			}
			// Dropping the seals instead does not help either.
			writeLines(t, path, rechain(t, readLines(t, path), from, nil))
			if _, err := verify(t, l, audit.VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "not sealed") {
				t.Errorf("seals dropped: %v", err)
			}
		})
	}
}

// TestLastRecordReplaced plays the attacker on the last record before
// it came: its key is gone (the state is written only after the record
// is on the disk), so the replacement is sealed with the next key, and
// the key left without a record gives it away. Removing the last records
// instead is what only a checkpoint shipped off the node tells.
func TestLastRecordReplaced(t *testing.T) {
	l, path, key := sealedLog(t, audit.Options{})
	appendN(t, l, 3)
	forge := stolenKey(t, filepath.Join(filepath.Dir(path), "state", "audit.seal"))
	lines := readLines(t, path)
	last := len(lines) - 1
	lines[last] = bytes.Replace(lines[last], []byte(`"verdict":"deny"`), []byte(`"verdict":"allow"`), 1)
	writeLines(t, path, rechain(t, lines, last, forge))
	_, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}})
	if err == nil || !strings.Contains(err.Error(), "1 key(s) sealed no record") {
		t.Errorf("the last record replaced: %v; want the unused key found", err)
	}
	writeLines(t, path, lines[:last])
	if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}); err != nil {
		t.Errorf("the last record removed: %v; want it to pass (only checkpoints tell)", err)
	}
	// The next append shows the removal: its key follows the state, not
	// the log.
	appendN(t, l, 1)
	if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}); err == nil || !strings.Contains(err.Error(), "sealed no record") {
		t.Errorf("an append after the last record was removed: %v", err)
	}
}

// TestSealStateBehind rolls the sealing state back after an append, as a
// crash before its block reached the disk would: the next append seals
// with the key after the log's last record, and the chain of keys has
// no hole.
func TestSealStateBehind(t *testing.T) {
	l, path, key := sealedLog(t, audit.Options{})
	statePath := filepath.Join(filepath.Dir(path), "state", "audit.seal")
	appendN(t, l, 2)
	old, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2)
	if err := os.WriteFile(statePath, old, 0o600); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2)
	s, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}})
	if err != nil || s.SealsVerified != s.Sealed || s.Sealed != 7 {
		t.Errorf("state behind the log: %+v, %v", s, err)
	}
	now, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(now, old) {
		t.Error("the state did not move on")
	}
}

// renumber sets the seq of a record line.
func renumber(line []byte, seq uint64) []byte {
	r, err := audit.Decode(line)
	if err != nil {
		return line
	}
	old := []byte(`"seq":` + uitoa(r.Seq) + `,`)
	return bytes.Replace(line, old, []byte(`"seq":`+uitoa(seq)+`,`), 1)
}

func uitoa(v uint64) string { return strconv.FormatUint(v, 10) }

// TestSealingStateProblems checks what happens when the state cannot be
// used: records are written unsealed with the reason, and verify, which
// knows the log was sealed, fails on them.
func TestSealingStateProblems(t *testing.T) {
	l, path, key := sealedLog(t, audit.Options{})
	appendN(t, l, 2)
	statePath := filepath.Join(filepath.Dir(path), "state", "audit.seal")
	os.Chmod(statePath, 0o644) // readable by others: a secret no more
	r := rec("while-readable")
	if err := l.Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if r.Seal != "" || !strings.Contains(r.SealError, "readable by") {
		t.Errorf("record with a state others can read: seal %q, error %q", r.Seal, r.SealError)
	}
	os.Remove(statePath)
	r = rec("after-removal")
	if err := l.Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if r.Seal != "" || !strings.Contains(r.SealError, "missing") {
		t.Errorf("record without the state: seal %q, error %q", r.Seal, r.SealError)
	}
	_, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}})
	var p *audit.Problem
	if !errors.As(err, &p) || p.Seq != 4 || !strings.Contains(p.Reason, "not sealed") {
		t.Errorf("verify: %v", err)
	}
}

// TestSealingNewKey starts a second sealing (seal-init --replace) and
// checks that each key verifies its records, and that a key without a
// record (the state moved on past records since removed) fails.
func TestSealingNewKey(t *testing.T) {
	l, path, key1 := sealedLog(t, audit.Options{})
	appendN(t, l, 2)
	statePath := filepath.Join(filepath.Dir(path), "state", "audit.seal")
	if _, err := audit.InitSeal(statePath, false); !errors.Is(err, audit.ErrSealStateExists) {
		t.Errorf("a second seal-init without replace: %v", err)
	}
	key2, _, err := l.StartSealing(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2)
	// K1's seal-start, 2 records and seal-end; K2's seal-start and 2.
	s, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key1, key2}})
	if err != nil || s.SealsVerified != 7 || len(s.SealIDs) != 2 {
		t.Errorf("two keys: %+v, %v", s, err)
	}
	// With keys given, every seal must be checked: a key without its
	// verification key could be one made on the node.
	s, err = verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key2}})
	if err == nil || !strings.Contains(err.Error(), "sealed with key "+key1.ID.String()+", for which no verification key was given") || s.SealsVerified != 3 {
		t.Errorf("the second key only: %+v, %v", s, err)
	}
	audit.BurnEpoch(t, statePath)
	appendN(t, l, 1)
	var p *audit.Problem
	if _, err := verify(t, l, audit.VerifyOptions{}); !errors.As(err, &p) || p.Seq != 8 || !strings.Contains(p.Reason, "1 key(s) sealed no record") {
		t.Errorf("a key without a record: %v", err)
	}
}

func TestVerifyKeyRoundTrip(t *testing.T) {
	_, _, key := sealedLog(t, audit.Options{})
	got, err := audit.ParseVerifyKey(" " + key.String() + "\n")
	if err != nil || got != key {
		t.Errorf("ParseVerifyKey(%q) = %v, %v", key, got, err)
	}
	for _, bad := range []string{"", "nsrel-seal-v1:", "nsrel-seal-v1:00:11", key.String()[:len(key.String())-2], strings.Replace(key.String(), "v1", "v2", 1)} {
		if _, err := audit.ParseVerifyKey(bad); err == nil {
			t.Errorf("ParseVerifyKey(%q) accepted", bad)
		}
	}
}

// TestSealedRetention keeps two rotated files of a sealed log: the
// seal-start record goes with the first removed file, and the chain left
// verifies with the key (its keys derived from the first one), whole and
// from a later file with Partial.
func TestSealedRetention(t *testing.T) {
	l, _, key := sealedLog(t, audit.Options{RotateBytes: 4096, KeepFiles: 2})
	appendN(t, l, 60)
	s, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}})
	if err != nil || len(s.Dropped) == 0 || s.FirstSeq == 1 || s.SealsVerified != s.Records || s.Records == 0 {
		t.Fatalf("sealed log after retention: %+v, %v", s, err)
	}
	files, _ := l.Files()
	s, err = audit.Verify(files[1:], audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Partial: true})
	if err != nil || s.SealsVerified != s.Records {
		t.Errorf("partial: %+v, %v", s, err)
	}
}

// TestSealStartLost replaces the sealing state without the record that
// introduces it (seal-init whose append failed): the next append writes
// the seal-start record itself, and the log verifies with both keys.
func TestSealStartLost(t *testing.T) {
	l, path, key1 := sealedLog(t, audit.Options{})
	appendN(t, l, 2)
	key2, err := audit.InitSeal(filepath.Join(filepath.Dir(path), "state", "audit.seal"), true)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2)
	s, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key1, key2}})
	if err != nil || len(s.SealIDs) != 2 || s.SealsVerified != s.Records || s.Records != 6 {
		t.Errorf("a key introduced by the append after it: %+v, %v", s, err)
	}
}

// BenchmarkSealedAppend appends to two logs in the same directory, one
// sealed and one not, in random order each iteration, and reports the
// median and 90th percentile of each: the difference is what sealing
// adds to an append (the HMAC, reading the state, writing its block).
//
//	go test -run '^$' -bench SealedAppend -benchtime 2000x ./hook/audit/
func BenchmarkSealedAppend(b *testing.B) {
	plain, err := audit.Open(filepath.Join(b.TempDir(), "audit.jsonl"), audit.Options{RotateBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	state := filepath.Join(dir, "audit.seal")
	sealed, err := audit.Open(filepath.Join(dir, "audit.jsonl"), audit.Options{RotateBytes: 64 << 20, SealState: state})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := sealed.StartSealing(context.Background(), false); err != nil {
		b.Fatal(err)
	}
	logs := []*audit.Log{plain, sealed}
	times := [2][]time.Duration{}
	for b.Loop() {
		order := rand.Perm(2)
		for _, i := range order {
			start := time.Now()
			if err := logs[i].Append(context.Background(), rec("bench")); err != nil {
				b.Fatal(err)
			}
			times[i] = append(times[i], time.Since(start))
		}
	}
	for i, name := range []string{"plain", "sealed"} {
		nstest.ReportQuantiles(b, name, times[i], time.Microsecond, "µs")
	}
}

// TestSealStateRestored meets a sealing state more than MaxSealLag
// records behind the log, as a restore from an old backup leaves it (the
// log's last seal is moved ahead instead of writing that many records):
// the next record is written unsealed with the reason, rather than every
// append evolving the key that far, and verify fails on it.
func TestSealStateRestored(t *testing.T) {
	l, path, _ := sealedLog(t, audit.Options{})
	appendN(t, l, 1)
	lines := readLines(t, path)
	last := len(lines) - 1
	p, err := audit.ParseSeal(sealOf(t, lines[last]))
	if err != nil {
		t.Fatal(err)
	}
	ahead := fmt.Sprintf(".%d.", audit.MaxSealLag+2)
	lines[last] = bytes.Replace(lines[last], []byte("."+uitoa(p.Epoch)+"."), []byte(ahead), 1)
	writeLines(t, path, lines)
	r := rec("after-restore")
	if err := l.Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if r.Seal != "" || !strings.Contains(r.SealError, "records behind the log") {
		t.Errorf("record after a restored state: seal %q, error %q", r.Seal, r.SealError)
	}
	// And the records after it: the restored keys sealed the next one,
	// the unsealed record not being checked against.
	for i := range 2 {
		r := rec(fmt.Sprint("later-", i))
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if r.Seal != "" || !strings.HasPrefix(r.SealError, "sealing stopped until seal-init --replace: ") || !strings.Contains(r.SealError, "records behind the log") {
			t.Errorf("record %d after a restored state: seal %q, error %q", i+2, r.Seal, r.SealError)
		}
	}
	var prob *audit.Problem
	if _, err := verify(t, l, audit.VerifyOptions{}); !errors.As(err, &prob) {
		t.Errorf("verify: %v", err)
	}
}

// sealOf returns the seal member of a record line.
func sealOf(t *testing.T, line []byte) string {
	t.Helper()
	r, err := audit.Decode(line)
	if err != nil {
		t.Fatal(err)
	}
	return r.Seal
}

// TestSealTooLargeRecord appends a record longer than MaxLine to a
// sealed log: it is refused, and the key it would have used seals the
// next record, so the keys have no hole.
func TestSealTooLargeRecord(t *testing.T) {
	l, _, key := sealedLog(t, audit.Options{})
	appendN(t, l, 1)
	big := rec("too-large")
	big.Error = strings.Repeat("x", audit.MaxLine)
	if err := l.Append(context.Background(), big); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("a record longer than MaxLine: %v; want it refused for its length", err)
	}
	appendN(t, l, 2)
	s, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}})
	if err != nil || s.Records != 4 || s.SealsVerified != 4 {
		t.Errorf("after a refused record: %+v, %v", s, err)
	}
}

// TestTooLargeFirstRecord: a record too large as the first of a new log,
// which owes no record of its own: the append wrote nothing, and said
// "fallocate: invalid argument" (a reservation of 0 bytes), not why; its
// directory's sync failing too, it read the last record of none.
func TestTooLargeFirstRecord(t *testing.T) {
	var warned []error
	l, path := newLog(t, audit.Options{Warn: func(err error) { warned = append(warned, err) }})
	big := rec("too-large")
	big.Error = strings.Repeat("x", audit.MaxLine)
	restore := audit.FailSyncDir(unix.EIO)
	err := l.Append(context.Background(), big)
	restore()
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("a record longer than MaxLine first in a log: %v; want it refused for its length", err)
	}
	if data, _ := os.ReadFile(path); len(data) != 0 {
		t.Errorf("the refused append wrote %d bytes", len(data))
	}
	appendN(t, l, 1)
	if s, err := verify(t, l, audit.VerifyOptions{}); err != nil || s.Records != 1 {
		t.Errorf("after the refused record: %+v, %v", s, err)
	}
}

// TestSealInitAfterDamage: a crash zeroes the last line of an unsealed
// log, and the operator then runs seal-init: that append writes the
// seal-start record (the first the new key seals must introduce it) and
// then the damage record. Once the damage is acknowledged the log
// verifies, with the key and without. Verify wanted the damage record
// right after the damaged lines, and failed for good.
func TestSealInitAfterDamage(t *testing.T) {
	dir := t.TempDir()
	l, err := audit.Open(filepath.Join(dir, "audit.jsonl"), audit.Options{SealState: filepath.Join(dir, "state", "audit.seal")})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 3)
	lines := readLines(t, l.Path())
	lines[2] = append(bytes.Repeat([]byte{0}, len(lines[2])-1), '\n')
	writeLines(t, l.Path(), lines)
	key, _, err := l.StartSealing(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	var stages []string
	var d *audit.Record
	for r, err := range audit.Records(l.Path()) {
		if err != nil {
			t.Fatal(err)
		}
		stages = append(stages, r.Stage)
		if r.Stage == audit.StageDamaged {
			d = r
		}
	}
	if want := []string{audit.StageCreateRuntime, audit.StageCreateRuntime, audit.StageSealStart, audit.StageDamaged}; !slices.Equal(stages, want) || d == nil {
		t.Fatalf("records %v, want %v", stages, want)
	}
	if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOperator, Stage: audit.StageAck, Ref: &audit.Ref{Seq: d.Seq, Stage: d.Stage, Hash: d.Hash}, Note: "power loss"}); err != nil {
		t.Fatal(err)
	}
	for _, keys := range [][]audit.VerifyKey{{key}, nil} {
		if s, err := verify(t, l, audit.VerifyOptions{Keys: keys}); err != nil || len(s.Damage) != 1 || s.Damage[0].Ack == nil {
			t.Errorf("verify with %d key(s): %v", len(keys), err)
		}
	}
}

// TestReplaceAfterSealedDamage: the last two records of a sealed log are
// zeroed after their keys were destroyed (no crash does that), and the
// first append after is seal-init --replace. The damage record, sealed
// with the new key, comes after the new key's seal-start record: verify
// still fails, acknowledged or not (the damaged lines had been sealed).
func TestReplaceAfterSealedDamage(t *testing.T) {
	l, path, keyA := sealedLog(t, audit.Options{})
	appendN(t, l, 4)
	lines := readLines(t, path)
	for i := len(lines) - 2; i < len(lines); i++ {
		lines[i] = append(bytes.Repeat([]byte{0}, len(lines[i])-1), '\n')
	}
	writeLines(t, path, lines)
	keyB, _, err := l.StartSealing(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	audittest.AckDamage(t, l, path)
	if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{keyA, keyB}}); err == nil {
		t.Error("verify passes sealed records zeroed, then seal-init --replace and an ack")
	}
}

// TestTooLongRecordCut appends records too long to be written as they
// are, to a sealed log: one with 100 violations of 20 KiB each, one with
// the ID maps of 32 nested user namespaces of 340 ranges each (as many
// as a map may hold), one holding 65,536 groups and 300 idmapped mounts
// with points of 1 KiB. Each is written cut (the violations first, then
// the groups and mounts, then the maps' ranges), keeping the container,
// the block and the verdict,
// its error saying what was cut, and sealed as cut; the log verifies with
// the key. Such a container was left unrecorded.
func TestTooLongRecordCut(t *testing.T) {
	l, _, key := sealedLog(t, audit.Options{})
	many := rec("many-violations")
	for i := range 100 {
		many.Violations = append(many.Violations, audit.Violation{Rule: "disjoint_from_running", Reason: fmt.Sprint(i) + strings.Repeat("r", 20<<10)})
	}
	deep := rec("deep-maps")
	for range 32 {
		var ranges []audit.IDRange
		for j := range uint32(340) {
			ranges = append(ranges, audit.IDRange{Inside: 1_000_000_000 + j*100_000, Outside: 2_000_000_000 + j*100_000, Count: 100_000})
		}
		deep.Ancestry.Maps = append(deep.Ancestry.Maps, audit.UserMaps{Ino: 4026532176, UIDMap: ranges, GIDMap: ranges, HostUIDMap: ranges, HostGIDMap: ranges, SetGroups: "allow"})
	}
	held := rec("many-groups")
	held.Held = &audit.HeldIDs{UIDs: [4]uint32{100000, 100000, 100000, 100000}, GIDs: [4]uint32{100000, 100000, 100000, 100000}}
	for i := range uint32(65536) {
		held.Held.Groups = append(held.Held.Groups, 4_000_000_000+i)
	}
	for i := range 300 {
		held.IDMapped = append(held.IDMapped, audit.IDMappedMount{Point: fmt.Sprintf("/%d/%s", i, strings.Repeat("p", 1<<10)), Err: "statmount: EOPNOTSUPP"})
	}
	held.Ancestry.Maps = []audit.UserMaps{deep.Ancestry.Maps[0]} // a copy: deep's are cut in place
	noGroups := rec("no-groups-deep")
	noGroups.Held = &audit.HeldIDs{Groups: []uint32{}}
	noGroups.Ancestry.Maps = append(noGroups.Ancestry.Maps, deep.Ancestry.Maps...) // copies: deep's are cut in place
	mounts := rec("many-mounts")
	mounts.Held = &audit.HeldIDs{Groups: []uint32{1, 2}}
	for i := range 20000 {
		mounts.IDMapped = append(mounts.IDMapped, audit.IDMappedMount{Point: fmt.Sprintf("/%d/%s", i, strings.Repeat("p", 1<<10)),
			UIDMap: deep.Ancestry.Maps[0].UIDMap, GIDMap: deep.Ancestry.Maps[0].GIDMap})
	}
	for _, tc := range []struct {
		r   *audit.Record
		cut string
	}{{many, "its violations cut"}, {deep, "ID maps left out"}, {held, "groups cut"}, {noGroups, "ID maps left out"}, {mounts, "mounts left out"}} {
		if err := l.Append(context.Background(), tc.r); err != nil {
			t.Fatalf("%s: %v", tc.r.ContainerID, err)
		}
	}
	s, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}})
	if err != nil || s.Records != 6 || s.SealsVerified != 6 {
		t.Fatalf("verify: %+v, %v", s, err)
	}
	files, _ := l.Files()
	var got []*audit.Record
	for r, err := range audit.Records(files...) {
		if err != nil {
			t.Fatal(err)
		}
		if r.Stage == audit.StageCreateRuntime {
			got = append(got, r)
		}
	}
	if len(got) != 5 {
		t.Fatalf("%d records", len(got))
	}
	if r := got[0]; len(r.Violations) != 64 || len(r.Violations[0].Reason) > 512 || !strings.Contains(r.Error, "its violations cut") || r.Verdict != audit.VerdictDeny {
		t.Errorf("%s: %d violations, error %q, verdict %s", r.ContainerID, len(r.Violations), r.Error, r.Verdict)
	}
	if r := got[1]; len(r.Maps) != 32 || r.Maps[0].UIDMap != nil || r.Maps[0].Error == "" || !strings.Contains(r.Error, "ID maps left out") || r.Verdict != audit.VerdictDeny || len(r.User) != 2 {
		t.Errorf("%s: maps %+v, error %q, verdict %s", r.ContainerID, r.Maps[0], r.Error, r.Verdict)
	}
	if r := got[2]; r.Held == nil || len(r.Held.Groups) != 1024 || r.Held.Groups[0] != 4_000_000_000 || r.Held.UIDs[0] != 100000 || r.IDMapped != nil || len(r.Maps) != 1 || r.Maps[0].UIDMap == nil ||
		!strings.Contains(r.Error, "its supplementary groups cut to the first 1024 of 65536, its 300 idmapped mounts left out") || strings.Contains(r.Error, "ID maps left out") {
		t.Errorf("%s: %d groups, %d idmapped mounts, %d maps, error %q", r.ContainerID, len(r.Held.Groups), len(r.IDMapped), len(r.Maps), r.Error)
	}
	// A process holding no group, too long for its maps: its groups stay
	// [] (not "left out"), and only the maps are cut.
	if r := got[3]; r.Held == nil || r.Held.Groups == nil || len(r.Held.Groups) != 0 || !strings.Contains(r.Error, "ID maps left out") || strings.Contains(r.Error, "groups") {
		t.Errorf("%s: held %+v (groups nil %v), error %q", r.ContainerID, r.Held, r.Held != nil && r.Held.Groups == nil, r.Error)
	}
	// 20,000 idmapped mounts with long points and maps: left out before
	// the record is encoded (encoding them took seconds and gigabytes).
	if r := got[4]; r.IDMapped != nil || len(r.Held.Groups) != 2 || !strings.Contains(r.Error, "the record would be longer than a record may be") || !strings.Contains(r.Error, "its 20000 idmapped mounts left out") {
		t.Errorf("%s: %d idmapped mounts, %d groups, error %q", r.ContainerID, len(r.IDMapped), len(r.Held.Groups), r.Error)
	}
}

// chainFrom re-hashes lines in order as the records after a record whose
// hash is prev, each line keeping its seq, and seals each with reseal
// (nil: unsealed), which is told seq for the first line, seq+1 for the
// next...: what root on the node can write.
func chainFrom(prev string, lines [][]byte, seq uint64, reseal func(seq uint64, hash string) string) [][]byte {
	var out [][]byte
	for i, l := range lines {
		at := bytes.LastIndex(l, []byte(`,"hash":"`))
		body := append([]byte{}, l[:at]...)
		p := bytes.LastIndex(body, []byte(`,"prev":"`))
		body = append(body[:p], []byte(`,"prev":"`+prev+`"`)...)
		sum := sha256.Sum256(append(append([]byte{}, body...), '}'))
		h := hex.EncodeToString(sum[:])
		line := append(body, []byte(`,"hash":"`+h+`"`)...)
		if reseal != nil {
			line = append(line, []byte(`,"seal":"`+reseal(seq+uint64(i), h)+`"`)...)
		}
		out = append(out, append(line, '}', '\n'))
		prev = h
	}
	return out
}

// recordLine encodes r (its seq set, its prev filled in by chainFrom).
func recordLine(t *testing.T, r *audit.Record) []byte {
	t.Helper()
	r.Time, r.Host, r.Prev = "2026-12-03T08:00:00Z", "vm", strings.Repeat("0", 64)
	line, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return line
}

// TestRootAfterTRewrites plays root on the node after 12 sealed records,
// with the sealing state (the key of record 13) and the records in hand,
// and the checkpoints of seq 3, 6, 9 and 12 or fewer already shipped. It
// tries what a review found verify let through: history replaced behind
// a retention record it wrote itself, the log written again without
// seals, and records after the last checkpoint sealed again under a key
// of its own behind a seal-start record. Each must fail with the key
// (and, where they tell, with the checkpoints alone).
func TestRootAfterTRewrites(t *testing.T) {
	setup := func(t *testing.T) (*audit.Log, string, audit.VerifyKey, []audit.Checkpoint, func(uint64, string) string) {
		dir := t.TempDir()
		l, path, key := sealedLog(t, audit.Options{Checkpoints: &audit.CheckpointOptions{EveryRecords: 3, File: filepath.Join(dir, "ckpt.jsonl")}})
		appendN(t, l, 11)
		var shipped []audit.Checkpoint
		for c, err := range audit.ReadCheckpoints(filepath.Join(dir, "ckpt.jsonl")) {
			if err != nil {
				t.Fatal(err)
			}
			if c.Seq <= 10 {
				shipped = append(shipped, c)
			}
		}
		if len(shipped) < 2 || shipped[len(shipped)-1].Seal == "" {
			t.Fatalf("checkpoints shipped: %+v", shipped)
		}
		return l, path, key, shipped, stolenKey(t, filepath.Join(filepath.Dir(path), "state", "audit.seal"))
	}
	edit := func(line []byte) []byte {
		return bytes.Replace(line, []byte(`"verdict":"deny"`), []byte(`"verdict":"allow"`), 1)
	}
	retention := func(t *testing.T, seq, last uint64, lastHash string) []byte {
		return recordLine(t, &audit.Record{Seq: seq, Source: audit.SourceAudit, Stage: audit.StageRetention,
			Dropped: &audit.Dropped{File: "audit.jsonl.000000000001", FirstSeq: 1, LastSeq: last, LastHash: lastHash}})
	}
	fails := func(t *testing.T, l *audit.Log, opts audit.VerifyOptions, want string) {
		t.Helper()
		if _, err := verify(t, l, opts); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("verify %+v: %v; want a failure saying %q", opts, err, want)
		}
	}

	t.Run("history behind a forged retention record", func(t *testing.T) {
		l, path, key, shipped, forge := setup(t)
		lines := readLines(t, path)
		// Records 11 and 12 edited, sealed with the keys root has
		// (epochs 12 and 13), and a retention record for 1..10.
		forged := chainFrom(lineHash(lines[9]), [][]byte{edit(lines[10]), lines[11], retention(t, 13, 10, lineHash(lines[9]))}, 0, forge)
		writeLines(t, path, forged)
		fails(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}, "would have been introduced before seq 1")
		fails(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: shipped}, "would have been introduced before seq 1")
	})

	t.Run("everything removed behind a forged retention record", func(t *testing.T) {
		l, path, key, shipped, forge := setup(t)
		lines := readLines(t, path)
		state, err := os.ReadFile(filepath.Join(filepath.Dir(path), "state", "audit.seal"))
		if err != nil {
			t.Fatal(err)
		}
		// Seq 20 on, sealed from epoch 12: a key introduced at seq 8,
		// which only the checkpoints contradict.
		var recs [][]byte
		for seq := uint64(20); seq < 22; seq++ {
			recs = append(recs, recordLine(t, &audit.Record{Seq: seq, Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "forged"}))
		}
		hash19 := strings.Repeat("a", 64)
		writeLines(t, path, chainFrom(hash19, append(recs, retention(t, 22, 19, hash19)), 0, forge))
		if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}); err != nil {
			t.Errorf("without checkpoints: %v (removal recorded as retention passes: only checkpoints tell)", err)
		}
		fails(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: shipped}, "were sealed again")
		fails(t, l, audit.VerifyOptions{Checkpoints: shipped}, "were sealed again")
		// Checkpoints without checkpoint seals (format 1.0), whose seq
		// is their word: they fail it too, with copies of them at
		// other seqs beside them or not; so do the node's checkpoints
		// whose checkpoint seals cover their seq beside such copies
		// (TestCheckpointsAlteredOfRemoved: the copies are ignored).
		var bare, copies []audit.Checkpoint
		for _, c := range shipped {
			c.CheckpointSeal = ""
			bare = append(bare, c)
			c.Seq += 7
			copies = append(copies, c)
		}
		fails(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: bare}, "were sealed again")
		fails(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: append(slices.Clone(bare), copies...)}, "were sealed again")
		fails(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: append(slices.Clone(shipped), copies...)}, "were sealed again")
		// Root also ships checkpoints with checkpoint seals of its own
		// (of the epochs it holds keys for): of its last record, and of
		// the last record sealed before T at another seq. They must not
		// make the node's checkpoints without checkpoint seals read as
		// copies with their seq changed (review).
		forged := readLines(t, path)
		var own []audit.Checkpoint
		for i, line := range [][]byte{forged[len(forged)-1], lines[len(lines)-1]} {
			r, err := audit.Decode(bytes.TrimSuffix(line, []byte("\n")))
			if err != nil {
				t.Fatal(err)
			}
			// At the seqs root's chain puts their epochs (12 at 20).
			c := audit.Checkpoint{Host: shipped[0].Host, Log: shipped[0].Log, Seq: []uint64{22, 19}[i], Hash: r.Hash, Seal: r.Seal, Time: "2026-12-03T09:00:00Z"}
			audit.ForgeCheckpoint(t, state, &c)
			own = append(own, c)
		}
		fails(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: append(slices.Clone(bare), own...)}, "were sealed again")
		fails(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: append(append(slices.Clone(bare), own...), copies...)}, "were sealed again")
	})

	t.Run("every record removed behind a retention record at its place", func(t *testing.T) {
		// A documented limit (docs/hook.md, threat model): with the key
		// root holds, a retention record for every record written before
		// T, sealed in its true place, passes; verify must then not count
		// the checkpoints of those records as matching the log, but as
		// naming records only retention accounts for.
		l, path, key, shipped, forge := setup(t)
		lines := readLines(t, path)
		last := lineHash(lines[len(lines)-1])
		writeLines(t, path, chainFrom(last, [][]byte{retention(t, uint64(len(lines)+1), uint64(len(lines)), last)}, 0, forge))
		s, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: shipped})
		if err != nil {
			t.Fatalf("verify: %v (the limit changed: update docs/hook.md)", err)
		}
		if s.Checkpoints != 0 || s.CheckpointsRetained != len(shipped) {
			t.Errorf("%d checkpoint(s) counted as matching, %d as retained; want 0 and %d", s.Checkpoints, s.CheckpointsRetained, len(shipped))
		}
	})

	t.Run("written again without seals", func(t *testing.T) {
		l, path, key, shipped, _ := setup(t)
		lines := readLines(t, path)
		lines[10] = edit(lines[10])
		writeLines(t, path, chainFrom("", lines, 0, nil))
		fails(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}, "not sealed, though verification keys were given")
		// From seq 11, behind a retention record, with the checkpoints
		// only: the last one shows the log sealed at its seq.
		writeLines(t, path, chainFrom(lineHash(lines[9]), [][]byte{lines[10], lines[11], retention(t, 13, 10, lineHash(lines[9]))}, 0, nil))
		fails(t, l, audit.VerifyOptions{Checkpoints: shipped}, "is not sealed, though the checkpoint")
		fails(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: shipped}, "not sealed, though verification keys were given")
	})

	t.Run("records sealed again under a key of root's own", func(t *testing.T) {
		l, path, key, shipped, _ := setup(t)
		lines := readLines(t, path)
		own := filepath.Join(t.TempDir(), "own.seal")
		ownKey, err := audit.InitSeal(own, false)
		if err != nil {
			t.Fatal(err)
		}
		forgeOwn := stolenKey(t, own)
		start := recordLine(t, &audit.Record{Seq: 11, Source: audit.SourceAudit, Stage: audit.StageSealStart, SealID: ownKey.ID.String()})
		writeLines(t, path, append(lines[:10:10], chainFrom(lineHash(lines[9]), [][]byte{start, edit(renumber(lines[10], 12)), renumber(lines[11], 13)}, 0, forgeOwn)...))
		fails(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: shipped}, "sealed with key "+ownKey.ID.String()+", for which no verification key was given")
	})
}

// farSealed writes a one-line log (a file of its own): a record with seq
// seq, as the first record of a chain that starts after retention,
// sealed (with a made-up tag) at epoch epoch of key, as anyone who knows
// the key's ID (it is in every seal) can write.
func farSealed(t *testing.T, key audit.VerifyKey, seq, epoch uint64) string {
	t.Helper()
	r := &audit.Record{Seq: seq, Time: "2026-12-03T08:00:00Z", Host: "vm", Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime,
		ContainerID: "far", Prev: strings.Repeat("a", 64), Seal: key.ID.String() + "." + uitoa(epoch) + "." + strings.Repeat("0", 64)}
	line, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, line, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSealEpochFarAhead checks that verify does not derive keys without
// bound: the first record of a chain that does not start at seq 1 may
// carry any epoch below its seq, and verify derived every key up to it,
// one HMAC each, before it compared the tag (seq 2^40: about 10^12
// HMACs; near 2^63 it never ended). A seal further than MaxSealDerive
// keys is a problem at once; one within it is derived and checked.
func TestSealEpochFarAhead(t *testing.T) {
	key, err := audit.InitSeal(filepath.Join(t.TempDir(), "audit.seal"), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		seq, epoch uint64
		reason     string
	}{
		{"seq 2^40", 1 << 40, 1<<40 - 1, "further than verify derives keys"},
		{"seq 2^63", 1 << 63, 1<<63 - 1, "further than verify derives keys"},
		{"one past the limit", audit.MaxSealDerive + 2, audit.MaxSealDerive + 1, "further than verify derives keys"},
		{"within the limit", 1002, 1001, "the seal does not match the record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := farSealed(t, key, tc.seq, tc.epoch)
			for _, partial := range []bool{false, true} {
				done := make(chan error, 1)
				go func() {
					_, err := audit.Verify([]string{path}, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Partial: partial})
					done <- err
				}()
				select {
				case err := <-done:
					var p *audit.Problem
					if !errors.As(err, &p) || p.Line != 1 || p.Seq != tc.seq || !strings.Contains(p.Reason, tc.reason) {
						t.Errorf("partial %v: %v; want a problem at line 1 saying %q", partial, err, tc.reason)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("partial %v: verify still deriving keys after 10 s", partial)
				}
			}
		})
	}
}

// TestSealEpochFarAheadShared: verifies that share a SealChecker (--nodes:
// every host of a stream is a chain of its own) derive the keys up to a
// chain's far first record once, not once per chain: made-up hosts of
// one far record each cost 37 s a host at epoch 2^26.
func TestSealEpochFarAheadShared(t *testing.T) {
	key, err := audit.InitSeal(filepath.Join(t.TempDir(), "audit.seal"), false)
	if err != nil {
		t.Fatal(err)
	}
	const far = 1 << 16
	seals := audit.NewSealChecker([]audit.VerifyKey{key})
	for i := range 3 {
		path := farSealed(t, key, far+1+uint64(i), far+uint64(i))
		_, err := audit.Verify([]string{path}, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Partial: true, Seals: seals})
		var p *audit.Problem
		if !errors.As(err, &p) || !strings.Contains(p.Reason, "the seal does not match the record") {
			t.Errorf("chain %d: %v; want its forged seal found", i, err)
		}
	}
	if n := seals.DerivedForTest(); n != far+2 {
		t.Errorf("%d keys derived by the shared checker for three chains up to epoch %d; want %d (each key once)", n, far+2, far+2)
	}
}

// TestStartSealingShowsOutsideLock: the verification key is shown before
// the log's lock is taken: a terminal that does not take seal-init's
// output (paused, a stalled ssh session) must not hold up the writers
// that record containers. The key shown is the one that seals.
func TestStartSealingShowsOutsideLock(t *testing.T) {
	dir := t.TempDir()
	l, err := audit.Open(filepath.Join(dir, "audit.jsonl"), audit.Options{SealState: filepath.Join(dir, "audit.seal")})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 1)
	shown, release := make(chan audit.VerifyKey, 1), make(chan struct{})
	done := make(chan error, 1)
	var key audit.VerifyKey
	go func() {
		var err error
		key, _, err = l.StartSealingShown(context.Background(), false, func(k audit.VerifyKey) error {
			shown <- k
			<-release
			return nil
		})
		done <- err
	}()
	k := <-shown
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err = l.Append(ctx, rec("while-shown"))
	cancel()
	close(release)
	if err != nil {
		t.Errorf("an append while the key was being shown: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if key != k {
		t.Error("the key shown is not the key returned")
	}
	appendN(t, l, 1)
	if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{k}}); err != nil {
		t.Errorf("verify with the key shown: %v", err)
	}
}

// TestSealedDamage damages the last line of a sealed log two ways. A
// crash before the record's key was destroyed (the sealing state as it
// was before the append, the line zeroed): the next append records the
// damage sealed with that key, and an ack clears it. A sealed record
// damaged afterwards (its key destroyed): no crash explains that, verify
// says so, and an ack does not clear it (it said only that keys sealed
// no record, and the documented ack did not help).
func TestSealedDamage(t *testing.T) {
	zeroLast := func(t *testing.T, path string) {
		lines := readLines(t, path)
		lines[len(lines)-1] = append(bytes.Repeat([]byte{0}, len(lines[len(lines)-1])-1), '\n')
		writeLines(t, path, lines)
	}
	ack := func(t *testing.T, l *audit.Log, s *audit.Summary) {
		d := s.Damage[0].Record
		if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOperator, Stage: audit.StageAck,
			Ref: &audit.Ref{Seq: d.Seq, Stage: d.Stage, Hash: d.Hash}, Note: "checked"}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("crash before the key was destroyed", func(t *testing.T) {
		l, path, key := sealedLog(t, audit.Options{})
		appendN(t, l, 2)
		state := filepath.Join(filepath.Dir(path), "state", "audit.seal")
		before := takeState(t, state)
		appendN(t, l, 1)
		zeroLast(t, path)
		putState(t, state, before)
		l, err := audit.Open(path, audit.Options{SealState: state})
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 1)
		s, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}})
		if err == nil || !strings.Contains(err.Error(), "not acknowledged") || len(s.Damage) != 1 {
			t.Fatalf("before the ack: %v", err)
		}
		ack(t, l, s)
		if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}); err != nil {
			t.Errorf("after the ack: %v", err)
		}
	})
	t.Run("a sealed record damaged", func(t *testing.T) {
		l, path, key := sealedLog(t, audit.Options{})
		appendN(t, l, 3)
		zeroLast(t, path)
		appendN(t, l, 1)
		const want = "the damaged line(s) it records had been sealed (with key 3, destroyed once they were on the disk)"
		s, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("verify: %v, want %q", err, want)
		}
		ack(t, l, s)
		if _, err := verify(t, l, audit.VerifyOptions{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("after the ack, without a key: %v, want %q", err, want)
		}
	})
}

// TestRetentionBurstSpread: keep_files set on a log of many rotated files
// removes at most MaxRetainedPerRotation of them per rotation, one
// retention record each, so the append stays short and its sealing state
// moves on (a burst of more than MaxSealLag records in one append left
// the state "restored from an older copy" and every later record
// unsealed); the rest go at the next rotations, and the log verifies
// with its key throughout.
func TestRetentionBurstSpread(t *testing.T) {
	l, path, key := sealedLog(t, audit.Options{})
	n := audit.MaxRetainedPerRotation + 40
	for i := range n + 5 {
		if err := l.Append(context.Background(), rec(fmt.Sprint("c", i))); err != nil {
			t.Fatal(err)
		}
	}
	// As rotation with keep_files 0 leaves it: one record per rotated
	// file, the last ones in the current file.
	lines := readLines(t, path)
	for i, ln := range lines[:n] {
		if err := os.WriteFile(fmt.Sprintf("%s.%012d", path, i+1), ln, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeLines(t, path, lines[n:])
	var warns []error
	l2, err := audit.Open(path, audit.Options{RotateBytes: 1, KeepFiles: 1, SealState: l.SealStateForTest(),
		Warn: func(err error) { warns = append(warns, err) }})
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string, rotated int) {
		t.Helper()
		files, err := l2.Files()
		if err != nil {
			t.Fatal(err)
		}
		if len(files)-1 != rotated {
			t.Errorf("%s: %d rotated files, want %d", when, len(files)-1, rotated)
		}
		if _, err := audit.Verify(files, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}); err != nil {
			t.Errorf("%s: verify --key: %v", when, err)
		}
		if len(warns) > 0 {
			t.Errorf("%s: warnings %v", when, warns)
		}
	}
	r := rec("first-rotation")
	if err := l2.Append(context.Background(), r); err != nil || r.Seal == "" {
		t.Fatalf("append: %v, seal %q", err, r.Seal)
	}
	// n+1 rotated files (the current one just rotated), 256 removed.
	check("after the first rotation", n+1-audit.MaxRetainedPerRotation)
	r = rec("second-rotation")
	if err := l2.Append(context.Background(), r); err != nil || r.Seal == "" {
		t.Fatalf("append: %v, seal %q", err, r.Seal)
	}
	check("after the second rotation", 1)
}

// TestSealAfterUnsealedStretch: a state left one behind by a crash (the
// record written, the state not yet rewritten), then unsealed records
// (the state unusable for a while: readable by others), then the state
// usable again. The next record must be sealed past the last sealed one:
// it was sealed with that record's key again, which stayed on the node
// the whole stretch.
func TestSealAfterUnsealedStretch(t *testing.T) {
	l, _, _ := sealedLog(t, audit.Options{})
	appendN(t, l, 2)
	state := l.SealStateForTest()
	before := takeState(t, state)
	lastSealed := rec("last-sealed")
	if err := l.Append(context.Background(), lastSealed); err != nil {
		t.Fatal(err)
	}
	putState(t, state, before) // the crash
	if err := os.Chmod(state, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r := rec(fmt.Sprint("unsealed-", i))
		if err := l.Append(context.Background(), r); err != nil || r.Seal != "" || r.SealError == "" {
			t.Fatalf("append with the state readable by others: %v, seal %q, seal_error %q", err, r.Seal, r.SealError)
		}
	}
	if err := os.Chmod(state, 0o600); err != nil {
		t.Fatal(err)
	}
	r := rec("sealed-again")
	if err := l.Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	p0, err := audit.ParseSeal(lastSealed.Seal)
	if err != nil {
		t.Fatal(err)
	}
	p1, err := audit.ParseSeal(r.Seal)
	if err != nil {
		t.Fatalf("record after the stretch: %v (seal %q, seal_error %q)", err, r.Seal, r.SealError)
	}
	// The stretch is sealed late, with the keys that would have sealed
	// it: the record after it takes the key after those.
	if p1.ID != p0.ID || p1.Epoch != p0.Epoch+4 || len(r.LateSeals) != 3 {
		t.Errorf("record after the stretch sealed with %s epoch %d, %d late seals; the last sealed one before it with %s epoch %d: want epoch %d and 3 late seals", p1.ID, p1.Epoch, len(r.LateSeals), p0.ID, p0.Epoch, p0.Epoch+4)
	}
	for i, ls := range r.LateSeals {
		if q, err := audit.ParseSeal(ls); err != nil || q.ID != p0.ID || q.Epoch != p0.Epoch+1+uint64(i) {
			t.Errorf("late seal %d: %q (%v); want key %s epoch %d", i, ls, err, p0.ID, p0.Epoch+1+uint64(i))
		}
	}
}

// unsealedStretch makes a sealed log with checkpoints every `every`
// records (in the file it returns): a seal-start (seq 1, epoch 0), seq 2
// to 4 sealed (epoch 1 to 3), seq 5 and 6 unsealed, the state unusable
// while they were written (readable by others).
func unsealedStretch(t *testing.T, every int) (*audit.Log, string, audit.VerifyKey, string) {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "cp.jsonl")
	l, path, key := sealedLog(t, audit.Options{Checkpoints: &audit.CheckpointOptions{EveryRecords: every, File: cp}})
	appendN(t, l, 3)
	unusableFor(t, l, l.SealStateForTest(), 2)
	return l, path, key, cp
}

// TestLateSeals: records written unsealed for a while (the sealing
// state could not be read: a passing EMFILE or EIO, a state briefly
// readable by others or missing) failed verify for good, though sealing
// went on at the next append: nothing could acknowledge them. The next
// append with a usable state seals them late, with the keys that would
// have sealed them, and verify passes the log, saying so. Root on the
// node after T, who holds the state's key only, cannot pass an unsealed
// record in place of a sealed one off that way.
func TestLateSeals(t *testing.T) {
	ctx := context.Background()
	fails := func(t *testing.T, l *audit.Log, opts audit.VerifyOptions, want string) {
		t.Helper()
		if _, err := verify(t, l, opts); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("verify: %v; want a failure saying %q", err, want)
		}
	}
	t.Run("sealed late", func(t *testing.T) {
		l, _, key, cp := unsealedStretch(t, 2)
		_, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}})
		var prob *audit.Problem
		if !errors.As(err, &prob) || prob.Seq != 5 || !strings.Contains(prob.Reason, "not sealed, though the log is sealed since seq 1") || !strings.Contains(prob.Reason, "no record after it seals it late yet") {
			t.Errorf("verify with the stretch at the end: %v; want it to fail at seq 5, saying no record seals it late yet", err)
		}
		r := rec("after")
		if err := l.Append(ctx, r); err != nil || r.Seq != 7 || len(r.LateSeals) != 2 {
			t.Fatalf("append after the stretch: %v, seq %d, late seals %q", err, r.Seq, r.LateSeals)
		}
		appendN(t, l, 2)
		// The checkpoint made during the stretch (seq 6), not sealed, is
		// held against it.
		if s, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: readCheckpoints(t, cp)}); err != nil || s.CheckpointsLateSealed != 1 || len(s.IgnoredCheckpoints) != 0 {
			t.Errorf("verify with the checkpoints: %v, %+v; want one checkpoint of a record sealed late, none ignored", err, s)
		}
		for _, opts := range []audit.VerifyOptions{
			{Keys: []audit.VerifyKey{key}},
			{Keys: []audit.VerifyKey{key}, Checkpoints: readCheckpoints(t, cp)},
			{},
		} {
			s, err := verify(t, l, opts)
			if err != nil {
				t.Fatalf("verify (keys %d, checkpoints %d): %v", len(opts.Keys), len(opts.Checkpoints), err)
			}
			wantVerified := 0
			if opts.Keys != nil {
				wantVerified = 9
			}
			if s.Sealed != 9 || s.SealsVerified != wantVerified || len(s.LateSealed) != 1 || s.LateSealed[0].FirstSeq != 5 || s.LateSealed[0].LastSeq != 6 || s.LateSealed[0].By != 7 || !strings.Contains(s.LateSealed[0].Reason, "readable by") {
				t.Errorf("summary (keys %d, checkpoints %d): sealed %d, verified %d, late %+v; want 9 sealed, %d verified, seq 5..6 sealed late by seq 7", len(opts.Keys), len(opts.Checkpoints), s.Sealed, s.SealsVerified, s.LateSealed, wantVerified)
			}
		}
		if cps := readCheckpoints(t, cp); len(cps) == 0 || cps[len(cps)-1].Seq != 9 || cps[len(cps)-1].CheckpointSeal == "" {
			t.Errorf("checkpoints %+v; want the last of seq 9, sealed", cps)
		}
		// A collector's copy, as shipped.
		files, err := l.Files()
		if err != nil {
			t.Fatal(err)
		}
		if s, err := audit.Verify(files, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Shipped: true}); err != nil || len(s.LateSealed) != 1 {
			t.Errorf("verify as shipped: %v, late %+v", err, s)
		}
		lines := readLines(t, l.Path())
		// A copy that starts inside the stretch (--partial, or the
		// start of a chain whose older files retention removed).
		part := filepath.Join(t.TempDir(), "audit.jsonl")
		writeLines(t, part, lines[5:])
		s, err := audit.Verify([]string{part}, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Partial: true})
		if err != nil || s.FirstSealed != 6 || s.Sealed != 4 || s.SealsVerified != 4 || len(s.LateSealed) != 1 || s.LateSealed[0].FirstSeq != 6 {
			t.Errorf("verify from seq 6: %v, %+v; want seq 6 sealed late by seq 7, 4 sealed", err, s)
		}
		// A late seal is the record's: changed, the record's seal fails.
		// (Rehashed, each record keeping its seal.)
		var seals []string
		for _, line := range lines {
			seals = append(seals, sealOf(t, line))
		}
		ls := r.LateSeals[0]
		flipped := ls[:len(ls)-1] + map[bool]string{true: "1", false: "0"}[ls[len(ls)-1] == '0']
		lines[6] = bytes.Replace(lines[6], []byte(ls), []byte(flipped), 1)
		keep := func(seq uint64, _ string) string { return seals[seq-1] }
		writeLines(t, l.Path(), append(lines[:6], chainFrom(lineHash(lines[5]), lines[6:], 7, keep)...))
		fails(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}, "seq 7: its late seal of seq 5 does not match that record")
		// Without the key, the record's own seal is not checked either.
		if _, err := verify(t, l, audit.VerifyOptions{}); err != nil {
			t.Errorf("verify without the key: %v", err)
		}
	})
	t.Run("the last sealed record replaced by an unsealed one", func(t *testing.T) {
		// Root after T: seq 4 (epoch 3, its key gone) written again
		// unsealed, saying the state was unreadable; the next append
		// cannot seal it late (the state is past its key).
		l, path, key, _ := unsealedStretch(t, 2)
		lines := readLines(t, path)
		last := audittest.Records(t, path, "")[2]
		r := rec("root's")
		r.Seq, r.SealError = 4, "sealing state: open: too many open files"
		writeLines(t, path, append(lines[:3], chainFrom(last.Hash, [][]byte{recordLine(t, r)}, 4, nil)...))
		after := rec("after")
		if err := l.Append(ctx, after); err != nil || len(after.LateSeals) != 0 {
			t.Fatalf("append after the replaced record: %v, late seals %q", err, after.LateSeals)
		}
		fails(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}, "not sealed, though the log is sealed since seq 1: sealing state: open: too many open files (seq 5, the sealed record after it, does not seal it late, and is sealed with key 4 after key 2: 1 key(s) sealed no record here (records removed))")
	})
	t.Run("late seals forged with the state's keys", func(t *testing.T) {
		l, path, key, _ := unsealedStretch(t, 2)
		lines := readLines(t, path)
		forge := stolenKey(t, l.SealStateForTest()) // epoch 4
		last := audittest.Records(t, path, "")[2]
		r := rec("root's")
		r.Seq, r.SealError = 4, "sealing state: open: too many open files"
		replaced := chainFrom(last.Hash, [][]byte{recordLine(t, r)}, 4, nil)
		h := lineHash(replaced[0])
		carrier := rec("carrier")
		carrier.Seq, carrier.LateSeals = 5, []string{forge(4, h)}
		writeLines(t, path, append(append(lines[:3], replaced...), chainFrom(h, [][]byte{recordLine(t, carrier)}, 5, forge)...))
		fails(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}, "keys sealed no record (records removed, or sealed records replaced by unsealed ones)")
	})
	t.Run("late seals after a sealed record", func(t *testing.T) {
		l, path, key, _ := unsealedStretch(t, 2)
		lines := readLines(t, path)
		forge := stolenKey(t, l.SealStateForTest())
		carrier := rec("carrier")
		carrier.Seq, carrier.LateSeals = 5, []string{forge(4, lineHash(lines[3]))}
		writeLines(t, path, append(lines[:4], chainFrom(lineHash(lines[3]), [][]byte{recordLine(t, carrier)}, 5, forge)...))
		fails(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}, "seals 1 record(s) late, but the record before it is sealed")
	})
	t.Run("the stretch changed before it was sealed late, its checkpoints shipped", func(t *testing.T) {
		// Root at T, before the next append: the stretch's checkpoints
		// (not sealed: the state was not usable) were set aside with
		// the key given, and the change passed.
		cp := filepath.Join(t.TempDir(), "cp.jsonl")
		l, path, key := sealedLog(t, audit.Options{Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: cp}})
		appendN(t, l, 3)
		unusableFor(t, l, l.SealStateForTest(), 3) // seq 5 to 7
		shipped := readCheckpoints(t, cp)
		lines := readLines(t, path)
		lines[5] = bytes.Replace(lines[5], []byte(`"verdict":"deny"`), []byte(`"verdict":"allow"`), 1)
		writeLines(t, path, append(lines[:5], chainFrom(lineHash(lines[4]), lines[5:], 6, nil)...))
		if r := rec("after"); l.Append(ctx, r) != nil || len(r.LateSeals) != 3 {
			t.Fatalf("append after the change: late seals %q", r.LateSeals)
		}
		for _, opts := range []audit.VerifyOptions{{Checkpoints: shipped}, {Keys: []audit.VerifyKey{key}, Checkpoints: shipped}} {
			fails(t, l, opts, "seq 6: the record differs from the checkpoint of ")
		}
		fails(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: shipped}, "which is not sealed: it was made while the record was unsealed, before a later record sealed it late")
		// A third review: then one record naming another host (root
		// holds the key) had the stretch's checkpoints set aside as
		// another host's, and verify passed with the key.
		r := rec("renamed")
		r.Host = "other-host"
		if err := l.Append(ctx, r); err != nil || r.Seal == "" {
			t.Fatalf("append under another host: %v, seal %q", err, r.Seal)
		}
		for _, opts := range []audit.VerifyOptions{{Keys: []audit.VerifyKey{key}, Checkpoints: shipped}, {Keys: []audit.VerifyKey{key}, Checkpoints: shipped, CheckpointLog: path}} {
			fails(t, l, opts, "seq 6: the record differs from the checkpoint of ")
		}
	})
	t.Run("a checkpoint made of a late seal, its seq changed", func(t *testing.T) {
		// Anyone who can add a line where checkpoints are collected:
		// a record's hash and its late seal at another seq failed the
		// intact log as sealed again; one of a record's own seal is set
		// aside as altered.
		l, path, key, _ := unsealedStretch(t, 2)
		r := rec("after")
		if err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 4)
		recs := audittest.Records(t, path, "")
		last := recs[len(recs)-1]
		genuine := audit.Checkpoint{Host: last.Host, Log: path, Seq: last.Seq, Hash: last.Hash, Seal: last.Seal, Time: "2026-12-07T18:00:01Z"}
		forged := audit.Checkpoint{Host: last.Host, Log: path, Seq: 10, Hash: recs[4].Hash, Seal: r.LateSeals[0], Time: "2026-12-07T18:00:00Z"}
		s, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: []audit.Checkpoint{genuine, forged}})
		if err != nil || len(s.IgnoredCheckpoints) != 1 || s.IgnoredCheckpoints[0].Reason != audit.CheckpointAltered {
			t.Errorf("verify: %v, ignored %+v; want the made-up checkpoint set aside as altered", err, s)
		}
	})
	t.Run("an older record again after the stretch", func(t *testing.T) {
		// A crash's stale block: the append took its seal for the last
		// sealed record's, and sealed nothing late.
		l, path, key, _ := unsealedStretch(t, 2)
		lines := readLines(t, path)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(lines[2]); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := l.Append(ctx, rec("after")); err != nil {
			t.Fatal(err)
		}
		damage := 0
		for _, r := range audittest.Records(t, path, "") {
			if r.Stage == audit.StageDamaged {
				if damage++; len(r.LateSeals) != 2 {
					t.Fatalf("the damage record of the stale block: late seals %q; want 2 (seq 5 and 6)", r.LateSeals)
				}
			}
		}
		if damage != 1 {
			t.Fatalf("%d damage records; want 1, of the stale block", damage)
		}
		for _, d := range audittest.Records(t, path, "") {
			if d.Stage == audit.StageDamaged {
				if err := l.Append(ctx, &audit.Record{Source: audit.SourceOperator, Stage: audit.StageAck, Ref: &audit.Ref{Seq: d.Seq, Stage: d.Stage, Hash: d.Hash}, Note: "a crash"}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}); err != nil {
			t.Errorf("verify: %v", err)
		}
	})
	t.Run("records cut after the stretch was sealed late", func(t *testing.T) {
		var warns []string
		cp := filepath.Join(t.TempDir(), "cp.jsonl")
		l, path, key := sealedLog(t, audit.Options{Warn: func(err error) { warns = append(warns, err.Error()) }, Checkpoints: &audit.CheckpointOptions{EveryRecords: 100, File: cp}})
		appendN(t, l, 3)
		unusableFor(t, l, l.SealStateForTest(), 2)
		appendN(t, l, 3) // seq 7 seals 5 and 6 late
		writeLines(t, path, readLines(t, path)[:6])
		warns = nil
		if r := rec("after"); l.Append(ctx, r) != nil || len(r.LateSeals) != 0 {
			t.Fatalf("append after the cut: late seals %q", r.LateSeals)
		}
		if len(warns) != 1 || !strings.Contains(warns[0], "so seq 5 to 6, written unsealed since, cannot be sealed late: verify fails at seq 5") {
			t.Errorf("warnings %q; want one saying the stretch cannot be sealed late", warns)
		}
		fails(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}, "(seq 7, the sealed record after it, does not seal it late, and is sealed with key 9 after key 3: 5 key(s) sealed no record here (records removed))")
	})
	t.Run("records unsealed because sealing stopped", func(t *testing.T) {
		// They stay unsealed (until seal-init --replace) also when a
		// record unsealed for a passing reason follows them and the
		// state is put right.
		l, _, _ := sealedLog(t, audit.Options{})
		appendN(t, l, 3)
		state := l.SealStateForTest()
		good := takeState(t, state)
		// Another key's state past epoch 0: it cannot be trusted.
		other := filepath.Join(t.TempDir(), "other.seal")
		if _, err := audit.InitSeal(other, false); err != nil {
			t.Fatal(err)
		}
		audit.BurnEpoch(t, other)
		putState(t, state, takeState(t, other))
		r := rec("stopped")
		if err := l.Append(ctx, r); err != nil || !strings.HasPrefix(r.SealError, "sealing stopped until seal-init --replace: ") {
			t.Fatalf("append with a state that cannot be trusted: %v, seal_error %q", err, r.SealError)
		}
		putState(t, state, good)
		unusableFor(t, l, state, 1)
		if r := rec("after"); l.Append(ctx, r) != nil || len(r.LateSeals) != 0 || r.Seal == "" {
			t.Errorf("append with the state put right: seal %q, late seals %q; want sealed, nothing sealed late", r.Seal, r.LateSeals)
		}
	})
}

// TestSealStoppedWhenUncheckable: a state left behind by a crash, then an
// unsealed stretch longer than the search for the last sealed record
// reaches (or whose last sealed record retention removed): the state
// cannot be checked against the log, so records stay unsealed, saying
// so, until seal-init --replace; it sealed on with whatever key it held,
// the last sealed record's among them.
func TestSealStoppedWhenUncheckable(t *testing.T) {
	l, _, _ := sealedLog(t, audit.Options{})
	appendN(t, l, 1)
	state := l.SealStateForTest()
	before := takeState(t, state)
	appendN(t, l, 1)
	putState(t, state, before) // the crash
	unusableFor(t, l, state, audit.MaxSealSearch)
	for i := range 2 {
		r := rec(fmt.Sprint("after-", i))
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if r.Seal != "" || !strings.HasPrefix(r.SealError, "sealing stopped until seal-init --replace: ") {
			t.Errorf("record %d after the stretch: seal %q, error %q", i, r.Seal, r.SealError)
		}
	}
	if _, _, err := l.StartSealing(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	r := rec("new-key")
	if err := l.Append(context.Background(), r); err != nil || r.Seal == "" {
		t.Errorf("record after seal-init --replace: %v, seal %q, error %q", err, r.Seal, r.SealError)
	}
}

// TestIntroduceOnlyAtEpochZero: a state whose key sealed records before
// (an older state put back after seal-init --replace, or a log moved
// aside with its state kept) was introduced again at its later epoch
// with a seal-start record: its keys sealed records twice, and verify
// failed on the seal-start record without any seal_error saying why.
// Records stay unsealed now, saying why, until seal-init --replace.
func TestIntroduceOnlyAtEpochZero(t *testing.T) {
	ctx := context.Background()
	t.Run("older state put back", func(t *testing.T) {
		l, _, _ := sealedLog(t, audit.Options{})
		appendN(t, l, 2)
		old := takeState(t, l.SealStateForTest())
		appendN(t, l, 1)
		if _, _, err := l.StartSealing(ctx, true); err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 1)
		putState(t, l.SealStateForTest(), old)
		for i := range 2 {
			r := rec(fmt.Sprint("after-", i))
			if err := l.Append(ctx, r); err != nil {
				t.Fatal(err)
			}
			if r.Seal != "" || !strings.HasPrefix(r.SealError, "sealing stopped until seal-init --replace: ") || !strings.Contains(r.SealError, "a key that sealed records before") {
				t.Errorf("record %d after an older state was put back: seal %q, error %q", i, r.Seal, r.SealError)
			}
		}
	})
	t.Run("log moved aside", func(t *testing.T) {
		l, path, _ := sealedLog(t, audit.Options{})
		appendN(t, l, 3)
		if err := os.Rename(path, path+".aside"); err != nil {
			t.Fatal(err)
		}
		r := rec("fresh")
		if err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
		if r.Seal != "" || !strings.HasPrefix(r.SealError, "sealing stopped until seal-init --replace: ") {
			t.Errorf("first record of a fresh log with a used state: seal %q, error %q", r.Seal, r.SealError)
		}
		if _, _, err := l.StartSealing(ctx, true); err != nil {
			t.Fatal(err)
		}
		r = rec("new-key")
		if err := l.Append(ctx, r); err != nil || r.Seal == "" {
			t.Errorf("after seal-init --replace: %v, seal %q, error %q", err, r.Seal, r.SealError)
		}
	})
}

// TestSealStoppedThenNewKey: sealing stopped (an older state put back),
// then seal-init --replace stopped after writing its new state and
// before its seal-start record (a crash): the next append introduces the
// new key, as for any key no record introduced; it took the stop's old
// reason and wrote unsealed.
func TestSealStoppedThenNewKey(t *testing.T) {
	for _, stretch := range []int{0, audit.MaxSealSearch + 5} {
		t.Run(fmt.Sprint("stopped for ", stretch, " records"), func(t *testing.T) { sealStoppedThenNewKey(t, stretch) })
	}
}

func sealStoppedThenNewKey(t *testing.T, stretch int) {
	ctx := context.Background()
	l, _, _ := sealedLog(t, audit.Options{})
	appendN(t, l, 3)
	state := l.SealStateForTest()
	old := takeState(t, state)
	appendN(t, l, 1)
	if _, _, err := l.StartSealing(ctx, true); err != nil {
		t.Fatal(err)
	}
	putState(t, state, old)
	r := rec("stopped")
	if err := l.Append(ctx, r); err != nil || !strings.HasPrefix(r.SealError, "sealing stopped until seal-init --replace: ") {
		t.Fatalf("append after an older state was put back: %v, seal %q, error %q", err, r.Seal, r.SealError)
	}
	appendN(t, l, stretch)                // stopped, unsealed
	k, err := audit.InitSeal(state, true) // the crash: no seal-start record
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		r := rec(fmt.Sprint("after-", i))
		if err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
		p, err := audit.ParseSeal(r.Seal)
		if err != nil || p.ID != k.ID {
			t.Errorf("record %d after the new state: seal %q (%v), error %q; want sealed with %s", i, r.Seal, err, r.SealError, k.ID)
		}
	}
}

// epochZeroLog returns a log with a sealing state just made at epoch 0
// (no record introduces it yet), the state's path, its key and bytes.
func epochZeroLog(t *testing.T) (*audit.Log, string, audit.VerifyKey, []byte) {
	t.Helper()
	dir := t.TempDir()
	state := filepath.Join(dir, "state", "audit.seal")
	l, err := audit.Open(filepath.Join(dir, "audit.jsonl"), audit.Options{SealState: state})
	if err != nil {
		t.Fatal(err)
	}
	key, err := audit.InitSeal(state, false)
	if err != nil {
		t.Fatal(err)
	}
	zero := takeState(t, state)
	return l, state, key, zero
}

// TestEpochZeroKeyOnce: a state at epoch 0 is introduced only while no
// record of the log carries its key. An epoch-0 copy put back (after the
// log went far on, or after seal-init --replace moved it to another key),
// or left by a crash before its first commit and then checked against
// nothing, sealed again with keys that had sealed records (after a stop,
// from the second append). A log never sealed, whose new state was
// unreadable for an append, introduces it once readable.
func TestEpochZeroKeyOnce(t *testing.T) {
	ctx := context.Background()
	reused := func(t *testing.T, l *audit.Log, id audit.SealID) {
		t.Helper()
		used := map[uint64]int{}
		for r, err := range audit.Records(l.Path()) {
			if err != nil {
				t.Fatal(err)
			}
			if p, err := audit.ParseSeal(r.Seal); err == nil && p.ID == id {
				if used[p.Epoch]++; used[p.Epoch] > 1 {
					t.Errorf("key %s epoch %d sealed two records (seq %d)", id, p.Epoch, r.Seq)
				}
			}
		}
	}
	stopped := func(t *testing.T, l *audit.Log, n int) {
		t.Helper()
		for i := range n {
			r := rec(fmt.Sprint("after-", i))
			if err := l.Append(ctx, r); err != nil {
				t.Fatal(err)
			}
			if r.Seal != "" || !strings.HasPrefix(r.SealError, "sealing stopped until seal-init --replace: ") {
				t.Errorf("append %d: seal %q, error %q; want it unsealed, sealing stopped", i, r.Seal, r.SealError)
			}
		}
	}
	t.Run("epoch-0 copy put back far behind", func(t *testing.T) {
		l, state, key, zero := epochZeroLog(t)
		appendN(t, l, 2)
		lines := readLines(t, l.Path())
		last := len(lines) - 1
		p, _ := audit.ParseSeal(sealOf(t, lines[last]))
		lines[last] = bytes.Replace(lines[last], []byte("."+uitoa(p.Epoch)+"."), []byte(fmt.Sprintf(".%d.", audit.MaxSealLag+2)), 1)
		writeLines(t, l.Path(), lines)
		putState(t, state, zero)
		stopped(t, l, 3)
		reused(t, l, key.ID)
	})
	t.Run("crash at epoch 0, then a long stretch", func(t *testing.T) {
		l, state, key, zero := epochZeroLog(t)
		appendN(t, l, 1)
		putState(t, state, zero) // the crash
		unusableFor(t, l, state, audit.MaxSealSearch)
		stopped(t, l, 3)
		reused(t, l, key.ID)
	})
	t.Run("epoch-0 copy put back after replace", func(t *testing.T) {
		l, state, key, zero := epochZeroLog(t)
		appendN(t, l, 2)
		if _, _, err := l.StartSealing(ctx, true); err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 1)
		putState(t, state, zero)
		stopped(t, l, 2)
		reused(t, l, key.ID)
	})
	t.Run("retention removed its records", func(t *testing.T) {
		l, state, key, zero := epochZeroLog(t)
		l2, err := audit.Open(l.Path(), audit.Options{SealState: state, RotateBytes: 3000, KeepFiles: 1})
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, l2, 1)
		putState(t, state, zero)      // the crash
		unusableFor(t, l2, state, 20) // rotations remove the file of its records
		stopped(t, l2, 2)
		reused(t, l2, key.ID)
	})
	t.Run("never sealed, first line zeroed, state unreadable once", func(t *testing.T) {
		l, state, _, _ := epochZeroLog(t)
		unusableFor(t, l, state, 3)
		lines := readLines(t, l.Path())
		lines[0] = append(make([]byte, len(lines[0])-1), '\n') // a crash zeroed it
		writeLines(t, l.Path(), lines)
		if r := rec("readable"); l.Append(ctx, r) != nil || r.Seal == "" {
			t.Errorf("append with the state readable again: seal %q, error %q", r.Seal, r.SealError)
		}
	})
	t.Run("never sealed, state unreadable once", func(t *testing.T) {
		l, state, key, _ := epochZeroLog(t)
		unusableFor(t, l, state, 1)
		r := rec("readable")
		if err := l.Append(ctx, r); err != nil || r.Seal == "" {
			t.Fatalf("append with the state readable again: %v, seal %q, error %q", err, r.Seal, r.SealError)
		}
		if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}); err != nil {
			t.Errorf("verify: %v", err)
		}
	})
}

// TestReplaceAfterCrashDamage: a crash damaged the last sealed line (its
// key not yet destroyed), then seal-init --replace: its append wrote the
// damage record after its seal-start, sealed with the new key, which
// verify cannot judge damaged sealed lines by: the log failed for good.
// The damage record is written first now, with the key before.
func TestReplaceAfterCrashDamage(t *testing.T) {
	ctx := context.Background()
	l, path, keyA := sealedLog(t, audit.Options{})
	appendN(t, l, 2)
	state := l.SealStateForTest()
	before := takeState(t, state)
	appendN(t, l, 1)
	lines := readLines(t, path)
	lines[len(lines)-1] = append(bytes.Repeat([]byte{0}, len(lines[len(lines)-1])-1), '\n')
	writeLines(t, path, lines)
	putState(t, state, before) // the crash
	keyB, _, err := l.StartSealing(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	audittest.AckDamage(t, l, path)
	if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{keyA, keyB}}); err != nil {
		t.Errorf("verify after a crash, seal-init --replace and an ack: %v", err)
	}
}

// TestReplaceFlushOnlySealed: seal-init --replace writes the records the
// log owes before its seal-start with the state replaced only in a log
// sealed before. In a log never sealed, with a state no record
// introduced, they introduced and were sealed with the key being
// replaced: they go after the seal-start record, with the new key. In a
// sealed log whose state is missing they go before it, unsealed, saying
// why, with the seal-end record: verify fails there, as after any
// append without the state (they went after the seal-start, and the
// log verified: see TestCutThenSealInit).
func TestReplaceFlushOnlySealed(t *testing.T) {
	ctx := context.Background()
	t.Run("state missing", func(t *testing.T) {
		l, path, keyA := sealedLog(t, audit.Options{})
		appendN(t, l, 2)
		tear(t, path, []byte(`{"seq":4,"sta`))
		if err := os.Remove(l.SealStateForTest()); err != nil {
			t.Fatal(err)
		}
		keyB, _, err := l.StartSealing(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 1)
		if stages, want := stagesOf(t, path), []string{audit.StageSealStart, audit.StageCreateRuntime, audit.StageCreateRuntime, audit.StageTornTail, audit.StageSealEnd, audit.StageSealStart, audit.StageCreateRuntime}; !slices.Equal(stages, want) {
			t.Errorf("records %v, want %v", stages, want)
		}
		var p *audit.Problem
		if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{keyA, keyB}}); !errors.As(err, &p) || p.Seq != 4 || !strings.Contains(p.Reason, "not sealed") || !strings.Contains(p.Reason, "is missing") {
			t.Errorf("verify: %v; want it to fail at seq 4, not sealed, the state missing", err)
		}
	})
	t.Run("state no record introduced", func(t *testing.T) {
		// An unsealed log, then a seal-init that stopped before its
		// seal-start record (a crash tore it).
		l, state := newLog(t, audit.Options{})
		appendN(t, l, 2)
		l, err := audit.Open(l.Path(), audit.Options{SealState: state + ".seal"})
		if err != nil {
			t.Fatal(err)
		}
		keyA, err := audit.InitSeal(state+".seal", false)
		if err != nil {
			t.Fatal(err)
		}
		tear(t, l.Path(), []byte(`{"seq":3,"sta`))
		keyB, _, err := l.StartSealing(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		for r, err := range audit.Records(l.Path()) {
			if err != nil {
				t.Fatal(err)
			}
			if p, err := audit.ParseSeal(r.Seal); err == nil && p.ID == keyA.ID {
				t.Errorf("seq %d (%s) sealed with the key replaced", r.Seq, r.Stage)
			}
		}
		if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{keyB}}); err != nil {
			t.Errorf("verify with the new key: %v", err)
		}
	})
}

// takeState returns the bytes of the sealing state at state, for
// [putState] to put back.
func takeState(t *testing.T, state string) []byte {
	t.Helper()
	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// putState writes data to the sealing state at state: the state as it
// was before an append (a crash before its commit), or an older copy put
// back.
func putState(t *testing.T, state string, data []byte) {
	t.Helper()
	if err := os.WriteFile(state, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// unusableFor makes the sealing state at state unusable (readable by
// others) for n appends to l, which are written unsealed, saying why,
// then usable again.
func unusableFor(t *testing.T, l *audit.Log, state string, n int) {
	t.Helper()
	if err := os.Chmod(state, 0o644); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, n)
	if err := os.Chmod(state, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReplaceFlushShipsCheckpoint: the records seal-init --replace writes
// first (here the retention records of the rotation it makes) emit their
// checkpoint: it was recorded as the last one emitted and never written
// to the checkpoints file (nor shipped), and the append was not counted
// in the metrics.
func TestReplaceFlushShipsCheckpoint(t *testing.T) {
	cp := filepath.Join(t.TempDir(), "cp.jsonl")
	l, path, _ := sealedLog(t, audit.Options{RotateBytes: 4096, KeepFiles: 1, Checkpoints: &audit.CheckpointOptions{EveryRecords: 1000, File: cp}})
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("the log never reached a rotation that removes a file")
		}
		appendN(t, l, 1)
		files, _ := l.Files()
		if fi, err := os.Stat(path); err == nil && fi.Size() >= 4096 && len(files) == 2 {
			break // the next append rotates and removes a file
		}
	}
	before := readCheckpoints(t, cp)
	if _, _, err := l.StartSealing(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	var retention uint64
	files, _ := l.Files()
	for r, err := range audit.Records(files...) {
		if err != nil {
			t.Fatal(err)
		}
		if r.Stage == audit.StageRetention {
			retention = r.Seq
		}
	}
	after := readCheckpoints(t, cp)
	if retention == 0 || len(after) == len(before) || after[len(after)-1].Seq < retention {
		t.Errorf("retention record at seq %d; checkpoints before %d, after %+v: want one at or after it", retention, len(before), after)
	}
}

// TestCutThenSealInit: root on the node after T cuts the records after
// the last checkpoint shipped, and the next append is seal-init, as an
// operator runs it after an incident. The state replaced had moved on
// past the records cut, which the next append with it shows (keys that
// sealed no record); seal-init started the new key right after the last
// record left, and verify passed with both keys and every checkpoint.
// The key replaced now ends with a seal-end record sealed with the state
// as it is: its epoch shows the cut, a state put in its place (missing,
// of a key of root's own, or at the right epoch without the key) fails
// verify at it too.
func TestCutThenSealInit(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		replace bool
		// state does to the sealing state what root does after the cut.
		state func(t *testing.T, state string, last audit.ParsedSeal)
		want  string
	}{
		{"replace", true, nil, "2 key(s) sealed no record (records removed from the end before seal-init"},
		{"state removed, then seal-init", false, func(t *testing.T, state string, _ audit.ParsedSeal) {
			if err := os.Remove(state); err != nil {
				t.Fatal(err)
			}
		}, "not sealed, though the log is sealed since seq 1: sealing state " + "%s is missing"},
		{"state removed, then replace", true, func(t *testing.T, state string, _ audit.ParsedSeal) {
			if err := os.Remove(state); err != nil {
				t.Fatal(err)
			}
		}, "is missing"},
		{"a key of root's own", true, func(t *testing.T, state string, _ audit.ParsedSeal) {
			if _, err := audit.InitSeal(state, true); err != nil {
				t.Fatal(err)
			}
		}, "for which no verification key was given"},
		{"the key's next epoch, another key", true, func(t *testing.T, state string, last audit.ParsedSeal) {
			var k [32]byte
			k[0] = 1
			putState(t, state, []byte(fmt.Sprintf("nsrel-seal 1 %s %020d %s\n", last.ID, last.Epoch+1, hex.EncodeToString(k[:]))))
		}, "the seal does not match the record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var warns []string
			cp := filepath.Join(t.TempDir(), "cp.jsonl")
			l, path, k1 := sealedLog(t, audit.Options{Host: "node-a", Warn: func(err error) { warns = append(warns, err.Error()) },
				Checkpoints: &audit.CheckpointOptions{EveryRecords: 5, File: cp}})
			appendN(t, l, 12) // seq 1 to 13; checkpoints at 1, 6 and 11
			cps := readCheckpoints(t, cp)
			if last := cps[len(cps)-1].Seq; last != 11 {
				t.Fatalf("the last checkpoint names seq %d, want 11", last)
			}
			lines := readLines(t, path)
			writeLines(t, path, lines[:11]) // root after T: seq 12 and 13 cut
			if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{k1}, Checkpoints: cps}); err != nil {
				t.Fatalf("after the cut, past the last checkpoint: %v", err)
			}
			p, err := audit.ParseSeal(sealOf(t, lines[10]))
			if err != nil {
				t.Fatal(err)
			}
			if tc.state != nil {
				tc.state(t, l.SealStateForTest(), p)
			}
			k2, _, err := l.StartSealing(ctx, tc.replace)
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, l, 3)
			var stages []string
			for r, err := range audit.Records(path) {
				if err != nil {
					t.Fatal(err)
				}
				if r.Seq > 11 {
					stages = append(stages, r.Stage)
				}
			}
			if !slices.Contains(stages, audit.StageSealEnd) || stages[len(stages)-4] != audit.StageSealStart {
				t.Errorf("records after the cut: %v; want a seal-end, then the seal-start and 3 records", stages)
			}
			want := tc.want
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, l.SealStateForTest())
			}
			var prob *audit.Problem
			_, err = verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{k1, k2}, Checkpoints: readCheckpoints(t, cp)})
			if !errors.As(err, &prob) || !strings.Contains(prob.Reason, want) {
				t.Errorf("verify after the cut and seal-init: %v; want it to fail: %s", err, want)
			}
			if tc.state == nil && (len(warns) == 0 || !strings.Contains(strings.Join(warns, "\n"), "2 key(s) past the log's last record sealed with key "+k1.ID.String())) {
				t.Errorf("warnings %q; want one saying the state was 2 keys past the log", warns)
			}
		})
	}
}

// TestSealInitKeepsLegitFlows: the seal-end record seal-init writes
// before its seal-start keeps a healthy log verifying: seal-init
// --replace, also after a crash left a state behind the log, and after a
// seal-init that stopped between its new state and its seal-start record
// (the next append, or the next seal-init --replace, introduces that
// key), with every key it printed.
func TestSealInitKeepsLegitFlows(t *testing.T) {
	ctx := context.Background()
	cr := audit.StageCreateRuntime
	t.Run("replace", func(t *testing.T) {
		l, path, k1 := sealedLog(t, audit.Options{})
		appendN(t, l, 2)
		k2, _, err := l.StartSealing(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 1)
		if got, want := stagesOf(t, path), []string{audit.StageSealStart, cr, cr, audit.StageSealEnd, audit.StageSealStart, cr}; !slices.Equal(got, want) {
			t.Errorf("records %v, want %v", got, want)
		}
		if s, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{k1, k2}}); err != nil || s.SealsVerified != 6 {
			t.Errorf("verify: %+v, %v", s, err)
		}
	})
	t.Run("replace after a crash left the state behind", func(t *testing.T) {
		l, _, k1 := sealedLog(t, audit.Options{})
		appendN(t, l, 2)
		state := l.SealStateForTest()
		before := takeState(t, state)
		appendN(t, l, 1)
		putState(t, state, before) // the crash
		k2, _, err := l.StartSealing(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 1)
		if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{k1, k2}}); err != nil {
			t.Errorf("verify: %v", err)
		}
	})
	// seal-init stopped after its seal-end record and its new state,
	// before its seal-start record.
	stopped := func(t *testing.T) (*audit.Log, string, audit.VerifyKey, audit.VerifyKey) {
		t.Helper()
		l, path, k1 := sealedLog(t, audit.Options{})
		appendN(t, l, 2)
		if _, _, err := l.StartSealing(ctx, true); err != nil {
			t.Fatal(err)
		}
		lines := readLines(t, path)
		writeLines(t, path, lines[:len(lines)-1]) // its seal-start record
		k2, err := audit.InitSeal(l.SealStateForTest(), true)
		if err != nil {
			t.Fatal(err)
		}
		return l, path, k1, k2
	}
	t.Run("seal-init stopped, then an append", func(t *testing.T) {
		l, path, k1, k2 := stopped(t)
		appendN(t, l, 1)
		if got, want := stagesOf(t, path), []string{audit.StageSealStart, cr, cr, audit.StageSealEnd, audit.StageSealStart, cr}; !slices.Equal(got, want) {
			t.Errorf("records %v, want %v", got, want)
		}
		if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{k1, k2}}); err != nil {
			t.Errorf("verify: %v", err)
		}
	})
	t.Run("seal-init stopped, then seal-init --replace", func(t *testing.T) {
		l, path, k1, k2 := stopped(t)
		k3, _, err := l.StartSealing(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 1)
		if got, want := stagesOf(t, path), []string{audit.StageSealStart, cr, cr, audit.StageSealEnd, audit.StageSealStart, audit.StageSealEnd, audit.StageSealStart, cr}; !slices.Equal(got, want) {
			t.Errorf("records %v, want %v", got, want)
		}
		if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{k1, k2, k3}}); err != nil {
			t.Errorf("verify: %v", err)
		}
	})
}

// TestSealInitUnwritableStateWritesNothing checks that a seal-init
// --replace whose state cannot be written over (of the wrong mode, a
// directory) fails before it writes anything: it wrote the seal-end
// record first, unsealed, which failed verify for good, and then
// failed.
func TestSealInitUnwritableStateWritesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, state string)
	}{
		{"mode 0644", func(t *testing.T, state string) {
			if err := os.Chmod(state, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"a directory", func(t *testing.T, state string) {
			if err := os.Remove(state); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(state, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, path, _ := sealedLog(t, audit.Options{})
			appendN(t, l, 2)
			tc.make(t, l.SealStateForTest())
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := l.StartSealing(context.Background(), true); err == nil {
				t.Fatal("seal-init --replace over an unwritable state succeeded")
			}
			if after, err := os.ReadFile(path); err != nil || !bytes.Equal(after, before) {
				t.Errorf("the failed seal-init changed the log (%v): %d bytes, then %d", err, len(before), len(after))
			}
		})
	}
}

// TestSealInitFullDisk: a seal-init whose write of the new sealing state
// failed (a full disk) left the file it had created, empty: every append
// after it was unsealed (the state "not an nsrel sealing state"), and
// seal-init, once the disk had room, refused to start ("sealing state
// exists"). The state is removed: the log goes on as it was, and
// seal-init succeeds then (a review found it).
func TestSealInitFullDisk(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	smallFS(t, stateDir)
	state := filepath.Join(stateDir, "audit.seal")
	l, err := audit.Open(filepath.Join(dir, "audit.jsonl"), audit.Options{SealState: state})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := l.Append(ctx, &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "before"}); err != nil {
		t.Fatal(err)
	}
	fill := filepath.Join(stateDir, "fill")
	fillFS(t, fill, 512)
	if _, _, err := l.StartSealing(ctx, false); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("seal-init on a full disk: %v; want ENOSPC", err)
	}
	if _, err := os.Lstat(state); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the sealing state after a seal-init that failed: %v; want none", err)
	}
	if err := l.Append(ctx, &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "unsealed"}); err != nil {
		t.Fatal(err)
	}
	if r := audittest.Records(t, l.Path(), "unsealed")[0]; r.SealError != "" {
		t.Errorf("a record after the seal-init that failed: seal_error %q; want none (the log unsealed as before)", r.SealError)
	}
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	key, _, err := l.StartSealing(ctx, false)
	if err != nil {
		t.Fatalf("seal-init once the disk has room: %v", err)
	}
	if err := l.Append(ctx, &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "sealed"}); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify([]string{l.Path()}, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}); err != nil {
		t.Errorf("verify with the key: %v", err)
	}
}

// TestSealInitRefusedLogShowsNoKey: a seal-init whose log an append
// refuses (in a directory others may write, or a directory itself)
// showed the verification key, "shown once", and then failed: the
// operator held a key that sealed nothing. It fails before the key is
// shown now, and writes nothing.
func TestSealInitRefusedLogShowsNoKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, dir string) string // the log's path
	}{
		{"directory writable by others", func(t *testing.T, dir string) string {
			open := filepath.Join(dir, "open")
			if err := os.Mkdir(open, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(open, 0o777); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(open, "audit.jsonl")
		}},
		{"a directory", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "audit.jsonl")
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
			return path
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tc.make(t, dir)
			state := filepath.Join(dir, "state", "audit.seal")
			l, err := audit.Open(path, audit.Options{SealState: state})
			if err != nil {
				t.Fatal(err)
			}
			shown := false
			_, _, err = l.StartSealingShown(context.Background(), false, func(audit.VerifyKey) error { shown = true; return nil })
			if err == nil || shown || !strings.Contains(err.Error(), "sealing not started") {
				t.Errorf("seal-init of a refused log: %v, key shown %v; want refused before the key is shown", err, shown)
			}
			if _, err := os.Lstat(state); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("sealing state after the refusal: %v, want none", err)
			}
		})
	}
}

// TestLateSealsSecondReview: faults a second review found in the mends
// of the first. Checkpoints not sealed of another log of the host (its
// stretch at the same seqs, merged in one stream) failed an intact log
// with its key given; checkpoints all of that kind passed verify with no
// checkpoint judged; a record of the stretch zeroed by a crash after
// later records were chained on stopped sealing (the walk back through
// prev could not pass it).
func TestLateSealsSecondReview(t *testing.T) {
	ctx := context.Background()
	mk := func(t *testing.T) (*audit.Log, string, audit.VerifyKey, string) {
		l, path, key, cp := unsealedStretch(t, 1)
		appendN(t, l, 2)
		return l, path, key, cp
	}
	t.Run("another log's checkpoints of its stretch", func(t *testing.T) {
		l1, p1, k1, cp1 := mk(t)
		_, _, _, cp2 := mk(t)
		all := append(readCheckpoints(t, cp1), readCheckpoints(t, cp2)...)
		for _, o := range []audit.VerifyOptions{{Keys: []audit.VerifyKey{k1}, Checkpoints: all}, {Keys: []audit.VerifyKey{k1}, Checkpoints: all, CheckpointLog: p1}} {
			if s, err := verify(t, l1, o); err != nil || s.CheckpointsLateSealed != 2 {
				t.Errorf("verify (checkpoint log %q): %v, %+v; want it intact, 2 checkpoints of records sealed late", o.CheckpointLog, err, s)
			}
		}
	})
	t.Run("only checkpoints not sealed", func(t *testing.T) {
		l, _, key, cp := mk(t)
		var unsealed []audit.Checkpoint
		for _, c := range readCheckpoints(t, cp) {
			if c.Seal == "" {
				unsealed = append(unsealed, c)
			}
		}
		if len(unsealed) != 2 {
			t.Fatalf("%d checkpoints not sealed; want 2 (seq 5 and 6)", len(unsealed))
		}
		_, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: unsealed})
		if err == nil || !strings.Contains(err.Error(), "none of the 2 checkpoint(s) given can be used") {
			t.Errorf("verify with checkpoints not sealed only: %v; want none usable", err)
		}
	})
	t.Run("a record of the stretch zeroed", func(t *testing.T) {
		l, path, _ := sealedLog(t, audit.Options{})
		appendN(t, l, 3)
		unusableFor(t, l, l.SealStateForTest(), 3) // seq 5 to 7
		lines := readLines(t, path)
		lines[5] = append(make([]byte, len(lines[5])-1), '\n') // seq 6
		writeLines(t, path, lines)
		for i := range 2 {
			if r := rec(fmt.Sprint("after-", i)); l.Append(ctx, r) != nil || r.Seal == "" || r.SealError != "" {
				t.Errorf("append %d after the zeroed record: seal %q, seal_error %q; want it sealed", i, r.Seal, r.SealError)
			}
		}
	})
}
