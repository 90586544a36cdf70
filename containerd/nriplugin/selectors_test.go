package nriplugin

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/containerd/nri/pkg/api"
	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
)

// TestNRIPodNamespaceFromRuntime checks that the plugin takes the pod's
// name and namespace from the runtime's pod, not from what the container
// (or the pod's own annotations and labels) claims: under the shipped
// config/hook-enforce-cri.json, which exempts kube-system by the trusted
// io.kubernetes.cri.sandbox-namespace, a container in the host user
// namespace that claims kube-system is refused, and the record names its
// real pod. No runtime is needed: the requests are built here and the
// host ancestry is injected.
func TestNRIPodNamespaceFromRuntime(t *testing.T) {
	cfg, err := policy.Load(filepath.Join("..", "..", "config", "hook-enforce-cri.json"))
	if err != nil {
		t.Fatal(err)
	}
	claim := map[string]string{vocab.AnnotationSandboxNamespace: "kube-system", vocab.AnnotationSandboxName: "coredns"}
	shop := &api.PodSandbox{Id: "pod-shop", Name: "web-0", Namespace: "shop"}
	system := &api.PodSandbox{Id: "pod-system", Name: "coredns", Namespace: "kube-system"}
	tests := []struct {
		name   string
		start  func(*Plugin) error
		id     string
		pod    *api.PodSandbox
		policy string
	}{
		{"container annotations claim kube-system", func(p *Plugin) error {
			return p.StartContainer(context.Background(), shop, &api.Container{Id: "ann", Pid: 77, Annotations: claim})
		}, "ann", shop, "userns-required"},
		{"container labels claim kube-system", func(p *Plugin) error {
			return p.StartContainer(context.Background(), shop, &api.Container{Id: "lab", Pid: 77, Labels: claim})
		}, "lab", shop, "userns-required"},
		{"pod annotations and labels claim kube-system", func(p *Plugin) error {
			pod := &api.PodSandbox{Id: "sandbox", Name: "web-0", Namespace: "shop", Pid: 77, Annotations: claim, Labels: claim}
			return p.RunPodSandbox(context.Background(), pod)
		}, "sandbox", shop, "userns-required"},
		{"a kube-system pod's container claims another namespace", func(p *Plugin) error {
			ann := map[string]string{vocab.AnnotationSandboxNamespace: "shop", vocab.AnnotationSandboxName: "web-0"}
			return p.StartContainer(context.Background(), system, &api.Container{Id: "sys", Pid: 77, Annotations: ann, Labels: ann})
		}, "sys", system, "system"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			p := &Plugin{Config: cfg, Log: openLog(t, path), Inspect: inspectHost}
			err := tt.start(p)
			recs := audittest.Records(t, path, tt.id)
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1", len(recs))
			}
			r := recs[0]
			want := map[string]string{vocab.AnnotationSandboxName: tt.pod.Name, vocab.AnnotationSandboxNamespace: tt.pod.Namespace,
				vocab.LabelPodName: tt.pod.Name, vocab.LabelPodNamespace: tt.pod.Namespace}
			if d := cmp.Diff(want, r.Annotations); d != "" {
				t.Errorf("recorded pod (-want +got):\n%s", d)
			}
			deny := tt.policy != "system"
			if r.Policy != tt.policy || (r.Verdict == audit.VerdictDeny) != deny || (err != nil) != deny {
				t.Errorf("block %q verdict %s error %v; want block %q, refused %v", r.Policy, r.Verdict, err, tt.policy, deny)
			}
			audittest.Verify(t, path)
		})
	}
}

// inspectHost inspects every process as PID 77 in the host's user and
// PID namespaces: no runtime is needed to refuse it.
func inspectHost(int, *inspect.LiveOnce) (*audit.Ancestry, error) {
	initialUser := uint64(nsrel.InitialUserNSIno)
	return &audit.Ancestry{PID: 77, StartTime: 5,
		User:  []audit.UserNS{{Ino: nsrel.InitialUserNSIno}},
		PIDNS: []audit.PIDNS{{Ino: nsrel.InitialPIDNSIno, OwnerUserIno: &initialUser}}}, nil
}

