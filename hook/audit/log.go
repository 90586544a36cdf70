package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/safefile"
	"github.com/nsrel/nsrel/internal/vocab"
)

// Options tune a [Log].
type Options struct {
	// RotateBytes is the size at which the current file is rotated before
	// the next append; 0 never rotates.
	RotateBytes int64
	// KeepFiles is how many rotated files are kept; 0 keeps all. The
	// append that rotates removes older ones and records each removal
	// ([StageRetention]), and emits a checkpoint.
	KeepFiles int
	// SealState is the forward-secure sealing state ([InitSeal]), or ""
	// for none. While it exists, every record appended is sealed.
	SealState string
	// Checkpoints says when and where checkpoints of the chain are
	// emitted; nil for never.
	Checkpoints *CheckpointOptions
	// Warn, if set, receives problems that do not fail an append (a
	// checkpoint that could not be shipped).
	Warn func(error)
	// RefuseUnsealed makes an append fail (ErrSealedLog) rather than
	// write unsealed records after sealed ones when SealState is "": for
	// writers that do not know the log's sealing state (a config that
	// could not be read up to its seal_state; an operator's record in a
	// log not of its config). Such records fail verify for good, so a
	// writer that merely lacks the setting must not write them.
	RefuseUnsealed bool
	// RequireSealed makes an append fail (ErrSealedLog) rather than
	// write unsealed records after sealed ones for any reason: no
	// SealState, or one that is missing or cannot be read (which writers
	// of containers' records note in the record and write on). For an
	// operator's record (audit ack), which can wait until the state is
	// put right, under a config that may not be the writers'.
	RequireSealed bool
	// Written, if set, is called with the caller's record (nil if none)
	// right after its line was written, before it is synced: from then
	// on the record is in the log, whatever happens to the process.
	Written func(*Record)
	// Writing, if set, is called with the caller's record right before
	// its line is written (not when there is none); the function it
	// returns, if not nil, is called with the write's error (nil: the
	// line is in the log, and Written follows) as soon as the write
	// returns. A writer whose deadline passes while the write is under
	// way can wait for it rather than contradict the line it may leave;
	// one that has given up on the record already (and said so) returns
	// an error, and nothing is written.
	Writing func(*Record) (func(error), error)
	// Appended, if set, is called by every [Log.AppendWith] (and so
	// every append) with how long it took, waiting for the lock and
	// syncing included, shipping a checkpoint it emitted not, and its
	// error: for metrics.
	Appended func(took time.Duration, err error)
	// Host and Version fill records that leave them empty; defaults: the
	// host name and "unknown".
	Host, Version string
	// BootID fills records that leave it empty; default: this boot's
	// ([BootID]).
	BootID string
	// Now returns the time for records without one; default time.Now.
	Now func() time.Time
	// IndexRotated has searches ([Searcher.Last]) remember which
	// container IDs each rotated file holds, reading each file once, and
	// skip the files that hold no record of the container searched for:
	// for a long-running writer that searches at every container start
	// (the event recorder, the NRI plugin). A one-shot writer (the hook)
	// would read whole files its search stops early in.
	IndexRotated bool
}

// Log is an audit log at a path, with its rotated files. It holds no open
// files between calls and is safe for concurrent use, in one process and
// across processes.
type Log struct {
	path string
	opts Options
	// shipper, if set, ships checkpoints in the background
	// ([Log.ShipInBackground]).
	shipper *shipper
	// index, with [Options.IndexRotated], remembers the container IDs
	// of rotated files.
	index *rotatedIndex
	// liveHost: no [Options.Host] was given; each append reads the
	// host name, so that a long-running writer (the event recorder, the
	// NRI plugin) goes on under a node's new name with the hook, not
	// interleaving the old one into the chain.
	liveHost bool
}

// Open returns the log at path (an absolute path; the file itself is
// created by the first append, its directory too, 0700).
func Open(path string, opts Options) (*Log, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("audit: log path %q is not absolute", path)
	}
	liveHost := opts.Host == ""
	if liveHost {
		opts.Host = hostName("")
	}
	if opts.Version == "" {
		opts.Version = "unknown"
	}
	if opts.BootID == "" {
		opts.BootID = BootID()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Log{path: filepath.Clean(path), opts: opts, liveHost: liveHost}
	if opts.IndexRotated {
		l.index = newRotatedIndex()
	}
	return l, nil
}

// Path returns the path of the current file.
func (l *Log) Path() string { return l.path }

// Host returns the host name the log writes into records (now, when
// none was given: the node's name may change).
func (l *Log) Host() string {
	if l.liveHost {
		return hostName(l.opts.Host)
	}
	return l.opts.Host
}

// hostName returns the node's name (uname(2)), or old when it cannot be
// read.
func hostName(old string) string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return old
	}
	if name := unix.ByteSliceToString(u.Nodename[:]); name != "" {
		return name
	}
	return old
}

// Append adds r to the log. It fills Seq, Prev, Hash, Seal and, when
// empty, Time, Host and Version. It waits for the lock until ctx is done.
func (l *Log) Append(ctx context.Context, r *Record) error {
	_, err := l.AppendWith(ctx, func(*Searcher) (*Record, error) { return r, nil })
	return err
}

// maxDamagedLines bounds how many damaged lines at the end of the log an
// append records; beyond that it refuses to guess where the chain went.
const maxDamagedLines = 4096

// AppendWith holds the log's lock, calls build with a [Searcher] over the
// records already written, and appends the record build returns (nil
// appends nothing). It returns the record appended. Use it to decide and
// append atomically, e.g. to skip a start another writer recorded.
//
// Before the record, the same write appends what the log itself must
// record: a torn last line a crash left, which it ends with [TornMark]
// ([StageTornTail]),
// complete lines at the end that do not decode ([StageDamaged]: the
// chain goes on from the last good record, the damaged lines stay in the
// file), and rotated files removed by retention ([StageRetention]).
// Files are checked before use (owner, mode, directories: see package
// safefile); a log, lock or state that fails is refused.
func (l *Log) AppendWith(ctx context.Context, build func(*Searcher) (*Record, error)) (*Record, error) {
	return l.appendWith(ctx, build, nil, false)
}

// appendWith is [Log.AppendWith] with settle, if set, called under the
// log's lock right after the append with its record and error: what it
// returns is the append's error. With ifSealed it writes nothing unless
// the chain's records are sealed, or should be ([sealedChain]).
func (l *Log) appendWith(ctx context.Context, build func(*Searcher) (*Record, error), settle func(*Record, error) error, ifSealed bool) (*Record, error) {
	start := time.Now()
	lf, unlock, err := l.lock(ctx)
	if err != nil {
		l.appended(start, err)
		return nil, err
	}
	var warns []error
	ckpt, rec, err := l.appendLocked(ctx, lf, build, &warns, ifSealed, false)
	var ended *Checkpoint // of the torn tail's record, ended first
	switch {
	case errors.Is(err, errRotateFirst):
		// Under a file size limit, what this append owes (late seals,
		// damage records) and its record do not fit after what the
		// file holds, below the size at which it rotates: it rotates
		// now, and the append is made again, in the new file.
		warns = nil
		ckpt, rec, err = l.appendLocked(ctx, lf, build, &warns, ifSealed, true)
	case errors.Is(err, errTornEnded):
		// The same after a torn tail: its record (and what it owes
		// with it) was written alone, ending it; the rest goes in a
		// new file. The caller's record, when it was written with
		// it (seal-init's seal-start record, which comes first), is
		// not built again.
		ended = ckpt
		if done := rec; done != nil {
			ckpt, _, err = l.appendLocked(ctx, lf, func(*Searcher) (*Record, error) { return nil, nil }, &warns, ifSealed, true)
			rec = done
		} else {
			ckpt, rec, err = l.appendLocked(ctx, lf, build, &warns, ifSealed, true)
		}
	}
	if settle != nil {
		err = settle(rec, err)
	}
	unlock()
	// Said once the lock is free: a warning goes to the diagnostics,
	// which may be a syslog server that is slow to take it.
	for _, w := range warns {
		l.warn(w)
	}
	l.appended(start, err)
	for _, c := range []*Checkpoint{ended, ckpt} {
		if c != nil {
			// Shipped outside the lock: a slow syslog server must not
			// hold up other writers.
			l.shipAfter(ctx, c)
		}
	}
	return rec, err
}

// appended tells Options.Appended how long an append that started at
// start took and how it ended.
func (l *Log) appended(start time.Time, err error) {
	if l.opts.Appended != nil {
		l.opts.Appended(time.Since(start), err)
	}
}

// errRotateFirst is the error of an append that would pass the file size
// limit in a file it may rotate first (see appendWith); errTornEnded that
// of one that wrote only the record of the torn tail, ending it, so that
// the rest could go in a new file.
var (
	errRotateFirst = errors.New("the append does not fit under the file size limit: rotate first")
	errTornEnded   = errors.New("the append does not fit under the file size limit after the torn tail: its record written alone, rotate")
)

