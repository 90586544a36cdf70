package audit

import (
	"container/heap"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
)

// A shipper's copy (VerifyOptions.Shipped). A shipper that loses its
// connection may send records again, and rsyslog, stopped while its
// collector is unreachable, saves the records it was retrying behind
// those queued after them (docs/observability.md): the collector's copy
// then holds every record, but some out of chain order and some twice.
// Verify puts such a copy's records back into chain order, by seq, and
// drops a line that repeats a record (or a line that is not a record)
// byte for byte, counting both; the chain is then checked on the records
// in that order as always, so that a reorder or a repeat hides nothing.
// A line that is not a record (damaged, torn, too long) keeps its place:
// the records held back before it go on first. A torn line an append
// ended with [TornMark] is the exception: it is matched with the
// torn-tail record that holds its bytes, before or after it.

const (
	// maxHeld bounds the records held back waiting for an earlier one
	// (their place in the files, not their bytes): past it, the
	// earliest held goes on, and if the one before it never came the
	// chain says so.
	maxHeld = 1 << 18
	// maxRemembered bounds the records whose digests are kept to tell a
	// repeat from another line with the same seq.
	maxRemembered = 1 << 20
	// maxDamagedRemembered bounds the lines that are not records whose
	// digests are kept to tell a repeat of one.
	maxDamagedRemembered = 1 << 12
	// maxRepeats bounds the records dropped as repeats a copy keeps
	// for the damage records after them: as many as it holds back, so
	// that a run of older records again dropped before its first
	// record (dropListedStart) is all there for theirs.
	maxRepeats = maxHeld
	// maxListedReplays bounds the lines the damage records met list as
	// older records again that a copy keeps, to tell those whose
	// records it does not hold (a lineSum each); and those.
	maxListedReplays = 1 << 20
)

// digest identifies a line's bytes.
type digest [16]byte

func digestOf(b []byte) digest {
	s := sha256.Sum256(b)
	return digest(s[:16])
}

// heldLine is a record held back: where it is, and its digest.
type heldLine struct {
	file   int
	name   string
	number int
	offset int64
	n      int
	sum    digest
	// again is set when the copy holds the line twice (its later
	// copy dropped as a repeat): the one held is the chain's, before
	// its copy (see dropListedStart).
	again bool
}

// remembered is a record passed on.
type remembered struct {
	seq uint64
	sum digest
}

// seqHeap is a min-heap of the seqs held.
type seqHeap []uint64

