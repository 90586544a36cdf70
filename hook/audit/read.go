package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/vocab"
)

// Line is one line of a log file as [Lines] yields it.
type Line struct {
	// File and Number locate the line (Number counts from 1).
	File   string
	Number int
	// Offset is the byte offset of the line in the file.
	Offset int64
	// Data is the line without its newline; it is only valid until the
	// next iteration.
	Data []byte
	// Torn is set for a last line without a newline.
	Torn bool
	// Long is the length of a line longer than [MaxLine], which no
	// record can be: Data is then nil, and Sum the hex SHA-256 of its
	// bytes, read as they streamed by.
	Long int64
	Sum  string
}

// Lines yields the lines of file.
func Lines(file string) iter.Seq2[Line, error] {
	return func(yield func(Line, error) bool) {
		f, err := openRegular(file, unix.O_RDONLY)
		if err != nil {
			yield(Line{File: file}, err)
			return
		}
		defer f.Close()
		for l, err := range linesIn(f, file, -1) {
			if !yield(l, err) {
				return
			}
		}
	}
}

// linesIn yields the lines of f (named file) up to size bytes (-1: all).
func linesIn(f *os.File, file string, size int64) iter.Seq2[Line, error] {
	return func(yield func(Line, error) bool) {
		var r io.Reader = f
		if size >= 0 {
			r = io.NewSectionReader(f, 0, size)
		}
		br := bufio.NewReaderSize(r, 64<<10)
		var off int64
		var long []byte
		for n := 1; ; n++ {
			data, err := br.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) {
				long = append(long[:0], data...)
				for errors.Is(err, bufio.ErrBufferFull) && len(long) <= MaxLine {
					data, err = br.ReadSlice('\n')
					long = append(long, data...)
				}
				data = long
				if len(data) > MaxLine {
					// No record is this long: skip to its end, and hash it
					// from the file in bounded chunks, so that the line
					// can be named as damage.
					total := int64(len(data))
					for errors.Is(err, bufio.ErrBufferFull) {
						data, err = br.ReadSlice('\n')
						total += int64(len(data))
					}
					if err != nil && err != io.EOF {
						yield(Line{File: file, Number: n, Offset: off}, fmt.Errorf("audit: read %s: %w", file, err))
						return
					}
					torn := err == io.EOF
					if !torn {
						total-- // the newline
					}
					l := Line{File: file, Number: n, Offset: off, Torn: torn, Long: total}
					if !torn {
						l.Sum = sumRange(f, off, total)
					}
					off += total + 1
					if !yield(l, nil) || torn {
						return
					}
					continue
				}
			}
			if len(data) == 0 && err == io.EOF {
				return
			}
			if err != nil && err != io.EOF {
				yield(Line{File: file, Number: n, Offset: off}, fmt.Errorf("audit: read %s: %w", file, err))
				return
			}
			l := Line{File: file, Number: n, Offset: off, Data: bytes.TrimSuffix(data, []byte{'\n'}), Torn: err == io.EOF}
			off += int64(len(data))
			if !yield(l, nil) || err == io.EOF {
				return
			}
		}
	}
}

// sumRange returns the hex SHA-256 of n bytes of f at off, read in
// bounded chunks.
func sumRange(f *os.File, off, n int64) string {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, off, n)); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Records yields the valid records of the files, in order, skipping
// lines that do not decode (a torn last line being written, a damaged
// record): use [Verify] to check a log. Errors opening or reading a file
// are yielded.
func Records(files ...string) iter.Seq2[*Record, error] {
	return func(yield func(*Record, error) bool) {
		for _, file := range files {
			for l, err := range Lines(file) {
				if err != nil {
					if !yield(nil, err) {
						return
					}
					break
				}
				if l.Torn {
					continue
				}
				r, derr := Decode(l.Data)
				if derr != nil {
					continue
				}
				if !yield(r, nil) {
					return
				}
			}
		}
	}
}

