package recorder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	eventsapi "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/vocab"
)

// eventAt returns the envelope of event ev in namespace ns, published
// at at.
func eventAt(t *testing.T, ns string, ev any, at time.Time) *events.Envelope {
	t.Helper()
	a, err := typeurl.MarshalAny(ev)
	if err != nil {
		t.Fatal(err)
	}
	return &events.Envelope{Timestamp: at, Namespace: ns, Event: a}
}

// stopShimInInspect returns an inspection that stops the shim of
// process pid the first time it is asked for it (containerd then gets
// no answer for the task: the start is given up), and inspects every
// process as it is.
func stopShimInInspect(t *testing.T, pid int) inspect.Func {
	first := true
	return func(p int, live *inspect.LiveOnce) (*audit.Ancestry, error) {
		if first && p == pid {
			first = false
			ctrdtest.StopShim(t, p)
		}
		return inspect.ProcessWith(p, live)
	}
}

// killToZombie kills process pid, whose shim is stopped, and waits
// until it is a zombie nobody reaps.
func killToZombie(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !isZombie(t, pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the container's process is not a zombie after 10 s")
		}
	}
}

// isZombie reports whether process pid is a zombie.
func isZombie(t *testing.T, pid int) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	return s[strings.LastIndexByte(s, ')')+2] == 'Z'
}

