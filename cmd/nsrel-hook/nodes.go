package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/safefile"
	"github.com/nsrel/nsrel/internal/vocab"
)

// keyUse is how a host's lines carry a sealing key: the first record
// sealed with it (its hash and seal, to tell whether the host's lines
// hold seals the key makes or copies that do not check: see holders in
// verifyNodes), and whether a seal-start record introduces it (sealed at
// epoch 0: what no one can make once the node's state has moved past it;
// seals not checked here).
type keyUse struct {
	hash, seal string
	introduced bool
}

// byHost is a collector's records split by the node (host) that wrote
// them: each node's lines, in the order they came, in a file of its own.
type byHost struct {
	hosts []string          // in the order they first appear
	files map[string]string // host -> file of its lines
	// Next to each file, FILE.pos says where each of its lines came
	// from: a linePos per line (8 bytes, little-endian file index and
	// line number), for locate; on the disk, as the lines are.
	// keys are the sealing keys whose seals each host's lines carry
	// (seals not checked), when asked for, and how they carry them.
	keys map[string]map[audit.SealID]*keyUse
	// empty counts the empty lines skipped: what a shipper makes of a
	// crash's line of NUL bytes (rsyslog drops them), which holds
	// nothing to check or attribute.
	empty int
	// hashHost holds the host of each record line whose hash was asked
	// for (see sealedElsewhere).
	hashHost map[string]string
	// unattributed counts the lines that name no host: not a record,
	// damaged, longer than a record may be, or cut short at the end.
	unattributed int
	// spans are each host's records' lowest and highest seq (see
	// chainOf); lines counts the lines of each host's file.
	spans map[string]*span
	lines map[string]int
	// ends maps the seq and hash of a host's highest record to the
	// host, for the seqs a host's lowest record follows (made once,
	// by chainOf).
	ends       map[end]string
	successors map[end][]string
	forks      map[end]string // forkWinner's answers
}

// end is a record by its seq and hash.
type end struct {
	seq  uint64
	hash string
}

// span is what chainOf needs of a host's records: the lowest seq and
// that record's prev, the highest seq and the line of its file that
// holds it (its hash is read when asked for).
type span struct {
	minSeq, maxSeq uint64
	// minPrev, minHash, minSeal and minStage are the lowest record's.
	minPrev, minHash, minSeal, minStage string
	maxLine                             int
	// maxHash and maxSeal are the highest record's, "" until read.
	maxHash, maxSeal string
}

// linePos is a line of the files split: its file (index) and number.
type linePos struct{ file, line int32 }

// maxTornPending bounds the torn lines (audit.TornMark) that name no
// host held until their torn-tail record tells whose they are, and the
// torn-tail records remembered for a torn line that comes after its
// record (a shipper's reorder).
const maxTornPending = 1024

// maxTornPendingBytes bounds the bytes of the torn lines held (a torn
// line of a crash is shorter than a record, but anyone who can add lines
// to a collector's file can add long ones).
const maxTornPendingBytes = 16 << 20

// tornLine is a torn line held until its torn-tail record comes.
type tornLine struct {
	key  audit.TornKey
	lk   audit.LineKey
	data []byte
	at   linePos
}

