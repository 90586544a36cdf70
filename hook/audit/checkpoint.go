package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/internal/fastjson"
	"github.com/nsrel/nsrel/internal/safefile"
	"github.com/nsrel/nsrel/internal/syslog"
)

// Checkpoints (docs/hook.md, "Checkpoints"). A checkpoint is the head of
// the chain at one moment: the last record's sequence number and hash (and
// its seal, when the log is sealed), with the host and the log it belongs
// to. Shipped off the node as it is written, it pins the chain: a log
// verified against the checkpoints a collector received cannot have lost
// records at its end, a current or rotated file, or been rewritten, even
// by someone who had root on the node later and even without the sealing
// key.

// CheckpointOptions says when and where checkpoints are emitted: after
// an append, when EveryRecords records were appended since the last
// checkpoint or EverySeconds seconds passed (0: by count only), and
// always when retention removed a file.
type CheckpointOptions struct {
	EveryRecords int
	EverySeconds int
	// File is a JSON Lines file, one checkpoint a line, that a log
	// shipper can tail; "" for none.
	File string
	// Syslog are syslog destinations: each checkpoint goes there as an
	// RFC 5424 message whose MSG is the checkpoint's JSON line.
	Syslog []syslog.Dest
	// Shipped, if set, is called with each checkpoint that reached its
	// file or at least one syslog destination.
	Shipped func(*Checkpoint)
	// Sent, if set, is called for each destination a checkpoint was
	// written or sent to, with the destination's kind ([DestFile],
	// [DestUnix] or [DestTCP]) and the error, nil when it got there.
	Sent func(c *Checkpoint, kind string, err error)
}

// The kinds of checkpoint destinations [CheckpointOptions.Sent] names:
// the checkpoint file, a local syslog socket (unix:///PATH, such as
// /dev/log) and a syslog server over TCP (tcp://HOST:PORT). Only the
// last leaves the node by itself: the others stay there until a local
// shipper or relay forwards them.
const (
	DestFile = "file"
	DestUnix = "unix"
	DestTCP  = "tcp"
)

// DestKind returns the kind of syslog destination d: [DestTCP] or
// [DestUnix].
func DestKind(d syslog.Dest) string {
	if d.Network == "tcp" {
		return DestTCP
	}
	return DestUnix
}

// CheckpointType is the "type" member of every checkpoint.
const CheckpointType = "nsrel-checkpoint"

// Checkpoint is the head of a log's chain at one moment.
type Checkpoint struct {
	// Host and Log name the chain: the host name its records carry and
	// the path of its current file.
	Host string `json:"host"`
	Log  string `json:"log"`
	// Seq, Hash and Seal are those of the last record.
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
	Seal string `json:"seal,omitempty"`
	// Time is when the checkpoint was made (RFC 3339, UTC).
	Time string `json:"time"`
	// CheckpointSeal (format 1.1, when Seal is set and the sealing state
	// was in step) seals all of the above under the key of the epoch
	// after Seal's, "ID.EPOCH.TAG": the host, log, seq and time are the
	// node's too, not only the hash.
	CheckpointSeal string `json:"checkpoint_seal,omitempty"`
}

// Line returns the checkpoint as one JSON line (newline included):
// {"type":"nsrel-checkpoint","format":"1.1",...}. (Format 1.0 had no
// checkpoint_seal; readers ignore members they do not know.)
func (c *Checkpoint) Line() []byte {
	b := []byte(`{"type":"` + CheckpointType + `","format":"1.1"`)
	b = appendJSONString(appendKey(b, true, "host"), c.Host)
	b = appendJSONString(appendKey(b, true, "log"), c.Log)
	b = strconv.AppendUint(appendKey(b, true, "seq"), c.Seq, 10)
	b = appendJSONString(appendKey(b, true, "hash"), c.Hash)
	b = appendOptString(b, "seal", c.Seal)
	b = appendJSONString(appendKey(b, true, "time"), c.Time)
	b = appendOptString(b, "checkpoint_seal", c.CheckpointSeal)
	return append(b, '}', '\n')
}