// Searcher finds records in a log, newest file first. [Log.AppendWith]
// hands one to its build function, bound to the append's context: a
// search that outlasts it (a cold page cache under a container start's
// deadline, with the log's lock held) stops with the context's error.
type Searcher struct {
	log  *Log
	ctx  context.Context // nil: none
	all  bool            // every rotated file, not SearchFiles
	mark *searchMark     // notes what a search reads ([AppendAfterSearch])
	// pending are the damaged lines the append that holds the lock
	// found, whose damage record it writes after the search: listed by
	// the newest damage record of all.
	pending []DamagedLine
}

// Searcher returns a searcher over the log's records, without a
// context (see [Searcher.WithContext]). Outside [Log.AppendWith] it does
// not hold the lock, so records may be appended while it searches.
func (l *Log) Searcher() *Searcher { return &Searcher{log: l} }

// WithContext returns a searcher like s whose searches stop with ctx's
// error once ctx is done.
func (s *Searcher) WithContext(ctx context.Context) *Searcher {
	return &Searcher{log: s.log, ctx: ctx, all: s.all, mark: s.mark, pending: s.pending}
}

// Everywhere returns a searcher like s that reads every rotated file,
// not only the newest [SearchFiles]: for an operator's search (audit
// ack), which may go far back, outside the log's lock.
func (s *Searcher) Everywhere() *Searcher {
	return &Searcher{log: s.log, ctx: s.ctx, all: true, mark: s.mark, pending: s.pending}
}

// Last returns the last record of the given container for which match
// (nil: any) returns true, or nil. It reads the newest file first, from
// its end backwards, and stops at the first match; lines that cannot
// mention the container are skipped before they are decoded. It searches
// the current file and at most [SearchFiles] rotated files (every one
// with [Searcher.Everywhere]).
func (s *Searcher) Last(containerID string, match func(*Record) bool) (*Record, error) {
	mark := s.mark
	if mark != nil {
		if mark.used {
			// One search is marked: a second one invalidates the mark.
			mark.invalid = true
			mark = nil
		} else {
			mark.used, mark.id, mark.all = true, containerID, s.all
		}
	}
	// The lines damage records met list (older records again among
	// them: not the container's last) are skipped, by the readers' rule;
	// those of the damage record to be written first.
	listed := s.log.listed()
	listed.pend(s.pending)
	in := func(file string) (*Record, error) {
		var seen *searchedFile
		if mark != nil {
			mark.files = append(mark.files, searchedFile{name: file})
			seen = &mark.files[len(mark.files)-1]
		}
		if x := s.log.index; x != nil && file != s.log.path && containerID != "" && x.skip(s.ctx, file, containerID, seen) {
			if mark != nil {
				mark.found = false
			}
			return nil, nil // a rotated file without a record of the container
		}
		r, err := lastIn(s.ctx, file, 0, seen, containerID, match, listed)
		if mark != nil {
			mark.found = r != nil
		}
		return r, err
	}
	// The current file first: the directory is listed for rotated files
	// only when the record is not there (a hook's earlier stage is
	// almost always in it).
	r, err := in(s.log.path)
	if err != nil || r != nil {
		return r, err
	}
	files, err := s.log.rotated()
	if err != nil {
		return nil, err
	}
	for i := len(files) - 1; i >= len(files)-window(len(files), s.all); i-- {
		if r, err := in(files[i]); err != nil || r != nil {
			return r, err
		}
	}
	return nil, nil
}

// searchMark is what a search before the log's lock read ([AppendAfterSearch]):
// the container it searched for, and the files it read, newest first:
// files[0] is the current file (its identity zero when it did not
// exist), and found says it found a record in the last.
type searchMark struct {
	used, invalid bool // a search was made; another one too
	id            string
	all           bool // of [Searcher.Everywhere]
	files         []searchedFile
	found         bool
}

// searchedFile is a file a search read: its name and identity, and the
// end of its last complete line then (lines after it were appended
// since).
type searchedFile struct {
	name string
	id   fileID
	size int64
	end  int64
}

// fileID tells files apart: the device and inode, and the birth time,
// so that a file retention removed and a later one given its inode
// number are not taken for one (where the file system keeps birth times;
// ext4, xfs, btrfs and tmpfs do).
type fileID struct {
	dev, ino   uint64
	born, nsec int64
}

