package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
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
				l, path, keys := logMaybeSealed(t, sealed)
				appendN(t, l, 5)
				lines := readLines(t, path)
				head := uint64(len(lines)) // seq of the last record
				tear(t, path, tc.replay(lines))

				_, err := verify(t, l, audit.VerifyOptions{Keys: keys})
				if err == nil || !tc.torn && (!strings.Contains(err.Error(), "an older record again") || !strings.Contains(err.Error(), "not recorded yet")) {
					t.Fatalf("verify before the next append: %v", err)
				}

				appendN(t, l, 2)
				d, seqs := damageRecord(t, path)
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
				ack := audittest.AckOf(d, "checked")
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

// damageRecord returns the last damage record in files and the seqs of
// their records; it fails the test when there is none.
func damageRecord(t *testing.T, files ...string) (*audit.Record, []uint64) {
	t.Helper()
	var d *audit.Record
	var seqs []uint64
	for r, err := range audit.Records(files...) {
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
	return d, seqs
}

// logMaybeSealed returns a new log, sealed or not, and the keys to
// verify it with.
func logMaybeSealed(t *testing.T, sealed bool) (*audit.Log, string, []audit.VerifyKey) {
	t.Helper()
	if !sealed {
		l, path := newLog(t, audit.Options{})
		return l, path, nil
	}
	l, path, key := sealedLog(t, audit.Options{})
	return l, path, []audit.VerifyKey{key}
}

// replayCase appends two records after the log at path was given its
// replayed lines, and checks that the damage record lists want lines
// of the kinds given, that verify passes once it is acknowledged (node
// and shipped), and that the records after it go on from seq head.
func replayCase(t *testing.T, l *audit.Log, head uint64, kinds ...string) {
	t.Helper()
	appendN(t, l, 2)
	files, err := l.Files()
	if err != nil {
		t.Fatal(err)
	}
	d, seqs := damageRecord(t, files...)
	var got []string
	for _, dl := range d.Damage {
		got = append(got, dl.Kind)
	}
	if !slices.Equal(got, kinds) {
		t.Errorf("damaged lines of kinds %q, want %q", got, kinds)
	}
	if d.Seq != head+1 || seqs[len(seqs)-1] != head+3 {
		t.Errorf("damage record seq %d, last seq %d, want %d and %d (seqs %v)", d.Seq, seqs[len(seqs)-1], head+1, head+3, seqs)
	}
	ack := audittest.AckOf(d, "checked")
	if err := l.Append(context.Background(), ack); err != nil {
		t.Fatal(err)
	}
	for _, shipped := range []bool{false, true} {
		if _, err := verify(t, l, audit.VerifyOptions{Shipped: shipped}); err != nil {
			t.Errorf("verify (shipped %v) after the ack: %v", shipped, err)
		}
	}
}

// TestReplayedLinesFar: the older record again comes after a record
// longer than the 16 KiB the append reads first (a torn tail of NUL bytes
// makes one of 25 KB), after more than 16 KiB of NUL bytes (a crash's
// zeroed blocks), first in a file a rotation began, in a stale block of
// thirty records or one holding a long record, or with a garbled line
// after it (verified as shipped: the copy drops the repeat, which the
// damage record lists). Each was taken for the chain's head: the append
// forked the chain, and verify failed for good. Without the hint the
// last append leaves in the lock file, the look back still tells one.
func TestReplayedLinesFar(t *testing.T) {
	t.Run("after a long record", func(t *testing.T) {
		l, path := newLog(t, audit.Options{})
		appendN(t, l, 2)
		long := rec("long")
		long.Annotations["note"] = strings.Repeat("n", 20<<10)
		if err := l.Append(context.Background(), long); err != nil {
			t.Fatal(err)
		}
		lines := readLines(t, path)
		tear(t, path, append(bytes.TrimSuffix(lines[2], []byte("\n")), '\n'))
		replayCase(t, l, 3, "replayed")
	})
	t.Run("after zeroed blocks", func(t *testing.T) {
		l, path := newLog(t, audit.Options{})
		appendN(t, l, 5)
		lines := readLines(t, path)
		tear(t, path, append(append(bytes.Repeat([]byte{0}, 20000), '\n'), lines[2]...))
		replayCase(t, l, 5, "zeroed", "replayed")
	})
	t.Run("first in a rotated file", func(t *testing.T) {
		l, path := newLog(t, audit.Options{})
		appendN(t, l, 5)
		copiesFirst(t, path, 1, 3)
		replayCase(t, l, 5, "replayed", "replayed")
	})
	t.Run("alone in a file rotated next", func(t *testing.T) {
		// Files of seqs 1 to 4 and 5 to 8, and a current file holding
		// only a copy of seq 2, which the next append rotates: named
		// after seq 2, it sorted before the others, and a later append
		// took the file of 5 to 8 for the newest (seq 9 came again).
		l, path := newLog(t, audit.Options{})
		appendN(t, l, 8)
		lines := readLines(t, path)
		for _, part := range []struct {
			first int
			lines [][]byte
		}{{1, lines[0:4]}, {5, lines[4:8]}} {
			writeLines(t, fmt.Sprintf("%s.%012d", path, part.first), part.lines)
		}
		if err := os.WriteFile(path, lines[1], 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := audit.Open(path, audit.Options{RotateBytes: 1})
		if err != nil {
			t.Fatal(err)
		}
		replayCase(t, l, 8, "replayed")
		files, err := l.Files()
		if err != nil {
			t.Fatal(err)
		}
		if got := filepath.Base(files[2]); got != fmt.Sprintf("audit.jsonl.%012d", 9) {
			t.Errorf("the file of the older record again is %s, want it named after seq 9 (files %v)", got, files)
		}
	})
	t.Run("thirty records", func(t *testing.T) {
		// A stale block of 30 records, 26 KB, more than the 16 KiB the
		// look back reads: the hint the last append left tells.
		l, path := newLog(t, audit.Options{})
		appendN(t, l, 40)
		lines := readLines(t, path)
		tear(t, path, bytes.Join(lines[5:35], nil))
		replayCase(t, l, 40, slices.Repeat([]string{"replayed"}, 30)...)
	})
	t.Run("a run with a long record", func(t *testing.T) {
		l, path := newLog(t, audit.Options{})
		appendN(t, l, 1)
		long := rec("long")
		long.Annotations["note"] = strings.Repeat("n", 20<<10)
		if err := l.Append(context.Background(), long); err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 2)
		lines := readLines(t, path)
		tear(t, path, append(bytes.Clone(lines[1]), lines[2]...))
		replayCase(t, l, 4, "replayed", "replayed")
	})
	t.Run("without a hint", func(t *testing.T) {
		// Written by an nsrel before the hint (its lock file empty):
		// the look back tells.
		l, path := newLog(t, audit.Options{})
		appendN(t, l, 5)
		if err := os.Truncate(path+".lock", 0); err != nil {
			t.Fatal(err)
		}
		lines := readLines(t, path)
		tear(t, path, lines[2])
		replayCase(t, l, 5, "replayed")
	})
	t.Run("thirty records without a hint", func(t *testing.T) {
		// Written by an nsrel before the hint: the chain is followed
		// by its links from the first record of the file.
		l, path := newLog(t, audit.Options{})
		appendN(t, l, 40)
		if err := os.Truncate(path+".lock", 0); err != nil {
			t.Fatal(err)
		}
		lines := readLines(t, path)
		tear(t, path, bytes.Join(lines[5:35], nil))
		replayCase(t, l, 40, slices.Repeat([]string{"replayed"}, 30)...)
	})
	t.Run("thirty records, the hint two rotations behind", func(t *testing.T) {
		// A crash lost the hints of the appends after the one kept
		// (written without a sync): the hint names a rotated file
		// older than the newest.
		l, path := newLog(t, audit.Options{})
		appendN(t, l, 3)
		hint, err := os.ReadFile(path + ".lock")
		if err != nil {
			t.Fatal(err)
		}
		// Rotated by hand, twice: files of seqs 1 to 3 and 4 to 6.
		for _, first := range []int{1, 4} {
			if first > 1 {
				appendN(t, l, 3)
			}
			if err := os.Rename(path, fmt.Sprintf("%s.%012d", path, first)); err != nil {
				t.Fatal(err)
			}
		}
		appendN(t, l, 40)
		if err := os.WriteFile(path+".lock", hint, 0o600); err != nil {
			t.Fatal(err)
		}
		lines := readLines(t, path)
		tear(t, path, bytes.Join(lines[5:35], nil))
		replayCase(t, l, 46, slices.Repeat([]string{"replayed"}, 30)...)
	})
	t.Run("thirty records after copies first, without a hint", func(t *testing.T) {
		// The file's first lines are older records again (first in a
		// rotated file): the chain is followed from the first record
		// after them.
		l, path := newLog(t, audit.Options{})
		appendN(t, l, 5)
		copiesFirst(t, path, 2, 5)
		appendN(t, l, 1) // the damage record of the copies (seq 6), seq 7
		files, err := l.Files()
		if err != nil {
			t.Fatal(err)
		}
		d, _ := damageRecord(t, files...)
		ack := audittest.AckOf(d, "checked")
		if err := l.Append(context.Background(), ack); err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 40)
		if err := os.Truncate(path+".lock", 0); err != nil {
			t.Fatal(err)
		}
		lines := readLines(t, path)
		tear(t, path, bytes.Join(lines[8:38], nil))
		replayCase(t, l, 48, slices.Repeat([]string{"replayed"}, 30)...)
	})
	t.Run("thirty records first in a file, without a hint", func(t *testing.T) {
		// A rotation put a stale block of 26 KB first in the new file,
		// and the hint is gone: the records of the file at or below the
		// last of the file before are not the chain's, however many.
		l, path := newLog(t, audit.Options{})
		appendN(t, l, 40)
		copiesFirst(t, path, 5, 35)
		if err := os.Truncate(path+".lock", 0); err != nil {
			t.Fatal(err)
		}
		replayCase(t, l, 40, slices.Repeat([]string{"replayed"}, 30)...)
	})
	t.Run("700 KiB of records without a hint", func(t *testing.T) {
		// More than a first version's 512 KiB window, less than the
		// longest write an append makes (a damage record and a record,
		// up to 1 MiB each): it took a copy for its anchor and forked.
		var c handChain
		for i := range 3000 {
			r := rec(fmt.Sprint("c", i))
			r.Annotations["note"] = strings.Repeat("n", 600)
			c.add(t, r)
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "audit.jsonl")
		var block [][]byte
		size := 0
		for i := 100; size < 700<<10; i++ {
			block, size = append(block, c.lines[i]), size+len(c.lines[i])
		}
		writeLines(t, path, append(slices.Clone(c.lines), block...))
		l, err := audit.Open(path, audit.Options{})
		if err != nil {
			t.Fatal(err)
		}
		replayCase(t, l, 3000, slices.Repeat([]string{"replayed"}, len(block))...)
	})
	t.Run("garbled line after", func(t *testing.T) {
		l, path := newLog(t, audit.Options{})
		appendN(t, l, 5)
		lines := readLines(t, path)
		tear(t, path, append(bytes.Clone(lines[2]), "garbled line\n"...))
		replayCase(t, l, 5, "replayed", "garbled")
	})
}