// ParseCheckpoint reads a checkpoint line. Text before the first '{' is
// ignored, so that lines a syslog collector wrote with its own prefix
// read too; ok is false for a line that is not a checkpoint, names a
// host, log or time longer than a node writes, or a time that is none.
func ParseCheckpoint(line []byte) (c Checkpoint, ok bool) {
	i := strings.IndexByte(string(line), '{')
	if i < 0 {
		return c, false
	}
	n, ok := fastjson.Parse([]byte(strings.TrimSpace(string(line[i:]))))
	if !ok || n.Kind != 'o' {
		return c, false
	}
	typ := false
	for _, m := range n.Members {
		v := m.Val
		switch m.Key {
		case "type":
			typ = v.Kind == 's' && v.Str == CheckpointType
		case "host":
			c.Host = v.Str
		case "log":
			c.Log = v.Str
		case "seq":
			c.Seq, _ = strconv.ParseUint(string(v.Num), 10, 64)
		case "hash":
			c.Hash = v.Str
		case "seal":
			c.Seal = v.Str
		case "time":
			c.Time = v.Str
		case "checkpoint_seal":
			c.CheckpointSeal = v.Str
		}
	}
	// A node's checkpoint names a host name, a path and an RFC 3339
	// time: longer ones are lines someone else made, which would only
	// cost memory and be repeated in messages.
	short := len(c.Host) <= maxCheckpointHost && len(c.Log) <= maxCheckpointLog && len(c.Time) <= maxCheckpointTime
	// The hash as a node writes it, lower-case hex: an upper-case copy
	// of a genuine checkpoint's hash checks against its record seal
	// (the bytes are the same) but is compared with the record's hash
	// as written, and failed an intact log (TestReadCheckpointsSkipsOtherLines).
	// The time as a node writes it (RFC 3339): verify names a
	// checkpoint by its time, which anyone who can write where they are
	// collected could make any text.
	_, terr := time.Parse(time.RFC3339Nano, c.Time)
	return c, typ && c.Seq > 0 && len(c.Hash) == 64 && isHex(c.Hash) && short && terr == nil
}

// The longest host, log and time a checkpoint may name: a host name
// (at most 253 bytes in the DNS, 64 from uname), a path (PATH_MAX) and
// an RFC 3339 time with nanoseconds and an offset.
const (
	maxCheckpointHost = 1024
	maxCheckpointLog  = 4096
	maxCheckpointTime = 64
	// maxCheckpointState bounds what is read of the checkpoint state:
	// a line with the longest host and log, each escaped whole, and
	// room for the rest.
	maxCheckpointState = 6*(maxCheckpointHost+maxCheckpointLog) + 4096
)

// ReadCheckpoints yields the checkpoints in the files (JSON Lines, or a
// collector's syslog file), skipping other lines, those longer than
// [MaxLine] too: anyone who reaches the collector can add a line, and
// one too long must not keep the others from counting. A file is opened
// with [safefile.OpenInput]: a symlink or a pipe is read (a FIFO without
// a writer as empty, not waited for), a device or directory refused.
func ReadCheckpoints(files ...string) iter.Seq2[Checkpoint, error] {
	return func(yield func(Checkpoint, error) bool) {
		for _, file := range files {
			f, err := safefile.OpenInput(file)
			if err != nil {
				yield(Checkpoint{}, fmt.Errorf("audit: %w", err))
				return
			}
			for l, err := range linesIn(f, file, -1) {
				if err != nil {
					f.Close()
					yield(Checkpoint{}, err)
					return
				}
				// A line too long has no Data.
				if c, ok := ParseCheckpoint(l.Data); ok && !yield(c, nil) {
					f.Close()
					return
				}
			}
			f.Close()
		}
	}
}

// checkpointState is the file next to the log that holds the last
// checkpoint, to know when the next is due.
func (l *Log) checkpointState() string { return l.path + checkpointSuffix }

