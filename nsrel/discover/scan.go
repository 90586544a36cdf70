package discover

import (
	"bytes"
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
type node struct {
	ns   *Namespace
	vias uint8 // bit per Via already recorded once
}

var viaBit = map[Via]uint8{
	ViaProcess: 1, ViaPIDForChildren: 2, ViaTask: 4, ViaParent: 8, ViaOwner: 16,
}

type scanner struct {
	opts     Options
	procfd   int
	self     int
	nsdev    uint64 // the device of nsfs
	fdCount  bool   // the size of /proc/PID/fd is the number of fds (Linux 6.2)
	wantUser bool
	wantPID  bool

	mu    sync.Mutex
	nodes map[Key]*node
	mnt   map[uint64][]int // mount namespace inode -> up to 3 PIDs in it

	deniedFDs, deniedMnt, deniedLinks atomic.Int64
	deniedPIDs                        []int // processes whose links were denied; under mu
}

// denyProcess counts a process whose namespaces could not be read.
func (s *scanner) denyProcess(pid int) {
	s.mu.Lock()
	s.deniedPIDs = append(s.deniedPIDs, pid)
	s.mu.Unlock()
}

// Discover scans the host for namespaces and returns the model. It fails
// only when /proc cannot be read at all; everything else (vanished
// processes, denied reads) is skipped, and denied reads are counted in
// [Model.Denied].
func Discover(opts Options) (*Model, error) {
	s := &scanner{
		opts:  opts,
		self:  os.Getpid(),
		nodes: make(map[Key]*node, 256),
		mnt:   make(map[uint64][]int),
	}
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
	fd, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/proc", Err: err}
	}
	s.procfd = fd
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: "/proc/self/ns/user", Err: err}
	}
	s.nsdev = st.Dev
	if err := unix.Stat("/proc/self/fd", &st); err == nil && st.Size > 0 {
		s.fdCount = true
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
	if !opts.NoMounts {
		s.scanMounts(ws)
	}
	return s.model(), nil
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
	for _, w := range ws {
		for _, pp := range w.procs {
			pp.nd.ns.Processes = append(pp.nd.ns.Processes, pp.p)
		}
		for ino, ps := range w.mnt {
			if old := s.mnt[ino]; len(old) < 3 {
				s.mnt[ino] = append(old, ps[:min(len(ps), 3-len(old))]...)
			}
		}
	}
	return err
}

// scanMounts reads the nsfs mounts of every mount namespace seen, spread
// over the workers.
func (s *scanner) scanMounts(ws []*worker) {
	type mntns struct {
		ino  uint64
		pids []int
	}
	todo := make(chan mntns, len(s.mnt))
	for ino, ps := range s.mnt {
		todo <- mntns{ino, ps}
	}
	close(todo)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range todo {
				w.mounts(m.ino, m.pids)
			}
		}()
	}
	wg.Wait()
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
		Processes: len(s.deniedPIDs),
		PIDs:      s.deniedPIDs[:min(len(s.deniedPIDs), MaxDeniedPIDs)],
		FDDirs:    int(s.deniedFDs.Load()),
		MountNS:   int(s.deniedMnt.Load()),
		Links:     int(s.deniedLinks.Load()),
	}
	return m
}

// record records f (and the process f.PID with comm when f is ViaProcess
// and the scan lists processes of the node's type) on the node for k if
// it exists, and returns it; nil means k is new: the caller opens it and
// calls add.
func (s *scanner) record(k Key, f Found, comm string) *node {
	s.mu.Lock()
	defer s.mu.Unlock()
	nd := s.nodes[k]
	if nd != nil {
		s.note(nd, f, comm)
	}
	return nd
}

