package audit

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The chain's head as the last append left it, kept in the log's lock
// file (PATH.lock, which only writers holding the lock write): the file
// that holds it (its identity), where its line starts and ends, its seq
// and its hash. An append reads it to tell the chain's records from
// older records again after them (stale blocks a crash exposed, of any
// length: [replayed]); where it is missing, stale or does not match the
// file (written by an nsrel before it, or the lock file replaced), the
// append follows the links from an anchor it finds (derivedChain), and
// looks back for a record of the same or a later seq where that does
// not tell.
// It is written without a sync: a crash may leave an older one, which
// the records after it, linked by their prev, bring up to date.

// headHint is the head an append left.
type headHint struct {
	file       fileID
	start, end int64
	seq        uint64
	hash       string
}

// hintSize is the hint's length in the lock file: one line, padded.
const hintSize = 256

const hintMagic = "nsrel-head/1"

// readHint returns the hint in the lock file lf, or nil.
func readHint(lf *os.File) *headHint {
	if lf == nil {
		return nil
	}
	buf := make([]byte, hintSize)
	n, _ := lf.ReadAt(buf, 0)
	f := strings.Fields(string(buf[:n]))
	if len(f) != 9 || f[0] != hintMagic || len(f[8]) != 64 || !isHexBytes([]byte(f[8])) {
		return nil
	}
	var v [7]uint64
	for i := range v {
		var err error
		if v[i], err = strconv.ParseUint(f[1+i], 10, 64); err != nil {
			return nil
		}
	}
	h := &headHint{file: fileID{dev: v[0], ino: v[1], born: int64(v[2]), nsec: int64(v[3])}, start: int64(v[4]), end: int64(v[5]), seq: v[6], hash: f[8]}
	if h.start < 0 || h.end <= h.start || h.end-h.start > MaxLine {
		return nil
	}
	return h
}

// writeHint writes h into the lock file lf (an error leaves the hint
// as it was, or torn: not believed).
func writeHint(lf *os.File, h headHint) {
	if lf == nil {
		return
	}
	line := fmt.Sprintf("%s %d %d %d %d %d %d %d %s", hintMagic, h.file.dev, h.file.ino, h.file.born, h.file.nsec, h.start, h.end, h.seq, h.hash)
	if len(line) >= hintSize {
		return
	}
	buf := bytes.Repeat([]byte{' '}, hintSize)
	copy(buf, line)
	buf[hintSize-1] = '\n'
	lf.WriteAt(buf, 0)
}

// hintHead writes the hint of the head r into the lock file lf when r's
// line is f's last complete line: a read that found the head with no
// damaged line after it, and appends nothing (a quiet node's checkpoint,
// an append with nothing to write). Only the last line: an older copy of
// the head after it (a stale block) would be hinted where the head is
// not, and the lines before the copy never recorded.
func hintHead(f, lf *os.File, r *Record) {
	id, size, err := identity(f)
	if err != nil {
		return
	}
	for l, err := range linesBackwardIn(f, f.Name(), size) {
		if err != nil {
			return
		}
		if isRecordLine(l.Data, r.Seq, r.Hash) {
			writeHint(lf, headHint{file: id, start: l.Offset, end: l.Offset + int64(len(l.Data)) + 1, seq: r.Seq, hash: r.Hash})
		}
		return
	}
}

// identity returns f's identity and size.
func identity(f *os.File) (fileID, int64, error) {
	var st unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, statxMask, &st); err != nil {
		return fileID{}, 0, err
	}
	id, size := statxID(&st)
	return id, size, nil
}

// chainHint is the chain's head where the records a scan of a file
// judges begin: at offset from of the file (0: the head is in the file
// before it), the record of seq and hash.
type chainHint struct {
	seq  uint64
	hash string
	from int64
	// derive, when not nil, says the head is not known yet: the anchor
	// anchor finds stands for it (derive is prev as for [replayed]);
	// derived says it was sought, and anchored that one was found.
	derive            func() uint64
	derived, anchored bool
	// buf holds the bytes the anchor was sought in, from offset bufAt
	// to the end of the file, for the walk.
	buf   []byte
	bufAt int64
	// floor is, when the anchor was sought in the whole file, the seq
	// of the last good record of the file before it: no record of the
	// file at or below it is the chain's.
	floor uint64
	// The walk from from to the end of the file, made once (see walk):
	// where each record it followed starts, its seq and hash (the head
	// after it), where it ended, and how many lines it read.
	walked bool
	starts []int64
	seqs   []uint64
	hashes []string
	end    int64
	lines  int
}

