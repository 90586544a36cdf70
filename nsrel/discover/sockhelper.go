package discover

import (
	"bytes"
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/nsrel"
)

// A socket is asked for its network namespace through a copy of its
// descriptor (pidfd_getfd(2)), and the copy is closed. The descriptor may
// have been replaced since its link was read: the copy is then another
// file, and closing a file of a FUSE file system sends the server a
// FLUSH request, which the kernel waits for uninterruptibly, even with
// SIGKILL pending. Any user who may mount FUSE (Debian's /dev/fuse is
// 0666; a user namespace of their own is enough) could swap a file of
// their server onto a socket's descriptor, in a loop, and hang root's
// scan for good: the process could not even exit (exit closes it too).
//
// So the copies are taken, checked, asked and closed in a helper process
// (this binary again, as the mount namespace helper), after the process
// scan, all sockets in a few messages: the helper answers each socket
// before it closes its copy, and a close that does not return within
// sockCloseWait leaves that helper given up (it strands only itself) and
// the rest to another. A scan gives up at most maxSockHelpersLost
// helpers, then asks no more sockets and counts those it did not ask
// ([Model.SkippedSockets]). A socket is found by its inode, which no
// other live socket has: a copy of another file, or of another socket,
// is not asked.

// maxSockHelpersLost is how many socket helpers a scan gives up (a close
// that did not return) before it asks no more sockets.
var maxSockHelpersLost int64 = 4 // a variable for the tests

// sockCloseWait is how long the scan waits for the helper's next answer
// (a close of a copy that was not the socket comes before it).
var sockCloseWait = 2 * time.Second // a variable for the tests

// sockBatch is how many sockets one request to the helper asks.
const sockBatch = 64

// sockRequest is the first byte of a message to the helper asking for
// sockets' network namespaces: lines "PID TID FD INO" follow (TID 0: the
// process). (A message starting otherwise asks it to join a mount
// namespace, see runHelper.)
const sockRequest = 'g'

// pendingSock is a socket met at descriptor num (path "fd/N") of cur.
type pendingSock struct {
	cur  task
	num  int
	ino  uint64
	path string
}

// helperSockets answers a sockRequest in the helper process (req is the
// message after its first byte): one message per line, in order: "ok"
// with the network namespace's descriptor, "other" (the descriptor is
// another file now), or "error ERRNO".
func helperSockets(req []byte, send func(msg string, fd int)) {
	buf := make([]byte, 64)
	for line := range bytes.Lines(req) {
		f := strings.Fields(string(line))
		var v [4]uint64
		ok := len(f) == 4
		for i := 0; ok && i < 4; i++ {
			var err error
			v[i], err = strconv.ParseUint(f[i], 10, 64)
			ok = err == nil && (i == 3 || v[i] < 1<<31)
		}
		if !ok {
			send("error "+strconv.Itoa(int(unix.EINVAL)), -1)
			continue
		}
		var pidfd int
		var err error
		if v[1] != 0 {
			pidfd, err = unix.PidfdOpen(int(v[1]), unix.PIDFD_THREAD) // Linux 6.9: a pidfd of one thread
		} else {
			pidfd, err = unix.PidfdOpen(int(v[0]), 0)
		}
		var sfd int
		if err == nil {
			sfd, err = unix.PidfdGetfd(pidfd, int(v[2]), 0)
			unix.Close(pidfd)
		}
		if err != nil {
			errno, _ := err.(unix.Errno)
			send("error "+strconv.Itoa(int(errno)), -1)
			continue
		}
		// The link names the file from the dentry cache alone, asking no
		// file system: "socket:[INO]" for a socket, a path starting "/"
		// for a file, so no file passes for the socket.
		n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(sfd), buf)
		if err != nil || string(buf[:n]) != "socket:["+f[3]+"]" {
			// Answered first: the close may never return (a FUSE file).
			send("other", -1)
			unix.Close(sfd)
			continue
		}
		nfd, err := unix.IoctlRetInt(sfd, unix.SIOCGSKNS)
		unix.Close(sfd)
		if err != nil {
			errno, _ := err.(unix.Errno)
			send("error "+strconv.Itoa(int(errno)), -1)
			continue
		}
		send("ok", nfd)
		unix.Close(nfd)
	}
}

// errHelperStuck says that the helper did not answer within sockCloseWait.
var errHelperStuck = errors.New("the socket helper did not answer in time")

