package recorder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	eventsapi "github.com/containerd/containerd/api/events"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/nsrel/nsrel/containerd"
	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/logging"
	"github.com/nsrel/nsrel/internal/vocab"
)

// StageEventsGap is the stage of the record [Recorder] writes when it got
// its event stream back after losing it: the record's Error says from when
// to when events were missed.
const StageEventsGap = "events-gap"

// Stages of the records [Recorder.Run] writes when it starts and when it
// stops: together they show when containers were not watched (a start
// record not preceded by a stop record follows a crash).
const (
	StageRecorderStart = "recorder-start"
	StageRecorderStop  = "recorder-stop"
)

// Event filters of the recorder. Filter values must be quoted, or
// containerd matches nothing.
var recorderFilters = []string{`topic=="/tasks/start"`, `topic=="/tasks/exit"`, `topic=="/tasks/delete"`, `topic=="/containers/delete"`}

// rpcTimeout bounds each request the recorder makes, so that a daemon
// that stops answering does not hang it: a walk that fails so, with a
// health check unanswered too, leads to a reconnection and a gap record
// ([Recorder.stalled]).
const rpcTimeout = 10 * time.Second

// Recorder appends an audit record for every container start (and the
// matching exit) that containerd reports, in every containerd namespace,
// to the nsrel-hook audit chain with source
// [audit.SourceContainerdEvents]; containers started with ctr, by Docker
// (namespace "moby") or by any client without nsrel-hook are audited
// too. A start that nsrel-hook (or the recorder itself) already recorded
// for the same process (container ID, PID and start time) is not
// recorded again: the check and the append happen under the audit log's
// lock ([audit.Log.AppendWith]). An exit is recorded only for starts the
// recorder recorded (the hook's poststop covers the others).
//
// An event names a PID, not a process: after inspecting it, the recorder
// asks containerd whether the task still runs with that PID and checks
// that the process's start time did not change, so a PID reused after a
// quick exit is never attributed to the container (the record then has
// an error and no ancestry).
//
// When the event stream breaks (containerd restarts), or containerd
// stops answering (a walk fails and a 5 s health check gets no answer),
// the recorder reconnects with backoff and appends a [StageEventsGap]
// record naming the gap from its last contact; after every (re)connection, and every [Recorder.Resync] while
// connected, it walks the running tasks and records those it has no
// start for, so starts during the gap are recorded late rather than lost.
// Records that could not be appended (read-only or full disk) are kept
// (at most [MaxPending]) and retried with backoff; records dropped beyond
// that are named in a gap record, the exits among them written after it
// (at most [MaxPending] kept so; beyond that the log is searched for the
// recorder's open starts whose process is gone, as when it starts). Records carry the policy block and
// verdict of the hook config, but the recorder runs after the start and
// cannot refuse a container: enforcing needs nsrel-hook at createRuntime.
//
// Memory stays bounded over a long run: the recorder remembers only the
// running tasks it has seen recorded (rebuilt from the task list at each
// walk), at most [MaxPending] unwritten records and at most [MaxPending]
// starts given up (containerd did not answer for the task), kept until
// recorded: a task that ends first gets its start recorded without
// namespaces, saying why, and its exit (at most [MaxPending] such tasks
// are remembered until their exit event); a stop names those left in
// its gap record. A Recorder must not run twice at once.
type Recorder struct {
	// Address is the containerd socket (see [vocab.ContainerdAddress]).
	Address string
	// daemonMnt is the mount namespace of the process serving Address
	// (containerd's, its shims'), read at each connection; nil when
	// unknown.
	daemonMnt atomic.Pointer[mntNS]
	// Config is the nsrel-hook configuration: policy, annotations to
	// record and the audit log path.
	Config *policy.Config
	// Log is the audit log to append to (usually Config.AuditLog).
	Log *audit.Log
	// Logger receives diagnostics; nil discards them.
	Logger logrus.FieldLogger
	// StreamLost, if set, is called each time the containerd event
	// stream could not be had or was lost (for metrics).
	StreamLost func(error)
	// Inspect reads a process's ancestry; nil means
	// [inspect.ProcessWith] (see [hook.Input]).
	Inspect inspect.Func
	// MinBackoff and MaxBackoff bound the reconnection and append retry
	// delays (defaults 100 ms and 5 s).
	MinBackoff, MaxBackoff time.Duration
	// Resync is how often the recorder walks the running tasks while
	// connected (default [DefaultResync]).
	Resync time.Duration
	// Connected, if set, is called after each successful subscription and
	// catch-up walk (tests use it to synchronize).
	Connected func()

	// known maps running tasks whose start the log holds to their
	// process start time, so walks skip the log search for them. Each
	// walk rebuilds it from the task list.
	known map[taskKey]uint64
	// starts remembers the start record of each known task (and of a
	// task that ended, until the walk after its exit): its exit refers
	// to it when the log's search does not reach it (a container that
	// ran for longer than the search window's records: its exit was
	// not written).
	starts map[taskKey]startRef
	// pending are records whose append failed, oldest first.
	pending []pendingRecord
	// dropped counts pending records dropped since droppedSince.
	dropped      int
	droppedSince time.Time
	// droppedExits are the exits dropped from pending, oldest first, at
	// most [MaxPending] (not counted in dropped): appended before the
	// pending records, after the gap record if one is due, with the
	// time and note they were queued with.
	droppedExits []pendingRecord
	// failing is set when an append failed since the last walk, or a
	// start was given up, and after a walk while any is held (the first
	// [heldRetryWalks] with the same ones): the walks are then retried
	// with backoff, not at the next resync.
	failing bool
	// seeded is set once known holds the tasks the log says the
	// recorder saw start and not end ([Recorder.seedKnown]); cleared
	// when an exit dropped (beyond MaxPending) finds droppedExits full,
	// so that a walk looks again.
	seeded bool
	// reseed is set when seeded was cleared so.
	reseed bool
	// owner maps the seq of a start without namespaces the recorder
	// appended to its task, and the seq of one a previous recorder left
	// open ([Recorder.seedKnown]) to its container (PID 0), at most
	// ownersKept, the oldest ended let go first: the exit of another
	// task does not end it ([Recorder.appendExit]). ownerSeqs are its
	// seqs, oldest first.
	owner     map[uint64]owned
	ownerSeqs []uint64
	// forget are tasks whose queued start was dropped (beyond
	// MaxPending) during a walk, which rebuilds known, with the start
	// time of that start: it leaves them out when it finds them with
	// that start time, so that the next walk records them again (not a
	// later task of the container that got the PID, whose own start
	// was not dropped).
	forget map[taskKey]uint64
	// openRunning are the tasks whose start the log says the recorder
	// recorded, without exit, and whose process still ran when the
	// recorder started ([Recorder.seedKnown]), with their process start
	// time, until a walk makes them known or they end: an exit or delete
	// event, a /containers/delete of a task whose process is gone, or a
	// walk that finds the process gone and the container this daemon's
	// ([Recorder.endOpenRunning]). One whose container this daemon does
	// not have (another daemon's, whose recorder writes the same log) is
	// kept: only the seeded set, grown only by a search of the log again
	// after more than [MaxPending] exits were dropped (droppedExits).
	openRunning map[taskKey]uint64
	// earlierBoot are the open starts the log holds from an earlier
	// boot, in seq order (seeded; the walk that seeded them records
	// their exits). Not tasks the recorder knows: their PID and start
	// time, which count from boot, may be a process's of this boot, and
	// a task of this boot may have their key. Each exit ends a start of
	// its boot alone.
	earlierBoot []openSeed
	// earlierBootByID are the exits to record of the open starts the
	// log holds from an earlier boot recorded without namespaces (no
	// PID: no task's), seeded as earlierBoot is.
	earlierBootByID []*audit.Record
	// openByID are the containers (namespace and ID) of starts the log
	// says the recorder recorded without namespaces (no PID) and without
	// exit, when it started, until a walk makes a task of theirs known
	// or an exit or delete event of the init ends them
	// ([Recorder.openInitEnded]). A start recorded for a task of theirs
	// meanwhile refers to such a start when it may be the same task's
	// ([Recorder.appendStart]), so that the task's exit ends both.
	openByID map[nsID]bool
	// held are the starts given up (containerd did not answer for the
	// task, or the recorder stopped), at most [MaxPending]: kept until
	// the start is recorded (or found recorded), or the task is found
	// ended, its start then recorded without namespaces and its exit
	// after it ([Recorder.endHeld]). While any is held, the walks are
	// retried as for a failed append; a stop names them in its gap
	// record, which starts before the first ([heldStart.since]).
	held map[taskKey]heldStart
	// heldGen counts the changes to held; heldGenWalked is its value
	// at the last walk, and heldWalks the walks in a row since that
	// found the same starts held ([heldRetryWalks]).
	heldGen, heldGenWalked uint64
	heldWalks              int
	// walkAt is when the last walk began listing the tasks: when it
	// listed a start it gives up ([heldStart.at]).
	walkAt when
	// ended are the tasks whose start, given up, [Recorder.endHeld]
	// recorded with their exit, by process start time, at most
	// [MaxPending] (the oldest dropped): the task's start event, handled
	// late (queued behind the walk that ended it, or published late by
	// a slow shim), and a walk that lists the task before its shim
	// reaped its process, take it for recorded and ended, rather than
	// record its start, and then its exit, a second time. Cleared by
	// the task's exit or delete event (its shim's last), or a start
	// event or walk that names a new task of the container with the PID
	// ([Recorder.endedAlready]).
	ended map[taskKey]endedStart
	// endedN numbers the entries of ended, oldest first.
	endedN uint64
	// walked, set by tests, is called after each walk.
	walked func()
	// waiting, set by tests, is called with each wait before a
	// connection attempt.
	waiting func(time.Duration)
}

// DefaultResync is how often [Recorder] walks the running tasks while
// connected, to record starts whose event it missed.
const DefaultResync = 30 * time.Second

// MaxPending bounds the records [Recorder] keeps while the audit log
// cannot be written.
const MaxPending = 4096

// taskKey names a task's init process.
type taskKey struct {
	ns, id string
	pid    int
}

// endedStart is an entry of [Recorder.ended]: the process start time
// of the task whose start and exit [Recorder.endHeld] recorded, and
// the entry's number (the oldest is dropped first).
type endedStart struct {
	startTime, n uint64
	// event says the start was given up at its event: that event was
	// handled, and a later one names another task.
	event bool
	// at is when the entry was made: one older than [endedLifetime]
	// names no late event any more.
	at time.Time
}

// endedLifetime is how long an entry of [Recorder.ended] stands for a
// late start event or a walk of a task not reaped yet: both come within
// the shim's stall, and an older entry could only hide a new task of the
// container that got the PID after a wrap.
const endedLifetime = 10 * time.Minute

// nsID names a container.
type nsID struct{ ns, id string }

// pendingRecord is a record whose append failed: a start (deduplicated
// again when retried), an exit, or another record (a gap) appended as it
// is.
type pendingRecord struct {
	start     *audit.Record // with pid, startTime and byID (an exit's startTime too)
	pid       int
	startTime uint64
	byID      bool
	exit      *taskKey
	other     *audit.Record
	// boot is an exit's task's boot when it is an earlier one
	// ([Recorder.earlierBoot]).
	boot string
	// time and late are an exit's record time (when the recorder
	// learnt of it) and the note that says it was written late.
	time, late string
	// noStart marks an exit whose task's start was dropped before it
	// was written: it ends only a start of the task's own process
	// (strict: not the recorder's last start without namespaces of the
	// container, which may be another task's); the dropped start may
	// have been one in the log already (the NRI plugin's, whose end is
	// the recorder's exit).
	noStart bool
}