// chainAt returns what the hint h tells of the head for the file f: h's
// head when f holds it, or the head at f's start when the newest rotated
// file (rotated, nil: none) holds it; nil when h is nil, its head's line
// is not as it says, or neither file is h's.
func chainAt(f *os.File, h *headHint, rotated func() (*os.File, error)) *chainHint {
	if h == nil {
		return nil
	}
	id, _, err := identity(f)
	if err != nil {
		return nil
	}
	if id == h.file {
		if !hintedLine(f, h) {
			return nil
		}
		return &chainHint{seq: h.seq, hash: h.hash, from: h.end}
	}
	if rotated == nil {
		return nil
	}
	rf, err := rotated()
	if err != nil || rf == nil {
		return nil
	}
	defer rf.Close()
	rid, size, err := identity(rf)
	if err != nil || rid != h.file || !hintedLine(rf, h) {
		return nil
	}
	seq, hash, ok := walkChain(rf, h.end, size, h.seq, h.hash, nil)
	if !ok {
		return nil
	}
	return &chainHint{seq: seq, hash: hash}
}

// derivedChain is the hint for a file the lock file's hint does not
// tell of (a log last written by an nsrel before the hint, a hint a
// crash lost or left more than a rotation behind, the lock file
// replaced): the chain followed by its links from an anchor, sought at
// the first judgement (see anchor). prev (not nil) is as for
// [replayed].
func derivedChain(prev func() uint64) *chainHint {
	return &chainHint{derive: prev}
}

// anchor finds the record a derived hint follows the chain from: the
// first record within the last derivedWindow bytes of f (all of f when
// it is shorter) that the look back does not take for an older record
// again, of the first maxAnchors records; when that is all of f, past
// the floor, the last good record of the file before f (older records
// a rotation put first in f, however many, are not the chain's: judge
// says so of them too). A stale block after it, up to the window's
// length, is then told by the links, where the look back reads 16 KiB.
// The walk reads the same bytes: once per append, only while the lock
// file holds no hint of f (the append writes one).
func (c *chainHint) anchor(f *os.File) {
	c.derived = true
	size, err := fileSize(f)
	if err != nil {
		return
	}
	from := max(0, size-derivedWindow)
	buf := make([]byte, size-from)
	if _, err := f.ReadAt(buf, from); err != nil {
		return
	}
	whole := buf
	start := from
	if from > 0 {
		// The first bytes read may be the end of a line.
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			return
		}
		buf, start = buf[i+1:], from+int64(i+1)
	}
	if from == 0 {
		// Older records again first in f (a rotation after a crash),
		// however many: the look back tells them only within 16 KiB
		// of f's start.
		c.floor = c.derive()
	}
	tried := 0
	for line := range bytes.Lines(buf) {
		at := start
		start += int64(len(line))
		data, complete := bytes.CutSuffix(line, []byte{'\n'})
		if !complete {
			return
		}
		if seq, ok := headSeq(data); !ok || seq <= c.floor {
			continue
		}
		r, err := Decode(data)
		if err != nil {
			continue
		}
		if lookBack(f, Line{Offset: at, Data: data}, r, c.derive, false) == nil {
			c.seq, c.hash, c.from, c.anchored = r.Seq, r.Hash, start, true
			c.buf, c.bufAt = whole, from
			return
		}
		if tried++; tried == maxAnchors {
			return
		}
	}
}

// maxAnchors bounds the records [chainHint.anchor] tries (each a look
// back of 16 KiB).
const maxAnchors = 8

// derivedWindow is how many bytes at the end of a file an anchor is
// sought in, and the walk from it reads (once: the append writes a
// hint): what a crash's stale blocks may hold, the longest write an
// append makes that was not synced (a damage record and a record, each
// up to a line's 1 MiB). The look back tells what is before it.
const derivedWindow = 2*MaxLine + replayWindow

// hintedLine reports whether f holds h's head where h says: a record
// line of its seq and hash.
func hintedLine(f *os.File, h *headHint) bool {
	buf := make([]byte, h.end-h.start)
	if _, err := f.ReadAt(buf, h.start); err != nil || buf[len(buf)-1] != '\n' {
		return false
	}
	return isRecordLine(buf[:len(buf)-1], h.seq, h.hash)
}

// isRecordLine reports whether line is a record line of seq and hash
// whose hash matches its bytes (what [Decode] checks of it).
func isRecordLine(line []byte, seq uint64, hash string) bool {
	s, ok := headSeq(line)
	at, h, _, split := splitLine(line)
	return ok && split && s == seq && h == hash && bodyHash(closedBody(line, at)) == h
}

