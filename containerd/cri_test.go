package containerd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/containers"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// TestShippedBaseSpec checks that the shipped base runtime spec is a
// valid spec whose hooks are exactly what WithHook installs.
func TestShippedBaseSpec(t *testing.T) {
	shipped := ctrdtest.ShippedSpec(t)
	spec := ctrdtest.LoadSpec(t, shipped)
	want := Hooks(vocab.DefaultHookPath, vocab.DefaultHookConfig)
	if diff := cmp.Diff(&want, spec.Hooks); diff != "" {
		t.Errorf("hooks of %s (-want +got):\n%s", shipped, diff)
	}
	if spec.Process == nil || spec.Root == nil || spec.Linux == nil || len(spec.Linux.Namespaces) == 0 {
		t.Errorf("%s is not a complete default spec", shipped)
	} else if len(spec.Process.Rlimits) > 0 {
		// CRI drops the default spec's rlimits only when it builds the
		// spec itself: a base spec's would cap every pod's containers.
		t.Errorf("%s sets rlimits %+v: every CRI container would get them", shipped, spec.Process.Rlimits)
	}
}

// TestCRIBaseRuntimeSpec installs nsrel-hook the Kubernetes way, with the
// shipped config fragment and base runtime spec, runs a pod with crictl
// and checks the hook's records for the sandbox and the container, and the
// containerd source's pod name.
func TestCRIBaseRuntimeSpec(t *testing.T) {
	crictl := ctrdtest.Crictl(t)
	hookBin := nstest.Tool(t, "nsrel-hook")
	for _, f := range ctrdtest.Flavors() {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			cfgPath, cfg := ctrdtest.HookConfig(t)
			dir := t.TempDir()
			spec := ctrdtest.LoadSpec(t, ctrdtest.ShippedSpec(t))
			h := Hooks(hookBin, cfgPath)
			spec.Hooks = &h
			specPath := filepath.Join(dir, "base-spec.json")
			data, _ := json.Marshal(spec)
			if err := os.WriteFile(specPath, data, 0o644); err != nil {
				t.Fatal(err)
			}
			d := ctrdtest.Start(t, f, &ctrdtest.Options{CRI: true, ExtraConfig: ctrdtest.ShippedFragment(t, f, specPath)})
			c := d.Client(t)
			d.ImportImage(t, c, "k8s.io", ctrdtest.PauseImageName, []string{"/bin/sleep", "infinity"})
			d.ImportBusybox(t, c, "k8s.io")

			pod := ctrdtest.Uniq("web-0")
			podID, podJSON := d.RunPod(t, crictl, pod)
			ctrID := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "app"), podJSON)
			d.MustCrictl(t, crictl, "start", ctrID)

			// containerd builds the sandbox (pause) spec without the base
			// runtime spec, so only the pod's containers run the hook
			// (docs/containerd.md; the event recorder covers sandboxes).
			recs := audittest.Wait(t, cfg.AuditLog, "hook records of the container", func(rs []*audit.Record) bool {
				return len(audittest.SourceStages(rs, ctrID)) >= 1
			})
			if diff := cmp.Diff([]string{"oci-hook/createRuntime"}, audittest.SourceStages(recs, ctrID)); diff != "" {
				t.Errorf("container records (-want +got):\n%s", diff)
			}
			for _, r := range recs {
				if r.ContainerID == ctrID && (r.Annotations["io.kubernetes.cri.sandbox-name"] != pod || r.Annotations["io.kubernetes.cri.sandbox-namespace"] != "shop") {
					t.Errorf("record %d annotations %v, want the pod name and namespace", r.Seq, r.Annotations)
				}
			}

			// The base spec adds the hooks and nothing CRI would leave
			// out: no rlimits (containers keep containerd's own).
			if ctr, err := c.LoadContainer(namespaces.WithNamespace(context.Background(), "k8s.io"), ctrID); err != nil {
				t.Error(err)
			} else if s, err := ctr.Spec(namespaces.WithNamespace(context.Background(), "k8s.io")); err != nil || s.Process == nil || len(s.Process.Rlimits) > 0 {
				t.Errorf("the container's spec: %v; rlimits %+v, want none", err, s.Process)
			}

			got, err := NewSource(d.Socket).List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var app, podCtrs []discover.Container
			for _, c := range got {
				if c.ID == ctrID || c.ID == podID {
					podCtrs = append(podCtrs, c)
					app = append(app, discover.Container{ID: c.ID, Engine: c.Engine, Namespace: c.Namespace, Name: c.Name})
				}
			}
			want := containers.Merge([]discover.Container{
				{ID: ctrID, Engine: containers.EngineContainerd, Namespace: "k8s.io", Name: "shop/" + pod + "/app"},
				{ID: podID, Engine: containers.EngineContainerd, Namespace: "k8s.io", Name: "shop/" + pod},
			})
			if diff := cmp.Diff(want, containers.Merge(app), ignoreStart); diff != "" {
				t.Errorf("containerd source (-want +got):\n%s", diff)
			}

			// The daemon's runc root is not a default state root: only the
			// daemon and the audit log know the container, and the trees
			// show it once, as the daemon's, with its name; --container
			// finds it by "pod/container".
			env := []string{"NSREL_RUNTIME_ROOTS=runc=" + t.TempDir(), "NSREL_AUDIT_LOG=" + cfg.AuditLog}
			args := []string{"--containerd-address", d.Socket, "--container-timeout", "20s"}
			checkTrees(t, env, args, podCtrs)
			out, _ := runTool(t, env, "lspidns", append(args, "--container", pod+"/app")...)
			if label := "containerd k8s.io/" + ctrID[:12] + " (pod shop/" + pod + ", container app)"; !strings.Contains(out, label) {
				t.Errorf("lspidns --container %s/app: no %q:\n%s", pod, label, out)
			}
		})
	}
}

