package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// ErrNotRegular matches errors for a path that is a symlink, FIFO,
// socket, directory, device or other non-regular file.
var ErrNotRegular = errors.New("not a regular file")

// OpenRegular opens path with flags (unix.O_* values; O_NOFOLLOW,
// O_NONBLOCK and O_CLOEXEC are always added), creating it 0600 with
// O_CREAT, and returns it if it is a regular file. A symlink, FIFO,
// socket, directory or device is refused with an error matching
// [ErrNotRegular]; other failures are [*fs.PathError]s. The descriptor is
// left blocking and outside the runtime's poller.
func OpenRegular(path string, flags int) (*os.File, error) {
	return OpenRegularAt(unix.AT_FDCWD, path, path, flags)
}

// OpenRegularAt is [OpenRegular] of name relative to the directory
// dirfd (unix.AT_FDCWD: the working directory), which it borrows and
// does not close; path names the file in errors. With a name of one
// component and a dirfd opened O_DIRECTORY|O_NOFOLLOW, no symlink is
// followed anywhere below the directory.
func OpenRegularAt(dirfd int, name, path string, flags int) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	for err == unix.EINTR {
		fd, err = unix.Openat(dirfd, name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	}
	switch {
	case err == unix.ELOOP:
		return nil, fmt.Errorf("%s: refusing a symlink: %w", path, ErrNotRegular)
	case err == unix.EISDIR:
		return nil, fmt.Errorf("%s: refusing a directory: %w", path, ErrNotRegular)
	case err == unix.ENXIO:
		return nil, fmt.Errorf("%s: refusing a FIFO or socket: %w", path, ErrNotRegular)
	case err != nil:
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return fileOf(fd, path, func(t uint32) bool { return t != unix.S_IFREG })
}

// fileOf returns fd, opened O_NONBLOCK, as a blocking file named path,
// unless refuse says no to its type (closing it then, with an error
// matching [ErrNotRegular]).
func fileOf(fd int, path string, refuse func(uint32) bool) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if refuse(st.Mode & unix.S_IFMT) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: refusing %s: %w", path, kind(st.Mode), ErrNotRegular)
	}
	// Regular files ignore O_NONBLOCK, but os.NewFile would hand a
	// non-blocking descriptor to the runtime's poller (epoll set-up and
	// a failing epoll_ctl on every hook run): clear it first.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// OpenInput opens a file a user names as input to read (a collector's
// stream, its checkpoints): a symlink is followed and a pipe works
// (/dev/stdin, <(zcat FILE.gz)); a FIFO is opened without waiting for a
// writer (one without any reads as empty). A directory or device is
// refused with an error matching [ErrNotRegular]; other failures are
// [*fs.PathError]s.
func OpenInput(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	for err == unix.EINTR {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return fileOf(fd, path, func(t uint32) bool { return t == unix.S_IFDIR || t == unix.S_IFCHR || t == unix.S_IFBLK })
}

// kind names the type of a file, for refusals.
func kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFLNK:
		return "a symlink"
	case unix.S_IFREG:
		return "a regular file"
	}
	return fmt.Sprintf("a file of type %#o", mode&unix.S_IFMT)
}

// ReadLimited reads f from its current offset to its end, or limit+1
// bytes if it holds more (the caller tells a file that is too large by
// the length). The buffer is sized from fstat(2), so a file read whole
// takes one read and one allocation where io.ReadAll grows its buffer
// several times: the hook reads its config at every stage.
func ReadLimited(f *os.File, limit int) ([]byte, error) {
	var st unix.Stat_t
	size := 512
	if err := unix.Fstat(int(f.Fd()), &st); err == nil && st.Size > 0 {
		size = int(min(st.Size, int64(limit))) + 1
	}
	buf := make([]byte, 0, size)
	for len(buf) <= limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):min(cap(buf), limit+1)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}
