package containerd

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// TestCRIPodUserNS runs a CRI pod with a user namespace of its own
// (linux.security_context.namespace_options.userns_options, what the
// kubelet sends for hostUsers: false) through containerd 2.4 and crictl.
// The sandbox runs in a user namespace with exactly the requested maps,
// as nsrel reads them. Its container needs idmapped mounts from the
// runtime: runc before 1.2 (Debian 12 has 1.1.5) has none, and
// containerd refuses to start it ("idmap mounts not supported: missing
// `mountExtensions.idmap` entry in `features` command"); the test logs
// that, and checks the container's maps when the runtime can.
func TestCRIPodUserNS(t *testing.T) {
	crictl, d := criDaemon(t)
	host := nstest.HostIDBase(t)
	want := []audit.IDRange{{Inside: 0, Outside: host, Count: 65536}}
	userns := fmt.Sprintf(`"userns_options":{"mode":0,"uids":[{"host_id":%d,"container_id":0,"length":65536}],"gids":[{"host_id":%d,"container_id":0,"length":65536}]}`, host, host)
	name := ctrdtest.Uniq("userns-pod")
	podJSON := filepath.Join(t.TempDir(), "pod.json")
	os.WriteFile(podJSON, fmt.Appendf(nil, `{"metadata":{"name":%q,"namespace":"shop","uid":%q,"attempt":0},
		"linux":{"cgroup_parent":%q,"security_context":{"namespace_options":{"network":2,%s}}}}`, name, name+"-uid", d.CgroupParent()+"/k8s", userns), 0o644)
	podID := d.MustCrictl(t, crictl, "runp", podJSON)
	t.Cleanup(func() {
		d.Crictl(crictl, "stopp", podID)
		d.Crictl(crictl, "rmp", "-f", podID)
	})
	checkMaps := func(what, inspectCmd, id string) {
		t.Helper()
		pid, err := strconv.Atoi(d.MustCrictl(t, crictl, inspectCmd, "-o", "go-template", "--template", "{{.info.pid}}", id))
		if err != nil {
			t.Fatalf("%s pid: %v", what, err)
		}
		a, err := inspect.Process(pid)
		if err != nil {
			t.Fatal(err)
		}
		if a.UserDepth() != 1 || len(a.Maps) != 2 {
			t.Fatalf("%s: user depth %d, maps %+v", what, a.UserDepth(), a.Maps)
		}
		if diff := cmp.Diff(want, a.Maps[0].HostUIDMap); diff != "" {
			t.Errorf("%s host uid_map (-requested +read):\n%s", what, diff)
		}
		if diff := cmp.Diff(want, a.Maps[0].HostGIDMap); diff != "" {
			t.Errorf("%s host gid_map (-requested +read):\n%s", what, diff)
		}
	}
	checkMaps("sandbox", "inspectp", podID)

	ctrJSON := filepath.Join(t.TempDir(), "ctr.json")
	os.WriteFile(ctrJSON, fmt.Appendf(nil, `{"metadata":{"name":"app"},"image":{"image":%q},"command":["sleep","3600"],"linux":{"security_context":{"namespace_options":{%s}}}}`, ctrdtest.ImageName, userns), 0o644)
	ctrID := d.MustCrictl(t, crictl, "create", podID, ctrJSON, podJSON)
	_, stderr, err := d.Crictl(crictl, "start", ctrID)
	switch {
	case err != nil && strings.Contains(stderr, "idmap mounts not supported"):
		t.Logf("the runtime has no idmapped mounts, so the pod's container cannot start (the sandbox could): %s", strings.TrimSpace(stderr))
	case err != nil:
		t.Fatalf("crictl start: %v\n%s\n%s", err, stderr, d.LogTail())
	default:
		checkMaps("container", "inspect", ctrID)
	}
}
