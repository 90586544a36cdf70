//go:build linux && !(amd64 || arm64 || riscv64 || ppc64 || ppc64le || s390x || 386 || arm)

package discover

import "golang.org/x/sys/unix"

// fstatat is fstatat(2) of path below dirfd, following links, through
// golang.org/x/sys/unix on architectures where fstatat.go does not know
// the system call golang.org/x/sys/unix makes.
func (w *worker) fstatat(dirfd int, path string, st *unix.Stat_t) error {
	return unix.Fstatat(dirfd, path, st, 0)
}
