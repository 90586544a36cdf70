package inspect

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/idmap"
)

// MaxDepth bounds the chain walks; the kernel allows 33 user and 32 PID
// namespaces below the initial ones, so a longer chain means a bug.
const MaxDepth = 40

// ErrGone matches errors for a process that exited (or whose PID was
// reused) while it was being inspected.
var ErrGone = errors.New("process exited during inspection")

// goneBefore is [ErrGone] for a process that was not there when the
// inspection began: it exited before (or the PID was never a process's).
type goneBefore struct{}

func (goneBefore) Error() string        { return "no such process (it exited before it could be inspected)" }
func (goneBefore) Is(target error) bool { return target == ErrGone }

// Func inspects the process pid, taking any scan of the running
// processes it needs from live (never nil): [ProcessWith], or a writer's
// own inspection around it.
type Func func(pid int, live *LiveOnce) (*audit.Ancestry, error)

// Process inspects the process pid. It fails with an error matching
// [ErrGone] when the process is gone before or during the inspection.
func Process(pid int) (*audit.Ancestry, error) {
	return ProcessWith(pid, NewLiveOnce(0))
}

// ProcessWith is [Process] reading the maps of the container's ancestors
// (a chain deeper than one level below the top) from live's scan, which
// the caller may go on to use for disjoint_from_running. A nil live
// means a scan of its own without a time limit.
func ProcessWith(pid int, live *LiveOnce) (*audit.Ancestry, error) {
	if live == nil {
		live = NewLiveOnce(0)
	}
	if pid <= 0 {
		return nil, fmt.Errorf("inspect: invalid pid %d", pid)
	}
	if err := procOurs(); err != nil {
		return nil, err
	}
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, fmt.Errorf("inspect: pid %d: %w", pid, goneBefore{})
		}
		if errors.Is(err, unix.ENOENT) {
			// The kernel's answer for a thread that is not its
			// process's main thread, and for a process being reaped.
			if tgid := threadGroup(pid); tgid > 0 && tgid != pid {
				return nil, fmt.Errorf("inspect: pid %d: not a process but a thread of process %d (pidfd_open: %w)", pid, tgid, err)
			}
			return nil, fmt.Errorf("inspect: pid %d: %w", pid, ErrGone)
		}
		return nil, fmt.Errorf("inspect: pid %d: %w", pid, os.NewSyscallError("pidfd_open", err))
	}
	pidfd := os.NewFile(uintptr(pfd), "pidfd:"+strconv.Itoa(pid))
	defer pidfd.Close()

	start, err := StartTime(pid)
	if err != nil {
		return nil, gone(pid, err)
	}
	userNS, pidNS, creds, viaPidfd, err := pinnedNamespaces(pfd, pid)
	if err != nil {
		return nil, err
	}
	defer userNS.Close()
	defer pidNS.Close()
	// The maps are read through /proc/PID too, and so checked by the
	// pidfd below as well (ReadPinned checks the process did not move to
	// another user namespace meanwhile).
	own := hostMaps{why: NotAtTop}
	if uid, err := nsrel.Identify(userNS); err != nil {
		return nil, fmt.Errorf("inspect: pid %d: %w", pid, err)
	} else if m, err := ReadPinned(pfd, pid, uid); err != nil {
		if errors.Is(err, ErrGone) {
			return nil, err
		}
		own.why = "not readable: " + err.Error()
	} else {
		own = hostMaps{maps: m, ok: true}
	}
	// The files are open; if the pinned process is still alive now, they
	// are its namespaces (and start is its start time), not those of a
	// process that reused the PID. (Namespaces from the pidfd ioctls are
	// its own in any case; its start time and maps still come from /proc.)
	if err := alive(pfd, pid); err != nil {
		return nil, err
	}
	// A zombie keeps its /proc/PID/ns links, but the pidfd ioctls say it
	// has exited (it has no namespaces left), and so does the poll above;
	// the fallback checks once more (a process whose leader alone exited
	// runs).
	if !viaPidfd && allExited(pid) {
		return nil, fmt.Errorf("inspect: pid %d: %w (a zombie)", pid, ErrGone)
	}
	a := &audit.Ancestry{PID: pid, StartTime: start, Creds: creds}
	if a.User, err = UserChain(userNS); err != nil {
		return nil, fmt.Errorf("inspect: pid %d: %w", pid, err)
	}
	if a.PIDNS, err = PIDChain(pidNS); err != nil {
		return nil, fmt.Errorf("inspect: pid %d: %w", pid, err)
	}
	a.Maps = userMaps(a.User, own, ancestorMaps(live))
	return a, nil
}

// threadGroup returns the Tgid of task tid (any task's ID opens
// /proc/TID, a thread's too), or 0.
func threadGroup(tid int) int {
	v, _ := StatusField(tid, "Tgid")
	n, _ := strconv.Atoi(v)
	return n
}

