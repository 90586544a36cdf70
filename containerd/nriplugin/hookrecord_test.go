package nriplugin

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// TestNRIRefusalOverHookRecordOnError: the injected nsrel-hook checked
// a container at createRuntime and recorded it allowed (its block
// audits); at StartContainer the plugin's own check fails under
// on_error=deny, its inspection failing or another writer holding the
// audit log's lock past the check's time. The plugin decides by its own
// check and on_error: it refuses the container, and its deny record
// follows the hook's allow record, naming it (at once, or written late
// once the lock is released); the refusal never names the hook's record
// as its own. The plugin had followed the hook's record and let the
// container run.
func TestNRIRefusalOverHookRecordOnError(t *testing.T) {
	crictl := ctrdtest.Crictl(t)
	hookBin := nstest.Tool(t, "nsrel-hook")
	for _, failure := range []string{"inspection", "locked-log"} {
		t.Run(failure, func(t *testing.T) {
			t.Parallel()
			cfgPath, cfg := ctrdtest.ConfigWith(t, `"on_error": "deny",
	"default": {"name": "default", "mode": "audit", "rules": {"require_pid_namespace": true}}`)
			log := openLog(t, cfg.AuditLog)
			other, err := audit.Open(cfg.AuditLog, audit.Options{})
			if err != nil {
				t.Fatal(err)
			}
			d, _, _ := criDaemon(t)
			// A check timeout well below containerd's 2 s request
			// timeout (as slowLog's): with the default 1.5 s, a loaded
			// machine could make containerd drop the plugin while it
			// waits for the locked log.
			p := &Plugin{Config: cfg, Log: log, Inject: &Injection{Hook: hookBin, Config: cfgPath}, Timeout: 500 * time.Millisecond}
			// The pod's sandbox is checked as usual; then the plugin's
			// inspection fails, or the log's lock is taken from under
			// it, until the test releases it.
			var podStarted atomic.Bool
			var once sync.Once
			held := make(chan func(), 1)
			p.Inspect = func(pid int, l *inspect.LiveOnce) (*audit.Ancestry, error) {
				if !podStarted.Load() {
					return inspect.ProcessWith(pid, l)
				}
				if failure == "inspection" {
					return nil, fmt.Errorf("inspection failed on purpose")
				}
				once.Do(func() { held <- holdLog(other) })
				return inspect.ProcessWith(pid, l)
			}
			startPlugin(t, d, p)
			podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq("onerror-pod"))
			podStarted.Store(true)
			id := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "ctr"), podJSON)
			_, stderr, err := d.Crictl(crictl, "start", id)
			if failure == "locked-log" {
				select {
				case release := <-held:
					release()
				default:
					t.Error("the plugin did not check the container")
				}
			}
			if err == nil {
				t.Errorf("start succeeded; want the plugin's refusal (on_error=deny)")
			}
			if out, _, _ := d.Crictl(crictl, "inspect", "-o", "go-template", "--template", "{{.status.state}}", id); out == "CONTAINER_RUNNING" {
				t.Errorf("refused container is running")
			}
			recs := audittest.Wait(t, cfg.AuditLog, "the plugin's refusal", func(rs []*audit.Record) bool { return len(audittest.SourceStages(rs, id)) >= 2 })
			var starts []*audit.Record
			for _, r := range recs {
				if r.ContainerID == id && audit.IsStart(r.Stage) {
					starts = append(starts, r)
				}
			}
			var got []string
			for _, r := range starts {
				got = append(got, fmt.Sprintf("%s/%s %s", r.Source, r.Stage, r.Verdict))
			}
			if diff := cmp.Diff([]string{"oci-hook/createRuntime allow", "nri/start deny"}, got); diff != "" {
				t.Fatalf("start records (-want +got):\n%s", diff)
			}
			if want := fmt.Sprintf("the oci-hook record seq %d allowed it", starts[0].Seq); !strings.Contains(starts[1].Error, want) {
				t.Errorf("the refusal's error %q does not say %q", starts[1].Error, want)
			}
			if hookSeq := fmt.Sprintf("(audit record seq %d)", starts[0].Seq); strings.Contains(stderr, hookSeq) {
				t.Errorf("the refusal %q names the hook's allow record as its own", stderr)
			}
			if failure == "inspection" {
				if want := fmt.Sprintf("(audit record seq %d)", starts[1].Seq); !strings.Contains(stderr, want) {
					t.Errorf("start stderr %q; want the refusal naming its record, %s", stderr, want)
				}
			} else if !strings.Contains(starts[1].Error, "written late") {
				t.Errorf("the refusal's error %q does not say it was written late", starts[1].Error)
			}
			audittest.Verify(t, cfg.AuditLog)
		})
	}
}

