package discover_test

import (
	"bufio"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// situationEnv makes the test binary, started by a test as a child, build
// one situation in its package initializer (on the main thread, before
// the tests run), print "ready ..." and stay.
const situationEnv = "NSREL_DISCOVER_SITUATION"

func init() {
	switch os.Getenv(situationEnv) {
	case "":
		return
	case "leader":
		situationLeader()
	case "threads":
		situationThreads()
	case "socket":
		situationSocket()
	case "deep":
		situationDeep()
	case "join":
		situationJoin()
	case "subsetpid":
		situationSubsetPID()
	case "flip":
		situationFlip()
	}
	fmt.Println("error: unknown situation")
	os.Exit(2)
}

// die reports a failed set-up step to the parent and exits.
func die(step string, err error) {
	fmt.Printf("error: %s: %v\n", step, err)
	os.Exit(1)
}

// stay keeps the child alive (a timer, so Go never sees a deadlock) until
// it is killed.
func stay() {
	for {
		time.Sleep(time.Hour)
	}
}

// closeReady closes fd 3, says "ready" on stdout and blocks for good,
// stay keeping the process alive.
func closeReady() {
	unix.Close(3)
	go stay()
	fmt.Println("ready")
	select {}
}

// situationLeader: fd 3 holds a namespace; the mount namespace is private
// (the parent started us with CLONE_NEWNS) and has the file $BIND_SRC
// bind-mounted on $BIND_DST. Then the main thread, the thread-group
// leader, exits (exit(2) of the thread only) while another thread stays.
func situationLeader() {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		die("make / private", err)
	}
	if err := unix.Mount(os.Getenv("BIND_SRC"), os.Getenv("BIND_DST"), "", unix.MS_BIND, ""); err != nil {
		die("bind mount", err)
	}
	unix.Close(4)
	go stay()
	fmt.Println("ready")
	// Only this thread ends; the process lives on in the others.
	unix.Syscall(unix.SYS_EXIT, 0, 0, 0)
}

// situationThreads: each of four threads has state of its own that
// differs from the process's: thread "net" joined the network namespace
// $NET, thread "pfc" the PID namespace $PIDNS for its children, thread
// "files" has a private fd table that alone holds fd 3, thread "mnt" a
// private mount namespace with $BIND_SRC bind-mounted on $BIND_DST.
func situationThreads() {
	type result struct {
		name string
		tid  int
		err  error
	}
	ready := make(chan result)
	filesUnshared := make(chan struct{})
	thread := func(name string, setup func() error) {
		go func() {
			// Locked for good: the thread keeps its state until the
			// process is killed.
			runtime.LockOSThread()
			err := setup()
			ready <- result{name, unix.Gettid(), err}
			select {}
		}()
	}
	setnsPath := func(path string, nstype int) error {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Setns(fd, nstype)
	}
	thread("net", func() error { return setnsPath(os.Getenv("NET"), unix.CLONE_NEWNET) })
	thread("pfc", func() error { return setnsPath(os.Getenv("PIDNS"), unix.CLONE_NEWPID) })
	thread("files", func() error {
		defer close(filesUnshared)
		return unix.Unshare(unix.CLONE_FILES)
	})
	thread("mnt", func() error {
		if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
			return err
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return err
		}
		return unix.Mount(os.Getenv("BIND_SRC"), os.Getenv("BIND_DST"), "", unix.MS_BIND, "")
	})
	<-filesUnshared
	// Now only the "files" thread's table has fd 3.
	unix.Close(3)
	var parts []string
	for range 4 {
		r := <-ready
		if r.err != nil {
			die(r.name, r.err)
		}
		parts = append(parts, fmt.Sprintf("%s=%d", r.name, r.tid))
	}
	// Now only the "mnt" thread's bind mount holds what fd 4 held.
	unix.Close(4)
	go stay()
	fmt.Println("ready " + strings.Join(parts, " "))
	select {}
}

