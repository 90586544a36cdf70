package inspect

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

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

// maxThreadTries bounds the threads asked in turn for what a process
// whose main thread exited cannot give itself, when each exits before
// it answers.
const maxThreadTries = 1000

// threadNamespaces asks a live thread of process pid, whose main thread
// exited, for its user and PID namespaces and its credentials. A thread
// that exits before it answers leaves the question to the next: a
// process can keep one thread at a time running, each starting its
// successor and exiting (one pass over them found none alive a quarter
// of the time), and must not be taken for exited so (at poststart,
// nothing is judged of a process gone). ErrGone only when the whole
// process exited; an error that is not ErrGone after maxThreadTries, or
// maxThreadWait.
func threadNamespaces(pid int) (user, pidNS *nsrel.Namespace, creds *audit.Creds, err error) {
	var last error
	exits := exitedThreads{deadline: time.Now().Add(maxThreadWait)}
	for try := 0; try < maxThreadTries && time.Now().Before(exits.deadline); try++ {
		tfd, tid, zombies, err := liveThreadPidfd(&exits, pid)
		if exits.gone(pid, zombies) {
			if err == nil {
				unix.Close(tfd)
			}
			return nil, nil, nil, fmt.Errorf("inspect: pid %d: %w", pid, ErrGone)
		}
		if err != nil {
			last = err
			continue
		}
		user, pidNS, err = pidfdNamespaces(tfd, pid)
		if err == nil {
			creds, err = credsOf(tfd)
			if err == unix.ESRCH {
				user.Close()
				pidNS.Close()
				err = ErrGone // that thread exited: the next
			} else {
				err = nil // no creds on a kernel without PIDFD_GET_INFO
			}
		}
		unix.Close(tfd)
		if err == nil {
			return user, pidNS, creds, nil
		}
		if !errors.Is(err, ErrGone) && (errors.Is(err, errors.ErrUnsupported) || !threadExiting(err) || errors.Is(err, unix.EACCES) && threadRuns(pid, tid)) {
			return nil, nil, nil, err
		}
		last = err
	}
	return nil, nil, nil, fmt.Errorf("inspect: pid %d: its main thread exited, and each of its other threads exited before it told its namespaces (%v)", pid, last)
}

// liveThreadPidfd returns a pidfd of a thread of process pid other than
// its leader that has not exited ([exitedThreads.liveThread]), checked to be of pid's
// thread group once it is pinned (a thread that exited between the
// listing and the open may have left its ID to another process's).
func liveThreadPidfd(exits *exitedThreads, pid int) (fd, tid int, zombies []int, err error) {
	tid, zombies, err = exits.liveThread(pid)
	if err != nil {
		return -1, 0, zombies, err
	}
	fd, err = unix.PidfdOpen(tid, unix.PIDFD_THREAD) // Linux 6.9: a pidfd of one thread
	if err != nil {
		return -1, 0, nil, err
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid)); err != nil {
		unix.Close(fd)
		return -1, 0, nil, err
	}
	return fd, tid, nil, nil
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