// add records f on the node for k, creating it if it is new; then fd, an
// open nsfs file of k, is used to resolve the new node (and the parents
// and owners not seen before). A concurrent add of the same k waits for
// nothing: it records f and returns the node, which the first caller is
// resolving.
func (s *scanner) add(k Key, t nsrel.Type, f Found, comm string, fd int) *node {
	s.mu.Lock()
	nd := s.nodes[k]
	claim := nd == nil
	if claim {
		nd = &node{ns: &Namespace{Type: t, Dev: k.Dev, Ino: k.Ino, OwnerUID: -1}}
		s.nodes[k] = nd
	}
	s.note(nd, f, comm)
	s.mu.Unlock()
	if claim {
		s.resolve(nd.ns, fd)
	}
	return nd
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

// resolve asks the kernel about the namespace open as fd: ID, owner UID,
// parent and owner, adding parents and owners not seen before (and their
// own ancestry) to the model.
func (s *scanner) resolve(n *Namespace, fd int) {
	ref := nsrel.FD(fd)
	if id, err := nsrel.ID(ref); err == nil {
		n.NSID, n.HasNSID = id, true
	}
	if n.Type == nsrel.TypeUser {
		if uid, err := nsrel.OwnerUID(ref); err == nil {
			n.OwnerUID = int64(uid)
		}
	}
	if n.Type.Hierarchical() {
		p, err := nsrel.Parent(ref)
		if err == nil {
			n.Parent = s.reach(p, n.Type, Found{Via: ViaParent, Of: n.Name().String()})
			p.Close()
		} else if s.outside(n, err) {
			s.deniedLinks.Add(1)
		}
	}
	if n.Type == nsrel.TypeUser {
		n.Owner = n.Parent
		return
	}
	o, err := nsrel.OwnerUserNS(ref)
	if err == nil {
		n.Owner = s.reach(o, nsrel.TypeUser, Found{Via: ViaOwner, Of: n.Name().String()})
		o.Close()
	} else if errors.Is(err, os.ErrPermission) {
		s.deniedLinks.Add(1)
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
	return s.add(Key(id), t, f, "", h.Fd()).ns
}

// worker holds one scanner goroutine's buffers.
type worker struct {
	s *scanner
	// known holds namespaces this worker has seen as a process's link:
	// further processes in them are collected in procs without locking,
	// and links of other types to them (see owners) are skipped.
	known map[Key]*node
	procs []pendingProc
	mnt   map[uint64][]int
	dents []byte
	lbuf  []byte
	names []string
	tids  []string
	pbuf  []byte // NUL-terminated paths for the system calls, see sys.go
}

func newWorker(s *scanner) *worker {
	return &worker{s: s, dents: make([]byte, 8<<10), lbuf: make([]byte, 256), pbuf: make([]byte, 0, 64),
		known: make(map[Key]*node), mnt: make(map[uint64][]int)}
}

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

// process scans one process. Namespace links are read with readlinkat(2)
// ("user:[INO]"), which costs about half of a stat through the magic
// link; the device is the one nsfs device, checked when a namespace is
// opened for the first time.
func (w *worker) process(pid int) {
	s := w.s
	dfd, err := w.openPID(s.procfd, pid)
	if err != nil {
		return // exited
	}
	defer unix.Close(dfd)

	var comm string
	if s.opts.Comm {
		comm = w.comm(dfd)
	}
	var userKey, pidKey Key
	if s.wantUser {
		userKey, err = w.link(dfd, pathUser, nsrel.TypeUser, Found{Via: ViaProcess, PID: pid}, comm)
		if isPerm(err) {
			s.denyProcess(pid)
			return
		}
	}
	if s.wantPID {
		pidKey, err = w.link(dfd, pathPID, nsrel.TypePID, Found{Via: ViaProcess, PID: pid}, comm)
		if isPerm(err) {
			if !s.wantUser {
				s.denyProcess(pid)
			}
			return
		}
		// pid_for_children is unreadable until the first fork after
		// unshare(CLONE_NEWPID); such a namespace cannot be found.
		if k, err := w.readKey(dfd, pathPFC); err == nil && k != pidKey {
			w.linkAt(dfd, pathPFC, k, nsrel.TypePID, Found{Via: ViaPIDForChildren, PID: pid}, "")
		}
	}
	mntKey, mntErr := Key{}, error(unix.ENOENT)
	if s.wantUser && !s.opts.NoOtherTypes {
		mntKey, mntErr = w.owners(dfd, pid)
	} else if !s.opts.NoMounts {
		mntKey, mntErr = w.readKey(dfd, pathMnt)
	}
	if !s.opts.NoMounts && mntErr == nil {
		if ps := w.mnt[mntKey.Ino]; len(ps) < 3 {
			w.mnt[mntKey.Ino] = append(ps, pid)
		}
	}
	var st unix.Stat_t
	if !s.opts.NoThreads {
		// The link count of /proc/PID/task is 2 + the number of threads.
		if err := w.fstatat(dfd, "task", &st); err == nil && st.Nlink > 3 {
			w.threads(dfd, pid, userKey, pidKey)
		}
	}
	if !s.opts.NoFDs && pid != s.self {
		w.fds(dfd, pid)
	}
}

// otherLink is a namespace link of a process that the scan reads only for
// the owning user namespace of the namespace it points at.
type otherLink struct {
	path string
	typ  nsrel.Type
	via  Via
}

// otherLinks are the links owners reads; ns/mnt is among them and is also
// what the bind mount scan needs.
var otherLinks = []otherLink{
	{"ns/cgroup", nsrel.TypeCgroup, ViaProcess},
	{"ns/ipc", nsrel.TypeIPC, ViaProcess},
	{pathMnt, nsrel.TypeMount, ViaProcess},
	{"ns/net", nsrel.TypeNet, ViaProcess},
	{"ns/time", nsrel.TypeTime, ViaProcess},
	{"ns/uts", nsrel.TypeUTS, ViaProcess},
	// Not ns/time_for_children: it differs from ns/time only after
	// unshare(CLONE_NEWTIME) (setns sets both), which makes the new
	// namespace's owner the caller's user namespace; a process can
	// later move only to descendants of it (setns(CLONE_NEWUSER) needs
	// CAP_SYS_ADMIN in the target), so that owner is always its own
	// user namespace or an ancestor, found anyway.
}

// pidLinks are read by owners too when the scan does not read PID
// namespaces for their own sake.
var pidLinks = []otherLink{
	{pathPID, nsrel.TypePID, ViaProcess},
	{pathPFC, nsrel.TypePID, ViaPIDForChildren},
}

// owners reads the process's links to namespaces of the other types and
// adds each namespace this worker has not seen yet, which asks the kernel
// for its owning user namespace. A user namespace may have no process of
// its own and own only, say, the network namespace that a process of
// another user namespace has joined: this is the only way to find it.
// Reading a link is one readlinkat(2); the ioctls happen once per
// namespace. It returns the key of the process's mount namespace.
func (w *worker) owners(dfd, pid int) (mnt Key, mntErr error) {
	mntErr = unix.ENOENT
	read := func(links []otherLink) {
		for _, l := range links {
			k, err := w.readKey(dfd, l.path)
			if l.typ == nsrel.TypeMount {
				mnt, mntErr = k, err
			}
			if err != nil || w.known[k] != nil {
				continue
			}
			if nd := w.linkAt(dfd, l.path, k, l.typ, Found{Via: l.via, PID: pid}, ""); nd != nil {
				w.known[k] = nd
			}
		}
	}
	read(otherLinks)
	if !w.s.wantPID {
		read(pidLinks)
	}
	return mnt, mntErr
}

// readKey reads the namespace link at path below dfd ("type:[INO]").
func (w *worker) readKey(dfd int, path string) (Key, error) {
	n, err := w.readlinkat(dfd, path, w.lbuf)
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

// link reads the namespace link at path below dfd, records the namespace
// with f and resolves it if it is new.
func (w *worker) link(dfd int, path string, t nsrel.Type, f Found, comm string) (Key, error) {
	k, err := w.readKey(dfd, path)
	if err != nil {
		return Key{}, err
	}
	if nd := w.known[k]; nd != nil {
		w.procs = append(w.procs, pendingProc{nd, Process{PID: f.PID, Comm: comm}})
		return k, nil
	}
	if nd := w.linkAt(dfd, path, k, t, f, comm); nd != nil {
		w.known[k] = nd
	}
	return k, nil
}

// linkAt records the namespace k found at path below dfd and resolves it
// if it is new. It returns nil if k is new and could not be opened (the
// process exited, the fd was closed, the PID was reused): then nothing is
// recorded and a later reference may add it.
func (w *worker) linkAt(dfd int, path string, k Key, t nsrel.Type, f Found, comm string) *node {
	if nd := w.s.record(k, f, comm); nd != nil {
		return nd
	}
	pfd, err := unix.Openat(dfd, path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	// The link may have changed since it was read (an fd replaced, a PID
	// reused): reopenNS checks that it is still the namespace k.
	fd, err := reopenNS(pfd, k)
	unix.Close(pfd)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	return w.s.add(k, t, f, comm, fd)
}

// reopenNS checks that pfd, an O_PATH descriptor, is the nsfs file of the
// namespace k (any namespace if k is zero) and opens it for reading, which
// the nsfs ioctls need. Opening through O_PATH first means that a file
// that is not a namespace (a FIFO, a device put in place of an fd a moment
// ago) is never opened.
func reopenNS(pfd int, k Key) (int, error) {
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
	return unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
}

// comm reads /proc/PID/comm.
func (w *worker) comm(dfd int) string {
	fd, err := unix.Openat(dfd, "comm", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	n, err := unix.Read(fd, w.lbuf)
	unix.Close(fd)
	if err != nil || n <= 0 {
		return ""
	}
	return string(bytes.TrimSuffix(w.lbuf[:n], []byte("\n")))
}

// threads scans the threads of a multi-threaded process for namespaces
// that differ from the process's own.
func (w *worker) threads(dfd, pid int, userKey, pidKey Key) {
	s := w.s
	tfd, err := unix.Openat(dfd, "task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(tfd)
	w.tids, err = readNames(tfd, w.dents, w.tids[:0])
	if err != nil {
		return
	}
	self := strconv.Itoa(pid)
	for _, tid := range w.tids {
		if tid == self {
			continue
		}
		t, _ := strconv.Atoi(tid)
		check := func(path string, typ nsrel.Type, want Key) {
			p := tid + "/" + path
			if k, err := w.readKey(tfd, p); err == nil && k != want {
				w.linkAt(tfd, p, k, typ, Found{Via: ViaTask, PID: pid, TID: t}, "")
			}
		}
		if s.wantUser {
			check(pathUser, nsrel.TypeUser, userKey)
		}
		if s.wantPID {
			check(pathPID, nsrel.TypePID, pidKey)
			check(pathPFC, nsrel.TypePID, pidKey)
		}
	}
}

// fdPaths caches "fd/N" for small N.
var fdPaths = func() []string {
	p := make([]string, 256)
	for i := range p {
		p[i] = "fd/" + strconv.Itoa(i)
	}
	return p
}()

func fdPath(i int) string {
	if i < len(fdPaths) {
		return fdPaths[i]
	}
	return "fd/" + strconv.Itoa(i)
}

// fds scans the open files of a process for namespaces. On Linux 6.2 and
// later, the size of /proc/PID/fd is the number of open fds; when the fds
// are 0..size-1 (the common case) they are read without listing the
// directory, else the directory is listed.
func (w *worker) fds(dfd, pid int) {
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
			p := fdPath(done)
			n, err := w.readlinkat(dfd, p, w.lbuf)
			if err == unix.ENOENT {
				break // a hole: list the directory
			}
			if isPerm(err) {
				s.deniedFDs.Add(1)
				return
			}
			if err == nil {
				w.fd(dfd, pid, p, w.lbuf[:n])
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
			w.fd(ffd, pid, name, w.lbuf[:n])
		}
	}
}

// fd records the namespace, if any, that the fd at path below dfd, whose
// link reads l, refers to.
func (w *worker) fd(dfd, pid int, path string, l []byte) {
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
		return
	}
	name := path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		name = path[i+1:]
	}
	w.linkAt(dfd, path, Key{w.s.nsdev, ino}, t,
		Found{Via: ViaFD, PID: pid, Path: "/proc/" + strconv.Itoa(pid) + "/fd/" + name}, "")
}

// linkTypes maps the type names in namespace links to types.
var linkTypes = func() map[string]nsrel.Type {
	m := make(map[string]nsrel.Type)
	for _, t := range nsrel.Types {
		m[t.String()] = t
	}
	return m
}()

// listPIDs lists the directory /proc (open as fd) and sends the PIDs in it
// to out, a chunk per getdents64 call.
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
		if len(pids) > 0 {
			out <- pids
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
