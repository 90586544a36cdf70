package nriplugin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
)

// TestSynchronizeRecordsUnchecked: a container started while the plugin
// was not connected (stopped here; containerd restarting, or the plugin)
// ran with no record, and the plugin registered again (containerd sends
// it every pod and container) recorded nothing of it. It is recorded
// now, judged as at its start, its record saying it was not checked
// then; a container recorded at its start gets no second record.
func TestSynchronizeRecordsUnchecked(t *testing.T) {
	crictl := ctrdtest.Crictl(t)
	_, cfg := enforcingConfig(t)
	log := openLog(t, cfg.AuditLog)
	d, _, _ := criDaemon(t)
	stop := startPlugin(t, d, &Plugin{Config: cfg, Log: log})
	podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq("sync-pod"))
	checked := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "checked"), podJSON)
	d.MustCrictl(t, crictl, "start", checked)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	bad := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "bad"), podJSON)
	d.MustCrictl(t, crictl, "start", bad) // no plugin: it runs
	stop = startPlugin(t, d, &Plugin{Config: cfg, Log: log})
	recs := audittest.Wait(t, cfg.AuditLog, "the unchecked container's record", func(rs []*audit.Record) bool {
		return len(audittest.SourceStages(rs, bad)) > 0
	})
	var got []*audit.Record
	for _, r := range recs {
		if r.ContainerID == bad {
			got = append(got, r)
		}
	}
	if len(got) != 1 || got[0].Source != audit.SourceNRI || got[0].Policy != "strict" || got[0].Verdict != audit.VerdictDeny ||
		!strings.Contains(got[0].Error, "started while the NRI plugin was not connected") || got[0].Ancestry == nil {
		t.Errorf("records of the container started without the plugin: %+v; want one of the plugin's, under strict, saying it was not checked", got)
	}
	// Nothing more of the pod or the container recorded at their start
	// (the stop waits for the records under way).
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{podID, checked} {
		if n := len(audittest.SourceStages(audittest.Records(t, cfg.AuditLog, ""), id)); n != 1 {
			t.Errorf("%s: %d records; want its start's alone", id[:12], n)
		}
	}
}

// syncOnce runs Synchronize with pods and ctrs and waits for its
// records.
func syncOnce(t *testing.T, p *Plugin, pods []*api.PodSandbox, ctrs []*api.Container) {
	t.Helper()
	done := make(chan struct{})
	p.synced = func() { close(done) }
	if _, err := p.Synchronize(t.Context(), pods, ctrs); err != nil {
		t.Fatal(err)
	}
	<-done
}

// TestSynchronizeStartWithoutProcess: a start recorded when its process
// could not be inspected names no process, and Synchronize's search by
// process did not find it: each registration recorded the container
// again, saying it was not checked at its start (a review found it).
func TestSynchronizeStartWithoutProcess(t *testing.T) {
	_, cfg := ctrdtest.ConfigWith(t, `"on_error": "allow", "default": {"name": "open", "mode": "audit"}`)
	log := openLog(t, cfg.AuditLog)
	fail := func(int, *inspect.LiveOnce) (*audit.Ancestry, error) {
		return nil, errors.New("inspect: budget ran out")
	}
	p := &Plugin{Config: cfg, Log: log, Inspect: fail}
	pod := &api.PodSandbox{Id: ctrdtest.Uniq("pod"), Name: "web-0", Namespace: "shop", Pid: uint32(os.Getpid())}
	if err := p.RunPodSandbox(t.Context(), pod); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		syncOnce(t, p, []*api.PodSandbox{pod}, nil)
	}
	if n := len(audittest.Records(t, cfg.AuditLog, pod.Id)); n != 1 {
		t.Errorf("%d start records of a sandbox recorded at its start; want 1", n)
	}
}

