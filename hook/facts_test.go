package hook_test

import (
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/nstest"
)

// TestUnsureBlockKeepsMounts: a container in a user namespace mapping
// its root to host UID 100000, with an idmapped mount that maps UID 0 of
// its file system to that host UID, under a config whose block for an
// image (held_ids_mapped alone) cannot be ruled out when the image's
// name is unknown (the NRI plugin never knows it): the default block's
// host_root_unmapped still judges the mount, and the record holds it.
// The block judged first read the process's IDs without its mounts, and
// the chosen one found none: the container ran, its record showing no
// idmapped mount.
func TestUnsureBlockKeepsMounts(t *testing.T) {
	nstest.RequireRoot(t)
	dir := nstest.PrivateDir(t)
	src, dst := dir+"/src", dir+"/dst"
	nstest.Mkdirs(t, 0o755, src, dst)
	root := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	// Root of its namespace, holding no other ID: held_ids_mapped passes.
	c := nstest.Start(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS, UidMappings: root, GidMappings: root,
		Credential: &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{}}}, nstest.RequireCmd(t, "sleep"), "infinity")
	nstest.IDMappedMountIn(t, c.Pid, src, dst, root, root)
	cfg, err := policy.Parse("c.json", []byte(`{"version":1,"audit_log":"/x",
		"trusted_selectors":{"annotations":["io.kubernetes.cri.image-name"]},
		"policies":[{"name":"images","match":{"annotations":{"io\\.kubernetes\\.cri\\.image-name":"busybox"}},"mode":"enforce","rules":{"held_ids_mapped":true}}],
		"default":{"mode":"enforce","rules":{"host_root_unmapped":true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, unknown := range [][]string{nil, {"io.kubernetes.cri.image-name"}} {
		rec, ierr := hook.Decide(cfg, hook.Input{Stage: audit.StageCreateRuntime, ID: "c", PID: c.Pid, Unknown: unknown})
		if ierr != nil {
			t.Fatal(ierr)
		}
		mounts := slices.DeleteFunc(slices.Clone(rec.IDMapped), func(m audit.IDMappedMount) bool { return m.Point != dst })
		var broken []string
		for _, v := range rec.Violations {
			if v.Rule == policy.RuleHostRootUnmapped && strings.Contains(v.Reason, "maps UID 0 of its file system to host UID 100000") {
				broken = append(broken, v.Reason)
			}
		}
		if rec.Verdict != audit.VerdictDeny || len(broken) != 1 || len(mounts) != 1 {
			t.Errorf("unknown %q: verdict %s, violations %+v, idmapped mounts %+v; want refused for the idmapped mount at %s, which the record holds", unknown, rec.Verdict, rec.Violations, rec.IDMapped, dst)
		}
	}
}
