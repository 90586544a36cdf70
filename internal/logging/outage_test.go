package logging

import (
	"bufio"
	"errors"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/syslog"
)

// TestOutageTCPHung logs through a Service logger to a syslog server
// over TCP that accepts and never reads (a hung collector): each send
// fails after syslog.Timeout. After the first failure, the entries go
// straight to stderr for CoolDown (a fake clock), without a try of the
// target (the server accepts no other connection); the first entry
// after it tries the target, and fails; once the server reads again,
// the next try gets through, and one line on stderr (and a note to the
// server) says so and how many entries went to stderr. One "cannot
// send" line per outage: a second outage has its own. Each entry used
// to wait syslog.Timeout (1 s) for the target, after a line of its own.
func TestOutageTCPHung(t *testing.T) {
	srv := newHungServer(t)
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	tg := syslog.Target{Kind: "syslog", Syslog: syslog.Dest{Network: "tcp", Address: srv.addr}}
	var stderr nstest.LockedBuffer
	l, s := newService(tg, "nsrel-containerd", &stderr, logrus.InfoLevel, true, clk.Now, CoolDown)
	cannot := "cannot send diagnostics to " + tg.String()
	again := "diagnostics are sent to " + tg.String() + " again"

	l.Warn("first")
	waitIdle(t, s)
	if n := s.tries.Load(); n != 1 || srv.accepted.Load() != 1 || strings.Count(stderr.String(), cannot) != 1 || !strings.Contains(stderr.String(), "msg=first") {
		t.Fatalf("after the first entry: %d tries, %d connections, stderr:\n%s", n, srv.accepted.Load(), stderr.String())
	}
	const n = 100
	for i := range n {
		l.WithField("i", i).Info("during the cool-down")
	}
	clk.Add(CoolDown - time.Nanosecond)
	l.Info("still cooling down")
	waitIdle(t, s)
	st := stderr.String()
	if got := strings.Count(st, `msg="during the cool-down"`); got != n || !strings.Contains(st, "still cooling down") || s.tries.Load() != 1 || srv.accepted.Load() != 1 {
		t.Errorf("during the cool-down: %d of %d entries on stderr, %d tries, %d connections; want all, 1, 1:\n%.3000s", got, n, s.tries.Load(), srv.accepted.Load(), st)
	}

	clk.Add(time.Nanosecond)
	l.Warn("probe")
	waitIdle(t, s)
	if st := stderr.String(); s.tries.Load() != 2 || !strings.Contains(st, "msg=probe") || strings.Count(st, cannot) != 1 {
		t.Errorf("after the cool-down: %d tries (want 2), %d lines %q (want 1), probe on stderr %v", s.tries.Load(), strings.Count(st, cannot), cannot, strings.Contains(st, "msg=probe"))
	}

	srv.reading.Store(true)
	l.Warn("not tried yet")
	waitIdle(t, s)
	clk.Add(CoolDown)
	l.Warn("back")
	l.Info("after")
	waitIdle(t, s)
	st = stderr.String()
	// first, n entries, still cooling down, probe, not tried yet.
	if strings.Count(st, again) != 1 || !strings.Contains(st, "on_stderr="+strconv.Itoa(n+4)) || strings.Contains(st, "msg=back") || strings.Contains(st, "msg=after") {
		t.Errorf("recovered: stderr:\n%.3000s\nwant one %q with on_stderr=%d, and neither back nor after", st[max(len(st)-3000, 0):], again, n+4)
	}
	msgs := srv.messages()
	if len(msgs) != 3 || !strings.HasSuffix(msgs[0], " back") || !strings.Contains(msgs[1], `on_stderr="`+strconv.Itoa(n+4)+`"`) || !strings.HasSuffix(msgs[1], again+"; the entries it did not take went to stderr") ||
		!strings.HasSuffix(msgs[2], " after") {
		t.Errorf("the server read %q; want back, the note and after", msgs)
	}

	srv.reading.Store(false)
	l.Warn("second outage")
	waitIdle(t, s)
	if st := stderr.String(); strings.Count(st, cannot) != 2 || !strings.Contains(st, `msg="second outage"`) {
		t.Errorf("a second outage: %d lines %q, want 2:\n%.3000s", strings.Count(st, cannot), cannot, st[max(len(st)-3000, 0):])
	}
}

