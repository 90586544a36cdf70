package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/safefile"
	"github.com/nsrel/nsrel/internal/syslog"
	"golang.org/x/sys/unix"
)

// checkpointed returns a log that rotates every few records and emits a
// checkpoint after every record to a file, with n records appended, and
// the checkpoints.
func checkpointed(t *testing.T, n int, opts audit.Options) (*audit.Log, string, []audit.Checkpoint) {
	t.Helper()
	dir := t.TempDir()
	if opts.Checkpoints == nil {
		opts.Checkpoints = &audit.CheckpointOptions{EveryRecords: 1, File: filepath.Join(dir, "checkpoints.jsonl")}
	}
	opts.RotateBytes = 4096
	l, err := audit.Open(filepath.Join(dir, "audit.jsonl"), opts)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, n)
	return l, l.Path(), readCheckpoints(t, opts.Checkpoints.File)
}

func readCheckpoints(t *testing.T, file string) []audit.Checkpoint {
	t.Helper()
	var cs []audit.Checkpoint
	for c, err := range audit.ReadCheckpoints(file) {
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return cs
}

// testClock returns a clock that says start until tick moves it on.
func testClock(start time.Time) (clock func() time.Time, tick func(time.Duration)) {
	var mu sync.Mutex
	now := start
	return func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
		func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
}

// TestCheckpointsDetect checks that checkpoints shipped off the node
// catch what the chain alone cannot: records cut off the end, the
// current file deleted, and a chain rewritten whole (without a sealing
// key); and that they name the oldest rotated file's removal.
func TestCheckpointsDetect(t *testing.T) {
	l, path, cps := checkpointed(t, 40, audit.Options{})
	files, _ := l.Files()
	if len(cps) != 40 || len(files) < 4 {
		t.Fatalf("%d checkpoints, %d files", len(cps), len(files))
	}
	if s, err := verify(t, l, audit.VerifyOptions{Checkpoints: cps}); err != nil || s.Checkpoints != 40 {
		t.Fatalf("intact: %+v %v", s, err)
	}
	for _, tc := range []struct {
		name     string
		change   func(t *testing.T)
		chainToo bool // the chain alone catches it too
		partial  bool
		reason   string
	}{
		{"records cut off the end", func(t *testing.T) {
			lines := readLines(t, path)
			writeLines(t, path, lines[:len(lines)-2])
		}, false, false, "beyond the last record"},
		{"current file deleted", func(t *testing.T) { os.Remove(path) }, false, false, "beyond the last record"},
		{"newest rotated and current files deleted", func(t *testing.T) {
			os.Remove(path)
			os.Remove(files[len(files)-2])
		}, false, false, "beyond the last record"},
		{"rotated file deleted", func(t *testing.T) { os.Remove(files[1]) }, true, false, "expected seq"},
		{"oldest rotated file deleted", func(t *testing.T) { os.Remove(files[0]) }, true, true, "does not hold"},
		{"chain rewritten", func(t *testing.T) {
			lines := readLines(t, path)
			lines[1] = bytes.Replace(lines[1], []byte(`"verdict":"deny"`), []byte(`"verdict":"allow"`), 1)
			writeLines(t, path, rechain(t, lines, 1, nil))
		}, false, false, "the chain was rewritten"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, filepath.Dir(path), dir)
			orig := path
			path = filepath.Join(dir, filepath.Base(orig))
			files0 := files
			files = nil
			for _, f := range files0 {
				files = append(files, filepath.Join(dir, filepath.Base(f)))
			}
			defer func() { path, files = orig, files0 }()
			tc.change(t)
			cl, err := audit.Open(path, audit.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := verify(t, cl, audit.VerifyOptions{}); (err == nil) == tc.chainToo {
				t.Errorf("the chain alone: %v (caught expected: %v)", err, tc.chainToo)
			}
			// Even told the older files are gone on purpose (--partial),
			// the checkpoints show what was removed.
			opts := audit.VerifyOptions{Partial: tc.partial, Checkpoints: cps}
			_, err = verify(t, cl, opts)
			if err == nil || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("with the checkpoints: %v; want ...%s...", err, tc.reason)
			}
		})
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckpointTriggers checks when checkpoints are emitted: every N
// records, after T seconds, and not more often.
func TestCheckpointTriggers(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tick := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	file := filepath.Join(t.TempDir(), "cp.jsonl")
	l, _ := newLog(t, audit.Options{Now: clock, Checkpoints: &audit.CheckpointOptions{EveryRecords: 5, EverySeconds: 60, File: file}})
	appendN(t, l, 12) // the first append has no previous checkpoint: one at seq 1
	var seqs []uint64
	for _, c := range readCheckpoints(t, file) {
		seqs = append(seqs, c.Seq)
	}
	if want := []uint64{1, 6, 11}; !slicesEqual(seqs, want) {
		t.Errorf("by count: checkpoints at %v, want %v", seqs, want)
	}
	tick(30 * time.Second)
	appendN(t, l, 1)
	tick(31 * time.Second)
	appendN(t, l, 1)
	cps := readCheckpoints(t, file)
	if last := cps[len(cps)-1]; len(cps) != 4 || last.Seq != 14 || last.Time != now.Format(time.RFC3339Nano) {
		t.Errorf("by time: %+v", cps)
	}
	// Nothing appended: a long-lived writer still ships the head when
	// one is due, and not before.
	if err := l.CheckpointIfDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	tick(61 * time.Second)
	if err := l.CheckpointIfDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	cps = readCheckpoints(t, file)
	if last := cps[len(cps)-1]; len(cps) != 5 || last.Seq != 14 || last.Time != now.Format(time.RFC3339Nano) {
		t.Errorf("idle: %+v", cps)
	}
}

// TestCheckpointIfDueSealed: a quiet node's checkpoint (nothing appended)
// carries a checkpoint seal too, under the key the sealing state holds,
// and verify takes it; the sealing state is left as it was.
func TestCheckpointIfDueSealed(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	file := filepath.Join(t.TempDir(), "cp.jsonl")
	l, _, key := sealedLog(t, audit.Options{Host: "node-a", Now: clock, Checkpoints: &audit.CheckpointOptions{EveryRecords: 100, EverySeconds: 60, File: file}})
	appendN(t, l, 3)
	state, err := os.ReadFile(l.SealStateForTest())
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(61 * time.Second)
	mu.Unlock()
	if err := l.CheckpointIfDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	cps := readCheckpoints(t, file)
	last := cps[len(cps)-1]
	if len(cps) != 2 || last.Time != clock().Format(time.RFC3339Nano) || last.CheckpointSeal == "" {
		t.Fatalf("checkpoints %+v; want a second one, made now, with a checkpoint seal", cps)
	}
	if !audit.NewSealChecker([]audit.VerifyKey{key}).HeadSealed(last) {
		t.Errorf("the quiet node's checkpoint seal does not check: %+v", last)
	}
	if after, err := os.ReadFile(l.SealStateForTest()); err != nil || !bytes.Equal(after, state) {
		t.Errorf("the sealing state changed: %v", err)
	}
	if s, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: cps}); err != nil || s.Checkpoints != 2 {
		t.Errorf("verify: %v, %+v", err, s)
	}
}

// TestCheckpointWritesStateBehind: a crash after an append, before the
// sealing state's write-back landed, leaves the state one key behind the
// log: the key of the last record stays on the disk, and with it root
// later could replace that record, or cut it and let the next append
// reuse its seq and key, without verify noticing. On a quiet node no
// append destroys it; the checkpoint of the timer (CheckpointIfDue) did
// not either ("nothing is written to it"). It writes the state back now,
// as the append would have left it, and its checkpoint is sealed.
func TestCheckpointWritesStateBehind(t *testing.T) {
	clock, tick := testClock(time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC))
	file := filepath.Join(t.TempDir(), "cp.jsonl")
	l, _, key := sealedLog(t, audit.Options{Host: "node-a", Now: clock, Checkpoints: &audit.CheckpointOptions{EveryRecords: 100, EverySeconds: 60, File: file}})
	appendN(t, l, 4)
	before, err := os.ReadFile(l.SealStateForTest())
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 1)
	after, err := os.ReadFile(l.SealStateForTest())
	if err != nil {
		t.Fatal(err)
	}
	// The power loss: the log's fdatasync landed, the state's write did not.
	if err := os.WriteFile(l.SealStateForTest(), before, 0o600); err != nil {
		t.Fatal(err)
	}
	tick(61 * time.Second)
	if err := l.CheckpointIfDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(l.SealStateForTest()); err != nil || !bytes.Equal(got, after) {
		t.Errorf("the sealing state after the quiet node's checkpoint: %v; want it past the log's last record, as the append left it (the key that sealed seq 6 stays on the disk)", err)
	}
	cps := readCheckpoints(t, file)
	if last := cps[len(cps)-1]; !audit.NewSealChecker([]audit.VerifyKey{key}).HeadSealed(last) {
		t.Errorf("the checkpoint of a state written back is not sealed: %+v", last)
	}
	appendN(t, l, 1)
	if s, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: readCheckpoints(t, file)}); err != nil || s.SealsVerified != s.Sealed {
		t.Errorf("verify: %v, %+v", err, s)
	}
}

// TestCheckpointedTimeLatest: a quiet node's timer checkpoints the same
// head again and again; verify's "last checkpoint" is the latest of them
// (it gave the first, 61 s earlier here), since the records after it
// came after that time.
func TestCheckpointedTimeLatest(t *testing.T) {
	clock, tick := testClock(time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC))
	file := filepath.Join(t.TempDir(), "cp.jsonl")
	l, _ := newLog(t, audit.Options{Host: "node-a", Now: clock, Checkpoints: &audit.CheckpointOptions{EveryRecords: 100, EverySeconds: 60, File: file}})
	appendN(t, l, 3)
	for range 2 {
		tick(61 * time.Second)
		if err := l.CheckpointIfDue(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	appendN(t, l, 2)
	cps := readCheckpoints(t, file)
	latest := cps[len(cps)-1]
	if len(cps) != 3 || cps[1].Seq != latest.Seq {
		t.Fatalf("checkpoints %+v; want three, the last two of one head", cps)
	}
	s, err := verify(t, l, audit.VerifyOptions{Checkpoints: cps})
	if err != nil || s.CheckpointedSeq != latest.Seq || s.CheckpointedTime != latest.Time {
		t.Errorf("verify: %v; last checkpoint seq %d of %s, want seq %d of %s (the latest)", err, s.CheckpointedSeq, s.CheckpointedTime, latest.Seq, latest.Time)
	}
}

// TestCheckpointRetry: a checkpoint that reached no destination (a
// collector's TCP port nothing listens on) is tried again with the head
// of the chain RetryAfter later, not a whole every_seconds later; one
// that got through is not; checkpoints due by count only are not
// retried early.
func TestCheckpointRetry(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tick := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	// A port nothing listens on: connections are refused at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	// And one that takes whatever comes.
	open, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	go func() {
		for {
			c, err := open.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	for _, tc := range []struct {
		name         string
		everySeconds int
		dest         string
		want         []uint64 // the seqs of the checkpoints tried
	}{
		// Appends at +0, +10, +31, +62 and +93 s: seq 1 fails; seq 2
		// is not due yet; seq 3 is the retry, and fails; seq 4, 31 s
		// later, its retry, and seq 5 that one's.
		{"by time", 300, closed, []uint64{1, 3, 4, 5}},
		{"by count only", 0, closed, []uint64{1}},
		{"shipped", 300, open.Addr().String(), []uint64{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tried []uint64
			opts := audit.Options{Now: clock, Warn: func(error) {}, Checkpoints: &audit.CheckpointOptions{
				EveryRecords: 100, EverySeconds: tc.everySeconds,
				Syslog: []syslog.Dest{{Network: "tcp", Address: tc.dest}},
				Sent: func(c *audit.Checkpoint, kind string, err error) {
					if (err == nil) != (tc.dest != closed) {
						t.Errorf("seq %d to %s: %v", c.Seq, tc.dest, err)
					}
					tried = append(tried, c.Seq)
				},
			}}
			l, _ := newLog(t, opts)
			for _, d := range []time.Duration{0, 10 * time.Second, 21 * time.Second, 31 * time.Second, 31 * time.Second} {
				tick(d)
				appendN(t, l, 1)
			}
			if !slicesEqual(tried, tc.want) {
				t.Errorf("checkpoints tried at seq %v, want %v", tried, tc.want)
			}
		})
	}
}

// TestCheckpointClockBack: a checkpoint made while the clock was ahead
// (a wrong RTC before NTP set it) left a last checkpoint time in the
// future, and none was due by time, at appends or on a quiet node
// (CheckpointIfDue), until the clock passed it again: 48 hours of
// records unpinned here. The next is due at once now, then every
// every_seconds again.
func TestCheckpointClockBack(t *testing.T) {
	now := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC) // ahead
	clock := func() time.Time { return now }
	var made []uint64
	l, _ := newLog(t, audit.Options{Now: clock, Warn: func(error) {}, Checkpoints: &audit.CheckpointOptions{
		EveryRecords: 1000, EverySeconds: 300, File: filepath.Join(t.TempDir(), "ckpt.jsonl"),
		Sent: func(c *audit.Checkpoint, kind string, err error) {
			if err != nil {
				t.Errorf("checkpoint seq %d: %v", c.Seq, err)
			}
			made = append(made, c.Seq)
		}}})
	appendN(t, l, 1)                                   // the first: always
	now = time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC) // set right
	appendN(t, l, 1)                                   // due at once
	now = now.Add(10 * time.Second)
	appendN(t, l, 1) // not yet
	now = now.Add(300 * time.Second)
	appendN(t, l, 1) // due by time
	if want := []uint64{1, 2, 4}; !slicesEqual(made, want) {
		t.Errorf("checkpoints at appends: seqs %v, want %v", made, want)
	}

	// On a quiet node: CheckpointIfDue.
	made = nil
	now = time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC)
	appendN(t, l, 1) // seq 5, due by time, made ahead
	now = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	for range 2 { // due at once, then not for every_seconds
		if err := l.CheckpointIfDue(context.Background()); err != nil {
			t.Fatal(err)
		}
		now = now.Add(10 * time.Second)
	}
	if want := []uint64{5, 5}; !slicesEqual(made, want) {
		t.Errorf("checkpoints on a quiet node: seqs %v, want %v", made, want)
	}
}

