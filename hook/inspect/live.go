package inspect

import (
	"errors"
	"fmt"
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
	// PID is the process its maps were read through: the lowest PID in
	// it that was still there when they were read.
	PID int
	// PIDs are the processes the scan found in it, lowest first: when
	// one exits or leaves, the namespace is read through the next one.
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
}

// LiveOnce is one [Live] scan, made at the first [LiveOnce.Get] and
// shared by everyone who needs the running processes within one
// decision: the maps of a nested container's ancestors ([ProcessWith])
// and disjoint_from_running read the same scan instead of two.
type LiveOnce struct {
	budget  time.Duration
	once    sync.Once
	scanned atomic.Bool
	scan    *Scan
	err     error
}

// NewLiveOnce returns a LiveOnce whose scan may take budget from its
// start (no limit when zero; a negative budget is already spent).
func NewLiveOnce(budget time.Duration) *LiveOnce { return &LiveOnce{budget: budget} }

// Scanned says whether the scan was made (by a Get that returned).
func (l *LiveOnce) Scanned() bool { return l.scanned.Load() }

// Get scans at the first call and returns that scan at every call.
func (l *LiveOnce) Get() (*Scan, error) {
	l.once.Do(func() {
		var deadline time.Time
		if l.budget != 0 {
			deadline = time.Now().Add(l.budget)
		}
		l.scan, l.err = Live(deadline)
		l.scanned.Store(true)
	})
	return l.scan, l.err
}

// ErrIncomplete matches errors of a scan that ran out of time.
var ErrIncomplete = errors.New("scan of the running processes did not finish in time")

// Live scans /proc for the user namespaces processes live in now, other
// than the caller's own, and reads each one's maps through the first
// process found in it ([ReadPinned]: pinned by a pidfd, so a PID reused
// during the scan cannot lend its maps to another namespace). Processes
// that exit during the scan are skipped. With a non-zero deadline, a scan
// still running at the deadline stops with an error matching
// [ErrIncomplete]; an unreadable /proc is an error too: a caller that
// needs every namespace must not take a partial answer for a whole one.
// Processes the caller may not read are listed in [Scan.Denied].
// Threads are not read: a thread in another user namespace than its
// process is not found.
func Live(deadline time.Time) (*Scan, error) {
	self, err := ownUserNS()
	if err != nil {
		return nil, err
	}
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("inspect: read /proc: %w", err)
	}
	found := map[nsrel.Ident][]int{}
	var denied []int
	buf := make([]byte, 64)
	for i, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue
		}
		if i%64 == 0 && !deadline.IsZero() && time.Now().After(deadline) {
			return nil, fmt.Errorf("inspect: %w (%d of %d /proc entries read)", ErrIncomplete, i, len(names))
		}
		ino, err := userNSIno("/proc/"+name+"/ns/user", buf)
		if err != nil {
			if err == unix.ENOENT || err == unix.ESRCH {
				continue // exited
			}
			if err == unix.EACCES || err == unix.EPERM {
				denied = append(denied, pid)
				continue
			}
			return nil, fmt.Errorf("inspect: %w", os.NewSyscallError("readlink /proc/"+name+"/ns/user", err))
		}
		// Every namespace file lives on the one nsfs device.
		id := nsrel.Ident{Dev: self.Dev, Ino: ino}
		if id == self {
			continue
		}
		found[id] = append(found[id], pid)
	}
	if afterProcPass != nil {
		afterProcPass()
	}
	out := make([]LiveUserNS, 0, len(found))
	for id, pids := range found {
		slices.Sort(pids)
		out = append(out, LiveUserNS{Ident: id, PID: pids[0], PIDs: pids})
	}
	slices.SortFunc(out, func(a, b LiveUserNS) int { return a.PID - b.PID })
	for i := range out {
		if !deadline.IsZero() && time.Now().After(deadline) {
			return nil, fmt.Errorf("inspect: %w (maps of %d of %d user namespaces read)", ErrIncomplete, i, len(out))
		}
		out[i].Err = out[i].WithProcess(func(pid int) (err error) {
			out[i].Maps, err = readLive(pid, out[i].Ident, false)
			return err
		})
	}
	slices.Sort(denied)
	return &Scan{Namespaces: out, Denied: denied}, nil
}

// afterProcPass, when set by a test, runs between [Live]'s pass over
// /proc and its reads of the maps.
var afterProcPass func()

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

// InPIDNS reports whether process pid lives in PID namespace want or
// one below it. A process whose threads have all exited (a zombie
// included) gives an error matching [ErrGone]; one whose leader alone
// exited still runs.
func InPIDNS(pid int, want nsrel.Ident) (bool, error) {
	if allExited(pid) {
		return false, fmt.Errorf("inspect: pid %d: %w", pid, ErrGone)
	}
	ns, err := nsrel.Open("/proc/" + strconv.Itoa(pid) + "/ns/pid")
	if err != nil {
		return false, gone(pid, err)
	}
	defer ns.Close()
	return reaches(ns, want, nsrel.InitialPIDNSIno)
}
