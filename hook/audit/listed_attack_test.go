package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
)

// madeUpSeq returns a seq retention removed that no checkpoint names.
func madeUpSeq(t *testing.T, first uint64, ckfile string) uint64 {
	t.Helper()
	named := map[uint64]bool{}
	for _, c := range readCheckpoints(t, ckfile) {
		named[c.Seq] = true
	}
	seq := first - 1
	for named[seq] {
		seq--
	}
	return seq
}

// keyAt returns the offset and key of the first line of file holding s.
func keyAt(t *testing.T, file, s string) (int64, audit.LineKey) {
	t.Helper()
	var off int64
	for _, ln := range readLines(t, file) {
		if bytes.Contains(ln, []byte(s)) {
			return off, audit.LineKeyOf(bytes.TrimSuffix(ln, []byte("\n")))
		}
		off += int64(len(ln))
	}
	t.Fatalf("no line of %s holds %s", file, s)
	return 0, audit.LineKey{}
}

// TestMadeUpDamageListedElsewhere: root on the node later (the current
// sealing state in hand) makes up a damage record F with a seq retention
// removed and no checkpoint names, listing records of the chain by their
// places and bytes (one in the current file, one in a rotated file), and
// writes it before the chain's next damage record D, which it writes
// with the current state and which lists F by its bytes at another place.
// Verify matches a damage record's lines by their bytes and passes (with
// the key and the checkpoints); the readers and the hook's search go by
// places: F, listed by nothing that counts, counted, and the records it
// listed were left out of `audit show`, the history and the hook's
// search. A damage record with a line of a higher seq before it is an
// older record again: it counts for nothing.
func TestMadeUpDamageListedElsewhere(t *testing.T) {
	l, path, key, ckfile := victimLog(t)
	s0, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: readCheckpoints(t, ckfile)})
	if err != nil {
		t.Fatal(err)
	}
	files, err := l.Files()
	if err != nil || len(files) != 2 {
		t.Fatalf("files %v, %v; want a rotated file and the current one", files, err)
	}
	vOff, vKey := keyAt(t, path, `"container_id":"victim"`)
	rOff, rKey := keyAt(t, files[0], `"container_id":"c27"`)
	f := &audit.Record{Seq: madeUpSeq(t, s0.FirstSeq, ckfile), Prev: fmt.Sprintf("%064x", 7), Time: "2026-12-07T08:00:00Z", Host: "node-a", Source: audit.SourceAudit, Stage: audit.StageDamaged,
		Damage: []audit.DamagedLine{
			{File: "audit.jsonl", Offset: vOff, Bytes: vKey.Bytes, SHA256: vKey.SHA256, Kind: "garbled", Reason: "made up"},
			{File: filepath.Base(files[0]), Offset: rOff, Bytes: rKey.Bytes, SHA256: rKey.SHA256, Kind: "garbled", Reason: "made up"}}}
	fLine, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	fKey := audit.LineKeyOf(bytes.TrimSuffix(fLine, []byte("\n")))
	d := &audit.Record{Source: audit.SourceAudit, Stage: audit.StageDamaged, Error: "1 complete line(s) at the end of the log are not the chain's records",
		Damage: []audit.DamagedLine{{File: "audit.jsonl", Offset: 0, Bytes: fKey.Bytes, SHA256: fKey.SHA256, Kind: "replayed", Reason: "an older record again"}}}
	if err := l.Append(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	// F right before D: D's bytes, hash and seal stay what they are.
	lines := readLines(t, path)
	writeLines(t, path, append(lines[:len(lines)-1:len(lines)-1], fLine, lines[len(lines)-1]))
	ackAndVerify(t, l, d, key, ckfile)
	victimAndC27Shown(t, l, path, vOff, files[0], rOff)
}