// appendLocked makes the append under the log's lock; rotate rotates the
// current file first whatever its size (if it holds anything).
func (l *Log) appendLocked(ctx context.Context, lf *os.File, build func(*Searcher) (*Record, error), warns *[]error, ifSealed, rotate bool) (*Checkpoint, *Record, error) {
	warn := func(err error) { *warns = append(*warns, err) }
	// The file size limit of this process (-1: none), read once.
	lim := safefile.FileSizeLimit()
	f, err := openOwned(l.path, unix.O_RDWR|unix.O_APPEND|unix.O_CREAT)
	if err != nil {
		return nil, nil, err
	}
	defer func() { f.Close() }()

	// A torn tail is ended with [TornMark] and a newline by the write
	// that records its bytes, right before its record: the bytes stay
	// where they are, so that a tailer that read them already (a
	// shipper) reads on to the same lines as the file holds. Only a
	// tail too long to be a line is written over (see overwriteTorn).
	// An error or a crash before the write leaves the tail for the
	// next append, not lost.
	torn, tornBytes, cut, err := tornTail(f)
	if err != nil {
		return nil, nil, err
	}
	overwrite := torn != nil && tornBytes+int64(len(TornMark)) >= MaxLine
	last, damaged, err := l.lastGood(f, readHint(lf))
	if err != nil {
		return nil, nil, err
	}
	// A log with no record yet was most likely made by this append: its
	// name in the directory is synced with its first records, else a
	// power loss could lose the file whose records a checkpoint names.
	fresh := last == nil
	var dropped []Dropped
	var drop []string
	// dirErr says why the directory's names may not survive a crash: no
	// checkpoint then names this append's records.
	var dirErr error
	// dirSynced: the directory synced by this append, successfully.
	dirSynced := false
	if l.opts.RotateBytes > 0 && torn == nil { // with a torn tail, the next append rotates
		nf, rotatedTo, err := l.maybeRotate(f, last, rotate, lim)
		if err != nil {
			return nil, nil, err
		}
		if nf != f {
			// Both names synced before the records go in: a power loss
			// must not lose the file whose records a checkpoint names.
			dirErr = syncDir(filepath.Dir(l.path))
			dirSynced = dirErr == nil
			// The damaged lines found are in the file just renamed.
			for i := range damaged {
				if damaged[i].File == filepath.Base(l.path) {
					damaged[i].File = filepath.Base(rotatedTo)
				}
			}
			f.Close()
			f = nf
			// Retention waits for a rotation whose names are synced: a
			// directory that keeps failing would have every rotation
			// record the files kept again.
			if dirErr == nil {
				if dropped, drop, err = l.retention(warn, lim); err != nil {
					return nil, nil, err
				}
			}
		}
	}

	var pending []*Record
	var tr *Record // the torn tail's record
	if len(damaged) > 0 {
		pending = append(pending, damageRecord(damaged))
	}
	if torn != nil {
		sum := sumRange(f, cut, tornBytes)
		if sum == "" {
			return nil, nil, fmt.Errorf("audit: read the torn tail of %s", l.path)
		}
		tr = &Record{Source: SourceAudit, Stage: StageTornTail, Torn: string(bytes.ToValidUTF8(torn, []byte("\uFFFD"))), TornBytes: int(tornBytes), TornSHA256: sum,
			Error: "the previous write was cut short (crash?): the line before this record is its bytes, ended with " + strconv.Quote(TornMark)}
		if overwrite {
			// Written over the torn bytes, after the damage record of
			// the lines before them.
			tr.Error = "the previous write was cut short (crash?); its bytes, too many for a line, were moved into this record"
			pending = append(pending, tr)
		} else {
			// Right after the torn line, which verify matches with it;
			// the damage record of the lines before that line after it.
			pending = append([]*Record{tr}, pending...)
		}
	}
	for _, d := range dropped {
		pending = append(pending, &Record{Source: SourceAudit, Stage: StageRetention, Dropped: &d,
			Error: fmt.Sprintf("removed by retention (keep_files %d) once this record is synced, with a checkpoint of the chain up to here (if the sync fails, the file stays and the next rotation records it again)", l.opts.KeepFiles)})
	}
	// Even when build fails, what the log must record is written: the
	// torn bytes, for one, which the write goes over.
	r, berr := build(&Searcher{log: l, ctx: ctx, pending: damaged})
	switch {
	case berr != nil || r == nil:
		r = nil
	case r.Stage == StageSealStart:
		// The first record a new sealing key seals must introduce it.
		pending = append([]*Record{r}, pending...)
	default:
		pending = append(pending, r)
	}
	if len(pending) == 0 || ifSealed && !sealedChain(last) {
		if len(pending) == 0 && last != nil {
			// Nothing to write (the record built was not needed): the
			// head for the next append all the same (see hint.go).
			hintHead(f, lf, last)
		}
		return nil, nil, berr
	}

	s, sealErr := l.sealerFor(last, r != nil && r.Stage == StageSealStart)
	defer s.close()
	if s == nil && (last != nil && last.Seal != "" && l.opts.SealState == "" && l.opts.RefuseUnsealed || l.opts.RequireSealed && sealedChain(last)) {
		if sealErr != "" && l.opts.SealState != "" {
			return nil, nil, fmt.Errorf("audit: %s: %w (%s)", l.path, ErrSealedLog, sealErr)
		}
		return nil, nil, fmt.Errorf("audit: %s: %w", l.path, ErrSealedLog)
	}
	var keys [][32]byte
	var first uint64
	if s != nil {
		if id := s.state.ID.String(); s.introduce && (pending[0].Stage != StageSealStart || pending[0].SealID != id) {
			// A sealing key no record introduced yet (seal-init whose
			// own record could not be written): the first record it
			// seals says so.
			pending = append([]*Record{{Source: SourceAudit, Stage: StageSealStart, SealID: id,
				Error: "a sealing key no record introduced: the first record it seals names it"}}, pending...)
		}
		first, keys = s.keys(len(s.late) + len(pending))
	}
	var late []string // the seals of s.late, on the first record written
	if keys != nil && len(s.late) > 0 {
		n := len(s.late)
		late = s.lateSeals(first, keys[:n])
		first, keys = first+uint64(n), keys[n:]
	}
	var gapAt uint64 // the seq of the record whose seal shows keys without records
	if keys != nil && s.skipped > 0 && last != nil && last.Seal != "" {
		gapAt = last.Seq + 1
	}
	var gapWarn error // the same after unsealed records, which it leaves unsealed
	if keys != nil && s.gapSeq != 0 && last != nil {
		gapWarn = fmt.Errorf("audit: sealing state %s was %d key(s) past the log's last sealed record (seq %d, key %s): the records those keys sealed are not in the log (cut off its end, or lost in a crash after a failed sync), so seq %d to %d, written unsealed since, cannot be sealed late: verify fails at seq %d", s.path, s.skipped, s.gapSeq, s.state.ID, s.gapSeq+1, last.Seq, s.gapSeq+1)
	}
	var out []byte
	var lens []int // of each record's line in out
	written, lastLen := 0, 0
	host := l.Host()
	for i, p := range pending {
		if p.Time == "" {
			p.Time = l.opts.Now().UTC().Format(time.RFC3339Nano)
		}
		if p.Host == "" {
			p.Host = host
		}
		if p.BootID == "" {
			p.BootID = l.opts.BootID
		}
		if p.Version == "" {
			p.Version = l.opts.Version
		}
		p.Seq, p.Prev = 1, ""
		if last != nil {
			p.Seq, p.Prev = last.Seq+1, last.Hash
		}
		p.Seal, p.LateSeals = "", nil
		if i == 0 {
			p.LateSeals = late
		}
		if keys == nil && sealErr != "" {
			p.SealError = vocab.Cut(sealErr, maxDamageReason*4)
		}
		sealed := func() []byte {
			body := p.body()
			if keys != nil {
				h, _ := hex.DecodeString(p.Hash)
				e := first + uint64(i)
				p.Seal = formatSeal(s.state.ID, e, sealTag(keys[i], s.state.ID, e, h))
			}
			return body
		}
		if p == r {
			p.precut()
		}
		body := sealed()
		line, err := p.line(body)
		// The caller's record too long to be written: cut what made it
		// so, rather than leave the container unrecorded.
		for err != nil && p == r && p.shrink(len(body)) {
			body = sealed()
			line, err = p.line(body)
		}
		if err != nil {
			if p == r {
				// The caller's record is too large: the log's own records
				// are still written.
				berr, r = err, nil
				break
			}
			return nil, nil, err
		}
		out = append(out, line...)
		lens = append(lens, len(line))
		last, lastLen = p, len(line)
		written++
	}
	partial := false // only the torn tail's record written (errTornEnded)
	if lim >= 0 && !rotate && l.opts.RotateBytes > 0 && len(out) > 0 && !overwrite {
		extra := 0
		if torn != nil {
			extra = len(TornMark) + 1
		}
		if size, err := fileSize(f); err == nil && size > 0 && safefile.RoomUnder(lim, size, extra+len(out)) != nil {
			if torn == nil {
				return nil, nil, errRotateFirst
			}
			// A torn tail's record must follow it, in its file: written
			// alone (a seal-start record before it with it), when it
			// fits; the rest then goes in a new file.
			k := slices.Index(pending[:written], tr) + 1
			n := 0
			for _, x := range lens[:k] {
				n += x
			}
			if k > 0 && k < written && safefile.RoomUnder(lim, size, extra+n) == nil {
				out, written, last, lastLen, partial = out[:n], k, pending[k-1], lens[k-1], true
				if !slices.Contains(pending[:k], r) {
					r = nil // not written: built again by the retry
				}
			}
		}
	}
	var wrote func(error)
	if l.opts.Writing != nil && r != nil {
		var err error
		if wrote, err = l.opts.Writing(r); err != nil {
			// The caller has given up on the record (its deadline
			// passed, and it said so): nothing is written.
			return nil, nil, fmt.Errorf("audit: append to %s: %w (nothing written)", l.path, err)
		}
	}
	var werr error
	switch {
	case overwrite:
		if err := overwriteTorn(f, out, cut, lim); err != nil {
			werr = fmt.Errorf("audit: append to %s over its torn tail: %w", l.path, err)
		}
	case torn != nil:
		if err := endTorn(f, out, lim); err != nil {
			werr = fmt.Errorf("audit: append to %s after its torn tail: %w", l.path, err)
		}
	default:
		// The space reserved first: a full file system fails the append
		// before a byte is written (where the file system can reserve),
		// rather than leave a part of it as a torn line.
		var err error
		if len(out) > 0 { // none: the caller's record too large, the log owing none
			var size int64
			if size, err = fileSize(f); err == nil {
				// An empty file was most likely made by this append (a
				// rotation cut short before it): its name is synced too.
				fresh = fresh || size == 0 && !dirSynced
				err = reserve(f, size, len(out), lim)
			}
			if err == nil {
				_, err = f.Write(out)
			}
		}
		if err != nil {
			// Nothing whole was written (a part is a torn tail the next
			// append ends and records): the state on the disk still
			// holds the keys, the next append seals with them.
			werr = fmt.Errorf("audit: append to %s: %w", l.path, err)
		}
	}
	if wrote != nil {
		wrote(werr)
	}
	if werr != nil {
		return nil, nil, werr
	}
	if overwrite {
		if err := cutTorn(f, cut, len(out), cut+tornBytes); err != nil {
			warn(fmt.Errorf("audit: append to %s over its torn tail: %w", l.path, err))
		}
	}
	if l.opts.Written != nil {
		l.opts.Written(r)
	}
	if gapWarn != nil && written > 0 {
		warn(gapWarn)
	}
	if gapAt != 0 && written > 0 {
		warn(fmt.Errorf("audit: sealing state %s was %d key(s) past the log's last record sealed with key %s: the records those keys sealed are not in the log (cut off its end, or lost in a crash after a failed sync); verify fails at seq %d, sealed with the next key", s.path, s.skipped, s.state.ID, gapAt))
	}
	synced := true
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		// The lines are in the log, for every reader from now on, and
		// the caller's verdict stands with them (as for a deadline
		// passed once Written was called): failing the append would
		// have the caller act against its own record (refuse a
		// container the log says was allowed). What a failed sync
		// leaves in doubt is whether they survive a crash: said. No
		// checkpoint names them (one shipped would contradict the log
		// were they lost).
		synced = false
		if written > 0 {
			lost := "verify will say that keys sealed no record"
			if keys != nil && first == 0 {
				lost = "the next append introduces the sealing key again"
			}
			warn(fmt.Errorf("audit: fdatasync %s: %w (seq %d to %d are written but may not survive a crash; if they are lost, %s)", l.path, err, last.Seq-uint64(written)+1, last.Seq, lost))
		}
	}
	if synced && fresh {
		err := syncDir(filepath.Dir(l.path))
		dirErr = errors.Join(dirErr, err)
		dirSynced = dirErr == nil
	}
	if dirErr != nil {
		held := ""
		if written > 0 {
			held = fmt.Sprintf(": no checkpoint names seq %d to %d before the next append", last.Seq-uint64(written)+1, last.Seq)
		}
		warn(fmt.Errorf("audit: %s: %w (its name may not survive a crash%s)", l.path, dirErr, held))
	}
	if synced && written > 0 {
		// Where the chain's head is now, for the next append.
		if id, size, err := identity(f); err == nil {
			writeHint(lf, headHint{file: id, start: size - int64(lastLen), end: size, seq: last.Seq, hash: last.Hash})
		}
	}
	// A failed commit leaves the keys on the disk, not a hole: the next
	// append evolves the state past the records written. After a failed
	// sync the keys go all the same (a disk that keeps failing must not
	// keep every key on the node, nor stop sealing): were the lines
	// lost, verify names the keys that sealed no record, which the
	// warning above explains.
	if !synced && keys != nil && first == 0 {
		// Except for an append that introduced its key (epoch 0): were
		// its seal-start record lost, a state past epoch 0 would be a
		// key no record introduced, which is not introduced again.
		written = 0
	}
	used := written
	if written > 0 {
		used += len(late) // the first record written carries them
	}
	if err := s.commit(used); err != nil {
		warn(fmt.Errorf("audit: sealing state: %w (the keys of the records just written stay on the disk until an append rewrites it)", err))
	}
	if synced && dirErr == nil {
		// The files go only once their retention records are on the
		// disk, in a file whose name is too; otherwise the next
		// rotation removes and records them.
		// Oldest first, and none after one that stays (immutable, a
		// mount point): the files kept must follow one another, or
		// verify finds records missing between them. The next rotation
		// records those left again and tries again.
		for _, name := range drop {
			if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				warn(fmt.Errorf("audit: retention: %w (it stays, and so do the newer files this rotation was to remove: the next rotation records their removal again and tries again)", err))
				break
			}
		}
		if len(drop) > 0 {
			if err := syncDir(filepath.Dir(l.path)); err != nil {
				warn(fmt.Errorf("audit: retention: %w (the files removed may be back after a crash: the next rotation records their removal again)", err))
			}
		}
	}
	var ckpt *Checkpoint
	if written > 0 && (dirErr != nil || fresh && !synced) {
		// Due at the next append, or the next check of a quiet node,
		// which syncs the directory first (checkpointDue): this one's
		// did not (failed, or skipped after a failed fdatasync).
		l.checkpointDueNext(warn)
	}
	if synced && dirErr == nil {
		// An append that introduced a key (its seal-start record, at
		// epoch 0, with the records after it in the same append: a
		// torn tail's record, the first record of a key seal-init
		// could not write) always emits a checkpoint: with its
		// checkpoint seal it says where the key's epochs are, so that
		// verify tells a copy of any later checkpoint of the key moved
		// to another seq (sealedSeqs) from the node's.
		ckpt = l.checkpointDue(last, len(dropped) > 0 || keys != nil && first == 0, dirSynced, s.sealCheckpoint, warn)
	}
	switch {
	case partial:
		return ckpt, r, errTornEnded
	case berr != nil:
		return ckpt, nil, berr
	}
	return ckpt, r, nil
}

