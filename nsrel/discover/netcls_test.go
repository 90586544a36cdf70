package discover_test

import (
	"encoding/binary"
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

// TestNetClsSocketsUnchanged: copying a socket with pidfd_getfd(2) gives
// it the copier's net_cls class ID (and net_prio index), for every holder
// of it. A process in a net_cls cgroup with a class ID of its own holds
// the only socket of a network namespace: the scan copies no socket (its
// class ID, as sock_diag reports it, is unchanged) and counts the
// sockets in the notice. The same socket shared with a process in the
// root cgroup, the scan's (the review's reproduction: the old check let
// that holder's copy reset it): unchanged. Under a /proc mounted with
// subset=pid (no /proc/cgroups), with net_cls bound: no socket copied.
// The child cgroup removed, its process having exited there (only the
// root left): the socket keeps the removed cgroup's class, and no
// socket is copied either. (With net_cls unbound, the namespace is
// found through the socket: TestNetworkNamespaceHeldBySocket.) The
// test mounts the net_cls hierarchy (binding it to one if none is) on a
// temporary directory; it removes its cgroup and the mount when it ends,
// and, if it bound net_cls, waits until the kernel has let go of it.
func TestNetClsSocketsUnchanged(t *testing.T) {
	nstest.RequireRoot(t)
	cgroups, err := os.ReadFile("/proc/cgroups")
	nstest.Require(t, err == nil && strings.Contains(string(cgroups), "\nnet_cls\t"), "needs the net_cls cgroup controller (CONFIG_CGROUP_NET_CLASSID): /proc/cgroups %v", err)
	dir := mountNetCls(t, string(cgroups))
	if _, n := netClsState(t); n != 1 {
		// Cgroups of others: the scan would copy no socket in any case.
		nstest.Require(t, false, "net_cls has %d cgroups, not only its root", n)
	}
	root := filepath.Join(dir, netClsPath(t, "/proc/self/cgroup"))
	if root != dir {
		t.Fatalf("setup: this process is in net_cls cgroup %s, not the root", root)
	}
	const classID = 0x100001 // 10:1
	child := filepath.Join(dir, "nsrel-test-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(child, 0o755); err != nil {
		t.Fatal(err)
	}
	removed := false
	rmChild := func() {
		// Its processes are killed and reaped, or moved, before; a
		// bounded wait for the kernel to let go of them.
		if removed {
			return
		}
		removed = true
		var err error
		for range 1000 {
			if err = unix.Rmdir(child); err != unix.EBUSY {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("rmdir %s: %v", child, err)
		}
	}
	t.Cleanup(rmChild)
	if err := os.WriteFile(filepath.Join(child, "net_cls.classid"), []byte(strconv.Itoa(classID)), 0); err != nil {
		t.Fatal(err)
	}

	creator := nstest.Sleep(t, nil, "-Un")
	netns, err := os.Open(nstest.NSPath(creator.Pid, "net"))
	if err != nil {
		t.Fatal(err)
	}
	defer netns.Close() // this process's fds are not scanned
	cmd, kv := startSituation(t, "socket", nil, nil, "NET="+nstest.NSPath(creator.Pid, "net"), "BIND=1")
	killWait(t, creator, creator.Pid)
	pid := cmd.Process.Pid
	netIno := uint64(atoi(t, kv["net"]))
	sockIno := sockInode(t, pid, kv["fd"])
	// Moving a process moves its sockets into the cgroup's class.
	if err := os.WriteFile(filepath.Join(child, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Fatal(err)
	}
	if got := sockClassID(t, netns, sockIno); got != classID {
		t.Fatalf("setup: class ID of socket:[%d] %#x after moving its process, want %#x", sockIno, got, classID)
	}

	// scan scans and checks that the socket was not copied.
	scan := func(what string) {
		t.Helper()
		m := discoverT(t, discover.Options{Types: []nsrel.Type{nsrel.TypeUser}})
		if got := sockClassID(t, netns, sockIno); got != classID {
			t.Errorf("%s: the scan changed the class ID of socket:[%d]: %#x, was %#x", what, sockIno, got, classID)
		}
		if n := m.Lookup(nsrel.TypeNet, netIno); foundVia(n, discover.ViaSocket) != nil {
			t.Errorf("%s: net:[%d] found through a socket with net_cls cgroups in use: %+v", what, netIno, n.FoundVia)
		}
		const why = "net_cls or net_prio cgroups (cgroup v1) are in use, and copying a socket (pidfd_getfd) could change its class ID or priority"
		if m.SkippedSockets < 1 || m.SkippedWhy != why || !strings.Contains(m.Notice(), fmt.Sprintf("did not ask %d socket", m.SkippedSockets)) || !strings.HasSuffix(m.Notice(), "(which may be missing): "+why) {
			t.Errorf("%s: SkippedSockets %d, notice %q: want every socket (this one and the system's) counted and said", what, m.SkippedSockets, m.Notice())
		}
	}
	scan("the only holder in a child cgroup")

	// The same socket also held by a process in the root cgroup.
	sock := pidfdGetfd(t, pid, atoi(t, kv["fd"])) // all in one class: a copy changes nothing yet
	sleep := nstest.RequireCmd(t, "sleep")
	holder := exec.Command(sleep, "infinity")
	holder.ExtraFiles = []*os.File{sock}
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-holder.Process.Pid, syscall.SIGKILL); holder.Wait() })
	sock.Close()
	// The copy gave the socket this process's class ID: moved out and
	// back, the process gives it the child's again.
	for _, cg := range []string{root, child} {
		if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			t.Fatal(err)
		}
	}
	if got := sockClassID(t, netns, sockIno); got != classID {
		t.Fatalf("setup: class ID of socket:[%d] %#x, want %#x", sockIno, got, classID)
	}
	scan("shared with a process in the root cgroup")

	// Under subset=pid: no /proc/cgroups; its own cgroups say net_cls
	// is bound.
	if sub := discoverSubsetPID(t); sub.skipped < 1 || !strings.HasPrefix(sub.why, "net_cls or net_prio cgroups (cgroup v1) are in use") || sub.nets[netIno] {
		t.Errorf("/proc with subset=pid: %+v, want every socket skipped as net_cls is in use, net:[%d] not found", sub, netIno)
	}
	if got := sockClassID(t, netns, sockIno); got != classID {
		t.Errorf("subset=pid: the scan changed the class ID of socket:[%d]: %#x, was %#x", sockIno, got, classID)
	}

	// The process in the child cgroup exits there and the cgroup is
	// removed: only the root cgroup is left, and the socket, held by
	// the process in the root cgroup, keeps the removed cgroup's class
	// (the second review's reproduction: the check that counted the
	// hierarchy's cgroups let the copy reset it to 0).
	syscall.Kill(-pid, syscall.SIGKILL)
	cmd.Wait()
	rmChild()
	waitNetClsCgroups(t, 1)
	if got := sockClassID(t, netns, sockIno); got != classID {
		t.Fatalf("setup: class ID of socket:[%d] %#x after its cgroup went, want %#x", sockIno, got, classID)
	}
	scan("only the root cgroup left, the socket of a removed cgroup's class")
}