// statxID returns the identity and size of the file statx(2) describes.
func statxID(st *unix.Statx_t) (fileID, int64) {
	id := fileID{dev: unix.Mkdev(st.Dev_major, st.Dev_minor), ino: st.Ino}
	if st.Mask&unix.STATX_BTIME != 0 {
		id.born, id.nsec = st.Btime.Sec, int64(st.Btime.Nsec)
	}
	return id, int64(st.Size)
}

// statxMask is what statxID needs.
const statxMask = unix.STATX_TYPE | unix.STATX_INO | unix.STATX_SIZE | unix.STATX_BTIME

// unchanged reports whether the search mark notes, made before the log's
// lock was taken, would find the same now: the files it read are the
// log's search window as they were (no rotation, retention or file
// replaced since; when it found nothing, it read the whole window), and
// the lines appended to the current file since hold no record of the
// container it searched for. Anything else (an error too) is false: only
// a search of its own is sure then.
func (s *Searcher) unchanged(mark *searchMark) bool {
	if !mark.used || mark.invalid || len(mark.files) == 0 || mark.files[0].name != s.log.path || mark.files[0].id == (fileID{}) || len(s.pending) > 0 {
		// (Damaged lines found under the lock: their damage record,
		// written next, may list what the search found.)
		return false
	}
	if len(mark.files) > 1 || !mark.found {
		files, err := s.log.rotated()
		if err != nil {
			return false
		}
		n := window(len(files), mark.all)
		if len(mark.files)-1 > n || !mark.found && len(mark.files)-1 != n {
			return false
		}
		for j, m := range mark.files[1:] {
			var st unix.Statx_t
			if files[len(files)-1-j] != m.name || unix.Statx(unix.AT_FDCWD, m.name, unix.AT_SYMLINK_NOFOLLOW, statxMask, &st) != nil {
				return false
			}
			if id, _ := statxID(&st); id != m.id {
				return false
			}
		}
	}
	cur := mark.files[0]
	now := searchedFile{name: cur.name}
	// A damage record appended since may list what the search found,
	// or make one it went by count for nothing.
	listed := s.log.listed()
	r, err := lastIn(s.ctx, cur.name, cur.end, &now, mark.id, nil, listed)
	return err == nil && r == nil && !listed.met && now.id == cur.id && now.size >= cur.end
}

// lastIn is [Searcher.Last] in one file, among its lines that start at
// from or after; a file that does not exist (not created yet, rotated
// away meanwhile) holds no record. It notes in seen (if not nil) the
// file's identity, size and the end of its last complete line. It reads
// only a file owned by root or the effective user that others cannot
// write: a search before the log's lock is taken has not had the log's
// directory checked (a file someone else made there, before the log's
// writer did, is refused, and the search made again under the lock),
// and under the lock a rotated file another user may write could hold a
// start of theirs (an append of a container's start took it for
// recorded, and recorded nothing). It looks at ctx (nil: none) every
// [searchCheck] lines.
func lastIn(ctx context.Context, file string, from int64, seen *searchedFile, containerID string, match func(*Record) bool, listed *Listed) (*Record, error) {
	needle := appendJSONString([]byte(`"container_id":`), containerID)
	base := filepath.Base(file)
	f, err := openOwned(file, unix.O_RDONLY)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	var st unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, statxMask, &st); err != nil {
		return nil, fmt.Errorf("audit: statx %s: %w", file, err)
	}
	id, size := statxID(&st)
	if seen != nil {
		seen.id, seen.size = id, size
	}
	n := 0
	for line, err := range linesBackwardIn(f, file, size) {
		if err != nil {
			return nil, err
		}
		if n++; n == 1 && seen != nil {
			seen.end = line.Offset + int64(len(line.Data)) + line.Long + 1
		}
		if line.Offset < from {
			return nil, nil
		}
		if ctx != nil && n%searchCheck == 0 {
			if searchedLines != nil {
				searchedLines()
			}
			if err := ctx.Err(); err != nil {
				what := "container " + vocab.Printable(containerID)
				if containerID == "" {
					what = "a record" // an operator's search (audit ack)
				}
				return nil, fmt.Errorf("audit: search of %s for %s stopped: %w", file, what, err)
			}
		}
		listed.LineBackward(base, line.Offset, line.Data)
		if !bytes.Contains(line.Data, needle) || listed.Has(base, line.Offset, line.Data) {
			continue
		}
		r, derr := Decode(line.Data)
		if derr != nil || r.ContainerID != containerID {
			continue
		}
		if match == nil || match(r) {
			return r, nil
		}
	}
	return nil, nil
}

