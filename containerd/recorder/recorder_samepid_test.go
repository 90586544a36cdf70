package recorder

import (
	"context"
	"os/exec"
	"testing"
	"time"

	eventsapi "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/typeurl/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
)

// TestRecorderSamePIDNewTask: the log holds a start of the recorder's
// for a task of the container whose PID the container's running task now
// has, another process (its start time 5 s earlier): the earlier task
// ended while its exit and delete events were lost, or while no recorder
// ran. Known to the recorder, or open (a previous recorder's start), the
// earlier task's exit is recorded, then the running task's start, by a
// walk and at the start event alike. The walk took the listed task for
// the earlier one (its key, namespace, ID and PID, is the same) and the
// event replaced its start time: the earlier start stayed without exit.
// The earlier task cannot be made with containerd (a PID that comes
// round again for the same container): it is put in the log and the
// recorder as they would have it.
func TestRecorderSamePIDNewTask(t *testing.T) {
	for _, tc := range []struct {
		name        string
		open, event bool
	}{
		{"known, walk", false, false},
		{"known, start event", false, true},
		{"open, walk", true, false},
		{"open, start event", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, cfg, d, c := busyboxDaemon(t)
			log := openLog(t, cfg.AuditLog)
			id := ctrdtest.Uniq("samepid")
			_, pid := d.Run(t, c, "default", id, nil)
			st, err := inspect.StartTime(int(pid))
			if err != nil {
				t.Fatal(err)
			}
			old := st - 500 // 5 s earlier
			ctx := context.Background()
			if err := log.Append(ctx, &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "default",
				ContainerID: id, Ancestry: &audit.Ancestry{PID: int(pid), StartTime: old}}); err != nil {
				t.Fatal(err)
			}
			k := taskKey{"default", id, int(pid)}
			r := &Recorder{Config: cfg, Log: log, Logger: ctrdtest.Logger(t, "recorder: "), seeded: true, known: map[taskKey]uint64{}}
			if tc.open {
				r.openRunning = map[taskKey]uint64{k: old}
			} else {
				r.known[k] = old
			}
			if tc.event {
				handEvent(t, r, c, &eventsapi.TaskStart{ContainerID: id, Pid: pid})
			}
			for range 2 {
				if err := r.walk(ctx, c); err != nil {
					t.Fatal(err)
				}
			}
			recs := audittest.Records(t, cfg.AuditLog, "")
			if diff := cmp.Diff([]string{evStart, evExit, evStart}, audittest.SourceStages(recs, id)); diff != "" {
				t.Fatalf("records (-want +got):\n%s", diff)
			}
			var own []*audit.Record
			for _, rec := range recs {
				if rec.ContainerID == id {
					own = append(own, rec)
				}
			}
			if ref := own[1].Ref; ref == nil || ref.Seq != own[0].Seq {
				t.Errorf("exit refers to %v; want the earlier start, seq %d", ref, own[0].Seq)
			}
			if own[2].Ancestry == nil || own[2].StartTime != st {
				t.Errorf("the running task's start: %+v; want its start time %d", own[2].Ancestry, st)
			}
			if got := r.known[k]; got != st || len(r.openRunning) != 0 {
				t.Errorf("known start time %d, open %v; want %d and none", got, r.openRunning, st)
			}
		})
	}
}

// TestQuickTaskSamePIDAsEndedStart: a task whose process is gone before
// the recorder reads it (a quick task, a busy recorder: its start time
// unknown) has the PID of an earlier start of its container ID in the
// log: a task of the container that ended (its exit recorded), or a
// task of the ID in another namespace. Any start of the ID with the PID
// was taken for this one, and the task that ran had no start record
// (a review's run with containerd: a task started again got its
// previous task's PID). It is recorded, without namespaces. The
// events are handed to the recorder: the PID cannot be arranged.
func TestQuickTaskSamePIDAsEndedStart(t *testing.T) {
	for _, tc := range []struct {
		name, ns string
		ended    bool
	}{
		{"ended in the same namespace", "default", true},
		{"running in another namespace", "other", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, cfg, d, c := busyboxDaemon(t)
			log := openLog(t, cfg.AuditLog)
			id := ctrdtest.Uniq("quick")
			if tc.ns != "default" {
				d.ImportBusybox(t, c, tc.ns)
			}
			d.Run(t, c, tc.ns, id, nil) // the container, whose spec the recorder reads
			// A PID no process has: that of one that exited.
			gone := exec.Command("/bin/true")
			if err := gone.Run(); err != nil {
				t.Fatal(err)
			}
			pid := gone.Process.Pid
			ctx := context.Background()
			earlier := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "default",
				ContainerID: id, Ancestry: &audit.Ancestry{PID: pid, StartTime: 1234}}
			if err := log.Append(ctx, earlier); err != nil {
				t.Fatal(err)
			}
			if tc.ended {
				if err := log.Append(ctx, &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageExit, Namespace: "default", ContainerID: id,
					Ref: &audit.Ref{Seq: earlier.Seq, Stage: earlier.Stage, Hash: earlier.Hash}}); err != nil {
					t.Fatal(err)
				}
			}
			r := &Recorder{Config: cfg, Log: log, Logger: ctrdtest.Logger(t, "recorder: "), seeded: true, known: map[taskKey]uint64{}}
			a, err := typeurl.MarshalAny(&eventsapi.TaskStart{ContainerID: id, Pid: uint32(pid)})
			if err != nil {
				t.Fatal(err)
			}
			r.handle(ctx, c, &events.Envelope{Timestamp: time.Now(), Namespace: tc.ns, Event: a})
			var starts []*audit.Record
			for _, rec := range audittest.Records(t, cfg.AuditLog, "") {
				if rec.ContainerID == id && rec.Stage == audit.StageStart && rec.Namespace == tc.ns && rec.Seq != earlier.Seq {
					starts = append(starts, rec)
				}
			}
			if len(starts) != 1 || starts[0].Ancestry != nil {
				t.Errorf("starts of the task of %s in %s: %+v; want one, without namespaces", id, tc.ns, starts)
			}
		})
	}
}
