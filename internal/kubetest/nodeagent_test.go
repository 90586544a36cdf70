package kubetest

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/seccompprofile"
	"github.com/nsrel/nsrel/internal/vocab"
)

// TestNodeAgent builds the node-agent image with `make image` and runs
// the DaemonSet's pod through crictl on containerd 2.4 with NRI on, with
// the host mounts, host PID, capabilities and security context of the
// rendered pod template (host paths below a private root): the init
// container installs nsrel-hook and the policy on the host path, the
// agent registers with NRI (its readiness probe passes), and a following
// pod's containers get the injected hook: the allowed one is recorded,
// the one an enforcing block matches is refused, each with one start
// record naming the pod. Run again without the agent's one added
// capability, its inspection of the pod sandbox fails with EACCES: the
// capability is needed. As rendered, the agent's container can attach
// to a host process, read its memory and copy its descriptors
// (ptraceprobe); with the seccomp component (deploy/kubernetes/seccomp)
// and the profile `make image` writes, it cannot, and does all of the
// above as before.
func TestNodeAgent(t *testing.T) {
	crictl := ctrdtest.Crictl(t)
	ctrdtest.Require(t, ctrdtest.V2())
	makeBin := nstest.RequireCmd(t, "make")
	// The image, as `make image` writes it.
	build := t.TempDir()
	os.Chmod(build, 0o755)
	cmd := exec.Command(makeBin, "image", "BIN="+build, "GO="+nstest.GoTool())
	cmd.Dir = nstest.RepoFile(t, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	checkImage(t, filepath.Join(build, "nsrel-node-agent.tar"))
	cmd = exec.Command(nstest.GoTool(), "build", "-o", build, "./internal/kubetest/ptraceprobe")
	cmd.Dir = nstest.RepoFile(t, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ptraceprobe: %v\n%s", err, out)
	}
	// Without its one added capability the agent cannot read the
	// namespaces of container processes: SYS_PTRACE is needed.
	for _, v := range []agentVariant{{"as-rendered", true, false}, {"without-SYS_PTRACE", false, false}, {"seccomp-localhost", true, true}} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			testNodeAgent(t, crictl, build, v)
		})
	}
}

// agentVariant is how TestNodeAgent changes the rendered base: without
// the agent's added capability, or with the seccomp component.
type agentVariant struct {
	name            string
	ptrace, seccomp bool
}

