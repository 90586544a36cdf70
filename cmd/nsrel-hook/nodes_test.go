package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// tornNodeLog writes the log of host: two records, a torn line a crash
// left (torn, short: it names no host) and, ended by the next append, its
// torn-tail record and two records more. It returns the log's lines.
func tornNodeLog(t *testing.T, host, torn string) [][]byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path, audit.Options{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	add := func(n int) {
		for i := range n {
			r := &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: fmt.Sprintf("%s-%d", host, i)}
			if err := l.Append(context.Background(), r); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(2)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(torn)
	f.Close()
	add(2)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	lines = lines[:len(lines)-1]
	if len(lines) != 6 || !bytes.HasSuffix(lines[2], []byte(audit.TornMark+"\n")) {
		t.Fatalf("%s's log: %q", host, lines)
	}
	return lines
}

// TestVerifyNodesTornLine: a collector's stream where a node's torn line
// (ended by the node's next append) names no host, as a short fragment
// does: --nodes gives it to the node whose torn-tail record holds its
// bytes, right before that record, though another node's line came
// between; after the record (a shipper's reorder) it verifies as
// shipped. A torn line whose record never comes names no node. Problems
// are located in the collector's file, counting the torn line.
func TestVerifyNodesTornLine(t *testing.T) {
	a, b := tornNodeLog(t, "node-a", `{"format":"1.2","seq":3,"ti`), tornNodeLog(t, "node-b", `{"format":"1.2","seq":3,"time":"2026-12-0`)
	mixed := filepath.Join(t.TempDir(), "mixed.jsonl")
	run := func(wantCode int, want []string, lines [][]byte, flags ...string) {
		t.Helper()
		if err := os.WriteFile(mixed, bytes.Join(lines, nil), 0o600); err != nil {
			t.Fatal(err)
		}
		checkVerify(t, wantCode, want, append(append([]string{"--nodes"}, flags...), mixed)...)
	}
	ok := []string{"node node-a: OK: 5 records", "node node-b: OK: 5 records", "torn line", "nodes: 2 intact (node-a, node-b), 0 FAILED"}
	// Both torn lines, each with another node's line before its record.
	run(0, ok, [][]byte{a[0], b[0], a[1], a[2], b[1], b[2], a[3], b[3], a[4], b[4], a[5], b[5]})
	run(0, ok, [][]byte{a[0], b[0], a[1], a[2], b[1], b[2], a[3], b[3], a[4], b[4], a[5], b[5]}, "--shipped")
	// node-b's torn line after its record.
	reordered := [][]byte{a[0], b[0], a[1], a[2], b[1], b[3], a[3], b[2], a[4], b[4], a[5], b[5]}
	run(0, ok, reordered, "--shipped")
	run(1, []string{"node node-b: FAILED", "nodes: 1 intact (node-a), 1 FAILED (node-b)"}, reordered)
	// Torn lines sent again, after their record and before it.
	run(0, ok, [][]byte{a[0], b[0], a[1], a[2], b[1], b[2], a[3], b[3], a[2], a[4], b[2], b[4], a[5], b[5]}, "--shipped")
	run(0, ok, [][]byte{a[0], b[0], a[1], a[2], a[2], b[1], b[2], a[3], b[3], a[4], b[4], a[5], b[5]}, "--shipped")
	// Two nodes torn at the same bytes, both lines before either record:
	// each record takes one.
	frag := `{"format":"1.3","seq":3,"ti`
	a2, b2 := tornNodeLog(t, "node-a", frag), tornNodeLog(t, "node-b", frag)
	run(0, ok, [][]byte{a2[0], b2[0], a2[1], b2[1], a2[2], b2[2], a2[3], b2[3], a2[4], b2[4], a2[5], b2[5]})
	// node-a's torn line without its record: a line of any node (in
	// JSON too).
	run(1, []string{"node node-a: OK: 2 records", "FAILED: 1 line(s) name no node"}, [][]byte{a[0], a[1], a[2], b[0], b[1], b[2], b[3]})
	run(1, []string{`"ok":false,`, `"unattributed_lines":1}`}, [][]byte{a[0], a[1], a[2], b[0], b[1], b[2], b[3]}, "--json")
	// node-b's last record edited: named at its line of the stream.
	edited := bytes.Replace(b[5], []byte(`"node-b-1"`), []byte(`"node-b-X"`), 1)
	run(1, []string{"node node-b: FAILED: " + mixed + ":12:", "nodes: 1 intact (node-a), 1 FAILED (node-b)"},
		[][]byte{a[0], b[0], a[1], a[2], b[1], b[2], a[3], b[3], a[4], b[4], a[5], edited})
}

// cutNodeLog writes the log of host: two records (the second edited,
// its head whole, with edit), a torn line frag (short: it names no host),
// the torn line of a second crash that cut its torn-tail record, that
// record, the damage record listing frag's line (and the edited one),
// a record and the ack: 8 lines.
func cutNodeLog(t *testing.T, host, frag string, edit bool) [][]byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	add := func(id string) {
		l, err := audit.Open(path, audit.Options{Host: host})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: id}); err != nil {
			t.Fatal(err)
		}
	}
	add("x-0")
	add("x-1")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if edit {
		data = bytes.Replace(data, []byte(`"x-1"`), []byte(`"x-X"`), 1)
	}
	before := append(data, frag...)
	if err := os.WriteFile(path, before, 0o600); err != nil {
		t.Fatal(err)
	}
	add("x-2")
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The second crash: the write cut 10 bytes into the torn-tail record.
	if err := os.WriteFile(path, after[:len(before)+len(audit.TornMark)+1+10], 0o600); err != nil {
		t.Fatal(err)
	}
	add("x-3")
	l, err := audit.Open(path, audit.Options{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	audittest.AckDamage(t, l, path)
	if data, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if lines = lines[:len(lines)-1]; len(lines) != 8 {
		t.Fatalf("%s's log has %d lines", host, len(lines))
	}
	return lines
}

// TestVerifyNodesTornLineListedByDamage: a node's torn line whose
// torn-tail record a second crash cut short is listed by the next
// append's damage record instead: --nodes gives it to the node of that
// record, though it names no host and other nodes' lines came between.
// Another node torn at the same bytes takes the other line, whichever
// of the records and lines come first.
func TestVerifyNodesTornLineListedByDamage(t *testing.T) {
	mixed := filepath.Join(t.TempDir(), "mixed.jsonl")
	run := func(lines [][]byte, flags ...string) {
		t.Helper()
		if err := os.WriteFile(mixed, bytes.Join(lines, nil), 0o600); err != nil {
			t.Fatal(err)
		}
		checkVerify(t, 0, []string{"nodes: 2 intact (", ", 0 FAILED"}, append(append([]string{"--nodes"}, flags...), mixed)...)
	}
	// a: c0, c1, the torn line, the cut record's torn line, its record,
	// the damage record, c3, the ack; b: 6 lines.
	a := cutNodeLog(t, "node-a", `{"format":"1.3","seq":3,"ti`, false)
	b := tornNodeLog(t, "node-b", `{"format":"1.3","seq":3,"time":"2026-12-0`)
	var lines [][]byte
	for i := range 8 {
		lines = append(lines, a[i])
		if i < len(b) {
			lines = append(lines, b[i])
		}
	}
	run(lines)
	run(lines, "--shipped")
	// Alike: node-a's second line edited (its head names node-a, so the
	// damage record lists it and its torn line), node-b torn at the same
	// bytes.
	frag := `{"format":"1.3","seq":3,"ti`
	a, b = cutNodeLog(t, "node-a", frag, true), tornNodeLog(t, "node-b", frag)
	if !bytes.Equal(a[2], b[2]) {
		t.Fatal("the torn lines differ")
	}
	inOrder := [][]byte{a[0], b[0], a[1], b[1], a[2], b[2], a[3], a[4], a[5], b[3], a[6], a[7], b[4], b[5]}
	run(inOrder)
	run(inOrder, "--shipped")
	// Both records before both torn lines (a shipper's reorder).
	run([][]byte{a[0], b[0], a[1], b[1], a[3], a[4], a[5], b[3], a[2], b[2], a[6], a[7], b[4], b[5]}, "--shipped")
	// node-b's torn-tail record sent twice, before node-a's torn line:
	// the copy waits for no line of its own.
	run([][]byte{b[0], b[1], b[2], b[3], b[3], a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], b[4], b[5]}, "--shipped")
}