// situationSocket: a socket created in the network namespace $NET (and
// bound with $BIND set), which this process then leaves; it prints the socket's fd, the namespace's
// inode and that of its owning user namespace, as the kernel says them.
func situationSocket() {
	runtime.LockOSThread()
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		die("open own netns", err)
	}
	target, err := unix.Open(os.Getenv("NET"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		die("open netns", err)
	}
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		die("setns", err)
	}
	sock, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		die("socket", err)
	}
	if os.Getenv("BIND") != "" {
		// Bound (any address, a free port), the socket is in the UDP
		// table, so that sock_diag lists it.
		if err := unix.Bind(sock, &unix.SockaddrInet4{}); err != nil {
			die("bind", err)
		}
	}
	if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
		die("setns back", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(target, &st); err != nil {
		die("fstat", err)
	}
	owner, err := nsrel.OwnerUserNS(nsrel.FD(target))
	if err != nil {
		die("owner", err)
	}
	oid, err := nsrel.Identify(owner)
	if err != nil {
		die("identify owner", err)
	}
	owner.Close()
	unix.Close(target)
	unix.Close(self)
	go stay()
	fmt.Printf("ready fd=%d net=%d owner=%d\n", sock, st.Ino, oid.Ino)
	select {}
}

// situationSubsetPID: started in a mount namespace of its own, mounts a
// /proc with subset=pid (no /proc/cgroups) on /proc, scans for user
// namespaces and prints the sockets not asked, why (URL-escaped) and the
// network namespaces found through sockets.
func situationSubsetPID() {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		die("make / private", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "subset=pid"); err != nil {
		die("mount proc subset=pid", err)
	}
	if _, err := os.Stat("/proc/cgroups"); err == nil {
		die("subset=pid", errors.New("/proc/cgroups is there"))
	}
	m, err := discover.Discover(discover.Options{Types: []nsrel.Type{nsrel.TypeUser}})
	if err != nil {
		die("discover", err)
	}
	var nets []string
	for _, n := range m.Of(nsrel.TypeNet) {
		if hasVia(n, discover.ViaSocket) != nil {
			nets = append(nets, strconv.FormatUint(n.Ino, 10))
		}
	}
	go stay()
	fmt.Printf("ready skipped=%d why=%s socknets=%s\n", m.SkippedSockets, url.QueryEscape(m.SkippedWhy), strings.Join(nets, ","))
	select {}
}

// startSituation starts this test binary as a child building the
// situation name with env, and returns it and the fields of its ready
// line (name=value).
func startSituation(t *testing.T, name string, attr *syscall.SysProcAttr, files []*os.File, env ...string) (*exec.Cmd, map[string]string) {
	t.Helper()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append([]string{situationEnv + "=" + name}, env...)
	cmd.ExtraFiles = files
	if attr == nil {
		attr = &syscall.SysProcAttr{}
	}
	attr.Setpgid = true
	attr.Pdeathsig = syscall.SIGKILL
	cmd.SysProcAttr = attr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "ready" {
		t.Fatalf("situation %s: %q", name, line)
	}
	kv := make(map[string]string)
	for _, p := range f[1:] {
		k, v, _ := strings.Cut(p, "=")
		kv[k] = v
	}
	return cmd, kv
}

