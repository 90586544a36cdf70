package discover

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
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
		for _, cached := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s cached=%v", tc.point, cached), func(t *testing.T) {
				s := &scanner{nodes: make(map[Key]*node), nsdev: self.Dev, wantUser: true, procfd: procfd}
				defer s.unpin()
				w := newWorker(s)
				done := make(chan struct{})
				go func() {
					defer close(done)
					w.mount(rootfd, 1, 4026532000, nsMount{NS: nsrel.Name{Type: nsrel.TypeUser, Ino: tc.ino}, Point: tc.point}, cached)
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
}

func sortKeys(ks []Key) {
	slices.SortFunc(ks, func(a, b Key) int { return cmp.Compare(a.Ino, b.Ino) })
}

// TestMountBelowFUSE bind-mounts a user namespace in a mount namespace
// of its own and mounts FUSE over a directory above it, as root, with a
// server that never reads its requests (a user can do as much where
// /etc/fuse.conf has user_allow_other: fusermount with allow_other, then
// its own mount namespace): opening the mount point asks the server, and
// the scan waited for it for good. The scan must end, leave that mount
// unopened and say so.
func TestMountBelowFUSE(t *testing.T) {
	nstest.RequireRoot(t)
	_, err := os.Stat("/dev/fuse")
	nstest.Require(t, err == nil, "/dev/fuse: %v", err)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a/b/x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	held := nstest.UserChain(t, 1)
	heldKey := Key{}
	if st, err := os.Stat(nstest.NSPath(held.Pid, "user")); err != nil {
		t.Fatal(err)
	} else {
		heldKey = Key{uint64(st.Sys().(*syscall.Stat_t).Dev), st.Sys().(*syscall.Stat_t).Ino}
	}
	script := `mount --bind "$1" "$2/a/b/x" && exec 3<>/dev/fuse && mount -i -t fuse -o fd=3,rootmode=40000,user_id=0,group_id=0 nsrel-test "$2/a" && echo ok && exec sleep infinity`
	if line := inMountNS(t, script, nstest.NSPath(held.Pid, "user"), dir); line != "ok" {
		t.Fatalf("the FUSE mount: %q", line)
	}
	// The namespace held by the mount alone: one a process holds too
	// is in the model, and its mount hides nothing (not counted).
	// Waited for by its process group, not held.Cmd.Wait: nstest.Start's
	// goroutine waits for it too, and of two Waits at once on one Cmd
	// one never returns (both read the single result of its output's
	// copy): the test hung, or its cleanup said the process "did not
	// exit after SIGKILL", once in eight runs.
	pgid := held.Cmd.Process.Pid
	unix.Kill(-pgid, unix.SIGKILL)
	for deadline := time.Now().Add(10 * time.Second); unix.Kill(-pgid, 0) != unix.ESRCH; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still there after SIGKILL", pgid)
		}
	}
	select {
	case m := <-discoverAsync(t):
		if m == nil {
			return
		}
		// At least this one (other tests may run alongside), unless
		// another package's scan, alongside, holds the namespace: in the
		// model then, the mount hides nothing.
		if n := m.Namespaces[heldKey]; n != nil && HeldHere(m, n) == nil {
			for _, f := range n.FoundVia {
				if f.Via == ViaMount && strings.HasPrefix(f.Path, dir+"/") {
					t.Errorf("user:[%d] below the FUSE mount found via %+v", heldKey.Ino, f)
				}
			}
			t.Logf("user:[%d] held by another process: found via %+v", heldKey.Ino, n.FoundVia)
			return
		}
		if m.BelowFUSE < 1 || !strings.Contains(m.Notice(), "below a FUSE mount") && !strings.Contains(m.Notice(), "below FUSE mounts") {
			t.Errorf("BelowFUSE %d, notice %q", m.BelowFUSE, m.Notice())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the scan still waits for the FUSE server after 60 s")
	}
}

