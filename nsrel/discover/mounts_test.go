package discover

import (
	"cmp"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
)

// TestMountPointHostile opens mount points below a root directory that a
// container controls, as the bind mount scan does through /proc/PID/root:
// symlinks (absolute, relative, "..", through a procfs mounted inside
// the root to a magic link), a FIFO and a regular file stand where
// mountinfo said an nsfs mount is. None may be recorded as the namespace
// (the tool's own user namespace is what a magic link would give), none
// may block; the real bind mount is found.
func TestMountPointHostile(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.NoFDLeak(t)
	root := t.TempDir()
	mkdir := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	symlink := func(target, p string) {
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	mount := func(src, p string) {
		if err := unix.Mount(src, filepath.Join(root, p), "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("bind mount %s: %v", p, err)
		}
		t.Cleanup(func() { unix.Unmount(filepath.Join(root, p), unix.MNT_DETACH) })
	}
	mkdir("proc")
	mount("/proc", "proc") // a container's own /proc
	mkdir("run")
	symlink("/proc/self/ns/user", "abs")
	symlink("../../../../../../../proc/self/ns/user", "run/dotdot")
	symlink("/proc/self", "run/self")
	symlink("/proc/"+strconv.Itoa(os.Getpid())+"/ns", "nsdir")
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	symlink("/fifo", "fifolink")
	if err := os.WriteFile(filepath.Join(root, "plain"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The real thing: a user namespace bind-mounted inside the root.
	chain := nstest.UserChain(t, 1)
	realIno := func() uint64 {
		var st unix.Stat_t
		if err := unix.Stat(nstest.NSPath(chain.Pid, "user"), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}()
	if err := os.WriteFile(filepath.Join(root, "run/real"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mount(nstest.NSPath(chain.Pid, "user"), "run/real")
	symlink("real", "run/rellink")

	var self unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &self); err != nil {
		t.Fatal(err)
	}
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootfd)
	procfd, err := unix.Open("/proc", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(procfd)

	for _, tc := range []struct {
		point string
		ino   uint64 // what mountinfo claims
		want  bool
	}{
		{"/abs", self.Ino, false},
		{"/run/dotdot", self.Ino, false},
		{"/../../proc/self/ns/user", self.Ino, false},
		{"/run/self/ns/user", self.Ino, false},
		{"/nsdir/user", self.Ino, false},
		{"/proc/self/ns/user", self.Ino, false},
		{"/fifo", self.Ino, false},
		{"/fifolink", self.Ino, false},
		{"/plain", self.Ino, false},
		{"/run/rellink", realIno, false}, // mountinfo never lists a symlink
		// A magic link in the middle would leave the root for the host's
		// (here: this test's) file system and its nsfs mount.
		{"/proc/" + strconv.Itoa(os.Getpid()) + "/root" + root + "/run/real", realIno, false},
		{"/proc/self/root" + root + "/run/real", realIno, false},
		{"/run/real", realIno, true},
	} {
		t.Run(tc.point, func(t *testing.T) {
			s := &scanner{nodes: make(map[Key]*node), nsdev: self.Dev, wantUser: true, procfd: procfd}
			defer s.unpin()
			w := newWorker(s)
			done := make(chan struct{})
			go func() {
				defer close(done)
				w.mount(rootfd, 1, 4026532000, nsMount{NS: nsrel.Name{Type: nsrel.TypeUser, Ino: tc.ino}, Point: tc.point})
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("opening the mount point blocks")
			}
			var got []Key
			for k := range s.nodes {
				got = append(got, k)
			}
			var want []Key
			if tc.want {
				// The namespace and its parent, the initial one.
				want = []Key{{self.Dev, tc.ino}, {self.Dev, self.Ino}}
			}
			sortKeys(got)
			sortKeys(want)
			if diff := gocmp.Diff(want, got); diff != "" {
				t.Errorf("namespaces recorded (-want +got):\n%s", diff)
			}
			if n := s.nodes[Key{self.Dev, tc.ino}]; tc.want && (n == nil || len(n.ns.FoundVia) != 1 || n.ns.FoundVia[0].Via != ViaMount) {
				t.Errorf("found via %+v, want one mount", n)
			}
		})
	}
}

func sortKeys(ks []Key) {
	slices.SortFunc(ks, func(a, b Key) int { return cmp.Compare(a.Ino, b.Ino) })
}
