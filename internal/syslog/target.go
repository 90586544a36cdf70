package syslog

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// JournalSocket is journald's native protocol socket.
const JournalSocket = "/run/systemd/journal/socket"

// Target is where a binary's diagnostics go: its standard error, syslog
// or journald (whose native protocol package logging writes).
type Target struct {
	// Kind is "stderr", "syslog" or "journald".
	Kind string
	// Syslog is the destination of the "syslog" kind.
	Syslog Dest
	// Journal is the socket of the "journald" kind.
	Journal string
}

// ParseTarget parses a --log-to value (or a log_file that is not a
// path): "stderr"; "syslog" (the local socket /dev/log), "unix:///PATH"
// or "tcp://HOST:PORT" (syslog, RFC 5424 with structured data);
// "journald" ([JournalSocket]) or "journald:///PATH" (journald's native
// protocol on another socket).
func ParseTarget(s string) (Target, error) {
	switch s {
	case "", "stderr":
		return Target{Kind: "stderr"}, nil
	case "syslog":
		return Target{Kind: "syslog", Syslog: Local}, nil
	case "journald":
		return Target{Kind: "journald", Journal: JournalSocket}, nil
	}
	if rest, ok := strings.CutPrefix(s, "journald://"); ok {
		if u, err := url.Parse(s); err != nil || !filepath.IsAbs(rest) || filepath.Clean(rest) != rest || u.RawQuery != "" {
			return Target{}, fmt.Errorf("log target %q: want journald:///ABSOLUTE/PATH", s)
		}
		return Target{Kind: "journald", Journal: rest}, nil
	}
	d, err := ParseDest(s)
	if err != nil {
		return Target{}, fmt.Errorf("log target %q: want stderr, syslog, unix:///PATH, tcp://HOST:PORT, journald or journald:///PATH", s)
	}
	return Target{Kind: "syslog", Syslog: d}, nil
}

// String returns the target as --log-to writes it.
func (t Target) String() string {
	switch t.Kind {
	case "syslog":
		return t.Syslog.String()
	case "journald":
		return "journald://" + t.Journal
	}
	return "stderr"
}
