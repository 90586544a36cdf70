package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

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
}

// Lines yields the lines of file. A line longer than [MaxLine] ends the
// iteration with an error.
func Lines(file string) iter.Seq2[Line, error] {
	return func(yield func(Line, error) bool) {
		f, err := openRegular(file, unix.O_RDONLY)
		if err != nil {
			yield(Line{File: file}, err)
			return
		}
		defer f.Close()
		br := bufio.NewReaderSize(f, 64<<10)
		var off int64
		var long []byte
		for n := 1; ; n++ {
			data, err := br.ReadSlice('\n')
			for errors.Is(err, bufio.ErrBufferFull) {
				long = append(long[:0], data...)
				for errors.Is(err, bufio.ErrBufferFull) && len(long) <= MaxLine {
					data, err = br.ReadSlice('\n')
					long = append(long, data...)
				}
				data = long
				if len(data) > MaxLine {
					yield(Line{File: file, Number: n, Offset: off}, fmt.Errorf("%s:%d: line longer than %d bytes", file, n, MaxLine))
					return
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
// hands one to its build function.
type Searcher struct{ log *Log }

// Searcher returns a searcher over the log's records. Outside
// [Log.AppendWith] it does not hold the lock, so records may be appended
// while it searches.
func (l *Log) Searcher() *Searcher { return &Searcher{log: l} }

// Last returns the last record of the given container for which match
// (nil: any) returns true, or nil. It reads the newest file first, from
// its end backwards, and stops at the first match; lines that cannot
// mention the container are skipped before they are decoded. It searches
// the current file and at most [SearchFiles] rotated files.
func (s *Searcher) Last(containerID string, match func(*Record) bool) (*Record, error) {
	needle := appendJSONString([]byte(`"container_id":`), containerID)
	// The current file first: the directory is listed for rotated files
	// only when the record is not there (a hook's earlier stage is
	// almost always in it).
	r, err := lastIn(s.log.path, containerID, needle, match)
	if err != nil || r != nil {
		return r, err
	}
	files, err := s.log.rotated()
	if err != nil {
		return nil, err
	}
	for i := len(files) - 1; i >= 0 && i >= len(files)-SearchFiles; i-- {
		if r, err := lastIn(files[i], containerID, needle, match); err != nil || r != nil {
			return r, err
		}
	}
	return nil, nil
}

// lastIn is [Searcher.Last] in one file; a file that does not exist
// (not created yet, rotated away meanwhile) holds no record.
func lastIn(file, containerID string, needle []byte, match func(*Record) bool) (*Record, error) {
	for line, err := range LinesBackward(file) {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, nil
			}
			return nil, err
		}
		if !bytes.Contains(line, needle) {
			continue
		}
		r, derr := Decode(line)
		if derr != nil || r.ContainerID != containerID {
			continue
		}
		if match == nil || match(r) {
			return r, nil
		}
	}
	return nil, nil
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
		st, err := f.Stat()
		if err != nil {
			yield(nil, err)
			return
		}
		nl, err := lastNewline(f, st.Size())
		if err != nil || nl < 0 {
			if err != nil {
				yield(nil, err)
			}
			return
		}
		// A small first chunk (the searched record is usually among the
		// last few), then larger ones.
		chunk := 8 << 10
		pos := nl + 1 // pending holds bytes [pos, pos+len(pending))
		var pending []byte
		for {
			if len(pending) > 0 {
				body := pending[:len(pending)-1] // without its final newline
				if i := bytes.LastIndexByte(body, '\n'); i >= 0 {
					if !yield(body[i+1:], nil) {
						return
					}
					pending = pending[:i+1]
					continue
				}
				if pos == 0 {
					yield(body, nil)
					return
				}
				if len(pending) > MaxLine+chunk {
					yield(nil, fmt.Errorf("audit: %s: line longer than %d bytes", file, MaxLine))
					return
				}
			} else if pos == 0 {
				return
			}
			n := min(int64(chunk), pos)
			buf := make([]byte, int(n)+len(pending))
			if _, err := f.ReadAt(buf[:n], pos-n); err != nil {
				yield(nil, fmt.Errorf("audit: read %s: %w", file, err))
				return
			}
			copy(buf[n:], pending)
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
// it: the check and the append happen under the log's lock. It returns
// the record appended, or nil when the start was recorded already. The
// containerd event recorder and the NRI plugin use it so that a
// container nsrel-hook recorded is not recorded twice.
func (l *Log) AppendStart(ctx context.Context, r *Record, pid int, startTime uint64) (*Record, error) {
	return l.AppendWith(ctx, func(s *Searcher) (*Record, error) {
		prev, err := s.Last(r.ContainerID, StartMatcher(pid, startTime))
		if err != nil || prev != nil {
			return nil, err
		}
		return r, nil
	})
}

// StartMatcher returns a match function for [Searcher.Last] that selects
// start records of the process pid with the given start time (0: any).
func StartMatcher(pid int, startTime uint64) func(*Record) bool {
	return func(r *Record) bool {
		if !IsStart(r.Stage) || r.Ancestry == nil || r.PID != pid {
			return false
		}
		return startTime == 0 || r.StartTime == startTime
	}
}

// Problem is the first thing wrong with a chain.
type Problem struct {
	File string `json:"file"`
	// Line counts from 1 (0: the chain as a whole).
	Line int `json:"line"`
	// Seq is the sequence number the line claims, or 0 if unknown.
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
}

// Error formats the problem as "file:line: seq N: reason".
func (p *Problem) Error() string {
	s := p.File + ":" + strconv.Itoa(p.Line)
	if p.Seq > 0 {
		s += ": seq " + strconv.FormatUint(p.Seq, 10)
	}
	return s + ": " + p.Reason
}

// Summary describes a chain that [Verify] checked.
type Summary struct {
	Files   []string
	Records int
	// FirstSeq and LastSeq are the sequence numbers of the first and last
	// record; LastHash the hash of the last.
	FirstSeq, LastSeq uint64
	LastHash          string
	// TornTails lists the torn-tail records (repaired crashes).
	TornTails []*Record
}

// VerifyOptions tune [Verify].
type VerifyOptions struct {
	// Partial accepts a chain that does not start at sequence number 1
	// (older rotated files removed); the first record's prev is then
	// trusted.
	Partial bool
	// Anchor, if set, is the hash of a record known to be in the chain
	// (saved from an earlier verify): a chain without it was truncated
	// or rewritten. It catches records cut off at the end, which the
	// chain alone cannot show.
	Anchor string
}

// Verify checks the chain formed by files, in order (use [Files]): every
// line a valid record in canonical encoding with a matching hash,
// sequence numbers without gaps from 1, each prev equal to the hash of
// the record before, and no torn line. It returns the summary and, if the
// chain is not intact, the first [*Problem].
func Verify(files []string, opts VerifyOptions) (*Summary, error) {
	s := &Summary{Files: files}
	var prev *Record
	anchored := false
	for _, file := range files {
		for l, err := range Lines(file) {
			if err != nil {
				return s, &Problem{File: file, Line: l.Number, Reason: err.Error()}
			}
			if l.Torn {
				return s, &Problem{File: file, Line: l.Number, Reason: fmt.Sprintf("torn last line (%d bytes without a newline: a write was cut short, or the log was truncated); the %d record(s) before it are intact", len(l.Data), s.Records)}
			}
			r, derr := Decode(l.Data)
			if derr != nil {
				p := &Problem{File: file, Line: l.Number, Reason: derr.Error()}
				var head struct {
					Seq uint64 `json:"seq"`
				}
				if i := bytes.IndexByte(l.Data, ','); i > 0 && json.Unmarshal(append(l.Data[:i:i], '}'), &head) == nil {
					p.Seq = head.Seq
				}
				return s, p
			}
			switch {
			case prev == nil && !opts.Partial && r.Seq != 1:
				return s, &Problem{File: file, Line: l.Number, Seq: r.Seq, Reason: fmt.Sprintf("the chain starts at seq %d, not 1 (records deleted?)", r.Seq)}
			case prev == nil && !opts.Partial && r.Prev != "":
				return s, &Problem{File: file, Line: l.Number, Seq: r.Seq, Reason: "the first record refers to a previous one"}
			case prev != nil && r.Seq != prev.Seq+1:
				return s, &Problem{File: file, Line: l.Number, Seq: r.Seq, Reason: fmt.Sprintf("expected seq %d after seq %d (records deleted or reordered)", prev.Seq+1, prev.Seq)}
			case prev != nil && r.Prev != prev.Hash:
				return s, &Problem{File: file, Line: l.Number, Seq: r.Seq, Reason: fmt.Sprintf("prev does not match the hash of seq %d (records replaced or reordered)", prev.Seq)}
			}
			if prev == nil {
				s.FirstSeq = r.Seq
			}
			if r.Stage == StageTornTail {
				s.TornTails = append(s.TornTails, r)
			}
			s.Records++
			s.LastSeq, s.LastHash = r.Seq, r.Hash
			if r.Hash == opts.Anchor {
				anchored = true
			}
			prev = r
		}
	}
	if opts.Anchor != "" && !anchored {
		last := ""
		if len(files) > 0 {
			last = files[len(files)-1]
		}
		return s, &Problem{File: last, Line: 0, Reason: fmt.Sprintf("no record has the anchor hash %s (records removed from the end, or the log rewritten)", opts.Anchor)}
	}
	return s, nil
}