// TestReplacedRecordLine: a record line of a seq the chain has, with
// other contents and a hash that matches them (what root on the node
// can write), at the end of the log: the append records it as kind
// replaced, and verify fails, acknowledged or not, plain or sealed. It
// was recorded as an older record again, which an ack cleared.
func TestReplacedRecordLine(t *testing.T) {
	for _, sealed := range []bool{false, true} {
		t.Run(fmt.Sprint("sealed ", sealed), func(t *testing.T) {
			l, path, keys := logMaybeSealed(t, sealed)
			appendN(t, l, 5)
			lines := readLines(t, path)
			forged := bytes.Replace(bytes.TrimSuffix(lines[3], []byte("\n")), []byte(`"container_id":"c`), []byte(`"container_id":"evil-c`), 1)
			at := bytes.LastIndex(forged, []byte(`,"hash":"`))
			forged = append(forged[:at:at], `,"hash":"`+lineHash(forged)+`"}`+"\n"...)
			if _, err := audit.Decode(forged); err != nil {
				t.Fatalf("setup: the forged line does not decode: %v", err)
			}
			tear(t, path, forged)
			appendN(t, l, 1)
			var d *audit.Record
			for r, err := range audit.Records(path) {
				if err == nil && r.Stage == audit.StageDamaged {
					d = r
				}
			}
			if d == nil || len(d.Damage) != 1 || d.Damage[0].Kind != "replaced" {
				t.Fatalf("damage record %+v, want one line of kind replaced", d)
			}
			ack := audittest.AckOf(d, "checked")
			if err := l.Append(context.Background(), ack); err != nil {
				t.Fatal(err)
			}
			if _, err := verify(t, l, audit.VerifyOptions{Keys: keys}); err == nil || !strings.Contains(err.Error(), "with other bytes than the record of seq") {
				t.Errorf("verify after the ack: %v, want the replaced record", err)
			}
			if r, err := l.Searcher().Last("evil-c2", nil); err != nil || r != nil {
				t.Errorf("search for the forged record's container: %+v, %v; want none (the damage record lists its line)", r, err)
			}
		})
	}
}