// sealerFor opens the sealing state for an append whose chain ends with
// last; newKey says the append introduces the state's key (seal-init's
// seal-start record). It returns the sealer (nil when sealing is off)
// and, when the records cannot be sealed although they should be, why.
func (l *Log) sealerFor(last *Record, newKey bool) (*sealer, string) {
	if l.opts.SealState == "" {
		if sealedChain(last) {
			return nil, "no sealing state configured (seal_state), though the records before are sealed"
		}
		return nil, ""
	}
	s, err := openSealer(l.opts.SealState)
	if err != nil {
		return nil, "sealing state: " + err.Error()
	}
	if s == nil {
		if sealedChain(last) {
			return nil, "sealing state " + l.opts.SealState + " is missing, though the records before are sealed"
		}
		return nil, ""
	}
	// The next record sealed must introduce the key when the chain ends
	// with a record sealed with another key, or with none (an unsealed
	// record that says why it is not sealed does not count: the key it
	// could not use is the one before).
	stop := func(why string) (*sealer, string) {
		s.close()
		return nil, stopReason(s.state.ID, why)
	}
	switch {
	case last == nil:
		s.introduce = true
	case last.Seal == "" && (last.SealError == "" || newKey):
		// Not sealed before, or a new key from seal-init: nothing to
		// check the state against.
		s.introduce = true
	case last.Seal == "":
		// Unsealed records that say why, after sealed ones: the state
		// could not be used for a while. It may be behind the last
		// sealed record (a crash before its commit: the next record
		// would reuse that record's key, which the node kept
		// meanwhile) or far behind it (restored from an older copy), so
		// it seals again only once checked against that record.
		if id, ok := stoppedKey(last.SealError); ok {
			switch {
			case id == s.state.ID.String():
				// Found stale before: stays so until seal-init
				// --replace, without reading the log again at every
				// append.
				s.close()
				return nil, last.SealError
			case s.state.Epoch != 0:
				return stop(fmt.Sprintf("at epoch %d, which the log's last records do not continue: a key that sealed records before", s.state.Epoch))
			}
			// A new key (seal-init --replace whose seal-start record
			// did not reach the log): introduced, once checked unused
			// below.
			s.introduce = true
			break
		}
		p, pSeq, stretch, complete, err := l.lastSeal(last)
		switch {
		case err != nil:
			// A read error may pass: the next append looks again.
			s.close()
			return nil, "sealing state " + l.opts.SealState + " not checked against the last sealed record: " + err.Error()
		case p == nil && complete && s.state.Epoch == 0:
			// No record of the log is sealed: a new key.
			s.introduce = true
		case p == nil:
			return stop(fmt.Sprintf("cannot be checked against the last sealed record: none in the last %d lines of the log (or retention removed it)", MaxSealSearch))
		default:
			s.introduce = p.ID != s.state.ID
			if err := s.advance(p.ID, p.Epoch+1); err != nil {
				return stop(err.Error())
			}
			switch {
			case s.introduce:
			case s.skipped > 0:
				// Keys past the last sealed record sealed records
				// the log no longer holds (cut off its end): the
				// stretch cannot be sealed with the keys that would
				// have sealed it.
				s.gapSeq = pSeq
			case !slices.ContainsFunc(stretch, func(c chained) bool { return c.stopped }):
				// The records since are sealed late, with the keys
				// that would have sealed them: the stretch is then
				// as sealed as any record, and shows that no sealed
				// record was replaced by an unsealed one (its key is
				// gone). Not records unsealed because sealing had
				// stopped (a state that could not be trusted): they
				// stay so.
				s.late = stretch
			}
		}
	default:
		p, err := ParseSeal(last.Seal)
		if err != nil {
			break
		}
		s.introduce = p.ID != s.state.ID
		// The state is written after the records it sealed: a crash in
		// between leaves it behind the log.
		if err := s.advance(p.ID, p.Epoch+1); err != nil {
			return stop(err.Error())
		}
	}
	if s.introduce && !newKey {
		// A key is introduced at epoch 0, once (seal-init, or the append
		// after a seal-init that stopped before its seal-start record).
		// One at a later epoch, or one a record of the log carries
		// already, has sealed records before, in this log or another
		// (a copy of an older state put back, the log moved aside, a
		// seal-start lost after failed syncs), and its next keys may
		// have too.
		if s.state.Epoch != 0 {
			return stop(fmt.Sprintf("holds key %s at epoch %d, which the log's last records do not continue: a key that sealed records before (an older state put back, the log moved aside, or its seal-start record lost after failed syncs?)", s.state.ID, s.state.Epoch))
		}
		if last != nil {
			used, err := l.keyUsed(s.state.ID)
			if err != nil {
				s.close()
				return nil, "sealing state " + l.opts.SealState + " not checked against the log: " + err.Error()
			}
			if used {
				return stop(fmt.Sprintf("holds key %s at epoch 0, which records of the log carry already: a key that sealed records before (an older state put back?)", s.state.ID))
			}
		}
	}
	return s, ""
}

