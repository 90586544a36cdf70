package discover

import (
	"bytes"
	"fmt"
)

// Copying a socket with pidfd_getfd(2) is not a pure read: the kernel
// installs the copy with receive_fd(), whose __receive_sock() sets the
// socket's net_cls class ID (sock_update_classid) and net_prio index
// (sock_update_netprioidx) to those of the copier's cgroups, for the
// socket, so for every holder of it (a process it was inherited by or
// passed to, one that has it in flight or in an io_uring). Both are
// cgroup v1 controllers, and both values belong to a cgroup; but a
// socket keeps its values when its cgroup goes (a holder that exited in
// it, a connection accepted after its listener moved, a thread's), so
// not even a hierarchy with only its root cgroup left tells that a copy
// changes nothing. The scan checks the whole system, once: it copies
// sockets when neither controller is bound to a v1 hierarchy
// (/proc/cgroups), and no socket at all otherwise, counting those it
// did not ask ([Model.SkippedSockets], [Model.SkippedWhy]). (A socket
// whose values date from a hierarchy bound earlier in the boot and
// since dropped is still reset: docs/discovery.md.)

// netInUse says why no socket is copied when net_cls or net_prio
// cgroups are in use.
const netInUse = "net_cls or net_prio cgroups (cgroup v1) are in use, and copying a socket (pidfd_getfd) could change its class ID or priority"

// netUnknown says why no socket is copied when that cannot be told;
// %s says why.
const netUnknown = "cannot tell whether net_cls or net_prio cgroups (cgroup v1) are in use (%s), and if they are, copying a socket (pidfd_getfd) could change its class ID or priority"

// readNetGuard returns why the scan must not copy any socket, or "" when
// a copy changes nothing. It reads /proc/cgroups below procfd; when that
// cannot be read (a /proc mounted with subset=pid has none), the cgroups
// of the calling thread (/proc/thread-self/cgroup) tell whether net_cls
// or net_prio is bound to a v1 hierarchy: if one is, or if that cannot
// be read either, no socket is copied.
func readNetGuard(procfd int) string {
	data, err := readAt(procfd, "cgroups")
	if err == nil {
		if netCgroupsInUse(data) {
			return netInUse
		}
		return ""
	}
	own, ownErr := readAt(procfd, "thread-self/cgroup")
	switch {
	case ownErr != nil:
		return fmt.Sprintf(netUnknown, fmt.Sprintf("/proc/cgroups: %v, /proc/thread-self/cgroup: %v", err, ownErr))
	case namesNetController(own):
		return netInUse
	}
	return ""
}

// netCgroupsInUse parses /proc/cgroups ("subsys_name hierarchy
// num_cgroups enabled" per line) and reports whether an enabled net_cls
// or net_prio controller is bound to a v1 hierarchy (a non-zero ID),
// however many cgroups it has: sockets keep the values of cgroups since
// removed.
func netCgroupsInUse(data []byte) bool {
	for line := range bytes.Lines(data) {
		f := bytes.Fields(line)
		if len(f) >= 4 && (string(f[0]) == "net_cls" || string(f[0]) == "net_prio") && string(f[1]) != "0" && string(f[3]) == "1" {
			return true
		}
	}
	return false
}

// namesNetController reports whether a line of /proc/.../cgroup (data:
// "hierarchy-ID:controllers:path" per line) names net_cls or net_prio
// among its controllers: the controller is bound to that v1 hierarchy.
func namesNetController(data []byte) bool {
	for line := range bytes.Lines(data) {
		_, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		ctrls, _, ok := bytes.Cut(rest, []byte(":"))
		if !ok {
			continue
		}
		for c := range bytes.SplitSeq(ctrls, []byte(",")) {
			if string(c) == "net_cls" || string(c) == "net_prio" {
				return true
			}
		}
	}
	return false
}