// askSockets asks the sockets the workers met (each once) for their
// network namespaces, through helper processes, and records those a
// process's link did not find.
func (s *scanner) askSockets(ws []*worker) {
	known := make(map[Key]bool)
	seen := make(map[uint64]bool)
	var all []pendingSock
	for _, w := range ws {
		for k, nd := range w.known {
			if nd.ns.Type == nsrel.TypeNet {
				known[k] = true
			}
		}
		for _, p := range w.pendSocks {
			if !seen[p.ino] {
				seen[p.ino] = true
				all = append(all, p)
			}
		}
		w.pendSocks = nil
	}
	// In PID order: the process a socket is found through is the same
	// from one run to the next.
	slices.SortFunc(all, func(a, b pendingSock) int {
		return cmp.Or(cmp.Compare(a.cur.pid, b.cur.pid), cmp.Compare(a.cur.tid, b.cur.tid), cmp.Compare(a.num, b.num))
	})
	for len(all) > 0 {
		if s.sockHelpersLost.Load() >= maxSockHelpersLost {
			s.unaskedSocks.Add(int64(len(all)))
			return
		}
		h, err := startHelper(s.procfd)
		if err != nil {
			s.short(err)
			s.unaskedSocks.Add(int64(len(all)))
			return
		}
		done, err := h.askSockets(all, func(p pendingSock, nfd int, err error) {
			switch {
			case err == nil:
				s.socketNS(p, nfd, known)
			case errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE):
				s.short(err)
			}
		})
		all = all[done:]
		// Waited for a while only: a close after its last answer may
		// not return either.
		if errors.Is(err, errHelperStuck) {
			h.abandon(0)
		} else {
			h.abandon(sockCloseWait)
		}
		switch {
		case errors.Is(err, errHelperStuck):
			s.sockHelpersLost.Add(1)
		case err != nil:
			// Gone (ECHILD) or the socket failed: the rest are not asked.
			s.unaskedSocks.Add(int64(len(all)))
			return
		}
	}
}

// askSockets sends the helper h the sockets ps, sockBatch at a time,
// calls f with each answer in order (a network namespace's descriptor,
// or why there is none; "other" is no error and no descriptor: the
// socket is no longer there), and returns how many were answered.
func (h *mountHelper) askSockets(ps []pendingSock, f func(p pendingSock, nfd int, err error)) (int, error) {
	buf := make([]byte, 32)
	oob := make([]byte, unix.CmsgSpace(4))
	done := 0
	for done < len(ps) {
		batch := ps[done:min(len(ps), done+sockBatch)]
		msg := []byte{sockRequest}
		for _, p := range batch {
			msg = append(msg, strconv.Itoa(p.cur.pid)+" "+strconv.Itoa(p.cur.tid)+" "+strconv.Itoa(p.num)+" "+strconv.FormatUint(p.ino, 10)+"\n"...)
		}
		var err error
		for {
			if err = unix.Sendmsg(h.sock, msg, nil, nil, unix.MSG_NOSIGNAL); err != unix.EINTR {
				break
			}
		}
		if err != nil {
			return done, err
		}
		for _, p := range batch {
			pfd := []unix.PollFd{{Fd: int32(h.sock), Events: unix.POLLIN}}
			n, err := unix.Poll(pfd, int(sockCloseWait/time.Millisecond))
			for err == unix.EINTR {
				n, err = unix.Poll(pfd, int(sockCloseWait/time.Millisecond))
			}
			switch {
			case err != nil:
				return done, err
			case n == 0:
				return done, errHelperStuck
			}
			var oobn int
			for {
				if n, oobn, _, _, err = unix.Recvmsg(h.sock, buf, oob, unix.MSG_CMSG_CLOEXEC); err != unix.EINTR {
					break
				}
			}
			if err != nil {
				return done, err
			}
			fd := receivedFD(oob[:oobn])
			switch line := string(buf[:n]); {
			case line == "ok" && fd >= 0:
				f(p, fd, nil)
			case line == "other":
			case n == 0:
				return done, unix.ECHILD // the helper is gone
			default:
				err := error(unix.ECHILD)
				if errno, aerr := strconv.Atoi(strings.TrimPrefix(line, "error ")); aerr == nil {
					err = unix.Errno(errno)
				}
				f(p, -1, err)
			}
			if fd >= 0 && string(buf[:n]) != "ok" {
				unix.Close(fd)
			}
			done++
		}
	}
	return done, nil
}

// receivedFD returns the first descriptor an SCM_RIGHTS message carried
// (closing any others), or -1.
func receivedFD(oob []byte) int {
	fd := -1
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return -1
	}
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		for _, f := range fds {
			if fd < 0 {
				fd = f
			} else {
				unix.Close(f)
			}
		}
	}
	return fd
}

// abandon ends the helper, waiting at most wait for it to exit: its
// close of a file that was not the socket may never return (it is then
// reaped if it ever exits).
func (h *mountHelper) abandon(wait time.Duration) {
	unix.Close(h.sock)
	h.cmd.Process.Kill()
	done := make(chan struct{})
	go func() { h.cmd.Wait(); close(done) }()
	if wait > 0 {
		select {
		case <-done:
		case <-time.After(wait):
		}
	}
}