// sealedChain reports whether the records of a chain that ends with
// last are sealed, or should be: last is sealed, or unsealed saying why.
func sealedChain(last *Record) bool {
	return last != nil && (last.Seal != "" || last.SealError != "")
}

// sealStopped starts the seal_error of a record unsealed because the
// sealing state could not be trusted against the log (too far behind
// it, or not checkable): records stay unsealed, each with it, until
// seal-init --replace starts a new key.
const sealStopped = "sealing stopped until seal-init --replace: "

// stopReason is the seal_error of records unsealed because the state of
// key id cannot be trusted: sealStopped, the key, and why.
func stopReason(id SealID, why string) string {
	return sealStopped + "sealing state of key " + id.String() + ": " + why
}

// stoppedKey returns the key a stopReason names.
func stoppedKey(reason string) (string, bool) {
	rest, ok := strings.CutPrefix(reason, sealStopped+"sealing state of key ")
	if !ok || len(rest) < 2*len(SealID{}) {
		return "", false
	}
	return rest[:2*len(SealID{})], true
}

// MaxSealSearch bounds how many lines [Log.lastSeal] reads.
const MaxSealSearch = 1024

// ErrSealedLog is the error of an append with [Options.RefuseUnsealed]
// or [Options.RequireSealed] to a sealed log it cannot seal.
var ErrSealedLog = errors.New("the log is sealed and this writer cannot seal (no seal_state, or one it cannot use): an unsealed record would fail verify")

// lastSeal returns the seal and seq of the last sealed record of the
// chain among the last [MaxSealSearch] lines of the log (the current
// file, then the rotated ones), or nil, and whether it read the whole
// log; with it, the chain's records after it, up to last, the chain's
// last, in order (nil when there are none). It reads backwards from
// last, record by record through their prev: lines that are not the
// chain's (damaged, or older records again that a crash exposed) are
// passed over. It runs only when an append follows unsealed records
// that say why, with a state that opens. The bound keeps that cheap
// where every append does so (a state too far behind the log, which
// stays unusable until seal-init --replace); a key behind a longer
// stretch has been on the node that long already.
func (l *Log) lastSeal(last *Record) (*ParsedSeal, uint64, []chained, bool, error) {
	var p, any *ParsedSeal // any: the first seal met, the chain's or not
	var seq, anySeq uint64
	var stretch []chained // newest first
	wantSeq, wantHash := last.Seq, last.Hash
	complete, err := l.backward(nil, func(r *Record) bool {
		if r.Seq != wantSeq || r.Hash != wantHash {
			if ps, err := ParseSeal(r.Seal); err == nil && any == nil && r.Seal != "" {
				any, anySeq = &ps, r.Seq
			}
			return false
		}
		if r.Seal == "" {
			_, stopped := stoppedKey(r.SealError)
			stretch = append(stretch, chained{r.Seq, r.Prev, r.Hash, stopped})
			wantSeq, wantHash = r.Seq-1, r.Prev
			return false
		}
		ps, err := ParseSeal(r.Seal)
		if err != nil {
			return false
		}
		p, seq = &ps, r.Seq
		return true
	})
	if p == nil {
		// The chain broken on the way back (a record of it zeroed by a
		// crash): the seal met first stands for the last sealed record,
		// as before records were sealed late; nothing is sealed late.
		p, seq, stretch = any, anySeq, nil
	}
	slices.Reverse(stretch)
	return p, seq, stretch, complete, err
}

// keyUsed reports whether a record among the last [MaxSealSearch] lines
// of the log is sealed with key id or introduces it: before a key is
// introduced (a state at epoch 0 no seal-init record names), so that an
// older state put back does not seal again with keys it used.
func (l *Log) keyUsed(id SealID) (bool, error) {
	used := false
	_, err := l.backward([]byte(id.String()), func(r *Record) bool {
		if p, err := ParseSeal(r.Seal); (err == nil && p.ID == id) || r.SealID == id.String() {
			used = true
		}
		return used
	})
	return used, err
}

// backward calls found with the records of the last [MaxSealSearch]
// lines of the log whose line holds needle, newest first, until found
// returns true; it says whether it read the whole log.
func (l *Log) backward(needle []byte, found func(*Record) bool) (bool, error) {
	files, err := l.rotated()
	if err != nil {
		return false, err
	}
	files = append(files, l.path)
	n := 0
	first, parsed := uint64(1), true // the seq of the earliest line read
	for i := len(files) - 1; i >= 0; i-- {
		for line, err := range LinesBackward(files[i]) {
			if errors.Is(err, fs.ErrNotExist) {
				break
			}
			if err != nil {
				return false, err
			}
			if n++; n > MaxSealSearch {
				return false, nil
			}
			var h Head
			if h, parsed = PeekHead(line); parsed {
				first = h.Seq
			}
			if !bytes.Contains(line, needle) {
				continue
			}
			if r, err := Decode(line); err == nil && found(r) {
				return false, nil
			}
		}
	}
	// Records retention removed (or lost) before it were not read. An
	// earliest line that does not parse (a crash zeroed it) is taken
	// by its file: a rotated file is named by the seq of its first line.
	if !parsed {
		seq, ok := rotatedSeq(strings.TrimPrefix(files[0], l.path))
		return len(files) == 1 || ok && seq == 1, nil
	}
	return first == 1, nil
}

// lock takes the exclusive lock on PATH.lock, polling until ctx is done
// (flock itself cannot be interrupted by a deadline).
func (l *Log) lock(ctx context.Context) (*os.File, func(), error) {
	// Writers create and rename files in the log's directory by name:
	// nobody else may write there (openLock opens the lock as a private
	// file: safefile.CheckPrivateDir; readers, such as a verify of a
	// copy in /tmp, need not care: Snapshot refuses a rotated file
	// someone else owns or may write).
	lf, err := l.openLock(unix.O_RDWR | unix.O_CREAT)
	if err != nil {
		return nil, nil, err
	}
	unlock, err := flockWait(ctx, lf, unix.LOCK_EX)
	if err != nil {
		return nil, nil, err
	}
	return lf, unlock, nil
}

// openLock opens the lock file after checking the log's directories, and
// checks the lock file: whoever may replace or write it could hold the
// lock and stop every writer.
func (l *Log) openLock(flags int) (*os.File, error) {
	if flags&unix.O_CREAT != 0 {
		// A writer's first use makes the log's directory, private to
		// root: a missing directory must not silently turn auditing
		// off. (Checked again once the lock is open: in a sticky
		// directory someone else may have made it first.)
		return createLock(l.path + lockSuffix)
	}
	lf, err := safefile.OpenTrusted(l.path+lockSuffix, flags, false)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return lf, nil
}

// createLock opens the lock file at path for writing, made 0600 if
// missing, in directories only root may write ([safefile.OpenPrivate]),
// and refuses one others may read ([checkLockMode]).
func createLock(path string) (*os.File, error) {
	lf, err := safefile.OpenPrivate(path, unix.O_RDWR|unix.O_CREAT, false)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if err := checkLockMode(lf, path); err != nil {
		lf.Close()
		return nil, err
	}
	return lf, nil
}

// checkLockMode refuses the lock file lf, at path, when others may read
// it: whoever can open the lock can hold it (a shared lock needs only a
// read), and every writer would wait out its deadline.
func checkLockMode(lf *os.File, path string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(lf.Fd()), &st); err != nil {
		return fmt.Errorf("audit: fstat %s: %w", path, err)
	}
	if st.Mode&0o044 != 0 {
		return fmt.Errorf("audit: %s: readable by group or others (mode %04o): anyone who opens it can hold the lock and stop every writer: refusing it (chmod go-r): %w", path, st.Mode&0o7777, safefile.ErrUntrusted)
	}
	return nil
}

// CheckWritable checks the audit log (or the checkpoints file) at path
// and its lock, PATH.lock, those of them that exist, as an append opens
// them (trusted files; a lock nobody else may read), without writing
// anything; the directories are the caller's
// to check ([safefile.CheckPrivateDirs]). For a check of a config before
// the hook meets what its appends would refuse.
func CheckWritable(path string) error {
	var errs []error
	for _, name := range []string{path, path + lockSuffix} {
		f, err := safefile.OpenTrusted(name, unix.O_RDONLY, false)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			errs = append(errs, fmt.Errorf("audit: %w", err))
			continue
		}
		if name != path {
			err = checkLockMode(f, name)
		}
		f.Close()
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// flockWait locks lf (how: LOCK_EX or LOCK_SH), waiting until ctx is
// done. It closes lf on failure; the returned function releases the lock.
//
// It waits in the kernel (a blocking flock(2) on a duplicate of lf's
// descriptor, in a goroutine of its own), so it is woken as soon as the
// lock is released. It polled before (LOCK_NB, then sleeps of up to
// 5 ms): in a burst of hundreds of starts the lock was mostly taken by
// whoever tried at the moment it was free, waiters slept through the
// releases, and most hooks missed their deadline unrecorded
// (TestBurstOfStarts). A wait given up at ctx's end leaves the goroutine
// blocked; it drops the lock at once if it gets it later. At most
// maxBlocked waits of a process block so (each holds a thread and a
// descriptor until the lock is free); the others poll (flockPoll): a
// long-running process whose appends keep missing their deadlines
// behind a writer that holds the lock, or that appends from hundreds of
// goroutines at once, does not pile them up.
func flockWait(ctx context.Context, lf *os.File, how int) (func(), error) {
	fail := func(err error) (func(), error) {
		lf.Close()
		return nil, fmt.Errorf("audit: lock %s: %w", lf.Name(), err)
	}
	err := unix.Flock(int(lf.Fd()), how|unix.LOCK_NB)
	if err == nil {
		return func() { lf.Close() }, nil // closing releases the lock
	}
	if err != unix.EWOULDBLOCK && err != unix.EINTR {
		return fail(err)
	}
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}
	select {
	case blockedWaits <- struct{}{}:
	default:
		return flockPoll(ctx, lf, how, fail)
	}
	// The duplicate shares lf's open file description, which holds the
	// lock: closing it leaves the lock to lf. The goroutine blocks on it,
	// not on lf's number, which a caller's close could hand to another
	// file.
	dup, err := unix.FcntlInt(lf.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		<-blockedWaits
		return fail(err)
	}
	var mu sync.Mutex
	var abandoned bool
	done := make(chan error, 1)
	go func() {
		defer func() { <-blockedWaits }()
		var err error
		for {
			if err = unix.Flock(dup, how); err != unix.EINTR {
				break
			}
		}
		mu.Lock()
		if err == nil && abandoned {
			unix.Flock(dup, unix.LOCK_UN)
		}
		mu.Unlock()
		unix.Close(dup)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fail(err)
		}
		return func() { lf.Close() }, nil
	case <-ctx.Done():
		mu.Lock()
		abandoned = true
		mu.Unlock()
		// Taken just now, the lock is dropped with lf (the goroutine
		// closes its duplicate in any case).
		return fail(ctx.Err())
	}
}