// TestRecorderHeldEndedThenLateStart: a walk gives up container A's
// start (its shim stopped while A is inspected: containerd does not
// answer for A's task), A's process is killed (a zombie its stopped
// shim does not reap), and the next walk finds it gone and records A's
// start without namespaces and its exit ([Recorder.endHeld]); A's start
// event, handled after that walk (queued behind it, or published late
// by the slow shim), then its exit event. The start event recorded A's
// start a second time ("process exited during inspection": the task
// was not among the known, and the log's search does not match a start
// without namespaces to a process), and the exit event a second exit.
// Now A has one start and one exit.
func TestRecorderHeldEndedThenLateStart(t *testing.T) {
	t.Parallel()
	_, cfg, d, c := busyboxDaemon(t)
	log := openLog(t, cfg.AuditLog)
	id := ctrdtest.Uniq("held-late-start")
	published := time.Now()
	_, pid := d.Run(t, c, "default", id, nil)
	var inspected time.Time
	stopShim := stopShimInInspect(t, int(pid))
	r := &Recorder{Config: cfg, Log: log, Logger: ctrdtest.Logger(t, "recorder: "), Inspect: func(p int, live *inspect.LiveOnce) (*audit.Ancestry, error) {
		if inspected.IsZero() {
			inspected = time.Now()
		}
		return stopShim(p, live)
	}}
	ctx := context.Background()
	if err := r.walk(ctx, c); err != nil {
		t.Logf("walk 1: %v", err)
	}
	if _, ok := r.held[taskKey{"default", id, int(pid)}]; !ok || len(r.held) != 1 {
		t.Fatalf("held after the first walk: %v; want A", r.held)
	}
	// Dated when the walk listed it, not when containerd's answer timed
	// out (2 s later).
	if h := r.held[taskKey{"default", id, int(pid)}]; h.event || h.at.wall.After(inspected) {
		t.Errorf("A held as listed by a walk at %s (event %v); want before it was inspected, at %s", h.at.wall.UTC(), h.event, inspected.UTC())
	}
	killToZombie(t, int(pid))
	if err := r.walk(ctx, c); err != nil {
		t.Logf("walk 2: %v", err)
	}
	if len(r.held) != 0 {
		t.Fatalf("held after the second walk: %v; want none (A ended)", r.held)
	}
	startEventThenExit(t, r, c, id, pid, published)
	recs := audittest.Records(t, cfg.AuditLog, id)
	if diff := cmp.Diff([]string{evStart, evExit}, audittest.SourceStages(recs, id)); diff != "" {
		t.Errorf("A's records (-want +got):\n%s", diff)
	}
	if len(r.ended) != 0 {
		t.Errorf("ended after A's exit event: %v; want none", r.ended)
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestRecorderHeldStart: the recorder gives up container A's start while
// it runs on (containerd does not answer for A's task: its shim is
// stopped while A's start event is handled, and A's process seems to
// start after the event, so containerd is asked). The start was held
// until the next walk only, which did not list the task (its shim does
// not answer) and took it for done, the walks then left to the resync;
// a stop before or after that walk wrote no gap: the log had the
// recorder's start and stop and nothing of A. And a task that ended
// before a walk recorded its start (found gone by a walk, or by its exit
// event) was never in the log, its exit event finding no task known. Now
// a stop names A in a gap record from before A's start; a task that ends
// gets its start recorded without namespaces, saying why, and its exit.
func TestRecorderHeldStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		// walk: the walks are retried soon (else no walk before the
		// test's end); end: how A's task ends ("" for a stop).
		walk bool
		end  string
	}{
		{"stop before a walk", false, ""},
		{"stop after a walk", true, ""},
		{"ended, found by a walk", true, "walk"},
		{"ended, its exit event", false, "event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfgPath, cfg, d, c := busyboxDaemon(t)
			logger := ctrdtest.Logger(t, "recorder: ")
			hook := logtest.NewLocal(logger)
			inA, release := make(chan int, 1), make(chan struct{})
			var waitWalks func(int)
			_, stop := runRecorderCtx(t, context.Background(), d.Socket, cfgPath, func(r *Recorder) {
				r.Logger = logger
				r.Resync = time.Hour
				if !tc.walk {
					r.MinBackoff, r.MaxBackoff = time.Hour, time.Hour
				}
				waitWalks = countWalks(t, r)
				r.Inspect = holdFirstInspect(inA, release, true)
			})
			idA := ctrdtest.Uniq("held-a")
			aBefore := time.Now()
			_, pidA := d.Run(t, c, "default", idA, nil)
			select {
			case pid := <-inA:
				if pid != int(pidA) {
					t.Fatalf("first process inspected: %d; want A's, %d", pid, pidA)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("A's start not handled")
			}
			shim := parentPID(t, int(pidA))
			ctrdtest.StopShim(t, int(pidA)) // every thread stopped: containerd cannot answer for A
			close(release)
			waitLogged(t, hook, "start not recorded yet; retrying at the next walk")
			switch {
			case tc.end == "walk":
				// A zombie its stopped shim does not reap.
				if err := syscall.Kill(int(pidA), syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			case tc.end == "event":
				if err := syscall.Kill(int(pidA), syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Kill(shim, syscall.SIGCONT); err != nil {
					t.Fatal(err)
				}
			case tc.walk:
				waitWalks(1)
			}
			if tc.end != "" {
				recs := audittest.Wait(t, cfg.AuditLog, "A's start and exit", func(rs []*audit.Record) bool { return audittest.Count(rs, idA, evExit) > 0 })
				if diff := cmp.Diff([]string{evStart, evExit}, audittest.SourceStages(recs, idA)); diff != "" {
					t.Fatalf("A's records (-want +got):\n%s", diff)
				}
				i := slices.IndexFunc(recs, func(r *audit.Record) bool { return r.ContainerID == idA })
				if start := recs[i]; start.Ancestry != nil || !strings.Contains(start.Error, "not inspected: containerd did not answer for the task") {
					t.Errorf("A's start: ancestry %v, error %q; want none, saying why", start.Ancestry != nil, start.Error)
				}
				if exit := recs[slices.IndexFunc(recs, func(r *audit.Record) bool { return r.ContainerID == idA && r.Stage == audit.StageExit })]; exit.Ref == nil || exit.Ref.Seq != recs[i].Seq {
					t.Errorf("A's exit refers to %+v; want its start, seq %d", exit.Ref, recs[i].Seq)
				}
				audittest.Verify(t, cfg.AuditLog)
				return
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			recs := audittest.Records(t, cfg.AuditLog, "")
			t.Logf("stages: %v", audittest.Stages(recs))
			if n := audittest.Count(recs, idA, evStart); n != 0 {
				t.Fatalf("%d start records of A; want none (its shim stopped)", n)
			}
			gap := gapBeforeStop(t, recs)
			t.Logf("gap: %s", gap.Error)
			if f, _ := gapWindow(t, gap); f.After(aBefore) || !strings.Contains(gap.Error, "container "+idA+" in namespace default") {
				t.Errorf("gap from %s (%q); want it from before A's start (%s), naming A", f.UTC(), gap.Error, aBefore.UTC())
			}
			audittest.Verify(t, cfg.AuditLog)
		})
	}
}

// TestRecorderHeldStopDisconnected: container A's start is given up
// (its shim stopped while its start event is handled) and held, then
// containerd goes away (the stream is lost) and the recorder is
// stopped before it reconnects. The stop's gap record came from the
// stream lost and did not name A (the session had ended already, and
// only a stop during a session named the starts held). Now it names A
// and starts before A's start.
func TestRecorderHeldStopDisconnected(t *testing.T) {
	t.Parallel()
	cfgPath, cfg, d, c := busyboxDaemon(t)
	logger := ctrdtest.Logger(t, "recorder: ")
	hook := logtest.NewLocal(logger)
	inA, release := make(chan int, 1), make(chan struct{})
	lost := make(chan error, 16)
	_, stop := runRecorderCtx(t, context.Background(), d.Socket, cfgPath, func(r *Recorder) {
		r.Logger = logger
		r.Resync = time.Hour
		r.MinBackoff, r.MaxBackoff = time.Hour, time.Hour // no walk, no reconnection
		r.Inspect = holdFirstInspect(inA, release, true)
		r.StreamLost = func(err error) {
			select {
			case lost <- err:
			default:
			}
		}
	})
	idA := ctrdtest.Uniq("held-disc")
	aBefore := time.Now()
	_, pidA := d.Run(t, c, "default", idA, nil)
	select {
	case <-inA:
	case <-time.After(30 * time.Second):
		t.Fatal("A's start not handled")
	}
	ctrdtest.StopShim(t, int(pidA))
	close(release)
	waitLogged(t, hook, "start not recorded yet; retrying at the next walk")
	d.Stop(t)
	select {
	case err := <-lost:
		t.Logf("stream lost: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("stream not lost 30 s after containerd stopped")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	recs := audittest.Records(t, cfg.AuditLog, "")
	t.Logf("stages: %v", audittest.Stages(recs))
	gap := gapBeforeStop(t, recs)
	t.Logf("gap: %s", gap.Error)
	if f, _ := gapWindow(t, gap); f.After(aBefore) || !strings.Contains(gap.Error, "container "+idA+" in namespace default") || !strings.HasSuffix(gap.Error, ": the recorder stopped") {
		t.Errorf("gap from %s (%q); want it from before A's start (%s), naming A", f.UTC(), gap.Error, aBefore.UTC())
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestRecorderHeldContactNotPinned: a start given up and held whose
// task runs on, its shim never answering (a held entry for a live
// process containerd does not list), held back the session's last
// contact for good, session after session: the gap record of a stream
// lost after a second reconnection started before the first, claiming
// the stretch watched between them unwatched, and named no start held.
// Now each stream loss's gap starts in its own session and names the
// start held, and only the stop's gap starts before the held start.
func TestRecorderHeldContactNotPinned(t *testing.T) {
	t.Parallel()
	cfgPath, cfg, d, _ := busyboxDaemon(t)
	pid, st := sleeper(t)
	connected, stop := runRecorderCtx(t, context.Background(), d.Socket, cfgPath, func(r *Recorder) {
		r.held = map[taskKey]heldStart{{"default", "hung-shim", pid}: {at: whenOf(time.Now()), event: true, startTime: st, err: errUnverified}}
	})
	var restarts []time.Time
	for range 2 {
		restarts = append(restarts, time.Now())
		d.Restart(t)
		waitConnected(t, connected, "no reconnection")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	recs := audittest.Records(t, cfg.AuditLog, "")
	t.Logf("stages: %v", audittest.Stages(recs))
	var gaps []*audit.Record
	for _, x := range recs {
		if x.Stage == StageEventsGap {
			gaps = append(gaps, x)
		}
	}
	if len(gaps) != 3 {
		t.Fatalf("%d gap records; want 3 (2 restarts, the stop)", len(gaps))
	}
	for i, g := range gaps[:2] {
		if from, _ := gapWindow(t, g); i > 0 && from.Before(restarts[i-1]) {
			t.Errorf("gap record %d (%q) starts before restart %d (%s): the stretch watched since is claimed unwatched", i+1, g.Error, i, restarts[i-1].UTC())
		}
		// Named, still kept.
		if !strings.Contains(g.Error, "container hung-shim in namespace default") {
			t.Errorf("gap record %d (%q) does not name the held start", i+1, g.Error)
		}
	}
	stopGap := gapBeforeStop(t, recs)
	if from, _ := gapWindow(t, stopGap); from.After(restarts[0]) || !strings.Contains(stopGap.Error, "container hung-shim in namespace default") {
		t.Errorf("stop's gap record %q; want it from before the first restart (%s), naming the held start", stopGap.Error, restarts[0].UTC())
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestMetaContainerGone: meta of a container containerd does not have
// is none, not a failure to ask. The client's error is native already,
// and errgrpc.ToNative, which meta applied to it, made it unknown: a
// container deleted was judged as one whose labels containerd did not
// give.
func TestMetaContainerGone(t *testing.T) {
	t.Parallel()
	_, _, _, c := busyboxDaemon(t)
	md, err := meta(namespaces.WithNamespace(context.Background(), "default"), c, "no-such-container")
	if md != nil || err != nil {
		t.Errorf("meta of no container: %v, %v; want none, no error", md, err)
	}
}

// TestRecorderHeldMetaKept: a walk gives up container A's start
// (containerd answered for the container, with its spec, not for its
// task: its shim stopped while A is inspected); A is killed and its
// container deleted (ctr run --rm, docker run --rm) before its exit
// event is handled. A's start, recorded then without namespaces
// ([Recorder.endHeld]), was judged under the default block, its
// annotations asked for again and gone; now under the block its
// annotations select, read when it was given up.
func TestRecorderHeldMetaKept(t *testing.T) {
	t.Parallel()
	_, cfg := ctrdtest.ConfigWith(t, `"on_error": "allow",
	"deadline_ms": 3000,
	"trusted_selectors": {"annotations": ["team"]},
	"record_annotations": ["team"],
	"policies": [{"name": "team-x", "match": {"annotations": {"team": "x"}}, "mode": "audit", "rules": {"require_user_namespace": true}}],
	"default": {"name": "default", "mode": "audit", "rules": {"require_user_namespace": true, "require_pid_namespace": true}}`)
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	c := d.Client(t)
	d.ImportBusybox(t, c, "default")
	log := openLog(t, cfg.AuditLog)
	id := ctrdtest.Uniq("held-meta")
	ctr, pid := d.Run(t, c, "default", id, &ctrdtest.RunOpts{SpecOpts: []oci.SpecOpts{oci.WithAnnotations(map[string]string{"team": "x"})}})
	shim := parentPID(t, int(pid))
	r := &Recorder{Config: cfg, Log: log, Logger: ctrdtest.Logger(t, "recorder: "), Inspect: stopShimInInspect(t, int(pid))}
	ctx := context.Background()
	if err := r.walk(ctx, c); err != nil {
		t.Logf("walk: %v", err)
	}
	if len(r.held) != 1 {
		t.Fatalf("held after the walk: %v; want A", r.held)
	}
	killToZombie(t, int(pid))
	if err := syscall.Kill(shim, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	ctrdtest.Delete("default", ctr)
	r.handle(ctx, c, eventAt(t, "default", &eventsapi.TaskExit{ContainerID: id, ID: id, Pid: pid, ExitStatus: 137}, time.Now()))
	recs := audittest.Records(t, cfg.AuditLog, id)
	if diff := cmp.Diff([]string{evStart, evExit}, audittest.SourceStages(recs, id)); diff != "" {
		t.Fatalf("A's records (-want +got):\n%s", diff)
	}
	if start := recs[0]; start.Policy != "team-x" || start.Annotations["team"] != "x" || start.Verdict != audit.VerdictAllow {
		t.Errorf("A's start: block %q, annotations %v, verdict %s (%q); want team-x, team=x, allow", start.Policy, start.Annotations, start.Verdict, start.Error)
	}
	audittest.Verify(t, cfg.AuditLog)
}

// onLog is a logrus hook that calls fire, in the logging goroutine,
// for each entry with message msg.
type onLog struct {
	msg  string
	fire func()
}

func (h onLog) Levels() []logrus.Level { return logrus.AllLevels }

func (h onLog) Fire(e *logrus.Entry) error {
	if e.Message == h.msg {
		h.fire()
	}
	return nil
}

// TestRecorderHeldStartTimeAsked: container A's start event is handled
// with A's process seeming to start after the event (containerd is
// asked), containerd stopped (SIGSTOP) once A is inspected, and A
// killed (its shim reaps it) as containerd is asked, whose answer does
// not come. The start given up kept the start time read after the
// request timed out: none (a reused PID: the new process's), so that
// its task's end could no longer be told from a process that runs on.
// Now it keeps the one read before containerd was asked, A's.
func TestRecorderHeldStartTimeAsked(t *testing.T) {
	t.Parallel()
	_, cfg, d, c := busyboxDaemon(t)
	log := openLog(t, cfg.AuditLog)
	id := ctrdtest.Uniq("held-st")
	published := time.Now().Add(-time.Hour) // A seems to start after it
	_, pid := d.Run(t, c, "default", id, nil)
	st, err := inspect.StartTime(int(pid))
	if err != nil {
		t.Fatal(err)
	}
	daemon := d.Pid()
	t.Cleanup(func() { syscall.Kill(daemon, syscall.SIGCONT) })
	logger := ctrdtest.Logger(t, "recorder: ")
	logger.AddHook(onLog{"process start not clearly before the event; asking containerd", func() {
		if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
			t.Error(err)
			return
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, err := inspect.StartTime(int(pid)); err != nil {
				return // reaped by its shim
			}
			if time.Now().After(deadline) {
				t.Error("A's process not reaped 10 s after SIGKILL")
				return
			}
		}
	}})
	r := &Recorder{Config: cfg, Log: log, Logger: logger, Inspect: func(p int, live *inspect.LiveOnce) (*audit.Ancestry, error) {
		if err := syscall.Kill(daemon, syscall.SIGSTOP); err != nil {
			t.Error(err)
		}
		return inspect.ProcessWith(p, live)
	}}
	if r.handle(context.Background(), c, eventAt(t, "default", &eventsapi.TaskStart{ContainerID: id, Pid: pid}, published)) {
		t.Fatal("A's start not given up")
	}
	h, ok := r.held[taskKey{"default", id, int(pid)}]
	if !ok || h.startTime != st {
		t.Errorf("held: %v; want A's start, with its process start time %d", r.held, st)
	}
}

// TestHeldNamesBounded: the stop's gap record with many starts held
// (Kubernetes IDs: 64 hex digits, namespace k8s.io), after the cause of
// a stop while busy. heldNames named 20, each with its full cause (about
// 6.9 KB), and the record was cut at 4096 bytes: the count of starts not
// named ("and N more") and what happened ("the recorder stopped") were
// lost. Now the names stop at about 2.5 KB, the count follows, and the
// record ends with what happened.
func TestHeldNamesBounded(t *testing.T) {
	t.Parallel()
	_, cfg := ctrdtest.HookConfig(t)
	log := openLog(t, cfg.AuditLog)
	r := &Recorder{Config: cfg, Log: log, held: map[taskKey]heldStart{}}
	now := time.Now()
	const n = 30
	for i := range n {
		id := fmt.Sprintf("%064x", i+1)
		err := fmt.Errorf("%w %s: %w", errUnverified, id, errors.New("rpc error: code = DeadlineExceeded desc = context deadline exceeded"))
		r.held[taskKey{"k8s.io", id, 100000 + i}] = heldStart{at: whenOf(now.Add(time.Duration(i) * time.Millisecond)), event: true, err: err}
	}
	r.gap(context.Background(), now.Add(-time.Second), fmt.Errorf("%w; %w: %s", errStopBusy, errStopHeld, r.heldNames()), "the recorder stopped")
	recs := audittest.Records(t, cfg.AuditLog, "")
	gap := recs[len(recs)-1]
	t.Logf("gap record: %d bytes", len(gap.Error))
	named := strings.Count(gap.Error, " in namespace k8s.io, pid ")
	if named == 0 || !strings.Contains(gap.Error, fmt.Sprintf(", and %d more", n-named)) || !strings.HasSuffix(gap.Error, "): the recorder stopped") || len(gap.Error) > 4096 {
		t.Errorf("gap record (%d bytes) names %d of %d held starts; want some, then how many more, ending with what happened: %q", len(gap.Error), named, n, gap.Error)
	}
	// The oldest first.
	if first := fmt.Sprintf("container %064x in namespace", 1); !strings.Contains(gap.Error, first) {
		t.Errorf("gap record does not name the oldest held start: %q", gap.Error)
	}
	// A cause longer than the record is cut, not what happened.
	r.gap(context.Background(), now.Add(-time.Second), errors.New(strings.Repeat("x", 5000)), "the recorder stopped")
	recs = audittest.Records(t, cfg.AuditLog, "")
	if gap := recs[len(recs)-1]; len(gap.Error) > 4096 || !strings.HasSuffix(gap.Error, "xxx): the recorder stopped") {
		t.Errorf("gap record with a long cause: %d bytes, ending %q; want at most 4096, ending with what happened", len(gap.Error), gap.Error[max(0, len(gap.Error)-60):])
	}
}

// TestRecorderHeldWalksBackOff: a start held whose task runs on, its
// shim never answering (a held entry for a live process containerd does
// not list), had every walk retried with backoff for as long (every
// MaxBackoff, 5 s by default, for good). Now the walks are retried so
// for heldRetryWalks walks with the same starts held, then left to the
// resync, until the starts held change.
func TestRecorderHeldWalksBackOff(t *testing.T) {
	t.Parallel()
	r, c, _, hold := hungShim(t)
	var failing []bool
	walks := func(n int) {
		for range n {
			if err := r.walk(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			failing = append(failing, r.failing)
		}
	}
	hold("hung-shim")
	walks(heldRetryWalks + 2)
	// Another start held: retried with backoff again.
	hold("hung-shim-2")
	walks(heldRetryWalks + 1)
	var want []bool
	for _, n := range []int{heldRetryWalks + 2, heldRetryWalks + 1} {
		for i := range n {
			want = append(want, i < heldRetryWalks)
		}
	}
	if diff := cmp.Diff(want, failing); diff != "" {
		t.Errorf("walks retried with backoff, after each walk (-want +got):\n%s", diff)
	}
	if len(r.held) != 2 {
		t.Errorf("held: %v; want both kept", r.held)
	}
}

// TestRecorderHeldWalksPostponed: walks postponed while the log takes no
// records (the records waiting not written) try no start held, and do
// not count among the heldRetryWalks retried with backoff: once the log
// takes records again, the walks are retried so as for a start just
// held. They counted: a log unwritable for a few retries left the starts
// held to the resync before any walk had tried them.
func TestRecorderHeldWalksPostponed(t *testing.T) {
	t.Parallel()
	r, c, path, hold := hungShim(t)
	hold("hung-shim")
	if err := r.Log.Append(context.Background(), &audit.Record{Source: audit.SourceContainerdEvents, Stage: StageRecorderStart}); err != nil {
		t.Fatal(err)
	}
	swap := swapLog(t, path)
	swap()
	r.keep(pendingRecord{other: &audit.Record{Source: audit.SourceContainerdEvents, Stage: StageEventsGap, Error: "waiting"}}, errors.New("not writable"))
	for range heldRetryWalks + 2 {
		if err := r.walk(context.Background(), c); !errors.Is(err, errWalkPostponed) {
			t.Fatalf("walk with the log not writable: %v; want it postponed", err)
		}
	}
	swap()
	var failing, want []bool
	for i := range heldRetryWalks + 1 {
		if err := r.walk(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		failing = append(failing, r.failing)
		want = append(want, i < heldRetryWalks)
	}
	if diff := cmp.Diff(want, failing); diff != "" {
		t.Errorf("walks retried with backoff, after each walk once the log took records (-want +got):\n%s", diff)
	}
	if len(r.pending) != 0 || audittest.Count(audittest.Records(t, path, ""), "", audit.SourceContainerdEvents+"/"+StageEventsGap) != 1 {
		t.Errorf("%d records waiting; want the one written", len(r.pending))
	}
}

// hungShim returns a recorder and a daemon's client, the recorder's log
// path, and a function that holds a start of the given container ID for
// a process (a sleep) that runs on and that the daemon does not list:
// a start given up whose shim never answers.
func hungShim(t *testing.T) (*Recorder, *client.Client, string, func(id string)) {
	t.Helper()
	_, cfg, _, c := busyboxDaemon(t)
	pid, st := sleeper(t)
	r := &Recorder{Config: cfg, Log: openLog(t, cfg.AuditLog), Logger: ctrdtest.Logger(t, "recorder: ")}
	return r, c, cfg.AuditLog, func(id string) {
		r.hold(taskKey{"default", id, pid}, heldStart{at: whenOf(time.Now()), err: errUnverified, startTime: st})
	}
}

// TestStartEventPIDTakenBeforeEvent: a shim may reap a short task's
// process before it publishes the start, and another user's process can
// take the PID in between: it started before the event, and was recorded
// with its namespaces as the container's. A process that is not a
// containerd shim's child is checked with containerd, which runs no such
// task: the start is recorded without namespaces. A container's own
// process (its shim's child) still needs no question.
func TestStartEventPIDTakenBeforeEvent(t *testing.T) {
	t.Parallel()
	_, cfg, d, c := busyboxDaemon(t)
	log := openLog(t, cfg.AuditLog)
	other := nstest.Start(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}, nstest.RequireCmd(t, "sleep"), "1000")
	id := ctrdtest.Uniq("taken")
	_, pid := d.Run(t, c, "default", id, nil)
	// containerd's mount namespace, as the recorder reads it from the
	// socket's peer.
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(d.Pid())+"/ns/mnt", &st); err != nil {
		t.Fatal(err)
	}
	mnt := &mntNS{st.Dev, st.Ino}
	if !shimChild(int(pid), "default", id, mnt) || shimChild(int(pid), "default", id+"x", mnt) || shimChild(int(pid), "other", id, mnt) ||
		shimChild(other.Pid, "default", id, mnt) || shimChild(int(pid), "default", id, nil) || shimChild(int(pid), "default", id, &mntNS{st.Dev, st.Ino + 1}) {
		t.Fatalf("shimChild: container's process %v, of another ID, namespace, mount namespace %v %v %v, the test's child %v; want true, then false",
			shimChild(int(pid), "default", id, mnt), shimChild(int(pid), "default", id+"x", mnt), shimChild(int(pid), "other", id, mnt),
			shimChild(int(pid), "default", id, &mntNS{st.Dev, st.Ino + 1}), shimChild(other.Pid, "default", id, mnt))
	}
	// A process of a container in the host's PID namespace that a
	// double fork left to that container's shim: a shim's child, of
	// another task (the way to take a PID a short task left).
	hostPID := ctrdtest.Uniq("hostpid")
	_, hpid := d.Run(t, c, "default", hostPID, &ctrdtest.RunOpts{Args: []string{"sh", "-c", "(sleep 301 &); sleep 300"},
		SpecOpts: []oci.SpecOpts{oci.WithHostNamespace(specs.PIDNamespace), oci.WithUIDGID(1000, 1000)}})
	orphan := 0
	for deadline := time.Now().Add(10 * time.Second); orphan == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no orphan of container %s (pid %d) adopted by its shim", hostPID, hpid)
		}
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			p, err := strconv.Atoi(e.Name())
			if err != nil || p == int(hpid) {
				continue
			}
			if cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline"); string(cmd) == "sleep\x00301\x00" && shimChild(p, "default", hostPID, mnt) {
				orphan = p
			}
		}
	}
	// A root container's process that names itself a shim, with the
	// arguments of the task it claims, and starts the process that
	// takes the PID.
	ghost, ghost2, ghost3 := ctrdtest.Uniq("ghost"), ctrdtest.Uniq("ghost"), ctrdtest.Uniq("ghost")
	fake := ctrdtest.Uniq("fakeshim")
	d.Run(t, c, "default", fake, &ctrdtest.RunOpts{Args: []string{"sh", "-c", "printf containerd-shim > /proc/$$/comm; sleep 302 & wait", "-namespace", "default", "-id", ghost3}})
	posing := 0
	for deadline := time.Now().Add(10 * time.Second); posing == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no child of container %s's process posing as a shim", fake)
		}
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			if cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline"); string(cmd) == "sleep\x00302\x00" {
				posing, _ = strconv.Atoi(e.Name())
			}
		}
	}
	time.Sleep(3 * clockTick) // all started well before the events
	r := &Recorder{Config: cfg, Log: log, Logger: ctrdtest.Logger(t, "recorder: ")}
	// Read from the socket's peer, as each session does.
	if err := r.probeSocket(vocab.ContainerdAddress(d.Socket)); err != nil || r.daemonMnt.Load() == nil || *r.daemonMnt.Load() != *mnt {
		t.Fatalf("probeSocket: %v, containerd's mount namespace %v; want %v", err, r.daemonMnt.Load(), mnt)
	}
	for _, ev := range []*eventsapi.TaskStart{{ContainerID: ghost, Pid: uint32(other.Pid)}, {ContainerID: ghost2, Pid: uint32(orphan)}, {ContainerID: ghost3, Pid: uint32(posing)}, {ContainerID: id, Pid: pid}} {
		if !r.handle(context.Background(), c, eventAt(t, "default", ev, time.Now())) {
			t.Fatalf("start of %s not handled", ev.ContainerID)
		}
	}
	for _, rec := range audittest.Records(t, cfg.AuditLog, "") {
		switch rec.ContainerID {
		case ghost, ghost2, ghost3:
			if rec.Ancestry != nil || !strings.Contains(rec.Error, "is gone") {
				t.Errorf("start of %s (pid %d, another user's process; %d, another container's; %d, a child of a process posing as its shim): ancestry %v, error %q; want none, the task gone",
					rec.ContainerID, other.Pid, orphan, posing, rec.Ancestry != nil, rec.Error)
			}
		case id:
			if rec.Ancestry == nil || rec.PID != int(pid) {
				t.Errorf("start of %s: %+v; want its process's namespaces", id, rec)
			}
		}
	}
}