// TestCRISandboxNamedByPod runs a pod through CRI (containerd 2.4 and
// crictl) with the labels the kubelet gives a pod (its name and
// namespace) and one its author added, io.kubernetes.container.name=app,
// and a container "app" in it: the sandbox is named by its pod
// ("shop/NAME"), the container "shop/NAME/app". The sandbox took the
// container's name from the pod's labels, so that the trees showed the
// pause process as the container and --container NAME/app matched two.
func TestCRISandboxNamedByPod(t *testing.T) {
	crictl, d := criDaemon(t)
	name := ctrdtest.Uniq("named-pod")
	podJSON := filepath.Join(t.TempDir(), "pod.json")
	os.WriteFile(podJSON, fmt.Appendf(nil, `{"metadata":{"name":%q,"namespace":"shop","uid":%q,"attempt":0},
		"labels":{%q:%q,%q:"shop",%q:"app"},
		"linux":{"cgroup_parent":%q,"security_context":{"namespace_options":{"network":2}}}}`, name, name+"-uid",
		vocab.LabelPodName, name, vocab.LabelPodNamespace, vocab.LabelContainerName, d.CgroupParent()+"/k8s"), 0o644)
	podID := d.MustCrictl(t, crictl, "runp", podJSON)
	t.Cleanup(func() {
		d.Crictl(crictl, "stopp", podID)
		d.Crictl(crictl, "rmp", "-f", podID)
	})
	ctrID := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "app"), podJSON)
	d.MustCrictl(t, crictl, "start", ctrID)
	got, err := NewSource(d.Socket).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, g := range got {
		names[g.ID] = g.Name
	}
	if want := "shop/" + name; names[podID] != want {
		t.Errorf("sandbox named %q, want %q", names[podID], want)
	}
	if want := "shop/" + name + "/app"; names[ctrID] != want {
		t.Errorf("container named %q, want %q", names[ctrID], want)
	}
}

// criDaemon starts containerd 2.4 with CRI, the pause and busybox images
// in namespace k8s.io, and returns crictl and the daemon.
func criDaemon(t *testing.T) (string, *ctrdtest.Daemon) {
	t.Helper()
	crictl := ctrdtest.Crictl(t)
	d := ctrdtest.Start(t, ctrdtest.V2(), &ctrdtest.Options{CRI: true})
	c := d.Client(t)
	d.ImportImage(t, c, "k8s.io", ctrdtest.PauseImageName, []string{"/bin/sleep", "infinity"})
	d.ImportBusybox(t, c, "k8s.io")
	return crictl, d
}
