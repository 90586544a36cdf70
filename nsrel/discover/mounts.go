package discover

import (
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/nsrel"
)

// nsMount is an nsfs mount found in a mountinfo file.
type nsMount struct {
	// NS is the namespace, from the mount's root field ("user:[N]").
	NS nsrel.Name
	// Point is the mount point, unescaped, as the mount namespace sees it.
	Point string
	// ID is the mount's ID (the first field).
	ID uint64
}

// parseMounts returns the nsfs mounts listed in a /proc/PID/mountinfo
// file (see proc(5)), the mount points whose lookups ask a FUSE server:
// FUSE mounts (fuse, fuseblk, fuse.NAME) and overlays with a layer on one
// (revalidating an overlay's dentry revalidates its layers'), and the
// points of every overlay (over), whose layers may be on a FUSE mount
// mountinfo does not show; all unescaped. Lines that do not parse are
// skipped: the file comes from the kernel, but mount points are chosen
// by whoever mounted them.
func parseMounts(data []byte) (ns []nsMount, fuse, over []string) {
	type overlay struct {
		point  string
		layers []string
	}
	var overlays []overlay
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		// The filesystem type follows " - ", then the source and the
		// superblock's options.
		sep := bytes.Index(line, []byte(" - "))
		if sep < 0 {
			continue
		}
		// Most lines are of none of the types wanted: they are skipped
		// without allocating (this runs for every line of every mount
		// table the scan reads).
		fstype, after := nextField(line[sep+3:])
		if len(fstype) == 0 {
			continue
		}
		isFUSE := string(fstype) == "fuse" || string(fstype) == "fuseblk" || bytes.HasPrefix(fstype, []byte("fuse."))
		isOverlay := string(fstype) == "overlay"
		if string(fstype) != "nsfs" && !isFUSE && !isOverlay {
			continue
		}
		// One space between fields: the kernel escapes space, tab,
		// newline and backslash in paths, and no other character, so
		// a split at any whitespace (strings.Fields) cut a mount point
		// named with a carriage return or a Unicode space there, and
		// the namespace held by it went missing.
		f := strings.Split(string(line[:sep]), " ")
		// id parent major:minor root mountpoint options [optional...]
		if len(f) < 6 {
			continue
		}
		point := unescapeMount(f[4])
		switch {
		case isFUSE:
			fuse = append(fuse, point)
		case isOverlay:
			// The source, then the superblock's options, each followed
			// by one space: an overlay mounted with an empty source
			// shows "overlay  rw,lowerdir=...".
			if i := bytes.IndexByte(after, ' '); i >= 0 {
				after = after[i+1:]
			} else {
				after = nil
			}
			if opts, _ := nextField(after); len(opts) > 0 {
				overlays = append(overlays, overlay{point, overlayLayers(string(opts))})
			}
		default:
			name, err := nsrel.ParseName(unescapeMount(f[3]))
			if err != nil || !strings.HasPrefix(point, "/") {
				continue
			}
			id, _ := strconv.ParseUint(f[0], 10, 64)
			ns = append(ns, nsMount{NS: name, Point: point, ID: id})
		}
	}
	// An overlay on a FUSE mount that mountinfo shows, or on such an
	// overlay, in turn. Mountinfo cannot show every such overlay (a
	// layer named relative to the mounter or through a symlink, a FUSE
	// mount detached since): every overlay's point is returned too, and
	// a mount point below one is opened from the lookup cache alone.
	for added := true; added; {
		added = false
		for i, o := range overlays {
			for _, l := range o.layers {
				if slices.Contains(fuse, l) || belowAny(l, fuse) {
					fuse = append(fuse, o.point)
					overlays[i].layers, added = nil, true
					break
				}
			}
		}
	}
	for _, o := range overlays {
		over = append(over, o.point)
	}
	return ns, fuse, over
}

// overlayLayers returns the directories an overlay's superblock options
// name (lowerdir, as a list separated by ':', and lowerdir+, datadir+,
// upperdir, workdir), unescaped.
func overlayLayers(opts string) []string {
	var out []string
	for _, o := range strings.Split(opts, ",") {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			continue
		}
		switch k {
		case "lowerdir":
			for _, d := range strings.Split(v, ":") {
				if d != "" {
					out = append(out, unescapeMount(d))
				}
			}
		case "lowerdir+", "datadir+", "upperdir", "workdir":
			out = append(out, unescapeMount(v))
		}
	}
	return out
}

