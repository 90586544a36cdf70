package discover

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/nsrel/nsrel/nsrel"
)

// Key identifies a namespace: the device and inode of its nsfs file.
type Key struct {
	Dev uint64
	Ino uint64
}

// Via says how a namespace was found.
type Via string

// The ways a namespace can be found.
const (
	// ViaProcess: a process's /proc/PID/ns/TYPE link.
	ViaProcess Via = "process"
	// ViaPIDForChildren: a process's /proc/PID/ns/pid_for_children link
	// (differs from ns/pid after unshare(CLONE_NEWPID)).
	ViaPIDForChildren Via = "pid_for_children"
	// ViaTask: a thread's /proc/PID/task/TID/ns/TYPE link, where the
	// thread's namespace differs from its process's.
	ViaTask Via = "task"
	// ViaFD: an open file descriptor /proc/PID/fd/N (or, for a thread
	// with a file table of its own, /proc/PID/task/TID/fd/N).
	ViaFD Via = "fd"
	// ViaSocket: the network namespace of an open socket (SIOCGSKNS on a
	// copy from pidfd_getfd(2)); Path is the socket's fd as for ViaFD.
	ViaSocket Via = "socket"
	// ViaMount: an nsfs bind mount, in the mount namespace MountNS.
	ViaMount Via = "mount"
	// ViaParent: NS_GET_PARENT of the namespace Of.
	ViaParent Via = "parent"
	// ViaOwner: NS_GET_USERNS of the namespace Of.
	ViaOwner Via = "owner"
)

// Found is one way a namespace was found.
type Found struct {
	Via Via `json:"via"`
	// PID is the process (process, pid_for_children, task, fd, socket;
	// mount: a process in the mount namespace, 0 if it has none).
	PID int `json:"pid,omitempty"`
	// TID is the thread (task; fd and socket of a thread with a file
	// table of its own).
	TID int `json:"tid,omitempty"`
	// Path is /proc/PID/fd/N (fd) or the mount point as the mount
	// namespace sees it (mount).
	Path string `json:"path,omitempty"`
	// MountNS is the inode of the mount namespace that has the mount
	// (mount).
	MountNS uint64 `json:"mntns,omitempty"`
	// Of is the namespace, as "type:[inode]", this one is the parent or
	// owner of (parent, owner).
	Of string `json:"of,omitempty"`
}

// Process is a process whose namespace link points at a namespace.
type Process struct {
	PID int `json:"pid"`
	// Comm is /proc/PID/comm as read (unescaped, untrusted); empty unless
	// [Options].Comm was set or the process exited before it was read.
	Comm string `json:"comm"`
}

// Namespace is one namespace of the model.
type Namespace struct {
	Type nsrel.Type
	Dev  uint64
	Ino  uint64
	// NSID is the kernel's 64-bit namespace ID (NS_GET_ID); HasNSID is
	// false on kernels without it or when it could not be read.
	NSID    uint64
	HasNSID bool
	// Parent is the parent namespace (user and PID namespaces), nil at
	// the top of what is visible.
	Parent *Namespace
	// Owner is the owning user namespace (for a user namespace, the same
	// as Parent), nil for the initial user namespace or when it is out of
	// reach.
	Owner *Namespace
	// OwnerUID is, for a user namespace, the UID that created it
	// (NS_GET_OWNER_UID) and -1 if unknown; for other types it is -1 (see
	// [Namespace.UID]).
	OwnerUID int64
	// OwnerName is the user name of OwnerUID from the system's name
	// service (see [Options].Passwd), or "" when the UID has no entry.
	OwnerName string
	// Processes are the processes in it (sorted by PID), for the types
	// in [Options].Types; empty for other types. Threads are not listed;
	// see FoundVia.
	Processes []Process
	// FoundVia lists how it was found: fds and mounts, at most
	// [MaxFoundVia] of each (the smallest by PID, TID, mount namespace
	// and path), and at most one each of the other kinds (the smallest
	// by PID, TID and Of), in the order of the Via constants.
	FoundVia []Found
	// FoundViaMore counts the fds and mounts that hold it beyond those
	// FoundVia lists.
	FoundViaMore int
	// Containers are the containers whose process lives in it; filled by
	// the caller from [ContainerSource]s.
	Containers []Container
	// Children are the namespaces whose Parent it is, sorted by inode.
	Children []*Namespace
}