// TestSearchSkipsReplayed: once a damage record lists an older record
// again, searches skip it: a container's last record is its own last,
// and audit ack's search finds a damage record that an older record of
// no container, replayed after it, hid. Also once the file is rotated:
// the damage record names it as the current file was named then (the
// search looked for the lines under the current file's name).
func TestSearchSkipsReplayed(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 2)
	stop := rec("c1")
	stop.Stage, stop.Ancestry = audit.StagePoststop, nil
	if err := l.Append(context.Background(), stop); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	tear(t, path, lines[1]) // c1's createRuntime again
	appendN(t, l, 1)
	if r, err := l.Searcher().Last("c1", nil); err != nil || r == nil || r.Seq != 3 {
		t.Errorf("c1's last record: %+v, %v; want seq 3 (poststop), not the older record again", r, err)
	}
	if r, err := l.Searcher().Everywhere().Last("", func(r *audit.Record) bool { return r.Seq <= 4 }); err != nil || r == nil || r.Seq != 4 || r.Stage != audit.StageDamaged {
		t.Errorf("the record of no container at or before seq 4: %+v, %v; want the damage record", r, err)
	}
	rotating, err := audit.Open(path, audit.Options{RotateBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := rotating.Append(context.Background(), rec("c9")); err != nil {
		t.Fatal(err)
	}
	if files, _ := l.Files(); len(files) != 2 {
		t.Fatalf("files %v, want one rotated", files)
	}
	if r, err := l.Searcher().Last("c1", nil); err != nil || r == nil || r.Seq != 3 {
		t.Errorf("c1's last record after rotation: %+v, %v; want seq 3 (poststop)", r, err)
	}
}

// TestShippedReplayAfterManyRepeats: a shipper's copy of a log whose
// damage record lists an older record again, after 4,200 records each
// sent twice: the copy dropped the repeats, and the damage record's
// line was looked for among the first 4,096 only.
func TestShippedReplayAfterManyRepeats(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 4200)
	lines := readLines(t, path)
	tear(t, path, append(bytes.Clone(lines[2]), "garbled line\n"...))
	replayCase(t, l, 4200, "replayed", "garbled")
	node := readLines(t, path)
	var copied [][]byte
	for i, line := range node {
		copied = append(copied, line)
		if i >= 3 && i < 4200 {
			copied = append(copied, line) // sent again
		}
	}
	cp := filepath.Join(t.TempDir(), "copy.jsonl")
	writeLines(t, cp, copied)
	s, err := audit.Verify([]string{cp}, audit.VerifyOptions{Shipped: true})
	if err != nil || s.Repeated < 4197 {
		t.Errorf("verify of the copy: %v (%d repeated)", err, s.Repeated)
	}
}

// TestReplacedRecordLineRetained: the damage record of a replaced
// record line stays in the log after retention removed the file that
// held the line: verify still fails (it passed once the line was gone).
func TestReplacedRecordLineRetained(t *testing.T) {
	l, path := newLog(t, audit.Options{RotateBytes: 2500, KeepFiles: 1})
	appendN(t, l, 2)
	lines := readLines(t, path)
	forged := bytes.Replace(bytes.TrimSuffix(lines[1], []byte("\n")), []byte(`"container_id":"c`), []byte(`"container_id":"evil-c`), 1)
	at := bytes.LastIndex(forged, []byte(`,"hash":"`))
	forged = append(forged[:at:at], `,"hash":"`+lineHash(forged)+`"}`+"\n"...)
	tear(t, path, forged)
	appendN(t, l, 1)
	if d := audittest.AckDamage(t, l, path); len(d.Damage) != 1 || d.Damage[0].Kind != "replaced" {
		t.Fatalf("damage record %+v, want one line of kind replaced", d)
	}
	// Until retention removes the replaced line's file, the damage
	// record's kept.
	var files []string
	for range 8 {
		appendN(t, l, 1)
		var err error
		if files, err = l.Files(); err != nil {
			t.Fatal(err)
		}
		if filepath.Base(files[0]) != fmt.Sprintf("audit.jsonl.%012d", 1) {
			break
		}
	}

	if filepath.Base(files[0]) == fmt.Sprintf("audit.jsonl.%012d", 1) {
		t.Fatalf("setup: the file of the replaced line is kept: %v", files)
	}
	if _, err := audit.Verify(files, audit.VerifyOptions{Partial: true}); err == nil || !strings.Contains(err.Error(), "with other bytes") {
		t.Errorf("verify once retention removed the replaced line's file: %v", err)
	}
}

