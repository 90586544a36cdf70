package logging

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/internal/syslog"
	"github.com/nsrel/nsrel/internal/vocab"
)

// Service returns a logger at level for a service named app (the syslog
// APP-NAME, journald's SYSLOG_IDENTIFIER) writing to t. For syslog and
// journald every entry is one message, its fields structured (an RFC
// 5424 SD element [syslog.SDID], journal fields NSREL_*), sent as it is
// logged; an entry that cannot be sent is written to stderr as text,
// after a line that says why.
func Service(t syslog.Target, app string, stderr io.Writer, level logrus.Level) *logrus.Logger {
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
	t        syslog.Target
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
	b = syslog.AppendJournalField(b, "MESSAGE", vocab.Printable(vocab.Cut(e.Message, maxValue)))
	b = syslog.AppendJournalField(b, "PRIORITY", fmt.Sprint(severity(e.Level)))
	b = syslog.AppendJournalField(b, "SYSLOG_IDENTIFIER", app)
	b = syslog.AppendJournalField(b, "SYSLOG_FACILITY", "10")
	for _, f := range fields(e) {
		b = syslog.AppendJournalField(b, JournalName(f[0]), f[1])
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
