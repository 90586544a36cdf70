package discover_test

import (
	"os"
	"os/exec"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// situationJoin: joins the mount namespace open as fd 3 on the main
// thread, whose root (what /proc/PID/root shows) becomes the namespace's
// root, as setns(2) sets it: the topmost mount at "/".
func situationJoin() {
	var err error
	for range 8 {
		// As the scan's helper does: a runtime thread shares the
		// filesystem state, which setns(CLONE_NEWNS) refuses (EINVAL).
		if err = unix.Unshare(unix.CLONE_FS); err == nil {
			err = unix.Setns(3, unix.CLONE_NEWNS)
		}
		if err != unix.EINVAL {
			break
		}
	}
	if err != nil {
		die("setns", err)
	}
	closeReady()
}

// TestReaderRootMountedOver mounts a tmpfs over "/" in a mount namespace
// after its process X started, and on that tmpfs, through the root of a
// process that joined the namespace afterwards, a user namespace held by
// nothing else. X's root is the covered mount: "/x" from there is not
// the bind mount mountinfo lists. The scan must not read the namespace
// through X (it found nothing, silently), but through the later process
// or, once that is gone, the helper, whose root is the namespace's.
func TestReaderRootMountedOver(t *testing.T) {
	nstest.RequireRoot(t)
	nsenter := nstest.RequireCmd(t, "nsenter")
	sh := nstest.RequireCmd(t, "sh")
	x := nstest.Sleep(t, nil, "-m", "--propagation", "private")
	mntIno := nstest.Ino(t, x.Pid, "mnt")
	// In X's namespace with X's root: the tools are there.
	inX := func(args ...string) {
		t.Helper()
		out, err := exec.Command(nsenter, append([]string{"-t", strconv.Itoa(x.Pid), "-m", "-r"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("nsenter -t %d -m -r %q: %v\n%s", x.Pid, args, err, out)
		}
	}
	inX("mount", "-t", "tmpfs", "nsrel-covered-root", "/")
	mnt, err := os.Open(nstest.NSPath(x.Pid, "mnt"))
	if err != nil {
		t.Fatal(err)
	}
	j, _ := startSituation(t, "join", nil, []*os.File{mnt})
	mnt.Close()
	userNS, userIno := heldUserNS(t)
	// The target through j's root, the tmpfs (mount -c: as given, not
	// resolved to "/x", which would be below X's root).
	point := "/proc/" + strconv.Itoa(j.Process.Pid) + "/root/x"
	inX(sh, "-c", `touch "$1" && mount -c --bind "$2" "$1"`, "sh", point, fdPath(userNS))
	userNS.Close()

	for _, joined := range []bool{true, false} {
		if !joined {
			j.Process.Kill()
			j.Wait()
		}
		m := discoverT(t, discover.Options{Types: []nsrel.Type{nsrel.TypeUser}})
		f := foundVia(m.Lookup(nsrel.TypeUser, userIno), discover.ViaMount)
		// Through the process that joined (another task that joins
		// meanwhile would do too), else the helper (no PID); never X.
		want := discover.Found{Via: discover.ViaMount, Path: "/x", MountNS: mntIno}
		if f != nil && joined && f.PID != x.Pid && f.PID != 0 {
			want.PID = f.PID
		}
		if f == nil || *f != want {
			t.Errorf("joined process there %v: user:[%d] bind-mounted on the tmpfs over the root of mnt:[%d] (X %d, joined %d): found via mount %+v, want %+v; notice %q", joined, userIno, mntIno, x.Pid, j.Process.Pid, f, want, m.Notice())
		}
	}
}