// Listed collects the lines the damage records list: such lines are no
// records of the chain (verify takes them for damaged lines, an older
// record again among them), and a reader that shows or believes records
// passes them over, as the hook's own searches do.
//
// A damage record that a damage record after it lists (one that counts)
// counts for nothing: it is no record of the chain either. One made up
// and written into the log (root on the node later, with the seq of a
// record retention removed, which the next append files as an older
// record again, and an ack passes) listed a record of the chain, and
// the readers left that record out while verify passed. Where verify
// passes, the damage records that count are the chain's own: each one
// out of the chain is listed by one of the chain after it, and one of
// the chain lists only the damaged lines before it. A line counts as
// listed when a damage record names its place and its bytes (length and
// SHA-256), and comes before it.
//
// A damage record comes after the lines it lists: a reader going
// forward gives every line to [Listed.Line], in order, and asks
// [Listed.Has] once it has read them all; one going backward gives
// each to [Listed.LineBackward] and asks as it goes. Make it with
// [Snapshot.Listed].
type Listed struct {
	// current is the base name of the log's current file; rank places a
	// file (its key, [Listed.key]) among the log's files:
	// false for one that is none of them.
	current string
	rank    func(string) (uint64, bool)
	// damages are the damage records met going forward, in order;
	// lines, once resolved (forward) or as met (backward), the lines
	// the damage records that count list.
	damages  []listing
	lines    map[lineAt]LineKey
	resolved bool
	met      bool // a damage record was met (backward)
	// files opens the log's files from the one a key names back (see
	// aboveIn).
	files func(key string) iter.Seq2[string, *os.File]
}

// listing is a damage record: where it is, its key and seq, the lines it
// lists before it, and whether a record of a higher seq comes between
// the first of them and it (see aboveIn).
type listing struct {
	at    lineAt
	key   LineKey
	seq   uint64
	lists map[lineAt]LineKey
	above bool
}

// Listed returns an empty [Listed] for the snapshot's log.
func (s *Snapshot) Listed() *Listed {
	d := &Listed{current: filepath.Base(s.log)}
	order := map[string]int{}
	for i, f := range s.files {
		order[d.key(f.name)] = i
	}
	d.rank = func(key string) (uint64, bool) {
		if i, ok := order[key]; ok && strings.HasPrefix(key, "/") {
			return uint64(i), true // a file of another name, given
		}
		return logRank(key)
	}
	d.files = func(key string) iter.Seq2[string, *os.File] {
		return func(yield func(string, *os.File) bool) {
			i, ok := order[key]
			for j := i; ok && j >= 0; j-- {
				if !yield(s.files[j].name, s.files[j].f) {
					return
				}
			}
		}
	}
	return d
}

// listed returns an empty [Listed] for the log's own searches, which
// read the current file before they list the rotated ones: a file is
// placed by its name (a rotated file by the seq in it, the current file
// last), as [Log.Files] orders them.
func (l *Log) listed() *Listed {
	d := &Listed{current: filepath.Base(l.path), rank: logRank}
	d.files = func(key string) iter.Seq2[string, *os.File] {
		return func(yield func(string, *os.File) bool) {
			open := func(name string) bool {
				f, err := openOwned(name, unix.O_RDONLY)
				if err != nil {
					return false
				}
				defer f.Close()
				return yield(name, f)
			}
			name := l.path
			if strings.HasPrefix(key, "/") {
				return // none of the log's
			} else if key != "" {
				name += "." + key
			}
			if !open(name) {
				return
			}
			// The rotated files before it, listed only now (a damage
			// record's lines are almost always in its own file).
			at, _ := d.rank(key)
			rotated, err := l.rotated()
			if err != nil {
				return
			}
			for i := len(rotated) - 1; i >= 0; i-- {
				if r, ok := d.rank(d.key(rotated[i])); ok && r < at && !open(rotated[i]) {
					return
				}
			}
		}
	}
	return d
}