// Run records until ctx is done; it returns ctx's error, or one that
// counts the records lost when the log did not take them before the stop.
// Connection failures are logged and retried, never returned. It appends a
// [StageRecorderStart] record first and a [StageRecorderStop] record
// last, after a [StageEventsGap] record when the stream was lost until
// the stop, the stop discarded events or starts given up are still held
// (which the record names), and before it returns it tries
// once more (for 2 s) to append records still pending.
func (r *Recorder) Run(ctx context.Context) (err error) {
	r.mark(ctx, StageRecorderStart, "started")
	var lostAt time.Time
	var lostErr error
	defer func() {
		if serr := r.stopRecords(lostAt, lostErr); serr != nil {
			err = serr
		}
	}()
	minB, maxB := r.backoffs()
	var backoff time.Duration // the last wait; none yet
	said := ""                // the failure last warned about; its repeats are debug
	for {
		attempt := time.Now()
		err := r.session(ctx, &lostAt, &lostErr)
		lasted := time.Since(attempt) // the session's, not the wait's after it
		if err != nil && lostAt.IsZero() {
			// Not connected (at the start, or again after a loss):
			// since this attempt began, until a session records the
			// gap (or the stop does: an attempt the stop cut short
			// never watched either).
			lostAt, lostErr = attempt, err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Chosen before the wait: after a long session the wait is
		// minB, not the last outage's.
		backoff = nextBackoff(backoff, minB, maxB, err == nil, lasted)
		if r.waiting != nil {
			r.waiting(backoff)
		}
		if err != nil {
			r.streamLost(err)
			log := r.logger().WithError(err).WithField("retry_in", backoff)
			if err.Error() != said {
				log.Warn("containerd event stream unavailable; retrying until it is")
				said = err.Error()
			} else {
				log.Debug("containerd event stream still unavailable; retrying")
			}
		} else {
			said = ""
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// stopRecords writes what [Recorder.Run] writes when it stops: the exits
// of earlier boots' starts still waiting (before the stop record, or
// left for the next recorder, whose seed finds their starts again), the
// gap record of a stream lost (or never had) since lostAt, and the stop
// record, the records waiting first; it returns an error that counts
// the records the log did not take. ctx is done by then: these get a
// moment of their own.
func (r *Recorder) stopRecords(lostAt time.Time, lostErr error) error {
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if len(r.earlierBootByID) > 0 {
		r.retryPending(sctx)
		r.endEarlierByID(sctx)
		if n := len(r.earlierBootByID); n > 0 {
			r.logger().WithField("waiting", n).Warn("stopping with exits of an earlier boot's starts not written; the next recorder writes them (their starts are open in the log)")
		}
	}
	// Behind the records waiting, which flush writes first.
	if len(r.held) > 0 {
		// Starts given up and still held: named, however the
		// session ended (a stop, a stream lost or a daemon gone
		// before it), and covered from the contact before them.
		if since, ok := r.heldSince(); ok && (lostAt.IsZero() || since.Before(lostAt)) {
			lostAt = since
		}
		held := fmt.Errorf("%w: %s", errStopHeld, r.heldNames())
		if lostErr == nil {
			lostErr = held
		} else {
			lostErr = fmt.Errorf("%w; %w", lostErr, held)
		}
	}
	if !lostAt.IsZero() {
		r.gap(sctx, lostAt, lostErr, "the recorder stopped")
	}
	r.mark(sctx, StageRecorderStop, "stopped")
	if lost := r.flush(); lost > 0 {
		return fmt.Errorf("stopping with %d records the audit log did not take; they are lost", lost)
	}
	return nil
}

// nextBackoff is the wait after a session (connected or not, that
// lasted lasted) when the wait before it was cur (0: none): minB at
// first and after a session that connected and lasted longer than maxB,
// else cur doubled up to maxB. A stream that breaks right after each
// connection (a daemon or proxy that accepts and drops it) must not be
// retried every minB, each time with a gap record and a walk.
func nextBackoff(cur, minB, maxB time.Duration, connected bool, lasted time.Duration) time.Duration {
	if cur <= 0 || connected && lasted > maxB {
		return minB
	}
	return min(cur*2, maxB)
}

// gap appends the record of an event stream lost (or not had) from
// lostAt (why: err) until now, when what happened. The record's error
// is cut to 4096 bytes in err, so that what stays.
func (r *Recorder) gap(ctx context.Context, lostAt time.Time, err error, what string) {
	head := fmt.Sprintf("containerd event stream at %s not watched from %s to %s (",
		vocab.ContainerdAddress(r.Address), lostAt.UTC().Format(time.RFC3339Nano), time.Now().UTC().Format(time.RFC3339Nano))
	tail := "): " + what
	rec := &audit.Record{
		Source:  audit.SourceContainerdEvents,
		Stage:   StageEventsGap,
		Version: vocab.Version,
		Error:   vocab.Cut(head+vocab.Cut(fmt.Sprint(err), max(0, 4096-len(head)-len(tail)))+tail, 4096),
	}
	r.appendOwn(ctx, rec, "the event gap")
}

// appendOwn appends one of the recorder's own records (its start, stop,
// a gap), behind the records waiting if any, queued if the log refuses
// it.
func (r *Recorder) appendOwn(ctx context.Context, rec *audit.Record, what string) {
	if len(r.pending) > 0 {
		r.keep(pendingRecord{other: rec}, nil)
		return
	}
	if err := r.Log.Append(ctx, rec); err != nil {
		r.logger().WithError(err).WithField("stage", rec.Stage).Error("cannot record " + what + "; will retry")
		r.keep(pendingRecord{other: rec}, err)
	}
}

// probeSocket checks that a unix socket address (a path, or
// unix://PATH) accepts a connection within a second, from a process in
// this PID namespace; other addresses are left to the client.
func (r *Recorder) probeSocket(addr string) error {
	path, ok := strings.CutPrefix(addr, "unix://")
	if !ok && strings.Contains(addr, "://") {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no containerd socket at %s: %w", path, errors.Unwrap(err))
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return fmt.Errorf("containerd socket %s: %w", path, err)
	}
	defer conn.Close()
	// The PIDs its events name must be this namespace's.
	pid, err := containerd.CheckPeerConn(conn.(*net.UnixConn), path)
	if err != nil {
		return err
	}
	// Its mount namespace, its shims' (see shimChild).
	var st unix.Stat_t
	if unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/mnt", &st) == nil {
		r.daemonMnt.Store(&mntNS{st.Dev, st.Ino})
	} else {
		r.daemonMnt.Store(nil)
	}
	return nil
}

// mntNS names a mount namespace by its nsfs file.
type mntNS struct{ dev, ino uint64 }

// mark appends a record of the recorder's own start or stop (queued if
// the log refuses it).
func (r *Recorder) mark(ctx context.Context, stage, what string) {
	r.appendOwn(ctx, &audit.Record{Source: audit.SourceContainerdEvents, Stage: stage, Version: vocab.Version}, "the recorder's own "+what)
}

// flush tries once more, briefly, to append the pending records when
// the recorder stops, and says and returns how many are lost if that
// fails.
func (r *Recorder) flush() int {
	if r.unwritten() == 0 {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r.retryPending(ctx)
	n := r.unwritten()
	if n > 0 {
		r.logger().WithField("lost", n).Error("stopping with records the audit log did not take; they are lost")
	}
	return n
}

// unwritten counts the records the log did not take yet: pending, the
// exits dropped from them and kept apart, the others dropped (not the
// exits of an earlier boot's starts waiting, [Recorder.earlierBootByID]:
// the next recorder's seed finds their starts again).
func (r *Recorder) unwritten() int {
	return len(r.pending) + len(r.droppedExits) + r.dropped
}

func (r *Recorder) backoffs() (minB, maxB time.Duration) {
	minB, maxB = r.MinBackoff, r.MaxBackoff
	if minB <= 0 {
		minB = 100 * time.Millisecond
	}
	if maxB < minB {
		maxB = max(5*time.Second, minB)
	}
	return minB, maxB
}

// session connects, records a pending gap, catches up with the running
// tasks and handles events until the stream breaks. It returns nil when a
// connected stream broke (reconnect at once) and an error when it could
// not connect.
func (r *Recorder) session(ctx context.Context, lostAt *time.Time, lostErr *error) error {
	addr := vocab.ContainerdAddress(r.Address)
	// A missing socket or nobody listening is said at once, not after
	// the client's dial timeout.
	if err := r.probeSocket(addr); err != nil {
		return err
	}
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
	// contact is the last moment before which every event is handled or
	// covered by a walk: the subscription, then the start of each walk
	// that succeeded (it lists the tasks then) and the publication of
	// each event handled. A session that ends discards the events
	// received and not handled, all published after it: the gap starts
	// there, not when the failure was seen. A start given up and still
	// held ([Recorder.held]) does not hold contact back (each later gap
	// would start there, session after session, while its task runs
	// on): it is recorded when its task is listed or ends, and the
	// stop's gap, which names it, starts before it (Run).
	var contact time.Time
	advance := func(t time.Time) {
		if t.After(contact) {
			contact = t
		}
	}
	advance(time.Now())
	envs, errs := c.Subscribe(sctx, recorderFilters...)
	log := r.logger().WithField("address", addr)
	if !lostAt.IsZero() {
		why := *lostErr
		if len(r.held) > 0 {
			// Not in the gap, maybe (given up before it), but not
			// recorded either.
			why = fmt.Errorf("%w; %w: %s", why, errHeldKept, r.heldNames())
		}
		r.gap(ctx, *lostAt, why, "it came back; starts in between are recorded from the task list")
		*lostAt = time.Time{}
	}
	// walked walks the running tasks (warning: what a failure is said
	// as), moves contact to the walk's start when it succeeded (not one
	// the stop cut short), and reports whether containerd stopped
	// answering.
	walked := func(warning string) bool {
		began := time.Now()
		err := r.walk(ctx, c)
		r.stampHeld(contact)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			log.WithError(err).Warn(warning)
		default:
			advance(began)
		}
		return r.stalled(ctx, c, err, contact, lostAt, lostErr)
	}
	// stopped ends the session at a stop. One that came while it walked
	// or handled an event (busy), or with an event received, or with a
	// start given up still held, discards events published since contact
	// (those received, queued behind, and the starts given up, which
	// containerd no longer answers for): they are the gap Run records
	// before its stop record (which names the starts held), rather than
	// a stretch the log says was watched. The next recorder's first walk
	// records the starts of tasks that still run, as after any stop.
	stopped := func(busy bool) error {
		if !busy {
			select {
			case env := <-envs:
				busy = env != nil
			default:
			}
		}
		if !lostAt.IsZero() {
			return nil
		}
		switch {
		case busy:
			*lostAt, *lostErr = contact, errStopBusy
		case len(r.held) > 0:
			*lostAt, *lostErr = contact, nil // Run names them
		}
		return nil
	}
	// The subscription is set up by the daemon asynchronously: a start
	// between this walk and that moment has no event, and the next walk
	// (Resync) records it.
	if walked("catching up with running tasks") {
		return nil
	}
	if ctx.Err() != nil {
		return stopped(true)
	}
	log.Info("subscribed to containerd task events")
	if r.Connected != nil {
		r.Connected()
	}
	minB, maxB := r.backoffs()
	resync := r.Resync
	if resync <= 0 {
		resync = DefaultResync
	}
	retry := minB
	next := func() time.Duration {
		if !r.failing && len(r.pending) == 0 {
			retry = minB
			return resync
		}
		d := retry
		retry = min(retry*2, maxB)
		return min(d, resync)
	}
	timer := time.NewTimer(next())
	defer timer.Stop()
	for {
		wasFailing := r.failing
		select {
		case <-ctx.Done():
			return stopped(false)
		case env, ok := <-envs:
			if ctx.Err() != nil {
				// Stopping (select picks at random among ready cases):
				// an event handled now would be judged without what
				// containerd no longer answers.
				return stopped(ok && env != nil)
			}
			if !ok {
				envs = nil
				continue
			}
			recorded := r.handle(ctx, c, env)
			// A start given up: the stop's gap starts before its event.
			r.stampHeld(contact)
			if recorded && env != nil {
				advance(env.Timestamp)
			}
			if ctx.Err() != nil {
				return stopped(true)
			}
		case err := <-errs:
			if ctx.Err() != nil {
				return stopped(false)
			}
			if err == nil {
				err = io.EOF
			}
			if lostAt.IsZero() {
				*lostAt, *lostErr = contact, err
			}
			log.WithError(err).Warn("containerd event stream lost; reconnecting")
			r.streamLost(err)
			return nil
		case <-timer.C:
			if walked("walking running tasks") {
				return nil
			}
			if ctx.Err() != nil {
				return stopped(true)
			}
			timer.Reset(next())
		}
		if r.failing && !wasFailing {
			timer.Reset(next()) // retry soon, not at the next resync
		}
	}
}

// stalled reports whether containerd stopped answering: a walk failed
// with walkErr, and containerd does not answer a health check within 5 s
// either. The event stream of a daemon that stopped (SIGSTOP, a hung
// daemon) does not break: the session is then ended as for a stream
// lost, from contact (lostAt and lostErr: the session's last contact,
// before the failed walk and before any event received and not handled,
// which the session's end discards), so that the recorder reconnects and
// writes the gap once the daemon answers again.
// A walk that failed for a namespace or the audit log, with containerd
// answering, is not a stall.
func (r *Recorder) stalled(ctx context.Context, c *client.Client, walkErr error, contact time.Time, lostAt *time.Time, lostErr *error) bool {
	if walkErr == nil || errors.Is(walkErr, errWalkPostponed) || ctx.Err() != nil {
		return false
	}
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ok, err := c.IsServing(hctx)
	cancel()
	if ctx.Err() != nil || err == nil && ok {
		return false
	}
	err = fmt.Errorf("containerd stopped answering: %w (health check: %v)", walkErr, err)
	if lostAt.IsZero() {
		*lostAt, *lostErr = contact, err
	}
	r.logger().WithError(err).Warn("containerd event stream given up; reconnecting")
	r.streamLost(err)
	return true
}

// errStopBusy is the cause a gap record gives when the recorder stopped
// while it handled an event or walked, or with an event received: the
// events published since the last contact were not all handled.
var errStopBusy = errors.New("events published since were not all handled at the stop (it came while the recorder handled an event or walked, or with an event received); the next recorder's first walk records the tasks that still run")

// errStopHeld is the cause a gap record gives when the recorder stopped
// with starts given up and not recorded ([Recorder.held]), which it
// names after it.
var errStopHeld = errors.New("starts given up (containerd did not answer for their tasks) were not recorded by the stop; the next recorder's first walk records the tasks that still run")

// errHeldKept is the cause a gap record gives, after the stream's, when
// starts given up and not recorded ([Recorder.held]) are still kept,
// which it names after it.
var errHeldKept = errors.New("starts given up (containerd did not answer for their tasks) are still kept, to be recorded when a walk lists their task or it ends")

// errWalkPostponed is the error of a walk left for later: the audit log
// is not writable.
var errWalkPostponed = errors.New("audit log not writable; walk postponed")

// walk retries pending records, then records every running task that has
// no start record yet, and rebuilds the set of known tasks. A start
// given up ([Recorder.held]) is tried again if its task is listed, and
// recorded without namespaces, with its exit, if its process is gone.
func (r *Recorder) walk(ctx context.Context, c *client.Client) (err error) {
	if r.walked != nil {
		defer r.walked()
	}
	r.failing = false
	defer func() {
		// Tried again soon, not at the next resync: the task may end
		// before then. Not for good: a start whose shim hangs while
		// its process runs on would have the walks run every
		// MaxBackoff for as long; after heldRetryWalks walks with the
		// same starts held, they are left to the resync. A walk
		// postponed (the log not writable) tried none of them: it does
		// not count, or a log unwritable for a few retries left them
		// to the resync before any was tried.
		if errors.Is(err, errWalkPostponed) {
			return
		}
		if len(r.held) == 0 || r.heldGen != r.heldGenWalked {
			r.heldGenWalked, r.heldWalks = r.heldGen, 0
		}
		if len(r.held) > 0 {
			r.heldWalks++
			if r.heldWalks <= heldRetryWalks {
				r.failing = true
			}
		}
	}()
	r.forget = nil // drops before this walk left r.known already
	r.retryPending(ctx)
	r.endEarlierByID(ctx)
	// A quiet node still ships its chain's head when a checkpoint is due.
	if err := r.Log.CheckpointIfDue(ctx); err != nil {
		r.logger().WithError(err).Warn("checkpoint")
	}
	// The log is searched for a previous recorder's open starts before
	// a walk is postponed, the log readable though it takes no records
	// (a full disk, a read-only one): the events handled meanwhile end
	// them (a start without namespaces, its init's events only). Not the
	// search again after exits were let go (reseed) while records wait:
	// the log lacks those. A log that cannot be read is searched at the
	// next walk.
	if !r.seeded && (!r.failing || !r.reseed) && r.seedKnown() {
		r.seeded, r.reseed = true, false
		r.endEarlierBoot(ctx)
	}
	if r.failing {
		// Starts found now would only queue behind the pending ones,
		// again at every retry.
		return errWalkPostponed
	}
	r.walkAt = whenOf(time.Now())
	lctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	nss, err := c.NamespaceService().List(lctx)
	cancel()
	if err != nil {
		return err
	}
	slices.Sort(nss)
	known := make(map[taskKey]uint64, len(r.known))
	var errs []error
	var running []taskKey
	listed := make(map[taskKey]bool)
	for _, ns := range nss {
		nctx, cancel := context.WithTimeout(namespaces.WithNamespace(ctx, ns), rpcTimeout)
		resp, err := c.TaskService().List(nctx, &tasksapi.ListTasksRequest{})
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("namespace %q: %w", ns, err))
			// Keep what we knew of this namespace.
			for k, v := range r.known {
				if k.ns == ns {
					known[k] = v
				}
			}
			continue
		}
		for _, t := range resp.Tasks {
			// A paused task still runs: taking it for ended would record
			// an exit now and lose the real one.
			if t.Pid == 0 || !containerd.TaskAlive(t.Status) {
				continue
			}
			k := taskKey{ns, t.ID, int(t.Pid)}
			running = append(running, k)
			listed[k] = true
		}
	}
	// A known task missing from the list ended while its exit and
	// delete events were missed (or their records failed): its exit
	// comes before the starts found now (a restart of the container
	// under the same ID among them).
	// (A namespace deleted since had all its containers, and tasks,
	// removed first.)
	// A task whose process still runs with the start time known is not
	// ended, though the list lacks it: containerd leaves out a task
	// whose shim did not answer in time (a loaded node, a stopped shim).
	// One listed whose PID is now another process's ([replaced]) ended:
	// the listed task is the container's next, which got its PID.
	for k, st := range r.known {
		if _, kept := known[k]; kept || listed[k] && !replaced(k.pid, st) {
			continue
		}
		if st, ok := r.stillKnown(k); ok {
			known[k] = st
			continue
		}
		r.recordExit(ctx, k, st, "")
	}
	r.endOpenRunning(ctx, c, listed)
	// A start given up whose task the list lacks, or lists with its PID
	// now another process's, and whose process no longer runs, ended
	// before it was recorded: recorded now, without namespaces, then
	// its exit. One whose process runs on is kept (its shim does not
	// answer); one listed is tried again below.
	for k, h := range r.held {
		if listed[k] && !replaced(k.pid, h.startTime) || inspect.Runs(k.pid, h.startTime) {
			continue
		}
		r.endHeld(ctx, c, k, "a walk found its process gone")
	}
	for _, k := range running {
		if r.endedAlready(k, when{}) {
			continue
		}
		st, now := r.knownNow(k, when{})
		if now == pidSame {
			r.unhold(k)
		}
		if now == pidSame || now == pidFree {
			known[k] = st
			continue
		}
		// A start given up after its event is tried again as one:
		// a process that started before the event and has the PID
		// now is the task's.
		var at when
		if h, ok := r.held[k]; ok && h.event {
			at = h.at
		}
		if st, ok := r.recordStart(ctx, c, k.ns, k.id, k.pid, at, nil); ok {
			r.unhold(k)
			known[k] = st
		}
	}
	for k, st := range r.forget {
		if cur, ok := known[k]; ok && cur == st {
			delete(known, k)
		}
	}
	r.forget = nil
	r.known = known
	for k := range r.starts {
		if _, ok := known[k]; !ok {
			delete(r.starts, k) // ended, its exit recorded or given up
		}
	}
	for k := range r.openRunning {
		if _, ok := known[k]; ok {
			delete(r.openRunning, k)
		}
	}
	for k := range known {
		delete(r.openByID, nsID{k.ns, k.id})
	}
	return errors.Join(errs...)
}

// endOpenRunning records the exit of the open starts ([Recorder.openRunning])
// that the walk did not list, or listed with their PID now another
// process's ([replaced]), and whose process is gone (exited, or a
// zombie its shim did not reap) when this daemon has their container:
// their exit event may be late (a stopped shim), or lost with the
// task's delete event. The log's search (under its lock) writes no
// second exit for the start if the event, or another recorder, wrote
// one. A container this daemon does not have keeps its entry: another
// daemon's task, whose recorder records the exit, or this daemon's
// deleted, whose /containers/delete event ends it.
func (r *Recorder) endOpenRunning(ctx context.Context, c *client.Client, listed map[taskKey]bool) {
	for k, st := range r.openRunning {
		if inspect.Runs(k.pid, st) || listed[k] && !replaced(k.pid, st) {
			continue
		}
		gctx, cancel := context.WithTimeout(namespaces.WithNamespace(ctx, k.ns), rpcTimeout)
		_, err := c.ContainerService().Get(gctx, k.id)
		cancel()
		// The client's error is native already (errgrpc.ToNative would
		// make it unknown: see meta).
		if errdefs.IsNotFound(err) {
			continue
		} else if err != nil {
			r.logger().WithError(err).WithFields(logrus.Fields{"namespace": k.ns, "container": k.id, "pid": k.pid}).Warn("cannot ask containerd about a container whose process ended; retrying at the next walk")
			continue
		}
		delete(r.openRunning, k)
		r.recordExit(ctx, k, st, "")
	}
}

// seedKnown adds to known the tasks whose start a recorder recorded and
// whose exit it did not, as far as a search of the log reaches (the
// current file and [audit.SearchFiles] rotated ones), and whose process
// no longer runs: at the first walk after the recorder starts, they get
// their exit recorded, as any known task a walk misses (they ended while
// no recorder ran). A process that still runs may be a task of another
// daemon whose recorder writes the same log (records do not say which
// daemon): it is left to the walks and events ([Recorder.openRunning]).
// A start recorded without namespaces has no PID to tell its task by: its
// container is kept ([Recorder.openByID]) for the events of its init.
// It returns false when the log's files cannot be listed.
func (r *Recorder) seedKnown() bool {
	files, err := r.Log.Files()
	if err != nil {
		r.logger().WithError(err).Warn("cannot read the audit log for the recorder's open starts; trying again at the next walk (exits of containers that end meanwhile, recorded by a previous recorder, may not be recorded)")
		return false
	}
	if n := audit.SearchFiles + 1; len(files) > n {
		files = files[len(files)-n:]
	}
	open := map[uint64]openSeed{} // by the start record's seq
	openIDs := map[uint64]nsID{}
	// byContainer are the starts without namespaces open (openIDs) or
	// recorded again by a later start: known as their container's, PID
	// unknown ([Recorder.owner]).
	byContainer := map[uint64]nsID{}
	// refers maps a start record that refers to another start record
	// (the NRI plugin's refusal after the recorder's start of the same
	// process) to it: a stop of the one ends the other too.
	refers := map[uint64]uint64{}
	earlierIDs := map[uint64]*audit.Record{} // earlier boots' starts without namespaces open
	for rec, err := range audit.Records(files...) {
		switch {
		case err != nil:
			// A file rotated away meanwhile: what was read stands.
		case rec.Source != audit.SourceContainerdEvents:
		case audit.IsStart(rec.Stage) && rec.Ancestry != nil:
			var boot string
			if !rec.OfThisBoot() {
				boot = rec.BootID
			}
			open[rec.Seq] = openSeed{taskKey{rec.Namespace, rec.ContainerID, rec.PID}, startRefOf(rec, rec.StartTime), boot}
		case audit.IsStart(rec.Stage):
			// Not an earlier boot's: its container is no task of this
			// boot's, whose events would end it.
			switch {
			case rec.ContainerID == "":
			case rec.OfThisBoot():
				openIDs[rec.Seq] = nsID{rec.Namespace, rec.ContainerID}
			default:
				earlierIDs[rec.Seq] = rec
			}
		case rec.Stage == audit.StageExit && rec.Ref != nil:
			// Seqs decrease along the chain: it ends.
			for s := rec.Ref.Seq; s != 0; s = refers[s] {
				delete(open, s)
				delete(openIDs, s)
				delete(earlierIDs, s)
			}
		}
		if err == nil && audit.IsStart(rec.Stage) && rec.Ref != nil && audit.IsStart(rec.Ref.Stage) && rec.Ref.Seq < rec.Seq {
			refers[rec.Seq] = rec.Ref.Seq
		}
		if err == nil && rec.Source == audit.SourceContainerdEvents && audit.IsStart(rec.Stage) && rec.Ref != nil {
			// The start without namespaces this one records again
			// ([Recorder.appendStart]): the exit that ends this one
			// ends both. Still its container's: not another task's
			// to end (TestLostExitNotOfReRecordedStart).
			if n, ok := openIDs[rec.Ref.Seq]; ok {
				byContainer[rec.Ref.Seq] = n
			}
			delete(openIDs, rec.Ref.Seq)
			delete(earlierIDs, rec.Ref.Seq) // its exit ends both (a review found two)
		}
	}
	for seq, n := range openIDs {
		if r.openByID == nil {
			r.openByID = map[nsID]bool{}
		}
		r.openByID[n] = true
		byContainer[seq] = n
	}
	// Not a start of its own, whose task it knows.
	for seq, n := range byContainer {
		if _, ok := r.owner[seq]; !ok {
			r.own(seq, taskKey{n.ns, n.id, 0})
		}
	}
	if r.known == nil {
		r.known = make(map[taskKey]uint64, len(open))
	}
	r.earlierBootByID = nil // a seed again finds them again
	for _, seq := range slices.Sorted(maps.Keys(earlierIDs)) {
		// Ended with its boot, as a start of an earlier boot with a
		// PID is (a review found it open for good).
		start := earlierIDs[seq]
		r.earlierBootByID = append(r.earlierBootByID, exitOf(start, taskKey{start.Namespace, start.ContainerID, 0},
			time.Now().UTC().Format(time.RFC3339Nano), endedWithBoot(start.BootID)))
	}
	for _, seq := range slices.Sorted(maps.Keys(open)) {
		o := open[seq]
		if o.boot != "" {
			r.earlierBoot = append(r.earlierBoot, o)
			continue
		}
		r.remember(o.k, o.ref) // the newest start of a key remembered last
		if _, ok := r.known[o.k]; ok {
			continue
		}
		if inspect.Runs(o.k.pid, o.ref.st) {
			// Still runs: the first walk makes it known if listed; an
			// exit event for it before then is recorded.
			if r.openRunning == nil {
				r.openRunning = map[taskKey]uint64{}
			}
			r.openRunning[o.k] = o.ref.st
			continue
		}
		r.known[o.k] = o.ref.st
	}
	return true
}

// openSeed is a start the log holds and no exit ended, of task k.
type openSeed struct {
	k   taskKey
	ref startRef // its st, the process's start time
	// boot is the boot the record names when it is another ("" for
	// this one): its process runs no more, whatever runs on its PID
	// now.
	boot string
}

// endEarlierBoot records the exits of the open starts of earlier boots
// seeded: their processes ended with their boot (a crash: no exit was
// recorded), whatever runs now with their PID and start time.
func (r *Recorder) endEarlierBoot(ctx context.Context) {
	for _, e := range r.earlierBoot {
		r.recordExit(ctx, e.k, e.ref.st, e.boot)
	}
	r.earlierBoot = nil
	r.endEarlierByID(ctx)
}

// endEarlierByID appends the exits of [Recorder.earlierBootByID], each
// unless another recorder writing the log (another daemon's) ended its
// start meanwhile, once the records queued before are written (not ahead
// of them: the recorder's start record first). Those the log does not
// take wait there for the next walk, saying they are written late (kept
// apart from the records queued, from which they would be dropped beyond
// [MaxPending]: their starts would stay open for good); a walk is not
// postponed for them (a search that fails, a rotated file refused, would
// postpone every walk for good).
func (r *Recorder) endEarlierByID(ctx context.Context) {
	for len(r.earlierBootByID) > 0 && len(r.pending) == 0 {
		rec := r.earlierBootByID[0]
		ref := rec.Ref
		_, err := audit.AppendAfterSearch(ctx, r.Log, func(s *audit.Searcher) (*audit.Record, error) {
			return s.Last(rec.ContainerID, func(x *audit.Record) bool {
				return x.Stage == audit.StageExit && x.Ref != nil && x.Ref.Seq == ref.Seq && x.Ref.Hash == ref.Hash
			})
		}, func(ended *audit.Record, err error) (*audit.Record, error) {
			if err != nil || ended != nil {
				return nil, err
			}
			return rec, nil
		})
		if err != nil {
			r.logger().WithError(err).WithFields(logrus.Fields{"container": rec.ContainerID, "waiting": len(r.earlierBootByID)}).Error("cannot record the exit of an earlier boot's start; retrying at the next walk")
			if !strings.Contains(rec.Error, "written late") {
				// Its time stays when it was found.
				rec.Error = vocab.JoinErrors(rec.Error, "written late: the audit log could not be written then ("+err.Error()+")")
			}
			return
		}
		r.earlierBootByID = slices.Delete(r.earlierBootByID, 0, 1)
	}
	if len(r.earlierBootByID) == 0 {
		r.earlierBootByID = nil
	}
}

// endedWithBoot says, in the exit of a start of boot, an earlier one,
// when its process ended: the record's time and boot are when and in
// which boot the recorder found it.
func endedWithBoot(boot string) string {
	return fmt.Sprintf("its process ended with boot %s, before this one (no exit was recorded then: a crash, or the recorder stopped before it); recorded when the recorder found it", vocab.Printable(boot))
}

// handle handles one event. It returns false for a start left to be
// tried again (containerd did not answer, the recorder stops), which the
// session's contact must not pass.
func (r *Recorder) handle(ctx context.Context, c *client.Client, env *events.Envelope) bool {
	if env == nil || env.Event == nil {
		return true
	}
	ev, err := typeurl.UnmarshalAny(env.Event)
	if err != nil {
		r.logger().WithError(err).WithField("topic", vocab.Printable(env.Topic)).Warn("undecodable event")
		return true
	}
	if l := r.logger(); logging.IsDebug(l) {
		l.WithFields(logrus.Fields{"topic": vocab.Printable(env.Topic), "namespace": vocab.Printable(env.Namespace), "event": vocab.Printable(fmt.Sprint(ev))}).Debug("event")
	}
	switch e := ev.(type) {
	case *eventsapi.TaskStart:
		k := taskKey{env.Namespace, e.ContainerID, int(e.Pid)}
		at := whenOf(env.Timestamp)
		_, now := r.knownNow(k, at)
		if now == pidSame || now == pidFree {
			// A walk recorded it before its event came (a start without
			// namespaces, which the log's search cannot tell, included);
			// its process may have ended since.
			break
		}
		if now == pidTakenAfter {
			// As above, and its PID is another process's since: the
			// task ended.
			r.endReplaced(ctx, c, k)
			break
		}
		if r.endedAlready(k, at) {
			// Recorded, and its exit, when its task was found ended
			// before this event was handled.
			break
		}
		// A task of the container known, or open, with this PID and
		// another process: an earlier task whose exit and delete events
		// were lost, its PID given to the new one. It ended first.
		r.endReplaced(ctx, c, k)
		st, ok := r.recordStart(ctx, c, env.Namespace, e.ContainerID, int(e.Pid), at, nil)
		if !ok {
			return false
		}
		r.unhold(k)
		if r.known == nil {
			r.known = make(map[taskKey]uint64)
		}
		r.known[k] = st
	case *eventsapi.TaskExit:
		// Exec'd processes exit too; only the init process ends the
		// container. An exec may be given the container's ID as its
		// own: its PID is not the init's, not a known task's.
		if e.ID == e.ContainerID {
			k := taskKey{env.Namespace, e.ContainerID, int(e.Pid)}
			delete(r.ended, k)
			r.taskEnded(ctx, c, k, protoTime(e.ExitedAt))
		}
	case *eventsapi.ContainerDelete:
		// Published by containerd itself, unlike the shim's task events:
		// the container's task, if the recorder knew it, is gone. Not a
		// task whose process still runs: the container created again
		// under the same ID, its new task found by a walk before this
		// event was handled.
		for k := range r.known {
			if k.ns != env.Namespace || k.id != e.ID {
				continue
			}
			if _, runs := r.stillKnown(k); !runs {
				r.taskGone(ctx, k)
			}
		}
		// So do starts given up, whose task it does not list: recorded
		// without namespaces, then their exit.
		for k, h := range r.held {
			if k.ns == env.Namespace && k.id == e.ID && !inspect.Runs(k.pid, h.startTime) {
				r.endHeld(ctx, c, k, "its container was deleted and its process is gone")
			}
		}
		// So do open starts of a previous recorder (their exit and delete
		// events lost, or late), but not a process that still runs (a task
		// of another daemon's container of the same name).
		for k, st := range r.openRunning {
			if k.ns == env.Namespace && k.id == e.ID && !inspect.Runs(k.pid, st) {
				delete(r.openRunning, k)
				r.recordExit(ctx, k, st, "")
			}
		}
		// Not a start recorded without namespaces (openByID): it names
		// no PID, and records do not say which daemon ran it, so the
		// delete of this daemon's container of the name cannot tell it
		// from a container of another daemon whose recorder writes the
		// same log, which may still run (TestOpenByIDOtherDaemonDelete).
	case *eventsapi.TaskDelete:
		// A shim deleted right after its task was killed may exit before
		// it published /tasks/exit (and /tasks/delete, which the shim
		// publishes too). Whichever comes second finds the exit recorded;
		// when both are lost, /containers/delete or the next walk
		// records it.
		if e.ID == "" || e.ID == e.ContainerID {
			k := taskKey{env.Namespace, e.ContainerID, int(e.Pid)}
			delete(r.ended, k)
			r.taskEnded(ctx, c, k, protoTime(e.ExitedAt))
		}
	}
	return true
}

// replaced reports whether the process of PID pid is not the one that
// started at startTime (0: not known), though a process has that PID:
// another took the PID. A PID without a process is left to the events
// and walks that follow (a task that just exited).
func replaced(pid int, startTime uint64) bool {
	now, err := inspect.StartTime(pid)
	return startTime != 0 && err == nil && now != startTime
}

// endReplaced records the exit of task k, known or open
// ([Recorder.openRunning]), or its start given up and its exit
// ([Recorder.endHeld]), when its PID is now another process's
// ([replaced]): a new task of the container that got the PID (its exit
// and delete events lost, or a restart while no recorder ran). It was
// taken for still running: its start stayed without exit, and the new
// task's start replaced it among the known.
func (r *Recorder) endReplaced(ctx context.Context, c *client.Client, k taskKey) {
	if st, ok := r.known[k]; ok && replaced(k.pid, st) {
		r.taskGone(ctx, k)
	}
	if h, ok := r.held[k]; ok && replaced(k.pid, h.startTime) {
		r.endHeld(ctx, c, k, "its PID is another process's now")
	}
	if st, ok := r.openRunning[k]; ok && replaced(k.pid, st) {
		delete(r.openRunning, k)
		r.recordExit(ctx, k, st, "")
	}
}

// taskEnded records the exit of task k, named by an exit or delete
// event, if the recorder knows it, or its start given up and its exit
// ([Recorder.endHeld]): a task it does not know has no start
// of its to refer to (every start it recorded or queued is known, and
// every task whose start it recorded before it started and did not see
// end is known, among openRunning, or its container among openByID).
// Searching the log for one (a task created and
// never started, an exec given the container's ID, the second of a
// task's exit and delete events) held the log's lock, and the hook's
// appends behind it, for as long as the search took; and a start
// recorded without namespaces, which names no PID, was taken for an
// exec's.
func (r *Recorder) taskEnded(ctx context.Context, c *client.Client, k taskKey, exited time.Time) {
	if _, ok := r.held[k]; ok {
		r.endHeld(ctx, c, k, "containerd published its exit or delete")
		return
	}
	if st, ok := r.openRunning[k]; ok {
		delete(r.openRunning, k)
		if _, known := r.known[k]; !known {
			if r.known == nil {
				r.known = make(map[taskKey]uint64)
			}
			r.known[k] = st
		}
	}
	if _, ok := r.known[k]; !ok && r.openInitEnded(ctx, c, k, exited) {
		delete(r.openByID, nsID{k.ns, k.id})
		r.recordExit(ctx, k, 0, "")
		return
	}
	if _, ok := r.known[k]; !ok {
		r.logger().WithFields(logrus.Fields{"namespace": k.ns, "container": k.id, "pid": k.pid}).Debug("end of a task the recorder did not record (or recorded ended already)")
		return
	}
	r.taskGone(ctx, k)
}

// openInitEnded reports whether an exit or delete event of process k,
// which exited at exited, ends a start a previous recorder recorded
// without namespaces ([Recorder.openByID]): containerd no longer has the
// task, or runs it stopped or with k's PID (its init's), or runs a new
// task of the container, whose process started after k exited (the
// container started again before this event was handled:
// TestOpenByIDRestartedTask). A task whose process started before k
// exited runs on: k was an exec given the container's ID. When
// containerd does not answer, the entry is kept for the container's
// next event.
func (r *Recorder) openInitEnded(ctx context.Context, c *client.Client, k taskKey, exited time.Time) bool {
	if !r.openByID[nsID{k.ns, k.id}] {
		return false
	}
	gctx, cancel := context.WithTimeout(namespaces.WithNamespace(ctx, k.ns), rpcTimeout)
	resp, err := c.TaskService().Get(gctx, &tasksapi.GetRequest{ContainerID: k.id})
	cancel()
	if err = errgrpc.ToNative(err); errdefs.IsNotFound(err) {
		return true
	} else if err != nil {
		r.logger().WithError(err).WithFields(logrus.Fields{"namespace": k.ns, "container": k.id, "pid": k.pid}).Warn("cannot ask containerd whether the task of a start recorded without namespaces ended; left to its next event")
		return false
	}
	p := resp.GetProcess()
	if int(p.GetPid()) == k.pid || !containerd.TaskAlive(p.GetStatus()) {
		return true
	}
	st, err := inspect.StartTime(int(p.GetPid()))
	return err == nil && !exited.IsZero() && !startedBefore(st, whenOf(exited))
}

// pidState is what has the PID of a task the recorder knows, now
// ([Recorder.knownNow]).
type pidState int

const (
	pidOther      pidState = iota // not known, or none of the below
	pidSame                       // the task's process
	pidFree                       // no process (the task's start time known)
	pidTakenAfter                 // another process, which surely started after the event (the task's start time known)
)

// knownNow returns the start time of task k, which the recorder knows
// it recorded the start of, and what has its PID now, read once: the
// task's process (a walk recorded it before its event came); no process
// (pidFree: it ended, reaped, though containerd still lists it running
// or its start event comes late: its exit event, or the next walk that
// does not list it, ends it); or, for a start event published at at, a
// process that surely started after the event (pidTakenAfter: not the
// event's process; the task ended). Recorded again in the last two
// cases, the task got a second start: queued while the log took no
// records, with the start time that one read (0: the process gone),
// which replaced the known one, so that its exit, made strict when that
// queued start was dropped ([Recorder.keep]), matched no start and was
// lost; or written without namespaces, with the other process's start
// time, which then stood for the task's (its exit event wrote a second
// exit).
func (r *Recorder) knownNow(k taskKey, at when) (uint64, pidState) {
	st, ok := r.known[k]
	if !ok {
		return 0, pidOther
	}
	now, err := inspect.StartTime(k.pid)
	switch {
	case err == nil && now == st:
		return st, pidSame
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH):
		// Its start time unknown too (0): a walk that found the
		// process gone when it inspected it recorded its start
		// without one. Recorded again, the task had two starts, and
		// its exit ended one.
		return st, pidFree
	case st == 0:
	case err == nil && inspect.StartedAfter(now, at.boot):
		return st, pidTakenAfter
	}
	return st, pidOther
}