// blockedWaits holds a token per wait of flockWait blocked in the kernel
// (given up or not); when full, waits poll.
var blockedWaits = make(chan struct{}, maxBlocked)

const maxBlocked = 16

// flockPoll locks lf as flockWait does, trying LOCK_NB with sleeps of up
// to 5 ms between tries until ctx is done.
func flockPoll(ctx context.Context, lf *os.File, how int, fail func(error) (func(), error)) (func(), error) {
	wait := 200 * time.Microsecond
	for {
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Millisecond)
		err := unix.Flock(int(lf.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return func() { lf.Close() }, nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			return fail(err)
		}
	}
}

// openRegular opens a file of the log with [safefile.OpenRegular]'s
// checks: no symlink, FIFO, directory or other non-regular file.
func openRegular(path string, flags int) (*os.File, error) {
	f, err := safefile.OpenRegular(path, flags)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return f, nil
}

// openOwned opens a file of the log as [openRegular] does, and refuses it
// unless root or the effective user owns it and others may not write it
// ([safefile.CheckOwner]): what writers read of the log's files (the
// current one, a rotated one's last record, a container's start, what
// retention records of a file it removes, the checkpoint state) must be
// what writers wrote.
func openOwned(path string, flags int) (*os.File, error) {
	f, err := openRegular(path, flags)
	if err != nil {
		return nil, err
	}
	if err := safefile.CheckOwner(f, path, false); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: %w", err)
	}
	return f, nil
}

// testHookTornWrite, set by tests only, runs right before the write of
// an append that found a torn tail.
var testHookTornWrite func()

// testHookSyncDir, set by tests only, fails the sync of a directory with
// the error it returns.
var testHookSyncDir func(dir string) error

// tornTail returns the first [MaxTornKept] bytes of f after its last
// newline, how many bytes follow that newline and where they start, or
// nil if f ends with a newline (or is empty).
func tornTail(f *os.File) (keep []byte, n, at int64, err error) {
	size, err := fileSize(f)
	if err != nil || size == 0 {
		return nil, 0, 0, err
	}
	end := make([]byte, 1)
	if _, err := f.ReadAt(end, size-1); err != nil {
		return nil, 0, 0, fmt.Errorf("audit: read %s: %w", f.Name(), err)
	}
	if end[0] == '\n' {
		return nil, 0, 0, nil
	}
	nl, err := lastNewline(f, size)
	if err != nil {
		return nil, 0, 0, err
	}
	at, n = nl+1, size-(nl+1)
	keep = make([]byte, min(n, MaxTornKept))
	if _, err := f.ReadAt(keep, at); err != nil {
		return nil, 0, 0, fmt.Errorf("audit: read %s: %w", f.Name(), err)
	}
	return keep, n, at, nil
}

// endTorn appends [TornMark], a newline and out (the records, the one of
// the torn bytes first) to f in one write, the space reserved first (a
// full disk fails the append before a byte is written, where the file
// system can reserve).
func endTorn(f *os.File, out []byte, lim int64) error {
	size, err := fileSize(f)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, len(TornMark)+1+len(out))
	buf = append(append(append(buf, TornMark...), '\n'), out...)
	if err := reserve(f, size, len(buf), lim); err != nil {
		return err
	}
	if testHookTornWrite != nil {
		testHookTornWrite()
	}
	_, err = f.Write(buf)
	return err
}

// reserve allocates n bytes of f at off, keeping its size, where the
// file system can. Past lim, the file size limit of this process
// (RLIMIT_FSIZE, [safefile.FileSizeLimit]), which fallocate(2) does not
// enforce, it fails: the write would stop at the limit and leave a torn
// line.
func reserve(f *os.File, off int64, n int, lim int64) error {
	if err := safefile.RoomUnder(lim, off, n); err != nil {
		return err
	}
	fd := int(f.Fd())
	err := unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, off, int64(n))
	for err == unix.EINTR {
		err = unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, off, int64(n))
	}
	if err != nil && err != unix.EOPNOTSUPP && err != unix.ENOSYS {
		// ENOSYS: a seccomp filter that does not know the call.
		return os.NewSyscallError("fallocate", err)
	}
	return nil
}

// overwriteTorn writes out (the records, the one of the torn bytes among
// them) over the torn tail of f, from at to end, so that the torn bytes
// stay in the file until the write that records them: the space is
// reserved first (a full disk fails the append before a byte is
// overwritten, where the file system can reserve), the records go in one
// write, and only then is what is left of a longer tail cut off, by
// [cutTorn] (a crash before that leaves it as a torn tail of its own,
// which the next append records). It serves a tail too long to end as a
// line (see [endTorn]): no write of a record leaves one.
func overwriteTorn(f *os.File, out []byte, at int64, lim int64) error {
	if err := reserve(f, at, len(out), lim); err != nil {
		return err
	}
	fd := int(f.Fd())
	// With O_APPEND, Linux appends whatever offset pwrite(2) names.
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return os.NewSyscallError("fcntl F_GETFL", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags&^unix.O_APPEND); err != nil {
		return os.NewSyscallError("fcntl F_SETFL", err)
	}
	if testHookTornWrite != nil {
		testHookTornWrite()
	}
	for off := 0; off < len(out); {
		n, err := unix.Pwrite(fd, out[off:], at+int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("pwrite", err)
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		off += n
	}
	return nil
}

// cutTorn cuts the old torn bytes left after the lines [overwriteTorn]
// wrote whole at at (out bytes, the torn tail ending at end). It runs
// once the write counts as done: the lines are in the log, and a cut
// that fails or hangs (a soft NFS mount) must not have the caller act
// against them (refuse a container its allow record names); what it
// leaves is a torn tail the next append records. The error is a
// warning's.
func cutTorn(f *os.File, at int64, out int, end int64) error {
	if at+int64(out) >= end {
		return nil
	}
	if err := f.Truncate(at + int64(out)); err != nil {
		return fmt.Errorf("cut the rest of the torn tail after the records written: %w (the next append records it as a torn tail)", err)
	}
	return nil
}

func fileSize(f *os.File) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, fmt.Errorf("audit: fstat %s: %w", f.Name(), err)
	}
	return st.Size, nil
}

// lastNewline returns the offset of the last '\n' before end, or -1.
func lastNewline(f *os.File, end int64) (int64, error) {
	// Records are short: look at the last few KiB before reading
	// (and allocating) larger chunks.
	buf := make([]byte, 4<<10)
	for end > 0 {
		n := min(int64(len(buf)), end)
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return 0, fmt.Errorf("audit: read %s: %w", f.Name(), err)
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return end - n + int64(i), nil
		}
		end -= n
		if len(buf) < 64<<10 {
			buf = make([]byte, 64<<10)
		}
	}
	return -1, nil
}

// lastGood returns the last record of the chain that decodes, from the
// end of f (which ends with a newline), or of the newest rotated files
// when f holds none, and the complete lines after it that do not decode,
// oldest first. A record of a newer major format is not damage: it is
// refused, since this version cannot know how to extend it.
func (l *Log) lastGood(f *os.File, hint *headHint) (*Record, []DamagedLine, error) {
	var last *Record
	var damaged []DamagedLine
	// scan reads one file from its end; more says to go on to the next
	// older file.
	scan := func(f *os.File, prev func() uint64, newest func() (*os.File, error)) (more bool, err error) {
		c := chainAt(f, hint, newest)
		if c == nil {
			c = derivedChain(prev)
		}
		r, d, more, err := scanBack(f, maxDamagedLines-len(damaged), prev, c)
		damaged = append(damaged, d...)
		if last == nil {
			last = r
		}
		return err == nil && (r == nil || more), err
	}
	// prevSeq is the seq of the last good record of the rotated file
	// before rotated[j] (j = len(rotated): the current file), 0 for none
	// or when it cannot be read: what an older record first in a file
	// is held against.
	rotatedOnce := sync.OnceValues(l.rotated)
	// Read once per file: the look back asks for each line that reaches
	// the file's start.
	prevSeq := func(j int) func() uint64 {
		return sync.OnceValue(func() uint64 {
			rotated, err := rotatedOnce()
			if err != nil {
				return 0
			}
			j = min(j, len(rotated))
			// Back to the newest file that holds a record (one a crash
			// zeroed holds none), a few at most.
			for k := j - 1; k >= 0 && k >= j-maxPrevFiles; k-- {
				rf, err := openOwned(rotated[k], unix.O_RDONLY)
				if err != nil {
					return 0
				}
				r, _, _, err := scanBack(rf, maxDamagedLines, nil, nil)
				rf.Close()
				if err != nil {
					return 0
				}
				if r != nil {
					return r.Seq
				}
			}
			return 0
		})
	}
	// The newest rotated file, where the hint's head is right after a
	// rotation.
	newest := func() (*os.File, error) {
		rotated, err := rotatedOnce()
		if err != nil || len(rotated) == 0 {
			return nil, err
		}
		return openOwned(rotated[len(rotated)-1], unix.O_RDONLY)
	}
	if more, err := scan(f, prevSeq(math.MaxInt), newest); !more {
		return last, reverse(damaged), err
	}
	rotated, err := rotatedOnce()
	if err != nil {
		return nil, nil, err
	}
	// One rotated file open at a time, newest first, each closed once
	// read: they were all opened before the first was read, and closed
	// at the end, so that more rotated files than the process may open
	// descriptors failed every append (EMFILE) while the current file
	// held no record (TestAppendFewFDs).
	for j := len(rotated) - 1; j >= 0; j-- {
		rf, err := openOwned(rotated[j], unix.O_RDONLY)
		if err != nil {
			return nil, nil, err
		}
		more, err := scan(rf, prevSeq(j), nil)
		rf.Close()
		if !more {
			return last, reverse(damaged), err
		}
	}
	return last, reverse(damaged), nil
}