// victimLog makes a sealed log with checkpoints (every 5 records, in
// ckfile) whose first 30 records retention removed but the last file's,
// then a start of container victim and 6 more records in a new current
// file.
func victimLog(t *testing.T) (l *audit.Log, path string, key audit.VerifyKey, ckfile string) {
	t.Helper()
	ckfile = filepath.Join(t.TempDir(), "ckpt.jsonl")
	cps := &audit.CheckpointOptions{EveryRecords: 5, File: ckfile}
	l, path, key = sealedLog(t, audit.Options{Host: "node-a", RotateBytes: 4096, KeepFiles: 1, Checkpoints: cps})
	appendN(t, l, 30)
	l, err := audit.Open(path, audit.Options{Host: "node-a", RotateBytes: 1 << 20, KeepFiles: 1, Checkpoints: cps, SealState: filepath.Join(filepath.Dir(path), "state", "audit.seal")})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), rec("victim")); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 6)
	return l, path, key, ckfile
}

// ackAndVerify acknowledges damage record d, appends two records, and
// fails the test unless verify passes with key and ckfile's checkpoints.
func ackAndVerify(t *testing.T, l *audit.Log, d *audit.Record, key audit.VerifyKey, ckfile string) {
	t.Helper()
	if err := l.Append(context.Background(), audittest.AckOf(d, "power loss")); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2)
	if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: readCheckpoints(t, ckfile)}); err != nil {
		t.Fatalf("setup: verify: %v", err)
	}
}

// victimAndC27Shown checks that the hook's search finds the records of
// victim and c27, and that the readers' rule (audit show, the history)
// leaves out neither line (of the current file at vOff, and of rotated
// file rotated at rOff).
func victimAndC27Shown(t *testing.T, l *audit.Log, path string, vOff int64, rotated string, rOff int64) {
	t.Helper()
	for _, id := range []string{"victim", "c27"} {
		if r, err := l.Searcher().Everywhere().Last(id, nil); err != nil || r == nil {
			t.Errorf("the hook's search for %s: %v, %v; want its record", id, r, err)
		}
	}
	if ok, err := l.HasStart("victim", 4242, 99); err != nil || !ok {
		t.Errorf("HasStart(victim): %v, %v; want true", ok, err)
	}
	snap, err := l.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	listed := snap.Listed()
	var records []audit.Line
	for ln, err := range snap.Lines() {
		if err != nil {
			t.Fatal(err)
		}
		listed.Line(ln.File, ln.Offset, ln.Data)
		if ln.File == path && ln.Offset == vOff || ln.File == rotated && ln.Offset == rOff {
			records = append(records, ln)
		}
	}
	if len(records) != 2 {
		t.Fatalf("found %d of the 2 records", len(records))
	}
	for _, ln := range records {
		if listed.Has(ln.File, ln.Offset, ln.Data) {
			t.Errorf("the readers leave out the record at %s:%d", filepath.Base(ln.File), ln.Offset)
		}
	}
}

