package inspect

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/idmap"
)

// Reasons recorded in [audit.UserMaps.Error].
const (
	// NoProcess: no process lives in the namespace, so its maps cannot
	// be read (a namespace held only by a descendant, a bind mount or an
	// fd).
	NoProcess = "not readable (no process in this namespace)"
	// NoParentMaps: the namespace's own lines (relative to its parent)
	// cannot be told from its host maps, because the parent's maps are
	// not readable.
	NoParentMaps = "uid_map and gid_map relative to the parent not known (the parent's maps are not readable)"
	// NotAtTop: the inspector does not run in the top namespace of the
	// chain, so the maps it reads are not relative to the top.
	NotAtTop = "not readable (the inspector does not run in the top user namespace of the chain)"
)

// hostMaps are one level's maps relative to the top of the chain.
type hostMaps struct {
	maps idmap.Maps
	ok   bool
	why  string
}

// userMaps returns the maps of every level of chain, given the maps of
// level 0 read through the pinned process (relative to the inspector's
// namespace) and a way to find a process in an ancestor namespace.
// Levels between the process's namespace and the top are read through a
// process found in them (find); the top is the inspector's own.
func userMaps(chain []audit.UserNS, own hostMaps, find func(audit.UserNS) (idmap.Maps, error)) []audit.UserMaps {
	n := len(chain)
	if n == 0 {
		return nil
	}
	self, selfErr := ownUserNS()
	atTop := selfErr == nil && self.Ino == chain[n-1].Ino && self.Dev == chain[n-1].Dev
	host := make([]hostMaps, n)
	var topLines idmap.Maps // the top's own lines, relative to its parent
	for i, level := range chain {
		switch {
		case !atTop:
			host[i] = hostMaps{why: NotAtTop}
		case i == n-1:
			m, err := idmap.ReadOwn(level.Ino == nsrel.InitialUserNSIno)
			if err != nil {
				host[i] = hostMaps{why: "not readable: " + err.Error()}
				continue
			}
			topLines = m
			// Relative to the top itself, every ID its lines map is
			// itself, and no other exists there: every ID in the
			// initial namespace (its lines are the identity), the IDs
			// a rootless runtime's namespace maps in that one.
			m.UID, m.GID = idmap.Own(m.UID), idmap.Own(m.GID)
			host[i] = hostMaps{maps: m, ok: true}
		case i == 0:
			host[i] = own
		default:
			m, err := find(level)
			if err != nil {
				host[i] = hostMaps{why: err.Error()}
				continue
			}
			host[i] = hostMaps{maps: m, ok: true}
		}
	}
	out := make([]audit.UserMaps, n)
	for i, level := range chain {
		um := audit.UserMaps{Ino: level.Ino}
		h := host[i]
		if !h.ok {
			um.Error = h.why
			out[i] = um
			continue
		}
		um.HostUIDMap, um.HostGIDMap, um.SetGroups = ranges(h.maps.UID), ranges(h.maps.GID), h.maps.SetGroups
		switch {
		case i == n-1:
			um.UIDMap, um.GIDMap = ranges(topLines.UID), ranges(topLines.GID)
		case i == n-2:
			um.UIDMap, um.GIDMap = um.HostUIDMap, um.HostGIDMap
		case host[i+1].ok:
			p := host[i+1].maps
			um.UIDMap, um.GIDMap = ranges(idmap.Relative(h.maps.UID, p.UID)), ranges(idmap.Relative(h.maps.GID, p.GID))
		default:
			um.Error = NoParentMaps
		}
		out[i] = um
	}
	return out
}

// ranges converts a map into the record's form: an empty list for an
// empty map (a namespace whose map was not written maps nothing), never
// null, which the record keeps for "not known".
func ranges(m idmap.Map) []audit.IDRange {
	if m == nil {
		return []audit.IDRange{}
	}
	out := make([]audit.IDRange, len(m))
	for i, r := range m {
		out[i] = audit.IDRange(r)
	}
	return out
}

// Ranges converts recorded ranges back into a map.
func Ranges(r []audit.IDRange) idmap.Map {
	if r == nil {
		return nil
	}
	out := make(idmap.Map, len(r))
	for i, x := range r {
		out[i] = idmap.Range(x)
	}
	return out
}

