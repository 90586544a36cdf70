package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/rsyslogtest"
)

// shippedRsyslog returns the shipped rsyslog config
// config/rsyslog/<name> with each of the pairs old, new replaced (the
// paths, addresses and ports it names, which a test moves), failing the
// test if a pair's old does not occur: everything else runs as shipped.
func shippedRsyslog(t *testing.T, name string, pairs ...string) string {
	t.Helper()
	data, err := os.ReadFile(nstest.RepoFile(t, "config/rsyslog/"+name))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(data)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(conf, pairs[i]) {
			t.Fatalf("config/rsyslog/%s no longer has %s", name, pairs[i])
		}
		conf = strings.ReplaceAll(conf, pairs[i], pairs[i+1])
	}
	return conf
}

// writeNodeConf writes the shipped nsrel-node.conf into node's
// directory, forwarding to port on 127.0.0.1 and tailing log and
// ckptFile, and returns its path and contents.
func writeNodeConf(t *testing.T, node *rsyslogtest.Daemon, port int, log, ckptFile string, pairs ...string) (path, conf string) {
	t.Helper()
	path = node.Path("nsrel-node.conf")
	conf = shippedRsyslog(t, "nsrel-node.conf", append([]string{
		`target="collector.example" port="2514"`, fmt.Sprintf(`target="127.0.0.1" port="%d"`, port),
		`"/var/log/nsrel/audit.jsonl"`, strconv.Quote(log),
		`"/var/log/nsrel/checkpoints.jsonl"`, strconv.Quote(ckptFile),
		`"/var/log/nsrel/checkpoints.jsonl.1"`, strconv.Quote(ckptFile + ".1")}, pairs...)...)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, conf
}

// startCollector starts a collector's rsyslog with the shipped
// nsrel-collector.conf, its RELP input on 127.0.0.1 at a port nobody
// else has, with inputExtra added to it (TLS settings), and returns the
// daemon, the files it writes records and checkpoints to, and the port.
func startCollector(t *testing.T, inputExtra string) (coll *rsyslogtest.Daemon, recvAudit, recvCkpts string, port int) {
	t.Helper()
	port, release := reservePort(t)
	coll, recvAudit, recvCkpts = startCollectorOn(t, port, inputExtra)
	release()
	return coll, recvAudit, recvCkpts, port
}

// startCollectorOn is startCollector on port, which the caller holds
// ([reservePort]): it returns once the collector listens there.
func startCollectorOn(t *testing.T, port int, inputExtra string) (coll *rsyslogtest.Daemon, recvAudit, recvCkpts string) {
	t.Helper()
	coll = rsyslogtest.New(t, "collector")
	recvAudit, recvCkpts = coll.Path("audit.jsonl"), coll.Path("checkpoints.jsonl")
	collConf := coll.Path("nsrel-collector.conf")
	if err := os.WriteFile(collConf, []byte(shippedRsyslog(t, "nsrel-collector.conf",
		`input(type="imrelp" port="2514"`, strings.TrimSpace(fmt.Sprintf(`input(type="imrelp" address="127.0.0.1" port="%d" %s`, port, inputExtra)),
		`"/srv/nsrel/audit.jsonl"`, strconv.Quote(recvAudit),
		`"/srv/nsrel/checkpoints.jsonl"`, strconv.Quote(recvCkpts))), 0o600); err != nil {
		t.Fatal(err)
	}
	coll.StartSystem(t, fmt.Sprintf("$IncludeConfig %s\n", collConf))
	coll.WaitPort(t, port)
	return coll, recvAudit, recvCkpts
}

// reservePort returns a TCP port on 127.0.0.1 that nothing listens on
// and nobody else takes until release: a socket bound to it with
// SO_REUSEADDR and never listening holds it (connections to it are
// refused, no other bind gets it and no connection picks it as its
// source port), while a listener that sets SO_REUSEADDR too, as
// rsyslog's imtcp does, may still bind and listen on it.
func reservePort(t *testing.T) (port int, release func()) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	once := sync.OnceFunc(func() { syscall.Close(fd) })
	t.Cleanup(once)
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*syscall.SockaddrInet4).Port, once
}