func testNodeAgent(t *testing.T, crictl, build string, v agentVariant) {
	ptrace := v.ptrace
	objs := Base(t)
	if v.seccomp {
		objs = BaseWith(t, "seccomp")
	}
	ds, cm := objs.DaemonSets[0], objs.ConfigMaps[0]
	if !ptrace {
		ds.Spec.Template.Spec.Containers[0].SecurityContext.Capabilities.Add = nil
	}
	spec := ds.Spec.Template.Spec
	if len(spec.InitContainers) != 1 || len(spec.Containers) != 1 {
		t.Fatalf("pod template: %d init containers, %d containers; this test runs one of each", len(spec.InitContainers), len(spec.Containers))
	}

	root, err := os.MkdirTemp("", "ka")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	os.Chmod(root, 0o755)
	node := &Node{Root: root}
	if sc := spec.Containers[0].SecurityContext; v.seccomp {
		// The profile, installed on the node where the kubelet looks.
		if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeLocalhost || sc.SeccompProfile.LocalhostProfile == nil {
			t.Fatalf("the seccomp component gives the agent seccomp profile %+v; want a Localhost one", sc.SeccompProfile)
		}
		prof := node.Host(filepath.Join(KubeletSeccompDir, *sc.SeccompProfile.LocalhostProfile))
		data, err := os.ReadFile(filepath.Join(build, "nsrel-node-agent-seccomp.json"))
		if err == nil {
			err = os.MkdirAll(filepath.Dir(prof), 0o755)
		}
		if err == nil {
			err = os.WriteFile(prof, data, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	// The policy: the ConfigMap's, relocated, with a block that enforces
	// a user namespace on containers named "bad".
	var cfg map[string]any
	if err := json.Unmarshal([]byte(cm.Data["hook.json"]), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["audit_log"], cfg["log_file"] = node.Host(cfg["audit_log"].(string)), node.Host(cfg["log_file"].(string))
	cp := cfg["checkpoints"].(map[string]any)
	cp["file"] = node.Host(cp["file"].(string))
	ts := cfg["trusted_selectors"].(map[string]any)
	ts["annotations"] = append(ts["annotations"].([]any), "io.kubernetes.cri.container-name")
	cfg["policies"] = append(cfg["policies"].([]any), map[string]any{"name": "strict",
		"match": map[string]any{"annotations": map[string]any{`io\.kubernetes\.cri\.container-name`: "bad"}},
		"mode":  "enforce", "rules": map[string]any{"require_user_namespace": true}})
	data, _ := json.Marshal(cfg)
	node.ConfigMaps = map[string]map[string]string{cm.Name: {"hook.json": string(data)}}
	auditLog := cfg["audit_log"].(string)

	sockDir := node.Host("/var/run/nri")
	if err := os.MkdirAll(sockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := ctrdtest.Start(t, ctrdtest.V2(), &ctrdtest.Options{CRI: true, NRI: true, NRISocket: filepath.Join(sockDir, "nri.sock")})
	node.CgroupParent = d.CgroupParent() + "/k8s"
	c := d.Client(t)
	d.ImportImage(t, c, "k8s.io", ctrdtest.PauseImageName, []string{"/bin/sleep", "infinity"})
	d.ImportBusybox(t, c, "k8s.io")
	d.ImportTar(t, c, "k8s.io", filepath.Join(build, "nsrel-node-agent.tar"))

	podJSON := node.PodConfig(t, ds, "nsrel-node-agent-test")
	podID := d.MustCrictl(t, crictl, "runp", podJSON)
	t.Cleanup(func() {
		d.Crictl(crictl, "stopp", podID)
		d.Crictl(crictl, "rmp", "-f", podID)
	})
	logs := func(id string) string {
		out, stderr, _ := d.Crictl(crictl, "logs", id)
		return out + stderr
	}

	// The init container installs the hook and the policy.
	initID := d.MustCrictl(t, crictl, "create", podID, node.ContainerConfig(t, ds, spec.InitContainers[0]), podJSON)
	d.MustCrictl(t, crictl, "start", initID)
	waitFor(t, "the init container to exit", func() bool {
		return d.MustCrictl(t, crictl, "inspect", "-o", "go-template", "--template", "{{.status.state}}", initID) == "CONTAINER_EXITED"
	})
	if code := d.MustCrictl(t, crictl, "inspect", "-o", "go-template", "--template", "{{.status.exitCode}}", initID); code != "0" {
		t.Fatalf("install-hook exited %s:\n%s", code, logs(initID))
	}
	installed, err := os.ReadFile(node.Host("/opt/nsrel/nsrel-hook"))
	built, _ := os.ReadFile(filepath.Join(build, "image", "nsrel-hook"))
	if err != nil || !bytes.Equal(installed, built) {
		t.Fatalf("nsrel-hook on the host path: %v (same as built: %v)", err, bytes.Equal(installed, built))
	}
	if got, _ := os.ReadFile(node.Host("/opt/nsrel/hook.json")); !bytes.Equal(got, data) {
		t.Fatalf("hook.json on the host path differs from the ConfigMap's")
	}

	// The agent registers with NRI: its readiness probe passes.
	agentID := d.MustCrictl(t, crictl, "create", podID, node.ContainerConfig(t, ds, spec.Containers[0]), podJSON)
	d.MustCrictl(t, crictl, "start", agentID)
	probe := spec.Containers[0].ReadinessProbe.Exec.Command
	waitFor(t, "the agent's readiness probe", func() bool {
		_, _, err := d.Crictl(crictl, append([]string{"exec", agentID}, probe...)...)
		if st := d.MustCrictl(t, crictl, "inspect", "-o", "go-template", "--template", "{{.status.state}}", agentID); st != "CONTAINER_RUNNING" {
			t.Fatalf("agent is %s:\n%s", st, logs(agentID))
		}
		return err == nil
	})

	if ptrace {
		probeAgent(t, crictl, d, node, &spec, agentID, build, v.seccomp)
	}

	// A following pod: the allowed container is recorded by the injected
	// hook, the violating one refused.
	wname := ctrdtest.Uniq("workload")
	wpod, wpodJSON := d.RunPod(t, crictl, wname)
	good := d.MustCrictl(t, crictl, "create", wpod, ctrdtest.CtrConfig(t, "good"), wpodJSON)
	d.MustCrictl(t, crictl, "start", good)
	bad := d.MustCrictl(t, crictl, "create", wpod, ctrdtest.CtrConfig(t, "bad"), wpodJSON)
	if _, stderr, err := d.Crictl(crictl, "start", bad); err == nil || !strings.Contains(stderr, "require_user_namespace") {
		t.Errorf("start of the violating container: err %v, stderr %q; want a refusal naming the rule", err, stderr)
	}
	recs := audittest.Records(t, auditLog, "")
	for _, tc := range []struct {
		id, verdict string
		want        []string
	}{
		{wpod, audit.VerdictAllow, []string{"nri/start"}},
		{good, audit.VerdictAllow, []string{"oci-hook/createRuntime"}},
		{bad, audit.VerdictDeny, []string{"oci-hook/createRuntime", "oci-hook/poststop"}},
	} {
		if diff := cmp.Diff(tc.want, audittest.SourceStages(recs, tc.id)); diff != "" {
			t.Errorf("%s: records (-want +got):\n%s", tc.id, diff)
		}
		for _, r := range recs {
			if r.ContainerID != tc.id || !audit.IsStart(r.Stage) {
				continue
			}
			if tc.id == wpod && !ptrace {
				// The sandbox is the agent's to inspect.
				if r.Ancestry != nil || !strings.Contains(r.Error, "permission denied") {
					t.Errorf("%s: inspected without SYS_PTRACE: ancestry %v, error %q", tc.id, r.Ancestry != nil, r.Error)
				}
			} else if r.Verdict != tc.verdict || r.Ancestry == nil || r.Error != "" {
				t.Errorf("%s: verdict %s ancestry %v error %q; want %s with ancestry", tc.id, r.Verdict, r.Ancestry != nil, r.Error, tc.verdict)
			}
			if ns, name := r.Annotations[vocab.AnnotationSandboxNamespace], r.Annotations[vocab.AnnotationSandboxName]; ns != "shop" || name != wname {
				t.Errorf("%s: pod %s/%s recorded; want shop/%s", tc.id, ns, name, wname)
			}
		}
	}
	// The agent's pod and container ran before it registered: recorded
	// when it registered (containerd sends what runs), saying they were
	// not checked at their start; its init container, which exited
	// before, is not.
	recs = audittest.Wait(t, auditLog, "the agent's own records", func(rs []*audit.Record) bool {
		return len(audittest.SourceStages(rs, podID)) > 0 && len(audittest.SourceStages(rs, agentID)) > 0
	})
	for _, id := range []string{podID, agentID} {
		for _, r := range recs {
			if r.ContainerID == id && (r.Source != audit.SourceNRI || !strings.Contains(r.Error, "started while the NRI plugin was not connected")) {
				t.Errorf("%s: %s %s record, error %q; want the plugin's, saying it was not checked at its start", id[:12], r.Source, r.Stage, r.Error)
			}
		}
		if n := len(audittest.SourceStages(recs, id)); n != 1 {
			t.Errorf("%s: %d records; want 1", id[:12], n)
		}
	}
	if slices.ContainsFunc(recs, func(r *audit.Record) bool { return r.ContainerID == initID }) {
		t.Errorf("the agent's init container, which exited before it registered, was recorded")
	}
	// One chain, one host: the agent's records name the host as the
	// hook's do (the pod has the host's UTS namespace).
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Host != host {
			t.Errorf("record %d (%s %s): host %q; want the host's, %q", r.Seq, r.Source, r.Stage, r.Host, host)
		}
	}
	audittest.Verify(t, auditLog)
	if t.Failed() {
		t.Logf("agent log:\n%s", logs(agentID))
	}
}

// probeAgent runs ptraceprobe in the agent's container (copied into its
// emptyDir) against a process of the host: under RuntimeDefault every
// call succeeds (the agent can attach to any process of the node), under
// the seccomp component's profile every one is refused with EPERM. Under
// both it can open the process's memory and a root-owned file of its
// root (a file of the host) for writing: the profile takes the calls
// away, not what root with CAP_SYS_PTRACE in the host's PID namespace
// can open (docs/kubernetes.md says so).
func probeAgent(t *testing.T, crictl string, d *ctrdtest.Daemon, node *Node, spec *corev1.PodSpec, agentID, build string, seccomp bool) {
	t.Helper()
	var dir string
	for _, m := range spec.Containers[0].VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.EmptyDir != nil {
				dir = m.MountPath
				if err := copyFile(filepath.Join(build, "ptraceprobe"), filepath.Join(node.Root, "emptydir", v.Name, "ptraceprobe")); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if dir == "" {
		t.Fatal("the agent mounts no emptyDir to run ptraceprobe from")
	}
	target := exec.Command("sleep", "300")
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		target.Process.Kill()
		target.Wait()
	}()
	hostFile := filepath.Join(t.TempDir(), "host-file")
	if err := os.WriteFile(hostFile, []byte("root's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := d.Crictl(crictl, "exec", agentID, filepath.Join(dir, "ptraceprobe"), strconv.Itoa(target.Process.Pid), hostFile)
	if err != nil {
		t.Fatalf("ptraceprobe in the agent's container: %v\n%s%s", err, out, stderr)
	}
	var want []string
	// ptraceprobe tries the calls the profile takes away, in this order.
	for _, c := range seccompprofile.Denied {
		if seccomp {
			want = append(want, c+" operation not permitted")
		} else {
			want = append(want, c+" ok")
		}
	}
	want = append(want, "proc_mem ok", "proc_root ok")
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(out), "\n")); diff != "" {
		t.Errorf("ptraceprobe in the agent's container (seccomp component %v) (-want +got):\n%s", seccomp, diff)
	}
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o755)
}

// checkImage reads the image's config and manifest from the OCI layout
// tar and checks its name, entry point and labels.
func checkImage(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blobs := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		blobs[h.Name] = data
	}
	type desc struct {
		Digest      string            `json:"digest"`
		Annotations map[string]string `json:"annotations"`
	}
	blob := func(d desc) []byte { return blobs["blobs/sha256/"+strings.TrimPrefix(d.Digest, "sha256:")] }
	var index struct{ Manifests []desc }
	var manifest struct {
		Config      desc
		Annotations map[string]string
	}
	var config struct {
		Config struct {
			Entrypoint []string
			Labels     map[string]string
		}
	}
	if err := json.Unmarshal(blobs["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v, %d manifests", err, len(index.Manifests))
	}
	if err := json.Unmarshal(blob(index.Manifests[0]), &manifest); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(blob(manifest.Config), &config); err != nil {
		t.Fatal(err)
	}
	version := makefileVersion(t)
	if got, want := index.Manifests[0].Annotations["io.containerd.image.name"], "docker.io/nsrel/node-agent:"+version; got != want {
		t.Errorf("image name %q, want %q", got, want)
	}
	want := map[string]string{
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.source":   "https://github.com/nsrel/nsrel",
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
	for k, v := range want {
		if config.Config.Labels[k] != v || manifest.Annotations[k] != v {
			t.Errorf("%s: label %q, annotation %q; want %q", k, config.Config.Labels[k], manifest.Annotations[k], v)
		}
	}
	if !slices.Equal(config.Config.Entrypoint, []string{"/usr/local/sbin/nsrel-containerd"}) {
		t.Errorf("entry point %v", config.Config.Entrypoint)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
