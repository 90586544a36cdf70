package audit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"strconv"
	"strings"
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
}

// Line returns the checkpoint as one JSON line (newline included):
// {"type":"nsrel-checkpoint","format":"1",...}.
func (c *Checkpoint) Line() []byte {
	b := []byte(`{"type":"` + CheckpointType + `","format":"1"`)
	b = appendJSONString(appendKey(b, true, "host"), c.Host)
	b = appendJSONString(appendKey(b, true, "log"), c.Log)
	b = strconv.AppendUint(appendKey(b, true, "seq"), c.Seq, 10)
	b = appendJSONString(appendKey(b, true, "hash"), c.Hash)
	b = appendOptString(b, "seal", c.Seal)
	b = appendJSONString(appendKey(b, true, "time"), c.Time)
	return append(b, '}', '\n')
}

// ParseCheckpoint reads a checkpoint line. Text before the first '{' is
// ignored, so that lines a syslog collector wrote with its own prefix
// read too; ok is false for a line that is not a checkpoint.
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
		}
	}
	return c, typ && c.Seq > 0 && len(c.Hash) == 64
}

// ReadCheckpoints yields the checkpoints in the files (JSON Lines, or a
// collector's syslog file), skipping other lines.
func ReadCheckpoints(files ...string) iter.Seq2[Checkpoint, error] {
	return func(yield func(Checkpoint, error) bool) {
		for _, file := range files {
			f, err := os.Open(file)
			if err != nil {
				yield(Checkpoint{}, err)
				return
			}
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64<<10), MaxLine)
			for sc.Scan() {
				if c, ok := ParseCheckpoint(sc.Bytes()); ok {
					if !yield(c, nil) {
						f.Close()
						return
					}
				}
			}
			err = sc.Err()
			f.Close()
			if err != nil {
				yield(Checkpoint{}, fmt.Errorf("%s: %w", file, err))
				return
			}
		}
	}
}

// checkpointState is the file next to the log that holds the last
// checkpoint, to know when the next is due.
func (l *Log) checkpointState() string { return l.path + ".checkpoint" }

// checkpointDue decides, under the lock, whether the append that ended
// with last emits a checkpoint, and if so records it as the last one.
func (l *Log) checkpointDue(last *Record, force bool) *Checkpoint {
	o := l.opts.Checkpoints
	if o == nil || last == nil {
		return nil
	}
	now := l.opts.Now().UTC()
	f, err := openRegular(l.checkpointState(), unix.O_RDWR|unix.O_CREAT)
	if err != nil {
		l.warn(fmt.Errorf("checkpoint state: %w", err))
		return nil
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		l.warn(fmt.Errorf("checkpoint state: %w", err))
		return nil
	}
	prev, ok := ParseCheckpoint(buf[:n])
	if ok && !force && last.Seq >= prev.Seq && last.Seq-prev.Seq < uint64(o.EveryRecords) {
		t, err := time.Parse(time.RFC3339Nano, prev.Time)
		if o.EverySeconds <= 0 || (err == nil && now.Sub(t) < time.Duration(o.EverySeconds)*time.Second) {
			return nil
		}
	}
	c := &Checkpoint{Host: last.Host, Log: l.path, Seq: last.Seq, Hash: last.Hash, Seal: last.Seal, Time: now.Format(time.RFC3339Nano)}
	line := c.Line()
	if _, err := f.WriteAt(line, 0); err == nil {
		f.Truncate(int64(len(line)))
	}
	return c
}

func (l *Log) warn(err error) {
	if l.opts.Warn != nil {
		l.opts.Warn(err)
	}
}

// ship writes c to the checkpoint file and sends it to every syslog
// destination; failures go to Options.Warn.
func (l *Log) ship(ctx context.Context, c *Checkpoint) {
	o := l.opts.Checkpoints
	line := c.Line()
	shipped := false
	if o.File != "" {
		if err := appendFile(o.File, line); err != nil {
			l.warn(fmt.Errorf("checkpoint file: %w", err))
		} else {
			shipped = true
		}
	}
	if len(o.Syslog) > 0 {
		msg := syslog.Message(l.opts.Now(), syslog.Info, c.Host, "nsrel", "checkpoint", line[:len(line)-1])
		for _, d := range o.Syslog {
			if err := syslog.Send(ctx, d, msg); err != nil {
				l.warn(fmt.Errorf("checkpoint to syslog %s: %w", d, err))
			} else {
				shipped = true
			}
		}
	}
	if shipped && o.Shipped != nil {
		o.Shipped(c)
	}
}

// appendFile appends data to a file shippers read (created 0600, with
// its directory 0700), in one write. Its directories must be trusted and
// its own writable by root only ([safefile.OpenPrivate]): whoever could
// swap them could read, cut or add to what is shipped.
func appendFile(path string, data []byte) error {
	f, err := safefile.OpenPrivate(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT, false)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
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
	unlock, err := l.lock(ctx)
	if err != nil {
		return err
	}
	var c *Checkpoint
	f, err := openRegular(l.path, unix.O_RDONLY)
	if err == nil {
		var last *Record
		if last, _, err = l.lastGood(f); err == nil && last != nil {
			c = l.checkpointDue(last, false)
		}
		f.Close()
	} else if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	unlock()
	if c != nil {
		l.ship(ctx, c)
	}
	return err
}
