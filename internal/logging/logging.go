package logging

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/safefile"
	"github.com/nsrel/nsrel/internal/syslog"
	"github.com/nsrel/nsrel/internal/vocab"
)

// OrDiscard returns l, or a logger that discards everything (without
// formatting it) when l is nil.
func OrDiscard(l logrus.FieldLogger) logrus.FieldLogger {
	if l != nil {
		return l
	}
	return Discard()
}

// Discard returns a logger that formats and writes nothing.
func Discard() *logrus.Logger {
	l := logrus.New()
	l.Out = io.Discard
	l.Level = logrus.PanicLevel // nothing is formatted for nobody
	return l
}

// IsDebug reports whether l logs debug messages.
func IsDebug(l logrus.FieldLogger) bool {
	switch l := l.(type) {
	case *logrus.Logger:
		return l.IsLevelEnabled(logrus.DebugLevel)
	case *logrus.Entry:
		return l.Logger.IsLevelEnabled(logrus.DebugLevel)
	}
	return false
}

// File returns a logger at info level appending to path (created 0600
// with its directory 0700, never following a symlink or opening a FIFO),
// and the function that closes the file. The file is opened at the first
// entry, so a run with nothing to say opens nothing. When path is "" it
// returns [Discard]; when the file cannot be opened the first entry says
// so in one line on stderr, prefixed with prog, and the entries are
// dropped. A path that is a
// syslog or journald target ([syslog.ParseTarget], not "stderr") gives
// a [Service] logger for prog instead.
func File(path, prog string, stderr io.Writer) (*logrus.Logger, func()) {
	if path == "" {
		return Discard(), func() {}
	}
	if !filepath.IsAbs(path) {
		if t, err := syslog.ParseTarget(path); err == nil && t.Kind != "stderr" {
			return service(t, prog, stderr, logrus.InfoLevel, false), func() {}
		}
	}
	lf := &lazyFile{path: path, prog: prog, stderr: stderr}
	l := logrus.New()
	l.Out = lf
	l.Formatter = utcFormatter{textFormatter()}
	l.Level = logrus.InfoLevel
	return l, lf.close
}

// lazyFile opens the diagnostics file at the first write: a hook stage
// that has nothing to say (the usual case) opens nothing. A file that
// cannot be opened or written (a full disk, a file size limit) is said
// once on stderr; the entries are then dropped.
type lazyFile struct {
	path, prog string
	stderr     io.Writer
	mu         sync.Mutex
	f          *os.File
	failed     bool
}

func (l *lazyFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil && !l.failed {
		// The hook writes it as root, and text from containers goes in:
		// only in directories nobody else may write or swap.
		f, err := safefile.OpenPrivate(l.path, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT, false)
		if err != nil {
			l.failed = true
			fmt.Fprintf(l.stderr, "%s: diagnostics log: %s\n", l.prog, vocab.OneLine(err))
		}
		l.f = f
	}
	if l.f == nil {
		return len(p), nil
	}
	var err error
	if st, serr := l.f.Stat(); serr == nil {
		// Under a file size limit, a write that would stop at it and
		// leave part of an entry (glued to the next run's) is not made.
		err = safefile.RoomFor(st.Size(), len(p))
	}
	if err == nil {
		_, err = l.f.Write(p)
	}
	if err != nil {
		// Not logrus's own "Failed to write to log" at every entry.
		fmt.Fprintf(l.stderr, "%s: diagnostics log: %s (entries dropped)\n", l.prog, vocab.OneLine(err))
		l.f.Close()
		l.f, l.failed = nil, true
	}
	return len(p), nil
}

func (l *lazyFile) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// Stderr returns a logger at level writing to w (a service's standard
// error, which systemd puts in the journal).
func Stderr(w io.Writer, level logrus.Level) *logrus.Logger {
	l := logrus.New()
	l.Out = w
	l.Level = level
	l.Formatter = textFormatter()
	return l
}

func textFormatter() *logrus.TextFormatter {
	return &logrus.TextFormatter{DisableColors: true, FullTimestamp: true, TimestampFormat: time.RFC3339Nano}
}

// utcFormatter writes diagnostics in UTC, like the audit records, which
// also spares every hook run reading /etc/localtime.
type utcFormatter struct{ f logrus.Formatter }

func (u utcFormatter) Format(e *logrus.Entry) ([]byte, error) {
	e.Time = e.Time.UTC()
	return u.f.Format(e)
}