// TestReplayFirstRetained: an older record again first in a new file,
// recorded, acknowledged, and the file of its original removed by
// retention: verify passes (the chain seemed to start at the copy, after
// a retention record ending with the same record).
func TestReplayFirstRetained(t *testing.T) {
	l, path := newLog(t, audit.Options{RotateBytes: 3000, KeepFiles: 1})
	appendN(t, l, 3)
	copiesFirst(t, path, 2, 3)
	appendN(t, l, 1)
	if d := audittest.AckDamage(t, l, path); len(d.Damage) != 1 || d.Damage[0].Kind != "replayed" {
		t.Fatalf("damage record %+v, want one older record again", d)
	}
	if _, err := verify(t, l, audit.VerifyOptions{}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	for range 4 {
		appendN(t, l, 1)
		if files, _ := l.Files(); filepath.Base(files[0]) != fmt.Sprintf("audit.jsonl.%012d", 1) {
			break
		}
	}
	files, _ := l.Files()
	if filepath.Base(files[0]) == fmt.Sprintf("audit.jsonl.%012d", 1) {
		t.Fatalf("setup: the first file is kept: %v", files)
	}
	s, err := verify(t, l, audit.VerifyOptions{})
	if err != nil || len(s.Damage) != 1 || len(s.Damage[0].Lines) != 1 || s.Damage[0].Lines[0] != files[0]+":1" {
		t.Errorf("verify once retention removed the original's file (files %v): %v (damage %+v)", files, err, s.Damage)
	}
}

// TestReplayGenesisCopiesRetained: as TestReplayFirstRetained, the
// copies first in the new file beginning with seq 1 (the log's first
// file's blocks, freed by retention, exposed by a crash in a new one).
// Verify took the copy of seq 1 for the chain's first record and
// failed for good once retention removed the original's file ("expected
// seq 3 after seq 2", or the damage record's lines not found), and
// retention described the copies' file as holding records from seq 1.
func TestReplayGenesisCopiesRetained(t *testing.T) {
	for _, copies := range []int{1, 2, 3} {
		t.Run(fmt.Sprint(copies), func(t *testing.T) {
			l, path := newLog(t, audit.Options{RotateBytes: 3000, KeepFiles: 1})
			appendN(t, l, 3)
			copiesFirst(t, path, 0, copies)
			appendN(t, l, 1)
			d := audittest.AckDamage(t, l, path)
			if len(d.Damage) != copies || d.Damage[0].Kind != "replayed" {
				t.Fatalf("damage record %+v, want %d older records again", d, copies)
			}
			files, _ := l.Files()
			for range 4 {
				if filepath.Base(files[0]) != fmt.Sprintf("audit.jsonl.%012d", 1) {
					break
				}
				appendN(t, l, 1)
				files, _ = l.Files()
			}
			if filepath.Base(files[0]) == fmt.Sprintf("audit.jsonl.%012d", 1) {
				t.Fatalf("setup: the first file is kept: %v", files)
			}
			s, err := verify(t, l, audit.VerifyOptions{})
			if err != nil || len(s.Damage) != 1 || len(s.Damage[0].Lines) != copies || s.Damage[0].Lines[0] != files[0]+":1" || s.FirstSeq != d.Seq {
				t.Fatalf("verify once retention removed the original's file (files %v): %v (first seq %d, damage %+v)", files, err, s.FirstSeq, s.Damage)
			}
			// Until retention removes the copies' file too: its records
			// begin with the damage record.
			copiesFile := filepath.Base(files[0])
			for range 8 {
				if files, _ = l.Files(); filepath.Base(files[0]) != copiesFile {
					break
				}
				appendN(t, l, 1)
			}
			if s, err = verify(t, l, audit.VerifyOptions{}); err != nil {
				t.Fatalf("verify once retention removed the copies' file too: %v", err)
			}
			i := slices.IndexFunc(s.Dropped, func(x audit.Dropped) bool { return x.File == copiesFile })
			if i < 0 || s.Dropped[i].FirstSeq != d.Seq {
				t.Errorf("retention of the copies' file %s: %+v; want its records from seq %d", copiesFile, s.Dropped, d.Seq)
			}
		})
	}
}

// TestReplayAfterTwoCrashes: a crash zeroes the current file's only
// line (rotating on every append), the next append rotates it and goes
// on; a second crash leaves in the new file a copy of an older record.
// The rotated file just before holds no record: the append reads on to
// the one before it for the last record, and takes the copy for an
// older record again. It took the copy for the head, and with no name
// left for the file that held it, refused every append after.
func TestReplayAfterTwoCrashes(t *testing.T) {
	l, path := newLog(t, audit.Options{RotateBytes: 1})
	twoCrashes(t, l, path)
	if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOperator, Stage: audit.StageAck, Note: "x"}); err != nil {
		t.Fatal(err)
	}
	files, err := l.Files()
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	var kinds []string
	for r, err := range audit.Records(files...) {
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, r.Seq)
		for _, d := range r.Damage {
			kinds = append(kinds, d.Kind)
		}
	}
	times := map[uint64]int{}
	for _, seq := range seqs {
		times[seq]++
	}
	top := slices.Max(seqs)
	if times[2] != 2 || len(times) != int(top) || seqs[len(seqs)-1] != top || !slices.Contains(kinds, "replayed") {
		t.Errorf("seqs %v (the copy of seq 2 among them), damaged lines %v; want each seq once but 2, the chain going on past the copy, recorded as replayed", seqs, kinds)
	}
}

