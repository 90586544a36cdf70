package audit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/safefile"
)

// Options tune a [Log].
type Options struct {
	// RotateBytes is the size at which the current file is rotated before
	// the next append; 0 never rotates.
	RotateBytes int64
	// Host and Version fill records that leave them empty; defaults: the
	// host name and "unknown".
	Host, Version string
	// Now returns the time for records without one; default time.Now.
	Now func() time.Time
}

// Log is an audit log at a path, with its rotated files. It holds no open
// files between calls and is safe for concurrent use, in one process and
// across processes.
type Log struct {
	path string
	opts Options
}

// Open returns the log at path (an absolute path; the file itself is
// created by the first append, its directory must exist).
func Open(path string, opts Options) (*Log, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("audit: log path %q is not absolute", path)
	}
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	if opts.Version == "" {
		opts.Version = "unknown"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Log{path: filepath.Clean(path), opts: opts}, nil
}

// Path returns the path of the current file.
func (l *Log) Path() string { return l.path }

// Append adds r to the log. It fills Seq, Prev, Hash and, when empty,
// Time, Host and Version. It waits for the lock until ctx is done.
func (l *Log) Append(ctx context.Context, r *Record) error {
	_, err := l.AppendWith(ctx, func(*Searcher) (*Record, error) { return r, nil })
	return err
}

