package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	eventsapi "github.com/containerd/containerd/api/events"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/typeurl/v2"
	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
)

// StageEventsGap is the stage of the record [Recorder] writes when it got
// its event stream back after losing it: the record's Error says from when
// to when events were missed.
const StageEventsGap = "events-gap"

// Event filters of the recorder. Filter values must be quoted, or
// containerd matches nothing.
var recorderFilters = []string{`topic=="/tasks/start"`, `topic=="/tasks/exit"`}

// maxSpec bounds the container spec read for annotations.
const maxSpec = 4 << 20

// Recorder appends an audit record for every container start (and the
// matching exit) that containerd reports, in every containerd namespace,
// to the nsrel-hook audit chain with source
// [audit.SourceContainerdEvents]; containers started with ctr, by Docker
// (namespace "moby") or by any client without nsrel-hook are audited
// too. A start that nsrel-hook (or the recorder itself) already recorded
// for the same process (PID and start time) is not recorded again; an
// exit is recorded only for starts the recorder recorded (the hook's
// poststop covers the others).
//
// When the event stream breaks (containerd restarts), the recorder
// reconnects with backoff and appends a [StageEventsGap] record naming
// the gap; after every (re)connection it walks the running tasks and
// records those it has no start for, so starts during the gap are
// recorded late rather than lost. Records carry the policy block and
// verdict of the hook config, but the recorder runs after the start and
// cannot refuse a container: enforcing needs nsrel-hook at createRuntime.
type Recorder struct {
	// Address is the containerd socket (see [Address]).
	Address string
	// Config is the nsrel-hook configuration: policy, annotations to
	// record and the audit log path.
	Config *policy.Config
	// Log is the audit log to append to (usually Config.AuditLog).
	Log *audit.Log
	// Logger receives diagnostics; nil discards them.
	Logger logrus.FieldLogger
	// Inspect reads a process's ancestry; nil means [inspect.Process].
	Inspect func(pid int) (*inspect.Ancestry, error)
	// MinBackoff and MaxBackoff bound the reconnection delay (defaults
	// 100 ms and 5 s).
	MinBackoff, MaxBackoff time.Duration
	// Connected, if set, is called after each successful subscription and
	// catch-up walk (tests use it to synchronize).
	Connected func()
}

// Run records until ctx is done; it returns ctx's error. Connection
// failures are logged and retried, never returned.
func (r *Recorder) Run(ctx context.Context) error {
	minB, maxB := r.MinBackoff, r.MaxBackoff
	if minB <= 0 {
		minB = 100 * time.Millisecond
	}
	if maxB < minB {
		maxB = max(5*time.Second, minB)
	}
	backoff := minB
	var lostAt time.Time
	var lostErr error
	for {
		err := r.session(ctx, &lostAt, &lostErr)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			r.logger().WithError(err).WithField("retry_in", backoff).Warn("containerd event stream unavailable")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxB)
		if err == nil {
			backoff = minB
		}
	}
}

