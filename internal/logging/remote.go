package logging

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/internal/syslog"
	"github.com/nsrel/nsrel/internal/vocab"
)

// JournalSocket is journald's native protocol socket.
const JournalSocket = "/run/systemd/journal/socket"

// Target is where a service's diagnostics go: its standard error, syslog
// or journald.
type Target struct {
	// Kind is "stderr", "syslog" or "journald".
	Kind string
	// Syslog is the destination of the "syslog" kind.
	Syslog syslog.Dest
	// Journal is the socket of the "journald" kind.
	Journal string
}

// ParseTarget parses a --log-to value: "stderr"; "syslog" (the local
// socket /dev/log), "unix:///PATH" or "tcp://HOST:PORT" (syslog, RFC
// 5424 with structured data); "journald" ([JournalSocket]) or
// "journald:///PATH" (journald's native protocol on another socket).
func ParseTarget(s string) (Target, error) {
	switch s {
	case "", "stderr":
		return Target{Kind: "stderr"}, nil
	case "syslog":
		return Target{Kind: "syslog", Syslog: syslog.Local}, nil
	case "journald":
		return Target{Kind: "journald", Journal: JournalSocket}, nil
	}
	if rest, ok := strings.CutPrefix(s, "journald://"); ok {
		if u, err := url.Parse(s); err != nil || !filepath.IsAbs(rest) || filepath.Clean(rest) != rest || u.RawQuery != "" {
			return Target{}, fmt.Errorf("log target %q: want journald:///ABSOLUTE/PATH", s)
		}
		return Target{Kind: "journald", Journal: rest}, nil
	}
	d, err := syslog.ParseDest(s)
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

// Service returns a logger at level for a service named app (the syslog
// APP-NAME, journald's SYSLOG_IDENTIFIER) writing to t. For syslog and
// journald every entry is one message, its fields structured (an RFC
// 5424 SD element [syslog.SDID], journal fields NSREL_*), sent as it is
// logged; an entry that cannot be sent is written to stderr as text,
// after a line that says why.
func Service(t Target, app string, stderr io.Writer, level logrus.Level) *logrus.Logger {
	l := Stderr(stderr, level)
	if t.Kind == "stderr" {
		return l
	}
	fallback := Stderr(stderr, level)
	l.Out = io.Discard
	l.Formatter = nothing{}
	host, _ := os.Hostname()
	l.AddHook(&sender{t: t, app: app, host: host, fallback: fallback})
	return l
}

// nothing formats nothing: the hook sends the entry.
type nothing struct{}

func (nothing) Format(*logrus.Entry) ([]byte, error) { return nil, nil }

// sender is the logrus hook that sends every entry to syslog or
// journald.
type sender struct {
	t        Target
	app      string
	host     string
	fallback *logrus.Logger
}

func (s *sender) Levels() []logrus.Level { return logrus.AllLevels }

func (s *sender) Fire(e *logrus.Entry) error {
	var d syslog.Dest
	var msg []byte
	if s.t.Kind == "journald" {
		d, msg = syslog.Dest{Network: "unixgram", Address: s.t.Journal}, JournalEntry(e, s.app)
	} else {
		d, msg = s.t.Syslog, SyslogEntry(e, s.host, s.app)
	}
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if err := syslog.Send(ctx, d, msg); err != nil {
		s.fallback.WithError(err).WithField("target", s.t.String()).Error("cannot send diagnostics; the entry follows on stderr")
		s.fallback.WithFields(e.Data).WithTime(e.Time).Log(e.Level, e.Message)
	}
	return nil
}

// severity maps a logrus level onto a syslog severity (journald's
// PRIORITY is the same number).
func severity(l logrus.Level) int {
	switch l {
	case logrus.PanicLevel, logrus.FatalLevel:
		return syslog.Crit
	case logrus.ErrorLevel:
		return syslog.Err
	case logrus.WarnLevel:
		return syslog.Warning
	case logrus.InfoLevel:
		return syslog.Info
	}
	return syslog.Debug
}

// fields returns e's fields sorted by name, values as printable text
// (a container controls some of them: IDs, names, annotations).
func fields(e *logrus.Entry) [][2]string {
	out := make([][2]string, 0, len(e.Data)+1)
	out = append(out, [2]string{"level", e.Level.String()})
	for k, v := range e.Data {
		if err, ok := v.(error); ok {
			v = err.Error()
		}
		out = append(out, [2]string{k, vocab.Printable(vocab.Cut(fmt.Sprint(v), maxValue))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// maxValue bounds one field's value in bytes: a datagram must fit the
// socket's buffer.
const maxValue = 8192

// SyslogEntry formats e as an RFC 5424 message: MSGID "diag", the
// fields as SD-PARAMs of [syslog.SDID], the message as MSG.
func SyslogEntry(e *logrus.Entry, host, app string) []byte {
	var params []syslog.Param
	for _, f := range fields(e) {
		params = append(params, syslog.Param{Name: f[0], Value: f[1]})
	}
	return syslog.MessageSD(e.Time, severity(e.Level), host, app, "diag", syslog.SDID, params,
		[]byte(vocab.Printable(vocab.Cut(e.Message, maxValue))))
}

// JournalEntry encodes e in journald's native protocol
// (systemd.io/JOURNAL_NATIVE_PROTOCOL, the same field encoding as the
// journal export format): MESSAGE, PRIORITY, SYSLOG_IDENTIFIER,
// SYSLOG_FACILITY (10, authpriv) and every field as NSREL_NAME (upper
// case, characters other than A-Z, 0-9 and _ made _).
func JournalEntry(e *logrus.Entry, app string) []byte {
	var b []byte
	b = journalField(b, "MESSAGE", vocab.Printable(vocab.Cut(e.Message, maxValue)))
	b = journalField(b, "PRIORITY", fmt.Sprint(severity(e.Level)))
	b = journalField(b, "SYSLOG_IDENTIFIER", app)
	b = journalField(b, "SYSLOG_FACILITY", "10")
	for _, f := range fields(e) {
		b = journalField(b, JournalName(f[0]), f[1])
	}
	return b
}

// JournalName makes a journal field name of nsrel's field name n:
// NSREL_ and n in upper case, other characters than A-Z, 0-9 and _
// replaced by _, at most 64 characters.
func JournalName(n string) string {
	b := []byte("NSREL_" + strings.ToUpper(n))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// journalField appends one field: NAME=value and a newline, or, when the
// value has a newline, NAME, a newline, its length as 64-bit little
// endian, the value and a newline.
func journalField(b []byte, name, value string) []byte {
	if !strings.Contains(value, "\n") {
		b = append(b, name...)
		b = append(b, '=')
		b = append(b, value...)
		return append(b, '\n')
	}
	b = append(b, name...)
	b = append(b, '\n')
	b = binary.LittleEndian.AppendUint64(b, uint64(len(value)))
	b = append(b, value...)
	return append(b, '\n')
}