// heldUserNS returns a user namespace whose only process is killed: the
// caller holds it open (close it once something else holds it).
func heldUserNS(t *testing.T) (*os.File, uint64) {
	t.Helper()
	p := nstest.Sleep(t, nil, "-U")
	f, err := os.Open(nstest.NSPath(p.Pid, "user"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	killWait(t, p, p.Pid)
	return f, st.Ino
}

// bindTarget returns an empty file to bind-mount a namespace on.
func bindTarget(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ns")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// foreignIn reports whether process pid, named as a process in mount
// namespace mnt, is another test package's (its scan's helper reads a
// mount table there): not this test's, and in mnt or gone.
func foreignIn(pid int, mnt uint64) bool {
	if descendant(pid) {
		return false
	}
	var st syscall.Stat_t
	err := syscall.Stat(nstest.NSPath(pid, "mnt"), &st)
	return err != nil || st.Ino == mnt
}

// foundVia returns the first Found of n with via v, or nil.
func foundVia(n *discover.Namespace, v discover.Via) *discover.Found {
	if n == nil {
		return nil
	}
	return hasVia(n, v)
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// linkIno reads the namespace link at path (readlink, "type:[INO]").
func linkIno(t *testing.T, path string) uint64 {
	t.Helper()
	l, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := nsrel.ParseName(l)
	if err != nil {
		t.Fatal(err)
	}
	return n.Ino
}

// liveThread returns a thread of pid other than the leader, read here
// from /proc/PID/task.
func otherThread(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if tid := atoi(t, e.Name()); tid != pid {
			if _, err := os.Readlink(fmt.Sprintf("/proc/%d/task/%d/ns/mnt", pid, tid)); err == nil {
				return tid
			}
		}
	}
	t.Fatalf("process %d has no live thread", pid)
	return 0
}

func TestExitedThreadGroupLeader(t *testing.T) {
	// A process whose leader thread exited lives on in its other threads;
	// /proc/PID/ns/{mnt,net,...} and /proc/PID/fd of the leader read
	// ENOENT and empty. Its fd-held and mount-held namespaces are found
	// through a live thread.
	nstest.RequireRoot(t)
	fdNS, fdIno := heldUserNS(t)
	mountNS, mountIno := heldUserNS(t)
	dst := bindTarget(t)
	cmd, _ := startSituation(t, "leader", &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}, []*os.File{fdNS, mountNS},
		"BIND_SRC=/proc/self/fd/4", "BIND_DST="+dst)
	fdNS.Close()
	mountNS.Close()
	pid := cmd.Process.Pid
	// The kernel's view, read here: the leader's links are gone, a live
	// thread holds fd 3 and is in the private mount namespace.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Readlink(nstest.NSPath(pid, "mnt")); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader of %d still has its namespaces; the test proves nothing", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	tid := otherThread(t, pid)
	if got := linkIno(t, fmt.Sprintf("/proc/%d/task/%d/fd/3", pid, tid)); got != fdIno {
		t.Fatalf("setup: fd 3 of thread %d is %d, want %d", tid, got, fdIno)
	}
	mnt := linkIno(t, fmt.Sprintf("/proc/%d/task/%d/ns/mnt", pid, tid))
	if mnt == ino(t, "/proc/self/ns/mnt") {
		t.Fatal("setup: the child shares our mount namespace")
	}

	for _, o := range []discover.Options{
		{Types: []nsrel.Type{nsrel.TypeUser}},
		{Types: []nsrel.Type{nsrel.TypePID}},
	} {
		m := discoverT(t, o)
		n := m.Lookup(nsrel.TypeUser, fdIno)
		f := fdHeldBy(n, func(f discover.Found) bool { return f.PID == pid && strings.HasSuffix(f.Path, "/fd/3") })
		if f == nil {
			t.Errorf("%v: user:[%d] held by fd 3 of %d: found via %+v", o.Types, fdIno, pid, n)
		}
		n = m.Lookup(nsrel.TypeUser, mountIno)
		f = foundVia(n, discover.ViaMount)
		if f == nil || f.MountNS != mnt || f.Path != dst {
			t.Errorf("%v: user:[%d] bind-mounted on %s in mnt:[%d]: found via %+v", o.Types, mountIno, dst, mnt, n)
		}
	}
}

func TestPerThreadState(t *testing.T) {
	// Four threads of one process each differ from it in one way; what
	// each holds is held by nothing else. The kernel's answers are read
	// here from /proc/PID/task/TID and the ioctls on those links.
	nstest.RequireRoot(t)
	// A network namespace owned by a user namespace of its own, joined
	// by thread "net"; its creator is killed.
	netCreator := nstest.Sleep(t, nil, "-Un")
	// A PID namespace owned by another user namespace, joined for its
	// children by thread "pfc"; its processes are killed.
	pidCreator := nstest.Sleep(t, nil, "-Upf", "--kill-child")
	filesNS, filesIno := heldUserNS(t)
	mountNS, mountIno := heldUserNS(t)
	dst := bindTarget(t)
	cmd, tids := startSituation(t, "threads", nil, []*os.File{filesNS, mountNS},
		"NET="+nstest.NSPath(netCreator.Pid, "net"), "PIDNS="+nstest.NSPath(pidCreator.Pid, "pid"),
		"BIND_SRC=/proc/self/fd/4", "BIND_DST="+dst)
	filesNS.Close()
	mountNS.Close()
	killWait(t, netCreator, netCreator.Pid)
	killWait(t, pidCreator, pidCreator.Pid)
	pid := cmd.Process.Pid
	task := func(name, rest string) string {
		return fmt.Sprintf("/proc/%d/task/%s/%s", pid, tids[name], rest)
	}
	ownerOf := func(path string) uint64 {
		o, err := nsrel.OwnerUserNS(nsrel.Path(path))
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		id, err := nsrel.Identify(o)
		if err != nil {
			t.Fatal(err)
		}
		return id.Ino
	}
	netIno := linkIno(t, task("net", "ns/net"))
	netOwner := ownerOf(task("net", "ns/net"))
	pfcIno := linkIno(t, task("pfc", "ns/pid_for_children"))
	pfcOwner := ownerOf(task("pfc", "ns/pid_for_children"))
	mntIno := linkIno(t, task("mnt", "ns/mnt"))
	if got := linkIno(t, task("files", "fd/3")); got != filesIno {
		t.Fatalf("setup: fd 3 of thread files is %d, want %d", got, filesIno)
	}
	if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", pid)); err == nil && l == fmt.Sprintf("user:[%d]", filesIno) {
		t.Fatal("setup: the process's own fd table still has fd 3")
	}
	for _, p := range []string{"ns/net", "ns/pid_for_children", "ns/mnt"} {
		if linkIno(t, nstest.NSPath(pid, strings.TrimPrefix(p, "ns/"))) == linkIno(t, task(map[string]string{"ns/net": "net", "ns/pid_for_children": "pfc", "ns/mnt": "mnt"}[p], p)) {
			t.Fatalf("setup: the process has its thread's %s", p)
		}
	}

	users := discoverT(t, discover.Options{Types: []nsrel.Type{nsrel.TypeUser}})
	pids := discoverT(t, discover.Options{Types: []nsrel.Type{nsrel.TypePID}})
	tid := func(name string) int { return atoi(t, tids[name]) }
	t.Run("net", func(t *testing.T) {
		n := users.Lookup(nsrel.TypeNet, netIno)
		if f := foundVia(n, discover.ViaTask); f == nil || f.PID != pid || f.TID != tid("net") {
			t.Fatalf("net:[%d] of thread %d: %+v", netIno, tid("net"), n)
		}
		if o := users.Lookup(nsrel.TypeUser, netOwner); o == nil || n.Owner != o {
			t.Errorf("owner of net:[%d] is user:[%d], model: %v", netIno, netOwner, n.Owner)
		}
	})
	t.Run("pid_for_children", func(t *testing.T) {
		n := pids.Lookup(nsrel.TypePID, pfcIno)
		if f := foundVia(n, discover.ViaTask); f == nil || f.TID != tid("pfc") {
			t.Fatalf("lspidns: pid:[%d] of thread %d: %+v", pfcIno, tid("pfc"), n)
		}
		if n.Owner == nil || n.Owner.Ino != pfcOwner {
			t.Errorf("lspidns: owner of pid:[%d] %v, kernel user:[%d]", pfcIno, n.Owner, pfcOwner)
		}
		// lsuserns shows the owner lspidns names.
		if o := users.Lookup(nsrel.TypeUser, pfcOwner); o == nil {
			t.Errorf("lsuserns: no user:[%d], the owner lspidns names for pid:[%d]", pfcOwner, pfcIno)
		}
	})
	t.Run("files", func(t *testing.T) {
		for _, m := range []*discover.Model{users, pids} {
			n := m.Lookup(nsrel.TypeUser, filesIno)
			want := fmt.Sprintf("/proc/%d/task/%d/fd/3", pid, tid("files"))
			if fdHeldBy(n, func(f discover.Found) bool { return f.Path == want && f.TID == tid("files") }) == nil {
				t.Errorf("user:[%d] held by %s: %+v", filesIno, want, n)
			}
		}
	})
	t.Run("mnt", func(t *testing.T) {
		for _, m := range []*discover.Model{users, pids} {
			n := m.Lookup(nsrel.TypeUser, mountIno)
			if f := foundVia(n, discover.ViaMount); f == nil || f.MountNS != mntIno || f.Path != dst {
				t.Errorf("user:[%d] bind-mounted on %s in mnt:[%d] of thread %d: %+v", mountIno, dst, mntIno, tid("mnt"), n)
			}
		}
	})
}

func TestNetworkNamespaceHeldBySocket(t *testing.T) {
	// A process joins a network namespace, opens a socket and leaves; the
	// namespace's creator exits. Only the socket holds the namespace (and
	// through it its owning user namespace): pidfd_getfd(2) and
	// SIOCGSKNS find it. The child reports what the kernel told it.
	nstest.RequireRoot(t)
	creator := nstest.Sleep(t, nil, "-Un")
	cmd, kv := startSituation(t, "socket", nil, nil, "NET="+nstest.NSPath(creator.Pid, "net"))
	killWait(t, creator, creator.Pid)
	pid := cmd.Process.Pid
	netIno, owner := uint64(atoi(t, kv["net"])), uint64(atoi(t, kv["owner"]))
	if linkIno(t, nstest.NSPath(pid, "net")) == netIno {
		t.Fatal("setup: the child is still in the namespace")
	}
	m := discoverT(t, discover.Options{Types: []nsrel.Type{nsrel.TypeUser}})
	n := m.Lookup(nsrel.TypeNet, netIno)
	want := fmt.Sprintf("/proc/%d/fd/%s", pid, kv["fd"])
	if f := foundVia(n, discover.ViaSocket); f == nil || f.PID != pid || f.Path != want {
		// With net_cls or net_prio cgroups in use (another test's), no
		// socket is asked: the notice says so.
		t.Fatalf("net:[%d] of the socket %s: %+v (notice %q)", netIno, want, n, m.Notice())
	}
	if o := m.Lookup(nsrel.TypeUser, owner); o == nil || n.Owner != o {
		t.Errorf("owner of net:[%d]: model %v, kernel user:[%d]", netIno, n.Owner, owner)
	}
	// Under a /proc with subset=pid (no /proc/cgroups), sockets are asked
	// when neither net_cls nor net_prio is bound to a v1 hierarchy.
	if cg, err := os.ReadFile("/proc/self/cgroup"); err == nil && !strings.Contains(string(cg), "net_cls") && !strings.Contains(string(cg), "net_prio") {
		if sub := discoverSubsetPID(t); !sub.nets[netIno] || sub.skipped != 0 {
			t.Errorf("/proc with subset=pid: %+v, want net:[%d] found through its socket", sub, netIno)
		}
	}
	m = discoverT(t, discover.Options{Types: []nsrel.Type{nsrel.TypeUser}, NoSockets: true})
	if n := m.Lookup(nsrel.TypeUser, owner); heldHere(m, n) != nil || foundVia(n, discover.ViaSocket) != nil {
		t.Errorf("NoSockets: user:[%d] found via %+v; the test does not isolate the socket", owner, n.FoundVia)
	}
}

// TestSocketFirstCopyGone: a socket holds the only reference to a
// network namespace, and two processes hold copies of it; the one with
// the lower PID exits after the process scan, before the sockets are
// asked. The namespace is found through the other copy; it was asked
// through the lowest PID only, and missed.
func TestSocketFirstCopyGone(t *testing.T) {
	nstest.RequireRoot(t)
	creator := nstest.Sleep(t, nil, "-Un")
	cmd, kv := startSituation(t, "socket", nil, nil, "NET="+nstest.NSPath(creator.Pid, "net"))
	killWait(t, creator, creator.Pid)
	netIno := uint64(atoi(t, kv["net"]))
	pidfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	sfd, err := unix.PidfdGetfd(pidfd, atoi(t, kv["fd"]), 0)
	unix.Close(pidfd)
	if err != nil {
		t.Fatal(err)
	}
	sock := os.NewFile(uintptr(sfd), "socket")
	holder := exec.Command("sleep", "infinity")
	holder.ExtraFiles = []*os.File{sock}
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = holder.Start()
	sock.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	// Whichever holds the lower PID goes (PIDs may wrap).
	gone, stays, want := cmd, holder, fmt.Sprintf("/proc/%d/fd/3", holder.Process.Pid)
	if holder.Process.Pid < cmd.Process.Pid {
		gone, stays, want = holder, cmd, fmt.Sprintf("/proc/%d/fd/%s", cmd.Process.Pid, kv["fd"])
	}
	discover.SetBeforeSockets(t, func() {
		gone.Process.Kill()
		gone.Wait()
	})
	m := discoverT(t, discover.Options{Types: []nsrel.Type{nsrel.TypeUser}})
	n := m.Lookup(nsrel.TypeNet, netIno)
	if f := foundVia(n, discover.ViaSocket); f == nil || f.PID != stays.Process.Pid || f.Path != want {
		t.Fatalf("net:[%d] held by sockets of PIDs %d (gone before the sockets' pass) and %d: %+v, want found through %s (notice %q)", netIno, gone.Process.Pid, stays.Process.Pid, n, want, m.Notice())
	}
}

// nsenterMount runs args in the mount namespace at path (nsenter
// --mount) and returns the output.
func nsenterMount(t *testing.T, path string, args ...string) string {
	t.Helper()
	nsenter := nstest.RequireCmd(t, "nsenter")
	out, err := exec.Command(nsenter, append([]string{"--mount=" + path}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter --mount=%s %v: %v\n%s", path, args, err, out)
	}
	return string(out)
}

// fdPath returns /proc/PID/fd/N of f in this process, a path other
// processes can bind-mount from.
func fdPath(f *os.File) string { return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd()) }

func TestTasklessMountNamespaces(t *testing.T) {
	// Mount namespace M2 is held only by an fd; in it, M1 is bind-mounted,
	// and in M1 a user namespace U. No task is in M1 or M2: a helper
	// process joins each to read its mount table.
	nstest.RequireRoot(t)
	nsenter := nstest.RequireCmd(t, "nsenter")
	x2 := nstest.Sleep(t, nil, "-m", "--propagation", "private")
	dst1, dst2 := bindTarget(t), bindTarget(t)
	// The kernel lets M1 be bind-mounted in M2 only if M1's sequence
	// number is the higher (no loops); those come in per-CPU batches, so
	// a namespace created later may still have the lower one: retry.
	var x1 *nstest.Proc
	for try := 0; x1 == nil; try++ {
		p := nstest.Sleep(t, nil, "-m", "--propagation", "private")
		out, err := exec.Command(nsenter, "--mount="+nstest.NSPath(x2.Pid, "mnt"), "mount", "--bind", nstest.NSPath(p.Pid, "mnt"), dst2).CombinedOutput()
		switch {
		case err == nil:
			x1 = p
		case try == 50:
			t.Fatalf("cannot bind-mount a mount namespace in another: %v\n%s", err, out)
		default:
			killWait(t, p, p.Pid)
		}
	}
	m1, m2 := nstest.Ino(t, x1.Pid, "mnt"), nstest.Ino(t, x2.Pid, "mnt")
	userNS, userIno := heldUserNS(t)
	nsenterMount(t, nstest.NSPath(x1.Pid, "mnt"), "mount", "--bind", fdPath(userNS), dst1)
	userNS.Close()
	holder := holdByFD(t, nstest.NSPath(x2.Pid, "mnt"))
	killWait(t, x1, x1.Pid)
	killWait(t, x2, x2.Pid)
	// The kernel's view, read here by joining M2 through the holder's fd.
	held := fmt.Sprintf("/proc/%d/fd/3", holder.Pid)
	if mi := nsenterMount(t, held, "cat", "/proc/self/mountinfo"); !strings.Contains(mi, fmt.Sprintf("mnt:[%d] %s ", m1, dst2)) {
		t.Fatalf("setup: M2's mount table has no mnt:[%d] on %s:\n%s", m1, dst2, mi)
	}

	for _, o := range []discover.Options{
		{Types: []nsrel.Type{nsrel.TypeUser}},
		{Types: []nsrel.Type{nsrel.TypePID}},
	} {
		m := discoverT(t, o)
		n1 := m.Lookup(nsrel.TypeMount, m1)
		// No process of this test is in M2 (another package's scan may
		// have its helper there, reading its mount table).
		if f := foundVia(n1, discover.ViaMount); f == nil || f.MountNS != m2 || f.Path != dst2 || f.PID != 0 && !foreignIn(f.PID, m2) {
			t.Errorf("%v: mnt:[%d] bind-mounted on %s in mnt:[%d]: %+v", o.Types, m1, dst2, m2, n1)
		}
		n := m.Lookup(nsrel.TypeUser, userIno)
		if f := foundVia(n, discover.ViaMount); f == nil || f.MountNS != m1 || f.Path != dst1 {
			t.Errorf("%v: user:[%d] bind-mounted on %s in mnt:[%d]: %+v", o.Types, userIno, dst1, m1, n)
		}
	}
	// Without bind mounts, no helper runs and nothing is found.
	if m := discoverT(t, discover.Options{NoMounts: true}); heldHere(m, m.Lookup(nsrel.TypeUser, userIno)) != nil || foundVia(m.Lookup(nsrel.TypeUser, userIno), discover.ViaMount) != nil {
		t.Errorf("NoMounts found user:[%d]", userIno)
	}
}

func TestChrootedMountTableReader(t *testing.T) {
	// The only process of a mount namespace is chrooted: its own mount
	// table shows nothing outside its root, so a user namespace
	// bind-mounted outside is read by a helper that joins the namespace.
	nstest.RequireRoot(t)
	busybox := nstest.RequireCmd(t, "busybox")
	dir := t.TempDir()
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sleep"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	userNS, userIno := heldUserNS(t)
	dst := bindTarget(t)
	unshare := nstest.RequireCmd(t, "unshare")
	p := nstest.Start(t, nil, unshare, "-m", "--propagation", "private", "sh", "-c",
		fmt.Sprintf("mount --bind %s %s && exec chroot %s /sleep infinity", fdPath(userNS), dst, dir))
	p.Pid = nstest.WaitLeaf(t, p.Pid, "sleep")
	userNS.Close()
	if root, err := os.Readlink(fmt.Sprintf("/proc/%d/root", p.Pid)); err != nil || root != dir {
		t.Fatalf("setup: root of %d is %q (%v), want %s", p.Pid, root, err, dir)
	}
	mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", p.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), "nsfs") {
		t.Fatalf("setup: the chrooted process sees the nsfs mount:\n%s", mi)
	}
	mnt := nstest.Ino(t, p.Pid, "mnt")
	m := discoverT(t, discover.Options{Types: []nsrel.Type{nsrel.TypeUser}})
	n := m.Lookup(nsrel.TypeUser, userIno)
	if f := foundVia(n, discover.ViaMount); f == nil || f.MountNS != mnt || f.Path != dst {
		t.Errorf("user:[%d] bind-mounted on %s in mnt:[%d]: %+v", userIno, dst, mnt, n)
	}
}

