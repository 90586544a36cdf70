package containers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// MaxAuditTail is how much of the end of the audit log (across rotated
// files) [AuditSource] reads.
const MaxAuditTail = 8 << 20

// MaxAuditLockWait bounds how long [AuditSource] waits for the audit
// log's shared lock while a writer appends.
const MaxAuditLockWait = 5 * time.Second

// AuditSource lists the containers that the nsrel-hook audit log saw
// start and not stop, whose process still runs with the recorded start
// time. The hook is started by the runtime itself, so its records name
// containers that no runtime root lists (CRI-O, runtimes with other
// roots). It reads only the last [MaxAuditTail] bytes of the log (and
// says so, in a [PartialError], when it leaves records of this boot
// unread), through package audit's reader and decoder, under the log's
// shared lock (a writer's append or rotation is never seen half done),
// and does not verify the chain (use `nsrel-hook audit verify` for
// that): a record that does not decode is
// skipped, and one that does only ever leads to a process that is checked
// against /proc. AuditSource implements [discover.ContainerSource].
type AuditSource struct {
	// Path is the audit log. If empty: $NSREL_AUDIT_LOG, else the
	// audit_log of the hook config at [vocab.DefaultHookConfig] when it
	// exists, else [vocab.DefaultAuditLog].
	Path string
}

// Name implements [discover.ContainerSource].
func (s *AuditSource) Name() string { return "audit-log" }

// path returns the log's path, and whether the user named it
// ($NSREL_AUDIT_LOG).
func (s *AuditSource) path() (string, bool, error) {
	if s.Path != "" {
		return s.Path, false, nil
	}
	if p := os.Getenv("NSREL_AUDIT_LOG"); p != "" {
		return p, true, nil
	}
	if _, err := os.Stat(vocab.DefaultHookConfig); err == nil {
		cfg, err := policy.Load(vocab.DefaultHookConfig)
		if err != nil {
			return "", false, err
		}
		return cfg.AuditLog, false, nil
	}
	return vocab.DefaultAuditLog, false, nil
}

