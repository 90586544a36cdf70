package nstest

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// IDMappedMount bind-mounts directory src on dst in this process's mount
// namespace, idmapped with the user namespace of a process with maps
// uids and gids (open_tree, mount_setattr, move_mount): a file of UID
// Inside on src is host UID Outside through dst. unmount undoes it; the
// test's end does too.
func IDMappedMount(t testing.TB, src, dst string, uids, gids []syscall.SysProcIDMap) (unmount func()) {
	t.Helper()
	p := Start(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: uids, GidMappings: gids}, RequireCmd(t, "sleep"), "infinity")
	userns, err := unix.Open(NSPath(p.Pid, "user"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(userns)
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		t.Fatalf("open_tree: %v", err)
	}
	defer unix.Close(tree)
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns)}); err != nil {
		t.Fatalf("mount_setattr MOUNT_ATTR_IDMAP: %v", err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		t.Fatalf("move_mount: %v", err)
	}
	unmount = func() { unix.Unmount(dst, unix.MNT_DETACH) }
	t.Cleanup(unmount)
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); !strings.Contains(string(mi), " "+dst+" ") || !strings.Contains(string(mi), "idmapped") {
		t.Fatalf("no idmapped mount at %s in this mount namespace", dst)
	}
	return unmount
}