// checkpointDue decides, under the lock, whether the append that ended
// with last emits a checkpoint, and if so has seal give it its
// checkpoint seal and records it as the last one; it passes what goes
// wrong to warn (said after the lock is released).
//
// dirSynced says the caller synced the log's directory since its last
// change (an append that made or rotated the file): not synced again.
func (l *Log) checkpointDue(last *Record, force, dirSynced bool, seal func(*Checkpoint), warn func(error)) *Checkpoint {
	o := l.opts.Checkpoints
	if o == nil || last == nil {
		return nil
	}
	now := l.opts.Now().UTC()
	c := &Checkpoint{Host: last.Host, Log: l.path, Seq: last.Seq, Hash: last.Hash, Seal: last.Seal, Time: now.Format(time.RFC3339Nano)}
	// dirReady syncs the log's directory unless the caller did: no
	// checkpoint shipped off the node may name a file whose name a
	// power loss can take.
	dirReady := func() bool {
		if dirSynced {
			return true
		}
		if err := syncDir(dirOf(l.path)); err != nil {
			warn(fmt.Errorf("checkpoint: %w (no checkpoint until the log's directory syncs)", err))
			return false
		}
		return true
	}
	f, err := openOwned(l.checkpointState(), unix.O_RDWR|unix.O_CREAT)
	if errors.Is(err, safefile.ErrUntrusted) {
		// Whoever may write it could hold checkpoints back (a last one
		// of a later seq or time): not believed, nor written; each
		// append emits one until it is mended. Nothing tells whether a
		// failed directory sync left one due: the directory first.
		warn(fmt.Errorf("checkpoint state: %w: a checkpoint at every append until it is root's alone", err))
		if !dirReady() {
			return nil
		}
		seal(c)
		return c
	} else if err != nil {
		warn(fmt.Errorf("checkpoint state: %w", err))
		return nil
	}
	defer f.Close()
	prev, ok, err := readCheckpointState(f)
	if err != nil {
		warn(fmt.Errorf("checkpoint state: %w", err))
		return nil
	}
	// None in the state: the log's first, or the one an append whose
	// directory sync failed left due (checkpointDueNext).
	if !ok && !dirReady() {
		return nil
	}
	if ok && !force && last.Seq >= prev.Seq && last.Seq-prev.Seq < uint64(o.EveryRecords) {
		// A last checkpoint later than now (the clock was stepped back
		// since) makes the next due now: waiting until the clock passes
		// it again would leave the records appended meanwhile unpinned
		// for as long as the clock was ahead (TestCheckpointClockBack).
		t, err := time.Parse(time.RFC3339Nano, prev.Time)
		if o.EverySeconds <= 0 || (err == nil && !t.After(now) && now.Sub(t) < time.Duration(o.EverySeconds)*time.Second) {
			return nil
		}
	}
	seal(c)
	// Until a destination took it (it is shipped once the lock is
	// released: a hook killed at its deadline meanwhile never says so),
	// the state has the next checkpoint due as for one that reached
	// none; the shipment that gets through says otherwise.
	writeCheckpointState(f, l.unshipped(c))
	return c
}

// checkpointDueNext has the next append (or check of a quiet node) emit
// a checkpoint, whatever the counts, once the log's directory syncs: the
// checkpoint state emptied, as when there was none (this append's
// directory sync failed).
func (l *Log) checkpointDueNext(warn func(error)) {
	if l.opts.Checkpoints == nil {
		return
	}
	f, err := openOwned(l.checkpointState(), unix.O_RDWR|unix.O_CREAT)
	if err == nil {
		err = f.Truncate(0)
		f.Close()
	}
	if err != nil && !errors.Is(err, safefile.ErrUntrusted) { // untrusted: a checkpoint at every append
		warn(fmt.Errorf("checkpoint state: %w (the next checkpoint, due by its counts, may name records of a file whose directory did not sync)", err))
	}
}

// unshipped returns c as the checkpoint state holds it until c reached a
// destination: with checkpoints due by time, its time moved back so that
// the next is due [RetryAfter] after it (at most EverySeconds), not a
// whole EverySeconds: the checkpoint lost would otherwise wait its full
// turn.
func (l *Log) unshipped(c *Checkpoint) *Checkpoint {
	o := l.opts.Checkpoints
	every := time.Duration(o.EverySeconds) * time.Second
	t, err := time.Parse(time.RFC3339Nano, c.Time)
	if every <= RetryAfter || err != nil {
		return c // due as soon either way: nothing to confirm
	}
	back := *c
	back.Time = t.Add(RetryAfter - every).Format(time.RFC3339Nano)
	return &back
}