// TestCheckpointSyslogUntrusted: a checkpoints syslog destination that
// is a socket in a directory another user owns, or one another user
// bound, is refused as a checkpoints file there is (the checkpoint is
// not sent, and not counted as shipped): whoever bound it received the
// checkpoints and could swallow them, and they counted as shipped.
func TestCheckpointSyslogUntrusted(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	theirs := filepath.Join(dir, "theirs")
	if err := os.Mkdir(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	var conns []net.PacketConn
	for _, p := range []string{filepath.Join(theirs, "log.sock"), filepath.Join(dir, "bound.sock"), filepath.Join(dir, "log.sock")} {
		c, err := net.ListenPacket("unixgram", p)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(dir, "bound.sock"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name string
		ok   bool
	}{{"in another user's directory", false}, {"bound by another user", false}, {"trusted", true}} {
		t.Run(tc.name, func(t *testing.T) {
			addr := conns[i].LocalAddr().String()
			var sent []error
			shipped := 0
			l, _ := newLog(t, audit.Options{Warn: func(error) {}, Checkpoints: &audit.CheckpointOptions{EveryRecords: 1,
				Syslog:  []syslog.Dest{{Network: "unixgram", Address: addr}},
				Sent:    func(c *audit.Checkpoint, kind string, err error) { sent = append(sent, err) },
				Shipped: func(*audit.Checkpoint) { shipped++ },
			}})
			appendN(t, l, 1)
			conns[i].SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			_, _, rerr := conns[i].ReadFrom(make([]byte, 4096))
			if len(sent) != 1 || (sent[0] == nil) != tc.ok || (!tc.ok && !errors.Is(sent[0], safefile.ErrUntrusted)) || (shipped == 1) != tc.ok || (rerr == nil) != tc.ok {
				t.Errorf("%s: sent %v, shipped %d, received %v; want ok %v", addr, sent, shipped, rerr == nil, tc.ok)
			}
		})
	}
}

// TestCheckpointFileUntrusted: the checkpoint file is what shippers
// read off the node: in a directory others may write (a group-writable
// /var/log) or swap, or owned by someone else, it is not written (the
// append still succeeds and warns); a trusted one is.
func TestCheckpointFileUntrusted(t *testing.T) {
	nstest.RequireRoot(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) string // the checkpoint file
		ok    bool
	}{
		{"trusted", func(t *testing.T, dir string) string { return filepath.Join(dir, "ck", "cp.jsonl") }, true},
		{"in a directory its group may write", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "varlog")
			os.Mkdir(d, 0o775)
			os.Chmod(d, 0o775)
			return filepath.Join(d, "cp.jsonl")
		}, false},
		{"owned by another user", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "cp.jsonl")
			os.WriteFile(p, nil, 0o666)
			os.Chown(p, 65534, 65534)
			return p
		}, false},
		{"its lock readable by others", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "cp.jsonl")
			os.WriteFile(p+".lock", nil, 0o644)
			return p
		}, false},
		{"behind another user's symlink", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "tmp")
			os.Mkdir(d, 0o777)
			os.Chmod(d, os.ModeSticky|0o777)
			l := filepath.Join(d, "ck")
			os.Symlink(filepath.Join(dir, "elsewhere"), l)
			os.Lchown(l, 65534, 65534)
			os.Mkdir(filepath.Join(dir, "elsewhere"), 0o700)
			return filepath.Join(l, "cp.jsonl")
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := tc.setup(t, dir)
			var warned []error
			l, _ := newLog(t, audit.Options{Warn: func(err error) { warned = append(warned, err) },
				Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: file}})
			appendN(t, l, 2)
			data, _ := os.ReadFile(file)
			if tc.ok != (len(data) > 0) || tc.ok != (len(warned) == 0) {
				t.Errorf("checkpoint file %q, warnings %v; want it written: %v", data, warned, tc.ok)
			}
			if !tc.ok && (len(warned) == 0 || !errors.Is(warned[0], safefile.ErrUntrusted)) {
				t.Errorf("warnings %v; want the file refused as not trusted", warned)
			}
			if entries, _ := os.ReadDir(filepath.Join(dir, "elsewhere")); len(entries) != 0 {
				t.Errorf("written behind the symlink: %v", entries)
			}
		})
	}
}

// TestCheckpointFileReadByOthers: a checkpoints file others may read (as
// a shipper reading it as its own user needs: rsyslog runs as user
// syslog on Ubuntu) is appended to although one of them holds a shared
// flock(2) of it: writers lock PATH.lock, which nobody else may read.
// Locking the file itself, every shipment waited out its second and no
// checkpoint reached the file.
func TestCheckpointFileReadByOthers(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireCmd(t, "setpriv")
	nstest.RequireCmd(t, "flock")
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cp := filepath.Join(dir, "cp.jsonl")
	if err := os.WriteFile(cp, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(cp, 0, 65534); err != nil {
		t.Fatal(err)
	}
	// One process (flock(1) would fork its command, and a kill of flock
	// left the sleep holding the lock): the shell takes the lock itself.
	holder := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"sh", "-c", `exec 9<"$0" && flock -s 9 && echo locked && exec sleep 60`, cp)
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatalf("the holder did not take its lock: %v", err)
	}
	var warned []error
	l, _ := newLog(t, audit.Options{Warn: func(err error) { warned = append(warned, err) },
		Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: cp}})
	appendN(t, l, 3)
	if n := len(readCheckpoints(t, cp)); n != 3 || len(warned) != 0 {
		t.Errorf("%d checkpoints in the file, warnings %v; want 3 and none: a reader's lock of the file stopped them", n, warned)
	}
}

// TestCheckpointStateUntrusted: the checkpoint state (AUDIT_LOG.checkpoint)
// says when the next checkpoint is due; one another user may write (a
// wrong owner or mode) could hold every checkpoint back, a last one of a
// later seq and time. It was believed: now it is neither believed nor
// written, each append emits a checkpoint and warns.
func TestCheckpointStateUntrusted(t *testing.T) {
	nstest.RequireRoot(t)
	cp := filepath.Join(t.TempDir(), "cp.jsonl")
	var warned []error
	l, path := newLog(t, audit.Options{Warn: func(err error) { warned = append(warned, err) },
		Checkpoints: &audit.CheckpointOptions{EveryRecords: 1000, EverySeconds: 3600, File: cp}})
	appendN(t, l, 1) // the first record's checkpoint
	state := path + ".checkpoint"
	held := `{"type":"nsrel-checkpoint","format":"1.1","host":"vm","log":"` + path + `","seq":999,"hash":"00","time":"2999-01-01T00:00:00Z"}` + "\n"
	if err := os.WriteFile(state, []byte(held), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(state, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(state, 0o666); err != nil {
		t.Fatal(err)
	}
	warned = nil
	appendN(t, l, 2)
	if n := len(readCheckpoints(t, cp)); n != 3 {
		t.Errorf("%d checkpoints; want 3 (the first record's, then one per append beside a state others may write)", n)
	}
	if len(warned) != 2 || !errors.Is(warned[0], safefile.ErrUntrusted) {
		t.Errorf("warnings %v; want the state refused at each append", warned)
	}
	if data, _ := os.ReadFile(state); string(data) != held {
		t.Errorf("the state others may write was written: %q", data)
	}
}

// TestCheckpointStateLongPath: the checkpoint state holds a line that
// names the log; with a path near PATH_MAX the line was longer than the
// 4096 bytes read of it, did not parse, and every append emitted a
// checkpoint.
func TestCheckpointStateLongPath(t *testing.T) {
	dir := t.TempDir()
	for len(dir) < 3800 {
		dir = filepath.Join(dir, strings.Repeat("d", 250))
	}
	dir = filepath.Join(dir, strings.Repeat("e", 4040-len(dir)))
	path := filepath.Join(dir, "audit.jsonl")
	cp := filepath.Join(t.TempDir(), "cp.jsonl")
	l, err := audit.Open(path, audit.Options{Checkpoints: &audit.CheckpointOptions{EveryRecords: 3, File: cp}})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 5)
	var seqs []uint64
	for _, c := range readCheckpoints(t, cp) {
		seqs = append(seqs, c.Seq)
	}
	if !slices.Equal(seqs, []uint64{1, 4}) {
		t.Errorf("checkpoints of seq %v; want 1 and 4 (every 3 records) with a log path of %d bytes", seqs, len(path))
	}
}

// TestCheckpointIfDueUntrustedCurrent: CheckpointIfDue (the recorder's and
// the NRI plugin's every 30 s) checkpointed the last record of a current
// file another user may write, which appends refuse: a record planted
// there got a checkpoint off the node vouching for it.
func TestCheckpointIfDueUntrustedCurrent(t *testing.T) {
	nstest.RequireRoot(t)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cp := filepath.Join(t.TempDir(), "cp.jsonl")
	l, path := newLog(t, audit.Options{Now: clock, Checkpoints: &audit.CheckpointOptions{EveryRecords: 1000, EverySeconds: 60, File: cp}})
	appendN(t, l, 2)
	untrust(t, path)
	planted := rec("planted")
	planted.Seq = 3
	plant(t, path, planted)
	if err := l.Append(context.Background(), rec("x")); !errors.Is(err, safefile.ErrUntrusted) {
		t.Fatalf("append to a current file others may write: %v; want it refused", err)
	}
	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	err := l.CheckpointIfDue(context.Background())
	if !errors.Is(err, safefile.ErrUntrusted) {
		t.Errorf("CheckpointIfDue: %v; want the current file refused", err)
	}
	for _, c := range readCheckpoints(t, cp) {
		if c.Seq == 3 {
			t.Errorf("a checkpoint of seq 3, planted in a current file others may write: %+v", c)
		}
	}
}

// TestCheckpointLogRelabelled: root on the node after T cuts records
// off the end of a log, moves it to a new path and names that path in a
// checkpoint of its own (forged, or a genuine one with its "log"
// changed, which its seal does not cover). The genuine checkpoints of
// the old path must still judge the log: with the key, by their seals
// whatever path they name; without, verify asks which log is meant
// rather than picking by the log's own path (which set the genuine
// ones aside as another log's, and passed).
func TestCheckpointLogRelabelled(t *testing.T) {
	cpFile := filepath.Join(t.TempDir(), "cp.jsonl")
	l, path, key := sealedLog(t, audit.Options{Host: "node-a", Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: cpFile}})
	appendN(t, l, 8)
	genuine := readCheckpoints(t, cpFile)
	moved := filepath.Join(t.TempDir(), "moved.jsonl")
	writeLines(t, moved, readLines(t, path)[:5]) // seq 1 to 5 of 9
	relabelled := genuine[4]                     // seq 5, the new last record
	relabelled.Log = moved
	stripped := relabelled // its record seal genuine, its checkpoint seal dropped (as format 1.0)
	stripped.CheckpointSeal = ""
	_, _, otherKey := sealedLog(t, audit.Options{Host: "node-a"})
	forged := audit.Checkpoint{Host: "node-a", Log: moved, Seq: 5, Hash: relabelled.Hash}
	for _, tc := range []struct {
		name string
		opts audit.VerifyOptions
		want string
	}{
		{"with the key, a relabelled genuine one", audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: append(append([]audit.Checkpoint{}, genuine...), relabelled)}, "beyond the last record"},
		{"with the key, a forged one", audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: append(append([]audit.Checkpoint{}, genuine...), forged)}, "beyond the last record"},
		{"without the key", audit.VerifyOptions{Checkpoints: append(append([]audit.Checkpoint{}, genuine...), forged)}, "the checkpoints name 2 logs"},
		{"without the key, the old path named", audit.VerifyOptions{CheckpointLog: path, Checkpoints: append(append([]audit.Checkpoint{}, genuine...), forged)}, "beyond the last record"},
		// The path named sets aside no checkpoint a given key seals:
		// the genuine ones of the old path judge the log all the same
		// (they were set aside, and the cut log passed).
		{"with the key, the new path named, a forged one", audit.VerifyOptions{Keys: []audit.VerifyKey{key}, CheckpointLog: moved, Checkpoints: append(append([]audit.Checkpoint{}, genuine...), forged)}, "beyond the last record"},
		{"with the key, the new path named, a relabelled one", audit.VerifyOptions{Keys: []audit.VerifyKey{key}, CheckpointLog: moved, Checkpoints: append(append([]audit.Checkpoint{}, genuine...), relabelled)}, "beyond the last record"},
		{"with the key, the new path named, a stripped one", audit.VerifyOptions{Keys: []audit.VerifyKey{key}, CheckpointLog: moved, Checkpoints: append(append([]audit.Checkpoint{}, genuine...), stripped)}, "beyond the last record"},
		{"with the key and another's, the new path named", audit.VerifyOptions{Keys: []audit.VerifyKey{key, otherKey}, CheckpointLog: moved, Checkpoints: append(append([]audit.Checkpoint{}, genuine...), stripped)}, "beyond the last record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := audit.Verify([]string{moved}, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v; want a failure saying %q", err, tc.want)
			}
		})
	}
}