// BenchmarkAppendAfterStaleBlock measures the append that records a
// stale block of 1 MiB of older records (about 800 lines) at the end of
// the log, with the hint the last append left (hint) and without
// (look-back): the hint's walk is made once; made for each line, it took
// seconds for 4 MiB, under the log's lock.
func BenchmarkAppendAfterStaleBlock(b *testing.B) {
	for _, hint := range []bool{true, false} {
		b.Run(map[bool]string{true: "hint", false: "look-back"}[hint], func(b *testing.B) {
			dir := b.TempDir()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				path := filepath.Join(dir, strconv.Itoa(i), "audit.jsonl")
				l, err := audit.Open(path, audit.Options{})
				if err != nil {
					b.Fatal(err)
				}
				for range 40 {
					if err := l.Append(context.Background(), rec("c")); err != nil {
						b.Fatal(err)
					}
				}
				data, err := os.ReadFile(path)
				if err != nil {
					b.Fatal(err)
				}
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					b.Fatal(err)
				}
				for n := 0; n < 1<<20; n += len(data) {
					f.Write(data)
				}
				f.Close()
				if !hint {
					os.Truncate(path+".lock", 0)
				}
				b.StartTimer()
				if err := l.Append(context.Background(), rec("after")); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestReplayStaleHintDamaged: the hint in the lock file is older than
// the log (a crash lost its write; here put back), a record after it is
// damaged, and a copy of a later record ends the log: the walk from the
// hint cannot follow the chain past the damaged record, so the copy is
// looked back for, and recorded. It was taken for the head (seq 13
// written twice).
func TestReplayStaleHintDamaged(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 10)
	hint, err := os.ReadFile(path + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 3)
	if err := os.WriteFile(path+".lock", hint, 0o600); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	lines[10][20] ^= 1 // seq 11 damaged
	writeLines(t, path, append(lines, lines[11]))
	appendN(t, l, 1)
	var seqs []uint64
	for r, err := range audit.Records(path) {
		if err == nil {
			seqs = append(seqs, r.Seq)
		}
	}
	d, _ := damageRecord(t, path)
	var kinds []string
	for _, dl := range d.Damage {
		kinds = append(kinds, dl.Kind)
	}
	if want := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 12, 14, 15}; d.Seq != 14 || !slices.Equal(kinds, []string{"replayed"}) || !slices.Equal(seqs, want) {
		t.Errorf("seqs %v, damage record seq %d of kinds %q; want %v, seq 14 recording the copy", seqs, d.Seq, kinds, want)
	}
}

// TestReplayAfterTwoCrashesRetained: after two crashes in a row (a
// rotated file zeroed whole, then older records first in the next, the
// damage record of both first in the file after), retention goes on
// past them, and verify passes after every append, wherever the files
// retention keeps begin: with the zeroed file first, with the file of
// older records first, or with the damage record first. Retention
// stopped at the zeroed file, and verify failed once it had removed the
// files before it (the zeroed line, then an older record, taken for the
// chain's first). Also when no rotation came at the append after the
// second crash (the damage record after the older records, in their
// file).
func TestReplayAfterTwoCrashesRetained(t *testing.T) {
	for _, tc := range []struct {
		keep     int
		sameFile bool
	}{{1, false}, {2, false}, {3, false}, {4, false}, {5, false}, {6, false}, {7, false}, {2, true}, {3, true}, {4, true}, {5, true}, {6, true}} {
		keep := tc.keep
		t.Run(fmt.Sprint("keep ", keep, " same file ", tc.sameFile), func(t *testing.T) {
			l, path := newLog(t, audit.Options{RotateBytes: 1})
			last := l
			if tc.sameFile {
				// No rotation at the append after the second crash: its
				// damage record follows the older record in the file.
				var err error
				if last, err = audit.Open(path, audit.Options{RotateBytes: 1 << 20}); err != nil {
					t.Fatal(err)
				}
			}
			twoCrashesIn(t, l, path, last)
			files, err := l.Files()
			if err != nil {
				t.Fatal(err)
			}
			d, _ := damageRecord(t, files...)
			if len(d.Damage) != 2 || d.Damage[0].Kind != "zeroed" || d.Damage[1].Kind != "replayed" {
				t.Fatalf("setup: damage record lists %+v", d.Damage)
			}
			if err := l.Append(context.Background(), audittest.AckOf(d, "checked")); err != nil {
				t.Fatal(err)
			}
			var warns []error
			l, err = audit.Open(path, audit.Options{RotateBytes: 1, KeepFiles: keep, Warn: func(err error) { warns = append(warns, err) }})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 14 {
				if err := l.Append(context.Background(), rec(fmt.Sprint("r", i))); err != nil {
					t.Fatal(err)
				}
				if s, err := verify(t, l, audit.VerifyOptions{}); err != nil {
					files, _ := l.Files()
					t.Fatalf("after %d appends (files %v): verify: %v", i+1, files, err)
				} else if i == 0 && s.FirstSeq == 0 {
					t.Fatalf("summary %+v", s)
				}
			}
			if files, err := l.Files(); err != nil || len(files) != keep+1 {
				t.Errorf("files %v (%v), want %d: retention stopped", files, err, keep+1)
			}
			if len(warns) > 0 {
				t.Errorf("warnings: %v", warns)
			}
		})
	}
}

// TestRetentionFirstAfterCopies: retention describes a file that begins
// with an older record again (listed by the damage record after it) by
// the records of the chain it holds: its first seq is the damage
// record's, not the copy's, and its last the record before it in the
// file retention removed before (not the record the copy goes on from).
func TestRetentionFirstAfterCopies(t *testing.T) {
	l, path := newLog(t, audit.Options{RotateBytes: 3000, KeepFiles: 1})
	appendN(t, l, 3)
	copiesFirst(t, path, 1, 2) // a copy of seq 2
	appendN(t, l, 1)
	audittest.AckDamage(t, l, path)
	var dropped []audit.Dropped
	seen := map[string]bool{}
	for range 12 {
		appendN(t, l, 1)
		if _, err := verify(t, l, audit.VerifyOptions{}); err != nil {
			t.Fatal(err)
		}
		files, err := l.Files()
		if err != nil {
			t.Fatal(err)
		}
		for r, err := range audit.Records(files...) {
			if err == nil && r.Stage == audit.StageRetention && r.Dropped != nil && !seen[r.Dropped.File] {
				seen[r.Dropped.File] = true
				dropped = append(dropped, *r.Dropped)
			}
		}
	}
	if len(dropped) < 2 || dropped[0].FirstSeq != 1 || dropped[0].LastSeq != 3 || dropped[1].FirstSeq != 4 {
		t.Errorf("retention records %+v; want the first file 1 to 3, the next from 4 (the damage record after the copy of seq 2)", dropped)
	}
}

// copiesFirst rotates the log at path by hand (to PATH.000000000001)
// and begins its new current file with copies of lines [from, to) of
// the old (counted from 0): older records again that a crash exposed
// first in a new file.
func copiesFirst(t *testing.T, path string, from, to int) {
	t.Helper()
	lines := readLines(t, path)
	if err := os.Rename(path, fmt.Sprintf("%s.%012d", path, 1)); err != nil {
		t.Fatal(err)
	}
	writeLines(t, path, lines[from:to])
}

// twoCrashes makes two crashes in a row on the log l at path, which
// rotates at every append: the current file (seq 8) zeroed, then, in
// the next, a copy of the file of seq 2; then two appends (the damage
// record of both, seq 8, and seq 9).
func twoCrashes(t *testing.T, l *audit.Log, path string) {
	t.Helper()
	twoCrashesIn(t, l, path, l)
}

// twoCrashesIn is twoCrashes with the last two appends made through
// last (a log of other options on the same path).
func twoCrashesIn(t *testing.T, l *audit.Log, path string, last *audit.Log) {
	t.Helper()
	appendN(t, l, 8)
	lines := readLines(t, path)
	writeLines(t, path, [][]byte{bytes.Repeat([]byte{0}, len(lines[len(lines)-1])-1)})
	appendN(t, l, 1)
	all, err := l.Files()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(all[1]) != fmt.Sprintf("audit.jsonl.%012d", 2) {
		t.Fatalf("setup: files %v", all)
	}
	older, err := os.ReadFile(all[1]) // seq 2
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, older, 0o600); err != nil {
		t.Fatal(err)
	}
	appendN(t, last, 2)
}

// TestForkedLogWithoutHint: a log an earlier nsrel forked (it took the
// last of a stale block for its head, and went on after it) and left
// without a hint: the records after the fork, real containers' records
// of seqs the chain had, are not listed as replaced (forged) lines; the
// append goes on from the fork's head, as the earlier nsrel did, and
// verify reports the fork.
func TestForkedLogWithoutHint(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 40)
	lines := readLines(t, path)
	tear(t, path, bytes.Join(lines[5:35], nil))
	// The fork: records of seqs 36 to 38 after the copy of seq 35.
	prev, err := audit.Decode(bytes.TrimSuffix(lines[34], []byte("\n")))
	if err != nil {
		t.Fatal(err)
	}
	var fork []byte
	for i := range 3 {
		r := rec(fmt.Sprint("fork", i))
		r.Time, r.Host, r.Version, r.Seq, r.Prev = prev.Time, prev.Host, prev.Version, prev.Seq+1, prev.Hash
		line, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		fork, prev = append(fork, line...), r
	}
	tear(t, path, fork)
	if err := os.Truncate(path+".lock", 0); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 1)
	files, err := l.Files()
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for r, err := range audit.Records(files...) {
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, r.Seq)
		for _, d := range r.Damage {
			if d.Kind == "replaced" {
				t.Errorf("a record of the fork listed as replaced: %+v", d)
			}
		}
	}
	if got := seqs[len(seqs)-1]; got != 39 {
		t.Errorf("the append's seq %d, want 39 (after the fork's head); seqs %v", got, seqs)
	}
	if _, err := verify(t, l, audit.VerifyOptions{}); err == nil {
		t.Error("verify passed a forked chain")
	}
}