// List implements [discover.ContainerSource]. A missing log (nsrel-hook
// not installed) is no error, unless $NSREL_AUDIT_LOG names it (a
// [NamedError]).
func (s *AuditSource) List(ctx context.Context) ([]discover.Container, error) {
	named, byEnv, err := s.path()
	if err != nil {
		return nil, err
	}
	// Under the log's shared lock, as verify reads it: files listed and
	// then opened one by one can miss the one a writer rotates meanwhile.
	path, err := filepath.Abs(named)
	if err != nil {
		return nil, err
	}
	l, err := audit.Open(path, audit.Options{Host: "-", Version: "-"})
	if err != nil {
		return nil, err
	}
	lockCtx, cancel := context.WithTimeout(ctx, MaxAuditLockWait)
	snap, err := l.Snapshot(lockCtx)
	cancel()
	if err == nil && len(snap.Files()) == 0 && byEnv {
		// No log there, nor rotated files of one.
		snap.Close()
		if _, err = os.Lstat(path); err == nil {
			err = fs.ErrNotExist // made since
		}
	}
	if err != nil {
		switch {
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		case !byEnv:
			return nil, nil
		case path != named:
			err = fmt.Errorf("a relative path, read from the working directory: %w", err)
		}
		return nil, &NamedError{"NSREL_AUDIT_LOG", named, err}
	}
	defer snap.Close()
	// Its records are believed, not verified: only a log the hook
	// could have written counts (a user's log planted where
	// NSREL_AUDIT_LOG or a config names a shared directory showed the
	// user's process as a system pod).
	if err := snap.CheckTrusted(); err != nil {
		return nil, err
	}
	// Newest record first: for each container the newest start or stop
	// record decides whether it may still run. Only the head of a line
	// is read to know that; lines are decoded in full for the deciding
	// starts (and older starts of the same process, for annotations the
	// newest lacks). A stop (poststop, exit) ends the start record it
	// refers to, and a start record ended the one it refers to (a
	// poststart's createRuntime record): runc frees a container's ID
	// before it runs the poststop hooks, so an earlier container's
	// poststop can come after the start of a new container of the ID,
	// which still runs (TestAuditSourceLatePoststop). A stop without a
	// reference (no start record was found for it) ends every earlier
	// start of the ID; a container ID names one container per engine
	// namespace: such a stop in one namespace does not end a container of
	// the same ID in another. A record without a namespace (the hook's:
	// the OCI state has none) may be of any.
	type key struct{ id, ns string }
	ended := map[uint64]bool{}     // start records a stop ended, by seq
	stops := map[string][]string{} // the namespaces of the stops without a reference met, per ID
	decided := map[key]bool{}
	live := map[key]*audit.Record{}
	budget := auditTail
	var cut error // the records left unread, when one of this boot may be
	// The lines damage records list (an older start again, a stale
	// block's, after its container's stop) are no records of the chain:
	// passed over, as verify leaves them out of it. Going backward, the
	// damage record comes first.
	listed := snap.Listed()
files:
	for i := len(snap.Files()) - 1; i >= 0; i-- {
		for l, err := range snap.LinesBackward(i) {
			if err != nil {
				return nil, err
			}
			line := l.Data
			if budget -= int64(len(line)) + 1; budget < 0 {
				cut = tailCut(path, line)
				break files
			}
			h, ok := audit.PeekHead(line)
			if ok {
				listed.LineBackward(l.File, l.Offset, line)
			}
			if ok && h.Stage == audit.StageDamaged {
				continue
			}
			if !ok || h.ContainerID == "" || listed.Has(l.File, l.Offset, line) {
				continue
			}
			id := h.ContainerID
			if audit.IsStop(h.Stage) {
				if ref := refOf(line); ref != 0 {
					ended[ref] = true
					continue
				}
				switch cur := stops[id]; {
				case slices.Contains(cur, ""): // ends them all already
				case h.Namespace == "":
					stops[id] = endsAll // never appended to
				case !slices.Contains(cur, h.Namespace):
					stops[id] = append(cur, h.Namespace)
				}
				continue
			}
			if !audit.IsStart(h.Stage) {
				continue
			}
			if ended[h.Seq] {
				// A start ended ends the one it refers to: a
				// poststart its createRuntime record, the NRI plugin's
				// start the other writer's start whose verdict it
				// overrides (the recorder's, in another namespace:
				// refused by one, allowed by the other), a recorder's start
				// its start without namespaces (never listed).
				if ref := refOf(line); ref != 0 {
					ended[ref] = true
				}
				continue
			}
			k := key{id, h.Namespace}
			if !decided[k] {
				decided[k] = true
				if !stoppedIn(stops[id], h.Namespace) {
					if r := decodeStart(line, id); r != nil {
						live[k] = r
					}
				}
				continue
			}
			if cur := live[k]; cur != nil && cur.Annotations == nil {
				if r := decodeStart(line, id); r != nil && r.PID == cur.PID && r.StartTime == cur.StartTime && r.BootID == cur.BootID {
					cur.Annotations = r.Annotations
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	// Merge joins a hook's and a recorder's start of one process.
	var out []discover.Container
	for _, r := range live {
		st := State{ID: r.ContainerID, PID: r.PID, StartTime: r.StartTime}
		if r.StartTime == 0 || !r.OfThisBoot() || !st.Alive(0) {
			continue
		}
		out = append(out, discover.Container{ID: r.ContainerID, Engine: EngineAuditLog, Namespace: r.Namespace, PID: r.PID, StartTime: r.StartTime, Name: vocab.ContainerName(r.Annotations)})
	}
	if cut != nil {
		return Merge(out), &PartialError{cut}
	}
	return Merge(out), nil
}

// auditTail is [MaxAuditTail], lowered by tests.
var auditTail = int64(MaxAuditTail)

// tailCut says which records of the log at path [AuditSource] left
// unread, line being the newest of them: nil when it was written in an
// earlier boot (no container it names runs now, nor one before it). A
// node that starts thousands of containers a boot has more than
// [MaxAuditTail] of its records: a container started before them that
// only the log names (CRI-O's) was left out of the trees without a word.
func tailCut(path string, line []byte) error {
	size := fmt.Sprintf("%d MiB", auditTail>>20)
	if auditTail < 1<<20 {
		size = fmt.Sprintf("%d bytes", auditTail)
	}
	r, err := audit.Decode(line)
	switch {
	case err != nil:
		return fmt.Errorf("audit log %s: only its last %s read", path, size)
	case !r.OfThisBoot():
		return nil
	}
	return fmt.Errorf("audit log %s: only its last %s read (records up to seq %d, %s, not read)", path, size, r.Seq, r.Time)
}

// endsAll is the stops of an ID after a stop without a namespace.
var endsAll = []string{""}

// stoppedIn reports whether a stop in one of the namespaces stops ends a
// start in namespace ns: one in the same namespace, or either without one.
func stoppedIn(stops []string, ns string) bool {
	for _, s := range stops {
		if s == ns || s == "" || ns == "" {
			return true
		}
	}
	return false
}

// refOf returns the seq of the record the record line refers to, 0 for
// none. nsrel writes the reference as `,"ref":{"seq":N,`, and no other
// member of a start or stop record holds an object with that key (a
// quote within a string is escaped): the seq is read from there, which
// costs a fraction of a decode (the stop of every container and its
// poststart are read so; decoding them tripled the time of
// BenchmarkAuditSource with references, 7.5 to 22 ms). A line that
// holds a reference written otherwise is decoded (0 when it does not
// decode).
func refOf(line []byte) uint64 {
	if i := bytes.Index(line, refSeq); i >= 0 {
		rest := line[i+len(refSeq):]
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if seq, err := strconv.ParseUint(string(rest[:n]), 10, 64); err == nil && n < len(rest) && rest[n] == ',' {
			return seq
		}
	}
	if !bytes.Contains(line, refKey) {
		return 0
	}
	r, err := audit.Decode(line)
	if err != nil || r.Ref == nil {
		return 0
	}
	return r.Ref.Seq
}

var refSeq, refKey = []byte(`,"ref":{"seq":`), []byte(`"ref"`)

// decodeStart decodes a start record of container id with a process
// that can be one: nil for anything else.
func decodeStart(line []byte, id string) *audit.Record {
	r, err := audit.Decode(line)
	if err != nil || r.ContainerID != id || !validID(id) || r.Ancestry == nil || r.PID <= 0 || r.PID >= vocab.PIDLimit {
		return nil
	}
	return r
}