// readCheckpointState reads the checkpoint in the checkpoint state f;
// ok is false when it holds none.
func readCheckpointState(f *os.File) (c Checkpoint, ok bool, err error) {
	buf := make([]byte, 4096)
	n, err := f.ReadAt(buf, 0)
	if n == len(buf) {
		// The whole line, however long its log's path (4096 bytes cut
		// one of a path near PATH_MAX, and a checkpoint was due at
		// every append), up to what a checkpoint line can be; a line of
		// an ordinary path takes the one read, without a size asked.
		size, serr := fileSize(f)
		if serr != nil {
			return c, false, serr
		}
		buf = make([]byte, min(size, maxCheckpointState))
		n, err = f.ReadAt(buf, 0)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return c, false, err
	}
	c, ok = ParseCheckpoint(buf[:n])
	return c, ok, nil
}

// writeCheckpointState makes c the checkpoint in the checkpoint state f.
func writeCheckpointState(f *os.File, c *Checkpoint) {
	line := c.Line()
	if _, err := f.WriteAt(line, 0); err == nil {
		f.Truncate(int64(len(line)))
	}
}

func (l *Log) warn(err error) {
	if l.opts.Warn != nil {
		l.opts.Warn(err)
	}
}

// ship writes c to the checkpoint file and sends it to every syslog
// destination, those in parallel (a destination that does not answer
// costs its send's time once, not once per destination); failures go
// to Options.Warn, and each destination's outcome to
// [CheckpointOptions.Sent], file first, then the syslog destinations in
// order. report, when not nil, is asked before each report (count
// true) and before the shipment is confirmed (count false) whether it
// may be made: false once the shipment was given up
// ([Log.ShipInBackground]'s stop reported its destinations itself).
func (l *Log) ship(ctx context.Context, c *Checkpoint, report func(count bool) bool) {
	o := l.opts.Checkpoints
	line := c.Line()
	shipped := false
	sent := func(kind, what string, err error) {
		if report != nil && !report(true) {
			return
		}
		if err != nil && ctx.Err() != nil && !errors.Is(err, context.Cause(ctx)) {
			// Why ctx ended, where it did.
			err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
		}
		if err != nil {
			l.warn(fmt.Errorf("checkpoint %s: %w", what, err))
		}
		shipped = shipped || err == nil
		if o.Sent != nil {
			o.Sent(c, kind, err)
		}
	}
	if o.File != "" {
		sent(DestFile, "file", appendFile(ctx, o.File, line))
	}
	if len(o.Syslog) > 0 {
		msg := syslog.Message(l.opts.Now(), syslog.Info, c.Host, "nsrel", "checkpoint", line[:len(line)-1])
		errs := make([]error, len(o.Syslog))
		if len(o.Syslog) == 1 {
			errs[0] = syslog.Send(ctx, o.Syslog[0], msg)
		} else {
			var wg sync.WaitGroup
			for i, d := range o.Syslog {
				wg.Go(func() { errs[i] = syslog.Send(ctx, d, msg) })
			}
			wg.Wait()
		}
		for i, d := range o.Syslog {
			sent(DestKind(d), "to syslog "+d.String(), errs[i])
		}
	}
	if shipped && (report == nil || report(false)) {
		l.confirmShipped(c)
		if o.Shipped != nil {
			o.Shipped(c)
		}
	}
}

// RetryAfter is how soon, with checkpoints due by time (EverySeconds),
// an append emits a checkpoint again after one reached no destination
// (at most EverySeconds): the checkpoint lost would otherwise wait its
// full turn, and retrying on every append would hold up each one while
// a collector is unreachable.
const RetryAfter = 30 * time.Second