func (h seqHeap) Len() int           { return len(h) }
func (h seqHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h seqHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *seqHeap) Push(x any)        { *h = append(*h, x.(uint64)) }
func (h *seqHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// shipOrder passes a shipper's copy's lines on in chain order.
type shipOrder struct {
	snap *Snapshot
	sum  *Summary
	// next is the seq of the record that comes next in chain order, 0
	// before the first record passed on.
	next  uint64
	held  map[uint64]heldLine
	order seqHeap
	// latest is the highest seq met.
	latest uint64
	// damaged remembers the digests of the lines met that are not
	// records.
	damaged map[digest]bool
	// ring remembers the digests of the last records passed on, by
	// seq; passed counts them.
	ring   []remembered
	passed int
	// visit checks one line, its record decoded (or why not); repeat
	// is told of a record line dropped as a repeat.
	visit  func(l Line, r *Record, derr error) *Problem
	repeat func(l Line)
	// first is the seq of the first record passed on; listed holds the
	// keys of the lines the damage records met list as older records
	// again; unsure are the records dropped as repeats of a record the
	// copy does not hold (before its first, or further back than ring
	// reaches), which a damage record must list.
	first      uint64
	listed     map[lineSum]bool
	listedFull bool
	unsure     []unsureRepeat
	// partial is VerifyOptions.Partial; checkpointed holds the hashes
	// the checkpoints given name, by seq.
	partial      bool
	checkpointed map[uint64][]string
}

// lineSum is a line's key as the shipped verifier keeps it in its large
// tables: its length and the first 16 bytes of its SHA-256 (a
// LineKey's hex string is 64 bytes and a string header more).
type lineSum struct {
	sum digest
	n   int
}

func sumOfKey(k LineKey) lineSum { return lineSum{hashDigest(k.SHA256), k.Bytes} }

// unsureRepeat is a record dropped as an older record again whose
// original the copy does not hold.
type unsureRepeat struct {
	name   string
	number int
	seq    uint64
	after  uint64
	key    lineSum
}

// shippedLines checks the lines of snap with visit in chain order (see
// above), counting repeats and reorders in sum.
func shippedLines(snap *Snapshot, opts *VerifyOptions, sum *Summary, visit func(Line, *Record, error) *Problem, repeat func(Line)) *Problem {
	o := &shipOrder{snap: snap, sum: sum, held: map[uint64]heldLine{}, visit: visit, repeat: repeat, partial: opts.Partial}
	for _, c := range opts.Checkpoints {
		if o.checkpointed == nil {
			o.checkpointed = map[uint64][]string{}
		}
		o.checkpointed[c.Seq] = append(o.checkpointed[c.Seq], c.Hash)
	}
	for l, err := range snap.Lines() {
		if err != nil {
			return &Problem{File: l.File, Line: l.Number, Reason: err.Error()}
		}
		if p := o.line(l); p != nil {
			return p
		}
	}
	if p := o.release(); p != nil {
		return p
	}
	for _, u := range o.unsure {
		if !o.listed[u.key] {
			why := "no damage record lists the line as an older record again"
			if o.listedFull {
				why = fmt.Sprintf("no damage record among those of the first %d such lines lists it", maxListedReplays)
			}
			return &Problem{File: u.name, Line: u.number, Seq: u.seq, Reason: fmt.Sprintf("seq %d again after seq %d; the copy does not hold the record of that seq to compare (before its first record, or more than %d records before), and %s", u.seq, u.after, maxRemembered, why)}
		}
	}
	return nil
}

func (o *shipOrder) line(l Line) *Problem {
	if l.Torn {
		if p := o.release(); p != nil {
			return p
		}
		return o.visit(l, nil, nil)
	}
	if l.Long > 0 {
		// Longer than any record (not decoded), sent again byte for
		// byte, like any other line that is not a record: the chain
		// judged it the first time.
		var sum digest
		if b, err := hex.DecodeString(l.Sum); err == nil && len(b) == sha256.Size {
			sum = digest(b[:len(sum)])
			if o.damaged[sum] {
				o.sum.Repeated++
				return nil
			}
			o.rememberDamaged(sum)
		}
		if p := o.release(); p != nil {
			return p
		}
		return o.visit(l, nil, nil)
	}
	if len(l.Data) == 0 {
		// What a shipper makes of a crash's line of NUL bytes (rsyslog
		// drops them): it holds nothing to check, and the damage record
		// that lists the line wants it only where the copy holds others
		// of its lines. The node's own log keeps its bytes.
		o.sum.Empty++
		return nil
	}
	r, derr := decodeLine(l)
	sum := digestOf(l.Data)
	if derr != nil {
		// A line that is not a record, sent again byte for byte: the
		// chain judged it the first time.
		if o.damaged[sum] {
			o.sum.Repeated++
			return nil
		}
		// A torn line an append ended keeps no place: verify matches it
		// with its torn-tail record wherever that comes.
		if _, torn := TornLineKey(l.Data); !torn {
			if p := o.release(); p != nil {
				return p
			}
		}
		o.rememberDamaged(sum)
		return o.visit(l, nil, derr)
	}
	if h, ok := o.held[r.Seq]; ok {
		if h.sum == sum {
			o.dropRepeat(l)
			h.again = true
			o.held[r.Seq] = h
			return nil
		}
		return &Problem{File: l.File, Line: l.Number, Seq: r.Seq, Reason: fmt.Sprintf("seq %d again with other bytes than at %s:%d (a record replaced)", r.Seq, h.name, h.number)}
	}
	if r.Stage == StageDamaged {
		for _, d := range r.Damage {
			if d.Kind != "replayed" {
				continue
			}
			if len(o.listed) == maxListedReplays {
				o.listedFull = true
				continue
			}
			if o.listed == nil {
				o.listed = map[lineSum]bool{}
			}
			o.listed[sumOfKey(d.Key())] = true
		}
	}
	if o.next != 0 && r.Seq < o.next {
		if o.recall(r.Seq, sum) {
			o.dropRepeat(l)
			return nil
		}
		if r.Seq < o.first || o.next-r.Seq > uint64(len(o.ring)) {
			if len(o.unsure) == maxListedReplays {
				return &Problem{File: l.File, Line: l.Number, Seq: r.Seq, Reason: fmt.Sprintf("more than %d older records again whose records the copy does not hold: too many to check", maxListedReplays)}
			}
			// Its original is not in the copy (a copy that starts
			// later, --partial, or a record far back): an older record
			// again (stale blocks a crash exposed on the node) if the
			// damage record after it lists it, checked at the end.
			o.dropRepeat(l)
			o.unsure = append(o.unsure, unsureRepeat{l.File, l.Number, r.Seq, o.next - 1, sumOfKey(LineKeyOf(l.Data))})
			return nil
		}
		return &Problem{File: l.File, Line: l.Number, Seq: r.Seq, Reason: fmt.Sprintf("seq %d again after seq %d, with other bytes than the record of that seq before it (a record replaced), or more than %d records after it", r.Seq, o.next-1, maxRemembered)}
	}
	if r.Seq < o.latest {
		o.sum.Reordered++
	}
	o.latest = max(o.latest, r.Seq)
	// Seq 1 starts the chain, first in the copy or before the records
	// held (a shipper's swap); after records held further on (a copy
	// that starts later: an older record again, maybe), it is held
	// with them, and release judges (dropListedStart).
	if r.Seq == o.next || o.next == 0 && r.Seq == 1 && o.heldFrom(2) {
		if p := o.pass(l, r, sum); p != nil {
			return p
		}
		return o.drain()
	}
	fi := o.snap.FileIndex(l.File)
	if fi < 0 {
		return &Problem{File: l.File, Line: l.Number, Seq: r.Seq, Reason: "line of a file not in the snapshot"}
	}
	o.held[r.Seq] = heldLine{file: fi, name: l.File, number: l.Number, offset: l.Offset, n: len(l.Data), sum: sum}
	heap.Push(&o.order, r.Seq)
	if len(o.held) > maxHeld {
		if p := o.passHeld(o.earliest()); p != nil {
			return p
		}
		return o.drain()
	}
	return nil
}

// rememberDamaged remembers the digest of a line that is not a record,
// to tell a repeat of it.
func (o *shipOrder) rememberDamaged(sum digest) {
	if len(o.damaged) < maxDamagedRemembered {
		if o.damaged == nil {
			o.damaged = map[digest]bool{}
		}
		o.damaged[sum] = true
	}
}

// dropRepeat drops record line l as a repeat: counted, and told of.
func (o *shipOrder) dropRepeat(l Line) {
	o.sum.Repeated++
	o.repeat(l)
}

// pass checks a record in its place in chain order.
func (o *shipOrder) pass(l Line, r *Record, sum digest) *Problem {
	if o.next == 0 {
		o.first = r.Seq
	}
	o.remember(r.Seq, sum)
	o.next = r.Seq + 1
	return o.visit(l, r, nil)
}

// passHeld reads the held record seq again and passes it on.
func (o *shipOrder) passHeld(seq uint64) *Problem {
	if o.next == 0 {
		if dropped, p := o.dropListedStart(seq); dropped || p != nil {
			return p
		}
	}
	h := o.held[seq]
	delete(o.held, seq)
	l, p := o.readHeld(seq, h)
	if p != nil {
		return p
	}
	r, derr := decodeLine(l)
	if derr != nil {
		return o.visit(l, nil, derr)
	}
	return o.pass(l, r, h.sum)
}

// readHeld reads the held record seq (at h) again.
func (o *shipOrder) readHeld(seq uint64, h heldLine) (Line, *Problem) {
	data, err := o.snap.ReadLine(h.file, h.offset, h.n)
	if err != nil {
		return Line{}, &Problem{File: h.name, Line: h.number, Seq: seq, Reason: err.Error()}
	}
	if digestOf(data) != h.sum {
		return Line{}, &Problem{File: h.name, Line: h.number, Seq: seq, Reason: "the line changed while verify read the file"}
	}
	return Line{File: h.name, Number: h.number, Offset: h.offset, Data: data}, nil
}

// dropListedStart drops, before the chain's first record in a copy
// verified with --partial, the run of held records from seq on (seq,
// seq+1, ...) that a damage record of the copy lists each as an older
// record again, when a gap parts the run from the records held after
// it, or the record after the run comes before its last in the copy:
// older records again that come before the copy's own first (a copy
// that starts after their originals). A run that goes on to the rest in
// the copy's order is the chain's: the originals themselves, whose
// bytes the listed copies share.
//
// Such a run cannot be told from the originals by its bytes, and root on
// the node, later, can seal a damage record that lists the chain's own
// first records so, past a gap: a copy verified without --partial, which
// accounts for its start, keeps them in its chain (the gap then fails),
// and one whose run holds a record a checkpoint names (a record the
// chain had before the checkpoint left the node) fails.
func (o *shipOrder) dropListedStart(seq uint64) (bool, *Problem) {
	if len(o.listed) == 0 || !o.partial {
		return false, nil
	}
	var run []Line
	var last heldLine
	for k := seq; ; k++ {
		h, ok := o.held[k]
		if !ok {
			break
		}
		l, p := o.readHeld(k, h)
		if p != nil {
			return false, p
		}
		if h.again {
			// The copy holds it twice: this one is the original, a
			// shipper's reorder at the start, its copy dropped.
			return false, nil
		}
		if !o.listed[sumOfKey(LineKeyOf(l.Data))] {
			// The record after the run: the run goes on to it unless
			// it came first.
			if len(run) == 0 || h.file > last.file || h.file == last.file && h.offset > last.offset {
				return false, nil
			}
			break
		}
		run = append(run, l)
		last = h
	}
	if len(run) == len(o.held) {
		return false, nil // nothing after them: they are the copy's chain
	}
	for i, l := range run {
		k := seq + uint64(i)
		r, err := decodeLine(l)
		if err != nil {
			continue
		}
		// A record a checkpoint names, or the first going on from one:
		// the chain had them before the checkpoint left the node.
		named, hash := k, r.Hash
		if i == 0 && !slices.Contains(o.checkpointed[k], r.Hash) {
			named, hash = k-1, r.Prev
		}
		if slices.Contains(o.checkpointed[named], hash) {
			return false, &Problem{File: l.File, Line: l.Number, Seq: k, Reason: fmt.Sprintf("the %d record(s) before the copy's first that a damage record lists as older records again hold or go on from the record a checkpoint names (seq %d, hash %s): whether they are copies (the copy starts inside a stale block) or the chain's own records listed by a damage record written after the checkpoint (root on the node can seal one) cannot be told; verify a copy that starts before them (a copy of the node's files: without --shipped)", len(run), named, hash)}
		}
	}
	o.sum.ListedStart += len(run)
	for i, l := range run {
		delete(o.held, seq+uint64(i))
		o.dropRepeat(l)
	}
	return true, nil
}

// drain passes on the held records that follow in chain order.
func (o *shipOrder) drain() *Problem {
	for {
		if _, ok := o.held[o.next]; !ok {
			break
		}
		if p := o.passHeld(o.next); p != nil {
			return p
		}
	}
	// The seqs passed on leave the heap too (they are at its top: every
	// seq held is later), so that it holds no more than held.
	for len(o.order) > 0 {
		if _, ok := o.held[o.order[0]]; ok {
			break
		}
		heap.Pop(&o.order)
	}
	return nil
}

// heldFrom reports whether no record is held, or the lowest seq held is
// seq.
func (o *shipOrder) heldFrom(seq uint64) bool {
	for len(o.order) > 0 {
		if _, ok := o.held[o.order[0]]; ok {
			return o.order[0] == seq
		}
		heap.Pop(&o.order)
	}
	return true
}

// earliest returns the lowest seq held (there is one).
func (o *shipOrder) earliest() uint64 {
	for {
		seq := heap.Pop(&o.order).(uint64)
		if _, ok := o.held[seq]; ok {
			return seq
		}
	}
}

// release passes on every record held, in chain order: the records
// before them did not come.
func (o *shipOrder) release() *Problem {
	for len(o.held) > 0 {
		if p := o.passHeld(o.earliest()); p != nil {
			return p
		}
		if p := o.drain(); p != nil {
			return p
		}
	}
	return nil
}

// remember keeps the digest of the record seq passed on.
func (o *shipOrder) remember(seq uint64, sum digest) {
	o.passed++
	if o.passed > len(o.ring) && len(o.ring) < maxRemembered {
		o.grow()
	}
	o.ring[seq%uint64(len(o.ring))] = remembered{seq, sum}
}

// grow doubles the ring (up to maxRemembered), keeping what it holds.
func (o *shipOrder) grow() {
	n := max(2*len(o.ring), 1024)
	if n > maxRemembered {
		n = maxRemembered
	}
	ring := make([]remembered, n)
	for _, e := range o.ring {
		if e.seq != 0 {
			ring[e.seq%uint64(n)] = e
		}
	}
	o.ring = ring
}

// recall reports whether the record seq passed on had the digest sum.
func (o *shipOrder) recall(seq uint64, sum digest) bool {
	if len(o.ring) == 0 {
		return false
	}
	e := o.ring[seq%uint64(len(o.ring))]
	return e.seq == seq && e.sum == sum
}

// shippedTorn matches, in a shipper's copy, the torn lines appends ended
// with [TornMark] with what accounts for them, wherever each comes: the
// torn-tail record holding the line's bytes, or, after a cut write, the
// damage record listing the line. Each record accounts for one line;
// every table is bounded, and keys are dropped once used up.
type shippedTorn struct {
	// waiting holds the torn lines met before what accounts for them,
	// by key and by line; n counts them.
	waiting map[TornKey][]damagedAt
	byLine  map[LineKey][]TornKey
	n       int
	// seen counts the torn-tail records met before their line; listed
	// the lines damage records listed before they were met, and wanted
	// the damage record (seq) that lists each. A record the copy holds
	// any listed line of (held) wants all of them: the copy holds that
	// stretch, so the rest must come (or repeat lines met).
	seen   map[TornKey]int
	listed map[LineKey]int
	wanted map[LineKey]uint64
	held   map[uint64]bool
	// metLines are the damaged lines met: a later repeat of one is
	// dropped before verify sees it.
	metLines map[LineKey]bool
	// repeats are the last maxRepeats records dropped as repeats (a
	// ring, oldest first at next): on the node, a copy of a record at
	// the end of the log is a damaged line a damage record lists.
	// Records sent again are common: the ring keeps the latest, which
	// such a damage record follows.
	repeats    map[LineKey]int
	repeatRing []LineKey
	next       int
	// full is set when wanted had no room for one more, heldFull when
	// held had none: lines missing from the copy could then go unseen,
	// so it fails (held only for a wanted line of a record it may miss).
	full, heldFull bool
}

// repeated notes a record line dropped as a repeat.
func (st *shippedTorn) repeated(k LineKey) {
	if st.repeats == nil {
		st.repeats = map[LineKey]int{}
	}
	if len(st.repeatRing) < maxRepeats {
		st.repeatRing = append(st.repeatRing, k)
	} else {
		old := st.repeatRing[st.next]
		if st.repeats[old]--; st.repeats[old] <= 0 {
			delete(st.repeats, old)
		}
		st.repeatRing[st.next] = k
		st.next = (st.next + 1) % maxRepeats
	}
	st.repeats[k]++
}

// met notes a damaged line (a torn one too) met.
func (st *shippedTorn) met(at damagedAt) {
	if st.metLines == nil {
		st.metLines = map[LineKey]bool{}
	}
	if len(st.metLines) < maxDamagedRemembered {
		st.metLines[at.key()] = true
	}
}

// line takes a torn line: accounted is true when a record met before
// accounts for it; otherwise it waits.
func (st *shippedTorn) line(key TornKey, at damagedAt) (accounted bool, p *Problem) {
	if st.seen[key] > 0 {
		decr(st.seen, key)
		// A damage record that lists the same bytes holds them too.
		st.hold(st.wanted[at.key()])
		return true, nil
	}
	if lk := at.key(); st.listed[lk] > 0 {
		decr(st.listed, lk)
		st.hold(st.wanted[lk])
		delete(st.wanted, lk)
		return true, nil
	}
	if st.n == maxDamagedRemembered {
		return false, &Problem{File: at.file, Line: at.line, Reason: fmt.Sprintf("more than %d torn lines wait for their torn-tail records", maxDamagedRemembered)}
	}
	if st.waiting == nil {
		st.waiting, st.byLine = map[TornKey][]damagedAt{}, map[LineKey][]TornKey{}
	}
	st.waiting[key] = append(st.waiting[key], at)
	st.byLine[at.key()] = append(st.byLine[at.key()], key)
	st.n++
	return false, nil
}

// take removes a waiting torn line of key (its line lk, if known).
func (st *shippedTorn) take(key TornKey, lk *LineKey) bool {
	w := st.waiting[key]
	i := 0
	if lk != nil {
		i = slices.IndexFunc(w, func(a damagedAt) bool { return a.key() == *lk })
	}
	if len(w) == 0 || i < 0 {
		return false
	}
	at := w[i]
	if w = slices.Delete(w, i, i+1); len(w) == 0 {
		delete(st.waiting, key)
	} else {
		st.waiting[key] = w
	}
	l := at.key()
	ks := st.byLine[l]
	if j := slices.Index(ks, key); j >= 0 {
		ks = slices.Delete(ks, j, j+1)
	}
	if len(ks) == 0 {
		delete(st.byLine, l)
	} else {
		st.byLine[l] = ks
	}
	st.n--
	return true
}

// record takes a torn-tail record: it accounts for a waiting line, or
// for one still to come.
func (st *shippedTorn) record(r *Record) {
	k := r.TornKey()
	if st.take(k, nil) {
		return
	}
	if st.seen == nil {
		st.seen = map[TornKey]int{}
	}
	if len(st.seen) < maxDamagedRemembered {
		st.seen[k]++
	}
}

// damage takes a damage record r and the damaged lines met since the
// last good record: the waiting torn lines it lists are accounted for;
// of the rest, it returns those that match damaged, in their order (the
// record must list all of damaged, as always), and those listed but met
// before (repeats) or still to come, which it notes.
func (st *shippedTorn) damage(r *Record, damaged []damagedAt) (listed, elsewhere []DamagedLine) {
	var rest []DamagedLine
	for _, d := range r.Damage {
		lk := d.Key()
		if ks := st.byLine[lk]; len(ks) > 0 && st.take(ks[0], &lk) {
			elsewhere = append(elsewhere, d)
			st.hold(r.Seq)
			continue
		}
		rest = append(rest, d)
	}
	j := 0
	var later []LineKey
	for _, d := range rest {
		if j < len(damaged) && d.Key() == damaged[j].key() {
			listed = append(listed, d)
			j++
			continue
		}
		elsewhere = append(elsewhere, d)
		lk := d.Key()
		if st.metLines[lk] || st.repeats[lk] > 0 {
			st.hold(r.Seq) // met before: a repeat of it was dropped
			continue
		}
		later = append(later, lk)
	}
	for _, lk := range later {
		if st.listed == nil {
			st.listed, st.wanted = map[LineKey]int{}, map[LineKey]uint64{}
		}
		if len(st.listed) < maxDamagedRemembered {
			st.listed[lk]++
		}
		if len(st.wanted) < maxDamagedRemembered {
			st.wanted[lk] = r.Seq
		} else {
			st.full = true
		}
	}
	if j > 0 {
		st.hold(r.Seq)
	}
	return listed, elsewhere
}

// hold notes that the copy holds a line the damage record seq lists.
func (st *shippedTorn) hold(seq uint64) {
	if seq == 0 {
		return
	}
	if st.held == nil {
		st.held = map[uint64]bool{}
	}
	if len(st.held) < maxDamagedRemembered || st.held[seq] {
		st.held[seq] = true
	} else {
		st.heldFull = true
	}
}

// end reports a torn line nothing accounted for, or a line a damage
// record wants that never came.
//
// emptied says that the copy had empty lines, skipped: a line of NUL
// bytes only may be one of them, as a shipper delivers it, and is not
// wanted.
func (st *shippedTorn) end(last string, emptied bool) *Problem {
	if st.n > 0 {
		var at damagedAt
		for _, w := range st.waiting {
			if len(w) > 0 && (at.file == "" || w[0].file < at.file || w[0].file == at.file && w[0].line < at.line) {
				at = w[0]
			}
		}
		return &Problem{File: at.file, Line: at.line, Reason: fmt.Sprintf("ended as a torn line, but no torn-tail record holds its bytes (%d such line(s))", st.n)}
	}
	if st.full {
		return st.fullProblem(last)
	}
	// Lines all elsewhere are those of a file retention removed, or
	// dropped as repeats: such a record still wants its ack. A line met
	// (its bytes used up by another record: two alike) is held.
	var first LineKey
	var seq uint64
	n := 0
	for lk, s := range st.wanted {
		if !st.held[s] && st.heldFull {
			// Whether the copy holds others of its lines went
			// unrecorded.
			return st.fullProblem(last)
		}
		if !st.held[s] || st.metLines[lk] || emptied && allZero(lk) {
			continue
		}
		n++
		if seq == 0 || s < seq || s == seq && lk.SHA256 < first.SHA256 {
			first, seq = lk, s
		}
	}
	if n == 0 {
		return nil
	}
	return &Problem{File: last, Seq: seq, Reason: fmt.Sprintf("the damage record at seq %d lists a line (%d bytes, SHA-256 %s) the copy does not hold, with others it holds (%d such line(s))", seq, first.Bytes, first.SHA256, n)}
}

// allZero reports whether the damaged line lk was NUL bytes only (its
// digest tells): a shipper delivers such a line empty.
func allZero(lk LineKey) bool {
	if lk.Bytes <= 0 || lk.Bytes > MaxLine {
		return false
	}
	sum := sha256.Sum256(make([]byte, lk.Bytes))
	return hex.EncodeToString(sum[:]) == lk.SHA256
}

// fullProblem says that the tables ran out of room.
func (st *shippedTorn) fullProblem(last string) *Problem {
	return &Problem{File: last, Reason: fmt.Sprintf("more than %d damage records or damaged lines to match in the copy: past that, lines missing from it would go unseen (verify the node's own log, which checks each)", maxDamagedRemembered)}
}

// decr counts one key of m down, dropping it at 0.
func decr[K comparable](m map[K]int, k K) {
	if m[k] <= 1 {
		delete(m, k)
	} else {
		m[k]--
	}
}