// TestOutageRecoveryAtErrorLevel is TestOutageTCPHung's outage with a
// logger at error level: the line that says the target takes entries
// again follows the one that said it failed, as an error. At warning
// level it was not written at all, the outage never said to be over.
func TestOutageRecoveryAtErrorLevel(t *testing.T) {
	srv := newHungServer(t)
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	tg := syslog.Target{Kind: "syslog", Syslog: syslog.Dest{Network: "tcp", Address: srv.addr}}
	var stderr nstest.LockedBuffer
	l, s := newService(tg, "nsrel-containerd", &stderr, logrus.ErrorLevel, true, clk.Now, CoolDown)
	l.Error("first")
	waitIdle(t, s)
	srv.reading.Store(true)
	clk.Add(CoolDown)
	l.Error("back")
	waitIdle(t, s)
	st := stderr.String()
	again := regexp.MustCompile(`(?m)^.*level=error msg="diagnostics are sent to ` + regexp.QuoteMeta(tg.String()) + ` again; [^\n]*on_stderr=1`)
	if strings.Count(st, "cannot send diagnostics to "+tg.String()) != 1 || !again.MatchString(st) {
		t.Errorf("stderr:\n%s\nwant one line that the target failed and one, an error, that it takes entries again", st)
	}
	if msgs := srv.messages(); len(msgs) != 2 || !strings.HasSuffix(msgs[0], " back") || !strings.Contains(msgs[1], " again; ") {
		t.Errorf("the server read %q; want back and the note", msgs)
	}
}

// TestOutageUnixgramFull is TestOutageTCPHung with a local datagram
// socket (syslog's, or journald's native protocol socket) whose reader
// does not read, its queue full: a send waits until syslog.Timeout.
// Once it reads, the first entry after the cool-down gets through.
func TestOutageUnixgramFull(t *testing.T) {
	for _, kind := range []string{"syslog", "journald"} {
		t.Run(kind, func(t *testing.T) {
			sock := t.TempDir() + "/log.sock"
			ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			filled := fillDgram(t, sock)
			tg := syslog.Target{Kind: kind, Syslog: syslog.Dest{Network: "unixgram", Address: sock}, Journal: sock}
			clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
			var stderr nstest.LockedBuffer
			l, s := newService(tg, "nsrel-containerd", &stderr, logrus.InfoLevel, true, clk.Now, CoolDown)
			cannot := "cannot send diagnostics to " + tg.String()

			l.Warn("first")
			for i := range 50 {
				l.WithField("i", i).Info("during the cool-down")
			}
			waitIdle(t, s)
			st := stderr.String()
			if s.tries.Load() != 1 || strings.Count(st, cannot) != 1 || strings.Count(st, `msg="during the cool-down"`) != 50 {
				t.Fatalf("%d tries, stderr:\n%.3000s\nwant 1 try, one %q and the 50 entries", s.tries.Load(), st, cannot)
			}

			// The reader reads again: what filled its queue, then what
			// the logger sends.
			var got nstest.LockedBuffer
			var read atomic.Int64
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, 1<<16)
				for {
					n, err := ln.Read(buf)
					if err != nil {
						return
					}
					read.Add(1)
					got.Write(append(buf[:n:n], '\n'))
				}
			}()
			t.Cleanup(func() { ln.Close(); <-done })
			for deadline := time.Now().Add(30 * time.Second); read.Load() < int64(filled); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("read %d of the %d datagrams that filled the socket", read.Load(), filled)
				}
			}
			clk.Add(CoolDown)
			l.Warn("back")
			waitIdle(t, s)
			st = stderr.String()
			if s.tries.Load() != 3 || strings.Count(st, "are sent to "+tg.String()+" again") != 1 || !strings.Contains(st, "on_stderr=51") || strings.Contains(st, "msg=back") {
				t.Errorf("recovered: %d tries (want 3: first, back, the note), stderr:\n%.3000s", s.tries.Load(), st)
			}
			for deadline := time.Now().Add(30 * time.Second); read.Load() < int64(filled)+2; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the reader got %d datagrams, want %d and 2 (back, the note):\n%.3000s", read.Load(), filled, got.String())
				}
			}
			if g := got.String(); !strings.Contains(g, "back") || !strings.Contains(g, "again; the entries it did not take went to stderr") {
				t.Errorf("the reader got:\n%.3000s\nwant back and the note", g)
			}
		})
	}
}

// fillDgram fills the receive queue of the datagram socket sock with
// datagrams from sockets of its own (open until the test ends) until a
// new socket cannot send one either: the queue, not a sender's buffer,
// is full. It returns how many it sent.
func fillDgram(t *testing.T, sock string) int {
	t.Helper()
	n := 0
	for range 64 {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: sock}); err != nil {
			t.Fatal(err)
		}
		sent := 0
		for range 1 << 16 {
			err := unix.Send(fd, make([]byte, 512), 0)
			if errors.Is(err, unix.EAGAIN) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			sent++
		}
		if sent == 0 {
			return n
		}
		n += sent
	}
	t.Fatalf("%s still takes datagrams after %d", sock, n)
	return 0
}