// TestListedMadeUpFiled: a made-up record with a seq retention removed,
// filed as an older record again by the next append and acknowledged, is
// left out by the readers and the hook's search, in the log and in a copy
// of its files (under their names, elsewhere); with a line of a high seq
// that does not decode filed beside it (whatever its head says), the
// damage record that lists both still counts (a review: it counted for
// nothing, and the made-up record came back, while verify passed).
func TestListedMadeUpFiled(t *testing.T) {
	high := rec("other")
	high.Seq, high.Time, high.Host = 999999, "2026-12-07T08:00:00Z", "node-a"
	garbled, err := high.Encode()
	if err != nil {
		t.Fatal(err)
	}
	garbled = bytes.Replace(garbled, []byte(`"other"`), []byte(`"otheR"`), 1) // its hash no longer matches
	for name, beside := range map[string][]byte{"alone": nil, "garbled line of a high seq": garbled, "headless line of a high seq": []byte(`{"format":"1.6","seq":999999,"x"}` + "\n")} {
		t.Run(name, func(t *testing.T) {
			ckfile := filepath.Join(t.TempDir(), "ckpt.jsonl")
			cps := &audit.CheckpointOptions{EveryRecords: 5, File: ckfile}
			l, path, key := sealedLog(t, audit.Options{Host: "node-a", RotateBytes: 4096, KeepFiles: 1, Checkpoints: cps})
			appendN(t, l, 30)
			s0, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}})
			if err != nil {
				t.Fatal(err)
			}
			l, err = audit.Open(path, audit.Options{Host: "node-a", RotateBytes: 1 << 20, KeepFiles: 1, Checkpoints: cps, SealState: filepath.Join(filepath.Dir(path), "state", "audit.seal")})
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, l, 3)
			r := rec("madeup")
			r.Seq, r.Time, r.Host, r.Version = madeUpSeq(t, s0.FirstSeq, ckfile), "2026-12-07T08:00:00Z", "node-a", "x"
			line, err := r.Encode()
			if err != nil {
				t.Fatal(err)
			}
			audittest.AppendBytes(t, path, line)
			if beside != nil {
				audittest.AppendBytes(t, path, beside)
			}
			appendN(t, l, 1)
			audittest.AckDamage(t, l, path)
			appendN(t, l, 6)
			if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: readCheckpoints(t, ckfile)}); err != nil {
				t.Fatalf("setup: verify: %v", err)
			}
			files, err := l.Files()
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			var copies []string
			for _, f := range files {
				name := filepath.Join(dir, filepath.Base(f))
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(name, data, 0o600); err != nil {
					t.Fatal(err)
				}
				copies = append(copies, name)
			}
			for _, set := range [][]string{files, copies} {
				c, err := audit.Open(set[len(set)-1], audit.Options{})
				if err != nil {
					t.Fatal(err)
				}
				if r, err := c.Searcher().Everywhere().Last("madeup", nil); err != nil || r != nil {
					t.Errorf("%s: the hook's search for the made-up record: %+v, %v; want none", filepath.Base(set[len(set)-1]), r, err)
				}
				if ok, err := c.HasStart("madeup", 4242, 99); err != nil || ok {
					t.Errorf("%s: HasStart(madeup): %v, %v; want false", filepath.Base(set[len(set)-1]), ok, err)
				}
				snap, err := audit.SnapshotFiles(set)
				if err != nil {
					t.Fatal(err)
				}
				listed := snap.Listed()
				var at audit.Line
				for ln, err := range snap.Lines() {
					if err != nil {
						t.Fatal(err)
					}
					listed.Line(ln.File, ln.Offset, ln.Data)
					if bytes.Contains(ln.Data, []byte(`"container_id":"madeup"`)) {
						at = ln
					}
				}
				if !listed.Has(at.File, at.Offset, at.Data) {
					t.Errorf("%s: the readers show the made-up record at %s:%d", filepath.Base(set[len(set)-1]), filepath.Base(at.File), at.Offset)
				}
				snap.Close()
			}
		})
	}
}

// TestMadeUpRetentionNamesHideNothing: root on the node later, with the
// current sealing state, appends retention records of files that never
// were (by another name with an existing rotated file's suffix, and
// "foo.000000000007") and a damage record listing records of the chain by their
// places and bytes under those names, and acknowledges it: verify takes
// the lines for ones in removed files and passes. The readers and the
// hook's search took the names by their suffixes (or, without one, for
// the damage record's own file) and left the records out. Only the log's
// own names count.
func TestMadeUpRetentionNamesHideNothing(t *testing.T) {
	l, path, key, ckfile, files, vOff, vKey, rOff, rKey := victimsInTwoFiles(t)
	other := "bar" + filepath.Ext(files[0])
	for _, name := range []string{"foo.000000000007", other} {
		if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceAudit, Stage: audit.StageRetention, Dropped: &audit.Dropped{File: name, FirstSeq: 1, LastSeq: 0}}); err != nil {
			t.Fatal(err)
		}
	}
	d := &audit.Record{Source: audit.SourceAudit, Stage: audit.StageDamaged, Error: "made up", Damage: []audit.DamagedLine{
		{File: "foo.000000000007", Offset: vOff, Bytes: vKey.Bytes, SHA256: vKey.SHA256, Kind: "garbled", Reason: "made up"},
		{File: other, Offset: rOff, Bytes: rKey.Bytes, SHA256: rKey.SHA256, Kind: "garbled", Reason: "made up"}}}
	if err := l.Append(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	ackAndVerify(t, l, d, key, ckfile)
	victimAndC27Shown(t, l, path, vOff, files[0], rOff)
}