// TestSynchronizeStop: Synchronize's records do not outlive Run's stop:
// the stop waits for the record under way, and counts those not written
// yet (the next registration writes them). They went on being written
// after the stop (a review found it).
func TestSynchronizeStop(t *testing.T) {
	_, cfg := ctrdtest.ConfigWith(t, `"on_error": "allow", "default": {"name": "open", "mode": "audit"}`)
	log := openLog(t, cfg.AuditLog)
	slow := func(pid int, l *inspect.LiveOnce) (*audit.Ancestry, error) {
		time.Sleep(150 * time.Millisecond)
		return inspect.ProcessWith(pid, l)
	}
	p := &Plugin{Config: cfg, Log: log, Inspect: slow, Timeout: 200 * time.Millisecond, Logger: ctrdtest.Logger(t, "nri: ")}
	var pods []*api.PodSandbox
	for i := range 6 {
		pods = append(pods, &api.PodSandbox{Id: fmt.Sprintf("%s-%d", ctrdtest.Uniq("pod"), i), Name: "web-0", Namespace: "shop", Pid: uint32(os.Getpid())})
	}
	done := make(chan struct{})
	p.synced = func() { close(done) }
	if _, err := p.Synchronize(t.Context(), pods, nil); err != nil {
		t.Fatal(err)
	}
	lost := p.flushLate()
	before := len(audittest.Records(t, cfg.AuditLog, ""))
	<-done
	if after := len(audittest.Records(t, cfg.AuditLog, "")); after != before || lost.unsynced != len(pods)-before || lost.unsynced == 0 {
		t.Errorf("%d records at the stop, %d after, %d counted not recorded; want none after, the rest counted", before, after, lost.unsynced)
	}
	if err := lost.lost(); !strings.Contains(err.Error(), "containers found running at registration") {
		t.Errorf("the stop's error: %v", err)
	}
}

// TestSynchronizeAfterStopBegan: a registration whose Synchronize comes
// once Run's stop began records nothing then, and its containers are
// counted at the stop as not recorded (they were counted nowhere).
func TestSynchronizeAfterStopBegan(t *testing.T) {
	_, cfg := ctrdtest.ConfigWith(t, `"on_error": "allow", "default": {"name": "open", "mode": "audit"}`)
	p := &Plugin{Config: cfg, Log: openLog(t, cfg.AuditLog), Logger: ctrdtest.Logger(t, "nri: ")}
	p.flushing = true // as Run's stop sets it
	pods := []*api.PodSandbox{{Id: ctrdtest.Uniq("pod"), Name: "web-0", Namespace: "shop", Pid: uint32(os.Getpid())}}
	syncOnce(t, p, pods, nil)
	if lost := p.flushLate(); lost.unsynced != 1 {
		t.Errorf("counted at the stop: %+v; want the sandbox found running counted as not recorded", lost)
	}
	if n := len(audittest.Records(t, cfg.AuditLog, "")); n != 0 {
		t.Errorf("%d records after the stop began; want none", n)
	}
}

// TestSynchronizeGone: a container that ended between the runtime's list
// and its check has no start to record that an exit could end (its
// record would name no process): none is written.
func TestSynchronizeGone(t *testing.T) {
	_, cfg := ctrdtest.ConfigWith(t, `"on_error": "allow", "default": {"name": "open", "mode": "audit"}`)
	log := openLog(t, cfg.AuditLog)
	p := &Plugin{Config: cfg, Log: log}
	cmd := exec.Command(nstest.RequireCmd(t, "true"))
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	syncOnce(t, p, []*api.PodSandbox{{Id: ctrdtest.Uniq("gone"), Name: "web-0", Namespace: "shop", Pid: uint32(cmd.Process.Pid)}}, nil)
	for _, r := range audittest.Records(t, cfg.AuditLog, "") {
		t.Errorf("record of a process gone: seq %d %s/%s, error %q", r.Seq, r.Source, r.Stage, r.Error)
	}
}

// TestSynchronizePIDReused: a container containerd listed at the
// registration exits before its turn in the checks that follow (each up
// to the timeout), and another process, in a user namespace of its own,
// takes its PID: its namespaces were recorded as the container's, with
// its start time, which the trees' start-time check then passed (the
// pod shown on them). A process that started after the listing is not
// the container's: nothing is recorded, as for one gone.
func TestSynchronizePIDReused(t *testing.T) {
	nstest.RequireRoot(t)
	_, cfg := ctrdtest.ConfigWith(t, `"on_error": "allow", "default": {"name": "open", "mode": "audit"}`)
	log := openLog(t, cfg.AuditLog)
	sleep := nstest.RequireCmd(t, "sleep")
	victim := nstest.StartReused(t, sleep, "100")
	pid := victim.Pid
	p := &Plugin{Config: cfg, Log: log, Inspect: func(at int, live *inspect.LiveOnce) (*audit.Ancestry, error) {
		if at == pid && !victim.Taken() {
			victim.End()
			// Past the listing by more than a tick (start times count
			// ticks of 10 ms).
			time.Sleep(3 * inspect.ClockTick)
			if err := victim.Take(nstest.RequireCmd(t, "unshare"), "--user", sleep, "100"); err != nil {
				t.Error(err)
			}
			// (Another package's process that took it first makes
			// none: nothing to wait for.)
			for deadline := time.Now().Add(5 * time.Second); !victim.Stolen() && nstest.Ino(t, pid, "user") == nsrel.InitialUserNSIno && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			}
		}
		return inspect.ProcessWith(at, live)
	}}
	syncOnce(t, p, []*api.PodSandbox{{Id: ctrdtest.Uniq("reused"), Name: "web-0", Namespace: "shop", Pid: uint32(pid)}}, nil)
	if !victim.Taken() {
		t.Fatal("the PID was not taken again")
	}
	for _, r := range audittest.Records(t, cfg.AuditLog, "") {
		t.Errorf("record of the process that took the PID: seq %d %s/%s, ancestry %+v, error %q", r.Seq, r.Source, r.Stage, r.Ancestry, r.Error)
	}
}

