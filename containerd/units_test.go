package containerd

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/nsrel/nsrel/containerd/internal/ctrdtest"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/nstest"
)

// unitCapabilities returns the CapabilityBoundingSet of a shipped unit as
// setpriv(1) wants it: "-all,+sys_ptrace,+kill".
func unitCapabilities(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("../config/containerd/" + name)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^CapabilityBoundingSet=(.+)$`).FindStringSubmatch(string(data))
	if m == nil {
		t.Fatalf("%s: no CapabilityBoundingSet", name)
	}
	set := "-all"
	for _, c := range strings.Fields(m[1]) {
		set += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	return set
}

// TestShippedUnitCapabilities runs `nsrel-containerd watch` with only the
// capabilities nsrel-watch.service leaves it (setpriv's bounding set, as
// systemd's CapabilityBoundingSet does for a root service) and checks
// that it still records the namespaces of containers whose processes run
// as other UIDs (ptrace access and signal permission matter).
// systemd itself is not running on the test VM, so the other sandboxing
// options are checked by systemd-analyze only (TestShippedUnits).
func TestShippedUnitCapabilities(t *testing.T) {
	t.Parallel()
	setpriv := nstest.RequireCmd(t, "setpriv")
	bin := tool(t, "nsrel-containerd")
	caps := unitCapabilities(t, "nsrel-watch.service")
	if caps2 := unitCapabilities(t, "nsrel-nri.service"); caps2 != caps {
		t.Errorf("the units differ in capabilities: %s and %s", caps, caps2)
	}
	cfgPath, cfg := hookSetup(t)
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	w := startWatch(t, setpriv, "--bounding-set", caps, "--inh-caps", "-all", "--no-new-privs", "--",
		bin, "watch", "--config", cfgPath, "--address", d.Socket, "--log-level", "debug")
	// One container in its own user namespace (its owner, root, has
	// every capability there), one running as UID 1000 in the initial
	// user namespace (reading its namespaces needs CAP_SYS_PTRACE,
	// signalling it CAP_KILL).
	userns, other := uniq("capped-userns"), uniq("capped-uid")
	_, usernsPID := d.Run(t, d.Client(t), "default", userns, &ctrdtest.RunOpts{UserNS: true})
	_, otherPID := d.Run(t, d.Client(t), "default", other, &ctrdtest.RunOpts{SpecOpts: []oci.SpecOpts{oci.WithUIDGID(1000, 1000)}})
	recs := waitRecords(t, cfg.AuditLog, "start records", func(rs []*audit.Record) bool {
		return count(rs, userns, evStart) == 1 && count(rs, other, evStart) == 1
	})
	for _, tc := range []struct {
		id    string
		pid   uint32
		depth int
	}{{userns, usernsPID, 1}, {other, otherPID, 0}} {
		for _, r := range recs {
			if r.ContainerID != tc.id {
				continue
			}
			if r.Ancestry == nil || r.Error != "" {
				t.Errorf("%s: start record without namespaces under the unit's capabilities: error %q", tc.id, r.Error)
				continue
			}
			if got, want := r.User[0].Ino, nsIno(t, int(tc.pid), "user"); got != want || r.UserDepth() != tc.depth {
				t.Errorf("%s: user chain %+v, want %d at depth %d", tc.id, r.User, want, tc.depth)
			}
		}
	}
	w.stop(t)
}