// TestCheckpointIfDueWritesHint: a quiet node's writer (the recorder, the
// NRI plugin) that finds the head for a checkpoint without appending
// leaves it in the lock file, so that the next append, and its own next
// call, need not follow the chain from an anchor (without a hint, every
// call read up to 4 MiB twice under the lock).
func TestCheckpointIfDueWritesHint(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cp.jsonl")
	l, path := newLog(t, audit.Options{Checkpoints: &audit.CheckpointOptions{EverySeconds: 60, File: file}})
	appendN(t, l, 5)
	if err := os.Truncate(path+".lock", 0); err != nil {
		t.Fatal(err)
	}
	if err := l.CheckpointIfDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	hint, err := os.ReadFile(path + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	last, err := audit.Decode(bytes.TrimSuffix(lines[4], []byte("\n")))
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(string(hint)); len(f) != 9 || f[0] != "nsrel-head/1" || f[7] != "5" || f[8] != last.Hash {
		t.Errorf("lock file after CheckpointIfDue: %q, want the hint of seq 5", hint)
	}
}

// TestShippedPartialAfterReplay: a collector's copy that starts after
// the original of an older record again (verify --shipped --partial of
// the lines shipped since some day) passes: the copy, which a damage
// record lists, is dropped as a repeat, and the chain starts with its
// own records; also when it comes after a damaged line (records passed
// on already). Before, the copy was taken for the chain's first record
// ("expected seq 5 after seq 4"), or, after records were passed on, for
// a replaced record. The original itself, first in the copy, is the
// chain's first record (it was dropped too, as listed). An older record
// no damage record lists, or one of other bytes, still fails.
func TestShippedPartialAfterReplay(t *testing.T) {
	node := func(t *testing.T, garbledFirst bool) (string, [][]byte) {
		l, path := newLog(t, audit.Options{})
		appendN(t, l, 10)
		lines := readLines(t, path)
		if garbledFirst {
			tear(t, path, []byte("garbled line\n"))
			appendN(t, l, 1)
			audittest.AckDamage(t, l, path)
		}
		tear(t, path, lines[3]) // seq 4 again
		appendN(t, l, 2)
		audittest.AckDamage(t, l, path)
		if _, err := verify(t, l, audit.VerifyOptions{}); err != nil {
			t.Fatal(err)
		}
		return path, readLines(t, path)
	}
	check := func(t *testing.T, lines [][]byte, from int, wantErr string) {
		t.Helper()
		cp := filepath.Join(t.TempDir(), "copy.jsonl")
		writeLines(t, cp, lines[from:])
		first := uint64(0)
		if r, err := audit.Decode(bytes.TrimSuffix(lines[from], []byte("\n"))); err == nil {
			first = r.Seq
		}
		for _, shipped := range []bool{false, true} {
			s, err := audit.Verify([]string{cp}, audit.VerifyOptions{Partial: true, Shipped: shipped})
			if wantErr == "" && err != nil || wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
				t.Errorf("copy from line %d, shipped %v: verify: %v, want %q", from+1, shipped, err, wantErr)
			}
			// The copy's first record is its chain's first: the
			// original of the older record again too.
			if err == nil && s.FirstSeq != first {
				t.Errorf("copy from line %d, shipped %v: the chain starts at seq %d, want %d", from+1, shipped, s.FirstSeq, first)
			}
		}
	}
	for _, garbled := range []bool{false, true} {
		t.Run(fmt.Sprint("garbled line first ", garbled), func(t *testing.T) {
			_, lines := node(t, garbled)
			for _, from := range []int{0, 2, 3, 4, 5, 8} {
				check(t, lines, from, "")
			}
		})
	}
	t.Run("after retention, the original first", func(t *testing.T) {
		// Files that retention left beginning with the original of the
		// older record again at their end: verify --shipped of them,
		// without --partial, starts there and passes.
		var c handChain
		for i := range 5 {
			c.add(t, rec(fmt.Sprint("c", i)))
		}
		c.add(t, &audit.Record{Source: audit.SourceAudit, Stage: audit.StageRetention, Dropped: &audit.Dropped{File: "audit.jsonl.000000000001", FirstSeq: 1, LastSeq: 2, LastHash: c.recs[1].Hash}})
		file := slices.Concat(c.lines[2:6], [][]byte{c.lines[2]}) // seq 3 again
		d := c.add(t, c.damage(file, 4))
		c.add(t, audittest.AckOf(d, "checked"))
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		writeLines(t, path, append(file, c.lines[6:]...))
		for _, shipped := range []bool{false, true} {
			if s, err := audit.Verify([]string{path}, audit.VerifyOptions{Shipped: shipped}); err != nil || s.FirstSeq != 3 {
				t.Errorf("shipped %v: verify: %v (first seq %d, want 3)", shipped, err, s.FirstSeq)
			}
		}
	})
	t.Run("5000 listed", func(t *testing.T) {
		// More older records again than a first version kept (4,096),
		// in a copy that starts after their originals.
		var c handChain
		for i := range 5200 {
			c.add(t, rec(fmt.Sprint("c", i)))
		}
		file := slices.Clone(c.lines)
		for b := range 5 {
			file = append(file, c.lines[b*1000:(b+1)*1000]...)
			d := c.add(t, c.damage(file, len(file)-1000))
			c.add(t, audittest.AckOf(d, "checked"))
			file = append(file, c.lines[len(c.lines)-2:]...)
		}
		cp := filepath.Join(t.TempDir(), "copy.jsonl")
		writeLines(t, cp, file[5100:])
		if _, err := audit.Verify([]string{cp}, audit.VerifyOptions{Partial: true, Shipped: true}); err != nil {
			t.Errorf("verify --shipped --partial: %v", err)
		}
	})
	t.Run("reordered start, its records again listed", func(t *testing.T) {
		// A shipper's reorder at the start (seq 3 before 1 and 2) of a
		// copy that holds seqs 1 and 2 again later, listed by a damage
		// record: the first ones are the chain's (they were dropped,
		// and verify failed: "the chain starts at seq 3").
		var c handChain
		for i := range 10 {
			c.add(t, rec(fmt.Sprint("c", i)))
		}
		file := append(slices.Clone(c.lines), c.lines[0], c.lines[1])
		d := c.add(t, c.damage(file, 10))
		c.add(t, audittest.AckOf(d, "checked"))
		file = append(file, c.lines[len(c.lines)-2:]...)
		shipped := slices.Concat([][]byte{file[2], file[0], file[1]}, file[3:])
		cp := filepath.Join(t.TempDir(), "copy.jsonl")
		writeLines(t, cp, shipped)
		if s, err := audit.Verify([]string{cp}, audit.VerifyOptions{Shipped: true}); err != nil || s.FirstSeq != 1 {
			t.Errorf("verify --shipped: %v (first seq %d, want 1)", err, s.FirstSeq)
		}
	})
	t.Run("not listed", func(t *testing.T) {
		_, lines := node(t, true)
		// Another copy of seq 3 in the collector's file, listed by no
		// damage record.
		extra := slices.Concat(lines[:13], [][]byte{lines[2]}, lines[13:])
		cp := filepath.Join(t.TempDir(), "copy.jsonl")
		writeLines(t, cp, extra[5:])
		if _, err := audit.Verify([]string{cp}, audit.VerifyOptions{Partial: true, Shipped: true}); err == nil || !strings.Contains(err.Error(), "no damage record lists the line") {
			t.Errorf("an older record no damage record lists: verify --shipped --partial: %v", err)
		}
	})
}