// reuseInode creates UTS namespaces (held open until the test ends) until
// one gets the inode want or tries run out, and returns that one.
func reuseInode(t *testing.T, want uint64, tries int) *os.File {
	t.Helper()
	var held []*os.File
	t.Cleanup(func() {
		for _, f := range held {
			f.Close()
		}
	})
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/uts")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer orig.Close()
		defer unix.Setns(int(orig.Fd()), unix.CLONE_NEWUTS)
		for range tries {
			if err := unix.Unshare(unix.CLONE_NEWUTS); err != nil {
				done <- result{err: err}
				return
			}
			f, err := os.Open("/proc/thread-self/ns/uts")
			if err != nil {
				done <- result{err: err}
				return
			}
			held = append(held, f)
			var st unix.Stat_t
			if unix.Fstat(int(f.Fd()), &st) == nil && st.Ino == want {
				done <- result{f: f}
				return
			}
			// A namespace is freed a moment after its last reference.
			time.Sleep(time.Millisecond)
		}
		done <- result{}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.f
}

func TestInodeReusedMidScan(t *testing.T) {
	// The scan sees a namespace N through its only process; then, while
	// the scan is paused, that process dies and new namespaces of
	// another type are created until one would get N's inode, and it is
	// bind-mounted where the bind mount scan reads next. The scan holds N
	// open from the moment it found it, so the inode cannot be given out
	// again; and whatever happens, no namespace in the model has an owner
	// or parent of the wrong type, and no reference is put on a namespace
	// of another type. Both scans: lsuserns (N a user namespace) and
	// lspidns (N a PID namespace, whose owner dies with it).
	for _, tc := range []struct {
		typ  nsrel.Type
		args []string
	}{
		{nsrel.TypeUser, []string{"-U"}},
		{nsrel.TypePID, []string{"-Upf", "--kill-child"}},
	} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			nstest.RequireRoot(t)
			a := nstest.Sleep(t, nil, tc.args...)
			ino := nstest.Ino(t, a.Pid, tc.typ.String())
			d := nstest.Sleep(t, nil, "-m", "--propagation", "private")
			dst := bindTarget(t)
			var reused *os.File
			restore := discover.SetAfterProcesses(func() {
				killWait(t, a, a.Pid)
				reused = reuseInode(t, ino, 2000)
				if reused != nil {
					nsenterMount(t, nstest.NSPath(d.Pid, "mnt"), "mount", "--bind", fdPath(reused), dst)
				}
			})
			m := discoverT(t, discover.Options{Types: []nsrel.Type{tc.typ}})
			restore()
			if reused != nil {
				t.Errorf("%v died during the scan and its inode went to a UTS namespace: the scan did not hold it", nsrel.Name{Type: tc.typ, Ino: ino})
				n := m.Lookup(nsrel.TypeUTS, ino)
				if f := foundVia(n, discover.ViaMount); f == nil || f.Path != dst {
					t.Errorf("uts:[%d] bind-mounted on %s: %+v", ino, dst, n)
				}
			}
			if n := m.Lookup(tc.typ, ino); n == nil || foundVia(n, discover.ViaProcess) == nil || foundVia(n, discover.ViaMount) != nil {
				t.Errorf("%v: want found via its process only, got %+v", nsrel.Name{Type: tc.typ, Ino: ino}, n)
			}
			for _, n := range m.Namespaces {
				if n.Owner != nil && n.Owner.Type != nsrel.TypeUser {
					t.Errorf("%v: owner %v is not a user namespace", n.Name(), n.Owner.Name())
				}
				if n.Parent != nil && n.Parent.Type != n.Type {
					t.Errorf("%v: parent %v of another type", n.Name(), n.Parent.Name())
				}
				if n.Type != nsrel.TypeUser && n.Owner == nil {
					t.Errorf("%v: no owner", n.Name())
				}
			}
		})
	}
}