// walkChain follows the chain from the record of seq and hash through
// the complete lines of f in [from, to): each record that follows it
// (the next seq, its prev the hash) is the head after it; anything
// else (damaged lines, older records again) leaves the head as it is.
// It calls at, if not nil, with each complete line's start, whether
// the walk followed it, and the head after it. ok is false when the
// bytes are too many or cannot be read.
func walkChain(f *os.File, from, to int64, seq uint64, hash string, at func(start int64, followed bool, seq uint64, hash string)) (uint64, string, bool) {
	if to <= from {
		return seq, hash, true
	}
	if to-from > replayReach {
		return 0, "", false
	}
	buf := make([]byte, to-from)
	if _, err := f.ReadAt(buf, from); err != nil {
		return 0, "", false
	}
	seq, hash = walkLines(buf, from, seq, hash, at)
	return seq, hash, true
}

// walkLines is walkChain through buf, the bytes of the file from
// offset from.
func walkLines(buf []byte, from int64, seq uint64, hash string, at func(start int64, followed bool, seq uint64, hash string)) (uint64, string) {
	start := from
	for line := range bytes.Lines(buf) {
		n := int64(len(line))
		line = bytes.TrimSuffix(line, []byte{'\n'})
		at0, complete := start, n > int64(len(line))
		start += n
		followed := false
		if s, ok := headSeq(line); ok && s == seq+1 {
			if r, err := Decode(line); err == nil && r.Seq == seq+1 && r.Prev == hash {
				seq, hash, followed = r.Seq, r.Hash, true
			}
		}
		if at != nil && complete {
			at(at0, followed, seq, hash)
		}
	}
	return seq, hash
}

// walk follows the chain once from c.from to the end of f (up to
// replayReach bytes), noting the head before each line: a scan back
// asks about each line from the newest, and a walk for each read a
// stale block again per line (seconds for 4 MiB).
func (c *chainHint) walk(f *os.File) {
	c.walked = true
	c.end = c.from
	note := func(start int64, followed bool, seq uint64, hash string) {
		c.lines++
		c.end = start + 1
		if followed {
			c.starts, c.seqs, c.hashes = append(c.starts, start), append(c.seqs, seq), append(c.hashes, hash)
		}
	}
	if c.buf != nil {
		// The anchor's read holds the bytes after it.
		walkLines(c.buf[c.from-c.bufAt:], c.from, c.seq, c.hash, note)
		c.buf = nil
		return
	}
	size, err := fileSize(f)
	if err != nil {
		return
	}
	walkChain(f, c.from, min(size, c.from+replayReach), c.seq, c.hash, note)
}

// headBefore returns the head's seq and hash before the line starting
// at off (within the walk), and the record of seq want it followed, if
// any.
func (c *chainHint) headBefore(off int64, want uint64) (seq uint64, hash, wantHash string) {
	seq, hash = c.seq, c.hash
	if want == c.seq {
		wantHash = c.hash
	}
	i, _ := slices.BinarySearch(c.starts, off) // those before off
	if i > 0 {
		seq, hash = c.seqs[i-1], c.hashes[i-1]
	}
	if j, ok := slices.BinarySearch(c.seqs[:i], want); ok {
		wantHash = c.hashes[j]
	}
	return seq, hash, wantHash
}

// judge tells, by the hint, whether the record r on line l of f is the
// chain's head or an older record again (decided), or leaves it to the
// look back (the line is before the hint's head, or too far after it).
func (c *chainHint) judge(f *os.File, l Line, r *Record) (decided bool, err error) {
	if c.derive != nil {
		if !c.derived {
			c.anchor(f)
		}
		if r.Seq <= c.floor {
			return true, &ReplayError{Seq: r.Seq, After: c.floor}
		}
		if !c.anchored || l.Offset < c.from {
			// No anchor, or the anchor itself or a line before it: the
			// look back tells.
			return false, nil
		}
	}
	if l.Offset < c.from {
		// The hinted head itself, or a line before it (the head's line
		// damaged since: looked back for).
		return r.Seq == c.seq && r.Hash == c.hash, nil
	}
	if !c.walked {
		c.walk(f)
	}
	if l.Offset >= c.end {
		return false, nil // past what the walk read
	}
	seq, hash, orig := c.headBefore(l.Offset, r.Seq)
	switch {
	case r.Seq <= seq && c.derive != nil && orig != "" && orig != r.Hash:
		// Of a seq the walk followed, with other bytes: from an anchor
		// the hint did not give, not told from a chain that forked
		// there (an earlier nsrel took older records again for its
		// head): the look back judges it, as before the anchor.
		return false, nil
	case r.Seq <= seq:
		return true, &ReplayError{Seq: r.Seq, After: seq, Other: orig != "" && orig != r.Hash}
	case r.Seq == seq+1 && r.Prev == hash:
		return true, nil // the record that follows the head
	default:
		// Past a gap: a damaged record of the chain between (the hint
		// older than the log), or records deleted or forged. Looked
		// back for.
		return false, nil
	}
}
