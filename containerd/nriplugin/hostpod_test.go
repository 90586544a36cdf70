package nriplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/nri/pkg/api"
	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/containerd/recorder"
	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/logging"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/vocab"
)

// hostPods starts containerd 2.4 with CRI and NRI and the plugin under
// a config (members: on_error, the blocks and selectors, as
// ctrdtest.ConfigWith takes them), with the event recorder on the same
// log when withRecorder is set. It returns the config and a function that runs a
// pod sandbox in the host's user namespace (extra: more members of the
// pod's CRI config) and says whether it ran and what crictl printed; a
// pod that ran is removed.
func hostPods(t *testing.T, members string, withRecorder bool) (*policy.Config, func(name, extra string) (bool, string)) {
	t.Helper()
	crictl := ctrdtest.Crictl(t)
	_, cfg := ctrdtest.ConfigWith(t, members)
	log := openLog(t, cfg.AuditLog)
	d := ctrdtest.Start(t, ctrdtest.V2(), &ctrdtest.Options{CRI: true, NRI: true})
	d.ImportImage(t, d.Client(t), "k8s.io", ctrdtest.PauseImageName, []string{"/bin/sleep", "infinity"})
	if withRecorder {
		runRecorder(t, d, cfg, log)
	}
	startPlugin(t, d, &Plugin{Config: cfg, Log: log})
	return cfg, func(name, extra string) (bool, string) {
		podJSON := filepath.Join(t.TempDir(), "pod.json")
		os.WriteFile(podJSON, fmt.Appendf(nil, `{"metadata":{"name":%q,"namespace":"shop","uid":%q,"attempt":0}, %s
		"linux":{"cgroup_parent":%q,"security_context":{"namespace_options":{"network":2}}}}`, name, name+"-uid", extra, d.CgroupParent()+"/k8s"), 0o644)
		return d.TryPod(crictl, podJSON)
	}
}

// runRecorder runs the event recorder on d's events, writing log, until
// the test ends; it returns once the recorder connected.
func runRecorder(t *testing.T, d *ctrdtest.Daemon, cfg *policy.Config, log *audit.Log) {
	t.Helper()
	connected := make(chan struct{}, 16)
	r := &recorder.Recorder{Address: d.Socket, Config: cfg, Log: log, Logger: ctrdtest.Logger(t, "recorder: "),
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, Connected: func() { connected <- struct{}{} }}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	select {
	case <-connected:
	case <-time.After(30 * time.Second):
		t.Fatal("recorder did not connect")
	}
}

// checkDenied checks that every start recorded is a refusal by block.
func checkDenied(t *testing.T, cfg *policy.Config, block string) {
	t.Helper()
	recs := audittest.Records(t, cfg.AuditLog, "")
	starts := 0
	for _, r := range recs {
		if audit.IsStart(r.Stage) {
			starts++
			if r.Policy != block || r.Verdict != audit.VerdictDeny {
				t.Errorf("start of %s by %s: block %q verdict %s; want %s, deny", r.ContainerID, r.Source, r.Policy, r.Verdict, block)
			}
		}
	}
	if starts == 0 {
		t.Errorf("no start recorded: %v", audittest.Stages(recs))
	}
	audittest.Verify(t, cfg.AuditLog)
}

const usernsRequired = `"on_error": "allow", "default": {"name": "userns-required", "mode": "enforce", "rules": {"require_user_namespace": true}}`

// TestNRIWithRecorder runs the plugin and the event recorder on one
// audit log, as docs/containerd.md suggests, under a default block that
// enforces a user namespace: a pod sandbox in the host's user namespace
// is refused. containerd starts the sandbox's task before it asks the
// plugin, so the recorder records the start (deny, which it cannot
// enforce) first; the plugin used to take that record as "recorded
// already" and let the pod run. The refusal names the record there is.
func TestNRIWithRecorder(t *testing.T) {
	cfg, run := hostPods(t, usernsRequired, true)
	for i := range 3 {
		name := ctrdtest.Uniq(fmt.Sprintf("host-userns-%d", i))
		if ran, stderr := run(name, ""); ran {
			t.Errorf("pod %s in the host's user namespace ran under an enforcing default block", name)
		} else if !strings.Contains(stderr, "refused by nsrel policy") || !strings.Contains(stderr, "userns-required") || strings.Contains(stderr, "seq 0)") {
			t.Errorf("runp %s: stderr %q; want the plugin's refusal naming a record", name, stderr)
		}
	}
	checkDenied(t, cfg, "userns-required")
}