// StatusField returns the value of the line name of /proc/PID/status
// ("Uid" gives "0\t0\t0\t0"), space around it trimmed; ok is false when
// the file cannot be read or has no such line.
func StatusField(pid int, name string) (v string, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return "", false
	}
	_, rest, ok := strings.Cut("\n"+string(b), "\n"+name+":")
	if !ok {
		return "", false
	}
	line, _, _ := strings.Cut(rest, "\n")
	return strings.TrimSpace(line), true
}

// ReadHeld returns the IDs process pid holds (the Uid, Gid and Groups
// lines of /proc/PID/status), in this process's user namespace: when its
// main thread alone exited, those of a thread that runs (the exited
// leader's status keeps the IDs it had, which may be another UID's: a
// raw setresuid(2) changes one thread's).
func ReadHeld(pid int) (*audit.HeldIDs, error) {
	b, err := readStatus(pid)
	if err != nil {
		return nil, err
	}
	if statusLeaderExited(b) {
		err = inLiveThread(pid, func(dir string, _ int) error {
			b, err = idmap.ReadFileLimit(dir+"/status", maxStatus)
			if err == nil && statusLeaderExited(b) {
				err = unix.ESRCH // that thread exited too: the next
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return parseHeld(b)
}

// statusLeaderExited reports whether a /proc/PID/status says its thread
// is a zombie (State Z) while other threads of its process run
// (Threads more than 1): a main thread that alone exited.
func statusLeaderExited(status []byte) bool {
	var zombie bool
	threads := 0
	for line := range strings.Lines(string(status)) {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch name {
		case "State":
			zombie = strings.HasPrefix(strings.TrimSpace(rest), "Z")
		case "Threads":
			threads, _ = strconv.Atoi(strings.TrimSpace(rest))
		}
	}
	return zombie && threads > 1
}

// inLiveThread calls read with the /proc directory and ID of a thread
// that runs of process pid, whose main thread exited (/proc/PID/task/TID:
// the exited leader's /proc/PID has no mount table or mount namespace
// left to give, EINVAL and ENOENT; nor its pidfd namespaces), another
// while each exits before read is done: a process that keeps one thread
// at a time running must not be taken for exited, nor have a rule left
// unjudged. Its error is read's when read fails otherwise, ErrGone when
// the whole process exited, and one that is not ErrGone after
// maxThreadTries or maxThreadWait. A thread that execs becomes the
// leader: read then goes to it.
func inLiveThread(pid int, read func(dir string, tid int) error) error {
	task := "/proc/" + strconv.Itoa(pid) + "/task/"
	var last error
	exits := exitedThreads{deadline: time.Now().Add(maxThreadWait)}
	// At least the three listings that tell a process whose threads all
	// exited (see exitedThreads.gone), whatever the deadline: on a
	// loaded machine three listings of 2,000 zombies took more than
	// maxThreadWait, and such a process was not taken for exited.
	for try := 0; try < maxThreadTries && (try < 3 || time.Now().Before(exits.deadline)); try++ {
		// (Whole listings: one the deadline cut short tells nothing.)
		exits.whole = try < 3
		tid, zombies, err := exits.liveThread(pid)
		if exits.gone(pid, zombies) {
			return fmt.Errorf("inspect: pid %d: %w", pid, ErrGone)
		}
		if err != nil {
			last = err
			continue
		}
		err = read(task+strconv.Itoa(tid), tid)
		if err == nil || !threadExiting(err) || errors.Is(err, unix.EACCES) && threadRuns(pid, tid) {
			return err
		}
		last = err
	}
	return fmt.Errorf("inspect: pid %d: its main thread exited, and each of its other threads exited before it was read (%v)", pid, last)
}

// maxThreadTries and maxThreadWait bound the threads asked in turn, and
// the time spent asking them (a process whose tracer holds thousands of
// zombie threads makes each listing cost).
const (
	maxThreadTries = 1000
	maxThreadWait  = 200 * time.Millisecond
)

// threadRuns reports whether thread tid of process pid runs: it is
// listed, and not a zombie (an EACCES of one that runs is a denial, not
// its exit).
func threadRuns(pid, tid int) bool {
	state, ok := taskState("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid) + "/stat")
	return ok && state != 'Z' && state != 'X'
}

// taskState returns the state (R, S, Z, X...) a stat file of /proc
// gives; ok is false when it cannot be read (the thread is gone).
func taskState(path string) (state byte, ok bool) {
	stat, err := readStatPath(path)
	if err != nil {
		return 0, false
	}
	f, ok := statFields(stat, 1)
	if !ok {
		return 0, false
	}
	return f[0][0], true
}

// threadExiting reports whether err, of a read of a thread's /proc
// files or of its pidfd, is what a thread that exits meanwhile gives:
// ENOENT, ESRCH, EINVAL (no namespaces left: mountinfo), EACCES (the
// access check of its ns links, and of a pidfd's namespace ioctls,
// fails as it exits: once in some 4,000 reads of a process that churns
// its threads), ErrGone (a pidfd's ESRCH); not a request the kernel
// lacks (ErrUnsupported: ENOTTY or EINVAL).
func threadExiting(err error) bool {
	return !errors.Is(err, errors.ErrUnsupported) &&
		(errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EACCES) || errors.Is(err, ErrGone))
}

// liveThread returns the ID of a thread of process pid that runs, from
// /proc/PID/task: the leader if it runs again (a thread that execs
// becomes the leader, of the leader's ID), else the latest listed that
// runs (the kernel lists threads in the order they were made: a process
// whose tracer holds thousands of zombie threads lists them first; read
// in its order, not sorted by name as os.ReadDir does); or, when it
// finds none, the IDs of the other threads listed if every one is a
// zombie (a traced thread that exited stays one until its tracer reaps
// it, while one that is not traced leaves the list at once, passing by
// state X: a thread gone or going since the listing ends the listing's
// look, the next has the one that runs at its end). A thread once seen
// a zombie in this call is not read again (it stays one until it is
// reaped and gone) but in the listing that would take the process for
// exited (its ID may have gone to a new thread where the host's IDs
// wrap within the call); the scan stops at the call's deadline.
func (n *exitedThreads) liveThread(pid int) (tid int, zombies []int, err error) {
	task := "/proc/" + strconv.Itoa(pid) + "/task/"
	d, err := os.Open(task)
	if err != nil {
		return 0, nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return 0, nil, err
	}
	if threadRuns(pid, pid) {
		return pid, nil, nil
	}
	others := 0
	for i, name := range slices.Backward(names) {
		t, err := strconv.Atoi(name)
		if err != nil || t == pid {
			continue
		}
		others++
		if n.zombie[t] && n.same < 2 {
			// (Not in a listing that may end the read as gone: a
			// thread seen a zombie that its tracer reaped may have
			// left its ID to a new one, where the host's IDs wrap
			// fast.)
			zombies = append(zombies, t)
			continue
		}
		if i%256 == 0 && !n.whole && time.Now().After(n.deadline) {
			return 0, nil, os.ErrDeadlineExceeded
		}
		state, ok := taskState(task + name + "/stat")
		switch {
		case !ok || state == 'X':
			// Gone since the listing (or going): the threads churn,
			// and the next listing has the one that runs at its end
			// (not the older zombies' stats read to the head).
			return 0, nil, unix.ESRCH
		case state == 'Z':
			if n.zombie == nil {
				n.zombie = map[int]bool{}
			}
			n.zombie[t] = true
			zombies = append(zombies, t)
		default:
			return t, nil, nil
		}
	}
	if others == 0 || len(zombies) != others {
		zombies = nil
	}
	return 0, zombies, unix.ESRCH
}

// exitedThreads follows, for one read of a process whose main thread
// exited, the listings of its threads in which every thread but the
// leader was a zombie.
type exitedThreads struct {
	deadline time.Time    // of the read: maxThreadWait
	zombie   map[int]bool // the threads seen zombies
	last     []int        // the zombies of the last listing, if all were
	same     int          // the listings in a row that found just those
	whole    bool         // this listing is read whole, whatever the deadline
}

// gone reports whether process pid has exited whole: all its threads
// (allExited), or every one but the leader a zombie in three listings
// in a row of the same threads (zombies, from [exitedThreads.liveThread]).
// One such listing can miss a thread started after it began while the
// one it saw exits, and a process whose tracer (its own) leaves its
// exited threads zombies while one churns makes many: it makes new
// threads, while one that exited makes none.
func (n *exitedThreads) gone(pid int, zombies []int) bool {
	switch {
	case zombies == nil:
		n.last, n.same = nil, 0
	case slices.Equal(zombies, n.last):
		n.same++
	default:
		n.last, n.same = zombies, 1
	}
	return n.same >= 3 || allExited(pid)
}

// readStatus reads /proc/PID/status, up to maxStatus bytes (a larger
// one fails with EFBIG), with plain system calls.
func readStatus(pid int) ([]byte, error) {
	b, err := idmap.ReadFileLimit("/proc/"+strconv.Itoa(pid)+"/status", maxStatus)
	if err != nil {
		return nil, gone(pid, err)
	}
	return b, nil
}

// fdReader reads a descriptor with plain read(2), for mountinfo's
// bufio.Reader: os.File would set up the runtime's poller on the hook's
// path.
type fdReader int

func (r fdReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(r), p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// maxStatus bounds a read of /proc/PID/status: its Groups line lists up
// to 65,536 IDs (NGROUPS_MAX) of up to 10 digits. (idmap.ReadFile's 16
// KiB took a process of 3,000 groups for unreadable.)
const maxStatus = 1 << 20

// maxMountinfo bounds a read of /proc/PID/mountinfo, a line at a time
// (a node's table of 100,000 mounts is about 20 MB); maxMountLine bounds
// a line (two escaped paths of up to PATH_MAX, and the rest).
const (
	maxMountinfo = 64 << 20
	maxMountLine = 64 << 10
)

// ReadFacts reads what the policy needs beyond the namespaces of the
// process a names (a.PID), when a rule asks for it: the IDs it holds
// (a.Held) and, with mounts, its idmapped mounts (a.IDMapped), both
// through /proc, and then checks that the process is still the one a was
// made of (its start time): otherwise it sets a.FactsGone, and a.FactsErr
// when a read failed otherwise. It reads each once per ancestry: the
// mounts on the first call that asks for them, also after a call that
// did not (a block judged before the one chosen, when a key of the
// container is unknown, may have held_ids_mapped alone).
//
// The mounts are read by deadline (zero: no limit): a read still going
// then stops, "not read in time" in a.FactsErr (the rules that judge
// them cannot be checked). The kernel prints a table
// of stacked mounts in time quadratic in their number, and the
// container's creator sets its mounts up: 20,000 on one point took 4 s,
// past the hook's deadline, whose watchdog then let a container the
// policy refuses run unrecorded under on_error=allow.
func ReadFacts(a *audit.Ancestry, mounts bool, deadline time.Time) {
	heldNow, mountsNow := !a.FactsRead, mounts && !a.MountsRead
	if !heldNow && !mountsNow || a.FactsGone {
		return
	}
	a.FactsRead, a.MountsRead = true, a.MountsRead || mounts
	var held *audit.HeldIDs
	var herr error
	if heldNow {
		held, herr = ReadHeld(a.PID)
	}
	var idmapped []audit.IDMappedMount
	var merr error
	if mountsNow {
		idmapped, merr = readIDMapped(a.PID, deadline)
	}
	start, serr := StartTime(a.PID)
	if serr != nil && !goneErrno(serr) {
		// Not read (out of descriptors, say): not taken for gone.
		a.FactsErr = vocab.JoinErrors(a.FactsErr, "its start time: "+serr.Error())
		return
	}
	if serr != nil || start != a.StartTime || errors.Is(herr, ErrGone) || errors.Is(merr, ErrGone) {
		// Exited (a short job at poststart), or its PID another's now:
		// nothing of it to judge, as when the inspection finds it gone.
		a.FactsGone = true
		return
	}
	// Each read on its own: a mount table that cannot be read does not
	// lose the IDs the process holds.
	if heldNow && herr == nil {
		if held.Groups == nil {
			// Read, none: the record says [] (null: left out).
			held.Groups = []uint32{}
		}
		a.Held = held
	}
	if mountsNow && merr == nil {
		a.IDMapped = idmapped
	}
	if err := errors.Join(herr, merr); err != nil {
		a.FactsErr = vocab.JoinErrors(a.FactsErr, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
}

// goneErrno reports whether err says the process is no longer there.
func goneErrno(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) || errors.Is(err, ErrGone)
}

// ReadIDMapped returns the idmapped mounts of process pid's mount
// namespace (its /proc/PID/mountinfo): their mount points, escaped as
// there, and their ID maps where the kernel tells them.
//
// At createRuntime the process's mount namespace is still a copy of the
// runtime's, before pivot_root(2): the runtime's own idmapped mounts (a
// systemd-homed home) are there too, and are left out, matched by their
// device, root and mount point in this process's mountinfo, and by their
// maps where the kernel tells them.
func ReadIDMapped(pid int) ([]audit.IDMappedMount, error) {
	return readIDMapped(pid, time.Time{})
}

// readIDMapped is [ReadIDMapped] by deadline (see [ReadFacts]).
func readIDMapped(pid int, deadline time.Time) ([]audit.IDMappedMount, error) {
	proc := "/proc/" + strconv.Itoa(pid)
	mine, err := idmappedIn(proc+"/mountinfo", deadline)
	if errors.Is(err, errTimeUp) {
		return nil, err
	}
	// The mount namespace, opened when the mounts are listed (from the
	// thread whose table was read, when the main thread exited).
	var ns *mountNS
	var nsErr error
	defer func() { ns.Close() }()
	nsOf := func() (*mountNS, error) {
		if ns == nil && nsErr == nil {
			ns, nsErr = openMountNS(proc)
		}
		return ns, nsErr
	}
	if err != nil && !allExited(pid) {
		// Its main thread alone exited (or did, and a thread that
		// execs is the leader now): a thread that runs tells, its
		// mount table and the ID of its mount namespace both (a thread
		// may have one of its own).
		if err := inLiveThread(pid, func(dir string, _ int) (err error) {
			if mine, err = idmappedIn(dir+"/mountinfo", deadline); err != nil || len(mine) == 0 {
				return err
			}
			ns.Close()
			if ns, nsErr = openMountNS(dir); nsErr != nil && threadExiting(nsErr) {
				err, ns, nsErr = nsErr, nil, nil
				return err // the next thread's, both
			}
			return nil
		}); err != nil {
			return nil, err
		}
	} else if err != nil {
		// Exited (a zombie's mountinfo says EINVAL).
		return nil, fmt.Errorf("inspect: pid %d: %w (%v)", pid, ErrGone, err)
	}
	if len(mine) == 0 {
		return nil, nil
	}
	host, err := idmappedIn("/proc/self/mountinfo", deadline)
	if err != nil {
		return nil, err
	}
	keys := make(map[mountKey]bool, len(mine))
	for _, m := range mine {
		keys[m.mountKey] = true
	}
	host = slices.DeleteFunc(host, func(m idmappedMount) bool { return !keys[m.mountKey] })
	read := mountsOf(nsOf, mine, deadline)
	var hostRead []audit.IDMappedMount
	if len(host) > 0 {
		self, err := openMountNS("/proc/self")
		hostRead = mountsOf(func() (*mountNS, error) { return self, err }, host, deadline)
		self.Close()
	}
	if pastDeadline(deadline) {
		// Maps cut short (the host's, say) would not match their
		// copies: the runtime's own mounts judged as the container's.
		return nil, fmt.Errorf("inspect: the mounts' maps: %w", errTimeUp)
	}
	var out []audit.IDMappedMount
	for _, i := range notCopies(signatures(mine, read), signatures(host, hostRead)) {
		out = append(out, read[i])
	}
	return out, nil
}

// mountsOf returns the idmapped mounts ms of process pid's mount
// namespace with their maps, or why they are not known.
func mountsOf(nsOf func() (*mountNS, error), ms []idmappedMount, deadline time.Time) []audit.IDMappedMount {
	out := make([]audit.IDMappedMount, len(ms))
	for i, m := range ms {
		out[i].Point = m.point
	}
	readMountMaps(nsOf, out, ms, deadline)
	return out
}

// signatures returns what tells the idmapped mounts ms apart from the
// host's copies: their device, root and mount point, and their maps
// (read) when they were read. A mount propagated from the host that
// lands beside the creator's own at the same point, of the same root,
// took the creator's place as the copy by its key alone.
func signatures(ms []idmappedMount, read []audit.IDMappedMount) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		maps := "maps not read"
		if read[i].UIDMap != nil && read[i].GIDMap != nil {
			maps = fmt.Sprint(read[i].UIDMap, read[i].GIDMap)
		}
		out[i] = m.dev + " " + m.root + " " + m.point + " " + maps
	}
	return out
}

// notCopies returns the indices of the mounts of mine beyond the copies
// of host's, both given by their signatures: as many of mine as host has
// of each are copies. A mount the container's creator stacked on a copy
// of the host's (a rootfs path chosen to be the host's mount point, the
// same source) shows the same line twice, and was left out as a copy.
func notCopies(mine, host []string) []int {
	left := make(map[string]int, len(host))
	for _, m := range host {
		left[m]++
	}
	var out []int
	for i, m := range mine {
		if left[m] > 0 {
			left[m]--
			continue
		}
		out = append(out, i)
	}
	return out
}

// idmappedMount is an idmapped mount: its ID in mountinfo (reused once it
// is gone) and what tells it from the host's copies of it.
type idmappedMount struct {
	id uint32
	mountKey
}

// mountKey is a mount's device, root and mount point, escaped as
// mountinfo escapes them.
type mountKey struct{ dev, root, point string }

// idmappedIn reads the mountinfo file path a line at a time, bounded,
// and returns its idmapped mounts.
func idmappedIn(path string, deadline time.Time) ([]idmappedMount, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	r := bufio.NewReaderSize(fdReader(fd), maxMountLine)
	var out []idmappedMount
	for read, n := 0, 0; ; n++ {
		line, err := r.ReadSlice('\n')
		read += len(line)
		switch {
		case err == bufio.ErrBufferFull:
			return nil, fmt.Errorf("%s: a line longer than %d bytes", path, maxMountLine)
		case read > maxMountinfo:
			return nil, fmt.Errorf("%s: larger than %d bytes", path, maxMountinfo)
		case n%64 == 0 && pastDeadline(deadline):
			return nil, fmt.Errorf("inspect: %s: %w (%d mounts by then)", path, errTimeUp, n)
		}
		if m, ok := parseIDMappedLine(line); ok {
			out = append(out, m)
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// parseIDMappedLine parses a mountinfo line whose mount options (the
// sixth field) hold "idmapped".
func parseIDMappedLine(line []byte) (idmappedMount, bool) {
	if !bytes.Contains(line, []byte("idmapped")) {
		return idmappedMount{}, false
	}
	f := bytes.Fields(line)
	if len(f) < 6 {
		return idmappedMount{}, false
	}
	// An ID not parsed is 0, no mount's: its maps are then not found.
	id, _ := strconv.ParseUint(string(f[0]), 10, 32)
	for opt := range bytes.SplitSeq(f[5], []byte{','}) {
		if string(opt) == "idmapped" {
			return idmappedMount{uint32(id), mountKey{string(f[2]), string(f[3]), string(f[4])}}, true
		}
	}
	return idmappedMount{}, false
}

// parseHeld reads the Uid, Gid and Groups lines of a status file.
func parseHeld(status []byte) (*audit.HeldIDs, error) {
	h := &audit.HeldIDs{}
	seen := 0
	for line := range strings.Lines(string(status)) {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != "Uid" && name != "Gid" && name != "Groups" {
			continue
		}
		var ids []uint32
		for f := range strings.FieldsSeq(rest) {
			v, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("inspect: status %s: %q is not an ID", name, f)
			}
			ids = append(ids, uint32(v))
		}
		switch name {
		case "Uid", "Gid":
			if len(ids) != 4 {
				return nil, fmt.Errorf("inspect: status %s: %d IDs, want 4", name, len(ids))
			}
			if name == "Uid" {
				h.UIDs = [4]uint32(ids)
			} else {
				h.GIDs = [4]uint32(ids)
			}
			seen++
		case "Groups":
			h.Groups = ids
			seen++
		}
	}
	if seen != 3 {
		return nil, errors.New("inspect: status lacks its Uid, Gid or Groups line")
	}
	return h, nil
}

// Parent returns the parent PID of process pid (field 4 of
// /proc/PID/stat).
func Parent(pid int) (int, error) {
	ppid, _, err := parentAndStart(pid)
	return ppid, err
}

// procOurs checks that /proc numbers processes as this process does:
// pidfd_open takes a PID of the caller's PID namespace, /proc/PID one of
// the namespace /proc was mounted for. With another's (a runtime run by
// `unshare -p -f` without a /proc of its own) the pidfd pinned one
// process and /proc/PID read another's start time and maps, without an
// error. /proc/self/status's NSpid lists this process's PID in every
// PID namespace from /proc's down to its own: one entry when they are
// the same. (Comparing /proc/self with getpid(2) would pass when the two
// PIDs happen to be equal.) Once it passed it is not checked again; a
// failure is (a long-running service's one-off read error).
func procOurs() error {
	if procChecked.Load() {
		return nil
	}
	status, err := idmap.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("inspect: /proc does not list this process (of another PID namespace, or not procfs): %w", err)
	}
	switch pids := nsPIDs(status); {
	case pids == nil:
		return errors.New("inspect: /proc/self/status has no NSpid (Linux 4.1 and later have it)")
	case len(pids) > 1:
		return fmt.Errorf("inspect: /proc is another PID namespace's (this process is PID %s there, %d in its own): its PIDs are not the state's; run the runtime with a /proc of its own PID namespace", pids[0], os.Getpid())
	}
	procChecked.Store(true)
	return nil
}

// nsPIDs returns the PIDs the NSpid line of a /proc/PID/status file
// lists: the process's PID in each PID namespace from /proc's down to
// its own. Nil when there is none, or it lists none.
func nsPIDs(status []byte) [][]byte {
	for line := range bytes.Lines(status) {
		if rest, ok := bytes.CutPrefix(line, []byte("NSpid:")); ok {
			return bytes.Fields(rest)
		}
	}
	return nil
}

// procChecked is set once [procOurs] passed.
var procChecked atomic.Bool

func gone(pid int, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("inspect: pid %d: %w (%v)", pid, ErrGone, err)
	}
	return fmt.Errorf("inspect: pid %d: %w", pid, err)
}

// UserChain walks the user namespace chain from ns to the top the caller
// can see. It does not close ns.
func UserChain(ns nsrel.Ref) ([]audit.UserNS, error) {
	var chain []audit.UserNS
	err := walk(ns, func(r nsrel.Ref) (bool, error) {
		id, err := nsrel.Identify(r)
		if err != nil {
			return false, err
		}
		uid, err := nsrel.OwnerUID(r)
		if err != nil {
			return false, err
		}
		nsid, err := optionalID(r)
		if err != nil {
			return false, err
		}
		chain = append(chain, audit.UserNS{Ino: id.Ino, Dev: id.Dev, ID: nsid, OwnerUID: uid})
		return id.Ino == nsrel.InitialUserNSIno, nil
	})
	return chain, err
}

// PIDChain walks the PID namespace chain from ns to the top the caller can
// see, with each level's owning user namespace. It does not close ns.
func PIDChain(ns nsrel.Ref) ([]audit.PIDNS, error) {
	var chain []audit.PIDNS
	err := walk(ns, func(r nsrel.Ref) (bool, error) {
		id, err := nsrel.Identify(r)
		if err != nil {
			return false, err
		}
		nsid, err := optionalID(r)
		if err != nil {
			return false, err
		}
		level := audit.PIDNS{Ino: id.Ino, Dev: id.Dev, ID: nsid}
		owner, err := nsrel.OwnerUserNS(r)
		switch {
		case err == nil:
			oid, ierr := nsrel.Identify(owner)
			owner.Close()
			if ierr != nil {
				return false, ierr
			}
			level.OwnerUserIno = &oid.Ino
		case errors.Is(err, fs.ErrPermission):
			// Owner outside our reach: record it as unknown.
		default:
			return false, err
		}
		chain = append(chain, level)
		return id.Ino == nsrel.InitialPIDNSIno, nil
	})
	return chain, err
}

// walk calls visit for ns and each of its ancestors until visit reports
// the initial namespace (which has no parent: asking the kernel would
// only cost an NS_GET_PARENT and the core's error for it) or
// NS_GET_PARENT says there is none the caller can see.
func walk(ns nsrel.Ref, visit func(nsrel.Ref) (initial bool, err error)) error {
	cur := ns
	var owned *nsrel.Namespace
	defer func() { owned.Close() }()
	for depth := 0; ; depth++ {
		if depth > MaxDepth {
			return fmt.Errorf("namespace chain longer than %d levels", MaxDepth)
		}
		initial, err := visit(cur)
		if err != nil || initial {
			return err
		}
		parent, err := nsrel.Parent(cur)
		if errors.Is(err, fs.ErrPermission) {
			return nil
		}
		if err != nil {
			return err
		}
		owned.Close()
		owned, cur = parent, parent
	}
}

func optionalID(r nsrel.Ref) (*uint64, error) {
	id, err := nsrel.ID(r)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &id, nil
}

// ClockTick is the unit of process start times (USER_HZ: 100 on every
// architecture Linux containers run on).
const ClockTick = 10 * time.Millisecond

// A Moment is a time on the boot clock (CLOCK_BOOTTIME: since boot,
// suspend included), where process start times are ([StartMoment]):
// a time placed there when it is known ([Now], [MomentOf]) and compared
// with a start time later is not moved by the wall clock stepping in
// between (a start after an event judged by the wall clock read at the
// check, stepped forward since the event, was taken for one after it).
// Zero is unknown.
type Moment time.Duration

// Now returns now on the boot clock; zero when it cannot be read.
func Now() Moment {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return 0
	}
	return Moment(ts.Nano())
}

// MomentOf places wall time t (another process's: containerd's time of
// an event, just published) on the boot clock: now less how long ago t
// was (by the monotonic clock when t has its reading, else by the wall
// clock now). A t ahead of now is now. Zero for a zero t.
func MomentOf(t time.Time) Moment {
	now := Now()
	if t.IsZero() || now == 0 {
		return 0
	}
	return max(now-Moment(max(time.Since(t), 0)), 1)
}

// StartMoment returns the moment a process with the given start time
// (clock ticks since boot, [StartTime]) started, cut down to a tick.
func StartMoment(startTicks uint64) Moment {
	return Moment(time.Duration(startTicks) * ClockTick)
}

// StartedAfter reports whether a process with the given start time
// surely started after m (a millisecond of margin for reading the
// clocks; the start time is cut down to a tick): a process that took
// the PID of one known to run at m. False for a zero m.
func StartedAfter(startTicks uint64, m Moment) bool {
	return m != 0 && StartMoment(startTicks) > m+Moment(time.Millisecond)
}

// StartedBefore reports whether a process with the given start time
// surely started before m (a tick and a millisecond of margin). False
// for a zero m.
func StartedBefore(startTicks uint64, m Moment) bool {
	return m != 0 && StartMoment(startTicks)+Moment(ClockTick+time.Millisecond) < m
}

// StartTime returns field 22 of /proc/PID/stat, the process start time in
// clock ticks since boot.
func StartTime(pid int) (uint64, error) {
	stat, err := readStat(pid)
	if err != nil {
		return 0, err
	}
	return ParseStatStartTime(stat)
}

// Runs reports whether process pid runs with the given start time: it
// is not gone, its PID not taken by another process, and it has not
// exited (a zombie its parent has not reaped: a stopped or hung
// container shim's).
func Runs(pid int, startTime uint64) bool {
	st, err := StartTime(pid)
	return err == nil && st == startTime && !allExited(pid)
}

// allExited reports whether every thread of process pid has exited (a
// zombie, or dead and being reaped: state Z or X) or the process is
// gone. A process whose thread-group leader exited while its other
// threads run has not: its stat says Z, but it runs, in the namespaces
// its credentials name.
func allExited(pid int) bool {
	state, threads, ok := procState(pid)
	return !ok || (state == 'Z' || state == 'X') && threads <= 1
}

// procState reads the state (field 3) and num_threads (field 20) of
// /proc/PID/stat; ok is false when the process is gone.
func procState(pid int) (state byte, threads int, ok bool) {
	stat, err := readStat(pid)
	if err != nil {
		return 0, 0, false
	}
	fields, ok := statFields(stat, 18)
	if !ok {
		return 0, 0, false
	}
	threads, err = strconv.Atoi(string(fields[17]))
	return fields[0][0], threads, err == nil
}

// readStat reads /proc/PID/stat.
func readStat(pid int) ([]byte, error) {
	return readStatPath("/proc/" + strconv.Itoa(pid) + "/stat")
}

// readStatPath reads a stat file of /proc.
func readStatPath(path string) ([]byte, error) {
	// Read without os.ReadFile, which would set up the runtime's poller
	// (see [nsrel.Open]). A stat line
	// is well under 4 KiB (a 64-byte name and 50 numbers).
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	for err == unix.EINTR {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var buf [4096]byte
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], nil
}

// ParseStatStartTime extracts the start time (field 22) from the contents
// of a /proc/PID/stat file. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func ParseStatStartTime(stat []byte) (uint64, error) {
	// fields[0] is field 3 (state), so field 22 is fields[19].
	fields, ok := statFields(stat, 20)
	switch {
	case fields == nil:
		return 0, errors.New("inspect: malformed /proc/PID/stat: no ')'")
	case !ok:
		return 0, errors.New("inspect: malformed /proc/PID/stat: too few fields")
	}
	v, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("inspect: malformed /proc/PID/stat start time: %w", err)
	}
	return v, nil
}

// statFields returns the fields of a /proc/PID/stat line after the
// command name (in parentheses, which it may itself hold): fields[0] is
// field 3, the state (nil without the parentheses). ok is false when
// there are fewer than n.
func statFields(stat []byte, n int) (fields [][]byte, ok bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil, false
	}
	fields = bytes.Fields(stat[i+1:])
	return fields, len(fields) >= n
}