// aboveIn reports whether a record of a higher seq than damage record
// l (one that decodes, its hash its contents') comes between the first
// line l lists and l, reading them backward from the log's files (from
// l's file back), or whether l lists lines further back than a damage
// record of the chain can (more lines before it than maxDamagedLines and
// the chain's few records among them). Where verify passes, the lines
// between are the damaged lines a damage record of the chain lists
// (older records again, of seqs the chain had written; lines that do
// not decode, whatever their heads say) and the chain's records among
// them (a torn line's record, a seal-start record), all below its seq.
// A damage record made up and filed as an older record again, listing
// records of the chain, has them (of higher seqs than any older record
// again) between.
func (d *Listed) aboveIn(l listing) bool {
	first, found := lineAt{}, false
	for at := range l.lists {
		if !found || d.before(at, first) {
			first, found = at, true
		}
	}
	if !found {
		return false
	}
	firstRank, _ := d.rank(first.file)
	top, n := true, 0
	for name, f := range d.files(l.at.file) {
		key := d.key(name)
		if r, ok := d.rank(key); !ok || r < firstRank {
			return false
		}
		size := l.at.offset
		if !top {
			var err error
			if size, err = fileSize(f); err != nil {
				return false
			}
		}
		top = false
		for ln, err := range linesBackwardIn(f, name, size) {
			if err != nil {
				return false
			}
			if n++; n > maxDamagedLines+maxChainAmongDamaged {
				return true
			}
			if seq, ok := headSeq(ln.Data); ok && seq > l.seq {
				// (A torn line, ended with TornMark, does not decode.)
				if r, err := Decode(ln.Data); err == nil && r.Seq > l.seq {
					return true
				}
			}
			if key == first.file && ln.Offset <= first.offset {
				return false
			}
		}
	}
	return false
}

// maxChainAmongDamaged bounds the records of the chain among the damaged
// lines a damage record lists (a torn line's record, seal-start records).
const maxChainAmongDamaged = 16

// key names a file (path or base name) of the log: "" for the current
// file, the digits of a rotated file's suffix (CURRENT.NNNNNNNNNNNN),
// and "/" and its name for any other (none of the log's). A damage
// record names the files by their names when it was written: only the
// log's own names count (a name of another form, of a file a retention
// record made up removed, passed verify, and taken by its suffix or as
// the record's own file it hid records of the chain from the readers).
// A copy of the log must keep the files' names.
func (d *Listed) key(name string) string {
	b := filepath.Base(name)
	if b == d.current {
		return ""
	}
	if rest, ok := strings.CutPrefix(b, d.current); ok {
		if _, ok := rotatedSeq(rest); ok {
			return rest[1:]
		}
	}
	return "/" + b
}

// recordKey is the key ([Listed.key]) of a file a record names: a writer
// names the log's files by their names alone, so one named by a path
// (a directory in it) is none of the log's, whatever its base name
// (made up, and taken by its base name, it hid a record of the chain
// from the readers while verify took the line for one in a file
// retention removed).
func recordKey(d *Listed, name string) string {
	if namedByPath(name) {
		return "/" + name
	}
	return d.key(name)
}

// namedByPath reports whether a record names a file by a path (a
// directory in it): none of the log's files, which writers name by
// their base names alone (verify fails such a record: pathNamed).
func namedByPath(name string) bool { return strings.ContainsRune(name, '/') }

// logRank places a file of a log by its key ([Listed.key]): the current
// file last, a rotated file by the seq in its name.
func logRank(key string) (uint64, bool) {
	if key == "" {
		return math.MaxUint64, true
	}
	if strings.HasPrefix(key, "/") {
		return 0, false
	}
	seq, err := strconv.ParseUint(key, 10, 64)
	return min(seq, math.MaxUint64-1), err == nil
}

// Line reads line data at offset of file, forward.
func (d *Listed) Line(file string, offset int64, data []byte) {
	if l, ok := d.listing(file, offset, data); ok {
		d.damages = append(d.damages, l)
		d.resolved = false
	}
}

