package recorder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/audittest"
)

// exitsOf returns, for each exit record of container id in the log at
// path, the seq of the start it ends.
func exitsOf(t *testing.T, path, id string) []uint64 {
	t.Helper()
	var ends []uint64
	for _, rec := range audittest.Records(t, path, id) {
		if rec.Stage == audit.StageExit {
			if rec.Ref == nil {
				t.Fatalf("exit seq %d refers to no start", rec.Seq)
			}
			ends = append(ends, rec.Ref.Seq)
		}
	}
	return ends
}

// tempLog opens a log in a directory of the test's own.
func tempLog(t *testing.T) (string, *audit.Log) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.jsonl")
	return path, openLog(t, path)
}

// filler is a record queued as records queued while the log takes
// none are, its error "filler".
func filler() pendingRecord {
	return pendingRecord{other: &audit.Record{Source: audit.SourceContainerdEvents, Stage: StageEventsGap, Error: "filler"}}
}

// queueFillers queues n fillers behind the records waiting, pushing the
// oldest out beyond MaxPending.
func queueFillers(r *Recorder, n int) {
	for range n {
		r.keep(filler(), nil)
	}
}

// openLog opens the log at path with the default options.
func openLog(t *testing.T, path string) *audit.Log {
	t.Helper()
	log, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return log
}

// TestExitOfNRIStart: the NRI plugin writes no end of the starts it
// records (a container it checked itself, the hook not injected; a
// sandbox it recorded before the recorder did), and the recorder, whose
// own start of the task the plugin's stood for, wrote no exit either:
// the container ran for good to the log. The recorder's exit ends it,
// once (an exit retried finds the one written); nsrel-hook's start of a
// task still gets no exit from the recorder (its poststop ends it).
func TestExitOfNRIStart(t *testing.T) {
	path, log := tempLog(t)
	ctx := context.Background()
	for _, rec := range []*audit.Record{
		{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: "sandbox", Ancestry: &audit.Ancestry{PID: 4242, StartTime: 77}},
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "hooked", Ancestry: &audit.Ancestry{PID: 4343, StartTime: 78}},
	} {
		if err := log.Append(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	r := &Recorder{Log: log}
	// The recorder's start of the sandbox's task, as recordStart makes
	// it: the plugin's stands for it.
	got, err := r.appendStart(ctx, &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "k8s.io",
		ContainerID: "sandbox", Ancestry: &audit.Ancestry{PID: 4242, StartTime: 77}}, 4242, 77, false)
	if err != nil || got != nil {
		t.Fatalf("the recorder's start: %+v, %v; want none, the plugin's recorded it", got, err)
	}
	for range 2 {
		r.recordExit(ctx, taskKey{"k8s.io", "sandbox", 4242}, 77, "")
		r.recordExit(ctx, taskKey{"k8s.io", "hooked", 4343}, 78, "")
	}
	if ends := exitsOf(t, path, "sandbox"); len(ends) != 1 || ends[0] != 1 {
		t.Errorf("exits of the sandbox end starts %v; want [1], the plugin's start, once", ends)
	}
	if ends := exitsOf(t, path, "hooked"); len(ends) != 0 {
		t.Errorf("exits of the hook's container end starts %v; want none (its poststop ends it)", ends)
	}
}

