package containerd

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CheckPeerPIDNamespace connects to the unix socket at path and checks
// that the process serving it (containerd) lives in the caller's PID
// namespace. The PIDs the runtime reports (containers' processes) are in
// its numbering: a caller that cannot see the runtime (a pod without
// hostPID: SO_PEERCRED gives the peer's PID as the caller's namespace
// numbers it, 0 when the peer lives outside it), or sees it in a child
// PID namespace (a containerd in a container, such as a kind node, seen
// from the host: a PID here, its own numbering there), would take other
// processes for the containers', or none.
func CheckPeerPIDNamespace(path string) error {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = CheckPeerConn(c.(*net.UnixConn), path)
	return err
}

// CheckPeerConn is [CheckPeerPIDNamespace] on a connection the caller
// opened to the socket at path; it returns the PID of the process
// serving it (SO_PEERCRED).
func CheckPeerConn(c *net.UnixConn, path string) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) { cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("SO_PEERCRED on %s: %w", path, serr)
	}
	if cred.Pid == 0 {
		return 0, fmt.Errorf("the process serving %s lives in a PID namespace this one cannot see: the container PIDs it sends would name other processes here (run on the host's PID namespace: hostPID: true in a pod)", path)
	}
	// /proc must number processes as this PID namespace does, which
	// SO_PEERCRED's PID is in (not so with a parent's /proc in a child
	// PID namespace: unshare --pid without --mount-proc).
	self, err := os.Readlink("/proc/self")
	if err != nil {
		return 0, fmt.Errorf("the PIDs the process serving %s sends cannot be checked: %w", path, err)
	}
	if self != strconv.Itoa(os.Getpid()) {
		return 0, fmt.Errorf("/proc is not of this process's PID namespace (this process is pid %d, /proc/self is %q): the PIDs the process serving %s sends cannot be checked (mount a /proc of this PID namespace)", os.Getpid(), self, path)
	}
	// The peer is visible here, so it lives in this PID namespace or
	// below: below, its NSpid line (its PID in each namespace from the
	// one /proc belongs to down to its own) is longer than this
	// process's. (status needs no ptrace access, unlike ns/pid: the
	// NRI plugin without CAP_SYS_PTRACE must still say what it lacks.)
	own, err := nspidDepth("self")
	if err != nil {
		return 0, err
	}
	peer, err := nspidDepth(strconv.Itoa(int(cred.Pid)))
	if err != nil {
		return 0, fmt.Errorf("the process serving %s (pid %d): %w", path, cred.Pid, err)
	}
	if peer != own {
		return 0, fmt.Errorf("the process serving %s (pid %d here) lives in a PID namespace below this one: the container PIDs it sends are in its numbering and would name other processes here (run in its PID namespace, or talk to a containerd of this one)", path, cred.Pid)
	}
	return int(cred.Pid), nil
}

// nspidDepth returns how many PID namespaces the process pid ("self")
// has a PID in, from the one /proc belongs to down to its own.
func nspidDepth(pid string) (int, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			return len(strings.Fields(rest)), nil
		}
	}
	return 0, fmt.Errorf("/proc/%s/status has no NSpid line", pid)
}
