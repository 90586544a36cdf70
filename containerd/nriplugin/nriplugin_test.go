package nriplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/nri/pkg/api"
	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/containerd"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/logging"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/syslog"
)

// TestNRIPlugin runs the NRI plugin against containerd 2.4 (NRI on, CRI
// through crictl): the pod sandbox and an allowed container are recorded
// with source "nri", and a container whose policy block enforces a user
// namespace is refused before its process runs. With nsrel-hook also
// installed through the base runtime spec, the hook records (and refuses)
// the pod's containers and the plugin records only the sandbox, which the
// base spec does not reach.
func TestNRIPlugin(t *testing.T) {
	crictl := ctrdtest.Crictl(t)
	for _, withHook := range []bool{false, true} {
		t.Run(fmt.Sprintf("hook=%v", withHook), func(t *testing.T) {
			t.Parallel()
			testPlugin(t, crictl, withHook)
		})
	}
}

func testPlugin(t *testing.T, crictl string, withHook bool) {
	cfgPath, cfg := enforcingConfig(t)
	dir := filepath.Dir(cfgPath)
	log := openLog(t, cfg.AuditLog)

	opts := &ctrdtest.Options{CRI: true, NRI: true}
	if withHook {
		spec := ctrdtest.LoadSpec(t, ctrdtest.ShippedSpec(t))
		h := containerd.Hooks(nstest.Tool(t, "nsrel-hook"), cfgPath)
		spec.Hooks = &h
		data, _ := json.Marshal(spec)
		specPath := filepath.Join(dir, "base-spec.json")
		if err := os.WriteFile(specPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		opts.ExtraConfig = ctrdtest.ShippedFragment(t, ctrdtest.V2(), specPath)
	}
	d := ctrdtest.Start(t, ctrdtest.V2(), opts)
	c := d.Client(t)
	d.ImportImage(t, c, "k8s.io", ctrdtest.PauseImageName, []string{"/bin/sleep", "infinity"})
	d.ImportBusybox(t, c, "k8s.io")

	startPlugin(t, d, &Plugin{Config: cfg, Log: log})

	podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq("nri-pod"))
	good := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "good"), podJSON)
	d.MustCrictl(t, crictl, "start", good)
	bad := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "bad"), podJSON)
	_, stderr, err := d.Crictl(crictl, "start", bad)
	if err == nil || !strings.Contains(stderr, `refused by nsrel policy`) || !strings.Contains(stderr, `require_user_namespace`) {
		t.Errorf("start of the violating container: err %v, stderr %q; want a refusal naming the policy", err, stderr)
	}
	if out, _, _ := d.Crictl(crictl, "inspect", "-o", "go-template", "--template", "{{.status.state}}", bad); out == "CONTAINER_RUNNING" {
		t.Errorf("refused container is running")
	}

	recs := audittest.Records(t, cfg.AuditLog, "")
	ctrStart, refused := []string{"nri/start"}, []string{"nri/start"}
	if withHook {
		// The hook refuses "bad" at createRuntime already; runc then runs
		// the poststop hooks while it cleans up.
		ctrStart = []string{"oci-hook/createRuntime"}
		refused = []string{"oci-hook/createRuntime", "oci-hook/poststop"}
	}
	for _, tc := range []struct {
		id, verdict, policy string
		want                []string
	}{
		{podID, audit.VerdictAllow, "default", []string{"nri/start"}},
		{good, audit.VerdictAllow, "default", ctrStart},
		{bad, audit.VerdictDeny, "strict", refused},
	} {
		if diff := cmp.Diff(tc.want, audittest.SourceStages(recs, tc.id)); diff != "" {
			t.Errorf("%s: records (-want +got):\n%s", tc.id, diff)
			continue
		}
		for _, r := range recs {
			if r.ContainerID == tc.id && audit.IsStart(r.Stage) && (r.Verdict != tc.verdict || r.Policy != tc.policy || r.Ancestry == nil) {
				t.Errorf("%s: verdict %s policy %s ancestry %v; want %s %s", tc.id, r.Verdict, r.Policy, r.Ancestry != nil, tc.verdict, tc.policy)
			}
		}
	}
	audittest.Verify(t, cfg.AuditLog)
}

// startPlugin registers p (with a logger to the test log unless it has
// one) on d's NRI socket until the test ends, when it must still be
// connected.
func startPlugin(t *testing.T, d *ctrdtest.Daemon, p *Plugin) (stop func() error) {
	t.Helper()
	if p.Logger == nil {
		p.Logger = ctrdtest.Logger(t, "nri: ")
	}
	registered := make(chan struct{})
	p.Registered = func() { close(registered) }
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = p.Run(ctx, d.NRISocket, "10") })
	stopped := false
	stop = func() error {
		cancel()
		wg.Wait()
		stopped = true
		return runErr
	}
	t.Cleanup(func() {
		if !stopped {
			if err := stop(); err != nil {
				t.Errorf("Plugin.Run: %v", err)
			}
		}
	})
	select {
	case <-registered:
	case <-time.After(30 * time.Second):
		t.Fatalf("plugin did not register; containerd log:\n%s", d.LogTail())
	}
	return stop
}

