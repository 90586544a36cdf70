package syslog

import "testing"

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "stderr"},
		{"stderr", "stderr"},
		{"syslog", "unix:///dev/log"},
		{"unix:///run/x.sock", "unix:///run/x.sock"},
		{"tcp://127.0.0.1:514", "tcp://127.0.0.1:514"},
		{"journald", "journald:///run/systemd/journal/socket"},
		{"journald:///tmp/j.sock", "journald:///tmp/j.sock"},
	} {
		got, err := ParseTarget(tc.in)
		if err != nil || got.String() != tc.want {
			t.Errorf("ParseTarget(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"file", "journald://x", "journald:///a/../b", "udp://1.2.3.4:5", "unix://rel", "tcp://nohost"} {
		if _, err := ParseTarget(bad); err == nil {
			t.Errorf("ParseTarget(%q) succeeded", bad)
		}
	}
}
