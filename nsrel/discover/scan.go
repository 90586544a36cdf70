package discover

import (
	"bytes"
	"cmp"
	"errors"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/nsrel"
)

// Options selects what [Discover] reads. The zero value reads every source
// for user and PID namespaces.
type Options struct {
	// Types are the types whose namespaces are listed with their
	// processes: nsrel.TypeUser and/or nsrel.TypePID (with
	// pid_for_children); nil means both. Namespaces of every type are
	// still followed from fds and bind mounts for their owners, and with
	// nsrel.TypeUser also from every process's other ns links (cgroup,
	// ipc, mnt, net, pid, time, uts; see NoOtherTypes), whose owning user
	// namespace may have no process.
	Types []nsrel.Type
	// NoThreads skips the threads of multi-threaded processes.
	NoThreads bool
	// NoFDs skips open file descriptors.
	NoFDs bool
	// NoMounts skips nsfs bind mounts.
	NoMounts bool
	// NoSockets skips, when owners are read (user namespaces asked for,
	// NoOtherTypes false), asking each open socket for its network
	// namespace (pidfd_getfd(2) and SIOCGSKNS).
	NoSockets bool
	// NoOtherTypes skips, when user namespaces are asked for, the
	// processes' links to namespaces of other types (see the Types
	// field), which are read only for their owners. It saves seven
	// readlinkat(2) calls per process, at the price of missing a
	// user namespace whose only tie is such a namespace.
	NoOtherTypes bool
	// Comm reads /proc/PID/comm of every process into [Process].Comm.
	Comm bool
	// Workers is the number of parallel scanners; 0 means GOMAXPROCS.
	Workers int
	// Passwd is the passwd file for owner names; "" means the system's
	// name service (NSS, through getent(1)), else /etc/passwd.
	Passwd string
}

// node is the scanner's bookkeeping around a Namespace. A node is created
// only by a goroutine that holds an open fd of the namespace and resolves
// it at once (parent, owner, owner UID, ID): a namespace in the model is
// never left half-known, and a Parent or Owner link never points at a
// namespace that is dropped later because the reference that found it
// vanished.
//
// A node keeps its namespace open (fd) until the scan ends. A pinned
// namespace cannot die, so its inode cannot be given to another
// namespace while the scan runs: an inode read from a link afterwards
// names this namespace and no other. seq orders the nodes' creation: a
// link read before a node existed may have named a namespace that died
// and left its inode to the node's, and is checked by opening it.
//
// Past the scan's budget of descriptors (see pinBudget), on a kernel
// that answers NS_GET_ID, a new node is loose: resolved, then closed.
// Every reference to a loose node is opened and its ID compared with the
// node's, which the kernel never gives to another namespace; so a host
// with more namespaces than RLIMIT_NOFILE allows is scanned whole.
type node struct {
	ns    *Namespace
	vias  uint8 // bit per Via already recorded once
	loose bool  // not pinned: references are checked by ID; set at creation
	fd    int   // the pinned nsfs file, -1 when loose or unpinned
	seq   uint64
}

var viaBit = map[Via]uint8{
	ViaProcess: 1, ViaPIDForChildren: 2, ViaTask: 4, ViaParent: 8, ViaOwner: 16, ViaSocket: 32,
}

type scanner struct {
	opts   Options
	procfd int
	// self is this process's PID as /proc numbers it (see procSelf), -1
	// if /proc does not list it; foreignPIDs is set when that is not
	// os.Getpid(): /proc belongs to an ancestor PID namespace (unshare
	// -p -f with the host's /proc), whose PIDs system calls such as
	// kcmp(2) would take for other processes.
	self        int
	foreignPIDs bool
	nsdev       uint64 // the device of nsfs
	fdCount     bool   // the size of /proc/PID/fd is the number of fds (Linux 6.2)
	wantUser    bool
	wantPID     bool
	roles       uint8 // the reasons to read links (role...) this scan has
	// noCopy says why no socket may be copied (see netcgroup.go); ""
	// when they may, or when sockets are not asked.
	noCopy string
	// skippedSocks counts the sockets not asked because a copy could
	// have changed them (see netcgroup.go).
	skippedSocks int
	// unaskedSocks counts the sockets not asked for want of a socket
	// helper: one gave up (a copy that was another file), or too many
	// were given up (sockHelpersLost, see sockhelper.go).
	unaskedSocks    atomic.Int64
	sockHelpersLost atomic.Int64
	sockPassLate    atomic.Bool // the pass ran out of time (sockPassTime)

	mu    sync.Mutex
	nodes map[Key]*node
	seq   atomic.Uint64 // the number of nodes created so far
	// readers are, per mount namespace inode, up to 3 tasks in it, for
	// reading its mount table when joining it is not allowed.
	readers map[uint64][]task

	deniedFDs, deniedMnt, deniedLinks, deniedPIDParents atomic.Int64
	// unreadMnt counts the mount namespaces the helper could not read,
	// unreadWhy holds the first reason (a string).
	unreadMnt atomic.Int64
	unreadWhy atomic.Value
	// belowFUSE are the nsfs bind mounts not opened: below a FUSE mount
	// (or an overlay that may be on one); under mu.
	belowFUSE []nsMount
	// noFDs counts the opens that failed for want of a file descriptor
	// (EMFILE, ENFILE); see short.
	noFDs atomic.Int64
	// pins counts the pinned nodes; past budget, new nodes are loose.
	// reused holds, by inode and ID, the namespaces met at a
	// loose node's inode that were not the node's (it died during the
	// scan); under mu.
	pins       atomic.Int64
	budget     int64
	reused     map[[2]uint64]bool
	deniedPIDs []int // processes whose links were denied; under mu
	// unopened are the nsfs mounts still listed whose mount point could
	// not be opened (see countUnopened); under mu.
	unopened []unopened
}

// short counts err if it says that no file descriptor was left (EMFILE:
// the process has as many open as its RLIMIT_NOFILE allows; ENFILE: the
// system is out), and reports whether it did. The scan holds the
// namespaces it found open until it ends (see node; all of them on a
// kernel without NS_GET_ID): past the limit, it cannot open processes,
// namespaces or mount tables, and what only they would have shown is
// missing from the model. That is counted, never skipped silently
// ([Model.OutOfFDs]).
func (s *scanner) short(err error) bool {
	if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
		s.noFDs.Add(1)
		return true
	}
	return false
}

