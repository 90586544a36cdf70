package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// runBinTimeout runs nsrel-hook with args, killing it after d: a verify
// that does not end is a failure of its own.
func runBinTimeout(t *testing.T, d time.Duration, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, hookBin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("nsrel-hook %s: still running after %v (killed)", strings.Join(args, " "), d)
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	case err != nil:
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

// newVerifyKey makes a sealing key as seal-init does and writes its
// verification key to a file for --key @FILE.
func newVerifyKey(t *testing.T) (audit.VerifyKey, string) {
	t.Helper()
	dir := t.TempDir()
	key, err := audit.InitSeal(filepath.Join(dir, "state", "audit.seal"), false)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "key")
	if err := os.WriteFile(file, []byte(key.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, file
}

// TestVerifyFarEpoch gives `audit verify --key` (and --nodes) a one-line
// log whose record, seq 2^40, claims a seal of the given key at epoch
// 2^40-1 (the key's ID is in every seal it made: anyone may know it):
// verify derived every key up to that epoch before it compared the tag,
// about 10^12 HMACs, and gave no verdict. It must fail at once, naming
// the record.
func TestVerifyFarEpoch(t *testing.T) {
	key, keyFile := newVerifyKey(t)
	seq := uint64(1) << 40
	r := &audit.Record{Seq: seq, Time: "2026-12-03T08:00:00Z", Host: "node-a", Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime,
		ContainerID: "far", Prev: strings.Repeat("a", 64), Seal: key.ID.String() + "." + strconv.FormatUint(seq-1, 10) + "." + strings.Repeat("0", 64)}
	line, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	lg := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(lg, line, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--key", "@" + keyFile, lg},
		{"--key", "@" + keyFile, "--partial", lg},
		{"--key", "@" + keyFile, "--nodes", lg},
		{"--key", "@" + keyFile, "--node", "node-a", lg},
	} {
		code, out, stderr := runBinTimeout(t, 20*time.Second, append([]string{"audit", "verify"}, args...)...)
		if code != 1 || !strings.Contains(stderr, "FAILED") || !strings.Contains(stderr, ":1: seq 1099511627776: sealed with epoch 1099511627775") ||
			!strings.Contains(stderr, "further than verify derives keys") {
			t.Errorf("audit verify %s: exit %d, want 1 and the record named\n%s%s", strings.Join(args, " "), code, out, stderr)
		}
	}
}

// TestVerifyForgedCheckpoints runs the hook with the shipped config
// (sealing, a checkpoint after every record) and hands verify a
// collector's file with the node's checkpoints and two lines a local
// user could have sent to the syslog socket (logger(1) takes any text):
// a checkpoint beyond the last record and one with another hash for a
// record the log holds. Without --key verify cannot tell them from the
// node's (the documented limit) and reports tampering; with --key they
// are ignored and said so, and verify passes; the node's checkpoints
// still catch records cut off the end, whatever path (--checkpoint-log)
// or host (--host) is named, and with --key an emptied log fails.
func TestVerifyForgedCheckpoints(t *testing.T) {
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["syslog"] = ""
		c["deadline_ms"] = 60000
		c["checkpoints"].(map[string]any)["every_records"] = 1
		c["checkpoints"].(map[string]any)["every_seconds"] = 0
	})
	mustRun := func(stdin string, args ...string) string {
		t.Helper()
		code, out, stderr := runBin(t, stdin, args...)
		if code != 0 || stderr != "" {
			t.Fatalf("nsrel-hook %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
		return out
	}
	out := mustRun("", "--config", e.config, "audit", "seal-init")
	paras := strings.Split(out, "\n\n")
	if len(paras) < 2 {
		t.Fatalf("seal-init printed %q", out)
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(strings.TrimSpace(paras[1])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		id := "forged-ckpt-" + strconv.Itoa(i)
		mustRun(shipState(id, "creating", "web"), "--config", e.config, "createRuntime")
	}
	var genuine []audit.Checkpoint
	for c, err := range audit.ReadCheckpoints(filepath.Join(e.dir, "checkpoints.jsonl")) {
		if err != nil {
			t.Fatal(err)
		}
		genuine = append(genuine, c)
	}
	if len(genuine) != 4 || genuine[3].Seal == "" {
		t.Fatalf("the node's checkpoints: %+v", genuine)
	}
	// The collector's file, as rsyslog writes it: its prefix, then the
	// message.
	var coll []byte
	add := func(sender string, c audit.Checkpoint) {
		coll = append(coll, "2026-12-03T09:00:00+00:00 "+c.Host+" "+sender+": "...)
		coll = append(coll, c.Line()...)
	}
	for _, c := range genuine {
		add("nsrel", c)
	}
	beyond, rewritten := genuine[3], genuine[1]
	beyond.Seq, beyond.Seal = 9999, ""
	rewritten.Hash, rewritten.Seal = strings.Repeat("f", 64), ""
	add("mallory", beyond)
	add("mallory", rewritten)
	ckpts := filepath.Join(t.TempDir(), "authpriv.log")
	if err := os.WriteFile(ckpts, coll, 0o600); err != nil {
		t.Fatal(err)
	}

	code, out, stderr := runBin(t, "", "audit", "verify", "--checkpoints", ckpts, e.log)
	if code != 1 || !strings.Contains(stderr, "names seq 9999, beyond the last record") {
		t.Errorf("without --key: exit %d, want 1 and the forged checkpoint taken at its word\n%s%s", code, out, stderr)
	}
	code, out, stderr = runBin(t, "", "audit", "verify", "--key", "@"+keyFile, "--checkpoints", ckpts, e.log)
	if want := "4 checkpoint(s) of host " + genuine[0].Host + " match the log, each sealed by a given key"; code != 0 || !strings.Contains(out, want) ||
		!strings.Contains(out, "note: 2 checkpoint(s) ignored: "+audit.CheckpointNotSealed) {
		t.Errorf("with --key: exit %d, want 0, %q and the forged ones ignored\n%s%s", code, want, out, stderr)
	}
	code, out, stderr = runBin(t, "", "audit", "verify", "--json", "--key", "@"+keyFile, "--checkpoints", ckpts, e.log)
	var res verifyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || !res.OK || res.Checkpoints != 4 || !res.CheckpointsSealed ||
		len(res.CheckpointsIgnored) != 2 || res.CheckpointsIgnored[0].Seq != 9999 || res.CheckpointsIgnored[1].Hash != rewritten.Hash {
		t.Errorf("--json with --key: exit %d, %+v (%v)\n%s%s", code, res, err, out, stderr)
	}

	// Root on the node cuts the last record: the node's checkpoints,
	// sealed, still tell, forged ones beside them or not.
	cut := filepath.Join(t.TempDir(), "audit.jsonl")
	data, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if err := os.WriteFile(cut, bytes.Join(lines[:len(lines)-2], nil), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runBin(t, "", "audit", "verify", "--key", "@"+keyFile, "--checkpoints", ckpts, cut)
	if code != 1 || !strings.Contains(stderr, "FAILED") || !strings.Contains(stderr, "names seq 4, beyond the last record (seq 3)") ||
		!strings.Contains(stderr, "note: 2 checkpoint(s) ignored") {
		t.Errorf("records cut, with --key: exit %d, want 1, the node's checkpoint and the ignored ones\n%s%s", code, out, stderr)
	}

	// Root also moved the cut log (a new audit_log, or a renamed node)
	// and sent a copy of the genuine checkpoint of its new last record
	// naming the new path, or the new host name, without the checkpoint
	// seal that covers them. Naming that path (--checkpoint-log) or
	// host (--host) set the node's genuine checkpoints aside, and the
	// cut log passed; they judge it all the same now, with a note.
	moved, renamed := genuine[2], genuine[2]
	moved.Log, moved.CheckpointSeal = cut, ""
	renamed.Host, renamed.CheckpointSeal = "node-z", ""
	sent := coll
	add("root", moved)
	ckptsMoved := filepath.Join(t.TempDir(), "authpriv.log")
	if err := os.WriteFile(ckptsMoved, coll, 0o600); err != nil {
		t.Fatal(err)
	}
	coll = sent
	add("root", renamed)
	ckptsRenamed := filepath.Join(t.TempDir(), "authpriv.log")
	if err := os.WriteFile(ckptsRenamed, coll, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		note string
	}{
		{[]string{"--checkpoints", ckptsMoved, "--checkpoint-log", cut}, "FAILED"},
		{[]string{"--checkpoints", ckptsRenamed, "--host", "node-z"}, "note: --host node-z is not the host the records name (" + genuine[0].Host + "): checkpoints a given key seals were held against the log"},
		{[]string{"--checkpoints", ckptsRenamed, "--host", genuine[0].Host}, "FAILED"},
	} {
		args := append([]string{"audit", "verify", "--key", "@" + keyFile}, append(tc.args, cut)...)
		code, out, stderr = runBin(t, "", args...)
		if code != 1 || !strings.Contains(stderr, "names seq 4, beyond the last record (seq 3)") || !strings.Contains(stderr, tc.note) {
			t.Errorf("nsrel-hook %s: exit %d, want 1, the node's checkpoint and %q\n%s%s", strings.Join(args, " "), code, tc.note, out, stderr)
		}
	}

	// Root empties the log: with --key, no record is no seal either.
	if err := os.Truncate(cut, 0); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runBin(t, "", "audit", "verify", "--key", "@"+keyFile, cut)
	if code != 1 || !strings.Contains(stderr, "FAILED: "+cut+": no record, though verification keys were given") {
		t.Errorf("emptied, with --key: exit %d, want 1 and no record said\n%s%s", code, out, stderr)
	}
	code, out, stderr = runBin(t, "", "audit", "verify", "--json", "--key", "@"+keyFile, cut)
	res = verifyResult{}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 || res.OK || res.CheckpointsSealed || res.Problem == nil {
		t.Errorf("emptied, --json with --key: exit %d, %+v (%v)\n%s%s", code, res, err, out, stderr)
	}
}

// TestVerifyCheckpointsOfTwoLogs runs the hook with two configs of one
// host (an audit log each) and gives verify both logs' checkpoints in
// one file, as a collector receives them: the other log's no longer
// judge this one once --checkpoint-log names the log (on the node and
// on a copy alike: a checkpoint's "log" is not sealed), with --nodes
// too; both logs in one stream fail --nodes (one log per host).
func TestVerifyCheckpointsOfTwoLogs(t *testing.T) {
	var coll []byte
	var envs []*env
	for i, n := range []int{2, 4} {
		e := newEnv(t, "hook.json", func(c map[string]any) {
			c["syslog"] = ""
			c["deadline_ms"] = 60000
			c["checkpoints"].(map[string]any)["every_records"] = 1
		})
		for j := range n {
			id := "two-logs-" + strconv.Itoa(i) + "-" + strconv.Itoa(j)
			if code, _, stderr := runBin(t, shipState(id, "creating", "web"), "--config", e.config, "createRuntime"); code != 0 || stderr != "" {
				t.Fatalf("createRuntime: exit %d: %s", code, stderr)
			}
		}
		data, err := os.ReadFile(filepath.Join(e.dir, "checkpoints.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		coll = append(coll, data...)
		envs = append(envs, e)
	}
	ckpts := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	if err := os.WriteFile(ckpts, coll, 0o600); err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "audit.jsonl")
	data, err := os.ReadFile(envs[0].log)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{envs[0].log}, 1, []string{"FAILED", "the checkpoints name 2 logs", "--checkpoint-log PATH"}},
		{[]string{"--checkpoint-log", envs[0].log, envs[0].log}, 0, []string{"2 checkpoint(s) of host", "note: 4 checkpoint(s) ignored: " + audit.CheckpointOtherLog}},
		{[]string{"--checkpoint-log", envs[1].log, envs[1].log}, 0, []string{"4 checkpoint(s) of host", "note: 2 checkpoint(s) ignored: " + audit.CheckpointOtherLog}},
		{[]string{cp}, 1, []string{"FAILED", "the checkpoints name 2 logs", "--checkpoint-log PATH"}},
		{[]string{"--checkpoint-log", envs[0].log, cp}, 0, []string{"2 checkpoint(s) of host", "note: 4 checkpoint(s) ignored"}},
		{[]string{"--checkpoint-log", envs[1].log, cp}, 1, []string{"FAILED", "the chain was rewritten"}},
		// A collector's stream of one of the logs, verified by node.
		{[]string{"--nodes", "--checkpoint-log", envs[0].log, cp}, 0, []string{"2 checkpoint(s) of host", "nodes: 1 intact"}},
		{[]string{"--nodes", cp}, 1, []string{"FAILED", "the checkpoints name 2 logs", "--checkpoint-log PATH"}},
		// Both logs in one stream: --nodes takes one log per host.
		{[]string{"--nodes", "--checkpoint-log", envs[0].log, envs[0].log, envs[1].log}, 1, []string{"FAILED", "nodes: 0 intact"}},
	} {
		args := append([]string{"audit", "verify", "--checkpoints", ckpts}, tc.args...)
		code, out, stderr := runBin(t, "", args...)
		for _, w := range tc.want {
			if code != tc.code || !strings.Contains(out+stderr, w) {
				t.Errorf("nsrel-hook %s: exit %d, want %d and %q\n%s%s", strings.Join(args, " "), code, tc.code, w, out, stderr)
				break
			}
		}
	}
}

// TestVerifyMovedLogRelabelledCheckpoint: root on the node after T cuts
// records off the end of the sealed log, moves it to a new path and
// adds a genuine checkpoint whose "log" it changed to that path (the
// seal does not cover it). Verified in place with the key, the genuine
// checkpoints still judge it (their seals are the log's key's) and the
// cut shows; the log's own path used to pick the relabelled one alone,
// set the others aside as another log's, and pass.
func TestVerifyMovedLogRelabelledCheckpoint(t *testing.T) {
	nstest.RequireRoot(t)
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["syslog"] = ""
		c["deadline_ms"] = 60000
		c["checkpoints"].(map[string]any)["every_records"] = 1
	})
	code, out, stderr := runBin(t, "", "--config", e.config, "audit", "seal-init")
	if code != 0 {
		t.Fatalf("seal-init: exit %d: %s", code, stderr)
	}
	key := shownKey(out)
	for i := range 6 {
		if code, _, stderr := runBin(t, shipState("moved-"+strconv.Itoa(i), "creating", "web"), "--config", e.config, "createRuntime"); code != 0 {
			t.Fatalf("createRuntime: exit %d: %s", code, stderr)
		}
	}
	data, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
	moved := filepath.Join(t.TempDir(), "moved", "audit.jsonl")
	os.Mkdir(filepath.Dir(moved), 0o700)
	if err := os.WriteFile(moved, []byte(strings.Join(lines[:4], "")), 0o600); err != nil {
		t.Fatal(err)
	}
	cpData, err := os.ReadFile(filepath.Join(e.dir, "checkpoints.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	cps := string(cpData)
	var genuine []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(cps), "\n") {
		var c map[string]any
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			t.Fatal(err)
		}
		genuine = append(genuine, c)
	}
	relabelled := genuine[3] // the checkpoint of the new last record
	relabelled["log"] = moved
	extra, _ := json.Marshal(relabelled)
	ckpts := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	if err := os.WriteFile(ckpts, []byte(cps+string(extra)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runBin(t, "", "audit", "verify", "--key", key, "--checkpoints", ckpts, moved)
	if code != 1 || !strings.Contains(out+stderr, "beyond the last record") {
		t.Errorf("verify of the cut, moved log: exit %d, want 1 and the cut named:\n%s%s", code, out, stderr)
	}
}

// TestVerifyNodesKeyReplacedThenCut: a collector's two nodes, each
// verified with all the keys given. Node A's records after its
// seal-init --replace were cut: the checkpoints its new key sealed
// judge it and it fails, where they were set aside as another node's.
// A checkpoint of node B relabelled with node A's host is ignored when
// its hash is that of a record of B in the stream, and fails A when B's
// records are not there.
func TestVerifyNodesKeyReplacedThenCut(t *testing.T) {
	dir := t.TempDir()
	type node struct {
		log  *audit.Log
		keys []string
		cps  string
	}
	seal := func(n *node, replace bool) {
		t.Helper()
		k, _, err := n.log.StartSealing(context.Background(), replace)
		if err != nil {
			t.Fatal(err)
		}
		n.keys = append(n.keys, k.String())
	}
	open := func(host string) *node {
		t.Helper()
		d := filepath.Join(dir, host)
		l, err := audit.Open(filepath.Join(d, "audit.jsonl"), audit.Options{Host: host, SealState: filepath.Join(d, "audit.seal"),
			Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: filepath.Join(d, "checkpoints.jsonl")}})
		if err != nil {
			t.Fatal(err)
		}
		n := &node{log: l, cps: filepath.Join(d, "checkpoints.jsonl")}
		seal(n, false)
		return n
	}
	ctx := context.Background()
	add := func(n *node, count int) {
		t.Helper()
		for i := range count {
			if err := n.log.Append(ctx, &audit.Record{Source: "test", Stage: audit.StagePoststop, ContainerID: fmt.Sprint("c", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	a, b := open("node-a"), open("node-b")
	add(a, 3)
	seal(a, true)
	add(a, 3)
	add(b, 3)
	read := func(path string) []string {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitAfter(string(data), "\n")
		return lines[:len(lines)-1] // each with its newline
	}
	write := func(name string, lines ...[]string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(slices.Concat(lines...), "")), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// B's last checkpoint, relabelled as A's.
	bcps := read(b.cps)
	var relabelled map[string]any
	json.Unmarshal([]byte(bcps[len(bcps)-1]), &relabelled)
	relabelled["host"] = "node-a"
	extra, _ := json.Marshal(relabelled)
	// Without its checkpoint seal, as a checkpoint of format 1.0, which
	// sealed the record's hash alone.
	delete(relabelled, "checkpoint_seal")
	bare, _ := json.Marshal(relabelled)
	ckpts := write("checkpoints.jsonl", read(a.cps), bcps)
	sealedCkpts := write("relabelled-sealed.jsonl", read(a.cps), bcps, []string{string(extra) + "\n"})
	relabelledCkpts := write("relabelled.jsonl", read(a.cps), bcps, []string{string(bare) + "\n"})
	keyArgs := []string{}
	for _, k := range slices.Concat(a.keys, b.keys) {
		keyArgs = append(keyArgs, "--key", k)
	}
	args := append([]string{"audit", "verify", "--nodes", "--checkpoints", ckpts}, keyArgs...)
	whole := write("whole.jsonl", read(a.log.Path()), read(b.log.Path()))
	if code, out, stderr := runBin(t, "", append(args, whole)...); code != 0 || !strings.Contains(out, "nodes: 2 intact") {
		t.Errorf("the whole logs: exit %d\n%s%s", code, out, stderr)
	}
	sealedArgs := append([]string{"audit", "verify", "--nodes", "--checkpoints", sealedCkpts}, keyArgs...)
	if code, out, stderr := runBin(t, "", append(sealedArgs, whole)...); code != 0 || !strings.Contains(out, "nodes: 2 intact") ||
		!strings.Contains(out+stderr, "host, log, seq or time changed") {
		t.Errorf("a checkpoint of node B relabelled as node A's, its checkpoint seal kept: exit %d\n%s%s", code, out, stderr)
	}
	relabelledArgs := append([]string{"audit", "verify", "--nodes", "--checkpoints", relabelledCkpts}, keyArgs...)
	// Without its checkpoint seal (anyone can make the copy): its hash
	// is that of a record of node B, which names B; it failed node A
	// (review).
	code, out, stderr := runBin(t, "", append(relabelledArgs, whole)...)
	if code != 0 || !strings.Contains(out, "nodes: 2 intact") || !strings.Contains(out+stderr, "1 checkpoint(s) ignored: "+audit.CheckpointRelabelled) {
		t.Errorf("a checkpoint of node B relabelled as node A's: exit %d\n%s%s", code, out, stderr)
	}
	// With --node: B's records are read for it all the same (review).
	if code, out, stderr := runBin(t, "", append(append(slices.Clone(relabelledArgs), "--node", "node-a"), whole)...); code != 0 || !strings.Contains(out, "node node-a: OK") {
		t.Errorf("a checkpoint of node B relabelled as node A's, --node node-a: exit %d\n%s%s", code, out, stderr)
	}
	// Record lines of hosts made up from B's, carrying B's key (their
	// seals no longer check), once kept B out of the two hosts noted
	// per key, in map order: A then failed in half the runs (review).
	var madeUp []string
	for i, line := range read(b.log.Path()) {
		line = strings.Replace(line, `"host":"node-b"`, fmt.Sprintf(`"host":"x-%d"`, i%4), 1)
		at := strings.LastIndex(line, `,"hash":"`)
		sum := sha256.Sum256([]byte(line[:at] + "}"))
		madeUp = append(madeUp, line[:at+9]+hex.EncodeToString(sum[:])+line[at+9+64:])
	}
	crowded := write("crowded.jsonl", madeUp, read(a.log.Path()), read(b.log.Path()))
	for range 5 {
		code, out, stderr := runBin(t, "", append(relabelledArgs, crowded)...)
		if !strings.Contains(out, "node node-a: OK") || !strings.Contains(out, "node node-b: OK") || strings.Contains(out+stderr, "node node-a: FAILED") {
			t.Fatalf("a relabelled copy, hosts made up carrying B's key: exit %d\n%s%s", code, out, stderr)
		}
	}
	// Where node B's records are not in the stream, nothing tells:
	// node A fails.
	onlyA := write("only-a.jsonl", read(a.log.Path()))
	code, out, stderr = runBin(t, "", append(relabelledArgs, onlyA)...)
	if code != 1 || !strings.Contains(stderr, "node node-a: FAILED") || !strings.Contains(stderr, "which seals no record left in the log") {
		t.Errorf("a checkpoint of node B relabelled as node A's, B's records not given: exit %d\n%s%s", code, out, stderr)
	}
	// A's seal-start, 3 records and seal-end: all its first key sealed.
	cut := write("cut.jsonl", read(a.log.Path())[:5], read(b.log.Path()))
	code, out, stderr = runBin(t, "", append(args, cut)...)
	if code != 1 || !strings.Contains(out+stderr, "seals no record left in the log, and its checkpoint seal shows that node node-a wrote it") || !strings.Contains(out, "1 intact (node-b), 1 FAILED (node-a)") {
		t.Errorf("node A cut after its key was replaced: exit %d\n%s%s", code, out, stderr)
	}
}

// TestVerifyCheckpointsOfHosts: a collector's checkpoint file holds every
// node's checkpoints. Verifying one node's log needs --host, which keeps
// only that host's (the others are not held in memory: a fleet's year of
// checkpoints would not fit); without it the hosts are named; a host
// without checkpoints there fails.
func TestVerifyCheckpointsOfHosts(t *testing.T) {
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["syslog"] = ""
		c["checkpoints"].(map[string]any)["every_records"] = 1
	})
	for _, id := range []string{"h-0", "h-1"} {
		if code, _, stderr := runBin(t, shipState(id, "creating", "web"), "--config", e.config, "createRuntime"); code != 0 || stderr != "" {
			t.Fatalf("createRuntime: exit %d: %s", code, stderr)
		}
	}
	own, err := os.ReadFile(filepath.Join(e.dir, "checkpoints.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := audit.PeekHead(chainLines(t, e.log)[0])
	var coll []byte
	for i := range 1000 {
		c := audit.Checkpoint{Host: fmt.Sprintf("other-%d", i%3), Log: "/var/log/nsrel/audit.jsonl", Seq: uint64(i + 1), Hash: strings.Repeat("ab", 32), Time: "2026-12-04T00:00:00Z"}
		coll = append(coll, c.Line()...)
		if i == 500 {
			coll = append(coll, own...)
		}
	}
	ckpts := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	if err := os.WriteFile(ckpts, coll, 0o600); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, 0, []string{"OK: 2 records", "2 checkpoint(s) of host " + h.Host + " match"}, "--host", h.Host, "--checkpoints", ckpts, e.log)
	checkVerify(t, 1, []string{"checkpoints of 4 hosts", "pick the log's with --host"}, "--checkpoints", ckpts, e.log)
	checkVerify(t, 1, []string{"no checkpoint of host \"nowhere\""}, "--host", "nowhere", "--checkpoints", ckpts, e.log)
}

// TestVerifyKeyFile: --key @FILE reads at most a few KiB (@/dev/zero
// used to read until memory ran out), takes a pipe, and warns about a
// key file others may read: the key makes seals as well as checks them.
func TestVerifyKeyFile(t *testing.T) {
	_, keyFile := newVerifyKey(t)
	log := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(log, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runBin(t, "", "audit", "verify", "--key", "@/dev/zero", log)
	if code != 2 || !strings.Contains(stderr, "--key: not an nsrel verification key") {
		t.Errorf("--key @/dev/zero: exit %d, %s; want 2, not a key", code, stderr)
	}
	// A key file that cannot be read fails (exit 1) as a --checkpoints
	// file does; it was a usage error (exit 2).
	for _, name := range []string{filepath.Join(t.TempDir(), "missing"), t.TempDir()} {
		code, _, stderr := runBin(t, "", "audit", "verify", "--key", "@"+name, log)
		if code != 1 || !strings.HasPrefix(stderr, "nsrel-hook: audit verify: --key: ") || !strings.Contains(stderr, name+": ") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("--key @%s: exit %d, %q; want 1 and one line naming the file", name, code, stderr)
		}
	}
	if _, _, stderr := runBin(t, "", "audit", "verify", "--key", "@"+keyFile, log); strings.Contains(stderr, "warning") {
		t.Errorf("a key file only its owner reads: %s", stderr)
	}
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, stderr := runBin(t, "", "audit", "verify", "--key", "@"+keyFile, log); !strings.Contains(stderr, "warning: --key: "+keyFile+" is readable by others (mode 0644): whoever reads the key can make seals") {
		t.Errorf("a key file others may read: no warning in %s", stderr)
	}
	cmd := exec.Command("bash", "-c", `"$0" audit verify --key @<(cat "$1") "$2"`, hookBin, keyFile, log)
	if out, err := cmd.CombinedOutput(); bytes.Contains(out, []byte("--key: ")) {
		t.Errorf("--key from a pipe: %v\n%s", err, out)
	}
}

// TestVerifyKeyFileSealInitOutput: seal-init's output saved as it is
// (`seal-init > key`, as the docs say: store the key it prints) is a
// key file: its one key line is the key (the whole output was "not an
// nsrel verification key"). A file with two keys in it is refused.
func TestVerifyKeyFileSealInitOutput(t *testing.T) {
	nstest.RequireRoot(t)
	e := newEnv(t, "hook.json", nil)
	code, out, stderr := runBin(t, "", "--config", e.config, "audit", "seal-init")
	if code != 0 {
		t.Fatalf("seal-init: exit %d: %s", code, stderr)
	}
	saved := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(saved, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, 0, []string{"OK: 1 records", "all 1 seals verified with the key"}, "--key", "@"+saved, e.log)
	_, other := newVerifyKey(t)
	okey, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(saved, append([]byte(out), okey...), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runBin(t, "", "audit", "verify", "--key", "@"+saved, e.log); code != 2 || !strings.Contains(stderr, "--key: not an nsrel verification key") {
		t.Errorf("a key file with two keys: exit %d, %s; want 2, not a key", code, stderr)
	}
}

// TestVerifyForeignRotatedFile: a copy of the log verified in a
// directory others may write (sticky, as /tmp), where another user put
// a file under a rotated file's name: verify read it as the log's and
// reported the genuine records as tampered with (FAILED). It refuses the
// file now, naming it and its owner, exit 1 without a verdict.
func TestVerifyForeignRotatedFile(t *testing.T) {
	nstest.RequireRoot(t)
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = "" })
	if code, _, stderr := runBin(t, shipState("foreign-rotated", "creating", "web"), "--config", e.config, "createRuntime"); code != 0 {
		t.Fatalf("createRuntime: exit %d: %s", code, stderr)
	}
	data, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, os.ModeSticky|0o777); err != nil { // as /tmp
		t.Fatal(err)
	}
	cp := filepath.Join(dir, "evidence.jsonl")
	if err := os.WriteFile(cp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runBin(t, "", "audit", "verify", cp); code != 0 {
		t.Fatalf("the copy alone: exit %d\n%s%s", code, out, stderr)
	}
	planted := cp + ".000000000001"
	if err := os.WriteFile(planted, []byte("junk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(planted, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runBin(t, "", "audit", "verify", cp)
	if want := "nsrel-hook: audit verify: audit: " + planted + ": owned by uid 65534, not root or uid 0: refusing it"; code != 1 || !strings.HasPrefix(stderr, want) ||
		strings.Contains(stderr, "FAILED") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("with another user's file beside it: exit %d, want 1 and one line %q...\n%s%s", code, want, out, stderr)
	}
}

// TestVerifyKeysIgnoreOtherHostsLines: with keys, lines of other hosts
// that no given key seals, which anyone can add to a collector's file,
// count for nothing: without --host they refused the log ("checkpoints
// of 3 hosts: pick the log's with --host"), whatever line came first
// (review).
func TestVerifyKeysIgnoreOtherHostsLines(t *testing.T) {
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["syslog"] = ""
		c["checkpoints"].(map[string]any)["every_records"] = 1
	})
	setConfig(t, e, "seal_state", filepath.Join(e.dir, "audit.seal"))
	code, out, stderr := runBin(t, "", "--config", e.config, "audit", "seal-init")
	key := shownKey(out)
	if code != 0 || key == "" {
		t.Fatalf("seal-init: exit %d\n%s%s", code, out, stderr)
	}
	for _, id := range []string{"k-0", "k-1"} {
		if code, _, stderr := runBin(t, shipState(id, "creating", "web"), "--config", e.config, "createRuntime"); code != 0 || stderr != "" {
			t.Fatalf("createRuntime: exit %d: %s", code, stderr)
		}
	}
	own, err := os.ReadFile(filepath.Join(e.dir, "checkpoints.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var coll []byte
	for _, h := range []string{"x", "y"} {
		c := audit.Checkpoint{Host: h, Log: "/var/log/nsrel/audit.jsonl", Seq: 9999, Hash: strings.Repeat("ab", 32), Time: "2026-12-04T00:00:00Z"}
		coll = append(coll, c.Line()...)
	}
	ckpts := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	if err := os.WriteFile(ckpts, append(coll, own...), 0o600); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, 0, []string{"OK: 3 records", "note: 1 checkpoint(s) ignored: " + audit.CheckpointNotSealed,
		"note: 1 checkpoint line(s) of other hosts, sealed by no key given, set aside"}, "--key", key, "--checkpoints", ckpts, e.log)
	// Without keys, the hosts must be picked from.
	checkVerify(t, 1, []string{"checkpoints of 3 hosts (", "pick the log's with --host"}, "--checkpoints", ckpts, e.log)
}

// TestVerifyNodesRootBorrowsOwnKey: root on node A after T cuts A's last
// records and sends, under a host of its making, records sealed with
// A's key (from A's sealing state) and checkpoints of them with
// checkpoint seals. A's checkpoints without checkpoint seal (format 1.0)
// must still fail A: lines of another host carrying A's key, and that
// host's checkpoint seals, do not make A's checkpoints copies of that
// host's (only a hash of that host's records does; review of ff0b9c2).
func TestVerifyNodesRootBorrowsOwnKey(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	open := func(host, state string) *audit.Log {
		t.Helper()
		d := filepath.Join(dir, host)
		l, err := audit.Open(filepath.Join(d, "audit.jsonl"), audit.Options{Host: host, SealState: state,
			Checkpoints: &audit.CheckpointOptions{EveryRecords: 3, File: filepath.Join(d, "checkpoints.jsonl")}})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	state := filepath.Join(dir, "node-a.seal")
	a := open("node-a", state)
	key, _, err := a.StartSealing(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 9 {
		if err := a.Append(ctx, &audit.Record{Source: "test", Stage: audit.StagePoststop, ContainerID: fmt.Sprint("c", i)}); err != nil {
			t.Fatal(err)
		}
	}
	read := func(path string) []string {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitAfter(string(data), "\n")
		return lines[:len(lines)-1]
	}
	// A's checkpoints as a node before format 1.1 wrote them.
	var bare []string
	for c, err := range audit.ReadCheckpoints(filepath.Join(dir, "node-a", "checkpoints.jsonl")) {
		if err != nil {
			t.Fatal(err)
		}
		c.CheckpointSeal = ""
		bare = append(bare, string(c.Line()))
	}
	recordsA := read(a.Path())
	if len(bare) < 3 || len(recordsA) != 10 {
		t.Fatalf("%d checkpoints, %d records", len(bare), len(recordsA))
	}
	// Root after T: a copy of A's sealing state sealing the records of
	// a host of its own, whose log makes checkpoints of them.
	stolen, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	xState := filepath.Join(dir, "node-x.seal")
	if err := os.WriteFile(xState, stolen, 0o600); err != nil {
		t.Fatal(err)
	}
	x := open("node-x", xState)
	for i := range 3 {
		if err := x.Append(ctx, &audit.Record{Source: "test", Stage: audit.StagePoststop, ContainerID: fmt.Sprint("x", i)}); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string, lines ...[]string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(slices.Concat(lines...), "")), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ckpts := write("checkpoints.jsonl", bare, read(filepath.Join(dir, "node-x", "checkpoints.jsonl")))
	stream := write("stream.jsonl", recordsA[:7], read(x.Path()))
	code, out, stderr := runBin(t, "", "audit", "verify", "--nodes", "--key", key.String(), "--checkpoints", ckpts, stream)
	if code != 1 || !strings.Contains(stderr, "node node-a: FAILED") || !strings.Contains(stderr, "names seq 10, beyond the copy's last record (seq 7): records not in the copy (yet)") {
		t.Errorf("A cut, root's host with A's key beside it: exit %d\n%s%s", code, out, stderr)
	}
	// The intact stream passes A.
	whole := write("whole.jsonl", recordsA, read(x.Path()))
	if code, out, stderr := runBin(t, "", "audit", "verify", "--nodes", "--node", "node-a", "--key", key.String(), "--checkpoints", ckpts, whole); code != 0 {
		t.Errorf("A intact: exit %d\n%s%s", code, out, stderr)
	}
}

// TestAnchorRetainedCLI: the routine the docs give (save the OK line's
// last seq and hash, verify with --anchor later) under keep_files: once
// retention removed the anchor's record, SEQ:HASH passes with a note,
// and the hash alone fails saying retention may have removed it (it
// only blamed records cut off or a rewritten log).
func TestAnchorRetainedCLI(t *testing.T) {
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["rotate_bytes"], c["keep_files"], c["syslog"] = 4096, 1, ""
	})
	for i := range 3 {
		if code, _, stderr := run(selfState(fmt.Sprintf("a-%d", i)), "--config", e.config, "createRuntime"); code != 0 {
			t.Fatal(stderr)
		}
	}
	_, out, _ := run("", "audit", "verify", e.log)
	m := regexp.MustCompile(`\(seq \d+\.\.(\d+)\) in \d+ file\(s\), last hash ([0-9a-f]{64})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no last seq and hash in %q", out)
	}
	for i := range 30 {
		if code, _, stderr := run(selfState(fmt.Sprintf("b-%d", i)), "--config", e.config, "createRuntime"); code != 0 {
			t.Fatal(stderr)
		}
	}
	code, out, stderr := run("", "audit", "verify", "--anchor", m[1]+":"+m[2], e.log)
	if code != 0 || !strings.Contains(out, "note: the anchor's record was removed by retention") {
		t.Errorf("--anchor SEQ:HASH after retention: exit %d, %q %q; want OK with a note", code, out, stderr)
	}
	code, out, stderr = run("", "audit", "verify", "--anchor", m[2], e.log)
	if code != 1 || !strings.Contains(out+stderr, "or retention removed it") {
		t.Errorf("--anchor HASH after retention: exit %d, %q %q; want a failure naming retention", code, out, stderr)
	}
}

// TestVerifyUncheckpointedTail: records after the last checkpoint are
// covered by none (root on the node later could have appended them,
// sealed with the node's key), and verify says which (it said only how
// many checkpoints matched); --json gives the last seq a checkpoint
// matched.
func TestVerifyUncheckpointedTail(t *testing.T) {
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["syslog"] = ""
		c["checkpoints"].(map[string]any)["every_records"] = 3
		c["checkpoints"].(map[string]any)["every_seconds"] = 0
	})
	for i := range 5 {
		if code, _, stderr := run(selfState(fmt.Sprintf("tail-%d", i)), "--config", e.config, "createRuntime"); code != 0 {
			t.Fatal(stderr)
		}
	}
	var last audit.Checkpoint
	for c, err := range audit.ReadCheckpoints(filepath.Join(e.dir, "checkpoints.jsonl")) {
		if err != nil {
			t.Fatal(err)
		}
		last = c
	}
	recs := audittest.Records(t, e.log, "")
	end := recs[len(recs)-1].Seq
	if last.Seq == 0 || last.Seq >= end {
		t.Fatalf("last checkpoint seq %d, last record %d: want records after it", last.Seq, end)
	}
	ckpts := filepath.Join(e.dir, "checkpoints.jsonl")
	code, out, stderr := run("", "audit", "verify", "--checkpoints", ckpts, e.log)
	want := fmt.Sprintf("note: the last checkpoint, of %s, names seq %d: seq %d..%d are covered by no checkpoint", last.Time, last.Seq, last.Seq+1, end)
	if code != 0 || !strings.Contains(out, want) {
		t.Errorf("exit %d, stdout %q, stderr %q; want %q", code, out, stderr, want)
	}
	code, out, _ = run("", "audit", "verify", "--json", "--checkpoints", ckpts, e.log)
	var res struct {
		CheckpointedSeq uint64 `json:"checkpointed_seq"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || res.CheckpointedSeq != last.Seq {
		t.Errorf("--json: exit %d, %q: checkpointed_seq %d; want %d", code, out, res.CheckpointedSeq, last.Seq)
	}
}

// TestVerifyJSONListsNeverNull: verify --json's object for a failure
// before any verdict (a checkpoints file that cannot be read) has its
// lists empty, as every other object has: they were null, on which
// `jq '.damage[]'` fails.
func TestVerifyJSONListsNeverNull(t *testing.T) {
	e := newEnv(t, "hook.json", nil)
	if code, _, stderr := run(selfState("j1"), "--config", e.config, audit.StageCreateRuntime); code != 0 {
		t.Fatalf("createRuntime: exit %d: %s", code, stderr)
	}
	code, out, _ := run("", "audit", "verify", "--json", "--checkpoints", filepath.Join(e.dir, "none.jsonl"), e.log)
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); code != 1 || err != nil {
		t.Fatalf("exit %d, %v: %s", code, err, out)
	}
	for _, k := range []string{"files", "torn_tails", "seal_ids", "damage", "dropped", "checkpoints_ignored", "checkpoint_hosts"} {
		if _, ok := res[k].([]any); !ok {
			t.Errorf("%s: %v, want a list: %s", k, res[k], out)
		}
	}
}

// TestVerifyEmptyLog: an empty log verifies nothing, and verify says so
// and fails; it said "OK: 0 records (seq 0..0) ..., last hash " and
// exited 0 (a log emptied passed a nightly check without checkpoints).
func TestVerifyEmptyLog(t *testing.T) {
	log := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(log, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run("", "audit", "verify", log)
	if want := "nsrel-hook: audit verify: " + log + ": no record to verify: an empty log (emptied, or its files removed?)\n"; code != 1 || out != "" || stderr != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1 and %q", code, out, stderr, want)
	}
	code, out, _ = run("", "audit", "verify", "--json", log)
	var res struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &res); code != 1 || err != nil || res.OK || !strings.Contains(res.Error, "no record to verify") {
		t.Errorf("--json: exit %d, %v: %s", code, err, out)
	}
}

// TestVerifyReaderWithoutLock: a user who may read the log (a member of
// its group) but not its lock (root's, 0600) could not verify or show
// it: "open ....lock: permission denied". The log is read without the
// lock, its files listed again once open.
func TestVerifyReaderWithoutLock(t *testing.T) {
	nstest.RequireRoot(t)
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = ""; c["rotate_bytes"] = 4096 })
	for i := 0; len(rotatedFiles(e)) < 2; i++ {
		createRuntime(t, e, fmt.Sprint("c", i))
	}
	// Readable by others, as by a group: the files and directories, but
	// the lock the hook made.
	for _, f := range append(rotatedFiles(e), e.log) {
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{e.dir, filepath.Dir(e.dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := os.Stat(e.log + ".lock"); err != nil || st.Mode().Perm()&0o004 != 0 {
		t.Fatalf("the lock: %v, %v; want one others may not read", st, err)
	}
	for _, args := range [][]string{{"audit", "verify", e.log}, {"audit", "show", e.log}} {
		cmd := exec.Command(hookBin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || !strings.Contains(stdout.String(), "c0") && args[1] == "show" {
			t.Errorf("%q as nobody: %v: %s%s", args, err, stdout.String(), stderr.String())
		}
	}
}

// TestAuditCheckpointQuietNode: on a node where only the hook writes the
// log, a checkpoint was emitted only at an append: the records after the
// last one were covered by none for as long as no container started,
// and root on the node later cut them off the log, which then verified
// with its key and checkpoints. audit checkpoint (the shipped timer's
// command) emits one when it is due by time, and the cut fails.
func TestAuditCheckpointQuietNode(t *testing.T) {
	nstest.RequireRoot(t)
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["syslog"] = ""
		c["checkpoints"].(map[string]any)["every_records"] = 100
		c["checkpoints"].(map[string]any)["every_seconds"] = 1
	})
	key := sealInit(t, e)
	cpFile := filepath.Join(e.dir, "checkpoints.jsonl")
	lastCheckpoint := func() uint64 {
		var seq uint64
		for c, err := range audit.ReadCheckpoints(cpFile) {
			if err != nil {
				t.Fatal(err)
			}
			seq = max(seq, c.Seq)
		}
		return seq
	}
	for i := range 4 {
		createRuntime(t, e, fmt.Sprint("quiet-", i))
	}
	recs := e.records(t, "")
	last := recs[len(recs)-1].Seq
	if got := lastCheckpoint(); got >= last {
		t.Fatalf("checkpoint of seq %d after 4 quick starts; want one before the last record (%d)", got, last)
	}
	time.Sleep(1100 * time.Millisecond)
	if code, out, stderr := run("", "--config", e.config, "audit", "checkpoint"); code != 0 || out != "" || stderr != "" {
		t.Fatalf("audit checkpoint: exit %d, %q, %q; want 0 and nothing said", code, out, stderr)
	}
	if got := lastCheckpoint(); got != last {
		t.Errorf("checkpoint of seq %d after audit checkpoint; want the last record's, %d", got, last)
	}
	// Not due again at once: none more.
	before, _ := os.ReadFile(cpFile)
	run("", "--config", e.config, "audit", "checkpoint")
	if after, _ := os.ReadFile(cpFile); !bytes.Equal(before, after) {
		t.Error("audit checkpoint emitted a checkpoint that was not due")
	}
	// Its sealing state gone: the checkpoint went out unsealed, unsaid.
	createRuntime(t, e, "quiet-sealed")
	time.Sleep(1100 * time.Millisecond)
	seal := filepath.Join(e.dir, "audit.seal")
	if err := os.Rename(seal, seal+".aside"); err != nil {
		t.Fatal(err)
	}
	// A failure, not labelled a warning (it was, exiting 1).
	if code, _, stderr := run("", "--config", e.config, "audit", "checkpoint"); code != 1 || !strings.Contains(stderr, "not sealed") || strings.Contains(stderr, "warning") {
		t.Errorf("audit checkpoint, the sealing state missing: exit %d, %q; want 1 and that it is not sealed, no warning", code, stderr)
	}
	// A hook wrote on, unsealed, saying why: the chain is still sealed,
	// and so the checkpoint is still said not sealed.
	createRuntime(t, e, "quiet-unsealed")
	time.Sleep(1100 * time.Millisecond)
	if code, _, stderr := run("", "--config", e.config, "audit", "checkpoint"); code != 1 || !strings.Contains(stderr, "not sealed") {
		t.Errorf("audit checkpoint after an unsealed record, the sealing state missing: exit %d, %q; want 1 and that it is not sealed", code, stderr)
	}
	if err := os.Rename(seal+".aside", seal); err != nil {
		t.Fatal(err)
	}
	// The current file missing, rotated files there (a rotation cut
	// short): it did nothing, exit 0.
	rotated := e.log + ".000000000001"
	if err := os.Rename(e.log, rotated); err != nil {
		t.Fatal(err)
	}
	createRuntime(t, e, "quiet-rotated") // makes the current file again
	time.Sleep(1100 * time.Millisecond)
	if err := os.Rename(e.log, e.log+".aside"); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run("", "--config", e.config, "audit", "checkpoint"); code != 1 || !strings.Contains(stderr, "is missing, its rotated files are there") {
		t.Errorf("audit checkpoint, the current file missing: exit %d, %q; want 1 and that it is missing", code, stderr)
	}
	if err := os.Rename(e.log+".aside", e.log); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(rotated, e.log+".tmp"); err != nil {
		t.Fatal(err)
	}
	data0, _ := os.ReadFile(e.log + ".tmp")
	data1, _ := os.ReadFile(e.log)
	if err := os.WriteFile(e.log, append(data0, data1...), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(e.log + ".tmp")
	// Root on the node later cuts the records off: caught.
	data, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	if err := os.WriteFile(e.log, []byte(strings.Join(lines[:2], "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := run("", "--config", e.config, "audit", "verify", "--key", key, "--checkpoints", cpFile); code == 0 {
		t.Errorf("verify of the log cut after the checkpoint: exit 0: %s%s", out, stderr)
	}
	// Without checkpoints by time in the config: nothing to do, exit 0.
	setConfig(t, e, "checkpoints", map[string]any{"every_records": 100, "file": cpFile})
	if code, _, stderr := run("", "--config", e.config, "audit", "checkpoint"); code != 0 {
		t.Errorf("audit checkpoint without every_seconds: exit %d, %s", code, stderr)
	}
}

// TestVerifyShippedListedStartNote: a --partial copy whose first records
// a damage record of the copy lists as older records again passes, and
// says that they were dropped on the damage record's word (also in
// JSON): root on the node, later, can seal such a damage record.
func TestVerifyShippedListedStartNote(t *testing.T) {
	var recs []*audit.Record
	var lines [][]byte
	add := func(r *audit.Record, prev string, seq uint64) *audit.Record {
		r.Time, r.Host, r.Seq, r.Prev = "2026-12-07T00:00:00Z", "h", seq, prev
		line, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		recs, lines = append(recs, r), append(lines, line)
		return r
	}
	prev := ""
	for i := range 4 {
		prev = add(&audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: fmt.Sprint("c", i)}, prev, uint64(i+1)).Hash
	}
	// The copy: seq 3 and 4, then (seq 5 not in it) a damage record
	// listing them.
	d := &audit.Record{Source: audit.SourceAudit, Stage: audit.StageDamaged, Error: "complete line(s) at the end of the log are not the chain's records"}
	for _, l := range lines[2:4] {
		k := audit.LineKeyOf(bytes.TrimSuffix(l, []byte("\n")))
		d.Damage = append(d.Damage, audit.DamagedLine{File: "audit.jsonl", Bytes: k.Bytes, SHA256: k.SHA256, Kind: "replayed", Reason: "an older record again"})
	}
	d = add(d, strings.Repeat("b", 64), 6)
	add(audittest.AckOf(d, "checked"), d.Hash, 7)
	copied := filepath.Join(t.TempDir(), "copy.jsonl")
	if err := os.WriteFile(copied, slices.Concat(lines[2], lines[3], lines[4], lines[5]), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runBinTimeout(t, time.Minute, "audit", "verify", "--shipped", "--partial", copied)
	if want := ": note: 2 record(s) before the copy's first were dropped because a damage record of the copy lists them as older records again"; code != 0 || !strings.Contains(stdout, want) {
		t.Errorf("exit %d, stdout %q, stderr %q; want a note %q", code, stdout, stderr, want)
	}
	code, stdout, _ = runBinTimeout(t, time.Minute, "audit", "verify", "--shipped", "--partial", "--json", copied)
	var res struct {
		OK          bool `json:"ok"`
		ListedStart int  `json:"listed_start"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); code != 0 || err != nil || !res.OK || res.ListedStart != 2 {
		t.Errorf("--json: exit %d, %+v (%v): %s", code, res, err, stdout)
	}
	// Without --partial, they are the copy's chain, and seq 5 is missing.
	if code, _, stderr := runBinTimeout(t, time.Minute, "audit", "verify", "--shipped", copied); code != 1 || !strings.Contains(stderr, "expected seq 5 after seq 4") {
		t.Errorf("without --partial: exit %d, stderr %q", code, stderr)
	}
}

// TestBinaryLateSeals: a hook run while the sealing state was missing
// (put aside for a moment) wrote its record unsealed, saying why, and
// `audit verify --key` failed at it for good, though the next hook
// sealed on: nothing could acknowledge it. The next hook seals it late
// and verify passes, saying so, in text and in --json.
func TestBinaryLateSeals(t *testing.T) {
	nstest.RequireRoot(t)
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = "" })
	key := sealInit(t, e)
	createRuntime(t, e, "before")
	seal := filepath.Join(e.dir, "audit.seal")
	if err := os.Rename(seal, seal+".aside"); err != nil {
		t.Fatal(err)
	}
	createRuntime(t, e, "unsealed")
	if err := os.Rename(seal+".aside", seal); err != nil {
		t.Fatal(err)
	}
	recs := e.records(t, "")
	seq := recs[len(recs)-1].Seq
	if code, out, stderr := run("", "--config", e.config, "audit", "verify", "--key", key); code != 1 || !strings.Contains(stderr+out, "no record after it seals it late yet") {
		t.Errorf("verify with the unsealed record last: exit %d; want 1, saying no record seals it late yet\n%s%s", code, out, stderr)
	}
	createRuntime(t, e, "after")
	want := fmt.Sprintf("note: seq %d..%d were written unsealed (sealing state %s is missing, though the records before are sealed) and sealed late by seq %d", seq, seq, seal, seq+1)
	if code, out, stderr := run("", "--config", e.config, "audit", "verify", "--key", key); code != 0 || !strings.Contains(out, want) {
		t.Errorf("verify after the next hook: exit %d; want 0 and %q\n%s%s", code, want, out, stderr)
	}
	if code, out, stderr := run("", "--config", e.config, "audit", "show"); code != 0 || !strings.Contains(out, fmt.Sprintf("seals seq %d..%d late (written unsealed)", seq, seq)) {
		t.Errorf("audit show: exit %d; want the record that seals seq %d late saying so\n%s%s", code, seq, out, stderr)
	}
	code, out, stderr := run("", "--config", e.config, "audit", "verify", "--json", "--key", key)
	var res verifyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || len(res.LateSealed) != 1 || res.LateSealed[0].FirstSeq != seq || res.LateSealed[0].By != seq+1 || res.SealsVerified != res.Records {
		t.Errorf("verify --json: exit %d, %+v (%v)\n%s%s", code, res, err, out, stderr)
	}
}

// TestRootlessHookMaps runs the hook as a rootless runtime does, in a
// user namespace of its own (unshare -r: UID 0 alone, the caller's),
// for a container in a user namespace below it that maps that UID 0.
// The top of the chain is the hook's namespace: the record gave it the
// initial namespace's identity map (host IDs 0-4294967294) and no lines,
// and `audit show` called the IDs host IDs.
func TestRootlessHookMaps(t *testing.T) {
	nstest.RequireRoot(t)
	unshare := nstest.RequireCmd(t, "unshare")
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["syslog"] = ""
		// Rules that judge the maps, in audit mode: a container in the
		// hook's own namespace was judged as if it had every ID.
		rules := c["default"].(map[string]any)["rules"].(map[string]any)
		rules["mapped_ids_max"], rules["disjoint_from_running"] = 65536, true
	})
	script := `readlink /proc/self/ns/user
"$1" -Ur sleep 60 & p=$!
trap 'kill $p 2>/dev/null' EXIT
for i in $(seq 100); do
	[ "$(readlink /proc/$p/ns/user)" != "$(readlink /proc/self/ns/user)" ] && break
	sleep 0.05
done
printf '{"id":"rootless","pid":%d,"bundle":"/b"}' $p | "$0" --config "$2" createRuntime
printf '{"id":"in-top","pid":%d,"bundle":"/b"}' $$ | "$0" --config "$2" createRuntime`
	out, err := exec.Command(unshare, "-Ur", "sh", "-c", script, hookBin, unshare, e.config).Output()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		t.Fatal(err)
	}
	top := strings.TrimSpace(string(out))
	recs := e.records(t, "rootless")
	if len(recs) != 1 || recs[0].Ancestry == nil || len(recs[0].Maps) != 2 {
		t.Fatalf("records of the rootless hook: %+v (%v: %s)", recs, err, out)
	}
	own := []audit.IDRange{{Inside: 0, Outside: 0, Count: 1}}
	for i, m := range recs[0].Maps {
		if !slices.Equal(m.HostUIDMap, own) || !slices.Equal(m.HostGIDMap, own) || m.Error != "" {
			t.Errorf("level %d (user:[%d]): host maps %v %v, error %q; want %v: the IDs of %s", i, m.Ino, m.HostUIDMap, m.HostGIDMap, m.Error, own, top)
		}
	}
	if m := recs[0].Maps[1]; fmt.Sprintf("user:[%d]", m.Ino) != top || len(m.UIDMap) != 1 || m.UIDMap[0].Inside != 0 || m.UIDMap[0].Count != 1 {
		t.Errorf("the top, %s: %+v; want its own lines (0 0 1)", top, m)
	}
	// Its root is the hook's namespace's UID 0, which the processes
	// there (the shell, the hook) hold: by design in a rootless
	// runtime's namespace (keep-id maps the user's ID), not counted.
	for _, v := range recs[0].Violations {
		if strings.Contains(v.Reason, "held by") {
			t.Errorf("violation of the rootless container: %s: %s; want none of the processes of the hook's own namespace", v.Rule, v.Reason)
		}
	}
	// A container in the hook's namespace itself: its IDs are those its
	// lines map (one), and it runs in no user namespace of its own,
	// which is not the initial one.
	in := e.records(t, "in-top")
	if len(in) != 1 {
		t.Fatalf("records of the container in the hook's namespace: %+v", in)
	}
	var reasons []string
	for _, v := range in[0].Violations {
		reasons = append(reasons, v.Rule+": "+v.Reason)
	}
	got := strings.Join(reasons, "\n")
	for _, want := range []string{
		"require_user_namespace: the container runs in the user namespace the hook runs in, " + top + " (not the initial one: a rootless runtime's)",
		"disjoint_from_running: the container runs in the user namespace the hook runs in, " + top,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("violations of the container in %s:\n%s\nwant %q", top, got, want)
		}
	}
	if strings.Contains(got, "initial user namespace") || strings.Contains(got, "mapped_ids_max") {
		t.Errorf("violations of the container in %s:\n%s\nwant none calling it the initial namespace, none of mapped_ids_max (it has 1 ID)", top, got)
	}
	code, show, stderr := run("", "--config", e.config, "audit", "show")
	want := "setgroups deny, in " + top + " UIDs 0, in " + top + " GIDs 0"
	if code != 0 || strings.Contains(show, "host UIDs") || strings.Count(show, want) != 3 {
		t.Errorf("audit show: exit %d; want both levels' maps as IDs %q, none as host UIDs\n%s%s", code, want, show, stderr)
	}
}

// TestShowOldRootlessTop: a record written before format 1.6 by a hook
// in a user namespace of its own gave the top of the chain the initial
// namespace's identity map; audit show would now call it "in user:[N]
// UIDs 0-4294967294", which that namespace never had.
func TestShowOldRootlessTop(t *testing.T) {
	r := &audit.Record{Seq: 1, Stage: audit.StageCreateRuntime, ContainerID: "old", Ancestry: &audit.Ancestry{
		User: []audit.UserNS{{Ino: 4026532175}, {Ino: 4026532174}},
		Maps: []audit.UserMaps{
			{Ino: 4026532175, UIDMap: []audit.IDRange{{Inside: 0, Outside: 0, Count: 1}}, GIDMap: []audit.IDRange{{Inside: 0, Outside: 0, Count: 1}},
				HostUIDMap: []audit.IDRange{{Inside: 0, Outside: 0, Count: 1}}, HostGIDMap: []audit.IDRange{{Inside: 0, Outside: 0, Count: 1}}, SetGroups: "deny"},
			{Ino: 4026532174, HostUIDMap: []audit.IDRange{{Inside: 0, Outside: 0, Count: 4294967295}}, HostGIDMap: []audit.IDRange{{Inside: 0, Outside: 0, Count: 4294967295}},
				SetGroups: "deny", Error: "uid_map and gid_map of the top are relative to a parent the inspector cannot see"},
		}}}
	var b strings.Builder
	writeRecord(&b, r)
	for _, want := range []string{
		"maps: user:[4026532175] uid_map 0 0 1, gid_map 0 0 1, setgroups deny, in user:[4026532174] UIDs 0, in user:[4026532174] GIDs 0\n",
		"maps: user:[4026532174] not recorded (an nsrel before 1.6 gave the top of the chain of a hook run in a user namespace of its own every ID)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("audit show of an old rootless record:\n%s\nwant %q", b.String(), want)
		}
	}
}