// TestDroppedExitsKept: exits queued while the log took no records, then
// dropped beyond MaxPending, are kept apart and written after the gap
// record that counts the other records dropped (and says they follow),
// before the records still queued, with the time they were queued and
// the note that they were written late: the exit of the recorder's own
// start, and that of a start the NRI plugin recorded for the task (the
// recorder writes no start of its own for it, and a search of the log
// for the recorder's open starts missed it). They were lost, their
// starts open for good.
func TestDroppedExitsKept(t *testing.T) {
	path, log := tempLog(t)
	ctx := context.Background()
	for _, rec := range []*audit.Record{
		{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: "sandbox", Ancestry: &audit.Ancestry{PID: 4242, StartTime: 77}},
		{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "k8s.io", ContainerID: "ctr", Ancestry: &audit.Ancestry{PID: 4343, StartTime: 78}},
	} {
		if err := log.Append(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	r := &Recorder{Log: log, seeded: true}
	swap := swapLog(t, path)
	swap()
	r.keep(filler(), errors.New("not writable")) // dropped, counted
	queued := time.Now()
	r.recordExit(ctx, taskKey{"k8s.io", "sandbox", 4242}, 77, "")
	r.recordExit(ctx, taskKey{"k8s.io", "ctr", 4343}, 78, "")
	queueFillers(r, MaxPending-2)
	if len(r.pending) != MaxPending || r.dropped != 1 || len(r.droppedExits) != 0 {
		t.Fatalf("%d pending, %d dropped, %d exits kept apart; want the first record dropped", len(r.pending), r.dropped, len(r.droppedExits))
	}
	r.keep(filler(), nil)
	r.keep(filler(), nil)
	if len(r.pending) != MaxPending || r.dropped != 1 || len(r.droppedExits) != 2 {
		t.Fatalf("%d pending, %d dropped, %d exits kept apart; want both exits kept apart, not counted", len(r.pending), r.dropped, len(r.droppedExits))
	}
	if n := r.unwritten(); n != MaxPending+3 {
		t.Errorf("a stop now would count %d records lost; want %d", n, MaxPending+3)
	}
	back := time.Now() // the late writes come after
	swap()
	r.retryPending(ctx)
	if len(r.pending) != 0 || r.dropped != 0 || len(r.droppedExits) != 0 || !r.seeded {
		t.Fatalf("%d pending, %d dropped, %d exits kept apart, seeded %v; want all written, no search of the log", len(r.pending), r.dropped, len(r.droppedExits), r.seeded)
	}
	recs := audittest.Records(t, path, "")
	gap := recs[2]
	if gap.Stage != StageEventsGap || !strings.Contains(gap.Error, "; 1 records (starts, exits, the recorder's own) were dropped") || !strings.Contains(gap.Error, "; 2 exits waiting, kept apart, follow this record") {
		t.Errorf("record 3: %s %q; want the gap naming 1 record dropped, the 2 exits following", gap.Stage, gap.Error)
	}
	for i, want := range []struct {
		id  string
		ref uint64
	}{{"sandbox", 1}, {"ctr", 2}} {
		e := recs[3+i]
		at, err := time.Parse(time.RFC3339Nano, e.Time)
		if e.Stage != audit.StageExit || e.ContainerID != want.id || e.Ref == nil || e.Ref.Seq != want.ref || err != nil ||
			at.Before(queued) || !at.Before(back) || !strings.Contains(e.Error, "written late") {
			t.Errorf("record %d: %s %s ref %+v time %s error %q; want the exit of %s ending seq %d, of the time it was queued, written late", e.Seq, e.Stage, e.ContainerID, e.Ref, e.Time, e.Error, want.id, want.ref)
		}
	}
	if len(recs) != 3+2+MaxPending {
		t.Errorf("%d records; want 2 starts, the gap, 2 exits and the %d waiting", len(recs), MaxPending)
	}
}

// TestDroppedExitOfDroppedStart: an exit queued behind its task's start,
// which is then dropped (both waiting for the log), ends only a start of
// its own process, written from the queue or kept apart when dropped in
// turn: its search ended another task's start without namespaces (which
// matches any task's). The dropped start may have been one in the log
// already, the NRI plugin's, whose end is the recorder's exit: that one
// it ends (an earlier fix wrote no such exit at all). A walk between the
// drops (walks clear forget) changes nothing.
func TestDroppedExitOfDroppedStart(t *testing.T) {
	start := func(k taskKey) pendingRecord {
		return pendingRecord{start: &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: k.ns, ContainerID: k.id}, pid: k.pid, startTime: 79}
	}
	path, log := tempLog(t)
	ctx := context.Background()
	for _, rec := range []*audit.Record{
		// Another task of ctr, recorded without namespaces.
		{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "k8s.io", ContainerID: "ctr", Error: "not inspected"},
		// The NRI plugin's start of sandbox's task.
		{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: "sandbox", Ancestry: &audit.Ancestry{PID: 3333, StartTime: 79}},
	} {
		if err := log.Append(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	r := &Recorder{Log: log, seeded: true}
	ctr, sandbox, gone := taskKey{"k8s.io", "ctr", 2222}, taskKey{"k8s.io", "sandbox", 3333}, taskKey{"k8s.io", "gone", 4444}
	r.keep(start(ctr), errors.New("not writable"))
	r.keep(start(sandbox), nil)
	r.keep(pendingRecord{exit: &ctr, startTime: 79}, nil)
	r.keep(pendingRecord{exit: &sandbox, startTime: 79}, nil)
	queueFillers(r, MaxPending-2) // the last two drop both starts
	if !r.pending[0].noStart || !r.pending[1].noStart {
		t.Fatalf("first queued %+v, %+v; want both exits, marked", r.pending[0], r.pending[1])
	}
	// gone's exit dropped too, after a walk: kept apart, marked.
	r.keep(start(gone), nil)
	r.keep(pendingRecord{exit: &gone, startTime: 79}, nil)
	r.keep(filler(), nil)
	r.keep(filler(), nil)
	r.forget = nil // as a walk does
	queueFillers(r, MaxPending)
	if len(r.droppedExits) != 3 || !r.droppedExits[2].noStart {
		t.Fatalf("exits kept apart %+v; want ctr's, sandbox's and gone's, gone's marked", r.droppedExits)
	}
	r.retryPending(ctx)
	if ends := exitsOf(t, path, "ctr"); len(ends) != 0 {
		t.Errorf("exits of ctr end starts %v; want none (its own start was never written)", ends)
	}
	if ends := exitsOf(t, path, "sandbox"); len(ends) != 1 || ends[0] != 2 {
		t.Errorf("exits of sandbox end starts %v; want [2], the NRI plugin's start", ends)
	}
	if len(r.pending) != 0 || len(r.droppedExits) != 0 {
		t.Errorf("%d records waiting, %d exits kept; want all done", len(r.pending), len(r.droppedExits))
	}
}

// TestDroppedStartByIDExit: a start queued to refer to a previous
// recorder's start without namespaces of the container (byID), then
// dropped: its exit, written from the queue, ends that start, as it would
// have ended both (a strict search found nothing, and the start stayed
// open for good). Also with an earlier task X of the container, recorded
// without namespaces by the previous recorder and ended (the search
// stopped at X's start and the exit was lost).
func TestDroppedStartByIDExit(t *testing.T) {
	for _, earlier := range []bool{false, true} {
		t.Run(fmt.Sprintf("earlier=%v", earlier), func(t *testing.T) {
			path, log := tempLog(t)
			ctx := context.Background()
			x := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "k8s.io", ContainerID: "old", Error: "not inspected"}
			recs := []*audit.Record{x}
			if earlier {
				recs = append(recs,
					&audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageExit, Namespace: "k8s.io", ContainerID: "old", Ref: &audit.Ref{Seq: 1, Stage: audit.StageStart}},
					&audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "k8s.io", ContainerID: "old", Error: "not inspected"})
			}
			for _, rec := range recs {
				if err := log.Append(ctx, rec); err != nil {
					t.Fatal(err)
				}
			}
			// A start is queued byID when the first walk's search found
			// the previous recorder's start open (it then knows it as the
			// container's, PID unknown: an exit of a start time known
			// passed over it, and was lost).
			r := &Recorder{Log: log}
			if !r.seedKnown() || !r.openByID[nsID{"k8s.io", "old"}] {
				t.Fatal("the previous recorder's start not found open")
			}
			r.seeded = true
			k := taskKey{"k8s.io", "old", 5555}
			r.keep(pendingRecord{start: &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: k.ns, ContainerID: k.id}, pid: k.pid, startTime: 79, byID: true}, errors.New("not writable"))
			r.keep(pendingRecord{exit: &k, startTime: 79}, nil)
			queueFillers(r, MaxPending-1)
			if r.pending[0].exit == nil || r.pending[0].noStart {
				t.Fatalf("first queued %+v; want the exit, not marked", r.pending[0])
			}
			r.retryPending(ctx)
			want := []uint64{recs[len(recs)-1].Seq}
			if earlier {
				want = []uint64{x.Seq, want[0]}
			}
			if ends := exitsOf(t, path, "old"); !slices.Equal(ends, want) {
				t.Errorf("exits of old end starts %v; want %v, the last the previous recorder's start\n%s", ends, want, audittest.Listing(audittest.Records(t, path, "old")))
			}
		})
	}
}