// confirmShipped puts c, which reached a destination, in the checkpoint
// state in place of its unshipped form (see [Log.unshipped]), under the
// log's lock and only while the state still holds that.
func (l *Log) confirmShipped(c *Checkpoint) {
	back := l.unshipped(c)
	if back == c {
		return
	}
	// Not the caller's context: the lock is taken for a moment, and a
	// run whose deadline passed must not wait for it. (Failing, the next
	// checkpoint comes RetryAfter after c: one more, no harm.)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, unlock, err := l.lock(ctx)
	if err != nil {
		return
	}
	defer unlock()
	f, err := openOwned(l.checkpointState(), unix.O_RDWR)
	if err != nil {
		return // gone, or one others may write, not written (checkpointDue)
	}
	defer f.Close()
	if prev, ok, err := readCheckpointState(f); err != nil || !ok || prev != *back {
		return // a later checkpoint was made since
	}
	writeCheckpointState(f, c)
}

// dropShipment says that c will not be shipped (err: why), to
// Options.Warn and for every destination to [CheckpointOptions.Sent],
// but the first from (those a shipment given up reported already, in
// [Log.ship]'s order).
func (l *Log) dropShipment(c *Checkpoint, err error, from int) {
	o := l.opts.Checkpoints
	var kinds []string
	if o.File != "" {
		kinds = append(kinds, DestFile)
	}
	for _, d := range o.Syslog {
		kinds = append(kinds, DestKind(d))
	}
	if from >= len(kinds) {
		// Every destination reported how it went: given up while it
		// confirmed the shipment (its state then says not shipped, and
		// it is made again).
		return
	}
	l.warn(fmt.Errorf("checkpoint of seq %d not shipped: %w", c.Seq, err))
	if o.Sent == nil {
		return
	}
	for _, k := range kinds[from:] {
		o.Sent(c, k, err)
	}
}

// MaxShipQueue bounds the checkpoints a log from
// [Log.ShipInBackground] keeps waiting to be shipped.
const MaxShipQueue = 64

// ErrShipQueueFull is why a checkpoint was not shipped when
// [MaxShipQueue] checkpoints were waiting already (a later one pins
// everything before it).
var ErrShipQueueFull = errors.New("too many checkpoints waiting to be shipped (the destinations are slow); dropped the oldest")

// shipper ships the checkpoints of a log from [Log.ShipInBackground].
type shipper struct {
	mu      sync.Mutex
	queue   []*Checkpoint
	running bool
	stopped bool
	idle    *sync.Cond
	// ctx is the shipments' context; stop cancels it, with
	// errServiceStopped, for the one under way.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// reported counts the destinations the shipment under way reported;
	// abandoned is set by a stop that gave it up and reported the others
	// itself.
	inflight  *Checkpoint
	reported  int
	abandoned bool
}

// ShipGrace is how long [Log.ShipInBackground]'s stop waits, after its
// context ended, for the checkpoint under way: a send gives up at once,
// but a write to a hung disk may not.
const ShipGrace = time.Second

// errServiceStopped is why a checkpoint [Log.ShipInBackground] had not
// shipped when stop returned was not.
var errServiceStopped = errors.New("the service stopped first")

