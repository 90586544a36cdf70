package recorder

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
)

// gapWindow returns the stretch an events-gap record says was not
// watched.
func gapWindow(t *testing.T, rec *audit.Record) (from, to time.Time) {
	t.Helper()
	const marker = " not watched from "
	i := strings.Index(rec.Error, marker)
	if i < 0 {
		t.Fatalf("gap record %q: no window", rec.Error)
	}
	f, rest, _ := strings.Cut(rec.Error[i+len(marker):], " to ")
	tt, _, _ := strings.Cut(rest, " ")
	from, err1 := time.Parse(time.RFC3339Nano, f)
	to, err2 := time.Parse(time.RFC3339Nano, tt)
	if err1 != nil || err2 != nil {
		t.Fatalf("gap record %q: %v %v", rec.Error, err1, err2)
	}
	return from, to
}

// holdFirstInspect returns an inspection that sends the PID of the
// first process it is asked for on first and waits for release (30 s at
// most) before it inspects it; with skew, that process then seems to
// have started after the start event, so that containerd is asked for
// the task. Later processes are inspected as they are.
func holdFirstInspect(first chan<- int, release <-chan struct{}, skew bool) inspect.Func {
	var once sync.Once
	return func(pid int, live *inspect.LiveOnce) (*audit.Ancestry, error) {
		held := false
		once.Do(func() { held = true })
		if !held {
			return inspect.ProcessWith(pid, live)
		}
		first <- pid
		select {
		case <-release:
		case <-time.After(30 * time.Second): // the test failed
		}
		anc, err := inspect.ProcessWith(pid, live)
		if err == nil && skew {
			anc.StartTime += 1000 // not clearly before the event: containerd is asked
		}
		return anc, err
	}
}

// gapBeforeStop returns the events-gap record that recs must have right
// before the recorder's stop record, last.
func gapBeforeStop(t *testing.T, recs []*audit.Record) *audit.Record {
	t.Helper()
	if last := recs[len(recs)-1]; last.Stage != StageRecorderStop {
		t.Fatalf("last record: %s; want the recorder stop", last.Stage)
	}
	gap := recs[len(recs)-2]
	if gap.Stage != StageEventsGap {
		t.Fatalf("record before the stop: %s; want an events gap", gap.Stage)
	}
	return gap
}

// TestRecorderStopWhileHandling stops the recorder while it handles the
// start event of container A (its inspection held until the stop), with
// container B started and its task deleted meanwhile, its events behind
// A's. An events-gap record, before the stop record, covers B's start and
// end, from A's start event on (from before A's start when A's start is
// given up: its process seemed to start after the event, and containerd
// is no longer asked at a stop). The session returned at the stop
// without a word: the log had the recorder start, A's start (or nothing)
// and the recorder stop, a stretch it said was watched, and no record of
// B.
func TestRecorderStopWhileHandling(t *testing.T) {
	for _, tc := range []struct {
		name   string
		giveUp bool
	}{
		{"start recorded", false},
		{"start given up", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfgPath, cfg, d, c := busyboxDaemon(t)
			inA, release := make(chan int, 1), make(chan struct{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, stop := runRecorderCtx(t, ctx, d.Socket, cfgPath, func(r *Recorder) {
				r.Inspect = holdFirstInspect(inA, release, tc.giveUp)
			})
			idA, idB := ctrdtest.Uniq("stop-a"), ctrdtest.Uniq("stop-b")
			aBefore := time.Now()
			d.Run(t, c, "default", idA, nil)
			select {
			case <-inA:
			case <-time.After(30 * time.Second):
				t.Fatal("A's start not handled")
			}
			bBefore := time.Now()
			ctrB, _ := d.Run(t, c, "default", idB, nil)
			if err := ctrdtest.DeleteTask("default", ctrB); err != nil {
				t.Fatal(err)
			}
			bEnded := time.Now()
			cancel()
			close(release)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			recs := audittest.Records(t, cfg.AuditLog, "")
			var stages []string
			for _, r := range recs {
				stages = append(stages, r.Stage)
			}
			t.Logf("stages: %v", stages)
			wantA := 1
			from := bBefore
			if tc.giveUp {
				wantA, from = 0, aBefore
			}
			if n := audittest.Count(recs, idA, evStart); n != wantA {
				t.Errorf("%d start records of A; want %d", n, wantA)
			}
			if n := audittest.Count(recs, idB, evStart); n != 0 {
				t.Errorf("%d start records of B, whose event came behind A's", n)
			}
			gap := gapBeforeStop(t, recs)
			if f, to := gapWindow(t, gap); f.After(from) || to.Before(bEnded) {
				t.Errorf("gap from %s to %s; want it to cover %s to %s", f, to, from.UTC(), bEnded.UTC())
			}
			audittest.Verify(t, cfg.AuditLog)
		})
	}
}