// TestFusePoints reads FUSE mounts out of mountinfo (fusectl is not one)
// and tells the paths whose lookup goes through them.
func TestFusePoints(t *testing.T) {
	data := []byte(`22 1 0:21 / /sys/fs/fuse/connections rw - fusectl fusectl rw
30 1 0:30 / /home/a\040b rw,nosuid - fuse.sshfs host:/ rw,user_id=0
31 1 8:1 / /mnt/ntfs rw - fuseblk /dev/sda1 rw
32 1 0:32 / /f rw - fuse nsrel-test rw
33 1 0:4 user:[4026532176] /x/ns rw - nsfs nsfs rw
`)
	ns, got, _ := parseMounts(data)
	if want := []string{"/home/a b", "/mnt/ntfs", "/f"}; !slices.Equal(got, want) || len(ns) != 1 || ns[0].Point != "/x/ns" {
		t.Errorf("parseMounts = %v, %q, want the nsfs mount at /x/ns and FUSE at %q", ns, got, want)
	}
	for path, want := range map[string]bool{"/home/a b/ns": true, "/home/a b": false, "/home/a bc/ns": false, "/f/a/b": true, "/sys/fs/fuse/connections/x": false, "/x/ns": false} {
		if belowAny(path, got) != want {
			t.Errorf("belowAny(%q) = %v, want %v", path, !want, want)
		}
	}
	if !belowAny("/anything", []string{"/"}) {
		t.Error("a FUSE root is above every path")
	}
}

// TestOverlayOnFUSE: an overlay with a layer on a FUSE mount (or on such
// an overlay) counts as FUSE: revalidating its dentries asks the FUSE
// server (a review hung lsuserns with an nsfs mount below one). The
// layers are read from a real overlay's mountinfo line on this kernel.
func TestOverlayOnFUSE(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	for _, d := range []string{"l1", "l 2", "u", "w", "o"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := "lowerdir=" + dir + "/l1:" + dir + "/l 2,upperdir=" + dir + "/u,workdir=" + dir + "/w"
	out, err := exec.Command(nstest.RequireCmd(t, "unshare"), "-m", "--propagation", "private", "sh", "-c",
		`mount -t overlay overlay -o "$1" "$2" && cat /proc/self/mountinfo`, "sh", opts, dir+"/o").CombinedOutput()
	if err != nil {
		t.Fatalf("overlay: %v: %s", err, out)
	}
	// The new mount namespace holds the host's mounts too: other
	// tests' overlays and FUSE mounts (containerd's, lstool's) are left
	// out.
	_, fuse, over := parseMounts(out)
	mine := func(ps []string) []string {
		return slices.DeleteFunc(slices.Clone(ps), func(p string) bool { return !strings.HasPrefix(p, dir+"/") })
	}
	if len(mine(fuse)) != 0 || !slices.Equal(mine(over), []string{dir + "/o"}) {
		t.Errorf("no FUSE below the overlay, yet %q; overlays %q, want %s", fuse, over, dir+"/o")
	}
	var line string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); strings.Contains(l, " - overlay ") && len(f) > 4 && f[4] == dir+"/o" {
			line = l
		}
	}
	pre, post, _ := strings.Cut(line, " - ")
	if got, want := overlayLayers(strings.Fields(post)[2]), []string{dir + "/l1", dir + "/l 2", dir + "/u", dir + "/w"}; !slices.Equal(got, want) {
		t.Fatalf("layers %q, want %q (from %q)", got, want, line)
	}
	// The same line with its first layer on a FUSE mount, and another
	// overlay on that overlay: both count, and an nsfs mount below the
	// second is below FUSE.
	data := "30 1 0:30 / " + dir + "/l1 rw - fuse.x x rw\n" + line + "\n" +
		"40 1 0:41 / /x rw - overlay overlay rw,lowerdir=" + strings.Fields(pre)[4] + "/sub,upperdir=/u2,workdir=/w2\n" +
		"41 1 0:4 user:[4026532176] /x/ns rw - nsfs nsfs rw\n"
	ns, fuse, _ := parseMounts([]byte(data))
	if want := []string{dir + "/l1", dir + "/o", "/x"}; !slices.Equal(fuse, want) {
		t.Errorf("FUSE-backed %q, want %q", fuse, want)
	}
	if len(ns) != 1 || !belowAny(ns[0].Point, fuse) {
		t.Errorf("nsfs mounts %v: not below FUSE", ns)
	}
	// A layer named through a symlink (/y/lnk to the FUSE mount) does
	// not show its FUSE mount: the overlay is among the overlays, whose
	// mount points are opened from the lookup cache alone.
	data = "30 1 0:30 / /f rw - fuse.x x rw\n" +
		"40 1 0:41 / /x rw - overlay overlay rw,lowerdir=/y/lnk,upperdir=/u2,workdir=/w2\n"
	if _, fuse, over := parseMounts([]byte(data)); !slices.Equal(fuse, []string{"/f"}) || !slices.Equal(over, []string{"/x"}) {
		t.Errorf("overlay through a symlink: FUSE %q, overlays %q; want /f, /x", fuse, over)
	}

	// Layers named relative to where the mounter was, as the kernel
	// shows them (the review's lowerdir=lnk reached a FUSE mount that
	// way).
	out, err = exec.Command(nstest.RequireCmd(t, "unshare"), "-m", "--propagation", "private", "sh", "-c",
		`cd "$1" && mount -t overlay overlay -o lowerdir=l1,upperdir=u,workdir=w o && cat /proc/self/mountinfo`, "sh", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("overlay with relative layers: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "lowerdir=l1,") {
		t.Fatalf("the kernel did not show the relative layer:\n%s", out)
	}
	if _, _, over := parseMounts(out); !slices.Contains(over, dir+"/o") {
		t.Errorf("overlay with relative layers: overlays %q, want %s among them", over, dir+"/o")
	}

	// An empty source, which mountinfo shows as nothing between two
	// spaces ("overlay  rw,lowerdir=..."): the options were taken for
	// the source, and the overlay was none.
	out, err = exec.Command(nstest.RequireCmd(t, "unshare"), "-m", "--propagation", "private", "sh", "-c",
		`mount -t overlay "" -o "$1" "$2" && cat /proc/self/mountinfo`, "sh", opts, dir+"/o").CombinedOutput()
	if err != nil {
		t.Fatalf("overlay with an empty source: %v: %s", err, out)
	}
	if !strings.Contains(string(out), " - overlay  rw,") {
		t.Fatalf("the kernel did not show an empty source:\n%s", out)
	}
	if _, _, over := parseMounts(out); !slices.Contains(over, dir+"/o") {
		t.Errorf("overlay with an empty source: overlays %q, want %s among them", over, dir+"/o")
	}
	data = "30 1 0:30 / /f rw - fuse.x x rw\n" +
		"40 1 0:41 / /x rw - overlay  rw,lowerdir=/f/l,upperdir=/u2,workdir=/w2\n"
	if _, fuse, _ := parseMounts([]byte(data)); !slices.Equal(fuse, []string{"/f", "/x"}) {
		t.Errorf("overlay with an empty source on FUSE: FUSE-backed %q, want /f, /x", fuse)
	}
}

