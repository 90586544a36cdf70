package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/bundle"
	"github.com/nsrel/nsrel/internal/nstest"
)

// subIDCount is how many subordinate IDs the podman test gives the user
// "containers", from subIDs: the last part of this process's host IDs
// (nstest.HostIDBase), which this package's other tests leave alone. A
// fixed range was shared with any other run of the suite at the same
// time, whose podman then picked the same IDs.
const subIDCount uint32 = 200_000

// subIDs returns the first subordinate ID of the user "containers".
func subIDs(t *testing.T) uint32 { return nstest.HostIDBase(t) + nstest.HostIDSpan - subIDCount }

// withSubIDs adds "containers:FIRST:COUNT" to /etc/subuid and
// /etc/subgid (which podman --userns=auto reads) and restores both files
// as they were when the test ends.
func withSubIDs(t *testing.T) {
	t.Helper()
	subIDFirst := subIDs(t)
	for _, path := range policy.SubIDFiles {
		old, err := os.ReadFile(path)
		existed := err == nil
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if !existed {
				os.Remove(path)
				return
			}
			if err := os.WriteFile(path, old, 0o644); err != nil {
				t.Errorf("restore %s: %v", path, err)
			}
		})
		line := fmt.Sprintf("containers:%d:%d\n", subIDFirst, subIDCount)
		if len(old) > 0 && old[len(old)-1] != '\n' {
			line = "\n" + line
		}
		if err := os.WriteFile(path, append(old, line...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// rootfsTar makes the busybox rootfs into a tar file, which podmanRun
// imports as a local image.
func rootfsTar(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	if err := bundle.Rootfs(rootfs, ""); err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(dir, "rootfs.tar")
	if out, err := exec.Command(nstest.RequireCmd(t, "tar"), "-C", rootfs, "-cf", image, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	return image
}

// TestPodmanUsernsAuto runs a podman --userns=auto container from a
// local image (the IDs come from the subordinate IDs of the user
// containers) under an
// enforcing block with the map rules: it runs, and its record's maps are
// what the kernel shows in /proc/PID/uid_map, within the subordinate
// range.
func TestPodmanUsernsAuto(t *testing.T) {
	requireRuntime(t, "runc")
	withSubIDs(t)
	image := rootfsTar(t)
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["default"] = map[string]any{"mode": "enforce", "rules": map[string]any{
			policy.RuleHostRootUnmapped: true, policy.RuleAllowedSubIDUser: "containers", policy.RuleDisjoint: true,
		}}
	})
	cid, stderr, err := e.podmanRun(t, image, "--userns=auto", "--detach", "--", "/bin/sleep", "5")
	if err != nil {
		t.Fatalf("podman run --userns=auto: %v\n%s", err, stderr)
	}
	recs := e.records(t, cid)
	if len(recs) < 1 || recs[0].Stage != audit.StageCreateRuntime || recs[0].Ancestry == nil {
		t.Fatalf("records %v", audittest.Stages(recs))
	}
	r := recs[0]
	if r.Verdict != audit.VerdictAllow || len(r.Violations) > 0 {
		t.Errorf("verdict %s, violations %+v", r.Verdict, r.Violations)
	}
	if len(r.Maps) != 2 || r.UserDepth() != 1 {
		t.Fatalf("maps %+v", r.Maps)
	}
	m := r.Maps[0]
	if d := cmp.Diff(procMap(t, r.PID, "uid_map"), m.HostUIDMap); d != "" {
		t.Errorf("host uid_map (-kernel +record):\n%s", d)
	}
	if d := cmp.Diff(procMap(t, r.PID, "gid_map"), m.GIDMap); d != "" {
		t.Errorf("gid_map (-kernel +record):\n%s", d)
	}
	subIDFirst := subIDs(t)
	for _, x := range append(m.HostUIDMap, m.HostGIDMap...) {
		if x.Outside < subIDFirst || uint64(x.Outside)+uint64(x.Count) > uint64(subIDFirst)+uint64(subIDCount) {
			t.Errorf("range %+v lies outside the subordinate IDs %d+%d", x, subIDFirst, subIDCount)
		}
	}
	t.Logf("podman --userns=auto mapped %+v", m.HostUIDMap)
}
