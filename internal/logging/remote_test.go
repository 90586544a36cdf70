package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/rsyslogtest"
	"github.com/nsrel/nsrel/internal/syslog"
	"github.com/nsrel/nsrel/internal/vocab"
)

// hostile is a field value a container controls: quotes, a backslash,
// a bracket, a newline and an escape sequence.
const hostile = "ctr\"]\\\n\x1b[31mred"

// TestSyslogThroughRsyslog logs through Service to a private rsyslogd,
// over its local socket and over TCP on 127.0.0.1, and checks what
// rsyslog parsed: the APP-NAME, MSGID, severity, the structured data
// (parsed by rsyslog's mmpstrucdata into JSON) and the message, with the
// hostile value escaped and no line broken.
func TestSyslogThroughRsyslog(t *testing.T) {
	d := rsyslogtest.New(t, "collector")
	sock := d.Path("log.sock")
	out := d.Path("out.log")
	d.Start(t, fmt.Sprintf(`module(load="imtcp")
module(load="imuxsock" sysSock.use="off")
module(load="mmpstrucdata")
template(name="j" type="string" string="%%app-name%% %%msgid%% %%syslogseverity%% %%$!%%\t%%msg%%\n")
input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName=%q)
input(type="imuxsock" socket=%q useSpecialParser="off" parseHostname="on" rateLimit.interval="0")
action(type="mmpstrucdata")
action(type="omfile" file=%q template="j")
`, d.PortFile("tcp"), sock, out))
	port := d.Port(t, "tcp")
	d.WaitSocket(t, sock)

	var stderr nstest.LockedBuffer
	for i, target := range []string{"unix://" + sock, fmt.Sprintf("tcp://127.0.0.1:%d", port)} {
		tg, err := syslog.ParseTarget(target)
		if err != nil {
			t.Fatal(err)
		}
		l := Service(tg, "nsrel-containerd", &stderr, logrus.InfoLevel)
		l.WithField("container", hostile).WithError(errors.New("boom")).Warn("audit log append failed")
		l.Debug("not at info level")
		rsyslogtest.WaitLines(t, out, i+1, d)
	}
	Flush(5 * time.Second)
	if stderr.String() != "" {
		t.Errorf("stderr: %q", stderr.String())
	}
	lines := rsyslogtest.WaitLines(t, out, 2, d)
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), bytes.Join(lines, []byte("\n")))
	}
	for _, line := range lines {
		head, msg, _ := strings.Cut(string(line), "\t")
		if msg != "audit log append failed" {
			t.Errorf("MSG %q", msg)
		}
		parts := strings.SplitN(head, " ", 4)
		if len(parts) != 4 || parts[0] != "nsrel-containerd" || parts[1] != "diag" || parts[2] != "4" {
			t.Errorf("header %q, want nsrel-containerd diag 4", head)
			continue
		}
		var sd struct {
			SD map[string]map[string]string `json:"rfc5424-sd"`
		}
		if err := json.Unmarshal([]byte(parts[3]), &sd); err != nil {
			t.Errorf("structured data %q: %v", parts[3], err)
			continue
		}
		got := sd.SD["nsrel@32473"]
		want := map[string]string{"container": vocab.Printable(hostile), "error": "boom", "level": "warning"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("SD %s = %q, want %q (all: %v)", k, got[k], v, got)
			}
		}
	}
}

// TestSyslogFallback checks that an entry that cannot be sent goes to
// stderr, after a line saying why.
func TestSyslogFallback(t *testing.T) {
	tg, err := syslog.ParseTarget("unix://" + t.TempDir() + "/none.sock")
	if err != nil {
		t.Fatal(err)
	}
	var stderr nstest.LockedBuffer
	Service(tg, "nsrel-containerd", &stderr, logrus.InfoLevel).WithField("pid", 7).Info("recorded start")
	Flush(5 * time.Second)
	if s := stderr.String(); strings.Count(s, "\n") != 2 || !strings.Contains(s, "cannot send diagnostics") || !strings.Contains(s, `msg="recorded start" pid=7`) {
		t.Errorf("stderr %q", s)
	}
}