// TestMountBelowOverlay bind-mounts two user namespaces, held by nothing
// else, below two overlays (one with plain layers, one whose layers are
// named relative to the mounter, as the kernel then shows them) in a
// mount namespace that also has a FUSE mount elsewhere, whose server
// never reads: both are found, opened from the lookup cache. A rule that
// took every overlay of such a mount namespace for one on FUSE hid them.
func TestMountBelowOverlay(t *testing.T) {
	nstest.RequireRoot(t)
	_, err := os.Stat("/dev/fuse")
	nstest.Require(t, err == nil, "/dev/fuse: %v", err)
	script := `set -e; d=$1
mkdir -p $d/l $d/u $d/w $d/o $d/l2 $d/u2 $d/w2 $d/o2 $d/f
mount -t overlay o -o lowerdir=$d/l,upperdir=$d/u,workdir=$d/w $d/o
cd $d && mount -t overlay o2 -o lowerdir=l2,upperdir=u2,workdir=w2 o2
touch $d/o/x $d/o2/y
for target in $d/o/x $d/o2/y; do
	unshare -U sleep 1000 & p=$!
	while [ "$(readlink /proc/$p/ns/user)" = "$(readlink /proc/self/ns/user)" ]; do sleep 0.01; done
	mount --bind /proc/$p/ns/user $target
	kill $p; wait $p || true
done
exec 3<>/dev/fuse
mount -i -t fuse -o fd=3,rootmode=40000,user_id=0,group_id=0 nsrel-test $d/f
echo ok $(stat -L -c %i $d/o/x) $(stat -L -c %i $d/o2/y)
exec sleep infinity`
	line := inMountNS(t, script, t.TempDir())
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "ok" {
		t.Fatalf("setup: %q", line)
	}
	var m *Model
	select {
	case m = <-discoverAsync(t):
	case <-time.After(60 * time.Second):
		t.Fatal("the scan still waits after 60 s")
	}
	if m == nil {
		return
	}
	for i, where := range []string{"an overlay with plain layers", "an overlay with relative layers"} {
		ino, _ := strconv.ParseUint(f[i+1], 10, 64)
		n := m.Lookup(nsrel.TypeUser, ino)
		if n == nil || !slices.ContainsFunc(n.FoundVia, func(f Found) bool { return f.Via == ViaMount }) {
			t.Errorf("user:[%d], bind-mounted below %s: %+v; want it found through the mount", ino, where, n)
		}
	}
}

