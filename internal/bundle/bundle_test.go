package bundle_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/internal/bundle"
	"github.com/nsrel/nsrel/internal/nstest"
)

func nsTypes(s *specs.Spec) []specs.LinuxNamespaceType {
	var out []specs.LinuxNamespaceType
	for _, n := range s.Linux.Namespaces {
		out = append(out, n.Type)
	}
	return out
}

func TestSpec(t *testing.T) {
	s := bundle.Spec("/r", bundle.Options{})
	if d := cmp.Diff([]specs.LinuxNamespaceType{specs.PIDNamespace, specs.MountNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.NetworkNamespace}, nsTypes(s)); d != "" {
		t.Errorf("namespaces (-want +got):\n%s", d)
	}
	if s.Root.Path != "/r" || s.Version != bundle.SpecVersion || cmp.Diff([]string{"sleep", "3600"}, s.Process.Args) != "" || s.Linux.UIDMappings != nil {
		t.Errorf("spec %+v", s)
	}
	u := bundle.Spec("/r", bundle.Options{UserNS: true, NoPIDNS: true, MapHost: 200000, MapSize: 1000, Args: []string{"true"}})
	if d := cmp.Diff([]specs.LinuxNamespaceType{specs.MountNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.NetworkNamespace, specs.UserNamespace}, nsTypes(u)); d != "" {
		t.Errorf("namespaces (-want +got):\n%s", d)
	}
	want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 1000}}
	if cmp.Diff(want, u.Linux.UIDMappings) != "" || cmp.Diff(want, u.Linux.GIDMappings) != "" {
		t.Errorf("mappings %+v %+v", u.Linux.UIDMappings, u.Linux.GIDMappings)
	}
}

// TestCreateRuns builds bundles and runs them with runc, with and without
// a user namespace, checking the container's view of its UID map.
func TestCreateRuns(t *testing.T) {
	nstest.RequireRoot(t)
	runc := nstest.RequireCmd(t, "runc")
	_, err := os.Stat(bundle.DefaultBusybox)
	nstest.Require(t, err == nil, "needs static busybox at %s (apt busybox-static)", bundle.DefaultBusybox)
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared-rootfs")
	if err := bundle.Rootfs(shared, ""); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		opts bundle.Options
		want string
	}{
		{"plain", bundle.Options{}, "0 0 4294967295"},
		{"userns", bundle.Options{UserNS: true}, "0 100000 65536"},
		{"userns shared rootfs", bundle.Options{UserNS: true, Rootfs: shared}, "0 100000 65536"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Args = []string{"cat", "/proc/self/uid_map"}
			b, err := bundle.Create(filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var spec specs.Spec
			data, _ := os.ReadFile(filepath.Join(b.Dir, "config.json"))
			if err := json.Unmarshal(data, &spec); err != nil {
				t.Fatal(err)
			}
			id := "bundle-test-" + strings.ReplaceAll(tt.name, " ", "-") + "-" + filepath.Base(dir)
			out, err := exec.Command(runc, "--root", filepath.Join(dir, "state"), "run", "--bundle", b.Dir, id).CombinedOutput()
			if err != nil {
				t.Fatalf("runc run: %v\n%s", err, out)
			}
			if got := strings.Join(strings.Fields(string(out)), " "); got != tt.want {
				t.Errorf("uid_map %q, want %q", got, tt.want)
			}
		})
	}
}
