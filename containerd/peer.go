package containerd

import (
	"fmt"
	"net"
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
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) { cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("SO_PEERCRED on %s: %w", path, serr)
	}
	if cred.Pid == 0 {
		return fmt.Errorf("the process serving %s lives in a PID namespace this one cannot see: the container PIDs it sends would name other processes here (run on the host's PID namespace: hostPID: true in a pod)", path)
	}
	// The peer's PID namespace, read while the connection holds it (a
	// peer that exited meanwhile, its PID taken, is not worth a check:
	// the daemon it was is gone).
	var own, peer unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &own); err != nil {
		return fmt.Errorf("the PID namespace of this process: %w", err)
	}
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/pid", cred.Pid), &peer); err != nil {
		return fmt.Errorf("the PID namespace of the process serving %s (pid %d): %w", path, cred.Pid, err)
	}
	if own.Ino != peer.Ino || own.Dev != peer.Dev {
		return fmt.Errorf("the process serving %s (pid %d here) lives in another PID namespace (pid:[%d], this one pid:[%d]): the container PIDs it sends are in its numbering and would name other processes here (run in its PID namespace, or talk to a containerd of this one)", path, cred.Pid, peer.Ino, own.Ino)
	}
	return nil
}