// TestSynchronizeEarlierBootStartWithoutProcess: a start of the ID that
// names no process counts as the container's only when of this boot: an
// earlier boot's (records name their boot) kept a running sandbox from
// being recorded (a review found it).
func TestSynchronizeEarlierBootStartWithoutProcess(t *testing.T) {
	_, cfg := ctrdtest.ConfigWith(t, `"on_error": "allow", "default": {"name": "open", "mode": "audit"}`)
	log := openLog(t, cfg.AuditLog)
	then, err := audit.Open(cfg.AuditLog, audit.Options{BootID: audittest.OtherBoot})
	if err != nil {
		t.Fatal(err)
	}
	pod := &api.PodSandbox{Id: ctrdtest.Uniq("pod"), Name: "web-0", Namespace: "shop", Pid: uint32(os.Getpid())}
	if err := then.Append(t.Context(), &audit.Record{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: pod.Id, Error: "inspect: budget ran out"}); err != nil {
		t.Fatal(err)
	}
	syncOnce(t, &Plugin{Config: cfg, Log: log}, []*api.PodSandbox{pod}, nil)
	if n := len(audittest.Records(t, cfg.AuditLog, pod.Id)); n != 2 {
		t.Errorf("%d records of the ID; want the earlier boot's and this boot's", n)
	}
}

// TestSynchronizeLateDenyRan: a container found running at registration
// whose check says deny ran: waiting to be written late, its record is
// counted as one of a container found running (which runs, and which the
// next registration records: not "lost", nor "ran unrecorded"), not as a
// refusal (whose container did not run), and is not the first dropped
// from a full queue (a review found both).
func TestSynchronizeLateDenyRan(t *testing.T) {
	p := &Plugin{}
	for i := range MaxLate {
		p.late = append(p.late, lateStart{rec: &audit.Record{ContainerID: "ran", Verdict: audit.VerdictAllow, Seq: uint64(i)}})
	}
	running := lateStart{rec: &audit.Record{ContainerID: "running-unchecked", Verdict: audit.VerdictDeny, Error: NotCheckedAtStart}, running: true}
	p.late[3] = running
	if c := countOf(running); c != (lateCount{unsynced: 1}) {
		t.Errorf("counted %+v; want one container found running", c)
	}
	c := countOf(running)
	if d, l := c.dropped(), c.lost().Error(); !strings.Contains(d, "the next registration records them") || !strings.Contains(l, "the next registration records them") || strings.Contains(d+l, "unrecorded") || strings.Contains(l, "lost") {
		t.Errorf("dropped %q, at the stop %q; want them said to be recorded at the next registration", d, l)
	}
	if i := p.toDrop(lateStart{rec: &audit.Record{Verdict: audit.VerdictAllow}}); p.late[i].rec == running.rec {
		t.Errorf("the running container's record is the one dropped (index %d)", i)
	}
}