// splitByHost reads the lines of files (a collector's mixed stream, or
// per-node files) and writes each record line to the file of its host in
// dir, every host's (a node's old names' records are its chain's too:
// chainOf). A torn line that an
// append ended with audit.TornMark names its host only when the fragment
// got that far, and a damaged line (a crash's zeroes) names none: such a
// line goes to the host of the torn-tail or damage record that holds its
// bytes, right before that record. With keys, it notes the sealing keys
// each host's lines carry; and the host of the record lines whose hash
// is in hashes.
func splitByHost(files []string, dir string, keys, shipped bool, hashes map[string]bool) (*byHost, error) {
	b := &byHost{files: map[string]string{}, keys: map[string]map[audit.SealID]*keyUse{}, hashHost: map[string]string{},
		spans: map[string]*span{}, lines: map[string]int{}}
	// A host's lines, and where each came from (.pos); a quarter of the
	// descriptors.
	out := newSpool(dir, "", 4, ".jsonl", ".jsonl.pos")
	var inputs []*os.File
	defer func() {
		for _, f := range inputs {
			f.Close()
		}
		out.close()
	}()
	// write writes line, which came from at, to host's file.
	write := func(host string, line []byte, at linePos) error {
		w, err := out.writers(host)
		if err != nil {
			return err
		}
		w[0].Write(line)
		b.lines[host]++
		var pos [8]byte
		binary.LittleEndian.PutUint32(pos[:4], uint32(at.file))
		binary.LittleEndian.PutUint32(pos[4:], uint32(at.line))
		w[1].Write(pos[:])
		return w[0].WriteByte('\n')
	}
	noteKey := func(host string, line []byte, rec *audit.Record) {
		if rec == nil {
			var err error
			if rec, err = audit.Decode(line); err != nil {
				return
			}
		}
		if p, err := audit.ParseSeal(rec.Seal); rec.Seal != "" && err == nil {
			if b.keys[host] == nil {
				b.keys[host] = map[audit.SealID]*keyUse{}
			}
			u := b.keys[host][p.ID]
			if u == nil {
				u = &keyUse{hash: rec.Hash, seal: rec.Seal}
				b.keys[host][p.ID] = u
			}
			u.introduced = u.introduced || rec.Stage == audit.StageSealStart && p.Epoch == 0
		}
	}
	var pending []tornLine
	pendingBytes := 0
	// What accounts for a torn line (the torn-tail record holding its
	// bytes, or the damage record listing it after a cut write) takes
	// one. A record met before its line waits for it (unserved, by the
	// record's host); lastHost remembers the host of the last record of
	// a line, for copies a shipper sent again. (Forgotten all at once
	// when full: such records come close to their lines.)
	unservedT, unservedL := map[audit.TornKey][]string{}, map[audit.LineKey][]string{}
	lastT, lastL := map[audit.TornKey]string{}, map[audit.LineKey]string{}
	serve := func(t tornLine) string {
		if hs := unservedT[t.key]; len(hs) > 0 {
			unservedT[t.key] = hs[1:]
			return hs[0]
		}
		if hs := unservedL[t.lk]; len(hs) > 0 {
			unservedL[t.lk] = hs[1:]
			return hs[0]
		}
		return ""
	}
	// A record sent again (a shipper's repeat) accounts for no line of
	// its own: it still places a copy of its line, but waits for none.
	met := map[string]bool{}
	repeat := func(r *audit.Record) bool {
		if met[r.Hash] {
			return true
		}
		if len(met) == maxTornPending {
			clear(met)
		}
		met[r.Hash] = true
		return false
	}
	lastHost := func(t tornLine) string {
		if h := lastT[t.key]; h != "" {
			return h
		}
		return lastL[t.lk]
	}

	// place writes the latest torn line pending that match holds for
	// to host, and says whether there was one.
	place := func(host string, match func(tornLine) bool) (bool, error) {
		i := lastIndex(pending, match)
		if i < 0 {
			return false, nil
		}
		if err := write(host, pending[i].data, pending[i].at); err != nil {
			return false, err
		}
		pendingBytes -= len(pending[i].data)
		pending = slices.Delete(pending, i, i+1)
		return true, nil
	}
	for fi, name := range files {
		// A collector's stream: a symlink or a pipe is read, a FIFO not
		// waited for, a device or directory refused.
		f, err := safefile.OpenInput(name)
		if err != nil {
			return nil, err
		}
		inputs = append(inputs, f)
		r := bufio.NewReaderSize(f, 64<<10)
		for n := int32(1); ; n++ {
			line, err := readLine(r)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if line != nil && len(line) == 0 {
				// Skipped as shipped (see audit.Summary.Empty); else it
				// names no node, as before: a node's chain wants its
				// damaged lines as they were.
				b.empty++
				if !shipped {
					b.unattributed++
				}
				continue
			}
			at := linePos{int32(fi), n}
			head, rec, ok := audit.HeadOf(line)
			host := head.Host
			if !ok {
				// A torn line, or another a damage record may list (a
				// crash's zeroes): held for the record (a torn-tail
				// record takes only a torn line: key is zero for others).
				key, _ := audit.TornLineKey(line)
				if line == nil {
					b.unattributed++ // longer than a record may be, or cut short
					continue
				}
				t := tornLine{key, audit.LineKeyOf(line), nil, at}
				if h := serve(t); h != "" {
					if err := write(h, line, at); err != nil {
						return nil, err
					}
					continue
				}
				for len(pending) > 0 && (len(pending) == maxTornPending || pendingBytes+len(line) > maxTornPendingBytes) {
					pendingBytes -= len(pending[0].data)
					pending = pending[1:]
					b.unattributed++
				}
				t.data = bytes.Clone(line)
				pending = append(pending, t)
				pendingBytes += len(line)
				continue
			}
			// The latest torn line a record accounts for goes right
			// before it: an append writes the record right after the
			// line it ends (two nodes' lines can be alike; copies a
			// shipper sent again go at the end, below).
			switch r := accountant(line, head, rec); {
			case r == nil:
			// A record sent again takes no line: the one pending may be
			// another node's with the same bytes, which that node's
			// record wants (the copy, if any, goes to the record's host
			// at the end).
			case r.Stage == audit.StageTornTail:
				key := r.TornKey()
				served := repeat(r)
				if !served {
					if served, err = place(host, func(t tornLine) bool { return t.key == key }); err != nil {
						return nil, err
					}
				}
				noteRecord(lastT, unservedT, key, host, served)
			default:
				again := repeat(r)
				for _, d := range r.Damage {
					lk := d.Key()
					served := again
					if !served {
						if served, err = place(host, func(t tornLine) bool { return t.lk == lk }); err != nil {
							return nil, err
						}
					}
					noteRecord(lastL, unservedL, lk, host, served)
				}
			}
			if keys {
				noteKey(host, line, rec)
			}
			if len(hashes) > 0 {
				if h, ok := audit.PeekHash(line); ok && hashes[h] && b.hashHost[h] == "" {
					// Decoded: the hash checked against the bytes,
					// which hold the host (one decoded line fixes it
					// for the copies).
					if r, err := audit.Decode(line); err == nil && r.Hash == h {
						b.hashHost[h] = r.Host
					}
				}
			}
			if err := write(host, line, at); err != nil {
				return nil, err
			}
			b.noteSpan(host, head.Seq, line, rec)
		}
	}
	// Left: copies of torn lines whose records came (sent again: as
	// shipped, repeats), or lines no record holds.
	for _, p := range pending {
		if h := lastHost(p); h != "" {
			if err := write(h, p.data, p.at); err != nil {
				return nil, err
			}
			continue
		}
		b.unattributed++
	}
	if err := out.close(); err != nil {
		return nil, err
	}
	b.hosts = out.hosts
	for h, p := range out.paths {
		b.files[h] = p + ".jsonl"
	}
	return b, nil
}

