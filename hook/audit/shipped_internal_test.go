package audit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestShipOrderBounded checks that a copy whose records all come in
// swapped pairs leaves nothing behind in the hold and its heap: what
// is held is bounded by maxHeld, whatever the copy's length.
func TestShipOrderBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path, Options{Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	for range 200 {
		if err := l.Append(context.Background(), &Record{Source: SourceAudit, Stage: StageCreateRuntime, ContainerID: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	lines = lines[:len(lines)-1]
	for i := 0; i+1 < len(lines); i += 2 {
		lines[i], lines[i+1] = lines[i+1], lines[i]
	}
	cp := filepath.Join(t.TempDir(), "copy.jsonl")
	if err := os.WriteFile(cp, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	snap, err := SnapshotFiles([]string{cp})
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	sum := &Summary{}
	o := &shipOrder{snap: snap, sum: sum, held: map[uint64]heldLine{}, visit: func(Line, *Record, error) *Problem { return nil }}
	most := 0
	for ln, err := range snap.Lines() {
		if err != nil {
			t.Fatal(err)
		}
		if p := o.line(ln); p != nil {
			t.Fatal(p)
		}
		most = max(most, len(o.order))
	}
	if len(o.held) != 0 || len(o.order) != 0 || most > 1 || sum.Reordered != 100 || o.next != 201 {
		t.Errorf("after 100 swapped pairs: %d held, %d in the heap (at most %d), %d reordered, next %d; want 0, 0 (1), 100, 201", len(o.held), len(o.order), most, sum.Reordered, o.next)
	}
}

// TestShippedTornFull: damage records that list more lines the copy does
// not hold where they list them than the tables keep fail the copy: past
// the bound, a line missing from it went unseen.
func TestShippedTornFull(t *testing.T) {
	damage := func(n int) *Record {
		r := &Record{Seq: 7}
		for i := range n {
			r.Damage = append(r.Damage, DamagedLine{File: "audit.jsonl", Offset: int64(i) * 10, Bytes: 9, SHA256: fmt.Sprintf("%064x", i), Kind: "zeroed"})
		}
		return r
	}
	for _, tc := range []struct {
		lines int
		full  bool
	}{{maxDamagedRemembered, false}, {maxDamagedRemembered + 1, true}} {
		var st shippedTorn
		st.damage(damage(tc.lines), nil)
		p := st.end("copy.jsonl", false)
		if tc.full != (p != nil && strings.Contains(p.Reason, "lines missing from it would go unseen")) {
			t.Errorf("%d lines listed elsewhere: %v; want a failure: %v", tc.lines, p, tc.full)
		}
	}
	// A genuine copy of a node with more damage records than that, each
	// holding its lines where they belong: nothing is wanted, it passes
	// (every one of them was held: a record the copy holds lines of).
	var st shippedTorn
	for seq := uint64(1); seq <= maxDamagedRemembered+1; seq++ {
		st.hold(seq)
	}
	if p := st.end("copy.jsonl", false); p != nil {
		t.Errorf("%d damage records with their lines in place: %v", maxDamagedRemembered+1, p)
	}
	// A line wanted of a record whose holding went unrecorded fails.
	st.wanted = map[LineKey]uint64{{SHA256: fmt.Sprintf("%064x", 1), Bytes: 9}: maxDamagedRemembered + 1}
	if p := st.end("copy.jsonl", false); p == nil || !strings.Contains(p.Reason, "lines missing from it would go unseen") {
		t.Errorf("a wanted line of a record past the bound: %v; want a failure", p)
	}
}
