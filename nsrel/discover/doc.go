// Package discover finds every user and PID namespace the kernel will show
// the caller, and builds a model of how they relate: parents, owning user
// namespaces, owner UIDs, the processes in each namespace and how each
// namespace was found.
//
// [Discover] reads these sources, all on by default (see [Options] to turn
// some off):
//
//   - /proc/PID/ns/{user,pid,pid_for_children} of every process, and of
//     every thread (/proc/PID/task/TID/ns/*) of processes that have more
//     than one;
//   - open file descriptors (/proc/PID/fd/N) that refer to a namespace of
//     any type;
//   - nsfs bind mounts in every mount namespace on the host: the
//     mountinfo of one process per distinct mount namespace is read and each
//     mount point is opened through /proc/PID/root;
//   - ancestors and owners that have no process at all, reached with
//     NS_GET_PARENT and NS_GET_USERNS (ioctl_ns(2)) from every namespace
//     found, including namespaces of other types held by an fd or a
//     mount and, when user namespaces are asked for, every process's
//     cgroup, ipc, mnt, net, pid, time and uts namespaces.
//
// Namespaces are deduplicated by the device and inode of their nsfs file.
// Processes that exit during the scan are skipped silently. What could not
// be read for lack of privilege is counted in [Model.Denied] and summed up
// by [Model.Notice].
//
// The scan is built for speed: one O_PATH directory fd per process, with
// fstatat(2), readlinkat(2) and openat(2) relative to it, only the
// namespace links the caller asks for, thread directories read only where
// the thread count (the link count of /proc/PID/task) says there is more
// than one thread, ioctls only for namespaces not seen before, and parallel
// workers.
//
// The model is independent of rendering; the tree package prints it.
// [Container] and [ContainerSource] are the contract with the container
// sources that annotate the model.
package discover