// stillKnown returns the start time of task k when the recorder knows
// it recorded its start and its process still runs with that start time
// (not a PID reused since, not a zombie a hung shim did not reap).
func (r *Recorder) stillKnown(k taskKey) (uint64, bool) {
	st, ok := r.known[k]
	if !ok {
		return 0, false
	}
	return st, inspect.Runs(k.pid, st)
}

// heldStart is a start the recorder gave up ([Recorder.held]).
type heldStart struct {
	// at is when containerd published the start, or when the walk that
	// gave it up began listing the tasks (event false; [Recorder.walkAt]).
	at    when
	event bool
	// startTime is the process's start time read when it was given up
	// (0: gone by then), which tells the task's end from a task whose
	// shim does not answer.
	startTime uint64
	// err is why: containerd did not answer for the task (or the
	// recorder stopped).
	err error
	// since is the session's last contact before the start was given
	// up: the stop's gap record, which names the start, starts there
	// if it is still held.
	since time.Time
	// note is set when it is recorded without namespaces: why then.
	note string
	// md and merr are the container's annotations ([meta]), and the
	// failure to read them, when it was given up (metaRead), which its
	// record is judged by ([meta]).
	md       map[string]string
	merr     error
	metaRead bool
}

// notInspected is the inspection error a start given up is recorded
// with when it is recorded without namespaces.
func (h *heldStart) notInspected() error {
	what := "the walk that listed it at " + h.at.wall.UTC().Format(time.RFC3339Nano)
	if h.event {
		what = "its start event, published at " + h.at.wall.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Errorf("not inspected: containerd did not answer for the task when the recorder handled %s (%v), and %s", what, h.err, h.note)
}

// hold keeps task k's start, given up (h: why, err; at, as for
// [Recorder.recordStart]; the process start time read before
// containerd was asked, else read now; the container's metadata if
// read), among
// [Recorder.held], unless it is there already (the first time given up
// stands), and has the walks retried soon. It returns false when
// [MaxPending] starts are held already.
func (r *Recorder) hold(k taskKey, h heldStart) bool {
	if _, ok := r.held[k]; ok {
		return true
	}
	if len(r.held) >= MaxPending {
		return false
	}
	r.failing = true
	r.heldGen++
	h.event = !h.at.IsZero()
	if !h.event {
		h.at = r.walkAt
		if h.at.IsZero() {
			h.at = whenOf(time.Now())
		}
	}
	if h.startTime == 0 {
		if st, err := inspect.StartTime(k.pid); err == nil {
			h.startTime = st
		}
	}
	if r.held == nil {
		r.held = map[taskKey]heldStart{}
	}
	r.held[k] = h
	return true
}

// unhold drops task k's start from [Recorder.held].
func (r *Recorder) unhold(k taskKey) {
	if _, ok := r.held[k]; ok {
		delete(r.held, k)
		r.heldGen++
	}
}

// heldRetryWalks is how many walks in a row with the same starts held
// ([Recorder.held]) are retried with backoff; later ones come at the
// resync.
const heldRetryWalks = 5

// endHeld records the start of task k, given up ([Recorder.held]), and
// its exit, the task having ended (why: how that was learnt) before the
// start could be recorded: without namespaces, saying why
// ([heldStart.notInspected]), so that the log does not lack a container
// that ran. An entry the stop cuts short is kept (the stop's gap record
// names it).
func (r *Recorder) endHeld(ctx context.Context, c *client.Client, k taskKey, why string) {
	h, ok := r.held[k]
	if !ok {
		return
	}
	h.note = "the task ended (" + why + ") before its start could be recorded"
	r.logger().WithFields(logrus.Fields{"namespace": k.ns, "container": k.id, "pid": k.pid}).Warn("task ended before its start, given up, was recorded; recording it without namespaces, and its exit")
	st, recorded := r.recordStart(ctx, c, k.ns, k.id, k.pid, when{}, &h)
	if !recorded {
		return
	}
	r.unhold(k)
	r.recordExit(ctx, k, st, "")
	r.markEnded(k, st, h.event)
}

// markEnded adds task k, whose process started at startTime and whose
// start was given up at its event (event) or by a walk, to
// [Recorder.ended], dropping the oldest entry beyond [MaxPending].
func (r *Recorder) markEnded(k taskKey, startTime uint64, event bool) {
	if r.ended == nil {
		r.ended = map[taskKey]endedStart{}
	}
	if _, ok := r.ended[k]; !ok && len(r.ended) >= MaxPending {
		oldest, n := taskKey{}, uint64(0)
		for o, e := range r.ended {
			if n == 0 || e.n < n {
				oldest, n = o, e.n
			}
		}
		delete(r.ended, oldest)
	}
	r.endedN++
	r.ended[k] = endedStart{startTime: startTime, n: r.endedN, event: event, at: time.Now()}
}

// endedAlready reports whether task k, named by a start event published
// at at (zero: listed by a walk), is one whose start and exit
// [Recorder.endHeld] recorded ([Recorder.ended]). A walk: its PID's
// process is the one that started then (a zombie its shim has not
// reaped), or it has none. An event: the start was given up by a walk
// (its event handled late), and the PID has no process, or the one
// that started then, or one that did not start before the event (a PID
// reused since: the task's process held it from before the event until
// it exited). Anything else names a new task of the container that got
// the PID, and the entry goes: a start event after one that was handled
// (the start given up at its event), a walk that lists the PID with
// another process or with an entry of no start time (one of a start
// time it could not read: a new task is recorded rather than risked
// unrecorded), and an entry older than [endedLifetime].
func (r *Recorder) endedAlready(k taskKey, at when) bool {
	e, ok := r.ended[k]
	if !ok {
		return false
	}
	now, err := inspect.StartTime(k.pid)
	var same bool
	switch {
	case time.Since(e.at) > endedLifetime:
	case at.IsZero():
		same = err != nil || e.startTime != 0 && now == e.startTime
	case !e.event:
		same = err != nil || e.startTime == 0 || now == e.startTime || !startedBefore(now, at)
	}
	if !same {
		delete(r.ended, k)
	}
	return same
}

// heldSince returns the earliest contact before a start still held
// ([heldStart.since]); false when none is held or none has it yet.
func (r *Recorder) heldSince() (time.Time, bool) {
	var first time.Time
	for _, h := range r.held {
		if !h.since.IsZero() && (first.IsZero() || h.since.Before(first)) {
			first = h.since
		}
	}
	return first, !first.IsZero()
}

// stampHeld gives the starts held since the session's last contact
// that contact ([heldStart.since]).
func (r *Recorder) stampHeld(contact time.Time) {
	for k, h := range r.held {
		if h.since.IsZero() {
			h.since = contact
			r.held[k] = h
		}
	}
}

// maxHeldNames bounds what [Recorder.heldNames] names, in bytes: with
// the gap record's other causes (a stop while busy, a stream lost) it
// stays well within the record's 4096 bytes.
const maxHeldNames = 2500

// heldNames names the starts held, oldest first, for a gap record: as
// many as fit in [maxHeldNames] bytes (one at least, its cause cut to
// 256 bytes), then how many more there are.
func (r *Recorder) heldNames() string {
	type named struct {
		k taskKey
		h heldStart
	}
	var all []named
	for k, h := range r.held {
		all = append(all, named{k, h})
	}
	slices.SortFunc(all, func(a, b named) int { return a.h.at.wall.Compare(b.h.at.wall) })
	var b strings.Builder
	for i, n := range all {
		what := "listed by a walk at"
		if n.h.event {
			what = "start event published at"
		}
		name := fmt.Sprintf("container %s in namespace %s, pid %d (%s %s: %s)", vocab.Printable(n.k.id), vocab.Printable(n.k.ns), n.k.pid, what, n.h.at.wall.UTC().Format(time.RFC3339Nano), vocab.Cut(fmt.Sprint(n.h.err), 256))
		if i > 0 && b.Len()+len(", ")+len(name) > maxHeldNames {
			fmt.Fprintf(&b, ", and %d more", len(all)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(name)
	}
	return b.String()
}

// taskGone records the exit of task k.
func (r *Recorder) taskGone(ctx context.Context, k taskKey) {
	st := r.known[k]
	delete(r.known, k)
	if k.id != "" && k.pid > 0 {
		r.recordExit(ctx, k, st, "")
	}
}

// meta returns the container's spec's annotations, what nsrel-hook
// reads, for policy selection and recording. No label: nsrel-hook never
// sees labels, and they are the creator's (a pod's labels are its
// author's, an image's labels are copied into its containers' by CRI
// and ctr, the kubelet's keys too where no kubelet sets them): one of a
// key the config trusts that no annotation set picked the block, and
// named another pod in the record. Keys CRI sets (io.kubernetes.cri.*,
// which trusted_selectors may trust, and which name a CRI container's
// pod) come from the spec; a sandbox has no container name.
// A container gone has none (nil, nil); an error is a failure to ask
// (errUnverified), or a spec whose annotations are unknown
// ([containerd.ErrSpecUnread]: too large, undecodable), returned with
// none.
func meta(ctx context.Context, c *client.Client, id string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	// The client's error is native already: errgrpc.ToNative makes an
	// error that is not gRPC's an unknown one, and a container deleted
	// was taken for a failure to ask (TestMetaContainerGone).
	info, err := c.ContainerService().Get(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("%w %s: %w", errUnverified, vocab.Printable(id), err)
	}
	m := map[string]string{}
	var serr error
	if info.Spec != nil {
		var a map[string]string
		a, serr = containerd.SpecAnnotations(info.Spec.GetValue())
		maps.Copy(m, a)
	}
	if info.Labels[vocab.LabelCRIKind] == "sandbox" || m[vocab.CRIAnnotationPrefix+"container-type"] == "sandbox" {
		vocab.DropSandboxContainerName(m)
	}
	return m, serr
}

// errUnverified marks a failure to ask containerd about a task: the
// start is retried at the next walk rather than recorded with an error.
var errUnverified = errors.New("cannot ask containerd about the task")

// verifyTask checks that the task id in namespace ns still runs with pid
// and that pid's process still has startTime: then the process inspected
// is the container's, not one that reused its PID.
func verifyTask(ctx context.Context, c *client.Client, ns, id string, pid int, startTime uint64) error {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(ctx, ns), rpcTimeout)
	defer cancel()
	resp, err := c.TaskService().Get(ctx, &tasksapi.GetRequest{ContainerID: id})
	err = errgrpc.ToNative(err)
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("task %s is gone: %w", vocab.Printable(id), inspect.ErrGone)
	}
	if err != nil {
		return fmt.Errorf("%w %s: %w", errUnverified, vocab.Printable(id), err)
	}
	p := resp.GetProcess()
	if int(p.GetPid()) != pid || !containerd.TaskAlive(p.GetStatus()) {
		return fmt.Errorf("task %s no longer runs as pid %d (status %s, pid %d): %w", vocab.Printable(id), pid, p.GetStatus(), p.GetPid(), inspect.ErrGone)
	}
	if now, err := inspect.StartTime(pid); err != nil || now != startTime {
		return fmt.Errorf("pid %d of task %s exited or was reused: %w", pid, vocab.Printable(id), inspect.ErrGone)
	}
	return nil
}

// shimChild reports whether process pid's parent is the containerd
// shim of task id in namespace ns: a process of root's whose command
// name starts with "containerd-shim" (containerd-shim-runc-v2 and the
// like, cut to 15 bytes), started with "-namespace ns" and "-id id". A
// container's init is its shim's child (the runtime that forked it
// exits, and the shim is a subreaper). A process another user started
// is not, whatever it names itself (the parent's real UID is root's,
// and it is in containerd's mount namespace); nor is one of another
// container's (a container in the host's PID
// namespace can double-fork a process that takes a PID, which its own
// shim then adopts). A CRI pod's containers share their sandbox's shim,
// whose -id is the sandbox's: they are checked with containerd. False
// when it cannot tell.
func shimChild(pid int, ns, id string, daemon *mntNS) bool {
	parent, err := inspect.Parent(pid)
	if err != nil {
		return false
	}
	ppid := "/proc/" + strconv.Itoa(parent)
	comm, err := os.ReadFile(ppid + "/comm")
	if err != nil || !bytes.HasPrefix(comm, []byte("containerd-shim")) {
		return false
	}
	if uids, ok := inspect.StatusField(parent, "Uid"); !ok || !strings.HasPrefix(uids, "0\t") {
		return false
	}
	// In containerd's mount namespace (daemon, found from the
	// socket's peer; nil: unknown): a root container's process can
	// name itself a shim and choose its arguments, but is in its
	// container's mount namespace.
	var its unix.Stat_t
	if daemon == nil || unix.Stat(ppid+"/ns/mnt", &its) != nil || daemon.dev != its.Dev || daemon.ino != its.Ino {
		return false
	}
	cmdline, err := os.ReadFile(ppid + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	return flagValue(args, "-id") == id && flagValue(args, "-namespace") == ns
}

// flagValue returns the value of flag name in args ("-id X", "-id=X";
// also with two dashes), or "" when it is not there or given twice.
func flagValue(args []string, name string) string {
	v, n := "", 0
	name = strings.TrimLeft(name, "-")
	for i, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		a = strings.TrimLeft(a, "-")
		switch {
		case a == name && i+1 < len(args):
			v, n = args[i+1], n+1
		case strings.HasPrefix(a, name+"="):
			v, n = strings.TrimPrefix(a, name+"="), n+1
		}
	}
	if n != 1 {
		return ""
	}
	return v
}

// clockTick is the unit of process start times.
const clockTick = inspect.ClockTick

// startedBefore reports whether a process with the given start time
// (clock ticks since boot) surely started before t, on the boot clock
// ([inspect.StartedBefore]).
func startedBefore(startTicks uint64, t when) bool {
	return inspect.StartedBefore(startTicks, t.boot)
}

// when is a time the recorder compares with process start times: as
// containerd published it or the recorder read it (wall, to print), and
// placed on the boot clock then (boot, to compare: a wall clock stepped
// since moves nothing). Zero is unknown.
type when struct {
	wall time.Time
	boot inspect.Moment
}

// whenOf places t, containerd's time of what it published just now or
// the recorder's own, on the boot clock ([inspect.MomentOf]).
func whenOf(t time.Time) when {
	return when{t, inspect.MomentOf(t)}
}

// IsZero reports whether w is unknown.
func (w when) IsZero() bool { return w.wall.IsZero() }

// ownersKept bounds [Recorder.owner].
const ownersKept = 2 * MaxPending

// owned is an entry of [Recorder.owner]: the task, and whether an exit
// ended the start.
type owned struct {
	k     taskKey
	ended bool
}

// own notes that the start without namespaces numbered seq is task k's
// (PID 0: a task of k's container whose PID is not known). Beyond
// ownersKept the oldest entry of a start ended is let go, else the
// oldest: a running task's start is forgotten only when as many others
// run (or were left open).
func (r *Recorder) own(seq uint64, k taskKey) {
	if r.owner == nil {
		r.owner = map[uint64]owned{}
	}
	if _, ok := r.owner[seq]; !ok {
		r.ownerSeqs = append(r.ownerSeqs, seq)
	}
	r.owner[seq] = owned{k: k}
	if len(r.ownerSeqs) > ownersKept {
		i := slices.IndexFunc(r.ownerSeqs, func(q uint64) bool { return r.owner[q].ended })
		i = max(i, 0)
		delete(r.owner, r.ownerSeqs[i])
		r.ownerSeqs = slices.Delete(r.ownerSeqs, i, i+1)
	}
}

// ownerEnded notes that an exit ended the start numbered seq.
func (r *Recorder) ownerEnded(seq uint64) {
	if o, ok := r.owner[seq]; ok {
		o.ended = true
		r.owner[seq] = o
	}
}

// ownership is whether a start without namespaces is an exiting task's.
type ownership int

const (
	notOwn   ownership = iota // another task's
	ownMaybe                  // maybe: a start of the task itself that comes before it wins
	ownYes                    // its own, or not known as any task's
)

// mayOwn tells whether the start without namespaces rec may be task k's,
// whose process started at startTime (0: not known): not when the
// recorder knows it as another task's. A previous recorder's start of
// the container, whose PID it does not know, is the task's when its
// start time is not known (the exit of a task that recorder recorded);
// otherwise it may be (a start of the task queued and dropped, which
// would have referred to it), unless the process started after the
// record was made, unless the log holds a start of the process itself
// before it (a task known by its process, whose start with namespaces
// that recorder wrote: TestSeededExitNotOfOpenByIDTask).
//
// A start the recorder knows as no task's (a previous recorder's, ended
// or let go from [Recorder.owner]) stands for no exit when it has ended,
// and for the exit of a task of start time known only when the process
// started before it was made: otherwise a lost exit found by a walk
// stopped at it and was not written (TestLostExitPastPreviousEndedStart).
// (An exit written twice then searches on for the start, through the
// search window when its entry was let go; a start let go while its task
// runs, beyond ownersKept running, is taken by another task's lost exit
// made after, or by none, the clock stepped since: limits.)
func (r *Recorder) mayOwn(rec *audit.Record, k taskKey, startTime uint64, ended bool) ownership {
	o, ok := r.owner[rec.Seq]
	switch {
	case ok && o.k == k:
		return ownYes
	case !ok && ended:
		return notOwn
	case startTime == 0 && (!ok || o.k.pid == 0 && o.k.ns == k.ns && o.k.id == k.id):
		return ownYes
	case ok && (o.k.pid != 0 || o.k.ns != k.ns || o.k.id != k.id):
		return notOwn
	}
	if !startedBy(startTime, rec) {
		return notOwn
	}
	if !ok {
		return ownYes
	}
	return ownMaybe
}

// startedBy reports whether a process with the given start time started
// before record rec was made (a millisecond of margin), as a start the
// record is of did.
func startedBy(startTicks uint64, rec *audit.Record) bool {
	at, err := time.Parse(time.RFC3339Nano, rec.Time)
	// The record's time is a wall time, as long ago as it is: placed
	// on the boot clock now.
	return err == nil && !inspect.StartedAfter(startTicks, inspect.MomentOf(at))
}

// recordStart records the start of task id (process pid) in namespace
// ns unless the log has it; at is when containerd published the start
// (zero for tasks found by a walk). It returns the process start time and true
// when the log holds the start (now or before) or will (queued), false
// when it must be tried again: then the start is among [Recorder.held]
// (containerd did not answer for the task, or the recorder stops).
// With given set (a start given up before whose task ended: [Recorder.endHeld]),
// the process is not inspected: the start is recorded without
// namespaces, given's note saying why, and is not given up again
// (unless the recorder stops).
func (r *Recorder) recordStart(ctx context.Context, c *client.Client, ns, id string, pid int, at when, given *heldStart) (uint64, bool) {
	log := r.logger().WithFields(logrus.Fields{"namespace": ns, "container": id, "pid": pid})
	if id == "" || pid <= 0 {
		log.Warn("start event without container or pid")
		return 0, true
	}
	inspectFn := r.Inspect
	if inspectFn == nil {
		inspectFn = inspect.ProcessWith
	}
	if given != nil {
		inspectFn = func(int, *inspect.LiveOnce) (*audit.Ancestry, error) {
			return nil, given.notInspected()
		}
	}
	// asked is the process start time read right before containerd is
	// asked whether the task runs as pid (0: not asked, or gone), which
	// a start given up then keeps: read after the request timed out (up
	// to rpcTimeout later), it was another process's if the PID was
	// reused meanwhile, or none.
	var asked uint64
	verified := func(pid int, live *inspect.LiveOnce) (*audit.Ancestry, error) {
		anc, err := inspectFn(pid, live)
		if err != nil {
			return nil, err
		}
		// A process that started before the event, has pid now and is
		// its shim's child is the container's: the container's process
		// held pid from before the event, and its shim, which reaps it,
		// is the parent of no other process that could have taken pid
		// since (a shim may reap a short task's process before it
		// publishes the start: a user's process that took the PID in
		// between started before the event too, and was recorded as
		// the container). Otherwise (a walk, a start time too close to
		// call, another parent) containerd must still run the task as
		// pid.
		if !at.IsZero() && startedBefore(anc.StartTime, at) && shimChild(pid, ns, id, r.daemonMnt.Load()) {
			return anc, nil
		}
		if st, err := inspect.StartTime(pid); err == nil {
			asked = st
		}
		if !at.IsZero() {
			log.WithField("event_time", at.wall).WithField("start_ticks", anc.StartTime).Debug("process start not clearly before the event; asking containerd")
		}
		if err := verifyTask(ctx, c, ns, id, pid, anc.StartTime); err != nil {
			return nil, err
		}
		return anc, nil
	}
	// Without its labels and annotations the start is judged under the
	// default block, maybe not its own: while the recorder stops, it is
	// left to the next recorder's first walk; otherwise (containerd slow
	// to answer) recorded so, saying why, rather than lost if the task
	// ends before the next walk.
	// A start given up keeps those containerd gave then: the container
	// is often deleted by the time its task's end is learnt (ctr run
	// --rm, docker run --rm), and the start was judged under the
	// default block, or refused where a block selects by annotation.
	var md map[string]string
	var merr error
	if given != nil && given.metaRead {
		md, merr = given.md, given.merr
	} else {
		md, merr = meta(namespaces.WithNamespace(ctx, ns), c, id)
	}
	if merr != nil && ctx.Err() != nil {
		log.WithError(merr).Warn("start not recorded: stopping; the next recorder's first walk records it if it still runs")
		// Named in the stop's gap record (beyond MaxPending held, in
		// its window only).
		r.hold(taskKey{ns, id, pid}, heldStart{at: at, err: merr})
		return 0, false
	}
	rec, ierr := hook.Decide(r.Config, hook.Input{Stage: audit.StageStart, Source: audit.SourceContainerdEvents,
		ID: id, Namespace: ns, PID: pid, Meta: md, Inspect: verified})
	if merr != nil && rec != nil {
		// Judged as an inspection that failed (on_error decides), and
		// refused where a block selects by annotation: the default
		// block may not be its own (as for a state the hook had to
		// cut).
		if errors.Is(merr, containerd.ErrSpecUnread) {
			// A spec too large (a container could pad its spec to
			// fall under the default block) or undecodable: as the
			// hook does a state it had to cut.
			rec.Error = vocab.JoinErrors(rec.Error, "judged without the annotations of the container's spec: "+merr.Error())
		} else {
			rec.Error = vocab.JoinErrors(rec.Error, "judged without the container's annotations, which containerd did not give: "+merr.Error())
		}
		hook.Judge(r.Config, rec, errors.Join(ierr, merr))
		if r.Config.SelectsByAnnotation() {
			rec.Verdict = audit.VerdictDeny
			rec.Error = vocab.JoinErrors(rec.Error, "refused whatever on_error says: a policy block selects by annotation, and the default block may not be this container's")
		}
	}
	if given == nil && errors.Is(ierr, errUnverified) {
		if r.hold(taskKey{ns, id, pid}, heldStart{at: at, err: ierr, startTime: asked, md: md, merr: merr, metaRead: true}) {
			log.WithError(ierr).Warn("start not recorded yet; retrying at the next walk")
			return 0, false
		}
		// Recorded now, without namespaces, as the inspection that
		// failed, rather than dropped.
		rec.Error = vocab.JoinErrors(rec.Error, fmt.Sprintf("recorded without namespaces: %d starts wait to be tried again already, as many as are kept", MaxPending))
	}
	// The process start time tells this start from another of the same
	// container and PID (a restart whose PID came round again) in the
	// log, and the walks skip the task while it runs so. Without
	// namespaces (inspection failed: no CAP_SYS_PTRACE, no fd left) it
	// comes from /proc, readable by anyone; a start recorded with 0 was
	// recorded again at every walk, and taken for any earlier start of
	// the container with that PID.
	var startTime uint64
	switch {
	case rec.Ancestry != nil:
		startTime = rec.StartTime
	case given != nil:
		// Read when it was given up: its PID may be another's now.
		startTime = given.startTime
	default:
		if st, err := inspect.StartTime(pid); err == nil {
			startTime = st
		}
	}
	// Taken now: the walk that makes the task known forgets the
	// container's entry, maybe before a queued start is appended.
	byID := r.openByID[nsID{ns, id}]
	if len(r.pending) > 0 {
		// Behind the records waiting, in order.
		log.Warn("start queued behind records the audit log did not take yet")
		r.keep(pendingRecord{start: rec, pid: pid, startTime: startTime, byID: byID}, nil)
		return startTime, true
	}
	got, err := r.appendStart(ctx, rec, pid, startTime, byID)
	switch {
	case err != nil:
		// Queued, as behind other records: the task is known from now
		// on, so that its end (a /containers/delete when the shim's
		// exit event is lost, a walk) queues its exit behind it.
		log.WithError(err).Error("audit log append failed; will retry")
		r.keep(pendingRecord{start: rec, pid: pid, startTime: startTime, byID: byID}, err)
		return startTime, true
	case got == nil:
		log.Debug("start already recorded")
	case got.Ancestry == nil:
		log.WithFields(logrus.Fields{"seq": got.Seq, "verdict": got.Verdict, "record_error": got.Error}).Warn("recorded start without namespaces")
	default:
		log.WithFields(logrus.Fields{"seq": got.Seq, "verdict": got.Verdict}).Info("recorded start")
	}
	if got != nil && got.Ref != nil {
		log.WithFields(logrus.Fields{"seq": got.Seq, "ref": got.Ref.Seq}).Info("start recorded again: the earlier record, without namespaces, ends with this one")
	}
	if byID {
		// Served: the earlier start ends with this one, or is not this
		// task's (its process started after it, or it is ended, or
		// not the last in the namespace): a container has one task,
		// so this daemon's is gone, and another daemon's is not this
		// recorder's to end. Kept, each later start of the container
		// would search the whole window for it again.
		delete(r.openByID, nsID{ns, id})
	}
	return startTime, true
}

// appendStart appends start record rec of process pid, which started at
// startTime, unless the log has a start of that process
// ([audit.Log.AppendStart]). byID says that its container was among
// [Recorder.openByID] when the start was made: a previous recorder
// recorded a start of it without namespaces, which names no process, and
// no exit. A recorder started later lists the task of such a start and
// records it again (with namespaces, or without if it cannot inspect the
// process either), and the task's exit refers to that second record: the
// first stayed without exit for good, a container that to the log never
// stopped (TestOpenByIDWalkedTask). So when the log's last start of the
// container in its namespace is the recorder's without namespaces,
// without exit, and the process may have run when it was recorded, rec
// refers to it: the same task's start, recorded again, which ends when
// rec does (a start ended ends the one it refers to, as a poststop ends
// a poststart and its createRuntime record). A process that surely
// started after that record (its start time, cut down to a tick, more
// than a millisecond after the record's time, for reading the clocks) is
// another task's: of the container started again while no recorder ran,
// or of another daemon's container of the same name, whose recorder
// writes the same log and which may run on (TestOpenByIDWalkedNewTask).
// Its exit does not end that start. (The comparison takes the wall
// clock as not stepped between the two records: docs/containerd.md.)
// A start appended without namespaces is noted as task (ns, id, pid)'s
// ([Recorder.owner]), which the record does not say.
func (r *Recorder) appendStart(ctx context.Context, rec *audit.Record, pid int, startTime uint64, byID bool) (got *audit.Record, err error) {
	var prev *audit.Record // the start of the process the log holds
	defer func() {
		k := taskKey{rec.Namespace, rec.ContainerID, pid}
		switch {
		case got != nil && got.Ancestry == nil:
			r.own(got.Seq, k)
		case got != nil:
			r.remember(k, startRefOf(got, startTime))
		case err == nil && prev != nil && (prev.Source == audit.SourceNRI || prev.Source == audit.SourceContainerdEvents):
			// The NRI plugin's start (the usual one of a pod's
			// container), which the recorder's exit ends.
			r.remember(k, startRefOf(prev, startTime))
		}
	}()
	if !byID || startTime == 0 {
		// As [audit.Log.AppendStart], noting the start found.
		match := audit.StartMatcher(pid, startTime)
		if startTime == 0 {
			match = unendedStart(pid, rec.Namespace)
		}
		return r.Log.AppendAfterLast(ctx, rec.ContainerID, match, func(last *audit.Record) (*audit.Record, error) {
			if prev = last; last != nil {
				return nil, nil
			}
			return rec, nil
		})
	}
	same := audit.StartMatcher(pid, startTime)
	type found struct {
		prev, last *audit.Record
		exited     bool
	}
	// Searched before the log's lock is taken ([audit.AppendAfterSearch]):
	// a start of the process is not found, so the search goes through
	// the whole search window when the container has no start in the
	// namespace (one another daemon's recorder left, say).
	return audit.AppendAfterSearch(ctx, r.Log, func(s *audit.Searcher) (found, error) {
		// One backward search finds a start of the process (rec is
		// not appended, as AppendStart does) or goes through the
		// container's records, meeting the exits in the namespace
		// before the last start there.
		exited := map[uint64]bool{}
		var last *audit.Record
		prev, err := s.Last(rec.ContainerID, func(x *audit.Record) bool {
			switch {
			case same(x):
				return true
			case last != nil || x.Namespace != rec.Namespace:
			case x.Stage == audit.StageExit && x.Ref != nil:
				exited[x.Ref.Seq] = true
			case audit.IsStart(x.Stage):
				last = x
			}
			return false
		})
		f := found{prev: prev, last: last}
		if last != nil {
			f.exited = exited[last.Seq]
		}
		return f, err
	}, func(f found, err error) (*audit.Record, error) {
		rec.Ref = nil // an append retried searches again
		prev = f.prev
		if err != nil || f.prev != nil {
			return nil, err
		}
		last := f.last
		if last == nil || last.Source != audit.SourceContainerdEvents || last.Ancestry != nil || f.exited {
			return rec, nil
		}
		if startedBy(startTime, last) {
			rec.Ref = &audit.Ref{Seq: last.Seq, Stage: last.Stage, Hash: last.Hash}
		}
		return rec, nil
	})
}

// unendedStart is the match of a start of the process pid whose start
// time is unknown (gone before it was read: a quick task, a busy
// recorder) for a search backward: a start of the ID with the PID, of
// this boot, in namespace ns or none (the hook's, the NRI plugin's),
// that no record met before it ended (an exit in ns, a poststop, or a
// start ended that refers to it). Any start with the PID was taken for
// this one: an earlier task of the container, ended, whose PID came
// round again, or a task of the ID in another namespace, and the task
// that ran had no start record at all.
func unendedStart(pid int, ns string) func(*audit.Record) bool {
	same := audit.StartMatcher(pid, 0)
	ended := map[uint64]bool{}
	return func(x *audit.Record) bool {
		if x.Ref != nil && (x.Stage == audit.StagePoststop || x.Stage == audit.StageExit && x.Namespace == ns || audit.IsStart(x.Stage) && ended[x.Seq]) {
			ended[x.Ref.Seq] = true
		}
		return same(x) && !ended[x.Seq] && (x.Namespace == ns || x.Namespace == "")
	}
}

// keep queues a record whose append failed (err), or that comes after
// such records, dropping the oldest beyond [MaxPending]. The record keeps
// the time it was made and says that it was written late, and why.
func (r *Recorder) keep(p pendingRecord, err error) {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	late := "written late: the audit log could not be written then"
	if err != nil {
		late += " (" + err.Error() + ")"
	} else {
		late += " (records before it waited)"
	}
	for _, rec := range []*audit.Record{p.start, p.other} {
		if rec != nil && rec.Time == "" {
			rec.Time = now
			rec.Error = vocab.JoinErrors(rec.Error, late)
		}
	}
	if p.exit != nil {
		p.time, p.late = now, late
	}
	r.failing = true
	if len(r.pending) >= MaxPending {
		dropped := 1
		if d := r.pending[0].start; d != nil {
			// Its task may run on: the next walk records it again.
			// (Not a later task of the container that got the PID
			// and whose start waits behind: it stays known.)
			k, st := taskKey{d.Namespace, d.ContainerID, r.pending[0].pid}, r.pending[0].startTime
			if cur, ok := r.known[k]; ok && cur == st {
				delete(r.known, k)
			}
			if r.forget == nil {
				r.forget = map[taskKey]uint64{}
			}
			r.forget[k] = st
			// Its exits queued behind it may have no start to end
			// now: they end only a start of their own process (one
			// without namespaces matched any task's).
			// (Not when the start referred to a start without
			// namespaces of a previous recorder's, byID: its exit
			// would have ended that one too, which the usual search
			// finds. Not the exit of a later task of the container
			// with the PID, of another start time.)
			for i := range r.pending[1:] {
				q := &r.pending[1+i]
				if q.exit != nil && *q.exit == k && !r.pending[0].byID && (st == 0 || q.startTime == 0 || q.startTime == st) {
					q.noStart = true
				}
			}
		}
		if e := r.pending[0]; e.exit != nil {
			// Its task ended and left the known tasks: no walk would
			// look for it again, and its start stayed open in the log
			// for good. Kept apart (the queued record itself), and written
			// first, as in the queue: not lost, not counted.
			dropped = 0
			if len(r.droppedExits) >= MaxPending {
				// As a last resort, the first walk once the log takes
				// records again searches it for the recorder's open
				// starts whose process is gone, as after the recorder
				// started (their exits then have the time they are
				// found).
				r.droppedExits = slices.Delete(r.droppedExits, 0, 1)
				r.seeded, r.reseed = false, true
				dropped = 1
			}
			r.droppedExits = append(r.droppedExits, e)
		}
		if r.dropped == 0 && dropped > 0 {
			r.droppedSince = time.Now()
		}
		r.dropped += dropped
		r.pending = slices.Delete(r.pending, 0, 1)
	}
	r.pending = append(r.pending, p)
}

// retryPending appends the pending records, in order, stopping at the
// first that fails again; a gap record first names records dropped, and
// the exits dropped come after it.
func (r *Recorder) retryPending(ctx context.Context) {
	log := r.logger()
	if r.dropped > 0 {
		msg := fmt.Sprintf("the audit log could not be written from %s to %s; %d records (starts, exits, the recorder's own) were dropped (more than %d waited)",
			r.droppedSince.UTC().Format(time.RFC3339Nano), time.Now().UTC().Format(time.RFC3339Nano), r.dropped, MaxPending)
		if n := len(r.droppedExits); n > 0 {
			msg += fmt.Sprintf("; %d exits waiting, kept apart, follow this record (each that finds its start)", n)
		}
		gap := &audit.Record{
			Source:  audit.SourceContainerdEvents,
			Stage:   StageEventsGap,
			Version: vocab.Version,
			Error:   msg,
		}
		if err := r.Log.Append(ctx, gap); err != nil {
			log.WithError(err).Error("audit log still not writable")
			r.failing = true
			return
		}
		r.dropped = 0
	}
	for len(r.droppedExits) > 0 {
		d := r.droppedExits[0]
		if _, err := r.appendExit(ctx, *d.exit, d.startTime, d.boot, d.time, d.late, d.noStart); err != nil {
			log.WithError(err).WithField("dropped exits", len(r.droppedExits)).Error("audit log still not writable")
			r.failing = true
			return
		}
		r.droppedExits = slices.Delete(r.droppedExits, 0, 1)
	}
	r.droppedExits = nil
	for len(r.pending) > 0 {
		p := r.pending[0]
		var err error
		switch {
		case p.other != nil:
			err = r.Log.Append(ctx, p.other)
		case p.exit != nil:
			_, err = r.appendExit(ctx, *p.exit, p.startTime, p.boot, p.time, p.late, p.noStart)
		default:
			_, err = r.appendStart(ctx, p.start, p.pid, p.startTime, p.byID)
		}
		if err != nil {
			log.WithError(err).WithField("pending", len(r.pending)).Error("audit log still not writable")
			r.failing = true
			return
		}
		r.pending = slices.Delete(r.pending, 0, 1)
	}
	r.pending = nil // release the backing array
}

// recordExit records the exit of task k, whose process started at
// startTime (0: not known).
func (r *Recorder) recordExit(ctx context.Context, k taskKey, startTime uint64, boot string) {
	log := r.logger().WithFields(logrus.Fields{"namespace": k.ns, "container": k.id, "pid": k.pid})
	if len(r.pending) > 0 {
		// Behind the records waiting: its start may be one of them.
		log.Warn("exit queued behind records the audit log did not take yet")
		r.keep(pendingRecord{exit: &k, startTime: startTime, boot: boot}, nil)
		return
	}
	got, err := r.appendExit(ctx, k, startTime, boot, "", "", false)
	switch {
	case err != nil:
		log.WithError(err).Error("audit log append failed; will retry")
		r.keep(pendingRecord{exit: &k, startTime: startTime, boot: boot}, err)
	case got != nil:
		log.WithField("seq", got.Seq).Info("recorded exit")
	default:
		log.Debug("exit not recorded: recorded already, or its start was not the recorder's")
	}
}

// appendExit appends the exit of task k if the recorder or the NRI
// plugin recorded its start; at and late, if set, are the record's time
// and the note that it was written late. The NRI plugin writes no end of
// the starts it records (a container it checked itself, the hook not
// injected; a sandbox it recorded before the recorder did): the
// recorder's exit ends them, as it ends its own. nsrel-hook's starts end
// with its poststop. The search runs before the log's lock is taken
// ([audit.AppendAfterSearch]): the start of a container that ran for
// weeks is in a rotated file, tens of MiB back, and every other writer
// (a container start waiting for its record) waited that long.
//
// With strict (an exit whose queued start was dropped), only a start of
// the task's own process ends: with namespaces, its PID and start time
// the same (any start time when the exit's is not known: its process
// was gone when its start was queued, and the start of its PID is the
// NRI plugin's, recorded when it started, whose end is the recorder's
// exit, or one of the recorder's with namespaces; else the exit was
// lost); not the recorder's last start without namespaces of the
// container, which may be another task's.
func (r *Recorder) appendExit(ctx context.Context, k taskKey, startTime uint64, boot, at, late string, strict bool) (*audit.Record, error) {
	if boot != "" {
		late = vocab.JoinErrors(endedWithBoot(boot), late)
	}
	type found struct {
		start   *audit.Record
		endedBy map[uint64]bool // the starts the exits met end
	}
	got, err := audit.AppendAfterSearch(ctx, r.Log, func(s *audit.Searcher) (found, error) {
		// One backward search finds the start, and the exits written
		// after it on the way: one that refers to it is this exit (a
		// retried append that did reach the disk). An exit of another
		// task of the container (a restart under the same ID, its exit
		// recorded late) is not.
		// A start without ancestry (the process could not be inspected)
		// has no PID: the recorder's last such start stands for it,
		// unless the recorder knows it as another task's start
		// ([Recorder.owner]): a walk that found a task ended, its exit
		// and delete events lost, ended the start of the container's
		// next task recorded without namespaces, running or ended, and
		// left its own open (TestLostExitNotOfUninspectedRestart and
		// the tests after it).
		// The hook's and the NRI plugin's starts name no containerd
		// namespace: one of the task's process (its PID and start time)
		// ends the search (the hook's is not the recorder's to end),
		// which else went through every file searched at each exit of
		// such a container. (A later task of the container that took
		// the PID is another process.)
		// A task of an earlier boot ([Recorder.earlierBoot]) ends a start
		// of its boot only, one of this boot a start that names this boot
		// or none: a start time counts from boot, and a process of each
		// may have the other's PID and start time.
		ofBoot := func(rec *audit.Record) bool {
			if boot == "" {
				return rec.OfThisBoot()
			}
			return rec.Ancestry != nil && rec.BootID == boot // by PID
		}
		exited := map[uint64]bool{}
		var maybe *audit.Record
		start, err := s.Last(k.id, func(rec *audit.Record) bool {
			switch {
			case audit.IsStart(rec.Stage) && !ofBoot(rec):
				return false // of another boot's task
			case rec.Namespace == "" && rec.Source != audit.SourceContainerdEvents:
				return audit.IsStart(rec.Stage) && rec.Ancestry != nil && rec.PID == k.pid && (startTime == 0 || rec.StartTime == startTime)
			case rec.Namespace != k.ns:
				return false
			case rec.Stage == audit.StageExit:
				if rec.Ref != nil {
					exited[rec.Ref.Seq] = true
				}
				return false
			case !audit.IsStart(rec.Stage):
				return false
			case rec.Ancestry == nil:
				if rec.Source != audit.SourceContainerdEvents || strict {
					return false
				}
				switch r.mayOwn(rec, k, startTime, exited[rec.Seq]) {
				case ownYes:
					return true
				case ownMaybe:
					if maybe == nil {
						maybe = rec
					}
				}
				return false
			case strict:
				return rec.PID == k.pid && (startTime == 0 || rec.StartTime == startTime)
			}
			return rec.PID == k.pid && (startTime == 0 || rec.StartTime == 0 || rec.StartTime == startTime)
		})
		if start == nil {
			start = maybe
		}
		return found{start: start, endedBy: exited}, err
	}, func(f found, err error) (*audit.Record, error) {
		start := f.start
		if err == nil && start == nil && boot == "" && !strict {
			// Beyond the files searched: the start the recorder
			// remembers, unless an exit met ends it.
			if sr, ok := r.starts[k]; ok && (startTime == 0 || sr.st == startTime) && !f.endedBy[sr.ref.Seq] {
				start = &audit.Record{Source: audit.SourceContainerdEvents, Seq: sr.ref.Seq, Stage: sr.ref.Stage, Hash: sr.ref.Hash, Policy: sr.policy, Mode: sr.mode}
				late = vocab.JoinErrors(late, fmt.Sprintf("its start (seq %d) is beyond the files searched", sr.ref.Seq))
			}
		}
		if err != nil || start == nil || f.endedBy[start.Seq] || start.Source != audit.SourceContainerdEvents && start.Source != audit.SourceNRI {
			return nil, err
		}
		return exitOf(start, k, at, late), nil
	})
	if got != nil && got.Ref != nil {
		r.ownerEnded(got.Ref.Seq)
		if sr, ok := r.starts[k]; ok && sr.ref.Seq == got.Ref.Seq {
			delete(r.starts, k)
		}
	}
	return got, err
}

// exitOf is the recorder's exit record of task k (its namespace and
// container ID) that ends start; at and note, if set, are its time and
// error.
func exitOf(start *audit.Record, k taskKey, at, note string) *audit.Record {
	return &audit.Record{
		Source:      audit.SourceContainerdEvents,
		Stage:       audit.StageExit,
		ContainerID: k.id,
		Namespace:   k.ns,
		Annotations: start.Annotations,
		Policy:      start.Policy,
		Mode:        start.Mode,
		Ref:         &audit.Ref{Seq: start.Seq, Stage: start.Stage, Hash: start.Hash},
		Version:     vocab.Version,
		Time:        at,
		Error:       note,
	}
}

// startRef is a start record as [Recorder.starts] remembers it: the
// start time of its process, and what its exit takes from it.
type startRef struct {
	st           uint64
	ref          audit.Ref
	policy, mode string
}

// startRefOf is rec, the start of a process that started at st, as
// [Recorder.starts] remembers it.
func startRefOf(rec *audit.Record, st uint64) startRef {
	return startRef{st: st, ref: audit.Ref{Seq: rec.Seq, Stage: rec.Stage, Hash: rec.Hash}, policy: rec.Policy, mode: rec.Mode}
}

// remember notes sr as the start of task k.
func (r *Recorder) remember(k taskKey, sr startRef) {
	if r.starts == nil {
		r.starts = map[taskKey]startRef{}
	}
	r.starts[k] = sr
}

func (r *Recorder) streamLost(err error) {
	if r.StreamLost != nil {
		r.StreamLost(err)
	}
}

func (r *Recorder) logger() logrus.FieldLogger { return logging.OrDiscard(r.Logger) }

// protoTime returns the time of a protobuf timestamp, zero for none, an
// empty or an invalid one (AsTime would give 1970 for the first two: any
// process would seem to have started after it).
func protoTime(t *timestamppb.Timestamp) time.Time {
	if t == nil || (t.GetSeconds() == 0 && t.GetNanos() == 0) || !t.IsValid() {
		return time.Time{}
	}
	return t.AsTime()
}
