package discover_test

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// deepDir makes, below base, directories nested deep enough that the path
// of a file "target" in the innermost is longer than PATH_MAX, creates
// that file, and returns the directories' names and the file's path.
func deepDir(t *testing.T, base string) (dirs []string, target string) {
	t.Helper()
	dfd, err := unix.Open(base, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; len(base)+i*201 < unix.PathMax+200; i++ {
		name := fmt.Sprintf("d%0200d", i)
		dfd = nstest.MkdirDown(t, dfd, name)
		dirs = append(dirs, name)
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, "target", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	return dirs, base + "/" + strings.Join(dirs, "/") + "/target"
}

// situationDeep: the mount namespace is private (the parent started us
// with CLONE_NEWNS); from $DEEP_BASE, it changes into the directories
// $DEEP_DIRS (separated by spaces) one by one and bind-mounts fd 3 on the
// file "target" there, through that relative path; with $DEEP_COVER set,
// it bind-mounts that file over it. Then it closes fd 3.
func situationDeep() {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		die("make / private", err)
	}
	if err := unix.Chdir(os.Getenv("DEEP_BASE")); err != nil {
		die("chdir", err)
	}
	for _, d := range strings.Fields(os.Getenv("DEEP_DIRS")) {
		if err := unix.Chdir(d); err != nil {
			die("chdir", err)
		}
	}
	if err := unix.Mount("/proc/self/fd/3", "target", "", unix.MS_BIND, ""); err != nil {
		die("bind mount", err)
	}
	if c := os.Getenv("DEEP_COVER"); c != "" {
		if err := unix.Mount(c, "target", "", unix.MS_BIND, ""); err != nil {
			die("bind mount over", err)
		}
	}
	closeReady()
}

// TestMountPointLongerThanPathMax bind-mounts a user namespace, held by
// nothing else, on a file whose path is longer than PATH_MAX (mounted
// through a relative path), in a mount namespace of its own: openat2(2)
// refuses such a path at once (ENAMETOOLONG), so the mount point is
// opened in pieces, and the namespace is found. With another file
// mounted over it, the namespace cannot be reached, which the notice
// says.
func TestMountPointLongerThanPathMax(t *testing.T) {
	nstest.RequireRoot(t)
	base := t.TempDir()
	dirs, target := deepDir(t, base)
	if len(target) < unix.PathMax {
		t.Fatalf("set-up: path of %d bytes", len(target))
	}
	for _, covered := range []bool{false, true} {
		t.Run(fmt.Sprintf("covered=%v", covered), func(t *testing.T) {
			userNS, userIno := heldUserNS(t)
			env := []string{"DEEP_BASE=" + base, "DEEP_DIRS=" + strings.Join(dirs, " ")}
			if covered {
				env = append(env, "DEEP_COVER="+bindTarget(t))
			}
			cmd, _ := startSituation(t, "deep", &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}, []*os.File{userNS}, env...)
			userNS.Close()
			mntIno := nstest.Ino(t, cmd.Process.Pid, "mnt")
			m := discoverT(t, discover.Options{Types: []nsrel.Type{nsrel.TypeUser}})
			n := m.Lookup(nsrel.TypeUser, userIno)
			if !covered {
				if f := foundVia(n, discover.ViaMount); f == nil || f.Path != target || f.MountNS != mntIno {
					t.Fatalf("user:[%d] bind-mounted at a path of %d bytes in mnt:[%d]: found via mount %+v; notice %q", userIno, len(target), mntIno, f, m.Notice())
				}
				return
			}
			if n := heldHere(m, n); n != nil {
				t.Fatalf("user:[%d], under another mount, found via %+v", userIno, n.FoundVia)
			}
			if n != nil {
				// Held by another package's scan, alongside: in the
				// model through it, its mount hides nothing. It is not
				// found through the covered mount all the same.
				for _, f := range n.FoundVia {
					if f.Via == discover.ViaMount && f.MountNS == mntIno {
						t.Fatalf("user:[%d], under another mount, found via %+v", userIno, f)
					}
				}
				t.Logf("user:[%d] held by another process: found via %+v", userIno, n.FoundVia)
				return
			}
			// Other tests' mounts may be counted too; the reason is
			// checked when this one is the only one.
			if m.UnopenedNS < 1 || !strings.Contains(m.Notice(), "through the bind mounts that mount tables list") ||
				m.UnopenedNS == 1 && m.UnopenedWhy != "another file is there (mounted over)" {
				t.Errorf("UnopenedNS %d (%q), notice %q; want the covered mount's namespace counted", m.UnopenedNS, m.UnopenedWhy, m.Notice())
			}
		})
	}
}