// noteSpan notes the record line of host (its seq; rec, if HeadOf
// decoded it), just written as the last line of host's file, in host's
// span.
func (b *byHost) noteSpan(host string, seq uint64, line []byte, rec *audit.Record) {
	sp := b.spans[host]
	if sp == nil {
		sp = &span{minSeq: seq + 1}
		b.spans[host] = sp
	}
	if seq < sp.minSeq {
		if rec == nil {
			var err error
			if rec, err = audit.Decode(line); err != nil {
				return // damaged: verify says so
			}
		}
		sp.minSeq, sp.minPrev, sp.minHash, sp.minSeal, sp.minStage = seq, rec.Prev, rec.Hash, rec.Seal, rec.Stage
	}
	if seq >= sp.maxSeq {
		sp.maxSeq, sp.maxLine = seq, b.lines[host]
	}
}

// maxChain bounds the names of one chain (a node renamed again and
// again) chainOf follows: each name's records are verified again as
// part of the chains of the names after it, so a chain of made-up names
// hung on a node's last record costs up to maxChain verifies of the
// node's records.
const maxChain = 8

// chainOf returns the hosts whose records make host's chain, oldest
// first: host, and when its records start after seq 1, the host whose
// highest record is the one before its lowest (the record its prev
// names: the hash covers the host, so only that host's line has it), and
// so on back. A node renamed writes on under its new name: its chain
// goes on from its old name's last record.
func (b *byHost) chainOf(host string, sealed func(hash, seal string) bool) (chain []string, cut bool) {
	if b.ends == nil {
		// The highest records of the hosts whose seq a host's lowest
		// follows: one read of each such host's file, once (made-up
		// hosts can be many; a lookup per host and step was their
		// square).
		b.ends = map[end]string{}
		follows := map[uint64]bool{}
		// How many hosts go on from each record: more than one is a
		// fork, not a rename (made-up hosts hung on a node's last
		// record), and none of them is taken for the node's new name
		// (each fork verified again with the node's records cost their
		// product).
		b.successors = map[end][]string{}
		for _, h := range b.hosts {
			if sp := b.spans[h]; sp != nil && sp.minSeq > 1 {
				follows[sp.minSeq-1] = true
				e := end{sp.minSeq - 1, sp.minPrev}
				b.successors[e] = append(b.successors[e], h)
			}
		}
		for _, h := range b.hosts {
			if sp := b.spans[h]; sp != nil && follows[sp.maxSeq] {
				if e := (end{sp.maxSeq, b.maxHash(h)}); e.hash != "" && b.ends[e] == "" {
					b.ends[e] = h
				}
			}
		}
	}
	chain = []string{host}
	for cur := host; ; {
		sp := b.spans[cur]
		if sp == nil || sp.minSeq <= 1 {
			break
		}
		e := end{sp.minSeq - 1, sp.minPrev}
		prev := b.ends[e]
		if prev == "" || slices.Contains(chain, prev) {
			break
		}
		if len(b.successors[e]) > 1 && b.forkWinner(e, prev, sealed) != cur {
			break
		}
		if len(chain) == maxChain {
			cut = true
			break
		}
		chain = append([]string{prev}, chain...)
		cur = prev
	}
	return chain, cut
}

// forkWinner returns the host that goes on from record e of host prev
// when several hosts' records do (a fork): the one whose first record's
// seal follows the record's (the same key, the next epoch), or, after
// an unsealed record, the one whose first record starts sealing (a
// seal-start at epoch 0), its tag checked with a given key; a line
// anyone added does not. "" for none or several. Each fork is settled
// once (every host of a fork asked: their square).
func (b *byHost) forkWinner(e end, prev string, sealed func(hash, seal string) bool) string {
	if w, ok := b.forks[e]; ok {
		return w
	}
	last := b.spans[prev].maxSeal
	winner := ""
	for _, h := range b.successors[e] {
		s := b.spans[h]
		follows := sealFollows(last, s.minSeal) || last == "" && s.minStage == audit.StageSealStart && sealStarts(s.minSeal)
		if !follows || sealed == nil || !sealed(s.minHash, s.minSeal) {
			continue
		}
		if winner != "" {
			winner = ""
			break
		}
		winner = h
	}
	if b.forks == nil {
		b.forks = map[end]string{}
	}
	b.forks[e] = winner
	return winner
}

// sealStarts reports whether seal is a key's first (epoch 0).
func sealStarts(seal string) bool {
	p, err := audit.ParseSeal(seal)
	return err == nil && p.Epoch == 0
}

// sealFollows reports whether seal next is of the key of seal prev, at
// the next epoch.
func sealFollows(prev, next string) bool {
	p, err1 := audit.ParseSeal(prev)
	n, err2 := audit.ParseSeal(next)
	return prev != "" && next != "" && err1 == nil && err2 == nil && p.ID == n.ID && n.Epoch == p.Epoch+1
}