// TestVerifyEmptiedWithKey: root on the node after T empties a sealed
// log (or writes it again without records). With keys given, a log
// without records has no seal, and fails as a log without seals does
// (it passed, 0 records, and said its checkpoints sealed though there
// were none); without keys it is an empty chain. Checkpoints are said
// sealed only when some were counted.
func TestVerifyEmptiedWithKey(t *testing.T) {
	l, path, key := sealedLog(t, audit.Options{Host: "node-a"})
	appendN(t, l, 3)
	s, err := audit.Verify([]string{path}, audit.VerifyOptions{Keys: []audit.VerifyKey{key}})
	if err != nil || s.CheckpointsSealed {
		t.Errorf("sealed log, no checkpoints: %v, checkpoints sealed %v; want it to pass, and no checkpoints said sealed", err, s.CheckpointsSealed)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	s, err = audit.Verify([]string{path}, audit.VerifyOptions{Keys: []audit.VerifyKey{key}})
	var p *audit.Problem
	if !errors.As(err, &p) || p.File != path || !strings.Contains(p.Reason, "no record, though verification keys were given") || s.CheckpointsSealed {
		t.Errorf("emptied, with the key: %v, checkpoints sealed %v; want a problem of %s saying no record though keys were given", err, s.CheckpointsSealed, path)
	}
	if s, err := audit.Verify([]string{path}, audit.VerifyOptions{}); err != nil || s.Records != 0 {
		t.Errorf("emptied, without a key: %v, %+v; want an empty chain", err, s)
	}
}

// TestCheckpointsKeyReplacedThenCut: root on the node after T removes
// every record after a seal-init --replace (all that the new key sealed),
// which leaves a consistent chain sealed by the old key alone. The
// genuine checkpoints sealed by the new key must still judge it, alone
// and among a collector's nodes: they were set aside as another log's
// (or node's), since no record left in the chain carries that key, and
// verify passed.
func TestCheckpointsKeyReplacedThenCut(t *testing.T) {
	cpFile := filepath.Join(t.TempDir(), "cp.jsonl")
	l, path, k1 := sealedLog(t, audit.Options{Host: "node-a", Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: cpFile}})
	appendN(t, l, 3)
	k2, _, err := l.StartSealing(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 3)
	lines := readLines(t, path)
	cut := filepath.Join(t.TempDir(), "audit.jsonl")
	writeLines(t, cut, lines[:5]) // the first seal-start, three records and the seal-end: K1's
	cps := readCheckpoints(t, cpFile)
	keys := []audit.VerifyKey{k1, k2}
	if _, err := audit.Verify([]string{path}, audit.VerifyOptions{Keys: keys, Checkpoints: cps}); err != nil {
		t.Fatalf("the whole log: %v", err)
	}
	// A collector's other node, sealed by a key of its own.
	_, opath, okey := sealedLog(t, audit.Options{Host: "node-b"})
	others, err := audit.ChainKeys(opath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts audit.VerifyOptions
	}{
		{"alone", audit.VerifyOptions{Keys: keys, Checkpoints: cps}},
		{"among nodes", audit.VerifyOptions{Keys: append(keys, okey), KeysOfOthers: true, OtherChainKey: func(id audit.SealID) bool { return others[id] }, Checkpoints: cps}},
		// A line added to the collector's stream under another host
		// carries a seal of the cut-off key: it must not make that key
		// another node's.
		{"among nodes, the key stolen", audit.VerifyOptions{Keys: append(keys, okey), KeysOfOthers: true,
			OtherChainKey: func(id audit.SealID) bool { return id == okey.ID || id == k2.ID }, Checkpoints: cps}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The key's node as the checkpoint seal names it, unless
			// lines of another node carry the key (then either).
			want := "seals no record left in the log, and its checkpoint seal shows that node node-a wrote it"
			if tc.opts.OtherChainKey != nil && tc.opts.OtherChainKey(k2.ID) {
				want = "this node's records sealed by that key were cut off, or whoever held the key on the other node"
			}
			if _, err := audit.Verify([]string{cut}, tc.opts); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%v; want the cut found: %s", err, want)
			}
			// Of format 1.0 (no checkpoint seal), the checkpoints may
			// also be another log's or node's.
			o := tc.opts
			o.Checkpoints = nil
			for _, c := range cps {
				c.CheckpointSeal = ""
				o.Checkpoints = append(o.Checkpoints, c)
			}
			if _, err := audit.Verify([]string{cut}, o); err == nil || !strings.Contains(err.Error(), "seals no record left in the log: the records it sealed were cut off") {
				t.Errorf("format 1.0: %v; want the cut found", err)
			}
		})
	}
}

// TestCheckpointsOldKeyRetained: a genuine log whose first key's records
// retention removed (seal-init --replace, then the files they were in
// rotated away) verifies with both keys and every checkpoint: the first
// key's checkpoints name records retention accounts for, not records
// cut off.
func TestCheckpointsOldKeyRetained(t *testing.T) {
	cpFile := filepath.Join(t.TempDir(), "cp.jsonl")
	l, _, k1 := sealedLog(t, audit.Options{Host: "node-a", RotateBytes: 4096, KeepFiles: 2,
		Checkpoints: &audit.CheckpointOptions{EveryRecords: 3, File: cpFile}})
	appendN(t, l, 10)
	k2, _, err := l.StartSealing(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 80)
	files, err := l.Files()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := audit.ChainKeys(files...)
	if err != nil || keys[k1.ID] || !keys[k2.ID] {
		t.Fatalf("the keys left in the log: %v, %v; want the second only (the test's premise)", keys, err)
	}
	s, err := audit.Verify(files, audit.VerifyOptions{Keys: []audit.VerifyKey{k1, k2}, Checkpoints: readCheckpoints(t, cpFile)})
	if err != nil || !s.CheckpointsSealed {
		t.Errorf("%v, %+v", err, s)
	}
}

func slicesEqual(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCheckpointSyslog receives checkpoints on a local datagram socket
// and over TCP, as RFC 5424 messages whose MSG is the checkpoint's line.
func TestCheckpointSyslog(t *testing.T) {
	sock, uconn := listenDgram(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tcpMsgs := make(chan string, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			n, err := br.ReadString(' ')
			if err == nil {
				size, _ := strconv.Atoi(strings.TrimSpace(n))
				buf := make([]byte, size)
				if _, err := io.ReadFull(br, buf); err == nil {
					tcpMsgs <- string(buf)
				}
			}
			c.Close()
		}
	}()
	l, _ := newLog(t, audit.Options{Host: "node-a", Checkpoints: &audit.CheckpointOptions{EveryRecords: 2,
		Syslog: []syslog.Dest{{Network: "unixgram", Address: sock}, {Network: "tcp", Address: ln.Addr().String()}}}})
	recs := appendN(t, l, 1)
	buf := make([]byte, 4096)
	uconn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := uconn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var tcpMsg string
	select {
	case tcpMsg = <-tcpMsgs:
	case <-time.After(10 * time.Second):
		t.Fatal("no checkpoint over TCP")
	}
	for name, msg := range map[string]string{"unix": string(buf[:n]), "tcp": tcpMsg} {
		if !strings.HasPrefix(msg, "<86>1 ") || !strings.Contains(msg, " node-a nsrel ") || !strings.Contains(msg, " checkpoint - {") {
			t.Errorf("%s: not an RFC 5424 checkpoint message: %q", name, msg)
		}
		c, ok := audit.ParseCheckpoint([]byte(msg))
		if !ok || c.Seq != 1 || c.Hash != recs[0].Hash || c.Host != "node-a" || c.Log != l.Path() {
			t.Errorf("%s: checkpoint %+v (ok %v)", name, c, ok)
		}
	}
}

// TestRetention keeps two rotated files: older ones are removed by the
// append that rotates, which records each removal and emits a checkpoint;
// the chain stays verifiable without --partial, with the checkpoints of
// what was removed too.
func TestRetention(t *testing.T) {
	dir := t.TempDir()
	cpFile := filepath.Join(dir, "cp.jsonl")
	l, err := audit.Open(filepath.Join(dir, "audit.jsonl"), audit.Options{RotateBytes: 4096, KeepFiles: 2,
		Checkpoints: &audit.CheckpointOptions{EveryRecords: 1000, File: cpFile}})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 60)
	files, _ := l.Files()
	if len(files) != 3 {
		t.Errorf("files %v, want 2 rotated and the current one", files)
	}
	cps := readCheckpoints(t, cpFile)
	s, err := verify(t, l, audit.VerifyOptions{Checkpoints: cps})
	if err != nil || len(s.Dropped) == 0 || s.FirstSeq == 1 {
		t.Fatalf("after retention: %+v, %v", s, err)
	}
	if len(cps) < len(s.Dropped)+1 {
		t.Errorf("%d checkpoints for %d removals", len(cps), len(s.Dropped))
	}
	for i, d := range s.Dropped {
		if i > 0 && d.FirstSeq != s.Dropped[i-1].LastSeq+1 {
			t.Errorf("removals %+v do not follow each other", s.Dropped)
		}
	}
	// Removing a kept file by hand is not retention.
	os.Remove(files[0])
	if _, err := verify(t, l, audit.VerifyOptions{}); err == nil {
		t.Error("a file removed by hand passed")
	}
	var p *audit.Problem
	if _, err := verify(t, l, audit.VerifyOptions{Partial: true, Checkpoints: cps}); err != nil && !errors.As(err, &p) {
		t.Errorf("partial: %v", err)
	}
}

// TestCheckpointsNotSkipped checks that every checkpoint given is held
// against the log, whatever host the log's records name: an emptied log
// and a log whose last record names another host fail; a collector's
// mixed stream must be narrowed to one host first.
func TestCheckpointsNotSkipped(t *testing.T) {
	l, path, cps := checkpointed(t, 6, audit.Options{Host: "node-a"})
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	files, _ := l.Files()
	for _, f := range files[:len(files)-1] {
		os.Remove(f)
	}
	if _, err := verify(t, l, audit.VerifyOptions{Checkpoints: cps}); err == nil || !strings.Contains(err.Error(), "beyond the last record") {
		t.Errorf("emptied log: %v", err)
	}
	mixed := append(append([]audit.Checkpoint{}, cps...), audit.Checkpoint{Host: "node-b", Seq: 1, Hash: strings.Repeat("a", 64)})
	if _, err := audit.CheckpointsOf(mixed, ""); err == nil || !strings.Contains(err.Error(), "node-a") {
		t.Errorf("mixed hosts without --host: %v", err)
	}
	if got, err := audit.CheckpointsOf(mixed, "node-a"); err != nil || len(got) != len(cps) {
		t.Errorf("node-a's: %d, %v", len(got), err)
	}
	if _, err := audit.CheckpointsOf(cps, "node-c"); err == nil {
		t.Error("no checkpoint of the host asked for: accepted")
	}
}

// TestCheckpointSeal checks that a checkpoint pins the seal too.
func TestCheckpointSeal(t *testing.T) {
	l, path, _ := sealedLog(t, audit.Options{Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: filepath.Join(t.TempDir(), "cp.jsonl")}})
	appendN(t, l, 2)
	_ = path
	cps := readCheckpoints(t, l.CheckpointsFileForTest())
	lines := readLines(t, path)
	i := len(lines) - 1
	last := lines[i]
	k := bytes.LastIndex(last, []byte(`"}`))
	// Another tag on the last record: a seal edit, the record untouched.
	c := last[k-1]
	last[k-1] = "0123456789abcdef"[(strings.IndexByte("0123456789abcdef", c)+1)%16]
	writeLines(t, path, lines)
	if _, err := verify(t, l, audit.VerifyOptions{Checkpoints: cps}); err == nil || !strings.Contains(err.Error(), "seal was changed") {
		t.Errorf("seal edit with checkpoints: %v", err)
	}
}

// TestDiskFullKeepsKeys fills a small file system: the appends that fail
// give their sealing keys back, so that once there is room the log goes
// on and verifies with the key.
func TestDiskFullKeepsKeys(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	opts := audit.Options{SealState: filepath.Join(dir, "audit.seal")}
	l, err := audit.Open(filepath.Join(dir, "audit.jsonl"), opts)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := l.StartSealing(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	f, _ := os.Create(filler)
	f.Write(make([]byte, 60<<10)) // whatever fits
	f.Close()
	failed := 0
	for i := range 30 {
		if err := l.Append(context.Background(), rec(fmt.Sprintf("full-%d", i))); err != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no append failed on a full file system")
	}
	os.Remove(filler)
	appendN(t, l, 3)
	s, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}})
	if err != nil || s.SealsVerified != s.Sealed {
		t.Errorf("after %d failed appends and room again: %+v, %v", failed, s, err)
	}
}

