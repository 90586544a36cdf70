package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
)

// tear appends data to the log at path without a newline, as a write a
// crash cut short leaves it.
func tear(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
}

// zeroLine overwrites line i (from 0) of the log at path with NUL
// bytes, as a crash leaves a block whose data had not reached the disk.
func zeroLine(t *testing.T, path string, i int) {
	t.Helper()
	lines := readLines(t, path)
	lines[i] = bytes.Repeat([]byte{0}, len(lines[i])-1)
	writeLines(t, path, lines)
}

// stagesOf returns the stages of the records in path, in order.
func stagesOf(t *testing.T, path string) []string {
	t.Helper()
	var stages []string
	for r, err := range audit.Records(path) {
		if err != nil {
			t.Fatal(err)
		}
		stages = append(stages, r.Stage)
	}
	return stages
}

// TestTornLineEdited: the line an append ended with the torn mark is no
// record, so no hash covers it; its torn-tail record does, with its
// length and SHA-256 (format 1.3). A byte of it changed, even past the
// 4096 the record quotes, or its length, and verify reports the line as
// damaged, plain and as shipped.
func TestTornLineEdited(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func([]byte) []byte
	}{
		{"byte changed", func(l []byte) []byte { l[10] ^= 1; return l }},
		{"byte added", func(l []byte) []byte { return append([]byte("x"), l...) }},
		{"mark removed", func(l []byte) []byte { return bytes.Replace(l, []byte(audit.TornMark), nil, 1) }},
		// Past the 4096 bytes the record quotes: its digest covers all.
		{"byte 5000 changed", func(l []byte) []byte { l[5000] ^= 1; return l }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, path := newLog(t, audit.Options{})
			appendN(t, l, 2)
			tear(t, path, []byte(`{"seq":3,"time":"2026-01-01T00:00:00Z","host":"h`+strings.Repeat("x", 6000)))
			appendN(t, l, 1)
			if _, err := verify(t, l, audit.VerifyOptions{}); err != nil {
				t.Fatalf("before the edit: %v", err)
			}
			lines := readLines(t, path)
			lines[2] = tc.edit(lines[2])
			writeLines(t, path, lines)
			for _, shipped := range []bool{false, true} {
				if _, err := audit.Verify([]string{path}, audit.VerifyOptions{Shipped: shipped}); err == nil {
					t.Errorf("verify (shipped %v) after the edit passed", shipped)
				}
			}
			_, err := verify(t, l, audit.VerifyOptions{})
			var p *audit.Problem
			if !errors.As(err, &p) || p.Line != 3 {
				t.Fatalf("verify after the edit: %v, want a problem at line 3", err)
			}
			if tc.name != "mark removed" && !strings.Contains(p.Reason, "its torn-tail record does not follow") {
				t.Errorf("reason %q does not say the torn-tail record does not match", p.Reason)
			}
		})
	}
}

// TestTornLineDeleted: the torn line, ended with the mark, comes right
// before its torn-tail record in the file; deleting it fails verify. A
// shipper's copy may lack it (a file retention removed before it was
// shipped), as any line.
func TestTornLineDeleted(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 2)
	tear(t, path, []byte(`{"seq":3,"time":"2026-`))
	appendN(t, l, 1)
	lines := readLines(t, path)
	writeLines(t, path, slices.Delete(lines, 2, 3))
	_, err := verify(t, l, audit.VerifyOptions{})
	var p *audit.Problem
	if !errors.As(err, &p) || p.Line != 3 || !strings.Contains(p.Reason, "deleted?") {
		t.Fatalf("verify after the torn line was deleted: %v, want a problem at line 3", err)
	}
	if _, err := audit.Verify([]string{path}, audit.VerifyOptions{Shipped: true}); err != nil {
		t.Errorf("verify --shipped: %v", err)
	}
}

