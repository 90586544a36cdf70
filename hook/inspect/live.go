package inspect

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/idmap"
)

// LiveUserNS is a user namespace a process lives in now.
type LiveUserNS struct {
	// Ident is the namespace.
	Ident nsrel.Ident
	// PID is the process its maps were read through: the first found
	// in it that was still there when they were read.
	PID int
	// PIDs are the processes the scan found in it, lowest first: when
	// one exits or leaves, the namespace is read through another.
	PIDs []int
	// Maps are its maps relative to the caller's user namespace
	// (without SetGroups); Err says why they could not be read.
	Maps idmap.Maps
	Err  error
}

// Scan is what [Live] found.
type Scan struct {
	// Namespaces are the user namespaces processes live in, other than
	// the caller's, by lowest PID.
	Namespaces []LiveUserNS
	// Denied are the processes whose user namespace the caller may not
	// read (ptrace access mode checks: a process with capabilities the
	// caller lacks), by PID.
	Denied []int
	// Own is the caller's own user namespace (the initial one, on a
	// host) and the processes in it, by PID; its maps are not read
	// (they map every ID of its parent, none of it a container's own).
	// Its processes hold IDs all the same (see [LiveUserNS.Held]): a
	// container run without a user namespace of its own as a host UID,
	// or a host service.
	Own LiveUserNS
}

// LiveOnce is one [Live] scan, made at the first [LiveOnce.Get] and
// shared by everyone who needs the running processes within one
// decision: the maps of a nested container's ancestors ([ProcessWith])
// and disjoint_from_running read the same scan instead of two.
type LiveOnce struct {
	budget   time.Duration
	once     sync.Once
	scanned  atomic.Bool
	deadline time.Time
	scan     *Scan
	err      error
}

// NewLiveOnce returns a LiveOnce whose scan may take budget from its
// start (no limit when zero; a negative budget is already spent).
func NewLiveOnce(budget time.Duration) *LiveOnce { return &LiveOnce{budget: budget} }

// Scanned says whether the scan was made (by a Get that returned).
func (l *LiveOnce) Scanned() bool { return l.scanned.Load() }

// Get scans at the first call and returns that scan at every call.
func (l *LiveOnce) Get() (*Scan, error) {
	l.once.Do(func() {
		if l.budget != 0 {
			l.deadline = time.Now().Add(l.budget)
		}
		l.scan, l.err = Live(l.deadline)
		l.scanned.Store(true)
	})
	return l.scan, l.err
}

// Deadline returns when the budget of the scan, counted from its start,
// runs out: zero before the first [LiveOnce.Get] and for a scan without
// a limit. A caller that goes on to work through what the scan found
// stops there too.
func (l *LiveOnce) Deadline() time.Time {
	if !l.scanned.Load() {
		return time.Time{}
	}
	return l.deadline
}

// FactsDeadline returns when reads of the container's process beside the
// scan ([ReadFacts]) that start now must end: half the scan's budget
// from now (past already for a negative budget); zero without a limit.
// The scan, if it is made, has its whole budget from its own start.
func (l *LiveOnce) FactsDeadline() time.Time {
	if l.budget == 0 {
		return time.Time{}
	}
	return time.Now().Add(l.budget / 2)
}

// ErrIncomplete matches errors of a scan that ran out of time.
var ErrIncomplete = errors.New("scan of the running processes did not finish in time")

