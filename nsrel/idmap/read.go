package idmap

import (
	"bytes"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Maps are the ID maps of one user namespace.
type Maps struct {
	// UID and GID are the uid_map and gid_map.
	UID, GID Map
	// SetGroups is the contents of the setgroups file: "allow" or
	// "deny" (setgroups(2) refused in the namespace).
	SetGroups string
}

// Initial returns the maps of the initial user namespace, which the
// kernel fixes: every ID is itself ([Identity]), and setgroups(2) cannot
// be turned off there (its gid_map is never empty). A reader in that
// namespace need not read /proc/self for them.
func Initial() Maps { return Maps{UID: Identity(), GID: Identity(), SetGroups: "allow"} }

// ReadOwn returns the maps of the caller's own user namespace: [Initial]
// when it is the initial one (initial), without reading anything, else
// [Read] of /proc/self.
func ReadOwn(initial bool) (Maps, error) {
	if initial {
		return Initial(), nil
	}
	return Read("/proc/self")
}

// maxFile bounds a map file: MaxLines lines of three 10-digit numbers.
const maxFile = MaxLines * 34

// Read reads the uid_map, gid_map and setgroups files of the process
// directory dir (for example "/proc/1234"). The outside IDs are relative
// to the caller's user namespace, or to the namespace's parent when the
// caller is in it (user_namespaces(7)). Errors are *fs.PathError with the
// errno: fs.ErrNotExist when the process is gone.
func Read(dir string) (Maps, error) {
	m, err := ReadIDs(dir)
	if err != nil {
		return Maps{}, err
	}
	b, err := ReadFile(dir + "/setgroups")
	if err != nil {
		return Maps{}, err
	}
	m.SetGroups = string(bytes.TrimSpace(b))
	return m, nil
}

// ReadIDs is [Read] without the setgroups file: the uid_map and gid_map
// only (SetGroups is left empty), one file fewer to open for callers
// that only compare IDs.
func ReadIDs(dir string) (Maps, error) {
	return readIDs(dir, func(name string) ([]byte, error) { return ReadFile(dir + "/" + name) })
}

// ReadIDsAt is [ReadIDs] through dirfd, an open /proc/PID directory. Such
// a descriptor stays bound to the process it was opened for: once that
// process has exited, reads through it fail (fs.ErrNotExist or ESRCH)
// even when the PID has been reused, so every file read through it
// belongs to one process.
func ReadIDsAt(dirfd int, dir string) (Maps, error) {
	return readIDs(dir, func(name string) ([]byte, error) { return ReadFileAt(dirfd, dir, name) })
}

func readIDs(dir string, read func(name string) ([]byte, error)) (Maps, error) {
	var m Maps
	for _, f := range []struct {
		name string
		dst  *Map
	}{{"uid_map", &m.UID}, {"gid_map", &m.GID}} {
		b, err := read(f.name)
		if err != nil {
			return Maps{}, err
		}
		if *f.dst, err = Parse(b); err != nil {
			return Maps{}, fmt.Errorf("%s/%s: %w", dir, f.name, err)
		}
	}
	return m, nil
}

// ReadProc reads the maps of the process whose /proc directory is dir
// (e.g. "/proc/1234") through one descriptor of that directory, which
// stays bound to the process it was opened for (once it exited, reads
// fail with fs.ErrNotExist or ESRCH even if its PID was reused), and
// returns with them the inode of the user namespace the process is in
// after the read (its ns/user link): a caller compares it with the
// namespace it wants the maps of, since a process may setns(2) or
// unshare(2). With setgroups the setgroups file is read too.
func ReadProc(dir string, setgroups bool) (m Maps, userNSIno uint64, err error) {
	dirfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Maps{}, 0, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dirfd)
	if m, err = ReadIDsAt(dirfd, dir); err != nil {
		return Maps{}, 0, err
	}
	if setgroups {
		b, err := ReadFileAt(dirfd, dir, "setgroups")
		if err != nil {
			return Maps{}, 0, err
		}
		m.SetGroups = string(bytes.TrimSpace(b))
	}
	var buf [64]byte
	n, err := unix.Readlinkat(dirfd, "ns/user", buf[:])
	if err != nil {
		return Maps{}, 0, &fs.PathError{Op: "readlink", Path: dir + "/ns/user", Err: err}
	}
	// "user:[INODE]"
	link := string(buf[:n])
	digits, ok := strings.CutPrefix(link, "user:[")
	digits, ok2 := strings.CutSuffix(digits, "]")
	ino, perr := strconv.ParseUint(digits, 10, 64)
	if !ok || !ok2 || perr != nil {
		return Maps{}, 0, fmt.Errorf("idmap: %s/ns/user is %q, not a user namespace", dir, link)
	}
	return m, ino, nil
}