// maxHash returns the hash of host's highest record, read from its
// file once ("" when it does not decode).
func (b *byHost) maxHash(host string) string {
	sp := b.spans[host]
	if sp.maxHash != "" || sp.maxLine == 0 {
		return sp.maxHash
	}
	f, err := os.Open(b.files[host])
	if err != nil {
		return ""
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	for n := 1; ; n++ {
		line, err := readLine(r)
		if err != nil {
			return ""
		}
		if n == sp.maxLine {
			if rec, err := audit.Decode(line); err == nil {
				sp.maxHash, sp.maxSeal = rec.Hash, rec.Seal
			}
			sp.maxLine = 0 // read once
			return sp.maxHash
		}
	}
}

// noteRecord notes a record of host that accounts for the torn line k:
// the last host of k, and, when no line pending was there for it
// (served), a record waiting for its line. Both are forgotten all at
// once when full.
func noteRecord[K comparable](last map[K]string, unserved map[K][]string, k K, host string, served bool) {
	if len(last) == maxTornPending {
		clear(last)
		clear(unserved)
	}
	last[k] = host
	// A line's records are few (a torn line's own, a damage record's);
	// more wait in vain.
	if !served && len(unserved[k]) < maxUnserved {
		unserved[k] = append(unserved[k], host)
	}
}

// maxUnserved bounds the records of one torn line that wait for it.
const maxUnserved = 16

// lastIndex returns the index of the last element of s that f holds
// for, or -1.
func lastIndex[T any](s []T, f func(T) bool) int {
	for i := len(s) - 1; i >= 0; i-- {
		if f(s[i]) {
			return i
		}
	}
	return -1
}

// accountant returns the record line is (its head h, and r when HeadOf
// decoded it) when it is one that accounts for torn lines (a torn-tail
// record, a damage record), or nil.
func accountant(line []byte, h audit.Head, r *audit.Record) *audit.Record {
	if h.Stage != audit.StageTornTail && h.Stage != audit.StageDamaged {
		return nil
	}
	if r == nil {
		var err error
		if r, err = audit.Decode(line); err != nil {
			return nil
		}
	}
	return r
}

// locate returns where the n-th line (from 1) of host's file came from,
// as its .pos file says.
func (b *byHost) locate(files []string, host string, n int) (string, int) {
	if f, err := os.Open(b.files[host] + ".pos"); err == nil {
		defer f.Close()
		var buf [8]byte
		if _, err := f.ReadAt(buf[:], int64(n-1)*8); err == nil && n > 0 {
			fi, line := binary.LittleEndian.Uint32(buf[:4]), binary.LittleEndian.Uint32(buf[4:])
			if int(fi) < len(files) {
				return files[fi], int(line)
			}
		}
	}
	return strings.Join(files, ", "), 0
}

// readLine returns the next line without its newline; nil for a line
// longer than [audit.MaxLine] (skipped) or a last line without a newline.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	tooLong := false
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			line = append(line, chunk...)
			if len(line) > audit.MaxLine+1 {
				tooLong, line = true, nil // read on to its end, then skip it
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(line) > 0 || tooLong {
				return nil, nil // cut short
			}
			return nil, io.EOF
		case err != nil:
			return nil, err
		case tooLong:
			return nil, nil
		}
		return line[:len(line)-1], nil
	}
}

// interrupt removes the copy of the records verify --nodes makes and
// ends the process of the signal when SIGINT, SIGTERM, SIGHUP or SIGPIPE
// (its output's reader gone) comes before stop: a deferred removal does not run then, and an interrupted
// verify --nodes left its copy behind in /tmp, run after run. A SIGHUP
// or SIGINT the process ignores (nohup's, a script's `cmd &`; Go keeps
// those two ignored when they were so at exec) is left ignored: the copy
// was removed and the verify went on without it, failing every node.
//
// The copy is written to spool, a subdirectory of top, a private
// directory, through a descriptor of spool ([spool.root]): on a signal
// spool is first moved aside within top, where nobody else may make a
// file, and what was moved is removed until nothing is left of it (a
// file made as it was moved), then top. Nothing is written there after
// that, even should another user make top's freed name again in /tmp.
// Nothing is printed either once the signal is taken (but a write under
// way): the nodes left would fail for their files gone, and a verdict
// that fails the fleet was printed before the process ended. The node
// under way is reported first, for at most lockWait (its output may be
// blocked for good); a second signal ends the process at once.
type interrupt struct {
	// mu is held while the copy is made (create), while a node is
	// verified and reported, and while the verdict is printed (enter,
	// leave); the handler takes it before it removes the copy, waiting
	// at most lockWait, and never gives it back.
	mu       sync.Mutex
	stopping atomic.Bool
	// dirs are top and spool, once made.
	dirs    atomic.Pointer[[2]string]
	which   []os.Signal
	sigs    chan os.Signal
	done    chan struct{}
	decided chan struct{}
}

// onInterrupt starts handling the signals; stop ends it.
func onInterrupt() *interrupt {
	in := &interrupt{done: make(chan struct{}), decided: make(chan struct{})}
	// SIGPIPE too: a write to an output whose reader went away (`|
	// head`) ended the process before anything removed the copy; caught,
	// the write fails (EPIPE) and the handler ends the process of it.
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE} {
		if !signal.Ignored(sig) {
			in.which = append(in.which, sig)
		}
	}
	if len(in.which) == 0 {
		close(in.decided)
		return in
	}
	in.sigs = make(chan os.Signal, 1)
	signal.Notify(in.sigs, in.which...)
	go func() {
		select {
		case sig := <-in.sigs:
			in.handle(sig)
		case <-in.done:
			select {
			case sig := <-in.sigs: // delivered before signal.Stop
				in.handle(sig)
			default:
			}
			close(in.decided)
		}
	}()
	return in
}

