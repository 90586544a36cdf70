package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/internal/rsyslogtest"
	"github.com/nsrel/nsrel/internal/syslog"
	"github.com/nsrel/nsrel/internal/vocab"
)

// hostile is a field value a container controls: quotes, a backslash,
// a bracket, a newline and an escape sequence.
const hostile = "ctr\"]\\\n\x1b[31mred"

// TestSyslogThroughRsyslog logs through Service to a private rsyslogd,
// over its local socket and over TCP on 127.0.0.1, and checks what
// rsyslog parsed: the APP-NAME, MSGID, severity, the structured data
// (parsed by rsyslog's mmpstrucdata into JSON) and the message, with the
// hostile value escaped and no line broken.
func TestSyslogThroughRsyslog(t *testing.T) {
	d := rsyslogtest.New(t, "collector")
	sock := d.Path("log.sock")
	out := d.Path("out.log")
	d.Start(t, fmt.Sprintf(`module(load="imtcp")
module(load="imuxsock" sysSock.use="off")
module(load="mmpstrucdata")
template(name="j" type="string" string="%%app-name%% %%msgid%% %%syslogseverity%% %%$!%%\t%%msg%%\n")
input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName=%q)
input(type="imuxsock" socket=%q useSpecialParser="off" parseHostname="on" rateLimit.interval="0")
action(type="mmpstrucdata")
action(type="omfile" file=%q template="j")
`, d.PortFile("tcp"), sock, out))
	port := d.Port(t, "tcp")
	d.WaitSocket(t, sock)

	var stderr bytes.Buffer
	for i, target := range []string{"unix://" + sock, fmt.Sprintf("tcp://127.0.0.1:%d", port)} {
		tg, err := syslog.ParseTarget(target)
		if err != nil {
			t.Fatal(err)
		}
		l := Service(tg, "nsrel-containerd", &stderr, logrus.InfoLevel)
		l.WithField("container", hostile).WithError(errors.New("boom")).Warn("audit log append failed")
		l.Debug("not at info level")
		rsyslogtest.WaitLines(t, out, i+1, d)
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr: %q", stderr.String())
	}
	lines := rsyslogtest.WaitLines(t, out, 2, d)
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), bytes.Join(lines, []byte("\n")))
	}
	for _, line := range lines {
		head, msg, _ := strings.Cut(string(line), "\t")
		if msg != "audit log append failed" {
			t.Errorf("MSG %q", msg)
		}
		parts := strings.SplitN(head, " ", 4)
		if len(parts) != 4 || parts[0] != "nsrel-containerd" || parts[1] != "diag" || parts[2] != "4" {
			t.Errorf("header %q, want nsrel-containerd diag 4", head)
			continue
		}
		var sd struct {
			SD map[string]map[string]string `json:"rfc5424-sd"`
		}
		if err := json.Unmarshal([]byte(parts[3]), &sd); err != nil {
			t.Errorf("structured data %q: %v", parts[3], err)
			continue
		}
		got := sd.SD["nsrel@32473"]
		want := map[string]string{"container": vocab.Printable(hostile), "error": "boom", "level": "warning"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("SD %s = %q, want %q (all: %v)", k, got[k], v, got)
			}
		}
	}
}

// TestSyslogFallback checks that an entry that cannot be sent goes to
// stderr, after a line saying why.
func TestSyslogFallback(t *testing.T) {
	tg, err := syslog.ParseTarget("unix://" + t.TempDir() + "/none.sock")
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	Service(tg, "nsrel-containerd", &stderr, logrus.InfoLevel).WithField("pid", 7).Info("recorded start")
	if s := stderr.String(); strings.Count(s, "\n") != 2 || !strings.Contains(s, "cannot send diagnostics") || !strings.Contains(s, `msg="recorded start" pid=7`) {
		t.Errorf("stderr %q", s)
	}
}
