// Package nsrel answers the four questions the Linux kernel answers about a
// namespace through the nsfs ioctl(2) requests documented in ioctl_ns(2):
//
//   - [TypeOf]: which kind of namespace it is (NS_GET_NSTYPE, Linux 4.11);
//   - [OwnerUserNS]: the user namespace that owns it (NS_GET_USERNS, Linux 4.9);
//   - [Parent]: the parent of a user or PID namespace (NS_GET_PARENT, Linux 4.9);
//   - [OwnerUID]: the UID that created a user namespace (NS_GET_OWNER_UID, Linux 4.11).
//
// It also tells a namespace's identity: the device and inode of its nsfs
// file ([Identify]), which is what /proc/PID/ns/* links show as
// "type:[inode]", and the kernel's 64-bit namespace ID ([ID], NS_GET_ID,
// Linux 6.18), which unlike an inode number is never reused while the system
// runs. On kernels without NS_GET_ID, [ID] returns an error that matches
// [errors.ErrUnsupported].
//
// # References
//
// Every query takes a [Ref]: a namespace given as a filesystem path
// ([Path], e.g. "/proc/self/ns/user" or a bind mount of one), as an open
// file ([File]) or as a raw file descriptor ([FD]). nsrel never closes a
// file or descriptor it was given. [OwnerUserNS] and [Parent] return a
// [*Namespace]: an owning handle on the fd the kernel returned, itself a
// [Ref], so that calls chain: Parent(Parent(x)). Close it when done; Close
// is idempotent.
//
// # Errors
//
// Failures are returned as [*Error], which names the operation, the
// reference and, when known, the namespace as "type:[inode]", and keeps the
// kernel's errno reachable through [errors.Is] and [errors.As]:
//
//   - errors.Is(err, fs.ErrPermission): EPERM or EACCES. NS_GET_PARENT and
//     NS_GET_USERNS fail this way at the top of the hierarchy and when the
//     answer lies outside the caller's user namespace.
//   - errors.Is(err, unix.EINVAL): NS_GET_PARENT on a namespace type that is
//     not hierarchical (anything but user and pid), NS_GET_OWNER_UID on a
//     namespace that is not a user namespace.
//   - errors.Is(err, ErrNotNamespace) and errors.Is(err, unix.ENOTTY): the
//     file is not a namespace (for example /dev/null).
//   - errors.Is(err, unix.EBADF): a closed or invalid file descriptor.
//   - errors.Is(err, fs.ErrNotExist): a path that does not exist.
//
// The initial user and PID namespaces have fixed inode numbers,
// [InitialUserNSIno] and [InitialPIDNSIno].
//
// See ioctl_ns(2), namespaces(7), user_namespaces(7) and
// pid_namespaces(7).
package nsrel

import _ "github.com/nsrel/nsrel/internal/linuxonly" // stops a build for another GOOS with one message
