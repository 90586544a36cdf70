package recorder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	eventsapi "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// takePID has a process started now take PID pid (free now), through
// ns_last_pid: a sleep of the test's, or, when another process's fork
// came between the write and the test's (another test package's), that
// process, which the test reads as a reuse all the same (were it gone
// by then, the PID would have no process, the case
// TestLateStartOfEndedTask covers, with the same records).
func takePID(t *testing.T, pid int) {
	t.Helper()
	cmd, err := nstest.TakePID(pid, "/bin/busybox", "sleep", "60")
	if errors.Is(err, nstest.ErrStolen) {
		t.Logf("PID %d taken by another process", pid)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

// walkKnows walks once and fails unless the walk made task id (process
// pid) of namespace default known, with its start time.
func walkKnows(t *testing.T, r *Recorder, c *client.Client, id string, pid uint32) {
	t.Helper()
	if err := r.walk(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if st := r.known[taskKey{"default", id, int(pid)}]; st == 0 {
		t.Fatalf("known after the walk: %v; want %s with its start time", r.known, id)
	}
}

// deleteReaped deletes container ctr (namespace default) and fails
// unless its process, pid, is gone then (reaped).
func deleteReaped(t *testing.T, ctr client.Container, pid uint32) {
	t.Helper()
	ctrdtest.Delete("default", ctr)
	if _, err := inspect.StartTime(int(pid)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the container's process after the delete: %v; want it gone", err)
	}
}

// startEventThenExit handles the start event of task id (process pid,
// namespace default), published at published (it comes late), then
// its exit event.
func startEventThenExit(t *testing.T, r *Recorder, c *client.Client, id string, pid uint32, published time.Time) {
	t.Helper()
	ctx := context.Background()
	r.handle(ctx, c, eventAt(t, "default", &eventsapi.TaskStart{ContainerID: id, Pid: pid}, published))
	r.handle(ctx, c, eventAt(t, "default", &eventsapi.TaskExit{ContainerID: id, ID: id, Pid: pid, ExitStatus: 137}, time.Now()))
}

// startThenExit fails unless the log at path holds a start then an exit
// of container id, the recorder's, and verifies.
func startThenExit(t *testing.T, path, id string) {
	t.Helper()
	recs := audittest.Records(t, path, "")
	if diff := cmp.Diff([]string{evStart, evExit}, audittest.SourceStages(recs, id)); diff != "" {
		t.Errorf("records of %s (-want +got):\n%s\n%s", id, diff, audittest.Listing(recs))
	}
	audittest.Verify(t, path)
}

// TestLateStartOfEndedTask: a walk recorded task A's start; A ended, its
// process reaped, before A's start event was handled (queued behind the
// walk), while the audit log took no records. The event recorded A's
// start again: the log's search could not run, so a second start was
// queued, with start time 0 (the process gone), which replaced the
// known one. A's exit queued behind it; records beyond MaxPending then
// pushed both out of the queue, and the exit, kept apart but made strict
// by its dropped start, matched no start: lost. (Seen once in a
// clean-clone run of TestRecorderQueuedExitDropped, through a walk that
// listed A after its process was reaped.) Now the event finds A known,
// its process gone, and queues nothing; the exit is written.
func TestLateStartOfEndedTask(t *testing.T) {
	t.Parallel()
	_, cfg, d, c := busyboxDaemon(t)
	r := &Recorder{Config: cfg, Log: openLog(t, cfg.AuditLog), Logger: ctrdtest.Logger(t, "recorder: ")}
	id := ctrdtest.Uniq("late-start-ended")
	published := time.Now()
	ctr, pid := d.Run(t, c, "default", id, nil)
	ctx := context.Background()
	walkKnows(t, r, c, id, pid)
	swap := swapLog(t, cfg.AuditLog)
	swap()
	deleteReaped(t, ctr, pid)
	r.handle(ctx, c, eventAt(t, "default", &eventsapi.TaskStart{ContainerID: id, Pid: pid}, published))
	if len(r.pending) != 0 {
		t.Errorf("%d records queued by A's late start event; want none (recorded already)", len(r.pending))
	}
	r.handle(ctx, c, eventAt(t, "default", &eventsapi.TaskExit{ContainerID: id, ID: id, Pid: pid, ExitStatus: 137}, time.Now()))
	queueFillers(r, MaxPending)
	swap()
	r.retryPending(ctx)
	startThenExit(t, cfg.AuditLog, id)
}

// TestLateStartAfterPIDReused: a walk recorded task A's start; A ended
// and its PID went to an unrelated process (started after A's start
// event was published) before A's late start event was handled. The
// event is A's, recorded already: it must record nothing. A's exit
// event then ends A once. (It recorded A's start again, without
// namespaces and with the other process's start time, which then stood
// for A's: two starts and two exits.)
func TestLateStartAfterPIDReused(t *testing.T) {
	_, cfg, d, c := busyboxDaemon(t)
	r := &Recorder{Config: cfg, Log: openLog(t, cfg.AuditLog), Logger: ctrdtest.Logger(t, "recorder: ")}
	id := ctrdtest.Uniq("late-start-reused")
	ctr, pid := d.Run(t, c, "default", id, nil)
	published := time.Now()
	walkKnows(t, r, c, id, pid)
	deleteReaped(t, ctr, pid)
	time.Sleep(50 * time.Millisecond) // the new process starts surely after the event
	takePID(t, int(pid))
	startEventThenExit(t, r, c, id, pid, published)
	startThenExit(t, cfg.AuditLog, id)
}

// TestLostExitNotOfUninspectedRestart: task A's start was recorded
// with namespaces; A ended with its exit and delete events lost, and the
// container was started again as task B, whose start event came first
// and whose start was recorded without namespaces (inspection failed).
// The next walk records A's exit: it must end A's start, not B's; B's
// exit ends B's, before that walk or after it. (A's exit ended B's
// start, the container's last without namespaces; B's exit found it
// ended, and A's start stayed open. With B ended first, A's exit found
// B's start ended and was not written: a first fix looked further only
// with a later task known.)
func TestLostExitNotOfUninspectedRestart(t *testing.T) {
	for _, endedFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("B ended first=%v", endedFirst), func(t *testing.T) {
			_, cfg, d, c := busyboxDaemon(t)
			var victim atomic.Int64
			r := &Recorder{Config: cfg, Log: openLog(t, cfg.AuditLog), Logger: ctrdtest.Logger(t, "recorder: "),
				Inspect: inspectFailsFor(&victim)}
			id := ctrdtest.Uniq("lost-exit-restart")
			ctr, pidA := d.Run(t, c, "default", id, nil)
			walkKnows(t, r, c, id, pidA)
			// A's exit and delete events lost; B's start event handled.
			_, pidB := ctrdtest.RestartTask(t, "default", ctr)
			victim.Store(int64(pidB))
			handEvent(t, r, c, &eventsapi.TaskStart{ContainerID: id, Pid: pidB})
			endB := func() {
				ctrdtest.DeleteTask("default", ctr)
				handEvent(t, r, c, &eventsapi.TaskExit{ContainerID: id, ID: id, Pid: pidB, ExitStatus: 137})
			}
			if endedFirst {
				endB()
			}
			if err := r.walk(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			if !endedFirst {
				endB()
			}
			recs := audittest.Records(t, cfg.AuditLog, "")
			if diff := cmp.Diff([]string{evStart, evStart, evExit, evExit}, audittest.SourceStages(recs, id)); diff != "" {
				t.Fatalf("records (-want +got):\n%s\n%s", diff, audittest.Listing(recs))
			}
			starts, ended := endsOf(t, cfg.AuditLog, id)
			if ended[starts[0]] == 0 || ended[starts[1]] == 0 {
				t.Errorf("A's start ended by %d, B's by %d; want each by its exit\n%s", ended[starts[0]], ended[starts[1]], audittest.Listing(recs))
			}
			audittest.Verify(t, cfg.AuditLog)
		})
	}
}

// TestDroppedExitEndsNRIStart: the NRI plugin recorded task
// A's start (the recorder's exit ends it). A's start event came late,
// after A's process was reaped, while the log took no records: the
// recorder queued a start of its own (start time 0: the process gone;
// the log's search, which finds the plugin's, could not run) and then
// A's exit. Records beyond MaxPending pushed both out of the queue. The
// exit, kept apart, must still end the plugin's start of A's process.
// (Strict, with no start time, it matched no start: lost, and not
// counted in the gap record.)
func TestDroppedExitEndsNRIStart(t *testing.T) {
	_, cfg, d, c := busyboxDaemon(t)
	log := openLog(t, cfg.AuditLog)
	r := &Recorder{Config: cfg, Log: log, Logger: ctrdtest.Logger(t, "recorder: "), seeded: true}
	id := ctrdtest.Uniq("nri-late-start")
	published := time.Now()
	ctr, pid := d.Run(t, c, "default", id, nil)
	st, err := inspect.StartTime(int(pid))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := log.Append(ctx, &audit.Record{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: id, Ancestry: &audit.Ancestry{PID: int(pid), StartTime: st}}); err != nil {
		t.Fatal(err)
	}
	swap := swapLog(t, cfg.AuditLog)
	swap()
	deleteReaped(t, ctr, pid)
	startEventThenExit(t, r, c, id, pid, published)
	queueFillers(r, MaxPending)
	swap()
	r.retryPending(ctx)
	if ends := exitsOf(t, cfg.AuditLog, id); len(ends) != 1 || ends[0] != 1 {
		t.Errorf("exits of A end starts %v; want [1], the NRI plugin's start\n%s", ends, audittest.Listing(audittest.Records(t, cfg.AuditLog, "")))
	}
}

// fsImmutable is FS_IMMUTABLE_FL (linux/fs.h), which x/sys/unix lacks.
const fsImmutable = 0x10

// freezeLog returns a function that makes the log at path immutable
// (readable, not writable: as on a full or read-only disk) or, called
// again, writable again; the test ends with it writable.
func freezeLog(t *testing.T, path string) func() {
	t.Helper()
	set := func(on bool) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
		if err != nil {
			return err
		}
		if on {
			flags |= fsImmutable
		} else {
			flags &^= fsImmutable
		}
		return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags))
	}
	frozen := false
	t.Cleanup(func() {
		if frozen {
			set(false)
		}
	})
	return func() {
		t.Helper()
		if err := set(!frozen); err != nil {
			t.Fatalf("%s: immutable %v: %v", path, !frozen, err)
		}
		frozen = !frozen
	}
}

