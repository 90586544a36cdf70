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
	if err := snap.CheckTrusted(); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	a := &Audit{Path: vocab.Escape(path)}
	sum, verr := audit.VerifySnapshot(snap, audit.VerifyOptions{Partial: true})
	if verr != nil {
		a.Verdict = "chain NOT verified: " + vocab.Escape(vocab.OneLine(verr))
	} else {
		a.Verified = true
		a.Verdict = fmt.Sprintf("chain verified: %d records, seq %d to %d", sum.Records, sum.FirstSeq, sum.LastSeq)
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
	// The nodes of the records taken, by seq: a record referring to one
	// goes where that one went.
	taken := make(map[uint64][]*Node)
	for l, err := range snap.Lines() {
		if err != nil {
			break
		}
		r, err := audit.Decode(l.Data)
		if err != nil {
			continue
		}
		var nodes []*Node
		if r.Ref != nil {
			nodes = slices.Clone(taken[r.Ref.Seq])
		}
		if audit.IsStart(r.Stage) && r.Ancestry != nil {
			ns := vocab.Escape(r.Namespace)
			for _, h := range byID[vocab.Escape(r.ContainerID)] {
				if (ns == "" || ns == h.c.Namespace) && r.Ancestry.PID == h.c.PID &&
					(h.c.StartTime == 0 || r.Ancestry.StartTime == h.c.StartTime) && !slices.Contains(nodes, h.n) {
					nodes = append(nodes, h.n)
				}
			}
		}
		if len(nodes) == 0 {
			continue
		}
		taken[r.Seq] = nodes
		a.Records++
		e := Event{Seq: r.Seq, Time: vocab.Escape(r.Time), Source: vocab.Escape(r.Source), Stage: vocab.Escape(r.Stage),
			ID: vocab.Escape(r.ContainerID), Policy: vocab.Escape(r.Policy), Mode: vocab.Escape(r.Mode),
			Verdict: vocab.Escape(r.Verdict), Error: vocab.Escape(r.Error)}
		for _, v := range r.Violations {
			e.Violations = append(e.Violations, vocab.Escape(v.Rule+": "+v.Reason))
		}
		for _, n := range nodes {
			n.History = append(n.History, e)
		}
	}
	g.Audit = a
	return nil
}