// TestServiceNeverWaits logs through Service to a syslog server over
// TCP that never accepts (its accept queue full, so every connection
// hangs until syslog.Timeout): no entry waits for it. The entries go
// through a bounded queue; beyond QueueLen they are dropped and counted,
// and Flush writes what is still queued to stderr after a line saying
// why, with a line saying how many were dropped. Sending as the entry
// was logged made each entry wait up to syslog.Timeout, in the NRI
// plugin's answer to the runtime too.
func TestServiceNeverWaits(t *testing.T) {
	l, stderr := stuckService(t)
	before := Dropped()
	start := time.Now()
	n := QueueLen + 10
	for i := range n {
		t0 := time.Now()
		l.WithField("i", i).Warn("refused by nsrel policy")
		// One that waited for the connection takes syslog.Timeout
		// (GC or preemption on a loaded machine can take 200 ms).
		if took := time.Since(t0); took >= syslog.Timeout {
			t.Fatalf("entry %d took %v to log", i, took)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("%d entries took %v to log", n, took)
	}
	// The goroutine holds one entry (its connection hangs, up to
	// syslog.Timeout: on a slow machine it may give up and take the
	// next), the queue QueueLen: the rest were dropped.
	if d := Dropped() - before; d < 1 || d > 10 {
		t.Errorf("%d entries dropped, want 1 to 10", d)
	}
	t0 := time.Now()
	Flush(100 * time.Millisecond)
	if took := time.Since(t0); took > time.Second {
		t.Errorf("Flush(100ms) took %v", took)
	}
	s := stderr.String()
	if !strings.Contains(s, "diagnostics not sent in time before exit") || !strings.Contains(s, "diagnostics dropped: the queue to tcp://") ||
		strings.Count(s, `msg="refused by nsrel policy"`) < QueueLen-1 {
		t.Errorf("stderr: %d lines, %d entries, head:\n%s", strings.Count(s, "\n"), strings.Count(s, `msg="refused by nsrel policy"`), s[:min(len(s), 2000)])
	}
	// The entry being sent when Flush gave up (the first, whose
	// connection hangs) is on stderr too, not lost.
	if !regexp.MustCompile(`(?m)msg="refused by nsrel policy" i=0$`).MatchString(s) {
		t.Errorf("the entry in flight (i=0) is not on stderr:\n%s", s[:min(len(s), 2000)])
	}
}

// TestFlushDropNoteInFlight checks what Flush does when its time runs
// out while the goroutine is sending the note of dropped entries rather
// than an entry: the note and the entry taken with it are on stderr. The
// first entry's send hangs until syslog.Timeout and fails (to stderr);
// meanwhile the queue filled and entries were dropped, so the goroutine
// next sends the note, which hangs too. Before, the entry taken with the
// note was not marked in flight while the note was sent: Flush found
// nothing in flight, and the entry and the note were lost (seen in CI as
// TestServiceNeverWaits missing i=0 when the goroutine was scheduled late).
func TestFlushDropNoteInFlight(t *testing.T) {
	l, stderr := stuckService(t)
	for i := range QueueLen + 10 {
		l.WithField("i", i).Warn("refused by nsrel policy")
	}
	// The first entry's send gives up after syslog.Timeout.
	deadline := time.Now().Add(10 * syslog.Timeout)
	for !strings.Contains(stderr.String(), "cannot send diagnostics") {
		if time.Now().After(deadline) {
			t.Fatalf("the first entry's send did not give up: %q", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The goroutine has taken the next entry and is sending the note.
	time.Sleep(100 * time.Millisecond)
	Flush(10 * time.Millisecond)
	s := stderr.String()
	if !strings.Contains(s, "diagnostics not sent in time before exit") {
		t.Errorf("no line saying why:\n%s", s[:min(len(s), 2000)])
	}
	if !regexp.MustCompile(`(?m)msg="diagnostics dropped: the queue to tcp://[^ ]* was full" dropped=[0-9]+`).MatchString(s) {
		t.Errorf("the note of dropped entries is not on stderr:\n%s", s[:min(len(s), 2000)])
	}
	for _, i := range []int{0, 1, QueueLen - 1} {
		if !regexp.MustCompile(fmt.Sprintf(`(?m)msg="refused by nsrel policy" i=%d$`, i)).MatchString(s) {
			t.Errorf("entry i=%d is not on stderr", i)
		}
	}
	// Entries logged after Flush go to stderr too.
	l.WithField("i", "late").Warn("refused by nsrel policy")
	if !strings.Contains(stderr.String(), `i=late`) {
		t.Errorf("an entry logged after Flush is not on stderr")
	}
}

// stuckService returns a Service logger whose target is a syslog server
// over TCP that never accepts, and the buffer that is its stderr. Its
// cool-down is 0: every entry tries the target (as the first after each
// CoolDown does), so that its sender is always waiting for the target,
// which is what these tests are about.
func stuckService(t *testing.T) (*logrus.Logger, *nstest.LockedBuffer) {
	tg, err := syslog.ParseTarget("tcp://" + nstest.StuckListener(t))
	if err != nil {
		t.Fatal(err)
	}
	stderr := new(nstest.LockedBuffer)
	l, _ := newService(tg, "nsrel-containerd", stderr, logrus.InfoLevel, true, time.Now, 0)
	return l, stderr
}

// TestSyncSenderBudget logs through the hook's logger (a log_file that
// is a syslog target: sent as logged) to a unix datagram socket whose
// reader never reads, its queue full: every send blocks. The
// entries cost at most SyncBudget in all, then go to stderr after one
// line that says why; each used to wait up to syslog.Timeout (1 s), the
// hook's stage past its deadline, with the audit log's lock held.
func TestSyncSenderBudget(t *testing.T) {
	sock := t.TempDir() + "/full.sock"
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Full before the first entry, whatever the host's queue length
	// (net.unix.max_dgram_qlen: 10 by the kernel, 512 where systemd is
	// PID 1; at 512 the 50 entries fit, and the test failed).
	fillDgram(t, sock)
	var stderr nstest.LockedBuffer
	l, closeLog := File("unix://"+sock, "nsrel-hook", &stderr)
	defer closeLog()
	const n = 50
	start := time.Now()
	for i := range n {
		l.WithField("i", i).Warn("policy violated")
	}
	// SyncBudget (150 ms), with room for a loaded machine; each entry
	// waiting 1 s took 40 s.
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("%d entries took %v", n, took)
	}
	s := stderr.String()
	if strings.Count(s, "follow on stderr") != 1 || !strings.Contains(s, `msg="policy violated" i=49`) {
		t.Errorf("stderr: %.2000s", s)
	}
}

// TestValueCutAfterEscaping: a value of control characters a container
// chose is cut to 8 KiB after it is escaped (each escape is 4 bytes),
// not only before (it was 32 KiB).
func TestValueCutAfterEscaping(t *testing.T) {
	e := &logrus.Entry{Logger: logrus.New(), Time: time.Now(), Level: logrus.WarnLevel, Message: strings.Repeat("\x1b", 8000),
		Data: logrus.Fields{"container": strings.Repeat("\x01", 8000), "name": "\x01" + strings.Repeat(`"`, 8000)}}
	msg := SyslogEntry(e, "h", "nsrel-hook")
	// Two fields and the message, each at most 8 KiB in the datagram.
	if n := len(msg); n > 3*8192+512 {
		t.Errorf("message of %d bytes", n)
	}
	for _, f := range fields(e) {
		if len(f[1]) > 8192 {
			t.Errorf("%s: %d bytes", f[0], len(f[1]))
		}
	}
}

// TestServiceStderrNeverWaits logs through Service to a stderr that
// takes nothing (every write blocks, as on a pipe nobody reads): no
// entry waits for it for good. The entries go through the bounded
// queue the syslog and journald targets use; beyond QueueLen they are
// dropped and counted, and once stderr takes writes again the entries
// kept come in the order they were logged, with notes of the drops
// that add up to the count: kept and dropped make all that was logged.
// Which entries are dropped depends on when the sender first runs
// (before the queue fills, or after), so only that is checked. The
// stderr target wrote each entry as it was logged: the NRI plugin's
// answer waited for stderr, past the runtime's timeout.
func TestServiceStderrNeverWaits(t *testing.T) {
	var w nstest.StalledWriter
	defer w.Release()
	l := Service(syslog.Target{Kind: "stderr"}, "nsrel-containerd", &w, logrus.InfoLevel)
	before := Dropped()
	n := QueueLen + 10
	logged := make(chan struct{})
	go func() {
		for i := range n {
			l.WithField("i", i).Warn("refused by nsrel policy")
		}
		close(logged)
	}()
	select {
	case <-logged:
	case <-time.After(30 * time.Second): // each entry takes microseconds
		w.Release()
		t.Fatal("logging waits for stderr")
	}
	dropped := int(Dropped() - before)
	if dropped < 1 {
		t.Errorf("%d entries dropped; want some: the queue holds %d", dropped, QueueLen)
	}
	w.Release()
	// parse returns the entries on stderr, the sum of the drop notes
	// and the lines that are neither.
	parse := func(lines []string) (nums []int, notes int, other []string) {
		for _, line := range lines {
			var i, d int
			if line == "" {
				continue
			}
			if _, err := fmt.Sscanf(line[max(strings.Index(line, "msg="), 0):], `msg="refused by nsrel policy" i=%d`, &i); err == nil {
				nums = append(nums, i)
			} else if _, err := fmt.Sscanf(line[max(strings.Index(line, "msg="), 0):], `msg="diagnostics dropped: the queue to stderr was full" dropped=%d`, &d); err == nil {
				notes += d
			} else {
				other = append(other, line)
			}
		}
		return nums, notes, other
	}
	// Once the queue is written (every entry logged is on stderr or
	// counted there as dropped), an entry logged has room again.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if nums, notes, _ := parse(strings.Split(strings.TrimSpace(w.String()), "\n")); len(nums)+notes == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the entries kept and the drops noted do not add up to %d on stderr:\n%.2000s", n, w.String())
		}
	}
	l.Warn("after")
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(w.String(), "msg=after"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the entry after is not on stderr:\n%.2000s", w.String())
		}
	}
	lines := strings.Split(strings.TrimSpace(w.String()), "\n")
	nums, notes, other := parse(lines[:len(lines)-1])
	for _, line := range other {
		t.Errorf("line %q", line)
	}
	for k := 1; k < len(nums); k++ {
		if nums[k] <= nums[k-1] {
			t.Fatalf("i=%d on stderr after i=%d: out of order", nums[k], nums[k-1])
		}
	}
	if len(nums)+dropped != n || notes != dropped || !strings.Contains(lines[len(lines)-1], "msg=after") {
		t.Errorf("%d entries kept, %d dropped, %d noted as dropped, last line %q; want kept and dropped to make %d, all drops noted, the entry after last",
			len(nums), dropped, notes, lines[len(lines)-1], n)
	}
}

