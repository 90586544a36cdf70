package safefile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrUntrusted matches errors for a file or directory that someone other
// than root or the running user owns or may write (or, for a secret,
// read).
var ErrUntrusted = errors.New("not trusted")

// The trust rule, after OpenSSH's StrictModes and sudo: a file is trusted
// when it is owned by root or by the effective user and neither its group
// nor others may write it, and every directory on the way to it is
// trusted the same way. A directory that others may write is trusted
// only with the sticky bit (/tmp): there nobody can rename or remove
// another user's entries, so the entry below it must itself be owned by
// root or the effective user, which the walk checks next. A symlink in a
// directory path is followed, and both the link's directory and its
// target's directories are checked (of the part of the path that
// exists), link after link; each link itself must be owned by root or
// the effective user.

// CheckOwner checks that f, opened from path, is owned by root or the
// effective user and writable by neither its group nor others; with
// secret set, readable by neither either.
func CheckOwner(f *os.File, path string, secret bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	return checkStat(path, &st, secret)
}

func checkStat(path string, st *unix.Stat_t, secret bool) error {
	euid := uint32(os.Geteuid())
	if st.Uid != 0 && st.Uid != euid {
		return fmt.Errorf("%s: owned by uid %d, not root or uid %d: refusing it: %w", path, st.Uid, euid, ErrUntrusted)
	}
	mode := st.Mode & 0o7777
	if mode&0o022 != 0 {
		return fmt.Errorf("%s: writable by %s (mode %04o): refusing it (chmod go-w): %w", path, who(mode, 0o020, 0o002), mode, ErrUntrusted)
	}
	if secret && mode&0o044 != 0 {
		return fmt.Errorf("%s: readable by %s (mode %04o): refusing a secret others can read (chmod go-r): %w", path, who(mode, 0o040, 0o004), mode, ErrUntrusted)
	}
	if secret && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink > 1 {
		// Another name of the file: where someone else linked it (a
		// root file linked into their directory), writing the secret
		// writes that file.
		return fmt.Errorf("%s: has %d links: refusing a secret with other names (keep one): %w", path, st.Nlink, ErrUntrusted)
	}
	return nil
}

func who(mode, group, other uint32) string {
	switch {
	case mode&group != 0 && mode&other != 0:
		return "group and others"
	case mode&group != 0:
		return "group"
	}
	return "others"
}

// CheckDirs checks every directory from / down to dir (an absolute path)
// by the trust rule above. Directories that do not exist yet are not
// checked (they are created 0700 by whoever needs them). A symlink on
// the way is followed one link at a time, as the kernel does: each link
// and every directory on the way to its target are checked, so that a
// link of root's to a name in /tmp cannot lead through another user's
// link.
func CheckDirs(dir string) error {
	_, err := checkDirs(dir)
	return err
}

// checkDirs is [CheckDirs], and says whether every directory on the way
// existed (complete): when one did not, someone else may make it (in a
// sticky directory) or put a symlink there between the check and the
// caller's open, which [recheck] then catches.
func checkDirs(dir string) (complete bool, err error) {
	if !filepath.IsAbs(dir) {
		return false, fmt.Errorf("%s: not an absolute path", dir)
	}
	if err := noDotDot(dir); err != nil {
		return false, err
	}
	return walkDirs(filepath.Clean(dir))
}

// walkDirs is [checkDirs] of an absolute path p, which may hold ".."
// after a symlink (a link's target, not cleaned: the walk takes ".." as
// the kernel does, through real directories only).
func walkDirs(p string) (complete bool, err error) {
	dir := p
	for range maxSymlinks {
		link, rest, missing, err := checkPath(p)
		if err != nil || link == "" {
			return !missing, err // without a symlink on the way, the path is the real one
		}
		target, err := os.Readlink(link)
		if err != nil {
			return false, fmt.Errorf("%s: %w", dir, err)
		}
		// Not cleaned: ".." after a symlink is the parent of its
		// target, which the walk, going through real directories only,
		// takes as the kernel does.
		if !strings.HasPrefix(target, "/") {
			target = filepath.Dir(link) + "/" + target
		}
		p = target + "/" + rest
	}
	return false, fmt.Errorf("%s: more than %d symlinks on the way: %w", dir, maxSymlinks, ErrUntrusted)
}