// ShipInBackground returns a log for the same files and options whose
// appends (and [Log.CheckpointIfDue]) do not ship the checkpoint they
// emit before they return: a goroutine ships the checkpoints, one at a
// time, in order, each with the time [syslog.Send] gives every
// destination. It is for a writer that must answer within a deadline
// whatever the destinations do (the NRI plugin: a record is durable
// when its append returns, and the answer must not wait for a collector
// that is down). At most [MaxShipQueue] checkpoints wait; beyond that
// the oldest is dropped ([ErrShipQueueFull], said to Options.Warn and
// [CheckpointOptions.Sent]). stop waits until the checkpoints queued
// were shipped or ctx is done; those still waiting then are dropped the
// same way, and the one being shipped gives up at once, each
// destination it did not reach reported to Sent as failed (by stop
// itself if it has not ended [ShipGrace] later: a hung disk). Appends
// after stop ship before they return again.
func (l *Log) ShipInBackground() (bg *Log, stop func(context.Context)) {
	s := &shipper{}
	s.idle = sync.NewCond(&s.mu)
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	bg = &Log{path: l.path, opts: l.opts, shipper: s, index: l.index}
	// waitIdle waits until cond holds (under s.mu, checked at each
	// change of the shipper) or stop is closed.
	waitIdle := func(cond func() bool, stop <-chan struct{}) bool {
		done := make(chan struct{})
		go func() {
			s.mu.Lock()
			for !cond() {
				s.idle.Wait()
			}
			s.mu.Unlock()
			close(done)
		}()
		select {
		case <-done:
			return true
		case <-stop:
			return false
		}
	}
	return bg, func(ctx context.Context) {
		waitIdle(func() bool { return !s.running || s.stopped }, ctx.Done())
		s.mu.Lock()
		s.stopped = true
		left := s.queue
		s.queue = nil
		s.idle.Broadcast()
		s.mu.Unlock()
		// The checkpoint under way, if any, gives up and says so
		// itself; it must have before stop returns (the process exits
		// next): a send stops at once when its context ends, and
		// what does not (a write to a hung disk) gets ShipGrace.
		s.cancel(errServiceStopped)
		grace, cancel := context.WithTimeout(context.Background(), ShipGrace)
		defer cancel()
		if !waitIdle(func() bool { return !s.running }, grace.Done()) {
			s.mu.Lock()
			s.abandoned = true
			c, from := s.inflight, s.reported
			s.mu.Unlock()
			if c != nil {
				bg.dropShipment(c, fmt.Errorf("%w: its shipment did not end %v after it was cancelled (a hung disk?)", errServiceStopped, ShipGrace), from)
			}
		}
		for _, c := range left {
			bg.dropShipment(c, fmt.Errorf("%w: %w", errServiceStopped, ctx.Err()), 0)
		}
	}
}

// shipAfter ships c, now or, for a log from [Log.ShipInBackground],
// in the background.
func (l *Log) shipAfter(ctx context.Context, c *Checkpoint) {
	s := l.shipper
	if s == nil {
		l.ship(ctx, c, nil)
		return
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		l.ship(ctx, c, nil)
		return
	}
	var drop *Checkpoint
	if len(s.queue) == MaxShipQueue {
		drop, s.queue = s.queue[0], s.queue[1:]
	}
	s.queue = append(s.queue, c)
	start := !s.running
	s.running = true
	s.mu.Unlock()
	if drop != nil {
		l.dropShipment(drop, ErrShipQueueFull, 0)
	}
	if start {
		go l.shipQueued()
	}
}

func (l *Log) shipQueued() {
	s := l.shipper
	for {
		s.mu.Lock()
		if len(s.queue) == 0 || s.stopped {
			s.running = false
			s.idle.Broadcast()
			s.mu.Unlock()
			return
		}
		c := s.queue[0]
		s.queue = s.queue[1:]
		s.inflight, s.reported = c, 0
		s.mu.Unlock()
		l.ship(s.ctx, c, func(count bool) bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.abandoned {
				return false
			}
			if count {
				s.reported++
			}
			return true
		})
		s.mu.Lock()
		s.inflight = nil
		s.mu.Unlock()
	}
}

