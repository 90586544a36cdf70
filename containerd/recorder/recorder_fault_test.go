package recorder

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	eventsapi "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/typeurl/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// TestRecorderRetriesAppends makes the audit log unwritable (a directory
// in its place) while containers start and exit: the recorder keeps the
// records and writes them, once each, when the log is writable again.
func TestRecorderRetriesAppends(t *testing.T) {
	t.Parallel()
	connected := make(chan struct{}, 16)
	cfg, d, c := recorderSetup(t, func(r *Recorder) {
		prev := r.Connected
		r.Connected = func() { prev(); connected <- struct{}{} }
	})
	waitConnected(t, connected, "no first connection")

	// The log's place taken by a directory, and given back, each in one
	// step (RENAME_EXCHANGE): with a remove and a rename, a retry that
	// came in between created a new log there, which the rename then
	// replaced with the record the retry had written.
	swap := swapLog(t, cfg.AuditLog)
	breakLog := swap
	repairLog := func() {
		t.Helper()
		time.Sleep(500 * time.Millisecond) // a few failed retries
		swap()
	}

	// Broken while a container starts: the start waits.
	breakLog()
	first := ctrdtest.Uniq("unwritable-start")
	ctr, _ := d.Run(t, c, "default", first, nil)
	repairLog()
	audittest.Wait(t, cfg.AuditLog, "start written after the log came back", func(rs []*audit.Record) bool { return audittest.Count(rs, first, evStart) == 1 })

	// Broken again while the container exits: the exit waits.
	breakLog()
	ctrdtest.Delete("default", ctr)
	repairLog()
	recs := audittest.Wait(t, cfg.AuditLog, "exit written after the log came back", func(rs []*audit.Record) bool { return audittest.Count(rs, first, evExit) == 1 })
	if s, e := audittest.Count(recs, first, evStart), audittest.Count(recs, first, evExit); s != 1 || e != 1 {
		t.Errorf("%d starts, %d exits; want one each", s, e)
	}

	// Broken while the daemon restarts: the gap record waits too, and
	// comes before the start that follows.
	breakLog()
	d.Restart(t)
	waitConnected(t, connected, "no reconnection after the restart")
	second := ctrdtest.Uniq("unwritable-gap")
	d.Run(t, d.Client(t), "default", second, nil)
	repairLog()
	recs = audittest.Wait(t, cfg.AuditLog, "gap and start written after the log came back", func(rs []*audit.Record) bool { return audittest.Count(rs, second, evStart) == 1 })
	gap := slices.IndexFunc(recs, func(r *audit.Record) bool { return r.Stage == StageEventsGap })
	start := slices.IndexFunc(recs, func(r *audit.Record) bool { return r.ContainerID == second })
	if gap < 0 || gap > start {
		t.Errorf("gap record at %d, start at %d: want the gap first", gap, start)
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestRecorderPIDReuse makes the container's process exit between the
// start event and the inspection, and inspects another live process
// instead, a process started after the container exited, as if it had
// reused the PID: the recorder must not attribute that process's
// namespaces to the container.
func TestRecorderPIDReuse(t *testing.T) {
	t.Parallel()
	victim := ctrdtest.Uniq("reused")
	var (
		mu   sync.Mutex
		ctrs = map[uint32]func(){}
	)
	cfg, d, c := recorderSetup(t, func(r *Recorder) {
		r.Inspect = func(pid int, live *inspect.LiveOnce) (*audit.Ancestry, error) {
			mu.Lock()
			kill := ctrs[uint32(pid)]
			mu.Unlock()
			if kill == nil {
				return inspect.ProcessWith(pid, live)
			}
			kill()
			// A process started after the container's exit, in its place.
			other := exec.Command("/bin/busybox", "sleep", "60")
			if err := other.Start(); err != nil {
				return nil, err
			}
			t.Cleanup(func() { other.Process.Kill(); other.Wait() })
			a, err := inspect.Process(other.Process.Pid)
			if a != nil {
				a.PID = pid
			}
			return a, err
		}
	})
	// Create the task first, so its PID is known before the start event.
	ctr, _ := d.Run(t, c, "default", victim, &ctrdtest.RunOpts{NoStart: true})
	ctx := ctrdtest.Context(t, "default")
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	ctrs[task.Pid()] = func() { ctrdtest.Delete("default", ctr) }
	mu.Unlock()
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	recs := audittest.Wait(t, cfg.AuditLog, "start record", func(rs []*audit.Record) bool { return audittest.Count(rs, victim, evStart) == 1 })
	for _, r := range recs {
		if r.ContainerID == victim && r.Stage == audit.StageStart && (r.Ancestry != nil || !strings.Contains(r.Error, "exited")) {
			t.Errorf("start record of a reused PID: ancestry %v, error %q; want no ancestry and an error", r.Ancestry, r.Error)
		}
	}
}

// TestRecorderReconnectNoLeak restarts the daemon several times under a
// running recorder: goroutines and file descriptors return to their
// level after the first connection. It does not run in parallel, so the
// counts are the recorder's own.
func TestRecorderReconnectNoLeak(t *testing.T) {
	cfgPath, _ := ctrdtest.HookConfig(t)
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	connected := startRecorder(t, d.Socket, cfgPath, nil)
	settle := func(before int, count func() int) int {
		n := count()
		for deadline := time.Now().Add(3 * time.Second); n > before && time.Now().Before(deadline); n = count() {
			time.Sleep(50 * time.Millisecond)
		}
		return n
	}
	fds := func() int { return nstest.FDCount(t) }
	gs, fs := runtime.NumGoroutine(), fds()
	for i := range 3 {
		d.Restart(t)
		waitConnected(t, connected, fmt.Sprintf("no reconnection after restart %d", i+1))
	}
	if n := settle(gs, runtime.NumGoroutine); n > gs {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d after the first connection, %d after 3 reconnections\n%s", gs, n, buf[:runtime.Stack(buf, true)])
	}
	if n := settle(fs, fds); n > fs {
		t.Errorf("fds: %d after the first connection, %d after 3 reconnections", fs, n)
	}
}

// TestStartedBefore checks the conversion of process start times against
// instants with init and a child; the boot clock
// decides, not the wall clock: an instant whose wall time is an hour
// ahead (the wall clock stepped back by an hour after the event came)
// is not taken for one after a child started since.
func TestStartedBefore(t *testing.T) {
	// init, started at boot (this process may have started within the
	// tick and a millisecond of margin).
	st, err := inspect.StartTime(1)
	if err != nil {
		t.Fatal(err)
	}
	if !startedBefore(st, whenOf(time.Now())) {
		t.Error("init did not start before now")
	}
	if startedBefore(st, whenOf(time.Now().Add(-time.Hour*24*365*100))) {
		t.Error("init started a century ago")
	}
	before := whenOf(time.Now())
	stepped := when{before.wall.Add(time.Hour), before.boot}
	child := exec.Command("/bin/busybox", "sleep", "10")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	cst, err := inspect.StartTime(child.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []when{before, stepped} {
		if startedBefore(cst, at) {
			t.Errorf("a child started after %v (boot clock %v) claims to have started before it", at.wall, time.Duration(at.boot))
		}
	}
}

// TestKnownNowClockStepped: a task's PID held by a process that started
// before the task's start event is not taken for one that took the PID
// after it when the wall clock was stepped forward since the event came
// (judged by the wall clock read at the check, it had, and the task was
// recorded as ended while it ran).
func TestKnownNowClockStepped(t *testing.T) {
	self := os.Getpid()
	st, err := inspect.StartTime(self)
	if err != nil {
		t.Fatal(err)
	}
	k := taskKey{"default", "web", self}
	r := &Recorder{known: map[taskKey]uint64{k: st + 1}} // known with another start
	now := whenOf(time.Now())
	stepped := when{now.wall.Add(-time.Hour), now.boot} // an hour behind the wall clock now
	for _, at := range []when{now, stepped} {
		if _, state := r.knownNow(k, at); state != pidOther {
			t.Errorf("knownNow at %v (boot clock %v): %v; want another process, not one that took the PID after the event", at.wall, time.Duration(at.boot), state)
		}
	}
	// One that surely started after the event did take it.
	if _, state := r.knownNow(k, when{now.wall, inspect.StartMoment(st) - inspect.Moment(time.Second)}); state != pidTakenAfter {
		t.Errorf("knownNow of an event a second before the process started: %v; want taken after", state)
	}
}

// TestRecorderMuteDaemon runs the recorder against a socket that accepts
// connections and never answers: it keeps retrying without hanging,
// stops as soon as its context is cancelled, and records its own start
// and stop, with the gap between them: it never watched events.
func TestRecorderMuteDaemon(t *testing.T) {
	t.Parallel()
	_, cfg := ctrdtest.HookConfig(t)
	log := openLog(t, cfg.AuditLog)
	r := &Recorder{Address: ctrdtest.MuteSocket(t), Config: cfg, Log: log, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return after cancel while the daemon was mute")
	}
	var got []string
	for _, r := range audittest.Records(t, cfg.AuditLog, "") {
		got = append(got, r.Source+"/"+r.Stage)
		if r.Stage == StageEventsGap && !strings.Contains(r.Error, "the recorder stopped") {
			t.Errorf("gap record: %q", r.Error)
		}
	}
	want := []string{"containerd-events/" + StageRecorderStart, "containerd-events/" + StageEventsGap, "containerd-events/" + StageRecorderStop}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records against a mute daemon (-want +got):\n%s", diff)
	}
}

// TestRecorderPausedTask pauses a running container across several of
// the recorder's walks: a paused task still runs, so no exit is recorded
// then, and the one exit recorded is the real one, after resume and
// delete. The walk used to take a paused task for ended, record an exit
// at once and lose the real one.
func TestRecorderPausedTask(t *testing.T) {
	var waitWalks func(int)
	cfg, d, c := recorderSetup(t, func(r *Recorder) { r.Resync = 200 * time.Millisecond; waitWalks = countWalks(t, r) })
	id := ctrdtest.Uniq("paused")
	ctr, _ := d.Run(t, c, "default", id, nil)
	audittest.Wait(t, cfg.AuditLog, "start", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evStart) == 1 })
	ctx := namespaces.WithNamespace(context.Background(), "default")
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	waitWalks(5)
	if n := audittest.Count(audittest.Records(t, cfg.AuditLog, ""), id, evExit); n != 0 {
		t.Errorf("%d exit records while the task was paused, want 0", n)
	}
	if err := task.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	ctrdtest.Delete("default", ctr)
	recs := audittest.Wait(t, cfg.AuditLog, "exit", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evExit) == 1 })
	if n := audittest.Count(recs, id, evStart); n != 1 {
		t.Errorf("%d start records, want 1", n)
	}
	audittest.Verify(t, cfg.AuditLog)
}