// inMountNS runs the shell script with args in a mount namespace of its
// own until the test ends (its end closes a /dev/fuse it opened: the
// connection is aborted and a lookup still waiting fails) and returns
// the first line it writes, without its newline, and what it said on
// stderr when it wrote none.
func inMountNS(t *testing.T, script string, args ...string) string {
	t.Helper()
	cmd := exec.Command(nstest.RequireCmd(t, "unshare"), append([]string{"-m", "--propagation", "private", nstest.RequireCmd(t, "sh"), "-c", script, "sh"}, args...)...)
	return nstest.FirstLine(t, cmd, func() { cmd.Process.Kill() })
}

// discoverAsync runs Discover in the background and sends its model
// (nil on error, which fails the test).
func discoverAsync(t *testing.T) <-chan *Model {
	done := make(chan *Model, 1)
	go func() {
		m, err := Discover(Options{})
		if err != nil {
			t.Error(err)
		}
		done <- m
	}()
	return done
}

// TestOpenBelowLongPath opens paths longer than PATH_MAX below a root
// directory in pieces: a file deep down opens; a symlink deep down, or
// ".." components that would climb out of the root, do not lead out of
// it.
func TestOpenBelowLongPath(t *testing.T) {
	nstest.NoFDLeak(t)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootfd)
	// 30 directories of 200 bytes, the last holding "file" and a
	// symlink "link" to the root's parent.
	dfd, _ := unix.FcntlInt(uintptr(rootfd), unix.F_DUPFD_CLOEXEC, 0)
	var names []string
	for i := range 30 {
		name := fmt.Sprintf("d%0199d", i)
		dfd, names = nstest.MkdirDown(t, dfd, name), append(names, name)
	}
	fd, err := unix.Openat(dfd, "file", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if err := unix.Symlinkat(outside, dfd, "link"); err != nil {
		t.Fatal(err)
	}
	unix.Close(dfd)
	deep := "/" + strings.Join(names, "/")
	how := &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_SYMLINKS,
	}
	fd, err = openBelow(rootfd, deep+"/file", how)
	if err != nil {
		t.Fatalf("open %d bytes below the root: %v", len(deep)+5, err)
	}
	unix.Close(fd)
	if fd, err := openBelow(rootfd, deep+"/link/secret", how); err == nil {
		unix.Close(fd)
		t.Errorf("opened through a symlink %d bytes down", len(deep))
	}
	rel, err := filepath.Rel(filepath.Dir(root), outside)
	if err != nil {
		t.Fatal(err)
	}
	// Up to the root, one more, and across: outside without the root.
	up := deep + strings.Repeat("/..", len(names)+1) + "/" + rel + "/secret"
	if fd, err := openBelow(rootfd, up, how); err == nil {
		unix.Close(fd)
		t.Errorf("opened a file outside the root through %d bytes of ..", len(up))
	}
}

// TestParseMountsWhitespace parses nsfs, FUSE and overlay lines whose
// mount points hold whitespace the kernel does not escape (a carriage
// return, Unicode spaces) beside a space it does: each point is whole.
// A split at any whitespace cut them there.
func TestParseMountsWhitespace(t *testing.T) {
	for _, w := range []string{"\r", "\v", "\f", "\u0085", "\u00a0", "\u2000", "\u2028", "\u3000"} {
		data := "41 1 0:4 user:[4026532176] /a" + w + "b\\040c rw - nsfs nsfs rw\n" +
			"42 1 0:30 / /f" + w + "g rw shared:3 - fuse.x x rw\n" +
			"43 1 0:41 / /o" + w + "p rw - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w\n"
		ns, fuse, over := parseMounts([]byte(data))
		if len(ns) != 1 || ns[0].Point != "/a"+w+"b c" || ns[0].NS.Ino != 4026532176 || ns[0].ID != 41 {
			t.Errorf("%q: nsfs mounts %+v; want user:[4026532176] at %q", w, ns, "/a"+w+"b c")
		}
		if !slices.Equal(fuse, []string{"/f" + w + "g"}) || !slices.Equal(over, []string{"/o" + w + "p"}) {
			t.Errorf("%q: FUSE %q, overlays %q", w, fuse, over)
		}
	}
}
