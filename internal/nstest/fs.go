package nstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// NoBirthTimes mounts a file system that gives files no birth times (an
// ext4 image with 128-byte inodes, as older mke2fs made small file
// systems, on a loop device) and returns its root, 0755; it is unmounted
// and its loop device freed at the test's end (not when the test binary
// times out, as for any mount). Needs root and loop devices.
func NoBirthTimes(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	mkfs := RequireCmd(t, "mkfs.ext4")
	mount := RequireCmd(t, "mount")
	umount := RequireCmd(t, "umount")
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Truncate(16 << 20)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Without loop devices (a container's /dev), or an mkfs that no
	// longer makes 128-byte inodes: a prerequisite missing (skipped,
	// failed under CI=true).
	out, err := exec.Command(mkfs, "-q", "-F", "-I", "128", img).CombinedOutput()
	Require(t, err == nil, "mkfs.ext4 -I 128: %v: %s", err, out)
	out, err = exec.Command(mount, "-o", "loop", img, mnt).CombinedOutput()
	Require(t, err == nil, "mount -o loop (loop devices): %v: %s", err, out)
	t.Cleanup(func() {
		if out, err := exec.Command(umount, "-d", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	if err := os.Chmod(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	// An mkfs that made larger inodes all the same (a later e2fsprogs
	// may): not the file system asked for.
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, mnt, 0, unix.STATX_BTIME, &st); err != nil {
		t.Fatal(err)
	}
	Require(t, st.Mask&unix.STATX_BTIME == 0, "mkfs.ext4 -I 128 made a file system with birth times")
	return mnt
}