// pinNext reports whether a new node is pinned: always for a namespace
// whose ID could not be read (a kernel without NS_GET_ID), else while
// the budget lasts and no open has found the descriptors run out
// (something else holds more than the budget allowed for).
func (s *scanner) pinNext(hasID bool) bool {
	return !hasID || noPinIDs || s.pins.Load() < s.budget && s.noFDs.Load() == 0
}

// denyProcess counts a process whose namespaces could not be read.
func (s *scanner) denyProcess(pid int) {
	s.mu.Lock()
	s.deniedPIDs = append(s.deniedPIDs, pid)
	s.mu.Unlock()
}

// afterProcesses, if set (by tests), is called between the process and
// the bind mount scans.
var afterProcesses func()

// Discover scans the host for namespaces and returns the model. It fails
// only when /proc cannot be read at all; everything else (vanished
// processes, denied reads) is skipped, denied reads are counted in
// [Model.Denied], and opens that found no file descriptor left in
// [Model.OutOfFDs].
func Discover(opts Options) (*Model, error) {
	initPoller()
	s := &scanner{
		opts:    opts,
		nodes:   make(map[Key]*node, 256),
		readers: make(map[uint64][]task),
	}
	defer s.unpin()
	if len(opts.Types) == 0 {
		s.wantUser, s.wantPID = true, true
	}
	for _, t := range opts.Types {
		switch t {
		case nsrel.TypeUser:
			s.wantUser = true
		case nsrel.TypePID:
			s.wantPID = true
		}
	}
	if s.wantUser {
		s.roles |= roleUser
		if !opts.NoOtherTypes {
			s.roles |= roleOwner
		}
	}
	if s.wantPID {
		s.roles |= rolePID
	}
	if !opts.NoMounts {
		s.roles |= roleMount
	}
	fd, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/proc", Err: err}
	}
	s.procfd = fd
	defer unix.Close(fd)
	// Everything the scan reads comes from /proc, and reopenNS opens
	// namespaces through its thread-self/fd links: anything else mounted
	// there (a tmpfs whose links point to a FIFO) would give made-up
	// answers or block.
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return nil, &os.PathError{Op: "statfs", Path: "/proc", Err: err}
	}
	if sfs.Type != unix.PROC_SUPER_MAGIC {
		return nil, &os.PathError{Op: "open", Path: "/proc", Err: errNotProc}
	}
	s.self = procSelf(fd)
	s.foreignPIDs = s.self != os.Getpid()
	s.budget = pinBudget(opts.Workers)
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &st); err != nil {
		if s.self < 0 && errors.Is(err, unix.ENOENT) {
			// A /proc mounted in a PID namespace this process is not
			// in (nsenter -m into a container's mount namespace alone).
			err = errForeignProc
		}
		return nil, &os.PathError{Op: "stat", Path: "/proc/self/ns/user", Err: err}
	}
	s.nsdev = st.Dev
	if err := unix.Stat("/proc/self/fd", &st); err == nil && st.Size > 0 {
		s.fdCount = true
	}
	if s.roles&roleOwner != 0 && !opts.NoSockets && !opts.NoFDs {
		s.noCopy = readNetGuard(fd)
	}

	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ws := make([]*worker, workers)
	for i := range ws {
		ws[i] = newWorker(s)
	}
	if err := s.scanProcesses(ws); err != nil {
		return nil, &os.PathError{Op: "getdents", Path: "/proc", Err: err}
	}
	if afterProcesses != nil {
		afterProcesses()
	}
	if !opts.NoMounts {
		s.scanMounts(ws)
	}
	// The namespaces' files are closed before the owners' names are
	// looked up (which reads /etc/passwd and may run getent): a scan that
	// used every descriptor the limit allows leaves them some.
	s.unpin()
	return s.model(), nil
}

// Descriptors the scan keeps free of pinned namespaces: per worker (its
// process and thread directories, a pidfd, a chain of parents and
// owners being resolved, a socket copy, a mount helper) and for the rest
// of the program (the runtime, standard streams, container sources).
const (
	reservePerWorker = 96
	reserveFDs       = 256
)

// noPinIDs, set by tests, plays a kernel without NS_GET_ID: every node is
// pinned.
var noPinIDs bool

// pinBudget returns how many nodes may be pinned (see node): RLIMIT_NOFILE
// less what the scan's workers and the program need.
func pinBudget(workers int) int64 {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == unix.RLIM_INFINITY {
		return 0
	}
	b := int64(min(rl.Cur, 1<<40)) - reserveFDs - reservePerWorker*int64(workers) - int64(openFDs())
	return max(b, 0)
}

// openFDs counts this process's open descriptors (those it inherited
// count against the limit too); 0 if /proc/self/fd cannot be read.
func openFDs() int {
	f, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	for {
		names, err := f.Readdirnames(1024)
		n += len(names)
		if err != nil {
			return n
		}
	}
}

// procSelf returns this process's PID as the /proc open as procfd
// numbers it (its "self" link), which is os.Getpid() only when that /proc
// belongs to this process's PID namespace; -1 when it does not list this
// process.
func procSelf(procfd int) int {
	buf := make([]byte, 32)
	n, err := unix.Readlinkat(procfd, "self", buf)
	if err != nil {
		return -1
	}
	pid, err := strconv.Atoi(string(buf[:n]))
	if err != nil {
		return -1
	}
	return pid
}

// initPoller makes sure the Go runtime's poller is set up before the
// scan may use every file descriptor the limit allows. The runtime sets
// it up (an epoll instance and an eventfd) when the program first opens
// an [os.File], and dies ("fatal error: runtime: eventfd failed") if it
// cannot: a program that had opened none before (lsuserns
// --no-containers) died so at the owner lookup after a scan that had run
// out of descriptors, and would when its first file were opened during
// such a scan (a container source's connection, a helper's start).
func initPoller() {
	if f, err := os.Open("/proc"); err == nil {
		f.Close()
	}
}