// Live scans /proc for the user namespaces processes live in now, other
// than the caller's own, and reads each one's maps through a process
// found in it ([ReadPinned]: pinned by a pidfd, so a PID reused during
// the scan cannot lend its maps to another namespace), right when the
// namespace is first met: a namespace whose processes exit quickly is
// read before its process goes. When every process found in a namespace
// went before its maps could be read, a second pass over /proc looks for
// it again: found again and still unread (its processes keep forking and
// exiting), it cannot be checked (an error); not found, it is gone. With
// a non-zero deadline, a scan still running at the deadline stops with
// an error matching [ErrIncomplete]; an unreadable /proc is an error
// too: a caller that needs every namespace must not take a partial
// answer for a whole one. Processes the caller may not read are listed
// in [Scan.Denied]. Threads are not read: a thread in another user
// namespace than its process is not found.
func Live(deadline time.Time) (*Scan, error) {
	self, err := ownUserNS()
	if err != nil {
		return nil, err
	}
	s := &liveScan{self: self, deadline: deadline, byID: map[nsrel.Ident]int{}}
	if _, err := s.pass(nil); err != nil {
		return nil, err
	}
	unread := map[nsrel.Ident]bool{}
	for i := range s.out {
		if s.out[i].Err != nil && goneErr(s.out[i].Err) {
			unread[s.out[i].Ident] = true
		}
	}
	if len(unread) > 0 {
		if betweenPasses != nil {
			betweenPasses()
		}
		again, err := s.pass(unread)
		if err != nil {
			return nil, err
		}
		for i := range s.out {
			l := &s.out[i]
			switch {
			case l.Err == nil || !goneErr(l.Err):
			case again[l.Ident]:
				l.Err = fmt.Errorf("inspect: user:[%d]: every process found in it exited before its maps could be read, in two passes over /proc (its processes keep forking and exiting)", l.Ident.Ino)
			case !errors.Is(l.Err, ErrGone):
				// Its processes left it (setns, unshare), and none is in it
				// now: gone, as if they had exited.
				l.Err = fmt.Errorf("inspect: user:[%d]: %w (%w)", l.Ident.Ino, ErrGone, l.Err)
			}
		}
	}
	for i := range s.out {
		slices.Sort(s.out[i].PIDs)
		s.out[i].PIDs = slices.Compact(s.out[i].PIDs)
	}
	slices.SortFunc(s.out, func(a, b LiveUserNS) int { return a.PIDs[0] - b.PIDs[0] })
	slices.Sort(s.denied)
	return &Scan{Namespaces: s.out, Denied: slices.Compact(s.denied), Own: LiveUserNS{Ident: self, PIDs: s.own}}, nil
}

// liveScan is a [Live] scan under way.
type liveScan struct {
	self     nsrel.Ident
	deadline time.Time
	out      []LiveUserNS
	byID     map[nsrel.Ident]int // index in out
	denied   []int
	own      []int // the processes in self
	entries  int   // /proc entries read, for the deadline's error
}

// goneErr reports whether err says that a process exited or left its
// namespace: the namespace may be read through another.
func goneErr(err error) bool { return errors.Is(err, ErrGone) || errors.Is(err, errLeft) }

// pass reads /proc once, a few entries at a time, each one's user
// namespace link as soon as it is listed, and the maps of a namespace as
// soon as one of its processes is met while they are unread. With only
// set, it looks at those namespaces alone and returns those it met.
func (s *liveScan) pass(only map[nsrel.Ident]bool) (map[nsrel.Ident]bool, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	met := map[nsrel.Ident]bool{}
	buf := make([]byte, 64)
	for {
		names, err := d.Readdirnames(256)
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("inspect: read /proc: %w", err)
		}
		for _, name := range names {
			pid, err := strconv.Atoi(name)
			if err != nil || pid <= 0 {
				continue
			}
			if s.entries++; s.entries%64 == 0 && !s.deadline.IsZero() && time.Now().After(s.deadline) {
				return nil, fmt.Errorf("inspect: %w (%d /proc entries read)", ErrIncomplete, s.entries)
			}
			ino, err := userNSIno("/proc/"+name+"/ns/user", buf)
			if err != nil {
				if err == unix.ENOENT || err == unix.ESRCH {
					continue // exited
				}
				if err == unix.EACCES || err == unix.EPERM {
					s.denied = append(s.denied, pid)
					continue
				}
				return nil, fmt.Errorf("inspect: %w", os.NewSyscallError("readlink /proc/"+name+"/ns/user", err))
			}
			// Every namespace file lives on the one nsfs device.
			id := nsrel.Ident{Dev: s.self.Dev, Ino: ino}
			if id == s.self && only == nil {
				s.own = append(s.own, pid)
			}
			if id == s.self || only != nil && !only[id] {
				continue
			}
			met[id] = true
			i, ok := s.byID[id]
			if !ok {
				i = len(s.out)
				s.byID[id] = i
				s.out = append(s.out, LiveUserNS{Ident: id, PID: pid})
			}
			l := &s.out[i]
			l.PIDs = append(l.PIDs, pid)
			if ok && (l.Err == nil || !goneErr(l.Err)) {
				continue // read already, or unreadable for another reason
			}
			if beforeMapsRead != nil {
				beforeMapsRead(pid)
			}
			l.PID = pid
			l.Maps, l.Err = readLive(pid, id, false)
		}
		if err == io.EOF || len(names) == 0 {
			return met, nil
		}
	}
}

