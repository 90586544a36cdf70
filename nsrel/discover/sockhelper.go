package discover

import (
	"bytes"
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
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
// Every removal of a descriptor from a process's table is such a close.
//
// So the copies are taken, checked, asked and closed in a helper process
// (this binary again, as the mount namespace helper), after the process
// scan, sockBatch sockets a message each way. The helper checks each
// copy by its /proc/self/fd link, from the dentry cache: "socket:[INO]"
// is the socket asked; another pseudo file (another socket, a pipe)
// closes at once and is no longer there; a path is a file, whose close
// may never return: the helper answers the batch so far, then closes it,
// and the scan gives that helper up at once (it strands only itself) and
// asks the rest of another. A scan gives up at most maxSockHelpersLost
// helpers, and spends at most sockPassTime on the sockets; then it asks
// no more, and counts those it did not ask ([Model.SkippedSockets]).

// maxSockHelpersLost is how many socket helpers a scan gives up (a copy
// that was a file) before it asks no more sockets.
var maxSockHelpersLost int64 = 4 // a variable for the tests

// sockAnswerWait is how long the scan waits for the helper's answer to a
// batch; sockPassTime bounds the whole pass.
var (
	sockAnswerWait = 2 * time.Second  // a variable for the tests
	sockPassTime   = 10 * time.Second // a variable for the tests
)

// sockBatch is how many sockets one request to the helper asks.
const sockBatch = 64

// sockRequest is the first byte of a message to the helper asking for
// sockets' network namespaces: lines "PID TID FD INO" follow (TID 0: the
// process). (A message starting otherwise asks it to join a mount
// namespace, see runHelper.)
const sockRequest = 'g'

// The answers, one line per socket, in order: sockOK carries a network
// namespace's descriptor (SCM_RIGHTS, in the order of the lines);
// sockGone says the descriptor holds no such socket now; sockFile that it
// holds a file, whose close the helper makes after the answer, the last
// line of it; "error ERRNO" why the socket could not be asked.
const (
	sockOK   = "ok"
	sockGone = "gone"
	sockFile = "file"
)

// pendingSock is a socket met at descriptor num (path "fd/N") of cur.
type pendingSock struct {
	cur  task
	num  int
	ino  uint64
	path string
}

// helperSockets answers a sockRequest in the helper process (req is the
// message after its first byte) with one message: a line per socket, and
// the descriptors of the sockOK ones. A file ends the answer, which is
// sent before its copy is closed.
func helperSockets(req []byte, send func(msg string, fds []int)) {
	buf := make([]byte, 64)
	var answer strings.Builder
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	say := func(line string) { answer.WriteString(line + "\n") }
	sayErr := func(err error) {
		errno, _ := err.(unix.Errno)
		say("error " + strconv.Itoa(int(errno)))
	}
	pidfd, pidfdOf := -1, [2]uint64{}
	defer func() {
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
	}()
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
			sayErr(unix.EINVAL)
			continue
		}
		// One pidfd per process (the lines come in PID order).
		var err error
		if pidfd < 0 || pidfdOf != [2]uint64{v[0], v[1]} {
			if pidfd >= 0 {
				unix.Close(pidfd)
			}
			if v[1] != 0 {
				pidfd, err = unix.PidfdOpen(int(v[1]), unix.PIDFD_THREAD) // Linux 6.9: a pidfd of one thread
			} else {
				pidfd, err = unix.PidfdOpen(int(v[0]), 0)
			}
			if err != nil {
				pidfd = -1
			}
			pidfdOf = [2]uint64{v[0], v[1]}
		}
		var sfd int
		if err == nil {
			sfd, err = unix.PidfdGetfd(pidfd, int(v[2]), 0)
		}
		if err != nil {
			sayErr(err)
			continue
		}
		n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(sfd), buf)
		link := string(buf[:max(n, 0)])
		switch {
		case err == nil && link == "socket:["+f[3]+"]":
		case err == nil && link != "" && link[0] != '/':
			// Another socket, a pipe, an anonymous inode: no file
			// system's close.
			unix.Close(sfd)
			say(sockGone)
			continue
		default:
			say(sockFile)
			send(answer.String(), fds)
			for _, fd := range fds {
				unix.Close(fd)
			}
			fds = nil
			unix.Close(sfd) // may never return (a FUSE file)
			return
		}
		nfd, err := unix.IoctlRetInt(sfd, unix.SIOCGSKNS)
		unix.Close(sfd)
		if err != nil {
			sayErr(err)
			continue
		}
		say(sockOK)
		fds = append(fds, nfd)
	}
	send(answer.String(), fds)
}