// scanProcesses scans every process in /proc with the workers, while
// /proc is still being listed: the listing streams chunks of PIDs to them.
// Then it merges what the workers collected.
func (s *scanner) scanProcesses(ws []*worker) error {
	chunks := make(chan []int, 64)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range chunks {
				for _, pid := range c {
					w.process(pid)
				}
			}
		}()
	}
	err := listPIDs(s.procfd, chunks)
	close(chunks)
	wg.Wait()
	s.countSkippedSockets(ws)
	s.askSockets(ws)
	for _, w := range ws {
		for _, pp := range w.procs {
			pp.nd.ns.Processes = append(pp.nd.ns.Processes, pp.p)
		}
		for ino, ps := range w.mnt {
			s.readers[ino] = append(s.readers[ino], ps...)
		}
	}
	// The 3 lowest PIDs (each worker's are its first, met in PID order)
	// read a mount table: the PID its mounts are found through is the
	// same from one run to the next, whichever worker met it first.
	for ino, ps := range s.readers {
		slices.SortFunc(ps, func(a, b task) int { return cmp.Or(cmp.Compare(a.pid, b.pid), cmp.Compare(a.tid, b.tid)) })
		s.readers[ino] = ps[:min(len(ps), 3)]
	}
	return err
}

// countSkippedSockets counts the sockets the workers met when none may be
// copied (see netcgroup.go), each once.
func (s *scanner) countSkippedSockets(ws []*worker) {
	if s.noCopy == "" {
		return
	}
	skipped := make(map[uint64]bool)
	for _, w := range ws {
		for ino := range w.socks {
			skipped[ino] = true
		}
	}
	s.skippedSocks = len(skipped)
}

// model builds the result from the resolved namespaces.
func (s *scanner) model() *Model {
	m := NewModel()
	owners := make(map[uint32]bool)
	for _, nd := range s.nodes {
		if n := nd.ns; n.Type == nsrel.TypeUser && n.OwnerUID >= 0 {
			owners[uint32(n.OwnerUID)] = true
		}
	}
	users := lookupUsers(s.opts.Passwd, slices.Sorted(maps.Keys(owners)))
	for k, nd := range s.nodes {
		n := nd.ns
		if n.Type == nsrel.TypeUser && n.OwnerUID >= 0 {
			n.OwnerName = users[uint32(n.OwnerUID)]
		}
		m.Namespaces[k] = n
	}
	m.Link()
	slices.Sort(s.deniedPIDs)
	m.Denied = Denied{
		Processes:  len(s.deniedPIDs),
		PIDs:       s.deniedPIDs[:min(len(s.deniedPIDs), MaxDeniedPIDs)],
		FDDirs:     int(s.deniedFDs.Load()),
		MountNS:    int(s.deniedMnt.Load()),
		Links:      int(s.deniedLinks.Load()),
		PIDParents: int(s.deniedPIDParents.Load()),
	}
	// One map for both counts: a namespace whose mounts went unopened
	// below FUSE and elsewhere is counted once, as below FUSE.
	counted := make(map[Key]bool)
	m.BelowFUSE = s.missing(s.belowFUSE, counted)
	m.OutOfFDs = int(s.noFDs.Load())
	m.ReusedInodes = len(s.reused)
	if s.skippedSocks > 0 {
		m.SkippedSockets, m.SkippedWhy = s.skippedSocks, s.noCopy
	}
	if n := int(s.unaskedSocks.Load()); n > 0 {
		m.SkippedSockets += n
		m.UnaskedSockets = n
		why := "the process that asks them failed"
		switch {
		case s.sockPassLate.Load():
			why = "asking them took longer than " + sockPassTime.String()
		case s.sockHelpersLost.Load() >= maxSockHelpersLost:
			why = "the processes that ask them met files in sockets' places, or did not answer in time, " + strconv.FormatInt(maxSockHelpersLost, 10) + " in all (files swapped onto their descriptors while they were copied: a file's close, of a FUSE server that does not answer, could hang the scan for good): the rest were not asked"
		}
		m.SkippedWhy = join(m.SkippedWhy, why)
	}
	for _, u := range s.unopened {
		if !s.mayHide(u.m, counted) {
			continue
		}
		k := Key{s.nsdev, u.m.NS.Ino}
		counted[k] = true
		m.unopened = append(m.unopened, k)
		if m.UnopenedNS++; m.UnopenedWhy == "" {
			m.UnopenedWhy = u.err.Error()
		}
	}
	m.UnreadMounts = int(s.unreadMnt.Load())
	if why, ok := s.unreadWhy.Load().(string); ok {
		m.UnreadWhy = why
	}
	return m
}

// mayHide reports whether the nsfs mount m, not opened, may hold a
// namespace missing from the model that no mount counted already
// (counted) holds. Only namespaces of the types read from every
// process's links count: one of another type that a process holds is
// not in the model (lspidns records no net or user namespace of a
// process, lsuserns --no-other-types no net or PID namespace), so its
// mount would be counted although it hides nothing. A namespace counts
// once, however many mounts of it (a shared mount in many mount
// namespaces) could not be opened. A mount of a namespace found
// otherwise hides nothing: both are alive, so the same inode is the
// same namespace.
func (s *scanner) mayHide(m nsMount, counted map[Key]bool) bool {
	k := Key{s.nsdev, m.NS.Ino}
	if !s.readsLinks(m.NS.Type) || counted[k] {
		return false
	}
	nd := s.nodes[k]
	return nd == nil || nd.ns.Type != m.NS.Type
}

// missing counts the namespaces the nsfs mounts ms, not opened, may hold
// that are missing from the model ([scanner.mayHide]): a mount below FUSE
// of a namespace a process holds too hid nothing, and made the overlap
// check incomplete on nodes whose pods' namespace pins sit below a FUSE
// root. It adds them to counted, and counts none counted already.
func (s *scanner) missing(ms []nsMount, counted map[Key]bool) int {
	n := 0
	for _, m := range ms {
		if s.mayHide(m, counted) {
			counted[Key{s.nsdev, m.NS.Ino}] = true
			n++
		}
	}
	return n
}

// pinned is the since argument of [scanner.record] for a reference the
// caller holds open: the namespace it names is alive, so a node with its
// inode is that namespace, whenever the node was created.
const pinned = ^uint64(0)

// record records f (and the process f.PID with comm when f is ViaProcess
// and the scan lists processes of the node's type) on the node for k if
// it exists, is of type t and was created before the reference was read
// (since is s.seq as loaded before reading it, or pinned), and returns
// it. nil means the caller must open the reference and call add: k is
// new, or the reference may have named a namespace that died and left
// its inode to the node's.
func (s *scanner) record(k Key, t nsrel.Type, f Found, comm string, since uint64) *node {
	s.mu.Lock()
	defer s.mu.Unlock()
	nd := s.nodes[k]
	if nd == nil || nd.ns.Type != t || nd.seq > since || nd.loose {
		return nil
	}
	s.note(nd, f, comm)
	return nd
}