// TestRetainedByEarlierNsrel: a log whose rotated file retention removed
// as an nsrel before this one described it (ending with the record the
// older record again first in the next file goes on from, not with its
// own last record) verifies: the chain begins with that copy, listed by
// the damage record after it, and goes on from it. The verify that took
// the listed copy for a damaged line failed it ("the chain starts at seq
// 4, not 1, and no retention record accounts for the records before").
func TestRetainedByEarlierNsrel(t *testing.T) {
	var c handChain
	for i := range 3 {
		c.add(t, rec(fmt.Sprint("c", i)))
	}
	file := [][]byte{c.lines[2]} // seq 3 again, first in the file
	d := c.add(t, c.damage(file, 0))
	c.add(t, &audit.Record{Source: audit.SourceAudit, Stage: audit.StageRetention, Dropped: &audit.Dropped{File: "audit.jsonl.000000000001", FirstSeq: 1, LastSeq: 2, LastHash: c.recs[1].Hash}})
	c.add(t, audittest.AckOf(d, "checked"))
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	writeLines(t, path, append(file, c.lines[3:]...))
	if s, err := audit.Verify([]string{path}, audit.VerifyOptions{}); err != nil {
		t.Errorf("verify: %v", err)
	} else if len(s.Damage) != 1 || s.Damage[0].Ack == nil {
		t.Errorf("damage %+v", s.Damage)
	}
	// A copy that does not go on to the damage record is not taken so.
	writeLines(t, path, append([][]byte{c.lines[1]}, c.lines[3:]...))
	if _, err := audit.Verify([]string{path}, audit.VerifyOptions{}); err == nil {
		t.Error("verify passed a chain whose first line is listed by no damage record")
	}
}

// handChain makes record lines by hand, chained, for shapes of a log
// that appends do not make on demand.
type handChain struct {
	lines [][]byte
	recs  []*audit.Record
}

// add chains r after the records added and returns it.
func (c *handChain) add(t *testing.T, r *audit.Record) *audit.Record {
	t.Helper()
	r.Time, r.Host, r.Seq = "2026-12-07T00:00:00Z", "h", 1
	if n := len(c.recs); n > 0 {
		r.Seq, r.Prev = c.recs[n-1].Seq+1, c.recs[n-1].Hash
	}
	line, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	c.recs, c.lines = append(c.recs, r), append(c.lines, line)
	return r
}

// damage is the damage record of the lines of file (the log's current
// file, audit.jsonl) from index from on, older records again.
func (c *handChain) damage(file [][]byte, from int) *audit.Record {
	r := &audit.Record{Source: audit.SourceAudit, Stage: audit.StageDamaged, Error: "complete line(s) at the end of the log are not the chain's records"}
	off := 0
	for i, l := range file {
		if i >= from {
			k := audit.LineKeyOf(bytes.TrimSuffix(l, []byte("\n")))
			r.Damage = append(r.Damage, audit.DamagedLine{File: "audit.jsonl", Offset: int64(off), Bytes: k.Bytes, SHA256: k.SHA256, Kind: "replayed", Reason: "an older record again"})
		}
		off += len(bytes.TrimSuffix(l, []byte("\n"))) + 1
	}
	return r
}

// TestSealStartAfterCopiesRetained: sealing started (seal-init) on a log
// whose new file begins with an older record again: the seal-start
// record opens the write, before the damage record that lists the copy;
// once retention removed the original's file, verify (with the key)
// takes the copy for a damaged line all the same.
func TestSealStartAfterCopiesRetained(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	opts := audit.Options{RotateBytes: 3000, KeepFiles: 1}
	l, err := audit.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 3)
	copiesFirst(t, path, 2, 3)
	opts.SealState = filepath.Join(dir, "state", "audit.seal")
	if l, err = audit.Open(path, opts); err != nil {
		t.Fatal(err)
	}
	key, _, err := l.StartSealing(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) < 3 || !bytes.Contains(lines[1], []byte(`"stage":"seal-start"`)) || !bytes.Contains(lines[2], []byte(`"stage":"damaged"`)) {
		t.Fatalf("setup: %d lines: %q", len(lines), lines)
	}
	audittest.AckDamage(t, l, path)
	for i := range 8 {
		appendN(t, l, 1)
		if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}); err != nil {
			files, _ := l.Files()
			t.Fatalf("after %d appends (files %v): verify: %v", i+1, files, err)
		}
	}
	if files, _ := l.Files(); filepath.Base(files[0]) == "audit.jsonl.000000000001" {
		t.Errorf("the original's file is kept: %v", files)
	}
}