// TestVerifyNodesRepeatTakesNoLine: a shipper's repeat of node-a's
// torn-tail record comes while node-c's torn line, with the same bytes,
// waits for node-c's damage record. The repeat used to take that line,
// and node-c failed: its damage record listed a line the copy did not
// hold.
func TestVerifyNodesRepeatTakesNoLine(t *testing.T) {
	frag := `{"format":"1.3","seq":3,"ti`
	a, c := tornNodeLog(t, "node-a", frag), cutNodeLog(t, "node-c", frag, true)
	mixed := filepath.Join(t.TempDir(), "mixed.jsonl")
	for _, lines := range [][][]byte{
		{c[0], c[1], a[0], a[1], a[2], a[3], c[2], a[3], c[3], c[4], c[5], c[6], c[7], a[4], a[5]},
		{c[0], c[1], a[0], a[1], a[2], a[3], c[2], c[3], c[4], c[5], c[6], c[7], a[4], a[5], a[3]},
	} {
		if err := os.WriteFile(mixed, bytes.Join(lines, nil), 0o600); err != nil {
			t.Fatal(err)
		}
		checkVerify(t, 0, []string{"nodes: 2 intact (node-c, node-a), 0 FAILED"}, "--nodes", "--shipped", mixed)
	}
}

// TestVerifyNodesDamageLines: the damaged lines a node's summary lists
// are located in the collector's file, as a plain verify of it does, in
// text and JSON; they named the temporary file of the node's lines.
func TestVerifyNodesDamageLines(t *testing.T) {
	a := cutNodeLog(t, "node-a", `{"format":"1.3","seq":3,"ti`, true)
	b := tornNodeLog(t, "node-b", `{"format":"1.3","seq":3,"time":"2026-12-0`)
	mixed := filepath.Join(t.TempDir(), "mixed.jsonl")
	// node-b's first line first: node-a's lines 2 and 3 are the file's 3 and 4.
	if err := os.WriteFile(mixed, bytes.Join(append([][]byte{b[0]}, append(a, b[1:]...)...), nil), 0o600); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("(%s:3, %s:4, edited)", mixed, mixed)
	checkVerify(t, 0, []string{"node node-a: OK", want}, "--nodes", mixed)
	code, out, stderr := runBin(t, "", "audit", "verify", "--nodes", "--json", mixed)
	if code != 0 || !strings.Contains(out, fmt.Sprintf(`"%s:3"`, mixed)) || strings.Contains(out+stderr, "nsrel-verify-nodes-") {
		t.Errorf("--nodes --json: exit %d, want the damaged lines at %s:3 and :4\n%s%s", code, mixed, out, stderr)
	}
}

