package recorder

import (
	"context"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
)

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