// Damaged reports whether a damage record was met going forward: none,
// and [Listed.Has] says no to every line.
func (d *Listed) Damaged() bool { return len(d.damages) > 0 }

// LineBackward reads line data at offset of file, backward: a damage
// record that no damage record met (after it) that counts lists has the
// lines it lists kept (see [Listed.count]).
func (d *Listed) LineBackward(file string, offset int64, data []byte) {
	d.resolved = true // as it goes: nothing to resolve at Has
	if l, ok := d.listing(file, offset, data); ok {
		d.met = true
		d.count(l)
	}
}

// pend counts, before any line is read backward, the damage record an
// append is about to write, listing lines (after every line there is).
func (d *Listed) pend(lines []DamagedLine) {
	if len(lines) == 0 {
		return
	}
	l := listing{lists: map[lineAt]LineKey{}}
	for _, dl := range lines {
		f := recordKey(d, dl.File) // "" for the current file, where it goes
		l.lists[lineAt{f, dl.Offset}] = dl.Key()
	}
	d.resolved = true
	d.count(l)
}

// count keeps the lines l lists, unless a damage record kept lists l,
// or a record of a higher seq comes between the first line l lists and
// l (see aboveIn): such a damage record is an older record again itself,
// whatever lists it. Root on the node later made one up with the seq of
// a record retention removed, listing records of the chain by their
// places, and had the chain's next damage record list it by its bytes
// at another place (verify matches a damage record's lines by their
// bytes), and the readers and the hook's search left those records out
// while verify passed.
func (d *Listed) count(l listing) {
	if k, listed := d.lines[l.at]; listed && k == l.key {
		return
	}
	if l.above {
		return
	}
	if d.lines == nil {
		d.lines = map[lineAt]LineKey{}
	}
	maps.Copy(d.lines, l.lists)
}

// before reports whether a is before b among the log's files.
func (d *Listed) before(a, b lineAt) bool {
	fa, oka := d.rank(a.file)
	fb, okb := d.rank(b.file)
	return oka && okb && (fa < fb || fa == fb && a.offset < b.offset)
}

// listing reads a damage record: ok is false for any other line.
func (d *Listed) listing(file string, offset int64, data []byte) (listing, bool) {
	if !damageHead(data) {
		return listing{}, false
	}
	r, err := Decode(data)
	if err != nil || r.Stage != StageDamaged {
		return listing{}, false
	}
	key := d.key(file)
	l := listing{at: lineAt{key, offset}, key: LineKeyOf(data), seq: r.Seq, lists: map[lineAt]LineKey{}}
	for _, dl := range r.Damage {
		f := recordKey(d, dl.File)
		if f == "" {
			// The current file when the record was written is the
			// file that holds it (rotated since, perhaps).
			f = key
		}
		if at := (lineAt{f, dl.Offset}); d.before(at, l.at) {
			l.lists[at] = dl.Key()
		}
	}
	l.above = d.aboveIn(l)
	return l, true
}

// Has reports whether a damage record that counts lists the line data
// at offset of file.
func (d *Listed) Has(file string, offset int64, data []byte) bool {
	d.resolve()
	k, ok := d.lines[lineAt{d.key(file), offset}]
	return ok && k.Bytes == len(data) && k == LineKeyOf(data)
}

// HasKey is [Listed.Has] of a line known by its key (one longer than
// [MaxLine], which [Snapshot.Lines] gives by its length and sum).
func (d *Listed) HasKey(file string, offset int64, key LineKey) bool {
	d.resolve()
	k, ok := d.lines[lineAt{d.key(file), offset}]
	return ok && k == key
}

// resolve keeps the lines the damage records met going forward list,
// once they are all met.
func (d *Listed) resolve() {
	if !d.resolved {
		// The last first: whether one counts depends on those after it.
		d.lines, d.resolved = nil, true
		for i := len(d.damages) - 1; i >= 0; i-- {
			d.count(d.damages[i])
		}
	}
}

// lineAt is a line of a log's file: its base name and offset, as a
// damage record lists it.
type lineAt struct {
	file   string
	offset int64
}

