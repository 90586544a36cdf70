package policy_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/nstest"
)

// TestLogFileTargets checks log_file: a clean absolute path or a syslog
// or journald target, nothing else (stderr means nothing to a hook,
// whose stderr the runtime may drop).
func TestLogFileTargets(t *testing.T) {
	for _, v := range []string{"", "/var/log/nsrel/hook.log", "syslog", "unix:///dev/log", "tcp://127.0.0.1:514", "journald", "journald:///run/systemd/journal/socket"} {
		c, err := policy.Parse("hook.json", fmt.Appendf(nil, `{"version":1,"audit_log":"/a","log_file":%q,"default":{"mode":"audit"}}`, v))
		if err != nil || c.LogFile != v {
			t.Errorf("log_file %q: got %q, %v", v, c.LogFile, err)
		}
	}
	for _, v := range []string{"stderr", "hook.log", "udp://1.2.3.4:5", "journald://x", "/a/../b"} {
		_, err := policy.Parse("hook.json", fmt.Appendf(nil, `{"version":1,"audit_log":"/a","log_file":%q,"default":{"mode":"audit"}}`, v))
		if err == nil || !strings.Contains(err.Error(), "log_file: must be a clean absolute path or a syslog or journald target") {
			t.Errorf("log_file %q: err %v, want a path error", v, err)
		}
	}
}

// TestWrittenFilesApart checks that log_file, seal_state and
// checkpoints.file are refused, with one line naming the key, when one
// is a file of the audit log's (the log, LOG.lock, LOG.checkpoint, a
// rotated LOG.NNNNNNNNNNNN, which retention removes) or names the file
// another of them names: each such config was accepted, and two writers
// mixed their contents in one file (diagnostics in the log or the
// sealing state, the sealing key in the checkpoints shipped off the
// node). Names next to the log's that are not its own stay allowed.
func TestWrittenFilesApart(t *testing.T) {
	const log = "/var/lib/nsrel/audit.jsonl"
	cfg := func(members string) []byte {
		return []byte(`{"version":1,"audit_log":"` + log + `",` + members + `,"default":{"mode":"audit"}}`)
	}
	for _, tc := range []struct{ members, want string }{
		{`"log_file":"` + log + `"`, "log_file: must not be the audit log (" + log + ")"},
		{`"checkpoints":{"file":"` + log + `"}`, "checkpoints.file: must not be the audit log (" + log + ")"},
		{`"seal_state":"` + log + `"`, "seal_state: must not be the audit log (" + log + ")"},
		{`"log_file":"` + log + `.lock"`, "log_file: must not be the audit log's lock"},
		{`"log_file":"` + log + `.checkpoint"`, "log_file: must not be the audit log's checkpoint state"},
		{`"seal_state":"` + log + `.checkpoint"`, "seal_state: must not be the audit log's checkpoint state"},
		{`"log_file":"` + log + `.000000000001"`, "log_file: must not be a rotated file of the audit log"},
		{`"checkpoints":{"file":"` + log + `.18446744073709551615"}`, "checkpoints.file: must not be a rotated file of the audit log"},
		{`"log_file":"/var/lib/nsrel/x","seal_state":"/var/lib/nsrel/x"`, "seal_state: must not be the file log_file names too (/var/lib/nsrel/x)"},
		{`"seal_state":"/var/lib/nsrel/x","checkpoints":{"file":"/var/lib/nsrel/x"}`, "checkpoints.file: must not be the file seal_state names too"},
		{`"checkpoints":{"file":"/var/lib/nsrel/x"},"log_file":"/var/lib/nsrel/x"`, "log_file: must not be the file checkpoints.file names too"},
	} {
		_, err := policy.Parse("hook.json", cfg(tc.members))
		if err == nil || strings.Count(err.Error(), "\n") != 0 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one line with %q", tc.members, err, tc.want)
		}
	}
	for _, members := range []string{
		`"log_file":"` + log + `.log","seal_state":"` + log + `.seal","checkpoints":{"file":"` + log + `.ckpt"}`,
		`"log_file":"` + log + `.00000000001"`,
		`"log_file":"` + log + `.99999999999999999999"`,
		`"log_file":"` + log + `x.lock"`,
		`"log_file":"unix:///var/lib/nsrel/audit.jsonl"`,
	} {
		if _, err := policy.Parse("hook.json", cfg(members)); err != nil {
			t.Errorf("%s: %v", members, err)
		}
	}
}

// TestCheckSockets checks what `nsrel-hook policy check` says of the
// local sockets a config sends to: one in a directory another user owns,
// or one another user bound, is named with its key, one line each, as
// every send refuses it (it was sent to as it was, and its owner
// received root's diagnostics and checkpoints); a trusted one, or one
// missing now (its daemon down), passes.
func TestCheckSockets(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	theirs := filepath.Join(dir, "theirs")
	if err := os.Mkdir(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(theirs, "log.sock"), filepath.Join(dir, "bound.sock"), filepath.Join(dir, "log.sock")} {
		c, err := net.ListenPacket("unixgram", p)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(dir, "bound.sock"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	mine, inTheirs, bound, missing := filepath.Join(dir, "log.sock"), filepath.Join(theirs, "log.sock"), filepath.Join(dir, "bound.sock"), filepath.Join(dir, "missing.sock")
	cfg := func(logFile, sys string, ckpts ...string) []byte {
		b, _ := json.Marshal(map[string]any{"version": 1, "audit_log": "/a", "log_file": logFile, "syslog": sys,
			"checkpoints": map[string]any{"syslog": ckpts}, "default": map[string]any{"mode": "audit"}})
		return b
	}
	for _, tc := range []struct {
		config []byte
		want   []string
	}{
		{cfg("unix://"+mine, "unix://"+mine, "unix://"+mine, "tcp://127.0.0.1:514"), nil},
		{cfg("journald://"+missing, "unix://"+missing, "unix://"+missing), nil},
		{cfg("journald://"+inTheirs, "unix://"+bound, "unix://"+mine, "unix://"+inTheirs), []string{
			"log_file: journald://" + inTheirs + ": " + theirs + ": owned by uid 65534",
			"syslog: unix://" + bound + ": " + bound + ": a socket owned by uid 65534",
			"checkpoints.syslog[1]: unix://" + inTheirs + ": " + theirs + ": owned by uid 65534",
		}},
	} {
		c, err := policy.Parse("hook.json", tc.config)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		if err := c.CheckSockets(); err != nil {
			lines = strings.Split(err.Error(), "\n")
		}
		ok := len(lines) == len(tc.want)
		for i := 0; ok && i < len(lines); i++ {
			ok = strings.HasPrefix(lines[i], tc.want[i]) && strings.HasSuffix(lines[i], ": not trusted")
		}
		if !ok {
			t.Errorf("%s:\n got %q\nwant %q", tc.config, lines, tc.want)
		}
	}
}