// create makes top and spool: under mu, so that a signal either comes
// before (and the process ends with nothing made) or removes them.
func (in *interrupt) create() (spool string, err error) {
	in.enter()
	defer in.leave()
	top, err := os.MkdirTemp("", "nsrel-verify-nodes-")
	if err != nil {
		return "", err
	}
	dir := filepath.Join(top, "spool")
	if err := os.Mkdir(dir, 0o700); err != nil {
		os.Remove(top)
		return "", err
	}
	in.dirs.Store(&[2]string{top, dir})
	return dir, nil
}

// lockWait bounds how long the handler waits for the node under way to
// be reported: a write to an output nobody reads (a pager that stopped,
// a full pipe) holds it for good.
const lockWait = 3 * time.Second

// handle removes the copy and ends the process of sig.
func (in *interrupt) handle(sig os.Signal) {
	in.stopping.Store(true)
	// A second signal ends the process at once; but SIGPIPE, which each
	// write to the gone reader raises again (reset, the next write in
	// the node under way ended the process before the copy was
	// removed; the handler ends it after).
	var reset []os.Signal
	for _, s := range in.which {
		if s != syscall.SIGPIPE {
			reset = append(reset, s)
		}
	}
	if len(reset) > 0 { // none would reset every signal
		signal.Reset(reset...)
	}
	// The node under way is reported first (mu is never given back),
	// within lockWait.
	for start := time.Now(); !in.mu.TryLock() && time.Since(start) < lockWait; {
		time.Sleep(5 * time.Millisecond)
	}
	if d := in.dirs.Load(); d != nil {
		top, spool := d[0], d[1]
		gone := filepath.Join(top, "removed")
		if os.Rename(spool, gone) != nil {
			gone = spool
		}
		for i := 0; i < 100 && os.RemoveAll(gone) != nil; i++ {
		}
		for i := 0; i < 100 && os.RemoveAll(top) != nil; i++ {
		}
	}
	if sig == syscall.SIGPIPE {
		// Go's runtime ignores a SIGPIPE sent to itself: the status a
		// shell shows for a process it ended, 128 + 13.
		os.Exit(128 + int(syscall.SIGPIPE))
	}
	// Ended by the signal, as the shell expects of one.
	syscall.Kill(os.Getpid(), sig.(syscall.Signal))
	select {}
}

// quiet waits for good, for the process to end, once a signal was taken.
func (in *interrupt) quiet() {
	if in.stopping.Load() {
		select {}
	}
}

// enter takes mu, unless a signal was taken (then it waits for good);
// leave gives it back.
func (in *interrupt) enter() {
	in.mu.Lock()
	if in.stopping.Load() {
		in.mu.Unlock()
		select {}
	}
}

func (in *interrupt) leave() { in.mu.Unlock() }

// remove removes the copy at the end of a verify, the signals still
// handled (one then cut the removal short); stop then ends the
// handling, waiting for the handler's decision: a signal taken (also
// one delivered just before) ends the process, and stop never returns.
func (in *interrupt) remove() {
	if d := in.dirs.Load(); d != nil {
		os.RemoveAll(d[0])
	}
}

func (in *interrupt) stop() {
	if in.sigs != nil {
		signal.Stop(in.sigs)
		close(in.done)
	}
	<-in.decided
}

