package discover

import (
	"bytes"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// Copying a socket with pidfd_getfd(2) is not a pure read: the kernel
// installs the copy with receive_fd(), whose __receive_sock() sets the
// socket's net_cls class ID (sock_update_classid) and net_prio index
// (sock_update_netprioidx) to those of the caller's cgroups, for every
// holder of the socket. Both are cgroup v1 controllers. When neither is
// bound to a v1 hierarchy, every task is in their root cgroup (class ID
// 0, the root's index) and a copy changes nothing. When one is, the scan
// copies the sockets of a process only if each of its threads is in the
// scanning thread's cgroup in every such hierarchy (the class ID and the
// priority index are per cgroup), and counts the sockets it leaves
// unasked ([Model.SkippedSockets]).

// netGuard says whose sockets the scan may copy.
type netGuard struct {
	// hier are the IDs of the cgroup v1 hierarchies net_cls and net_prio
	// are bound to, in the order of /proc/cgroups; empty when a copy
	// changes nothing.
	hier []int
	// none is set when /proc/cgroups could not be read: no socket is
	// copied.
	none bool
}

// active reports whether copies must be checked.
func (g netGuard) active() bool { return g.none || len(g.hier) > 0 }

// readNetGuard reads /proc/cgroups below procfd.
func readNetGuard(procfd int) netGuard {
	data, err := readAt(procfd, "cgroups")
	if err == unix.ENOENT {
		return netGuard{} // a kernel without cgroups has neither controller
	}
	if err != nil {
		return netGuard{none: true}
	}
	return netGuard{hier: netHierarchies(data)}
}

// netHierarchies parses /proc/cgroups ("subsys_name hierarchy num_cgroups
// enabled" per line) for the v1 hierarchies (non-zero IDs) that an
// enabled net_cls or net_prio controller is bound to, each once.
func netHierarchies(data []byte) []int {
	var ids []int
	for line := range bytes.Lines(data) {
		f := bytes.Fields(line)
		if len(f) < 4 || string(f[0]) != "net_cls" && string(f[0]) != "net_prio" || string(f[3]) != "1" {
			continue
		}
		id, err := strconv.Atoi(string(f[1]))
		if err == nil && id != 0 && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// netCgroups returns, in the order of hier, the cgroup paths that
// /proc/.../cgroup (data: "hierarchy-ID:controllers:path" per line) gives
// for the hierarchies hier; false if one is missing.
func netCgroups(data []byte, hier []int) ([]string, bool) {
	paths := make([]string, len(hier))
	found := 0
	for line := range bytes.Lines(data) {
		id, rest, ok := bytes.Cut(bytes.TrimSuffix(line, []byte("\n")), []byte(":"))
		if !ok {
			continue
		}
		_, path, ok := bytes.Cut(rest, []byte(":"))
		if !ok {
			continue
		}
		n, err := strconv.Atoi(string(id))
		if err != nil {
			continue
		}
		if i := slices.Index(hier, n); i >= 0 && paths[i] == "" {
			paths[i] = string(path)
			found++
		}
	}
	return paths, found == len(hier)
}

// readOwnNetCgroups reads the cgroups of the calling thread, which the
// caller has locked to its goroutine, into w.own.
func (w *worker) readOwnNetCgroups() {
	g := w.s.guard
	if g.none {
		return
	}
	data, err := readAt(w.s.procfd, "thread-self/cgroup")
	if err != nil {
		return
	}
	w.own, w.ownOK = netCgroups(data, g.hier)
}

// mayCopy reports whether the scan may copy the sockets of cur, whose
// pidfd w.pidfd is: every thread of the process is in the scanning
// thread's cgroup in each hierarchy of the guard. The pidfd was opened
// first and is checked afterwards, so that what was read is that
// process's, not a later one's with its PID.
func (w *worker) mayCopy(cur task) bool {
	g := w.s.guard
	if !g.active() {
		return true
	}
	if g.none || !w.ownOK {
		return false
	}
	tfd, err := unix.Openat(w.s.procfd, strconv.Itoa(cur.pid)+"/task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		w.s.short(err)
		return false
	}
	defer unix.Close(tfd)
	names, err := readNames(tfd, w.dents, nil)
	if err != nil || len(names) == 0 {
		return false
	}
	for _, name := range names {
		data, err := readAt(tfd, name+"/cgroup")
		if err == unix.ENOENT || err == unix.ESRCH {
			continue // the thread exited
		}
		if err != nil {
			w.s.short(err)
			return false
		}
		if paths, ok := netCgroups(data, g.hier); !ok || !slices.Equal(paths, w.own) {
			return false
		}
	}
	// Signal 0 only checks that the process lives (EPERM: it does).
	err = unix.PidfdSendSignal(w.pidfd, 0, nil, 0)
	return err == nil || err == unix.EPERM
}