// TestNRISlowAuditLog holds the audit log's lock while a container
// starts: the plugin's check runs out of time before containerd's plugin
// request timeout and, under on_error=deny, refuses the container,
// instead of being disconnected by containerd (which would then start
// the container unchecked). The refusal is recorded once the lock is
// released (it was not recorded at all: another writer's "allow" could
// be the only record of a container that never ran). The plugin stays
// connected and checks the next container.
func TestNRISlowAuditLog(t *testing.T) {
	cfg, d, crictl, podID, podJSON, hold := slowLog(t, policy.OnErrorDeny)
	release := hold()
	slow := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "slow"), podJSON)
	_, stderr, err := d.Crictl(crictl, "start", slow)
	release()
	if err == nil || !strings.Contains(stderr, "on_error=deny") {
		t.Errorf("start while the audit log is locked: err %v, stderr %q; want a refusal naming on_error=deny", err, stderr)
	}
	if out, _, _ := d.Crictl(crictl, "inspect", "-o", "go-template", "--template", "{{.status.state}}", slow); out == "CONTAINER_RUNNING" {
		t.Errorf("container started although its check ran out of time")
	}
	recs := audittest.Wait(t, cfg.AuditLog, "the refusal, written late", func(rs []*audit.Record) bool { return len(audittest.SourceStages(rs, slow)) > 0 })
	for _, r := range recs {
		if r.ContainerID == slow && (r.Verdict != audit.VerdictDeny || !strings.Contains(r.Error, "refused (on_error=deny)") || !strings.Contains(r.Error, "written late")) {
			t.Errorf("record of the refused container: verdict %s, error %q; want deny, refused (on_error=deny), written late", r.Verdict, r.Error)
		}
	}

	next := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "next"), podJSON)
	d.MustCrictl(t, crictl, "start", next)
	recs = audittest.Records(t, cfg.AuditLog, "")
	if diff := cmp.Diff([]string{"nri/start"}, audittest.SourceStages(recs, next)); diff != "" {
		t.Errorf("the next container after the timeout (-want +got):\n%s", diff)
	}
}

// slowLog starts containerd 2.4 (CRI, NRI) with a pod and the plugin
// (check timeout 500 ms) under the given on_error; hold takes the audit
// log's lock until the function it returns is called.
func slowLog(t *testing.T, onError string) (*policy.Config, *ctrdtest.Daemon, string, string, string, func() func()) {
	t.Parallel()
	cfg, log, d, crictl := criLog(t, onError)
	startPlugin(t, d, &Plugin{Config: cfg, Log: log, Timeout: 500 * time.Millisecond})
	podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq("slow-pod"))
	return cfg, d, crictl, podID, podJSON, func() func() { return holdLog(log) }
}

// criLog starts containerd 2.4 (CRI, NRI) with the pause and busybox
// images, and returns a hook config under the given on_error, its audit
// log, the daemon and crictl.
func criLog(t *testing.T, onError string) (*policy.Config, *audit.Log, *ctrdtest.Daemon, string) {
	crictl := ctrdtest.Crictl(t)
	_, cfg := ctrdtest.HookConfig(t)
	cfg.OnError = onError
	log := openLog(t, cfg.AuditLog)
	d, _, _ := criDaemon(t)
	return cfg, log, d, crictl
}

// holdLog takes the audit log's lock until the function it returns is
// called.
func holdLog(log *audit.Log) (release func()) {
	held, rel, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		log.AppendWith(context.Background(), func(*audit.Searcher) (*audit.Record, error) {
			close(held)
			<-rel
			return nil, nil
		})
	}()
	<-held
	return func() { close(rel); <-done }
}