// TestVerifyNodesGhostCheckpoints: checkpoints of a host with no record
// in the stream. With --key, one no given key sealed is a line anyone
// who reaches the collector can add: ignored, with a note (it failed the
// whole run); one a given key sealed is its node's, whose records are
// missing: that node fails. Without keys nothing tells them apart: it
// fails.
func TestVerifyNodesGhostCheckpoints(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state", "audit.seal")
	key, err := audit.InitSeal(state, false)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(key.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath, ck := filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "ckpt.jsonl")
	l, err := audit.Open(logPath, audit.Options{Host: "node-a", SealState: state, Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: ck}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	genuine, err := os.ReadFile(ck)
	if err != nil {
		t.Fatal(err)
	}
	forged := fmt.Sprintf(`{"type":"nsrel-checkpoint","format":"1","host":"ghost","log":"/x","seq":1,"hash":"%s","seal":"%s.1.%s","time":"2026-12-04T00:00:00Z"}`+"\n",
		strings.Repeat("ab", 32), key.ID, strings.Repeat("cd", 32))
	if err := os.WriteFile(ck, append(bytes.Clone(genuine), forged...), 0o600); err != nil {
		t.Fatal(err)
	}
	// A genuine sealed checkpoint of node-a copied under another host:
	// the seal does not cover the host, but node-a's records carry the
	// key.
	last := bytes.Split(bytes.TrimSpace(genuine), []byte("\n"))
	relabelled := bytes.Replace(last[len(last)-1], []byte(`"host":"node-a"`), []byte(`"host":"copy"`), 1)
	if err := os.WriteFile(ck, append(append(bytes.Clone(genuine), forged...), append(relabelled, '\n')...), 0o600); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, 0, []string{"nodes: 1 intact (node-a), 0 FAILED", `checkpoints of 2 host(s) without records ignored ("copy", "ghost")`},
		"--nodes", "--key", "@"+keyFile, "--checkpoints", ck, logPath)
	checkVerify(t, 1, []string{"nodes: 1 intact (node-a), 2 FAILED (copy, ghost)"}, "--nodes", "--checkpoints", ck, logPath)
	// node-b, sealed by a key not given, whose records all got lost:
	// ignored (anyone can make up a seal of a key not given), the note
	// naming its key.
	bstate := filepath.Join(dir, "b", "audit.seal")
	if _, err := audit.InitSeal(bstate, false); err != nil {
		t.Fatal(err)
	}
	bck := filepath.Join(dir, "b-ckpt.jsonl")
	bl, err := audit.Open(filepath.Join(dir, "b.jsonl"), audit.Options{Host: "node-b", SealState: bstate, Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: bck}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bl.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "b"}); err != nil {
		t.Fatal(err)
	}
	bkeys, err := audit.ChainKeys(filepath.Join(dir, "b.jsonl"))
	if err != nil || len(bkeys) != 1 {
		t.Fatalf("node-b's keys: %v, %v", bkeys, err)
	}
	var bkey audit.SealID
	for id := range bkeys {
		bkey = id
	}
	checkVerify(t, 0, []string{"nodes: 1 intact (node-a), 0 FAILED", `("copy", "ghost", "node-b")`, "sealed by keys not given (" + bkey.String() + ")"},
		"--nodes", "--key", "@"+keyFile, "--checkpoints", ck, "--checkpoints", bck, logPath)
	// node-a's records lost on the way (another log in their place):
	// its sealed checkpoints fail it.
	other := filepath.Join(dir, "other.jsonl")
	ol, err := audit.Open(other, audit.Options{Host: "node-b"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ol.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "b"}); err != nil {
		t.Fatal(err)
	}
	// The copy under "copy", whose checkpoint seal does not check, is
	// judged as a checkpoint of format 1.0 (a checkpoint seal changed on
	// the way must not set a node's checkpoints aside): it cannot be
	// told from node-a's own when no record carries node-a's key.
	checkVerify(t, 1, []string{"3 FAILED (node-b, copy, node-a)", `ignored ("ghost")`, "node node-a: no record of node node-a"}, "--nodes", "--key", "@"+keyFile, "--checkpoints", ck, other)
	// A record line of another host that carries node-a's key (a line
	// of node-a's log relabelled and sent to the collector) does not
	// make node-a's checkpoints copies: their checkpoint seals name
	// node-a. (It fails the host it names.)
	alog, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	olog, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := audit.Decode(bytes.SplitAfter(alog, []byte("\n"))[1])
	if err != nil || rec.Seal == "" {
		t.Fatalf("node-a's second record: %+v, %v", rec, err)
	}
	rec.Host, rec.Seq, rec.Prev = "node-c", 1, ""
	aline, err := rec.Encode() // its hash made anew, its seal kept
	if err != nil {
		t.Fatal(err)
	}
	stolen := filepath.Join(dir, "stolen.jsonl")
	if err := os.WriteFile(stolen, append(olog, aline...), 0o600); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, 1, []string{"3 FAILED (node-b, node-c, node-a)", "node node-a: no record of node node-a"}, "--nodes", "--key", "@"+keyFile, "--checkpoints", ck, stolen)
	// Checkpoints of format 1.0 (no checkpoint seal): the copy cannot be
	// told from node-a's own when no record carries node-a's key, and
	// node-a's are taken for copies when one does.
	var old []byte
	for _, line := range bytes.SplitAfter(append(append(bytes.Clone(genuine), forged...), append(relabelled, '\n')...), []byte("\n")) {
		old = append(old, regexp.MustCompile(`,"checkpoint_seal":"[^"]*"`).ReplaceAll(line, nil)...)
	}
	oldCk := filepath.Join(dir, "ckpt-1.0.jsonl")
	if err := os.WriteFile(oldCk, old, 0o600); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, 1, []string{"3 FAILED (node-b, copy, node-a)", "node node-a: no record of node node-a"}, "--nodes", "--key", "@"+keyFile, "--checkpoints", oldCk, other)
	checkVerify(t, 1, []string{"2 FAILED (node-b, node-c)", `ignored ("copy", "ghost", "node-a")`}, "--nodes", "--key", "@"+keyFile, "--checkpoints", oldCk, stolen)
	// Forged checkpoints of node-a claiming the given key, put before
	// its own, do not crowd them out (only the first 16 were checked).
	var crowd []byte
	for i := range 40 {
		crowd = fmt.Appendf(crowd, `{"type":"nsrel-checkpoint","format":"1","host":"node-a","log":"/x","seq":%d,"hash":"%s","seal":"%s.%d.%s","time":"2026-12-04T00:00:00Z"}`+"\n",
			i+1, strings.Repeat("ab", 32), key.ID, i, strings.Repeat("cd", 32))
	}
	crowded := filepath.Join(dir, "crowded.jsonl")
	if err := os.WriteFile(crowded, append(crowd, genuine...), 0o600); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, 1, []string{"2 FAILED (node-b, node-a)", "node node-a: no record of node node-a"}, "--nodes", "--key", "@"+keyFile, "--checkpoints", crowded, other)
}

// TestVerifyNodesManyHosts: a stream naming more hosts than split files
// stay open (lines of 600 hosts interleaved) verifies each; with --key,
// every host's keys are known to the others (one map, not a copy per
// node: that was quadratic).
func TestVerifyNodesManyHosts(t *testing.T) {
	const hosts = 600
	var lines [][]byte
	prev := make([]string, hosts)
	for seq := uint64(1); seq <= 2; seq++ {
		for i := range hosts {
			r := &audit.Record{Seq: seq, Prev: prev[i], Time: "2026-12-03T08:00:00Z", Host: fmt.Sprintf("h%04d", i), Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "x"}
			line, err := r.Encode()
			if err != nil {
				t.Fatal(err)
			}
			prev[i] = r.Hash
			lines = append(lines, line)
		}
	}
	mixed := filepath.Join(t.TempDir(), "mixed.jsonl")
	if err := os.WriteFile(mixed, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	// Each host's checkpoint of its last record, interleaved too.
	var cps []byte
	for i := range hosts {
		c := audit.Checkpoint{Host: fmt.Sprintf("h%04d", i), Log: "/var/log/nsrel/audit.jsonl", Seq: 2, Hash: prev[i], Time: "2026-12-03T08:00:01Z"}
		cps = append(cps, c.Line()...)
	}
	ck := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	if err := os.WriteFile(ck, cps, 0o600); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, 0, []string{"node h0000: OK: 2 records", "node h0599: OK: 2 records", fmt.Sprintf("nodes: %d intact", hosts)}, "--nodes", mixed)
	checkVerify(t, 0, []string{"node h0599: 1 checkpoint(s) of host h0599 match the log", fmt.Sprintf("nodes: %d intact", hosts)}, "--nodes", "--checkpoints", ck, mixed)
	// In this process, with fewer descriptors than hosts (a child's Go
	// runtime raises its limit): one split file open per host ran out.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = 200
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := verifyNodes([]string{mixed}, nil, []string{ck}, audit.VerifyOptions{}, false, &out, &errb)
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	if want := fmt.Sprintf("nodes: %d intact", hosts); code != 0 || !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "node h0300: 1 checkpoint(s) of host h0300 match the log") {
		t.Errorf("with 200 descriptors: exit %d, want 0 and %q\n%.2000s%s", code, want, out.String(), errb.String())
	}
	checkVerify(t, 0, []string{"node h0300: OK: 2 records", "nodes: 1 intact (h0300), 0 FAILED"}, "--nodes", "--node", "h0300", mixed)
	// The summary names 20, and counts the rest.
	checkVerify(t, 0, []string{"h0019 and 580 more), 0 FAILED"}, "--nodes", mixed)
}

// TestVerifyNodesQuotesNames: host names come from whatever lines reach
// the collector. One with a comma and a space read, in the summary, as
// two intact nodes ("nodes: 1 intact (good-node, web-2)"), and one with
// a parenthesis could end the list: such names are quoted, plain host
// names are not.
func TestVerifyNodesQuotesNames(t *testing.T) {
	var lines []byte
	for _, host := range []string{"good-node, web-2", "db), 0 FAILED (x", "plain-host"} {
		r := &audit.Record{Seq: 1, Time: "2026-12-03T08:00:00Z", Host: host, Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "x"}
		line, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line...)
	}
	mixed := filepath.Join(t.TempDir(), "mixed.jsonl")
	if err := os.WriteFile(mixed, lines, 0o600); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, 0, []string{`node "good-node, web-2": OK`, `node "db), 0 FAILED (x": OK`, "node plain-host: OK",
		`nodes: 3 intact ("good-node, web-2", "db), 0 FAILED (x", plain-host), 0 FAILED`}, "--nodes", mixed)
}