// noDotDot refuses a path with a ".." in it: lexically a/link/.. is a,
// which the checks would take, where the kernel takes the parent of the
// link's target.
func noDotDot(path string) error {
	if slices.Contains(strings.Split(path, "/"), "..") {
		return fmt.Errorf("%s: a path with \"..\" in it: refusing it (name it without): %w", path, ErrUntrusted)
	}
	return nil
}

// maxSymlinks is how many symlinks CheckDirs follows, as the kernel's
// limit for one path (MAXSYMLINKS).
const maxSymlinks = 40

// checkPath walks the components of an absolute, clean path from /,
// checking each directory, up to the first symlink: it returns the
// link's path (its owner checked; "" when there is none) and the rest of
// the path after it, or, missing, that a directory does not exist.
func checkPath(p string) (link, rest string, missing bool, err error) {
	cur := "/"
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if p == "/" {
		parts = nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(cur, &st); err != nil {
		return "", "", false, &os.PathError{Op: "lstat", Path: cur, Err: err}
	}
	if err := checkDir(cur, &st); err != nil {
		return "", "", false, err
	}
	for i, part := range parts {
		next := filepath.Join(cur, part)
		if err := unix.Lstat(next, &st); err != nil {
			if err == unix.ENOENT {
				return "", "", true, nil
			}
			return "", "", false, &os.PathError{Op: "lstat", Path: next, Err: err}
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			// Its directory was checked; CheckDirs checks the target's.
			// A symlink's mode says nothing, but in a directory others
			// may write (sticky /tmp) anyone can make one pointing at a
			// trusted directory of their choice: its owner must be
			// trusted like any entry's.
			if euid := uint32(os.Geteuid()); st.Uid != 0 && st.Uid != euid {
				return "", "", false, fmt.Errorf("%s: a symlink owned by uid %d, not root or uid %d: refusing it: %w", next, st.Uid, euid, ErrUntrusted)
			}
			return next, strings.Join(parts[i+1:], "/"), false, nil
		case unix.S_IFDIR:
			if err := checkDir(next, &st); err != nil {
				return "", "", false, err
			}
		default:
			return "", "", false, fmt.Errorf("%s: not a directory: %w", next, ErrUntrusted)
		}
		cur = next
	}
	return "", "", false, nil
}

func checkDir(path string, st *unix.Stat_t) error {
	if st.Mode&0o1000 != 0 && st.Uid == 0 {
		// A sticky directory of root's (/tmp): others may create
		// entries but not touch root's or the user's; the walk checks
		// the owner of the next entry.
		return nil
	}
	return checkStat(path, st, false)
}

// CheckSocket checks a Unix socket that a process is about to connect
// to and send to (a syslog or journald socket), before it connects: its
// directories by the trust rule ([CheckDirs]), and the socket itself,
// which must be a socket owned by root or the effective user (its mode
// says nothing: whoever may write a socket sends to its listener). A
// symlink in the last component (/dev/log is one to journald's socket
// on systemd) is followed as in a directory path: the link must be
// owned by root or the effective user, and the target's directories and
// the target are checked the same way. Whoever else could bind the
// socket, or swap it or a directory on the way, would receive what is
// sent and could swallow it. Once this passes, nobody else can change
// what the path names (every directory on the way is trusted), so
// connecting after the check connects to the socket checked.
func CheckSocket(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%s: not an absolute path", path)
	}
	if err := noDotDot(path); err != nil {
		return err
	}
	p := filepath.Clean(path)
	euid := uint32(os.Geteuid())
	for range maxSymlinks {
		i := strings.LastIndexByte(p, '/')
		dir, base := p[:i], p[i+1:]
		if dir == "" {
			dir = "/"
		}
		if base == "" || base == "." || base == ".." {
			return fmt.Errorf("%s: not a socket: refusing it", p)
		}
		if _, err := walkDirs(dir); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		if st.Uid != 0 && st.Uid != euid {
			return fmt.Errorf("%s: %s owned by uid %d, not root or uid %d: refusing it: %w", p, kind(st.Mode), st.Uid, euid, ErrUntrusted)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFSOCK:
			return nil
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			// Not cleaned, as in a directory path (see walkDirs).
			if !strings.HasPrefix(target, "/") {
				target = dir + "/" + target
			}
			p = target
		default:
			return fmt.Errorf("%s: %s, not a socket: refusing it", p, kind(st.Mode))
		}
	}
	return fmt.Errorf("%s: more than %d symlinks on the way: %w", path, maxSymlinks, ErrUntrusted)
}