// TestNRISlowAuditLogAllow is TestNRISlowAuditLog under on_error=allow:
// the container starts while the audit log's lock is held, and its start
// record is written once the lock is released, saying when the start was
// and that it was written late. The plugin used to log the failure and
// drop the record.
func TestNRISlowAuditLogAllow(t *testing.T) {
	cfg, d, crictl, podID, podJSON, hold := slowLog(t, policy.OnErrorAllow)
	release := hold()
	late := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "late"), podJSON)
	d.MustCrictl(t, crictl, "start", late)
	if n := len(audittest.Records(t, cfg.AuditLog, late)); n != 0 {
		t.Errorf("%d records while the log was locked", n)
	}
	release()
	recs := audittest.Wait(t, cfg.AuditLog, "the late start", func(rs []*audit.Record) bool { return len(audittest.SourceStages(rs, late)) > 0 })
	if diff := cmp.Diff([]string{"nri/start"}, audittest.SourceStages(recs, late)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	for _, r := range recs {
		if r.ContainerID == late && (!strings.Contains(r.Error, "written late") || r.Ancestry == nil || r.Verdict != audit.VerdictAllow) {
			t.Errorf("late record: error %q, ancestry %v, verdict %s", r.Error, r.Ancestry != nil, r.Verdict)
		}
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestNRILateStartsOnStop stops the plugin (SIGTERM) while a start waits
// to be written late: the plugin writes it before Run returns when the
// log takes it within a few seconds, and Run fails, naming the records
// lost, when it does not. Run used to return at once, dropping them
// without a word.
func TestNRILateStartsOnStop(t *testing.T) {
	t.Parallel()
	cfg, log, d, crictl := criLog(t, policy.OnErrorAllow)
	podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq("late-pod"))
	for _, taken := range []bool{true, false} {
		// The pod and the first try's container, running when it
		// registers, are recorded (or found recorded) first.
		synced := make(chan struct{})
		stop := startPlugin(t, d, &Plugin{Config: cfg, Log: log, Timeout: 500 * time.Millisecond, synced: func() { close(synced) }})
		<-synced
		release := holdLog(log)
		late := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, fmt.Sprintf("late-%v", taken)), podJSON)
		d.MustCrictl(t, crictl, "start", late)
		var runErr error
		if taken {
			time.AfterFunc(time.Second, release)
			runErr = stop()
		} else {
			runErr = stop()
			release()
		}
		recs := audittest.Records(t, cfg.AuditLog, late)
		switch {
		case taken && (runErr != nil || len(recs) != 1 || !strings.Contains(recs[0].Error, "written late")):
			t.Errorf("log taken during the stop: Run %v, %d records of the late start; want nil, one written late", runErr, len(recs))
		case !taken && (runErr == nil || !strings.Contains(runErr.Error(), "1 start records the audit log did not take") || len(recs) != 0):
			t.Errorf("log locked through the stop: Run %v, %d records; want an error naming 1 record lost, none", runErr, len(recs))
		}
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestNRIWithoutPID checks that an NRI request without a pid (a runtime
// too old to send it) is recorded with an error and decided by on_error:
// refused under on_error=deny, allowed otherwise.
func TestNRIWithoutPID(t *testing.T) {
	for _, onError := range []string{policy.OnErrorAllow, policy.OnErrorDeny} {
		t.Run(onError, func(t *testing.T) {
			_, cfg := ctrdtest.HookConfig(t)
			cfg.OnError = onError
			log := openLog(t, cfg.AuditLog)
			p := &Plugin{Config: cfg, Log: log}
			id := ctrdtest.Uniq("nopid-" + onError)
			err := p.StartContainer(context.Background(), &api.PodSandbox{Name: "web-0", Namespace: "shop"}, &api.Container{Id: id})
			if (err != nil) != (onError == policy.OnErrorDeny) || err != nil && !strings.Contains(err.Error(), "refused by nsrel (on_error=deny") {
				t.Errorf("StartContainer without pid: %v", err)
			}
			recs := audittest.Records(t, cfg.AuditLog, "")
			if len(recs) != 1 || recs[0].Source != audit.SourceNRI || recs[0].Error == "" || recs[0].Ancestry != nil {
				t.Fatalf("records %+v; want one nri start with an error", recs)
			}
			want := audit.VerdictAllow
			if onError == policy.OnErrorDeny {
				want = audit.VerdictDeny
			}
			if recs[0].Verdict != want {
				t.Errorf("verdict %s, want %s", recs[0].Verdict, want)
			}
		})
	}
}

// TestNRIStuckDiagnostics runs the plugin (check timeout 1.5 s, the
// default) against containerd 2.4, whose plugin request timeout is 2 s,
// with its diagnostics (logging.Service, as `nri --log-to tcp://...`
// sets up) and its checkpoints (after every record, to the checkpoint
// file and two syslog servers over TCP) going to TCP listeners that
// never accept: every connection hangs until syslog.Timeout (1 s). A
// violating container must still be refused, by the plugin's answer,
// within the check timeout, and its deny record be in the log; the
// checkpoint is shipped after the answer (the file gets it, the stuck
// servers are warned about). The diagnostics used to be sent, and the
// checkpoint shipped, inside the request: 1 s for each entry and
// destination, so that the answer came after containerd had given up
// on the plugin and the container started unchecked.
func TestNRIStuckDiagnostics(t *testing.T) {
	crictl := ctrdtest.Crictl(t)
	t.Parallel()
	cfgPath, cfg := enforcingConfig(t)
	stuck := nstest.StuckListener(t)
	target, err := syslog.ParseTarget("tcp://" + stuck)
	if err != nil {
		t.Fatal(err)
	}
	var stderr nstest.LockedBuffer
	logger := logging.Service(target, "nsrel-containerd", &stderr, logrus.InfoLevel)
	ckptFile := filepath.Join(filepath.Dir(cfgPath), "checkpoints.jsonl")
	dest := syslog.Dest{Network: "tcp", Address: stuck}
	log, err := audit.Open(cfg.AuditLog, audit.Options{
		Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: ckptFile, Syslog: []syslog.Dest{dest, dest}},
		// As nsrel-containerd does: the log's warnings are diagnostics.
		Warn: func(err error) { logger.WithError(err).Warn("audit log") },
	})
	if err != nil {
		t.Fatal(err)
	}
	d, _, _ := criDaemon(t)
	startPlugin(t, d, &Plugin{Config: cfg, Log: log, Logger: logger})

	podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq("stuck-pod"))
	bad := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "bad"), podJSON)
	t0 := time.Now()
	_, stderrOut, err := d.Crictl(crictl, "start", bad)
	took := time.Since(t0)
	if err == nil || !strings.Contains(stderrOut, `refused by nsrel policy`) {
		t.Errorf("start of the violating container (%v): err %v, stderr %q; want the plugin's refusal", took, err, stderrOut)
	}
	if out, _, _ := d.Crictl(crictl, "inspect", "-o", "go-template", "--template", "{{.status.state}}", bad); out == "CONTAINER_RUNNING" {
		t.Errorf("refused container is running")
	}
	// crictl's start is the plugin's answer plus the runtime's work.
	if took > DefaultTimeout+time.Second/2 {
		t.Errorf("start took %v; the plugin's check timeout is %v", took, DefaultTimeout)
	}
	recs := audittest.Records(t, cfg.AuditLog, bad)
	if len(recs) != 1 || recs[0].Verdict != audit.VerdictDeny {
		t.Fatalf("records of %s: %v; want one deny", bad, audittest.Stages(recs))
	}
	// The checkpoint of the deny record is shipped after the answer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var seqs []uint64
		for c, err := range audit.ReadCheckpoints(ckptFile) {
			if err == nil {
				seqs = append(seqs, c.Seq)
			}
		}
		if slices.Contains(seqs, recs[0].Seq) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of seq %d in %s: %v", recs[0].Seq, ckptFile, seqs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestNRIStalledStderr runs the plugin with its diagnostics to stderr