// TestTornTailAfterDamage: damaged lines, then a torn tail. The append
// ends the torn line, writes its torn-tail record right after it, then
// the damage record of the lines before; the damage wants its ack.
func TestTornTailAfterDamage(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 2)
	zeroLine(t, path, 1)
	tear(t, path, []byte(`{"seq":3,"time":"2026-`))
	appendN(t, l, 1)
	if got, want := stagesOf(t, path), []string{audit.StageCreateRuntime, audit.StageTornTail, audit.StageDamaged, audit.StageCreateRuntime}; !slices.Equal(got, want) {
		t.Fatalf("records %v, want %v", got, want)
	}
	if _, err := verify(t, l, audit.VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "not acknowledged") {
		t.Fatalf("verify before the ack: %v, want the damage unacknowledged", err)
	}
	audittest.AckDamage(t, l, path)
	s, err := verify(t, l, audit.VerifyOptions{})
	if err != nil || len(s.TornTails) != 1 || len(s.Damage) != 1 || len(s.Damage[0].Lines) != 1 || !strings.HasSuffix(s.Damage[0].Lines[0], ":2") {
		t.Fatalf("verify: %v; %+v", err, s)
	}
}

// TestSealInitAfterTornTail: seal-init is the first append after a
// crash tore the last line of an unsealed log (and zeroed the one
// before): its seal-start record comes first, then the torn-tail
// record, then the damage record; the log verifies with the key once the
// damage is acknowledged.
func TestSealInitAfterTornTail(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 3)
	zeroLine(t, path, 2)
	tear(t, path, []byte(`{"seq":4,"time":"2026-`))
	l, err := audit.Open(path, audit.Options{SealState: path + ".seal"})
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := l.StartSealing(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stagesOf(t, path), []string{audit.StageCreateRuntime, audit.StageCreateRuntime, audit.StageSealStart, audit.StageTornTail, audit.StageDamaged}; !slices.Equal(got, want) {
		t.Fatalf("records %v, want %v", got, want)
	}
	audittest.AckDamage(t, l, path)
	for _, keys := range [][]audit.VerifyKey{{key}, nil} {
		if s, err := verify(t, l, audit.VerifyOptions{Keys: keys}); err != nil || len(s.TornTails) != 1 {
			t.Errorf("verify with %d key(s): %v", len(keys), err)
		}
	}
}

// TestTornTailTooLongForALine: a tail longer than any record (not what a
// cut write of nsrel leaves) cannot end as a line: the append writes
// over it, its first bytes and its length in the torn-tail record.
func TestTornTailTooLongForALine(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 2)
	tail := bytes.Repeat([]byte("x"), audit.MaxLine)
	tear(t, path, tail)
	appendN(t, l, 1)
	s, err := verify(t, l, audit.VerifyOptions{})
	if err != nil || s.Records != 4 || len(s.TornTails) != 1 || s.TornTails[0].TornBytes != len(tail) || len(s.TornTails[0].Torn) != audit.MaxTornKept {
		t.Fatalf("verify: %v; %+v", err, s)
	}
	if st, err := os.Stat(path); err != nil || st.Size() > int64(audit.MaxLine) {
		t.Errorf("the long tail is still in the file: %v %v", st.Size(), err)
	}
}

