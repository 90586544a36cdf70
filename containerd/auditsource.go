package containerd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"slices"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// DefaultAuditLog is where the shipped hook config puts the audit log.
const DefaultAuditLog = "/var/log/nsrel/audit.jsonl"

// MaxAuditTail is how much of the end of the audit log (across rotated
// files) [AuditSource] reads.
const MaxAuditTail = 8 << 20

// AuditSource lists the containers that the nsrel-hook audit log saw
// start and not stop, whose process still runs with the recorded start
// time. The hook is started by the runtime itself, so its records name
// containers that no runtime root lists (CRI-O, runtimes with other
// roots). It reads only the last [MaxAuditTail] bytes of the log and does
// not verify the chain (use `nsrel-hook audit verify` for that): a record
// only ever leads to a process that is checked against /proc.
// AuditSource implements [discover.ContainerSource].
type AuditSource struct {
	// Path is the audit log. If empty: $NSREL_AUDIT_LOG, else the
	// audit_log of the hook config at [hook.DefaultConfig] when it exists,
	// else [DefaultAuditLog].
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
	if _, err := os.Stat(hook.DefaultConfig); err == nil {
		cfg, err := policy.Load(hook.DefaultConfig)
		if err != nil {
			return "", err
		}
		return cfg.AuditLog, nil
	}
	return DefaultAuditLog, nil
}

// List implements [discover.ContainerSource]. A missing log (nsrel-hook
// not installed) is no error.
func (s *AuditSource) List(ctx context.Context) ([]discover.Container, error) {
	path, err := s.path()
	if err != nil {
		return nil, err
	}
	files, err := audit.Files(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var chunks [][]byte
	budget := int64(MaxAuditTail)
	for i := len(files) - 1; i >= 0 && budget > 0; i-- {
		data, err := readTail(files[i], budget)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		budget -= int64(len(data))
		chunks = append(chunks, data)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	slices.Reverse(chunks)
	live := map[auditKey]auditStart{}
	for _, data := range chunks {
		for line := range bytes.Lines(data) {
			r, ok := parseAuditLine(line)
			if !ok {
				continue
			}
			switch {
			case audit.IsStart(r.Stage) && r.PID > 0:
				k := auditKey{r.ContainerID, r.PID}
				// poststart records may lack what createRuntime recorded.
				if old, ok := live[k]; ok && old.StartTime == r.StartTime {
					if r.Annotations == nil {
						r.Annotations = old.Annotations
					}
					if r.Namespace == "" {
						r.Namespace = old.Namespace
					}
				}
				live[k] = r
			case r.Stage == audit.StagePoststop || r.Stage == audit.StageExit:
				for k := range live {
					if k.id == r.ContainerID && (r.PID == 0 || r.PID == k.pid) {
						delete(live, k)
					}
				}
			}
		}
	}
	var out []discover.Container
	for _, r := range live {
		st := State{ID: r.ContainerID, PID: r.PID, StartTime: r.StartTime}
		if r.StartTime == 0 || !st.Alive(0) {
			continue
		}
		out = append(out, discover.Container{ID: r.ContainerID, Engine: EngineAuditLog, Namespace: r.Namespace, PID: r.PID, Name: PodName(r.Annotations)})
	}
	return Merge(out), nil
}

type auditKey struct {
	id  string
	pid int
}

// auditStart is what the source reads of a record.
type auditStart struct {
	ContainerID string            `json:"container_id"`
	Stage       string            `json:"stage"`
	Namespace   string            `json:"namespace"`
	Annotations map[string]string `json:"annotations"`
	PID         int               `json:"pid"`
	StartTime   uint64            `json:"start_time"`
}

// parseAuditLine decodes the fields the source needs from one audit log
// line; ok is false for lines that are not records with a container ID,
// a stage and a sane PID.
func parseAuditLine(line []byte) (auditStart, bool) {
	var r auditStart
	if len(line) > audit.MaxLine || json.Unmarshal(line, &r) != nil {
		return auditStart{}, false
	}
	if r.ContainerID == "" || r.Stage == "" || r.PID < 0 || r.PID > maxPID || !validID.MatchString(r.ContainerID) {
		return auditStart{}, false
	}
	return r, true
}

// readTail returns at most limit bytes from the end of file, starting at a
// line boundary; the file must be a regular file (no symlink, FIFO...).
func readTail(file string, limit int64) ([]byte, error) {
	f, st, err := openRegular(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	off := max(st.Size-limit, 0)
	data, err := io.ReadAll(io.NewSectionReader(f, off, st.Size-off))
	if err != nil {
		return nil, err
	}
	if off > 0 {
		// Drop the partial first line.
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		} else {
			data = nil
		}
	}
	return data, nil
}