// TestExitSearchesBeforeLock: the exit of a task the recorder knows
// searched the log for its start under the log's lock; the start of a
// container that ran for weeks lies tens of MiB back, and every other
// writer (a starting container's hook, the NRI plugin's check, each
// with its deadline) waited while that was read: 30 such exits in a
// row, a node being drained, kept an append waiting 1.5 s. With the lock
// held by the test, the exit must read the whole current file (this
// process's bytes read) before it waits; once the lock is free, it
// refers to the start.
func TestExitSearchesBeforeLock(t *testing.T) {
	path, log := tempLog(t)
	ctx := context.Background()
	if err := log.Append(ctx, &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "default",
		ContainerID: "old", Ancestry: &audit.Ancestry{PID: 4242, StartTime: 50}}); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := log.Append(ctx, &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime,
			ContainerID: "other-" + strconv.Itoa(i), Ancestry: &audit.Ancestry{PID: 1000 + i, StartTime: 60}}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The start, then about 8 MiB of other containers' records (the
	// search looks for the container's ID only: the copies' seqs do
	// not matter to it).
	const size = 8 << 20
	rest := all[len(first):]
	data := append(first, bytes.Repeat(rest, size/len(rest)+1)...)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	audittest.ReadsBeforeLock(t, path, size, "the exit", func() {
		(&Recorder{Log: log}).recordExit(ctx, taskKey{"default", "old", 4242}, 50, "")
	})
	var exit *audit.Record
	for rec, err := range audit.Records(path) {
		if err == nil && rec.Stage == audit.StageExit {
			exit = rec
		}
	}
	if exit == nil || exit.ContainerID != "old" || exit.Ref == nil || exit.Ref.Seq != 1 {
		t.Errorf("exit %+v; want the exit of old, referring to its start, seq 1", exit)
	}
}

// TestExitOfRefusalOverOwnStart: the recorder recorded a sandbox's start
// (allowed) before the NRI plugin was asked, and the plugin refused it:
// its deny record follows, referring to the recorder's. The task's exit
// ends the plugin's record, which the search finds first, and so the
// recorder's too: a recorder started later does not take the recorder's
// start for open (it did, and every later recorder searched for its exit
// in vain, the start open for good).
func TestExitOfRefusalOverOwnStart(t *testing.T) {
	path, log := tempLog(t)
	ctx := context.Background()
	const pid, st = 4193999, 77 // a PID beyond the kernel's limit: no process has it
	own := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "k8s.io", ContainerID: "sb",
		Verdict: audit.VerdictAllow, Ancestry: &audit.Ancestry{PID: pid, StartTime: st}}
	if err := log.Append(ctx, own); err != nil {
		t.Fatal(err)
	}
	if err := log.Append(ctx, &audit.Record{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: "sb", Verdict: audit.VerdictDeny,
		Ancestry: &audit.Ancestry{PID: pid, StartTime: st}, Ref: &audit.Ref{Seq: own.Seq, Stage: own.Stage, Hash: own.Hash}}); err != nil {
		t.Fatal(err)
	}
	(&Recorder{Log: log}).recordExit(ctx, taskKey{"k8s.io", "sb", pid}, st, "")
	if ends := exitsOf(t, path, "sb"); len(ends) != 1 || ends[0] != 2 {
		t.Fatalf("exits end %v; want [2], the plugin's refusal", ends)
	}
	r := &Recorder{Log: log}
	r.seedKnown()
	if len(r.known) != 0 || len(r.openRunning) != 0 {
		t.Errorf("a recorder started later takes %v (running %v) for open; want none: the exit ended both starts", r.known, r.openRunning)
	}
}