// beforeMapsRead and betweenPasses, when set by a test, run before [Live]
// reads a namespace's maps through process pid, and before its second
// pass over /proc.
var (
	beforeMapsRead func(pid int)
	betweenPasses  func()
)

// userNSIno reads the inode of a user namespace link with readlink(2),
// a third of the cost of stat(2) on /proc/PID/ns/user (which follows the
// link).
func userNSIno(path string, buf []byte) (uint64, error) {
	n, err := unix.Readlink(path, buf)
	if err != nil {
		return 0, err
	}
	name, err := nsrel.ParseName(string(buf[:n]))
	if err != nil || name.Type != nsrel.TypeUser {
		return 0, unix.EINVAL
	}
	return name.Ino, nil
}

// readLive reads the maps of user namespace id through process pid,
// which the scan found in it ([idmap.ReadProc]: one process throughout,
// checked to be in id after the read). With setgroups it reads the
// setgroups file too.
func readLive(pid int, id nsrel.Ident, setgroups bool) (idmap.Maps, error) {
	m, ino, err := idmap.ReadProc("/proc/"+strconv.Itoa(pid), setgroups)
	if err != nil {
		return idmap.Maps{}, gone(pid, err)
	}
	if ino != id.Ino {
		return idmap.Maps{}, fmt.Errorf("inspect: pid %d while its maps were read: %w user:[%d]", pid, errLeft, id.Ino)
	}
	return m, nil
}

// Held returns the host IDs the namespace's processes hold (their UIDs,
// GIDs and supplementary groups, [ReadHeld]), each read while the
// process was still in the namespace: a process keeps the IDs it had
// before unshare(2) or setns(2), whatever the namespace maps (a
// namespace whose maps are not written maps nothing). Processes gone or
// gone elsewhere are skipped; another error stops it, and so does one
// from stop, called before each read (a status of 65,536 groups takes
// 25 ms to read: every read is checked against the caller's deadline).
func (l *LiveUserNS) Held(stop func() error) (uids, gids idmap.Spans, err error) {
	err = l.EachHeld(stop, func(_ int, u, g idmap.Spans) bool {
		// Merged at each process: a namespace of many processes of
		// many groups each holds a few spans, not millions.
		uids, gids = append(uids, u...).Normal(), append(gids, g...).Normal()
		return true
	})
	if err != nil {
		return nil, nil, err
	}
	return uids, gids, nil
}

// EachHeld calls f with each of the namespace's processes and the IDs
// it holds, as [LiveUserNS.Held] reads them, until f returns false.
func (l *LiveUserNS) EachHeld(stop func() error, f func(pid int, uids, gids idmap.Spans) bool) error {
	pids := l.PIDs
	if len(pids) == 0 {
		pids = []int{l.PID}
	}
	buf := make([]byte, 64)
	for _, pid := range pids {
		if stop != nil {
			if err := stop(); err != nil {
				return err
			}
		}
		h, err := ReadHeld(pid)
		if err == nil {
			var ino uint64
			if ino, err = userNSIno("/proc/"+strconv.Itoa(pid)+"/ns/user", buf); err == nil && ino != l.Ident.Ino {
				err = errLeft
			}
		}
		switch {
		case err != nil && (goneErr(err) || goneErrno(err)):
			continue
		case err != nil:
			return fmt.Errorf("inspect: pid %d in user:[%d]: the IDs it holds: %w", pid, l.Ident.Ino, err)
		}
		u, g := h.Spans()
		if !f(pid, u, g) {
			return nil
		}
	}
	return nil
}

