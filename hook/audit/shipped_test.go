package audit_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
)

// logLines appends n records to a new log of host h and returns its
// lines (newline included), line i holding seq i+1.
func logLines(t *testing.T, host string, n int) [][]byte {
	t.Helper()
	l, path := newLog(t, audit.Options{Host: host})
	appendN(t, l, n)
	return fileLines(t, path)
}

// fileLines returns the lines of the file at path, newlines included.
func fileLines(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	return lines[:len(lines)-1]
}

// copyOf writes lines in the order given (indexes) to a new file, as a
// shipper could deliver them, and returns its path.
func copyOf(t *testing.T, lines [][]byte, order []int) string {
	t.Helper()
	var b []byte
	for _, i := range order {
		b = append(b, lines[i]...)
	}
	cp := filepath.Join(t.TempDir(), "copy.jsonl")
	if err := os.WriteFile(cp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return cp
}

// TestVerifyShipped verifies copies a shipper could deliver: the
// records in another order and some twice, as rsyslog sends them after
// a restart while its collector was unreachable (TestShippedRsyslog
// NodeRestart runs that). As shipped, a copy that holds every record
// verifies and says what was put back; a record missing or replaced
// fails it as always. Not as shipped, a reorder fails and says why.
func TestVerifyShipped(t *testing.T) {
	lines := logLines(t, "h", 8)
	other := logLines(t, "h", 8) // the same seqs, other bytes
	for i := range lines {
		if bytes.Equal(lines[i], other[i]) {
			t.Fatalf("the two logs' line %d are the same", i+1)
		}
	}
	tests := []struct {
		name string
		// seqs: a seq > 0 is the log's record, < 0 the other log's.
		seqs                []int
		partial             bool
		repeated, reordered int
		problem             string // "" for OK
	}{
		{name: "in order", seqs: []int{1, 2, 3, 4, 5, 6, 7, 8}},
		{name: "first retried, sent last", seqs: []int{2, 3, 4, 5, 6, 7, 8, 1}, reordered: 1},
		{name: "first two retried, the second also sent", seqs: []int{2, 3, 4, 5, 6, 7, 8, 1, 2}, repeated: 1, reordered: 1},
		{name: "middle", seqs: []int{1, 2, 5, 6, 3, 4, 5, 7, 8, 8}, repeated: 2, reordered: 2},
		{name: "two late", seqs: []int{1, 4, 2, 6, 3, 5, 7, 8}, reordered: 3},
		{name: "all twice", seqs: []int{1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8}, repeated: 8},
		{name: "partial copy, reordered", seqs: []int{4, 6, 5, 7, 8}, partial: true, reordered: 1},
		{name: "one missing", seqs: []int{1, 2, 4, 5, 6, 7, 8}, problem: "seq 4: expected seq 3 after seq 2"},
		{name: "one missing at the start", seqs: []int{2, 3, 4, 5, 6, 7, 8}, problem: "the chain starts at seq 2, not 1"},
		{name: "last missing", seqs: []int{1, 2, 3, 4, 5, 6, 7}}, // checkpoints tell
		{name: "one missing, a later one out of order", seqs: []int{1, 2, 4, 6, 5, 7, 8}, problem: "seq 4: expected seq 3 after seq 2"},
		{name: "replaced after", seqs: []int{1, 2, 3, -3, 4, 5, 6, 7, 8}, problem: "seq 3: seq 3 again after seq 3, with other bytes"},
		{name: "replaced while held", seqs: []int{1, 2, 4, -4, 3, 5, 6, 7, 8}, problem: "seq 4: seq 4 again with other bytes than at"},
		{name: "replaced, sent first", seqs: []int{1, 2, 4, -3, 3, 5, 6, 7, 8}, problem: "seq 3: prev does not match"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var copyData []byte
			for _, s := range tc.seqs {
				if s > 0 {
					copyData = append(copyData, lines[s-1]...)
				} else {
					copyData = append(copyData, other[-s-1]...)
				}
			}
			path := filepath.Join(t.TempDir(), "copy.jsonl")
			if err := os.WriteFile(path, copyData, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := audit.Verify([]string{path}, audit.VerifyOptions{Shipped: true, Partial: tc.partial})
			if tc.problem == "" {
				if err != nil {
					t.Fatalf("as shipped: %v", err)
				}
				if s.Repeated != tc.repeated || s.Reordered != tc.reordered {
					t.Errorf("as shipped: %d repeated, %d reordered, want %d and %d", s.Repeated, s.Reordered, tc.repeated, tc.reordered)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Fatalf("as shipped: %v, want a problem with %q", err, tc.problem)
			}
			// Not as shipped: a copy out of order fails, saying it may be
			// a shipper's.
			_, err = audit.Verify([]string{path}, audit.VerifyOptions{Partial: tc.partial})
			if tc.repeated+tc.reordered > 0 && (err == nil || !strings.Contains(err.Error(), "verify it as shipped")) {
				t.Errorf("not as shipped: %v, want a problem that tells to verify it as shipped", err)
			}
		})
	}
}

// TestVerifyShippedDamage checks that a line that is not a record keeps
// its place in a shipper's copy: the records held back before it go on
// first, and damage the chain recorded verifies as it does in the log.
func TestVerifyShippedDamage(t *testing.T) {
	l, path := newLog(t, audit.Options{Host: "h"})
	appendN(t, l, 3)
	// The last record damaged by an edit: the next append records it,
	// and an operator acknowledges it.
	tamper(t, path, replaceIn(2, `"c2"`, `"cX"`))
	appendN(t, l, 1)
	s, _ := verify(t, l, audit.VerifyOptions{})
	if len(s.Damage) != 1 {
		t.Fatalf("%d damage reports, want 1", len(s.Damage))
	}
	d := s.Damage[0].Record
	if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOperator, Stage: audit.StageAck, Ref: &audit.Ref{Seq: d.Seq, Stage: d.Stage, Hash: d.Hash}, Note: "checked"}); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 1)
	// c0, c1, the damaged line, the damage record, c3, the ack, c4.
	lines := fileLines(t, path)
	if len(lines) != 7 {
		t.Fatalf("%d lines, want 7", len(lines))
	}
	for _, tc := range []struct {
		name    string
		order   []int // line indexes
		problem string
	}{
		{"as written", []int{0, 1, 2, 3, 4, 5, 6}, ""},
		{"reordered before the damage", []int{1, 0, 2, 3, 4, 5, 6}, ""},
		{"reordered after the damage", []int{0, 1, 2, 3, 5, 4, 6}, ""},
		{"a record after the damage", []int{0, 2, 1, 3, 4, 5, 6}, "hash does not match"},
		{"a record held across the damage", []int{1, 2, 0, 3, 4, 5, 6}, "seq 1 again after seq 2"},
		{"the damaged line and its record sent again", []int{0, 1, 2, 3, 2, 3, 4, 5, 6}, ""},
		{"the damaged line sent again at the end", []int{0, 1, 2, 3, 4, 5, 6, 2}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := copyOf(t, lines, tc.order)
			s, err := audit.Verify([]string{cp}, audit.VerifyOptions{Shipped: true})
			if tc.problem == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(s.Damage) != 1 || s.Damage[0].Ack == nil || s.Records != 6 {
					t.Errorf("%d damage reports, %d records, want 1 (acknowledged) and 6", len(s.Damage), s.Records)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Errorf("%v, want a problem with %q", err, tc.problem)
			}
		})
	}
}

