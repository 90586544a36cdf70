package discover

import (
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The scan loop makes about ten *at system calls per process. The
// golang.org/x/sys/unix wrappers allocate a NUL-terminated copy of every
// path; these build it in the worker's scratch buffer instead, so that the
// loop does not allocate. Errors are the bare unix.Errno, as from unix.
//
// They are raw system calls (unix.RawSyscall6: no entersyscall and
// exitsyscall around them, which tell the scheduler a goroutine may
// block): every call here is on /proc (a link, a stat, an O_PATH open,
// a close of such a descriptor, kcmp(2)) and never waits for I/O or a
// lock held long, and the scan makes tens of thousands of them. Without
// the scheduler's bookkeeping lsuserns took 92.0 instead of 100.7 ms of
// CPU time at 2,000 processes, with a quarter of the context switches
// (docs/BENCHMARKS.md, issue 14). Nothing else runs on
// the workers' threads meanwhile; the Go scheduler preempts a worker
// between calls as it does any running goroutine.

// cpath returns path as a NUL-terminated string in w's scratch buffer,
// valid until the next call.
func (w *worker) cpath(path string) *byte {
	w.pbuf = append(append(w.pbuf[:0], path...), 0)
	return &w.pbuf[0]
}

// readlinkat is readlinkat(2) of path below dirfd into buf.
func (w *worker) readlinkat(dirfd int, path string, buf []byte) (int, error) {
	return readlink(dirfd, w.cpath(path), buf)
}

// readlinkFD is readlinkat(2) of "fd/N" below dirfd into buf.
func (w *worker) readlinkFD(dirfd, fd int, buf []byte) (int, error) {
	w.pbuf = append(strconv.AppendInt(append(w.pbuf[:0], "fd/"...), int64(fd), 10), 0)
	return readlink(dirfd, &w.pbuf[0], buf)
}

// readlink is readlinkat(2) of the NUL-terminated path p below dirfd.
func readlink(dirfd int, p *byte, buf []byte) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_READLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// closeFD closes fd, an O_PATH descriptor of a /proc directory that the
// caller owns.
func closeFD(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

// kcmp is kcmp(2) (Linux 3.5, CONFIG_CHECKPOINT_RESTORE) of the tasks
// pid1 and pid2 for typ with no further arguments (KCMP_FILES, KCMP_FS):
// 0 means the two share the resource.
func kcmp(pid1, pid2, typ int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2), uintptr(typ), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// openPID opens /proc/PID (below procfd) as an O_PATH directory.
func (w *worker) openPID(procfd, pid int) (int, error) {
	w.pbuf = append(strconv.AppendInt(w.pbuf[:0], int64(pid), 10), 0)
	fd, _, e := unix.RawSyscall6(unix.SYS_OPENAT, uintptr(procfd), uintptr(unsafe.Pointer(&w.pbuf[0])),
		uintptr(unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}
