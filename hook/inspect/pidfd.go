package inspect

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/nsrel"
)

// usePidfdIoctls says whether to ask the pidfd for the namespaces
// (PIDFD_GET_USER_NAMESPACE, PIDFD_GET_PID_NAMESPACE: Linux 6.11) before
// opening /proc/PID/ns/*. Tests turn it off to force the fallback.
var usePidfdIoctls = true

// pinnedNamespaces returns the user and PID namespaces of the process
// pidfd pins. With the pidfd ioctls the kernel answers for that very
// process: no /proc path is walked, and a reused PID cannot give another
// process's namespaces. On a kernel without them (ENOTTY, EINVAL) it
// opens /proc/PID/ns/user and /proc/PID/ns/pid instead, which the
// caller's liveness check through the pidfd then confirms. viaPidfd says
// which way was taken.
//
// A process whose thread-group leader exited while its other threads run
// (pthread_exit(3) in main) still runs, but the leader has no namespaces
// left to give: they are asked of a live thread's pidfd instead, and so
// are the credentials (creds: see [pidfdCreds]), which are each
// thread's own: the exited leader's may be another UID's than those of
// the threads that run (a raw setresuid(2) before it exited).
func pinnedNamespaces(pfd, pid int) (user, pidNS *nsrel.Namespace, creds *audit.Creds, viaPidfd bool, err error) {
	if usePidfdIoctls {
		user, pidNS, err = pidfdNamespaces(pfd, pid)
		if err == nil {
			return user, pidNS, pidfdCreds(pfd), true, nil
		}
		if errors.Is(err, ErrGone) && !allExited(pid) {
			user, pidNS, creds, err = threadNamespaces(pid)
			if err == nil {
				return user, pidNS, creds, true, nil
			}
		}
		if !errors.Is(err, errors.ErrUnsupported) {
			return nil, nil, nil, false, err
		}
	}
	base := "/proc/" + strconv.Itoa(pid)
	if user, err = nsrel.Open(base + "/ns/user"); err != nil {
		return nil, nil, nil, false, gone(pid, err)
	}
	if pidNS, err = nsrel.Open(base + "/ns/pid"); err != nil {
		user.Close()
		return nil, nil, nil, false, gone(pid, err)
	}
	return user, pidNS, pidfdCreds(pfd), false, nil
}

// pidfdNamespaces asks the pidfd for the user and PID namespaces.
func pidfdNamespaces(pfd, pid int) (user, pidNS *nsrel.Namespace, err error) {
	user, err = pidfdNamespace(pfd, pid, unix.PIDFD_GET_USER_NAMESPACE, "user")
	if err != nil {
		return nil, nil, err
	}
	pidNS, err = pidfdNamespace(pfd, pid, unix.PIDFD_GET_PID_NAMESPACE, "pid")
	if err != nil {
		user.Close()
		return nil, nil, err
	}
	return user, pidNS, nil
}

// threadNamespaces asks a live thread of process pid, whose main thread
// exited, for its user and PID namespaces and its credentials, through
// a pidfd of that thread ([inLiveThread]: the next thread when one
// exits before it answers; a process can keep one thread at a time
// running, each starting its successor and exiting, and must not be
// taken for exited so: at poststart, nothing is judged of a process
// gone). The pidfd is checked to be of pid's thread group once it is
// pinned (a thread that exited between the listing and the open may
// have left its ID to another process's).
func threadNamespaces(pid int) (user, pidNS *nsrel.Namespace, creds *audit.Creds, err error) {
	err = inLiveThread(pid, func(dir string, tid int) error {
		tfd, err := unix.PidfdOpen(tid, unix.PIDFD_THREAD) // Linux 6.9: a pidfd of one thread
		if err != nil {
			return err
		}
		defer unix.Close(tfd)
		if _, err := os.Stat(dir); err != nil {
			return err
		}
		u, p, err := pidfdNamespaces(tfd, pid)
		if err != nil {
			return err
		}
		c, err := credsOf(tfd)
		if err == unix.ESRCH {
			// That thread exited: the next.
			u.Close()
			p.Close()
			return err
		}
		// (No creds on a kernel without PIDFD_GET_INFO.)
		user, pidNS, creds = u, p, c
		return nil
	})
	return user, pidNS, creds, err
}

// pidfdNamespace asks the pidfd for one namespace. An error matches
// [errors.ErrUnsupported] when the kernel lacks the request, [ErrGone]
// when the process has exited.
func pidfdNamespace(pfd, pid int, req uint, what string) (*nsrel.Namespace, error) {
	fd, err := unix.IoctlRetInt(pfd, req)
	for err == unix.EINTR {
		fd, err = unix.IoctlRetInt(pfd, req)
	}
	switch {
	case err == nil:
		return nsrel.NewNamespace(fd, what+" namespace of pidfd "+strconv.Itoa(pid)), nil
	case err == unix.ENOTTY || err == unix.EINVAL || err == unix.EOPNOTSUPP:
		return nil, fmt.Errorf("inspect: pid %d: %w: %w", pid, errors.ErrUnsupported, os.NewSyscallError("ioctl PIDFD_GET_"+what+"_NAMESPACE", err))
	case err == unix.ESRCH:
		return nil, fmt.Errorf("inspect: pid %d: %w", pid, ErrGone)
	}
	return nil, fmt.Errorf("inspect: pid %d: %w", pid, os.NewSyscallError("ioctl PIDFD_GET_"+what+"_NAMESPACE", err))
}

// pidfdCreds returns the credentials and cgroup of the process pidfd pins
// (PIDFD_GET_INFO, Linux 6.13), or nil on an older kernel or when the
// process has exited (the record then has no creds; the liveness check
// decides about the rest).
func pidfdCreds(pfd int) *audit.Creds {
	c, _ := credsOf(pfd)
	return c
}

// credsOf is pidfdCreds with the ioctl's error (ESRCH: the process or
// thread exited).
func credsOf(pfd int) (*audit.Creds, error) {
	if !usePidfdIoctls {
		return nil, nil
	}
	info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_CREDS | unix.PIDFD_INFO_CGROUPID}
	if err := unix.IoctlPidfdInfo(pfd, &info); err != nil || info.Mask&unix.PIDFD_INFO_CREDS == 0 {
		return nil, err
	}
	c := &audit.Creds{
		UID: info.Ruid, EUID: info.Euid, SUID: info.Suid, FSUID: info.Fsuid,
		GID: info.Rgid, EGID: info.Egid, SGID: info.Sgid, FSGID: info.Fsgid,
	}
	if info.Mask&unix.PIDFD_INFO_CGROUPID != 0 {
		id := info.Cgroupid
		c.CgroupID = &id
	}
	return c, nil
}