// TestShipInBackground appends through a log from ShipInBackground whose
// checkpoints go to the checkpoint file, a syslog server over TCP that
// never accepts (every connection hangs until syslog.Timeout) and one
// that refuses: every append returns at once, with its record durable,
// and the checkpoints are shipped afterwards, in order, each destination
// reported to Sent by kind. Shipping before the append returned made
// each append wait syslog.Timeout, the NRI plugin's answer with it. Stop
// waits for the queue, and a checkpoint still waiting when its context
// ends is reported as not shipped rather than lost without a word, the
// one under way too.
func TestShipInBackground(t *testing.T) {
	dir := t.TempDir()
	stuck := syslog.Dest{Network: "tcp", Address: nstest.StuckListener(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := syslog.Dest{Network: "tcp", Address: ln.Addr().String()}
	ln.Close()
	var mu sync.Mutex
	sent := map[string][]string{} // kind: "seq ok" or "seq failed"
	var warnings []error
	log, err := audit.Open(filepath.Join(dir, "audit.jsonl"), audit.Options{
		Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: filepath.Join(dir, "ckpt.jsonl"), Syslog: []syslog.Dest{stuck, refused},
			Sent: func(c *audit.Checkpoint, kind string, err error) {
				mu.Lock()
				defer mu.Unlock()
				sent[kind] = append(sent[kind], fmt.Sprintf("%d %v", c.Seq, err == nil))
			}},
		Warn: func(err error) { mu.Lock(); warnings = append(warnings, err); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	bg, stop := log.ShipInBackground()
	for i := range 3 {
		if err := bg.Append(context.Background(), &audit.Record{Source: "test", Stage: audit.StageStart, ContainerID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		// The append returned before its checkpoint went to the TCP
		// servers: the stuck one, first, holds it syslog.Timeout (1 s),
		// and the one that refuses comes after it. (Timed, the append
		// also held its fdatasync, which a loaded disk stretches.)
		mu.Lock()
		early := slices.ContainsFunc(sent[audit.DestTCP], func(s string) bool { return strings.HasPrefix(s, fmt.Sprint(i+1)+" ") })
		mu.Unlock()
		if early {
			t.Errorf("append %d returned after its checkpoint was sent to the TCP servers", i)
		}
		if data, _ := os.ReadFile(log.Path()); bytes.Count(data, []byte("\n")) != i+1 {
			t.Fatalf("%d records after append %d returned", bytes.Count(data, []byte("\n")), i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	stop(ctx)
	cancel()
	mu.Lock()
	want := map[string][]string{
		audit.DestFile: {"1 true", "2 true", "3 true"},
		audit.DestTCP:  {"1 false", "1 false", "2 false", "2 false", "3 false", "3 false"},
	}
	if fmt.Sprint(sent) != fmt.Sprint(want) {
		t.Errorf("sent %v, want %v", sent, want)
	}
	if len(warnings) != 6 {
		t.Errorf("%d warnings, want 6: %v", len(warnings), warnings)
	}
	sent, warnings = map[string][]string{}, nil
	mu.Unlock()

	// A checkpoint that waits behind a hung server when stop's context
	// ends is reported as not shipped.
	bg, stop = log.ShipInBackground()
	for i := range 2 {
		if err := bg.Append(context.Background(), &audit.Record{Source: "test", Stage: audit.StageStart, ContainerID: fmt.Sprint(i + 3)}); err != nil {
			t.Fatal(err)
		}
	}
	// Seq 4 is being shipped (its file written first, then the hung
	// server, for syslog.Timeout), seq 5 waits behind it: stop's
	// deadline comes while it does. Without this wait a goroutine that
	// was scheduled late had not taken seq 4 yet when stop gave up.
	waitSent(t, &mu, sent, audit.DestFile, "seq 4")
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	stop(ctx)
	cancel()
	// Seq 4, under way, gave up before stop returned (the process exits
	// next): its destinations not reached are reported, with why. It
	// went on after stop, unreported, before.
	mu.Lock()
	defer mu.Unlock()
	if got := sent[audit.DestFile]; len(got) != 2 || got[0] != "4 true" || got[1] != "5 false" {
		t.Errorf("file: %v; want seq 4 written, seq 5 reported as not shipped", got)
	}
	if got := sent[audit.DestTCP]; fmt.Sprint(got) != "[4 false 4 false 5 false 5 false]" {
		t.Errorf("tcp when stop returned: %v; want seq 4 and seq 5 reported as not shipped, twice each", got)
	}
	w := fmt.Sprint(warnings)
	if !strings.Contains(w, "checkpoint of seq 5 not shipped: the service stopped first") {
		t.Errorf("warnings %v; want one saying seq 5 was not shipped", warnings)
	}
	if strings.Count(w, "(the service stopped first)") != 2 {
		t.Errorf("warnings %v; want two saying seq 4 did not reach a TCP server because the service stopped", warnings)
	}
}

// TestCheckpointsForged mixes checkpoints anyone could write (a local
// user's logger(1) to the syslog socket the collector reads) with the
// genuine ones of a sealed log. Without a key they are taken at their
// word (the documented limit) and report tampering that did not happen;
// with the key only checkpoints whose seal checks judge the log, the
// others are listed with the reason, and the genuine ones still catch
// what root on the node did later.
func TestCheckpointsForged(t *testing.T) {
	dir := t.TempDir()
	l, path, key := sealedLog(t, audit.Options{Host: "node-a", Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: filepath.Join(dir, "cp.jsonl")}})
	appendN(t, l, 6)
	genuine := readCheckpoints(t, l.CheckpointsFileForTest())
	last := genuine[len(genuine)-1]
	if len(genuine) != 7 || last.Seq != 7 || last.Seal == "" {
		t.Fatalf("checkpoints %+v", genuine)
	}
	keys := []audit.VerifyKey{key}
	fake := func(seq uint64, hash, seal string) audit.Checkpoint {
		return audit.Checkpoint{Host: "node-a", Log: path, Seq: seq, Hash: hash, Seal: seal, Time: "2026-12-03T09:00:00Z"}
	}
	at := func(seq uint64) audit.Checkpoint { return genuine[seq-1] }
	withSeq := func(c audit.Checkpoint, seq uint64) audit.Checkpoint { c.Seq = seq; return c }
	// A copy without its checkpoint seal reads as a checkpoint of format
	// 1.0, whose seal covered the record's hash alone.
	bare := func(c audit.Checkpoint) audit.Checkpoint { c.CheckpointSeal = ""; return c }
	with := func(c audit.Checkpoint, f func(*audit.Checkpoint)) audit.Checkpoint { f(&c); return c }
	idAt := func(epoch uint64) string {
		return key.ID.String() + "." + strconv.FormatUint(epoch, 10) + "." + strings.Repeat("0", 64)
	}
	for _, tc := range []struct {
		name    string
		forged  audit.Checkpoint
		keyless string // what verify without the key reports
		reason  string // why verify with the key ignores it
	}{
		{"unsealed, beyond the end", fake(9999, strings.Repeat("a", 64), ""), "beyond the last record", audit.CheckpointNotSealed},
		{"unsealed, another hash", fake(3, strings.Repeat("b", 64), ""), "the chain was rewritten", audit.CheckpointNotSealed},
		{"a made-up key", fake(3, at(3).Hash, strings.Repeat("1", 16)+".2."+strings.Repeat("0", 64)), "", audit.CheckpointNotSealed},
		{"the key's ID, a made-up tag", fake(3, strings.Repeat("c", 64), idAt(2)), "the chain was rewritten", audit.CheckpointForged},
		{"the key's ID, beyond the end", fake(7000, strings.Repeat("c", 64), idAt(6999)), "beyond the last record", audit.CheckpointForged},
		{"a genuine one's seq changed", withSeq(at(4), 9999), "sealed again", audit.CheckpointAltered},
		{"a genuine one moved to another seq", withSeq(at(4), 5), "sealed again", audit.CheckpointAltered},
		{"a genuine one of format 1.0 moved", withSeq(bare(at(4)), 5), "sealed again", audit.CheckpointAltered},
		{"a genuine one's host changed", with(at(4), func(c *audit.Checkpoint) { c.Host = "node-b" }), "", audit.CheckpointHeadForged},
		{"a genuine one's log changed", with(at(4), func(c *audit.Checkpoint) { c.Log = "/elsewhere" }), "", audit.CheckpointHeadForged},
		{"a genuine one's time changed", with(at(4), func(c *audit.Checkpoint) { c.Time = "2030-01-01T00:00:00Z" }), "", audit.CheckpointHeadForged},
		{"a checkpoint seal of the wrong epoch", with(at(4), func(c *audit.Checkpoint) { c.CheckpointSeal = at(5).CheckpointSeal }), "", audit.CheckpointHeadForged},
		{"a checkpoint seal made up", with(at(4), func(c *audit.Checkpoint) { c.CheckpointSeal = idAt(4) }), "", audit.CheckpointHeadForged},
		{"a checkpoint seal that does not parse", with(at(4), func(c *audit.Checkpoint) { c.CheckpointSeal = "x" }), "", audit.CheckpointHeadForged},
		// The hash's bytes are the genuine one's, and checked against
		// its record seal; compared as written, it failed an intact
		// log (TestReadCheckpointsSkipsOtherLines).
		{"a genuine one's hash in upper case", bare(with(at(4), func(c *audit.Checkpoint) { c.Hash = strings.ToUpper(c.Hash) })), "the chain was rewritten", audit.CheckpointForged},
		{"the key's ID, epoch 2^62", fake(1<<62+1, strings.Repeat("d", 64), idAt(1<<62)), "beyond the last record", audit.CheckpointTooFar},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cps := append(append([]audit.Checkpoint{}, genuine...), tc.forged)
			_, err := verify(t, l, audit.VerifyOptions{Checkpoints: cps})
			if tc.keyless != "" && (err == nil || !strings.Contains(err.Error(), tc.keyless)) {
				t.Errorf("without the key: %v; want %q (checkpoints are not authenticated without it)", err, tc.keyless)
			}
			done := make(chan struct{})
			var s *audit.Summary
			go func() {
				defer close(done)
				s, err = verify(t, l, audit.VerifyOptions{Keys: keys, Checkpoints: cps})
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("verify still running after 10 s")
			}
			if err != nil || s.Checkpoints != len(genuine) || !s.CheckpointsSealed || len(s.IgnoredCheckpoints) != 1 ||
				s.IgnoredCheckpoints[0].Checkpoint != tc.forged || s.IgnoredCheckpoints[0].Reason != tc.reason {
				t.Errorf("with the key: %v, %d checkpoints, sealed %v, ignored %+v; want the genuine %d and the forged one ignored: %s",
					err, s.Checkpoints, s.CheckpointsSealed, s.IgnoredCheckpoints, len(genuine), tc.reason)
			}
		})
	}

	t.Run("only forged ones", func(t *testing.T) {
		_, err := verify(t, l, audit.VerifyOptions{Keys: keys, Checkpoints: []audit.Checkpoint{fake(9999, strings.Repeat("a", 64), "")}})
		if err == nil || !strings.Contains(err.Error(), "none of the 1 checkpoint(s) given can be used: "+audit.CheckpointNotSealed) {
			t.Errorf("%v", err)
		}
	})

	// Root on the node later cuts records off the end and forges
	// checkpoints of its own: the genuine ones still tell.
	t.Run("records cut off, forged checkpoints beside the genuine", func(t *testing.T) {
		cut := filepath.Join(t.TempDir(), "audit.jsonl")
		writeLines(t, cut, readLines(t, path)[:5])
		cps := append(append([]audit.Checkpoint{}, genuine...), fake(5, strings.Repeat("e", 64), ""), withSeq(at(3), 5))
		s, err := audit.Verify([]string{cut}, audit.VerifyOptions{Keys: keys, Checkpoints: cps})
		if err == nil || !strings.Contains(err.Error(), "names seq 6, beyond the last record (seq 5)") || len(s.IgnoredCheckpoints) != 2 {
			t.Errorf("%v, ignored %+v", err, s.IgnoredCheckpoints)
		}
	})

	// A collector's nodes, each verified alone with every node's key: a
	// checkpoint of another node, genuine there and relabelled with this
	// node's host, is ignored: its checkpoint seal does not check. One of
	// format 1.0 (no checkpoint seal: its host is not sealed) fails this
	// node, saying whose key it is: setting it aside by the key the other
	// node's lines carry let a line anyone adds steal the key of records
	// cut off this chain (see TestCheckpointsKeyReplacedThenCut).
	t.Run("another node's", func(t *testing.T) {
		ol, _, okey := sealedLog(t, audit.Options{Host: "node-b", Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: filepath.Join(t.TempDir(), "cp.jsonl")}})
		appendN(t, ol, 12)
		other := readCheckpoints(t, ol.CheckpointsFileForTest())[11]
		other.Host = "node-a"
		others, err := audit.ChainKeys(ol.Path())
		if err != nil || !others[okey.ID] {
			t.Fatalf("the other chain's keys: %v, %v", others, err)
		}
		opts := audit.VerifyOptions{Keys: []audit.VerifyKey{okey, key}, KeysOfOthers: true, OtherChainKey: func(id audit.SealID) bool { return others[id] }}
		opts.Checkpoints = append(append([]audit.Checkpoint{}, genuine...), other)
		s, err := verify(t, l, opts)
		if err != nil || len(s.IgnoredCheckpoints) != 1 || s.IgnoredCheckpoints[0].Reason != audit.CheckpointHeadForged {
			t.Errorf("%v, ignored %+v; want the relabelled checkpoint ignored: %s", err, s.IgnoredCheckpoints, audit.CheckpointHeadForged)
		}
		opts.Checkpoints = append(append([]audit.Checkpoint{}, genuine...), bare(other))
		_, err = verify(t, l, opts)
		if err == nil || !strings.Contains(err.Error(), "another node's relabelled with this node's host") {
			t.Errorf("%v; want a failure saying the checkpoint is another node's", err)
		}
		// A node none of whose keys is given fails: root could have
		// rewritten it under a key of its own.
		if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{okey}, KeysOfOthers: true, Checkpoints: genuine}); err == nil || !strings.Contains(err.Error(), "none of the keys given seals these records") {
			t.Errorf("without this node's key: %v", err)
		}
	})
}

// TestCheckpointsOfTwoLogs gives verify the checkpoints of two logs of
// one host (two configs with an audit log each), as a collector receives
// them in one stream. The other log's checkpoints judged this one, and
// reported it rewritten; now only this log's count: on the node, where
// and on a copy elsewhere, the log's path must be named (CheckpointLog:
// a checkpoint's "log" is not sealed, so the log's own path cannot pick,
// see TestCheckpointLogRelabelled); with a key, the seals pick, and a
// forged checkpoint naming another log does not make verify ask.
func TestCheckpointsOfTwoLogs(t *testing.T) {
	la, pathA, keyA := sealedLog(t, audit.Options{Host: "node-a", Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: filepath.Join(t.TempDir(), "cp.jsonl")}})
	appendN(t, la, 4)
	lb, pathB, keyB := sealedLog(t, audit.Options{Host: "node-a", Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: filepath.Join(t.TempDir(), "cp.jsonl")}})
	appendN(t, lb, 8)
	cpsA, cpsB := readCheckpoints(t, la.CheckpointsFileForTest()), readCheckpoints(t, lb.CheckpointsFileForTest())
	var mixed []audit.Checkpoint
	for i := range max(len(cpsA), len(cpsB)) {
		if i < len(cpsA) {
			mixed = append(mixed, cpsA[i])
		}
		if i < len(cpsB) {
			mixed = append(mixed, cpsB[i])
		}
	}
	if got, err := audit.CheckpointsOf(mixed, "node-a"); err != nil || len(got) != len(mixed) {
		t.Fatalf("one host's: %d, %v", len(got), err)
	}
	copyA := filepath.Join(t.TempDir(), "audit.jsonl")
	writeLines(t, copyA, readLines(t, pathA))
	ignoredB := func(s *audit.Summary, reason string) bool {
		if len(s.IgnoredCheckpoints) != len(cpsB) {
			return false
		}
		for _, c := range s.IgnoredCheckpoints {
			if c.Log != pathB || c.Reason != reason {
				return false
			}
		}
		return true
	}
	for _, tc := range []struct {
		name   string
		file   string
		opts   audit.VerifyOptions
		reason string // why it fails, "" for passes with B's ignored as of another log
	}{
		{"on the node", pathA, audit.VerifyOptions{}, "the checkpoints name 2 logs"},
		{"on the node, the log named", pathA, audit.VerifyOptions{CheckpointLog: pathA}, ""},
		{"a copy", copyA, audit.VerifyOptions{}, "the checkpoints name 2 logs"},
		{"a copy, the log named", copyA, audit.VerifyOptions{CheckpointLog: pathA}, ""},
		{"the other log named", copyA, audit.VerifyOptions{CheckpointLog: pathB}, "the chain was rewritten"},
		{"a log no checkpoint names", copyA, audit.VerifyOptions{CheckpointLog: "/nowhere"}, "none of the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Checkpoints = mixed
			s, err := audit.Verify([]string{tc.file}, tc.opts)
			switch {
			case tc.reason != "" && (err == nil || !strings.Contains(err.Error(), tc.reason)):
				t.Errorf("%v; want a failure saying %q", err, tc.reason)
			case tc.reason == "" && (err != nil || s.Checkpoints != len(cpsA) || !ignoredB(s, audit.CheckpointOtherLog)):
				t.Errorf("%v, %d checkpoints, ignored %+v; want A's %d, B's as another log's", err, s.Checkpoints, s.IgnoredCheckpoints, len(cpsA))
			}
		})
	}
	t.Run("both logs' keys", func(t *testing.T) {
		// B's checkpoints, sealed by a key given but none of A's
		// records, judge A (and fail it) unless --checkpoint-log names
		// A's path, which sets them aside; A's own, sealed by a key of
		// A's chain, judge it whatever path it names
		// (TestCheckpointLogRelabelled).
		keys := []audit.VerifyKey{keyA, keyB}
		if _, err := audit.Verify([]string{copyA}, audit.VerifyOptions{Keys: keys, Checkpoints: mixed}); err == nil || !strings.Contains(err.Error(), "give only this log's keys") {
			t.Errorf("without --checkpoint-log: %v; want a failure saying to give only this log's keys", err)
		}
		s, err := audit.Verify([]string{copyA}, audit.VerifyOptions{Keys: keys, Checkpoints: mixed, CheckpointLog: pathA})
		if err != nil || s.Checkpoints != len(cpsA) || !ignoredB(s, audit.CheckpointOtherLog) {
			t.Errorf("--checkpoint-log of A: %v, %+v", err, s)
		}
		s, err = audit.Verify([]string{copyA}, audit.VerifyOptions{Keys: []audit.VerifyKey{keyA}, Checkpoints: mixed, CheckpointLog: pathB})
		if err != nil || s.Checkpoints != len(cpsA) || !ignoredB(s, audit.CheckpointNotSealed) {
			t.Errorf("A's key, --checkpoint-log of B (A's own checkpoints judge it): %v, %+v", err, s)
		}
	})
	t.Run("a copy, with the key", func(t *testing.T) {
		// B's checkpoints are not sealed by A's key, nor is a forged
		// one naming a third log: A's are the only ones left.
		cps := append(append([]audit.Checkpoint{}, mixed...), audit.Checkpoint{Host: "node-a", Log: "/elsewhere", Seq: 2, Hash: strings.Repeat("a", 64)})
		s, err := audit.Verify([]string{copyA}, audit.VerifyOptions{Keys: []audit.VerifyKey{keyA}, Checkpoints: cps})
		if err != nil || s.Checkpoints != len(cpsA) || len(s.IgnoredCheckpoints) != len(cpsB)+1 || s.IgnoredCheckpoints[0].Reason != audit.CheckpointNotSealed {
			t.Errorf("%v, %d checkpoints, ignored %+v", err, s.Checkpoints, s.IgnoredCheckpoints)
		}
	})
}

