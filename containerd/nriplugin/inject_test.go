package nriplugin

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/containerd"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/vocab"
)

// refusingValidator turns on containerd's default NRI validator with
// OCI hook adjustments refused.
const refusingValidator = `
[plugins."io.containerd.nri.v1.nri".default_validator]
  enable = true
  reject_oci_hook_adjustment = true
`

// TestNRIInjection runs the plugin with hook injection against
// containerd 2.4 (NRI on, CRI through crictl). Injected: the runtime
// runs nsrel-hook at createRuntime, which records the allowed container
// and refuses the violating one, and the plugin adds no second start
// record. Refused by containerd's default validator: the first creation
// fails, the plugin records that and stops injecting, and the next
// containers are checked and recorded at StartContainer. Either way each
// container has exactly one start record, carrying the pod's namespace
// and name.
func TestNRIInjection(t *testing.T) {
	crictl := ctrdtest.Crictl(t)
	hookBin := nstest.Tool(t, "nsrel-hook")
	for _, refuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("validator-refuses=%v", refuse), func(t *testing.T) {
			t.Parallel()
			testInjection(t, crictl, hookBin, refuse)
		})
	}
}

func testInjection(t *testing.T, crictl, hookBin string, refuse bool) {
	cfgPath, cfg := enforcingConfig(t)
	log := openLog(t, cfg.AuditLog)
	opts := &ctrdtest.Options{CRI: true, NRI: true}
	if refuse {
		opts.ExtraConfig = refusingValidator
	}
	d := ctrdtest.Start(t, ctrdtest.V2(), opts)
	c := d.Client(t)
	d.ImportImage(t, c, "k8s.io", ctrdtest.PauseImageName, []string{"/bin/sleep", "infinity"})
	d.ImportBusybox(t, c, "k8s.io")
	p := &Plugin{Config: cfg, Log: log, Inject: &Injection{Hook: hookBin, Config: cfgPath}}
	startPlugin(t, d, p)

	podName := ctrdtest.Uniq("inject-pod")
	podID, podJSON := d.RunPod(t, crictl, podName)
	var undone string
	if refuse {
		_, stderr, err := d.Crictl(crictl, "create", podID, ctrdtest.CtrConfig(t, "first"), podJSON)
		if err == nil || !strings.Contains(stderr, "attempted restricted OCI hook injection") {
			t.Fatalf("create with the hook refused by the validator: err %v, stderr %q", err, stderr)
		}
		if !p.RefusedIn(podID) || p.Refused() {
			t.Fatalf("after the refused injection: refused in the pod %v, on the node %v; want the pod only", p.RefusedIn(podID), p.Refused())
		}
		for _, r := range audittest.Records(t, cfg.AuditLog, "") {
			if r.Stage == StageInjectionRefused {
				undone = r.ContainerID
			}
		}
		if undone == "" {
			t.Errorf("no %s record", StageInjectionRefused)
		}
	}
	good := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "good"), podJSON)
	d.MustCrictl(t, crictl, "start", good)
	bad := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "bad"), podJSON)
	_, stderr, err := d.Crictl(crictl, "start", bad)
	if err == nil || !strings.Contains(stderr, "require_user_namespace") {
		t.Errorf("start of the violating container: err %v, stderr %q; want a refusal naming the rule", err, stderr)
	}
	if out, _, _ := d.Crictl(crictl, "inspect", "-o", "go-template", "--template", "{{.status.state}}", bad); out == "CONTAINER_RUNNING" {
		t.Errorf("refused container is running")
	}

	recs := audittest.Records(t, cfg.AuditLog, "")
	goodWant, badWant := []string{"oci-hook/createRuntime"}, []string{"oci-hook/createRuntime", "oci-hook/poststop"}
	if refuse {
		goodWant, badWant = []string{"nri/start"}, []string{"nri/start"}
	}
	for _, tc := range []struct {
		id, verdict string
		want        []string
	}{
		{podID, audit.VerdictAllow, []string{"nri/start"}},
		{good, audit.VerdictAllow, goodWant},
		{bad, audit.VerdictDeny, badWant},
	} {
		if diff := cmp.Diff(tc.want, audittest.SourceStages(recs, tc.id)); diff != "" {
			t.Errorf("%s: records (-want +got):\n%s", tc.id, diff)
		}
		starts := 0
		for _, r := range recs {
			if r.ContainerID != tc.id || !audit.IsStart(r.Stage) {
				continue
			}
			starts++
			if r.Verdict != tc.verdict || r.Ancestry == nil {
				t.Errorf("%s: verdict %s ancestry %v; want %s with ancestry", tc.id, r.Verdict, r.Ancestry != nil, tc.verdict)
			}
			if ns, name := r.Annotations[vocab.AnnotationSandboxNamespace], r.Annotations[vocab.AnnotationSandboxName]; ns != "shop" || name != podName {
				t.Errorf("%s: pod %s/%s recorded; want shop/%s", tc.id, ns, name, podName)
			}
		}
		if starts != 1 {
			t.Errorf("%s: %d start records; want 1", tc.id, starts)
		}
	}
	for _, r := range recs {
		if r.Stage == StageHookMissing || r.Stage == StageInjectionRefused && r.ContainerID != undone {
			t.Errorf("unexpected record %s/%s for %s", r.Source, r.Stage, r.ContainerID)
		}
	}
	audittest.Verify(t, cfg.AuditLog)
}

