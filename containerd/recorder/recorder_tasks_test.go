package recorder

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	eventsapi "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/nsrel/nsrel/containerd"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/vocab"
)

// parentPID returns the parent of process pid.
func parentPID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	n, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// stopShim stops the shim of the task whose process is pid (its parent)
// and returns what resumes it; the test's end resumes it too.
func stopShim(t *testing.T, pid int) (resume func()) {
	t.Helper()
	shim := parentPID(t, pid)
	if err := syscall.Kill(shim, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resume = sync.OnceFunc(func() { syscall.Kill(shim, syscall.SIGCONT) })
	t.Cleanup(resume)
	return resume
}

// TestRecorderSlowShim: containerd leaves out of its task list a task
// whose shim does not answer in time (here: stopped for two walks). The
// task still runs; a walk took it for ended, wrote its exit, and the real
// exit later was taken for recorded.
func TestRecorderSlowShim(t *testing.T) {
	var waitWalks func(int)
	cfg, d, c := recorderSetup(t, func(r *Recorder) { r.Resync = 200 * time.Millisecond; waitWalks = countWalks(t, r) })
	id := ctrdtest.Uniq("slowshim")
	ctr, pid := d.Run(t, c, "default", id, nil)
	audittest.Wait(t, cfg.AuditLog, "start", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evStart) == 1 })
	resume := stopShim(t, int(pid))
	waitWalks(2)
	resume()
	if n := audittest.Count(audittest.Records(t, cfg.AuditLog, ""), id, evExit); n != 0 {
		t.Errorf("%d exit records while the task ran (its shim slow to answer), want 0", n)
	}
	ctrdtest.Delete("default", ctr)
	audittest.Wait(t, cfg.AuditLog, "exit", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evExit) == 1 })
	audittest.Verify(t, cfg.AuditLog)
}

// TestRecorderZombieHungShim: a container's process that exited while
// its shim hangs (stopped) is a zombie nobody reaps: it has its start
// time still, but it does not run. The walks record its exit, once,
// whatever comes after the shim resumes.
func TestRecorderZombieHungShim(t *testing.T) {
	var waitWalks func(int)
	cfg, d, c := recorderSetup(t, func(r *Recorder) { r.Resync = 200 * time.Millisecond; waitWalks = countWalks(t, r) })
	id := ctrdtest.Uniq("zombie")
	ctr, pid := d.Run(t, c, "default", id, nil)
	audittest.Wait(t, cfg.AuditLog, "start", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evStart) == 1 })
	resume := stopShim(t, int(pid))
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		if s := string(b); s[strings.LastIndexByte(s, ')')+2] == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the container's process is not a zombie after 10 s")
		}
	}
	audittest.Wait(t, cfg.AuditLog, "the exit of the zombie", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evExit) == 1 })
	resume()
	ctrdtest.Delete("default", ctr)
	waitWalks(3)
	if n := audittest.Count(audittest.Records(t, cfg.AuditLog, ""), id, evExit); n != 1 {
		t.Errorf("%d exit records, want 1", n)
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestRecorderContainerDeleteKeepsNewTask: container X is deleted and
// created again under the same ID while the recorder is busy, and a walk
// (the resync timer picked before the queued events) finds the new task:
// the old container's /containers/delete must end the old task only. It
// ended every known task of X, the running new one too, whose real exit
// was then taken for recorded.
func TestRecorderContainerDeleteKeepsNewTask(t *testing.T) {
	var r *Recorder
	var c *client.Client
	var d *ctrdtest.Daemon
	var first atomic.Pointer[client.Container]
	var trigger, done atomic.Bool
	var second atomic.Pointer[client.Container]
	fired := make(chan struct{})
	id := ctrdtest.Uniq("reused")
	cfg, dd, cc := recorderSetup(t, func(rr *Recorder) {
		r = rr
		rr.Resync = 200 * time.Millisecond
		rr.walked = func() {
			if !trigger.Load() || done.Swap(true) {
				return
			}
			// In the recorder's goroutine: the events queue meanwhile.
			ctrdtest.Delete("default", *first.Load())
			ctr, _ := d.Run(t, c, "default", id, nil)
			second.Store(&ctr)
			r.walk(context.Background(), c) // a walk before the queued events
			close(fired)
		}
	})
	d, c = dd, cc
	ctr, _ := d.Run(t, c, "default", id, nil)
	first.Store(&ctr)
	audittest.Wait(t, cfg.AuditLog, "start", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evStart) == 1 })
	trigger.Store(true)
	select {
	case <-fired:
	case <-time.After(60 * time.Second):
		t.Fatal("no walk in 60 s")
	}
	// The old task's exit, and nothing for the new one while it runs.
	audittest.Wait(t, cfg.AuditLog, "the old task's exit", func(rs []*audit.Record) bool {
		return audittest.Count(rs, id, evStart) == 2 && audittest.Count(rs, id, evExit) >= 1
	})
	time.Sleep(time.Second) // the queued /containers/delete handled
	if n := audittest.Count(audittest.Records(t, cfg.AuditLog, ""), id, evExit); n != 1 {
		t.Errorf("%d exit records while the new task runs, want 1 (the old task's)", n)
	}
	ctrdtest.Delete("default", *second.Load())
	audittest.Wait(t, cfg.AuditLog, "the new task's exit", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evExit) == 2 })
	audittest.Verify(t, cfg.AuditLog)
}