// pidfdGetfd returns a copy of the fd num of process pid.
func pidfdGetfd(t *testing.T, pid, num int) *os.File {
	t.Helper()
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pfd)
	fd, err := unix.PidfdGetfd(pfd, num, 0)
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), "socket")
}

// subsetResult is what a scan under a /proc mounted with subset=pid
// found (see situationSubsetPID).
type subsetResult struct {
	skipped int
	why     string
	nets    map[uint64]bool // network namespaces found through sockets
}

// discoverSubsetPID scans in a child of its own mount namespace whose
// /proc is mounted with subset=pid.
func discoverSubsetPID(t *testing.T) subsetResult {
	t.Helper()
	cmd, kv := startSituation(t, "subsetpid", &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}, nil)
	defer func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }()
	why, err := url.QueryUnescape(kv["why"])
	if err != nil {
		t.Fatal(err)
	}
	r := subsetResult{skipped: atoi(t, kv["skipped"]), why: why, nets: make(map[uint64]bool)}
	for s := range strings.SplitSeq(kv["socknets"], ",") {
		if s != "" {
			r.nets[uint64(atoi(t, s))] = true
		}
	}
	return r
}

// netClsState returns net_cls's hierarchy ID and number of cgroups, as
// /proc/cgroups says them.
func netClsState(t *testing.T) (hier, n int) {
	t.Helper()
	data, err := os.ReadFile("/proc/cgroups")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "net_cls" {
			return atoi(t, f[1]), atoi(t, f[2])
		}
	}
	t.Fatal("no net_cls in /proc/cgroups")
	return 0, 0
}

