package logging

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/rsyslogtest"
	"github.com/nsrel/nsrel/internal/syslog"
	"github.com/nsrel/nsrel/internal/vocab"
)

// TestJournalNativeProtocol checks the journal encoder against systemd's
// own parser. journald does not run on the test machine (no systemd as
// PID 1), so the test listens on a datagram socket of its own in
// journald's place, logs through Service to it, and feeds what arrived
// to systemd-journal-remote: the native protocol and the export format
// encode fields alike, the export format adds the trusted fields that
// journald would add on receipt (__REALTIME_TIMESTAMP,
// __MONOTONIC_TIMESTAMP, _BOOT_ID) and an empty line after each entry.
// journalctl then reads the journal file it wrote.
func TestJournalNativeProtocol(t *testing.T) {
	remote := "/lib/systemd/systemd-journal-remote"
	_, err := os.Stat(remote)
	nstest.Require(t, err == nil, "needs %s (Debian's systemd-journal-remote; scripts/deps.sh installs it)", remote)
	journalctl := nstest.RequireCmd(t, "journalctl")

	dir := t.TempDir()
	sock, datagrams := rsyslogtest.JournalSocket(t)
	tg, err := syslog.ParseTarget("journald://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	var stderr nstest.LockedBuffer
	l := Service(tg, "nsrel-hook", &stderr, logrus.InfoLevel)
	l.WithFields(logrus.Fields{"container": hostile, "seq": 42, "audit-log": "/var/log/nsrel/audit.jsonl"}).Error("cannot record")
	l.WithField("pid", 7).Info("recorded start")

	var export []byte
	for i := range 2 {
		export = fmt.Appendf(export, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n", int64(1_800_000_000_000_000)+int64(i), i+1)
		export = append(export, rsyslogtest.Datagram(t, datagrams)...)
		export = append(export, '\n')
	}
	// A value with a newline takes the binary form of a field.
	export = append(export, "__REALTIME_TIMESTAMP=1800000000000009\n__MONOTONIC_TIMESTAMP=9\n_BOOT_ID=0123456789abcdef0123456789abcdef\n"...)
	export = syslog.AppendJournalField(export, "MESSAGE", "two\nlines")
	export = append(export, '\n')
	exp := filepath.Join(dir, "export")
	if err := os.WriteFile(exp, export, 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "remote.journal")
	if out, err := exec.Command(remote, "--output="+file, exp).CombinedOutput(); err != nil || !strings.Contains(string(out), "writing 3 entries") {
		t.Fatalf("systemd-journal-remote: %v\n%s", err, out)
	}
	out, err := exec.Command(journalctl, "--file", file, "-o", "json", "--no-pager").Output()
	if err != nil {
		t.Fatalf("journalctl: %v", err)
	}
	var got []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("journalctl line %q: %v", line, err)
		}
		got = append(got, e)
	}
	want := []map[string]any{
		{"MESSAGE": "cannot record", "PRIORITY": "3", "SYSLOG_IDENTIFIER": "nsrel-hook", "SYSLOG_FACILITY": "10",
			"NSREL_CONTAINER": vocab.Printable(hostile), "NSREL_SEQ": "42", "NSREL_AUDIT_LOG": "/var/log/nsrel/audit.jsonl", "NSREL_LEVEL": "error"},
		{"MESSAGE": "recorded start", "PRIORITY": "6", "NSREL_PID": "7", "NSREL_LEVEL": "info"},
		{"MESSAGE": "two\nlines"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d:\n%s", len(got), len(want), out)
	}
	for i, w := range want {
		for k, v := range w {
			if got[i][k] != v {
				t.Errorf("entry %d: %s = %#v, want %#v", i+1, k, got[i][k], v)
			}
		}
	}
	if Flush(5 * time.Second); stderr.String() != "" {
		t.Errorf("stderr: %q", stderr.String())
	}
}

func TestJournalName(t *testing.T) {
	for in, want := range map[string]string{"container": "NSREL_CONTAINER", "audit-log": "NSREL_AUDIT_LOG", "é x": "NSREL____X", strings.Repeat("a", 80): "NSREL_" + strings.Repeat("A", 58)} {
		if got := JournalName(in); got != want {
			t.Errorf("JournalName(%q) = %q, want %q", in, got, want)
		}
	}
}
