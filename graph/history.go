package graph

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/vocab"
)

// Event is one audit record of a shown container: the fields of
// [audit.Record] a reader of the report needs, escaped with [vocab.Escape].
type Event struct {
	// Seq and Time place the record in the chain.
	Seq  uint64 `json:"seq"`
	Time string `json:"time"`
	// Source is the writer, Stage the event.
	Source string `json:"source"`
	Stage  string `json:"stage"`
	// ID is the container's ID.
	ID string `json:"id"`
	// Policy, Mode and Verdict are the decision, when the stage made one.
	Policy  string `json:"policy,omitempty"`
	Mode    string `json:"mode,omitempty"`
	Verdict string `json:"verdict,omitempty"`
	// Violations are "rule: reason" lines.
	Violations []string `json:"violations,omitempty"`
	// Error is the record's internal error, if any.
	Error string `json:"error,omitempty"`
}

// Audit is what the report says of the audit log it read.
type Audit struct {
	// Path is the log as given.
	Path string `json:"path"`
	// Verified is true when the chain held; Verdict says so in words
	// ("chain verified: 12 records, seq 1 to 12" or the first problem).
	Verified bool   `json:"verified"`
	Verdict  string `json:"verdict"`
	// Records counts the records of the shown containers.
	Records int `json:"records"`
}

