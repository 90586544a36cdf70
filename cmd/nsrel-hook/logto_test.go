package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/internal/rsyslogtest"
)

// TestLogFileSyslog sets log_file to a syslog target (a private
// rsyslogd's local socket) and checks that the hook's diagnostics arrive
// there as RFC 5424 messages with structured data: from a run whose
// audit log cannot be written, and from a run whose config does not
// load (log_file salvaged from it).
func TestLogFileSyslog(t *testing.T) {
	d, sock, _, out := rsyslogtest.Diagnostics(t)
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["log_file"] = "unix://" + sock
		c["syslog"] = ""
	})
	if err := os.Mkdir(e.log, 0o700); err != nil { // the audit log cannot be written
		t.Fatal(err)
	}
	runBin(t, shipState("logto-1", "creating", "web"), "--config", e.config, "createRuntime")
	lines := rsyslogtest.WaitLines(t, out, 1, d)
	if s := string(lines[0]); !strings.HasPrefix(s, "nsrel-hook diag 3 [nsrel@32473 ") || !strings.Contains(s, `stage="createRuntime"`) {
		t.Errorf("diagnostics %q: want APP-NAME nsrel-hook, MSGID diag, severity err and the stage as structured data", s)
	}

	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.config, bytes.Replace(cfg, []byte(`"version"`), []byte(`"bogus": 1, "version"`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	runBin(t, shipState("logto-2", "creating", "web"), "--config", e.config, "createRuntime")
	// The run logs the config error, then that it could not record it
	// (the audit log is still a directory).
	lines = rsyslogtest.WaitLines(t, out, len(lines)+2, d)
	found := false
	for _, l := range lines {
		found = found || bytes.HasPrefix(l, []byte("nsrel-hook diag 3 [nsrel@32473 ")) && bytes.HasSuffix(l, []byte("config does not load"))
	}
	if !found {
		t.Errorf("no config error in the diagnostics:\n%s", bytes.Join(lines, []byte("\n")))
	}
}
