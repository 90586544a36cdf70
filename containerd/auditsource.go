package containerd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"

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
	// Newest record first: for each container the newest start or stop
	// record decides whether it may still run. Lines are only decoded in
	// full for those deciding starts (and older starts of the same
	// process, for annotations the newest lacks); the rest are skipped on
	// two fields found by substring search.
	decided := map[string]bool{}
	live := map[string]auditStart{}
	var starts []int
	for _, data := range chunks {
		// Line starts, found forwards (vectorized), walked backwards.
		starts = starts[:0]
		for off := 0; off < len(data); {
			starts = append(starts, off)
			i := bytes.IndexByte(data[off:], '\n')
			if i < 0 {
				break
			}
			off += i + 1
		}
		for k := len(starts) - 1; k >= 0; k-- {
			end := len(data)
			if k+1 < len(starts) {
				end = starts[k+1]
			}
			line := data[starts[k]:end]
			stage, id, ok := auditFields(line)
			if !ok {
				continue
			}
			isStart, isStop := audit.IsStart(stage), stage == audit.StagePoststop || stage == audit.StageExit
			if !isStart && !isStop {
				continue
			}
			if !decided[id] {
				decided[id] = true
				if isStart {
					if r, ok := parseAuditLine(line); ok && r.PID > 0 && r.ContainerID == id {
						live[id] = r
					}
				}
				continue
			}
			if cur, ok := live[id]; ok && isStart && (cur.Annotations == nil || cur.Namespace == "") {
				if r, ok := parseAuditLine(line); ok && r.PID == cur.PID && r.StartTime == cur.StartTime {
					if cur.Annotations == nil {
						cur.Annotations = r.Annotations
					}
					if cur.Namespace == "" {
						cur.Namespace = r.Namespace
					}
					live[id] = cur
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

// auditFields returns the stage and container ID of a record line by
// substring search. Audit records are written in canonical order with
// "stage" and "container_id" before any annotation, and quotes inside
// JSON strings are escaped, so the first occurrences are the record's own.
func auditFields(line []byte) (stage, id string, ok bool) {
	stage, ok = jsonStringField(line, `"stage":"`)
	if !ok {
		return "", "", false
	}
	id, ok = jsonStringField(line, `"container_id":"`)
	return stage, id, ok && id != ""
}

func jsonStringField(line []byte, key string) (string, bool) {
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return "", false
	}
	v := line[i+len(key):]
	j := bytes.IndexByte(v, '"')
	if j < 0 || bytes.IndexByte(v[:j], '\\') >= 0 {
		return "", false // escapes never occur in valid stages and IDs
	}
	return string(v[:j]), true
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

// readTail returns at most limit bytes from the end of file, starting at
// a line boundary, read with one allocation; the file must be a regular
// file (no symlink, FIFO...).
func readTail(file string, limit int64) ([]byte, error) {
	f, st, err := openRegular(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	off := max(st.Size-limit, 0)
	data := make([]byte, st.Size-off)
	n, err := f.ReadAt(data, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	data = data[:n] // the file may have shrunk (a torn tail cut off)
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