// TestReadCheckpointsSkipsOtherLines checks that every checkpoint in a
// collector's file is read whatever else is in it: lines that are not
// checkpoints, syslog prefixes, and lines longer than MaxLine (anyone
// who reaches the collector can send one; it used to end the read with
// "token too long", so that no checkpoint of any node counted), at the
// end of the file too, with and without a final newline; and a copy
// of a genuine one with its hash in upper case, which a node never
// writes: read, it checked against the record's seal but, compared as
// written, failed an intact log.
func TestReadCheckpointsSkipsOtherLines(t *testing.T) {
	_, _, cps := checkpointed(t, 3, audit.Options{})
	if len(cps) != 3 {
		t.Fatalf("%d checkpoints", len(cps))
	}
	upper := cps[0]
	upper.Hash = strings.ToUpper(upper.Hash)
	long := strings.Repeat("x", audit.MaxLine+100)
	for _, tail := range []string{"", long, long + "\n", string(cps[2].Line()[:len(cps[2].Line())-1])} {
		var b bytes.Buffer
		b.WriteString("not a checkpoint\n")
		b.Write(upper.Line())
		b.Write(cps[0].Line())
		b.WriteString(long + "\n")
		b.WriteString(strings.Repeat("y", audit.MaxLine-1) + "\n")
		b.WriteString("2026-12-04T18:00:00Z node-a nsrel-checkpoints: ")
		b.Write(cps[1].Line())
		b.WriteString(`{"type":"nsrel-checkpoint","format":"1","host":` + strings.Repeat(" ", audit.MaxLine) + "\n")
		want := 2
		if tail != "" && tail[0] == '{' {
			want = 3
		}
		b.WriteString(tail)
		file := filepath.Join(t.TempDir(), "checkpoints.jsonl")
		if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		got := readCheckpoints(t, file)
		if len(got) != want {
			t.Errorf("tail of %d bytes: %d checkpoints read, want %d", len(tail), len(got), want)
			continue
		}
		for i, c := range got {
			if c != cps[i] {
				t.Errorf("checkpoint %d: %+v, want %+v", i, c, cps[i])
			}
		}
	}
}

// TestCheckpointNamesBounded gives verify 50000 checkpoints, each naming
// a log or a host of its own (anyone can add such lines to a collector's
// file): the failure names 8 and counts the rest, at once. Every name
// was listed (a failure of megabytes), and the logs were collected with
// a quadratic search.
func TestCheckpointNamesBounded(t *testing.T) {
	l, _ := newLog(t, audit.Options{})
	appendN(t, l, 2)
	var cs []audit.Checkpoint
	for i := range 50000 {
		cs = append(cs, audit.Checkpoint{Host: fmt.Sprintf("h%d", i), Log: fmt.Sprintf("/var/log/x%d.jsonl", i), Seq: 1, Hash: strings.Repeat("0", 64), Time: "2026-01-01T00:00:00Z"})
	}
	_, err := verify(t, l, audit.VerifyOptions{Checkpoints: cs})
	if err == nil || !strings.Contains(err.Error(), "the checkpoints name 50000 logs") || !strings.Contains(err.Error(), "and 49992 more") || len(err.Error()) > 2000 {
		t.Errorf("verify: %.300v (%d bytes)", err, len(fmt.Sprint(err)))
	}
	_, err = audit.CheckpointsOf(cs, "")
	if err == nil || !strings.Contains(err.Error(), "checkpoints of 50000 hosts") || len(err.Error()) > 2000 {
		t.Errorf("CheckpointsOf: %.300v (%d bytes)", err, len(fmt.Sprint(err)))
	}
}

// TestWarnAfterUnlock: the warnings of an append (here, a checkpoint
// state that cannot be opened) are given to Options.Warn once the log's
// lock is free: the hook's warnings go to its diagnostics, which may be a
// syslog server slow to take them, while other writers wait for the lock.
// Another writer appends from within Warn; it waited out its deadline
// when Warn was called under the lock.
func TestWarnAfterUnlock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	other, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var warned []error
	var inner error
	l, err := audit.Open(path, audit.Options{Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: filepath.Join(dir, "cp.jsonl")},
		Warn: func(err error) {
			warned = append(warned, err)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			inner = other.Append(ctx, rec("other"))
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path+".checkpoint", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), rec("c")); err != nil {
		t.Fatal(err)
	}
	if len(warned) == 0 || !strings.Contains(warned[0].Error(), "checkpoint state") {
		t.Fatalf("warnings %v; want the checkpoint state's", warned)
	}
	if inner != nil {
		t.Errorf("an append from within Warn: %v; want the lock free", inner)
	}
}

// TestSealChecker checks checkpoints one at a time, in any order: a
// node's own are sealed; one with its tag, hash or seal changed, or of a
// key not given, or claiming an epoch beyond MaxSealDerive, is not.
func TestSealChecker(t *testing.T) {
	dir := t.TempDir()
	l, _, key := sealedLog(t, audit.Options{Host: "node-a", Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: filepath.Join(dir, "cp.jsonl")}})
	appendN(t, l, 10)
	cps := readCheckpoints(t, l.CheckpointsFileForTest())
	if len(cps) < 10 {
		t.Fatalf("%d checkpoints", len(cps))
	}
	sc := audit.NewSealChecker([]audit.VerifyKey{key})
	for i := len(cps) - 1; i >= 0; i-- {
		if !sc.Sealed(cps[i]) {
			t.Errorf("checkpoint of seq %d (seal %s) not sealed", cps[i].Seq, cps[i].Seal)
		}
	}
	for i := range cps {
		if !sc.Sealed(cps[i]) {
			t.Errorf("checkpoint of seq %d not sealed the second time", cps[i].Seq)
		}
	}
	for i := len(cps) - 1; i >= 0; i-- {
		if cps[i].CheckpointSeal == "" || !sc.HeadSealed(cps[i]) {
			t.Errorf("checkpoint of seq %d (checkpoint seal %q) not head-sealed", cps[i].Seq, cps[i].CheckpointSeal)
		}
	}
	for name, change := range map[string]func(*audit.Checkpoint){
		"host":            func(c *audit.Checkpoint) { c.Host = "node-b" },
		"log":             func(c *audit.Checkpoint) { c.Log += ".1" },
		"seq":             func(c *audit.Checkpoint) { c.Seq++ },
		"time":            func(c *audit.Checkpoint) { c.Time = "2030-01-01T00:00:00Z" },
		"checkpoint seal": func(c *audit.Checkpoint) { c.CheckpointSeal = cps[4].CheckpointSeal },
		"none":            func(c *audit.Checkpoint) { c.CheckpointSeal = "" },
	} {
		c := cps[3]
		change(&c)
		if sc.HeadSealed(c) {
			t.Errorf("%s changed: head-sealed", name)
		}
		if !sc.Sealed(c) && name != "seq" {
			t.Errorf("%s changed: the record's seal no longer checks", name)
		}
	}
	bad := cps[3]
	bad.Hash = strings.Repeat("ab", 32)
	p, err := audit.ParseSeal(cps[3].Seal)
	if err != nil {
		t.Fatal(err)
	}
	far := cps[3]
	far.Seal = fmt.Sprintf("%s.%d.%x", p.ID, audit.MaxSealDerive+1, p.Tag)
	other := audit.NewSealChecker([]audit.VerifyKey{{ID: key.ID}})
	for name, ok := range map[string]bool{
		"hash changed":         sc.Sealed(bad),
		"beyond MaxSealDerive": sc.Sealed(far),
		"another key":          other.Sealed(cps[3]),
		"no seal":              sc.Sealed(audit.Checkpoint{Host: "x", Hash: cps[3].Hash}),
	} {
		if ok {
			t.Errorf("%s: taken as sealed", name)
		}
	}
}

// TestSealCheckerStride checks seals around the keys the checker keeps
// (every 256th), in decreasing and then increasing order.
func TestSealCheckerStride(t *testing.T) {
	state := filepath.Join(t.TempDir(), "audit.seal")
	key, err := audit.InitSeal(state, false)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	seal := audit.ForgeSealer(t, data) // the node's own keys, from its first state
	want := map[int]bool{0: true, 1: true, 255: true, 256: true, 257: true, 4095: true, 4096: true, 8191: true, 8192: true, 9000: true}
	var cps []audit.Checkpoint
	for e := 0; e <= 9000; e++ {
		hash := fmt.Sprintf("%064x", e)
		s := seal(uint64(e+1), hash)
		if want[e] {
			cps = append(cps, audit.Checkpoint{Host: "h", Seq: uint64(e + 1), Hash: hash, Seal: s})
		}
	}
	sc := audit.NewSealChecker([]audit.VerifyKey{key})
	for i := len(cps) - 1; i >= 0; i-- {
		if !sc.Sealed(cps[i]) {
			t.Errorf("seal %s not taken (decreasing)", cps[i].Seal)
		}
	}
	sc = audit.NewSealChecker([]audit.VerifyKey{key})
	for _, c := range cps {
		if !sc.Sealed(c) {
			t.Errorf("seal %s not taken (increasing)", c.Seal)
		}
	}
}

