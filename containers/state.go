package containers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/safefile"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// Root is one runtime state directory: runc keeps ROOT/ID/state.json,
// crun keeps ROOT/ID/status.
type Root struct {
	// Runtime is "runc" or "crun" (the state file format).
	Runtime string
	// Dir is the root directory (runc/crun --root). It may hold a glob
	// pattern, expanded at each List (e.g. /run/containerd/runc/*).
	Dir string
}

// DefaultRoots are the state roots read when none are given: runc's and
// crun's defaults (also used by podman and CRI-O as root), containerd's
// per-namespace runc roots, those of Docker's own containerd, and
// rootless podman's per-user roots.
func DefaultRoots() []Root {
	return []Root{
		{EngineRunc, "/run/runc"},
		{EngineRunc, "/run/containerd/runc/*"},
		{EngineRunc, "/run/docker/runtime-runc/*"},
		{EngineRunc, "/run/user/*/runc"},
		{EngineCrun, "/run/crun"},
		{EngineCrun, "/run/user/*/crun"},
	}
}

// StateSource lists containers from runc and crun state directories,
// without any daemon: containers started by plain runc or crun, by
// podman, by CRI-O, and by containerd (whose shims keep runc state in
// /run/containerd/runc/NAMESPACE). It implements
// [discover.ContainerSource].
//
// State files are container-controlled input for rootless runtimes (the
// directories belong to the user): each root is opened once, and each
// ID directory from it and each state file from that, none through a
// symlink; a file is read up to [vocab.MaxStateSize], decoded leniently,
// and its claims are checked before use: the ID must be a valid runtime
// ID equal to the directory name, the process must exist with the start
// time the state records (so a reused PID is not attributed), and a
// state file not owned by root is believed only of a process in a user
// namespace of its owner's (see [State.Alive]); in a root of a user's
// (see [rootUser]) a file owned by root counts as that user's and one of
// another user's is refused. A user's state (rootless) cannot claim
// containerd or CRI-O as its engine, nor a Kubernetes pod as its name.
type StateSource struct {
	// Roots to read; if nil, [RootsFromEnv], else [DefaultRoots].
	Roots []Root
}

// Name implements [discover.ContainerSource].
func (s *StateSource) Name() string { return "runtime-state" }

// List implements [discover.ContainerSource]. Missing roots are normal
// (the runtime is not installed or never ran) and count as read, except
// those $NSREL_RUNTIME_ROOTS names (not a pattern): each is a
// [NamedError] in a [PartialError], with the containers of the others; it
// fails only when every root that exists is unreadable.
func (s *StateSource) List(ctx context.Context) ([]discover.Container, error) {
	roots := s.Roots
	byEnv := false
	if roots == nil {
		env, err := RootsFromEnv()
		if err != nil {
			return nil, err
		}
		roots, byEnv = env, env != nil
	}
	if roots == nil {
		roots = DefaultRoots()
	}
	var missing []error // roots $NSREL_RUNTIME_ROOTS names that are not there
	// Each root is read on its own, all at once: one that is slow (a
	// user's root with 300,000 directories in it) does not hold the
	// others, and at the deadline what was read is returned, with an
	// error naming the roots not read.
	type job struct{ rt, dir string }
	var jobs []job
	for _, r := range roots {
		dirs := []string{r.Dir}
		if strings.ContainsAny(r.Dir, "*?[") {
			// A pattern that matches nothing is no error: it is
			// meant for directories that come and go.
			dirs, _ = filepath.Glob(r.Dir)
		} else if _, err := os.Lstat(r.Dir); byEnv && errors.Is(err, fs.ErrNotExist) {
			// Named, not there: said (a default root that is not
			// there is a runtime not installed).
			missing = append(missing, &NamedError{"NSREL_RUNTIME_ROOTS", r.Runtime + "=" + r.Dir, fmt.Errorf("%s state %s: %w", r.Runtime, r.Dir, err)})
			continue
		}
		for _, dir := range dirs {
			jobs = append(jobs, job{r.Runtime, dir})
		}
	}
	type result struct {
		i   int
		cs  []discover.Container
		err error
	}
	done := make(chan result, len(jobs))
	hook := beforeListRoot.Load()
	names := newNameReads(ctx)
	for i, j := range jobs {
		go func() {
			if hook != nil {
				(*hook)(j.dir)
			}
			cs, err := listRoot(j.rt, j.dir, names)
			done <- result{i, cs, err}
		}()
	}
	finished := make([]bool, len(jobs))
	var (
		out  []discover.Container
		errs []error
		late []error
		read int
	)
wait:
	for range jobs {
		select {
		case r := <-done:
			finished[r.i] = true
			if r.err != nil {
				errs = append(errs, r.err)
				continue
			}
			read++
			out = append(out, r.cs...)
		case <-ctx.Done():
			break wait
		}
	}
	for i, j := range jobs {
		if !finished[i] {
			late = append(late, fmt.Errorf("%s state %s: not read in time", j.rt, j.dir))
		}
	}
	late = append(late, names.errs()...)
	// A root not read in time is said with the containers of the others
	// (none, maybe); callers drop a failed source's containers, so an
	// unreadable root (e.g. root's /run/runc for an unprivileged user)
	// fails the source only when no root could be read at all.
	if len(late) == 0 && read == 0 && len(errs) > 0 {
		return nil, errors.Join(append(errs, missing...)...)
	}
	if late = append(late, missing...); len(late) > 0 {
		return out, &PartialError{errors.Join(late...)}
	}
	return out, nil
}

