package policy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/policy"
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