// swapLog returns a function that exchanges the audit log with a
// directory in one step (RENAME_EXCHANGE), making it unwritable, and back.
func swapLog(t *testing.T, path string) func() {
	t.Helper()
	swapped := path + ".swapped"
	if err := os.Mkdir(swapped, 0o700); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := unix.Renameat2(unix.AT_FDCWD, path, unix.AT_FDCWD, swapped, unix.RENAME_EXCHANGE); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRecorderExitBehindPendingStart: the log is unwritable when a
// container starts, and writable again, before the next retry of the
// start, when the container ends. The exit waits behind its start and is
// written after it; both say when they happened and that they were
// written late. The exit used to look for its start in the log, not find
// it and be dropped; the start got the time of the late write.
func TestRecorderExitBehindPendingStart(t *testing.T) {
	t.Parallel()
	const retry = 8 * time.Second
	connected := make(chan struct{}, 16)
	cfg, d, c := recorderSetup(t, func(r *Recorder) {
		// Retries 8 s apart: the exit comes between two, and a loaded
		// machine's slow delete (2.3 s once) stays before the first.
		r.MinBackoff, r.MaxBackoff = retry, retry
		prev := r.Connected
		r.Connected = func() { prev(); connected <- struct{}{} }
	})
	waitConnected(t, connected, "no first connection")
	swap := swapLog(t, cfg.AuditLog)
	swap()
	id := ctrdtest.Uniq("quick")
	before := time.Now()
	ctr, _ := d.Run(t, c, "default", id, nil)
	time.Sleep(500 * time.Millisecond)
	swap()
	ctrdtest.Delete("default", ctr)
	recs := audittest.Wait(t, cfg.AuditLog, "start and exit", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evExit) == 1 })
	if diff := cmp.Diff([]string{evStart, evExit}, audittest.SourceStages(recs, id)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	for _, r := range recs {
		if r.ContainerID != id {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, r.Time)
		// Before the first retry, at least retry after the first
		// attempt (after before): the time it happened, not that of
		// the late write.
		if err != nil || at.Before(before) || !at.Before(before.Add(retry)) || !strings.Contains(r.Error, "written late") {
			t.Errorf("%s: time %s (the container started at %s), error %q; want the time it happened, written late", r.Stage, r.Time, before.UTC().Format(time.RFC3339Nano), r.Error)
		}
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestRecorderGapUntilStop loses the event stream (containerd stops) and
// stops the recorder before it comes back: an events-gap record names
// the stretch, before the stop record. Only a reconnection used to write
// it, so the log showed the recorder watching throughout.
func TestRecorderGapUntilStop(t *testing.T) {
	t.Parallel()
	cfgPath, cfg := ctrdtest.HookConfig(t)
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	lost := make(chan struct{}, 16)
	_, stop := runRecorder(t, d.Socket, cfgPath, func(r *Recorder) { r.StreamLost = func(error) { lost <- struct{}{} } })
	d.Stop(t)
	select {
	case <-lost:
	case <-time.After(30 * time.Second):
		t.Fatal("stream not lost")
	}
	stop()
	var stages []string
	for _, r := range audittest.Records(t, cfg.AuditLog, "") {
		stages = append(stages, r.Stage)
	}
	if diff := cmp.Diff([]string{StageRecorderStart, StageEventsGap, StageRecorderStop}, stages); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestRecorderStopLosesRecords stops the recorder while the audit log
// cannot be written and a start waits: Run says how many records were
// lost (watch then exits 1); it returned the context's error, as for a
// clean stop.
func TestRecorderStopLosesRecords(t *testing.T) {
	t.Parallel()
	cfgPath, cfg, d, c := busyboxDaemon(t)
	logger, hook := logtest.NewNullLogger()
	_, stop := runRecorderErr(t, d.Socket, cfgPath, func(r *Recorder) { r.Logger = logger })
	swap := swapLog(t, cfg.AuditLog)
	swap()
	defer swap()
	d.Run(t, c, "default", ctrdtest.Uniq("lost"), nil)
	waitAppendFailed(t, hook)
	if err := stop(); err == nil || !strings.Contains(err.Error(), "records the audit log did not take; they are lost") {
		t.Errorf("Run = %v; want the records lost named", err)
	}
}

// TestRecorderQueuedStartDropped: a start queued behind records the log
// did not take, then dropped with them beyond MaxPending, is recorded by
// a later walk, its container still running. It stayed among the known
// tasks, which walks skip, and was never recorded.
func TestRecorderQueuedStartDropped(t *testing.T) {
	t.Parallel()
	cfgPath, cfg, d, c := busyboxDaemon(t)
	var r *Recorder
	var queued atomic.Bool
	flooded := make(chan struct{})
	_, _ = runRecorder(t, d.Socket, cfgPath, func(rr *Recorder) {
		r = rr
		rr.Resync = 200 * time.Millisecond
		rr.walked = func() {
			// In the recorder's goroutine: once the second start waits
			// behind the first, flood the queue so that both are dropped.
			if queued.Load() && len(r.pending) >= 2 && !isClosed(flooded) {
				queueFillers(r, MaxPending)
				close(flooded)
			}
		}
	})
	swap := swapLog(t, cfg.AuditLog)
	swap()
	first, second := ctrdtest.Uniq("first"), ctrdtest.Uniq("second")
	d.Run(t, c, "default", first, nil)
	d.Run(t, c, "default", second, nil)
	queued.Store(true)
	select {
	case <-flooded:
	case <-time.After(30 * time.Second):
		t.Fatal("the starts did not wait in the queue")
	}
	swap()
	audittest.Wait(t, cfg.AuditLog, "both starts", func(rs []*audit.Record) bool {
		return audittest.Count(rs, first, evStart) == 1 && audittest.Count(rs, second, evStart) == 1
	})
	audittest.Verify(t, cfg.AuditLog)
}

// TestRecorderQueuedExitDropped: an exit queued while the log did not
// take records, then dropped beyond MaxPending, is recorded once the log
// takes records again, written late (TestDroppedExitsKept: its time). Its task had left the known tasks already and no
// walk looked for it again: its start stayed open in the log for good.
func TestRecorderQueuedExitDropped(t *testing.T) {
	t.Parallel()
	cfgPath, cfg, d, c := busyboxDaemon(t)
	var r *Recorder
	flooded := make(chan struct{})
	_, _ = runRecorder(t, d.Socket, cfgPath, func(rr *Recorder) {
		r = rr
		rr.Resync = 200 * time.Millisecond
		rr.walked = func() {
			// In the recorder's goroutine: once the exit waits, flood
			// the queue so that it is dropped.
			if !isClosed(flooded) && slices.ContainsFunc(r.pending, func(p pendingRecord) bool { return p.exit != nil }) {
				queueFillers(r, MaxPending)
				close(flooded)
			}
		}
	})
	id := ctrdtest.Uniq("exitdropped")
	ctr, _ := d.Run(t, c, "default", id, nil)
	audittest.Wait(t, cfg.AuditLog, "the start", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evStart) == 1 })
	swap := swapLog(t, cfg.AuditLog)
	swap()
	ctrdtest.Delete("default", ctr)
	select {
	case <-flooded:
	case <-time.After(30 * time.Second):
		t.Fatal("the exit did not wait in the queue")
	}
	swap()
	// The exit, and the records queued after it, all written.
	recs := audittest.Wait(t, cfg.AuditLog, "the exit and the records after it", func(rs []*audit.Record) bool {
		fillers := 0
		for _, r := range rs {
			if strings.HasPrefix(r.Error, "filler") {
				fillers++
			}
		}
		return audittest.Count(rs, id, evExit) == 1 && fillers == MaxPending
	})
	// Nothing was lost: no gap, and the exit comes where it was queued,
	// before the records queued after it.
	exit := slices.IndexFunc(recs, func(r *audit.Record) bool { return r.ContainerID == id && r.Stage == audit.StageExit })
	filler := slices.IndexFunc(recs, func(r *audit.Record) bool { return strings.HasPrefix(r.Error, "filler") })
	if slices.ContainsFunc(recs, func(r *audit.Record) bool { return strings.Contains(r.Error, "were dropped") }) || exit < 0 || filler < exit {
		t.Errorf("exit at %d, first record queued after it at %d, a gap record: %v; want the exit first, no gap", exit, filler,
			slices.ContainsFunc(recs, func(r *audit.Record) bool { return strings.Contains(r.Error, "were dropped") }))
	}
	if diff := cmp.Diff([]string{evStart, evExit}, audittest.SourceStages(recs, id)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	for _, r := range recs {
		if r.ContainerID == id && r.Stage == audit.StageExit && !strings.Contains(r.Error, "written late") {
			t.Errorf("exit %q; want it said written late", r.Error)
		}
	}
	audittest.Verify(t, cfg.AuditLog)
}

// isClosed reports whether ch is closed.
func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestRecorderStopAfterWaiting: records wait for the log, the log takes
// records again and the recorder stops before its next retry: the
// waiting start is written before the stop record, which comes last.
func TestRecorderStopAfterWaiting(t *testing.T) {
	t.Parallel()
	cfgPath, cfg, d, c := busyboxDaemon(t)
	logger, hook := logtest.NewNullLogger()
	_, stop := runRecorderErr(t, d.Socket, cfgPath, func(r *Recorder) {
		r.Logger = logger
		r.MinBackoff, r.MaxBackoff = time.Minute, time.Minute // no retry before the stop
	})
	swap := swapLog(t, cfg.AuditLog)
	swap()
	id := ctrdtest.Uniq("waits")
	d.Run(t, c, "default", id, nil)
	waitAppendFailed(t, hook)
	swap()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range audittest.Records(t, cfg.AuditLog, "") {
		got = append(got, r.Stage)
	}
	if diff := cmp.Diff([]string{StageRecorderStart, audit.StageStart, StageRecorderStop}, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// waitAppendFailed waits until the recorder logged a failed append: the
// start waits for the log.
func waitAppendFailed(t *testing.T, hook *logtest.Hook) {
	t.Helper()
	waitLogged(t, hook, "audit log append failed; will retry")
}

// waitLogged waits until the recorder logged msg (30 s at most).
func waitLogged(t *testing.T, hook *logtest.Hook, msg string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !slices.ContainsFunc(hook.AllEntries(), func(e *logrus.Entry) bool {
		return e.Message == msg
	}); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the recorder did not log %q within 30 s", msg)
		}
	}
}

// TestQueuedStartEndsWithoutExitEvent: a start the audit log refused is
// queued; the container is deleted and only /containers/delete arrives
// (a shim deleted right after the kill may exit before it publishes
// /tasks/exit and /tasks/delete). The exit is queued behind the start and
// both are written. The queued start was not a known task, so
// /containers/delete found nothing and the exit was never recorded (seen
// in TestRecorderExitBehindPendingStart under load). The events are
// handed to the recorder directly: containerd decides which it loses.
func TestQueuedStartEndsWithoutExitEvent(t *testing.T) {
	t.Parallel()
	_, cfg, d, c := busyboxDaemon(t)
	log := openLog(t, cfg.AuditLog)
	r := &Recorder{Config: cfg, Log: log, Logger: ctrdtest.Logger(t, "recorder: ")}
	id := ctrdtest.Uniq("lost-exit")
	ctr, pid := d.Run(t, c, "default", id, nil)
	ctx := context.Background()
	envelope := func(ev any) *events.Envelope {
		a, err := typeurl.MarshalAny(ev)
		if err != nil {
			t.Fatal(err)
		}
		return &events.Envelope{Timestamp: time.Now(), Namespace: "default", Event: a}
	}
	// The log exists (Run's own start record) before it is swapped.
	if err := log.Append(ctx, &audit.Record{Source: audit.SourceContainerdEvents, Stage: StageRecorderStart}); err != nil {
		t.Fatal(err)
	}
	swap := swapLog(t, cfg.AuditLog)
	swap()
	r.handle(ctx, c, envelope(&eventsapi.TaskStart{ContainerID: id, Pid: pid}))
	if len(r.pending) != 1 {
		t.Fatalf("%d records queued; want the start", len(r.pending))
	}
	swap()
	ctrdtest.Delete("default", ctr)
	r.handle(ctx, c, envelope(&eventsapi.ContainerDelete{ID: id}))
	r.retryPending(ctx)
	recs := audittest.Records(t, cfg.AuditLog, "")
	if diff := cmp.Diff([]string{evStart, evExit}, audittest.SourceStages(recs, id)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestRecorderStalledDaemon stops (SIGSTOP) the daemon for longer than a
// request's deadline: its event stream does not break, and the recorder's
// walks only timed out, every resync, without a reconnection or a gap
// record. A walk that fails with a health check unanswered too now ends
// the session: once the daemon answers again the recorder reconnects and
// records the gap.
func TestRecorderStalledDaemon(t *testing.T) {
	cfgPath, cfg, d, _ := busyboxDaemon(t)
	lost := make(chan error, 16)
	connected := startRecorder(t, d.Socket, cfgPath, func(r *Recorder) {
		r.Resync = 200 * time.Millisecond
		r.StreamLost = func(err error) {
			select {
			case lost <- err:
			default:
			}
		}
	})
	pid := d.Pid()
	if pid == 0 {
		t.Fatal("no daemon process")
	}
	t.Cleanup(func() { unix.Kill(pid, unix.SIGCONT) })
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// After the signal: a walk that began before it took effect may
	// begin after a time taken before the call (the test descheduled in
	// between) and still succeed.
	stoppedAt := time.Now()
	select {
	case err := <-lost:
		if !strings.Contains(err.Error(), "stopped answering") {
			t.Errorf("stream lost: %v; want the daemon named as not answering", err)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("the recorder did not give up on a daemon stopped for 45 s")
	}
	if err := unix.Kill(pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, connected, "the recorder did not reconnect once the daemon answered again")
	recs := audittest.Wait(t, cfg.AuditLog, "the gap record", func(rs []*audit.Record) bool {
		return slices.ContainsFunc(rs, func(r *audit.Record) bool { return r.Stage == StageEventsGap })
	})
	for _, r := range recs {
		if r.Stage != StageEventsGap {
			continue
		}
		if !strings.Contains(r.Error, "stopped answering") {
			t.Errorf("gap record: %q; want it to say the daemon stopped answering", r.Error)
		}
		// From the last contact (the last walk that succeeded, the last
		// event handled), before the daemon stopped: events received and
		// not handled are discarded with the session. It began at the
		// failed walk, maybe after events it never handled.
		from, _, _ := strings.Cut(r.Error[strings.Index(r.Error, " not watched from ")+len(" not watched from "):], " to ")
		if at, err := time.Parse(time.RFC3339Nano, from); err != nil {
			t.Errorf("gap record %q: no start time: %v", r.Error, err)
		} else if at.After(stoppedAt) {
			t.Errorf("gap from %s, after the daemon was stopped (%s): events before it may be lost", at, stoppedAt.UTC())
		}
	}
}
