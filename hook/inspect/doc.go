// Package inspect reads the user and PID namespace ancestry of a process
// safely against PID reuse: it pins the process with pidfd_open(2) and
// asks the pidfd for its namespaces (PIDFD_GET_USER_NAMESPACE and
// PIDFD_GET_PID_NAMESPACE, Linux 6.11) and credentials (PIDFD_GET_INFO,
// Linux 6.13); on older kernels it opens /proc/PID/ns/user and
// /proc/PID/ns/pid. It then checks through the pidfd (poll(2): a pidfd
// turns readable once the process has exited) that the pinned process is
// still running, so what it read through /proc belongs to the process the
// caller named. It then walks both chains to the top with the ioctl_ns(2)
// requests of package [github.com/nsrel/nsrel/nsrel].
//
// pidfd_open needs Linux 5.3; NS_GET_ID (the never-reused namespace ID)
// Linux 6.18, and is recorded as absent (nil) on older kernels.
//
// With the chains it reads the ID maps of each user namespace level
// (user_namespaces(7)) into [audit.Ancestry].Maps: the process's own
// through /proc/PID/uid_map, gid_map and setgroups before the same pidfd
// check (and a check that the process did not change user namespace),
// ancestors through a process found in them, the top as the inspector's
// own. [Live] scans every process's user namespace link and reads the
// maps of each other user namespace, for the disjoint_from_running rule.
//
// [Process] is what nsrel-hook, the containerd event recorder and the NRI
// plugin call (through [github.com/nsrel/nsrel/hook.Decide]); the
// [audit.Ancestry] it returns is what the audit log records. Its files
// are opened with [nsrel.Open], outside the Go runtime's poller.
package inspect
