package discover_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
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

// TestSocketOfOtherNetClsCgroupUnchanged: copying a socket with
// pidfd_getfd(2) gives it the copier's net_cls class ID (and net_prio
// index). A process in a net_cls cgroup with a class ID of its own holds
// the only socket of a network namespace: the scan leaves the socket
// alone (its class ID, as sock_diag reports it, is unchanged) and counts
// it in the notice. Moved to the scan's own net_cls cgroup, the process's
// socket is asked and its namespace found, the class ID again unchanged.
// The test mounts the net_cls hierarchy (binding it to one if none is)
// on a temporary directory and removes its cgroup and the mount when it
// ends.
func TestSocketOfOtherNetClsCgroupUnchanged(t *testing.T) {
	nstest.RequireRoot(t)
	cgroups, err := os.ReadFile("/proc/cgroups")
	nstest.Require(t, err == nil && strings.Contains(string(cgroups), "\nnet_cls\t"), "needs the net_cls cgroup controller (CONFIG_CGROUP_NET_CLASSID): /proc/cgroups %v", err)
	dir := mountNetCls(t, string(cgroups))
	ownPath := netClsPath(t, "/proc/self/cgroup")
	if ownPath == "" {
		t.Fatalf("setup: no net_cls line in /proc/self/cgroup with the hierarchy mounted")
	}
	own := filepath.Join(dir, ownPath)
	const classID = 0x100001 // 10:1
	child := filepath.Join(dir, "nsrel-test-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(child, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Its processes are killed and reaped before (cleanups run last
		// first); a bounded wait for the kernel to let go of them.
		var err error
		for range 200 {
			if err = unix.Rmdir(child); err != unix.EBUSY {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("rmdir %s: %v", child, err)
		}
	})
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

	m := discoverT(t, discover.Options{Types: []nsrel.Type{nsrel.TypeUser}})
	if got := sockClassID(t, netns, sockIno); got != classID {
		t.Errorf("the scan changed the class ID of socket:[%d] of process %d in another net_cls cgroup: %#x, was %#x", sockIno, pid, got, classID)
	}
	if n := m.Lookup(nsrel.TypeNet, netIno); foundVia(n, discover.ViaSocket) != nil {
		t.Errorf("net:[%d] found through the socket of a process in another net_cls cgroup: %+v", netIno, n.FoundVia)
	}
	if m.SkippedSockets < 1 || !strings.Contains(m.Notice(), "sockets for their network namespaces") && !strings.Contains(m.Notice(), "socket for its network namespace") {
		t.Errorf("SkippedSockets %d, notice %q: want the skipped socket said", m.SkippedSockets, m.Notice())
	}

	// In the scan's own cgroup, the socket is asked.
	if err := os.WriteFile(filepath.Join(own, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Fatal(err)
	}
	before := sockClassID(t, netns, sockIno)
	m = discoverT(t, discover.Options{Types: []nsrel.Type{nsrel.TypeUser}})
	want := fmt.Sprintf("/proc/%d/fd/%s", pid, kv["fd"])
	if f := foundVia(m.Lookup(nsrel.TypeNet, netIno), discover.ViaSocket); f == nil || f.PID != pid || f.Path != want {
		t.Errorf("net:[%d] of the socket %s of a process in the scan's net_cls cgroup: found via socket %+v", netIno, want, f)
	}
	if got := sockClassID(t, netns, sockIno); got != before {
		t.Errorf("class ID of socket:[%d] in the scan's own cgroup: %#x, was %#x", sockIno, got, before)
	}
}

// mountNetCls mounts the cgroup v1 hierarchy of net_cls (with the
// controllers bound with it, per cgroups, the text of /proc/cgroups) on
// a temporary directory, unmounted when the test ends, and returns it.
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
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("umount %s: %v", dir, err)
		}
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
