package nsrel

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Inode numbers of the initial namespaces, fixed by the kernel
// (include/linux/proc_ns.h).
const (
	InitialUserNSIno = 0xEFFFFFFD // 4026531837
	InitialPIDNSIno  = 0xEFFFFFFC // 4026531836
)

// Ident is the identity of a namespace file: the device and inode of the
// nsfs file. Two references name the same namespace exactly when their
// Idents are equal.
type Ident struct {
	Dev uint64
	Ino uint64
}

// TypeOf returns the type of the namespace r refers to (NS_GET_NSTYPE,
// Linux 4.11 or later).
func TypeOf(r Ref) (Type, error) {
	var t Type
	err := r.with(func(fd int) error {
		v, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
		if err != nil {
			return newError("ioctl NS_GET_NSTYPE", r, fd, err)
		}
		t = Type(v)
		return nil
	})
	return t, wrapAcquire("ioctl NS_GET_NSTYPE", r, err)
}

// OwnerUserNS returns the user namespace that owns the namespace r refers
// to (NS_GET_USERNS, Linux 4.9 or later). For a user namespace, that is its
// parent. It fails with an error matching fs.ErrPermission for the initial
// user namespace and when the owner lies outside the caller's user
// namespace. The caller must Close the result.
func OwnerUserNS(r Ref) (*Namespace, error) {
	return newFDQuery("ioctl NS_GET_USERNS", unix.NS_GET_USERNS, r)
}

// Parent returns the parent of the user or PID namespace r refers to
// (NS_GET_PARENT, Linux 4.9 or later). It fails with an error matching
// fs.ErrPermission at the top of the hierarchy or when the parent lies
// outside the caller's reach, and with one matching unix.EINVAL for the
// other, non-hierarchical types. The caller must Close the result.
func Parent(r Ref) (*Namespace, error) {
	return newFDQuery("ioctl NS_GET_PARENT", unix.NS_GET_PARENT, r)
}

func newFDQuery(op string, req uint, r Ref) (*Namespace, error) {
	var ns *Namespace
	err := r.with(func(fd int) error {
		nfd, err := unix.IoctlRetInt(fd, req)
		if err != nil {
			return newError(op, r, fd, err)
		}
		// The kernel returns the fd with O_CLOEXEC set; own it at once.
		ns = NewNamespace(nfd, "")
		return nil
	})
	if err != nil {
		return nil, wrapAcquire(op, r, err)
	}
	return ns, nil
}

// OwnerUID returns the UID (in the caller's user namespace) of the process
// that created the user namespace r refers to (NS_GET_OWNER_UID, Linux 4.11
// or later). It fails with an error matching unix.EINVAL for namespaces of
// other types.
func OwnerUID(r Ref) (uint32, error) {
	var uid uint32
	err := r.with(func(fd int) error {
		v, err := unix.IoctlGetUint32(fd, unix.NS_GET_OWNER_UID)
		if err != nil {
			return newError("ioctl NS_GET_OWNER_UID", r, fd, err)
		}
		uid = v
		return nil
	})
	return uid, wrapAcquire("ioctl NS_GET_OWNER_UID", r, err)
}

// Identify returns the device and inode of the namespace r refers to. It
// checks that the file is an nsfs file and fails with an error matching
// ErrNotNamespace otherwise.
func Identify(r Ref) (Ident, error) {
	var id Ident
	err := r.with(func(fd int) error {
		var err error
		id, err = identFD(fd)
		if err != nil {
			return newError("fstat", r, -1, err)
		}
		return nil
	})
	return id, wrapAcquire("fstat", r, err)
}

// NameOf returns the namespace r refers to as a [Name] (type and inode).
func NameOf(r Ref) (Name, error) {
	var n Name
	err := r.with(func(fd int) error {
		var err error
		n, err = nameOfFD(fd)
		if err != nil {
			return newError("ioctl NS_GET_NSTYPE", r, -1, err)
		}
		return nil
	})
	return n, wrapAcquire("ioctl NS_GET_NSTYPE", r, err)
}

// noNSID is set once the kernel has answered ENOTTY to NS_GET_ID on an nsfs
// file: it does not have the request, so later calls need not ask.
var noNSID atomic.Bool

// ioctlGetID is a variable so that tests can play an older kernel.
var ioctlGetID = func(fd int) (uint64, error) { return unix.IoctlGetUint64(fd, unix.NS_GET_ID) }

// ID returns the kernel's 64-bit identifier of the namespace r refers to
// (NS_GET_ID, Linux 6.18 or later). Unlike inode numbers, these IDs are
// never reused while the system runs. On an older kernel it fails with an
// error matching errors.ErrUnsupported; on a file that is not a namespace,
// with one matching ErrNotNamespace.
func ID(r Ref) (uint64, error) {
	const op = "ioctl NS_GET_ID"
	var id uint64
	err := r.with(func(fd int) error {
		if !noNSID.Load() {
			v, err := ioctlGetID(fd)
			if err == nil {
				id = v
				return nil
			}
			if err != unix.ENOTTY {
				return newError(op, r, fd, err)
			}
		}
		// ENOTTY: either not a namespace or a kernel without NS_GET_ID.
		if _, err := identFD(fd); err != nil {
			return newError(op, r, -1, err)
		}
		noNSID.Store(true)
		return &Error{Op: op, Ref: r.String(), Err: &unsupported{op}, unsupported: true}
	})
	return id, wrapAcquire(op, r, err)
}

// unsupported is the error of a query the running kernel does not know.
type unsupported struct{ op string }

func (u *unsupported) Error() string {
	return u.op + ": not supported by this kernel (needs Linux 6.18)"
}
func (u *unsupported) Unwrap() error { return unix.ENOTTY }

// identFD fstats fd and checks that it is an nsfs file.
func identFD(fd int) (Ident, error) {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return Ident{}, err
	}
	if sfs.Type != unix.NSFS_MAGIC {
		return Ident{}, unix.ENOTTY
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Ident{}, err
	}
	return Ident{Dev: st.Dev, Ino: st.Ino}, nil
}

func nameOfFD(fd int) (Name, error) {
	v, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil {
		return Name{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Name{}, err
	}
	return Name{Type: Type(v), Ino: st.Ino}, nil
}

// wrapAcquire turns an error from getting a descriptor (not already an
// *Error) into one.
func wrapAcquire(op string, r Ref, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*Error); ok {
		return err
	}
	return newError(op, r, -1, err)
}