// add records f on the node for k, creating it if it is new; it takes
// ownership of fd, an open nsfs file of k, which pins a new node's
// namespace until the scan ends and is used to resolve it (and the parents
// and owners not seen before). A concurrent add of the same k waits for
// nothing: it records f and returns the node, which the first caller is
// resolving. It returns nil, and records nothing, when fd is not a
// namespace of type t (the reference changed after it was read).
func (s *scanner) add(k Key, t nsrel.Type, f Found, comm string, fd int) *node {
	s.mu.Lock()
	nd := s.nodes[k]
	claim := nd == nil
	if claim {
		s.mu.Unlock()
		// Only a new namespace costs these ioctls; a known pinned one is
		// alive and fd, open too, has its inode, so it is the same.
		v, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
		if err != nil || nsrel.Type(v) != t {
			unix.Close(fd)
			return nil
		}
		n := &Namespace{Type: t, Dev: k.Dev, Ino: k.Ino, OwnerUID: -1}
		if id, err := nsrel.ID(nsrel.FD(fd)); err == nil {
			n.NSID, n.HasNSID = id, true
		}
		s.mu.Lock()
		if nd = s.nodes[k]; nd == nil {
			nd = &node{ns: n, fd: fd, seq: s.seq.Add(1)}
			// A mount namespace found only through a bind mount that a
			// helper read (in a mount namespace no usable task is in)
			// could not be opened again for its own bind mounts: it is
			// held whatever the budget (the descriptor is open already).
			if s.pinNext(n.HasNSID) || t == nsrel.TypeMount && f.Via == ViaMount && f.PID == 0 {
				s.pins.Add(1)
			} else {
				nd.loose, nd.fd = true, -1
			}
			s.nodes[k] = nd
		} else {
			claim = false
		}
	}
	if !claim {
		s.mu.Unlock()
		same := nd.ns.Type == t
		if nd.loose {
			// The node's namespace may have died and left its inode to
			// the one fd names (of any type: the types share inode
			// numbers): only the ID tells them apart.
			id, err := nsrel.ID(nsrel.FD(fd))
			if err == nil && id != nd.ns.NSID {
				// Counted once however many references name it.
				s.mu.Lock()
				if s.reused == nil {
					s.reused = make(map[[2]uint64]bool)
				}
				s.reused[[2]uint64{k.Ino, id}] = true
				s.mu.Unlock()
			}
			same = same && err == nil && id == nd.ns.NSID
		}
		unix.Close(fd)
		if !same {
			return nil
		}
		s.mu.Lock()
	}
	s.note(nd, f, comm)
	s.mu.Unlock()
	if claim {
		s.resolve(nd.ns, fd, nd.loose) // closes fd if loose
	}
	return nd
}

// unpin closes the nsfs files the nodes hold; a second call closes
// nothing.
func (s *scanner) unpin() {
	for _, nd := range s.nodes {
		if nd.fd >= 0 {
			unix.Close(nd.fd)
			nd.fd = -1
		}
	}
}

// note records f on nd; s.mu is held.
func (s *scanner) note(nd *node, f Found, comm string) {
	n := nd.ns
	if bit := viaBit[f.Via]; bit != 0 {
		if nd.vias&bit == 0 {
			nd.vias |= bit
			n.FoundVia = append(n.FoundVia, f)
		} else {
			// Keep the smallest, so that the output is deterministic.
			for i, g := range n.FoundVia {
				if g.Via == f.Via && foundLess(f, g) {
					n.FoundVia[i] = f
				}
			}
		}
	} else {
		n.FoundVia = append(n.FoundVia, f)
		if len(n.FoundVia) > 4*MaxFoundVia+len(viaBit) {
			trimFound(n) // bounded while the scan goes on too
		}
	}
	if f.Via == ViaProcess && s.lists(n.Type) {
		n.Processes = append(n.Processes, Process{PID: f.PID, Comm: comm})
	}
}

// lists reports whether the scan lists the processes of namespaces of
// type t (the types asked for in [Options].Types).
func (s *scanner) lists(t nsrel.Type) bool {
	return t == nsrel.TypeUser && s.wantUser || t == nsrel.TypePID && s.wantPID
}

// readsLinks reports whether the scan reads the processes' links to
// namespaces of type t (nsLinks, by the scan's roles): then a namespace
// of that type that a process holds is in the model.
func (s *scanner) readsLinks(t nsrel.Type) bool {
	for _, l := range nsLinks {
		if l.typ == t && l.role&s.roles != 0 {
			return true
		}
	}
	return false
}

// resolve asks the kernel about the namespace open as fd: owner UID,
// parent and owner, adding parents and owners not seen before (and their
// own ancestry) to the model. With loose (n's node is not pinned) it
// closes fd once asked, before it resolves the parent and owner: a chain
// of nested namespaces being resolved holds one descriptor per level, not
// two (at a limit of 64, chains 31 user namespaces deep ran the scan out).
func (s *scanner) resolve(n *Namespace, fd int, loose bool) {
	ref := nsrel.FD(fd)
	if n.Type == nsrel.TypeUser {
		if uid, err := nsrel.OwnerUID(ref); err == nil {
			n.OwnerUID = int64(uid)
		}
	}
	var p, o *nsrel.Namespace
	var perr, oerr error
	if n.Type.Hierarchical() {
		p, perr = nsrel.Parent(ref)
	}
	if n.Type != nsrel.TypeUser {
		o, oerr = nsrel.OwnerUserNS(ref)
	}
	if loose {
		unix.Close(fd)
	}
	if n.Type.Hierarchical() {
		if perr == nil {
			n.Parent = s.reach(p, n.Type, Found{Via: ViaParent, Of: n.Name().String()})
			p.Close()
		} else if s.outside(n, perr) && n.Type == nsrel.TypePID {
			s.deniedPIDParents.Add(1)
		} else if s.outside(n, perr) {
			s.deniedLinks.Add(1)
		} else {
			s.short(perr)
		}
	}
	if n.Type == nsrel.TypeUser {
		n.Owner = n.Parent
		return
	}
	if oerr == nil {
		n.Owner = s.reach(o, nsrel.TypeUser, Found{Via: ViaOwner, Of: n.Name().String()})
		o.Close()
	} else if errors.Is(oerr, os.ErrPermission) {
		s.deniedLinks.Add(1)
	} else {
		s.short(oerr)
	}
}

