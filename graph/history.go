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
		a.Verdict = "chain NOT verified: " + vocab.Escape(vocab.OneLine(verr))
	} else {
		a.Verified = true
		a.Verdict = fmt.Sprintf("chain verified: %d records, seq %d to %d", sum.Records, sum.FirstSeq, sum.LastSeq)
	}
	if terr := snap.CheckTrusted(); terr != nil {
		// Without a key, whoever may write a log can make its chain
		// verify: not a green banner. (A copy in /tmp, or a user's,
		// is read all the same, under this verdict.)
		a.Verified = false
		a.Verdict += "; but others may have written it (" + vocab.Escape(vocab.OneLine(terr)) + "): verify it with its key and checkpoints"
	}
	// A local user's container (namespace uid=UID) has no records: the
	// log is root's, and the user picks its IDs, a root container's too.
	type holder struct {
		n *Node
		c *Container
	}
	byID := make(map[string][]holder)
	for _, n := range g.Nodes {
		for i := range n.Containers {
			c := &n.Containers[i]
			if !vocab.UsersContainer(c.Namespace) {
				byID[c.ID] = append(byID[c.ID], holder{n, c})
			}
		}
	}
	// The records of the shown containers' IDs, in the log's order.
	type record struct {
		r   *audit.Record
		ref int // the index of the record it refers to, -1 for none
	}
	var recs []record
	last := make(map[uint64]int) // the latest record of each seq so far (a chain started again repeats them)
	for l, err := range snap.Lines() {
		if err != nil {
			break
		}
		r, err := audit.Decode(l.Data)
		if err != nil || byID[vocab.Escape(r.ContainerID)] == nil {
			continue
		}
		x := record{r: r, ref: -1}
		if r.Ref != nil {
			if i, ok := last[r.Ref.Seq]; ok {
				x.ref = i
			}
		}
		last[r.Seq] = len(recs)
		recs = append(recs, x)
	}
	// For each shown container: the start records of its process (its
	// PID and start time), and the records that refer to one taken (a
	// poststart, a stop). A start without a process (its inspection
	// failed: the hook's, or a recorder's start without namespaces) is
	// the container's when it is the last start of the ID and nothing
	// ended it: no stop of the ID, and no start of another process
	// after it (with the records that refer to it).
	nodes := make([][]*Node, len(recs))
	for _, hs := range byID {
		for _, h := range hs {
			taken := make([]bool, len(recs))
			cand := -1 // the start without a process that may be the container's
			var follow []int
			for i, x := range recs {
				r := x.r
				if vocab.Escape(r.ContainerID) != h.c.ID || r.Namespace != "" && vocab.Escape(r.Namespace) != h.c.Namespace {
					continue
				}
				stop := r.Stage == audit.StagePoststop || r.Stage == audit.StageExit
				switch {
				case x.ref >= 0 && taken[x.ref]:
					taken[i] = true
				case x.ref >= 0 && cand >= 0 && (x.ref == cand || slices.Contains(follow, x.ref)):
					if stop {
						cand, follow = -1, nil
					} else {
						follow = append(follow, i)
					}
				case audit.IsStart(r.Stage) && r.Ancestry != nil:
					if r.Ancestry.PID == h.c.PID && (h.c.StartTime == 0 || r.Ancestry.StartTime == h.c.StartTime) {
						taken[i] = true
					} else {
						cand, follow = -1, nil // another process's
					}
				case audit.IsStart(r.Stage):
					cand, follow = i, nil
				case stop && x.ref < 0:
					cand, follow = -1, nil // ends every earlier start of the ID
				}
			}
			if cand >= 0 {
				taken[cand] = true
				for _, i := range follow {
					taken[i] = true
				}
			}
			for i, t := range taken {
				if t && !slices.Contains(nodes[i], h.n) {
					nodes[i] = append(nodes[i], h.n)
				}
			}
		}
	}
	for i, x := range recs {
		if len(nodes[i]) == 0 {
			continue
		}
		r := x.r
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