// PartialError is the error of a source that returned some containers
// but not all it should have (a state root not read in time): show
// them, and say that others may be missing.
type PartialError struct{ Err error }

func (e *PartialError) Error() string { return e.Err.Error() }
func (e *PartialError) Unwrap() error { return e.Err }

// validID reports whether id has the container ID syntax runc and crun
// accept, [A-Za-z0-9_+.-]+ (a loop: a regexp would be compiled at every
// start of the tree commands).
func validID(id string) bool {
	if id == "" {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '+', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// beforeListRoot, when set by a test, runs before a root is read.
var beforeListRoot atomic.Pointer[func(dir string)]

func listRoot(rt, dir string, names *nameReads) ([]discover.Container, error) {
	// The root is opened once, without following a symlink at its last
	// component, and listed and read through that descriptor: each ID
	// directory is opened from it and each state file from the ID
	// directory's, neither through a symlink. A user who swaps a
	// directory of its own root with a symlink to root's state (between
	// the listing and the open) then reads as a refused symlink, never
	// as root's container under the user's name for it.
	fd, err := openDir(unix.AT_FDCWD, dir, unix.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s state %s: %w", rt, dir, err)
	}
	d := os.NewFile(uintptr(fd), dir)
	defer d.Close()
	user, err := rootUser(fd, dir)
	if err != nil {
		return nil, fmt.Errorf("%s state %s: %w", rt, dir, err)
	}
	entries, err := d.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("%s state %s: %w", rt, dir, err)
	}
	// In name order, as os.ReadDir gave them: what is read first (the
	// podman names within a listing's budget) does not depend on the
	// directory's order.
	slices.SortFunc(entries, func(a, b os.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	file := "state.json"
	if rt == EngineCrun {
		file = "status"
	}
	// A few workers: each container costs a file read, a JSON decode and
	// a /proc lookup.
	results := make([]*found, len(entries))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.NumCPU(), len(entries), 8) {
		wg.Go(func() {
			for i := range next {
				results[i] = readContainer(rt, stateRoot{fd, dir, user}, entries[i].Name(), file)
			}
		})
	}
	for i, e := range entries {
		if e.IsDir() && len(e.Name()) <= 1024 && validID(e.Name()) {
			next <- i
		}
	}
	close(next)
	wg.Wait()
	names.addPodmanNames(results)
	var out []discover.Container
	for _, f := range results {
		if f == nil {
			continue
		}
		out = append(out, f.c)
	}
	return out, nil
}

// openDir opens the directory name relative to dirfd (unix.AT_FDCWD:
// the working directory) with flags (unix.O_RDONLY, or unix.O_PATH for
// one only opened from), refusing a symlink at its last component; the
// caller closes the descriptor. Errors are [*fs.PathError]s.
func openDir(dirfd int, name string, flags int) (int, error) {
	const add = unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(dirfd, name, flags|add, 0)
	for err == unix.EINTR {
		fd, err = unix.Openat(dirfd, name, flags|add, 0)
	}
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return fd, nil
}

// stateRoot is an open state root: its descriptor (borrowed), its path
// (for messages and names) and the user it belongs to (see [rootUser]).
type stateRoot struct {
	fd   int
	path string
	user uint32
}

// rootUser returns the user the state root open at fd (path dir) belongs
// to: the owner of the root, else of the nearest directory above it
// owned by a user other than root (a user may rename and replace what is
// below a directory of its own), else N for a root below /run/user/N
// (a user's runtime directory); 0 (root's) when there is none.
func rootUser(fd int, dir string) (uint32, error) {
	st, err := dirStat(fd, dir)
	if err != nil {
		return 0, err
	}
	if st.Uid != 0 {
		return st.Uid, nil
	}
	// Up from the directory opened, not along the path's text: a
	// symlink on the way (to a directory of a user's) or a relative
	// root (below a user's working directory) hid the user's
	// directories from a walk of the text. ".." of the top is itself,
	// in the same mount: the caller's root, or the root mount of
	// another mount namespace (a root reached through /proc/PID/root).
	// In another mount, it is a directory bind-mounted onto one below
	// it: the walk goes on above (it stopped there, as at the top, and
	// missed a user's directory above).
	cur, err := unix.Dup(fd)
	if err != nil {
		return 0, &fs.PathError{Op: "dup", Path: dir, Err: err}
	}
	defer func() { unix.Close(cur) }()
	top := false
	for range maxRootDepth {
		up, err := unix.Openat(cur, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, &fs.PathError{Op: "open", Path: dir + "/..", Err: err}
		}
		unix.Close(cur)
		cur = up
		pst, err := dirStat(cur, dir+"/..")
		if err != nil {
			return 0, err
		}
		if pst.Uid != 0 {
			return pst.Uid, nil
		}
		// The top: ".." is the directory itself, in its mount, and the
		// kernel says the directory is a mount's root, or it is the
		// caller's "/" (a chroot's, not a mount's root). A file system
		// picks the inode numbers it reports (FUSE a user serves: a
		// directory and the root above it alike), not the mount IDs
		// nor the mount-root mark: such a pair is walked past.
		if pst.Dev_major == st.Dev_major && pst.Dev_minor == st.Dev_minor && pst.Ino == st.Ino && pst.Mnt_id == st.Mnt_id &&
			(st.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0 || isSlash(st)) {
			top = true
			break
		}
		st = pst
	}
	if !top {
		return 0, fmt.Errorf("%s: more than %d directories above it", dir, maxRootDepth)
	}
	dir = filepath.Clean(dir)
	if rest, ok := strings.CutPrefix(dir, "/run/user/"); ok {
		uid, _, _ := strings.Cut(rest, "/")
		if n, err := strconv.ParseUint(uid, 10, 32); err == nil {
			return uint32(n), nil
		}
	}
	return 0, nil
}

// dirStat returns the owner, device, inode and mount ID of the directory
// open at fd, and whether it is a mount's root (STATX_MNT_ID,
// STATX_ATTR_MOUNT_ROOT: Linux 5.8; an older kernel's answer, without
// them, is an error rather than every directory in one mount).
func dirStat(fd int, name string) (unix.Statx_t, error) {
	var st unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_UID|unix.STATX_INO|unix.STATX_MNT_ID, &st); err != nil {
		return st, &fs.PathError{Op: "statx", Path: name, Err: err}
	}
	if st.Mask&unix.STATX_MNT_ID == 0 || st.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return st, fmt.Errorf("%s: the kernel gives no mount ID (Linux 5.8 or later)", name)
	}
	return st, nil
}