// BenchmarkVerifyShipped verifies 10000 records as shipped: in chain
// order, and with the first record sent last (every other record held
// back until it comes), against BenchmarkVerify's plain verify.
func BenchmarkVerifyShipped(b *testing.B) {
	dir := b.TempDir()
	lines := chainLines(b, 10000)
	for _, bc := range []struct {
		name  string
		order [][]byte
	}{
		{"in order", lines},
		{"first last", append(append([][]byte{}, lines[1:]...), lines[0])},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(bc.name, " ", "-")+".jsonl")
		data := bytes.Join(bc.order, nil)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if s, err := audit.Verify([]string{path}, audit.VerifyOptions{Shipped: true}); err != nil || s.Records != 10000 {
					b.Fatal(s, err)
				}
			}
		})
	}
}

// TestShippedRepeatedDamage: two crashes leave zeroed lines of one
// length, the second damage not acknowledged. As shipped, the second
// line is dropped as a repeat of the first (a shipper sends lines
// again): its damage record, whose lines verify no longer meets, still
// wants its acknowledgement. It passed as an ordinary record.
func TestShippedRepeatedDamage(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 2)
	lines := readLines(t, path)
	zeroed := append(bytes.Repeat([]byte{0}, len(lines[1])-1), '\n')
	lines[1] = zeroed
	writeLines(t, path, lines)
	appendN(t, l, 1) // records the first damage
	audittest.AckDamage(t, l, path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(zeroed)
	f.Close()
	appendN(t, l, 1) // records the second
	for _, shipped := range []bool{false, true} {
		_, err := verify(t, l, audit.VerifyOptions{Shipped: shipped})
		if err == nil || !strings.Contains(err.Error(), "is not acknowledged") {
			t.Errorf("shipped %v: %v; want the second damage not acknowledged", shipped, err)
		}
	}
}