// CheckPrivateDir checks that dir (if it exists) is not a sticky
// directory others may write, which [CheckDirs] lets pass (it refuses
// any other directory others may write): a directory whose entries a
// writer creates and renames by name (the audit log's rotated files,
// its lock and state files) must not let anyone else plant entries
// under those names.
func CheckPrivateDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	// Without the sticky bit, CheckDirs refuses such a directory already
	// (with its own words); with it, the walk lets it pass.
	if mode := st.Mode & 0o7777; mode&0o022 != 0 && mode&0o1000 != 0 {
		return fmt.Errorf("%s: writable by %s (mode %04o): anyone could plant files under the names written there: refusing it (use a directory of its own, chmod go-w): %w", dir, who(mode, 0o020, 0o002), mode, ErrUntrusted)
	}
	return nil
}

// CheckPrivateDirs checks the way to dir ([CheckDirs]) and that dir is
// private ([CheckPrivateDir]): what [OpenPrivate] checks before it
// creates a file there.
func CheckPrivateDirs(dir string) error {
	if err := CheckDirs(dir); err != nil {
		return err
	}
	return CheckPrivateDir(dir)
}

// OpenTrusted opens path with [OpenRegular] after checking its
// directories ([CheckDirs]), and checks the file itself ([CheckOwner]).
func OpenTrusted(path string, flags int, secret bool) (*os.File, error) {
	return open(path, flags, secret, false)
}

