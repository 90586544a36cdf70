package logging

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/internal/syslog"
	"github.com/nsrel/nsrel/internal/vocab"
)

// Service returns a logger at level for a long-running service named
// app (the syslog APP-NAME, journald's SYSLOG_IDENTIFIER) writing to t.
// For syslog and journald every entry is one message, its fields
// structured (an RFC 5424 SD element [syslog.SDID], journal fields
// NSREL_*); for stderr it is a line of text, as [Stderr] writes it. It
// is formatted as it is logged and sent (or written) by a goroutine of
// the logger's own, in order: logging never waits for the target, so a
// slow or unreachable syslog server, or a stderr nobody reads (a full
// pipe, a stalled journald), cannot hold up a decision the service must
// make within a deadline (the NRI plugin's). At most [QueueLen] entries
// wait; when the queue is full a warning or an error takes the place of
// the oldest info or debug entry queued, and otherwise the new entry is
// dropped: a dropped entry is counted ([Dropped], [DroppedAt]), and the
// next entry sent is preceded by one that says how many were dropped.
// An entry that cannot be sent to syslog or journald is written to
// stderr as text, and so is every entry for [CoolDown] after that,
// without trying the target: a target that hangs would cost each of
// them [syslog.Timeout]. The first entry after the cool-down tries the
// target again. One line on stderr says when the target starts failing
// (with the error), and one when an entry gets through again (also sent
// to the target: how many entries went to stderr meanwhile; a warning,
// an error at a level that logs no warnings). [Flush]
// waits for what is queued before the process exits, or before a line
// written to the same stderr directly.
func Service(t syslog.Target, app string, stderr io.Writer, level logrus.Level) *logrus.Logger {
	return service(t, app, stderr, level, true)
}

// service is [Service]; async says whether entries are queued (a
// service) or sent as they are logged (nsrel-hook, which exits at its
// own deadline and must not leave entries behind).
func service(t syslog.Target, app string, stderr io.Writer, level logrus.Level, async bool) *logrus.Logger {
	l, _ := newService(t, app, stderr, level, async, time.Now, CoolDown)
	return l
}

// newService is [service] with the clock that times the cool-down after
// a failure, and its length; it also returns the sender (nil for the
// hook's logger to stderr, which has none).
func newService(t syslog.Target, app string, stderr io.Writer, level logrus.Level, async bool, now func() time.Time, coolDown time.Duration) (*logrus.Logger, *sender) {
	l := Stderr(stderr, level)
	if t.Kind == "stderr" && !async {
		return l, nil
	}
	fallback := Stderr(stderr, level)
	l.Out = io.Discard
	l.Formatter = nothing{}
	host, _ := os.Hostname()
	s := &sender{t: t, app: app, host: host, fallback: fallback, stderr: stderr, now: now, coolDown: coolDown}
	if async {
		s.wake = make(chan struct{}, 1)
		go s.run()
		senders.Lock()
		senders.all = append(senders.all, s)
		senders.Unlock()
	}
	l.AddHook(s)
	return l, s
}

// QueueLen bounds the entries a [Service] logger keeps waiting for its
// target.
const QueueLen = 1024

// CoolDown is how long a [Service] logger writes its entries straight
// to stderr after its target failed one, before it tries the target
// again with the next entry.
const CoolDown = 15 * time.Second

// nothing formats nothing: the hook sends the entry.
type nothing struct{}

func (nothing) Format(*logrus.Entry) ([]byte, error) { return nil, nil }