// (the default --log-to) and a stderr that takes nothing (a pipe nobody
// reads, a stalled journald): every write blocks. The plugin still
// registers, records and refuses a violating container within its check
// time, and stays connected for the next; once stderr takes writes
// again the entries are there. Entries to stderr were written inside the
// request: the answer waited for stderr, containerd dropped the plugin
// after its 2 s and started containers unchecked.
func TestNRIStalledStderr(t *testing.T) {
	t.Parallel()
	_, cfg := enforcingConfig(t)
	log := openLog(t, cfg.AuditLog)
	crictl := ctrdtest.Crictl(t)
	d, _, _ := criDaemon(t)
	stderr := new(nstest.StalledWriter)
	// Should the plugin wait for stderr after all, the test is not
	// left hanging at its stop.
	time.AfterFunc(45*time.Second, stderr.Release)
	startPlugin(t, d, &Plugin{Config: cfg, Log: log, Logger: logging.Service(syslog.Target{Kind: "stderr"}, "nsrel-containerd", stderr, logrus.InfoLevel)})
	t.Cleanup(stderr.Release) // before the plugin's stop

	podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq("stalled-pod"))
	bad := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "bad"), podJSON)
	t0 := time.Now()
	_, stderrOut, err := d.Crictl(crictl, "start", bad)
	if took := time.Since(t0); err == nil || !strings.Contains(stderrOut, "refused by nsrel policy") {
		t.Errorf("start of the violating container (%v): err %v, stderr %q; want the plugin's refusal", took, err, stderrOut)
	}
	if out, _, _ := d.Crictl(crictl, "inspect", "-o", "go-template", "--template", "{{.status.state}}", bad); out == "CONTAINER_RUNNING" {
		t.Errorf("refused container is running")
	}
	good := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "good"), podJSON)
	d.MustCrictl(t, crictl, "start", good)
	recs := audittest.Records(t, cfg.AuditLog, "")
	for _, tc := range []struct{ id, verdict string }{{podID, audit.VerdictAllow}, {bad, audit.VerdictDeny}, {good, audit.VerdictAllow}} {
		if diff := cmp.Diff([]string{"nri/start"}, audittest.SourceStages(recs, tc.id)); diff != "" {
			t.Errorf("%s: records (-want +got):\n%s", tc.id, diff)
		}
	}
	if strings.Contains(stderr.String(), "refused by nsrel policy") {
		t.Fatal("stderr took an entry while it was stalled")
	}
	stderr.Release()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "refused by nsrel policy"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the refusal is not on stderr once it takes writes:\n%s", stderr.String())
		}
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestNRIStubStalledStderr: stderr takes nothing (a full pipe, a
// stalled journald) from before the plugin starts. The plugin registers
// and answers, and the NRI stub's own lines (its registration and
// Configure) go to the plugin's logger. The stub logged through logrus's
// standard logger, straight to stderr and waiting for it, so the plugin
// never registered. Not parallel: it stalls the standard logger of the
// whole test binary.
func TestNRIStubStalledStderr(t *testing.T) {
	_, cfg := enforcingConfig(t)
	log := openLog(t, cfg.AuditLog)
	crictl := ctrdtest.Crictl(t)
	d, _, _ := criDaemon(t)
	stderr := new(nstest.StalledWriter)
	std := logrus.StandardLogger()
	out := std.Out
	std.SetOutput(stderr)
	t.Cleanup(func() { std.SetOutput(out) })
	// Should the plugin wait for stderr after all, the test is not
	// left hanging at its stop (startPlugin gives up after 30 s).
	time.AfterFunc(45*time.Second, stderr.Release)
	var diag nstest.LockedBuffer
	startPlugin(t, d, &Plugin{Config: cfg, Log: log, Logger: logging.Service(syslog.Target{Kind: "stderr"}, "nsrel-containerd", &diag, logrus.InfoLevel)})
	t.Cleanup(stderr.Release) // before the plugin's stop

	podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq("stub-stalled-pod"))
	bad := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "bad"), podJSON)
	if _, stderrOut, err := d.Crictl(crictl, "start", bad); err == nil || !strings.Contains(stderrOut, "refused by nsrel policy") {
		t.Errorf("start of the violating container: err %v, stderr %q; want the plugin's refusal", err, stderrOut)
	}
	recs := audittest.Records(t, cfg.AuditLog, "")
	for _, id := range []string{podID, bad} {
		if diff := cmp.Diff([]string{"nri/start"}, audittest.SourceStages(recs, id)); diff != "" {
			t.Errorf("%s: records (-want +got):\n%s", id, diff)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(diag.String(), "Registering plugin 10-nsrel"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the stub's registration is not in the plugin's diagnostics:\n%s", diag.String())
		}
	}
}

