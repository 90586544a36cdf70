package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/rsyslogtest"
)

// TestShippedRsyslogTornTail tears the node's last line (a crash in the
// middle of an append) under the shipped nsrel-node.conf's imfile, which
// reads the fragment and waits for its newline; then the hook appends
// again. The collector's copy holds the node's lines byte for byte, the
// torn line ended with the mark among them, and verifies as it is, as
// shipped and with --nodes. (When the append wrote over the fragment, imfile read on from
// where it was: the collector got the fragment glued to the rest of the
// first record, a line the node never had, and its copy failed.)
func TestShippedRsyslogTornTail(t *testing.T) {
	// Short of the host: --nodes learns whose it is from its record.
	s := crashShipping(t, []byte(`{"format":"1.2","seq":3,"time":"2026-12-04T00:00:00.123456789Z","ho`))
	node, coll, e, n, recvAudit, recvCkpts, ckptFile := s.node, s.coll, s.e, s.n, s.recvAudit, s.recvCkpts, s.ckptFile
	n += shipStages(t, e, "b") + 1 // and the torn-tail record

	nodeLines, err := rsyslogtest.Lines(e.log)
	if err != nil || len(nodeLines) != n+1 || !bytes.HasSuffix(nodeLines[2], []byte(audit.TornMark)) {
		t.Fatalf("the node's log: %v\n%s", err, bytes.Join(nodeLines, []byte("\n")))
	}
	nodeCkpts, err := rsyslogtest.Lines(ckptFile)
	if err != nil {
		t.Fatal(err)
	}
	got := waitAllLines(t, recvAudit, nodeLines, node, coll)
	if !equalLines(t, "received records", got, nodeLines) {
		t.FailNow()
	}
	waitAllLines(t, recvCkpts, nodeCkpts, node, coll)
	for _, flags := range [][]string{nil, {"--shipped"}, {"--nodes"}} {
		if out := verifyCopy(t, n, recvCkpts, recvAudit, flags...); !strings.Contains(out, "torn line") {
			t.Errorf("verify %v does not note the torn line:\n%s", flags, out)
		}
	}
}

