package recorder

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/nri/pkg/api"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/containerd/nriplugin"
	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
)

// TestSameDecisionThreePaths inspects one running container through the
// three writers' own entry points (nsrel-hook's stage, the event
// recorder's start, the NRI plugin's StartContainer), each writing to a
// log of its own, and checks that they record the same ancestry, policy
// block, verdict and violations: the start decision is one function
// (hook.Decide), whichever path sees the container.
func TestSameDecisionThreePaths(t *testing.T) {
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	c := d.Client(t)
	// The block's key an annotation of the spec (labels select
	// nothing: the hook never sees them), the kubelet's names labels.
	ann := map[string]string{"nsrel.test/tier": "strict"}
	label := map[string]string{"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop"}
	id := ctrdtest.Uniq("three-paths")
	_, pid := d.Run(t, c, "default", id, &ctrdtest.RunOpts{UserNS: true, Labels: label, SpecOpts: []oci.SpecOpts{oci.WithAnnotations(ann)}})

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "hook.json")
	if err := os.WriteFile(cfgPath, []byte(`{"version": 1, "audit_log": "/unused",
	"trusted_selectors": {"annotations": ["nsrel.test/tier"]},
	"policies": [{"name": "strict", "match": {"annotations": {"nsrel\\.test/tier": "strict"}},
		"mode": "enforce", "rules": {"require_pid_namespace": true, "user_depth_min": 2, "allowed_owner_uids": [4242]}}],
	"default": {"name": "default", "mode": "audit"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	open := func(name string) *audit.Log {
		l, err := audit.Open(filepath.Join(dir, name+".jsonl"), audit.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	ctx := context.Background()

	hookLog := open("hook")
	h := &hook.Hook{Config: cfg, Log: hookLog}
	if _, err := h.Run(ctx, audit.StageCreateRuntime, &specs.State{ID: id, Pid: int(pid), Annotations: ann}); err != nil {
		t.Fatal(err)
	}

	recLog := open("recorder")
	r := &Recorder{Config: cfg, Log: recLog}
	if _, ok := r.recordStart(ctx, c, "default", id, int(pid), whenOf(time.Now()), nil); !ok {
		t.Fatal("the recorder did not record the start")
	}

	nriLog := open("nri")
	p := &nriplugin.Plugin{Config: cfg, Log: nriLog}
	if err := p.StartContainer(ctx, &api.PodSandbox{Name: "web-0", Namespace: "shop"}, &api.Container{Id: id, Pid: pid, Annotations: ann, Labels: label}); err == nil {
		t.Error("the NRI plugin let a container that breaks an enforced rule start")
	}

	type decision struct {
		Ancestry   *audit.Ancestry
		Policy     string
		Mode       string
		Verdict    string
		Violations []audit.Violation
		Error      string
	}
	var got []decision
	for _, l := range []*audit.Log{hookLog, recLog, nriLog} {
		recs := audittest.Records(t, l.Path(), id)
		if len(recs) != 1 {
			t.Fatalf("%s: %d records of the container, want 1", l.Path(), len(recs))
		}
		r := recs[0]
		got = append(got, decision{r.Ancestry, r.Policy, r.Mode, r.Verdict, r.Violations, r.Error})
	}
	if got[0].Ancestry == nil || got[0].Verdict != audit.VerdictDeny || len(got[0].Violations) != 2 || got[0].Policy != "strict" {
		t.Fatalf("hook decision %+v; want the strict block's deny with two violations", got[0])
	}
	if got[0].Ancestry.PID != int(pid) || got[0].Ancestry.UserDepth() != 1 {
		t.Errorf("hook ancestry %+v; want pid %d at user depth 1", got[0].Ancestry, pid)
	}
	for i, path := range []string{"recorder", "NRI plugin"} {
		if diff := cmp.Diff(got[0], got[i+1]); diff != "" {
			t.Errorf("%s decided otherwise than the hook (-hook +%s):\n%s", path, path, diff)
		}
	}
}