// searchCheck is how many lines a search reads between looks at its
// context; searchedLines, if set (by tests), is called at each look.
const searchCheck = 64

var searchedLines func()

// window is how many of n rotated files a search reads, newest first:
// every one with all ([Searcher.Everywhere]), else at most [SearchFiles].
func window(n int, all bool) int {
	if all {
		return n
	}
	return min(n, SearchFiles)
}

// SearchFiles bounds how many rotated files [Searcher.Last] reads besides
// the current one, so that a hook looking for a container the log never
// saw stays fast however many rotated files are kept.
var SearchFiles = 4

// LinesBackward yields the complete lines of file (without newline),
// last first, skipping a torn last line. A line is only valid until the
// next iteration.
func LinesBackward(file string) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		f, err := openRegular(file, unix.O_RDONLY)
		if err != nil {
			yield(nil, err)
			return
		}
		defer f.Close()
		size, err := fileSize(f)
		if err != nil {
			yield(nil, err)
			return
		}
		for l, err := range linesBackwardIn(f, file, size) {
			if !yield(l.Data, err) {
				return
			}
		}
	}
}

// linesBackwardIn is [LinesBackward] on an open file, read up to size;
// each line has its Offset (Number is not known and left 0).
func linesBackwardIn(f *os.File, file string, size int64) iter.Seq2[Line, error] {
	return func(yield func(Line, error) bool) {
		nl, err := lastNewline(f, size)
		if err != nil || nl < 0 {
			if err != nil {
				yield(Line{File: file}, err)
			}
			return
		}
		// A small first chunk (the searched record is usually among the
		// last few), then larger ones.
		chunk := 8 << 10
		pos := nl + 1 // pending holds bytes [pos, pos+len(pending))
		var pending []byte
		// nls holds the offsets in pending of its newlines but the
		// last, in order, found with one forward scan of each chunk
		// read (IndexByte is many times faster than a search backwards
		// for each line).
		var nls []int
		for {
			if len(pending) > 0 {
				body := pending[:len(pending)-1] // without its final newline
				if k := len(nls) - 1; k >= 0 {
					i := nls[k]
					nls = nls[:k]
					if !yield(Line{File: file, Offset: pos + int64(i) + 1, Data: body[i+1:]}, nil) {
						return
					}
					pending = pending[:i+1]
					continue
				}
				if pos == 0 {
					yield(Line{File: file, Offset: 0, Data: body}, nil)
					return
				}
				if len(pending) > MaxLine+chunk {
					// No record is this long: find where the line starts,
					// hash it from the file, and go on before it.
					end := pos + int64(len(pending)) - 1 // its newline
					start, err := lastNewline(f, pos)
					if err != nil {
						yield(Line{File: file}, err)
						return
					}
					start++
					if !yield(Line{File: file, Offset: start, Long: end - start, Sum: sumRange(f, start, end-start)}, nil) {
						return
					}
					pending, pos = nil, start
					continue
				}
			} else if pos == 0 {
				return
			}
			n := min(int64(chunk), pos)
			buf := make([]byte, int(n)+len(pending))
			if _, err := f.ReadAt(buf[:n], pos-n); err != nil {
				yield(Line{File: file}, fmt.Errorf("audit: read %s: %w", file, err))
				return
			}
			copy(buf[n:], pending)
			// What pending held has no newline but its last: the
			// chunk read holds every other.
			nls = nls[:0]
			for i, scan := 0, buf[:min(int(n), len(buf)-1)]; ; {
				j := bytes.IndexByte(scan[i:], '\n')
				if j < 0 {
					break
				}
				nls = append(nls, i+j)
				i += j + 1
			}
			pending, pos = buf, pos-n
			chunk = 64 << 10
		}
	}
}

// IsStart reports whether a record's stage records a container start:
// createRuntime, poststart or start.
func IsStart(stage string) bool {
	return stage == StageCreateRuntime || stage == StagePoststart || stage == StageStart
}

// IsStop reports whether a record's stage records a container's end:
// poststop or exit.
func IsStop(stage string) bool {
	return stage == StagePoststop || stage == StageExit
}

