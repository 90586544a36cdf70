package containers

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
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
// roots). It reads only the last [MaxAuditTail] bytes of the log, through
// package audit's reader and decoder, under the log's shared lock (a
// writer's append or rotation is never seen half done), and does not verify the chain (use
// `nsrel-hook audit verify` for that): a record that does not decode is
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

func (s *AuditSource) path() (string, error) {
	if s.Path != "" {
		return s.Path, nil
	}
	if p := os.Getenv("NSREL_AUDIT_LOG"); p != "" {
		return p, nil
	}
	if _, err := os.Stat(vocab.DefaultHookConfig); err == nil {
		cfg, err := policy.Load(vocab.DefaultHookConfig)
		if err != nil {
			return "", err
		}
		return cfg.AuditLog, nil
	}
	return vocab.DefaultAuditLog, nil
}

// List implements [discover.ContainerSource]. A missing log (nsrel-hook
// not installed) is no error.
func (s *AuditSource) List(ctx context.Context) ([]discover.Container, error) {
	path, err := s.path()
	if err != nil {
		return nil, err
	}
	// Under the log's shared lock, as verify reads it: files listed and
	// then opened one by one can miss the one a writer rotates meanwhile.
	if path, err = filepath.Abs(path); err != nil {
		return nil, err
	}
	l, err := audit.Open(path, audit.Options{Host: "-", Version: "-"})
	if err != nil {
		return nil, err
	}
	lockCtx, cancel := context.WithTimeout(ctx, MaxAuditLockWait)
	snap, err := l.Snapshot(lockCtx)
	cancel()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	defer snap.Close()
	// Newest record first: for each container the newest start or stop
	// record decides whether it may still run. Only the head of a line
	// is read to know that; lines are decoded in full for the deciding
	// starts (and older starts of the same process, for annotations the
	// newest lacks).
	decided := map[string]bool{}
	live := map[string]*audit.Record{}
	budget := int64(MaxAuditTail)
files:
	for i := len(snap.Files()) - 1; i >= 0 && budget > 0; i-- {
		for line, err := range snap.LinesBackward(i) {
			if err != nil {
				return nil, err
			}
			if budget -= int64(len(line)) + 1; budget < 0 {
				break files
			}
			h, ok := audit.PeekHead(line)
			if !ok || h.ContainerID == "" {
				continue
			}
			isStart, isStop := audit.IsStart(h.Stage), h.Stage == audit.StagePoststop || h.Stage == audit.StageExit
			if !isStart && !isStop {
				continue
			}
			id := h.ContainerID
			if !decided[id] {
				decided[id] = true
				if isStart {
					if r := decodeStart(line, id); r != nil {
						live[id] = r
					}
				}
				continue
			}
			if cur := live[id]; cur != nil && isStart && (cur.Annotations == nil || cur.Namespace == "") {
				if r := decodeStart(line, id); r != nil && r.PID == cur.PID && r.StartTime == cur.StartTime {
					if cur.Annotations == nil {
						cur.Annotations = r.Annotations
					}
					if cur.Namespace == "" {
						cur.Namespace = r.Namespace
					}
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	var out []discover.Container
	for _, r := range live {
		st := State{ID: r.ContainerID, PID: r.PID, StartTime: r.StartTime}
		if r.StartTime == 0 || !st.Alive(0) {
			continue
		}
		out = append(out, discover.Container{ID: r.ContainerID, Engine: EngineAuditLog, Namespace: r.Namespace, PID: r.PID, Name: vocab.ContainerName(r.Annotations)})
	}
	return Merge(out), nil
}

// decodeStart decodes a start record of container id with a process
// that can be one: nil for anything else.
func decodeStart(line []byte, id string) *audit.Record {
	r, err := audit.Decode(line)
	if err != nil || r.ContainerID != id || !validID(id) || r.Ancestry == nil || r.PID <= 0 || r.PID >= vocab.PIDLimit {
		return nil
	}
	return r
}