// TestCheckpointSealNonUTF8: a log whose path is not UTF-8 (the library
// takes any path) writes checkpoints whose line carries U+FFFD in its
// place: the checkpoint seal covers the line as read, so it checks.
func TestCheckpointSealNonUTF8(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "g-\xff")
	l, err := audit.Open(filepath.Join(dir, "audit.jsonl"), audit.Options{Host: "node-g", SealState: filepath.Join(dir, "state", "audit.seal"),
		Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: filepath.Join(dir, "cp.jsonl")}})
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := l.StartSealing(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2)
	cps := readCheckpoints(t, l.CheckpointsFileForTest())
	sc := audit.NewSealChecker([]audit.VerifyKey{key})
	for _, c := range cps {
		if !strings.Contains(c.Log, "\uFFFD") || !sc.HeadSealed(c) {
			t.Errorf("checkpoint of seq %d, log %q: head-sealed %v", c.Seq, c.Log, sc.HeadSealed(c))
		}
	}
	if _, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: cps}); err != nil {
		t.Errorf("verify: %v", err)
	}
}

// TestSealsShared: a checkpoint forged at a far epoch of a given key
// makes verify derive that key so far (up to a minute at MaxSealDerive).
// Verifies that share a SealChecker (--nodes: one per run) derive it
// once, not once per node and key.
func TestSealsShared(t *testing.T) {
	const far = 1 << 16
	la, _, ka := sealedLog(t, audit.Options{Host: "node-a", Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: filepath.Join(t.TempDir(), "cp.jsonl")}})
	lb, _, kb := sealedLog(t, audit.Options{Host: "node-b"})
	appendN(t, la, 2)
	appendN(t, lb, 2)
	keys := []audit.VerifyKey{ka, kb}
	seals := audit.NewSealChecker(keys)
	for _, l := range []*audit.Log{la, lb} {
		var cps []audit.Checkpoint
		for _, k := range keys {
			cps = append(cps, audit.Checkpoint{Host: "x", Log: "/x", Seq: far + 1, Hash: strings.Repeat("ab", 32),
				Seal: fmt.Sprintf("%s.%d.%s", k.ID, far, strings.Repeat("cd", 32)), Time: "2026-12-05T00:00:00Z"})
		}
		s, err := verify(t, l, audit.VerifyOptions{Keys: keys, KeysOfOthers: true, Checkpoints: cps, Seals: seals})
		if err == nil || len(s.IgnoredCheckpoints) != 2 || s.IgnoredCheckpoints[0].Reason != audit.CheckpointForged {
			t.Errorf("%s: %v, ignored %+v; want both forged checkpoints ignored (and none left to judge)", l.Path(), err, s.IgnoredCheckpoints)
		}
	}
	if n := seals.DerivedForTest(); n != 2*far {
		t.Errorf("%d keys derived for two logs and two keys; want %d: each key once", n, 2*far)
	}
	// A chain's own checkpoints (the newest a step beyond its records)
	// take their keys from the chain's, derived on: not from the shared
	// checker, which derives from the first key (twice the work) and
	// only up to an absolute epoch (a key past 2^26 records had its
	// genuine checkpoints ignored, and a cut passed).
	own := audit.NewSealChecker(keys)
	cps := readCheckpoints(t, la.CheckpointsFileForTest())
	if len(cps) == 0 {
		t.Fatal("no checkpoints")
	}
	if s, err := verify(t, la, audit.VerifyOptions{Keys: keys, KeysOfOthers: true, Checkpoints: cps, Seals: own}); err != nil || s.Checkpoints != len(cps) {
		t.Errorf("node-a's own checkpoints: %v, %+v", err, s)
	}
	if n := own.DerivedForTest(); n != 0 {
		t.Errorf("%d keys derived by the shared checker for a chain's own checkpoints; want 0", n)
	}
}

// TestParseCheckpointLong: a line naming a host, log or time longer than
// a node writes is not a checkpoint: it would cost memory and be repeated
// in messages (a 1 MB time made a 1 MB error line).
func TestParseCheckpointLong(t *testing.T) {
	c := audit.Checkpoint{Host: "node-a", Log: "/var/log/nsrel/audit.jsonl", Seq: 3, Hash: strings.Repeat("ab", 32), Time: "2026-12-05T00:00:00.123456789Z"}
	if _, ok := audit.ParseCheckpoint(c.Line()); !ok {
		t.Fatalf("%s: not a checkpoint", c.Line())
	}
	for name, f := range map[string]func(*audit.Checkpoint){
		"host": func(c *audit.Checkpoint) { c.Host = strings.Repeat("h", 1025) },
		"log":  func(c *audit.Checkpoint) { c.Log = "/" + strings.Repeat("l", 4096) },
		"time": func(c *audit.Checkpoint) { c.Time = strings.Repeat("9", 65) },
		// Verify names a checkpoint by its time: one not a time (text
		// anyone who can write where checkpoints are collected chose,
		// printed raw in verify's lines) is no checkpoint.
		"non-time":   func(c *audit.Checkpoint) { c.Time = "2026\x1b]0;PWN\a\u202e" },
		"empty time": func(c *audit.Checkpoint) { c.Time = "" },
	} {
		long := c
		f(&long)
		if _, ok := audit.ParseCheckpoint(long.Line()); ok {
			t.Errorf("a checkpoint with a %s of %d bytes read as one", name, len(long.Line()))
		}
	}
}

// TestReadCheckpointsInputs: the checkpoints files named to `audit
// verify --checkpoints` (or --nodes) are a user's input: a symlink (a
// collector's "current") and a pipe (<(zcat FILE.gz), /dev/stdin) are
// read; a FIFO without a writer reads as empty at once (open(2) as is
// blocked until a writer came, and verify hung for good); a directory or
// device is refused.
func TestReadCheckpointsInputs(t *testing.T) {
	dir := t.TempDir()
	c := audit.Checkpoint{Host: "node-a", Log: "/var/log/nsrel/audit.jsonl", Seq: 3, Hash: strings.Repeat("ab", 32), Time: "2026-12-05T00:00:00Z"}
	file := filepath.Join(dir, "checkpoints.jsonl")
	if err := os.WriteFile(file, c.Line(), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "current")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() { w.Write(c.Line()); w.Close() }()
	pipe := fmt.Sprintf("/proc/self/fd/%d", r.Fd())
	read := func(path string) (n int, err error) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for _, e := range audit.ReadCheckpoints(path) {
				if e != nil {
					err = e
					return
				}
				n++
			}
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: ReadCheckpoints still blocked after 5 s", path)
		}
		return n, err
	}
	for path, want := range map[string]int{link: 1, pipe: 1, fifo: 0} {
		if n, err := read(path); n != want || err != nil {
			t.Errorf("%s: %d checkpoints, %v; want %d", path, n, err, want)
		}
	}
	for _, path := range []string{dir, "/dev/zero"} {
		if _, err := read(path); !errors.Is(err, safefile.ErrNotRegular) {
			t.Errorf("%s: %v, want a refusal matching safefile.ErrNotRegular", path, err)
		}
	}
}

// TestCheckpointAfterCutLine: a checkpoint written after a line cut
// short in the checkpoints file (a writer killed mid-write; a full disk)
// is a line of its own, which readers parse: it was glued onto the
// fragment, counted as shipped, and no reader could parse it. The
// checkpoint a full disk stops is not counted as shipped, and leaves no
// part of itself (its space is reserved first; it left a cut line).
// (A 16 KiB tmpfs is mounted for the full disk: root.)
func TestCheckpointAfterCutLine(t *testing.T) {
	type result struct {
		seq uint64
		err error
	}
	logWith := func(t *testing.T, file string) (*audit.Log, *[]result, *[]uint64) {
		var sent []result
		var shipped []uint64
		l, _ := newLog(t, audit.Options{Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: file,
			Sent: func(c *audit.Checkpoint, kind string, err error) {
				if kind == audit.DestFile {
					sent = append(sent, result{c.Seq, err})
				}
			},
			Shipped: func(c *audit.Checkpoint) { shipped = append(shipped, c.Seq) },
		}})
		return l, &sent, &shipped
	}
	seqs := func(file string) []uint64 {
		var out []uint64
		for _, c := range readCheckpoints(t, file) {
			out = append(out, c.Seq)
		}
		return out
	}
	addTo := func(t *testing.T, file string, data []byte) {
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}

	t.Run("killed writer", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "checkpoints.jsonl")
		l, _, _ := logWith(t, file)
		appendN(t, l, 1)
		line := readCheckpoints(t, file)[0].Line()
		addTo(t, file, line[:len(line)/2])
		appendN(t, l, 1)
		if got := seqs(file); !slices.Equal(got, []uint64{1, 2}) {
			t.Errorf("checkpoints read: seq %v, want [1 2]", got)
		}
	})

	t.Run("full disk", func(t *testing.T) {
		mnt := t.TempDir()
		smallFS(t, mnt)
		file := filepath.Join(mnt, "checkpoints.jsonl")
		l, sent, shipped := logWith(t, file)
		appendN(t, l, 1)
		// A line of padding (no checkpoint) that leaves 60 bytes of the
		// file's page: the next checkpoint needs another page.
		st, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		addTo(t, file, append(bytes.Repeat([]byte("x"), int(4096-60-1-st.Size())), '\n'))
		fillFS(t, filepath.Join(mnt, "filler"), 4096)
		appendN(t, l, 1)
		if data, err := os.ReadFile(file); err != nil || len(data) != 4096-60 || data[len(data)-1] != '\n' {
			t.Fatalf("the full disk left part of a checkpoint (%d bytes, %v); want the file as it was, %d bytes", len(data), err, 4096-60)
		}
		if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 1)
		if len(*sent) != 3 || (*sent)[0].err != nil || !errors.Is((*sent)[1].err, unix.ENOSPC) || (*sent)[2].err != nil {
			t.Errorf("written to the file: %+v; want seq 1 and 3, seq 2 failing with ENOSPC", *sent)
		}
		if !slices.Equal(*shipped, []uint64{1, 3}) {
			t.Errorf("shipped: seq %v, want [1 3] (seq 2 was cut short)", *shipped)
		}
		if got := seqs(file); !slices.Equal(got, []uint64{1, 3}) {
			t.Errorf("checkpoints read: seq %v, want [1 3]", got)
		}
	})
}

// checkpointDueEnv makes the test binary call CheckpointIfDue on the log
// it names (checkpoints to its .cp file, due an hour on) and print the
// error.
const checkpointDueEnv = "NSREL_TEST_CHECKPOINT_DUE"

func checkpointDue(path string) {
	l, err := audit.Open(path, audit.Options{Now: func() time.Time { return time.Now().Add(time.Hour) },
		Checkpoints: &audit.CheckpointOptions{EveryRecords: 1000, EverySeconds: 60, File: path + ".cp"}})
	if err == nil {
		err = l.CheckpointIfDue(context.Background())
	}
	fmt.Println(err)
}

// TestCheckpointIfDueSyncFails: a checkpoint names only records on the
// disk, so one due on a quiet node is emitted after a sync of the log
// that works (an append whose sync failed emits none); the sync failing
// (EIO injected with strace), none is.
func TestCheckpointIfDueSyncFails(t *testing.T) {
	strace := nstest.RequireCmd(t, "strace")
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 2)
	for _, inject := range []bool{true, false} {
		args := []string{"-f", "-o", "/dev/null", "-e", "trace=fdatasync"}
		if inject {
			args = append(args, "-e", "inject=fdatasync:error=EIO")
		}
		cmd := exec.Command(strace, append(args, os.Args[0])...)
		cmd.Env = append(os.Environ(), checkpointDueEnv+"="+path)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v: %s", err, out)
		}
		_, serr := os.Stat(path + ".cp")
		switch {
		case inject && (!strings.Contains(string(out), "before a checkpoint") || serr == nil):
			t.Errorf("sync failing: child said %q, checkpoints file: %v; want an error and no checkpoint", out, serr)
		case !inject && (string(out) != "<nil>\n" || serr != nil):
			t.Errorf("sync working: child said %q, checkpoints file: %v; want a checkpoint", out, serr)
		}
	}
}

// TestShipParallel: a checkpoint goes to its syslog destinations at
// once, not one after the other: two TCP servers that each take their
// message only once the other's connection arrived both get it. One
// after the other, a server that does not answer cost its send's whole
// time once per destination, the container start with it.
func TestShipParallel(t *testing.T) {
	var arrived sync.WaitGroup
	arrived.Add(2)
	both := make(chan struct{})
	go func() { arrived.Wait(); close(both) }()
	var dests []syslog.Dest
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			arrived.Done()
			select {
			case <-both:
				io.Copy(io.Discard, c)
			case <-time.After(10 * time.Second):
			}
		}()
		dests = append(dests, syslog.Dest{Network: "tcp", Address: ln.Addr().String()})
	}
	var mu sync.Mutex
	var got []string
	l, _ := newLog(t, audit.Options{Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, Syslog: dests,
		Sent: func(c *audit.Checkpoint, kind string, err error) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, fmt.Sprintf("%s %v", kind, err))
		}}})
	appendN(t, l, 1)
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"tcp <nil>", "tcp <nil>"}; !slices.Equal(got, want) {
		t.Errorf("sent %q, want %q", got, want)
	}
}