// holdFIFO opens the FIFO at path for writing without waiting for a
// reader: through a descriptor that reads it too, held until release
// (which never reads it), so that a reader opening it meanwhile finds a
// writer, and writes to w fail (EPIPE) once the reader is gone after
// release.
func holdFIFO(t *testing.T, path string) (w *os.File, release func()) {
	t.Helper()
	hold, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if w, err = os.OpenFile(path, os.O_WRONLY, 0); err != nil {
		hold.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { hold.Close() })
	return w, func() { hold.Close() }
}

// TestVerifyNodesInterrupted interrupts verify --nodes while it copies a
// collector's stream (a pipe): its copy of the records goes with it, and
// it ends of the signal. The deferred removal did not run on SIGINT, and
// the copy stayed in /tmp, run after run. With many nodes, the signal
// comes while the copy is still being written, a file a node (the
// removal ran into files made meanwhile, and left them). A signal the
// process ignores (nohup's SIGHUP) stays ignored: the copy was removed
// and the verify went on without it, failing every node.
func TestVerifyNodesInterrupted(t *testing.T) {
	tests := []struct {
		name    string
		sig     syscall.Signal
		hosts   int  // nodes the stream names, written while the signal comes
		ignored bool // the process starts with sig ignored
	}{
		{"SIGINT", syscall.SIGINT, 1, false},
		{"SIGTERM", syscall.SIGTERM, 1, false},
		{"SIGINT while copying", syscall.SIGINT, 20000, false},
		{"SIGHUP ignored", syscall.SIGHUP, 1, true},
		// After the verdict, as the copy is removed: the removal was
		// cut short by the signal's default action.
		{"SIGINT after the verdict", syscall.SIGINT, 5000, false},
		// While the nodes are verified: the nodes left failed for their
		// files gone, and a verdict failing the fleet was printed.
		{"SIGTERM while verifying", syscall.SIGTERM, 5000, false},
		// Its output's reader gone (`| head`): SIGPIPE ended it before
		// anything removed the copy.
		{"reader gone while verifying", syscall.SIGPIPE, 5000, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			fifo := filepath.Join(t.TempDir(), "stream")
			if err := unix.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(hookBin, "audit", "verify", "--nodes", fifo)
			if tt.ignored {
				// A signal ignored at exec stays ignored, as under nohup.
				cmd = exec.Command("/bin/sh", "-c", `trap "" `+strings.TrimPrefix(unix.SignalName(tt.sig), "SIG")+`; exec "$0" "$@"`, hookBin, "audit", "verify", "--nodes", fifo)
			}
			cmd.Env = []string{"TMPDIR=" + tmp}
			var stdout, stderr nstest.LockedBuffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			afterVerdict := strings.HasSuffix(tt.name, "after the verdict")
			verifying := strings.HasSuffix(tt.name, " while verifying")
			printed := "nodes: "
			if verifying {
				printed = "node node-"
			}
			// While verifying, its output goes to a pipe read up to the
			// first node's line and then no more: the process is held
			// in a write, mid-node, as by a pager that stopped reading
			// (a signal then hung it for good).
			var outRead *os.File
			if verifying {
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				defer w.Close()
				cmd.Stdout, outRead = w, r
			}
			// The stream's writer is there before the process opens it,
			// which does not wait for one: opened after, the process
			// could read the end first, and the open then waited for
			// good.
			w, release := holdFIFO(t, fifo)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			if outRead != nil {
				cmd.Stdout.(*os.File).Close()
				go func() {
					sc := bufio.NewScanner(outRead)
					for sc.Scan() {
						stdout.Write(append(sc.Bytes(), '\n'))
						if strings.HasPrefix(sc.Text(), "node node-") {
							return
						}
					}
				}()
			}
			line := func(i int) []byte {
				r := &audit.Record{Seq: 1, Time: "2026-12-03T08:00:00Z", Host: fmt.Sprintf("node-%05d", i), Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "x"}
				b, err := r.Encode()
				if err != nil {
					panic(err)
				}
				return b
			}
			if _, err := w.Write(line(0)); err != nil {
				t.Fatal(err)
			}
			written := make(chan struct{})
			go func() {
				// The rest, until the reader is gone (EPIPE).
				defer close(written)
				for i := 1; i < tt.hosts; i++ {
					if _, err := w.Write(line(i)); err != nil {
						return
					}
				}
			}()
			// The copy is made: its directory and a node's file.
			var spool []string
			for i := 0; i < 1000 && len(spool) == 0; i++ {
				spool, _ = filepath.Glob(filepath.Join(tmp, "nsrel-verify-nodes-*", "spool", "*"))
				time.Sleep(10 * time.Millisecond)
			}
			if len(spool) == 0 {
				t.Fatal("no copy of the stream in TMPDIR after 10 s")
			}
			release() // it reads the stream: the test is its only writer
			if afterVerdict || verifying {
				<-written
				w.Close()
				for i := 0; i < 6000 && !strings.Contains(stdout.String(), printed); i++ {
					time.Sleep(10 * time.Millisecond)
				}
				if !strings.Contains(stdout.String(), printed) {
					t.Fatalf("no %q after 60 s:\n%.2000s", printed, stdout.String())
				}
			}
			if verifying {
				// Held: the pipe full (64 KiB), its writer waiting.
				n := 0
				for i := 0; i < 1000 && n < 60000; i++ {
					n, _ = unix.IoctlGetInt(int(outRead.Fd()), unix.TIOCINQ) // FIONREAD
					time.Sleep(10 * time.Millisecond)
				}
				if n < 60000 {
					t.Fatalf("its output pipe holds %d bytes after 10 s; want it full", n)
				}
			}
			if tt.sig == syscall.SIGPIPE {
				outRead.Close() // the next write fails
			} else {
				cmd.Process.Signal(tt.sig)
			}
			if tt.ignored {
				<-written
				w.Close()
			}
			var err error
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			select {
			case err = <-waited:
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				<-waited
				t.Fatalf("still running 60 s after %v", tt.sig)
			}
			if outRead != nil && tt.sig != syscall.SIGPIPE {
				io.Copy(&stdout, outRead) // the rest of what it wrote
			}
			if !tt.ignored && !afterVerdict && !verifying {
				<-written
				w.Close()
			}
			if out := stdout.String() + stderr.String(); !tt.ignored && (strings.Contains(out, ": FAILED") || strings.Contains(out, " FAILED (")) {
				t.Errorf("interrupted, it failed nodes:\n%.1000s\n%.1000s", stdout.String(), stderr.String())
			}
			ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
			switch {
			case tt.ignored && (err != nil || !strings.Contains(stdout.String(), "nodes: 1 intact (node-00000), 0 FAILED")):
				t.Errorf("verify with %v ignored: %v, stdout %q; want it to go on, and the node intact", tt.sig, err, stdout.String())
			case afterVerdict && !ws.Signaled() && err != nil:
				// Ended on its own just before the signal: fine.
				t.Errorf("verify ended with %v; want the signal %v or a verdict", err, tt.sig)
			case tt.sig == syscall.SIGPIPE && ws.ExitStatus() != 128+int(syscall.SIGPIPE):
				t.Errorf("verify ended with %v; want exit status 141, as of SIGPIPE", err)
			case tt.sig != syscall.SIGPIPE && verifying && (!ws.Signaled() || ws.Signal() != tt.sig):
				t.Errorf("verify ended with %v; want the signal %v", err, tt.sig)
			case !tt.ignored && !afterVerdict && !verifying && (!ws.Signaled() || ws.Signal() != tt.sig):
				t.Errorf("verify ended with %v; want the signal %v", err, tt.sig)
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("left in TMPDIR: %v", left)
			}
		})
	}
}