// outside reports whether err from NS_GET_PARENT means the parent exists
// but lies outside the caller's user namespace (as opposed to n being the
// initial namespace of its type).
func (s *scanner) outside(n *Namespace, err error) bool {
	if !errors.Is(err, os.ErrPermission) {
		return false
	}
	return !(n.Type == nsrel.TypeUser && n.Ino == nsrel.InitialUserNSIno) &&
		!(n.Type == nsrel.TypePID && n.Ino == nsrel.InitialPIDNSIno)
}

// reach adds the namespace h (returned by NS_GET_PARENT or NS_GET_USERNS)
// and resolves it if it is new.
func (s *scanner) reach(h *nsrel.Namespace, t nsrel.Type, f Found) *Namespace {
	id, err := nsrel.Identify(h)
	if err != nil {
		return nil
	}
	k := Key(id)
	if nd := s.record(k, t, f, "", pinned); nd != nil {
		return nd.ns
	}
	fd, err := unix.FcntlInt(uintptr(h.Fd()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		s.short(err)
		return nil
	}
	h.Close() // the caller's Close is then a no-op: one descriptor per level
	if nd := s.add(k, t, f, "", fd); nd != nil {
		return nd.ns
	}
	return nil
}

// worker holds one scanner goroutine's buffers.
type worker struct {
	s *scanner
	// known holds namespaces this worker has seen as a process's link:
	// further processes in them are collected in procs without locking,
	// and links of other types to them (see owners) are skipped.
	known map[Key]*node
	procs []pendingProc
	mnt   map[uint64][]task
	// socks counts the copies of each socket inode met (at most
	// sockCopies are kept to ask for its netns), or the sockets met when
	// none may be asked (see netcgroup.go).
	socks map[uint64]uint8
	dents []byte
	lbuf  []byte
	names []string
	tids  []string
	pbuf  []byte // NUL-terminated paths for the system calls, see sys.go
	since uint64 // s.seq before the current process's links were read
	// keys are the current process's links (by index in nsLinks), for
	// its threads to compare with; have says which were read.
	keys [len(nsLinksInit)]Key
	have [len(nsLinksInit)]bool
	// helper joins the mount namespaces without a usable task (see
	// mountsByHelper); nil until one is met.
	helper *mountHelper
	// pendSocks are the sockets met, to ask for their network
	// namespaces after the process scan (see sockhelper.go).
	pendSocks []pendingSock
}

func newWorker(s *scanner) *worker {
	return &worker{s: s, dents: make([]byte, 8<<10), lbuf: make([]byte, 256), pbuf: make([]byte, 0, 64),
		known: make(map[Key]*node), mnt: make(map[uint64][]task), socks: make(map[uint64]uint8)}
}

// task is a process, or one of its threads (TID non-zero), whose /proc
// directory the scan reads.
type task struct{ pid, tid int }

// pendingProc is a process to add to a namespace after the scan.
type pendingProc struct {
	nd *node
	p  Process
}

// Paths relative to /proc/PID of the links read per process.
const (
	pathUser = "ns/user"
	pathPID  = "ns/pid"
	pathPFC  = "ns/pid_for_children"
	pathMnt  = "ns/mnt"
)

func isPerm(err error) bool { return err == unix.EACCES || err == unix.EPERM }

// exited reports whether the task whose /proc directory is dfd is gone.
// For a task reaped since its directory was opened the kernel answers a
// namespace or fd link's read with EACCES, not ENOENT
// (proc_ns_get_link, proc_fd_access_allowed): a process that exited
// during the scan was counted as one the caller may not read.
func (w *worker) exited(dfd int) bool {
	var st unix.Stat_t
	err := w.fstatat(dfd, "stat", &st)
	return err == unix.ENOENT || err == unix.ESRCH
}

// The reasons to read a namespace link; a scan reads the links whose
// roles it has (scanner.roles).
const (
	roleUser  = 1 << iota // user namespaces are listed
	rolePID               // PID namespaces are listed
	roleOwner             // owners of other types' namespaces are wanted
	roleMount             // bind mounts are read (ns/mnt names the mount namespace)
)

// nsLink is a namespace link of a process or thread.
type nsLink struct {
	path string
	typ  nsrel.Type
	via  Via
	role uint8
	// task says that the link follows the task's nsproxy, which an
	// exited thread-group leader no longer has: it then reads ENOENT.
	// Those are also the links in which a thread can differ from its
	// process (see threads).
	task bool
}

// Indexes in nsLinks.
const (
	linkUser = iota
	linkPID
	linkPFC
	linkMnt
)

// nsLinksInit are the links read per process and thread, in this order.
// Not ns/time_for_children: it differs from ns/time only after
// unshare(CLONE_NEWTIME) (setns sets both), which makes the new
// namespace's owner the caller's user namespace; a process can later move
// only to descendants of it (setns(CLONE_NEWUSER) needs CAP_SYS_ADMIN in
// the target), so that owner is always its own user namespace or an
// ancestor, found anyway.
var nsLinksInit = [...]nsLink{
	linkUser: {pathUser, nsrel.TypeUser, ViaProcess, roleUser, false},
	linkPID:  {pathPID, nsrel.TypePID, ViaProcess, rolePID | roleOwner, false},
	linkPFC:  {pathPFC, nsrel.TypePID, ViaPIDForChildren, rolePID | roleOwner, true},
	linkMnt:  {pathMnt, nsrel.TypeMount, ViaProcess, roleOwner | roleMount, true},
	{"ns/cgroup", nsrel.TypeCgroup, ViaProcess, roleOwner, true},
	{"ns/ipc", nsrel.TypeIPC, ViaProcess, roleOwner, true},
	{"ns/net", nsrel.TypeNet, ViaProcess, roleOwner, true},
	// The time namespace is the process's (setns(2) of one needs a
	// single-threaded caller), but reads ENOENT with the leader gone.
	{"ns/time", nsrel.TypeTime, ViaProcess, roleOwner, true},
	{"ns/uts", nsrel.TypeUTS, ViaProcess, roleOwner, true},
}

// threadLink reports whether the scan reads a thread's link nsLinks[i]
// to compare it with its process's. A thread's ns/user cannot differ
// (setns(2) and unshare(2) of a user namespace need a single-threaded
// caller, clone(2) refuses CLONE_NEWUSER with CLONE_THREAD), nor can
// ns/pid (the thread group's) or ns/time (setns needs a single-threaded
// caller; unshare changes only time_for_children). Of the others, only
// pid_for_children, mnt and net are read, at one readlinkat(2) each per
// thread: ns/cgroup, ns/ipc and ns/uts, which a thread could also have
// joined on its own, are left out for speed (docs/discovery.md, Known
// limits).
func threadLink(i int) bool {
	switch nsLinks[i].typ {
	case nsrel.TypeMount, nsrel.TypeNet:
		return true
	}
	return i == linkPFC
}

var nsLinks = nsLinksInit[:]

// process scans one process. Namespace links are read with readlinkat(2)
// ("user:[INO]"), which costs about half of a stat through the magic
// link; the device is the one nsfs device, checked when a namespace is
// opened for the first time.
func (w *worker) process(pid int) {
	s := w.s
	pdfd, err := w.openPID(s.procfd, pid)
	if err != nil {
		s.short(err) // else exited
		return
	}
	defer closeFD(pdfd)
	dfd := pdfd // the directory read: the process's, or a live thread's
	w.since = s.seq.Load()
	cur := task{pid: pid}

	var comm string
	if s.opts.Comm {
		comm = w.comm(dfd)
	}
	w.have = [len(nsLinksInit)]bool{}
	switched := false
	for i, l := range nsLinks {
		if l.role&s.roles == 0 {
			continue
		}
		k, err := w.readKey(dfd, l.path)
		if err == unix.ENOENT && l.task && !switched {
			// The thread-group leader may have exited while other
			// threads live on: its nsproxy links and fd table are
			// gone. Read the process through a live thread.
			switched = true
			if tfd, tid := w.liveThread(dfd, pid); tfd >= 0 {
				defer unix.Close(tfd)
				dfd, cur.tid = tfd, tid
				k, err = w.readKey(dfd, l.path)
			}
		}
		if err != nil {
			if isPerm(err) && (i == linkUser || i == linkPID && !s.wantUser) {
				if !w.exited(dfd) {
					s.denyProcess(pid)
				}
				return
			}
			// pid_for_children is unreadable until the first fork after
			// unshare(CLONE_NEWPID); such a namespace cannot be found.
			continue
		}
		w.keys[i], w.have[i] = k, true
		w.linkOf(dfd, i, k, Found{Via: l.via, PID: pid}, comm)
		if i == linkMnt && !s.opts.NoMounts {
			w.addReader(k.Ino, cur)
		}
	}
	if !s.opts.NoThreads {
		// The link count of /proc/PID/task is 2 + the number of threads.
		var st unix.Stat_t
		if err := w.fstatat(pdfd, "task", &st); err == nil && st.Nlink > 3 {
			w.threads(pdfd, cur)
		}
	}
	if !s.opts.NoFDs && pid != s.self {
		w.fds(dfd, cur)
	}
}

// linkOf records the namespace k read from the link nsLinks[i] of a
// process, found as f.
func (w *worker) linkOf(dfd, i int, k Key, f Found, comm string) {
	s := w.s
	l := nsLinks[i]
	if i == linkPFC && w.have[linkPID] && k == w.keys[linkPID] {
		return
	}
	if nd := w.known[k]; nd != nil {
		if f.Via == ViaProcess {
			if s.lists(l.typ) {
				w.procs = append(w.procs, pendingProc{nd, Process{PID: f.PID, Comm: comm}})
			}
			return
		}
		// Another way to a namespace this worker knows through a process
		// (pid_for_children that is not the process's own PID namespace,
		// rare): noted as any, whichever process came first.
		if s.record(k, l.typ, f, comm, w.since) != nil {
			return
		}
	}
	// A loose node is not known: its inode may pass to another namespace.
	if nd := w.linkAt(dfd, l.path, k, l.typ, f, comm); nd != nil && f.Via == ViaProcess && !nd.loose {
		w.known[k] = nd
	}
}

// addReader notes the task cur as one that can show the mount table of the
// mount namespace ino (up to 3 per namespace and worker).
func (w *worker) addReader(ino uint64, cur task) {
	if ps := w.mnt[ino]; len(ps) < 3 {
		w.mnt[ino] = append(ps, cur)
	}
}

// liveThread returns an O_PATH descriptor of /proc/PID/task/TID of a
// thread of the process (its directory dfd) other than the leader that
// still has its namespaces, and the TID; -1 if there is none.
func (w *worker) liveThread(dfd, pid int) (int, int) {
	var st unix.Stat_t
	if err := w.fstatat(dfd, "task", &st); err != nil || st.Nlink <= 3 {
		return -1, 0
	}
	// pid_for_children alone reads ENOENT in a live leader too (see
	// process); ns/mnt only when it has exited.
	if _, err := w.readKey(dfd, pathMnt); err != unix.ENOENT {
		return -1, 0
	}
	tfd, err := unix.Openat(dfd, "task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		w.s.short(err)
		return -1, 0
	}
	defer unix.Close(tfd)
	w.tids, err = readNames(tfd, w.dents, w.tids[:0])
	if err != nil {
		return -1, 0
	}
	for _, name := range w.tids {
		tid, err := strconv.Atoi(name)
		if err != nil || tid == pid {
			continue
		}
		fd, err := unix.Openat(tfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			w.s.short(err)
			continue
		}
		if _, err := w.readKey(fd, pathMnt); err == nil {
			return fd, tid
		}
		unix.Close(fd)
	}
	return -1, 0
}

// KCMP_FILES and KCMP_FS of kcmp(2).
const (
	kcmpFiles = 2
	kcmpFS    = 3
)

// threads reads the threads of a multi-threaded process (its directory
// dfd, read through cur) for what differs from the process: namespace
// links (found via task), mount namespaces (readers for the bind mount
// scan) and private fd tables (unshare(CLONE_FILES), compared with
// kcmp(2)).
func (w *worker) threads(dfd int, cur task) {
	s := w.s
	tfd, err := unix.Openat(dfd, "task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		s.short(err)
		return
	}
	defer unix.Close(tfd)
	w.tids, err = readNames(tfd, w.dents, w.tids[:0])
	if err != nil {
		return
	}
	tids := w.tids
	w.tids = nil // w.fds below may reuse the buffers
	defer func() { w.tids = tids[:0] }()
	ref := cur.tid
	if ref == 0 {
		ref = cur.pid
	}
	for _, name := range tids {
		tid, err := strconv.Atoi(name)
		if err != nil || tid == cur.pid || tid == cur.tid {
			continue
		}
		th := task{cur.pid, tid}
		for i, l := range nsLinks {
			if l.role&s.roles == 0 || !threadLink(i) {
				continue
			}
			// A task's mount namespace changes only when it does not
			// share its fs_struct (the root and working directory):
			// setns(2) of a mount namespace fails with EINVAL if it is
			// shared, unshare(CLONE_NEWNS) unshares it too, and
			// clone(2) refuses CLONE_NEWNS with CLONE_FS. So a thread
			// that shares it with the task read for the process
			// (kcmp(2) KCMP_FS, far cheaper than a readlinkat) is in
			// that task's mount namespace.
			if i == linkMnt && w.have[i] && !s.foreignPIDs {
				if r, err := kcmp(ref, tid, kcmpFS); err == nil && r == 0 {
					continue
				}
			}
			k, err := w.readKey2(tfd, name, l.path)
			if err != nil || w.have[i] && k == w.keys[i] {
				continue
			}
			if i == linkPFC && w.have[linkPID] && k == w.keys[linkPID] {
				continue
			}
			if i == linkMnt && !s.opts.NoMounts {
				w.addReader(k.Ino, th)
			}
			w.linkAt(tfd, name+"/"+l.path, k, l.typ, Found{Via: ViaTask, PID: cur.pid, TID: tid}, "")
		}
		if s.opts.NoFDs || cur.pid == s.self {
			continue
		}
		// One kcmp(2) (Linux 3.5, CONFIG_CHECKPOINT_RESTORE) tells whether
		// the thread shares the fd table read for the process; without
		// it every thread's table is read.
		// Not with /proc of an ancestor PID namespace: kcmp(2) takes
		// PIDs of this one.
		if !s.foreignPIDs {
			if r, err := kcmp(ref, tid, kcmpFiles); err == nil && r == 0 {
				continue // the process's fd table
			}
		}
		if fd, err := unix.Openat(tfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
			w.fds(fd, th)
			unix.Close(fd)
		} else {
			s.short(err)
		}
	}
}

// linkAt records the namespace k found at path below dfd and resolves it
// if it is new. It returns nil if k is new and could not be opened (the
// process exited, the fd was closed, the PID was reused; no descriptor
// left, which is counted): then nothing is recorded and a later reference
// may add it.
func (w *worker) linkAt(dfd int, path string, k Key, t nsrel.Type, f Found, comm string) *node {
	if nd := w.s.record(k, t, f, comm, w.since); nd != nil {
		return nd
	}
	pfd, err := unix.Openat(dfd, path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		w.s.short(err)
		return nil
	}
	// The link may have changed since it was read (an fd replaced, a PID
	// reused): reopenNS checks that it is still the namespace k.
	fd, err := reopenNS(w.s.procfd, pfd, k)
	unix.Close(pfd)
	if err != nil {
		w.s.short(err)
		return nil
	}
	return w.s.add(k, t, f, comm, fd)
}

// readKey reads the namespace link at path below dfd ("type:[INO]").
func (w *worker) readKey(dfd int, path string) (Key, error) {
	return w.key(w.readlinkat(dfd, path, w.lbuf))
}

// readKey2 reads the namespace link at dir/path below dfd.
func (w *worker) readKey2(dfd int, dir, path string) (Key, error) {
	w.pbuf = append(append(append(append(w.pbuf[:0], dir...), '/'), path...), 0)
	return w.key(readlink(dfd, &w.pbuf[0], w.lbuf))
}

// key parses the link of n bytes that readlink read into w.lbuf.
func (w *worker) key(n int, err error) (Key, error) {
	if err != nil {
		return Key{}, err
	}
	_, ino, ok := parseLink(w.lbuf[:n])
	if !ok {
		return Key{}, unix.EINVAL
	}
	return Key{w.s.nsdev, ino}, nil
}

// parseLink parses "type:[INO]" as read from a namespace link; typ is the
// part before the colon.
func parseLink(l []byte) (typ []byte, ino uint64, ok bool) {
	n := len(l)
	if n < 5 || l[n-1] != ']' {
		return nil, 0, false
	}
	i := bytes.IndexByte(l, ':')
	if i <= 0 || l[i+1] != '[' || i+2 >= n-1 {
		return nil, 0, false
	}
	for _, c := range l[i+2 : n-1] {
		if c < '0' || c > '9' || ino > (1<<64-1)/10-1 {
			return nil, 0, false
		}
		ino = ino*10 + uint64(c-'0')
	}
	return l[:i], ino, true
}

// reopenNS checks that pfd, an O_PATH descriptor, is the nsfs file of the
// namespace k (any namespace if k is zero) and opens it for reading, which
// the nsfs ioctls need. Opening through O_PATH first means that a file
// that is not a namespace (a FIFO, a device put in place of an fd a moment
// ago) is never opened.
//
// procfd is /proc, open: the file is reopened through
// /proc/thread-self/fd, which also works on a thread that has joined a
// mount namespace without /proc (see scanMounts).
func reopenNS(procfd, pfd int, k Key) (int, error) {
	var sfs unix.Statfs_t
	var st unix.Stat_t
	if err := unix.Fstatfs(pfd, &sfs); err != nil {
		return -1, err
	}
	if err := unix.Fstat(pfd, &st); err != nil {
		return -1, err
	}
	if sfs.Type != unix.NSFS_MAGIC || (k != Key{} && (Key{st.Dev, st.Ino}) != k) {
		return -1, unix.ESTALE
	}
	return unix.Openat(procfd, "thread-self/fd/"+strconv.Itoa(pfd), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
}

// errNotProc is the error of a scan whose /proc is not a proc file system.
var errNotProc = errors.New("not a proc file system (procfs)")

// errForeignProc is the error of a scan whose /proc has no self: it was
// mounted in a PID namespace the caller is not in.
var errForeignProc = errors.New("no such file: this /proc is of a PID namespace this process is not in (it has no /proc/self); enter that PID namespace too (nsenter -p), or mount a /proc of this one")

// comm reads /proc/PID/comm.
func (w *worker) comm(dfd int) string {
	fd, err := unix.Openat(dfd, "comm", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		w.s.short(err)
		return ""
	}
	n, err := unix.Read(fd, w.lbuf)
	unix.Close(fd)
	if err != nil || n <= 0 {
		return ""
	}
	return string(bytes.TrimSuffix(w.lbuf[:n], []byte("\n")))
}

// fds scans the open files of the task cur (its /proc directory dfd) for
// namespaces, and with owners wanted, for sockets of network namespaces
// not seen yet. On Linux 6.2 and later, the size of /proc/PID/fd is the
// number of open fds; when the fds are 0..size-1 (the common case) they
// are read without listing the directory, else the directory is listed.
func (w *worker) fds(dfd int, cur task) {
	s := w.s
	var st unix.Stat_t
	if err := w.fstatat(dfd, "fd", &st); err != nil {
		if isPerm(err) {
			s.deniedFDs.Add(1)
		}
		return
	}
	done := 0
	if s.fdCount {
		if st.Size == 0 {
			return // no open files: kernel threads, zombies
		}
		for ; done < int(st.Size); done++ {
			n, err := w.readlinkFD(dfd, done, w.lbuf)
			if err == unix.ENOENT {
				break // a hole: list the directory
			}
			if isPerm(err) {
				if !w.exited(dfd) {
					s.deniedFDs.Add(1)
				}
				return
			}
			// Most links are paths ("/dev/null"); their path is
			// not needed, so it is not built.
			if err == nil && n > 0 && w.lbuf[0] != '/' {
				w.fd(dfd, cur, "fd/"+strconv.Itoa(done), w.lbuf[:n])
			}
		}
		if done == int(st.Size) {
			return
		}
	}
	ffd, err := unix.Openat(dfd, "fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if isPerm(err) {
			s.deniedFDs.Add(1)
		}
		s.short(err)
		return
	}
	defer unix.Close(ffd)
	w.names, err = readNames(ffd, w.dents, w.names[:0])
	if err != nil {
		return
	}
	for _, name := range w.names {
		if i, err := strconv.Atoi(name); err == nil && i < done {
			continue // already read
		}
		n, err := w.readlinkat(ffd, name, w.lbuf)
		if err == nil {
			w.fd(ffd, cur, name, w.lbuf[:n])
		}
	}
}

// fd records the namespace, if any, that the fd at path below dfd, whose
// link reads l, refers to.
func (w *worker) fd(dfd int, cur task, path string, l []byte) {
	// Files read as paths; sockets, pipes and anonymous inodes as
	// "socket:[N]", "pipe:[N]", "anon_inode:..."; namespaces "type:[N]".
	if len(l) == 0 || l[0] == '/' || len(l) == len(w.lbuf) {
		return
	}
	typ, ino, ok := parseLink(l)
	if !ok {
		return
	}
	t, ok := linkTypes[string(typ)]
	if !ok {
		if string(typ) == "socket" && w.s.roles&roleOwner != 0 && !w.s.opts.NoSockets {
			w.socket(cur, path, ino)
		}
		return
	}
	w.linkAt(dfd, path, Key{w.s.nsdev, ino}, t, Found{Via: ViaFD, PID: cur.pid, TID: cur.tid, Path: fdProcPath(cur, path)}, "")
}

// fdProcPath returns the /proc path of the fd at path ("fd/N" or "N")
// below the directory of cur.
func fdProcPath(cur task, path string) string {
	name := path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		name = path[i+1:]
	}
	p := "/proc/" + strconv.Itoa(cur.pid) + "/"
	if cur.tid != 0 {
		p += "task/" + strconv.Itoa(cur.tid) + "/"
	}
	return p + "fd/" + name
}