// TestExitBeforeSeedLogUnwritable: a recorder starts while the
// audit log takes no records (its own start record queued): its walks
// are postponed, so the log is not searched for the previous recorder's
// open starts (seedKnown) before events are handled. A container whose
// start the previous recorder recorded ends then. Its exit must be
// recorded once the log takes records again. (A start without
// namespaces, which only its init's events end, stayed open: the events
// were handled before the search and found no start to end.)
func TestExitBeforeSeedLogUnwritable(t *testing.T) {
	for _, noNS := range []bool{false, true} {
		t.Run(fmt.Sprintf("noNS=%v", noNS), func(t *testing.T) {
			o := recordOpenStart(t, "unseeded", noNS)
			r := &Recorder{Config: o.cfg, Log: o.log, Logger: ctrdtest.Logger(t, "recorder: ")}
			ctx := context.Background()
			swap := freezeLog(t, o.cfg.AuditLog)
			swap()
			r.mark(ctx, StageRecorderStart, "started")
			if err := r.walk(ctx, o.c); !errors.Is(err, errWalkPostponed) {
				t.Fatalf("walk: %v; want it postponed", err)
			}
			if err := ctrdtest.DeleteTask("default", o.ctr); err != nil {
				t.Fatal(err)
			}
			handEvent(t, r, o.c, &eventsapi.TaskExit{ContainerID: o.id, ID: o.id, Pid: o.pid, ExitedAt: timestamppb.Now()})
			handEvent(t, r, o.c, &eventsapi.TaskDelete{ContainerID: o.id, Pid: o.pid})
			swap()
			for range 2 {
				if err := r.walk(ctx, o.c); err != nil {
					t.Fatal(err)
				}
			}
			ctrdtest.Delete("default", o.ctr)
			handEvent(t, r, o.c, &eventsapi.ContainerDelete{ID: o.id})
			recs := audittest.Records(t, o.cfg.AuditLog, "")
			if diff := cmp.Diff([]string{evStart, evExit}, audittest.SourceStages(recs, o.id)); diff != "" {
				t.Errorf("records (-want +got):\n%s\n%s", diff, audittest.Listing(recs))
			}
		})
	}
}