// HasStart reports whether the log already holds a start record (see
// [IsStart]) for the container whose process is pid with the given start
// time (field 22 of /proc/PID/stat; 0 matches any). To check and append
// without a race, do the same inside [Log.AppendWith].
func (l *Log) HasStart(containerID string, pid int, startTime uint64) (bool, error) {
	r, err := l.Searcher().Last(containerID, StartMatcher(pid, startTime))
	return r != nil, err
}

// AppendStart appends r, the start of the process pid with the given
// start time (0: unknown), unless the log already holds a start record
// (see [StartMatcher]) of the same container and process, whoever wrote
// it: the check and the append happen under the log's lock (see
// [Log.AppendAfterLast]). It returns the record appended, or nil when
// the start was recorded already. The containerd event recorder and the
// NRI plugin use it so that a container nsrel-hook recorded is not
// recorded twice.
func (l *Log) AppendStart(ctx context.Context, r *Record, pid int, startTime uint64) (*Record, error) {
	return l.AppendAfterLast(ctx, r.ContainerID, StartMatcher(pid, startTime), func(prev *Record) (*Record, error) {
		if prev != nil {
			return nil, nil
		}
		return r, nil
	})
}

// AppendAfterLast is [Log.AppendWith] for a build that needs the last
// record of containerID that match selects ([Searcher.Last]): build gets
// it (nil: none) under the log's lock, and returns the record to append
// (nil: none). The search is made before the lock is taken
// ([AppendAfterSearch]). A search that fails fails the append, which then
// writes nothing of the caller's.
func (l *Log) AppendAfterLast(ctx context.Context, containerID string, match func(*Record) bool, build func(prev *Record) (*Record, error)) (*Record, error) {
	return AppendAfterSearch(ctx, l, func(s *Searcher) (*Record, error) {
		return s.Last(containerID, match)
	}, func(prev *Record, err error) (*Record, error) {
		if err != nil {
			return nil, err
		}
		return build(prev)
	})
}

// AppendAfterSearch is [Log.AppendWith] for a build that needs what a
// search of the log for one container finds: search, which must read the
// log through one [Searcher.Last] call of the searcher it is given, and
// whose result depends on the records it reads (and on nothing the lock
// guards), runs before the lock is taken, with ctx's time; under the
// lock, build gets its result and error, and search runs again first
// only when its result may have changed: a record of the container was
// appended since, the files it read are no longer the log's (a
// rotation, retention), or it failed other than by running out of time
// (the lock, when free, is still taken then, for build to record the
// failure: [Log.AppendWith] tries it once whatever ctx). The search for a
// container the log does not hold reads the whole search window, tens of
// MiB, which under the lock would keep every other writer (a container
// start waiting for its record) waiting all that time.
func AppendAfterSearch[T any](ctx context.Context, l *Log, search func(*Searcher) (T, error), build func(T, error) (*Record, error)) (*Record, error) {
	mark := &searchMark{}
	found, err := search(&Searcher{log: l, ctx: ctx, mark: mark})
	// Out of time, the search is not made again under the lock (it would
	// run out as well): build gets its error, and the lock is still
	// taken if free, for the record that says so (a poststop's).
	late := err != nil && ctx.Err() != nil
	if err != nil {
		mark = nil
	}
	if testHookBeforeLock != nil {
		testHookBeforeLock(mark)
	}
	return l.AppendWith(ctx, func(s *Searcher) (*Record, error) {
		if !late && (mark == nil || !s.unchanged(mark)) {
			found, err = search(s)
		}
		return build(found, err)
	})
}

// testHookBeforeLock, set by tests only, is called by
// [AppendAfterSearch] between its search and the lock, with the search's
// mark (nil after an error).
var testHookBeforeLock func(*searchMark)

// StartMatcher returns a match function for [Searcher.Last] that selects
// start records of the process pid of this boot with the given start
// time (0: any).
func StartMatcher(pid int, startTime uint64) func(*Record) bool {
	return func(r *Record) bool {
		if !IsStart(r.Stage) || r.Ancestry == nil || r.PID != pid {
			return false
		}
		return (startTime == 0 || r.StartTime == startTime) && r.OfThisBoot()
	}
}