// ReadFile reads a small /proc file with plain system calls, up to the
// size of the largest map file.
func ReadFile(path string) ([]byte, error) {
	return ReadFileAt(unix.AT_FDCWD, "", path)
}

// MaxPasswdFile and MaxSubIDFile bound the passwd(5) and subuid(5)
// files [ReadFileLimit] reads for allowed_subid_user. A passwd line
// takes 40 to 100 bytes (name, GECOS, home, shell), a subordinate ID
// line 20 to 40 (NAME:FIRST:COUNT): 16 MiB of passwd and 4 MiB of
// subordinate IDs hold well over 100,000 users each, more than a
// node's files name (sites with more keep them in a directory service),
// while the bounds keep what a file can make the hook hold in memory
// small. Either was read only up to the 16 KiB of a /proc file: a
// 17 KB /etc/passwd, not rare, lost the resolution of names to UIDs,
// and a larger /etc/subuid made allowed_host_ranges "cannot be checked"
// for every container.
const (
	MaxPasswdFile = 16 << 20
	MaxSubIDFile  = 4 << 20
)

// ReadFileLimit is [ReadFile] of a file of up to about limit bytes: a
// larger one is an error matching unix.EFBIG.
func ReadFileLimit(path string, limit int) ([]byte, error) {
	return readFileAt(unix.AT_FDCWD, "", path, limit)
}

// ReadFileAt is [ReadFile] of name relative to dirfd (the directory dir,
// for messages). It reads until a read returns nothing: a /proc seq file
// returns at most a page per read, whole lines only, so a read that
// returns less than asked need not end the file (a uid_map of more than
// 124 lines, 33 bytes each, was cut there, and the lines after never
// checked).
func ReadFileAt(dirfd int, dir, name string) ([]byte, error) {
	return readFileAt(dirfd, dir, name, maxFile)
}

// readFileAt is [ReadFileAt] with a bound: a file that fills a buffer
// of limit bytes or more is too big.
func readFileAt(dirfd int, dir, name string, limit int) ([]byte, error) {
	path := name
	if dir != "" {
		path = dir + "/" + name
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	for err == unix.EINTR {
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	return readFd(fd, path, limit)
}

// ReadFileInRoot is [ReadFileLimit] of the absolute path name resolved
// within the directory root as if it were "/" (openat2 RESOLVE_IN_ROOT):
// an absolute symlink or ".." met on the way stays inside root. For the
// host's files read through another root (/proc/1/root from a pod),
// where a plain open resolved an absolute symlink in the reader's own
// root.
func ReadFileInRoot(root, name string, limit int) ([]byte, error) {
	path := strings.TrimSuffix(root, "/") + name
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rootfd)
	how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	rel := strings.TrimPrefix(name, "/")
	fd, err := unix.Openat2(rootfd, rel, &how)
	// EAGAIN: a ".." met while a rename or mount raced the lookup; a
	// few tries, not for ever.
	for try := 0; (err == unix.EINTR || err == unix.EAGAIN) && try < 16; try++ {
		fd, err = unix.Openat2(rootfd, rel, &how)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	return readFd(fd, path, limit)
}

// readFd reads fd (path, for messages) to its end, failing past about
// limit bytes.
func readFd(fd int, path string, limit int) ([]byte, error) {
	buf := make([]byte, 4096)
	n := 0
	for {
		if n == len(buf) {
			if len(buf) >= limit {
				return nil, &fs.PathError{Op: "read", Path: path, Err: unix.EFBIG}
			}
			buf = append(buf, make([]byte, len(buf))...)
		}
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			return buf[:n], nil
		}
		n += m
	}
}