// appendFile appends data, one line, to a file shippers read (created
// 0600, with its directory 0700), in one write. Its directories must be
// trusted and its own writable by root only ([safefile.OpenPrivate]):
// whoever could swap them could read, cut or add to what is shipped.
//
// A line of its own: when the file does not end with a newline (a write
// cut short by a full disk, or a writer killed mid-write, left part of a
// line), a newline goes first, in the same write, so that the line is
// not glued onto the fragment where no reader would parse it. Writers
// ship after the log's lock is released, so a lock of the file's own
// (flock(2) of PATH.lock, waited for until ctx is done or
// [syslog.Timeout], as a syslog destination is) makes looking at its end
// and writing one step. The lock is a file beside it that nobody else
// may read ([checkLockMode]), not the file itself: a shipper, or any
// user, that may read the file (rsyslog reads it as user syslog on
// Ubuntu) could hold a shared lock of it and stop every checkpoint.
// A write cut short is an error: the line did not get there whole.
func appendFile(ctx context.Context, path string, data []byte) error {
	lf, err := createLock(path + lockSuffix)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, syslog.Timeout)
	defer cancel()
	// flockWait closes lf on failure.
	unlock, err := flockWait(ctx, lf, unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	f, err := safefile.OpenPrivate(path, unix.O_RDWR|unix.O_APPEND|unix.O_CREAT, false)
	if err != nil {
		return err
	}
	size, err := fileSize(f)
	if err == nil && size > 0 {
		end := make([]byte, 1)
		if _, err = f.ReadAt(end, size-1); err == nil && end[0] != '\n' {
			data = append([]byte{'\n'}, data...)
		}
	}
	if err == nil {
		// The space reserved first (a full disk, or the file size limit,
		// fails the append before a byte is written: no torn line).
		err = reserve(f, size, len(data), safefile.FileSizeLimit())
	}
	if err == nil {
		// os.File.Write says why a write came short (ENOSPC).
		_, err = f.Write(data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// CheckpointIfDue emits a checkpoint of the chain as it is when one is
// due by time (EverySeconds) although nothing was appended: a long-lived
// writer (the containerd event recorder) calls it now and then, so that
// a quiet node still ships its head. It does nothing without checkpoints
// or records.
func (l *Log) CheckpointIfDue(ctx context.Context) error {
	o := l.opts.Checkpoints
	if o == nil || o.EverySeconds <= 0 {
		return nil
	}
	lf, unlock, err := l.lock(ctx)
	if err != nil {
		return err
	}
	var c *Checkpoint
	var warns []error
	// Held to the rule an append holds it to: a checkpoint of a file
	// another user may write would vouch for what they planted.
	f, err := openOwned(l.path, unix.O_RDONLY)
	if err == nil {
		var last *Record
		var damaged []DamagedLine
		if last, damaged, err = l.lastGood(f, readHint(lf)); err == nil && last != nil {
			// Where the head is, for the appends after: a quiet node's
			// writer calls this more often than it appends, and
			// without a hint each call follows the chain from an
			// anchor (see hint.go). Not past damaged lines, which the
			// next append records.
			if len(damaged) == 0 {
				hintHead(f, lf, last)
			}
			// A checkpoint names only records on the disk: an append
			// whose sync failed emitted none, and one shipped now
			// would contradict the log were they lost.
			if serr := unix.Fdatasync(int(f.Fd())); serr != nil {
				f.Close()
				unlock()
				return fmt.Errorf("audit: fdatasync %s before a checkpoint: %w (no checkpoint emitted)", l.path, serr)
			}
			// The sealing state, read for its key (the records' keys
			// are gone). It is written only when behind the log: a
			// crash after an append, before the state's write-back
			// landed, left the key of the log's last record on the
			// disk, and on a quiet node no append would destroy it.
			var s *sealer
			var why string
			if sealedChain(last) && last.Seal != "" {
				if s, why = l.sealerFor(last, false); s != nil && s.behind > 0 {
					if err := s.persist(); err != nil {
						warns = append(warns, fmt.Errorf("audit: sealing state behind the log, not written back (the keys of records written stay on the node): %w", err))
					}
				}
			}
			seal := func(c *Checkpoint) {
				switch {
				case !sealedChain(last):
					// No key to seal it with.
				case last.Seal == "":
					// A sealed chain whose last record is unsealed (its
					// seal error says why): nothing to seal it after.
					warns = append(warns, fmt.Errorf("audit: checkpoint of seq %d not sealed: that record is not (%s)", last.Seq, last.SealError))
				case s == nil:
					warns = append(warns, fmt.Errorf("audit: checkpoint of seq %d not sealed: %s", last.Seq, why))
				default:
					s.sealCheckpoint(c)
				}
			}
			c = l.checkpointDue(last, false, false, seal, func(err error) { warns = append(warns, err) })
			s.close()
		}
		f.Close()
	} else if errors.Is(err, fs.ErrNotExist) {
		err = nil
		// No current file but rotated ones: a rotation cut short
		// between its rename and the new file (the next append makes
		// it and goes on from them). The records of the rotated files
		// may be covered by no checkpoint: said, not passed over.
		if files, rerr := l.rotated(); rerr == nil && len(files) > 0 {
			err = fmt.Errorf("audit: %s is missing, its rotated files are there (a rotation cut short?): no checkpoint until the next append makes it", l.path)
		}
	}
	unlock()
	for _, w := range warns {
		l.warn(w)
	}
	if c != nil {
		l.shipAfter(ctx, c)
	}
	return err
}