// waitNetClsCgroups waits (bounded, 10 s) until net_cls's hierarchy has n
// cgroups: a removed one counts until the kernel releases it.
func waitNetClsCgroups(t *testing.T, n int) {
	t.Helper()
	got := 0
	for range 1000 {
		if _, got = netClsState(t); got == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("net_cls has %d cgroups after 10 s, want %d", got, n)
}

// mountNetCls mounts the cgroup v1 hierarchy of net_cls (with the
// controllers bound with it, per cgroups, the text of /proc/cgroups) on
// a temporary directory, unmounted when the test ends, and returns it.
// If that bound net_cls (its hierarchy ID was 0), the cleanup waits
// until the cgroups removed before are released, as a hierarchy
// unmounted with a cgroup still dying stays bound to net_cls until
// reboot, then unmounts it and waits until net_cls is unbound; the test
// fails if it is not (bounded, 10 s each).
func mountNetCls(t *testing.T, cgroups string) string {
	t.Helper()
	hier := ""
	for line := range strings.Lines(cgroups) {
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "net_cls" {
			hier = f[1]
		}
	}
	opts := []string{"net_cls"}
	if hier != "0" {
		opts = nil
		for line := range strings.Lines(cgroups) {
			if f := strings.Fields(line); len(f) >= 4 && f[1] == hier {
				opts = append(opts, f[0])
			}
		}
	}
	dir := t.TempDir()
	if err := unix.Mount("nsrel-test", dir, "cgroup", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, strings.Join(opts, ",")); err != nil {
		nstest.Require(t, false, "cannot mount the cgroup v1 hierarchy %s: %v", strings.Join(opts, ","), err)
	}
	t.Cleanup(func() {
		if hier != "0" {
			if err := unix.Unmount(dir, 0); err != nil {
				t.Errorf("umount %s: %v", dir, err)
			}
			return
		}
		released := false
		for range 1000 {
			if _, n := netClsState(t); n == 1 {
				released = true
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !released {
			t.Errorf("net_cls cgroups removed by the test not released after 10 s: unmounting binds net_cls until reboot")
		}
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("umount %s: %v", dir, err)
			return
		}
		for range 1000 {
			if h, _ := netClsState(t); h == 0 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		h, n := netClsState(t)
		t.Errorf("net_cls still bound to hierarchy %d (%d cgroups) 10 s after the test unmounted it", h, n)
	})
	return dir
}

// netClsPath returns the net_cls cgroup that the cgroup file at path
// names, "" if none.
func netClsPath(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		f := strings.SplitN(strings.TrimSuffix(line, "\n"), ":", 3)
		if len(f) == 3 && f[0] != "0" && strings.Contains(","+f[1]+",", ",net_cls,") {
			return f[2]
		}
	}
	return ""
}

// sockInode reads the inode of the socket at fd of pid from its link.
func sockInode(t *testing.T, pid int, fd string) uint64 {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd))
	if err != nil {
		t.Fatal(err)
	}
	var ino uint64
	if _, err := fmt.Sscanf(l, "socket:[%d]", &ino); err != nil {
		t.Fatalf("fd %s of %d: %q: %v", fd, pid, l, err)
	}
	return ino
}