func ownUserNS() (nsrel.Ident, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &st); err != nil {
		return nsrel.Ident{}, os.NewSyscallError("stat /proc/self/ns/user", err)
	}
	return nsrel.Ident{Dev: st.Dev, Ino: st.Ino}, nil
}

// ReadPinned reads the maps of the process pid through /proc/PID and
// then checks that the process is still the one pidfd pins and still in
// the user namespace want (a process may setns(2) or unshare(2) into
// another), so that the maps are those of want.
func ReadPinned(pidfd, pid int, want nsrel.Ident) (idmap.Maps, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	if err := inUserNS(pid, dir, want); err != nil {
		return idmap.Maps{}, err
	}
	return readPinned(pidfd, pid, dir, want, idmap.Read)
}

// readPinned reads with read, then checks that pid is still in want and
// still the process pidfd pins.
func readPinned(pidfd, pid int, dir string, want nsrel.Ident, read func(string) (idmap.Maps, error)) (idmap.Maps, error) {
	m, err := read(dir)
	if err != nil {
		return idmap.Maps{}, gone(pid, err)
	}
	if err := inUserNS(pid, dir, want); err != nil {
		if errors.Is(err, ErrGone) {
			// Exited, not moved: said as such ([ProcessWith] returns
			// it as it is).
			return idmap.Maps{}, err
		}
		return idmap.Maps{}, fmt.Errorf("inspect: pid %d left user:[%d] while its maps were read", pid, want.Ino)
	}
	if err := alive(pidfd, pid); err != nil {
		return idmap.Maps{}, err
	}
	return m, nil
}

// alive checks that the process pidfd pins (pid) has not exited: a
// pidfd polls readable once the whole process has exited ([ErrGone]; a
// zombie too, and a process reaped, whose PID may be reused). poll needs
// no permission over the process (signal 0 wanted CAP_KILL for another
// UID's, and a seccomp filter's EPERM would have read as alive).
func alive(pidfd, pid int) error {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	for err == unix.EINTR {
		n, err = unix.Poll(fds, 0)
	}
	switch {
	case err != nil:
		return fmt.Errorf("inspect: pid %d: %w", pid, os.NewSyscallError("poll pidfd", err))
	case n == 0:
		return nil
	case fds[0].Revents&unix.POLLIN != 0:
		return fmt.Errorf("inspect: pid %d: %w", pid, ErrGone)
	}
	return fmt.Errorf("inspect: pid %d: poll pidfd: events %#x", pid, fds[0].Revents)
}

// inUserNS checks that process pid (/proc directory dir) is in want
// (by inode: every namespace file lives on the one nsfs device).
func inUserNS(pid int, dir string, want nsrel.Ident) error {
	var buf [64]byte
	ino, err := userNSIno(dir+"/ns/user", buf[:])
	if err != nil {
		return gone(pid, os.NewSyscallError("readlink", err))
	}
	if ino != want.Ino {
		return fmt.Errorf("inspect: pid %d is not in user:[%d]", pid, want.Ino)
	}
	return nil
}

// ancestorMaps returns a find function for userMaps that takes live's
// scan of the running processes (made at the first call: only a chain
// deeper than one level below the top needs it) for a process in the
// namespace.
func ancestorMaps(l *LiveOnce) func(audit.UserNS) (idmap.Maps, error) {
	return func(level audit.UserNS) (idmap.Maps, error) {
		live, liveErr := l.Get()
		if liveErr != nil {
			return idmap.Maps{}, fmt.Errorf("not readable: %v", liveErr)
		}
		for _, l := range live.Namespaces {
			if l.Ident == (nsrel.Ident{Dev: level.Dev, Ino: level.Ino}) {
				var m idmap.Maps
				err := l.WithProcess(func(pid int) (err error) {
					m, err = readLive(pid, l.Ident, true)
					return err
				})
				if err != nil {
					return idmap.Maps{}, fmt.Errorf("not readable: %v", err)
				}
				return m, nil
			}
		}
		return idmap.Maps{}, errors.New(NoProcess)
	}
}