// TestSeedKnownEarlierBoot: a start the log leaves open from an earlier
// boot (a crash: no exit recorded) is of a process gone, whatever runs
// on its PID with its start time now (both count from boot). It is not
// a task the recorder knows: the walk that seeds it records its exit at
// once. It was taken for a task that still runs, left to events that
// never come, the start open for good.
func TestSeedKnownEarlierBoot(t *testing.T) {
	ctx := context.Background()
	path, r, pid, _ := seedOwnStarts(t, ownStart{"then", audittest.OtherBoot}, ownStart{"now", audit.BootID()})
	then, now := taskKey{"k8s.io", "then", pid}, taskKey{"k8s.io", "now", pid}
	if len(r.known) != 0 || len(r.earlierBoot) != 1 || r.earlierBoot[0].k != then {
		t.Errorf("known %v, earlier boot %v; want the earlier boot's task among the latter alone", r.known, r.earlierBoot)
	}
	if _, ok := r.openRunning[now]; !ok || len(r.openRunning) != 1 {
		t.Errorf("open and running %v; want this boot's task alone", r.openRunning)
	}
	r.endEarlierBoot(ctx)
	if ends := exitsOf(t, path, "then"); len(ends) != 1 || ends[0] != 1 {
		t.Errorf("exits of the earlier boot's task end %v; want [1]", ends)
	}
	// Its record's time and boot are when the recorder found it: it
	// says so (the log said the container ran into this boot).
	if recs := audittest.Records(t, path, "then"); !strings.Contains(recs[len(recs)-1].Error, "ended with boot "+audittest.OtherBoot) {
		t.Errorf("the earlier boot's exit says %q; want that it ended with its boot", recs[len(recs)-1].Error)
	}
	if ends := exitsOf(t, path, "now"); len(ends) != 0 || len(r.earlierBoot) != 0 {
		t.Errorf("exits of this boot's task %v, earlier boot's left %v; want none", ends, r.earlierBoot)
	}
}

// ownStart is a start seedOwnStarts appends: of container id, made in
// boot.
type ownStart struct{ id, boot string }

// seedOwnStarts appends the recorder's starts in namespace k8s.io of
// this test's process (its PID and start time: a process that runs), one
// for each of starts, and seeds a recorder from the log. It returns the
// log's path, the recorder, the PID and its start time.
func seedOwnStarts(t *testing.T, starts ...ownStart) (string, *Recorder, int, uint64) {
	t.Helper()
	path, log := tempLog(t)
	pid := os.Getpid()
	st, err := inspect.StartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range starts {
		if err := log.Append(context.Background(), &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "k8s.io", ContainerID: s.id,
			Verdict: audit.VerdictAllow, Ancestry: &audit.Ancestry{PID: pid, StartTime: st}, BootID: s.boot}); err != nil {
			t.Fatal(err)
		}
	}
	r := &Recorder{Log: log}
	if !r.seedKnown() {
		t.Fatal("seedKnown failed")
	}
	return path, r, pid, st
}

// TestSeedKnownEarlierBootWithoutProcess: a start recorded without
// namespaces (no PID) is kept for its container's events to end; one of
// an earlier boot is no container of this boot's, whose init's events
// would end it.
func TestSeedKnownEarlierBootWithoutProcess(t *testing.T) {
	_, log := tempLog(t)
	for _, tc := range []struct{ id, boot string }{{"then", audittest.OtherBoot}, {"now", audit.BootID()}} {
		if err := log.Append(context.Background(), &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "k8s.io", ContainerID: tc.id,
			Verdict: audit.VerdictAllow, Error: "inspect: permission denied", BootID: tc.boot}); err != nil {
			t.Fatal(err)
		}
	}
	r := &Recorder{Log: log}
	if !r.seedKnown() {
		t.Fatal("seedKnown failed")
	}
	if want := map[nsID]bool{{"k8s.io", "now"}: true}; !maps.Equal(r.openByID, want) {
		t.Errorf("open by container %v; want %v", r.openByID, want)
	}
	// The earlier boot's ended with its boot: its exit is recorded, once
	// (it stayed open for good: a review found it), also by two
	// recorders (two daemons') that seeded before either wrote it.
	other := &Recorder{Log: log}
	if !other.seedKnown() {
		t.Fatal("seedKnown failed")
	}
	r.endEarlierBoot(context.Background())
	other.endEarlierBoot(context.Background())
	if ends := exitsOf(t, log.Path(), "then"); len(ends) != 1 || ends[0] != 1 {
		t.Errorf("exits of the earlier boot's start without namespaces end %v; want [1]", ends)
	}
	r2 := &Recorder{Log: log}
	if !r2.seedKnown() || len(r2.earlierBootByID) != 0 {
		t.Errorf("seeded again: %d exits of earlier boots to record; want none", len(r2.earlierBootByID))
	}
	if ends := exitsOf(t, log.Path(), "now"); len(ends) != 0 {
		t.Errorf("exits of this boot's start without namespaces end %v; want none", ends)
	}
	if recs := audittest.Records(t, log.Path(), "then"); !strings.Contains(recs[len(recs)-1].Error, "ended with boot "+audittest.OtherBoot) {
		t.Errorf("the earlier boot's exit says %q; want that it ended with its boot", recs[len(recs)-1].Error)
	}
}

// TestSeedKnownSameKeyEarlierBoot: a container restarted under its ID
// after a crash whose new task got the PID and start time of the earlier
// boot's task, whose start the log holds open. The earlier boot's exit
// ends that boot's start, and this boot's task's exit (its event before
// any walk, say) this boot's: the exit search took the newest start of
// the PID and start time for either, and the earlier one, which the
// recorder held as the key's task, took the exit of the running one.
func TestSeedKnownSameKeyEarlierBoot(t *testing.T) {
	ctx := context.Background()
	const then = audittest.OtherBoot
	path, r, pid, st := seedOwnStarts(t, ownStart{"c", then}, ownStart{"c", audit.BootID()})
	k := taskKey{"k8s.io", "c", pid}
	if r.openRunning[k] != st || len(r.earlierBoot) != 1 || r.earlierBoot[0].boot != then {
		t.Fatalf("open and running %v, earlier boot %v; want this boot's task running, the other of boot %s", r.openRunning, r.earlierBoot, then)
	}
	r.endEarlierBoot(ctx)
	if ends := exitsOf(t, path, "c"); len(ends) != 1 || ends[0] != 1 {
		t.Errorf("exits end %v; want [1], the earlier boot's start", ends)
	}
	r.recordExit(ctx, k, st, "") // this boot's task's exit event
	if ends := exitsOf(t, path, "c"); len(ends) != 2 || ends[1] != 2 {
		t.Errorf("exits end %v; want [1 2]", ends)
	}
}

