package containerd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/containerd/internal/ctrdtest"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel/discover"
)

const shippedSpec = "../config/containerd/base-runtime-spec.json"

// TestShippedBaseSpec checks that the shipped base runtime spec is a
// valid spec whose hooks are exactly what WithHook installs.
func TestShippedBaseSpec(t *testing.T) {
	spec := loadSpec(t, shippedSpec)
	want := Hooks(DefaultHookPath, DefaultHookConfig)
	if diff := cmp.Diff(&want, spec.Hooks); diff != "" {
		t.Errorf("hooks of %s (-want +got):\n%s", shippedSpec, diff)
	}
	if spec.Process == nil || spec.Root == nil || spec.Linux == nil || len(spec.Linux.Namespaces) == 0 {
		t.Errorf("%s is not a complete default spec", shippedSpec)
	}
}

func loadSpec(t *testing.T, path string) *specs.Spec {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &spec
}

// shippedFragment returns the shipped containerd config fragment for the
// flavor, without its version line, pointing at spec.
func shippedFragment(t *testing.T, f ctrdtest.Flavor, spec string) string {
	t.Helper()
	name := "../config/containerd/config-v1.toml"
	if f.ConfigVersion >= 3 {
		name = "../config/containerd/config-v2.toml"
	}
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	s := regexp.MustCompile(`(?m)^version = \d+\n`).ReplaceAllString(string(data), "")
	if !strings.Contains(s, "/etc/nsrel/containerd-base-spec.json") {
		t.Fatalf("%s does not name /etc/nsrel/containerd-base-spec.json", name)
	}
	return "\n" + strings.ReplaceAll(s, "/etc/nsrel/containerd-base-spec.json", spec)
}

// TestCRIBaseRuntimeSpec installs nsrel-hook the Kubernetes way, with the
// shipped config fragment and base runtime spec, runs a pod with crictl
// and checks the hook's records for the sandbox and the container, and the
// containerd source's pod name.
func TestCRIBaseRuntimeSpec(t *testing.T) {
	crictl := filepath.Join(ctrdtest.Tools(), "crictl-v1.37.0", "crictl")
	_, err := os.Stat(crictl)
	nstest.Require(t, err == nil, "needs crictl (%v); `make deps` builds it", err)
	hookBin := tool(t, "nsrel-hook")
	for _, f := range ctrdtest.Flavors() {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			cfgPath, cfg := hookSetup(t)
			dir := t.TempDir()
			spec := loadSpec(t, shippedSpec)
			h := Hooks(hookBin, cfgPath)
			spec.Hooks = &h
			specPath := filepath.Join(dir, "base-spec.json")
			data, _ := json.Marshal(spec)
			if err := os.WriteFile(specPath, data, 0o644); err != nil {
				t.Fatal(err)
			}
			d := ctrdtest.Start(t, f, &ctrdtest.Options{CRI: true, ExtraConfig: shippedFragment(t, f, specPath)})
			c := d.Client(t)
			d.ImportImage(t, c, "k8s.io", ctrdtest.PauseImageName, []string{"/bin/sleep", "infinity"})
			d.ImportBusybox(t, c, "k8s.io")

			pod := uniq("web-0")
			podID, podJSON := runPod(t, crictl, d, pod)
			ctrID := mustCrictl(t, crictl, d, "create", podID, ctrConfig(t, "app"), podJSON)
			mustCrictl(t, crictl, d, "start", ctrID)

			// containerd builds the sandbox (pause) spec without the base
			// runtime spec, so only the pod's containers run the hook
			// (docs/containerd.md; the event recorder covers sandboxes).
			recs := waitRecords(t, cfg.AuditLog, "hook records of the container", func(rs []*audit.Record) bool {
				return len(stages(rs, ctrID)) >= 2
			})
			if diff := cmp.Diff([]string{"oci-hook/createRuntime", "oci-hook/poststart"}, stages(recs, ctrID)); diff != "" {
				t.Errorf("container records (-want +got):\n%s", diff)
			}
			for _, r := range recs {
				if r.ContainerID == ctrID && (r.Annotations["io.kubernetes.cri.sandbox-name"] != pod || r.Annotations["io.kubernetes.cri.sandbox-namespace"] != "shop") {
					t.Errorf("record %d annotations %v, want the pod name and namespace", r.Seq, r.Annotations)
				}
			}

			got, err := NewSource(d.Socket).List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var app []discover.Container
			for _, c := range got {
				if c.ID == ctrID {
					app = append(app, discover.Container{ID: c.ID, Engine: c.Engine, Namespace: c.Namespace, Name: c.Name})
				}
			}
			want := []discover.Container{{ID: ctrID, Engine: EngineContainerd, Namespace: "k8s.io", Name: "shop/" + pod}}
			if diff := cmp.Diff(want, app); diff != "" {
				t.Errorf("containerd source (-want +got):\n%s", diff)
			}
		})
	}
}