// TestNRIAuditModeHookRecord: nsrel-hook ran with a config that only
// audits (hook audits, plugin enforces) and recorded the start allowed,
// listing the broken rule; the plugin enforces that rule under
// on_error=deny and its own inspection fails. The plugin refuses, with a
// deny record after the hook's, naming it. It had followed the hook's
// "allow" and let the container run.
func TestNRIAuditModeHookRecord(t *testing.T) {
	id := ctrdtest.Uniq("ctr")
	cfg, p := afterOtherWriter(t, `"on_error": "deny", "default": {"name": "userns-required", "mode": "enforce", "rules": {"require_user_namespace": true}}`,
		&audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: id,
			Policy: "userns-required", Mode: "audit", Verdict: audit.VerdictAllow,
			Violations: []audit.Violation{{Rule: "require_user_namespace", Reason: "the container runs in the host's user namespace"}}})
	p.Inspect = func(int, *inspect.LiveOnce) (*audit.Ancestry, error) {
		return nil, fmt.Errorf("inspection failed on purpose")
	}
	ctr := &api.Container{Id: id, Name: "c", Pid: uint32(os.Getpid()), Hooks: &api.Hooks{CreateRuntime: []*api.Hook{{Path: "/opt/nsrel/nsrel-hook", Args: []string{"nsrel-hook", "createRuntime"}}}}}
	err := p.StartContainer(t.Context(), &api.PodSandbox{Id: "pod", Name: "p", Namespace: "ns"}, ctr)
	deny := checkOverride(t, cfg, id, "oci-hook/createRuntime", audit.VerdictDeny, "the oci-hook record seq %d allowed it")
	if want := fmt.Sprintf("(audit record seq %d)", deny.Seq); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("StartContainer: %v; want a refusal naming %s", err, want)
	}
}

// TestNRIRefusalOverHookRecord: the injected hook's config lets a
// container run (audit), the plugin's enforces a user namespace for it:
// the hook records the start allowed at createRuntime, and the plugin,
// whose check found the rule broken, refuses it at StartContainer. Its
// refusal is in the log, after the hook's record and naming it, and the
// message names the refusal's record. The plugin refused naming the
// hook's "allow" record as its own, the log saying the container that
// never ran was allowed.
func TestNRIRefusalOverHookRecord(t *testing.T) {
	crictl := ctrdtest.Crictl(t)
	hookBin := nstest.Tool(t, "nsrel-hook")
	cfgPath, cfg := enforcingConfig(t)
	hookCfg := filepath.Join(filepath.Dir(cfgPath), "lenient.json")
	if err := os.WriteFile(hookCfg, fmt.Appendf(nil, `{"version": 1, "audit_log": %q, "on_error": "allow", "default": {"name": "lenient", "mode": "audit"}}`,
		cfg.AuditLog), 0o600); err != nil {
		t.Fatal(err)
	}
	log := openLog(t, cfg.AuditLog)
	d, _, _ := criDaemon(t)
	startPlugin(t, d, &Plugin{Config: cfg, Log: log, Inject: &Injection{Hook: hookBin, Config: hookCfg}})
	podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq("over-pod"))
	bad := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "bad"), podJSON)
	_, stderr, err := d.Crictl(crictl, "start", bad)
	if out, _, _ := d.Crictl(crictl, "inspect", "-o", "go-template", "--template", "{{.status.state}}", bad); out == "CONTAINER_RUNNING" {
		t.Errorf("refused container is running")
	}
	var starts []*audit.Record
	for _, r := range audittest.Records(t, cfg.AuditLog, bad) {
		if audit.IsStart(r.Stage) {
			starts = append(starts, r)
		}
	}
	var got []string
	for _, r := range starts {
		got = append(got, fmt.Sprintf("%s/%s %s %s", r.Source, r.Stage, r.Policy, r.Verdict))
	}
	if diff := cmp.Diff([]string{"oci-hook/createRuntime lenient allow", "nri/start strict deny"}, got); diff != "" {
		t.Fatalf("start records (-want +got):\n%s", diff)
	}
	if want := fmt.Sprintf("the oci-hook record seq %d allowed it", starts[0].Seq); !strings.Contains(starts[1].Error, want) {
		t.Errorf("the refusal's error %q does not say %q", starts[1].Error, want)
	}
	if want := fmt.Sprintf("(audit record seq %d)", starts[1].Seq); err == nil || !strings.Contains(stderr, "require_user_namespace") || !strings.Contains(stderr, want) {
		t.Errorf("start: err %v, stderr %q; want the refusal naming its record, %s", err, stderr, want)
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestNRIRefusalOverAllowRecord: another writer (the event recorder,
// under a config that does not enforce) recorded a pod sandbox's start
// allowed before the plugin was asked; the plugin's block refuses it.
// Its deny record follows the other writer's, naming it, and the
// refusal names the deny record. The plugin refused naming the other
// writer's "allow" record.
func TestNRIRefusalOverAllowRecord(t *testing.T) {
	id := ctrdtest.Uniq("pod")
	cfg, p := afterOtherWriter(t, usernsRequired, &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: id,
		Policy: "lenient", Mode: "audit", Verdict: audit.VerdictAllow})
	// The test process runs in the host's user namespace: refused.
	err := p.RunPodSandbox(t.Context(), &api.PodSandbox{Id: id, Name: "web-0", Namespace: "shop", Pid: uint32(os.Getpid())})
	deny := checkOverride(t, cfg, id, "containerd-events/start", audit.VerdictDeny, "the containerd-events record seq %d allowed it")
	if want := fmt.Sprintf("(audit record seq %d)", deny.Seq); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("RunPodSandbox: %v; want a refusal naming %s", err, want)
	}
}