// slowWriter takes 100 ms for each write.
type slowWriter struct{ nstest.LockedBuffer }

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(100 * time.Millisecond)
	return w.LockedBuffer.Write(p)
}

// TestServiceStderrAfterFlush: a Service logger to stderr logs, Flush
// writes the entry, and what is logged after Flush (a goroutine still at
// work when the process exits, the line about stopping) is written as it
// is logged, after it, since nothing writes a queue after the exit; a
// stderr that took nothing by then keeps its queue, which it writes once
// it takes writes. The entries logged after Flush were queued, and lost
// at os.Exit.
func TestServiceStderrAfterFlush(t *testing.T) {
	var w slowWriter
	l := Service(syslog.Target{Kind: "stderr"}, "nsrel-containerd", &w, logrus.InfoLevel)
	l.Error("before")
	Flush(5 * time.Second)
	l.Error("after flush")
	if s := w.String(); !strings.Contains(s, `msg=before`) || !strings.Contains(s, `msg="after flush"`) || strings.Index(s, "before") > strings.Index(s, "after flush") {
		t.Errorf("stderr once the entry after Flush was logged: %q; want both, in order", s)
	}

	var stalled nstest.StalledWriter
	l = Service(syslog.Target{Kind: "stderr"}, "nsrel-containerd", &stalled, logrus.InfoLevel)
	l.Error("before")
	t0 := time.Now()
	Flush(100 * time.Millisecond)
	l.Error("after flush")
	if took := time.Since(t0); took > 2*time.Second {
		t.Errorf("Flush and an entry to a stalled stderr took %v", took)
	}
	stalled.Release()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(stalled.String(), "after flush"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stalled stderr, released: %q; want both entries", stalled.String())
		}
	}
	if s := stalled.String(); strings.Index(s, "before") > strings.Index(s, "after flush") {
		t.Errorf("stalled stderr, released: %q; want the entries in order", s)
	}
}

