package ctrdtest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/internal/nstest"
)

// Crictl returns crictl as scripts/deps.sh builds it (required).
func Crictl(t testing.TB) string {
	t.Helper()
	crictl := filepath.Join(Tools(), "crictl-v1.37.0", "crictl")
	_, err := os.Stat(crictl)
	nstest.Require(t, err == nil, "needs crictl (%v); `make deps` builds it", err)
	return crictl
}

// ShippedSpec returns the path of the shipped CRI base runtime spec.
func ShippedSpec(t testing.TB) string {
	return nstest.RepoFile(t, "config/containerd/base-runtime-spec.json")
}

// LoadSpec reads an OCI runtime spec strictly (unknown fields are errors).
func LoadSpec(t testing.TB, path string) *specs.Spec {
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

// ShippedFragment returns the shipped containerd config fragment for the
// flavor, without its version line, pointing at spec.
func ShippedFragment(t testing.TB, f Flavor, spec string) string {
	t.Helper()
	name := nstest.RepoFile(t, "config/containerd/config-v1.toml")
	if f.ConfigVersion >= 3 {
		name = nstest.RepoFile(t, "config/containerd/config-v2.toml")
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

// Crictl runs crictl against d and returns its stdout and stderr.
func (d *Daemon) Crictl(crictl string, args ...string) (string, string, error) {
	cmd := exec.Command(crictl, append([]string{"-r", "unix://" + d.Socket, "-i", "unix://" + d.Socket, "--timeout", "60s"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), stderr.String(), err
}

// MustCrictl is [Daemon.Crictl] that fails the test on an error.
func (d *Daemon) MustCrictl(t testing.TB, crictl string, args ...string) string {
	t.Helper()
	out, stderr, err := d.Crictl(crictl, args...)
	if err != nil {
		t.Fatalf("crictl %v: %v\n%s\n%s", args, err, stderr, d.LogTail())
	}
	return out
}

// RunPod runs a host-network pod named name in Kubernetes namespace
// "shop" and returns its ID and config file; it is removed when the test
// ends.
func (d *Daemon) RunPod(t testing.TB, crictl, name string) (string, string) {
	t.Helper()
	podJSON := filepath.Join(t.TempDir(), "pod.json")
	os.WriteFile(podJSON, fmt.Appendf(nil, `{"metadata":{"name":%q,"namespace":"shop","uid":%q,"attempt":0},
		"linux":{"cgroup_parent":%q,"security_context":{"namespace_options":{"network":2}}}}`, name, name+"-uid", d.CgroupParent()+"/k8s"), 0o644)
	podID := d.MustCrictl(t, crictl, "runp", podJSON)
	t.Cleanup(func() {
		d.Crictl(crictl, "stopp", podID)
		d.Crictl(crictl, "rmp", "-f", podID)
	})
	return podID, podJSON
}

// TryPod runs the pod sandbox of the CRI config at podJSON, which may be
// refused, and says whether it ran and what crictl printed on stderr; a
// pod that ran is stopped and removed.
func (d *Daemon) TryPod(crictl, podJSON string) (bool, string) {
	out, stderr, err := d.Crictl(crictl, "runp", podJSON)
	if err == nil {
		id := strings.TrimSpace(out)
		d.Crictl(crictl, "stopp", id)
		d.Crictl(crictl, "rmp", "-f", id)
	}
	return err == nil, stderr
}

// CtrConfig writes a CRI container config running sleep from the busybox
// image and returns its path.
func CtrConfig(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name+".json")
	os.WriteFile(p, fmt.Appendf(nil, `{"metadata":{"name":%q},"image":{"image":%q},"command":["sleep","3600"],"linux":{}}`, name, ImageName), 0o644)
	return p
}
