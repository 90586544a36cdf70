package nriplugin

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// TestNotesWrittenLate drives the plugin's requests while the audit log
// is locked: injection refused in a pod, then on the node, a container
// started without its injected hook, and a probe the runtime took. Each
// of the plugin's own records (hook-injection-refused,
// hook-missing, hook-injection-resumed) is written once the log is free,
// in order with the start waiting among them, keeping the time it was
// due and saying it was written late. They were only logged: the log
// lost where the plugin stopped injecting, on the node too, and where
// it resumed.
func TestNotesWrittenLate(t *testing.T) {
	_, cfg := ctrdtest.HookConfig(t)
	log := openLog(t, cfg.AuditLog)
	inj := &Injection{Hook: "/opt/nsrel/nsrel-hook", Config: "/opt/nsrel/hook.json"}
	p := &Plugin{Config: cfg, Log: log, Inject: inj, Timeout: 100 * time.Millisecond, ProbeAfter: time.Nanosecond}
	ctx := t.Context()
	release := holdLog(log)
	// m is injected and its PostCreateContainer missed; creations are
	// undone in pods a and b, which no injection ever confirmed.
	p.CreateContainer(ctx, &api.PodSandbox{Id: "p0"}, &api.Container{Id: "m"})
	for _, pod := range []string{"a", "b"} {
		p.CreateContainer(ctx, &api.PodSandbox{Id: pod}, &api.Container{Id: pod})
		p.StopContainer(ctx, &api.PodSandbox{Id: pod}, &api.Container{Id: pod})
	}
	if !p.Refused() {
		t.Fatal("undone in two pods and never confirmed: injection still on")
	}
	// m starts without the hook (no pid: recorded with an error,
	// allowed by on_error); the probe r is taken.
	if err := p.StartContainer(ctx, &api.PodSandbox{Id: "p0"}, &api.Container{Id: "m"}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	if adj, _, _ := p.CreateContainer(ctx, &api.PodSandbox{Id: "c"}, &api.Container{Id: "r"}); adj == nil {
		t.Fatal("no probe")
	}
	p.PostCreateContainer(ctx, &api.PodSandbox{Id: "c"}, &api.Container{Id: "r"})
	if p.Refused() {
		t.Fatal("the probe taken left injection off")
	}
	released := time.Now().UTC()
	release()

	want := []string{"a nri/" + StageInjectionRefused, "b nri/" + StageInjectionRefused, "m nri/" + StageHookMissing, "m nri/start", "r nri/" + StageInjectionResumed}
	recs := audittest.Wait(t, cfg.AuditLog, "the records due while the log was locked", func(rs []*audit.Record) bool { return len(rs) >= len(want) })
	var got []string
	for _, r := range recs {
		got = append(got, r.ContainerID+" "+r.Source+"/"+r.Stage)
		at, err := time.Parse(time.RFC3339Nano, r.Time)
		if err != nil || at.After(released) || !strings.Contains(r.Error, "written late") {
			t.Errorf("%s %s: time %s, error %q; want the time it was due, before the log was free, and written late", r.ContainerID, r.Stage, r.Time, r.Error)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if !strings.Contains(recs[1].Error, "no more injection on this node") {
		t.Errorf("the node's refusal record: error %q", recs[1].Error)
	}
	if lost := p.flushLate(); !lost.zero() {
		t.Errorf("flushLate: %+v lost, want none", lost)
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestNRILateNotesOnStop: containerd 2.4's default validator refuses
// the injected hook while the audit log is locked, and the plugin is
// stopped with its hook-injection-refused record waiting. Written
// during the stop when the log is free by then; when it is not, Run
// fails, naming the record lost. The record was only logged: Run
// returned nil, and the log never said that injection stopped in the
// pod.
func TestNRILateNotesOnStop(t *testing.T) {
	t.Parallel()
	crictl := ctrdtest.Crictl(t)
	hookBin := nstest.Tool(t, "nsrel-hook")
	cfgPath, cfg := enforcingConfig(t)
	log := openLog(t, cfg.AuditLog)
	d := ctrdtest.Start(t, ctrdtest.V2(), &ctrdtest.Options{CRI: true, NRI: true, ExtraConfig: refusingValidator})
	c := d.Client(t)
	d.ImportImage(t, c, "k8s.io", ctrdtest.PauseImageName, []string{"/bin/sleep", "infinity"})
	d.ImportBusybox(t, c, "k8s.io")
	refusals := func() (n int) {
		for _, r := range audittest.Records(t, cfg.AuditLog, "") {
			if r.Stage == StageInjectionRefused {
				n++
				if !strings.Contains(r.Error, "written late") {
					t.Errorf("%s record: error %q; want written late", r.Stage, r.Error)
				}
			}
		}
		return n
	}
	for _, taken := range []bool{true, false} {
		p := &Plugin{Config: cfg, Log: log, Inject: &Injection{Hook: hookBin, Config: cfgPath}, Timeout: 500 * time.Millisecond}
		stop := startPlugin(t, d, p)
		podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq(fmt.Sprintf("notes-%v", taken)))
		release := holdLog(log)
		// containerd undoes the creation (StopContainer, RemoveContainer)
		// before the create returns.
		if _, stderr, err := d.Crictl(crictl, "create", podID, ctrdtest.CtrConfig(t, "first"), podJSON); err == nil || !strings.Contains(stderr, "attempted restricted OCI hook injection") {
			release()
			t.Fatalf("create with the hook refused by the validator: err %v, stderr %q", err, stderr)
		}
		if !p.RefusedIn(podID) {
			release()
			t.Fatal("injection not refused in the pod")
		}
		var runErr error
		if taken {
			// Freed once the stop writes the queue itself.
			freed := make(chan struct{})
			go func() {
				defer close(freed)
				for {
					p.mu.Lock()
					flushing := p.flushing
					p.mu.Unlock()
					if flushing {
						release()
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
			runErr = stop()
			<-freed
		} else {
			runErr = stop()
			release()
		}
		switch n := refusals(); {
		case taken && (runErr != nil || n != 1):
			t.Errorf("log free during the stop: Run %v, %d %s records; want nil, one written late", runErr, n, StageInjectionRefused)
		case !taken && (runErr == nil || !strings.Contains(runErr.Error(), "stopping with 1 records of the plugin's own") || n != 1):
			t.Errorf("log locked through the stop: Run %v, %d %s records; want an error naming 1 record of the plugin's own lost, the first run's only", runErr, n, StageInjectionRefused)
		}
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestLateDropsNotes: beyond MaxLate a note waiting goes as a start
// does, before it the oldest refusal, and the next record written says
// how many of the plugin's own records were dropped, apart from starts
// and refusals; the stop counts a note lost apart too.
func TestLateDropsNotes(t *testing.T) {
	_, cfg := ctrdtest.HookConfig(t)
	note := func(id string) lateStart {
		return lateStart{rec: &audit.Record{Source: audit.SourceNRI, Stage: StageHookMissing, ContainerID: id}, note: true}
	}
	start := func(id, verdict string) *audit.Record {
		return &audit.Record{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: id, Verdict: verdict}
	}
	p := &Plugin{Config: cfg, flushing: true}
	p.late = append(p.late, note("n0"), lateStart{rec: start("refused", audit.VerdictDeny)})
	for i := range MaxLate - 2 {
		p.late = append(p.late, lateStart{rec: start(fmt.Sprintf("c%05d", i), audit.VerdictAllow)})
	}
	// A note that comes pushes the refusal out, not the oldest note.
	p.queueLate(note("n1"), "then", errors.New("log full"))
	if p.late[0].rec.ContainerID != "n0" || p.late[1].dropped != (lateCount{refused: 1}) || p.late[MaxLate-1].rec.ContainerID != "n1" {
		t.Fatalf("after a note came: head %s, [1] dropped %+v, last %s; want n0, 1 refusal, n1",
			p.late[0].rec.ContainerID, p.late[1].dropped, p.late[MaxLate-1].rec.ContainerID)
	}
	// With no refusal waiting, the oldest goes: the note.
	p.appendLater(start("next", audit.VerdictAllow), 1, 1, errors.New("log full"))
	if p.late[0].rec.ContainerID != "c00000" || p.late[0].dropped != (lateCount{refused: 1, notes: 1}) {
		t.Fatalf("after a start came: head %s (dropped %+v); want c00000 carrying 1 refusal and 1 note", p.late[0].rec.ContainerID, p.late[0].dropped)
	}
	if want := "1 records of the NRI plugin's own waiting before it were dropped (more than 10000 waited)"; !strings.Contains(p.late[0].dropped.dropped(), want) {
		t.Errorf("the next record says %q, want %q", p.late[0].dropped.dropped(), want)
	}
	// A note the log does not take at the stop is lost, counted apart.
	log := openLog(t, cfg.AuditLog)
	release := holdLog(log)
	defer release()
	p = &Plugin{Config: cfg, Log: log, flushing: true, Timeout: 50 * time.Millisecond}
	p.late = []lateStart{note("n2"), {rec: start("ran", audit.VerdictAllow), pid: 2, startTime: 2}}
	lost := p.flushLate()
	if lost != (lateCount{ran: 1, notes: 1}) {
		t.Errorf("flushLate: %+v lost, want 1 start and 1 note", lost)
	}
	if want := "stopping with 1 start records the audit log did not take; they are lost; stopping with 1 records of the plugin's own (hook injection refused or resumed, hook missing) the audit log did not take; they are lost"; lost.lost().Error() != want {
		t.Errorf("the stop says %q, want %q", lost.lost(), want)
	}
}

// TestNotesInOrder: injection is refused in a pod, then on the node,
// while the audit log is locked (both records wait); the log is freed,
// the runtime takes a probe (injection resumed) and a container starts.
// The hook-injection-resumed record is written after the refusals it
// ends, behind them in the queue, saying it was written late; the start
// is written at once, ahead of them (its check does not wait for the
// queue). The resumed record was appended at once: seq 1, before the
// refusals, so that read in the log's order the node was refused from
// then on. No goroutine appends the late records here (flushing): the
// test does (flushLate), after the probe and the start.
func TestNotesInOrder(t *testing.T) {
	_, cfg := ctrdtest.HookConfig(t)
	log := openLog(t, cfg.AuditLog)
	inj := &Injection{Hook: "/opt/nsrel/nsrel-hook", Config: "/opt/nsrel/hook.json"}
	p := &Plugin{Config: cfg, Log: log, Inject: inj, Timeout: 100 * time.Millisecond, ProbeAfter: time.Nanosecond, flushing: true}
	ctx := t.Context()
	release := holdLog(log)
	for _, pod := range []string{"a", "b"} {
		p.CreateContainer(ctx, &api.PodSandbox{Id: pod}, &api.Container{Id: pod})
		p.StopContainer(ctx, &api.PodSandbox{Id: pod}, &api.Container{Id: pod})
	}
	release()
	if !p.Refused() {
		t.Fatal("undone in two pods and never confirmed: injection still on")
	}
	if adj, _, _ := p.CreateContainer(ctx, &api.PodSandbox{Id: "c"}, &api.Container{Id: "r"}); adj == nil {
		t.Fatal("no probe")
	}
	p.PostCreateContainer(ctx, &api.PodSandbox{Id: "c"}, &api.Container{Id: "r"})
	if p.Refused() {
		t.Fatal("the probe taken left injection off")
	}
	// No pid: recorded with an error, allowed by on_error.
	if err := p.StartContainer(ctx, &api.PodSandbox{Id: "c"}, &api.Container{Id: "s"}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	if lost := p.flushLate(); !lost.zero() {
		t.Fatalf("flushLate: %+v lost, want none", lost)
	}

	recs := audittest.Records(t, cfg.AuditLog, "")
	var got []string
	for _, r := range recs {
		late := strings.Contains(r.Error, "written late")
		got = append(got, fmt.Sprintf("%s nri/%s late=%v", r.ContainerID, r.Stage, late))
	}
	want := []string{"s nri/start late=false", "a nri/" + StageInjectionRefused + " late=true", "b nri/" + StageInjectionRefused + " late=true", "r nri/" + StageInjectionResumed + " late=true"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records in the log's order (-want +got):\n%s", diff)
	}
	if n := len(recs); n == len(want) && !strings.Contains(recs[n-1].Error, "written late: records the audit log had not taken waited before it") {
		t.Errorf("the resumed record's error %q; want it written late behind the records waiting", recs[n-1].Error)
	}
	audittest.Verify(t, cfg.AuditLog)
}