// isSlash reports whether st is the caller's "/".
func isSlash(st unix.Statx_t) bool {
	var rst unix.Statx_t
	if unix.Statx(unix.AT_FDCWD, "/", 0, unix.STATX_INO|unix.STATX_MNT_ID, &rst) != nil {
		return false
	}
	return rst.Dev_major == st.Dev_major && rst.Dev_minor == st.Dev_minor && rst.Ino == st.Ino && rst.Mnt_id == st.Mnt_id
}

// maxRootDepth bounds the walk up from a state root: deeper than a path
// of PATH_MAX can name.
const maxRootDepth = 2048

// found is a container read from a state directory, with what its name
// lookup needs: the bundle and the state file's owner.
type found struct {
	c      discover.Container
	bundle string
	owner  uint32
}

// readContainer reads the state directory name of root; nil when it is
// gone, not a container, or fails validation. The directory is opened
// from the root's descriptor and the state file from the directory's,
// neither through a symlink. In a root of a user's, a state file owned
// by root counts as that user's (the user may have moved it there, or
// swapped a directory of its own with one of root's state) and one of
// another user's is refused.
func readContainer(rt string, root stateRoot, name, file string) *found {
	dir := filepath.Join(root.path, name)
	dfd, err := openDir(root.fd, name, unix.O_PATH)
	if err != nil {
		return nil
	}
	defer unix.Close(dfd)
	data, owner, err := readLimitedAt(dfd, file, filepath.Join(dir, file), vocab.MaxStateSize)
	if err != nil {
		return nil
	}
	if root.user != 0 && owner != root.user {
		if owner != 0 {
			return nil
		}
		owner = root.user
	}
	var st State
	if rt == EngineCrun {
		st, err = ParseCrunStatus(data)
	} else {
		st, err = ParseRuncState(data)
	}
	if err != nil {
		return nil
	}
	if st.ID == "" {
		st.ID = name
	}
	if st.ID != name || !st.Alive(owner) {
		return nil
	}
	c := st.Container(rt)
	if owner != 0 {
		// A state file its process's user owns (rootless runc, crun,
		// podman) is that user's to write, bundle path and annotations
		// included: it cannot make the container containerd's or
		// CRI-O's (root's engines), nor a Kubernetes pod's. Its ID is
		// the user's to choose too, one a root container has included:
		// the user's runtime root is a namespace of IDs of its own,
		// uid=UID, so that its container is never taken for root's.
		if c.Engine == EngineContainerd || c.Engine == EngineCRIO {
			c.Engine = rt
		}
		c.Namespace = UserNamespacePrefix + strconv.FormatUint(uint64(owner), 10)
		if vocab.PodName(st.Annotations) != "" {
			c.Name = ""
		}
	}
	return &found{c, st.Bundle, owner}
}