// Name returns the namespace as "type:[inode]".
func (n *Namespace) Name() nsrel.Name { return nsrel.Name{Type: n.Type, Ino: n.Ino} }

// Key returns the namespace's identity.
func (n *Namespace) Key() Key { return Key{Dev: n.Dev, Ino: n.Ino} }

// UID returns the UID of the namespace's owner: OwnerUID for a user
// namespace, the owning user namespace's OwnerUID otherwise, -1 if unknown.
func (n *Namespace) UID() (uid int64, name string) {
	if n.Type == nsrel.TypeUser {
		return n.OwnerUID, n.OwnerName
	}
	if n.Owner != nil {
		return n.Owner.OwnerUID, n.Owner.OwnerName
	}
	return -1, ""
}

// Denied counts what could not be read for lack of privilege (EACCES,
// EPERM); processes that exited are not counted.
type Denied struct {
	// Processes whose namespace links could not be read.
	Processes int
	// PIDs are the first few (up to MaxDeniedPIDs) of those processes,
	// lowest first, so the notice can name them.
	PIDs []int
	// FDDirs: processes whose /proc/PID/fd could not be read.
	FDDirs int
	// MountNS: mount namespaces whose mountinfo or mounts could not be read.
	MountNS int
	// Links: parents of user namespaces and owners the kernel refused to
	// return although the namespace is not the initial one (they lie
	// outside the caller's user namespace).
	Links int
	// PIDParents: parents of PID namespaces the kernel refused to return
	// although the namespace is not the initial one (they lie above the
	// caller's PID namespace, whatever its privilege).
	PIDParents int
}

// Any reports whether anything was denied.
func (d Denied) Any() bool {
	return d.Processes != 0 || d.FDDirs != 0 || d.MountNS != 0 || d.Links != 0 || d.PIDParents != 0
}

// MaxDeniedPIDs is how many denied PIDs [Denied.PIDs] keeps.
const MaxDeniedPIDs = 5

// Model is the result of [Discover].
type Model struct {
	// Namespaces holds every namespace found, of every type.
	Namespaces map[Key]*Namespace
	// Denied counts what could not be read.
	Denied Denied
	// BelowFUSE counts the namespaces missing from the model that nsfs
	// bind mounts not opened may hold (each once; one a process holds
	// too is in the model), mounts not opened because their
	// path lies below a FUSE mount, whose server could hold the lookup
	// forever: a namespace held only by such a mount is not in the
	// model.
	BelowFUSE int
	// UnreadMounts counts the mount namespaces whose nsfs bind mounts
	// could not be read for another reason than permission (the helper
	// that joins them failed); UnreadWhy is the first reason.
	UnreadMounts int
	UnreadWhy    string
	// UnopenedNS counts the namespaces not in the model that nsfs bind
	// mounts a mount table listed (and still listed after the attempt)
	// hold, but whose mount points could not be opened: another mount
	// covers it, the path no longer leads there (a directory renamed or
	// replaced by a symlink), or the reader's root has been mounted
	// over. Only namespaces of the types the scan reads from every
	// process's links count: user and PID namespaces as asked for in
	// [Options.Types], the mount namespaces when bind mounts are read,
	// and every type when user namespaces are asked for without
	// [Options.NoOtherTypes]. A namespace BelowFUSE counts is not
	// counted again. UnopenedWhy is the first reason.
	UnopenedNS  int
	UnopenedWhy string
	// unopened are the namespaces UnopenedNS counts (for tests).
	unopened []Key
	// OutOfFDs counts the files the scan could not open because no file
	// descriptor was left: the process had as many open as its
	// RLIMIT_NOFILE allows (EMFILE), or the system ran out (ENFILE). On
	// a kernel without NS_GET_ID the scan holds every namespace it found
	// open until it ends, so a host with more namespaces than the limit
	// runs it out (with NS_GET_ID it holds what the limit allows and
	// checks the rest by ID). A process,
	// namespace or mount table not opened is missing from the model, and
	// so is what only it would have shown: the model is incomplete.
	OutOfFDs int
	// ReusedInodes counts the namespaces, met while the scan ran at the
	// inode of one it did not hold open (past its budget of
	// descriptors), that were not that one: it died, and they are
	// missing from the model.
	ReusedInodes int
	// SkippedSockets counts the open sockets not asked for their network
	// namespace because copying one (pidfd_getfd(2)) could have changed
	// it: net_cls or net_prio cgroups (cgroup v1) are in use, whose class
	// ID and priority index a copy gives the socket (the copier's), or
	// that could not be told. Then no socket is asked, and a network
	// namespace held only by a socket, and a user namespace only such
	// namespaces own, is missing from the model. It also counts, as
	// UnaskedSockets does, those not asked for want of the helper
	// process that asks them (it failed, or was given up: see
	// sockhelper.go). SkippedWhy says why.
	SkippedSockets int
	UnaskedSockets int
	SkippedWhy     string
}