// socket finds the network namespace of the socket with inode ino, open
// as the fd at path ("fd/N" or "N") of the task cur, as util-linux lsns
// 2.41 does: a copy of the socket from pidfd_getfd(2) (Linux 5.6) is
// asked SIOCGSKNS (Linux 4.9). A network namespace a process joined and
// left, keeping only a socket, is found so; its owner is what lsuserns
// wants. Each socket is asked once, through the lowest PID that holds it
// and, if that copy is gone by then, the next (up to sockCopies per
// worker); a namespace a process's links found is not recorded again. A copy
// sets the socket's net_cls class ID and net_prio index to the scan's:
// when net_cls or net_prio cgroups are in use, no socket is copied, each
// is counted (see netcgroup.go).
func (w *worker) socket(cur task, path string, ino uint64) {
	n := w.socks[ino]
	if n == sockCopies {
		return
	}
	w.socks[ino] = n + 1
	if w.s.noCopy != "" {
		return
	}
	name := path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		name = path[i+1:]
	}
	num, err := strconv.Atoi(name)
	if err != nil {
		return
	}
	// Asked after the process scan, in a helper process (see
	// sockhelper.go).
	w.pendSocks = append(w.pendSocks, pendingSock{cur: cur, num: num, ino: ino, path: path})
}