// waitFileRead waits until d has read path to its end: the offset of
// its descriptor of path (/proc/PID/fdinfo) is the file's size.
func waitFileRead(t *testing.T, d *rsyslogtest.Daemon, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", d.Pid())
	deadline := time.Now().Add(rsyslogtest.Timeout)
	for {
		ents, err := os.ReadDir(fdDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range ents {
			if target, _ := os.Readlink(filepath.Join(fdDir, ent.Name())); target != path {
				continue
			}
			info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", d.Pid(), ent.Name()))
			for _, line := range strings.Split(string(info), "\n") {
				if v, ok := strings.CutPrefix(line, "pos:"); ok {
					if pos, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64); pos == st.Size() {
						return
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd did not read %s to its end (%d bytes) in %v\n%s", path, st.Size(), rsyslogtest.Timeout, d.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestShippedRsyslogRotationWhileDown rotates the node's log (rotate_bytes
// 4096) while its rsyslog is stopped. As shipped, imfile tails only the
// current file: the records moved away meanwhile never leave the node,
// and verifying the collector's copy with the checkpoints names the gap.
// With the rotated files' input that nsrel-node.conf offers uncommented,
// every record arrives (each rotated file is sent again whole: repeats)
// and the copy verifies as shipped.
func TestShippedRsyslogRotationWhileDown(t *testing.T) {
	nstest.Require(t, os.Geteuid() == 0, "needs root: the hook writes root's files")
	for _, rotated := range []bool{false, true} {
		t.Run(map[bool]string{false: "as-shipped", true: "rotated-files"}[rotated], func(t *testing.T) {
			coll, recvAudit, recvCkpts, port := startCollector(t, "")
			node := rsyslogtest.New(t, "node")
			ckptFile := node.Path("checkpoints.jsonl")
			e := newEnv(t, "hook.json", func(c map[string]any) {
				c["deadline_ms"] = 60000
				c["syslog"] = ""
				c["rotate_bytes"] = 4096
				c["keep_files"] = 0
				c["checkpoints"] = map[string]any{"every_records": 1, "every_seconds": 0, "file": ckptFile, "syslog": []string{}}
			})
			var pairs []string
			if rotated {
				pairs = []string{`# input(type="imfile" file="/var/log/nsrel/audit.jsonl.[0-9]*"`, fmt.Sprintf(`input(type="imfile" file=%q`, e.log+".[0-9]*")}
			}
			nodeConf, _ := writeNodeConf(t, node, port, e.log, ckptFile, pairs...)
			node.StartSystem(t, fmt.Sprintf("$IncludeConfig %s\n", nodeConf))
			shipStages(t, e, "a", "b")
			waitAllLines(t, recvAudit, chainLines(t, e.log), node, coll)
			node.Stop(t)
			for i := range 12 { // about four rotations
				shipStages(t, e, fmt.Sprintf("down-%d", i))
			}
			node.Restart(t)
			shipStages(t, e, "z")
			all := chainLines(t, e.log)
			ckpts, err := rsyslogtest.Lines(ckptFile)
			if err != nil {
				t.Fatal(err)
			}
			files, _ := audit.Files(e.log)
			waitAllLines(t, recvCkpts, ckpts, node, coll)
			if rotated {
				waitAllLines(t, recvAudit, all, node, coll)
				verifyCopy(t, len(all), recvCkpts, recvAudit, "--shipped")
				return
			}
			// Whatever else arrives (imfile may start the new current
			// file at its start or not), seq 5, in a file rotated while
			// rsyslog was down, does not: verify with the checkpoints,
			// which all arrived, names the gap after seq 4.
			got, _ := rsyslogtest.Lines(recvAudit)
			t.Logf("%d records in %d files on the node, %d lines at the collector", len(all), len(files), len(got))
			code, out, stderr := runBin(t, "", "audit", "verify", "--shipped", "--checkpoints", recvCkpts, recvAudit)
			if code != 1 || !strings.Contains(stderr, "expected seq 5 after seq 4") && !strings.Contains(stderr, "beyond the last record (seq 4)") {
				t.Errorf("verify --shipped --checkpoints of the copy: exit %d, want 1 and the gap after seq 4\n%s%s", code, out, stderr)
			}
		})
	}
}

// TestShippedCheckpointsRotated: the shipped logrotate config renames the
// checkpoints file the shipped node config tails. imfile tails that name
// alone and starts the new file from its first line, so checkpoints
// written while the node's rsyslog was down and rotated away before it
// came back never left the node (nor would the hook write them again:
// the file took them). The node config also reads the file logrotate
// renames it to (.1, compressed only at the next rotation), whole once
// when it appears: every checkpoint arrives, some twice, rsyslog up or
// down across the rotation, and the copy verifies.
func TestShippedCheckpointsRotated(t *testing.T) {
	nstest.Require(t, os.Geteuid() == 0, "needs root: the hook writes root's files")
	for _, down := range []bool{false, true} {
		t.Run(map[bool]string{false: "rsyslog-up", true: "rsyslog-down"}[down], func(t *testing.T) {
			coll, recvAudit, recvCkpts, port := startCollector(t, "")
			node, e, nodeConf, ckptFile := shipNode(t, port)
			if filepath.Dir(ckptFile) != node.Dir {
				t.Fatalf("the checkpoints file %s is not in the node's directory %s", ckptFile, node.Dir)
			}
			node.StartSystem(t, fmt.Sprintf("$IncludeConfig %s\n", nodeConf))
			n := shipStages(t, e, "a")
			ckpts, err := rsyslogtest.Lines(ckptFile)
			if err != nil {
				t.Fatal(err)
			}
			waitAllLines(t, recvCkpts, ckpts, node, coll)
			if down {
				node.Stop(t)
			}
			n += shipStages(t, e, "b")
			if ckpts, err = rsyslogtest.Lines(ckptFile); err != nil {
				t.Fatal(err)
			}
			logrotate(t, node.Dir)
			if down {
				node.Restart(t)
			}
			n += shipStages(t, e, "c")
			now, err := rsyslogtest.Lines(ckptFile)
			if err != nil {
				t.Fatal(err)
			}
			waitAllLines(t, recvCkpts, append(ckpts, now...), node, coll)
			waitAllLines(t, recvAudit, chainLines(t, e.log), node, coll)
			verifyCopy(t, n, recvCkpts, recvAudit, "--shipped")
		})
	}
}

// TestShippedRsyslogZeroedLine: a crash leaves a line of NUL bytes in the
// node's log, which the next append records as damage. rsyslog (imfile,
// the shipped node config) delivers that line to the collector empty, so
// the copy never verified. As shipped (and with --nodes) the empty line
// is skipped, with a note; the node's own log keeps and checks its
// bytes.
func TestShippedRsyslogZeroedLine(t *testing.T) {
	s := crashShipping(t, append(bytes.Repeat([]byte{0}, 8), '\n'))
	node, coll, e, n, recvAudit, recvCkpts, ckptFile := s.node, s.coll, s.e, s.n, s.recvAudit, s.recvCkpts, s.ckptFile
	n += shipStages(t, e, "b") + 1 // and the damage record
	var damage uint64
	for _, r := range audittest.Records(t, e.log, "") {
		if r.Stage == audit.StageDamaged {
			damage = r.Seq
		}
	}
	if code, out, stderr := runBin(t, "", "--config", e.config, "audit", "ack", strconv.FormatUint(damage, 10), "--reason", "a crash's zeroes"); code != 0 {
		t.Fatalf("ack: exit %d\n%s%s", code, out, stderr)
	}
	n++
	if code, out, stderr := runBin(t, "", "audit", "verify", e.log); code != 0 {
		t.Fatalf("the node's log: exit %d\n%s%s", code, out, stderr)
	}
	nodeLines, err := rsyslogtest.Lines(e.log)
	if err != nil {
		t.Fatal(err)
	}
	var shipped [][]byte // as rsyslog delivers them: the NUL bytes dropped
	for _, l := range nodeLines {
		shipped = append(shipped, bytes.ReplaceAll(l, []byte{0}, nil))
	}
	nodeCkpts, err := rsyslogtest.Lines(ckptFile)
	if err != nil {
		t.Fatal(err)
	}
	got := waitAllLines(t, recvAudit, shipped, node, coll)
	if !equalLines(t, "received records", got, shipped) {
		t.FailNow()
	}
	waitAllLines(t, recvCkpts, nodeCkpts, node, coll)
	if out := verifyCopy(t, n, recvCkpts, recvAudit, "--shipped"); !strings.Contains(out, "1 empty line(s) skipped") {
		t.Errorf("verify --shipped does not note the empty line:\n%s", out)
	}
	verifyCopy(t, n, recvCkpts, recvAudit, "--nodes", "--shipped")
	// Not as shipped, the copy lacks a damaged line: it fails, saying
	// how to verify it.
	for _, flags := range [][]string{nil, {"--nodes"}} {
		args := append(append([]string{"audit", "verify"}, flags...), "--checkpoints", recvCkpts, recvAudit)
		if code, out, stderr := runBin(t, "", args...); code != 1 || slices.Contains(flags, "--nodes") && !strings.Contains(stderr, "1 of them empty") {
			t.Errorf("%s: exit %d, want 1 (and --nodes saying why)\n%s%s", strings.Join(args, " "), code, out, stderr)
		}
	}
}

// crashed is a node shipping to a collector through the shipped rsyslog
// configs, whose log got what a crash leaves after its first records.
type crashed struct {
	node, coll                     *rsyslogtest.Daemon
	e                              *env
	n                              int // records in the log
	recvAudit, recvCkpts, ckptFile string
}

// crashShipping starts the collector and the node, runs a container's
// stages, waits for their records at the collector, appends left to the
// node's log as a crash would leave it and waits for rsyslog to read it.
func crashShipping(t *testing.T, left []byte) crashed {
	t.Helper()
	nstest.Require(t, os.Geteuid() == 0, "needs root: the hook writes root's files")
	coll, recvAudit, recvCkpts, port := startCollector(t, "")
	node, e, nodeConf, ckptFile := shipNode(t, port)
	node.StartSystem(t, fmt.Sprintf("$IncludeConfig %s\n", nodeConf))
	n := shipStages(t, e, "a")
	rsyslogtest.WaitLines(t, recvAudit, n, node, coll)
	f, err := os.OpenFile(e.log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(left)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	waitFileRead(t, node, e.log)
	return crashed{node, coll, e, n, recvAudit, recvCkpts, ckptFile}
}