// TestStandardNeverWaits: what a library logs through logrus's standard
// logger (the NRI stub's ttrpc, containerd's client) goes through a
// Service logger once Standard is set, so a stderr that takes nothing
// does not hold it for good (a panic waits StandardWait for it); once
// stderr takes writes, the entry is there, at error level for a panic.
// It went straight to stderr, waiting for it.
func TestStandardNeverWaits(t *testing.T) {
	nstest.RestoreStandardLogger(t)
	var stderr nstest.StalledWriter
	defer stderr.Release()
	Standard(Service(syslog.Target{Kind: "stderr"}, "nsrel-containerd", &stderr, logrus.InfoLevel))
	done := make(chan struct{})
	go func() {
		defer close(done)
		logrus.WithField("stream", 3).Error("ttrpc: received message on inactive stream")
		logrus.Debug("below the level")
		func() {
			defer func() { _ = recover() }()
			logrus.Panic("a library panics")
		}()
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // the panic waits StandardWait
		t.Fatal("the standard logger waited for a stalled stderr")
	}
	stderr.Release()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(stderr.String(), "a library panics"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stderr, released: %q; want the entries", stderr.String())
		}
	}
	s := stderr.String()
	if !strings.Contains(s, `level=error msg="ttrpc: received message on inactive stream" stream=3`) || !strings.Contains(s, `level=error msg="a library panics"`) || strings.Contains(s, "below the level") {
		t.Errorf("stderr %q; want both errors, not the debug entry", s)
	}
}