// enforcingConfig writes a hook config whose block for containers named
// "bad" enforces a user namespace, and returns its path and the parsed
// config.
func enforcingConfig(t *testing.T) (string, *policy.Config) {
	t.Helper()
	return ctrdtest.ConfigWith(t, `"on_error": "allow",
	"trusted_selectors": {"annotations": ["io.kubernetes.cri.container-name"]},
	"policies": [{"name": "strict",
		"match": {"annotations": {"io\\.kubernetes\\.cri\\.container-name": "bad"}},
		"mode": "enforce", "rules": {"require_user_namespace": true}}],
	"default": {"name": "default", "mode": "audit", "rules": {"require_pid_namespace": true}}`)
}

// TestInjectionBookkeeping drives the plugin's requests directly: a
// spec with the hook already gets no second one; a confirmed creation
// leaves injection on; a creation undone before PostCreateContainer
// turns it off in its pod with one record, and other pods still get the
// hook (a pod's author can make its own creations fail); undone in two
// pods while no injection was ever confirmed, it turns off on the node;
// a container that starts without the hook in its final spec is noted
// and checked.
func TestInjectionBookkeeping(t *testing.T) {
	_, cfg := ctrdtest.HookConfig(t)
	log := openLog(t, cfg.AuditLog)
	inj := &Injection{Hook: "/opt/nsrel/nsrel-hook", Config: "/opt/nsrel/hook.json"}
	p := &Plugin{Config: cfg, Log: log, Inject: inj}
	ctx := t.Context()
	pod := &api.PodSandbox{Name: "web-0", Namespace: "shop"}
	hooked := &api.Hooks{CreateRuntime: []*api.Hook{{Path: inj.Hook}}}

	if adj, _, _ := p.CreateContainer(ctx, pod, &api.Container{Id: "has-hook", Hooks: hooked}); adj != nil {
		t.Errorf("a spec with the hook got an adjustment: %v", adj)
	}
	adj, _, _ := p.CreateContainer(ctx, pod, &api.Container{Id: "a"})
	if h := adj.GetHooks(); len(h.GetCreateRuntime()) != 1 || len(h.GetPoststop()) != 1 || len(h.GetPoststart()) != 0 ||
		h.CreateRuntime[0].Path != inj.Hook || !slices.Equal(h.CreateRuntime[0].Args, []string{"nsrel-hook", "--config", inj.Config, "createRuntime"}) {
		t.Fatalf("adjustment hooks %v; want nsrel-hook at createRuntime and poststop", h)
	}
	p.PostCreateContainer(ctx, pod, &api.Container{Id: "a"})
	p.StopContainer(ctx, pod, &api.Container{Id: "a"})
	p.RemoveContainer(ctx, pod, &api.Container{Id: "a"})
	if p.Refused() {
		t.Fatal("a confirmed, later removed container turned injection off")
	}

	// Injected, and started without the hook in its final spec (a
	// runtime that drops hook adjustments; no pid: recorded with an
	// error, allowed by on_error).
	p.CreateContainer(ctx, pod, &api.Container{Id: "b"})
	p.PostCreateContainer(ctx, pod, &api.Container{Id: "b"})
	if err := p.StartContainer(ctx, pod, &api.Container{Id: "b"}); err != nil {
		t.Fatal(err)
	}

	undo := func(p *Plugin, pod *api.PodSandbox, id string) {
		p.CreateContainer(ctx, pod, &api.Container{Id: id})
		p.StopContainer(ctx, pod, &api.Container{Id: id})
		p.RemoveContainer(ctx, pod, &api.Container{Id: id})
	}
	undo(p, pod, "c")
	if !p.RefusedIn(pod.Id) || p.Refused() {
		t.Fatalf("an undone creation: refused in its pod %v, on the node %v; want its pod only", p.RefusedIn(pod.Id), p.Refused())
	}
	// A removed pod is forgotten (the list grew with every refused pod).
	gone := &api.PodSandbox{Id: "gone"}
	undo(p, gone, "g0")
	p.RemovePodSandbox(ctx, gone)
	if p.RefusedIn(gone.Id) {
		t.Error("a removed pod still refused")
	}
	if adj, _, _ := p.CreateContainer(ctx, pod, &api.Container{Id: "d"}); adj != nil {
		t.Errorf("injection into the pod after a refusal: %v", adj)
	}
	other := &api.PodSandbox{Id: "other", Name: "web-1", Namespace: "shop"}
	undo(p, other, "e")
	if adj, _, _ := p.CreateContainer(ctx, &api.PodSandbox{Id: "third"}, &api.Container{Id: "f"}); adj == nil || p.Refused() {
		t.Errorf("undone in two pods after a confirmed injection: no injection into a third pod (%v), refused on the node %v", adj, p.Refused())
	}
	// Never confirmed: undone in two pods turns injection off on the node.
	p2 := &Plugin{Config: cfg, Log: log, Inject: inj}
	undo(p2, pod, "g")
	if p2.Refused() {
		t.Fatal("one pod turned injection off on the node")
	}
	undo(p2, other, "h")
	if !p2.Refused() {
		t.Fatal("two pods and no injection ever confirmed: injection still on")
	}
	if adj, _, _ := p2.CreateContainer(ctx, &api.PodSandbox{Id: "third"}, &api.Container{Id: "i"}); adj != nil {
		t.Errorf("injection after the node's refusal: %v", adj)
	}
	// ProbeAfter later, one container is injected again (a pod author
	// can make two pods' creations fail at will): undone, injection
	// stays off; taken, it is on again.
	p2.ProbeAfter = time.Nanosecond
	fourth := &api.PodSandbox{Id: "fourth"}
	// A container whose spec has the hook already is no probe.
	if adj, _, _ := p2.CreateContainer(ctx, fourth, &api.Container{Id: "has", Hooks: hooked}); adj != nil {
		t.Errorf("a spec with the hook got an adjustment: %v", adj)
	}
	if adj, _, _ := p2.CreateContainer(ctx, fourth, &api.Container{Id: "j"}); adj == nil {
		t.Fatal("no probe after ProbeAfter")
	}
	if adj, _, _ := p2.CreateContainer(ctx, fourth, &api.Container{Id: "k"}); adj != nil {
		t.Error("a second probe while one is under way")
	}
	p2.StopContainer(ctx, fourth, &api.Container{Id: "j"})
	p2.RemoveContainer(ctx, fourth, &api.Container{Id: "j"})
	if !p2.Refused() || !p2.RefusedIn(fourth.Id) {
		t.Fatal("an undone probe turned injection on, or left its pod to take the next")
	}
	if adj, _, _ := p2.CreateContainer(ctx, fourth, &api.Container{Id: "k2"}); adj != nil {
		t.Error("a probe in the pod whose probe was undone")
	}
	sixth := &api.PodSandbox{Id: "sixth"}
	if adj, _, _ := p2.CreateContainer(ctx, sixth, &api.Container{Id: "l"}); adj == nil {
		t.Fatal("no probe after an undone one")
	}
	p2.PostCreateContainer(ctx, sixth, &api.Container{Id: "l"})
	if p2.Refused() {
		t.Fatal("a probe the runtime took left injection off")
	}
	// k, created without the hook while injection was off, starts now:
	// not a container whose hook the runtime dropped.
	p2.StartContainer(ctx, fourth, &api.Container{Id: "k"})
	if adj, _, _ := p2.CreateContainer(ctx, &api.PodSandbox{Id: "fifth"}, &api.Container{Id: "m"}); adj == nil {
		t.Error("no injection once a probe was taken")
	}
	var got []string
	for _, r := range audittest.Records(t, cfg.AuditLog, "") {
		got = append(got, r.ContainerID+" "+r.Source+"/"+r.Stage)
	}
	want := []string{"b nri/" + StageHookMissing, "b nri/start", "c nri/" + StageInjectionRefused, "g0 nri/" + StageInjectionRefused, "e nri/" + StageInjectionRefused,
		"g nri/" + StageInjectionRefused, "h nri/" + StageInjectionRefused, "l nri/" + StageInjectionResumed, "k nri/start"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// TestNRIInjectionPodFailure: containerd's default validator on, OCI
// hooks allowed. A pod that names a required plugin that is not there
// makes its container's creation fail after the injection; the plugin
// stops injecting into that pod only, and a container of another pod
// still runs the injected hook (its createRuntime record is the hook's).
// A pod's author used to turn injection off for the whole node this way.
func TestNRIInjectionPodFailure(t *testing.T) {
	crictl := ctrdtest.Crictl(t)
	hookBin := nstest.Tool(t, "nsrel-hook")
	cfgPath, cfg := enforcingConfig(t)
	log := openLog(t, cfg.AuditLog)
	d := ctrdtest.Start(t, ctrdtest.V2(), &ctrdtest.Options{CRI: true, NRI: true, ExtraConfig: `
[plugins."io.containerd.nri.v1.nri".default_validator]
  enable = true
`})
	c := d.Client(t)
	d.ImportImage(t, c, "k8s.io", ctrdtest.PauseImageName, []string{"/bin/sleep", "infinity"})
	d.ImportBusybox(t, c, "k8s.io")
	p := &Plugin{Config: cfg, Log: log, Inject: &Injection{Hook: hookBin, Config: cfgPath}}
	startPlugin(t, d, p)

	// A confirmed injection first, as on any node where injection works.
	victimPod, victimJSON := d.RunPod(t, crictl, ctrdtest.Uniq("victim"))
	d.MustCrictl(t, crictl, "create", victimPod, ctrdtest.CtrConfig(t, "good"), victimJSON)

	attacker := ctrdtest.Uniq("attacker")
	podJSON := filepath.Join(t.TempDir(), "pod.json")
	os.WriteFile(podJSON, fmt.Appendf(nil, `{"metadata":{"name":%q,"namespace":"shop","uid":%q,"attempt":0},
	"annotations": {"required-plugins.noderesource.dev/pod": "[\"no-such-plugin\"]"},
	"linux":{"cgroup_parent":%q,"security_context":{"namespace_options":{"network":2}}}}`, attacker, attacker+"-uid", d.CgroupParent()+"/k8s"), 0o644)
	attackerPod := d.MustCrictl(t, crictl, "runp", podJSON)
	t.Cleanup(func() { d.Crictl(crictl, "stopp", attackerPod); d.Crictl(crictl, "rmp", "-f", attackerPod) })
	if _, stderr, err := d.Crictl(crictl, "create", attackerPod, ctrdtest.CtrConfig(t, "x"), podJSON); err == nil || !strings.Contains(stderr, "no-such-plugin") {
		t.Fatalf("create in the pod requiring a missing plugin: err %v, stderr %q", err, stderr)
	}
	if !p.RefusedIn(attackerPod) || p.Refused() {
		t.Errorf("after the failed creation: refused in its pod %v, on the node %v; want its pod only", p.RefusedIn(attackerPod), p.Refused())
	}
	next := d.MustCrictl(t, crictl, "create", victimPod, ctrdtest.CtrConfig(t, "next"), victimJSON)
	d.MustCrictl(t, crictl, "start", next)
	recs := audittest.Records(t, cfg.AuditLog, "")
	if diff := cmp.Diff([]string{"oci-hook/createRuntime"}, audittest.SourceStages(recs, next)); diff != "" {
		t.Errorf("a container of another pod after the failure (-want +got):\n%s", diff)
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestProbeResolvedAtStart: a probe whose PostCreateContainer was not
// seen (containerd ignores a plugin's failure there) is resolved when it
// starts, by its final spec; and an injection the runtime confirms while
// injection is off (made before it stopped) turns it on again. A lost
// PostCreateContainer left the probe under way for good.
func TestProbeResolvedAtStart(t *testing.T) {
	_, cfg := ctrdtest.HookConfig(t)
	log := openLog(t, cfg.AuditLog)
	inj := &Injection{Hook: "/opt/nsrel/nsrel-hook", Config: "/opt/nsrel/hook.json"}
	ctx := t.Context()
	hooked := &api.Hooks{CreateRuntime: []*api.Hook{{Path: inj.Hook}}}
	refuse := func(p *Plugin) {
		for _, pod := range []string{"a", "b"} {
			p.CreateContainer(ctx, &api.PodSandbox{Id: pod}, &api.Container{Id: pod})
			p.StopContainer(ctx, &api.PodSandbox{Id: pod}, &api.Container{Id: pod})
			p.RemoveContainer(ctx, &api.PodSandbox{Id: pod}, &api.Container{Id: pod})
		}
		if !p.Refused() {
			t.Fatal("injection still on")
		}
	}
	for _, withHook := range []bool{false, true} {
		p := &Plugin{Config: cfg, Log: log, Inject: inj, ProbeAfter: time.Nanosecond}
		refuse(p)
		pod := &api.PodSandbox{Id: "c"}
		if adj, _, _ := p.CreateContainer(ctx, pod, &api.Container{Id: "probe"}); adj == nil {
			t.Fatal("no probe")
		}
		started := &api.Container{Id: "probe"}
		if withHook {
			started.Hooks = hooked
		}
		p.StartContainer(ctx, pod, started)
		if p.Refused() == withHook {
			t.Errorf("probe started with the hook %v: refused on the node %v", withHook, p.Refused())
		}
		if !withHook {
			if adj, _, _ := p.CreateContainer(ctx, &api.PodSandbox{Id: "d"}, &api.Container{Id: "next"}); adj == nil {
				t.Error("no probe after one that started without the hook")
			}
		}
	}
	// Injected, its PostCreateContainer not seen, started with the hook
	// and stopped normally, in two pods: no refusal (left pending, each
	// stop read as an undone creation, and two turned injection off).
	p0 := &Plugin{Config: cfg, Log: log, Inject: inj}
	for _, pod := range []string{"x", "y"} {
		sb := &api.PodSandbox{Id: pod}
		p0.CreateContainer(ctx, sb, &api.Container{Id: pod})
		p0.StartContainer(ctx, sb, &api.Container{Id: pod, Hooks: hooked})
		p0.StopContainer(ctx, sb, &api.Container{Id: pod})
		p0.RemoveContainer(ctx, sb, &api.Container{Id: pod})
	}
	if p0.RefusedIn("x") || p0.Refused() {
		t.Errorf("normal stops of injected containers whose PostCreateContainer was missed: refused in the pod %v, on the node %v", p0.RefusedIn("x"), p0.Refused())
	}
	// A probe of which nothing more is heard (no PostCreateContainer,
	// start or removal) is given up ProbeAfter later: another is tried.
	// (A second probe while one is under way: TestInjectionBookkeeping.)
	ps := &Plugin{Config: cfg, Log: log, Inject: inj, ProbeAfter: 50 * time.Millisecond, ProbeGiveUp: 50 * time.Millisecond}
	refuse(ps)
	time.Sleep(60 * time.Millisecond)
	if adj, _, _ := ps.CreateContainer(ctx, &api.PodSandbox{Id: "s1"}, &api.Container{Id: "silent"}); adj == nil {
		t.Fatal("no probe")
	}
	time.Sleep(60 * time.Millisecond)
	if adj, _, _ := ps.CreateContainer(ctx, &api.PodSandbox{Id: "s3"}, &api.Container{Id: "s3"}); adj != nil {
		t.Error("a probe right after the silent one was given up")
	}
	time.Sleep(60 * time.Millisecond)
	if adj, _, _ := ps.CreateContainer(ctx, &api.PodSandbox{Id: "s4"}, &api.Container{Id: "s4"}); adj == nil {
		t.Error("no probe after the silent one was given up")
	}
	// Injected before injection stopped on the node, confirmed after.
	p := &Plugin{Config: cfg, Log: log, Inject: inj}
	early := &api.PodSandbox{Id: "early"}
	p.CreateContainer(ctx, early, &api.Container{Id: "early"})
	refuse(p)
	p.PostCreateContainer(ctx, early, &api.Container{Id: "early"})
	if p.Refused() {
		t.Error("an injection the runtime confirmed left injection off on the node")
	}
}

// TestInjectionBesideBaseSpecHook: containerd's base_runtime_spec runs
// nsrel-hook from one path (a host install) and the plugin injects it
// from another (the DaemonSet's /opt/nsrel/nsrel-hook). The plugin sees
// the hook the spec has and adds none: the container has one
// createRuntime and one poststop record. It compared the paths only,
// and the hook ran twice at each stage, two start and two exit records
// per container.
func TestInjectionBesideBaseSpecHook(t *testing.T) {
	crictl := ctrdtest.Crictl(t)
	hookBin := nstest.Tool(t, "nsrel-hook")
	cfgPath, cfg := ctrdtest.HookConfig(t)
	dir := filepath.Dir(cfgPath)
	injected := filepath.Join(dir, "opt", "nsrel", "nsrel-hook")
	data, err := os.ReadFile(hookBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(injected), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(injected, data, 0o755); err != nil {
		t.Fatal(err)
	}
	log := openLog(t, cfg.AuditLog)
	spec := ctrdtest.LoadSpec(t, ctrdtest.ShippedSpec(t))
	h := containerd.Hooks(hookBin, cfgPath)
	spec.Hooks = &h
	sj, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(dir, "base-spec.json")
	if err := os.WriteFile(specPath, sj, 0o644); err != nil {
		t.Fatal(err)
	}
	d := ctrdtest.Start(t, ctrdtest.V2(), &ctrdtest.Options{CRI: true, NRI: true, ExtraConfig: ctrdtest.ShippedFragment(t, ctrdtest.V2(), specPath)})
	c := d.Client(t)
	d.ImportImage(t, c, "k8s.io", ctrdtest.PauseImageName, []string{"/bin/sleep", "infinity"})
	d.ImportBusybox(t, c, "k8s.io")
	startPlugin(t, d, &Plugin{Config: cfg, Log: log, Inject: &Injection{Hook: injected, Config: cfgPath}})

	podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq("twice-pod"))
	id := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "ctr"), podJSON)
	d.MustCrictl(t, crictl, "start", id)
	d.MustCrictl(t, crictl, "stop", id)
	got := audittest.SourceStages(audittest.Records(t, cfg.AuditLog, ""), id)
	if diff := cmp.Diff([]string{"oci-hook/createRuntime", "oci-hook/poststop"}, got); diff != "" {
		t.Errorf("records of the container (-want +got):\n%s", diff)
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestHookRecognised: a spec runs nsrel-hook already when a createRuntime
// hook's path or args[0] names nsrel-hook, at the injected path or not;
// the plugin then adds no second one. Other hooks do not count.
func TestHookRecognised(t *testing.T) {
	_, cfg := ctrdtest.HookConfig(t)
	log := openLog(t, cfg.AuditLog)
	inj := &Injection{Hook: "/opt/nsrel/nsrel-hook", Config: "/opt/nsrel/hook.json"}
	for _, tc := range []struct {
		name   string
		hook   *api.Hook
		inject bool
	}{
		{"injected path", &api.Hook{Path: inj.Hook}, false},
		{"host install", &api.Hook{Path: "/usr/local/sbin/nsrel-hook", Args: []string{"nsrel-hook", "--config", "/etc/nsrel/hook.json", "createRuntime"}}, false},
		{"path only", &api.Hook{Path: "/usr/sbin/nsrel-hook"}, false},
		{"args[0] only", &api.Hook{Path: "/usr/libexec/nsrel/hook-1.4", Args: []string{"nsrel-hook", "createRuntime"}}, false},
		{"another hook", &api.Hook{Path: "/usr/bin/nvidia-ctk", Args: []string{"nvidia-ctk", "hook"}}, true},
		{"a name that only contains it", &api.Hook{Path: "/usr/bin/not-nsrel-hook", Args: []string{"not-nsrel-hook"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Plugin{Config: cfg, Log: log, Inject: inj}
			adj, _, _ := p.CreateContainer(t.Context(), &api.PodSandbox{Id: "pod"}, &api.Container{Id: "c", Hooks: &api.Hooks{CreateRuntime: []*api.Hook{tc.hook}}})
			if (adj != nil) != tc.inject {
				t.Errorf("adjustment %v; want one: %v", adj, tc.inject)
			}
		})
	}
}