// TestVerifyShippedTornTail verifies copies of a log whose torn line an
// append ended, as a shipper could deliver them: in order, the torn
// line sent again, its torn-tail record (with the records after) sent
// before it, or the record before it sent after it, as rsyslog sends a
// line it was retrying after those queued behind it. As shipped each verifies; not as shipped, only the
// copy in order does.
func TestVerifyShippedTornTail(t *testing.T) {
	l, path := newLog(t, audit.Options{Host: "h"})
	appendN(t, l, 2)
	tear(t, path, []byte(`{"seq":3,"time":"2026-`))
	appendN(t, l, 2)
	// c0, c1, the torn line, its record, c2, c3.
	lines := fileLines(t, path)
	if len(lines) != 6 || !bytes.HasSuffix(lines[2], []byte(audit.TornMark+"\n")) {
		t.Fatalf("lines %q", lines)
	}
	for _, tc := range []struct {
		name    string
		order   []int
		plainOK bool
	}{
		{"as written", []int{0, 1, 2, 3, 4, 5}, true},
		{"the torn line sent again", []int{0, 1, 2, 3, 2, 4, 5}, false},
		{"the torn line after its record", []int{0, 1, 3, 2, 4, 5}, false},
		{"the torn line at the end", []int{0, 1, 3, 4, 5, 2}, false},
		{"the record before the torn line sent last", []int{0, 2, 3, 4, 5, 1}, false},
		{"the record before the torn line after it", []int{0, 2, 1, 3, 4, 5}, false},
		{"the record before the torn line after its record", []int{0, 2, 3, 1, 4, 5}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := copyOf(t, lines, tc.order)
			s, err := audit.Verify([]string{cp}, audit.VerifyOptions{Shipped: true})
			if err != nil || s.Records != 5 || len(s.TornTails) != 1 {
				t.Fatalf("as shipped: %v; %+v", err, s)
			}
			if _, err := audit.Verify([]string{cp}, audit.VerifyOptions{}); (err == nil) != tc.plainOK {
				t.Errorf("not as shipped: %v, want ok %v", err, tc.plainOK)
			}
		})
	}
	// Two torn lines, the first one's record sent after the second's.
	l2, path2 := newLog(t, audit.Options{Host: "h"})
	appendN(t, l2, 2)
	tear(t, path2, []byte(`{"seq":3,"ti`))
	appendN(t, l2, 2)
	tear(t, path2, []byte(`{"seq":6,"time":"2026-`))
	appendN(t, l2, 1)
	// c0, c1, torn 1, its record, c2, c3, torn 2, its record, c4.
	lines2 := fileLines(t, path2)
	for _, order := range [][]int{{0, 1, 2, 4, 5, 6, 7, 8, 3}, {0, 1, 2, 6, 3, 4, 5, 7, 8}, {0, 1, 6, 2, 3, 4, 5, 7, 8}} {
		if s, err := audit.Verify([]string{copyOf(t, lines2, order)}, audit.VerifyOptions{Shipped: true}); err != nil || s.Records != 7 || len(s.TornTails) != 2 {
			t.Errorf("two torn lines in the order %v, as shipped: %v", order, err)
		}
	}
	// A torn line no record holds (added, or a second copy with other
	// bytes) fails as shipped too.
	added := append(append([][]byte{}, lines...), []byte(`{"seq":9,"ti`+audit.TornMark+"\n"))
	if _, err := audit.Verify([]string{copyOf(t, added, []int{0, 1, 2, 3, 6, 4, 5})}, audit.VerifyOptions{Shipped: true}); err == nil || !strings.Contains(err.Error(), ":5: ended as a torn line, but no torn-tail record holds its bytes") {
		t.Errorf("a torn line without its record, as shipped: %v", err)
	}
}

// tearAndAppend tears the log at path with torn, appends one record, and
// returns the file's bytes before and after that append.
func tearAndAppend(t *testing.T, l *audit.Log, path, torn string) (before, after []byte) {
	t.Helper()
	tear(t, path, []byte(torn))
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 1)
	if after, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	return before, after
}