// TestShipInBackgroundStopHungShipment: stop gives the checkpoint under
// way ShipGrace after cancelling it; one that does not end by then (a
// write to a hung disk, here a Sent callback that hangs) is reported by
// stop itself for the destinations it had not reported, once each, and
// stop returns: it waited for it without bound. When every destination
// had reported (the last report hangs), no warning says it was not
// shipped, against what Sent was told.
func TestShipInBackgroundStopHungShipment(t *testing.T) {
	for _, tc := range []struct {
		name       string
		file       bool   // a checkpoint file besides the socket
		hangs      string // the destination whose report hangs
		want       map[string][]string
		notShipped bool // a warning says it was not shipped
	}{
		{"file hangs", true, audit.DestFile, map[string][]string{audit.DestFile: {"1 true"}, audit.DestUnix: {"1 false"}}, true},
		{"all reported", false, audit.DestUnix, map[string][]string{audit.DestUnix: {"1 true"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock, _ := listenDgram(t)
			dir := filepath.Dir(sock)
			hang := make(chan struct{})
			var released sync.Once
			release := func() { released.Do(func() { close(hang) }) }
			t.Cleanup(release)
			var mu sync.Mutex
			sent := map[string][]string{}
			var warnings []string
			opts := &audit.CheckpointOptions{EveryRecords: 1, Syslog: []syslog.Dest{{Network: "unixgram", Address: sock}},
				Sent: func(c *audit.Checkpoint, kind string, err error) {
					mu.Lock()
					sent[kind] = append(sent[kind], fmt.Sprintf("%d %v", c.Seq, err == nil))
					mu.Unlock()
					if kind == tc.hangs {
						<-hang // the disk hangs
					}
				}}
			if tc.file {
				opts.File = filepath.Join(dir, "ckpt.jsonl")
			}
			log, err := audit.Open(filepath.Join(dir, "audit.jsonl"), audit.Options{Checkpoints: opts,
				Warn: func(err error) { mu.Lock(); warnings = append(warnings, err.Error()); mu.Unlock() }})
			if err != nil {
				t.Fatal(err)
			}
			bg, stop := log.ShipInBackground()
			if err := bg.Append(context.Background(), &audit.Record{Source: "test", Stage: audit.StageStart, ContainerID: "c"}); err != nil {
				t.Fatal(err)
			}
			waitSent(t, &mu, sent, tc.hangs, "the checkpoint")
			stopped := make(chan struct{})
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				stop(ctx)
				close(stopped)
			}()
			select {
			case <-stopped:
			case <-time.After(30 * time.Second):
				t.Fatal("stop did not return in 30 s with its shipment hung")
			}
			check := func(when string) {
				mu.Lock()
				defer mu.Unlock()
				w := strings.Join(warnings, "\n")
				if fmt.Sprint(sent) != fmt.Sprint(tc.want) || strings.Contains(w, "not shipped") != tc.notShipped {
					t.Errorf("%s: sent %v, warnings %q; want %v, a warning saying not shipped: %v", when, sent, warnings, tc.want, tc.notShipped)
				}
			}
			check("when stop returned")
			release()
			// The shipment, going on, reports nothing more.
			time.Sleep(100 * time.Millisecond)
			check("after the shipment went on")
		})
	}
}

// waitSent waits until sent (under mu) has a report for a destination
// of kind: what, a checkpoint in the background, was taken for shipping
// (a file is written first).
func waitSent(t *testing.T, mu *sync.Mutex, sent map[string][]string, kind, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		n := len(sent[kind])
		mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not taken for shipping in 10 s", what)
		}
	}
}

// listenDgram listens on a datagram socket in a directory of its own
// until the test ends, and returns its path.
func listenDgram(t *testing.T) (string, *net.UnixConn) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "log.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return sock, c
}

// TestCheckpointsAlteredOfRemoved: a copy of a genuine checkpoint with
// its seq changed and its checkpoint seal left out, which anyone who can
// add a line to the collector's file can make, failed an intact log as
// "sealed again" when the record it names is not in the chain (removed
// by retention), and as "seals no record left" when its key's records
// are all removed. Ignored now, as altered: the node's checkpoints whose
// checkpoint seals check say where its epochs are. Root's chain sealed
// again under another offset still fails by them (TestRootAfterTRewrites).
func TestCheckpointsAlteredOfRemoved(t *testing.T) {
	dir := t.TempDir()
	l, _, k1 := sealedLog(t, audit.Options{Host: "node-a", RotateBytes: 4096, KeepFiles: 2,
		Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: filepath.Join(dir, "cp.jsonl")}})
	appendN(t, l, 5)
	k2, _, err := l.StartSealing(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 60)
	genuine := readCheckpoints(t, l.CheckpointsFileForTest())
	keys := []audit.VerifyKey{k1, k2}
	s, err := verify(t, l, audit.VerifyOptions{Keys: keys, Checkpoints: genuine})
	if err != nil || s.FirstSeq < 20 || len(s.IgnoredCheckpoints) != 0 {
		t.Fatalf("genuine: %v, first seq %d, ignored %+v", err, s.FirstSeq, s.IgnoredCheckpoints)
	}
	// The last checkpoint of each key whose record retention removed.
	var old1, old2, first2 audit.Checkpoint
	for _, c := range genuine {
		p, err := audit.ParseSeal(c.Seal)
		switch {
		case err != nil || c.Seq >= s.FirstSeq || c.CheckpointSeal == "":
		case p.ID == k1.ID:
			old1 = c
		case p.ID == k2.ID:
			old2 = c
			if first2.Seal == "" {
				first2 = c // no checkpoint of an earlier record of the key
			}
		}
	}
	if old1.Seal == "" || old2.Seal == "" {
		t.Fatalf("no removed checkpoint of each key: %+v %+v", old1, old2)
	}
	for _, tc := range []struct {
		name string
		c    audit.Checkpoint
		seq  uint64
	}{
		{"the current key's, at the next seq", old2, old2.Seq + 1},
		{"the current key's, at seq 1", old2, 1},
		{"the current key's, at a seq in the chain", old2, s.FirstSeq + 3},
		{"the current key's, beyond the end", old2, 9999},
		{"the removed key's, at a seq in the chain", old1, s.FirstSeq + 3},
		{"the removed key's, beyond the end", old1, 9999},
		{"the current key's first, beyond the end", first2, 9999},
		{"the current key's first, at the next seq", first2, first2.Seq + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			altered := tc.c
			altered.Seq, altered.CheckpointSeal = tc.seq, ""
			s, err := verify(t, l, audit.VerifyOptions{Keys: keys, Checkpoints: append(slices.Clone(genuine), altered)})
			if err != nil || len(s.IgnoredCheckpoints) != 1 || s.IgnoredCheckpoints[0].Checkpoint != altered ||
				s.IgnoredCheckpoints[0].Reason != audit.CheckpointAltered {
				t.Errorf("%v, ignored %+v; want it ignored as altered", err, s.IgnoredCheckpoints)
			}
			// Without the key, checkpoints are taken at their word.
			if _, err := verify(t, l, audit.VerifyOptions{Checkpoints: append(slices.Clone(genuine), altered)}); err == nil {
				t.Error("without the key: passed")
			}
		})
	}
	// The node's own checkpoint without a checkpoint seal (its sealing
	// state was not in step): a copy of it moved is told by the key's
	// checkpoints of earlier records, whose checkpoint seals check.
	t.Run("a copy of a checkpoint the node wrote without checkpoint seal", func(t *testing.T) {
		cps := slices.Clone(genuine)
		var altered audit.Checkpoint
		for i := range cps {
			if cps[i] == old2 {
				cps[i].CheckpointSeal = ""
				altered = cps[i]
			}
		}
		altered.Seq = 9999
		s, err := verify(t, l, audit.VerifyOptions{Keys: keys, Checkpoints: append(cps, altered)})
		if err != nil || len(s.IgnoredCheckpoints) != 1 || s.IgnoredCheckpoints[0].Checkpoint != altered {
			t.Errorf("%v, ignored %+v; want the copy ignored as altered", err, s.IgnoredCheckpoints)
		}
	})
}

// TestCheckpointOfEveryKeysFirstRecord: a key's seal-start record always
// gets a checkpoint with a checkpoint seal, whatever every_records says:
// it says where the key's epochs are, so that a line without checkpoint
// seal naming a record of the key at another seq (made up from the
// record's hash and seal, for a record no checkpoint named) is ignored
// rather than failing the intact log (review).
func TestCheckpointOfEveryKeysFirstRecord(t *testing.T) {
	dir := t.TempDir()
	l, _, k1 := sealedLog(t, audit.Options{Host: "node-a", RotateBytes: 4096, KeepFiles: 2,
		Checkpoints: &audit.CheckpointOptions{EveryRecords: 5, File: filepath.Join(dir, "cp.jsonl")}})
	appendN(t, l, 2)
	k2, start, err := l.StartSealing(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	recs := appendN(t, l, 81)
	genuine := readCheckpoints(t, l.CheckpointsFileForTest())
	if !slices.ContainsFunc(genuine, func(c audit.Checkpoint) bool { return c.Seq == start.Seq && c.CheckpointSeal != "" }) {
		t.Fatalf("no checkpoint of the seal-start record, seq %d: %+v", start.Seq, genuine)
	}
	keys := []audit.VerifyKey{k1, k2}
	s, err := verify(t, l, audit.VerifyOptions{Keys: keys, Checkpoints: genuine})
	if err != nil || s.FirstSeq <= start.Seq+1 {
		t.Fatalf("genuine: %v, first seq %d", err, s.FirstSeq)
	}
	for _, r := range []*audit.Record{start, recs[0]} {
		madeUp := audit.Checkpoint{Host: "node-a", Log: genuine[0].Log, Seq: r.Seq + 1, Hash: r.Hash, Seal: r.Seal, Time: "2026-12-06T00:00:00Z"}
		s, err := verify(t, l, audit.VerifyOptions{Keys: keys, Checkpoints: append(slices.Clone(genuine), madeUp)})
		if err != nil || len(s.IgnoredCheckpoints) != 1 || s.IgnoredCheckpoints[0].Reason != audit.CheckpointAltered {
			t.Errorf("record seq %d named at seq %d: %v, ignored %+v; want it ignored as altered", r.Seq, madeUp.Seq, err, s.IgnoredCheckpoints)
		}
	}
}

// TestCheckpointOfKeyIntroducedWithOthers: seal-init on a log whose last
// line is torn appends its seal-start record with the torn tail's record
// after it; that append emits a checkpoint too, of its last record, so
// that a line naming a later record of the key at another seq is told
// from the node's (review: only an append whose last record was the
// seal-start emitted one).
func TestCheckpointOfKeyIntroducedWithOthers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	opts := audit.Options{Host: "node-a", RotateBytes: 4096, KeepFiles: 2, SealState: filepath.Join(dir, "state", "audit.seal"),
		Checkpoints: &audit.CheckpointOptions{EveryRecords: 5, File: filepath.Join(dir, "cp.jsonl")}}
	l, err := audit.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"format":"1.3","seq":3,"ti`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	key, start, err := l.StartSealing(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	recs := appendN(t, l, 81)
	genuine := readCheckpoints(t, l.CheckpointsFileForTest())
	var keyFirst *audit.Checkpoint
	for i, c := range genuine {
		if p, err := audit.ParseSeal(c.Seal); err == nil && p.ID == key.ID && c.CheckpointSeal != "" {
			keyFirst = &genuine[i]
			break
		}
	}
	if keyFirst == nil || keyFirst.Seq > start.Seq+1 {
		t.Fatalf("the key's first checkpoint %+v, seal-start at seq %d: want one of the append that introduced it", keyFirst, start.Seq)
	}
	keys := []audit.VerifyKey{key}
	s, err := verify(t, l, audit.VerifyOptions{Keys: keys, Checkpoints: genuine})
	if err != nil || s.FirstSeq <= keyFirst.Seq+2 {
		t.Fatalf("genuine: %v, first seq %d", err, s.FirstSeq)
	}
	r := recs[0] // the first record after that append
	madeUp := audit.Checkpoint{Host: "node-a", Log: genuine[0].Log, Seq: r.Seq + 1, Hash: r.Hash, Seal: r.Seal, Time: "2026-12-06T00:00:00Z"}
	s, err = verify(t, l, audit.VerifyOptions{Keys: keys, Checkpoints: append(slices.Clone(genuine), madeUp)})
	// (The checkpoints of the records before sealing started are
	// ignored too: not sealed by a given key.)
	if err != nil || !slices.Contains(s.IgnoredCheckpoints, audit.IgnoredCheckpoint{Checkpoint: madeUp, Reason: audit.CheckpointAltered}) {
		t.Errorf("record seq %d named at seq %d: %v, ignored %+v; want it ignored as altered", r.Seq, madeUp.Seq, err, s.IgnoredCheckpoints)
	}
}