// NewModel returns an empty model. Add namespaces with [Model.Add] and
// call [Model.Link] when done (Discover does both).
func NewModel() *Model { return &Model{Namespaces: make(map[Key]*Namespace)} }

// Add adds n to the model, replacing a namespace with the same key.
func (m *Model) Add(n *Namespace) { m.Namespaces[n.Key()] = n }

// Link fills the Children of every namespace from the Parent links and
// sorts children by inode and processes by PID. Call it after changing
// parents.
func (m *Model) Link() {
	for _, n := range m.Namespaces {
		n.Children = n.Children[:0]
	}
	for _, n := range m.Namespaces {
		if n.Parent != nil {
			n.Parent.Children = append(n.Parent.Children, n)
		}
		slices.SortFunc(n.Processes, func(a, b Process) int { return a.PID - b.PID })
		for i, f := range n.FoundVia {
			if f.Via == ViaProcess && len(n.Processes) > 0 {
				n.FoundVia[i].PID = n.Processes[0].PID
			}
		}
		trimFound(n)
	}
	for _, n := range m.Namespaces {
		sortNS(n.Children)
	}
}

func sortNS(s []*Namespace) {
	slices.SortFunc(s, func(a, b *Namespace) int {
		if a.Ino != b.Ino {
			if a.Ino < b.Ino {
				return -1
			}
			return 1
		}
		if a.Dev < b.Dev {
			return -1
		} else if a.Dev > b.Dev {
			return 1
		}
		return 0
	})
}

// Of returns the namespaces of type t, sorted by inode.
func (m *Model) Of(t nsrel.Type) []*Namespace {
	var out []*Namespace
	for _, n := range m.Namespaces {
		if n.Type == t {
			out = append(out, n)
		}
	}
	sortNS(out)
	return out
}

// Roots returns the namespaces of type t without a parent, sorted by
// inode: normally one (the initial namespace), more when the caller cannot
// see the top of the hierarchy.
func (m *Model) Roots(t nsrel.Type) []*Namespace {
	var out []*Namespace
	for _, n := range m.Namespaces {
		if n.Type == t && n.Parent == nil {
			out = append(out, n)
		}
	}
	sortNS(out)
	return out
}

// Lookup returns the namespace of type t with inode ino, or nil. If
// several devices have that inode (not seen on Linux, where nsfs is one
// device), the first by device is returned.
func (m *Model) Lookup(t nsrel.Type, ino uint64) *Namespace {
	var found *Namespace
	for k, n := range m.Namespaces {
		if k.Ino == ino && n.Type == t && (found == nil || n.Dev < found.Dev) {
			found = n
		}
	}
	return found
}