// sender is the logrus hook that sends every entry to syslog or
// journald, at once or through queue when it is set, or writes it to
// stderr through queue.
type sender struct {
	t        syslog.Target
	app      string
	host     string
	fallback *logrus.Logger
	// stderr is the writer of a sender whose target is "stderr".
	stderr io.Writer

	// wake is set for a queued sender: the goroutine sends what is
	// queued, and waits on wake when nothing is.
	wake chan struct{}
	// mu guards queue, the entries waiting (at most QueueLen);
	// inFlight, what the goroutine took from queue and has not sent
	// yet (an entry and the note of drops before it); and flushing, set
	// by [Flush] when its time is up (for a stderr target, once it is
	// written what was queued): from then on entries go to stderr as
	// they are logged.
	// An entry is always in exactly one of queue and inFlight until it
	// is sent or written to stderr, so Flush sees every one.
	mu       sync.Mutex
	queue    []queued
	inFlight []queued
	flushing bool
	// dropped counts entries dropped since the goroutine last said so.
	dropped atomic.Int64
	// spent is how long a sender without a queue (the hook's) has
	// waited for its target, and gaveUp set once it stopped waiting
	// (a failure, or [SyncBudget] spent): from then on entries go to
	// stderr at once. Guarded by mu.
	spent  time.Duration
	gaveUp bool

	// now is the clock that times the cool-down after a failure of a
	// queued sender, coolDown its length ([CoolDown]).
	now      func() time.Time
	coolDown time.Duration
	// down is set from a failure of the target of a queued sender until
	// an entry gets through again: until retry, entries go to stderr
	// without trying the target; the first one after, tries it.
	// downSince is when the failure began, onStderr how many entries
	// went to stderr since. Only the goroutine uses them.
	down      bool
	retry     time.Time
	downSince time.Time
	onStderr  int64
	// tries counts the times a queued sender tried its target.
	tries atomic.Int64
}

// SyncBudget bounds how long a logger that sends as it logs (the hook's,
// whose stage has a deadline, and which may log while others wait for
// the audit log's lock) waits for its target over its whole life: a
// target that is slow, stopped or full costs at most this, then the
// entries go to stderr.
const SyncBudget = 150 * time.Millisecond

// queued is an entry formatted for the target, with what stderr needs
// when it cannot be sent.
type queued struct {
	msg   []byte
	level logrus.Level
	data  logrus.Fields
	time  time.Time
	text  string
}

func (s *sender) Levels() []logrus.Level { return logrus.AllLevels }

func (s *sender) Fire(e *logrus.Entry) error {
	q := s.format(e)
	if s.wake == nil {
		s.sendSync(q)
		return nil
	}
	s.enqueue(q)
	return nil
}

func (s *sender) enqueue(q queued) {
	s.mu.Lock()
	switch {
	case s.flushing:
		s.mu.Unlock()
		s.toStderr(q)
		return
	case len(s.queue) >= QueueLen:
		// A warning or an error takes the place of the oldest info or
		// debug entry; without one, or for an entry of those levels
		// itself, the new entry is dropped.
		i := -1
		if q.level <= logrus.WarnLevel {
			i = slices.IndexFunc(s.queue, func(o queued) bool { return o.level >= logrus.InfoLevel })
		}
		if i < 0 {
			s.mu.Unlock()
			s.drop(q.level)
			return
		}
		lost := s.queue[i].level
		s.queue = slices.Delete(s.queue, i, i+1)
		s.drop(lost)
	}
	s.queue = append(s.queue, q)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// drop counts an entry at level l dropped.
func (s *sender) drop(l logrus.Level) {
	s.dropped.Add(1)
	if int(l) < len(dropped) {
		dropped[l].Add(1)
	}
}

// format formats e for the target; e's fields are copied, since the
// entry may be sent after the caller changed them.
func (s *sender) format(e *logrus.Entry) queued {
	q := queued{level: e.Level, data: maps.Clone(e.Data), time: e.Time, text: e.Message}
	switch s.t.Kind {
	case "journald":
		q.msg = JournalEntry(e, s.app)
	case "stderr":
		// The line [Stderr] writes; a formatting error leaves it empty,
		// as Stderr writes nothing then.
		q.msg, _ = s.fallback.Formatter.Format(e)
	default:
		q.msg = SyslogEntry(e, s.host, s.app)
	}
	return q
}

// run sends the queued entries, one at a time, for as long as the
// process lives.
func (s *sender) run() {
	for range s.wake {
		for s.take() {
			for s.sendNext() {
			}
		}
	}
}

// sendNext sends the first entry in flight, if any, and then removes it
// (unless [Flush] has written it to stderr and emptied inFlight
// meanwhile); it says false when nothing was in flight.
func (s *sender) sendNext() bool {
	s.mu.Lock()
	if len(s.inFlight) == 0 {
		s.mu.Unlock()
		return false
	}
	q := s.inFlight[0]
	s.mu.Unlock()
	s.send(q)
	s.mu.Lock()
	if len(s.inFlight) > 0 {
		s.inFlight = s.inFlight[1:]
	}
	s.mu.Unlock()
	return true
}

// take moves the next queued entry, after a note of the entries dropped
// before it if any were, to inFlight; it says false when nothing is
// queued or [Flush] has taken over.
func (s *sender) take() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.flushing || len(s.queue) == 0 {
		return false
	}
	if n := s.dropped.Swap(0); n > 0 {
		s.inFlight = append(s.inFlight, s.droppedNote(n))
	}
	s.inFlight = append(s.inFlight, s.queue[0])
	s.queue[0] = queued{}
	s.queue = s.queue[1:]
	if len(s.queue) == 0 {
		s.queue = nil
	}
	return true
}