func reverse(d []DamagedLine) []DamagedLine {
	for i, j := 0, len(d)-1; i < j; i, j = i+1, j-1 {
		d[i], d[j] = d[j], d[i]
	}
	return d
}

// scanBack reads f's complete lines from the end until one decodes, and
// returns that record and the lines after it that did not decode, newest
// first; at most max of them. A seal-start record, or a torn-tail record
// right after the torn line it ends (seal-start records may come
// between), does not stop the search: the damage record of lines before
// them comes after them, in the same write, which a crash may have cut
// short. Such lines are returned too; the record returned is still the
// newest. more says that only such records were met back to the start
// of f: a rotation may have put them first in f, and the lines they
// stand before at the end of the file before it.
func scanBack(f *os.File, max int, prev func() uint64, hint *chainHint) (last *Record, damaged []DamagedLine, more bool, err error) {
	size, err := fileSize(f)
	if err != nil {
		return nil, nil, false, err
	}
	var want *TornKey // the torn line the torn-tail record met ends
	for l, err := range linesBackwardIn(f, f.Name(), size) {
		if err != nil {
			return nil, damaged, false, err
		}
		r, derr := decodeLine(l)
		if derr == nil {
			if rerr := replayed(f, l, r, prev, hint); rerr != nil {
				r, derr = nil, rerr
			}
		}
		if want != nil {
			if derr == nil && r.Stage == StageSealStart {
				continue
			}
			if k, ok := TornLineKey(l.Data); derr != nil && ok && k == *want {
				want = nil
				continue
			}
			return last, damaged, false, nil
		}
		if derr == nil {
			if last == nil {
				last = r
			}
			switch r.Stage {
			case StageSealStart:
				// It opens its write, before the records of what came
				// before it: a cut write leaves those unrecorded.
				continue
			case StageTornTail:
				k := r.TornKey()
				want = &k
				continue
			}
			return last, damaged, false, nil
		}
		if errors.Is(derr, ErrNewerFormat) {
			return nil, damaged, false, fmt.Errorf("audit: %s: the last record is of a newer format (%w); this nsrel cannot extend the chain", f.Name(), derr)
		}
		if len(damaged) == max {
			return nil, damaged, false, fmt.Errorf("audit: %s: more than %d damaged lines at the end of the log; refusing to guess where the chain goes on: run `nsrel-hook audit verify`", f.Name(), maxDamagedLines)
		}
		damaged = append(damaged, damagedLine(filepath.Base(f.Name()), l, derr))
	}
	return last, damaged, last != nil && want == nil, nil
}

// replayWindow is how many bytes before a record [replayed] reads at
// least: what a crash exposes is at most what the write it cut short
// held (every append is synced), a few records. Past it, it reads on to
// the nearest record, up to replayReach bytes: zeroed or garbled blocks,
// or one long record, may come between.
const (
	replayWindow = 16 << 10
	replayReach  = 4*MaxLine + replayWindow
)

// ReplayError is why a line that decodes, at the end of the log or after
// the last good record, is not taken for a record of the chain: a record
// before it has its seq or a later one. It is an older record again:
// stale blocks a crash exposed at the end of a file (a file system that
// shows what a block held before), or a line written again. The chain
// goes on from the last good record, as after any damaged line. Other
// is set when the record of its seq before it has another hash: not a
// copy of it.
type ReplayError struct {
	Seq, After uint64
	Other      bool
}

func (e *ReplayError) Error() string {
	if e.Other {
		return fmt.Sprintf("seq %d after seq %d, with other bytes than the record of seq %d before it: not that record again (forged?)", e.Seq, e.After, e.Seq)
	}
	return fmt.Sprintf("seq %d after seq %d: an older record again (stale blocks a crash exposed, or written again)", e.Seq, e.After)
}

// replayed returns a [ReplayError] when r, the record on line l of f,
// is not the chain's head but an older record again. With a hint of
// where the last append left the head (see hint.go), the records after
// that head are followed by their links: r is an older record when its
// seq is not past the head they lead to (without one, from an anchor:
// [derivedChain]). Where that does not tell, a record before l of r's
// seq or a later one says so: it reads the [replayWindow] bytes before
// l and on to the nearest record; when that reaches the start of f,
// prev (nil: none) tells the seq of the last good record of the file
// before f (a rotation may have put older records first in a new file:
// read only while f is short). Only records count (a damaged line's seq
// says nothing), and only lines whose seq, peeked, is r's or later are
// decoded; of the others, a record's hash is checked until one is seen.
// In a sound log with a hint nothing is decoded and one hash is
// checked. A read error says nothing: the append goes on as before this
// check.
func replayed(f *os.File, l Line, r *Record, prev func() uint64, hint *chainHint) error {
	if hint != nil {
		if decided, err := hint.judge(f, l, r); decided {
			var re *ReplayError
			if errors.As(err, &re) && !re.Other && hint.lines <= maxLookedBack {
				// Of the seq of a record before the hint's head, with
				// other bytes? Looked for in a short block only (a
				// look for each of its lines).
				var back *ReplayError
				re.Other = errors.As(lookBack(f, l, r, nil, true), &back) && back.Other
			}
			return err
		}
	}
	return lookBack(f, l, r, prev, false)
}

// maxLookedBack bounds the lines after the hint's head for each of
// which [replayed] looks back for the original of an older record.
const maxLookedBack = 64

// lookBack is [replayed] without a hint; quick, it reads the window
// only.
func lookBack(f *os.File, l Line, r *Record, prev func() uint64, quick bool) error {
	seq := r.Seq
	var after uint64
	other, seen := false, false
	judge := func(line []byte) {
		s, ok := headSeq(line)
		switch {
		case !ok:
		case s >= seq && (s > after || s == seq && !other):
			if p, err := Decode(line); err == nil && p.Seq >= seq {
				after, seen = max(after, p.Seq), true
				if p.Seq == seq && p.Hash != r.Hash {
					other = true
				}
			}
		case !seen:
			seen = hashMatches(line)
		}
	}
	n := min(l.Offset, replayWindow)
	if n > 0 {
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, l.Offset-n); err != nil {
			return nil
		}
		buf = buf[:n-1] // the newline that ends the line before l
		if n < l.Offset {
			// The first line read may be the end of a longer one.
			if i := bytes.IndexByte(buf, '\n'); i >= 0 {
				buf = buf[i+1:]
			} else {
				buf = nil
			}
		}
		for line := range bytes.SplitSeq(buf, []byte{'\n'}) {
			judge(line)
		}
	}
	start := n == l.Offset // read back to the start of f
	if !seen && !start && !quick {
		start = true
		for p, err := range linesBackwardIn(f, f.Name(), l.Offset) {
			if err != nil || l.Offset-p.Offset > replayReach {
				start = false
				break
			}
			if p.Long == 0 {
				judge(p.Data)
			}
			if seen && l.Offset-p.Offset >= replayWindow {
				start = false
				break
			}
		}
	}
	if start && prev != nil {
		// Whatever f holds before l may be older records again too.
		if s := prev(); s >= seq {
			after = max(after, s)
		}
	}
	if after == 0 {
		return nil
	}
	return &ReplayError{seq, after, other}
}

// hashMatches reports whether line is a record line whose hash matches
// its bytes (what [Decode] checks, without decoding).
func hashMatches(line []byte) bool {
	at, hash, _, ok := splitLine(line)
	return ok && bodyHash(closedBody(line, at)) == hash
}

// decodeLine decodes a line; an over-long one (see [Line]) is no record.
func decodeLine(l Line) (*Record, error) {
	if l.Long > 0 {
		return nil, &DecodeError{Reason: fmt.Sprintf("line of %d bytes, longer than any record (%d)", l.Long, MaxLine)}
	}
	return Decode(l.Data)
}

// maxDamageReason bounds a damaged line's reason as the record holds it
// (JSON-encoded): a reason may quote the line (an unknown member's key),
// and the log's own records must never be too long to be written.
const maxDamageReason = 240