// DescendsFrom reports whether process pid is a descendant of process
// ancestor (its child, grandchild...), as the parent PIDs in /proc say
// now: a process whose parent exited was given another (a subreaper, or
// the init of its PID namespace) and no longer is. A parent that started
// after its child is a later process given the parent's PID while the
// walk read the chain: the chain is broken there, and pid does not
// descend.
func DescendsFrom(pid, ancestor int) bool {
	ppid, start, err := parentAndStart(pid)
	for range 256 { // deeper trees are not containers' processes
		if err != nil || ppid <= 1 {
			return false
		}
		if ppid == ancestor {
			return true
		}
		var pstart uint64
		if ppid, pstart, err = parentAndStart(ppid); err == nil && pstart > start {
			return false
		}
		start = pstart
	}
	return false
}

// parentAndStart reads the parent PID and the start time of process pid
// from one read of its /proc/PID/stat.
func parentAndStart(pid int) (int, uint64, error) {
	stat, err := readStat(pid)
	if err != nil {
		return 0, 0, err
	}
	fields, ok := statFields(stat, 2)
	if !ok {
		return 0, 0, fmt.Errorf("inspect: /proc/%d/stat: no parent PID", pid)
	}
	ppid, err := strconv.Atoi(string(fields[1]))
	if err != nil {
		return 0, 0, err
	}
	start, err := ParseStatStartTime(stat)
	return ppid, start, err
}

// PIDNSInit reports whether process pid is the init (PID 1) of its own
// PID namespace: it made that namespace, rather than joining one whose
// other processes were there before it (NSpid in /proc/PID/status).
func PIDNSInit(pid int) (bool, error) {
	// Plain system calls, as readStat: os.ReadFile would set up the
	// runtime's poller on the hook's path.
	// Bounded as ReadHeld's: idmap.ReadFile's 16 KiB took a process of
	// 2,500 groups for one that made its PID namespace.
	status, err := readStatus(pid)
	if err != nil {
		return false, err
	}
	if f := nsPIDs(status); len(f) > 0 {
		return string(f[len(f)-1]) == "1", nil
	}
	return false, fmt.Errorf("inspect: /proc/%d/status: no NSpid", pid)
}

// errTimeUp ends a read of the mounts at its deadline ([ReadFacts]).
var errTimeUp = errors.New("not read in time")

// pastDeadline reports whether deadline (zero: none) has passed.
func pastDeadline(deadline time.Time) bool {
	return !deadline.IsZero() && time.Now().After(deadline)
}