// TestFarReplacedLine: a record line of a seq more than 65,536 records
// back (further than verify keeps hashes), with other bytes than the
// chain's record of that seq, at the end of the log and listed by a
// damage record as an older record again and acknowledged: verify finds
// the record in a second pass and fails (it was taken for an older
// record again, which the ack cleared); a line of the same bytes as the
// record passes.
func TestFarReplacedLine(t *testing.T) {
	var c handChain
	for i := range 70000 {
		c.add(t, &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: fmt.Sprint("c", i)})
	}
	forged := *c.recs[4]
	forged.ContainerID, forged.Hash = "forged", ""
	forgedLine, err := forged.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		copies int // older records again of far seqs before the line
		line   []byte
		want   string
	}{
		{"same bytes", 0, c.lines[4], ""},
		{"other bytes", 0, forgedLine, "with other bytes than the record of seq 5"},
		// More than a damage record lists (a first version compared
		// only the first 4096 such lines, and passed the forged one).
		{"other bytes after 5000 copies", 5000, forgedLine, "with other bytes than the record of seq 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := handChain{lines: slices.Clone(c.lines), recs: slices.Clone(c.recs)}
			file := slices.Clone(c.lines)
			ack := func(d *audit.Record) {
				c.add(t, audittest.AckOf(d, "checked"))
				file = append(file, c.lines[len(c.lines)-2:]...)
			}
			for b := range tc.copies / 1000 {
				for i := range 1000 {
					file = append(file, c.lines[10+b*1000+i])
				}
				ack(c.add(t, c.damage(file, len(file)-1000)))
			}
			file = append(file, tc.line)
			d := c.add(t, c.damage(file, len(file)-1))
			c.add(t, audittest.AckOf(d, "checked"))
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			writeLines(t, path, append(file, c.lines[len(c.lines)-2:]...))
			_, err := audit.Verify([]string{path}, audit.VerifyOptions{})
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("verify: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestCheckpointAfterStaleHead: a quiet node's checkpoint after a crash
// left copies of the last records, the head's too, at the log's end: it
// leaves no hint at the copy of the head, and the next append records
// the copies (the hint at the copy made the append take it for the
// head, the copies before it never recorded: verify failed for good).
// An append with nothing to write leaves the hint of a sound log's head.
func TestCheckpointAfterStaleHead(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cp.jsonl")
	l, path := newLog(t, audit.Options{Checkpoints: &audit.CheckpointOptions{EverySeconds: 60, File: file}})
	appendN(t, l, 10)
	lines := readLines(t, path)
	tear(t, path, append(bytes.Join(lines[7:10], nil), '\n')) // the last line has none
	if err := os.Truncate(path+".lock", 0); err != nil {
		t.Fatal(err)
	}
	if err := l.CheckpointIfDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	if hint, _ := os.ReadFile(path + ".lock"); len(bytes.TrimSpace(hint)) > 0 {
		t.Errorf("a hint past damaged lines: %q", hint)
	}
	replayCase(t, l, 10, "replayed", "replayed", "replayed")

	t.Run("nothing to write", func(t *testing.T) {
		l, path := newLog(t, audit.Options{})
		recs := appendN(t, l, 5)
		if err := os.Truncate(path+".lock", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := l.AppendWith(context.Background(), func(*audit.Searcher) (*audit.Record, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
		hint, _ := os.ReadFile(path + ".lock")
		if f := strings.Fields(string(hint)); len(f) != 9 || f[7] != "5" || f[8] != recs[4].Hash {
			t.Errorf("lock file after an append with nothing to write: %q, want the hint of seq 5", hint)
		}
	})
}

// TestShippedListedStartForged: root on the node, later, with the
// sealing key of the moment, appends past a gap a damage record listing
// the first records of a collector's copy (which it reads in the node's
// files) as older records again, an ack, and a retention record for the
// records before: verify --shipped dropped the copy's real records as
// copies at its start and passed root's chain in their place, with the
// key and the checkpoints that name them. Without --partial the copy's
// records are its chain (the gap fails); with --partial, a run that
// holds a record a checkpoint names, or goes on from one, fails; one no
// checkpoint ties to the chain passes on the damage record's word, said
// in the summary (ListedStart).
func TestShippedListedStartForged(t *testing.T) {
	for _, tc := range []struct {
		name          string
		partial       bool
		every, from   int // checkpoints every so many records; the copy from seq from+1
		want          string
		wantListedRun int
	}{
		{"whole", false, 3, 3, "expected seq 12 after seq 11", 0},
		{"partial, a checkpoint in the run", true, 3, 3, "go on from the record a checkpoint names (seq 4,", 0},
		{"partial, going on from a checkpoint", true, 8, 9, "go on from the record a checkpoint names (seq 9,", 0},
		{"partial, between checkpoints", true, 8, 10, "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, path, key := sealedLog(t, audit.Options{Checkpoints: &audit.CheckpointOptions{EveryRecords: tc.every, File: filepath.Join(dir, "ckpt.jsonl")}})
			appendN(t, l, 10) // seq 2..11
			var cps []audit.Checkpoint
			for c, err := range audit.ReadCheckpoints(filepath.Join(dir, "ckpt.jsonl")) {
				if err != nil {
					t.Fatal(err)
				}
				cps = append(cps, c)
			}
			copied := readLines(t, path)[tc.from:] // the collector's copy
			// Later: root takes the sealing state, skips seq 12.
			forge := stolenKey(t, filepath.Join(filepath.Dir(path), "state", "audit.seal"))
			forge(12, strings.Repeat("0", 64))
			var c handChain
			d := c.damage(copied, 0)
			d.Seq = 13
			prev := strings.Repeat("b", 64)
			dl := chainFrom(prev, [][]byte{recordLine(t, d)}, 13, forge)
			dr, err := audit.Decode(bytes.TrimSuffix(dl[0], []byte("\n")))
			if err != nil {
				t.Fatal(err)
			}
			ack := audittest.AckOf(dr, "checked")
			ack.Seq = 14
			ret := &audit.Record{Seq: 15, Source: audit.SourceAudit, Stage: audit.StageRetention,
				Dropped: &audit.Dropped{File: "audit.jsonl.000000000001", FirstSeq: 1, LastSeq: 12, LastHash: prev}}
			tail := chainFrom(dr.Hash, [][]byte{recordLine(t, ack), recordLine(t, ret)}, 14, forge)
			cp := filepath.Join(t.TempDir(), "copy.jsonl")
			writeLines(t, cp, slices.Concat(copied, dl, tail))
			s, err := audit.Verify([]string{cp}, audit.VerifyOptions{Shipped: true, Partial: tc.partial, Keys: []audit.VerifyKey{key}, Checkpoints: cps})
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("verify --shipped: %v, want %q", err, tc.want)
			}
			if err == nil && s.ListedStart != tc.wantListedRun {
				t.Errorf("ListedStart %d, want %d", s.ListedStart, tc.wantListedRun)
			}
		})
	}
}