// TestShippedLongLineRepeated: a line longer than any record (damage a
// crash left, recorded and acknowledged) in a log a shipper sent twice
// whole is a repeat, as a shorter damaged line is. It failed verify as
// shipped ("not recorded yet").
func TestShippedLongLineRepeated(t *testing.T) {
	for _, damaged := range [][]byte{bytes.Repeat([]byte("x"), audit.MaxLine+10), []byte("garbage")} {
		l, path := newLog(t, audit.Options{Host: "h"})
		appendN(t, l, 2)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(append(damaged, '\n'))
		f.Close()
		appendN(t, l, 1)
		audittest.AckDamage(t, l, path)
		appendN(t, l, 1)
		lines := fileLines(t, path)
		var twice []int
		for range 2 {
			for i := range lines {
				twice = append(twice, i)
			}
		}
		s, err := audit.Verify([]string{copyOf(t, lines, twice)}, audit.VerifyOptions{Shipped: true})
		if err != nil || s.Repeated != len(lines) {
			t.Errorf("a damaged line of %d bytes, the log sent twice: %v (%d repeated); want it verified, %d repeated", len(damaged), err, s.Repeated, len(lines))
		}
	}
}

// TestShippedZeroedAndGarbled: one damage record lists a line of NUL
// bytes and a garbled line. A shipper (rsyslog) delivers the first empty,
// which the copy as shipped skips: the record's other line is there, and
// the first was wanted as missing. A line that was not all NUL bytes is
// still wanted.
func TestShippedZeroedAndGarbled(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 1)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(append(bytes.Repeat([]byte{0}, 8), '\n'))
	f.Write([]byte("garbage\n"))
	f.Close()
	appendN(t, l, 1) // the damage record lists both
	audittest.AckDamage(t, l, path)
	if _, err := verify(t, l, audit.VerifyOptions{}); err != nil {
		t.Fatalf("the node's log: %v", err)
	}
	nul := append(bytes.Repeat([]byte{0}, 8), '\n')
	for _, tc := range []struct {
		name string
		copy func([]byte) []byte
		ok   bool
	}{
		{"NUL bytes delivered empty", func(b []byte) []byte { return bytes.Replace(b, nul, []byte("\n"), 1) }, true},
		// (Empty lines are skipped where they come, not held back.)
		{"delivered empty after the damage record", func(b []byte) []byte { return append(bytes.Replace(b, nul, nil, 1), '\n') }, true},
		{"the garbled line deleted", func(b []byte) []byte { return bytes.Replace(b, []byte("garbage\n"), nil, 1) }, false},
	} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		cp := filepath.Join(t.TempDir(), "copy.jsonl")
		if err := os.WriteFile(cp, tc.copy(data), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := audit.Verify([]string{cp}, audit.VerifyOptions{Shipped: true})
		if tc.ok && (err != nil || s.Empty != 1) || !tc.ok && err == nil {
			t.Errorf("%s: %v, %+v; want ok %v", tc.name, err, s, tc.ok)
		}
	}
}