// TestRetentionRemoveFails: a rotated file retention cannot remove (made
// immutable) stayed, unsaid, while the newer files after it went: the
// kept files no longer followed one another and verify failed (records
// deleted). The failure is said, the newer files stay with it, and once
// it can be removed the next rotation removes them.
func TestRetentionRemoveFails(t *testing.T) {
	nstest.RequireRoot(t)
	chattr := nstest.RequireCmd(t, "chattr")
	var warned []error
	var mu sync.Mutex
	l, _ := newLog(t, audit.Options{RotateBytes: 4096, KeepFiles: 2, Warn: func(err error) { mu.Lock(); warned = append(warned, err); mu.Unlock() }})
	files := func() []string {
		f, err := l.Files()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	for len(files()) < 3 {
		appendN(t, l, 1)
	}
	oldest := files()[0]
	if out, err := exec.Command(chattr, "+i", oldest).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i %s: %v: %s", oldest, err, out)
	}
	t.Cleanup(func() { exec.Command(chattr, "-i", oldest).Run() })
	// Three rotations, each of which was to remove the immutable file.
	for rotations := 0; rotations < 3; {
		before := files()[len(files())-2]
		appendN(t, l, 1)
		if files()[len(files())-2] != before {
			rotations++
		}
	}
	if got := files(); got[0] != oldest || len(got) != 6 {
		t.Fatalf("files %q; want the immutable %s first and every newer one", got, oldest)
	}
	mu.Lock()
	said := len(warned) > 0 && strings.Contains(warned[0].Error(), "audit: retention: ") && strings.Contains(warned[0].Error(), "operation not permitted")
	mu.Unlock()
	if !said {
		t.Errorf("warnings %v; want one saying the file could not be removed", warned)
	}
	if _, err := verify(t, l, audit.VerifyOptions{}); err != nil {
		t.Errorf("verify with the immutable file kept: %v", err)
	}
	if out, err := exec.Command(chattr, "-i", oldest).CombinedOutput(); err != nil {
		t.Fatalf("chattr -i: %v: %s", err, out)
	}
	for before := files()[len(files())-2]; files()[len(files())-2] == before; {
		appendN(t, l, 1)
	}
	if _, err := os.Stat(oldest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s after the next rotation: %v; want it removed", oldest, err)
	}
	if _, err := verify(t, l, audit.VerifyOptions{}); err != nil {
		t.Errorf("verify after the removal: %v", err)
	}
}

// TestSyncDirFailedNoCheckpoint: a rotation syncs the log's directory
// so that a power loss cannot lose the file whose records a checkpoint
// names. A failed sync of it was ignored, and a checkpoint shipped all
// the same; it is said now, and the append's records wait for a later
// checkpoint.
func TestSyncDirFailedNoCheckpoint(t *testing.T) {
	file := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	var warned []error
	l, _ := newLog(t, audit.Options{RotateBytes: 1500, Warn: func(err error) { warned = append(warned, err) },
		Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: file}})
	appendN(t, l, 1)
	if n := len(readCheckpoints(t, file)); n != 1 || len(warned) != 0 {
		t.Fatalf("%d checkpoints, warnings %v after the first append; want 1, none", n, warned)
	}
	restore := audit.FailSyncDir(unix.EIO)
	for files, _ := l.Files(); len(files) < 2; files, _ = l.Files() {
		appendN(t, l, 1)
	}
	restore()
	cps := readCheckpoints(t, file)
	s, err := verify(t, l, audit.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	last := s.LastSeq
	if cps[len(cps)-1].Seq == last {
		t.Errorf("a checkpoint names seq %d, appended by the rotation whose directory sync failed", last)
	}
	if len(warned) != 1 || !errors.Is(warned[0], unix.EIO) || !strings.Contains(warned[0].Error(), "no checkpoint names seq") {
		t.Errorf("warnings %v; want one, of the failed sync", warned)
	}
	appendN(t, l, 1)
	if cps := readCheckpoints(t, file); cps[len(cps)-1].Seq != last+1 {
		t.Errorf("last checkpoint at seq %d after the next append; want %d", cps[len(cps)-1].Seq, last+1)
	}
	if _, err := verify(t, l, audit.VerifyOptions{Checkpoints: readCheckpoints(t, file)}); err != nil {
		t.Error(err)
	}
}

// TestSyncDirFailedRetention: a rotation whose directory sync failed
// removed the files retention recorded, and held back the checkpoint a
// removal always emits, which no later append then owed. The files stay
// (the next rotation records their removal again) and the next append
// emits the checkpoint, whatever the counts.
func TestSyncDirFailedRetention(t *testing.T) {
	file := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	l, _ := newLog(t, audit.Options{RotateBytes: 3000, KeepFiles: 1, Warn: func(error) {},
		Checkpoints: &audit.CheckpointOptions{EveryRecords: 1000, File: file}})
	for files, _ := l.Files(); len(files) < 2; files, _ = l.Files() {
		appendN(t, l, 1)
	}
	before, _ := l.Files()
	cps := len(readCheckpoints(t, file))
	restore := audit.FailSyncDir(unix.EIO)
	for files, _ := l.Files(); slices.Equal(files, before); files, _ = l.Files() {
		appendN(t, l, 1)
	}
	restore()
	if files, _ := l.Files(); len(files) <= len(before) {
		t.Errorf("files %v after a rotation whose directory sync failed (%v before): retention removed some", files, before)
	}
	if n := len(readCheckpoints(t, file)); n != cps {
		t.Errorf("%d checkpoints after the rotation whose directory sync failed, %d before; want none more", n, cps)
	}
	appendN(t, l, 1)
	s, err := verify(t, l, audit.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := readCheckpoints(t, file); len(got) != cps+1 || got[len(got)-1].Seq != s.LastSeq {
		t.Errorf("checkpoints after the next append: %d, the last %+v; want %d, of seq %d", len(got), got[len(got)-1], cps+1, s.LastSeq)
	}
	if files, _ := l.Files(); len(files) != 3 {
		t.Errorf("files %v after the next append, which does not rotate; want the three, the removal left to the next rotation", files)
	}
}

// TestSyncDirFailingNoCheckpoint: while the log's directory does not
// sync, no checkpoint names records of a file whose name may not survive
// a power loss: not at the appends after the rotation whose sync failed
// (they did not sync it again), nor at a quiet node's check (which shipped
// one at once), nor after a current file made again after a rotation cut
// short (not taken for a new file: never synced). Once it syncs, the next
// append emits the checkpoint.
func TestSyncDirFailingNoCheckpoint(t *testing.T) {
	file := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	l, path := newLog(t, audit.Options{RotateBytes: 3000, Warn: func(error) {},
		Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, EverySeconds: 1, File: file}})
	appendN(t, l, 1)
	restore := audit.FailSyncDir(unix.EIO)
	defer restore()
	// Checkpoints of the first file, whose name was synced when made.
	var cps int
	for files, _ := l.Files(); len(files) < 2; files, _ = l.Files() {
		cps = len(readCheckpoints(t, file))
		appendN(t, l, 1)
	}
	appendN(t, l, 2)
	if err := l.CheckpointIfDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A rotation cut short: the current file renamed, none made yet.
	s, err := verify(t, l, audit.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, fmt.Sprintf("%s.%012d", path, s.LastSeq)); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 1)
	if got := readCheckpoints(t, file); len(got) != cps {
		t.Errorf("%d checkpoints while the directory does not sync (%d before), the last of seq %d", len(got), cps, got[len(got)-1].Seq)
	}
	restore()
	appendN(t, l, 1)
	s, err = verify(t, l, audit.VerifyOptions{Checkpoints: readCheckpoints(t, file)})
	if err != nil {
		t.Fatal(err)
	}
	if got := readCheckpoints(t, file); len(got) != cps+1 || got[len(got)-1].Seq != s.LastSeq {
		t.Errorf("checkpoints once the directory syncs: %d, the last of seq %d; want %d, of seq %d", len(got), got[len(got)-1].Seq, cps+1, s.LastSeq)
	}
}

// TestSyncDirUnsupported: on a file system that does not sync
// directories (EINVAL), held-back checkpoints would wait for ever: such a
// sync is nothing to wait for, and every checkpoint due is emitted.
func TestSyncDirUnsupported(t *testing.T) {
	file := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	var warned []error
	restore := audit.FailSyncDir(unix.EINVAL)
	defer restore()
	l, _ := newLog(t, audit.Options{RotateBytes: 1500, Warn: func(err error) { warned = append(warned, err) },
		Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: file}})
	appendN(t, l, 6)
	if files, _ := l.Files(); len(files) < 2 {
		t.Fatalf("files %v: want a rotation", files)
	}
	if got := readCheckpoints(t, file); len(got) != 6 || len(warned) != 0 {
		t.Errorf("%d checkpoints of 6 appends, warnings %v; want 6, none", len(got), warned)
	}
}

// TestVerifyMadeUpCopyOfRemoved: a line filed as an older record again
// whose seq's record retention removed is held against the checkpoints
// that name that seq: root on the node later made up a record with a
// removed seq, the next append filed it as damage, an ack passed it,
// and verify passed with the key and the checkpoints (audit show
// printed it as the log's). A true copy (a stale block) still passes.
func TestVerifyMadeUpCopyOfRemoved(t *testing.T) {
	for _, madeUp := range []bool{false, true} {
		t.Run(fmt.Sprint("made up ", madeUp), func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "ckpt.jsonl")
			l, path, key := sealedLog(t, audit.Options{Host: "node-a", RotateBytes: 3000, KeepFiles: 1, Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: file}})
			appendN(t, l, 2)
			var old []byte
			for _, line := range readLines(t, path) {
				if bytes.Contains(line, []byte(`"container_id":"c1"`)) {
					old = bytes.TrimSuffix(line, []byte("\n"))
				}
			}
			r, err := audit.Decode(old)
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, l, 20)
			if s, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}}); err != nil || s.FirstSeq <= r.Seq {
				t.Fatalf("%+v, %v; want seq %d removed by retention", s, err, r.Seq)
			}
			line := old
			if madeUp {
				edited := bytes.Replace(old, []byte(`"verdict":"deny"`), []byte(`"verdict":"allow"`), 1)
				if bytes.Equal(edited, old) {
					t.Fatalf("no verdict to change in %s", old)
				}
				i := bytes.LastIndex(edited, []byte(`,"hash":"`))
				line = append(edited[:i:i], `,"hash":"`+lineHash(edited)+`"}`...)
			}
			audittest.AppendBytes(t, path, append(line, '\n'))
			appendN(t, l, 1)
			audittest.AckDamage(t, l, path)
			cps := readCheckpoints(t, file)
			s, err := verify(t, l, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: cps})
			var p *audit.Problem
			switch {
			case !madeUp && err != nil:
				t.Errorf("a true copy: %v", err)
			case madeUp && (!errors.As(err, &p) || p.Seq != r.Seq || !strings.Contains(p.Reason, "differs from the record the checkpoint of")):
				t.Errorf("a made-up copy: %+v, %v; want a problem at seq %d", s, err, r.Seq)
			}
		})
	}
}

// ackAt is an operator's acknowledgement of damage record d at seq.
func ackAt(d *audit.Record, seq uint64) *audit.Record {
	a := audittest.AckOf(d, "power loss")
	a.Seq = seq
	return a
}

// TestVerifyStartCopiesMadeUp: root on the node later keeps the records
// in the log, one of them changed (a deny made an allow) and the chain
// rehashed, makes the first line no record, and seals with the state it
// read a damage record that lists every line before it as older records
// again, a retention record that says those seqs were removed, and an
// ack. The lines before the chain's first record are then taken for
// copies of removed records; verify passed with the key and the
// checkpoints (audit show printed the changed record). A copy with
// other bytes than the record a checkpoint names is no copy: it fails.
func TestVerifyStartCopiesMadeUp(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ckpt.jsonl")
	l, path, key := sealedLog(t, audit.Options{Host: "node-a", Checkpoints: &audit.CheckpointOptions{EveryRecords: 3, File: file}})
	appendN(t, l, 20) // seq 2..21
	forge := stolenKey(t, filepath.Join(filepath.Dir(path), "state", "audit.seal"))
	lines := readLines(t, path)
	body := [][]byte{[]byte("x\n")}
	prev := lineHash(lines[0])
	for i := 1; i < len(lines); i++ {
		line := bytes.TrimSuffix(lines[i], []byte("\n"))
		if i == 4 {
			line = bytes.Replace(line, []byte(`"verdict":"deny"`), []byte(`"verdict":"allow"`), 1)
		}
		at := bytes.LastIndex(line, []byte(`,"hash":"`))
		seal := ""
		if k := bytes.Index(line[at:], []byte(`,"seal":"`)); k >= 0 {
			seal = string(line[at+k : len(line)-1])
		}
		b := append([]byte{}, line[:at]...)
		p := bytes.LastIndex(b, []byte(`,"prev":"`))
		b = append(b[:p], `,"prev":"`+prev+`"`...)
		prev = lineHash(append(b, `,"hash":""}`...))
		body = append(body, append(b, `,"hash":"`+prev+`"`+seal+"}\n"...))
	}
	var listed []audit.DamagedLine
	off := int64(0)
	for i, b := range body {
		d := bytes.TrimSuffix(b, []byte("\n"))
		k := audit.LineKeyOf(d)
		kind := "replayed"
		if i == 0 {
			kind = "garbled"
		}
		listed = append(listed, audit.DamagedLine{File: "audit.jsonl", Offset: off, Bytes: k.Bytes, SHA256: k.SHA256, Kind: kind, Reason: "an older record again"})
		off += int64(len(b))
	}
	last := uint64(len(lines))
	tail := chainFrom(prev, [][]byte{
		recordLine(t, &audit.Record{Seq: last + 1, Source: audit.SourceAudit, Stage: audit.StageDamaged, Damage: listed, Error: "not the chain's records"}),
		recordLine(t, &audit.Record{Seq: last + 2, Source: audit.SourceAudit, Stage: audit.StageRetention, Dropped: &audit.Dropped{File: "audit.jsonl.000000000001", FirstSeq: 1, LastSeq: last, LastHash: prev}}),
	}, last+1, forge)
	d, err := audit.Decode(bytes.TrimSuffix(tail[0], []byte("\n")))
	if err != nil {
		t.Fatal(err)
	}
	tail = append(tail, chainFrom(lineHash(bytes.TrimSuffix(tail[1], []byte("\n"))), [][]byte{recordLine(t, ackAt(d, last+3))}, last+3, forge)...)
	writeLines(t, path, append(body, tail...))
	s, err := audit.Verify([]string{path}, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: readCheckpoints(t, file)})
	var p *audit.Problem
	if !errors.As(err, &p) || !strings.Contains(p.Reason, "differs from the record the checkpoint of") {
		t.Errorf("%+v, %v; want the copies held against the checkpoints", s, err)
	}
}