// TestKubeletLabelsWin: the keys the kubelet sets on a container's
// labels (the pod's name and namespace, the container's name) are
// recorded as the names the runtime sends for the pod and the
// container, over the container's annotations of the same keys (a pod's
// annotations, which containerd's pod_annotations copies into the spec:
// they named another pod in the record, which the trees show) and its
// labels (where no kubelet sets them, an image's: CRI copies them into
// its containers' labels); and they select nothing the hook would not:
// a block trusting io.kubernetes.pod.namespace was picked by the
// plugin alone, from the runtime's namespace, while the hook and the
// recorder, which read the spec's annotations, picked the default.
func TestKubeletLabelsWin(t *testing.T) {
	cfg, err := policy.Parse("x.json", []byte(`{"version":1,"audit_log":"/x",
		"trusted_selectors":{"annotations":["io.kubernetes.pod.namespace"]},
		"record_annotations":["io.kubernetes.pod.name","io.kubernetes.pod.namespace","io.kubernetes.container.name"],
		"policies":[{"name":"kube-system","mode":"audit","match":{"annotations":{"io\\.kubernetes\\.pod\\.namespace":"kube-system"}}}],
		"default":{"name":"strict","mode":"enforce","rules":{"require_user_namespace":true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	log := openLog(t, path)
	p := &Plugin{Config: cfg, Log: log, Inspect: inspectHost}
	pod := &api.PodSandbox{Id: "pod-id", Name: "coredns", Namespace: "kube-system", Pid: 77}
	image := map[string]string{vocab.LabelPodNamespace: "shop", vocab.LabelPodName: "web-0", vocab.LabelContainerName: "web"}
	ann := map[string]string{vocab.LabelPodName: "claimed"}
	if err := p.StartContainer(context.Background(), pod, &api.Container{Id: "c1", Name: "coredns", Pid: 77, Labels: image, Annotations: ann}); err == nil {
		t.Error("a container of a kube-system pod without the annotation, in the host's user namespace, ran: the runtime's namespace picked the block")
	}
	recs := audittest.Records(t, path, "c1")
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	want := map[string]string{vocab.LabelPodNamespace: "kube-system", vocab.LabelPodName: "coredns", vocab.LabelContainerName: "coredns"}
	if d := cmp.Diff(want, recs[0].Annotations); d != "" || recs[0].Policy != "strict" {
		t.Errorf("block %q, recorded names (-want +got):\n%s; want strict and the runtime's names", recs[0].Policy, d)
	}
}

// TestCRIKeysSentOnly: the io.kubernetes.cri.* keys the plugin sets for
// a container or a sandbox are container-type and those the runtime
// sent a value for; one it sent empty (no pod name or namespace) is
// left out, as from the spec nsrel-hook reads, and a claim of the
// container's or the pod's is removed all the same. sandbox-name and
// sandbox-namespace were always set, empty when not sent, so that a
// block whose pattern matches the empty string selected in the plugin
// what it does not select in the hook (docs/hook.md said "each when the
// runtime sends it").
func TestCRIKeysSentOnly(t *testing.T) {
	claims := func() map[string]string {
		return map[string]string{vocab.AnnotationSandboxName: "claimed", vocab.AnnotationSandboxNamespace: "claimed", "app": "x"}
	}
	pod := &api.PodSandbox{Id: "pod-id"}
	md := claims()
	criKeys(md, pod, &api.Container{Name: "c"})
	want := map[string]string{"app": "x", vocab.CRIAnnotationPrefix + "container-type": "container", vocab.AnnotationContainerName: "c", vocab.AnnotationSandboxID: "pod-id"}
	if d := cmp.Diff(want, md); d != "" {
		t.Errorf("container (-want +got):\n%s", d)
	}
	md = claims()
	sandboxKeys(md, pod)
	want = map[string]string{"app": "x", vocab.CRIAnnotationPrefix + "container-type": "sandbox", vocab.AnnotationSandboxID: "pod-id"}
	if d := cmp.Diff(want, md); d != "" {
		t.Errorf("sandbox (-want +got):\n%s", d)
	}
	pod = &api.PodSandbox{Id: "pod-id", Uid: "u", Name: "n", Namespace: "ns"}
	md = claims()
	sandboxKeys(md, pod)
	want = map[string]string{"app": "x", vocab.CRIAnnotationPrefix + "container-type": "sandbox", vocab.AnnotationSandboxID: "pod-id",
		vocab.CRIAnnotationPrefix + "sandbox-uid": "u", vocab.AnnotationSandboxName: "n", vocab.AnnotationSandboxNamespace: "ns"}
	if d := cmp.Diff(want, md); d != "" {
		t.Errorf("sandbox with every key sent (-want +got):\n%s", d)
	}
}

// TestSandboxAnnotationsWin: a pod's annotation of a key the config
// trusts (one an admission webhook guards, say) is not overridden by a
// label of the same key, which the webhook may not check: the pod's
// labels won over its annotations, and a pod labelled tier=open ran
// under an open block though annotated tier=locked. The kubelet's labels
// of the pod's name and namespace still win over annotations of those
// keys.
func TestSandboxAnnotationsWin(t *testing.T) {
	cfg, err := policy.Parse("x.json", []byte(`{"version":1,"audit_log":"/x",
		"trusted_selectors":{"annotations":["example.com/tier"]},
		"policies":[{"name":"locked","mode":"enforce","match":{"annotations":{"example\\.com/tier":"locked"}},"rules":{"require_user_namespace":true}}],
		"default":{"mode":"audit"}}`))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	log := openLog(t, path)
	cfg.RecordAnnotations = append(cfg.RecordAnnotations, vocab.LabelPodName)
	p := &Plugin{Config: cfg, Log: log, Inspect: inspectHost}
	pod := &api.PodSandbox{Id: "sb", Name: "web-0", Namespace: "shop", Pid: 77,
		Annotations: map[string]string{"example.com/tier": "locked", vocab.LabelPodName: "kube-apiserver"},
		Labels:      map[string]string{"example.com/tier": "open", vocab.LabelPodName: "web-0"}}
	if err := p.RunPodSandbox(context.Background(), pod); err == nil {
		t.Error("a pod annotated tier=locked, labelled tier=open, in the host's user namespace ran")
	}
	recs := audittest.Records(t, path, "sb")
	if len(recs) != 1 || recs[0].Policy != "locked" || recs[0].Annotations[vocab.LabelPodName] != "web-0" {
		t.Errorf("records %+v; want one under block locked naming the kubelet's pod web-0", recs)
	}
}