// hungServer is a syslog server over TCP that accepts every connection
// and, until reading is set, never reads it (the connection is held
// until the test ends); once reading is set, it reads a message
// (RFC 6587 octet counting) and closes.
type hungServer struct {
	addr     string
	reading  atomic.Bool
	accepted atomic.Int64
	mu       sync.Mutex
	msgs     []string
}

func newHungServer(t *testing.T) *hungServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &hungServer{addr: ln.Addr().String()}
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			if !s.reading.Load() {
				held = append(held, c)
				continue
			}
			s.read(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
	})
	return s
}

// read reads one message of c, until the end of the stream, and
// closes c.
func (s *hungServer) read(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	n, err := br.ReadString(' ')
	if err != nil {
		return
	}
	size, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || size > 1<<20 {
		return
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(br, buf); err != nil {
		return
	}
	io.Copy(io.Discard, br)
	s.mu.Lock()
	s.msgs = append(s.msgs, string(buf))
	s.mu.Unlock()
}

func (s *hungServer) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// waitIdle waits until s sent or wrote every entry logged (30 s at
// most: a send gives up after syslog.Timeout).
func waitIdle(t *testing.T, s *sender) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); s.pending(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("entries still queued after 30 s")
		}
	}
}

// TestQueueFullKeepsWarnings fills the queue of a Service logger with
// info entries while its sender is held (its target, a TCP server that
// accepts and never reads, failed the entry before, and its stderr takes
// nothing: journald behind both). A warning or an error logged then
// takes the place of the oldest info entry; an info entry is dropped
// itself, and so is an error once only warnings and errors are queued.
// The drops are counted by level, and noted before the entries that
// follow once stderr takes them. The newest entry was dropped whatever
// its level: an error behind a burst of info entries was lost.
func TestQueueFullKeepsWarnings(t *testing.T) {
	srv := newHungServer(t)
	tg := syslog.Target{Kind: "syslog", Syslog: syslog.Dest{Network: "tcp", Address: srv.addr}}
	var stderr nstest.StalledWriter
	defer stderr.Release()
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l, s := newService(tg, "nsrel-containerd", &stderr, logrus.InfoLevel, true, clk.Now, CoolDown)
	l.Warn("hold")
	// Once the sender took it, it takes nothing more until stderr
	// takes the entry, or the line that says why it was not sent.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		taken := len(s.queue) == 0 && len(s.inFlight) > 0
		s.mu.Unlock()
		if taken {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sender did not take the first entry in 30 s")
		}
	}
	var before [logrus.TraceLevel + 1]uint64
	for _, lv := range logrus.AllLevels {
		before[lv] = DroppedAt(lv)
	}
	for i := range QueueLen {
		l.WithField("i", i).Info("routine")
	}
	l.Error("audit log append failed") // instead of i=0
	l.Info("newest info")              // dropped
	l.Warn("a warning")                // instead of i=1
	for i := range QueueLen - 2 {      // instead of i=2...
		l.WithField("w", i).Warn("busy") // ...and the rest
	}
	l.Error("one error too many") // dropped: nothing below warning is queued
	want := map[logrus.Level]uint64{logrus.InfoLevel: QueueLen + 1, logrus.ErrorLevel: 1}
	for _, lv := range logrus.AllLevels {
		if got := DroppedAt(lv) - before[lv]; got != want[lv] {
			t.Errorf("%d %s entries dropped, want %d", got, lv, want[lv])
		}
	}

	stderr.Release()
	waitIdle(t, s)
	st := stderr.String()
	note := regexp.MustCompile(`msg="diagnostics dropped: the queue to tcp://[^ ]* was full" dropped=([0-9]+)`).FindStringSubmatchIndex(st)
	failed := strings.Index(st, `msg="audit log append failed"`)
	switch {
	case note == nil || st[note[2]:note[3]] != strconv.Itoa(QueueLen+2):
		t.Errorf("no note of %d entries dropped:\n%.3000s", QueueLen+2, st)
	case failed < 0 || failed < note[0] || !strings.Contains(st, `msg="a warning"`) || strings.Count(st, `msg=busy`) != QueueLen-2:
		t.Errorf("the error, the warning or the %d others kept are not on stderr after the note:\n%.3000s", QueueLen-2, st)
	case strings.Contains(st, "msg=routine") || strings.Contains(st, "newest info") || strings.Contains(st, "one error too many"):
		t.Errorf("an entry dropped is on stderr:\n%.3000s", st)
	}
	if !strings.Contains(st, "msg=hold") || s.tries.Load() != 1 {
		t.Errorf("%d tries (want 1), the held entry on stderr %v", s.tries.Load(), strings.Contains(st, "msg=hold"))
	}
}
