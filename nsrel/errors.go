package nsrel

import (
	"errors"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotNamespace is matched (via [errors.Is]) by errors for files that are
// not namespaces, such as /dev/null. Such errors also match unix.ENOTTY,
// which is what the kernel returns for an nsfs ioctl on another file.
var ErrNotNamespace = errors.New("not a namespace")

// Error is the error type of every failed query. It names the operation,
// the reference and, when it could be learnt, the namespace, and wraps the
// underlying error (an [*os.SyscallError] or [*fs.PathError] holding the
// errno), so errors.Is(err, unix.EPERM) and errors.Is(err,
// fs.ErrPermission) work.
type Error struct {
	// Op is the failed operation, e.g. "ioctl NS_GET_PARENT" or "open".
	Op string
	// Ref describes the reference: a path or "fd N".
	Ref string
	// NS is the namespace as "type:[inode]", or "" if it is not known.
	NS string
	// Err is the underlying error.
	Err error

	notNS       bool
	unsupported bool
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("nsrel: ")
	var pe *fs.PathError
	if errors.As(e.Err, &pe) {
		// A path error already names the operation and the path.
		b.WriteString(e.Err.Error())
		return b.String()
	}
	b.WriteString(e.Ref)
	if e.NS != "" && e.NS != e.Ref {
		b.WriteString(" (" + e.NS + ")")
	}
	b.WriteString(": ")
	if e.notNS {
		b.WriteString(e.Op + ": " + ErrNotNamespace.Error())
	} else {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNotNamespace) hold for files that are not
// namespaces and errors.Is(err, errors.ErrUnsupported) for a query the
// running kernel does not know.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotNamespace:
		return e.notNS
	case errors.ErrUnsupported:
		return e.unsupported
	}
	return false
}

// newError builds the error for op on r. fd, if >= 0, is used to name the
// namespace; err is the raw error from getting the fd or from the ioctl.
func newError(op string, r Ref, fd int, err error) *Error {
	e := &Error{Op: op, Ref: r.String()}
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe):
		e.Op = pe.Op
		e.Err = err
	default:
		e.Err = os.NewSyscallError(op, err)
	}
	if errors.Is(err, unix.ENOTTY) {
		e.notNS = true
	}
	if fd >= 0 && !e.notNS {
		if n, nerr := nameOfFD(fd); nerr == nil {
			e.NS = n.String()
		}
	}
	return e
}