// TestEndedAlready: an entry of Recorder.ended (a start recorded late,
// with its exit, by endHeld) stands only for the task it was made for: a
// walk listing its process not reaped yet, or, when a walk gave the
// start up, the start event handled late. A new task of the container
// that got the PID is recorded: a start event after the one that was
// handled, a walk that finds another process there or an entry of no
// start time, and any entry older than endedLifetime (a review injected
// such entries: the new task got no start, no exit and no gap).
func TestEndedAlready(t *testing.T) {
	self := os.Getpid() // a process that runs, with a start time
	st, err := inspect.StartTime(self)
	if err != nil {
		t.Fatal(err)
	}
	const gone = 4193999 // a PID beyond the kernel's limit: no process
	k := func(pid int) taskKey { return taskKey{"default", "web", pid} }
	later := when{time.Now().Add(time.Hour), inspect.Now() + inspect.Moment(time.Hour)} // an event after the process started
	for _, tc := range []struct {
		name  string
		pid   int
		entry endedStart
		at    when // zero: a walk
		want  bool
	}{
		{"walk, same process", self, endedStart{startTime: st}, when{}, true},
		{"walk, no process", gone, endedStart{startTime: st}, when{}, true},
		{"walk, another process", self, endedStart{startTime: st + 1}, when{}, false},
		{"walk, entry of no start time", self, endedStart{}, when{}, false},
		{"late event of a walk's start, same process", self, endedStart{startTime: st}, later, true},
		{"late event of a walk's start, no process", gone, endedStart{startTime: st}, later, true},
		{"event after the one handled", gone, endedStart{startTime: st, event: true}, later, false},
		{"event, another process started before it", self, endedStart{startTime: st + 1}, later, false},
		{"entry too old", self, endedStart{startTime: st, at: time.Now().Add(-endedLifetime - time.Minute)}, when{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.entry.at.IsZero() {
				tc.entry.at = time.Now()
			}
			r := &Recorder{ended: map[taskKey]endedStart{k(tc.pid): tc.entry}}
			if got := r.endedAlready(k(tc.pid), tc.at); got != tc.want {
				t.Errorf("endedAlready = %v, want %v", got, tc.want)
			}
			if _, kept := r.ended[k(tc.pid)]; kept != tc.want {
				t.Errorf("entry kept %v, want %v", kept, tc.want)
			}
		})
	}
}

// TestExitSearchWithoutNamespacesStops: the exit of a task recorded
// without namespaces (its start time known, from /proc) ends the
// container's last start without namespaces, found at the end of the
// current file: the search stops there, also with another task of the
// container known. (A first fix of TestLostExitNotOfUninspectedRestart
// searched on, through the whole search window, 8.4 MB here against
// 37 KB, at every exit of such a container.)
func TestExitSearchWithoutNamespacesStops(t *testing.T) {
	for _, later := range []bool{false, true} {
		t.Run(fmt.Sprintf("later=%v", later), func(t *testing.T) {
			path, log := tempLog(t)
			ctx := context.Background()
			for i := range 200 {
				if err := log.Append(ctx, &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime,
					ContainerID: fmt.Sprintf("other-%d", i), Ancestry: &audit.Ancestry{PID: 1000 + i, StartTime: 60}}); err != nil {
					t.Fatal(err)
				}
			}
			others, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// An earlier record of the container.
			if err := log.Append(ctx, &audit.Record{Source: audit.SourceContainerdEvents, Stage: StageEventsGap, Namespace: "default",
				ContainerID: "nsless", Time: "2020-01-01T00:00:00Z"}); err != nil {
				t.Fatal(err)
			}
			if err := log.Append(ctx, &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "default",
				ContainerID: "nsless", Error: "inspect: permission denied"}); err != nil {
				t.Fatal(err)
			}
			all, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			const size = 8 << 20
			data := append(bytes.Repeat(others, size/len(others)+1), all[len(others):]...)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			// The rewrite left the lock file's hint of the chain's head
			// at other bytes: the first append after it follows the
			// chain from an anchor in the last 2 MiB, once (hook/audit's
			// hint.go). Made here, so that what is counted is the
			// exit's search and append.
			if err := log.Append(ctx, &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "warm"}); err != nil {
				t.Fatal(err)
			}
			r := &Recorder{Log: log}
			if later {
				r.known = map[taskKey]uint64{{"default", "nsless", 4343}: 0}
			}
			before := audittest.BytesRead(t)
			r.recordExit(ctx, taskKey{"default", "nsless", 4242}, 77, "")
			read := audittest.BytesRead(t) - before
			t.Logf("the exit's search read %d bytes (file %d bytes)", read, len(data))
			if read > 1<<20 {
				t.Errorf("the exit's search read %d bytes; want well under 1 MiB", read)
			}
			if ends := exitsOf(t, path, "nsless"); len(ends) != 1 {
				t.Errorf("exits end %v; want one", ends)
			}
		})
	}
}