// damageRecord is the record of the damaged lines at the end of the log.
// It always fits in a line: with more lines than one record can list
// with their reasons, the reasons are left out, and beyond that the
// lines past what fits (verify then reports those as damage no record
// lists, which is so).
func damageRecord(damaged []DamagedLine) *Record {
	what := "did not decode"
	if n := replays(damaged); n > 0 {
		what = fmt.Sprintf("are not the chain's records (%d did not decode, %d repeat older records)", len(damaged)-n, n)
	}
	msg := fmt.Sprintf("%d complete line(s) at the end of the log %s; the chain goes on from the last good record, the lines stay in the file: run `nsrel-hook audit verify`", len(damaged), what)
	r := &Record{Source: SourceAudit, Stage: StageDamaged, Damage: damaged, Error: msg}
	// Room for the chain's fields the append sets (time, host, version,
	// prev, seq, hash, seal) and their keys.
	const room = MaxLine - 4096
	if len(r.body()) <= room {
		return r
	}
	r.Damage = make([]DamagedLine, len(damaged))
	for i, d := range damaged {
		d.Reason = ""
		r.Damage[i] = d
	}
	r.Error = msg + "; the reasons are left out (too many lines to list them)"
	for n := len(r.Damage); len(r.body()) > room; {
		n = n * 3 / 4
		r.Damage = r.Damage[:n]
		r.Error = fmt.Sprintf("%s; the reasons are left out, and only the first %d lines listed (too many to list)", msg, n)
	}
	return r
}

// exists reports whether a file of that name exists (or may: an error
// other than not existing, or a name too long to exist: see CheckPath).
func exists(name string) bool {
	_, err := os.Lstat(name)
	return !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENAMETOOLONG)
}

// maxPrevFiles bounds the rotated files an append reads back for the
// last record before the current file.
const maxPrevFiles = 8

// lineKey is l's key as a damage record lists it: its length and
// SHA-256 (a line longer than any record, as it was read past).
func lineKey(l Line) LineKey {
	if l.Long > 0 {
		return LineKey{SHA256: l.Sum, Bytes: int(l.Long)}
	}
	return LineKeyOf(l.Data)
}

// replays counts the lines of d that are older records again.
func replays(d []DamagedLine) int {
	n := 0
	for _, l := range d {
		if l.Kind == "replayed" || l.Kind == "replaced" {
			n++
		}
	}
	return n
}

// damagedLine describes l (in file) and why it does not decode, telling
// a crash from an edit where the bytes allow.
func damagedLine(file string, l Line, err error) DamagedLine {
	d := DamagedLine{File: file, Offset: l.Offset, Reason: cutJSON(err.Error(), maxDamageReason)}
	k := lineKey(l)
	d.Bytes, d.SHA256 = k.Bytes, k.SHA256
	if l.Long > 0 {
		d.Kind = "garbled"
		return d
	}
	var re *ReplayError
	switch {
	case bytes.IndexByte(l.Data, 0) >= 0:
		// A crash leaves zeroed blocks where data had not reached the
		// disk; an editor rarely writes NUL bytes.
		d.Kind = "zeroed"
	case errors.As(err, &re) && re.Other:
		// A record of a seq the chain had, with other bytes: forged.
		d.Kind = "replaced"
	case re != nil:
		// A record, but one the chain had already.
		d.Kind = "replayed"
	case strings.Contains(err.Error(), "hash does not match"):
		// A well-formed record with other contents than it was hashed
		// with: written as it is by someone, not by a crash.
		d.Kind = "edited"
	default:
		d.Kind = "garbled"
	}
	return d
}

// maybeRotate renames the current file when it reached the rotation size
// and returns a descriptor for the (new) current file and the name f has
// now; it leaves f open. Under a file size limit (RLIMIT_FSIZE: the
// runtime's or its unit's, lim; -1 for none) below the rotation size,
// the file is rotated at half the limit: else it would never reach the
// rotation size, and every append would fail once it reached the limit.
func (l *Log) maybeRotate(f *os.File, last *Record, force bool, lim int64) (*os.File, string, error) {
	size, err := fileSize(f)
	if err != nil {
		return nil, "", err
	}
	at := l.opts.RotateBytes
	if lim >= 0 {
		at = min(at, lim/2)
	}
	if size < at && !force || size == 0 {
		return f, "", nil
	}
	// The file is named after its first record's seq. A damaged first
	// line must not stop the log: then the first record that decodes
	// names it (the seq a damaged line seems to have may be anything),
	// or, when none does, the seq after the last good record.
	var candidates []uint64
	if first, ok := firstDecoded(f); ok {
		candidates = append(candidates, first)
	}
	if first, err := firstSeq(f); err == nil {
		candidates = append(candidates, first)
	}
	if last != nil {
		candidates = append(candidates, last.Seq+1)
	}
	// Never before the newest rotated file: an older record again
	// first in the file (stale blocks a crash exposed) names no seq it
	// holds of its own, and a name before the newest would put the file
	// before older ones (read as the chain's middle, removed first).
	var floor uint64
	if rotated, err := l.rotated(); err == nil && len(rotated) > 0 {
		floor, _ = rotatedSeq(strings.TrimPrefix(rotated[len(rotated)-1], l.path))
	}
	dst := ""
	for _, seq := range candidates {
		if seq <= floor {
			continue
		}
		if name := fmt.Sprintf("%s.%012d", l.path, seq); !exists(name) {
			dst = name
			break
		}
	}
	if dst == "" && floor > 0 && floor < math.MaxUint64 {
		// After the newest, whatever the file holds: the names keep the
		// files in order, and an append is never refused for a name.
		if name := fmt.Sprintf("%s.%012d", l.path, floor+1); !exists(name) {
			dst = name
		}
	}
	if dst == "" {
		return nil, "", fmt.Errorf("audit: rotate %s: no name for it (its records do not tell their seq, or the rotated files %v exist)", l.path, candidates)
	}
	if err := os.Rename(l.path, dst); err != nil {
		return nil, "", fmt.Errorf("audit: rotate: %w", err)
	}
	nf, err := openRegular(l.path, unix.O_RDWR|unix.O_APPEND|unix.O_CREAT)
	if err != nil {
		return nil, "", err
	}
	return nf, dst, nil
}

// retention returns the rotated files beyond KeepFiles, oldest first,
// with what their removal must record (fewer under the file size limit
// lim, -1 for none).
func (l *Log) retention(warn func(error), lim int64) ([]Dropped, []string, error) {
	if l.opts.KeepFiles <= 0 {
		return nil, nil, nil
	}
	files, err := l.rotated()
	if err != nil || len(files) <= l.opts.KeepFiles {
		return nil, nil, err
	}
	var dropped []Dropped
	var names []string
	old := files[:len(files)-l.opts.KeepFiles]
	// One record per file removed, in the append that rotates: a burst
	// (keep_files set on a log of thousands of rotated files) is spread
	// over the next rotations, so that an append stays short under the
	// lock and a crash in it leaves the sealing state well within
	// MaxSealLag of the log.
	old = old[:min(len(old), MaxRetainedPerRotation)]
	if lim >= 0 {
		// Under a file size limit the retention records (about a KiB
		// each) go in the new file with the record: at most half of
		// the limit, so that the record fits too.
		old = old[:min(len(old), max(1, int(lim/2/1024)))]
	}
	for i, name := range old {
		rf, err := openOwned(name, unix.O_RDONLY)
		if errors.Is(err, safefile.ErrUntrusted) {
			// Its records cannot stand for what it held: kept, and
			// the files after it, as one not described is.
			warn(fmt.Errorf("%w: retention stops at it: it and the files after it are kept", err))
			break
		} else if err != nil {
			return nil, nil, err
		}
		first, ferr := firstSeq(rf)
		if ferr != nil {
			// A damaged first line (recorded by a damage record in the
			// file): the file holds records from its first that decodes.
			if seq, ok := firstDecoded(rf); ok {
				first, ferr = seq, nil
			}
		}
		if d := chainFirst(rf, filepath.Base(l.path), maxLookedBack); ferr == nil && d != nil {
			// Older records again first in it (a crash's stale blocks
			// a rotation put there), which the damage record after
			// them lists: the file's records begin with that one.
			first = d.Seq
		}
		last, _, _, lerr := scanBack(rf, maxDamagedLines, nil, nil)
		linked := true
		if lerr == nil && last != nil {
			// The record the next file's first goes on from, when that
			// is not the one found last (older records again at the
			// file's end, which the look back may take for its own).
			if next := firstRecordIn(files[i+1]); next != nil && next.Prev != last.Hash && next.Seq > 1 {
				// Unless the next file begins with older records
				// again, which the damage record after them lists,
				// and that record goes on from the last found.
				if d := chainFirstIn(files[i+1], filepath.Base(l.path), maxDamagedLines); d == nil || d.Prev != last.Hash {
					if r := recordAt(rf, next.Seq-1, next.Prev); r != nil {
						last = r
					} else {
						linked = false
					}
				}
			}
		}
		if ferr != nil && lerr == nil && last == nil || !linked {
			// No line of it decodes, or the next file does not go on
			// from it: when it holds no record of the chain (a crash
			// zeroed it, or older records again fill it: two crashes
			// in a row), it is described by the damage record that
			// lists its lines, first in one of the next files.
			// (keep_files > 0: a newer rotated file follows.)
			if d, ok := listedBy(rf, files[i+1:], filepath.Base(l.path)); ok {
				rf.Close()
				dropped = append(dropped, Dropped{File: filepath.Base(name), FirstSeq: d.Seq, LastSeq: d.Seq - 1, LastHash: d.Prev})
				names = append(names, name)
				continue
			}
		}
		rf.Close()
		if ferr != nil || lerr != nil || last == nil {
			// Keep what cannot be described, and the files after it:
			// removing a later one would cut a hole in the chain. Verify
			// shows why.
			warn(fmt.Errorf("audit: retention stops at %s: it cannot be described (no record in it decodes): it and the files after it are kept", name))
			break
		}
		dropped = append(dropped, Dropped{File: filepath.Base(name), FirstSeq: first, LastSeq: last.Seq, LastHash: last.Hash})
		names = append(names, name)
	}
	return dropped, names, nil
}

// MaxRetainedPerRotation bounds how many rotated files one rotation
// removes; the rest go at the next rotations.
const MaxRetainedPerRotation = 256

