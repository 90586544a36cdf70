package lstool_test

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/rsyslogtest"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
)

// TestLogTo sends a tree command's error to a private rsyslogd (local
// socket and TCP on 127.0.0.1) and to a datagram socket read in
// journald's place (journald does not run here): stdout and stderr stay
// empty, and each target gets one message with the command's name and
// severity err.
func TestLogTo(t *testing.T) {
	d, sock, port, out := rsyslogtest.Diagnostics(t)
	journal, datagrams := rsyslogtest.JournalSocket(t)
	targets := []string{"unix://" + sock, "tcp://127.0.0.1:" + strconv.Itoa(port), "journald://" + journal}
	for _, target := range targets {
		code, stdout, stderr := run(t, tool(nsrel.TypeUser), "--log-to", target, "--container", "no-such-container")
		if code != 1 || stdout != "" || stderr != "" {
			t.Errorf("--log-to %s: exit %d, stdout %q, stderr %q; want 1 and nothing printed", target, code, stdout, stderr)
		}
	}
	// Notices (severity 5: processes that could not be read) may come
	// before the error.
	for want := 1; ; {
		lines := rsyslogtest.WaitLines(t, out, want, d) // fails after a while without more
		errs := 0
		for _, l := range lines {
			if bytes.HasPrefix(l, []byte("lsuserns diag 3 - ")) && bytes.Contains(l, []byte("no-such-container")) {
				errs++
			} else if !bytes.HasPrefix(l, []byte("lsuserns diag 5 - notice: ")) {
				t.Fatalf("syslog line %q: want APP-NAME lsuserns, MSGID diag, and the error (severity 3) or a notice (5)", l)
			}
		}
		if errs == 2 {
			break
		}
		want = len(lines) + 1
	}
	for {
		if got := string(rsyslogtest.Datagram(t, datagrams)); strings.Contains(got, "PRIORITY=3\n") {
			if !strings.Contains(got, "SYSLOG_IDENTIFIER=lsuserns\n") || !strings.Contains(got, "no-such-container") {
				t.Errorf("journal datagram %q: want the identifier lsuserns and the error", got)
			}
			break
		}
	}

	// Nobody listening: the line goes to stderr, after one saying why.
	code, _, stderr := run(t, tool(nsrel.TypeUser), "--log-to", "unix://"+filepath.Join(t.TempDir(), "none"), "--container", "no-such-container")
	if code != 1 || !strings.Contains(stderr, "lsuserns: --log-to unix://") || !strings.Contains(stderr, "lsuserns: no running container") {
		t.Errorf("unreachable target: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := run(t, tool(nsrel.TypeUser), "--log-to", "file"); code != 2 || !strings.Contains(stderr, "--log-to") {
		t.Errorf("--log-to file: exit %d, stderr %q; want 2", code, stderr)
	}
}

// TestPictureNoticesLogTo: the report's notices (Graphviz missing, an
// audit log whose chain does not verify) go where --log-to sends the
// other diagnostics, not to stderr.
func TestPictureNoticesLogTo(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "log", "audit.jsonl")
	l, err := audit.Open(logPath, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: vocab.StageCreateRuntime, ContainerID: "notice-1", Verdict: audit.VerdictAllow, Mode: "enforce"}); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString("not a record\n")
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	journal, datagrams := rsyslogtest.JournalSocket(t)
	t.Setenv("PATH", t.TempDir()) // no dot
	code, page, stderr := run(t, tool(nsrel.TypeUser), "--log-to", "journald://"+journal, "--format", "html", "--no-containers", "-p", strconv.Itoa(os.Getpid()), "--audit-log", logPath)
	if code != 0 || stderr != "" || !strings.Contains(page, "chain NOT verified") {
		t.Fatalf("exit %d, stderr %q; want 0, nothing on stderr and a report saying the chain is not verified", code, stderr)
	}
	want := map[string]bool{"notice: audit log " + logPath + ": chain NOT verified": false, "notice: Graphviz (dot) could not draw it": false}
	for i := 0; i < 50 && slices.Contains(slices.Collect(maps.Values(want)), false); i++ {
		got := string(rsyslogtest.Datagram(t, datagrams)) // fails after a while without one
		for w := range want {
			if strings.Contains(got, "MESSAGE="+w) && strings.Contains(got, "PRIORITY=5\n") {
				want[w] = true
			}
		}
	}
	for w, seen := range want {
		if !seen {
			t.Errorf("no journal datagram with %q at priority 5", w)
		}
	}
}

// TestLogToUnreachableSaysFallback: a --log-to target nobody answers at
// (no /dev/log, a TCP port nobody listens on) was said in a line with
// the error alone, and the messages then went to stderr without a word
// of it; the line says so now.
func TestLogToUnreachableSaysFallback(t *testing.T) {
	for _, target := range []string{"unix://" + filepath.Join(t.TempDir(), "none"), "tcp://127.0.0.1:1"} {
		code, _, stderr := run(t, tool(nsrel.TypeUser), "--log-to", target, "-p", "2147483647")
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		if code != 1 || len(lines) != 2 || !strings.HasPrefix(lines[0], "lsuserns: --log-to "+target+": ") || !strings.HasSuffix(lines[0], "; notices go to stderr") || lines[1] != "lsuserns: --pid 2147483647: no such process" {
			t.Errorf("--log-to %s: exit %d, stderr %q; want 1, a line saying the target failed and that notices go to stderr, then the error", target, code, stderr)
		}
	}
}