// verifyNodes verifies, in the files a collector received, the records
// of each node in want (every node with records or checkpoints when want
// is empty) as a chain of its own, against that node's checkpoints among
// those of the files ckptFiles, and says which nodes are intact.
func verifyNodes(logs, want, ckptFiles []string, opts audit.VerifyOptions, asJSON bool, stdout, stderr io.Writer) int {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(readerMemoryLimit))
	// The copy of the records goes to a private directory, removed on
	// SIGINT, SIGTERM and SIGHUP too (see interrupt); after a signal
	// nothing more is printed.
	in := onInterrupt()
	defer in.stop()
	fail := func(msg string) int {
		in.quiet()
		return verifyFailed(logs, msg, asJSON, stdout, stderr)
	}
	opts.AckOnNode = true // a node's damage is acknowledged on the node
	dir, err := in.create()
	if err != nil {
		return fail(vocab.OneLine(err))
	}
	defer in.remove()
	// Every host's records and checkpoints are split, those of the
	// nodes not named too: a node renamed goes on from its old name's
	// records, which its chain holds (chainOf).
	ckpts, err := spoolCheckpoints(ckptFiles, dir)
	if err != nil {
		return fail("--checkpoints: " + vocab.OneLine(err))
	}
	// One checker for every node: a checkpoint forged at a far epoch
	// costs its deriving once per key, not once per node.
	opts.Seals = audit.NewSealChecker(opts.Keys)
	var candidates map[string]bool
	if len(opts.Keys) > 0 {
		// Of every host: a node's old names' checkpoints count for
		// its chain too (known once the records are split), and a
		// copy relabelled with one is set aside as one relabelled with
		// the node's name is.
		candidates = relabelCandidates(ckpts, ckpts.hosts, opts.Seals)
	}
	split, err := splitByHost(logs, dir, len(opts.Keys) > 0, opts.Shipped, candidates)
	if err != nil {
		return fail(vocab.OneLine(err))
	}
	// The hosts whose lines carry each key, to say so when a checkpoint
	// sealed by another node's key fails a node (it judges the node it
	// names all the same: see audit.VerifyOptions.OtherChainKey).
	owners := map[audit.SealID][]string{}
	for _, h := range split.hosts { // in the order the stream names them, not a map's
		for id := range split.keys[h] {
			owners[id] = append(owners[id], h)
		}
	}
	sealedFor := func(hash, seal string) bool {
		return len(opts.Keys) > 0 && opts.Seals.Sealed(audit.Checkpoint{Hash: hash, Seal: seal})
	}
	// holders are the hosts whose lines a key seals: their first record
	// carrying it has a seal that checks (copies of a node's lines under
	// another name, whose seals do not, are no one's use of the key).
	holders := map[audit.SealID][]string{}
	for id, hs := range owners {
		for _, h := range hs {
			if u := split.keys[h][id]; sealedFor(u.hash, u.seal) {
				holders[id] = append(holders[id], h)
			}
		}
	}
	// sharedKey returns a key of h's records (chain: h's names, as
	// chainOf gives them) that also seals the records of another node (not one of h's names before or after a
	// rename), and that node: one node's root, with its sealing state,
	// could make up another node's records under its name (one the
	// stream holds no line of, or a real node whose lines are in other
	// files), and with every node's key given they verified. Or the
	// nodes were set up from one sealing state (a cloned image). The
	// node whose lines introduce the key (its seal-start, at epoch 0),
	// when the other's do not, keeps it.
	sharedKey := func(h string, chain []string) (audit.SealID, string, bool) {
		ids := slices.SortedFunc(maps.Keys(split.keys[h]), func(a, b audit.SealID) int { return bytes.Compare(a[:], b[:]) })
		for _, id := range ids {
			if !slices.Contains(holders[id], h) {
				continue // its own seals fail it
			}
			for _, o := range holders[id] {
				if o == h || slices.Contains(chain, o) || split.keys[h][id].introduced && !split.keys[o][id].introduced {
					continue
				}
				if oc, _ := split.chainOf(o, sealedFor); !slices.Contains(oc, h) {
					return id, o, true
				}
			}
		}
		return audit.SealID{}, "", false
	}
	nodes := want
	if len(nodes) == 0 {
		in.enter()
		nodes = append(split.hosts, ghostNodes(split, ckpts, owners, opts.Keys, opts.Seals, stderr)...)
		in.leave()
	}
	if len(nodes) == 0 {
		// Nothing verified is not a fleet found intact (an empty copy
		// from a collector that writes elsewhere, a pipe that failed).
		return fail("no node's records in " + vocab.Printable(strings.Join(logs, ", ")))
	}
	elsewhere := sealedElsewhere(split.hashHost)
	var intact, failed []string
	for _, h := range nodes {
		// A node is verified and reported whole, or not at all: after
		// a signal its file is gone.
		in.enter()
		o := opts
		o.KeysOfOthers = true // each node's chain has its own keys
		// The hosts whose records make the node's chain: its own, and
		// its old names' before them (a node renamed: its chain goes on
		// under the new name; chainOf). Verified as one chain, they get
		// every check one chain gets (a seal that does not follow its
		// predecessor's, a fork of an old name's chain); the new name's
		// records alone start after seq 1 (records deleted?).
		chain, cut := split.chainOf(h, sealedFor)
		renamed := chain[:len(chain)-1]
		o.OtherChainKey = func(id audit.SealID) bool {
			for _, o := range owners[id] {
				if !slices.Contains(chain, o) {
					return true
				}
			}
			return false
		}
		// A checkpoint of one of the chain's hosts (CheckpointsOf) whose
		// hash is another host's record.
		o.SealedElsewhere = func(c audit.Checkpoint) bool { return elsewhere.sealed(c, c.Host) }
		var s *audit.Summary
		var err error
		if len(ckptFiles) > 0 {
			// Each host's file holds its checkpoints only; a renamed
			// node may have none under one name yet.
			o.Checkpoints = nil
			for _, ch := range chain {
				var cs []audit.Checkpoint
				if cs, err = ckpts.of(ch); err != nil {
					break
				}
				o.Checkpoints = append(o.Checkpoints, cs...)
			}
			if err == nil && len(o.Checkpoints) == 0 {
				_, err = audit.CheckpointsOf(nil, h) // none of the node
			}
		}
		var files []string
		for _, ch := range chain {
			if f, ok := split.files[ch]; ok {
				files = append(files, f)
			}
		}
		if err == nil {
			if _, ok := split.files[h]; ok {
				s, err = audit.Verify(files, o)
			} else {
				err = fmt.Errorf("no record of node %s in %s", plainOrQuoted(h), vocab.Printable(strings.Join(logs, ", ")))
			}
		}
		if err == nil && len(opts.Keys) > 0 {
			if id, other, ok := sharedKey(h, chain); ok {
				err = &audit.Problem{File: strings.Join(logs, ", "), Reason: fmt.Sprintf("its records are sealed with key %s, which seals records of node %s too: a node's key seals its own records alone (the root of one could have made up the other's records with it, or both were set up from one sealing state: run `nsrel-hook audit seal-init --replace` on each node, which seals what comes after with a key of its own; what the shared key sealed cannot be told apart)", id, plainOrQuoted(other))}
			}
		}
		if s != nil {
			s.Files = logs
		}
		// hostOf is the host whose split file f is.
		hostOf := func(f string) string {
			for _, ch := range chain {
				if split.files[ch] == f {
					return ch
				}
			}
			return ""
		}
		var p *audit.Problem
		if errors.As(err, &p) && p.Line > 0 && hostOf(p.File) != "" {
			p.File, p.Line = split.locate(logs, hostOf(p.File), p.Line)
		} else if p != nil {
			p.File = strings.Join(logs, ", ")
		}
		// A place a reason names (where a missing record comes later,
		// the other line with the same seq) or a damaged line is in the
		// node's split files too, which are gone when verify ends.
		for _, f := range files {
			if p == nil && (s == nil || len(s.Damage) == 0) {
				break
			}
			at := regexp.MustCompile(regexp.QuoteMeta(f) + `:(\d+)`)
			relocate := func(s string) string {
				return at.ReplaceAllStringFunc(s, func(m string) string {
					n, _ := strconv.Atoi(m[len(f)+1:])
					file, line := split.locate(logs, hostOf(f), n)
					return fmt.Sprintf("%s:%d", file, line)
				})
			}
			if p != nil {
				p.Reason = relocate(p.Reason)
			}
			if s != nil {
				for i := range s.Damage {
					for j, l := range s.Damage[i].Lines {
						s.Damage[i].Lines[j] = relocate(l)
					}
				}
			}
		}
		if report(verifyResult{Log: strings.Join(logs, ", "), Node: h, RenamedFrom: renamed, ChainCut: cut}, "node "+plainOrQuoted(h), s, err, o, asJSON, stdout, stderr) {
			intact = append(intact, plainOrQuoted(h))
		} else {
			failed = append(failed, plainOrQuoted(h))
		}
		in.leave()
	}
	in.enter()
	defer in.leave()
	status := 0
	if len(failed) > 0 {
		status = 1
	}
	if split.empty > 0 && opts.Shipped {
		fmt.Fprintf(stderr, "nsrel-hook: audit verify: note: %s\n", emptySkipped(split.empty))
	}
	if split.unattributed > 0 {
		status = 1
		msg := fmt.Sprintf("%d line(s) name no node (not a record, damaged, or cut short): they may belong to any node's chain", split.unattributed)
		if split.empty > 0 {
			msg += fmt.Sprintf("; %d of them empty, which is how a shipper delivers a crash's line of NUL bytes: verify a shipper's copy with --shipped", split.empty)
		}
		fmt.Fprintf(stderr, "nsrel-hook: audit verify: FAILED: %s\n", msg)
		if asJSON {
			vocab.WriteSafeJSON(stdout, verifyResult{Log: strings.Join(logs, ", "), Files: logs, Error: msg, Unattributed: split.unattributed}.lists(), false)
		}
	}
	if !asJSON {
		fmt.Fprintf(stdout, "nodes: %d intact%s, %d FAILED%s\n", len(intact), listed(intact), len(failed), listed(failed))
	}
	return status
}