// waitAllLines waits until path holds every line of want (in any
// order, some more than once, as a shipper may send them after a
// restart) and no other, and returns its lines.
func waitAllLines(t *testing.T, path string, want [][]byte, daemons ...*rsyslogtest.Daemon) [][]byte {
	t.Helper()
	deadline := time.Now().Add(rsyslogtest.Timeout)
	for {
		got, err := rsyslogtest.Lines(path)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, l := range got {
			have[string(l)] = true
		}
		missing := 0
		for _, l := range want {
			if !have[string(l)] {
				missing++
			}
		}
		if missing == 0 {
			if len(have) != len(want) {
				t.Errorf("%s has %d distinct lines, want the node's %d", path, len(have), len(want))
			}
			return got
		}
		if time.Now().After(deadline) {
			var out []string
			for _, d := range daemons {
				out = append(out, d.Output())
			}
			t.Fatalf("%s: %d of the node's %d lines missing after %v (%d lines received)\n%s", path, missing, len(want), rsyslogtest.Timeout, len(got), strings.Join(out, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shipNode prepares a node's rsyslog daemon (not started) with the
// shipped nsrel-node.conf forwarding to port on 127.0.0.1 (and the pairs
// replaced too), and a hook config whose log and checkpoints file
// (a checkpoint after each record) it tails.
func shipNode(t *testing.T, port int, pairs ...string) (node *rsyslogtest.Daemon, e *env, nodeConf, ckptFile string) {
	t.Helper()
	node = rsyslogtest.New(t, "node")
	ckptFile = node.Path("checkpoints.jsonl")
	e = newEnv(t, "hook.json", func(c map[string]any) {
		c["deadline_ms"] = 60000 // a loaded machine is not what these tests are about
		c["syslog"] = ""
		c["checkpoints"] = map[string]any{"every_records": 1, "every_seconds": 0, "file": ckptFile, "syslog": []string{}}
	})
	nodeConf, _ = writeNodeConf(t, node, port, e.log, ckptFile, pairs...)
	return node, e, nodeConf, ckptFile
}

// shipStages runs the createRuntime and poststop stages of containers
// ids with e's config, and returns how many records they wrote.
func shipStages(t *testing.T, e *env, ids ...string) int {
	t.Helper()
	n := 0
	for _, id := range ids {
		for _, stage := range []string{"createRuntime", "poststop"} {
			status := map[string]string{"createRuntime": "creating", "poststop": "stopped"}[stage]
			if code, _, stderr := runBin(t, shipState(id, status, `web "0" é`), "--config", e.config, stage); code != 0 || stderr != "" {
				t.Fatalf("%s %s: exit %d: %s", id, stage, code, stderr)
			}
			n++
		}
	}
	return n
}

// documentedImuxsock matches the line that config/rsyslog/nsrel-node.conf
// tells the operator to put into /etc/rsyslog.conf.
var documentedImuxsock = regexp.MustCompile(`(?m)^#\s+(module\(load="imuxsock" .*\))$`)

// sendAs sends frame as one datagram to the socket at path from a
// process running as uid (and gid uid): the socket is connected here
// and given to cat as its stdout, so that the sender's credentials,
// which the kernel attaches to the datagram, are uid's.
func sendAs(t *testing.T, path string, uid uint32, frame []byte) {
	t.Helper()
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.File()
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("/bin/cat")
	cmd.Stdin, cmd.Stdout = bytes.NewReader(frame), f
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("cat as uid %d: %v: %s", uid, err, errb.String())
	}
}

// annotatedState is an OCI state of this process for container id with
// the annotations given.
func annotatedState(id, status string, annotations map[string]string) string {
	st := map[string]any{"ociVersion": "1.0.2", "id": id, "status": status, "bundle": "/b", "annotations": annotations}
	if status != "stopped" {
		st["pid"] = os.Getpid()
	}
	b, _ := json.Marshal(st)
	return string(b)
}

// TestShippedRsyslogConfigs runs the shipped rsyslog configs
// (config/rsyslog, shown in docs/observability.md) as they are, with
// rsyslog's defaults (no rsyslogtest.Prelude): a node's rsyslogd with
// the local socket set up as nsrel-node.conf tells (on a socket of its
// own, standing in for /dev/log) and nsrel-node.conf included, as
// Debian's rsyslog.conf includes /etc/rsyslog.d, and a collector's with
// nsrel-collector.conf; only paths, addresses and ports are moved.
//
// nsrel-hook writes records of up to almost 1 MiB (annotations full of
// characters JSON escapes, which the config records) and a checkpoint
// after each, to its file and to the node's socket. The collector's
// records must be the node's, byte for byte, and verify with the
// collector's checkpoints; every checkpoint must arrive twice (file and
// socket); a checkpoint forged by another user than root on the socket
// must not leave the node.
func TestShippedRsyslogConfigs(t *testing.T) {
	nstest.Require(t, os.Geteuid() == 0, "needs root: the hook writes root's files, and a datagram is sent as uid 65534")
	coll, recvAudit, recvCkpts, port := startCollector(t, "")

	// 160 annotations of 1 KiB that JSON escapes to 6 KiB each: a
	// record of almost 1 MiB (the longest line a log takes).
	var hugeKeys []string
	for i := range 160 {
		hugeKeys = append(hugeKeys, fmt.Sprintf("nsrel.test/huge-%03d", i))
	}
	node := rsyslogtest.New(t, "node")
	sock, ckptFile, localLog := node.Path("log.sock"), node.Path("checkpoints.jsonl"), node.Path("auth.log")
	var defaultKeys []string
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["deadline_ms"] = 60000 // a loaded machine is not what this test is about
		c["syslog"] = ""
		c["checkpoints"] = map[string]any{"every_records": 1, "every_seconds": 0, "file": ckptFile, "syslog": []string{"unix://" + sock}}
		for _, k := range c["record_annotations"].([]any) {
			defaultKeys = append(defaultKeys, k.(string))
		}
		c["record_annotations"] = append(append([]string{}, defaultKeys...), hugeKeys...)
	})
	nodeConf, shipped := writeNodeConf(t, node, port, e.log, ckptFile)
	m := documentedImuxsock.FindStringSubmatch(shipped)
	if m == nil {
		t.Fatalf("config/rsyslog/nsrel-node.conf does not say how to load imuxsock (a comment line matching %s)", documentedImuxsock)
	}
	imuxsock := strings.Replace(m[1], `module(load="imuxsock" `, fmt.Sprintf(`module(load="imuxsock" SysSock.Name=%q `, sock), 1)
	// Debian's rsyslog.conf: the local socket, the files of
	// /etc/rsyslog.d, then the system's own rules.
	node.StartSystem(t, fmt.Sprintf("%s\n$IncludeConfig %s\nauthpriv.* action(type=\"omfile\" file=%q)\n", imuxsock, nodeConf, localLog))
	node.WaitSocket(t, sock)

	pod := `web "0" \ <&> é 日本`
	big := map[string]string{}
	for _, k := range defaultKeys {
		big[k] = strings.Repeat("<&", 512)
	}
	huge := map[string]string{"io.kubernetes.pod.name": pod}
	for _, k := range hugeKeys {
		huge[k] = strings.Repeat("<", 1024)
	}
	containers := []struct {
		id          string
		annotations map[string]string
	}{
		{"plain", map[string]string{"io.kubernetes.pod.name": pod, "io.kubernetes.pod.namespace": "prod"}},
		{"big", big},
		{"huge", huge},
	}
	n := 0
	for _, c := range containers {
		for _, stage := range []string{"createRuntime", "poststop"} {
			status := map[string]string{"createRuntime": "creating", "poststop": "stopped"}[stage]
			if code, _, stderr := runBin(t, annotatedState(c.id, status, c.annotations), "--config", e.config, stage); code != 0 || stderr != "" {
				t.Fatalf("%s %s: exit %d: %s", c.id, stage, code, stderr)
			}
			n++
		}
	}
	if logText, _ := os.ReadFile(filepath.Join(e.dir, "hook.log")); bytes.Contains(logText, []byte("checkpoint")) {
		t.Errorf("the hook could not ship a checkpoint:\n%s", logText)
	}
	nodeLines := chainLines(t, e.log)
	if len(nodeLines) != n {
		t.Fatalf("the node's log has %d lines, want %d", len(nodeLines), n)
	}
	longest := 0
	var sizes []int
	for _, l := range nodeLines {
		longest = max(longest, len(l))
		sizes = append(sizes, len(l))
	}
	t.Logf("record sizes: %v bytes", sizes)
	if longest < 900<<10 {
		t.Fatalf("the longest record has %d bytes, want almost 1 MiB", longest)
	}
	checkSocketShipping(t, socketShipping{node: node, coll: coll, sock: sock, localLog: localLog,
		nodeLines: nodeLines, ckptFile: ckptFile, ckpts: n, recvAudit: recvAudit, recvCkpts: recvCkpts})
	verifyCopy(t, n, recvCkpts, recvAudit)
}

// verifyCopy verifies the collector's copy recvAudit of n records with
// its checkpoints recvCkpts (and flags, such as --shipped): it must
// verify, every record there, the checkpoints matching. It returns what
// verify printed.
func verifyCopy(t *testing.T, n int, recvCkpts, recvAudit string, flags ...string) string {
	t.Helper()
	args := append(append([]string{"audit", "verify"}, flags...), "--checkpoints", recvCkpts, recvAudit)
	code, out, stderr := runBin(t, "", args...)
	if want := fmt.Sprintf("OK: %d records (seq 1..%d) in 1 file(s)", n, n); code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "checkpoint(s) of host") {
		t.Errorf("%s: exit %d, want 0 and %q\n%s%s", strings.Join(args, " "), code, want, out, stderr)
	}
	return out
}

// socketShipping is a node whose hook sends each checkpoint to its file
// and to the node's rsyslog through sock, and the collector it ships to.
type socketShipping struct {
	node, coll     *rsyslogtest.Daemon
	sock, localLog string // localLog: where the node writes authpriv
	nodeLines      [][]byte
	// ckptFile is the node's checkpoints file, which must hold ckpts.
	ckptFile             string
	ckpts                int
	recvAudit, recvCkpts string
}

// checkSocketShipping sends a checkpoint of the node's last record with
// another hash through the socket from nobody (uid 65534), then the
// real one from root the same way (when root's has arrived, nobody's
// would have: one connection, one worker at each end), and checks the
// collector: the records byte for byte, in order, nothing more; every
// checkpoint twice (file, socket), the last once more, none forged.
func checkSocketShipping(t *testing.T, s socketShipping) {
	t.Helper()
	nodeCkpts, err := rsyslogtest.Lines(s.ckptFile)
	if err != nil || len(nodeCkpts) != s.ckpts {
		t.Fatalf("%s: %d checkpoints (%v), want %d", s.ckptFile, len(nodeCkpts), err, s.ckpts)
	}
	n := len(s.nodeLines)
	last := nodeCkpts[len(nodeCkpts)-1]
	at := bytes.Index(last, []byte(`"hash":"`)) + len(`"hash":"`)
	forged := bytes.Clone(last)
	if forged[at] = '0'; last[at] == '0' {
		forged[at] = '1'
	}
	frame := func(msg []byte) []byte {
		return append([]byte("<86>1 2026-01-02T03:04:05.000006Z node nsrel 1 checkpoint - "), msg...)
	}
	sendAs(t, s.sock, 65534, frame(forged))
	sendAs(t, s.sock, 0, frame(last))
	// The node's own log has root's checkpoints and both sent here: the
	// forged one reached the node's rsyslogd.
	if local := rsyslogtest.WaitLines(t, s.localLog, len(nodeCkpts)+2, s.node); !bytes.Contains(bytes.Join(local, nil), forged) {
		t.Errorf("the forged checkpoint did not reach the node's rsyslogd: %s has\n%s", s.localLog, bytes.Join(local, []byte("\n")))
	}
	got := rsyslogtest.WaitLines(t, s.recvAudit, n, s.node, s.coll)
	if !equalLines(t, "received records", got, s.nodeLines) {
		t.FailNow()
	}
	want := 2*len(nodeCkpts) + 1
	ckpts := rsyslogtest.WaitLines(t, s.recvCkpts, want, s.node, s.coll)
	count := map[string]int{}
	for _, l := range ckpts {
		count[string(l)]++
	}
	for i, c := range nodeCkpts {
		times := 2
		if i == len(nodeCkpts)-1 {
			times = 3
		}
		if count[string(c)] != times {
			t.Errorf("checkpoint %d arrived %d times, want %d (file and socket): %s", i+1, count[string(c)], times, c)
		}
	}
	if count[string(forged)] > 0 {
		t.Errorf("the checkpoint forged by uid 65534 reached the collector: %s", forged)
	}
	if len(ckpts) != want {
		t.Errorf("the collector has %d checkpoint lines, want %d:\n%s", len(ckpts), want, bytes.Join(ckpts, []byte("\n")))
	}
}

// TestShippedRsyslogConfigsDocumented checks that docs/observability.md
// shows the shipped rsyslog configs as they are, each in a block of its
// own, and tells the operator to load imuxsock as nsrel-node.conf says,
// the line TestShippedRsyslogConfigs runs.
func TestShippedRsyslogConfigsDocumented(t *testing.T) {
	doc, err := os.ReadFile(nstest.RepoFile(t, "docs/observability.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nsrel-node.conf", "nsrel-collector.conf"} {
		conf := shippedRsyslog(t, name)
		if !bytes.Contains(doc, []byte("\n```\n"+conf+"```\n")) {
			t.Errorf("docs/observability.md does not show config/rsyslog/%s as it is", name)
		}
		if name != "nsrel-node.conf" {
			continue
		}
		m := documentedImuxsock.FindStringSubmatch(conf)
		if m == nil {
			t.Fatalf("config/rsyslog/%s does not say how to load imuxsock", name)
		}
		if sed := fmt.Sprintf("sed -i 's/^module(load=\"imuxsock\")/%s/' /etc/rsyslog.conf", m[1]); !bytes.Contains(doc, []byte(sed)) {
			t.Errorf("docs/observability.md does not tell to change rsyslog.conf with\n%s", sed)
		}
	}
}

// TestShippedRsyslogNodeRestart stops the node's rsyslog (SIGTERM, as
// systemctl restart does) while its collector is unreachable, with
// records and checkpoints read and not sent, appends more while it is
// down, then starts the collector and the node again: with the shipped
// nsrel-node.conf the collector's copy holds every record and
// checkpoint, and verifies as shipped (audit verify --shipped), in
// whatever order rsyslog sent the lines it was retrying.
func TestShippedRsyslogNodeRestart(t *testing.T) {
	nstest.Require(t, os.Geteuid() == 0, "needs root: the hook writes root's files")
	// A port nothing listens on until the collector starts on it, and
	// nothing else takes meanwhile.
	port, release := reservePort(t)

	node, e, nodeConf, ckptFile := shipNode(t, port)
	// impstats tells when the forwarding action has queued the lines.
	stats := node.Path("stats.json")
	node.StartSystem(t, fmt.Sprintf("module(load=\"impstats\" interval=\"1\" format=\"json\" log.syslog=\"off\" log.file=%q)\n$IncludeConfig %s\n", stats, nodeConf))

	shipStages(t, e, "a", "b", "c")
	// The 6 records and 6 checkpoints read and queued, on the ruleset's
	// queue and the forwarding action's, whose worker retries the
	// first of them against the closed port.
	queued := regexp.MustCompile(`"name": "(nsrel-[a-z]+(?: queue)?)", "origin": "core.queue", "size": \d+, "enqueued": (\d+)`)
	deadline := time.Now().Add(rsyslogtest.Timeout)
	for {
		data, _ := os.ReadFile(stats)
		enqueued := map[string]int{}
		for _, m := range queued.FindAllSubmatch(data, -1) {
			enqueued[string(m[1])], _ = strconv.Atoi(string(m[2]))
		}
		// Both queues' lines: impstats may be halfway through writing.
		done := enqueued["nsrel-ship"] >= 12 && enqueued["nsrel-forward queue"] >= 12
		if done {
			t.Logf("before the stop, lines enqueued: %v", enqueued)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node's queues did not take the 12 lines in %v: %v\n%s", rsyslogtest.Timeout, enqueued, node.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	node.Stop(t)
	shipStages(t, e, "d") // appended while the node's rsyslog is down

	coll, recvAudit, recvCkpts := startCollectorOn(t, port, "")
	release()
	node.Restart(t)

	// Every record and checkpoint arrives, in some order, some twice.
	nodeLines := chainLines(t, e.log)
	nodeCkpts, err := rsyslogtest.Lines(ckptFile)
	if err != nil || len(nodeLines) != 8 || len(nodeCkpts) != 8 {
		t.Fatalf("the node has %d records and %d checkpoints (%v), want 8 and 8", len(nodeLines), len(nodeCkpts), err)
	}
	got := waitAllLines(t, recvAudit, nodeLines, node, coll)
	waitAllLines(t, recvCkpts, nodeCkpts, node, coll)
	var order []string
	for _, l := range got {
		h, _ := audit.PeekHead(l)
		order = append(order, strconv.FormatUint(h.Seq, 10))
	}
	t.Logf("the collector received seq %s", strings.Join(order, " "))
	if strings.Join(order, " ") != "1 2 3 4 5 6 7 8" {
		// Not as shipped, the copy fails and says why.
		code, out, stderr := runBin(t, "", "audit", "verify", recvAudit)
		if code != 1 || !strings.Contains(stderr, "verify it as shipped") {
			t.Errorf("verify the collector's copy out of order, not as shipped: exit %d, want 1 and a problem that tells to verify it as shipped\n%s%s", code, out, stderr)
		}
	}

	t.Logf("verify --shipped:\n%s", verifyCopy(t, 8, recvCkpts, recvAudit, "--shipped"))
	code, out, stderr := runBin(t, "", "audit", "verify", "--shipped", "--json", recvAudit)
	var res struct {
		OK                  bool
		Records             int
		Repeated, Reordered int
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || !res.OK || res.Records != 8 {
		t.Fatalf("verify --shipped --json: exit %d, %+v (%v)\n%s%s", code, res, err, out, stderr)
	}
	if inOrder := len(got) == 8 && strings.Join(order, " ") == "1 2 3 4 5 6 7 8"; inOrder != (res.Repeated+res.Reordered == 0) {
		t.Errorf("verify --shipped --json of seq %s: %d repeated, %d reordered", strings.Join(order, " "), res.Repeated, res.Reordered)
	}
}

// tcpReceived returns the bytes waiting to be read on the established
// TCP connections to port on 127.0.0.1 (/proc/net/tcp's rx_queue): what
// the kernel took for a process that has not read it yet.
func tcpReceived(t *testing.T, port int) int {
	t.Helper()
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf("0100007F:%04X", port)
	total := 0
	for _, l := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(l)
		// sl local rem st tx_queue:rx_queue ...; st 01 is ESTABLISHED.
		if len(f) < 5 || f[1] != local || f[3] != "01" {
			continue
		}
		if _, rx, ok := strings.Cut(f[4], ":"); ok {
			n, _ := strconv.ParseInt(rx, 16, 64)
			total += int(n)
		}
	}
	return total
}

// TestShippedRsyslogCollectorCrash crashes the collector's rsyslog with
// records the node sent and the collector had not written: the collector
// is frozen (SIGSTOP) while the node sends, so that the records wait in
// the collector's socket, then killed (SIGKILL) and started again. With
// the shipped configs, RELP, the node sends again what the collector did
// not acknowledge once it sends the next line and finds the session
// broken: every record and checkpoint arrives, and the copy verifies as
// shipped. (Over plain TCP the node took them for delivered and they
// were lost.) No record follows: the next line is the node's mark
// (immark, its interval cut from 60 s to 1 s here). Without it the
// lines waited for the node's next record, for as long as that took.
func TestShippedRsyslogCollectorCrash(t *testing.T) {
	nstest.Require(t, os.Geteuid() == 0, "needs root: the hook writes root's files")
	port, release := reservePort(t)
	coll, recvAudit, recvCkpts := startCollectorOn(t, port, "")
	node, e, nodeConf, ckptFile := shipNode(t, port, `module(load="immark" interval="60"`, `module(load="immark" interval="1"`)
	node.StartSystem(t, fmt.Sprintf("$IncludeConfig %s\n", nodeConf))

	n := shipStages(t, e, "a")
	rsyslogtest.WaitLines(t, recvAudit, n, node, coll)
	coll.Freeze(t)
	n += shipStages(t, e, "b", "c")
	// The node has sent the new lines: they wait, unread, in the
	// collector's socket.
	deadline := time.Now().Add(rsyslogtest.Timeout)
	for tcpReceived(t, port) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the node sent nothing to the frozen collector in %v\n%s", rsyslogtest.Timeout, node.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d bytes wait in the frozen collector's socket", tcpReceived(t, port))
	coll.Crash(t)
	coll.Restart(t)
	coll.WaitPort(t, port)
	release()

	nodeLines := chainLines(t, e.log)
	nodeCkpts, err := rsyslogtest.Lines(ckptFile)
	if err != nil || len(nodeLines) != n || len(nodeCkpts) != n {
		t.Fatalf("the node has %d records and %d checkpoints (%v), want %d each", len(nodeLines), len(nodeCkpts), err, n)
	}
	waitAllLines(t, recvAudit, nodeLines, node, coll)
	waitAllLines(t, recvCkpts, nodeCkpts, node, coll)
	verifyCopy(t, n, recvCkpts, recvAudit, "--shipped")
}

// TestShippedRsyslogCollectorWriteFails makes the collector's records
// file unwritable (a directory in its place) while a node sends: RELP
// acknowledges a line whatever the collector's action did with it, so
// the shipped collector retries the write until it works instead of
// dropping the line. Once the file can be written, every record arrives.
func TestShippedRsyslogCollectorWriteFails(t *testing.T) {
	nstest.Require(t, os.Geteuid() == 0, "needs root: the hook writes root's files")
	coll, recvAudit, recvCkpts, port := startCollector(t, "")
	if err := os.Mkdir(recvAudit, 0o700); err != nil {
		t.Fatal(err)
	}
	node, e, nodeConf, ckptFile := shipNode(t, port)
	node.StartSystem(t, fmt.Sprintf("$IncludeConfig %s\n", nodeConf))
	n := shipStages(t, e, "a", "b")
	// The collector tried, and failed.
	deadline := time.Now().Add(rsyslogtest.Timeout)
	for !strings.Contains(coll.Output(), recvAudit) {
		if time.Now().After(deadline) {
			t.Fatalf("the collector did not fail to write %s in %v\n%s\n%s", recvAudit, rsyslogtest.Timeout, coll.Output(), node.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.Remove(recvAudit); err != nil {
		t.Fatal(err)
	}
	n += shipStages(t, e, "c")
	nodeLines := chainLines(t, e.log)
	nodeCkpts, err := rsyslogtest.Lines(ckptFile)
	if err != nil || len(nodeLines) != n {
		t.Fatalf("the node has %d records (%v), want %d", len(nodeLines), err, n)
	}
	waitAllLines(t, recvAudit, nodeLines, node, coll)
	waitAllLines(t, recvCkpts, nodeCkpts, node, coll)
	verifyCopy(t, n, recvCkpts, recvAudit, "--shipped")
}