// crictlCmd runs crictl against d and returns its stdout and stderr.
func crictlCmd(crictl string, d *ctrdtest.Daemon, args ...string) (string, string, error) {
	cmd := exec.Command(crictl, append([]string{"-r", "unix://" + d.Socket, "-i", "unix://" + d.Socket, "--timeout", "60s"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), stderr.String(), err
}

func mustCrictl(t *testing.T, crictl string, d *ctrdtest.Daemon, args ...string) string {
	t.Helper()
	out, stderr, err := crictlCmd(crictl, d, args...)
	if err != nil {
		t.Fatalf("crictl %v: %v\n%s\n%s", args, err, stderr, d.LogTail())
	}
	return out
}

// runPod runs a host-network pod named name in Kubernetes namespace
// "shop" and returns its ID and config file; it is removed when the test
// ends.
func runPod(t *testing.T, crictl string, d *ctrdtest.Daemon, name string) (string, string) {
	t.Helper()
	podJSON := filepath.Join(t.TempDir(), "pod.json")
	os.WriteFile(podJSON, fmt.Appendf(nil, `{"metadata":{"name":%q,"namespace":"shop","uid":%q,"attempt":0},
		"linux":{"cgroup_parent":%q,"security_context":{"namespace_options":{"network":2}}}}`, name, name+"-uid", d.CgroupParent()+"/k8s"), 0o644)
	podID := mustCrictl(t, crictl, d, "runp", podJSON)
	t.Cleanup(func() {
		crictlCmd(crictl, d, "stopp", podID)
		crictlCmd(crictl, d, "rmp", "-f", podID)
	})
	return podID, podJSON
}

// ctrConfig writes a CRI container config running sleep from the busybox
// image and returns its path.
func ctrConfig(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name+".json")
	os.WriteFile(p, fmt.Appendf(nil, `{"metadata":{"name":%q},"image":{"image":%q},"command":["sleep","3600"],"linux":{}}`, name, ctrdtest.ImageName), 0o644)
	return p
}

// TestShippedUnits checks the systemd units: systemd-analyze accepts
// them (with ExecStart pointing at the built binary) and their command
// lines parse.
func TestShippedUnits(t *testing.T) {
	analyze := nstest.RequireCmd(t, "systemd-analyze")
	bin := tool(t, "nsrel-containerd")
	for _, name := range []string{"nsrel-watch.service", "nsrel-nri.service"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile("../config/containerd/" + name)
			if err != nil {
				t.Fatal(err)
			}
			m := regexp.MustCompile(`(?m)^ExecStart=(\S+) (.*)$`).FindStringSubmatch(string(data))
			if m == nil {
				t.Fatal("no ExecStart")
			}
			if m[1] != "/usr/local/libexec/nsrel/nsrel-containerd" {
				t.Errorf("ExecStart binary %s", m[1])
			}
			args := strings.Fields(m[2])
			var out, errb strings.Builder
			if code := Main(append(args, "--help"), &out, &errb); code != 0 {
				t.Errorf("ExecStart arguments %q do not parse: %s", args, errb.String())
			}
			unit := filepath.Join(t.TempDir(), name)
			if err := os.WriteFile(unit, []byte(strings.Replace(string(data), "ExecStart="+m[1], "ExecStart="+bin, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(analyze, "verify", unit).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
		})
	}
}