// ghostNodes returns the hosts with checkpoints but no record in the
// split stream, in order, that are nodes to verify (and fail: their
// records are gone). Without keys, all of them: nothing tells a node's
// checkpoint from a line anyone who reaches the collector adds. With
// keys, a host counts when a given key sealed one of its checkpoints:
// its checkpoint seal checks (format 1.1: the seal covers the host), or,
// for one without (format 1.0: the seal covers the record's hash alone),
// its tag checks and it is not a copy relabelled with another host: one
// whose key other hosts' records carry (owners). (A record line added to
// carry a ghost's key fails its own host.) Each host's checkpoints are
// read from its file one at a time until one counts: forged ones cost
// time, not memory, and cannot hide a node's own. The others are
// ignored, with a note naming the keys not given that their seals name:
// anyone can make up a seal, and failing on it would let anyone who can
// send a checkpoint raise the alarm.
func ghostNodes(split *byHost, ckpts *hostCheckpoints, owners map[audit.SealID][]string, keys []audit.VerifyKey, sc *audit.SealChecker, stderr io.Writer) []string {
	var ghosts []string
	for _, h := range ckpts.hosts {
		if _, ok := split.files[h]; !ok {
			ghosts = append(ghosts, h)
		}
	}
	slices.Sort(ghosts)
	if len(keys) == 0 || len(ghosts) == 0 {
		return ghosts
	}
	given := map[audit.SealID]bool{}
	for _, k := range keys {
		given[k.ID] = true
	}
	var nodes, ignored, notGiven, borrowed []string
	for _, h := range ghosts {
		counts := false
		for c, err := range audit.ReadCheckpoints(ckpts.paths[h]) {
			if err != nil {
				counts = true // unreadable: it fails when verified
				break
			}
			p, err := audit.ParseSeal(c.Seal)
			switch {
			case c.Seal == "" || err != nil || len(owners[p.ID]) > 0 && (c.CheckpointSeal == "" || !given[p.ID]):
			case !given[p.ID]:
				if id := p.ID.String(); !slices.Contains(notGiven, id) && len(notGiven) < 8 {
					notGiven = append(notGiven, id)
				}
			case c.CheckpointSeal != "" && sc.HeadSealed(c):
				counts = true
				if len(owners[p.ID]) > 0 && len(borrowed) < 8 {
					// Lines of another host carry its key (and those
					// lines are not authenticated here).
					borrowed = append(borrowed, fmt.Sprintf("%s (key %s, which lines of %s carry)", plainOrQuoted(h), p.ID, plainOrQuoted(owners[p.ID][0])))
				}
			default:
				// A checkpoint seal that does not check falls back to the
				// rule of format 1.0 (one changed on the way, say).
				counts = len(owners[p.ID]) == 0 && sc.Sealed(c)
			}
			if counts {
				break
			}
		}
		if counts {
			nodes = append(nodes, h)
		} else {
			ignored = append(ignored, h)
		}
	}
	if len(ignored) > 0 {
		also := ""
		if len(notGiven) > 0 {
			also = "; some are sealed by keys not given (" + strings.Join(notGiven, ", ") + "): if those are your nodes', their records are missing: verify with their keys"
		}
		fmt.Fprintf(stderr, "nsrel-hook: audit verify: note: checkpoints of %d host(s) without records ignored (%s): none sealed by a given key, or copies of other hosts' relabelled%s\n",
			len(ignored), audit.QuotedFew(ignored), also)
	}
	if len(borrowed) > 0 {
		fmt.Fprintf(stderr, "nsrel-hook: audit verify: note: hosts without records counted by checkpoint seals of keys other hosts' lines carry: %s: their records are gone, or whoever held that key on the other host (root there, reading its sealing state) made those checkpoints\n",
			strings.Join(borrowed, ", "))
	}
	return nodes
}