func TestMountTableReaderExits(t *testing.T) {
	// The tasks noted in a mount namespace exit between the process scan
	// and the bind mount scan: the next one is tried, and when none is
	// left, the helper reads the namespace (held here by an fd).
	for _, tc := range []struct {
		name string
		kill int // how many of the two readers exit
	}{{"first", 1}, {"all", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			nstest.RequireRoot(t)
			r1 := nstest.Sleep(t, nil, "-m", "--propagation", "private")
			mnt := nstest.NSPath(r1.Pid, "mnt")
			r2 := nstest.Start(t, nil, nstest.RequireCmd(t, "nsenter"), "--mount="+mnt, nstest.RequireCmd(t, "sleep"), "infinity")
			r2.Pid = nstest.WaitLeaf(t, r2.Pid, "sleep")
			mntIno := nstest.Ino(t, r1.Pid, "mnt")
			if nstest.Ino(t, r2.Pid, "mnt") != mntIno {
				t.Fatal("setup: the readers are in different mount namespaces")
			}
			holdByFD(t, mnt)
			userNS, userIno := heldUserNS(t)
			dst := bindTarget(t)
			nsenterMount(t, mnt, "mount", "--bind", fdPath(userNS), dst)
			userNS.Close()
			readers := []*nstest.Proc{r1, r2}
			if r2.Pid < r1.Pid {
				readers = []*nstest.Proc{r2, r1}
			}
			restore := discover.SetAfterProcesses(func() {
				for _, p := range readers[:tc.kill] {
					killWait(t, p, p.Pid)
				}
			})
			m := discoverT(t, discover.Options{Types: []nsrel.Type{nsrel.TypeUser}, Workers: 1})
			restore()
			wantPID := 0
			if tc.kill < len(readers) {
				wantPID = readers[tc.kill].Pid
			}
			n := m.Lookup(nsrel.TypeUser, userIno)
			if f := foundVia(n, discover.ViaMount); f == nil || f.MountNS != mntIno || f.Path != dst || f.PID != wantPID {
				t.Errorf("user:[%d] bind-mounted on %s in mnt:[%d], read through %d: %+v", userIno, dst, mntIno, wantPID, n)
			}
		})
	}
}

