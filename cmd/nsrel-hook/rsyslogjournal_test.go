package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/rsyslogtest"
	"github.com/nsrel/nsrel/internal/vocab"
)

// journaldBins are where distributions put systemd-journald.
var journaldBins = []string{"/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald"}

// journaldScript runs systemd-journald in a mount namespace of its own
// (the test starts it with CLONE_NEWNS, mounts private), changing
// nothing outside it: /run (its sockets, its journal) is a tmpfs of its
// own, and so are /var/log/journal and its config, which forwards to
// syslog, as on Debian, keeps the journal in memory and leaves the
// kernel's audit setting alone (Debian's journald turns kernel auditing
// off for the whole machine as it starts: Audit=no by default; empty
// leaves it as it is). Drop-ins that could change it are hidden. $1 is
// the binary.
const journaldScript = `set -e
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/journal /run/log
if [ -d /var/log/journal ]; then mount -t tmpfs -o mode=0755 tmpfs /var/log/journal; fi
printf '[Journal]\nStorage=volatile\nForwardToSyslog=yes\nAudit=\n' > /run/journald.conf
if [ -e /etc/systemd/journald.conf ]; then
	mount --bind /run/journald.conf /etc/systemd/journald.conf
elif [ -d /etc/systemd ]; then
	mount -t tmpfs -o mode=0755 tmpfs /etc/systemd
	cp /run/journald.conf /etc/systemd/journald.conf
else
	echo "no /etc/systemd to put journald's config in" >&2
	exit 1
fi
for d in /etc/systemd/journald.conf.d /usr/lib/systemd/journald.conf.d /usr/local/lib/systemd/journald.conf.d /lib/systemd/journald.conf.d; do
	if [ -d "$d" ]; then mount -t tmpfs tmpfs "$d"; fi
done
exec "$1"
`