// readLimited reads path without following a symlink at its last
// component, refusing anything but a regular file, or one larger than
// limit; it returns the file owner's UID.
func readLimited(path string, limit int64) ([]byte, uint32, error) {
	return readLimitedAt(unix.AT_FDCWD, path, path, limit)
}

// readLimitedAt is [readLimited] of name relative to the directory
// dirfd (borrowed); path names it in errors.
func readLimitedAt(dirfd int, name, path string, limit int64) ([]byte, uint32, error) {
	f, err := safefile.OpenRegularAt(dirfd, name, path, unix.O_RDONLY)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, 0, err
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, 0, err
	}
	if int64(len(data)) > limit {
		return nil, 0, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, st.Uid, nil
}

// UserNamespacePrefix starts the engine namespace of a container whose
// state file a user other than root owns (a rootless runtime's):
// "uid=1000".
const UserNamespacePrefix = vocab.UserNamespacePrefix

// UsersUID returns the user whose state file c came from (a rootless
// runtime's container, of engine runc, crun or podman, in engine
// namespace "uid=UID"), false for any other container.
func UsersUID(c discover.Container) (int64, bool) {
	rest, ok := strings.CutPrefix(c.Namespace, UserNamespacePrefix)
	if !ok || c.Engine != EngineRunc && c.Engine != EngineCrun && c.Engine != EnginePodman {
		return 0, false
	}
	uid, err := strconv.ParseUint(rest, 10, 32)
	return int64(uid), err == nil
}

