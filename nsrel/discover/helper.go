package discover

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/nsrel"
)

// helperEnv, set to "1" in the environment of a process running a binary
// that links this package, makes it the mount namespace helper: see
// runHelper.
const helperEnv = "NSREL_DISCOVER_MOUNT_HELPER"

func init() {
	if os.Getenv(helperEnv) == "1" {
		runHelper()
	}
}

// runHelper is the helper process that lets the scan read mount
// namespaces no usable task is in. Its fd 3 is a SOCK_SEQPACKET socket:
// for each message, which carries a mount namespace's descriptor
// (SCM_RIGHTS), it joins that namespace (setns(2) with CLONE_NEWNS, on
// the main thread, after unshare(CLONE_FS), which a multi-threaded
// process needs before each) and answers "ok" or "error ERRNO"; meanwhile the scan
// reads the namespace's mount table and opens its mount points through
// /proc/HELPER, whose root is the namespace's root, and then sends the
// next. It exits when the socket closes. One helper serves a worker's
// whole scan: 1,000 mount namespaces held by descriptors cost one fork
// and exec per worker, not 1,000. It runs in a package initializer, on
// the main thread, before the program's main; it never returns.
func runHelper() {
	send := func(msg string, fds []int) {
		var oob []byte
		if len(fds) > 0 {
			oob = unix.UnixRights(fds...)
		}
		for {
			if _, err := unix.SendmsgN(3, []byte(msg), oob, nil, unix.MSG_NOSIGNAL); err != unix.EINTR {
				return
			}
		}
	}
	reply := func(msg string) { send(msg, nil) }
	buf := make([]byte, 8<<10) // a sockRequest of sockBatch lines
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(3, buf, oob, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 && oobn == 0 {
			os.Exit(0)
		}
		if n > 0 && buf[0] == sockRequest {
			helperSockets(buf[1:n], send)
			continue
		}
		fd := -1
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) == 1 {
			if fds, err := unix.ParseUnixRights(&msgs[0]); err == nil && len(fds) == 1 {
				fd = fds[0]
			}
		}
		if fd < 0 {
			reply("error " + strconv.Itoa(int(unix.EBADF)))
			continue
		}
		// Before each join: a thread the runtime started since (the
		// garbage collector's) shares this one's filesystem state, and
		// setns(CLONE_NEWNS) refuses a shared one (EINVAL). The runtime
		// can start one from this thread between the two calls too: a
		// refusal is tried again, a few times (2 in 60 runs of 20,000
		// joins failed so once).
		for range joinTries {
			err = unix.Unshare(unix.CLONE_FS)
			if err == nil {
				err = unix.Setns(fd, unix.CLONE_NEWNS)
			}
			if err != unix.EINVAL {
				break
			}
		}
		unix.Close(fd)
		if err != nil {
			errno, _ := err.(unix.Errno)
			reply("error " + strconv.Itoa(int(errno)))
			continue
		}
		reply("ok")
	}
}

// joinTries is how often the helper tries unshare and setns when setns
// says EINVAL (see runHelper).
const joinTries = 8

// helpersStarted counts the mount namespace helper processes started
// (for tests; socket helpers, see sockhelper.go, are not counted).
var helpersStarted atomic.Int64

// mountHelper is a worker's helper process (see runHelper) and its end
// of the socket.
type mountHelper struct {
	cmd  *exec.Cmd
	sock int
	// pid is the helper's PID as the scan's /proc numbers it (see
	// procPID).
	pid int
}

// startHelper starts a helper process: this binary again
// (/proc/self/exe), with helperEnv set. It costs a fork and exec, about
// as much as starting the binary, once per worker that meets a mount
// namespace without a usable task. procfd is the scan's /proc; env is
// added to its environment (for tests).
func startHelper(procfd int, env ...string) (*mountHelper, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	theirs := os.NewFile(uintptr(fds[1]), "helper-socket")
	defer theirs.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"nsrel-mount-helper"}
	cmd.Env = append([]string{helperEnv + "=1"}, env...)
	cmd.ExtraFiles = []*os.File{theirs}
	if err := cmd.Start(); err != nil {
		unix.Close(fds[0])
		return nil, err
	}
	return &mountHelper{cmd: cmd, sock: fds[0], pid: procPID(procfd, cmd.Process.Pid)}, nil
}