// TestDroppedOldStartKeepsNewTask: while the log takes no
// records, the start of task A of container X (PID P) waits in the
// queue; A ends with its exit and delete events lost, and X's next task
// B gets PID P (same key). B's start event ends A (its exit queued) and
// queues B's start. Records beyond MaxPending then drop A's queued
// start, but not B's. B must stay known, so that its exit is recorded.
// (Dropping A's start forgot the task by its key: B's exit event found
// no known task, and B's start had no exit.)
// (As in TestRecorderSamePIDNewTask, the earlier task cannot be made
// with containerd: its queued start and known entry are put in place as
// recordStart leaves them.)
func TestDroppedOldStartKeepsNewTask(t *testing.T) {
	_, cfg, d, c := busyboxDaemon(t)
	r := &Recorder{Config: cfg, Log: openLog(t, cfg.AuditLog), Logger: ctrdtest.Logger(t, "recorder: "), seeded: true, known: map[taskKey]uint64{}}
	id := ctrdtest.Uniq("dropped-old-start")
	ctr, pid := d.Run(t, c, "default", id, nil)
	st, err := inspect.StartTime(int(pid))
	if err != nil {
		t.Fatal(err)
	}
	old := st - 500
	k := taskKey{"default", id, int(pid)}
	r.mark(context.Background(), StageRecorderStart, "started") // the log exists
	swap := swapLog(t, cfg.AuditLog)
	swap()
	r.known[k] = old
	r.keep(pendingRecord{start: &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "default", ContainerID: id,
		Ancestry: &audit.Ancestry{PID: int(pid), StartTime: old}}, pid: int(pid), startTime: old}, errors.New("not writable"))
	handEvent(t, r, c, &eventsapi.TaskStart{ContainerID: id, Pid: pid})
	if r.known[k] != st || len(r.pending) != 3 {
		t.Fatalf("known %v, %d pending; want B known, A's start and exit and B's start queued", r.known, len(r.pending))
	}
	queueFillers(r, MaxPending-2)
	if got := r.known[k]; got != st {
		t.Errorf("known start time of B after A's queued start was dropped: %d; want %d (B's start still queued)", got, st)
	}
	ctrdtest.DeleteTask("default", ctr)
	handEvent(t, r, c, &eventsapi.TaskExit{ContainerID: id, ID: id, Pid: pid, ExitStatus: 137})
	swap()
	for range 2 {
		if err := r.walk(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	recs := audittest.Records(t, cfg.AuditLog, "")
	if diff := cmp.Diff([]string{evStart, evExit}, audittest.SourceStages(recs, id)); diff != "" {
		t.Errorf("B's records (-want +got):\n%s\n%s", diff, audittest.Listing(recs))
	}
}

// endsOf returns, for the records of container id in the log at path,
// the seq of each start and of the exit that ends it (0: none).
func endsOf(t *testing.T, path, id string) (starts []uint64, ended map[uint64]uint64) {
	t.Helper()
	ended = map[uint64]uint64{}
	for _, rec := range audittest.Records(t, path, id) {
		switch {
		case audit.IsStart(rec.Stage):
			starts = append(starts, rec.Seq)
		case rec.Stage == audit.StageExit && rec.Ref != nil:
			ended[rec.Ref.Seq] = rec.Seq
		}
	}
	return starts, ended
}

// TestExitBeforeSeedNotOfNextTask: a previous recorder recorded task A's
// start (without namespaces, or with another start time than the
// process now running with A's PID); the recorder starts while the log
// takes no records. A ends (its exit event handled) and the container's
// next task B starts (without namespaces; or with A's PID) before the
// recorder's first walk that is not postponed. A's exit must not end
// B's start, which runs; when the log can be read (a full or read-only
// disk) it ends A's. (A replay of the exit events after the log was
// searched ended B's start: the first version of the fix for
// TestExitBeforeSeedLogUnwritable.)
func TestExitBeforeSeedNotOfNextTask(t *testing.T) {
	for _, tc := range []struct {
		name     string
		samePID  bool
		readable bool
	}{
		{"restart without namespaces, log readable", false, true},
		{"restart without namespaces, log unreadable", false, false},
		{"same PID, log readable", true, true},
		{"same PID, log unreadable", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				r            *Recorder
				c            *client.Client
				path, id     string
				ctr          client.Container
				pidA         uint32
				restartTaskB func() (time.Time, uint32)
			)
			if tc.samePID {
				// A's start, of another process than the one running
				// with its PID now (B, a later task that got it).
				_, cfg, d, cl := busyboxDaemon(t)
				c, path, id = cl, cfg.AuditLog, ctrdtest.Uniq("seed-same-pid")
				log := openLog(t, path)
				var pid uint32
				ctr, pid = d.Run(t, c, "default", id, nil)
				st, err := inspect.StartTime(int(pid))
				if err != nil {
					t.Fatal(err)
				}
				if err := log.Append(context.Background(), &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "default", ContainerID: id,
					Ancestry: &audit.Ancestry{PID: int(pid), StartTime: st - 500}}); err != nil {
					t.Fatal(err)
				}
				pidA = pid
				r = &Recorder{Config: cfg, Log: log, Logger: ctrdtest.Logger(t, "recorder: ")}
				restartTaskB = func() (time.Time, uint32) { return time.Now(), pid }
			} else {
				o := recordOpenStart(t, "seed-restart", true)
				c, path, id, ctr, pidA = o.c, o.cfg.AuditLog, o.id, o.ctr, o.pid
				var victim atomic.Int64
				r = &Recorder{Config: o.cfg, Log: o.log, Logger: ctrdtest.Logger(t, "recorder: "),
					Inspect: inspectFailsFor(&victim)}
				restartTaskB = func() (time.Time, uint32) {
					between, pidB := ctrdtest.RestartTask(t, "default", ctr)
					victim.Store(int64(pidB))
					return between, pidB
				}
			}
			ctx := context.Background()
			swap := swapLog(t, path)
			if tc.readable {
				swap = freezeLog(t, path)
			}
			swap()
			r.mark(ctx, StageRecorderStart, "started")
			if err := r.walk(ctx, c); !errors.Is(err, errWalkPostponed) {
				t.Fatalf("walk: %v; want it postponed", err)
			}
			exited, pidB := restartTaskB()
			handEvent(t, r, c, &eventsapi.TaskExit{ContainerID: id, ID: id, Pid: pidA, ExitStatus: 137, ExitedAt: timestamppb.New(exited)})
			handEvent(t, r, c, &eventsapi.TaskStart{ContainerID: id, Pid: pidB})
			swap()
			if err := r.walk(ctx, c); err != nil {
				t.Fatal(err)
			}
			starts, ended := endsOf(t, path, id)
			listing := audittest.Listing(audittest.Records(t, path, id))
			if len(starts) != 2 {
				t.Fatalf("starts %v; want A's and B's\n%s", starts, listing)
			}
			if e := ended[starts[1]]; e != 0 {
				t.Errorf("exit seq %d ends B's start (seq %d) while B runs\n%s", e, starts[1], listing)
			}
			if e := ended[starts[0]]; tc.readable && e == 0 {
				t.Errorf("A's start (seq %d) not ended\n%s", starts[0], listing)
			}
		})
	}
}