// TestStandardPanicFatalSent: an entry at panic or fatal level logged
// through logrus's standard logger, once Standard is set, is on stderr
// (a slow one) when the standard logger panics or exits. It was queued
// behind the entries before it and lost: logrus panics or calls
// os.Exit right after the hooks, and nothing flushed the queue.
func TestStandardPanicFatalSent(t *testing.T) {
	std := logrus.StandardLogger()
	out, formatter, level, hooks, exit := std.Out, std.Formatter, std.GetLevel(), std.Hooks, std.ExitFunc
	t.Cleanup(func() {
		std.SetOutput(out)
		std.SetFormatter(formatter)
		std.SetLevel(level)
		std.ReplaceHooks(hooks)
		std.ExitFunc = exit
	})
	var w slowWriter
	Standard(Service(syslog.Target{Kind: "stderr"}, "nsrel-containerd", &w, logrus.InfoLevel))
	logrus.Error("before the panic")
	func() {
		defer func() { _ = recover() }()
		logrus.Panic("a library panics")
	}()
	if s := w.String(); !strings.Contains(s, `level=error msg="a library panics"`) {
		t.Errorf("stderr when the standard logger panicked: %q; want the entry", s)
	}
	exited := -1
	std.ExitFunc = func(code int) { exited = code }
	logrus.Error("before the exit")
	logrus.Fatal("a library gives up")
	if s := w.String(); exited != 1 || !strings.Contains(s, `level=error msg="a library gives up"`) {
		t.Errorf("exit %d, stderr when the standard logger exited: %q; want 1 and the entry", exited, s)
	}
}

// TestFlushStalledStderr: Flush of a service whose target does not take
// its entries writes them to stderr; a stderr that does not take them
// either (journald behind both, under systemd) held Flush, so a failing
// watch or nri never exited. It returns within what is left of its time
// and a second.
func TestFlushStalledStderr(t *testing.T) {
	tg, err := syslog.ParseTarget("tcp://" + nstest.StuckListener(t))
	if err != nil {
		t.Fatal(err)
	}
	var stderr nstest.StalledWriter
	defer stderr.Release()
	l := Service(tg, "nsrel-containerd", &stderr, logrus.InfoLevel)
	l.Warn("refused by nsrel policy")
	done := make(chan struct{})
	go func() {
		Flush(100 * time.Millisecond)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Flush still waiting for a stalled stderr after 30 s")
	}
}