// TestNRIAllowOverDenyRecord is the mirror of
// TestNRIRefusalOverAllowRecord: another writer (the event recorder,
// under a stricter config, or whose disjoint_from_running scan ran out)
// recorded a pod sandbox's start as refused before the plugin was asked;
// the plugin's own check allows it and lets the sandbox run. Its allow
// record follows the other writer's, naming it and referring to it, so
// that the log's last start record of the process says what happened.
// The plugin took the refusal as its record, and the log said refused
// for a sandbox that ran.
func TestNRIAllowOverDenyRecord(t *testing.T) {
	id := ctrdtest.Uniq("pod")
	cfg, p := afterOtherWriter(t, `"on_error": "allow", "default": {"name": "open", "mode": "audit"}`,
		&audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: id,
			Policy: "strict", Mode: "enforce", Verdict: audit.VerdictDeny,
			Violations: []audit.Violation{{Rule: "require_user_namespace", Reason: "initial user namespace"}}})
	if err := p.RunPodSandbox(t.Context(), &api.PodSandbox{Id: id, Name: "web-0", Namespace: "shop", Pid: uint32(os.Getpid())}); err != nil {
		t.Fatalf("RunPodSandbox: %v; want the sandbox allowed (an open block in audit mode)", err)
	}
	checkOverride(t, cfg, id, "containerd-events/start", audit.VerdictAllow, "the containerd-events record seq %d refused it")
}

// afterOtherWriter opens a new audit log under a config of members (as
// ctrdtest.ConfigWith takes them) and appends prev to it: another
// writer's record of the start of this test's process (its ancestry
// filled in), as nsrel-hook or the event recorder write one before the
// plugin is asked. It returns the config and a plugin on that log.
func afterOtherWriter(t *testing.T, members string, prev *audit.Record) (*policy.Config, *Plugin) {
	t.Helper()
	_, cfg := ctrdtest.ConfigWith(t, members)
	log := openLog(t, cfg.AuditLog)
	anc, err := inspect.Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	prev.Ancestry = anc
	if err := log.Append(t.Context(), prev); err != nil {
		t.Fatal(err)
	}
	return cfg, &Plugin{Config: cfg, Log: log}
}

// checkOverride checks that the log holds two records of container id,
// another writer's start (prev, as audittest.SourceStages names it) and
// the plugin's after it, of verdict, whose error names the other's
// record (says, with %d for its seq) and which refers to it, so that
// the exit that ends the plugin's start ends both; it returns the
// plugin's record.
func checkOverride(t *testing.T, cfg *policy.Config, id, prev, verdict, says string) *audit.Record {
	t.Helper()
	recs := audittest.Records(t, cfg.AuditLog, id)
	if diff := cmp.Diff([]string{prev, "nri/start"}, audittest.SourceStages(recs, id)); diff != "" {
		t.Fatalf("records (-want +got):\n%s", diff)
	}
	got := recs[1]
	if want := fmt.Sprintf(says, recs[0].Seq); got.Verdict != verdict || !strings.Contains(got.Error, want) {
		t.Errorf("the plugin's record: verdict %s, error %q; want %s, saying %q", got.Verdict, got.Error, verdict, want)
	}
	if got.Ref == nil || got.Ref.Seq != recs[0].Seq || got.Ref.Hash != recs[0].Hash {
		t.Errorf("the plugin's record refers to %+v; want the record it overrides, seq %d", got.Ref, recs[0].Seq)
	}
	audittest.Verify(t, cfg.AuditLog)
	return got
}
