package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/rsyslogtest"
)

// runBin runs the hook binary with stdin and args.
func runBin(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runProgram(t, stdin, hookBin, args...)
}

// runBinEIO runs the hook binary as runBin does, with every fdatasync
// it makes failing with EIO after the write (strace injects it): a disk
// error the sync reports.
func runBinEIO(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	strace := nstest.RequireCmd(t, "strace")
	return runProgram(t, stdin, strace, append([]string{"-f", "-o", "/dev/null", "-e", "trace=fdatasync", "-e", "inject=fdatasync:error=EIO", hookBin}, args...)...)
}

// runProgram runs the program with stdin and args, failing the test if
// it could not start.
func runProgram(t *testing.T, stdin, program string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(program, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("%s %s: %v", filepath.Base(program), strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// shipState is an OCI state of this process for container id, with a
// pod name the record keeps: container-controlled text with quotes, a
// backslash, HTML characters and non-ASCII, which must reach the
// collector byte for byte.
func shipState(id, status string, pod string) string {
	st := map[string]any{"ociVersion": "1.0.2", "id": id, "status": status, "bundle": "/b",
		"annotations": map[string]string{"io.kubernetes.pod.name": pod, "io.kubernetes.pod.namespace": "prod"}}
	if status != "stopped" {
		st["pid"] = os.Getpid()
	}
	b, _ := json.Marshal(st)
	return string(b)
}

// chainLines returns the lines of the log at path, all files in chain
// order, each without its newline.
func chainLines(t *testing.T, path string) [][]byte {
	t.Helper()
	files, err := audit.Files(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, f := range files {
		lines, err := rsyslogtest.Lines(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, lines...)
	}
	return out
}

// TestShipThroughRsyslog ships a node's audit log and checkpoints through
// real rsyslog daemons and checks what a collector receives against the
// node's log.
//
// The node's rsyslogd tails audit.jsonl and checkpoints.jsonl (imfile),
// takes the hook's checkpoints on its own socket (imuxsock, RFC 5424
// parser) and forwards everything over TCP (omfwd, octet counting) to the
// collector's rsyslogd, which also takes the hook's checkpoints straight
// over TCP (imtcp) and writes each stream's MSG to a file of its own.
// The received record lines must be the node's, byte for byte, and form
// a log that verifies; the checkpoints received by each path must verify
// the node's log and catch, on copies of it, records cut off the end, the
// current file deleted, a rotated file deleted and a chain rewritten
// whole without a key.
func TestShipThroughRsyslog(t *testing.T) {
	const rotateBytes = 4096
	coll := rsyslogtest.New(t, "collector")
	recvAudit := coll.Path("audit.jsonl") // a log of its own: no rotated files
	received := map[string]string{
		"imfile":     coll.Path("checkpoints-imfile.jsonl"),
		"unix":       coll.Path("checkpoints-unix.jsonl"),
		"tcp direct": coll.Path("checkpoints-tcp.jsonl"),
	}
	// RFC 5424 messages: APP-NAME is the imfile tag on the node, "nsrel"
	// and MSGID "checkpoint" for the hook's own messages.
	coll.Start(t, fmt.Sprintf(`module(load="imtcp")
template(name="msg" type="string" string="%%msg%%\n")
ruleset(name="fromnode") {
	if $app-name == "nsrel-audit" then { action(type="omfile" file=%q template="msg" fileCreateMode="0600") stop }
	if $app-name == "nsrel-checkpoints" then { action(type="omfile" file=%q template="msg") stop }
	if $app-name == "nsrel" and $msgid == "checkpoint" then { action(type="omfile" file=%q template="msg") stop }
	action(type="omfile" file=%q)
}
ruleset(name="direct") {
	if $app-name == "nsrel" and $msgid == "checkpoint" then { action(type="omfile" file=%q template="msg") stop }
	action(type="omfile" file=%q)
}
input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName=%q ruleset="fromnode")
input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName=%q ruleset="direct")
`, recvAudit, received["imfile"], received["unix"], coll.Path("other-fromnode.log"), received["tcp direct"], coll.Path("other-direct.log"),
		coll.PortFile("fromnode"), coll.PortFile("direct")))
	fromNode, direct := coll.Port(t, "fromnode"), coll.Port(t, "direct")

	node := rsyslogtest.New(t, "node")
	sock, ckptFile := node.Path("log.sock"), node.Path("checkpoints.jsonl")
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["rotate_bytes"] = rotateBytes
		// A stage that misses its deadline exits 0 (on_error allow)
		// without shipping what it should: on a loaded machine, not
		// what this test is about.
		c["deadline_ms"] = 60000
		c["syslog"] = "" // a run that cannot record says so here, not on the machine's /dev/log
		c["checkpoints"] = map[string]any{"every_records": 1, "every_seconds": 0, "file": ckptFile,
			"syslog": []string{"unix://" + sock, fmt.Sprintf("tcp://127.0.0.1:%d", direct)}}
	})
	node.Start(t, fmt.Sprintf(`module(load="imuxsock" sysSock.use="off")
module(load="imfile" mode="inotify")
input(type="imuxsock" socket=%q useSpecialParser="off" parseHostname="on" rateLimit.interval="0")
input(type="imfile" file=%q tag="nsrel-audit" facility="authpriv" severity="info")
input(type="imfile" file=%q tag="nsrel-checkpoints" facility="authpriv" severity="info")
template(name="rfc5424" type="string" string="<%%PRI%%>1 %%TIMESTAMP:::date-rfc3339%% %%HOSTNAME%% %%APP-NAME%% %%PROCID%% %%MSGID%% - %%msg%%")
action(type="omfwd" target="127.0.0.1" port="%d" protocol="tcp" tcp_framing="octet-counted" template="rfc5424"
	action.resumeRetryCount="-1" action.resumeInterval="1")
`, sock, e.log, ckptFile, fromNode))
	node.WaitSocket(t, sock)

	// Six containers, three stages each. Before an append that rotates,
	// wait until the collector has every line so far: what imfile does
	// when a file it has not finished is renamed is rsyslog's business,
	// not this test's.
	pod := `web "0" \ <&> é 日本`
	n := 0
	for i := range 6 {
		id := fmt.Sprintf("ship-ü-%d", i)
		for _, stage := range []string{"createRuntime", "poststart", "poststop"} {
			if st, err := os.Stat(e.log); err == nil && st.Size() >= rotateBytes {
				rsyslogtest.WaitLines(t, recvAudit, n, node, coll)
			}
			status := map[string]string{"createRuntime": "creating", "poststart": "running", "poststop": "stopped"}[stage]
			if code, _, stderr := runBin(t, shipState(id, status, pod), "--config", e.config, stage); code != 0 || stderr != "" {
				t.Fatalf("%s %s: exit %d: %s", id, stage, code, stderr)
			}
			n++
		}
	}
	files, err := audit.Files(e.log)
	if err != nil || len(files) < 4 {
		t.Fatalf("want at least 3 rotated files and the current one, got %v (%v)", files, err)
	}
	if logText, _ := os.ReadFile(filepath.Join(e.dir, "hook.log")); bytes.Contains(logText, []byte("checkpoint")) {
		t.Errorf("the hook could not ship a checkpoint:\n%s", logText)
	}

	// The records: byte-identical, in order, nothing more.
	nodeLines := chainLines(t, e.log)
	if len(nodeLines) != n {
		t.Fatalf("the node's log has %d lines, want %d", len(nodeLines), n)
	}
	got := rsyslogtest.WaitLines(t, recvAudit, n, node, coll)
	if !equalLines(t, "received records", got, nodeLines) {
		t.FailNow()
	}
	if all := bytes.Join(got, nil); !bytes.Contains(all, []byte(`web \"0\" \\ \u003c\u0026\u003e é 日本`)) || !bytes.Contains(all, []byte(`"ship-ü-5"`)) {
		t.Errorf("the received records lack the pod name or container ID as written")
	}
	code, out, stderr := runBin(t, "", "audit", "verify", recvAudit)
	if want := fmt.Sprintf("OK: %d records (seq 1..%d) in 1 file(s)", n, n); code != 0 || !strings.Contains(out, want) {
		t.Errorf("verify the received copy: exit %d, want 0 and %q\n%s%s", code, want, out, stderr)
	}

	// The checkpoints: one per append (every_records 1), the same lines
	// by every path.
	nodeCkpts, err := rsyslogtest.Lines(ckptFile)
	if err != nil || len(nodeCkpts) != n {
		logText, _ := os.ReadFile(filepath.Join(e.dir, "hook.log"))
		t.Fatalf("%s: %d checkpoints (%v), want %d; the hook's log:\n%s", ckptFile, len(nodeCkpts), err, n, logText)
	}
	paths := []string{"imfile", "unix", "tcp direct"}
	for _, p := range paths {
		equalLines(t, "checkpoints received by "+p, rsyslogtest.WaitLines(t, received[p], n, node, coll), nodeCkpts)
		for _, lg := range []string{e.log, recvAudit} {
			code, out, stderr := runBin(t, "", "audit", "verify", "--checkpoints", received[p], lg)
			if want := fmt.Sprintf("%d checkpoint(s) of host", n); code != 0 || !strings.Contains(out, want) {
				t.Errorf("verify %s with the checkpoints received by %s: exit %d, want 0 and %q\n%s%s", lg, p, code, want, out, stderr)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Copies of the node's log, each tampered with in a way the chain
	// alone does not show: verify without checkpoints passes, with the
	// received checkpoints it fails and says why.
	tampers := []struct {
		name   string
		flags  []string
		tamper func(t *testing.T, files []string)
		reason string
	}{
		{"records cut off the end", nil, func(t *testing.T, files []string) {
			cur := files[len(files)-1]
			lines, err := rsyslogtest.Lines(cur)
			if err != nil {
				t.Fatal(err)
			}
			var keep []byte
			for _, l := range lines[:len(lines)-1] {
				keep = append(append(keep, l...), '\n')
			}
			if err := os.WriteFile(cur, keep, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "beyond the last record"},
		{"current file deleted", nil, func(t *testing.T, files []string) {
			if err := os.Remove(files[len(files)-1]); err != nil {
				t.Fatal(err)
			}
		}, "beyond the last record"},
		// Without --partial a chain that does not start at seq 1 fails
		// anyway; with it, only the checkpoints tell.
		{"rotated file deleted", []string{"--partial"}, func(t *testing.T, files []string) {
			if err := os.Remove(files[0]); err != nil {
				t.Fatal(err)
			}
		}, "which the log does not hold"},
		{"chain rewritten without a key", nil, func(t *testing.T, files []string) {
			rewriteChain(t, files, func(body []byte) []byte {
				return bytes.ReplaceAll(body, []byte(`"io.kubernetes.pod.namespace":"prod"`), []byte(`"io.kubernetes.pod.namespace":"kube-system"`))
			})
		}, "the chain was rewritten"},
	}
	for _, tc := range tampers {
		t.Run(tc.name, func(t *testing.T) {
			files := copyLog(t, files)
			tc.tamper(t, files)
			lg := filepath.Join(filepath.Dir(files[0]), filepath.Base(e.log))
			args := append(append([]string{"audit", "verify"}, tc.flags...), lg)
			if code, out, stderr := runBin(t, "", args...); code != 0 {
				t.Fatalf("without checkpoints the tampering should not show, yet verify exits %d:\n%s%s", code, out, stderr)
			}
			for _, p := range paths {
				args := append(append([]string{"audit", "verify", "--checkpoints", received[p]}, tc.flags...), lg)
				code, out, stderr := runBin(t, "", args...)
				if code != 1 || !strings.Contains(stderr, "FAILED") || !strings.Contains(stderr, tc.reason) {
					t.Errorf("checkpoints received by %s: exit %d, want 1 and %q\n%s%s", p, code, tc.reason, out, stderr)
				}
			}
		})
	}
}

// equalLines reports whether got and want hold the same lines, byte for
// byte, and says where they differ if not.
func equalLines(t *testing.T, what string, got, want [][]byte) bool {
	t.Helper()
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			t.Errorf("%s: %d lines, want %d; first missing:\n%s", what, len(got), len(want), want[i])
		case i >= len(want):
			t.Errorf("%s: %d lines, want %d; first extra:\n%s", what, len(got), len(want), got[i])
		case !bytes.Equal(got[i], want[i]):
			t.Errorf("%s: line %d differs:\ngot  %q\nwant %q", what, i+1, got[i], want[i])
		default:
			continue
		}
		return false
	}
	return true
}

// copyLog copies the files of a log into a new directory, keeping their
// names, and returns the copies in the same order.
func copyLog(t *testing.T, files []string) []string {
	t.Helper()
	dir := t.TempDir()
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
		out = append(out, dst)
	}
	return out
}

// rewriteChain rewrites the records of files (a log's files in chain
// order) as someone without a sealing key can: edit changes each
// record's bytes up to its hash, then every hash is recomputed over the
// line's bytes as written (the bytes up to ,"hash":" and a closing brace)
// and every reference to an old hash (prev, ref) replaced by the new one.
// Each line stays in its file.
func rewriteChain(t *testing.T, files []string, edit func(body []byte) []byte) {
	t.Helper()
	const hashKey = `,"hash":"`
	newHash := map[string]string{}
	prev, changed := "", 0
	for _, f := range files {
		lines, err := rsyslogtest.Lines(f)
		if err != nil {
			t.Fatal(err)
		}
		var out []byte
		for _, l := range lines {
			at := bytes.LastIndex(l, []byte(hashKey))
			if at < 0 || !bytes.HasSuffix(l, []byte(`"}`)) {
				t.Fatalf("%s: not a record line: %s", f, l)
			}
			old := string(l[at+len(hashKey) : len(l)-2])
			body := edit(bytes.Clone(l[:at]))
			for o, n := range newHash {
				body = bytes.ReplaceAll(body, []byte(o), []byte(n))
			}
			if !bytes.HasSuffix(body, []byte(`"prev":"`+prev+`"`)) {
				t.Fatalf("%s: the rewritten record does not end with prev %q: %s", f, prev, body)
			}
			sum := sha256.Sum256(append(bytes.Clone(body), '}'))
			h := hex.EncodeToString(sum[:])
			newHash[old], prev = h, h
			line := append(append(append(body, hashKey...), h...), `"}`...)
			if !bytes.Equal(line, l) {
				changed++
			}
			out = append(append(out, line...), '\n')
		}
		if err := os.WriteFile(f, out, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if changed == 0 {
		t.Fatal("the rewrite changed nothing")
	}
}