// relabelCandidates returns the hashes of the checkpoints of hosts that
// have no checkpoint seal and whose record seal checks under a given key:
// splitByHost finds the host of the record line of each, if the stream
// holds it, and a checkpoint naming another host than its record's is a
// copy relabelled, which anyone can make (see sealedElsewhere). Only
// copies of seals the keys made: a made-up one is ignored as forged all
// the same, and would only grow the set.
func relabelCandidates(ckpts *hostCheckpoints, hosts []string, sc *audit.SealChecker) map[string]bool {
	want := map[string]bool{}
	for _, h := range hosts {
		p, ok := ckpts.paths[h]
		if !ok {
			continue
		}
		for c, err := range audit.ReadCheckpoints(p) {
			if err != nil {
				break // it fails when the node is verified
			}
			if c.CheckpointSeal == "" && c.Seal != "" && !want[c.Hash] && sc.Sealed(c) {
				want[c.Hash] = true
			}
		}
	}
	return want
}

// sealedElsewhere holds the host of each record line of the stream whose
// hash a checkpoint without checkpoint seal has (relabelCandidates). A
// record's hash covers its host, so a checkpoint naming another host
// than its record's is a copy of that host's relabelled, and no line
// added to the stream can give another host a record of a node's hash.
// (A checkpoint seal of the other host would not tell: root on a node
// after T can make one, of the node's key, for its last record before
// T, naming a host whose lines it sends with that key.)
type sealedElsewhere map[string]string // record hash: host

// sealed says whether c, a checkpoint of host self, is a copy of another
// host's.
func (f sealedElsewhere) sealed(c audit.Checkpoint, self string) bool {
	host, ok := f[c.Hash]
	return ok && host != self
}

// hostCheckpoints are the checkpoints of each host, in a file of its own.
type hostCheckpoints struct {
	hosts []string // in the order they first appear
	paths map[string]string
}

// spoolCheckpoints reads the checkpoints of files and writes each to the
// file of its host in dir. Files given with none in them are an error.
func spoolCheckpoints(files []string, dir string) (*hostCheckpoints, error) {
	out := newSpool(dir, "ckpt-", 8, "")
	defer out.close()
	read := 0
	for c, err := range audit.ReadCheckpoints(files...) {
		if err != nil {
			return nil, err
		}
		read++
		w, err := out.writers(c.Host)
		if err != nil {
			return nil, err
		}
		w[0].Write(c.Line())
	}
	if len(files) > 0 && read == 0 {
		return nil, fmt.Errorf("no checkpoint in %s", vocab.Printable(strings.Join(files, ", ")))
	}
	if err := out.close(); err != nil {
		return nil, err
	}
	return &hostCheckpoints{hosts: out.hosts, paths: out.paths}, nil
}

// of reads host's checkpoints (none when it has no file), each once: a
// line sent again (by the node, by anyone who reaches the collector) is
// the same checkpoint, and 300,000 copies of one held 328 MB.
func (hc *hostCheckpoints) of(host string) ([]audit.Checkpoint, error) {
	var cs []audit.Checkpoint
	p, ok := hc.paths[host]
	if !ok {
		return nil, nil
	}
	seen := map[audit.Checkpoint]bool{}
	for c, err := range audit.ReadCheckpoints(p) {
		if err != nil {
			return nil, err
		}
		if !seen[c] {
			seen[c] = true
			cs = append(cs, c)
		}
	}
	return cs, nil
}

// plainOrQuoted returns a name read from records as verify --nodes and
// show print it: as it is when it is a [vocab.PlainItem] without
// parentheses (a host name, a runtime's container ID), else in Go's
// quotes and escapes, as [vocab.Printable] quotes. Host names come from whatever lines reach the
// collector ("good-node, web-2" read as two intact nodes in the
// summary), container IDs from the container's creator ("a b (pod
// kube-system/coredns)").
func plainOrQuoted(h string) string {
	if vocab.PlainItem(h) && !strings.ContainsAny(h, "()") {
		return h
	}
	return vocab.GoQuote(h)
}

// listed returns " (a, b)" for a list of names, "" for none.
func listed(names []string) string {
	if len(names) == 0 {
		return ""
	}
	if len(names) > maxListed {
		// Each is named on its own line above; a fleet's would make
		// this one unreadable.
		return " (" + strings.Join(names[:maxListed], ", ") + fmt.Sprintf(" and %d more)", len(names)-maxListed)
	}
	return " (" + strings.Join(names, ", ") + ")"
}

// maxListed bounds the names the summary line of --nodes lists.
const maxListed = 20