// TestExitNotOfOthersStartWithoutNamespaces: exits found by a walk after
// their events were lost (or an event's exit) end their own task's
// start, never a start without namespaces the recorder knows as another
// task's (its own, or a previous recorder's open one), whatever the
// order of the exits, the start records' times (a clock stepped since)
// or start times not known. Earlier, the container's last start without
// namespaces stood for any exit: a running task's start was ended, the
// exiting task's left open.
func TestExitNotOfOthersStartWithoutNamespaces(t *testing.T) {
	kA, kX, kB := taskKey{"default", "web", 100}, taskKey{"default", "web", 200}, taskKey{"default", "web", 300}
	type start struct {
		name  string
		k     taskKey
		st    uint64 // with namespaces when not 0
		owner *taskKey
		time  string
	}
	stepped := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339Nano)
	previous := taskKey{"default", "web", 0}
	type exit struct {
		k  taskKey
		st uint64
	}
	for _, tc := range []struct {
		name   string
		starts []start
		exits  []exit
		ended  []string // the starts that must end; the others must not
	}{
		{"two lost exits, A first", []start{{"A", kA, 77, nil, ""}, {"X", kX, 0, &kX, ""}, {"B", kB, 0, &kB, ""}},
			[]exit{{kA, 77}, {kX, 88}}, []string{"A", "X"}},
		{"two lost exits, X first", []start{{"A", kA, 77, nil, ""}, {"X", kX, 0, &kX, ""}, {"B", kB, 0, &kB, ""}},
			[]exit{{kX, 88}, {kA, 77}}, []string{"A", "X"}},
		{"the middle one with namespaces", []start{{"A", kA, 77, nil, ""}, {"X", kX, 88, nil, ""}, {"B", kB, 0, &kB, ""}},
			[]exit{{kA, 77}, {kX, 88}}, []string{"A", "X"}},
		{"a clock stepped since the start", []start{{"A", kA, 77, nil, stepped}, {"B", kB, 0, &kB, ""}},
			[]exit{{kA, 77}}, []string{"A"}},
		{"an earlier task of no start time", []start{{"B", kB, 0, &kB, ""}, {"A", kA, 0, &kA, ""}},
			[]exit{{kA, 77}}, []string{"A"}},
		{"a previous recorder's start open", []start{{"A", kA, 77, nil, ""}, {"B", kB, 0, &previous, ""}},
			[]exit{{kA, 77}}, []string{"A"}},
		{"a previous recorder's start, its init's exit", []start{{"A", kA, 77, nil, ""}, {"B", kB, 0, &previous, ""}},
			[]exit{{kA, 77}, {kB, 0}}, []string{"A", "B"}},
		{"a start of no owner known stands", []start{{"A", kA, 0, nil, ""}},
			[]exit{{kA, 77}}, []string{"A"}},
		{"an exit of no start time past an ended start of no owner", []start{{"A", kA, 0, &kA, ""}, {"X", kX, 0, nil, ""}},
			[]exit{{kX, 88}, {kA, 0}}, []string{"A", "X"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, log := tempLog(t)
			ctx := context.Background()
			r := &Recorder{Log: log, known: map[taskKey]uint64{}}
			seqs := map[string]uint64{}
			for _, s := range tc.starts {
				rec := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: s.k.ns, ContainerID: s.k.id, Time: s.time}
				if s.st != 0 {
					rec.Ancestry = &audit.Ancestry{PID: s.k.pid, StartTime: s.st}
				} else {
					rec.Error = "inspect: permission denied"
				}
				if err := log.Append(ctx, rec); err != nil {
					t.Fatal(err)
				}
				seqs[s.name] = rec.Seq
				if s.owner != nil {
					r.own(rec.Seq, *s.owner) // as recordStart or seedKnown does
				}
				r.known[s.k] = s.st
			}
			for _, e := range tc.exits {
				r.recordExit(ctx, e.k, e.st, "")
			}
			_, ended := endsOf(t, path, "web")
			for name, seq := range seqs {
				if want := slices.Contains(tc.ended, name); (ended[seq] != 0) != want {
					t.Errorf("%s's start (seq %d) ended by %d; want it ended: %v\n%s", name, seq, ended[seq], want, audittest.Listing(audittest.Records(t, path, "web")))
				}
			}
		})
	}
}

// TestReseedKeepsOwner: the recorder appends task B's start without
// namespaces (owned by B); B runs. Later seedKnown runs again (keep
// clears seeded when droppedExits overflows: reseed; or the first
// walk's search failed to list the log's files): it finds B's start
// open and owns it as PID 0, the container's with PID unknown. B's
// exit (start time known, read from /proc) must still end B's start.
func TestReseedKeepsOwner(t *testing.T) {
	path, log := tempLog(t)
	ctx := context.Background()
	r := &Recorder{Log: log, known: map[taskKey]uint64{}}
	if !r.seedKnown() { // the first walk's, before B
		t.Fatal("seedKnown")
	}
	kB := taskKey{"default", "web", 300}
	rec := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: kB.ns, ContainerID: kB.id, Error: "inspect: permission denied"}
	if err := log.Append(ctx, rec); err != nil {
		t.Fatal(err)
	}
	r.own(rec.Seq, kB) // as recordStart does
	r.known[kB] = 88
	// As keep does when droppedExits is full; the next walk searches again.
	r.seeded, r.reseed = false, true
	if !r.seedKnown() {
		t.Fatal("seedKnown")
	}
	delete(r.openByID, nsID{kB.ns, kB.id}) // as the walk does, B known
	r.recordExit(ctx, kB, 88, "")
	if _, ended := endsOf(t, path, kB.id); ended[rec.Seq] == 0 {
		t.Errorf("B's start (seq %d) not ended by B's exit; owner %+v\n%s", rec.Seq, r.owner[rec.Seq], audittest.Listing(audittest.Records(t, path, kB.id)))
	}
}