// TestPathNamedListingsHideNothing: root on the node later, with the
// current sealing state, appended a retention record and a damage record
// naming the log's current and rotated files by paths ("x/audit.jsonl",
// or the log's own path), listing records of the chain at their places,
// and acknowledged the damage: verify took the lines for ones in files
// retention removed and passed with the key and the checkpoints, while
// the readers and the hook's search, placing the paths' base names,
// left the records out (a review's run). A writer names the files by
// their names alone: verify fails such a record, and the readers take
// the path for none of the log's files.
func TestPathNamedListingsHideNothing(t *testing.T) {
	l, path, key, ckfile, files, vOff, vKey, rOff, rKey := victimsInTwoFiles(t)
	cur, rot := path, "x/"+filepath.Base(files[0])
	for _, name := range []string{cur, rot, "foo"} {
		if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceAudit, Stage: audit.StageRetention, Dropped: &audit.Dropped{File: name, FirstSeq: 1, LastSeq: 0}}); err != nil {
			t.Fatal(err)
		}
	}
	d := &audit.Record{Source: audit.SourceAudit, Stage: audit.StageDamaged, Error: "made up", Damage: []audit.DamagedLine{
		{File: cur, Offset: vOff, Bytes: vKey.Bytes, SHA256: vKey.SHA256, Kind: "undecodable", Reason: "made up"},
		{File: rot, Offset: rOff, Bytes: rKey.Bytes, SHA256: rKey.SHA256, Kind: "undecodable", Reason: "made up"},
		{File: "foo", Offset: vOff, Bytes: vKey.Bytes, SHA256: vKey.SHA256, Kind: "undecodable", Reason: "made up"}}}
	if err := l.Append(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), audittest.AckOf(d, "power loss")); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2)
	if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: readCheckpoints(t, ckfile)}); err == nil || !strings.Contains(err.Error(), "by a path: a writer names the log's files by their names alone (made up)") {
		t.Errorf("verify: %v; want the records naming files by paths refused", err)
	}
	victimAndC27Shown(t, l, path, vOff, files[0], rOff)
}

// victimsInTwoFiles is victimLog's log, its files (a rotated one, then
// the current one), and the places and keys of victim's record in the
// current file and of c27's in the rotated one.
func victimsInTwoFiles(t *testing.T) (l *audit.Log, path string, key audit.VerifyKey, ckfile string, files []string, vOff int64, vKey audit.LineKey, rOff int64, rKey audit.LineKey) {
	t.Helper()
	l, path, key, ckfile = victimLog(t)
	files, err := l.Files()
	if err != nil || len(files) != 2 {
		t.Fatalf("files %v, %v; want a rotated file and the current one", files, err)
	}
	vOff, vKey = keyAt(t, path, `"container_id":"victim"`)
	rOff, rKey = keyAt(t, files[0], `"container_id":"c27"`)
	return l, path, key, ckfile, files, vOff, vKey, rOff, rKey
}

// TestRetentionOfNoRotatedName: retention removes rotated files only
// (LOG.NNNNNNNNNNNN): a retention record of another name ("foo", the
// log's current file) was taken at its word, so root, with the current
// sealing state, could say a file was removed that never was.
func TestRetentionOfNoRotatedName(t *testing.T) {
	for _, name := range []string{"foo", "audit.jsonl", "audit.jsonl.31"} {
		l, _, key, ckfile := victimLog(t)
		if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceAudit, Stage: audit.StageRetention, Dropped: &audit.Dropped{File: name, FirstSeq: 1, LastSeq: 0}}); err != nil {
			t.Fatal(err)
		}
		if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: readCheckpoints(t, ckfile)}); err == nil || !strings.Contains(err.Error(), "no rotated file's name") {
			t.Errorf("retention of %q: verify %v; want it refused", name, err)
		}
	}
}