// AppendWith holds the log's lock, calls build with a [Searcher] over the
// records already written, and appends the record build returns (nil
// appends nothing). It returns the record appended. Use it to decide and
// append atomically, e.g. to skip a start another writer recorded.
func (l *Log) AppendWith(ctx context.Context, build func(*Searcher) (*Record, error)) (*Record, error) {
	unlock, err := l.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()

	f, err := openRegular(l.path, unix.O_RDWR|unix.O_APPEND|unix.O_CREAT)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	torn, err := cutTornTail(f)
	if err != nil {
		return nil, err
	}
	last, err := l.lastRecord(f)
	if err != nil {
		return nil, err
	}
	if l.opts.RotateBytes > 0 {
		if f, err = l.maybeRotate(f); err != nil {
			return nil, err
		}
		defer f.Close()
	}
	var lines [][]byte
	appendRec := func(r *Record) error {
		if r.Time == "" {
			r.Time = l.opts.Now().UTC().Format(time.RFC3339Nano)
		}
		if r.Host == "" {
			r.Host = l.opts.Host
		}
		if r.Version == "" {
			r.Version = l.opts.Version
		}
		r.Seq, r.Prev = 1, ""
		if last != nil {
			r.Seq, r.Prev = last.Seq+1, last.Hash
		}
		line, err := r.Encode()
		if err != nil {
			return err
		}
		lines = append(lines, line)
		last = r
		return nil
	}
	if torn != nil {
		keep := torn
		if len(keep) > MaxTornKept {
			keep = keep[:MaxTornKept]
		}
		tr := &Record{Source: "audit", Stage: StageTornTail, Torn: string(bytes.ToValidUTF8(keep, []byte("\uFFFD"))), TornBytes: len(torn),
			Error: "the previous write was cut short (crash?); its bytes were moved into this record"}
		if err := appendRec(tr); err != nil {
			return nil, err
		}
	}
	// Even when build fails, a torn-tail record already made is written:
	// the torn bytes were cut off the file and live only in it.
	r, berr := build(&Searcher{log: l})
	if berr == nil && r != nil {
		berr = appendRec(r)
		if berr != nil {
			r = nil
		}
	}
	if len(lines) > 0 {
		if _, err := f.Write(bytes.Join(lines, nil)); err != nil {
			return nil, fmt.Errorf("audit: append to %s: %w", l.path, err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return nil, fmt.Errorf("audit: fdatasync %s: %w", l.path, err)
		}
	}
	if berr != nil {
		return nil, berr
	}
	return r, nil
}

// lock takes the exclusive lock on PATH.lock, polling until ctx is done
// (flock itself cannot be interrupted by a deadline).
func (l *Log) lock(ctx context.Context) (func(), error) {
	lf, err := openRegular(l.path+".lock", unix.O_RDWR|unix.O_CREAT)
	if errors.Is(err, fs.ErrNotExist) {
		// First use: make the log's directory, private to root. A
		// missing directory must not silently turn auditing off.
		if err := os.MkdirAll(filepath.Dir(l.path), 0o700); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		lf, err = openRegular(l.path+".lock", unix.O_RDWR|unix.O_CREAT)
	}
	if err != nil {
		return nil, err
	}
	return flockWait(ctx, lf, unix.LOCK_EX)
}

// ReadLocked runs fn while holding a shared lock on the log, so that no
// append is half-written while fn reads (verify, show). Without a lock
// file (nothing was ever appended) fn runs unlocked.
func (l *Log) ReadLocked(ctx context.Context, fn func() error) error {
	lf, err := openRegular(l.path+".lock", unix.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return fn()
	}
	if err != nil {
		return err
	}
	unlock, err := flockWait(ctx, lf, unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer unlock()
	return fn()
}

// flockWait locks lf (how: LOCK_EX or LOCK_SH), polling until ctx is done.
// It closes lf on failure; the returned function releases the lock.
func flockWait(ctx context.Context, lf *os.File, how int) (func(), error) {
	wait := 200 * time.Microsecond
	for {
		err := unix.Flock(int(lf.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return func() { lf.Close() }, nil // closing releases the lock
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			lf.Close()
			return nil, fmt.Errorf("audit: lock %s: %w", lf.Name(), err)
		}
		select {
		case <-ctx.Done():
			lf.Close()
			return nil, fmt.Errorf("audit: lock %s: %w", lf.Name(), ctx.Err())
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Millisecond)
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

// cutTornTail truncates f after its last newline and returns the bytes
// cut off, or nil if f ends with a newline (or is empty).
func cutTornTail(f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size == 0 {
		return nil, nil
	}
	end := make([]byte, 1)
	if _, err := f.ReadAt(end, size-1); err != nil {
		return nil, fmt.Errorf("audit: read %s: %w", f.Name(), err)
	}
	if end[0] == '\n' {
		return nil, nil
	}
	nl, err := lastNewline(f, size)
	if err != nil {
		return nil, err
	}
	torn := make([]byte, size-(nl+1))
	if _, err := f.ReadAt(torn, nl+1); err != nil {
		return nil, fmt.Errorf("audit: read %s: %w", f.Name(), err)
	}
	if err := f.Truncate(nl + 1); err != nil {
		return nil, fmt.Errorf("audit: cut torn tail of %s: %w", f.Name(), err)
	}
	return torn, nil
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

// lastRecord returns the last record of the chain: the last line of f
// (which ends with a newline), or of the newest rotated file when f is
// empty; nil when there is none.
func (l *Log) lastRecord(f *os.File) (*Record, error) {
	r, err := lastLine(f)
	if err != nil || r != nil {
		return r, err
	}
	files, err := l.rotated()
	if err != nil {
		return nil, err
	}
	for i := len(files) - 1; i >= 0; i-- {
		rf, err := openRegular(files[i], unix.O_RDONLY)
		if err != nil {
			return nil, err
		}
		r, err := lastLine(rf)
		rf.Close()
		if err != nil || r != nil {
			return r, err
		}
	}
	return nil, nil
}

func lastLine(f *os.File) (*Record, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size == 0 {
		return nil, nil
	}
	// One read of the file's tail holds the last record almost always.
	tail := make([]byte, min(size, 8<<10))
	if _, err := f.ReadAt(tail, size-int64(len(tail))); err != nil {
		return nil, fmt.Errorf("audit: read %s: %w", f.Name(), err)
	}
	var line []byte
	if i := bytes.LastIndexByte(tail[:len(tail)-1], '\n'); i >= 0 {
		line = tail[i+1:]
	} else if int64(len(tail)) == size {
		line = tail
	} else {
		start, err := lastNewline(f, size-1)
		if err != nil {
			return nil, err
		}
		if size-1-(start+1) > MaxLine {
			return nil, fmt.Errorf("audit: %s: last line longer than %d bytes: run `nsrel-hook audit verify`", f.Name(), MaxLine)
		}
		line = make([]byte, size-(start+1))
		if _, err := f.ReadAt(line, start+1); err != nil {
			return nil, fmt.Errorf("audit: read %s: %w", f.Name(), err)
		}
	}
	r, err := Decode(line)
	if err != nil {
		return nil, fmt.Errorf("audit: %s: last record is damaged (%v); refusing to extend the chain: run `nsrel-hook audit verify`", f.Name(), err)
	}
	return r, nil
}

// maybeRotate renames the current file when it reached the rotation size
// and returns a descriptor for the (new) current file; it closes f when
// it replaces it.
func (l *Log) maybeRotate(f *os.File) (*os.File, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < l.opts.RotateBytes {
		return f, nil
	}
	first, err := firstSeq(f)
	if err != nil {
		return nil, err
	}
	dst := fmt.Sprintf("%s.%012d", l.path, first)
	if _, err := os.Lstat(dst); err == nil {
		return nil, fmt.Errorf("audit: rotate %s: %s exists", l.path, dst)
	}
	if err := os.Rename(l.path, dst); err != nil {
		return nil, fmt.Errorf("audit: rotate: %w", err)
	}
	nf, err := openRegular(l.path, unix.O_RDWR|unix.O_APPEND|unix.O_CREAT)
	if err != nil {
		return nil, err
	}
	f.Close()
	if d, err := os.Open(filepath.Dir(l.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nf, nil
}

func firstSeq(f *os.File) (uint64, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(f, 0, MaxLine), 64<<10)
	line, err := br.ReadSlice('\n')
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		return 0, fmt.Errorf("audit: read %s: %w", f.Name(), err)
	}
	// Only the sequence number is needed; a full line is not.
	var head struct {
		Seq uint64 `json:"seq"`
	}
	if i := bytes.IndexByte(line, ','); i > 0 {
		_ = jsonUnmarshal(append(line[:i:i], '}'), &head)
	}
	if head.Seq == 0 {
		return 0, fmt.Errorf("audit: %s: cannot read the first record's sequence number", f.Name())
	}
	return head.Seq, nil
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