// Notice returns one line saying what could not be read, or "" when
// nothing was denied or left out.
func (m *Model) Notice() string {
	fuse := outOfFDsNotice(m.OutOfFDs)
	switch {
	case m.ReusedInodes == 1:
		fuse = join(fuse, "1 namespace was replaced by a new one with its inode while the scan ran: the new one is missing (run again)")
	case m.ReusedInodes > 1:
		fuse = join(fuse, fmt.Sprintf("%d namespaces were replaced by new ones with their inodes while the scan ran: the new ones are missing (run again)", m.ReusedInodes))
	}
	switch {
	case m.BelowFUSE == 1:
		fuse = join(fuse, "did not open 1 namespace bind mount below a FUSE mount, or an overlay that may be on one (its server could block the lookup for good)")
	case m.BelowFUSE > 1:
		fuse = join(fuse, fmt.Sprintf("did not open %d namespace bind mounts below FUSE mounts, or overlays that may be on one (their servers could block the lookup for good)", m.BelowFUSE))
	}
	switch {
	case m.UnreadMounts == 1:
		fuse = join(fuse, "could not read the bind mounts of 1 mount namespace ("+m.UnreadWhy+")")
	case m.UnreadMounts > 1:
		fuse = join(fuse, fmt.Sprintf("could not read the bind mounts of %d mount namespaces (%s, ...)", m.UnreadMounts, m.UnreadWhy))
	}
	switch {
	case m.UnopenedNS == 1:
		fuse = join(fuse, "could not open 1 namespace through the bind mounts that mount tables list ("+m.UnopenedWhy+")")
	case m.UnopenedNS > 1:
		fuse = join(fuse, fmt.Sprintf("could not open %d namespaces through the bind mounts that mount tables list (%s, ...)", m.UnopenedNS, m.UnopenedWhy))
	}
	if m.SkippedSockets > 0 {
		fuse = join(fuse, skippedNotice(m.SkippedSockets, m.SkippedWhy))
	}
	d := m.Denied
	if !d.Any() {
		return fuse
	}
	return join(deniedNotice(d), fuse)
}

// skippedNotice says that n sockets were not asked for their network
// namespaces, and why ([Model.SkippedSockets]).
func skippedNotice(n int, why string) string {
	s := "did not ask 1 socket for its network namespace (which may be missing)"
	if n > 1 {
		s = fmt.Sprintf("did not ask %d sockets for their network namespaces (which may be missing)", n)
	}
	if why != "" {
		s += ": " + why
	}
	return s
}

// outOfFDsNotice says that n opens found no file descriptor left, with
// the limit; "" when n is 0.
func outOfFDsNotice(n int) string {
	if n == 0 {
		return ""
	}
	files := "1 file"
	if n > 1 {
		files = strconv.Itoa(n) + " files"
	}
	limit := ""
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		limit = " of " + strconv.FormatUint(rl.Cur, 10)
	}
	return "ran out of file descriptors (too many open files): could not open " + files +
		", so namespaces, parents or owners may be missing (the scan needs descriptors for its own files and holds namespaces open while it can; raise the limit" + limit + ": ulimit -n)"
}

