package nsrel

import (
	"os"
	"runtime"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// Ref is a reference to a namespace: a [Path], a [File], an [FD] or an
// owning [*Namespace]. Only this package implements it.
type Ref interface {
	// String describes the reference for error messages: the path, or
	// "fd N".
	String() string
	// with calls fn with a file descriptor for the namespace that stays
	// valid while fn runs. Errors from getting the descriptor are returned
	// unwrapped.
	with(fn func(fd int) error) error
}

// Path refers to a namespace by a filesystem path such as
// "/proc/self/ns/user", "/proc/1234/ns/pid" or a bind mount of one. Each
// query opens the path and closes it again; a file that is not a
// namespace is never opened for reading (see [Open]).
type Path string

// String returns the path.
func (p Path) String() string { return string(p) }

func (p Path) with(fn func(fd int) error) error {
	fd, err := openNS(string(p))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return fn(fd)
}

// openNS opens the namespace file at path for the nsfs ioctls. It opens
// the path with O_PATH first, which opens nothing (opening a FIFO for
// reading waits for a writer, for good if none comes; opening a device
// can have effects of its own), checks with fstatfs(2) that the file is
// on nsfs, and only then opens that very file for reading, through
// /proc/thread-self/fd (Linux 3.17). Errors are an [*os.PathError] for
// path, or unix.ENOTTY, as the ioctls answer, for a file that is not a
// namespace.
//
// The reopened file is checked to be the O_PATH one (device and inode,
// so on nsfs too): a /proc that is not procfs (a tmpfs mounted there,
// its thread-self/fd/N a symlink to anything) hands back another file.
// That open is O_NONBLOCK|O_NOCTTY, so such a file, a FIFO, does not
// block and a terminal does not become the controlling one, and it is
// closed again: the answer is then as without /proc. Without /proc the
// path itself is opened a second time, the same way and with the same
// check; a file put in its place between the two opens (a FIFO, a
// device) is thus opened, though not blocked on, before it is refused
// with ESTALE.
func openNS(path string) (int, error) {
	pfd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	for err == unix.EINTR {
		pfd, err = unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(pfd)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(pfd, &sfs); err != nil {
		return -1, &os.PathError{Op: "fstatfs", Path: path, Err: err}
	}
	if sfs.Type != unix.NSFS_MAGIC {
		return -1, unix.ENOTTY
	}
	const reopen = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY
	// The thread's own fd table: the same as the process's unless the
	// thread unshared it (CLONE_FILES), so the thread stays put.
	runtime.LockOSThread()
	fd, err := unix.Open(threadFDs+strconv.Itoa(pfd), reopen, 0)
	runtime.UnlockOSThread()
	if err == nil && !sameFile(fd, pfd) {
		// Not procfs's magic link: /proc is something else.
		unix.Close(fd)
		fd, err = -1, unix.ENOENT
	}
	if err == unix.ENOENT {
		// No /proc: open the path again, which may since have become
		// another file.
		fd, err = unix.Open(path, reopen, 0)
		if err == nil && !sameFile(fd, pfd) {
			unix.Close(fd)
			return -1, &os.PathError{Op: "open", Path: path, Err: unix.ESTALE}
		}
	}
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	// The nsfs file checked: blocking mode again, or os.NewFile would
	// take it for a pollable file and set up the runtime's poller (epoll,
	// an eventfd, and an epoll_ctl that fails), the cost Open avoids.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, 0); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return fd, nil
}

// threadFDs is where openNS reopens a descriptor; a variable so that
// tests can play a system without /proc.
var threadFDs = "/proc/thread-self/fd/"

// sameFile reports whether the descriptors a and b are the same file.
func sameFile(a, b int) bool {
	var sa, sb unix.Stat_t
	return unix.Fstat(a, &sa) == nil && unix.Fstat(b, &sb) == nil && sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// FD refers to a namespace by an open file descriptor. nsrel borrows the
// descriptor: it never closes it, and the caller must keep it open for the
// duration of each call.
type FD int

// String returns "fd N".
func (f FD) String() string { return "fd " + strconv.Itoa(int(f)) }

func (f FD) with(fn func(fd int) error) error {
	if f < 0 {
		return unix.EBADF
	}
	return fn(int(f))
}

// File refers to a namespace by an open [*os.File]. nsrel borrows the file:
// it never closes it. A nil or closed file yields an error that matches
// unix.EBADF.
func File(f *os.File) Ref { return fileRef{f} }

type fileRef struct{ f *os.File }

func (r fileRef) String() string {
	if r.f == nil {
		return "file <nil>"
	}
	return r.f.Name()
}

func (r fileRef) with(fn func(fd int) error) error {
	if r.f == nil {
		return unix.EBADF
	}
	sc, err := r.f.SyscallConn()
	if err != nil {
		return unix.EBADF // os.ErrClosed: report it as the kernel would
	}
	var ferr error
	// Control keeps the file from being closed while fn runs.
	if err := sc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return unix.EBADF
	}
	return ferr
}

// Namespace is an owning handle on a namespace: an open nsfs file. It is a
// [Ref], so queries chain on it. Close releases the file; Close is
// idempotent and safe for concurrent use. A Namespace must not be used
// after Close.
type Namespace struct {
	f    *os.File
	desc string
	once sync.Once
	err  error
}

// Open opens a namespace path (e.g. "/proc/1234/ns/user") and returns an
// owning handle. It fails with an error matching ErrNotNamespace if the
// file is not a namespace, without opening it for reading: the path is
// opened with O_PATH and checked to be on nsfs (fstatfs(2)) first, then
// that file is opened through /proc/thread-self/fd, so a FIFO (whose
// open would wait for a writer) or a device (whose open may do something)
// is never opened. The file opened is checked to be the one checked;
// where /proc/thread-self/fd does not give it back (no /proc, or a /proc
// that is not procfs), the path is opened again by name, O_NONBLOCK and
// O_NOCTTY, and checked the same way: a FIFO or device put in the
// path's place between the two opens is then opened, without blocking,
// before it is refused (ESTALE).
//
// Open does not go through os.OpenFile, which on Linux would try to add
// the descriptor to the Go runtime's poller (setting up epoll and failing
// an epoll_ctl for a file it cannot poll): a hook is a new process per
// container stage, and that set-up is a measurable part of its life.
func Open(path string) (*Namespace, error) {
	fd, err := openNS(path)
	if err != nil {
		return nil, newError("open", Path(path), -1, err)
	}
	ns := NewNamespace(fd, path)
	if _, err := TypeOf(ns); err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

// NewNamespace takes ownership of fd, which must be an open nsfs file
// descriptor, and returns a handle that closes it. desc names it in errors.
func NewNamespace(fd int, desc string) *Namespace {
	name := desc
	if name == "" {
		name = "nsfs"
	}
	return &Namespace{f: os.NewFile(uintptr(fd), name), desc: desc}
}

// String returns what the handle was opened from, or for a handle returned
// by [Parent] or [OwnerUserNS] the namespace as "type:[inode]".
func (n *Namespace) String() string {
	if n.desc != "" {
		return n.desc
	}
	s := "fd " + strconv.Itoa(int(n.f.Fd()))
	_ = n.with(func(fd int) error {
		if nm, err := nameOfFD(fd); err == nil {
			s = nm.String()
		}
		return nil
	})
	return s
}

// File returns the underlying file, still owned by n.
func (n *Namespace) File() *os.File { return n.f }

// Fd returns the file descriptor, still owned by n.
func (n *Namespace) Fd() int { return int(n.f.Fd()) }

// Close closes the namespace file. Calling it more than once returns the
// first result.
func (n *Namespace) Close() error {
	if n == nil {
		return nil
	}
	n.once.Do(func() { n.err = n.f.Close() })
	return n.err
}

func (n *Namespace) with(fn func(fd int) error) error { return fileRef{n.f}.with(fn) }