// startsEnded fails unless the log at path holds n starts of container
// id, in order, the one at index running not ended (its task runs) and
// those at indexes ended each ended.
func startsEnded(t *testing.T, path, id string, n, running int, ended ...int) {
	t.Helper()
	starts, by := endsOf(t, path, id)
	listing := audittest.Listing(audittest.Records(t, path, id))
	if len(starts) != n {
		t.Fatalf("starts %v; want %d\n%s", starts, n, listing)
	}
	for _, i := range ended {
		if by[starts[i]] == 0 {
			t.Errorf("start %d (seq %d) not ended\n%s", i, starts[i], listing)
		}
	}
	if e := by[starts[running]]; e != 0 {
		t.Errorf("exit seq %d ends start %d (seq %d), whose task runs\n%s", e, running, starts[running], listing)
	}
}

// TestSeededExitNotOfOpenByIDTask: a previous recorder recorded task A's
// start with namespaces and, A's exit missed, the container's next task
// B's start without namespaces (inspection failed); B runs. A recorder
// that starts finds A open with its process gone (known) and B's start
// open without namespaces (openByID, not known). Its first walk records
// A's exit: it must end A's start, not B's, which runs. (A's exit ended
// B's start, the container's last without namespaces.)
func TestSeededExitNotOfOpenByIDTask(t *testing.T) {
	_, cfg, d, c := busyboxDaemon(t)
	log := openLog(t, cfg.AuditLog)
	id := ctrdtest.Uniq("seed-openbyid")
	ctr, pidA := d.Run(t, c, "default", id, nil)
	var victim atomic.Int64
	first := &Recorder{Config: cfg, Log: log, Logger: ctrdtest.Logger(t, "first: "),
		Inspect: inspectFailsFor(&victim)}
	ctx := context.Background()
	if _, ok := first.recordStart(ctx, c, "default", id, int(pidA), whenOf(time.Now()), nil); !ok {
		t.Fatal("A's start not recorded")
	}
	_, pidB := ctrdtest.RestartTask(t, "default", ctr)
	victim.Store(int64(pidB))
	if _, ok := first.recordStart(ctx, c, "default", id, int(pidB), whenOf(time.Now()), nil); !ok {
		t.Fatal("B's start not recorded")
	}
	r := &Recorder{Config: cfg, Log: log, Logger: ctrdtest.Logger(t, "recorder: ")}
	if err := r.walk(ctx, c); err != nil {
		t.Fatal(err)
	}
	// A's ended, B's (runs) not; B's start recorded again, with
	// namespaces, by the walk.
	startsEnded(t, cfg.AuditLog, id, 3, 1, 0)
}

