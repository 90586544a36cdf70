package policy

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
)

// Checkpoints is the checkpoints setting of a config: a checkpoint of the
// audit chain (its last sequence number and hash) is emitted after an
// append when EveryRecords records were appended since the last one, or
// EverySeconds seconds passed, to File and to each Syslog destination.
type Checkpoints struct {
	// EveryRecords and EverySeconds (every_records, every_seconds) say
	// when; EverySeconds 0 means by count only.
	EveryRecords int
	EverySeconds int
	// File is a JSON Lines file that a log shipper can tail (file), "" for
	// none.
	File string
	// Syslog are syslog destinations (syslog), each
	// "unix:///dev/log" (a local datagram socket, RFC 5424) or
	// "tcp://HOST:PORT" (RFC 5424 with octet-counting framing, RFC 6587).
	Syslog []SyslogDest
}

// SyslogDest is one syslog destination.
type SyslogDest struct {
	// Network is "unixgram" or "tcp"; Address a socket path or host:port.
	Network, Address string
}

// String returns the destination as written in the config.
func (d SyslogDest) String() string {
	if d.Network == "unixgram" {
		return "unix://" + d.Address
	}
	return d.Network + "://" + d.Address
}

// Defaults of the checkpoints setting.
const (
	DefaultCheckpointRecords = 100
	DefaultCheckpointSeconds = 300
)

func (p *parser) checkpoints(n *node, path string) *Checkpoints {
	c := &Checkpoints{EveryRecords: DefaultCheckpointRecords, EverySeconds: DefaultCheckpointSeconds}
	p.object(n, path, []string{"every_records", "every_seconds", "file", "syslog"}, func(key string, v *node, path string) {
		switch key {
		case "every_records":
			if x, ok := p.integer(v, path, 1, 1<<30); ok {
				c.EveryRecords = int(x)
			}
		case "every_seconds":
			if x, ok := p.integer(v, path, 0, 1<<30); ok {
				c.EverySeconds = int(x)
			}
		case "file":
			c.File = p.absPath(v, path, true)
		case "syslog":
			if v.Kind != 'a' {
				p.errorf(v, path, "must be an array of destinations (unix:///PATH, tcp://HOST:PORT), not %s", kindName(v.Kind))
				return
			}
			for i, e := range v.Elems {
				ep := fmt.Sprintf("%s[%d]", path, i)
				if s, ok := p.str(e, ep); ok {
					d, err := ParseSyslogDest(s)
					if err != nil {
						p.errorf(e, ep, "%v", err)
						continue
					}
					c.Syslog = append(c.Syslog, d)
				}
			}
		}
	})
	return c
}

// ParseSyslogDest parses "unix:///PATH" or "tcp://HOST:PORT".
func ParseSyslogDest(s string) (SyslogDest, error) {
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return SyslogDest{}, fmt.Errorf("syslog destination %q: want unix:///PATH or tcp://HOST:PORT", s)
	}
	switch u.Scheme {
	case "unix":
		if u.Host != "" || !filepath.IsAbs(u.Path) || filepath.Clean(u.Path) != u.Path {
			return SyslogDest{}, fmt.Errorf("syslog destination %q: want unix:///ABSOLUTE/PATH", s)
		}
		return SyslogDest{Network: "unixgram", Address: u.Path}, nil
	case "tcp":
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil || host == "" || port == "" || u.Path != "" || strings.ContainsAny(host, "/") {
			return SyslogDest{}, fmt.Errorf("syslog destination %q: want tcp://HOST:PORT", s)
		}
		return SyslogDest{Network: "tcp", Address: u.Host}, nil
	}
	return SyslogDest{}, fmt.Errorf("syslog destination %q: the scheme must be unix or tcp", s)
}
