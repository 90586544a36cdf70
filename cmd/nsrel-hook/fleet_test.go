package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/rsyslogtest"
)

// fleetNode is one node of TestFleetVerify: a host name of its own (the
// hook runs in a UTS namespace that has it), its own config, audit log,
// sealing key and checkpoints, and its own rsyslogd shipping the log.
type fleetNode struct {
	host string
	e    *env
	key  string
}

// hook runs nsrel-hook as the node: in a new UTS namespace whose host
// name is the node's, so that its records and checkpoints carry it.
func (n *fleetNode) hook(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	unshare, hostname := nstest.RequireCmd(t, "unshare"), nstest.RequireCmd(t, "hostname")
	cmd := exec.Command(unshare, append([]string{"--uts", "--", "/bin/sh", "-c", `"$0" "$1" && shift && exec "$@"`, hostname, n.host, hookBin}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil || errb.Len() > 0 {
		t.Fatalf("%s: nsrel-hook %s: %v: %s", n.host, strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// checkVerify runs `audit verify` with args: it must exit wantCode and
// print each of wantOut (on stdout or stderr).
func checkVerify(t *testing.T, wantCode int, wantOut []string, args ...string) {
	t.Helper()
	code, out, stderr := runBin(t, "", append([]string{"audit", "verify"}, args...)...)
	if code != wantCode {
		t.Errorf("audit verify %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, wantCode, out, stderr)
		return
	}
	for _, w := range wantOut {
		if !strings.Contains(out+stderr, w) {
			t.Errorf("audit verify %s: no %q in\n%s%s", strings.Join(args, " "), w, out, stderr)
		}
	}
}

// TestFleetVerify ships the sealed, checkpointed logs of two nodes
// through real rsyslog daemons with the shipped configs (one per node,
// tailing its log and its checkpoints file, forwarding over RELP) into
// one collector file, where the records of both nodes interleave, and
// the checkpoints into another. `audit verify --nodes` verifies each node's records
// as its own chain with its own key and checkpoints and says which nodes
// are intact; --node picks one; the nodes' own files verify the same
// way; a record of one node lost on the way fails that node only.
func TestFleetVerify(t *testing.T) {
	nstest.RequireRoot(t)
	// The shipped rsyslog configs (config/rsyslog): the collector's, and
	// each node's, tailing its log.
	coll, mixed, ckpts, port := startCollector(t, "")

	var nodes []*fleetNode
	for _, host := range []string{"node-a", "node-b"} {
		n := &fleetNode{host: host}
		d := rsyslogtest.New(t, host)
		ckptFile := d.Path("checkpoints.jsonl")
		n.e = newEnv(t, "hook.json", func(c map[string]any) {
			c["syslog"] = ""
			c["deadline_ms"] = 60000
			c["checkpoints"] = map[string]any{"every_records": 2, "every_seconds": 0, "file": ckptFile, "syslog": []string{}}
		})
		setConfig(t, n.e, "seal_state", filepath.Join(n.e.dir, "audit.seal"))
		out := n.hook(t, "", "--config", n.e.config, "audit", "seal-init")
		if paras := strings.Split(out, "\n\n"); len(paras) > 1 {
			n.key = strings.TrimSpace(paras[1])
		}
		conf, _ := writeNodeConf(t, d, port, n.e.log, ckptFile)
		d.StartSystem(t, fmt.Sprintf("$IncludeConfig %s\n", conf))
		nodes = append(nodes, n)
	}
	// Three containers on each node, the nodes taking turns.
	records := 2 // the seal-start records
	for i := range 3 {
		for _, n := range nodes {
			id := fmt.Sprintf("%s-ctr-%d", n.host, i)
			for _, stage := range []string{"createRuntime", "poststop"} {
				status := map[string]string{"createRuntime": "creating", "poststop": "stopped"}[stage]
				n.hook(t, shipState(id, status, "web"), "--config", n.e.config, stage)
				records++
			}
		}
	}
	got := rsyslogtest.WaitLines(t, mixed, records, coll)
	rsyslogtest.WaitLines(t, ckpts, 8, coll) // four of each node
	if len(got) != records {
		t.Fatalf("the collector has %d records, want %d", len(got), records)
	}
	keys := []string{"--key", nodes[0].key, "--key", nodes[1].key, "--checkpoints", ckpts}

	verify := func(wantCode int, wantOut []string, args ...string) {
		t.Helper()
		checkVerify(t, wantCode, wantOut, args...)
	}
	verify(0, []string{"node node-a: OK: 7 records (seq 1..7)", "node node-b: OK: 7 records (seq 1..7)",
		"node node-a: sealed since seq 1: all 7 seals verified", "node node-b: 4 checkpoint(s) of host node-b match",
		"nodes: 2 intact (node-a, node-b), 0 FAILED"}, append(keys, "--nodes", mixed)...)
	verify(0, []string{"node node-b: OK: 7 records", "nodes: 1 intact (node-b), 0 FAILED"}, append(keys, "--node", "node-b", mixed)...)
	// Per-node files: the nodes' own logs.
	verify(0, []string{"nodes: 2 intact (node-a, node-b), 0 FAILED"}, append(keys, "--nodes", nodes[0].e.log, nodes[1].e.log)...)
	code, out, stderr := runBin(t, "", append(append([]string{"audit", "verify", "--json", "--nodes"}, keys...), mixed)...)
	var results []verifyResult
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r verifyResult
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("--json line %q: %v", l, err)
		}
		results = append(results, r)
	}
	if code != 0 || stderr != "" || len(results) != 2 || results[0].Node != "node-a" || !results[0].OK || results[1].Node != "node-b" || results[1].Records != 7 || results[1].Checkpoints != 4 {
		t.Errorf("--json --nodes: exit %d, %+v, stderr %q", code, results, stderr)
	}
	// Keys given, but none of node-a's: node-a fails (root could have
	// rewritten its chain under a key of its own); without keys its
	// chain is checked alone.
	verify(1, []string{"node node-a: FAILED", "none of the keys given seals these records (sealed with key", "nodes: 1 intact (node-b), 1 FAILED (node-a)"}, "--key", nodes[1].key, "--nodes", mixed)
	verify(0, []string{"node node-a: sealed since seq 1, but no key given"}, "--node", "node-a", mixed)

	// A record of node-b lost on the way (its third line) fails node-b,
	// not node-a.
	var kept [][]byte
	seen := 0
	for _, l := range got {
		if bytes.Contains(l, []byte(`"host":"node-b"`)) {
			if seen++; seen == 3 {
				continue
			}
		}
		kept = append(kept, l)
	}
	lossy := filepath.Join(t.TempDir(), "lossy.jsonl")
	if err := os.WriteFile(lossy, append(bytes.Join(kept, []byte("\n")), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	// The problem names the line in the file given (node-b's third line
	// is gone: its fourth, the file's line 7 or 8, has seq 4 where seq 3
	// was due).
	verify(1, []string{"node node-a: OK: 7 records", "node node-b: FAILED: " + lossy + ":", ": seq 4: ", "nodes: 1 intact (node-a), 1 FAILED (node-b)"}, append(keys, "--nodes", lossy)...)
	// node-b's first two records sent after its third, the second of
	// them twice, as rsyslog sends what it was retrying after a restart
	// while the collector was unreachable: as shipped, both nodes
	// verify; not as shipped, node-b fails and says why.
	var resent [][]byte
	var b23 [][]byte
	seen = 0
	for _, l := range got {
		resent = append(resent, l)
		if bytes.Contains(l, []byte(`"host":"node-b"`)) {
			switch seen++; seen {
			case 1, 2:
				b23 = append(b23, l)
				resent = resent[:len(resent)-1]
			case 3:
				resent = append(resent, b23...)
				resent = append(resent, b23[1])
			}
		}
	}
	if err := os.WriteFile(lossy, append(bytes.Join(resent, []byte("\n")), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	verify(0, []string{"node node-b: OK: 7 records (seq 1..7)", "node node-b: note: as shipped, 2 record(s) came out of chain order and 1 line(s) repeated", "nodes: 2 intact (node-a, node-b), 0 FAILED"}, append(keys, "--nodes", "--shipped", lossy)...)
	verify(1, []string{"node node-a: OK: 7 records", "verify it as shipped", "nodes: 1 intact (node-a), 1 FAILED (node-b)"}, append(keys, "--nodes", lossy)...)
	// node-b's second and third records swapped: where the missing one
	// comes later is named in the file given, not in verify's own split
	// of it.
	var swapped [][]byte
	at := -1
	seen = 0
	for _, l := range got {
		swapped = append(swapped, l)
		if bytes.Contains(l, []byte(`"host":"node-b"`)) {
			switch seen++; seen {
			case 2:
				at = len(swapped) - 1
			case 3:
				swapped[at], swapped[len(swapped)-1] = swapped[len(swapped)-1], swapped[at]
			}
		}
	}
	if err := os.WriteFile(lossy, append(bytes.Join(swapped, []byte("\n")), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	verify(1, []string{"seq 3: expected seq 2 after seq 1, which comes later, at " + lossy + ":", "nodes: 1 intact (node-a), 1 FAILED (node-b)"}, append(keys, "--nodes", lossy)...)
	// A node the checkpoints know but whose records are all gone.
	var onlyA [][]byte
	for _, l := range got {
		if bytes.Contains(l, []byte(`"host":"node-a"`)) {
			onlyA = append(onlyA, l)
		}
	}
	if err := os.WriteFile(lossy, append(bytes.Join(onlyA, []byte("\n")), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	verify(1, []string{"node node-b: no record of node node-b", "nodes: 1 intact (node-a), 1 FAILED (node-b)"}, append(keys, "--nodes", lossy)...)
	// A line that is no record belongs to no node: the stream is not intact.
	if err := os.WriteFile(lossy, append(bytes.Join(got, []byte("\n")), []byte("\ngarbage\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	verify(1, []string{"nodes: 2 intact (node-a, node-b), 0 FAILED", "FAILED: 1 line(s) name no node"}, append(keys, "--nodes", lossy)...)
	// Usage errors.
	verify(2, []string{"--host picks one log's checkpoints"}, "--nodes", "--host", "node-a", mixed)
	verify(2, []string{"need the collector's LOG files"}, "--nodes")
	verify(2, []string{"--anchor is the hash of one node's record"}, "--nodes", "--anchor", strings.Repeat("a", 64), mixed)
}
