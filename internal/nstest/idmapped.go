package nstest

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// idmapMountEnv makes a test binary, started by [IDMappedMountIn] in
// another process's mount namespace, make an idmapped mount there in
// this package's initializer and exit: USERNS, SRC and DST, a line each.
const idmapMountEnv = "NSREL_TEST_IDMAP_MOUNT"

func init() {
	v, ok := os.LookupEnv(idmapMountEnv)
	if !ok {
		return
	}
	f := strings.Split(v, "\n")
	if len(f) != 3 {
		fmt.Fprintf(os.Stderr, "%s: %q\n", idmapMountEnv, v)
		os.Exit(2)
	}
	if err := idmapMount(f[0], f[1], f[2]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// idmapMount bind-mounts src on dst, idmapped with the user namespace at
// userns (open_tree, mount_setattr, move_mount).
func idmapMount(userns, src, dst string) error {
	ufd, err := unix.Open(userns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(ufd)
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(tree)
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ufd)}); err != nil {
		return fmt.Errorf("mount_setattr MOUNT_ATTR_IDMAP: %w", err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// mapper starts a process in a user namespace of its own with maps uids
// and gids, until the test ends, and returns the namespace's path, for
// mount_setattr(MOUNT_ATTR_IDMAP).
func mapper(t testing.TB, uids, gids []syscall.SysProcIDMap) string {
	t.Helper()
	p := Start(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: uids, GidMappings: gids}, RequireCmd(t, "sleep"), "infinity")
	return NSPath(p.Pid, "user")
}

// IDMappedMountIn is [IDMappedMount] in the mount namespace of process
// pid (this test binary again, through nsenter), where it stays until
// that namespace goes.
func IDMappedMountIn(t testing.TB, pid int, src, dst string, uids, gids []syscall.SysProcIDMap) {
	t.Helper()
	IDMappedMountInNS(t, "/proc/"+strconv.Itoa(pid)+"/ns/mnt", src, dst, uids, gids)
}

// IDMappedMountInNS is [IDMappedMountIn] in the mount namespace at path
// mntns (a thread's: /proc/PID/task/TID/ns/mnt).
func IDMappedMountInNS(t testing.TB, mntns, src, dst string, uids, gids []syscall.SysProcIDMap) {
	t.Helper()
	userns := mapper(t, uids, gids)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(RequireCmd(t, "nsenter"), "--mount="+mntns, "--", self)
	cmd.Env = append(os.Environ(), idmapMountEnv+"="+userns+"\n"+src+"\n"+dst)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("idmapped mount in the mount namespace %s: %v: %s", mntns, err, out)
	}
}

// PrivateDir returns a new directory of the test that is a mount of its
// own, private: mounts made below it do not propagate to other mount
// namespaces (on a host whose / is shared, as systemd makes it, a test's
// mount under /tmp reached the containers other packages' tests run
// meanwhile). Unmounted at the test's end.
func PrivateDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
	return dir
}

// IDMappedMount bind-mounts directory src on dst in this process's mount
// namespace, idmapped with the user namespace of a process with maps
// uids and gids (open_tree, mount_setattr, move_mount): a file of UID
// Inside on src is host UID Outside through dst. unmount undoes it; the
// test's end does too.
func IDMappedMount(t testing.TB, src, dst string, uids, gids []syscall.SysProcIDMap) (unmount func()) {
	t.Helper()
	if err := idmapMount(mapper(t, uids, gids), src, dst); err != nil {
		t.Fatal(err)
	}
	unmount = func() { unix.Unmount(dst, unix.MNT_DETACH) }
	t.Cleanup(unmount)
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); !strings.Contains(string(mi), " "+dst+" ") || !strings.Contains(string(mi), "idmapped") {
		t.Fatalf("no idmapped mount at %s in this mount namespace", dst)
	}
	return unmount
}
