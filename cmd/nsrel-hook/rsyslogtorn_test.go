package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
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
	// Short of the host: --nodes learns whose it is from its record.
	_, err = f.WriteString(`{"format":"1.2","seq":3,"time":"2026-12-04T00:00:00.123456789Z","ho`)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	waitFileRead(t, node, e.log)
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