// listedBy returns the damage record that lists every line of f (a
// rotated file), the first record of the chain in one of the next few
// files after it (next, oldest first; a file filled with older records
// again may come between, and such records may come first in the file
// that holds it: see chainFirstIn): a file that holds no record of the
// chain. current is the base name of the log's current file.
func listedBy(f *os.File, next []string, current string) (*Record, bool) {
	base := filepath.Base(f.Name())
	size, err := fileSize(f)
	if err != nil || size == 0 {
		return nil, false
	}
	for _, file := range next[:min(len(next), maxPrevFiles)] {
		d := firstRecordIn(file)
		if d != nil && d.Stage != StageDamaged {
			d = chainFirstIn(file, current, maxDamagedLines)
		}
		if d == nil || d.Stage != StageDamaged || len(d.Damage) == 0 {
			continue
		}
		type keyAt struct {
			offset int64
			key    LineKey
		}
		lists := map[keyAt]bool{}
		for _, l := range d.Damage {
			if l.File == base {
				lists[keyAt{l.Offset, l.Key()}] = true
			}
		}
		all := len(lists) > 0
		for l, err := range linesIn(f, f.Name(), size) {
			if err != nil || l.Torn {
				return nil, false
			}
			if all = lists[keyAt{l.Offset, lineKey(l)}]; !all {
				break
			}
		}
		if all {
			return d, true
		}
		// A damage record of other lines (an older one again, maybe):
		// on to the next file.
	}
	return nil, false
}

// syncDir syncs directory dir: the names of the files made, renamed or
// removed in it.
//
// A file system that does not sync directories (EINVAL, EOPNOTSUPP: some
// CIFS, 9p mounts) has nothing to wait for: no error, or checkpoints
// would wait for it for ever.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	err = d.Sync()
	if testHookSyncDir != nil {
		if herr := testHookSyncDir(dir); herr != nil {
			err = &fs.PathError{Op: "fsync", Path: dir, Err: herr}
		}
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
		return nil
	}
	return err
}

func dirOf(path string) string { return filepath.Dir(path) }

func firstSeq(f *os.File) (uint64, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(f, 0, MaxLine), 64<<10)
	line, err := br.ReadSlice('\n')
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		return 0, fmt.Errorf("audit: read %s: %w", f.Name(), err)
	}
	if h, ok := PeekHead(line); ok && h.Seq > 0 {
		return h.Seq, nil
	}
	if r, err := Decode(line); err == nil {
		return r.Seq, nil
	}
	return 0, fmt.Errorf("audit: %s: cannot read the first record's sequence number", f.Name())
}

// firstDecoded returns the seq of the first line of f that decodes as a
// record, reading forward.
func firstDecoded(f *os.File) (uint64, bool) {
	if r := firstRecord(f); r != nil {
		return r.Seq, true
	}
	return 0, false
}

// firstRecord returns the first line of f that decodes as a record,
// reading forward; nil if none does.
func firstRecord(f *os.File) *Record {
	sc := bufio.NewScanner(io.NewSectionReader(f, 0, 1<<62))
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	for sc.Scan() {
		if r, err := Decode(sc.Bytes()); err == nil {
			return r
		}
	}
	return nil
}

// chainFirstIn returns, when the file at path (a rotated file) begins
// with lines the damage record after them lists (older records again
// first in it), that damage record: the first record of the chain in
// it. Nil otherwise. current is the base name of the log's current
// file; it reads up to max lines.
func chainFirstIn(path, current string, max int) *Record {
	f, err := openOwned(path, unix.O_RDONLY)
	if err != nil {
		return nil
	}
	defer f.Close()
	return chainFirst(f, current, max)
}

// chainFirst is [chainFirstIn] of an open file.
func chainFirst(f *os.File, current string, max int) *Record {
	size, err := fileSize(f)
	if err != nil {
		return nil
	}
	_, d := listedBefore(linesIn(f, f.Name(), size), current, max)
	return d
}

// firstRecordIn returns the first record of the file at path, or nil.
func firstRecordIn(path string) *Record {
	f, err := openOwned(path, unix.O_RDONLY)
	if err != nil {
		return nil
	}
	defer f.Close()
	return firstRecord(f)
}

// recordAt returns the record of seq and hash among the last
// maxDamagedLines lines of f, or nil.
func recordAt(f *os.File, seq uint64, hash string) *Record {
	size, err := fileSize(f)
	if err != nil {
		return nil
	}
	n := 0
	for l, err := range linesBackwardIn(f, f.Name(), size) {
		if n++; err != nil || n > maxDamagedLines {
			return nil
		}
		if s, ok := headSeq(l.Data); !ok || s != seq {
			continue
		}
		if r, err := Decode(l.Data); err == nil && r.Seq == seq && r.Hash == hash {
			return r
		}
	}
	return nil
}

// rotatedSeq parses the suffix of a rotated file's name after the log's
// base name: "." and 12 to 20 digits.
func rotatedSeq(suffix string) (uint64, bool) {
	digits, ok := strings.CutPrefix(suffix, ".")
	if !ok || len(digits) < 12 || len(digits) > 20 || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

// FileOf says whether path names one of the files the log at log writes
// (log and path clean, absolute): the log itself, its lock (LOG.lock),
// its checkpoint state (LOG.checkpoint) or a rotated file (LOG. and 12
// to 20 digits, which retention removes); what says which, for a
// refusal. Another file the same name took would be written over, or
// read as the log's.
func FileOf(log, path string) (what string, ok bool) {
	rest, ok := strings.CutPrefix(path, log)
	switch {
	case !ok:
		return "", false
	case rest == "":
		return "the audit log", true
	case rest == lockSuffix:
		return "the audit log's lock", true
	case rest == checkpointSuffix:
		return "the audit log's checkpoint state", true
	}
	if _, ok := rotatedSeq(rest); ok {
		return "a rotated file of the audit log", true
	}
	return "", false
}

// LogOfFile says whether path (clean, absolute) is one of the files
// another log beside it writes ([FileOf]): its lock, its checkpoint
// state or a rotated file, that log's current file or lock there, a
// regular file. log is that log, what says which file path is of it ("a rotated
// file", "the lock", "the checkpoint state"). An append to such
// a file, taken for a log of its own (`audit ack` given the rotated file
// that verify named), would add a record out of that log's chain, under
// another lock, and fail it for good.
func LogOfFile(path string) (log, what string, ok bool) {
	dir, base := filepath.Split(path)
	type cand struct{ log, what string }
	var cands []cand
	if b, ok := strings.CutSuffix(base, lockSuffix); ok && b != "" {
		cands = append(cands, cand{b, "the lock"})
	}
	if b, ok := strings.CutSuffix(base, checkpointSuffix); ok && b != "" {
		cands = append(cands, cand{b, "the checkpoint state"})
	}
	if i := strings.LastIndexByte(base, '.'); i > 0 {
		if _, ok := rotatedSeq(base[i:]); ok {
			cands = append(cands, cand{base[:i], "a rotated file"})
		}
	}
	for _, c := range cands {
		// That log's current file, or its lock when the current file is
		// not there (moved aside, or a crash between a rotation's rename
		// and the new file): every append takes the lock, which stays.
		for _, f := range []string{dir + c.log, dir + c.log + lockSuffix} {
			var st unix.Stat_t
			if f != path && unix.Lstat(f, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
				return dir + c.log, c.what, true
			}
		}
	}
	return "", "", false
}

// The suffixes of the log's lock and checkpoint state after its path.
const (
	lockSuffix       = ".lock"
	checkpointSuffix = ".checkpoint"
)

// rotatedSuffix is the longest a rotated file adds to the log's path:
// "." and a seq of up to 20 digits; the checkpoint state's suffix is the
// longest of the others.
const rotatedSuffix = 21

// CheckPath reports whether path can name a log whose files a writer
// can make: its lock and checkpoint state, and, when it rotates, its
// rotated files (PATH.SEQ), each name at most 255 bytes (NAME_MAX) and
// each path shorter than PATH_MAX. A longer name took records until the
// first rotation, which then failed at every append, for good (a config
// check passed it).
func CheckPath(path string, rotates bool) error {
	suffix, what := len(checkpointSuffix), "its checkpoint state's name ("+checkpointSuffix+" after it)"
	if rotates {
		suffix, what = rotatedSuffix, "its rotated files' names (a dot and up to 20 digits after it)"
	}
	if n := len(filepath.Base(path)); n+suffix > 255 {
		return fmt.Errorf("the file name %s is %d bytes: %s would pass 255 bytes, the longest a name may be (at most %d bytes)", vocab.Quote(filepath.Base(path)), n, what, 255-suffix)
	}
	if len(path)+suffix >= unix.PathMax {
		return fmt.Errorf("the path is %d bytes: with %s it would pass %d bytes, the longest a path may be (at most %d bytes)", len(path), what, unix.PathMax-1, unix.PathMax-1-suffix)
	}
	return nil
}

// rotated lists the rotated files of the log, oldest first.
func (l *Log) rotated() ([]string, error) {
	ents, err := os.ReadDir(filepath.Dir(l.path))
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	base := filepath.Base(l.path)
	type rf struct {
		name string
		seq  uint64
	}
	var out []rf
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), base)
		if !ok {
			continue
		}
		seq, ok := rotatedSeq(rest)
		if !ok {
			continue
		}
		out = append(out, rf{filepath.Join(filepath.Dir(l.path), e.Name()), seq})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	names := make([]string, len(out))
	for i, r := range out {
		names[i] = r.name
	}
	return names, nil
}

// Files returns the log's files in chain order: rotated files, oldest
// first, then the current file (if it exists).
func (l *Log) Files() ([]string, error) {
	files, err := l.rotated()
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(l.path); err == nil {
		files = append(files, l.path)
	}
	return files, nil
}

// Files returns the files of the log at path in chain order (see
// [Log.Files]).
func Files(path string) ([]string, error) {
	l, err := Open(path, Options{Host: "-", Version: "-"})
	if err != nil {
		p, aerr := filepath.Abs(path)
		if aerr != nil {
			return nil, err
		}
		if l, err = Open(p, Options{Host: "-", Version: "-"}); err != nil {
			return nil, err
		}
	}
	return l.Files()
}