// TestVerifyNodesHeadlessDamage: a damaged line whose head is gone (a
// crash's zeroes) names no node; the damage record that lists it does:
// --nodes gives it to that node, which verifies as its own log does. It
// used to count as a line of no node and fail the node as "deleted".
func TestVerifyNodesHeadlessDamage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l, err := audit.Open(path, audit.Options{Host: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	add := func() {
		if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	add()
	add()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\x00\x00\x00\x00\n")
	f.Close()
	add()
	audittest.AckDamage(t, l, path)
	b := tornNodeLog(t, "node-b", `{"format":"1.3","seq":3,"ti`)
	a, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	checkVerify(t, 0, []string{"OK"}, path)
	mixed := filepath.Join(dir, "mixed.jsonl")
	if err := os.WriteFile(mixed, append(append(bytes.Clone(b[0]), a...), bytes.Join(b[1:], nil)...), 0o600); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, 0, []string{"nodes: 2 intact (node-b, node-a), 0 FAILED"}, "--nodes", mixed)
	checkVerify(t, 0, []string{"nodes: 2 intact (node-b, node-a), 0 FAILED"}, "--nodes", "--shipped", mixed)
}

// sealedNode writes a sealed log of host with n records, a checkpoint
// after each; it returns the log, the checkpoints file, the sealing state
// and a file holding the verification key.
func sealedNode(t *testing.T, dir, host string, n int) (logPath, ck, state, keyFile string) {
	t.Helper()
	state = filepath.Join(dir, host, "state", "audit.seal")
	logPath, ck = filepath.Join(dir, host, "audit.jsonl"), filepath.Join(dir, host, "ckpt.jsonl")
	l, err := audit.Open(logPath, audit.Options{Host: host, SealState: state, Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: ck}})
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := l.StartSealing(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	keyFile = filepath.Join(dir, host+".key")
	if err := os.WriteFile(keyFile, []byte(key.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return logPath, ck, state, keyFile
}

// readSealState reads the sealing state at path as root on the node can
// (made here from the format's description): the key ID (hex and
// bytes), the epoch of the next seal and its key.
func readSealState(t *testing.T, path string) (idHex string, id []byte, epoch uint64, key []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(strings.TrimPrefix(string(b), "nsrel-seal 1 "))
	if len(f) < 3 {
		t.Fatalf("%s: not a sealing state: %q", path, b)
	}
	id, err1 := hex.DecodeString(f[0])
	epoch, err2 := strconv.ParseUint(f[1], 10, 64)
	key, err3 := hex.DecodeString(f[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	return f[0], id, epoch, key
}

// mintCheckpoint is what root on a node can do with the sealing state it
// reads (the key of the next epoch): a checkpoint of head naming host,
// with a checkpoint seal that checks. (Made here from the format's
// description, not with the package's code.)
func mintCheckpoint(t *testing.T, state string, head audit.Checkpoint, host string) []byte {
	t.Helper()
	idHex, id, epoch, key := readSealState(t, state)
	head.Host, head.CheckpointSeal = host, ""
	m := hmac.New(sha256.New, key)
	m.Write([]byte("nsrel checkpoint seal v1\x00"))
	m.Write(id)
	m.Write(binary.BigEndian.AppendUint64(nil, epoch))
	m.Write(binary.BigEndian.AppendUint64(nil, head.Seq))
	for _, s := range []string{head.Hash, head.Seal, head.Host, head.Log, head.Time} {
		m.Write(binary.BigEndian.AppendUint64(nil, uint64(len(s))))
		m.Write([]byte(s))
	}
	head.CheckpointSeal = fmt.Sprintf("%s.%d.%x", idHex, epoch, m.Sum(nil))
	return head.Line()
}

// TestVerifyNodesRootMintedCheckpoint: root on node-a reads its sealing
// state and makes checkpoints of node-a's head naming node-b (a healthy
// node) and node-z (none). They fail the nodes they name (a checkpoint
// seal that checks cannot be set aside: lines naming the key's node are
// not authenticated), but verify does not say that node-b wrote it: it
// names the node whose lines carry the key, whoever held it.
func TestVerifyNodesRootMintedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	alog, ack, astate, akey := sealedNode(t, dir, "node-a", 3)
	blog, bck, _, bkey := sealedNode(t, dir, "node-b", 3)
	var stream, ckpts []byte
	for _, f := range []string{alog, blog} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		stream = append(stream, b...)
	}
	for _, f := range []string{ack, bck} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ckpts = append(ckpts, b...)
	}
	streamFile, ckFile := filepath.Join(dir, "stream.jsonl"), filepath.Join(dir, "ckpts.jsonl")
	if err := os.WriteFile(streamFile, stream, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ckFile, ckpts, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--nodes", "--key", "@" + akey, "--key", "@" + bkey, "--checkpoints", ckFile, streamFile}
	checkVerify(t, 0, []string{"nodes: 2 intact"}, args...)
	var heads []audit.Checkpoint
	for c, err := range audit.ReadCheckpoints(ack) {
		if err != nil {
			t.Fatal(err)
		}
		heads = append(heads, c)
	}
	head := heads[len(heads)-1]
	minted := append(mintCheckpoint(t, astate, head, "node-b"), mintCheckpoint(t, astate, head, "node-z")...)
	if err := os.WriteFile(ckFile, append(ckpts, minted...), 0o600); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, 1, []string{"nodes: 1 intact (node-a), 2 FAILED (node-b, node-z)",
		"node node-b: FAILED", "lines of another node carry that key, and the checkpoint seal that names this node checks",
		"counted by checkpoint seals of keys other hosts' lines carry: node-z (key " + head.Seal[:16] + ", which lines of node-a carry)"}, args...)
	if code, out, stderr := runBin(t, "", append([]string{"audit", "verify"}, args...)...); strings.Contains(out+stderr, "shows that node node-b wrote it") {
		t.Errorf("exit %d: node-b said to have written a checkpoint made with node-a's key\n%s%s", code, out, stderr)
	}
}

// sealWith seals record lines (each with its hash, no seal) one after
// the other with the sealing state at path, as root on a node can with
// the state it reads: each with the key of the state's epoch, the key
// then evolved (made here from the format's description).
func sealWith(t *testing.T, path string, lines [][]byte) [][]byte {
	t.Helper()
	idHex, id, epoch, key := readSealState(t, path)
	var out [][]byte
	for _, line := range lines {
		r, err := audit.Decode(bytes.TrimSuffix(line, []byte("\n")))
		if err != nil {
			t.Fatal(err)
		}
		h, _ := hex.DecodeString(r.Hash)
		m := hmac.New(sha256.New, key)
		m.Write([]byte("nsrel seal v1\x00"))
		m.Write(id)
		m.Write(binary.BigEndian.AppendUint64(nil, epoch))
		m.Write(h)
		body := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("}"))
		out = append(out, fmt.Appendf(append([]byte{}, body...), `,"seal":"%s.%d.%x"}`+"\n", idHex, epoch, m.Sum(nil)))
		n := hmac.New(sha256.New, key)
		n.Write([]byte("nsrel seal: next key"))
		key, epoch = n.Sum(nil), epoch+1
	}
	return out
}

// TestVerifyNodesMadeUpWithOthersKey: root on node-b, with node-b's
// sealing state, makes up the records of node-q (a node the stream
// holds no line of, or whose lines are in other files): a chain that
// starts after a retention record (its earlier records removed, the
// seal-start among them), sealed from the key's current epoch. With
// every node's key given, each node's chain was verified with any of
// them: node-q was reported intact. A node's key seals its own records
// alone: node-q fails, naming the key and node-b, whose lines introduce
// it (its seal-start), and node-b stays intact.
func TestVerifyNodesMadeUpWithOthersKey(t *testing.T) {
	dir := t.TempDir()
	alog, _, _, akey := sealedNode(t, dir, "node-a", 3)
	blog, _, bstate, bkey := sealedNode(t, dir, "node-b", 3)
	prev := strings.Repeat("ab", 32)
	var made [][]byte
	for i, r := range []*audit.Record{
		{Source: audit.SourceAudit, Stage: audit.StageRetention, Dropped: &audit.Dropped{File: "audit.jsonl.000000000001", FirstSeq: 1, LastSeq: 99, LastHash: prev}},
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "made-up"},
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "made-up"},
	} {
		r.Seq, r.Prev, r.Time, r.Host = uint64(100+i), prev, "2026-12-07T08:00:00Z", "node-q"
		line, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, line)
		prev = r.Hash
	}
	var stream []byte
	for _, f := range []string{alog, blog} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		stream = append(stream, b...)
	}
	stream = append(stream, bytes.Join(sealWith(t, bstate, made), nil)...)
	streamFile := filepath.Join(dir, "stream.jsonl")
	if err := os.WriteFile(streamFile, stream, 0o600); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, 1, []string{"nodes: 2 intact (node-a, node-b), 1 FAILED (node-q)",
		"node node-q: FAILED", "its records are sealed with key ", ", which seals records of node node-b too: a node's key seals its own records alone"},
		"--nodes", "--key", "@"+akey, "--key", "@"+bkey, streamFile)
}