// TestLostExitPastPreviousEndedStart: a previous recorder wrote task
// A's start with namespaces (A's exit lost), then the next task X's
// start without namespaces and X's exit. The recorder starts; its walk
// records A's exit, which must end A's start. (It stopped at X's ended
// start, known as no task's, and was not written.)
func TestLostExitPastPreviousEndedStart(t *testing.T) {
	path, log := tempLog(t)
	ctx := context.Background()
	const gone = 4193999 // no process has it
	kA := taskKey{"default", "web", gone}
	a := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: kA.ns, ContainerID: kA.id, Ancestry: &audit.Ancestry{PID: kA.pid, StartTime: 77}}
	x := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: kA.ns, ContainerID: kA.id, Error: "inspect: permission denied"}
	for _, rec := range []*audit.Record{a, x} {
		if err := log.Append(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := log.Append(ctx, &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageExit, Namespace: kA.ns, ContainerID: kA.id,
		Ref: &audit.Ref{Seq: x.Seq, Stage: x.Stage, Hash: x.Hash}}); err != nil {
		t.Fatal(err)
	}
	r := &Recorder{Log: log}
	if !r.seedKnown() {
		t.Fatal("seedKnown")
	}
	if st, ok := r.known[kA]; !ok || st != 77 {
		t.Fatalf("known %v; want A's open start, its process gone", r.known)
	}
	r.recordExit(ctx, kA, 77, "") // as the first walk does: A not listed
	if _, ended := endsOf(t, path, kA.id); ended[a.Seq] == 0 {
		t.Errorf("A's start (seq %d) not ended: A's exit lost\n%s", a.Seq, audittest.Listing(audittest.Records(t, path, kA.id)))
	}
}

// TestLostExitNotOfReRecordedStart: recorder 1 wrote task Z's start with
// namespaces (Z's exit and delete events lost), then the container's
// next task A's start without namespaces (S0). Recorder 2 re-recorded A
// byID (S1, with namespaces, referring to S0). Recorder 3 starts: S0 is
// not open to seedKnown (S1 refers to it), so not owned; Z's exit, found
// by the first walk, must end Z's start, not S0 (A runs). At HEAD the
// search takes S0 (not owned: ownYes).
// TestLostExitNotOfReRecordedStart: a recorder wrote task Z's start with
// namespaces (Z's exit lost), then task A's start S0 without namespaces;
// the next recorder recorded A again, with namespaces, referring to S0.
// A runs. A third recorder's walk records Z's exit: it must end Z's
// start, not S0. (S0, recorded again, was known as no task's, and Z's
// exit ended it.)
func TestLostExitNotOfReRecordedStart(t *testing.T) {
	path, log := tempLog(t)
	ctx := context.Background()
	self := os.Getpid() // A: a process that runs
	stA, err := inspect.StartTime(self)
	if err != nil {
		t.Fatal(err)
	}
	kZ := taskKey{"default", "web", 4193999}
	z := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: kZ.ns, ContainerID: kZ.id, Ancestry: &audit.Ancestry{PID: kZ.pid, StartTime: 66}}
	s0 := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: kZ.ns, ContainerID: kZ.id, Error: "inspect: permission denied"}
	for _, rec := range []*audit.Record{z, s0} {
		if err := log.Append(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	s1 := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: kZ.ns, ContainerID: kZ.id,
		Ancestry: &audit.Ancestry{PID: self, StartTime: stA}, Ref: &audit.Ref{Seq: s0.Seq, Stage: s0.Stage, Hash: s0.Hash}}
	if err := log.Append(ctx, s1); err != nil {
		t.Fatal(err)
	}
	r := &Recorder{Log: log}
	if !r.seedKnown() {
		t.Fatal("seedKnown")
	}
	if _, ok := r.known[kZ]; !ok {
		t.Fatalf("known %v; want Z", r.known)
	}
	r.recordExit(ctx, kZ, 66, "")
	if _, ended := endsOf(t, path, kZ.id); ended[z.Seq] == 0 || ended[s0.Seq] != 0 {
		t.Errorf("Z's start ended by %d, S0 (A's, A runs) by %d; want Z's ended, S0 not\n%s", ended[z.Seq], ended[s0.Seq], audittest.Listing(audittest.Records(t, path, kZ.id)))
	}
}

// TestOwnersKept: task B's start without namespaces is owned by B;
// then ownersKept starts without namespaces of other containers, all
// ended, are owned (a node where inspection fails and jobs come and
// go). A's exit (with namespaces; its events lost), found by a walk,
// must end A's start, not B's, whether B runs or ended. (The oldest
// entry, B's, was let go: A's exit ended B's running start, or stopped
// at B's ended one, known as no task's, and was lost.)
func TestOwnersKept(t *testing.T) {
	for _, bEnded := range []bool{false, true} {
		t.Run(fmt.Sprintf("B ended=%v", bEnded), func(t *testing.T) {
			path, log := tempLog(t)
			ctx := context.Background()
			kA, kB := taskKey{"default", "web", 100}, taskKey{"default", "web", 300}
			r := &Recorder{Log: log, known: map[taskKey]uint64{kA: 77, kB: 88}}
			a := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: kA.ns, ContainerID: kA.id, Ancestry: &audit.Ancestry{PID: kA.pid, StartTime: 77}}
			b := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: kB.ns, ContainerID: kB.id, Error: "inspect: permission denied"}
			for _, rec := range []*audit.Record{a, b} {
				if err := log.Append(ctx, rec); err != nil {
					t.Fatal(err)
				}
			}
			r.own(b.Seq, kB) // as recordStart does
			if bEnded {
				r.recordExit(ctx, kB, 88, "")
			}
			for i := range ownersKept {
				r.own(b.Seq+100+uint64(i), taskKey{"default", "job", 1000 + i})
				r.ownerEnded(b.Seq + 100 + uint64(i))
			}
			r.recordExit(ctx, kA, 77, "")
			_, ended := endsOf(t, path, "web")
			if ended[a.Seq] == 0 || (ended[b.Seq] != 0) != bEnded {
				t.Errorf("A's start ended by %d, B's by %d; want A's ended, B's only if B ended\n%s", ended[a.Seq], ended[b.Seq], audittest.Listing(audittest.Records(t, path, "web")))
			}
		})
	}
}

