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

// cpath returns path as a NUL-terminated string in w's scratch buffer,
// valid until the next call.
func (w *worker) cpath(path string) *byte {
	w.pbuf = append(append(w.pbuf[:0], path...), 0)
	return &w.pbuf[0]
}

// readlinkat is readlinkat(2) of path below dirfd into buf.
func (w *worker) readlinkat(dirfd int, path string, buf []byte) (int, error) {
	p := w.cpath(path)
	n, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// openPID opens /proc/PID (below procfd) as an O_PATH directory.
func (w *worker) openPID(procfd, pid int) (int, error) {
	w.pbuf = append(strconv.AppendInt(w.pbuf[:0], int64(pid), 10), 0)
	fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(procfd), uintptr(unsafe.Pointer(&w.pbuf[0])),
		uintptr(unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}