// TestSynchronizeRefusedRan: a container found running at registration
// whose last start record refused it (the plugin's refusal answered past
// containerd's deadline: containerd dropped the plugin and started the
// container) got no record, the log saying it was refused. It gets one
// that allows the start, naming the refusal, once; a refusal by the
// event recorder, which stops nothing, gets none.
func TestSynchronizeRefusedRan(t *testing.T) {
	_, cfg := ctrdtest.ConfigWith(t, `"on_error": "allow", "default": {"name": "open", "mode": "audit"}`)
	log := openLog(t, cfg.AuditLog)
	anc, err := inspect.Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	pod := &api.PodSandbox{Id: ctrdtest.Uniq("pod"), Name: "web-0", Namespace: "shop", Pid: uint32(os.Getpid())}
	other := &api.PodSandbox{Id: ctrdtest.Uniq("other-pod"), Name: "web-1", Namespace: "shop", Pid: uint32(os.Getpid())}
	refused := &audit.Record{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: pod.Id, Ancestry: anc, Policy: "strict", Mode: "enforce", Verdict: audit.VerdictDeny}
	if err := log.Append(t.Context(), refused); err != nil {
		t.Fatal(err)
	}
	if err := log.Append(t.Context(), &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: other.Id, Ancestry: anc, Verdict: audit.VerdictDeny}); err != nil {
		t.Fatal(err)
	}
	p := &Plugin{Config: cfg, Log: log}
	for range 2 {
		syncOnce(t, p, []*api.PodSandbox{pod, other}, nil)
	}
	recs := audittest.Records(t, cfg.AuditLog, pod.Id)
	if len(recs) != 2 {
		t.Fatalf("%d records of the refused sandbox found running:\n%s; want the refusal and one more", len(recs), audittest.Listing(recs))
	}
	if r := recs[1]; r.Source != audit.SourceNRI || r.Verdict != audit.VerdictAllow || r.Ref == nil || r.Ref.Seq != refused.Seq ||
		!strings.Contains(r.Error, fmt.Sprintf(RanAfterRefusal, audit.SourceNRI, refused.Seq)) || strings.Contains(r.Error, NotCheckedAtStart) {
		t.Errorf("record of the refused sandbox found running: %+v; want it allowed, naming the refusal", r)
	}
	if n := len(audittest.Records(t, cfg.AuditLog, other.Id)); n != 1 {
		t.Errorf("%d records of a sandbox the event recorder refused; want its alone", n)
	}
}

// TestSynchronizeLateAsAtOnce: a container found running at
// registration whose record the log did not take then (its lock held
// past the plugin's timeout: a stalled write, which is also what makes a
// refusal miss containerd's deadline) is appended later by the same
// rules as at once: a refusal that ran gets an allow naming it (nothing
// was written while the check still refused), another writer's allow
// stands (a refusal "at the start" was written), and a start recorded
// without its process is its start (a second start was written).
func TestSynchronizeLateAsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		prev func(id string, anc *audit.Ancestry) *audit.Record
		want string
	}{
		{"refused by the plugin", func(id string, anc *audit.Ancestry) *audit.Record {
			return &audit.Record{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: id, Ancestry: anc, Policy: "strict", Mode: "enforce", Verdict: audit.VerdictDeny}
		}, "nri/start/deny nri/start/allow+ref"},
		{"allowed by the recorder", func(id string, anc *audit.Ancestry) *audit.Record {
			return &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: id, Ancestry: anc, Verdict: audit.VerdictAllow}
		}, "containerd-events/start/allow"},
		{"started without its process", func(id string, anc *audit.Ancestry) *audit.Record {
			return &audit.Record{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: id, Verdict: audit.VerdictAllow, Error: "inspect: budget ran out"}
		}, "nri/start/allow"},
	} {
		for _, late := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, late %v", tc.name, late), func(t *testing.T) {
				_, cfg := ctrdtest.ConfigWith(t, `"on_error": "deny", "default": {"name": "open", "mode": "audit"}`)
				log := openLog(t, cfg.AuditLog)
				anc, err := inspect.Process(os.Getpid())
				if err != nil {
					t.Fatal(err)
				}
				pod := &api.PodSandbox{Id: ctrdtest.Uniq("pod"), Name: "web-0", Namespace: "shop", Pid: uint32(os.Getpid())}
				if err := log.Append(t.Context(), tc.prev(pod.Id, anc)); err != nil {
					t.Fatal(err)
				}
				// The check fails (on_error deny): it refuses.
				fail := func(int, *inspect.LiveOnce) (*audit.Ancestry, error) {
					return nil, errors.New("inspect: budget ran out")
				}
				p := &Plugin{Config: cfg, Log: log, Inspect: fail, Timeout: 300 * time.Millisecond}
				if late {
					release := holdLog(log)
					syncOnce(t, p, []*api.PodSandbox{pod}, nil)
					release()
					if lost := p.flushLate(); !lost.zero() {
						t.Fatalf("lost %+v", lost)
					}
				} else {
					syncOnce(t, p, []*api.PodSandbox{pod}, nil)
				}
				var got []string
				for _, r := range audittest.Records(t, cfg.AuditLog, pod.Id) {
					s := fmt.Sprintf("%s/%s/%s", r.Source, r.Stage, r.Verdict)
					if r.Ref != nil {
						s += "+ref"
					}
					got = append(got, s)
				}
				if strings.Join(got, " ") != tc.want {
					t.Errorf("records %q, want %q", got, tc.want)
				}
			})
		}
	}
}