// sockClassID asks sock_diag (NETLINK_SOCK_DIAG) in the network namespace
// open as netns for the class ID of the bound UDP socket with inode ino:
// INET_DIAG_CLASS_ID, which the kernel sends with INET_DIAG_TCLASS asked
// for (idiag_ext has 8 bits, the class ID's is the 17th), and which is
// the socket's priority (0 here) when its class ID is 0.
func sockClassID(t *testing.T, netns *os.File, ino uint64) uint32 {
	t.Helper()
	fd := diagSocket(t, netns)
	defer unix.Close(fd)
	const (
		inetDiagTclass  = 6
		inetDiagClassID = 17
		reqLen          = unix.NLMSG_HDRLEN + 56 // struct inet_diag_req_v2
		msgLen          = 72                     // struct inet_diag_msg
	)
	req := make([]byte, reqLen)
	binary.NativeEndian.PutUint32(req[0:], reqLen)
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], 1)
	r := req[unix.NLMSG_HDRLEN:]
	r[0], r[1], r[2] = unix.AF_INET, unix.IPPROTO_UDP, 1<<(inetDiagTclass-1)
	binary.NativeEndian.PutUint32(r[4:], ^uint32(0)) // every state
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		t.Fatalf("sock_diag request: %v", err)
	}
	buf := make([]byte, 1<<16)
	found, classID := false, uint32(0)
	for range 10000 { // bounded: the dump ends with NLMSG_DONE
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatalf("sock_diag: %v", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			t.Fatalf("sock_diag: %v", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				if !found {
					t.Fatalf("sock_diag lists no UDP socket:[%d]", ino)
				}
				return classID
			case unix.NLMSG_ERROR:
				t.Fatalf("sock_diag: error %d", int32(binary.NativeEndian.Uint32(m.Data)))
			}
			if len(m.Data) < msgLen || uint64(binary.NativeEndian.Uint32(m.Data[68:])) != ino {
				continue
			}
			found = true
			// Attributes: struct rtattr (length, type), value, padded
			// to 4 bytes.
			for a := m.Data[msgLen:]; len(a) >= 4; {
				l := int(binary.NativeEndian.Uint16(a))
				if l < 4 || l > len(a) {
					t.Fatalf("sock_diag: attribute of %d bytes in %d", l, len(a))
				}
				if binary.NativeEndian.Uint16(a[2:]) == inetDiagClassID && l >= 8 {
					classID = binary.NativeEndian.Uint32(a[4:])
				}
				a = a[min((l+3)&^3, len(a)):]
			}
		}
	}
	t.Fatal("sock_diag: no end of the dump")
	return 0
}

// diagSocket opens a NETLINK_SOCK_DIAG socket in the network namespace
// open as netns: created on a thread that joins the namespace and
// returns, the socket stays in it.
func diagSocket(t *testing.T, netns *os.File) int {
	t.Helper()
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result)
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{-1, err}
			return // the thread, maybe changed, ends with the goroutine
		}
		defer unix.Close(self)
		if err := unix.Setns(int(netns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{-1, err}
			return
		}
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
		if berr := unix.Setns(self, unix.CLONE_NEWNET); berr != nil {
			ch <- result{fd, errors.Join(err, berr)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{fd, err}
	}()
	r := <-ch
	if r.err != nil {
		if r.fd >= 0 {
			unix.Close(r.fd)
		}
		t.Fatalf("NETLINK_SOCK_DIAG socket in net:[...]: %v", r.err)
	}
	return r.fd
}