// TestNRIQuietCheckpoint: a node where no container starts still ships
// its chain's head when a checkpoint is due by time (every_seconds), as
// the event recorder does: the plugin asks while it runs. It emitted
// checkpoints on appends only, so the documented age alert fired on a
// quiet node with nothing wrong.
func TestNRIQuietCheckpoint(t *testing.T) {
	_, cfg := ctrdtest.ConfigWith(t, `"on_error": "allow", "default": {"mode": "audit"}`)
	cpFile := filepath.Join(filepath.Dir(cfg.AuditLog), "checkpoints.jsonl")
	log, err := audit.Open(cfg.AuditLog, audit.Options{Checkpoints: &audit.CheckpointOptions{EverySeconds: 1, File: cpFile}})
	if err != nil {
		t.Fatal(err)
	}
	if err := log.Append(context.Background(), &audit.Record{Source: "test", Stage: audit.StagePoststop, ContainerID: "before"}); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		data, _ := os.ReadFile(cpFile)
		return strings.Count(string(data), "\n")
	}
	if n := count(); n != 1 {
		t.Fatalf("%d checkpoints after the first append, want 1", n)
	}
	d := ctrdtest.Start(t, ctrdtest.V2(), &ctrdtest.Options{CRI: true, NRI: true})
	startPlugin(t, d, &Plugin{Config: cfg, Log: log, CheckpointEvery: 100 * time.Millisecond})
	for deadline := time.Now().Add(20 * time.Second); count() < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint by time while the plugin ran (%d in the file)", count())
		}
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestNRIRefusalUnrecorded: a container the policy refuses is refused
// when its record cannot be written, under on_error=allow too (which
// weighs what could not be checked: this was), and its record is written
// once the log takes it. The plugin let it start: anyone who could make
// the append fail could run what the policy refuses.
func TestNRIRefusalUnrecorded(t *testing.T) {
	_, cfg := ctrdtest.ConfigWith(t, usernsRequired)
	// A directory where the log should be: appends fail.
	if err := os.Mkdir(cfg.AuditLog, 0o700); err != nil {
		t.Fatal(err)
	}
	log := openLog(t, cfg.AuditLog)
	p := &Plugin{Config: cfg, Log: log}
	id := ctrdtest.Uniq("refused-unrecorded")
	// The test process runs in the host's user namespace: refused.
	err := p.StartContainer(context.Background(), &api.PodSandbox{Name: "web-0", Namespace: "shop"}, &api.Container{Id: id, Pid: uint32(os.Getpid())})
	if err == nil || !strings.Contains(err.Error(), `refused by nsrel policy "userns-required"`) || !strings.Contains(err.Error(), "could not be written") {
		t.Fatalf("StartContainer: %v; want the refusal, saying the record could not be written", err)
	}
	if err := os.Remove(cfg.AuditLog); err != nil {
		t.Fatal(err)
	}
	recs := audittest.Wait(t, cfg.AuditLog, "the refusal, written late", func(rs []*audit.Record) bool { return len(audittest.SourceStages(rs, id)) > 0 })
	for _, r := range recs {
		if r.ContainerID == id && (r.Verdict != audit.VerdictDeny || !strings.Contains(r.Error, "written late")) {
			t.Errorf("record: verdict %s, error %q; want deny, written late", r.Verdict, r.Error)
		}
	}
}