// belowAny reports whether resolving path walks through one of the
// mounts at points: whether it lies strictly below one of them.
func belowAny(path string, points []string) bool {
	for _, p := range points {
		if p == "/" || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// rootMounts reports whether the mountinfo data lists the mount with ID
// id (a task's root) at the mount point "/" (root; else the task is
// chrooted), and whether it lists another mount at "/" whose parent is
// that one (covered: mounted over it). It reads the data once and
// allocates nothing, as it runs for every mount table the scan reads; it
// stops once both are known.
func rootMounts(data []byte, id uint64) (root, covered bool) {
	for len(data) > 0 && !(root && covered) {
		var line []byte
		line, data = nextLine(data)
		// id parent major:minor root mountpoint ...
		var f [5][]byte
		rest := line
		for i := range f {
			f[i], rest = nextField(rest)
		}
		if string(f[4]) != "/" {
			continue
		}
		mid, ok := parseID(f[0])
		if !ok {
			continue
		}
		if mid == id {
			root = true
		} else if parent, ok := parseID(f[1]); ok && parent == id {
			covered = true
		}
	}
	return root, covered
}

// parseID parses a mount ID, a decimal number, without allocating.
func parseID(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// nextField returns the first field of b, a part of a mountinfo line,
// and what follows it. Fields are separated by spaces (mountinfo escapes
// whitespace inside a field); leading spaces are skipped. Unlike
// bytes.Fields, it allocates nothing.
func nextField(b []byte) (field, rest []byte) {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

// unescapeMount undoes the octal escapes (\040 for space, \011, \012,
// \134) the kernel writes in mountinfo paths.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// scanMounts reads the nsfs bind mounts of every mount namespace in the
// model, spread over the workers, in rounds: a mount namespace found in a
// round (bind-mounted, or held by an fd) is read in the next.
//
// A mount namespace is read through /proc/PID (or /proc/PID/task/TID) of
// a task in it, trying the next one noted when a task has exited, moved
// or is chrooted. One that no usable task is in is read by a helper
// process that joins it (see helper.go); nothing is forked when every
// mount namespace has a usable task.
func (s *scanner) scanMounts(ws []*worker) {
	defer func() {
		for _, w := range ws {
			w.closeHelper()
		}
	}()
	read := make(map[Key]bool)
	for {
		var todo []*node
		s.mu.Lock()
		for k, nd := range s.nodes {
			if nd.ns.Type == nsrel.TypeMount && !read[k] {
				read[k] = true
				todo = append(todo, nd)
			}
		}
		s.mu.Unlock()
		if len(todo) == 0 {
			return
		}
		ch := make(chan *node, len(todo))
		for _, nd := range todo {
			ch <- nd
		}
		close(ch)
		var wg sync.WaitGroup
		for _, w := range ws[:min(len(ws), len(todo))] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for nd := range ch {
					w.mountNS(nd)
				}
			}()
		}
		wg.Wait()
	}
}

// mountNS reads the nsfs bind mounts of the mount namespace of nd.
func (w *worker) mountNS(nd *node) {
	ino := nd.ns.Ino
	switch err := w.mounts(ino, w.s.readers[ino]); {
	case err == nil:
	case isPerm(err):
		w.s.deniedMnt.Add(1)
	case w.s.short(err):
		// No descriptor left: a helper would need some too.
	default:
		switch err := w.mountsByHelper(nd); {
		case err == nil:
		case isPerm(err):
			w.s.deniedMnt.Add(1)
		case w.s.short(err):
		default:
			// Counted and said: a namespace held only by a bind mount
			// in it would be missing from the trees.
			w.s.unreadMnt.Add(1)
			w.s.unreadWhy.CompareAndSwap(nil, err.Error())
		}
	}
}

// errChrooted says that a task's root is not its mount namespace's root.
var errChrooted = errors.New("chrooted")

// errRootCovered says that a task's root has been mounted over since it
// was set: the namespace's root, which setns(2) gives, is that mount.
var errRootCovered = errors.New("its root is mounted over")

// mounts reads the nsfs bind mounts of the mount namespace mntIno through
// the first of the tasks that is still there, still in it and not
// chrooted. It returns the error of the last one tried, ESRCH if there
// are none, and stops at a permission error or when no file descriptor
// is left (EMFILE, ENFILE).
func (w *worker) mounts(mntIno uint64, readers []task) error {
	err := error(unix.ESRCH)
	for _, r := range readers {
		if err = w.mountsOf(mntIno, r, r.pid); err == nil || isPerm(err) || err == unix.EMFILE || err == unix.ENFILE {
			return err
		}
		// Exited, reused, moved to another mount namespace or
		// chrooted: try the next task of this mount namespace.
	}
	return err
}

// mountsOf reads the nsfs mounts of the mount namespace mntIno through the
// task r, recording pid as the process that showed them. Its /proc
// directory is opened first and everything else relative to it, and its
// ns/mnt is checked before and after: a PID reused by a process of
// another mount namespace (whose /proc directory is a different one) or a
// task that changed its mount namespace gives an error instead of another
// namespace's mounts. A task whose root is not a mount's root listed as
// "/" in its own mount table is chrooted (it sees only the mounts below
// its root): errChrooted. A task whose root was mounted over (a mount at
// "/" on its root mount) resolves paths below the covered mount, where
// the mounts on the upper one are not: errRootCovered.
func (w *worker) mountsOf(mntIno uint64, r task, pid int) error {
	dfd, err := w.openPID(w.s.procfd, r.pid)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	if r.tid != 0 {
		tfd, err := unix.Openat(dfd, "task/"+strconv.Itoa(r.tid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(tfd)
		dfd = tfd
	}
	inMnt := func() error {
		k, err := w.readKey(dfd, pathMnt)
		if err == nil && k.Ino != mntIno {
			err = unix.ESTALE
		}
		return err
	}
	if err := inMnt(); err != nil {
		return err
	}
	data, err := readAt(dfd, "mountinfo")
	if err != nil {
		return err
	}
	var stx unix.Statx_t
	// AT_STATX_DONT_SYNC: a root on FUSE is not asked (see below).
	if err := unix.Statx(dfd, "root", unix.AT_STATX_DONT_SYNC, unix.STATX_MNT_ID, &stx); err != nil {
		return err
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return errChrooted
	}
	if stx.Mask&unix.STATX_MNT_ID != 0 {
		switch root, covered := rootMounts(data, stx.Mnt_id); {
		case !root:
			return errChrooted
		case covered:
			return errRootCovered
		}
	}
	ms, fuse, over := parseMounts(data)
	if len(ms) == 0 {
		return inMnt()
	}
	root, err := unix.Openat(dfd, "root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	if err := inMnt(); err != nil {
		return err
	}
	// A path below a FUSE mount (or an overlay on one) is looked up by
	// the FUSE server, which may never answer: opening it could hang the
	// scan for good (once the server has read the request, not even
	// SIGKILL ends the wait). Root may use a FUSE mount root made, or
	// one a user made with allow_other where /etc/fuse.conf has
	// user_allow_other (one a user made in a user namespace refuses root
	// at once). Such mounts are counted, not opened.
	var failed []unopened
	for _, m := range ms {
		if belowAny(m.Point, fuse) {
			w.s.noteBelowFUSE(m)
			continue
		}
		// Below an overlay, the path is resolved from the lookup cache
		// alone (RESOLVE_CACHED: the RCU walk, which never sleeps, and a
		// FUSE layer's revalidation cannot wait for its server there);
		// a mount point's path stays in the cache while it is mounted.
		if err := w.mount(root, pid, mntIno, m, belowOrAt(m.Point, over)); err != nil {
			failed = append(failed, unopened{m, err})
		}
	}
	if len(failed) > 0 {
		w.countUnopened(dfd, mntIno, failed)
	}
	return nil
}

// unopened is an nsfs mount that mount could not open, and why.
type unopened struct {
	m   nsMount
	err error
}

// noteBelowFUSE notes an nsfs mount not opened because a FUSE server
// could hold the lookup, for [Model.BelowFUSE].
func (s *scanner) noteBelowFUSE(m nsMount) {
	s.mu.Lock()
	s.belowFUSE = append(s.belowFUSE, m)
	s.mu.Unlock()
}

// countUnopened notes, for [Model.UnopenedNS], the nsfs mounts of the
// mount namespace mntIno that could not be opened (failed) and are still
// listed, with the same ID at the same point, in the mount table of the
// task whose /proc directory is dfd: one unmounted meanwhile held nothing
// the scan missed, while one still there holds a namespace the model
// lacks unless another reference found it (see scanner.model): its mount
// point is no longer reachable by its path (mounted over, renamed,
// replaced by a symlink, the reader's root mounted over).
func (w *worker) countUnopened(dfd int, mntIno uint64, failed []unopened) {
	data, err := readAt(dfd, "mountinfo")
	if err != nil {
		return
	}
	if k, err := w.readKey(dfd, pathMnt); err != nil || k.Ino != mntIno {
		return // moved: its table is another namespace's
	}
	ms, _, _ := parseMounts(data)
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	for _, f := range failed {
		if slices.Contains(ms, f.m) {
			w.s.unopened = append(w.s.unopened, f)
		}
	}
}

// errCovered says that the file at an nsfs mount's point is not that
// namespace: another mount covers it.
var errCovered = errors.New("another file is there (mounted over)")

// belowOrAt reports whether path lies at or below one of points.
func belowOrAt(path string, points []string) bool {
	return slices.Contains(points, path) || belowAny(path, points)
}

// resolveCached is RESOLVE_CACHED (openat2(2), Linux 5.12): fail with
// EAGAIN rather than resolve a component the lookup cache lacks.
const resolveCached = 0x20

// readAt reads the whole file path below dfd.
func readAt(dfd int, path string) ([]byte, error) {
	fd, err := unix.Openat(dfd, path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, unwrapErrno(err)
	}
	return data, nil
}

// openMountPoint opens (O_PATH) the mount point path below root, the
// root directory of a process in its mount namespace; with cachedOnly
// from the dentry cache alone (EAGAIN when a lookup would be needed).
// The path is resolved inside the process's root, with ".." kept inside
// it and without symlinks: a hostile mount point cannot make us open a
// file outside, nor lead the walk into a FUSE mount the caller did not
// see (mountinfo gives a mount point as the path the kernel resolved,
// which has no symlink in it). O_PATH opens nothing yet.
func openMountPoint(root int, path string, cachedOnly bool) (int, error) {
	how := &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_SYMLINKS,
	}
	if cachedOnly {
		how.Resolve |= resolveCached
	}
	fd, err := openBelow(root, path, how)
	// A mount or unmount anywhere ends an RCU walk too: a few tries tell
	// that from a lookup the cache cannot answer, which fails each time.
	for try := 0; cachedOnly && err == unix.EAGAIN && try < 4; try++ {
		fd, err = openBelow(root, path, how)
	}
	return fd, err
}

// mount opens the mount point m below root (the root directory of a
// process in the mount namespace mntIno) and records the namespace. It
// returns why it could not, unless that is counted already (permission,
// FUSE, no descriptor left).
func (w *worker) mount(root, pid int, mntIno uint64, m nsMount, cachedOnly bool) error {
	fd, err := openMountPoint(root, m.Point, cachedOnly)
	if err != nil {
		switch {
		case isPerm(err):
			w.s.deniedMnt.Add(1)
		case w.s.short(err):
		case cachedOnly && (err == unix.EAGAIN || err == unix.EINVAL):
			// Not resolvable without a lookup that could wait for a
			// FUSE server below the overlay (EINVAL: a kernel before
			// 5.12 has no cache-only resolution): counted, not opened.
			w.s.noteBelowFUSE(m)
		default:
			return err
		}
		return nil
	}
	defer unix.Close(fd)
	// Something else may be mounted on top, or it changed.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Ino != m.NS.Ino || st.Dev != w.s.nsdev {
		return errCovered
	}
	k := Key{st.Dev, st.Ino}
	f := Found{Via: ViaMount, PID: pid, Path: m.Point, MountNS: mntIno}
	if w.s.record(k, m.NS.Type, f, "", pinned) != nil {
		return nil
	}
	rfd, err := reopenNS(w.s.procfd, fd, k)
	if err != nil {
		if w.s.short(err) {
			return nil
		}
		return err
	}
	w.s.add(k, m.NS.Type, f, "", rfd)
	return nil
}

// openBelow is openat2(2) of path below dirfd with how, in pieces when
// path is too long for one call: the kernel takes paths shorter than
// PATH_MAX (4,096 bytes) only, while a mount point, mounted through a
// path relative to a directory, can be deeper (ENAMETOOLONG hid it).
// Each piece, cut at a slash, is opened as a directory relative to the
// last (O_PATH, with how's RESOLVE flags: in the root, no symlinks), so
// the walk is what one call's would be.
func openBelow(dirfd int, path string, how *unix.OpenHow) (int, error) {
	dir := dirfd
	defer func() {
		if dir != dirfd {
			unix.Close(dir)
		}
	}()
	for len(path) >= unix.PathMax {
		i := strings.LastIndexByte(path[:unix.PathMax], '/')
		if i <= 0 {
			return -1, unix.ENAMETOOLONG
		}
		dhow := *how
		dhow.Flags = unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		fd, err := unix.Openat2(dir, path[:i], &dhow)
		if err != nil {
			return -1, err
		}
		if dir != dirfd {
			unix.Close(dir)
		}
		dir, path = fd, path[i+1:]
	}
	return unix.Openat2(dir, path, how)
}

// unwrapErrno returns the errno inside a *os.PathError, or err.
func unwrapErrno(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
