package containerd

import (
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// CheckPeerPIDNamespace connects to the unix socket at path and checks
// that the process serving it (containerd) is one the caller can see in
// its PID namespace: SO_PEERCRED gives the peer's PID as the caller's
// namespace numbers it, 0 when the peer lives outside it. The PIDs the
// runtime reports (containers' processes) are in its numbering; a caller
// that cannot see the runtime (a pod without hostPID) would pin other
// processes under those numbers, or none.
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
	return nil
}