// errHelperStuck says that the helper did not answer within
// sockAnswerWait; errHelperFile that it met a file and was given up.
var (
	errHelperStuck = errors.New("the socket helper did not answer in time")
	errHelperFile  = errors.New("the socket helper met a file in a socket's place")
	errPassTime    = errors.New("the sockets' pass ran out of time")
	errSockGone    = errors.New("the descriptor holds no such socket now")
)

// sockCopies bounds the copies of one socket a worker keeps to ask: a
// socket whose first copy is gone by the sockets' pass (its process
// exited, or closed it) is asked through the next.
const sockCopies = 4

// beforeSockets, if set (by tests), is called before the sockets' pass.
var beforeSockets func()

// askSockets asks the sockets the workers met for their network
// namespaces, through helper processes, and records those a process's
// link did not find. Each socket is asked once, through the lowest PID
// that holds it (the process a socket is found through is the same from
// one run to the next); when that copy is gone (the process exited, or
// its descriptor holds something else now) or cannot be copied, through
// the next one met, in PID order.
func (s *scanner) askSockets(ws []*worker) {
	if beforeSockets != nil {
		beforeSockets()
	}
	known := make(map[Key]bool)
	var all []pendingSock
	for _, w := range ws {
		for k, nd := range w.known {
			if nd.ns.Type == nsrel.TypeNet {
				known[k] = true
			}
		}
		all = append(all, w.pendSocks...)
		w.pendSocks = nil
	}
	slices.SortFunc(all, func(a, b pendingSock) int {
		return cmp.Or(cmp.Compare(a.cur.pid, b.cur.pid), cmp.Compare(a.cur.tid, b.cur.tid), cmp.Compare(a.num, b.num))
	})
	// The first copy of each socket now, the others if it fails.
	later := make(map[uint64][]pendingSock)
	all = slices.DeleteFunc(all, func(p pendingSock) bool {
		l, dup := later[p.ino]
		if dup && len(l) < sockCopies-1 {
			later[p.ino] = append(l, p)
		} else if !dup {
			later[p.ino] = nil
		}
		return dup
	})
	deadline := time.Now().Add(sockPassTime)
	var mu sync.Mutex
	for len(all) > 0 {
		var next []pendingSock
		failed := func(p pendingSock) {
			mu.Lock()
			defer mu.Unlock()
			if l := later[p.ino]; len(l) > 0 {
				next = append(next, l[0])
				later[p.ino] = l[1:]
			}
		}
		// Parts of at least sockPart sockets, one helper each at a
		// time, as many at once as there are workers.
		parts := min(len(ws), (len(all)+sockPart-1)/sockPart)
		if parts <= 1 {
			s.askPart(all, known, deadline, failed)
		} else {
			var wg sync.WaitGroup
			for i := range parts {
				part := all[i*len(all)/parts : (i+1)*len(all)/parts]
				wg.Add(1)
				go func() {
					defer wg.Done()
					s.askPart(part, known, deadline, failed)
				}()
			}
			wg.Wait()
		}
		slices.SortFunc(next, func(a, b pendingSock) int {
			return cmp.Or(cmp.Compare(a.cur.pid, b.cur.pid), cmp.Compare(a.cur.tid, b.cur.tid), cmp.Compare(a.num, b.num))
		})
		all = next
	}
}

// sockPart is the fewest sockets a helper of its own asks, beside others.
const sockPart = 512

// askPart asks the sockets all through helper processes, one at a time
// (see askSockets), and calls failed with each whose copy was gone or
// could not be made.
func (s *scanner) askPart(all []pendingSock, known map[Key]bool, deadline time.Time, failed func(pendingSock)) {
	for len(all) > 0 {
		if time.Now().After(deadline) {
			s.sockPassLate.Store(true)
		}
		if s.sockHelpersLost.Load() >= maxSockHelpersLost || s.sockPassLate.Load() {
			s.unaskedSocks.Add(int64(len(all)))
			return
		}
		h, err := startHelper(s.procfd)
		if err != nil {
			s.short(err)
			s.unaskedSocks.Add(int64(len(all)))
			return
		}
		done, err := h.askSockets(all, deadline, func(p pendingSock, nfd int, err error) {
			switch {
			case err == nil:
				s.socketNS(p, nfd, known)
			case errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE):
				s.short(err)
			case errors.Is(err, errSockGone) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EBADF) || errors.Is(err, unix.EPERM):
				failed(p)
			}
		})
		all = all[done:]
		// A helper that met a file or does not answer is not waited
		// for: its close may never return.
		switch {
		case errors.Is(err, errHelperFile) || errors.Is(err, errHelperStuck):
			h.abandon(0)
			s.sockHelpersLost.Add(1)
		case errors.Is(err, errPassTime):
			h.abandon(0) // the loop's check counts the rest
		case err != nil:
			h.abandon(sockAnswerWait)
			// Gone (ECHILD), or its socket failed: the rest are not asked.
			s.unaskedSocks.Add(int64(len(all)))
			return
		default:
			h.abandon(sockAnswerWait)
		}
	}
}