// open is [OpenTrusted], and with private [OpenPrivate].
func open(path string, flags int, secret, private bool) (*os.File, error) {
	if err := noDotDot(path); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	complete, err := checkDirs(dir)
	if err != nil {
		return nil, err
	}
	if private {
		if err := CheckPrivateDir(dir); err != nil {
			return nil, err
		}
	}
	if beforeOpen != nil {
		beforeOpen()
	}
	var f *os.File
	if private && !complete && flags&unix.O_CREAT != 0 {
		// Made here, one directory at a time from the last that was
		// there, and the file in the last one: never through a
		// directory or symlink someone else put on the way meanwhile.
		f, err = createBelow(dir, filepath.Base(path), path, flags)
	} else {
		f, err = OpenRegular(path, flags)
	}
	if err != nil {
		return nil, err
	}
	if !complete {
		if err := Recheck(f, path, private); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := CheckOwner(f, path, secret); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// createBelow makes the directories of dir (an absolute, clean path
// whose way [CheckDirs] found trusted as far as it existed) that are
// missing, 0700, and opens base in it with flags (O_CREAT among them).
// It starts from the deepest directory there is, checked again once open
// (someone else may have made it since), makes each missing one with
// mkdirat(2) and opens it with O_NOFOLLOW, checking it, and opens the
// file relative to the last: a directory or symlink someone else put on
// the way is refused, and nothing is made where it leads.
func createBelow(dir, base, path string, flags int) (*os.File, error) {
	top, missing := dir, []string(nil)
	for {
		var st unix.Stat_t
		err := unix.Stat(top, &st)
		if err == nil {
			break
		}
		if err != unix.ENOENT || top == "/" {
			return nil, &os.PathError{Op: "stat", Path: top, Err: err}
		}
		missing = append([]string{filepath.Base(top)}, missing...)
		top = filepath.Dir(top)
	}
	fd, err := unix.Open(top, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: top, Err: err}
	}
	defer func() { unix.Close(fd) }()
	if complete, err := checkDirs(top); err != nil || !complete {
		if err == nil {
			err = fmt.Errorf("%s: removed while it was checked: %w", top, ErrUntrusted)
		}
		return nil, err
	}
	if !isFile(fd, top, unix.Stat) {
		return nil, fmt.Errorf("%s: replaced while it was opened: refusing it: %w", top, ErrUntrusted)
	}
	at := top
	for _, name := range missing {
		at = filepath.Join(at, name)
		if err := unix.Mkdirat(fd, name, 0o700); err != nil && err != unix.EEXIST {
			return nil, &os.PathError{Op: "mkdir", Path: at, Err: err}
		} else if err == nil {
			// Its name made durable where it was made: a power loss
			// could lose the directory, and the files synced in it
			// (an audit log whose records a checkpoint names).
			if d, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
				unix.Fsync(d)
				unix.Close(d)
			}
		}
		next, err := unix.Openat(fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			// A symlink put in its place (O_PATH|O_NOFOLLOW takes the
			// link, O_DIRECTORY then refuses it), or a file.
			return nil, fmt.Errorf("%s: not a directory (made by someone else meanwhile?): refusing it: %w", at, ErrUntrusted)
		}
		unix.Close(fd)
		fd = next
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return nil, &os.PathError{Op: "fstat", Path: at, Err: err}
		}
		// Not even a sticky directory others may write: one made for
		// us is private.
		if err := checkStat(at, &st, false); err != nil {
			return nil, err
		}
	}
	return OpenRegularAt(fd, base, path, flags)
}

// beforeOpen, set by tests only, runs between the checks of the
// directories and the open: where another user races.
var beforeOpen func()

// Recheck checks, after f was opened from path in a directory that did
// not exist when [CheckDirs] checked the way there, that the way is
// trusted now (and the directory private, with private:
// [CheckPrivateDir]) and that path is still the file f. A directory made
// meanwhile by someone else (in a sticky directory), or a symlink put in
// its place, could have led the open into their directory; a file whose
// directories are trusted once it is open stays where it is (nobody else
// may rename it).
func Recheck(f *os.File, path string, private bool) error {
	dir := filepath.Dir(path)
	check := CheckDirs
	if private {
		check = CheckPrivateDirs
	}
	if err := check(dir); err != nil {
		return err
	}
	if !isFile(int(f.Fd()), path, unix.Lstat) {
		return fmt.Errorf("%s: replaced while it was opened (its directory was made meanwhile): refusing it: %w", path, ErrUntrusted)
	}
	return nil
}

// isFile reports whether path, as stat (unix.Stat or unix.Lstat) reads
// it, is the file open as fd.
func isFile(fd int, path string, stat func(string, *unix.Stat_t) error) bool {
	var now, opened unix.Stat_t
	return unix.Fstat(fd, &opened) == nil && stat(path, &now) == nil && now.Dev == opened.Dev && now.Ino == opened.Ino
}

// OpenPrivate opens a file the caller writes (flags may hold O_CREAT;
// made 0600) in a directory only root or the effective user may write:
// its directories are checked by the trust rule ([CheckDirs]) and its
// own must not be a sticky directory others may write
// ([CheckPrivateDir]); missing directories are made 0700, one at a
// time relative to the last, so that none is made, nor the file, where
// a directory or symlink someone else put on the way meanwhile leads;
// the file is opened as [OpenRegular] does and checked with
// [CheckOwner].
func OpenPrivate(path string, flags int, secret bool) (*os.File, error) {
	return open(path, flags, secret, true)
}
