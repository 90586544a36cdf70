//go:build linux && (amd64 || arm64 || riscv64 || ppc64 || ppc64le || s390x || 386 || arm)

package discover

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// fstatat is fstatat(2) of path below dirfd, following links: the system
// call golang.org/x/sys/unix's Fstatat makes on this architecture
// ([sysFstatat]), into the same unix.Stat_t, without its path copy.
func (w *worker) fstatat(dirfd int, path string, st *unix.Stat_t) error {
	p := w.cpath(path)
	_, _, e := unix.RawSyscall6(sysFstatat, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(st)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