// TestNRISandboxCRIKeys trusts io.kubernetes.cri.container-name (a key
// CRI sets on containers, so a pod cannot choose it) and exempts
// "legacy" from the enforcing default: a pod sandbox in the host's user
// namespace whose author put container-name=legacy in its labels or
// annotations is still refused by the default, and recorded so by the
// plugin and by the event recorder alike. The plugin used to copy the
// pod's labels over its annotations and take them as the sandbox's; the
// recorder took the labels' key, recording the start as allowed by
// "legacy".
func TestNRISandboxCRIKeys(t *testing.T) {
	for _, withRecorder := range []bool{false, true} {
		t.Run(fmt.Sprintf("recorder=%v", withRecorder), func(t *testing.T) {
			cfg, run := hostPods(t, `"trusted_selectors": {"annotations": ["io.kubernetes.cri.container-name"]},
	"policies": [{"name": "legacy", "match": {"annotations": {"io\\.kubernetes\\.cri\\.container-name": "legacy"}}, "mode": "audit"}], `+usernsRequired, withRecorder)
			for _, where := range []string{"labels", "annotations"} {
				name := ctrdtest.Uniq("legacy-" + where)
				if ran, stderr := run(name, fmt.Sprintf(`%q: {"io.kubernetes.cri.container-name": "legacy"},`, where)); ran {
					t.Errorf("%s: a pod claiming container-name=legacy in its %s ran in the host's user namespace", name, where)
				} else if !strings.Contains(stderr, "refused by nsrel policy") || !strings.Contains(stderr, "userns-required") {
					t.Errorf("%s: stderr %q; want the default block's refusal", name, stderr)
				}
			}
			checkDenied(t, cfg, "userns-required")
		})
	}
}