// recoverCut appends one record to the log at path, as the first append
// after a crash, acknowledges every damage record, and verifies the log
// with keys, plain and as shipped.
func recoverCut(t *testing.T, path string, opts audit.Options, keys []audit.VerifyKey) error {
	t.Helper()
	l, err := audit.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 1)
	for r, err := range audit.Records(path) {
		if err == nil && r.Stage == audit.StageDamaged {
			if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOperator, Stage: audit.StageAck, Ref: &audit.Ref{Seq: r.Seq, Stage: r.Stage, Hash: r.Hash}, Note: "crash"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, shipped := range []bool{false, true} {
		if _, err := audit.Verify([]string{path}, audit.VerifyOptions{Shipped: shipped, Keys: keys}); err != nil {
			return fmt.Errorf("shipped %v: %w", shipped, err)
		}
	}
	return nil
}

// TestTornTailWriteCutAnywhere cuts the write of an append that ends a
// torn line after damaged lines (the mark, the torn-tail record, the
// damage record, the caller's record) at every byte, as a crash can:
// the next append records whatever is left, and once the damage is
// acknowledged the log verifies, plain and as shipped. A cut between
// the torn-tail record and the damage record once left the damaged line
// before the torn line out of every later damage record: verify failed
// for good.
func TestTornTailWriteCutAnywhere(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 3)
	zeroLine(t, path, 2)
	before, after := tearAndAppend(t, l, path, `{"seq":4,"time":"2026-12-04T00:00:00Z","ho`)
	if !bytes.HasPrefix(after, before) {
		t.Fatal("the append rewrote bytes")
	}
	cut := filepath.Join(t.TempDir(), "audit.jsonl")
	for n := len(before); n <= len(after); n++ {
		if err := os.WriteFile(cut, after[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := recoverCut(t, cut, audit.Options{}, nil); err != nil {
			t.Fatalf("the write cut after %d of its %d bytes, then one append: %v", n-len(before), len(after)-len(before), err)
		}
	}
}

// TestSealInitAfterTornTailCutAnywhere cuts the write of seal-init run
// as the first append after a crash tore the last line (and, in turn,
// zeroed the one before) at every byte: its seal-start record opens the
// write, before the torn-tail and damage records. With the sealing
// state as the crash left it, the next append records what is left, and
// once the damage is acknowledged the log verifies with the key, plain
// and as shipped. A cut inside the torn-tail record once left the torn
// line (and the damaged line) out of every later record.
func TestSealInitAfterTornTailCutAnywhere(t *testing.T) {
	for _, damage := range []bool{false, true} {
		t.Run(map[bool]string{false: "torn", true: "damaged-and-torn"}[damage], func(t *testing.T) {
			l, path := newLog(t, audit.Options{})
			appendN(t, l, 3)
			if damage {
				zeroLine(t, path, 2)
			}
			tear(t, path, []byte(`{"seq":4,"time":"2026-12-04T00:00:00Z","ho`))
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			state := path + ".seal"
			var stateBefore []byte
			audit.PauseBeforeTornWrite(func() { stateBefore, _ = os.ReadFile(state) })
			sl, err := audit.Open(path, audit.Options{SealState: state})
			if err != nil {
				t.Fatal(err)
			}
			key, _, err := sl.StartSealing(context.Background(), false)
			audit.PauseBeforeTornWrite(nil)
			if err != nil || stateBefore == nil {
				t.Fatalf("seal-init: %v (state before its write: %d bytes)", err, len(stateBefore))
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for n := len(before); n <= len(after); n++ {
				dir := t.TempDir()
				cut := filepath.Join(dir, "audit.jsonl")
				if err := os.WriteFile(cut, after[:n], 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(cut+".seal", stateBefore, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := recoverCut(t, cut, audit.Options{SealState: cut + ".seal"}, []audit.VerifyKey{key}); err != nil {
					t.Fatalf("seal-init's write cut after %d of its %d bytes, then one append: %v", n-len(before), len(after)-len(before), err)
				}
			}
		})
	}
}

// TestSealStartFirstInRotatedFile: an append that rotates the file first
// writes the damage record of the rotated file's damaged last line into
// the new file, after the seal-start record it opens with (seal-init).
// Its write cut right after the seal-start record leaves the new file
// holding that record alone: the next append must still find the
// damaged line at the end of the rotated file and record it.
func TestSealStartFirstInRotatedFile(t *testing.T) {
	opts := audit.Options{RotateBytes: 1}
	l, path := newLog(t, opts)
	appendN(t, l, 3) // every append but the first rotates the file before it
	zeroLine(t, path, 0)
	if _, err := l.AppendWith(context.Background(), func(*audit.Searcher) (*audit.Record, error) {
		return &audit.Record{Source: audit.SourceAudit, Stage: audit.StageSealStart, SealID: "0123456789abcdef"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := stagesOf(t, path), []string{audit.StageSealStart, audit.StageDamaged}; !slices.Equal(got, want) {
		t.Fatalf("the new file holds %v, want %v", got, want)
	}
	writeLines(t, path, readLines(t, path)[:1]) // the write cut after the seal-start record
	l2, err := audit.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l2, 1)
	audittest.AckDamage(t, l2, l2.Path())
	files, err := l2.Files()
	if err != nil {
		t.Fatal(err)
	}
	if s, err := audit.Verify(files, audit.VerifyOptions{}); err != nil || len(s.Damage) != 1 || s.Damage[0].Ack == nil {
		t.Fatalf("after the next append and the ack: %v", err)
	}
}

// TestShippedTornLineAfterItsDamageRecord: a write cut inside the
// torn-tail record leaves the torn line without it; the next append
// lists that line in a damage record. A shipper may send the line after
// that record: the copy still verifies as shipped.
func TestShippedTornLineAfterItsDamageRecord(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 2)
	before, after := tearAndAppend(t, l, path, `{"seq":3,"time":"2026-`)
	// c0, c1, the torn line, the cut record's torn line, its record,
	// the damage record listing the first torn line, c2, the ack.
	lines := cutTornTail(t, path, before, after)
	if got, want := stagesOf(t, path), []string{audit.StageCreateRuntime, audit.StageCreateRuntime, audit.StageTornTail, audit.StageDamaged, audit.StageCreateRuntime, audit.StageAck}; len(lines) != 8 || !slices.Equal(got, want) {
		t.Fatalf("%d lines, records %v", len(lines), got)
	}
	if _, err := audit.Verify([]string{copyOf(t, lines, []int{0, 1, 3, 4, 5, 2, 6, 7})}, audit.VerifyOptions{Shipped: true}); err != nil {
		t.Errorf("the torn line after its damage record, as shipped: %v", err)
	}
}

// TestShippedDamagedLineRemoved: a damage record lists two damaged
// lines; a shipper's copy that holds one of them fails: a line it does
// not hold (not sent yet, a torn line, say) may come after the record,
// but not never, when the copy holds the others.
func TestShippedDamagedLineRemoved(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 3)
	zeroLine(t, path, 1)
	tamper(t, path, replaceIn(2, `"c2"`, `"cX"`))
	appendN(t, l, 1)
	audittest.AckDamage(t, l, path)
	// c0, the zeroed line, the edited line, the damage record, c3, the ack.
	lines := fileLines(t, path)
	if len(lines) != 6 {
		t.Fatalf("%d lines", len(lines))
	}
	if _, err := audit.Verify([]string{copyOf(t, lines, []int{0, 1, 2, 3, 4, 5})}, audit.VerifyOptions{Shipped: true}); err != nil {
		t.Fatalf("the copy as written: %v", err)
	}
	for _, order := range [][]int{{0, 2, 3, 4, 5}, {0, 1, 3, 4, 5}, {0, 1, 1, 3, 4, 5}} {
		if _, err := audit.Verify([]string{copyOf(t, lines, order)}, audit.VerifyOptions{Shipped: true}); err == nil || !strings.Contains(err.Error(), "the copy does not hold") && !strings.Contains(err.Error(), "lists") {
			t.Errorf("lines %v, as shipped: %v, want the missing damaged line named", order, err)
		}
	}
}

// cutTornAfterDamage writes a log where a damage record lists a damaged
// line Z and a torn line T1 whose torn-tail record a second crash cut:
// c0, Z (c1 zeroed), T1, T2 (the cut record's bytes, ended), its
// record, the damage record [Z, T1], c2, the ack; after pre's lines.
func cutTornAfterDamage(t *testing.T, frag string, pre func(*audit.Log, string)) [][]byte {
	t.Helper()
	l, path := newLog(t, audit.Options{})
	if pre != nil {
		pre(l, path)
	}
	appendN(t, l, 2)
	zeroLine(t, path, len(readLines(t, path))-1)
	before, after := tearAndAppend(t, l, path, frag)
	return cutTornTail(t, path, before, after)
}

// cutTornTail cuts the append that went from before to after, ending a
// torn line, 10 bytes into its torn-tail record (a second crash), then
// recovers the log (recoverCut) and returns its lines.
func cutTornTail(t *testing.T, path string, before, after []byte) [][]byte {
	t.Helper()
	if err := os.WriteFile(path, after[:len(before)+len(audit.TornMark)+1+10], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := recoverCut(t, path, audit.Options{}, nil); err != nil {
		t.Fatal(err)
	}
	return fileLines(t, path)
}

// TestShippedTornAndDamagedListed: a damage record lists a damaged line
// and a torn line. A shipper's copy that holds the torn line (before or
// after the record) holds that stretch: without the damaged line it
// fails. Two torn lines alike, one accounted by its torn-tail record and
// one by the damage record, verify however the records come first.
func TestShippedTornAndDamagedListed(t *testing.T) {
	lines := cutTornAfterDamage(t, `{"seq":3,"time":"2026-`, nil)
	if len(lines) != 8 {
		t.Fatalf("%d lines", len(lines))
	}
	for _, order := range [][]int{{0, 2, 3, 4, 5, 6, 7}, {0, 3, 4, 5, 2, 6, 7}, {0, 1, 3, 4, 5, 6, 7}} {
		if _, err := audit.Verify([]string{copyOf(t, lines, order)}, audit.VerifyOptions{Shipped: true}); err == nil {
			t.Errorf("lines %v, a listed line missing, passed as shipped", order)
		}
	}
	frag := `{"format":"1.3","se`
	lines = cutTornAfterDamage(t, frag, func(l *audit.Log, path string) {
		appendN(t, l, 2)
		tearAndAppend(t, l, path, frag)
	})
	// c0, c1, Tx, its record, c2, c3, Z, Ty (as Tx), T2, its record, the
	// damage record, c4, the ack.
	if len(lines) != 13 || !bytes.Equal(lines[2], lines[7]) {
		t.Fatalf("%d lines", len(lines))
	}
	for _, order := range [][]int{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {0, 1, 3, 4, 5, 6, 8, 9, 10, 2, 7, 11, 12}} {
		if _, err := audit.Verify([]string{copyOf(t, lines, order)}, audit.VerifyOptions{Shipped: true}); err != nil {
			t.Errorf("lines %v, as shipped: %v", order, err)
		}
	}
	// Without Z: the torn bytes the damage record lists are held (met,
	// though Tx's record took them), so Z must come.
	for _, order := range [][]int{{0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12}, {0, 1, 3, 4, 5, 8, 9, 10, 2, 11, 12}} {
		if _, err := audit.Verify([]string{copyOf(t, lines, order)}, audit.VerifyOptions{Shipped: true}); err == nil {
			t.Errorf("lines %v, Z missing, passed as shipped", order)
		}
	}
}

// TestVerifyKeepsTornTailsSmall: verify's summary keeps of each torn-tail
// record what its report says, not the members whose size the writer
// chose: 600 torn-tail records of 900 KB errors (a chain root on a node
// can write and ship to a collector) held 552 MB of verify's memory (a
// review found it).
func TestVerifyKeepsTornTailsSmall(t *testing.T) {
	l, _ := newLog(t, audit.Options{})
	big := strings.Repeat("e", 512<<10)
	for range 3 {
		if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceAudit, Stage: audit.StageTornTail, Error: big, TornBytes: 7, Torn: "{\"seq\":"}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := verify(t, l, audit.VerifyOptions{})
	if err != nil || len(s.TornTails) != 3 {
		t.Fatalf("verify: %v; %d torn tails", err, len(s.TornTails))
	}
	for _, r := range s.TornTails {
		if r.Error != "" || r.TornBytes != 7 || r.Torn != "{\"seq\":" || r.Seq == 0 || r.Hash == "" {
			t.Errorf("torn tail kept: seq %d, hash %q, torn %q (%d bytes), error of %d bytes; want its seq, hash and torn line, no error", r.Seq, r.Hash, r.Torn, r.TornBytes, len(r.Error))
		}
	}
}