// startJournald starts systemd-journald in a mount namespace of its
// own and returns the path, through /proc/PID/root, of its directory of
// sockets as other processes reach it (root only): dev-log is what
// /dev/log is on a systemd host, socket takes the native protocol, and
// journald forwards what it gets on dev-log to a syslog daemon
// listening on syslog. It returns once both sockets take datagrams, and
// journald is stopped when the test ends.
func startJournald(t *testing.T) string {
	t.Helper()
	bin := ""
	for _, b := range journaldBins {
		if _, err := os.Stat(b); err == nil {
			bin = b
			break
		}
	}
	nstest.Require(t, bin != "", "needs systemd-journald (%s: Debian's systemd); scripts/deps.sh installs it", strings.Join(journaldBins, " or "))
	var out bytes.Buffer
	cmd := exec.Command("/bin/sh", "-c", journaldScript, "sh", bin)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start systemd-journald: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
			return // exited (and reaped) already
		default:
		}
		cmd.Process.Signal(syscall.SIGTERM) // through a pidfd: never another process
		select {
		case <-done:
		case <-time.After(rsyslogtest.Timeout):
			cmd.Process.Kill()
			<-done
		}
	})
	dir := fmt.Sprintf("/proc/%d/root/run/systemd/journal", cmd.Process.Pid)
	takes := func(name string) bool {
		c, err := net.Dial("unixgram", filepath.Join(dir, name))
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	deadline := time.Now().Add(rsyslogtest.Timeout)
	for !takes("dev-log") || !takes("socket") {
		select {
		case <-done:
			t.Fatalf("systemd-journald exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd-journald: %s/dev-log and socket take no datagrams after %v", dir, rsyslogtest.Timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return dir
}

// TestShippedRsyslogJournald is TestShippedRsyslogConfigs's socket path
// on a systemd host, where systemd-journald owns /dev/log and forwards
// each message to rsyslog (ForwardToSyslog): a real journald, in a
// mount namespace of its own, stands between the hook's checkpoints and
// the node's rsyslog, which reads journald's syslog socket with the
// imuxsock line nsrel-node.conf tells to use. Every checkpoint reaches
// the collector twice (file and journald), byte for byte; one forged by
// uid 65534 through journald does not leave the node, since journald
// passes the sender's credentials on with each message.
func TestShippedRsyslogJournald(t *testing.T) {
	nstest.Require(t, os.Geteuid() == 0, "needs root: journald runs in a mount namespace of its own, and a datagram is sent as uid 65534")
	journal := startJournald(t)
	devLog, syslogSock := filepath.Join(journal, "dev-log"), filepath.Join(journal, "syslog")

	coll, recvAudit, recvCkpts, port := startCollector(t, "")

	node, e, nodeConf, ckptFile := shipNode(t, port)
	setConfig(t, e, "checkpoints", map[string]any{"every_records": 1, "every_seconds": 0, "file": ckptFile, "syslog": []string{"unix://" + devLog}})
	shipped, err := os.ReadFile(nodeConf)
	if err != nil {
		t.Fatal(err)
	}
	m := documentedImuxsock.FindSubmatch(shipped)
	if m == nil {
		t.Fatalf("config/rsyslog/nsrel-node.conf does not say how to load imuxsock (a comment line matching %s)", documentedImuxsock)
	}
	// Debian's rsyslog under systemd reads the socket journald forwards
	// to (/run/systemd/journal/syslog) with the same module line.
	imuxsock := strings.Replace(string(m[1]), `module(load="imuxsock" `, fmt.Sprintf(`module(load="imuxsock" SysSock.Name=%q `, syslogSock), 1)
	localLog := node.Path("auth.log")
	node.StartSystem(t, fmt.Sprintf("%s\n$IncludeConfig %s\nauthpriv.* action(type=\"omfile\" file=%q)\n", imuxsock, nodeConf, localLog))
	node.WaitSocket(t, syslogSock)

	n := shipStages(t, e, "a", "b")
	if logText, _ := os.ReadFile(filepath.Join(e.dir, "hook.log")); bytes.Contains(logText, []byte("checkpoint")) {
		t.Errorf("the hook could not ship a checkpoint:\n%s", logText)
	}
	nodeLines := chainLines(t, e.log)
	checkSocketShipping(t, socketShipping{node: node, coll: coll, sock: devLog, localLog: localLog,
		nodeLines: nodeLines, ckptFile: ckptFile, ckpts: n, recvAudit: recvAudit, recvCkpts: recvCkpts})
	verifyCopy(t, n, recvCkpts, recvAudit)
}

// TestLogFileJournald sends the hook's diagnostics to a real
// systemd-journald (log_file journald:///PATH, in a mount namespace of
// its own) and reads them back with journalctl: the entry has the
// message, priority err, the identifier, authpriv and the fields as
// NSREL_ fields, among them the container the run could not record,
// its ID (which holds a newline) quoted with Go escapes; and journald's
// own fields say root sent it.
func TestLogFileJournald(t *testing.T) {
	nstest.Require(t, os.Geteuid() == 0, "needs root: journald runs in a mount namespace of its own")
	journalctl := nstest.RequireCmd(t, "journalctl")
	journal := startJournald(t)
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["log_file"] = "journald://" + filepath.Join(journal, "socket")
		c["syslog"] = ""
	})
	if err := os.Mkdir(e.log, 0o700); err != nil { // the audit log cannot be written
		t.Fatal(err)
	}
	id := "jd-1\nINJECTED=1"
	_, _, stderr := runBin(t, shipState(id, "creating", "web"), "--config", e.config, "createRuntime")
	if want := "container " + vocab.Quote(id) + ": cannot write the audit record"; !strings.Contains(stderr, want) {
		t.Errorf("stderr %q does not name the container: want %q", stderr, want)
	}
	// journald keeps the journal in memory: /run/log/journal of its
	// namespace.
	dir := filepath.Join(filepath.Dir(filepath.Dir(journal)), "log", "journal")
	var entry map[string]any
	deadline := time.Now().Add(rsyslogtest.Timeout)
	for entry == nil {
		out, err := exec.Command(journalctl, "-D", dir, "-o", "json", "--no-pager", "SYSLOG_IDENTIFIER=nsrel-hook").Output()
		if err == nil {
			for _, l := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
				var m map[string]any
				if json.Unmarshal(l, &m) == nil && m["NSREL_STAGE"] == "createRuntime" {
					entry = m
				}
			}
		}
		if entry == nil && time.Now().After(deadline) {
			t.Fatalf("no entry of nsrel-hook in %s after %v (journalctl: %v)\n%s", dir, rsyslogtest.Timeout, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("journal entry: %v", entry)
	for k, want := range map[string]string{"PRIORITY": "3", "SYSLOG_FACILITY": "10", "_UID": "0", "NSREL_CONTAINER": strconv.Quote(id)} {
		if entry[k] != want {
			t.Errorf("%s=%v, want %q", k, entry[k], want)
		}
	}
	if _, ok := entry["INJECTED"]; ok {
		t.Error("the container ID's newline made a field of its own")
	}
	if msg, _ := entry["MESSAGE"].(string); msg == "" {
		t.Errorf("MESSAGE %v, want the diagnostic", entry["MESSAGE"])
	}
}