// procPID returns the PID of this process's child pid as the /proc open
// as procfd numbers it: the "Pid:" of a pidfd's fdinfo there (Linux 5.4)
// is the PID in that /proc's PID namespace, which is an ancestor of this
// process's when it runs in a child PID namespace with the host's /proc
// (unshare -p -f). pid itself if that cannot be read.
func procPID(procfd, pid int) int {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return pid
	}
	defer unix.Close(pfd)
	data, err := readAt(procfd, "thread-self/fdinfo/"+strconv.Itoa(pfd))
	if err != nil {
		return pid
	}
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		if v, ok := strings.CutPrefix(string(line), "Pid:"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
				return n
			}
		}
	}
	return pid
}

// join has the helper join the mount namespace open as fd.
func (h *mountHelper) join(fd int) error {
	var err error
	for {
		if err = unix.Sendmsg(h.sock, []byte("j"), unix.UnixRights(fd), nil, unix.MSG_NOSIGNAL); err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return err
	}
	buf := make([]byte, 32)
	n := 0
	for {
		if n, err = unix.Read(h.sock, buf); err != unix.EINTR {
			break
		}
	}
	switch line := string(buf[:max(n, 0)]); {
	case err != nil:
		return err
	case line == "ok":
		return nil
	case n == 0:
		return unix.ECHILD // the helper is gone
	default:
		if errno, err := strconv.Atoi(strings.TrimPrefix(line, "error ")); err == nil {
			return unix.Errno(errno)
		}
		return unix.ECHILD
	}
}

// close ends the helper.
func (h *mountHelper) close() {
	unix.Close(h.sock)
	h.cmd.Process.Kill()
	h.cmd.Wait()
}

// mountsByHelper reads the nsfs bind mounts of the mount namespace of nd
// through the worker's helper process, which joins it (started at the
// first such namespace, and again if it died). It happens only for mount
// namespaces without a usable task: held by an fd or a bind mount only,
// or all of whose tasks are chrooted or gone. A loose node is opened
// again from where it was found (see reopenLoose).
func (w *worker) mountsByHelper(nd *node) error {
	nsfd := nd.fd
	if nd.loose {
		fd, err := w.reopenLoose(nd)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		nsfd = fd
	}
	var first error
	for range 2 {
		if w.helper == nil {
			h, err := startHelper(w.s.procfd)
			if err != nil {
				return err
			}
			helpersStarted.Add(1)
			w.helper = h
		}
		err := w.helper.join(nsfd)
		if err != nil && !isPerm(err) {
			w.closeHelper() // gone or unusable: try once with another
			if first == nil {
				first = fmt.Errorf("mount namespace helper: %w", err)
			}
			continue
		}
		if err != nil {
			return err
		}
		return w.mountsOf(nd.ns.Ino, task{pid: w.helper.pid}, 0)
	}
	return first // the namespace's mounts are not read
}

// closeHelper ends the worker's helper process, if any.
func (w *worker) closeHelper() {
	if w.helper != nil {
		w.helper.close()
		w.helper = nil
	}
}

// errGone says that no reference that found a loose node's namespace
// opens it any longer.
var errGone = errors.New("the namespace could not be opened again where it was found")

// reopenLoose opens the namespace of the loose node nd (see node) again
// through the references that found it: a process's or thread's link, an
// fd, or a bind mount (resolved from the dentry cache only, so that no
// FUSE server is asked). The namespace opened must have the node's ID.
func (w *worker) reopenLoose(nd *node) (int, error) {
	w.s.mu.Lock()
	found := slices.Clone(nd.ns.FoundVia)
	w.s.mu.Unlock()
	k := nd.ns.Key()
	for _, f := range found {
		var pfd int
		var err error
		switch f.Via {
		case ViaProcess, ViaTask, ViaFD:
			rel := strconv.Itoa(f.PID) + "/"
			if f.TID != 0 {
				rel += "task/" + strconv.Itoa(f.TID) + "/"
			}
			if f.Via == ViaFD {
				rel = strings.TrimPrefix(f.Path, "/proc/")
			} else {
				rel += pathMnt
			}
			pfd, err = unix.Openat(w.s.procfd, rel, unix.O_PATH|unix.O_CLOEXEC, 0)
		case ViaMount:
			if f.PID == 0 {
				continue
			}
			root, rerr := unix.Openat(w.s.procfd, strconv.Itoa(f.PID)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if rerr != nil {
				w.s.short(rerr)
				continue
			}
			pfd, err = openMountPoint(root, f.Path, true)
			unix.Close(root)
		default:
			continue
		}
		if err != nil {
			w.s.short(err)
			continue
		}
		fd, err := reopenNS(w.s.procfd, pfd, k)
		unix.Close(pfd)
		if err != nil {
			w.s.short(err)
			continue
		}
		if id, err := nsrel.ID(nsrel.FD(fd)); err == nil && id == nd.ns.NSID {
			return fd, nil
		}
		unix.Close(fd)
	}
	return -1, errGone
}