// errLeft matches errors for a process that is no longer in the
// namespace it was found in (setns(2) or unshare(2) since).
var errLeft = errors.New("left")

// WithProcess calls f with the namespace's processes in turn, lowest PID
// first, until f returns nil or an error other than that the process
// exited ([ErrGone]) or left the namespace: a namespace is not taken for
// empty because the one process it was read through went away while
// others stay. It sets l.PID to the process of the last call and returns
// f's last error.
func (l *LiveUserNS) WithProcess(f func(pid int) error) error {
	pids := l.PIDs
	if len(pids) == 0 {
		pids = []int{l.PID}
	}
	var err error
	for _, pid := range pids {
		l.PID = pid
		if err = f(pid); err == nil || !errors.Is(err, ErrGone) && !errors.Is(err, errLeft) {
			return err
		}
	}
	return err
}

// Descends reports whether the user namespace of process pid, which must
// still be id, is inner or lies below it (its chain of parents passes
// through inner). A process whose threads have all exited (a zombie
// included: its credentials, and so its user namespace link, stay until
// it is reaped) gives an error matching [ErrGone]; one whose leader
// alone exited still runs.
func Descends(pid int, id nsrel.Ident, inner nsrel.Ident) (bool, error) {
	if allExited(pid) {
		return false, fmt.Errorf("inspect: pid %d: %w", pid, ErrGone)
	}
	ns, err := nsrel.Open("/proc/" + strconv.Itoa(pid) + "/ns/user")
	if err != nil {
		return false, gone(pid, err)
	}
	defer ns.Close()
	got, err := nsrel.Identify(ns)
	if err != nil {
		return false, err
	}
	if got != id {
		return false, fmt.Errorf("inspect: pid %d: %w user:[%d]", pid, errLeft, id.Ino)
	}
	return reaches(ns, inner, nsrel.InitialUserNSIno)
}

// reaches reports whether ns is target or lies below it: whether the
// walk up its parents, which stops at the namespace with inode top,
// passes through target.
func reaches(ns nsrel.Ref, target nsrel.Ident, top uint64) (bool, error) {
	found := false
	err := walk(ns, func(r nsrel.Ref) (bool, error) {
		cur, err := nsrel.Identify(r)
		if err != nil {
			return false, err
		}
		if cur == target {
			found = true
			return true, nil
		}
		return cur.Ino == top, nil
	})
	return found, err
}

// InPIDNS reports whether process pid, found in user namespace user,
// lives in PID namespace want or one below it. A process whose threads
// have all exited (a zombie included) gives an error matching [ErrGone];
// one whose leader alone exited still runs. So does one no longer in
// user, checked after its PID namespace was opened: the process found
// there exited and its PID was reused (or it moved), and the PID
// namespace read is another process's (a host process's, taken for one
// that shares the container's user namespace from outside its PID
// namespace, and the container refused).
func InPIDNS(pid int, want, user nsrel.Ident) (bool, error) {
	if allExited(pid) {
		return false, fmt.Errorf("inspect: pid %d: %w", pid, ErrGone)
	}
	dir := "/proc/" + strconv.Itoa(pid)
	ns, err := nsrel.Open(dir + "/ns/pid")
	if err != nil {
		return false, gone(pid, err)
	}
	defer ns.Close()
	if err := inUserNS(pid, dir, user); err != nil {
		if !errors.Is(err, ErrGone) {
			// Not the process found there: gone, for the caller.
			err = fmt.Errorf("%w: %w", err, ErrGone)
		}
		return false, err
	}
	return reaches(ns, want, nsrel.InitialPIDNSIno)
}