// session connects, records a pending gap, catches up with the running
// tasks and handles events until the stream breaks. It returns nil when a
// connected stream broke (reconnect at once) and an error when it could
// not connect.
func (r *Recorder) session(ctx context.Context, lostAt *time.Time, lostErr *error) error {
	addr := Address(r.Address)
	c, err := client.New(addr, client.WithTimeout(5*time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ok, err := c.IsServing(pctx)
	cancel()
	if err != nil || !ok {
		return fmt.Errorf("containerd at %s not serving: %w", addr, err)
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	envs, errs := c.Subscribe(sctx, recorderFilters...)
	log := r.logger().WithField("address", addr)
	if !lostAt.IsZero() {
		gap := &audit.Record{
			Source:  audit.SourceContainerdEvents,
			Stage:   StageEventsGap,
			Version: hook.Version,
			Error: fmt.Sprintf("containerd event stream at %s lost from %s to %s (%v); starts in between are recorded from the task list",
				addr, lostAt.UTC().Format(time.RFC3339Nano), time.Now().UTC().Format(time.RFC3339Nano), *lostErr),
		}
		if err := r.Log.Append(ctx, gap); err != nil {
			log.WithError(err).Error("cannot record the event gap")
		} else {
			*lostAt = time.Time{}
		}
	}
	if err := r.catchUp(ctx, c); err != nil {
		log.WithError(err).Warn("catching up with running tasks")
	}
	log.Info("subscribed to containerd task events")
	if r.Connected != nil {
		r.Connected()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case env, ok := <-envs:
			if !ok {
				envs = nil
				continue
			}
			r.handle(ctx, c, env)
		case err := <-errs:
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = io.EOF
			}
			if lostAt.IsZero() {
				*lostAt, *lostErr = time.Now(), err
			}
			log.WithError(err).Warn("containerd event stream lost; reconnecting")
			return nil
		}
	}
}

// catchUp records every running task that has no start record yet.
func (r *Recorder) catchUp(ctx context.Context, c *client.Client) error {
	nss, err := c.NamespaceService().List(ctx)
	if err != nil {
		return err
	}
	slices.Sort(nss)
	var errs []error
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		resp, err := c.TaskService().List(nctx, &tasksapi.ListTasksRequest{})
		if err != nil {
			errs = append(errs, fmt.Errorf("namespace %q: %w", ns, err))
			continue
		}
		for _, t := range resp.Tasks {
			if t.Pid > 0 && t.Status == task.Status_RUNNING {
				r.recordStart(ctx, c, ns, t.ID, int(t.Pid))
			}
		}
	}
	return errors.Join(errs...)
}

func (r *Recorder) handle(ctx context.Context, c *client.Client, env *events.Envelope) {
	if env == nil || env.Event == nil {
		return
	}
	ev, err := typeurl.UnmarshalAny(env.Event)
	if err != nil {
		r.logger().WithError(err).WithField("topic", env.Topic).Warn("undecodable event")
		return
	}
	switch e := ev.(type) {
	case *eventsapi.TaskStart:
		r.recordStart(ctx, c, env.Namespace, e.ContainerID, int(e.Pid))
	case *eventsapi.TaskExit:
		// Exec'd processes exit too; only the init process ends the container.
		if e.ID == e.ContainerID {
			r.recordExit(ctx, env.Namespace, e.ContainerID, int(e.Pid))
		}
	}
}

// meta returns the container's labels merged with its spec's
// annotations (annotations win), for policy selection and recording.
func meta(ctx context.Context, c *client.Client, id string) map[string]string {
	info, err := c.ContainerService().Get(ctx, id)
	if err != nil {
		return nil
	}
	m := make(map[string]string, len(info.Labels))
	for k, v := range info.Labels {
		m[k] = v
	}
	if info.Spec != nil {
		for k, v := range specAnnotations(info.Spec.GetValue()) {
			m[k] = v
		}
	}
	return m
}

func (r *Recorder) recordStart(ctx context.Context, c *client.Client, ns, id string, pid int) {
	log := r.logger().WithFields(logrus.Fields{"namespace": ns, "container": id, "pid": pid})
	if id == "" || pid <= 0 {
		log.Warn("start event without container or pid")
		return
	}
	md := meta(namespaces.WithNamespace(ctx, ns), c, id)
	got, _, err := appendStart(ctx, startInfo{r.Config, r.Log, r.Inspect, audit.SourceContainerdEvents, ns, id, pid, md})
	switch {
	case err != nil:
		log.WithError(err).Error("audit log append failed")
	case got == nil:
		log.Debug("start already recorded")
	default:
		log.WithFields(logrus.Fields{"seq": got.Seq, "verdict": got.Verdict}).Info("recorded start")
	}
}

// startInfo is what [appendStart] needs to record a container start.
type startInfo struct {
	config  *policy.Config
	log     *audit.Log
	inspect func(pid int) (*inspect.Ancestry, error)
	source  string
	ns, id  string
	pid     int
	// meta are the container's labels and annotations, for policy
	// selection and the annotations to record.
	meta map[string]string
}