// TestSeedKnownEarlierBootReRecorded: an earlier boot's start recorded
// without namespaces (A), then again with its process (B, referring to
// A), then a crash. B's exit ends A too: A got a second exit (a review
// found it).
func TestSeedKnownEarlierBootReRecorded(t *testing.T) {
	path, log := tempLog(t)
	ctx := context.Background()
	a := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "k8s.io", ContainerID: "then",
		Verdict: audit.VerdictAllow, Error: "inspect: permission denied", BootID: audittest.OtherBoot}
	if err := log.Append(ctx, a); err != nil {
		t.Fatal(err)
	}
	b := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "k8s.io", ContainerID: "then",
		Verdict: audit.VerdictAllow, Ancestry: &audit.Ancestry{PID: 4193999, StartTime: 77}, BootID: audittest.OtherBoot,
		Ref: &audit.Ref{Seq: a.Seq, Stage: a.Stage, Hash: a.Hash}}
	if err := log.Append(ctx, b); err != nil {
		t.Fatal(err)
	}
	r := &Recorder{Log: log}
	if !r.seedKnown() {
		t.Fatal("seedKnown failed")
	}
	r.endEarlierBoot(ctx)
	if ends := exitsOf(t, path, "then"); len(ends) != 1 || ends[0] != b.Seq {
		t.Errorf("exits end %v; want one, of B (which ends A too)", ends)
	}
}

// TestEarlierBootExitLogUnwritable: the exit of an earlier boot's start
// without process that the log does not take waits apart (among the
// queued records, beyond MaxPending it was dropped and its start stayed
// open for good), saying it is written late, without postponing the
// walks; it is written once the log
// takes it, after the records queued before it (a review found it
// written ahead of the recorder's start record, and a search that failed
// postponing every walk for good).
func TestEarlierBootExitLogUnwritable(t *testing.T) {
	path, log := earlierStartWithoutProcess(t)
	ctx := context.Background()
	r := &Recorder{Log: log}
	if !r.seedKnown() {
		t.Fatal("seedKnown failed")
	}
	freeze := freezeLog(t, path)
	freeze()
	r.endEarlierBoot(ctx)
	if len(r.earlierBootByID) != 1 || r.failing || !strings.Contains(r.earlierBootByID[0].Error, "written late") {
		t.Fatalf("%d exits of earlier boots waiting, failing %v; want the one, saying it is late, walks not postponed", len(r.earlierBootByID), r.failing)
	}
	queueFillers(r, MaxPending+1) // records that wait meanwhile, beyond what is kept
	freeze()
	r.endEarlierByID(ctx) // not ahead of the records queued
	if ends := exitsOf(t, path, "then"); len(ends) != 0 {
		t.Fatalf("the earlier boot's exit written ahead of the records queued before it")
	}
	r.retryPending(ctx)
	r.endEarlierByID(ctx) // as the next walk does
	if ends := exitsOf(t, path, "then"); len(ends) != 1 || ends[0] != 1 {
		t.Errorf("exits of the earlier boot's start end %v; want [1]", ends)
	}
}

// TestEarlierBootExitBeforeStop: an exit of an earlier boot's start still
// waiting when the recorder stops is written before its stop record, or
// left to the next recorder (whose seed finds the start again), neither
// after the stop record nor counted as lost (the review of the first
// version found both).
func TestEarlierBootExitBeforeStop(t *testing.T) {
	for _, writable := range []bool{true, false} {
		t.Run(fmt.Sprintf("writable at the stop=%v", writable), func(t *testing.T) {
			path, log := earlierStartWithoutProcess(t)
			ctx := context.Background()
			r := &Recorder{Log: log}
			r.mark(ctx, StageRecorderStart, "started")
			if !r.seedKnown() {
				t.Fatal("seedKnown failed")
			}
			freeze := freezeLog(t, path)
			freeze()
			r.endEarlierBoot(ctx)
			if writable {
				freeze()
			}
			err := r.stopRecords(time.Time{}, nil)
			if !writable {
				if err == nil || !strings.Contains(err.Error(), "stopping with 1 records") {
					t.Errorf("stop with the log unwritable: %v; want the stop record counted alone", err)
				}
				freeze()
				r2 := &Recorder{Log: log}
				if !r2.seedKnown() || len(r2.earlierBootByID) != 1 {
					t.Errorf("the next recorder's seed: %d exits of earlier boots; want the one left", len(r2.earlierBootByID))
				}
				return
			}
			if err != nil {
				t.Errorf("stop: %v", err)
			}
			var stages []string
			for _, rec := range audittest.Records(t, path, "") {
				stages = append(stages, rec.Stage)
			}
			if want := []string{audit.StageStart, StageRecorderStart, audit.StageExit, StageRecorderStop}; !slices.Equal(stages, want) {
				t.Errorf("records %v; want %v", stages, want)
			}
		})
	}
}

// earlierStartWithoutProcess returns a log (and its path) that holds the
// recorder's start of container "then" (namespace k8s.io) of an earlier
// boot, recorded without its process, and no exit.
func earlierStartWithoutProcess(t *testing.T) (string, *audit.Log) {
	t.Helper()
	path, log := tempLog(t)
	if err := log.Append(context.Background(), &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "k8s.io", ContainerID: "then",
		Verdict: audit.VerdictAllow, Error: "inspect: permission denied", BootID: audittest.OtherBoot}); err != nil {
		t.Fatal(err)
	}
	return path, log
}