// State is what nsrel uses of a runtime's state file.
type State struct {
	// ID is the container ID.
	ID string
	// PID is the container's init process on the host.
	PID int
	// StartTime is the init process's start time in clock ticks since
	// boot (field 22 of /proc/PID/stat), 0 if the state has none.
	StartTime uint64
	// Bundle is the bundle directory.
	Bundle string
	// Annotations are the spec's annotations as far as the state
	// records them (runc keeps them as "key=value" config labels; crun's
	// status has none).
	Annotations map[string]string
}

// maxAnnotations bounds how many annotations are kept from one state.
const maxAnnotations = 256

// ParseRuncState decodes the fields nsrel needs from runc's state.json.
// Unknown fields are ignored; wrong types, a negative or absurd PID and
// trailing data are errors.
func ParseRuncState(data []byte) (State, error) {
	var raw struct {
		ID        string `json:"id"`
		PID       int64  `json:"init_process_pid"`
		StartTime uint64 `json:"init_process_start"`
		Config    struct {
			Labels []string `json:"labels"`
		} `json:"config"`
	}
	if err := decodeStrict(data, &raw); err != nil {
		return State{}, fmt.Errorf("runc state: %w", err)
	}
	st := State{ID: raw.ID, StartTime: raw.StartTime}
	for _, l := range raw.Config.Labels {
		k, v, ok := strings.Cut(l, "=")
		switch {
		case !ok:
		case k == "bundle":
			st.Bundle = v
		case len(st.Annotations) < maxAnnotations:
			if st.Annotations == nil {
				st.Annotations = make(map[string]string)
			}
			st.Annotations[k] = v
		}
	}
	return st, st.setPID(raw.PID)
}

// ParseCrunStatus decodes the fields nsrel needs from crun's status
// file.
func ParseCrunStatus(data []byte) (State, error) {
	var raw struct {
		PID       int64  `json:"pid"`
		StartTime uint64 `json:"process-start-time"`
		Bundle    string `json:"bundle"`
	}
	if err := decodeStrict(data, &raw); err != nil {
		return State{}, fmt.Errorf("crun status: %w", err)
	}
	st := State{StartTime: raw.StartTime, Bundle: raw.Bundle}
	return st, st.setPID(raw.PID)
}