// TestHelperServesManyMountNS: 12 mount namespaces no task is in, each
// held by a descriptor and with a user namespace bind-mounted in it, are
// all read, by one helper process per worker that joins each in turn. A
// helper was started for every one of them (1,000 such namespaces took
// 1.6 s instead of 0.06).
func TestHelperServesManyMountNS(t *testing.T) {
	nstest.RequireRoot(t)
	const n = 12
	var files []*os.File
	want := map[uint64]uint64{} // user namespace -> mount namespace
	for range n {
		p := nstest.Sleep(t, nil, "-m", "--propagation", "private")
		mnt := nstest.NSPath(p.Pid, "mnt")
		f, err := os.Open(mnt)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		userNS, userIno := heldUserNS(t)
		nsenterMount(t, mnt, "mount", "--bind", fdPath(userNS), bindTarget(t))
		userNS.Close()
		want[userIno] = nstest.Ino(t, p.Pid, "mnt")
		killWait(t, p, p.Pid)
	}
	holdFiles(t, files)
	for _, f := range files {
		f.Close()
	}
	before := discover.HelpersStarted()
	m := discoverT(t, discover.Options{Types: []nsrel.Type{nsrel.TypeUser}, Workers: 1})
	if got := discover.HelpersStarted() - before; got != 1 {
		t.Errorf("%d helper processes started for %d mount namespaces and one worker; want 1", got, n)
	}
	for userIno, mntIno := range want {
		if f := foundVia(m.Lookup(nsrel.TypeUser, userIno), discover.ViaMount); f == nil || f.MountNS != mntIno {
			t.Errorf("user:[%d] bind-mounted in mnt:[%d]: %+v", userIno, mntIno, f)
		}
	}
}