// TestVerifyNodesInputs: `audit verify --nodes` reads a collector's
// stream and checkpoints through a pipe (<(zcat FILE.gz)) as from a file;
// a FIFO without a writer reads as empty at once (open(2) as is blocked
// until a writer came, and verify hung for good), and says what it
// lacks.
func TestVerifyNodesInputs(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "audit.jsonl")
	l, err := audit.Open(log, audit.Options{Host: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "c"}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	pipe := func() string {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		go func() { w.Write(data); w.Close() }()
		return fmt.Sprintf("/proc/self/fd/%d", r.Fd())
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"audit", "verify", "--nodes", pipe()}, 0, "nodes: 1 intact (node-a), 0 FAILED"},
		{[]string{"audit", "verify", "--nodes", fifo}, 1, "no node's records in " + fifo},
		{[]string{"audit", "verify", "--nodes", "--checkpoints", fifo, log}, 1, "no checkpoint in " + fifo},
	} {
		type result struct {
			code           int
			stdout, stderr string
		}
		done := make(chan result, 1)
		go func() {
			code, stdout, stderr := run("", tc.args...)
			done <- result{code, stdout, stderr}
		}()
		select {
		case r := <-done:
			if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
				t.Errorf("%v: exit %d, %s%s; want %d and %q", tc.args, r.code, r.stdout, r.stderr, tc.code, tc.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%v: still blocked after 5 s", tc.args)
		}
	}
}

// TestVerifyNodeRepeated: a node named twice with --node is verified
// and counted once. It was verified twice, "nodes: 2 intact (vm, vm)".
func TestVerifyNodeRepeated(t *testing.T) {
	e := newEnv(t, "hook.json", nil)
	if code, _, stderr := run(selfState("n1"), "--config", e.config, "createRuntime"); code != 0 {
		t.Fatal(stderr)
	}
	host := e.records(t, "")[0].Host
	code, out, stderr := run("", "audit", "verify", "--node", host, "--node", host, e.log)
	if want := "nodes: 1 intact (" + host + "), 0 FAILED\n"; code != 0 || !strings.HasSuffix(out, want) || strings.Count(out, ": OK: ") != 1 {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0 and %q", code, out, stderr, want)
	}
}