func (st *State) setPID(pid int64) error {
	if pid <= 0 || pid >= vocab.PIDLimit {
		return fmt.Errorf("pid %d out of range", pid)
	}
	st.PID = int(pid)
	return nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// Alive reports whether the state's process still is the container's:
// it exists, its start time equals the recorded one, and, for a state
// file owned by fileUID other than root, it runs in a user namespace of
// that user's (see [usersNamespace]). The process's own UID is not
// checked: in a rootless container it is any of the user's subordinate
// IDs (101000 for a user inside), and the user namespace says whose the
// process is. A state that records no start time is refused when a
// user owns it (runc and crun always record one); root's is taken at
// its word, and the start time read is recorded in st, so that a later
// check (lstool.Annotate's, after it read the namespaces) tells the
// process from a later one with its PID.
func (st *State) Alive(fileUID uint32) bool {
	if st.PID <= 0 || (fileUID != 0 && st.StartTime == 0) {
		return false
	}
	var userNS *nsrel.Namespace
	if fileUID != 0 {
		// Opened before the start time is read: the same start time
		// then means the namespace was the container's process's.
		ns, err := nsrel.Open("/proc/" + strconv.Itoa(st.PID) + "/ns/user")
		if err != nil {
			return false
		}
		defer ns.Close()
		userNS = ns
	}
	start, err := inspect.StartTime(st.PID)
	if err != nil {
		return false
	}
	if st.StartTime != 0 && start != st.StartTime {
		return false
	}
	if userNS != nil && !usersNamespace(userNS, fileUID) {
		return false
	}
	st.StartTime = start
	return true
}

// usersNamespace reports whether the user namespace ns is uid's: it is
// or descends from a child of the initial user namespace (the top one
// the caller sees) that uid created (NS_GET_OWNER_UID), as a rootless
// runtime's are. A process in the initial user namespace is refused
// (a user's plain process, a root container run as the user's UID), and
// so is one in a namespace below one of root's, even where a namespace
// on the way was created by uid (a UID inside root's container mapped
// to the user's): only the top one tells whose the tree is, since only
// its owner holds capabilities in it from outside.
func usersNamespace(ns *nsrel.Namespace, uid uint32) bool {
	// child is the namespace below cur on the way up, nil at the start.
	var child *nsrel.Namespace
	cur := ns
	var opened []*nsrel.Namespace
	defer func() {
		for _, n := range opened {
			n.Close()
		}
	}()
	for range policy.MaxUserDepth { // the kernel's nesting limit
		parent, err := nsrel.Parent(cur)
		if err != nil {
			// EPERM: cur is the top. Where the process itself runs
			// there (child nil), or the walk failed, it cannot be
			// told to be uid's.
			if child == nil || !errors.Is(err, fs.ErrPermission) {
				return false
			}
			owner, err := nsrel.OwnerUID(child)
			return err == nil && owner == uid
		}
		opened = append(opened, parent)
		child, cur = cur, parent
	}
	return false
}

// Container converts the state to a [discover.Container], telling the
// managing engine where it can: containerd shims put bundles in
// .../io.containerd.runtime.v2.task/NAMESPACE/ID; podman and CRI-O put
// them in .../DRIVER-containers/ID/userdata (see [podmanStorePath]), and podman marks its
// containers with the annotation io.container.manager=libpod while CRI-O
// sets io.kubernetes.cri-o.* ones. The name comes from the annotations
// (see [vocab.ContainerName]): the Kubernetes pod and container (CRI-O,
// containerd's CRI), or nerdctl's; podman's names are added by
// [StateSource] from podman's storage.
func (st State) Container(runtime string) discover.Container {
	c := discover.Container{ID: st.ID, Engine: runtime, PID: st.PID, StartTime: st.StartTime, Name: vocab.ContainerName(st.Annotations)}
	parts := strings.Split(filepath.Clean(st.Bundle), "/")
	n := len(parts)
	// A containerd shim's bundle first: the annotations below may be a
	// pod's author's, which containerd's pod_annotations lets through
	// (io.kubernetes.cri-o.ContainerType claimed CRI-O).
	if i := slices.Index(parts, "io.containerd.runtime.v2.task"); i >= 0 && i+2 < n && parts[i+2] == st.ID {
		c.Engine, c.Namespace = EngineContainerd, parts[i+1]
		c.Name = vocab.ContainerName(vocab.WithoutCRIO(st.Annotations)) // its CRI's keys name it
		return c
	}
	switch {
	case st.Annotations["io.container.manager"] == "libpod":
		c.Engine = EnginePodman
	case st.Annotations["io.kubernetes.cri-o.ContainerType"] != "":
		c.Engine = EngineCRIO
	case n >= 3 && parts[n-1] == "userdata" && parts[n-2] == st.ID && podmanDrivers[parts[n-3]]:
		c.Engine = EnginePodman
	}
	return c
}

// RootsFromEnv parses $NSREL_RUNTIME_ROOTS, a comma-separated list of
// RUNTIME=DIR entries (RUNTIME "runc" or "crun", DIR possibly a glob),
// which replaces [DefaultRoots] for installations with other roots. It
// returns nil when the variable is unset or empty.
func RootsFromEnv() ([]Root, error) {
	v := os.Getenv("NSREL_RUNTIME_ROOTS")
	if v == "" {
		return nil, nil
	}
	var roots []Root
	for _, e := range strings.Split(v, ",") {
		rt, dir, ok := strings.Cut(strings.TrimSpace(e), "=")
		if !ok || (rt != EngineRunc && rt != EngineCrun) || !filepath.IsAbs(dir) {
			// Quoted, not escaped: the notice escapes it ([vocab.Escape]).
			return nil, fmt.Errorf("NSREL_RUNTIME_ROOTS: \"%s\" is not runc=/DIR or crun=/DIR", e)
		}
		roots = append(roots, Root{rt, dir})
	}
	return roots, nil
}
