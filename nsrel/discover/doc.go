// Package discover finds every user and PID namespace the kernel will show
// the caller, and builds a model of how they relate: parents, owning user
// namespaces, owner UIDs, the processes in each namespace and how each
// namespace was found.
//
// [Discover] reads these sources, all on by default (see [Options] to turn
// some off):
//
//   - /proc/PID/ns/{user,pid,pid_for_children,mnt} of every process
//     (through a live thread, /proc/PID/task/TID, when the thread-group
//     leader has exited), and of every thread of processes that have more
//     than one: the links in which a thread can differ (pid_for_children,
//     mnt, and for the owners cgroup, ipc, net, uts), its fd table when
//     kcmp(2) says it has its own, and its mount namespace;
//   - open file descriptors (/proc/PID/fd/N) that refer to a namespace of
//     any type, and, when user namespaces are asked for, the network
//     namespace of every open socket (pidfd_getfd(2) and SIOCGSKNS),
//     unless net_cls or net_prio cgroups (cgroup v1) are in use, whose
//     values a copy would change: then of none ([Model.SkippedSockets]);
//   - nsfs bind mounts in every mount namespace in the model: through
//     /proc/PID/mountinfo and /proc/PID/root of a task in it that is not
//     chrooted, or else of a short-lived helper process (this binary
//     again, see helper.go) that joins a mount namespace no usable task
//     is in, e.g. one held only by an fd or a bind mount;
//   - ancestors and owners that have no process at all, reached with
//     NS_GET_PARENT and NS_GET_USERNS (ioctl_ns(2)) from every namespace
//     found, including namespaces of other types held by an fd, a socket
//     or a mount and, when user namespaces are asked for, every process's
//     cgroup, ipc, mnt, net, pid, time and uts namespaces.
//
// Namespaces are keyed by the device and inode of their nsfs file, and
// the scan holds the namespaces it found open until it ends, so that an
// inode cannot be reused by another namespace while it runs; the model
// also records the kernel's never reused ID (NS_GET_ID, Linux 6.18), by
// which the scan checks the namespaces past what RLIMIT_NOFILE lets it
// hold ([Model.ReusedInodes] counts those replaced while it ran).
// Processes that exit during the scan are skipped silently. What could not
// be read for lack of privilege is counted in [Model.Denied], what could
// not be opened for want of file descriptors (more namespaces than
// RLIMIT_NOFILE allows) in [Model.OutOfFDs], and [Model.Notice] sums them
// up.
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