// TestVerifyCheckpointLinesOnce: a checkpoint line sent again (by the
// node, by anyone who reaches the collector) is one checkpoint, with and
// without --nodes: 300,000 copies of one forged line were each held in
// memory (328 MB) and counted.
func TestVerifyCheckpointLinesOnce(t *testing.T) {
	dir := t.TempDir()
	logPath, ck, _, keyFile := sealedNode(t, dir, "node-a", 3)
	lines := fileLines(t, ck)
	cps := strings.Join(lines, "")
	c, ok := audit.ParseCheckpoint([]byte(lines[0]))
	if !ok {
		t.Fatalf("no checkpoint in %q", lines[0])
	}
	c.Seal = c.Seal[:strings.LastIndexByte(c.Seal, '.')+1] + strings.Repeat("0", 64)
	forged := string(c.Line()) + "\n"
	dup := filepath.Join(dir, "collected.jsonl")
	if err := os.WriteFile(dup, []byte(strings.Repeat(cps, 3)+strings.Repeat(forged, 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprintf("%d checkpoint(s) of host node-a match the log", len(lines)), "note: 1 checkpoint(s) ignored: "}
	checkVerify(t, 0, want, "--key", "@"+keyFile, "--checkpoints", dup, logPath)
	checkVerify(t, 0, want, "--nodes", "--key", "@"+keyFile, "--checkpoints", dup, logPath)
}

// TestVerifyRenamedNode: a node renamed goes on with its chain under the
// new name, and again under a third: --nodes took each name's records
// for a chain of its own, the new names' starting after seq 1 (records
// deleted?), and verifying both names, as the docs said to, failed too.
// Each name's chain goes on from the names before it, verified as one
// chain, and an anchor of any of its records holds; without the old
// names' records in the input, the records before were removed.
func TestVerifyRenamedNode(t *testing.T) {
	dir := t.TempDir()
	logPath, ck, state, keyFile := sealedNode(t, dir, "node-a", 3)
	writeAs(t, logPath, ck, state, "node-b", 3)
	bLast := fmt.Sprintf("7:%s", lastHash(t, logPath))
	writeAs(t, logPath, ck, state, "node-c", 3)
	cLast := fmt.Sprintf("10:%s", lastHash(t, logPath))
	keys := []string{"--key", "@" + keyFile, "--checkpoints", ck}
	checkVerify(t, 0, []string{"node node-a: OK: 4 records (seq 1..4)",
		"node node-b: OK: 7 records (seq 1..7)", "node node-b: note: renamed: its chain goes on from the records of node-a, verified with its own as one chain",
		"node node-c: OK: 10 records (seq 1..10)", "node node-c: note: renamed: its chain goes on from the records of node-a, then node-b, verified",
		"10 checkpoint(s) of hosts ", "nodes: 3 intact"}, append([]string{"--nodes"}, append(keys, logPath)...)...)
	for _, anchor := range []string{bLast, cLast, "4:" + strings.Repeat("0", 64)} {
		want, code := []string{"node node-c: OK: 10 records (seq 1..10)"}, 0
		if strings.HasPrefix(anchor, "4:") {
			want, code = []string{"node node-c: FAILED: ", "does not have the anchor hash"}, 1
		}
		checkVerify(t, code, want, append([]string{"--node", "node-c", "--anchor", anchor}, append(keys, logPath)...)...)
	}
	code, out, _ := runBin(t, "", append([]string{"audit", "verify", "--json", "--node", "node-c"}, append(keys, logPath)...)...)
	if code != 0 || !strings.Contains(out, `"renamed_from":["node-a","node-b"]`) {
		t.Errorf("--json: exit %d, %s; want renamed_from node-a, node-b", code, out)
	}
	// Without the old names' records in the input, the records before
	// were removed.
	var later []byte
	for _, line := range fileLines(t, logPath) {
		if !strings.Contains(line, `"host":"node-a"`) {
			later = append(later, line...)
		}
	}
	cut := filepath.Join(dir, "later.jsonl")
	if err := os.WriteFile(cut, later, 0o600); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, 1, []string{"node node-b: FAILED: ", "the chain starts at seq 5, not 1", "node node-c: FAILED: "}, append([]string{"--nodes"}, append(keys, cut)...)...)
	// A failure of a chain through old names says so: the line it names
	// may be an old name's.
	bad := strings.Join(fileLines(t, logPath), "")
	bad = strings.Replace(bad, `"container_id":"c"`, `"container_id":"d"`, 1) // node-a's first record after seal-start
	tampered := filepath.Join(dir, "tampered.jsonl")
	if err := os.WriteFile(tampered, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, 1, []string{"node node-c: FAILED: ", "node node-c: note: renamed: its chain goes on from the records of node-a, then node-b"},
		append([]string{"--node", "node-c"}, append(keys, tampered)...)...)
	checkVerify(t, 1, []string{"the chain starts at seq 5, not 1"}, append([]string{"--anchor", bLast}, append(keys, cut)...)...)
}

// TestVerifyRenamedAnchorForgedGap: root on the node after T deletes the
// sealed records after the old name's last checkpoint and writes on
// with the sealing state it holds under a new name. The new name's
// records, taken as going on from the anchor (the old name's last record
// left) without the checks of one chain, passed; verified as one chain
// with the old name's, the keys that sealed no record show the cut.
func TestVerifyRenamedAnchorForgedGap(t *testing.T) {
	dir := t.TempDir()
	logPath, ck, state, keyFile := sealedNode(t, dir, "node-a", 12)
	lines := fileLines(t, logPath)
	kept := strings.Join(lines[:8], "")
	if err := os.WriteFile(logPath, []byte(kept), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := audit.Decode([]byte(strings.TrimSuffix(lines[7], "\n")))
	if err != nil {
		t.Fatal(err)
	}
	writeAs(t, logPath, ck, state, "node-b", 3)
	anchor := fmt.Sprintf("%d:%s", r.Seq, r.Hash)
	checkVerify(t, 1, []string{"sealed no record"}, "--key", "@"+keyFile, logPath)
	checkVerify(t, 1, []string{"node node-b: FAILED: ", "sealed no record"}, "--node", "node-b", "--anchor", anchor, "--key", "@"+keyFile, "--checkpoints", ck, logPath)
}

// fileLines returns the lines of the file at path, each with its newline.
func fileLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// TestVerifyRenamedRelabelledOld: another node's checkpoint relabelled
// with a renamed node's old name (anyone who reaches the collector can
// add one) is set aside as a copy, as one relabelled with the new name
// is: the old name's checkpoints were not looked up for copies, and it
// failed the renamed node.
func TestVerifyRenamedRelabelledOld(t *testing.T) {
	dir := t.TempDir()
	logPath, ck, state, keyFile := sealedNode(t, dir, "node-a", 3)
	anchor := fmt.Sprintf("%d:%s", 4, lastHash(t, logPath))
	writeAs(t, logPath, ck, state, "node-b", 3)
	xLog, xCk, _, xKey := sealedNode(t, dir, "node-x", 5)
	stream := filepath.Join(dir, "collected.jsonl")
	if err := os.WriteFile(stream, []byte(strings.Join(append(fileLines(t, logPath), fileLines(t, xLog)...), "")), 0o600); err != nil {
		t.Fatal(err)
	}
	xl := fileLines(t, xCk)
	c, ok := audit.ParseCheckpoint([]byte(xl[len(xl)-1]))
	if !ok {
		t.Fatal("no checkpoint of node-x")
	}
	for _, host := range []string{"node-b", "node-a"} {
		c.Host, c.CheckpointSeal = host, ""
		cks := filepath.Join(dir, "ck-"+host)
		if err := os.WriteFile(cks, []byte(strings.Join(fileLines(t, ck), "")+strings.Join(xl, "")+string(c.Line())+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		checkVerify(t, 0, []string{"node node-b: OK: 7 records (seq 1..7)", "1 checkpoint(s) ignored: "},
			"--node", "node-b", "--anchor", anchor, "--key", "@"+keyFile, "--key", "@"+xKey, "--checkpoints", cks, stream)
	}
}

// lastHash is the hash of the last record of the log file at path.
func lastHash(t *testing.T, path string) string {
	t.Helper()
	lines := fileLines(t, path)
	r, err := audit.Decode([]byte(strings.TrimSuffix(lines[len(lines)-1], "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return r.Hash
}

// writeAs appends n records to the sealed log at logPath (its sealing
// state state, checkpoints ck after each) as host: a node renamed, or
// root on the node writing on with the sealing state.
func writeAs(t *testing.T, logPath, ck, state, host string, n int) {
	t.Helper()
	l, err := audit.Open(logPath, audit.Options{Host: host, SealState: state, Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: ck}})
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "c"}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVerifyForkNotRenamed: two hosts that each go on from a node's
// last record are a fork, not a rename (root on the node writing on
// twice from a copy of its sealing state, or made-up hosts hung on the
// record): both were taken for the node's new names and passed, and
// each fork cost a verify of the node's records (quadratic in made-up
// hosts). Neither is linked: they fail as chains that start after seq 1,
// and the node passes on its own.
func TestVerifyForkNotRenamed(t *testing.T) {
	dir := t.TempDir()
	logPath, ck, state, keyFile := sealedNode(t, dir, "node-a", 3)
	var forks []string
	for _, host := range []string{"z-1", "z-2"} {
		fdir := filepath.Join(dir, host)
		nstest.Mkdirs(t, 0o700, fdir)
		fl, fck, fst := filepath.Join(fdir, "audit.jsonl"), filepath.Join(fdir, "ckpt.jsonl"), filepath.Join(fdir, "audit.seal")
		for from, to := range map[string]string{logPath: fl, ck: fck, state: fst} {
			b, err := os.ReadFile(from)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(to, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		writeAs(t, fl, fck, fst, host, 1)
		lines := fileLines(t, fl)
		forks = append(forks, lines[len(lines)-1])
	}
	stream := filepath.Join(dir, "collected.jsonl")
	if err := os.WriteFile(stream, []byte(strings.Join(append(fileLines(t, logPath), forks...), "")), 0o600); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, 1, []string{"node node-a: OK: 4 records (seq 1..4)", "node z-1: FAILED: ", "node z-2: FAILED: ", "the chain starts at seq 5, not 1", "nodes: 1 intact (node-a), 2 FAILED"},
		"--nodes", "--key", "@"+keyFile, stream)
}

// TestVerifyForkOfAddedLine: a line anyone can add (a copy of a renamed
// node's first record under another host, unsealed, its hash made
// again) goes on from the node's old name's last record too: taken for
// a fork, it made the genuine rename fail as records deleted. The
// record whose seal follows the old name's last (same key, next epoch,
// checked with the key) is the rename; the added host fails alone.
func TestVerifyForkOfAddedLine(t *testing.T) {
	dir := t.TempDir()
	logPath, ck, state, keyFile := sealedNode(t, dir, "node-a", 3)
	writeAs(t, logPath, ck, state, "node-b", 3)
	stream := withCopyAs(t, logPath, 4, "zz", func(r *audit.Record) bool { return r.Host == "node-b" })
	checkVerify(t, 1, []string{"node node-a: OK", "node node-b: OK: 7 records (seq 1..7)", "nodes: 2 intact (node-a, node-b), 1 FAILED (zz)"},
		"--nodes", "--key", "@"+keyFile, "--checkpoints", ck, stream)
}

// TestVerifyRenamedPastMaxChain: a node renamed more times than verify
// follows fails, saying its chain goes through more names (it said
// records deleted only).
func TestVerifyRenamedPastMaxChain(t *testing.T) {
	dir := t.TempDir()
	logPath, ck, state, keyFile := sealedNode(t, dir, "node-0", 1)
	for i := 1; i <= maxChain+1; i++ {
		writeAs(t, logPath, ck, state, "node-"+strconv.Itoa(i), 1)
	}
	last := "node-" + strconv.Itoa(maxChain+1)
	checkVerify(t, 1, []string{"node " + last + ": FAILED: ", fmt.Sprintf("node %s: note: renamed: its chain goes on from the records of node-2, then ", last),
		fmt.Sprintf("note: its chain goes on through more names than verify follows (%d)", maxChain)},
		"--node", last, "--key", "@"+keyFile, "--checkpoints", ck, logPath)
}

// TestVerifyForkSealStartAtRename: a node whose old name wrote unsealed
// and which started sealing under its new name goes on with a seal-start
// at epoch 0: a line anyone adds (its copy under another host, unsealed)
// made the rename unlinked (no successor's seal followed the old name's
// last, which had none), and it failed as records deleted.
func TestVerifyForkSealStartAtRename(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "node", "audit.jsonl")
	state, ck := filepath.Join(dir, "node", "state", "audit.seal"), filepath.Join(dir, "node", "ckpt.jsonl")
	l, err := audit.Open(logPath, audit.Options{Host: "node-a", Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: ck}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	l, err = audit.Open(logPath, audit.Options{Host: "node-b", SealState: state, Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: ck}})
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := l.StartSealing(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(key.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeAs(t, logPath, ck, state, "node-b", 2)
	stream := withCopyAs(t, logPath, 3, "zz", func(r *audit.Record) bool { return r.Stage == audit.StageSealStart })
	// node-a fails on its own: its records are sealed by no key given.
	checkVerify(t, 1, []string{"node node-b: OK: 6 records (seq 1..6)", "nodes: 1 intact (node-b), 2 FAILED (node-a, zz)"},
		"--nodes", "--key", "@"+keyFile, "--checkpoints", ck, stream)
}

// TestForkSettledOnce: a fork of many made-up successors (copies of a
// renamed node's first record under hosts anyone can name) is settled
// once: every host of it asked about all of them, and each check of a
// seal derives keys (3,000 such hosts: 4 s -> 45 s).
func TestForkSettledOnce(t *testing.T) {
	dir := t.TempDir()
	logPath, ck, state, _ := sealedNode(t, dir, "node-a", 3)
	writeAs(t, logPath, ck, state, "node-b", 1)
	lines := fileLines(t, logPath)
	r, err := audit.Decode([]byte(strings.TrimSuffix(lines[4], "\n")))
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	stream := strings.Join(lines, "")
	for i := range n {
		r.Host = "f" + strconv.Itoa(i)
		line, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		stream += string(line)
	}
	path := filepath.Join(dir, "stream.jsonl")
	if err := os.WriteFile(path, []byte(stream), 0o600); err != nil {
		t.Fatal(err)
	}
	split, err := splitByHost([]string{path}, t.TempDir(), true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	sealed := func(string, string) bool { calls++; return true } // every copy's seal checks: none wins
	for _, h := range split.hosts {
		if chain, _ := split.chainOf(h, sealed); len(chain) != 1 && h != "node-a" {
			t.Errorf("%s: chain %v; want no old name (a fork of %d)", h, chain, n+1)
		}
	}
	if calls > n+1 {
		t.Errorf("%d seal checks for a fork of %d hosts; want at most %d", calls, n+1, n+1)
	}
}

// withCopyAs writes, next to the log at logPath, the log with a copy of
// its line i (from 0, a record want holds for) added at the end under
// host, unsealed, its hash made again (what anyone who reaches a
// collector can add), and returns its path.
func withCopyAs(t *testing.T, logPath string, i int, host string, want func(*audit.Record) bool) string {
	t.Helper()
	lines := fileLines(t, logPath)
	r, err := audit.Decode([]byte(strings.TrimSuffix(lines[i], "\n")))
	if err != nil || !want(r) {
		t.Fatalf("line %d: %v, %+v; not the record wanted", i+1, err, r)
	}
	r.Host, r.Seal = host, ""
	added, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	stream := filepath.Join(filepath.Dir(logPath), "added.jsonl")
	if err := os.WriteFile(stream, []byte(strings.Join(lines, "")+string(added)), 0o600); err != nil {
		t.Fatal(err)
	}
	return stream
}