// askSockets sends the helper h the sockets ps, sockBatch at a time,
// calls f with each answer in order (a network namespace's descriptor,
// or why there is none: errSockGone for a socket no longer there), and
// returns how many were answered: all, or up to a file (errHelperFile).
func (h *mountHelper) askSockets(ps []pendingSock, deadline time.Time, f func(p pendingSock, nfd int, err error)) (int, error) {
	buf := make([]byte, sockBatch*16)
	oob := make([]byte, unix.CmsgSpace(4*sockBatch))
	done := 0
	for done < len(ps) {
		if time.Now().After(deadline) {
			return done, errPassTime
		}
		batch := ps[done:min(len(ps), done+sockBatch)]
		msg := []byte{sockRequest}
		for _, p := range batch {
			msg = append(msg, strconv.Itoa(p.cur.pid)+" "+strconv.Itoa(p.cur.tid)+" "+strconv.Itoa(p.num)+" "+strconv.FormatUint(p.ino, 10)+"\n"...)
		}
		var err error
		for {
			if err = unix.Sendmsg(h.sock, msg, nil, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT); err != unix.EINTR {
				break
			}
		}
		if err != nil {
			return done, err
		}
		pfd := []unix.PollFd{{Fd: int32(h.sock), Events: unix.POLLIN}}
		var n int
		for {
			// Never a negative timeout, which poll takes for none.
			wait := min(sockAnswerWait, time.Until(deadline))
			if wait <= 0 {
				return done, errPassTime
			}
			if n, err = unix.Poll(pfd, int((wait+time.Millisecond-1)/time.Millisecond)); err != unix.EINTR {
				break
			}
		}
		switch {
		case err != nil:
			return done, err
		case n == 0 && time.Now().After(deadline):
			return done, errPassTime
		case n == 0:
			return done, errHelperStuck
		}
		var oobn, flags int
		for {
			if n, oobn, flags, _, err = unix.Recvmsg(h.sock, buf, oob, unix.MSG_CMSG_CLOEXEC|unix.MSG_DONTWAIT); err != unix.EINTR {
				break
			}
		}
		if err != nil {
			return done, err
		}
		if n == 0 {
			return done, unix.ECHILD // the helper is gone
		}
		fds := receivedFDs(oob[:oobn])
		// Descriptors the kernel could not install (this process had
		// none left) are dropped, with MSG_CTRUNC.
		var short error
		if flags&unix.MSG_CTRUNC != 0 {
			short = unix.EMFILE
		}
		lines := strings.Split(strings.TrimSuffix(string(buf[:n]), "\n"), "\n")
		for i, line := range lines {
			if i == len(batch) {
				break
			}
			p := batch[i]
			switch {
			case line == sockOK && len(fds) > 0:
				f(p, fds[0], nil)
				fds = fds[1:]
			case line == sockOK:
				f(p, -1, cmp.Or(short, error(unix.ECHILD)))
			case line == sockGone:
				f(p, -1, errSockGone)
			case line == sockFile:
				for _, fd := range fds {
					unix.Close(fd)
				}
				return done + i + 1, errHelperFile
			default:
				err := error(unix.ECHILD)
				if errno, aerr := strconv.Atoi(strings.TrimPrefix(line, "error ")); aerr == nil {
					err = unix.Errno(errno)
				}
				f(p, -1, err)
			}
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
		if len(lines) != len(batch) {
			return done, unix.ECHILD // an answer cut short: not the helper's
		}
		done += len(batch)
	}
	return done, nil
}

// receivedFDs returns the descriptors SCM_RIGHTS messages carried.
func receivedFDs(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var out []int
	for i := range msgs {
		if fds, err := unix.ParseUnixRights(&msgs[i]); err == nil {
			out = append(out, fds...)
		}
	}
	return out
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
