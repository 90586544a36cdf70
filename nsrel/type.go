package nsrel

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Type is a kind of Linux namespace. Its value is the CLONE_NEW* flag the
// kernel uses for that kind, which is also what NS_GET_NSTYPE returns.
type Type int

// The eight namespace types of Linux.
const (
	TypeCgroup Type = unix.CLONE_NEWCGROUP
	TypeIPC    Type = unix.CLONE_NEWIPC
	TypeMount  Type = unix.CLONE_NEWNS
	TypeNet    Type = unix.CLONE_NEWNET
	TypePID    Type = unix.CLONE_NEWPID
	TypeTime   Type = unix.CLONE_NEWTIME
	TypeUser   Type = unix.CLONE_NEWUSER
	TypeUTS    Type = unix.CLONE_NEWUTS
)

// Types lists every namespace type, in the order of their names.
var Types = []Type{TypeCgroup, TypeIPC, TypeMount, TypeNet, TypePID, TypeTime, TypeUser, TypeUTS}

var typeNames = map[Type]string{
	TypeCgroup: "cgroup",
	TypeIPC:    "ipc",
	TypeMount:  "mnt",
	TypeNet:    "net",
	TypePID:    "pid",
	TypeTime:   "time",
	TypeUser:   "user",
	TypeUTS:    "uts",
}

// String returns the name the kernel uses for the type in /proc/PID/ns and in
// "type:[inode]" links ("mnt", "user", ...), or "Type(0x...)" for a value that
// is not a namespace type.
func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("Type(%#x)", int(t))
}

// Valid reports whether t is one of the eight namespace types.
func (t Type) Valid() bool {
	_, ok := typeNames[t]
	return ok
}

// Hierarchical reports whether namespaces of this type have parents: only
// user and PID namespaces do.
func (t Type) Hierarchical() bool { return t == TypeUser || t == TypePID }

// ParseType returns the type for a name as the kernel spells it ("mnt",
// "user", ...). It also accepts "mount" for "mnt" and ignores case.
func ParseType(name string) (Type, error) {
	n := strings.ToLower(name)
	if n == "mount" {
		return TypeMount, nil
	}
	for t, s := range typeNames {
		if s == n {
			return t, nil
		}
	}
	return 0, fmt.Errorf("nsrel: unknown namespace type %q", name)
}