// TestTwoLostExitsRestarts: as TestLostExitNotOfUninspectedRestart
// with one more restart: task A (inspected) ends, its exit and delete
// events lost; task X starts (its start event handled, inspection
// failed) and ends, its exit and delete events lost too; task B starts
// (inspection failed) and runs. The next walk records A's and X's exits
// (in r.known's map order). Each must end its own start; B's start,
// whose task runs, must stay open. Repeated: the order varies.
func TestTwoLostExitsRestarts(t *testing.T) {
	_, cfg, d, c := busyboxDaemon(t)
	var victim atomic.Int64
	r := &Recorder{Config: cfg, Log: openLog(t, cfg.AuditLog), Logger: ctrdtest.Logger(t, "recorder: "),
		Inspect: inspectFailsFor(&victim)}
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			id := fmt.Sprintf("%s-%d", ctrdtest.Uniq("two-lost"), i)
			ctr, pidA := d.Run(t, c, "default", id, nil)
			walkKnows(t, r, c, id, pidA)
			_, pidX := ctrdtest.RestartTask(t, "default", ctr)
			victim.Store(int64(pidX))
			handEvent(t, r, c, &eventsapi.TaskStart{ContainerID: id, Pid: pidX})
			_, pidB := ctrdtest.RestartTask(t, "default", ctr)
			victim.Store(int64(pidB))
			handEvent(t, r, c, &eventsapi.TaskStart{ContainerID: id, Pid: pidB})
			if err := r.walk(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			startsEnded(t, cfg.AuditLog, id, 3, 2, 0, 1) // A's and X's ended, B's (runs) not
		})
	}
}