// TestNRIStopDuringCheck stops the plugin while a container's check
// waits for the audit log: the check, cut short, leaves its start to be
// written late, and Run waits for it and writes it once the log takes
// it. The start was dropped: Run appended the late starts before the
// check had added its own.
func TestNRIStopDuringCheck(t *testing.T) {
	t.Parallel()
	cfg, log, d, crictl := criLog(t, policy.OnErrorAllow)
	p := &Plugin{Config: cfg, Log: log, Timeout: 2 * time.Second}
	stop := startPlugin(t, d, p)
	podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq("stop-pod"))
	release := holdLog(log)
	id := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "checked"), podJSON)
	started := make(chan struct{})
	go func() {
		defer close(started)
		d.Crictl(crictl, "start", id)
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		p.mu.Lock()
		n := p.active
		p.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the container's check did not start")
		}
	}
	time.AfterFunc(time.Second, release)
	if err := stop(); err != nil {
		t.Errorf("Run: %v; want nil, the start written", err)
	}
	<-started
	if recs := audittest.Records(t, cfg.AuditLog, id); len(recs) != 1 {
		t.Errorf("%d records of the container checked during the stop, want 1", len(recs))
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestStopWaitsForRequestBeforeCheck stops the plugin (Run's deferred
// flushLate) while a StartContainer request is under way but has not
// reached its check yet (the stub decoding it, the handler copying the
// pod's labels and annotations: here held at the handler's entry), with
// the audit log unwritable under on_error=allow. The stop waits for the
// request, whose start is queued to be written late, and writes it once
// the log takes it. A request was counted only from its check on: the
// stop saw none under way and said nothing was lost, and the start the
// request queued then was neither written nor counted. A request still
// under way when the stop gives up waiting is counted as one whose
// record may be lost, and what it queues later is dropped, not left
// waiting for nobody.
func TestStopWaitsForRequestBeforeCheck(t *testing.T) {
	_, cfg := ctrdtest.HookConfig(t) // on_error allow, audit mode
	// A directory where the log should be: appends fail at once.
	if err := os.Mkdir(cfg.AuditLog, 0o700); err != nil {
		t.Fatal(err)
	}
	log := openLog(t, cfg.AuditLog)
	pod := &api.PodSandbox{Id: "pod", Name: "web-0", Namespace: "shop"}

	// Stopped while the request is under way: waited for, written.
	entered, proceed := make(chan struct{}), make(chan struct{})
	p := &Plugin{Config: cfg, Log: log, Timeout: 2 * time.Second, entered: func() { close(entered); <-proceed }}
	id := ctrdtest.Uniq("in-flight")
	done := make(chan error, 1)
	go func() {
		done <- p.StartContainer(context.Background(), pod, &api.Container{Id: id, Pid: uint32(os.Getpid())})
	}()
	<-entered
	stopped := make(chan lateCount, 1)
	go func() { stopped <- p.flushLate() }()
	// The stop returns at once if it does not wait for the request.
	var lost lateCount
	returned := false
	select {
	case lost = <-stopped:
		returned = true
		t.Error("the stop returned while a request was under way")
	case <-time.After(50 * time.Millisecond):
	}
	close(proceed)
	if err := <-done; err != nil {
		t.Fatalf("StartContainer: %v; want the container allowed (on_error=allow)", err)
	}
	if err := os.Remove(cfg.AuditLog); err != nil {
		t.Fatal(err)
	}
	if !returned {
		select {
		case lost = <-stopped:
		case <-time.After(10 * time.Second):
			t.Fatal("the stop did not return")
		}
	}
	if !lost.zero() {
		t.Errorf("the stop: %+v lost, want none (the start written)", lost)
	}
	if recs := audittest.Records(t, cfg.AuditLog, id); len(recs) != 1 || !strings.Contains(recs[0].Error, "written late") {
		t.Errorf("records of the container started during the stop: %s; want its start, written late", audittest.Listing(recs))
	}

	// Still under way when the stop gives up waiting (and the log's
	// lock held): counted, its start not queued.
	entered, proceed = make(chan struct{}), make(chan struct{})
	p = &Plugin{Config: cfg, Log: log, Timeout: 50 * time.Millisecond, entered: func() { close(entered); <-proceed }}
	go func() {
		done <- p.StartContainer(context.Background(), pod, &api.Container{Id: ctrdtest.Uniq("unfinished"), Pid: uint32(os.Getpid())})
	}()
	<-entered
	lost = p.flushLate()
	if lost != (lateCount{unfinished: 1}) {
		t.Errorf("the stop: %+v lost, want 1 request under way", lost)
	}
	if want := "stopping with 1 requests still under way past the wait for them; a record they do not append at once is lost"; !lost.zero() && lost.lost().Error() != want {
		t.Errorf("the stop says %q, want %q", lost.lost(), want)
	}
	release := holdLog(log)
	close(proceed)
	<-done
	release()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.late) != 0 {
		t.Errorf("%d records queued after the stop, want none (counted at the stop)", len(p.late))
	}
}

// TestLateDrops: beyond MaxLate the oldest start waiting is dropped, but
// not the one being written (it was taken from under the write, and the
// next one, never written, went with it); the count of drops goes to the
// next start's record, or, when another writer recorded that start, to
// the one after it, else it is counted as lost at the stop.
func TestLateDrops(t *testing.T) {
	_, cfg := ctrdtest.HookConfig(t)
	p := &Plugin{Config: cfg, flushing: true}
	recs := make([]*audit.Record, MaxLate)
	for i := range recs {
		recs[i] = &audit.Record{ContainerID: fmt.Sprintf("c%05d", i)}
		p.late = append(p.late, lateStart{rec: recs[i]})
	}
	p.writing = recs[0]
	p.appendLater(&audit.Record{ContainerID: "new"}, 1, 1, errors.New("log full"))
	if len(p.late) != MaxLate || p.late[0].rec != recs[0] || p.late[1].rec != recs[2] || p.late[1].dropped != (lateCount{ran: 1}) {
		t.Fatalf("after a drop while the oldest is written: head %s, next %s (dropped %d); want c00000, then c00002 carrying 1",
			p.late[0].rec.ContainerID, p.late[1].rec.ContainerID, p.late[1].dropped)
	}
}

// TestLateDropsRefusals: beyond MaxLate a refusal waiting (the
// container did not run) is dropped before any start of a container that
// ran, and so is a refusal that comes when none waits (it pushed the
// oldest start out, whose container ran: docs/containerd.md said
// otherwise); the records and the stop count and word them apart: the next
// record written says how many starts were dropped, whose containers ran
// unrecorded, and how many refusals, whose containers did not run; Run's
// error at the stop names the refusals lost apart from the starts. The
// oldest was dropped whatever it was, and every drop or loss was worded
// "their containers ran unrecorded", refusals included.
func TestLateDropsRefusals(t *testing.T) {
	_, cfg := ctrdtest.HookConfig(t)
	start := func(id, verdict string) *audit.Record {
		return &audit.Record{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: id, Policy: "default", Mode: policy.ModeEnforce, Verdict: verdict}
	}
	// Which is dropped: the refusal, not the oldest start; with no
	// refusal waiting, the oldest start.
	p := &Plugin{Config: cfg, flushing: true}
	for i := range MaxLate {
		verdict := audit.VerdictAllow
		if i == 5 {
			verdict = audit.VerdictDeny
		}
		p.late = append(p.late, lateStart{rec: start(fmt.Sprintf("c%05d", i), verdict)})
	}
	p.appendLater(start("new-allowed", audit.VerdictAllow), 1, 1, errors.New("log full"))
	if len(p.late) != MaxLate || p.late[0].rec.ContainerID != "c00000" || p.late[5].rec.ContainerID != "c00006" || p.late[5].dropped != (lateCount{refused: 1}) {
		t.Fatalf("after a drop: head %s, [5] %s (dropped %+v); want c00000, then c00006 carrying 1 refusal",
			p.late[0].rec.ContainerID, p.late[5].rec.ContainerID, p.late[5].dropped)
	}
	// With no refusal waiting, a refusal that comes is dropped, not
	// the start of a container that ran, and the next start queued
	// carries it; it pushed the oldest start out.
	p.appendLater(start("new-refused", audit.VerdictDeny), 1, 1, errors.New("log full"))
	if p.late[0].rec.ContainerID != "c00000" || p.late[MaxLate-1].rec.ContainerID != "new-allowed" || p.droppedNew != (lateCount{refused: 1}) {
		t.Fatalf("after a refusal came: head %s, last %s, refusals dropped as they came %+v; want c00000, new-allowed, 1",
			p.late[0].rec.ContainerID, p.late[MaxLate-1].rec.ContainerID, p.droppedNew)
	}
	p.appendLater(start("next-allowed", audit.VerdictAllow), 1, 1, errors.New("log full"))
	if p.late[0].rec.ContainerID != "c00001" || p.late[0].dropped != (lateCount{ran: 1}) ||
		p.late[MaxLate-1].rec.ContainerID != "next-allowed" || p.late[MaxLate-1].dropped != (lateCount{refused: 1}) || !p.droppedNew.zero() {
		t.Fatalf("after a start came: head %s (dropped %+v), last %s (dropped %+v); want c00001 carrying 1 start, next-allowed carrying 1 refusal",
			p.late[0].rec.ContainerID, p.late[0].dropped, p.late[MaxLate-1].rec.ContainerID, p.late[MaxLate-1].dropped)
	}
	// A refusal dropped as it came, with nothing queued after it, is
	// lost at the stop.
	p = &Plugin{Config: cfg, flushing: true, Timeout: 50 * time.Millisecond}
	for i := range MaxLate {
		p.late = append(p.late, lateStart{rec: start(fmt.Sprintf("c%05d", i), audit.VerdictAllow)})
	}
	p.appendLater(start("refused-last", audit.VerdictDeny), 1, 1, errors.New("log full"))
	p.late = nil
	if lost := p.flushLate(); lost != (lateCount{refused: 1}) {
		t.Errorf("flushLate: %+v lost, want the refusal dropped as it came", lost)
	}

	// What the records say.
	log := openLog(t, cfg.AuditLog)
	p = &Plugin{Config: cfg, Log: log, flushing: true}
	p.late = []lateStart{{rec: start("next", audit.VerdictAllow), pid: 1, startTime: 1, dropped: lateCount{ran: 2, refused: 3}}}
	if lost := p.flushLate(); !lost.zero() {
		t.Errorf("flushLate: %+v lost, want none", lost)
	}
	recs := audittest.Records(t, cfg.AuditLog, "next")
	if len(recs) != 1 {
		t.Fatalf("%d records of the start after the drops, want 1", len(recs))
	}
	for _, want := range []string{"2 starts waiting before it were dropped (more than 10000 waited): their containers ran unrecorded",
		"3 refusals waiting before it were dropped (more than 10000 waited): their containers did not run"} {
		if !strings.Contains(recs[0].Error, want) {
			t.Errorf("the record's error %q does not say %q", recs[0].Error, want)
		}
	}

	// What the stop says of those the log does not take.
	other, err := audit.Open(cfg.AuditLog, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	release := holdLog(other)
	defer release()
	p = &Plugin{Config: cfg, Log: log, flushing: true, Timeout: 50 * time.Millisecond}
	p.late = []lateStart{{rec: start("ran", audit.VerdictAllow), pid: 2, startTime: 2},
		{rec: start("refused", audit.VerdictDeny), pid: 3, startTime: 3, dropped: lateCount{refused: 1}}}
	lost := p.flushLate()
	if lost != (lateCount{ran: 1, refused: 2}) {
		t.Errorf("flushLate: %+v lost, want 1 start and 2 refusals", lost)
	}
	if want := "stopping with 1 start records the audit log did not take; they are lost; stopping with 2 refusal records the audit log did not take (their containers did not run); they are lost"; lost.lost().Error() != want {
		t.Errorf("the stop says %q, want %q", lost.lost(), want)
	}
}

// criDaemon starts containerd 2.4 with CRI and NRI, imports the pause
// image (running /bin/sleep infinity) and busybox into k8s.io, and
// returns the daemon, a client of it and the busybox image.
func criDaemon(t *testing.T) (*ctrdtest.Daemon, *client.Client, client.Image) {
	t.Helper()
	d := ctrdtest.Start(t, ctrdtest.V2(), &ctrdtest.Options{CRI: true, NRI: true})
	c := d.Client(t)
	d.ImportImage(t, c, "k8s.io", ctrdtest.PauseImageName, []string{"/bin/sleep", "infinity"})
	return d, c, d.ImportBusybox(t, c, "k8s.io")
}

// openLog opens the audit log at path with default options, failing
// the test if it cannot.
func openLog(t *testing.T, path string) *audit.Log {
	t.Helper()
	log, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return log
}