// pending says whether entries are queued or being sent.
func (s *sender) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) > 0 || len(s.inFlight) > 0
}

// droppedNote is an entry that says n entries were dropped.
func (s *sender) droppedNote(n int64) queued {
	return s.format(&logrus.Entry{Logger: s.fallback, Time: time.Now(), Level: logrus.ErrorLevel, Data: logrus.Fields{"dropped": n},
		Message: "diagnostics dropped: the queue to " + s.t.String() + " was full"})
}

func (s *sender) send(q queued) {
	if s.t.Kind == "stderr" {
		// Nowhere else to write it when stderr fails.
		s.stderr.Write(q.msg)
		return
	}
	if s.down && s.now().Before(s.retry) {
		s.toStderr(q)
		s.onStderr++
		return
	}
	s.tries.Add(1)
	err := syslog.Send(context.Background(), s.dest(), q.msg)
	switch {
	case err != nil:
		if !s.down {
			s.down, s.downSince, s.onStderr = true, time.Now(), 0
			s.fallback.WithError(err).Errorf("cannot send diagnostics to %s; they follow on stderr, and it is tried again every %v", s.t, s.coolDown)
		}
		s.retry = s.now().Add(s.coolDown)
		s.toStderr(q)
		s.onStderr++
	case s.down:
		// The line that says so goes to stderr, after the entries
		// written there, and to the target, after this entry: what it
		// did not get, and where that went.
		// A warning; an error where warnings are not logged, since the
		// line that said the target failed is one and this one must
		// follow it.
		s.down = false
		level := logrus.WarnLevel
		if !s.fallback.IsLevelEnabled(level) {
			level = logrus.ErrorLevel
		}
		note := &logrus.Entry{Logger: s.fallback, Time: time.Now(), Level: level,
			Data:    logrus.Fields{"on_stderr": s.onStderr, "since": s.downSince.UTC().Format(time.RFC3339Nano)},
			Message: "diagnostics are sent to " + s.t.String() + " again; the entries it did not take went to stderr"}
		s.fallback.WithFields(note.Data).WithTime(note.Time).Log(level, note.Message)
		s.mu.Lock()
		if !s.flushing && len(s.inFlight) > 0 {
			// Sent next, after q (inFlight[0], removed once sent).
			s.inFlight = slices.Insert(s.inFlight, 1, s.format(note))
		}
		s.mu.Unlock()
	}
}

func (s *sender) dest() syslog.Dest {
	if s.t.Kind == "journald" {
		return syslog.Dest{Network: "unixgram", Address: s.t.Journal}
	}
	return s.t.Syslog
}