// TestRecorderStartWithoutLabels: a start handled while the recorder
// stops (its context cancelled: containerd does not answer for the
// container's spec annotations) was judged without them, under the default block
// instead of its own; it is left for the next recorder's first walk now.
// (Where containerd is only slow to answer, the start is recorded under
// the default block with an error saying so, rather than lost if the
// task ends before the next walk: not simulated here.)
func TestRecorderStartWithoutLabels(t *testing.T) {
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	c := d.Client(t)
	d.ImportBusybox(t, c, "default")
	id := ctrdtest.Uniq("labelled")
	_, pid := d.Run(t, c, "default", id, &ctrdtest.RunOpts{SpecOpts: []oci.SpecOpts{oci.WithAnnotations(map[string]string{"nsrel.test/tier": "strict"})}})
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "hook.json")
	if err := os.WriteFile(cfgPath, []byte(`{"version": 1, "audit_log": "/unused",
	"trusted_selectors": {"annotations": ["nsrel.test/tier"]},
	"record_annotations": ["nsrel.test/tier"],
	"policies": [{"name": "strict", "match": {"annotations": {"nsrel\\.test/tier": "strict"}}, "mode": "audit", "rules": {}}],
	"default": {"name": "default", "mode": "audit"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, cancelled := range []bool{false, true} {
		path := filepath.Join(dir, "live.jsonl")
		if cancelled {
			path = filepath.Join(dir, "cancelled.jsonl")
		}
		log, err := audit.Open(path, audit.Options{})
		if err != nil {
			t.Fatal(err)
		}
		r := &Recorder{Config: cfg, Log: log}
		ctx, cancel := context.WithCancel(context.Background())
		if cancelled {
			cancel()
		}
		_, ok := r.recordStart(ctx, c, "default", id, int(pid), whenOf(time.Now()), nil)
		cancel()
		var blocks []string
		for rec, err := range audit.Records(path) {
			if err == nil && rec.ContainerID == id {
				blocks = append(blocks, rec.Policy)
			}
		}
		switch {
		case !cancelled && (!ok || len(blocks) != 1 || blocks[0] != "strict"):
			t.Errorf("recorded %v under blocks %q; want once under strict", ok, blocks)
		case cancelled && (ok || len(blocks) != 0):
			t.Errorf("with containerd not answering: recorded %v under blocks %q; want it left for the next walk", ok, blocks)
		}
	}
	// containerd down while the recorder runs on (its context alive):
	// recorded under the default block, saying why, and refused, since a
	// block that selects by annotation may have been its own.
	path := filepath.Join(dir, "down.jsonl")
	log, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &Recorder{Config: cfg, Log: log}
	// Connected before, as a session is: containerd's mount namespace
	// known (the shim's, where it is a shim's child).
	if err := r.probeSocket(vocab.ContainerdAddress(d.Socket)); err != nil {
		t.Fatal(err)
	}
	d.Stop(t)
	defer d.Restart(t) // its teardown deletes the container
	if _, ok := r.recordStart(context.Background(), c, "default", id, int(pid), whenOf(time.Now()), nil); !ok {
		t.Fatal("with containerd down: not recorded")
	}
	recs := audittest.Records(t, path, "")
	if len(recs) != 1 || recs[0].Policy != "default" || recs[0].Verdict != audit.VerdictDeny || !strings.Contains(recs[0].Error, "judged without the container's annotations") ||
		!strings.Contains(recs[0].Error, "refused whatever on_error says") {
		t.Errorf("with containerd down: %+v; want one start under the default block, refused, saying why", recs)
	}
}

// TestExitOfAnotherSourcesStart: the exit of a task whose start nsrel-hook
// recorded (no containerd namespace in its records) is not the
// recorder's to write. The search for the recorder's start went on past
// the hook's, through every file searched (under the log's lock, at each
// exit of such a container), and took an earlier start of the container
// the recorder wrote without namespaces for this task's. An earlier task
// the recorder recorded, whose PID the hook's task took, still gets its
// exit (told apart by start time).
func TestExitOfAnotherSourcesStart(t *testing.T) {
	path, log := tempLog(t)
	ctx := context.Background()
	for _, rec := range []*audit.Record{
		// An earlier task of web, recorded without namespaces, ended
		// while no recorder ran.
		{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "default", ContainerID: "web", Error: "pid 100 of task web exited or was reused"},
		// The recorder's start of the next task of web, whose exit is
		// late (the PID is taken again below).
		{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "default", ContainerID: "web", Ancestry: &audit.Ancestry{PID: 4242, StartTime: 50}},
		// Two tasks of api the recorder recorded, the second with the
		// PID of the first, whose exit comes late.
		{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "default", ContainerID: "api", Ancestry: &audit.Ancestry{PID: 5151, StartTime: 50}},
		{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "default", ContainerID: "api", Ancestry: &audit.Ancestry{PID: 5151, StartTime: 99}},
		// The recorder's start of db.
		{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "default", ContainerID: "db", Ancestry: &audit.Ancestry{PID: 4343, StartTime: 98}},
		// nsrel-hook's start of web's next task.
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "web", Ancestry: &audit.Ancestry{PID: 4242, StartTime: 99}},
	} {
		if err := log.Append(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	r := &Recorder{Log: log}
	r.recordExit(ctx, taskKey{"default", "web", 4242}, 99, "")
	r.recordExit(ctx, taskKey{"default", "web", 4242}, 50, "")
	r.recordExit(ctx, taskKey{"default", "db", 4343}, 98, "")
	r.recordExit(ctx, taskKey{"default", "api", 5151}, 50, "")
	r.recordExit(ctx, taskKey{"default", "api", 5151}, 99, "")
	var exits []string
	for rec, err := range audit.Records(path) {
		if err == nil && rec.Stage == audit.StageExit {
			exits = append(exits, rec.ContainerID+" of seq "+strconv.FormatUint(rec.Ref.Seq, 10))
		}
	}
	if want := []string{"web of seq 2", "db of seq 5", "api of seq 3", "api of seq 4"}; !slices.Equal(exits, want) {
		t.Errorf("exits %q; want %q (the last task of web is nsrel-hook's)", exits, want)
	}
}

// TestNextBackoff: a session that connected and lasted starts the waits
// again from the least; one that broke at once (a stream dropped right
// after each connection) or did not connect doubles them, so that such a
// stream is not retried, each time with a gap record and a walk, every
// 100 ms.
func TestNextBackoff(t *testing.T) {
	const minB, maxB = 100 * time.Millisecond, 5 * time.Second
	for _, tc := range []struct {
		cur       time.Duration
		connected bool
		lasted    time.Duration
		want      time.Duration
	}{
		{0, false, time.Second, minB},
		{0, true, time.Millisecond, minB},
		{minB, false, time.Second, 2 * minB},
		{4 * time.Second, false, time.Second, maxB},
		{2 * time.Second, true, time.Millisecond, 4 * time.Second},
		{maxB, true, time.Millisecond, maxB},
		{maxB, true, time.Minute, minB},
	} {
		if got := nextBackoff(tc.cur, minB, maxB, tc.connected, tc.lasted); got != tc.want {
			t.Errorf("after %v, connected %v, lasting %v: %v; want %v", tc.cur, tc.connected, tc.lasted, got, tc.want)
		}
	}
}

// TestRecorderBackoffAfterLongSession: once a session lasted longer than
// MaxBackoff, the wait before the next connection attempt is MinBackoff,
// not the wait the outage before that session had grown to (the wait
// used to be chosen after waiting).
func TestRecorderBackoffAfterLongSession(t *testing.T) {
	const minB, maxB = 20 * time.Millisecond, 300 * time.Millisecond
	_, cfg := ctrdtest.HookConfig(t)
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	dir := t.TempDir()
	link := filepath.Join(dir, "c.sock")
	pointTo := func(target string) {
		tmp := filepath.Join(dir, "tmp.sock")
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
	}
	pointTo(filepath.Join(dir, "none.sock"))
	log := openLog(t, cfg.AuditLog)
	var mu sync.Mutex
	var waits []time.Duration
	waited := func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(waits)
	}
	until := func(what string, ok func([]time.Duration) bool) []time.Duration {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if w := waited(); ok(w) {
				return w
			}
		}
		t.Fatalf("%s: waits %v", what, waited())
		return nil
	}
	connected := make(chan struct{}, 4)
	r := &Recorder{Address: link, Config: cfg, Log: log, Logger: ctrdtest.Logger(t, "recorder: "), MinBackoff: minB, MaxBackoff: maxB,
		Connected: func() { connected <- struct{}{} },
		waiting:   func(d time.Duration) { mu.Lock(); waits = append(waits, d); mu.Unlock() }}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	// No daemon there: the waits grow to MaxBackoff.
	w := until("waits grown to MaxBackoff", func(w []time.Duration) bool { return slices.Contains(w, maxB) })
	if w[0] != minB || w[1] != 2*minB {
		t.Errorf("first waits %v; want %v, %v, ...", w, minB, 2*minB)
	}
	pointTo(d.Socket)
	waitConnected(t, connected, "recorder did not connect")
	n := len(waited())
	time.Sleep(3 * maxB) // a session longer than MaxBackoff
	d.Stop(t)
	w = until("a wait after the session", func(w []time.Duration) bool { return len(w) > n })
	if w[n] != minB {
		t.Errorf("wait after a session of more than %v: %v; want %v (waits %v)", maxB, w[n], minB, w)
	}
}

// TestRecorderOversizedSpec: a container whose spec is larger than
// containerd.MaxSpec (padded with an annotation) has its annotations
// unknown. It was judged under the default block, allowed, with no word
// in its record; now, as the hook does with a state it had to cut, its
// record says so, on_error decides, and it is refused whatever on_error
// says where a block selects by annotation. A container with the same
// annotation and a small spec is judged under its own block.
func TestRecorderOversizedSpec(t *testing.T) {
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	c := d.Client(t)
	d.ImportBusybox(t, c, "default")
	small, big := ctrdtest.Uniq("smallspec"), ctrdtest.Uniq("bigspec")
	_, smallPID := d.Run(t, c, "default", small, &ctrdtest.RunOpts{SpecOpts: []oci.SpecOpts{oci.WithAnnotations(map[string]string{"tier": "strict"})}})
	_, bigPID := d.Run(t, c, "default", big, &ctrdtest.RunOpts{SpecOpts: []oci.SpecOpts{
		oci.WithAnnotations(map[string]string{"tier": "strict", "filler": strings.Repeat("x", containerd.MaxSpec)})}})
	dir := t.TempDir()
	for _, tc := range []struct {
		name, onError, policies string
		want                    string // the big spec's verdict
		refused                 bool
	}{
		{"by-annotation", "allow", `[{"name": "strict", "match": {"annotations": {"tier": "strict"}}, "mode": "audit", "rules": {}}]`, audit.VerdictDeny, true},
		{"by-id-allow", "allow", `[{"name": "strict", "match": {"id": "^none$"}, "mode": "audit", "rules": {}}]`, audit.VerdictAllow, false},
		{"by-id-deny", "deny", `[{"name": "strict", "match": {"id": "^none$"}, "mode": "audit", "rules": {}}]`, audit.VerdictDeny, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfgPath := filepath.Join(dir, tc.name+".json")
			if err := os.WriteFile(cfgPath, []byte(`{"version": 1, "audit_log": "/unused", "on_error": "`+tc.onError+`",
	"trusted_selectors": {"annotations": ["tier"], "id": true},
	"policies": `+tc.policies+`,
	"default": {"name": "default", "mode": "audit"}}`), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := policy.Load(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, tc.name+".jsonl")
			log, err := audit.Open(path, audit.Options{})
			if err != nil {
				t.Fatal(err)
			}
			r := &Recorder{Config: cfg, Log: log}
			for id, pid := range map[string]uint32{small: smallPID, big: bigPID} {
				if _, ok := r.recordStart(context.Background(), c, "default", id, int(pid), whenOf(time.Now()), nil); !ok {
					t.Fatalf("%s not recorded", id)
				}
			}
			for _, rec := range audittest.Records(t, path, "") {
				switch rec.ContainerID {
				case small:
					if tc.refused && rec.Policy != "strict" || rec.Verdict != audit.VerdictAllow || rec.Error != "" {
						t.Errorf("small spec: policy %q, verdict %s, error %q", rec.Policy, rec.Verdict, rec.Error)
					}
				case big:
					if rec.Verdict != tc.want || !strings.Contains(rec.Error, "judged without the annotations of the container's spec") ||
						!strings.Contains(rec.Error, "more than") || strings.Contains(rec.Error, "refused whatever on_error says") != tc.refused {
						t.Errorf("big spec: policy %q, verdict %s, error %q; want verdict %s, the spec named, refused %v", rec.Policy, rec.Verdict, rec.Error, tc.want, tc.refused)
					}
				}
			}
		})
	}
}

// exitSearches counts the recorder's searches of the log for a start
// that found none to end (logged at debug level).
func exitSearches(h *logtest.Hook) int {
	n := 0
	for _, e := range h.AllEntries() {
		if e.Message == "exit not recorded: recorded already, or its start was not the recorder's" {
			n++
		}
	}
	return n
}

// TestRecorderExitSearchOnlyKnownTasks: the exit and delete events of a
// task created and never started, of execs (one given the container's
// ID as its own) and the second of a task's exit and delete events no
// longer search the log for a start (under its lock, which the hook's
// appends wait for: 66-210 ms with four 16 MiB rotated files); a
// container the recorder recorded still gets its exit, once.
func TestRecorderExitSearchOnlyKnownTasks(t *testing.T) {
	hook := logtest.NewLocal(logrus.New())
	cfg, d, c := recorderSetup(t, func(r *Recorder) { r.Logger.(*logrus.Logger).AddHook(hook) })
	ctx := ctrdtest.Context(t, "default")
	created := ctrdtest.Uniq("created")
	cctr, _ := d.Run(t, c, "default", created, &ctrdtest.RunOpts{NoStart: true})
	task, err := cctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := task.Delete(ctx, client.WithProcessKill); err != nil {
		t.Fatal(err)
	}
	id := ctrdtest.Uniq("execs")
	ctr, _ := d.Run(t, c, "default", id, nil)
	audittest.Wait(t, cfg.AuditLog, "the start", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evStart) == 1 })
	runExec(t, ctx, ctr, "exec1")
	runExec(t, ctx, ctr, id)
	ctrdtest.Delete("default", ctr)
	recs := audittest.Wait(t, cfg.AuditLog, "the exit", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evExit) > 0 })
	if diff := cmp.Diff([]string{evStart, evExit}, audittest.SourceStages(recs, id)); diff != "" {
		t.Errorf("records of %s (-want +got):\n%s", id, diff)
	}
	if n := len(audittest.SourceStages(recs, created)); n != 0 {
		t.Errorf("%d records of the task never started", n)
	}
	if n := exitSearches(hook); n != 0 {
		t.Errorf("%d searches of the log for the start of a task the recorder did not know", n)
	}
}

// runExec runs true in the task of ctr as exec execID and deletes it.
func runExec(t *testing.T, ctx context.Context, ctr client.Container, execID string) {
	t.Helper()
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pspec := spec.Process
	pspec.Args = []string{"true"}
	p, err := task.Exec(ctx, execID, pspec, cio.NullIO)
	if err != nil {
		t.Fatalf("exec %s: %v", execID, err)
	}
	ch, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("exec %s did not exit", execID)
	}
	if _, err := p.Delete(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRecorderExecNamedLikeContainer: an exec given the container's ID
// as its own (containerd accepts it) ends; its exit event has the ID of
// an init's. With the start recorded without namespaces (which names no
// PID), an exit was recorded while the container ran on, and its real
// exit was then skipped. Only the known init PID ends the task now.
func TestRecorderExecNamedLikeContainer(t *testing.T) {
	id := ctrdtest.Uniq("execid")
	cfg, d, c, ctr, ctx := runUninspected(t, id, nil)
	runExec(t, ctx, ctr, id)
	// A container started after the exec: its start record comes after
	// the exec's events were handled.
	other := ctrdtest.Uniq("after")
	d.Run(t, c, "default", other, nil)
	recs := audittest.Wait(t, cfg.AuditLog, "the next start", func(rs []*audit.Record) bool { return audittest.Count(rs, other, evStart) > 0 })
	if n := audittest.Count(recs, id, evExit); n != 0 {
		t.Errorf("%d exit records while the container still runs", n)
	}
	ctrdtest.Delete("default", ctr)
	recs = audittest.Wait(t, cfg.AuditLog, "the exit", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evExit) > 0 })
	if diff := cmp.Diff([]string{evStart, evExit}, audittest.SourceStages(recs, id)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// openStartSetup runs a container whose start a first recorder records
// (without namespaces if noNS) and returns a recorder seeded as the first
// walk does before it lists the tasks, with the container and its PID.
func openStartSetup(t *testing.T, noNS bool) (*policy.Config, *client.Client, *Recorder, string, client.Container, uint32) {
	t.Helper()
	o := recordOpenStart(t, "open", noNS)
	r := &Recorder{Config: o.cfg, Log: o.log, Logger: ctrdtest.Logger(t, "recorder: ")}
	r.seeded = true // as the first walk does, before it lists the tasks
	r.seedKnown()
	return o.cfg, o.c, r, o.id, o.ctr, o.pid
}

// openStart is a container whose start a first recorder recorded and
// that runs on, the start open, for the next recorder to find.
type openStart struct {
	cfgPath string
	cfg     *policy.Config
	log     *audit.Log
	d       *ctrdtest.Daemon
	c       *client.Client
	id      string
	ctr     client.Container
	pid     uint32
}

// recordOpenStart runs a container (its ID prefixed so) on a daemon of
// its own and has a first recorder record its start, without namespaces
// if noNS.
func recordOpenStart(t *testing.T, prefix string, noNS bool) openStart {
	t.Helper()
	cfgPath, cfg, d, c := busyboxDaemon(t)
	log := openLog(t, cfg.AuditLog)
	id := ctrdtest.Uniq(prefix)
	ctr, pid := d.Run(t, c, "default", id, nil)
	first := &Recorder{Config: cfg, Log: log, Logger: ctrdtest.Logger(t, "first: ")}
	if noNS {
		first.Inspect = func(int, *inspect.LiveOnce) (*audit.Ancestry, error) {
			return nil, fmt.Errorf("inspect: pid %d: permission denied", pid)
		}
	}
	if _, ok := first.recordStart(context.Background(), c, "default", id, int(pid), whenOf(time.Now()), nil); !ok {
		t.Fatal("start not recorded")
	}
	recs := audittest.Records(t, cfg.AuditLog, "")
	if i := slices.IndexFunc(recs, func(r *audit.Record) bool { return r.ContainerID == id }); i < 0 || (recs[i].Ancestry == nil) != noNS {
		t.Fatalf("start record %d: want it without namespaces: %v", i, noNS)
	}
	return openStart{cfgPath, cfg, log, d, c, id, ctr, pid}
}

// handEvent hands ev, published in namespace "default", to r.
func handEvent(t *testing.T, r *Recorder, c *client.Client, ev any) {
	t.Helper()
	a, err := typeurl.MarshalAny(ev)
	if err != nil {
		t.Fatal(err)
	}
	r.handle(context.Background(), c, &events.Envelope{Timestamp: time.Now(), Namespace: "default", Event: a})
}

// TestExitOfOpenStartBeforeFirstWalk: a recorder that starts finds in the
// log a start of the recorder's without exit whose process still runs;
// the container's task ends before the first walk lists the tasks. Exit
// events of tasks the recorder does not know are skipped, but that
// task's exit is recorded, once, whether its exit event comes before
// the walk or after it (the walk, which finds the process gone and the
// container this daemon's, records it then). Events are handed to the
// recorder directly: the timing cannot be arranged with containerd.
func TestExitOfOpenStartBeforeFirstWalk(t *testing.T) {
	for _, eventFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("event-first=%v", eventFirst), func(t *testing.T) {
			cfg, c, r, id, ctr, pid := openStartSetup(t, false)
			if err := ctrdtest.DeleteTask("default", ctr); err != nil {
				t.Fatal(err)
			}
			exit := &eventsapi.TaskExit{ContainerID: id, ID: id, Pid: pid}
			if eventFirst {
				handEvent(t, r, c, exit)
			}
			for range 2 {
				if err := r.walk(context.Background(), c); err != nil {
					t.Fatal(err)
				}
			}
			handEvent(t, r, c, exit)
			handEvent(t, r, c, &eventsapi.TaskDelete{ContainerID: id, Pid: pid})
			recs := audittest.Records(t, cfg.AuditLog, "")
			if diff := cmp.Diff([]string{evStart, evExit}, audittest.SourceStages(recs, id)); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			if len(r.openRunning) != 0 {
				t.Errorf("open starts kept: %v", r.openRunning)
			}
		})
	}
}

// TestExitOfOpenStartLostEvents: the container of an open start (as in
// TestExitOfOpenStartBeforeFirstWalk) is deleted while its exit and
// delete events are lost. The walks, which find the process gone and the
// container not this daemon's (it may be another daemon's), record
// nothing, but keep the open start: the /containers/delete event records
// its exit, once. Walks forgot it after finding it gone twice, and
// /containers/delete ended only the tasks the recorder had seen run.
func TestExitOfOpenStartLostEvents(t *testing.T) {
	cfg, c, r, id, ctr, pid := openStartSetup(t, false)
	ctrdtest.Delete("default", ctr)
	for range 3 {
		if err := r.walk(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	if n := audittest.Count(audittest.Records(t, cfg.AuditLog, ""), id, evExit); n != 0 {
		t.Fatalf("%d exits recorded by walks for a container this daemon does not have", n)
	}
	handEvent(t, r, c, &eventsapi.ContainerDelete{ID: id})
	handEvent(t, r, c, &eventsapi.TaskExit{ContainerID: id, ID: id, Pid: pid})
	handEvent(t, r, c, &eventsapi.ContainerDelete{ID: id})
	recs := audittest.Records(t, cfg.AuditLog, "")
	if diff := cmp.Diff([]string{evStart, evExit}, audittest.SourceStages(recs, id)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// TestExitOfOpenStartWithoutNamespaces: a start a previous recorder
// recorded without namespaces (no PID) and without exit: an exit event of
// an exec given the container's ID records nothing, the init's exit
// event records the exit, once. Such starts were not seeded: the first
// walk made the task known only if it listed it, and the exit was
// skipped.
func TestExitOfOpenStartWithoutNamespaces(t *testing.T) {
	cfg, c, r, id, ctr, pid := openStartSetup(t, true)
	// An exec's exit, with its time, without, and with an empty one (a
	// shim that sends it so: read as 1970, any task seemed to have
	// started after it).
	for _, at := range []*timestamppb.Timestamp{timestamppb.Now(), nil, {}} {
		handEvent(t, r, c, &eventsapi.TaskExit{ContainerID: id, ID: id, Pid: pid + 100000, ExitedAt: at})
		if n := audittest.Count(audittest.Records(t, cfg.AuditLog, ""), id, evExit); n != 0 {
			t.Fatalf("%d exits recorded for an exec's exit (exited at %v) while the container runs", n, at)
		}
	}
	if err := ctrdtest.DeleteTask("default", ctr); err != nil {
		t.Fatal(err)
	}
	handEvent(t, r, c, &eventsapi.TaskExit{ContainerID: id, ID: id, Pid: pid})
	handEvent(t, r, c, &eventsapi.TaskDelete{ContainerID: id, Pid: pid})
	handEvent(t, r, c, &eventsapi.ContainerDelete{ID: id})
	recs := audittest.Records(t, cfg.AuditLog, "")
	if diff := cmp.Diff([]string{evStart, evExit}, audittest.SourceStages(recs, id)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// TestLateExitOfOpenStart: a recorder starts while the shim of a
// container whose start the previous recorder recorded is stopped (its
// task missing from containerd's task list); the container's process is
// killed and the walks find it gone; its exit event comes when the shim
// resumes, after them. The exit is recorded once. Walks forgot the open
// start after finding its process gone twice, and the late event was
// then skipped: no exit at all.
func TestLateExitOfOpenStart(t *testing.T) {
	o := recordOpenStart(t, "late-exit", false)
	cfgPath, cfg, d, id, ctr, pid := o.cfgPath, o.cfg, o.d, o.id, o.ctr, o.pid
	resume := stopShim(t, int(pid))
	var waitWalks func(int)
	startRecorder(t, d.Socket, cfgPath, func(r *Recorder) { r.Resync = 300 * time.Millisecond; waitWalks = countWalks(t, r) })
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitWalks(3)
	resume()
	audittest.Wait(t, cfg.AuditLog, "the exit", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evExit) > 0 })
	// The exit and delete events come after the shim resumes; the
	// container's deletion ends the task's last events.
	ctrdtest.Delete("default", ctr)
	waitWalks(3)
	recs := audittest.Records(t, cfg.AuditLog, "")
	if diff := cmp.Diff([]string{evStart, evExit}, audittest.SourceStages(recs, id)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestOpenByIDRestartedTask: a start a previous recorder recorded
// without namespaces; its container's task ends and a new task of the
// container starts before the old task's exit event is handled. The old
// start gets its exit: the task that runs now started after the old one
// exited, so it is not an exec that outlived it. It was taken for one
// (another PID than the event's), the exit skipped and the start left
// open for good.
func TestOpenByIDRestartedTask(t *testing.T) {
	cfg, c, r, id, ctr, pid := openStartSetup(t, true)
	between, _ := ctrdtest.RestartTask(t, "default", ctr)
	t.Cleanup(func() { ctrdtest.DeleteTask("default", ctr) })
	handEvent(t, r, c, &eventsapi.TaskExit{ContainerID: id, ID: id, Pid: pid, ExitedAt: timestamppb.New(between)})
	recs := audittest.Records(t, cfg.AuditLog, "")
	if diff := cmp.Diff([]string{evStart, evExit}, audittest.SourceStages(recs, id)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// TestOpenByIDOtherDaemonDelete: a start a previous recorder recorded
// without namespaces whose container still runs, and a /containers/delete
// event of the same namespace and ID (another daemon's container of the
// name, whose recorder writes the same log: records do not say which
// daemon ran a container). No exit is recorded: one was, for a container
// that still ran, and its real exit was then skipped as recorded.
func TestOpenByIDOtherDaemonDelete(t *testing.T) {
	cfg, c, r, id, _, pid := openStartSetup(t, true)
	handEvent(t, r, c, &eventsapi.ContainerDelete{ID: id})
	if n := audittest.Count(audittest.Records(t, cfg.AuditLog, ""), id, evExit); n != 0 {
		t.Errorf("%d exits recorded while pid %d of the container runs", n, pid)
	}
}

// unendedStarts returns the seqs of the recorder's start records of id
// that no exit ends, directly or through a later start of the
// recorder's that refers to them and is ended.
func unendedStarts(recs []*audit.Record, id string) []uint64 {
	ended := map[uint64]bool{}
	// Newest first: a record is met before those it refers to.
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if r.ContainerID == id && r.Source == audit.SourceContainerdEvents && r.Ref != nil && (r.Stage == audit.StageExit || ended[r.Seq]) {
			ended[r.Ref.Seq] = true
		}
	}
	var open []uint64
	for _, r := range recs {
		if r.ContainerID == id && r.Source == audit.SourceContainerdEvents && r.Stage == audit.StageStart && !ended[r.Seq] {
			open = append(open, r.Seq)
		}
	}
	return open
}

// recorderStarts returns the recorder's start records of id.
func recorderStarts(recs []*audit.Record, id string) []*audit.Record {
	var starts []*audit.Record
	for _, r := range recs {
		if r.ContainerID == id && r.Source == audit.SourceContainerdEvents && r.Stage == audit.StageStart {
			starts = append(starts, r)
		}
	}
	return starts
}

// deleteAndSettle deletes ctr (daemon d, client c) and waits for the start
// record of a container run after it: the deleted container's events
// are handled by then.
func deleteAndSettle(t *testing.T, cfg *policy.Config, d *ctrdtest.Daemon, c *client.Client, ctr client.Container, prefix string) []*audit.Record {
	t.Helper()
	ctrdtest.Delete("default", ctr)
	next := ctrdtest.Uniq(prefix + "-next")
	d.Run(t, c, "default", next, nil)
	return audittest.Wait(t, cfg.AuditLog, "the next container's start", func(rs []*audit.Record) bool { return audittest.Count(rs, next, evStart) > 0 })
}

// TestOpenByIDWalkedTask: a start a previous recorder recorded without
// namespaces (its inspection refused), of a container that runs on; the
// next recorder's first walk lists the task and records its start again
// (with namespaces, or without where inspection is still refused),
// referring to the first: the same task's start, recorded again. The
// task's exit refers to the second start and so ends both. The walk's
// start referred to nothing and the exit ended it alone: the first start
// stayed without exit, a container that to the log never stopped.
func TestOpenByIDWalkedTask(t *testing.T) {
	for _, inspected := range []bool{true, false} {
		t.Run(fmt.Sprintf("inspected=%v", inspected), func(t *testing.T) {
			o := recordOpenStart(t, "walked", true)
			startRecorder(t, o.d.Socket, o.cfgPath, func(r *Recorder) {
				if !inspected {
					r.Inspect = func(pid int, _ *inspect.LiveOnce) (*audit.Ancestry, error) {
						return nil, fmt.Errorf("inspect: pid %d: permission denied", pid)
					}
				}
			})
			// The recorder connected after its first walk.
			starts := recorderStarts(audittest.Records(t, o.cfg.AuditLog, ""), o.id)
			if len(starts) != 2 {
				t.Fatalf("%d start records after the first walk, want 2", len(starts))
			}
			if starts[1].Ref == nil || starts[1].Ref.Seq != starts[0].Seq || starts[1].Ref.Hash != starts[0].Hash || (starts[1].Ancestry != nil) != inspected {
				t.Errorf("the walk's start: ref %+v, namespaces %v; want a ref to seq %d, namespaces %v", starts[1].Ref, starts[1].Ancestry != nil, starts[0].Seq, inspected)
			}
			// A recorder started now keeps the container apart only for
			// a start without namespaces that is the last one (the first
			// is the walk's start's now).
			next := &Recorder{Log: o.log}
			next.seedKnown()
			if want := map[nsID]bool{{"default", o.id}: true}; !inspected && !maps.Equal(next.openByID, want) || inspected && len(next.openByID) != 0 {
				t.Errorf("a recorder started after the walk keeps apart %v", next.openByID)
			}
			recs := deleteAndSettle(t, o.cfg, o.d, o.c, o.ctr, "walked")
			if diff := cmp.Diff([]string{evStart, evStart, evExit}, audittest.SourceStages(recs, o.id)); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			if open := unendedStarts(recs, o.id); len(open) != 0 {
				t.Errorf("start records %v without exit after the container's exit", open)
			}
			audittest.Verify(t, o.cfg.AuditLog)
		})
	}
}

// TestOpenByIDWalkedNewTask: as in TestOpenByIDWalkedTask, but the task
// the next recorder's walk lists started after the start without
// namespaces was recorded: a new task of the container (started again
// while no recorder ran: the first task's exit was missed), or a
// container of the same namespace and ID on another daemon, whose
// recorder writes the same log (the first start's container runs on
// there). The walk's start does not refer to the first one, and the
// listed task's exit ends its own start only: ending the first too would
// end the other daemon's container while it runs, or the earlier task's
// start at a time it did not end.
func TestOpenByIDWalkedNewTask(t *testing.T) {
	for _, otherDaemon := range []bool{false, true} {
		t.Run(fmt.Sprintf("other-daemon=%v", otherDaemon), func(t *testing.T) {
			o := recordOpenStart(t, "new-task", true)
			firstStart, err := inspect.StartTime(int(o.pid))
			if err != nil {
				t.Fatal(err)
			}
			d, c, ctr := o.d, o.c, o.ctr
			if otherDaemon {
				d = ctrdtest.Start(t, ctrdtest.V2(), nil)
				c = d.Client(t)
				d.ImportBusybox(t, c, "default")
				ctr, _ = d.Run(t, c, "default", o.id, nil)
			} else {
				ctrdtest.RestartTask(t, "default", ctr)
			}
			startRecorder(t, d.Socket, o.cfgPath, nil)
			starts := recorderStarts(audittest.Records(t, o.cfg.AuditLog, ""), o.id)
			if len(starts) != 2 {
				t.Fatalf("%d start records after the first walk, want 2", len(starts))
			}
			if starts[1].Ref != nil {
				t.Errorf("the walk's start refers to seq %d, the start of another task", starts[1].Ref.Seq)
			}
			recs := deleteAndSettle(t, o.cfg, d, c, ctr, "new-task")
			if diff := cmp.Diff([]string{evStart, evStart, evExit}, audittest.SourceStages(recs, o.id)); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			if open := unendedStarts(recs, o.id); !slices.Equal(open, []uint64{starts[0].Seq}) {
				t.Errorf("start records without exit: %v; want the first only, seq %d", open, starts[0].Seq)
			}
			if otherDaemon && !inspect.Runs(int(o.pid), firstStart) {
				t.Errorf("the other daemon's container no longer runs")
			}
			audittest.Verify(t, o.cfg.AuditLog)
		})
	}
}

// TestOpenByIDWalkedTaskQueued: as in TestOpenByIDWalkedTask, with the
// audit log unwritable at the walk that lists the task: its start is
// queued, and the walk forgets the container's start without namespaces
// (the task is known). Appended at the next walk, the start still refers
// to it, and the task's exit ends both.
func TestOpenByIDWalkedTaskQueued(t *testing.T) {
	cfg, c, r, id, ctr, pid := openStartSetup(t, true)
	ctx := context.Background()
	swap := swapLog(t, cfg.AuditLog)
	swap()
	r.walk(ctx, c) // fails: the start is queued
	if len(r.pending) != 1 || len(r.openByID) != 0 {
		t.Fatalf("%d records queued, containers kept %v; want the start queued, none kept", len(r.pending), r.openByID)
	}
	swap()
	if err := r.walk(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := ctrdtest.DeleteTask("default", ctr); err != nil {
		t.Fatal(err)
	}
	handEvent(t, r, c, &eventsapi.TaskExit{ContainerID: id, ID: id, Pid: pid, ExitedAt: timestamppb.Now()})
	recs := audittest.Records(t, cfg.AuditLog, "")
	if diff := cmp.Diff([]string{evStart, evStart, evExit}, audittest.SourceStages(recs, id)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if open := unendedStarts(recs, id); len(open) != 0 {
		t.Errorf("start records %v without exit after the container's exit", open)
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestFirstWalkEarlierBootSameTask: after a crash, containerd runs a
// container under its ID again and its new task gets the PID and start
// time of the task of the boot before, whose start the log holds open.
// The first walk records the earlier start's exit and this boot's start
// of the running task: it recorded the exit, then took the task for
// known (recorded already) and left it without a start.
func TestFirstWalkEarlierBootSameTask(t *testing.T) {
	_, cfg, d, c := busyboxDaemon(t)
	log := openLog(t, cfg.AuditLog)
	id := ctrdtest.Uniq("boot")
	_, pid := d.Run(t, c, "default", id, nil)
	st, err := inspect.StartTime(int(pid))
	if err != nil {
		t.Fatal(err)
	}
	then := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, Namespace: "default", ContainerID: id,
		Verdict: audit.VerdictAllow, Ancestry: &audit.Ancestry{PID: int(pid), StartTime: st}, BootID: audittest.OtherBoot}
	if err := log.Append(context.Background(), then); err != nil {
		t.Fatal(err)
	}
	r := &Recorder{Config: cfg, Log: log, Logger: ctrdtest.Logger(t, "recorder: ")}
	if err := r.walk(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	var stages []string
	var starts, exits int
	for _, rec := range audittest.Records(t, cfg.AuditLog, id) {
		stages = append(stages, fmt.Sprintf("%s seq %d", rec.Stage, rec.Seq))
		switch {
		case audit.IsStart(rec.Stage) && rec.Ancestry != nil && rec.BootID == audit.BootID():
			starts++
		case rec.Stage == audit.StageExit && rec.Ref != nil && rec.Ref.Seq == then.Seq:
			exits++
		}
	}
	if starts != 1 || exits != 1 {
		t.Errorf("records %v: %d starts of this boot, %d exits of the earlier boot's; want 1 and 1", stages, starts, exits)
	}
	if k := (taskKey{"default", id, int(pid)}); r.known[k] != st || len(r.earlierBoot) != 0 {
		t.Errorf("known %v, earlier boot %v; want the task known, of this boot", r.known, r.earlierBoot)
	}
}