// AddHistory verifies the audit log at path (with its rotated files, as
// nsrel-hook verify does) and then attaches the records of every shown
// container to the nodes it lives on. A relative path is taken from the
// working directory; [Audit].Path is path as given. A chain that does not verify is
// still read, and the verdict says what is wrong; an error is returned
// when the log cannot be read at all, or is one the hook could not have
// written (a file or directory another user owns or may write: without
// a key, whoever may write a log can make its chain verify).
//
// A container's records are its process's: the start records of its
// ID (in its containerd namespace, when a record names one) with its
// PID and start time, and the records that refer to one of those (a
// poststart, its stop). An earlier container of the same ID (runc and
// podman IDs are reused), or one of another engine's namespace in a
// record that names none, had its records, refusals too, shown as the
// running one's.
func (g *Graph) AddHistory(path string) error {
	// Under the log's shared lock, as verify reads it: files listed and
	// then opened without it can miss one a writer rotates meanwhile,
	// which reads as records deleted.
	// audit.Open wants the path the log's writers use: absolute.
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	l, err := audit.Open(abs, audit.Options{})
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	snap, err := l.Snapshot(ctx)
	if err == nil && len(snap.Files()) == 0 {
		snap.Close()
		err = &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	}
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	defer snap.Close()
	a := &Audit{Path: vocab.Escape(path)}
	sum, verr := audit.VerifySnapshot(snap, audit.VerifyOptions{Partial: true})
	if verr != nil {
		a.Verdict = "chain NOT verified: " + vocab.Escape(vocab.Flatten(verr))
	} else {
		a.Verified = true
		a.Verdict = fmt.Sprintf("chain verified: %d records, seq %d to %d", sum.Records, sum.FirstSeq, sum.LastSeq)
		if sum.Records == 0 {
			a.Verdict = "chain verified: the log holds no record"
		}
	}
	if terr := snap.CheckTrusted(); terr != nil {
		// Without a key, whoever may write a log can make its chain
		// verify: not a green banner. (A copy in /tmp, or a user's,
		// is read all the same, under this verdict.)
		a.Verified = false
		a.Verdict += "; but others may have written it (" + vocab.Escape(vocab.Flatten(terr)) + "): verify it with its key and checkpoints"
	}
	// The shown containers, each once with the nodes it is on (its user
	// and PID namespaces). A local user's container (namespace uid=UID)
	// has no records: the log is root's, and the user picks its IDs, a
	// root container's too.
	type shown struct {
		c     *Container
		nodes []*Node
		// own reports whether a record is a start of its process.
		own func(*audit.Record) bool
	}
	type shownKey struct {
		id, ns string
		pid    int
		start  uint64
	}
	index := make(map[shownKey]*shown)
	byID := make(map[string][]*shown)
	for _, n := range g.Nodes {
		for i := range n.Containers {
			c := &n.Containers[i]
			if vocab.UsersContainer(c.Namespace) {
				continue
			}
			k := shownKey{c.ID, c.Namespace, c.PID, c.StartTime}
			sc := index[k]
			if sc == nil {
				sc = &shown{c: c, own: audit.StartMatcher(c.PID, c.StartTime)}
				index[k] = sc
				byID[c.ID] = append(byID[c.ID], sc)
			}
			if !slices.Contains(sc.nodes, n) {
				sc.nodes = append(sc.nodes, n)
			}
		}
	}
	// The records of the shown containers' IDs, in the log's order, and
	// their indexes by ID.
	// Each is kept as what the matching below reads of it (slim): a
	// reused ID (runc's "build", run a hundred thousand times) held every
	// record whole, and a log of a few long records took 13 times its
	// size; the records taken are read again for their events.
	type record struct {
		r       *audit.Record
		at      lineAt
		ref     int  // the index of the record it refers to, -1 for none
		refGone bool // it refers to a record not in the snapshot (removed by retention)
	}
	var recs []record
	var ofID map[string][]int
	// The lines damage records list (older records again, a stale
	// block's, or a record made up and filed so) are no records of the
	// chain: left out, as verify leaves them out of it. A damage record
	// comes after the lines it lists: when the log has one, the records
	// are read again without them.
	listed := snap.Listed()
	for pass := 0; pass == 0 || pass == 1 && listed.Damaged(); pass++ {
		recs, ofID = nil, make(map[string][]int)
		last := make(map[uint64]int) // the latest record of each seq so far (a chain started again repeats them)
	lines:
		for l, err := range snap.Lines() {
			if err != nil {
				break
			}
			h, r, ok := audit.HeadOf(l.Data)
			if ok && pass == 0 {
				listed.Line(l.File, l.Offset, l.Data)
			}
			if !ok || byID[vocab.Escape(h.ContainerID)] == nil || pass == 1 && listed.Has(l.File, l.Offset, l.Data) {
				continue
			}
			if r == nil {
				if r, err = audit.Decode(l.Data); err != nil {
					continue lines
				}
			}
			id := vocab.Escape(r.ContainerID)
			x := record{r: slim(r), at: lineAt{l.File, l.Number}, ref: -1}
			if r.Ref != nil {
				// By seq and hash: after a chain started again (its log
				// lost) a seq may be an older record's.
				if i, ok := last[r.Ref.Seq]; ok && recs[i].r.Hash == r.Ref.Hash {
					x.ref = i
				} else {
					x.refGone = true
				}
			}
			last[r.Seq] = len(recs)
			ofID[id] = append(ofID[id], len(recs))
			recs = append(recs, x)
		}
	}
	// For each shown container: the start records of its process (its
	// PID and start time), and the records that refer to one taken (a
	// poststart, a stop). A start without a process (its inspection
	// failed: the hook's, or a recorder's or the NRI plugin's start
	// without namespaces) that refers to no other start is the
	// container's when it is the last start of the ID that could be its
	// and nothing ended it: no stop of the ID, no start of another
	// process after it, nor a start of its own process by the same
	// writer that does not refer to it (an earlier container's, left
	// open by a crash, is not the running one's); and only when no other
	// shown container of the ID could have it (a record without a
	// namespace, the hook's, may be of any engine's).
	// holds reports whether c could have r: r names c's containerd
	// namespace, or none (the hook's records).
	holds := func(r *audit.Record, c *Container) bool {
		return r.Namespace == "" || vocab.Escape(r.Namespace) == c.Namespace
	}
	nodes := make([][]*Node, len(recs))
	for id, scs := range byID {
		for _, sc := range scs {
			// other reports whether another shown container of the ID
			// could hold r (r names no namespace, or its), and with
			// process true, whether r is a start of its process.
			other := func(r *audit.Record, process bool) bool {
				for _, o := range scs {
					if o != sc && holds(r, o.c) && (!process || o.own(r)) {
						return true
					}
				}
				return false
			}
			taken := make(map[int]bool)
			cand := -1 // the start without a process that may be the container's
			var follow []int
			ofCand := func(x record) bool {
				return x.ref >= 0 && cand >= 0 && (x.ref == cand || slices.Contains(follow, x.ref))
			}
			// takeCand takes the candidate and the records referring to it.
			takeCand := func() {
				taken[cand] = true
				for _, f := range follow {
					taken[f] = true
				}
			}
			for _, i := range ofID[id] {
				x := recs[i]
				r := x.r
				if !holds(r, sc.c) {
					continue
				}
				start := audit.IsStart(r.Stage)
				stop := audit.IsStop(r.Stage)
				switch {
				case sc.own(r):
					taken[i] = true
					switch {
					case ofCand(x):
						// A start of its process referring to the
						// one without: the same container's.
						takeCand()
						cand, follow = -1, nil
					case cand >= 0 && r.Stage != audit.StagePoststart && recs[cand].r.Source == r.Source:
						// The writer's start of a new container: its
						// earlier one without a process was an
						// earlier container's, left open (a crash).
						// Another writer's start of the same event
						// (the NRI plugin's after the recorder's,
						// without a reference to it) leaves it.
						cand, follow = -1, nil
					}
				case x.ref >= 0 && taken[x.ref]:
					taken[i] = true
				case ofCand(x):
					if stop {
						cand, follow = -1, nil
					} else {
						follow = append(follow, i)
					}
				case start && !r.OfThisBoot():
					// An earlier boot's, with a process or without:
					// not this container's, and the starts before it
					// are of earlier boots too.
					cand, follow = -1, nil
				case start && r.Ancestry != nil:
					// Another process's: it ends the candidate, unless
					// it is another shown container's (of another
					// engine's namespace, the record naming none).
					if !other(r, true) {
						cand, follow = -1, nil
					}
				case start && (x.ref >= 0 || x.refGone):
					// A start without a process that refers to
					// another writer's start (the NRI plugin's over
					// the recorder's, a poststart whose inspection
					// failed): that start's container's, not this
					// one's, unless that start was taken (above).
				case start && !other(r, false):
					cand, follow = i, nil
				case start:
					// Whose cannot be told (a record naming no
					// namespace, another shown container's maybe):
					// neither taken nor ending the candidate.
				case stop && x.ref < 0 && !x.refGone && !other(r, false):
					// It ends every earlier start of the ID (one that
					// another shown container could have, the hook's
					// naming no namespace, cannot be told whose).
					cand, follow = -1, nil
				}
			}
			if cand >= 0 {
				takeCand()
			}
			for i := range taken {
				for _, n := range sc.nodes {
					if !slices.Contains(nodes[i], n) {
						nodes[i] = append(nodes[i], n)
					}
				}
			}
		}
	}
	taken := make(map[lineAt]int)
	for i, x := range recs {
		if len(nodes[i]) > 0 {
			taken[x.at] = i
		}
	}
	// The records taken, read again whole, in the log's order.
	for l, err := range snap.Lines() {
		if len(taken) == 0 || err != nil {
			break
		}
		i, ok := taken[lineAt{l.File, l.Number}]
		if !ok {
			continue
		}
		delete(taken, lineAt{l.File, l.Number})
		r, err := audit.Decode(l.Data)
		if err != nil {
			continue // not after it decoded under the same lock
		}
		a.Records++
		e := Event{Seq: r.Seq, Time: vocab.Escape(r.Time), Source: vocab.Escape(r.Source), Stage: vocab.Escape(r.Stage),
			ID: vocab.Escape(r.ContainerID), Policy: vocab.Escape(r.Policy), Mode: vocab.Escape(r.Mode),
			Verdict: vocab.Escape(r.Verdict), Error: vocab.Escape(r.Error)}
		for _, v := range r.Violations {
			e.Violations = append(e.Violations, vocab.Escape(v.Rule+": "+v.Reason))
		}
		for _, n := range nodes[i] {
			n.History = append(n.History, e)
		}
	}
	g.Audit = a
	return nil
}

// lineAt names a line of a snapshot: its file and line number.
type lineAt struct {
	file string
	n    int
}

// slim is what AddHistory's matching reads of r: its head, reference,
// hash, boot and, for a record with a process, the process's PID and
// start time (an Ancestry without namespaces).
func slim(r *audit.Record) *audit.Record {
	s := &audit.Record{Seq: r.Seq, Source: r.Source, Stage: r.Stage, ContainerID: r.ContainerID,
		Namespace: r.Namespace, Ref: r.Ref, BootID: r.BootID, Hash: r.Hash}
	if r.Ancestry != nil {
		s.Ancestry = &audit.Ancestry{PID: r.PID, StartTime: r.StartTime}
	}
	return s
}