// sendSync sends q at once, within what is left of [SyncBudget]; after
// a failure, or once the budget is spent, q and every later entry go to
// stderr.
func (s *sender) sendSync(q queued) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gaveUp {
		s.toStderr(q)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), SyncBudget-s.spent)
	start := time.Now()
	err := syslog.Send(ctx, s.dest(), q.msg)
	cancel()
	s.spent += time.Since(start)
	switch {
	case err != nil:
		s.gaveUp = true
		s.fallback.WithError(err).WithField("target", s.t.String()).Error("cannot send diagnostics; this entry and the next ones follow on stderr")
		s.toStderr(q)
	case s.spent >= SyncBudget:
		s.gaveUp = true
		s.fallback.WithField("target", s.t.String()).Errorf("diagnostics took %v of the %v they may wait for the target; the next entries follow on stderr", s.spent.Round(time.Millisecond), SyncBudget)
	}
}

// toStderr writes q to the fallback logger (stderr) as text.
func (s *sender) toStderr(q queued) {
	s.fallback.WithFields(q.data).WithTime(q.time).Log(q.level, q.text)
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
		out = append(out, [2]string{k, printableCut(fmt.Sprint(v))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// maxValue bounds one field's value in bytes: a datagram must fit the
// socket's buffer.
const maxValue = 8192

// printableCut returns s escaped ([vocab.Printable]) and cut so that it
// is at most maxValue bytes also once an RFC 5424 SD-PARAM escapes its
// '"', '\' and ']': an escape takes several bytes for one, and a
// container controls some of the text.
func printableCut(s string) string {
	raw := vocab.Cut(s, maxValue)
	for {
		// Cut before it is quoted: a quoted value cut ends inside an
		// escape, without its closing quote, and decodes no more.
		q := vocab.Printable(raw)
		n := len(q) + strings.Count(q, `"`) + strings.Count(q, `\`) + strings.Count(q, "]")
		if n <= maxValue {
			return q
		}
		// In proportion (escapes may be most of it), then again.
		raw = vocab.Cut(raw, min(len(raw)-1, len(raw)*maxValue/n))
	}
}

// SyslogEntry formats e as an RFC 5424 message: MSGID "diag", the
// fields as SD-PARAMs of [syslog.SDID], the message as MSG.
func SyslogEntry(e *logrus.Entry, host, app string) []byte {
	var params []syslog.Param
	for _, f := range fields(e) {
		params = append(params, syslog.Param{Name: f[0], Value: f[1]})
	}
	return syslog.MessageSD(e.Time, severity(e.Level), host, app, "diag", syslog.SDID, params,
		[]byte(printableCut(e.Message)))
}

// JournalEntry encodes e in journald's native protocol
// (systemd.io/JOURNAL_NATIVE_PROTOCOL, the same field encoding as the
// journal export format): MESSAGE, PRIORITY, SYSLOG_IDENTIFIER,
// SYSLOG_FACILITY (10, authpriv) and every field as NSREL_NAME (upper
// case, characters other than A-Z, 0-9 and _ made _).
func JournalEntry(e *logrus.Entry, app string) []byte {
	var b []byte
	b = syslog.AppendJournalField(b, "MESSAGE", printableCut(e.Message))
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

// senders are the [Service] loggers' queues, for [Flush].
var senders struct {
	sync.Mutex
	all []*sender
}

// dropped counts the entries every [Service] logger dropped, by level.
var dropped [logrus.TraceLevel + 1]atomic.Uint64

// Dropped returns how many diagnostics entries [Service] loggers dropped
// because their queue was full (the target was slower than the entries
// came), since the process started.
func Dropped() uint64 {
	var n uint64
	for i := range dropped {
		n += dropped[i].Load()
	}
	return n
}

// DroppedAt is [Dropped] for the entries at level l.
func DroppedAt(l logrus.Level) uint64 {
	if int(l) >= len(dropped) {
		return 0
	}
	return dropped[l].Load()
}

// Flush waits until every [Service] logger has sent what it had queued,
// at most d; an entry still queued or being sent to syslog or journald
// then is written to stderr as text, after a line that says why, as one
// that could not be sent, and so is every entry logged after that. A
// logger to stderr that wrote what it had queued writes every entry
// logged after that as it is logged; one that did not keeps its queue:
// stderr did not take it in time, and there is nowhere else to write it.
// Call it before the process exits, and before writing to the same
// stderr directly, so that the line comes after the entries logged
// before it.
func Flush(d time.Duration) {
	deadline := time.Now().Add(d)
	for _, s := range drain(d) {
		if s.t.Kind == "stderr" {
			// Once stderr took what was queued, what is logged from now
			// on is written as it is logged, in order after it: a queue
			// nothing would write before the process exits loses it.
			s.mu.Lock()
			if len(s.queue) == 0 && len(s.inFlight) == 0 {
				s.flushing = true
			}
			s.mu.Unlock()
			continue
		}
		// An entry being sent when time ran out may still get through
		// after this, but lost it must not be: what is in flight or
		// queued goes to stderr, and from now on what is logged too.
		s.mu.Lock()
		s.flushing = true
		left := append(s.inFlight, s.queue...)
		s.inFlight, s.queue = nil, nil
		if n := s.dropped.Swap(0); n > 0 {
			left = append(left, s.droppedNote(n))
		}
		s.mu.Unlock()
		if len(left) == 0 {
			continue
		}
		// stderr may be stalled too (journald behind both): the writes
		// wait at most what is left of d, and a second, so that the
		// process still exits (TestFlushStalledStderr).
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.fallback.WithField("target", s.t.String()).Error("diagnostics not sent in time before exit; the entries follow on stderr")
			for _, q := range left {
				s.toStderr(q)
			}
		}()
		t := time.NewTimer(max(time.Until(deadline), 0) + time.Second)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
	}
}

// Standard sends what is logged through logrus's standard logger to l
// instead of straight to stderr: libraries log there (containerd/log,
// which ttrpc under the NRI stub and containerd's client use), and a
// write to a stderr nobody reads would wait inside them, in a request
// with a deadline too. l's level applies; an entry at panic or fatal
// level is passed on at error level, and then the standard logger
// panics or exits, which would lose it in the queue: the panic waits,
// at most [StandardWait], for the [Service] loggers to send what they
// queued, and a logrus exit (a fatal entry of any logger) is preceded
// by [Flush] for as long (logrus.RegisterExitHandler). It replaces the
// standard logger's hooks.
func Standard(l *logrus.Logger) {
	std := logrus.StandardLogger()
	std.SetOutput(io.Discard)
	std.SetFormatter(nothing{})
	std.SetLevel(l.GetLevel())
	std.ReplaceHooks(logrus.LevelHooks{})
	std.AddHook(forward{l})
	exitFlush.Do(func() { logrus.RegisterExitHandler(func() { Flush(StandardWait) }) })
}

// StandardWait bounds how long an entry at panic or fatal level that
// [Standard] passes on waits to be sent before the panic or the exit.
const StandardWait = 2 * time.Second

// exitFlush registers the exit handler of [Standard] once.
var exitFlush sync.Once

// forward is the standard logger's hook that passes entries to l.
type forward struct{ l *logrus.Logger }

func (forward) Levels() []logrus.Level { return logrus.AllLevels }

func (f forward) Fire(e *logrus.Entry) error {
	f.l.WithFields(e.Data).WithTime(e.Time).Log(max(e.Level, logrus.ErrorLevel), e.Message)
	if e.Level == logrus.PanicLevel {
		// The panic may end the process. Not Flush: a panic recovered
		// must leave the queues as they are (after Flush, an entry to
		// stderr is written as it is logged, waiting for stderr).
		drain(StandardWait)
	}
	return nil
}

// drain waits until every [Service] logger has sent what it had
// queued, at most d, and returns them.
func drain(d time.Duration) []*sender {
	senders.Lock()
	all := slices.Clone(senders.all)
	senders.Unlock()
	deadline := time.Now().Add(d)
	for _, s := range all {
		for s.pending() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	return all
}