// join joins two parts of a notice ("" when there is none).
func join(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// deniedNotice says what d counts.
func deniedNotice(d Denied) string {
	var parts []string
	add := func(n int, what, one, many string) {
		switch {
		case n == 1:
			parts = append(parts, what+" 1 "+one)
		case n > 1:
			parts = append(parts, fmt.Sprintf("%s %d %s", what, n, many))
		}
	}
	add(d.Processes, "the namespaces of", "process", "processes")
	if len(d.PIDs) > 0 && len(parts) > 0 {
		ps := make([]string, len(d.PIDs))
		for i, p := range d.PIDs {
			ps[i] = strconv.Itoa(p)
		}
		more := ""
		if d.Processes > len(d.PIDs) {
			more = " ..."
		}
		parts[0] += " [PID " + strings.Join(ps, " ") + more + "]"
	}
	add(d.FDDirs, "the open files of", "process", "processes")
	add(d.MountNS, "the bind mounts of", "mount namespace", "mount namespaces")
	add(d.Links, "the parent or owner of", "namespace (outside this user namespace)", "namespaces (outside this user namespace)")
	add(d.PIDParents, "the parent of", "PID namespace (above this PID namespace)", "PID namespaces (above this PID namespace)")
	var st syscall.Stat_t
	initialUser := os.Geteuid() == 0 && syscall.Stat("/proc/self/ns/user", &st) == nil && st.Ino == nsrel.InitialUserNSIno
	initialPID := syscall.Stat("/proc/self/ns/pid", &st) == nil && st.Ino == nsrel.InitialPIDNSIno
	return "could not read " + strings.Join(parts, ", ") + " (" + deniedHint(d, initialUser, initialPID) + ")"
}

// deniedHint says why d's reads were refused and where to run to see
// everything: as root in the initial user namespace for what privilege
// hides, in the initial PID namespace for the parents of PID namespaces
// above the caller's (which no privilege returns).
func deniedHint(d Denied, initialUser, initialPID bool) string {
	var where []string
	if !initialUser && (d.Processes != 0 || d.FDDirs != 0 || d.MountNS != 0 || d.Links != 0) {
		where = append(where, "as root in the initial user namespace")
	}
	if !initialPID && d.PIDParents != 0 {
		where = append(where, "in the initial PID namespace")
	}
	hint := "permission denied"
	if d.PIDParents != 0 && d.PIDParents == d.Links+d.PIDParents+d.Processes+d.FDDirs+d.MountNS {
		hint = "the kernel shows no PID namespace above the caller's"
	}
	if len(where) > 0 {
		hint += "; run " + strings.Join(where, " and ") + " to see everything"
	}
	return hint
}

var viaOrder = map[Via]int{
	ViaProcess: 1, ViaPIDForChildren: 2, ViaTask: 3, ViaFD: 4, ViaSocket: 5, ViaMount: 6, ViaParent: 7, ViaOwner: 8,
}

// foundLess orders Found entries: by kind (process first, owner last),
// then PID, TID, mount namespace, path and the namespace reached from.
// MaxFoundVia bounds the fds, and the mounts, that [Namespace.FoundVia]
// lists of one namespace (the rest are counted in FoundViaMore): any
// process can dup(2) a descriptor of a namespace a million times, at 8
// bytes each, and every one listed cost the scan about 265 bytes (a
// review made lsuserns take 265 MB, 900 MB with --json).
const MaxFoundVia = 64

// trimFound sorts n.FoundVia and keeps the [MaxFoundVia] smallest fds
// and mounts, counting the others in n.FoundViaMore. Trimming a list
// again after more were added keeps the smallest of all.
func trimFound(n *Namespace) {
	slices.SortStableFunc(n.FoundVia, func(a, b Found) int {
		if foundLess(a, b) {
			return -1
		}
		if foundLess(b, a) {
			return 1
		}
		return 0
	})
	kept := n.FoundVia[:0]
	count := map[Via]int{}
	for _, f := range n.FoundVia {
		if f.Via == ViaFD || f.Via == ViaMount {
			if count[f.Via] == MaxFoundVia {
				n.FoundViaMore++
				continue
			}
			count[f.Via]++
		}
		kept = append(kept, f)
	}
	clear(n.FoundVia[len(kept):])
	n.FoundVia = kept
}

func foundLess(a, b Found) bool {
	if a.Via != b.Via {
		return viaOrder[a.Via] < viaOrder[b.Via]
	}
	if a.PID != b.PID {
		return a.PID < b.PID
	}
	if a.TID != b.TID {
		return a.TID < b.TID
	}
	if a.MountNS != b.MountNS {
		return a.MountNS < b.MountNS
	}
	if a.Path != b.Path {
		return a.Path < b.Path
	}
	return a.Of < b.Of
}