// TestNRIAnnotationLimits: a pod with more annotations than the hook
// takes from a state is refused under on_error deny, as the hook refuses
// such a state (where the runtime passes them to the spec), and one
// within the limits runs; the refused pod's record
// says why and keeps the pod's names. The plugin used to take any
// number of annotations of any length.
func TestNRIAnnotationLimits(t *testing.T) {
	cfg, run := hostPods(t, `"on_error": "deny", "default": {"name": "open", "mode": "audit"}`, false)
	many := make([]string, 4097)
	for i := range many {
		many[i] = fmt.Sprintf(`"a%04d": "v"`, i)
	}
	name := ctrdtest.Uniq("few")
	if ran, stderr := run(name, `"annotations": {"a": "v"},`); !ran {
		t.Errorf("%s: a pod within the limits was refused: %s", name, stderr)
	}
	name = ctrdtest.Uniq("many")
	if ran, stderr := run(name, `"annotations": {`+strings.Join(many, ",")+`},`); ran || !strings.Contains(stderr, "more than 4096 annotations") {
		t.Errorf("%s: a pod with 4097 annotations ran %v, stderr %q; want a refusal saying why", name, ran, stderr)
	}
	var refused *audit.Record
	for _, r := range audittest.Records(t, cfg.AuditLog, "") {
		if r.Verdict == audit.VerdictDeny {
			refused = r
		}
	}
	if refused == nil || !strings.Contains(refused.Error, "more than 4096 annotations") || refused.Annotations["io.kubernetes.cri.sandbox-name"] != name {
		t.Errorf("refused record %+v; want its error and the pod's name", refused)
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestAnnotationLimitCountsSent: the plugin counts, against the hook's
// limit of 4096 annotations, the annotations the runtime sent, which
// the hook's state carries (containerd's are the spec's, its
// io.kubernetes.cri.* keys included): exactly 4096 pass, whatever the
// pod's or container's labels and the keys the plugin sets itself; one
// more is refused under on_error=deny, as the hook refuses such a
// state, with the hook's error, and the record keeps the names the
// config records. The plugin counted the labels and its own keys too,
// and refused a pod of 4092 annotations the hook would have taken.
func TestAnnotationLimitCountsSent(t *testing.T) {
	// n annotations, as containerd sends them: the spec's CRI keys
	// among them, of container type ctype ("": none of them).
	annotations := func(n int, ctype string) map[string]string {
		md := map[string]string{}
		if ctype != "" {
			md[vocab.CRIAnnotationPrefix+"container-type"] = ctype
			md[vocab.AnnotationSandboxID] = "pod"
			md[vocab.AnnotationSandboxName] = "web-0"
			md[vocab.AnnotationSandboxNamespace] = "shop"
		}
		for i := 0; len(md) < n; i++ {
			md[fmt.Sprintf("a%04d", i)] = "v"
		}
		return md
	}
	labels := map[string]string{}
	for i := range 100 {
		labels[fmt.Sprintf("l%03d", i)] = "v"
	}
	for _, tc := range []struct {
		name        string
		sandbox     bool
		annotations map[string]string
		labels      map[string]string
		refused     bool
	}{
		{"sandbox at the limit", true, annotations(hook.MaxAnnotations, "sandbox"), nil, false},
		{"sandbox at the limit with labels", true, annotations(hook.MaxAnnotations, "sandbox"), labels, false},
		{"sandbox without the runtime's keys", true, annotations(hook.MaxAnnotations-4, ""), nil, false},
		{"sandbox past the limit", true, annotations(hook.MaxAnnotations+1, "sandbox"), nil, true},
		{"container at the limit with labels", false, annotations(hook.MaxAnnotations, "container"), labels, false},
		{"container past the limit", false, annotations(hook.MaxAnnotations+1, "container"), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, cfg := ctrdtest.ConfigWith(t, `"on_error": "deny", "default": {"name": "open", "mode": "audit"}`)
			p := &Plugin{Config: cfg, Log: openLog(t, cfg.AuditLog)}
			id := ctrdtest.Uniq("limit")
			pod := &api.PodSandbox{Id: id, Uid: "u", Name: "web-0", Namespace: "shop", Pid: uint32(os.Getpid()), Annotations: tc.annotations, Labels: tc.labels}
			var err error
			if tc.sandbox {
				err = p.RunPodSandbox(t.Context(), pod)
			} else {
				pod.Id, pod.Annotations, pod.Labels = "pod", nil, nil
				err = p.StartContainer(t.Context(), pod, &api.Container{Id: id, Name: "app", Pid: uint32(os.Getpid()), Annotations: tc.annotations, Labels: tc.labels})
			}
			if !tc.refused {
				if err != nil {
					t.Fatalf("%d annotations sent, %d labels: refused: %v", len(tc.annotations), len(tc.labels), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "more than 4096 annotations") {
				t.Fatalf("%d annotations sent: %v; want a refusal saying why", len(tc.annotations), err)
			}
			recs := audittest.Records(t, cfg.AuditLog, id)
			if len(recs) != 1 || recs[0].Verdict != audit.VerdictDeny || !strings.Contains(recs[0].Error, "more than 4096 annotations") ||
				recs[0].Annotations[vocab.AnnotationSandboxName] != "web-0" {
				t.Errorf("records %v; want one refusal saying why, naming the pod", audittest.Listing(recs))
			}
		})
	}
}

// TestNRISandboxContainerNameLabel runs a pod whose author put
// io.kubernetes.container.name in its labels (the kubelet copies a pod's
// labels onto its sandbox): the plugin's and the recorder's records of
// the sandbox name the pod, not a container, as the containerd source
// does (TestCRISandboxNamedByPod in package containerd). Both recorded
// the label, which names the sandbox a container of the pod.
func TestNRISandboxContainerNameLabel(t *testing.T) {
	for _, withRecorder := range []bool{false, true} {
		t.Run(fmt.Sprintf("recorder=%v", withRecorder), func(t *testing.T) {
			cfg, run := hostPods(t, `"on_error": "deny", "default": {"name": "open", "mode": "audit"}`, withRecorder)
			name := ctrdtest.Uniq("named-pod")
			if ran, stderr := run(name, fmt.Sprintf(`"labels": {%q: %q, %q: "shop", %q: "kube-apiserver"},`,
				vocab.LabelPodName, name, vocab.LabelPodNamespace, vocab.LabelContainerName)); !ran {
				t.Fatalf("runp: %s", stderr)
			}
			starts := 0
			for _, r := range audittest.Records(t, cfg.AuditLog, "") {
				if !audit.IsStart(r.Stage) {
					continue
				}
				starts++
				if got, want := vocab.ContainerName(r.Annotations), "shop/"+name; got != want {
					t.Errorf("%s/%s names the sandbox %q, want %q (annotations %v)", r.Source, r.Stage, got, want, r.Annotations)
				}
			}
			if want := map[bool]int{false: 1, true: 1}[withRecorder]; starts < want {
				t.Errorf("%d starts recorded, want at least %d", starts, want)
			}
		})
	}
}

// TestNRIContainerCRIKeys trusts io.kubernetes.cri.container-name and
// container-type (keys CRI sets on a container's spec, over the pod
// author's) and exempts containers named "legacy", and sandboxes, from
// the enforcing default. A container named "forger" whose CRI config
// claims every io.kubernetes.cri.* key (container-name legacy,
// container-type sandbox, another pod's sandbox-id) is still refused
// by the default, and its record holds the names the runtime gave (no
// image name: the plugin has none it can trust, TestNRIImageName): the
// annotations NRI sends are the spec's with the CRI config's copied over
// them. The plugin took the container's claims, and ran the forger in
// the host's user namespace.
func TestNRIContainerCRIKeys(t *testing.T) {
	crictl := ctrdtest.Crictl(t)
	keys := []string{"container-name", "container-type", "sandbox-id", "sandbox-uid", "sandbox-name", "sandbox-namespace", "image-name"}
	var recorded []string
	for _, k := range keys {
		recorded = append(recorded, fmt.Sprintf("%q", vocab.CRIAnnotationPrefix+k))
	}
	_, cfg := ctrdtest.ConfigWith(t, `"on_error": "allow",
	"record_annotations": [`+strings.Join(recorded, ", ")+`],
	"trusted_selectors": {"annotations": ["io.kubernetes.cri.container-name", "io.kubernetes.cri.container-type"]},
	"policies": [
		{"name": "sandboxes", "match": {"annotations": {"io\\.kubernetes\\.cri\\.container-type": "sandbox"}}, "mode": "audit"},
		{"name": "legacy", "match": {"annotations": {"io\\.kubernetes\\.cri\\.container-name": "legacy"}}, "mode": "audit"}],
	"default": {"name": "userns-required", "mode": "enforce", "rules": {"require_user_namespace": true}}`)
	log := openLog(t, cfg.AuditLog)
	d, _, _ := criDaemon(t)
	startPlugin(t, d, &Plugin{Config: cfg, Log: log}) // no injection: the plugin decides
	podName := ctrdtest.Uniq("forge-pod")
	podID, podJSON := d.RunPod(t, crictl, podName)

	claims := map[string]string{}
	for _, k := range keys {
		claims[vocab.CRIAnnotationPrefix+k] = "claimed"
	}
	claims[vocab.AnnotationContainerName] = "legacy"
	claims[vocab.CRIAnnotationPrefix+"container-type"] = "sandbox"
	ann, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	ctrJSON := filepath.Join(t.TempDir(), "forger.json")
	if err := os.WriteFile(ctrJSON, fmt.Appendf(nil, `{"metadata":{"name":"forger"},"image":{"image":%q},"command":["sleep","3600"],"linux":{},"annotations":%s}`,
		ctrdtest.ImageName, ann), 0o644); err != nil {
		t.Fatal(err)
	}
	forger := d.MustCrictl(t, crictl, "create", podID, ctrJSON, podJSON)
	if _, stderr, err := d.Crictl(crictl, "start", forger); err == nil || !strings.Contains(stderr, "refused by nsrel policy") || !strings.Contains(stderr, "userns-required") {
		t.Errorf("start of the forger: err %v, stderr %q; want the default block's refusal", err, stderr)
	}
	recs := audittest.Records(t, cfg.AuditLog, forger)
	if len(recs) != 1 {
		t.Fatalf("%d records of the forger, want 1", len(recs))
	}
	got := recs[0].Annotations
	want := map[string]string{
		vocab.AnnotationContainerName: "forger", vocab.CRIAnnotationPrefix + "container-type": "container",
		vocab.AnnotationSandboxID: podID, vocab.AnnotationSandboxName: podName, vocab.AnnotationSandboxNamespace: "shop",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("recorded %s = %q, want %q", k, got[k], v)
		}
	}
	if v, ok := got[vocab.AnnotationImageName]; ok {
		t.Errorf("recorded %s = %q; the plugin has no trustworthy image name (TestNRIImageName)", vocab.AnnotationImageName, v)
	}
	for _, k := range keys {
		if got[vocab.CRIAnnotationPrefix+k] == "claimed" {
			t.Errorf("recorded %s is the container's claim", vocab.CRIAnnotationPrefix+k)
		}
	}
	if recs[0].Policy != "userns-required" || recs[0].Verdict != audit.VerdictDeny {
		t.Errorf("block %q verdict %s; want userns-required, deny", recs[0].Policy, recs[0].Verdict)
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestNRIImageName trusts io.kubernetes.cri.image-name and exempts, by
// a block selecting on it, the containers of the busybox image under
// another name (docker.io/aaa/copy:1) that someone else tagged the same
// content with, and any a container's CRI config claims. The plugin has
// no trustworthy image name: the block never matches in it, the default
// refuses the container, its record lacks the key, and the plugin says
// so at its start. It took NRI's image name, one of containerd's names
// of the image's content (sorted first: the copy's), which differs from
// the name the container was created with that the hook and the
// recorder see, and which whoever pulls or tags the same content
// chooses.
func TestNRIImageName(t *testing.T) {
	crictl := ctrdtest.Crictl(t)
	_, cfg := ctrdtest.ConfigWith(t, `"on_error": "allow",
	"record_annotations": ["io.kubernetes.cri.image-name"],
	"trusted_selectors": {"annotations": ["io.kubernetes.cri.image-name", "io.kubernetes.cri.container-type"]},
	"policies": [
		{"name": "sandboxes", "match": {"annotations": {"io\\.kubernetes\\.cri\\.container-type": "sandbox"}}, "mode": "audit"},
		{"name": "copies", "match": {"annotations": {"io\\.kubernetes\\.cri\\.image-name": "docker\\.io/aaa/.*"}}, "mode": "audit"}],
	"default": {"name": "userns-required", "mode": "enforce", "rules": {"require_user_namespace": true}}`)
	log := openLog(t, cfg.AuditLog)
	d, c, img := criDaemon(t)
	ctx := namespaces.WithNamespace(context.Background(), "k8s.io")
	if _, err := c.ImageService().Create(ctx, images.Image{Name: "docker.io/aaa/copy:1", Target: img.Target()}); err != nil {
		t.Fatal(err)
	}
	var diag nstest.LockedBuffer
	startPlugin(t, d, &Plugin{Config: cfg, Log: log, Logger: logging.Stderr(&diag, logrus.InfoLevel)})
	if s := diag.String(); !strings.Contains(s, "no trustworthy image name") || !strings.Contains(s, `blocks="\"copies\""`) {
		t.Errorf("no warning at the start naming the block that selects on the image name:\n%s", s)
	}
	podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq("image-pod"))
	for i, ann := range []string{`{}`, `{"io.kubernetes.cri.image-name": "docker.io/aaa/copy:1"}`} {
		ctrJSON := filepath.Join(t.TempDir(), "c.json")
		if err := os.WriteFile(ctrJSON, fmt.Appendf(nil, `{"metadata":{"name":"c%d"},"image":{"image":%q},"command":["sleep","3600"],"linux":{},"annotations":%s}`,
			i, ctrdtest.ImageName, ann), 0o644); err != nil {
			t.Fatal(err)
		}
		id := d.MustCrictl(t, crictl, "create", podID, ctrJSON, podJSON)
		if _, stderr, err := d.Crictl(crictl, "start", id); err == nil || !strings.Contains(stderr, "userns-required") {
			t.Errorf("annotations %s: start: err %v, stderr %q; want the default block's refusal", ann, err, stderr)
		}
		recs := audittest.Records(t, cfg.AuditLog, id)
		if len(recs) != 1 {
			t.Fatalf("annotations %s: %d records, want 1", ann, len(recs))
		}
		if v, ok := recs[0].Annotations[vocab.AnnotationImageName]; ok || recs[0].Policy != "userns-required" {
			t.Errorf("annotations %s: block %q, recorded image name %q (%v); want userns-required and none", ann, recs[0].Policy, v, ok)
		}
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestNRIImageNameFailsClosed: a block that selects on
// io.kubernetes.cri.image-name and enforces (untrusted-images, requiring
// a user namespace) comes before a default in audit mode. The plugin has
// no trustworthy image name, so that block may be the container's: a
// container without a user namespace, created with the image name
// docker.io/untrusted/x:1 in its spec, is refused by the plugin, and its
// record names the block. The plugin left the block out, picked the
// default and let the container run.
func TestNRIImageNameFailsClosed(t *testing.T) {
	crictl := ctrdtest.Crictl(t)
	_, cfg := ctrdtest.ConfigWith(t, `"on_error": "allow",
	"trusted_selectors": {"annotations": ["io.kubernetes.cri.image-name"]},
	"policies": [
		{"name": "untrusted-images", "mode": "enforce", "rules": {"require_user_namespace": true},
		 "match": {"annotations": {"io\\.kubernetes\\.cri\\.image-name": "docker\\.io/untrusted/.*"}}}],
	"default": {"mode": "audit"}`)
	log := openLog(t, cfg.AuditLog)
	d, _, _ := criDaemon(t)
	startPlugin(t, d, &Plugin{Config: cfg, Log: log}) // no injection: the plugin decides
	podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq("untrusted-pod"))
	ctrJSON := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(ctrJSON, fmt.Appendf(nil, `{"metadata":{"name":"u"},"image":{"image":%q},"command":["sleep","3600"],"linux":{},"annotations":{%q: "docker.io/untrusted/x:1"}}`,
		ctrdtest.ImageName, vocab.AnnotationImageName), 0o644); err != nil {
		t.Fatal(err)
	}
	id := d.MustCrictl(t, crictl, "create", podID, ctrJSON, podJSON)
	if _, stderr, err := d.Crictl(crictl, "start", id); err == nil || !strings.Contains(stderr, "refused by nsrel policy") || !strings.Contains(stderr, "untrusted-images") {
		t.Errorf("start: err %v, stderr %q; want the refusal of block untrusted-images", err, stderr)
	}
	recs := audittest.Records(t, cfg.AuditLog, id)
	if len(recs) != 1 {
		t.Fatalf("%d records of the container, want 1", len(recs))
	}
	if r := recs[0]; r.Policy != "untrusted-images" || r.Mode != policy.ModeEnforce || r.Verdict != audit.VerdictDeny || !strings.Contains(r.Error, "judged by block") {
		t.Errorf("record: block %q mode %s verdict %s error %q; want untrusted-images, enforce, deny, saying why that block judged", r.Policy, r.Mode, r.Verdict, r.Error)
	}
	audittest.Verify(t, cfg.AuditLog)
}

// labelledTier is a config trusting example.com/tier (an annotation an
// admission webhook guards) and the container type: sandboxes and the
// tier "open" in audit mode, the default requiring a user namespace.
const labelledTier = `"on_error": "allow",
	"trusted_selectors": {"annotations": ["example.com/tier", "io.kubernetes.cri.container-type"]},
	"policies": [{"name": "open", "match": {"annotations": {"example\\.com/tier": "open"}}, "mode": "audit"}%s],
	"default": {"name": "userns-required", "mode": "enforce", "rules": {"require_user_namespace": true}}`

// TestNRILabelsSelectNothing: a pod labelled example.com/tier=open, a key
// the config trusts as an annotation, ran in the host's user namespace
// under the block "open": the plugin and the event recorder selected
// blocks from labels, which nsrel-hook never sees and the pod's author
// writes. Labels select nothing: refused by the default, and recorded so
// by both.
func TestNRILabelsSelectNothing(t *testing.T) {
	for _, withRecorder := range []bool{false, true} {
		t.Run(fmt.Sprintf("recorder=%v", withRecorder), func(t *testing.T) {
			cfg, run := hostPods(t, fmt.Sprintf(labelledTier, ""), withRecorder)
			name := ctrdtest.Uniq("labelled-open")
			if ran, stderr := run(name, `"labels": {"example.com/tier": "open"},`); ran {
				t.Errorf("%s: a pod labelled tier=open ran in the host's user namespace", name)
			} else if !strings.Contains(stderr, "refused by nsrel policy") || !strings.Contains(stderr, "userns-required") {
				t.Errorf("%s: stderr %q; want the default block's refusal", name, stderr)
			}
			checkDenied(t, cfg, "userns-required")
		})
	}
}

// TestNRIImageLabelSelectsNothing: CRI copies an image's labels into its
// containers' labels; a container of an image labelled
// example.com/tier=open ran in the host's user namespace under the block
// "open" (the plugin's and the recorder's records said so), where the
// hook, injected, refused it; labelled with the kubelet's keys
// (io.kubernetes.pod.namespace kube-system), which no kubelet sets under
// crictl, it ran under a block trusting that key and its record named
// another pod. It is refused by the default, and its plugin's record
// says so, naming its own pod.
func TestNRIImageLabelSelectsNothing(t *testing.T) {
	crictl := ctrdtest.Crictl(t)
	_, cfg := ctrdtest.ConfigWith(t, strings.Replace(fmt.Sprintf(labelledTier,
		`, {"name": "sandboxes", "match": {"annotations": {"io\\.kubernetes\\.cri\\.container-type": "sandbox"}}, "mode": "audit"},
		{"name": "kube-system", "match": {"annotations": {"io\\.kubernetes\\.pod\\.namespace": "kube-system"}}, "mode": "audit"}`),
		`"io.kubernetes.cri.container-type"]`, `"io.kubernetes.cri.container-type", "io.kubernetes.pod.namespace"]`, 1))
	log := openLog(t, cfg.AuditLog)
	d, c, _ := criDaemon(t)
	const image = "docker.io/nsrel/labelled:test"
	// The kubelet's keys too: where no kubelet sets them (crictl), the
	// image's labels give them.
	d.ImportLabelled(t, c, "k8s.io", image, []string{"/bin/sh"}, map[string]string{"example.com/tier": "open",
		vocab.LabelPodNamespace: "kube-system", vocab.LabelPodName: "coredns-x", vocab.LabelContainerName: "coredns"})
	runRecorder(t, d, cfg, log)
	startPlugin(t, d, &Plugin{Config: cfg, Log: log})
	podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq("labelled-image"))
	ctrJSON := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(ctrJSON, fmt.Appendf(nil, `{"metadata":{"name":"c"},"image":{"image":%q},"command":["sleep","3600"],"linux":{}}`, image), 0o644); err != nil {
		t.Fatal(err)
	}
	id := d.MustCrictl(t, crictl, "create", podID, ctrJSON, podJSON)
	if _, stderr, err := d.Crictl(crictl, "start", id); err == nil || !strings.Contains(stderr, "userns-required") {
		t.Errorf("a container of an image labelled tier=open: start: err %v, stderr %q; want the default block's refusal", err, stderr)
	}
	recs := audittest.Records(t, cfg.AuditLog, id)
	if len(recs) == 0 {
		t.Fatal("the container's start was not recorded")
	}
	for _, r := range recs {
		if audit.IsStart(r.Stage) && (r.Policy != "userns-required" || r.Verdict != audit.VerdictDeny || r.Annotations["example.com/tier"] != "" ||
			r.Annotations[vocab.LabelPodNamespace] == "kube-system" || r.Annotations[vocab.LabelPodName] == "coredns-x") {
			t.Errorf("start by %s: block %q verdict %s annotations %v; want userns-required, deny, no tier, the pod's own names", r.Source, r.Policy, r.Verdict, r.Annotations)
		}
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestNRIPodAnnotationOfKubeletKey: a config trusting
// io.kubernetes.pod.namespace (the kubelet's key); a pod in namespace
// shop annotated io.kubernetes.pod.namespace=kube-system, in the host's
// user namespace. NRI sends every CRI annotation of the pod, which its
// author writes, while the sandbox's spec the recorder (and the hook)
// read holds none of them: the plugin picked the kube-system block and
// let the pod run, the recorder recorded it refused. Both refuse it now.
func TestNRIPodAnnotationOfKubeletKey(t *testing.T) {
	cfg, run := hostPods(t, `"on_error": "allow",
	"trusted_selectors": {"annotations": ["io.kubernetes.pod.namespace"]},
	"policies": [{"name": "kube-system", "match": {"annotations": {"io\\.kubernetes\\.pod\\.namespace": "kube-system"}}, "mode": "audit"}],
	"default": {"name": "userns-required", "mode": "enforce", "rules": {"require_user_namespace": true}}`, true)
	name := ctrdtest.Uniq("fake-system")
	if ran, stderr := run(name, `"annotations": {"io.kubernetes.pod.namespace": "kube-system"},`); ran {
		t.Errorf("%s: a pod claiming namespace kube-system by its annotation ran in the host's user namespace", name)
	} else if !strings.Contains(stderr, "userns-required") {
		t.Errorf("%s: stderr %q; want the default block's refusal", name, stderr)
	}
	checkDenied(t, cfg, "userns-required")
}