// TestHeldExitNotOfUninspectedNext: task H's start is given up
// (containerd did not answer: held, as recordStart does on
// errUnverified); H ends and the container's next task B starts, its
// start event handled, recorded without namespaces (inspection failed).
// The next walk finds H gone: endHeld records H's start without
// namespaces, after B's, then H's exit, with B known as a later task.
// H's exit must end H's start, not B's, which runs.
func TestHeldExitNotOfUninspectedNext(t *testing.T) {
	_, cfg, d, c := busyboxDaemon(t)
	var victim atomic.Int64
	r := &Recorder{Config: cfg, Log: openLog(t, cfg.AuditLog), Logger: ctrdtest.Logger(t, "recorder: "),
		Inspect: inspectFailsFor(&victim)}
	id := ctrdtest.Uniq("held-next")
	// The recorder's first walk (its log search for open starts) before
	// the container runs.
	if err := r.walk(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	ctr, pidH := d.Run(t, c, "default", id, nil)
	kH := taskKey{"default", id, int(pidH)}
	if !r.hold(kH, heldStart{err: errUnverified, metaRead: true}) {
		t.Fatal("not held")
	}
	if r.held[kH].startTime == 0 {
		t.Fatal("held without start time")
	}
	_, pidB := ctrdtest.RestartTask(t, "default", ctr)
	victim.Store(int64(pidB))
	handEvent(t, r, c, &eventsapi.TaskStart{ContainerID: id, Pid: pidB})
	if err := r.walk(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	// B's start recorded first, then H's (by endHeld): H's ended, B's
	// (runs) not.
	startsEnded(t, cfg.AuditLog, id, 2, 0, 1)
}

// TestLateStartOfTaskGoneAtWalk: a walk listed task A, whose process
// ended (and was reaped) before the walk inspected it: A's start was
// recorded without namespaces and start time 0. A's start event, queued
// behind the walk, recorded its start again, and A's exit ended one of
// the two: the other stayed open for good (a review found it).
func TestLateStartOfTaskGoneAtWalk(t *testing.T) {
	t.Parallel()
	_, cfg, d, c := busyboxDaemon(t)
	r := &Recorder{Config: cfg, Log: openLog(t, cfg.AuditLog), Logger: ctrdtest.Logger(t, "recorder: ")}
	id := ctrdtest.Uniq("late-start-gone")
	published := time.Now()
	ctr, pid := d.Run(t, c, "default", id, nil)
	// The process ends between the walk's list and its inspection.
	r.Inspect = func(p int, live *inspect.LiveOnce) (*audit.Ancestry, error) {
		deleteReaped(t, ctr, pid)
		return inspect.ProcessWith(p, live)
	}
	ctx := context.Background()
	if err := r.walk(ctx, c); err != nil {
		t.Fatal(err)
	}
	if st, ok := r.known[taskKey{"default", id, int(pid)}]; !ok || st != 0 {
		t.Fatalf("known after the walk: %v; want %s without its start time", r.known, id)
	}
	startEventThenExit(t, r, c, id, pid, published)
	startThenExit(t, cfg.AuditLog, id)
}

// TestExitOfStartBeyondSearch: a container ran for longer than the
// records of the files the log's search reads (the current file and
// audit.SearchFiles rotated ones): its exit, searching for its start,
// found none and was not written, though the recorder knew the task; to
// the log it ran for good (a review found it). The exit refers to the
// start the recorder remembers, its own or the NRI plugin's that it
// found (a pod's container: the review of the fix found it missed),
// saying it is beyond the files searched; a walk after the exit forgets
// it.
func TestExitOfStartBeyondSearch(t *testing.T) {
	for _, nri := range []bool{false, true} {
		t.Run(fmt.Sprintf("NRI plugin's start=%v", nri), func(t *testing.T) {
			t.Parallel()
			_, cfg, d, c := busyboxDaemon(t)
			log, err := audit.Open(cfg.AuditLog, audit.Options{RotateBytes: 4096})
			if err != nil {
				t.Fatal(err)
			}
			r := &Recorder{Config: cfg, Log: log, Logger: ctrdtest.Logger(t, "recorder: ")}
			id := ctrdtest.Uniq("long-running")
			ctr, pid := d.Run(t, c, "default", id, nil)
			ctx := context.Background()
			if nri {
				anc, err := inspect.Process(int(pid))
				if err != nil {
					t.Fatal(err)
				}
				if err := log.Append(ctx, &audit.Record{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: id, Ancestry: anc, Verdict: audit.VerdictAllow}); err != nil {
					t.Fatal(err)
				}
			}
			walkKnows(t, r, c, id, pid)
			start := audittest.Records(t, cfg.AuditLog, id)
			if len(start) != 1 {
				t.Fatalf("records of the container after the walk:\n%s", audittest.Listing(start))
			}
			// Other containers' records push its start out of the files searched.
			for i := 0; ; i++ {
				files, err := audit.Files(cfg.AuditLog)
				if err != nil {
					t.Fatal(err)
				}
				if len(files) > audit.SearchFiles+2 {
					break
				}
				if err := log.Append(ctx, &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageExit, ContainerID: fmt.Sprintf("other-%d", i), Namespace: "default"}); err != nil {
					t.Fatal(err)
				}
			}
			deleteReaped(t, ctr, pid)
			r.handle(ctx, c, eventAt(t, "default", &eventsapi.TaskExit{ContainerID: id, ID: id, Pid: pid, ExitStatus: 137}, time.Now()))
			recs := audittest.Records(t, cfg.AuditLog, id)
			if len(recs) != 2 || recs[1].Stage != audit.StageExit || recs[1].Ref == nil || recs[1].Ref.Seq != start[0].Seq || recs[1].Ref.Hash != start[0].Hash ||
				!strings.Contains(recs[1].Error, "beyond the files searched") {
				t.Errorf("records of the container after its exit:\n%s\nwant its start and an exit that ends it", audittest.Listing(recs))
			}
			audittest.Verify(t, cfg.AuditLog)
			if err := r.walk(ctx, c); err != nil {
				t.Fatal(err)
			}
			if _, ok := r.starts[taskKey{"default", id, int(pid)}]; ok {
				t.Errorf("the start still remembered after its exit and a walk")
			}
		})
	}
}