// socketNS records the network namespace open as nfd of the socket p
// (see [worker.socket]), unless a process's link found it (known).
func (s *scanner) socketNS(p pendingSock, nfd int, known map[Key]bool) {
	var st unix.Stat_t
	if err := unix.Fstat(nfd, &st); err != nil {
		unix.Close(nfd)
		return
	}
	k := Key{st.Dev, st.Ino}
	if known[k] {
		unix.Close(nfd)
		return
	}
	f := Found{Via: ViaSocket, PID: p.cur.pid, TID: p.cur.tid, Path: fdProcPath(p.cur, p.path)}
	if s.record(k, nsrel.TypeNet, f, "", pinned) != nil {
		unix.Close(nfd)
		return
	}
	s.add(k, nsrel.TypeNet, f, "", nfd)
}

// linkTypes maps the type names in namespace links to types.
var linkTypes = func() map[string]nsrel.Type {
	m := make(map[string]nsrel.Type)
	for _, t := range nsrel.Types {
		m[t.String()] = t
	}
	return m
}()

// pidChunk is the most PIDs listPIDs sends at once: a getdents64 call
// lists about 150, whose scan takes one worker several milliseconds; in
// smaller chunks the workers finish the last ones together.
const pidChunk = 16

// listPIDs lists the directory /proc (open as fd) and sends the PIDs in it
// to out, in chunks of up to pidChunk.
func listPIDs(fd int, out chan<- []int) error {
	buf := make([]byte, 4<<10)
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names[:0])
		pids := make([]int, 0, len(names))
		for _, name := range names {
			if name[0] < '0' || name[0] > '9' {
				continue
			}
			if p, err := strconv.Atoi(name); err == nil {
				pids = append(pids, p)
			}
		}
		for len(pids) > 0 {
			n := min(len(pids), pidChunk)
			out <- pids[:n:n]
			pids = pids[n:]
		}
	}
}

// readNames appends the names in directory fd (without "." and "..") to
// names, reading with getdents64 into buf.
func readNames(fd int, buf []byte, names []string) ([]string, error) {
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return names, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}