// appendStart inspects the process, evaluates the policy block the
// container selects and, under the log's lock, appends a start record
// unless the log already has one for the same process (PID and start
// time, any source). It returns the record appended (nil if the start was
// recorded already) and the record built either way.
func appendStart(ctx context.Context, si startInfo) (appended, rec *audit.Record, err error) {
	inspectFn := si.inspect
	if inspectFn == nil {
		inspectFn = inspect.Process
	}
	anc, ierr := inspectFn(si.pid)
	var startTime uint64
	if ierr == nil && anc != nil {
		startTime = anc.StartTime
	}
	b := si.config.Select(si.id, si.meta)
	rec = &audit.Record{
		Source:      si.source,
		Stage:       audit.StageStart,
		ContainerID: si.id,
		Namespace:   si.ns,
		Annotations: pick(si.meta, si.config.RecordAnnotations),
		Ancestry:    anc,
		Policy:      b.Name,
		Mode:        b.Mode,
		Verdict:     audit.VerdictAllow,
		Version:     hook.Version,
	}
	if ierr != nil {
		rec.Error = ierr.Error()
		rec.Ancestry = nil
		if si.config.OnError == policy.OnErrorDeny {
			rec.Verdict = audit.VerdictDeny
		}
	} else {
		rec.Violations = b.Evaluate(anc)
		if b.Mode == policy.ModeEnforce && len(rec.Violations) > 0 {
			rec.Verdict = audit.VerdictDeny
		}
	}
	appended, err = si.log.AppendWith(ctx, func(s *audit.Searcher) (*audit.Record, error) {
		prev, err := s.Last(si.id, audit.StartMatcher(si.pid, startTime))
		if err != nil {
			return nil, err
		}
		if prev != nil {
			return nil, nil // nsrel-hook (or we) recorded this start already
		}
		return rec, nil
	})
	return appended, rec, err
}

func (r *Recorder) recordExit(ctx context.Context, ns, id string, pid int) {
	log := r.logger().WithFields(logrus.Fields{"namespace": ns, "container": id, "pid": pid})
	got, err := r.Log.AppendWith(ctx, func(s *audit.Searcher) (*audit.Record, error) {
		start, err := s.Last(id, func(rec *audit.Record) bool {
			return audit.IsStart(rec.Stage) && rec.Ancestry != nil && rec.PID == pid && rec.Namespace == ns
		})
		if err != nil || start == nil || start.Source != audit.SourceContainerdEvents {
			return nil, err
		}
		return &audit.Record{
			Source:      audit.SourceContainerdEvents,
			Stage:       audit.StageExit,
			ContainerID: id,
			Namespace:   ns,
			Annotations: start.Annotations,
			Policy:      start.Policy,
			Mode:        start.Mode,
			Ref:         &audit.Ref{Seq: start.Seq, Stage: start.Stage, Hash: start.Hash},
			Version:     hook.Version,
		}, nil
	})
	switch {
	case err != nil:
		log.WithError(err).Error("audit log append failed")
	case got != nil:
		log.WithField("seq", got.Seq).Info("recorded exit")
	}
}

// pick returns the entries of m whose keys are listed, values cut at 1 KiB.
func pick(m map[string]string, keys []string) map[string]string {
	var out map[string]string
	for _, k := range keys {
		if v, ok := m[k]; ok {
			if out == nil {
				out = make(map[string]string)
			}
			if len(v) > 1024 {
				v = v[:1024]
			}
			out[k] = v
		}
	}
	return out
}

func (r *Recorder) logger() logrus.FieldLogger { return orDiscard(r.Logger) }

// orDiscard returns l, or a logger that discards everything when l is nil.
func orDiscard(l logrus.FieldLogger) logrus.FieldLogger {
	if l != nil {
		return l
	}
	d := logrus.New()
	d.Out = io.Discard
	return d
}
