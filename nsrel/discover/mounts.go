package discover

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/nsrel"
)

// nsMount is an nsfs mount found in a mountinfo file.
type nsMount struct {
	// NS is the namespace, from the mount's root field ("user:[N]").
	NS nsrel.Name
	// Point is the mount point, unescaped, as the mount namespace sees it.
	Point string
}

// parseNSMounts returns the nsfs mounts listed in a /proc/PID/mountinfo
// file (see proc(5)). Lines that do not parse are skipped: the file comes
// from the kernel, but mount points are chosen by whoever mounted them.
func parseNSMounts(data []byte) []nsMount {
	var out []nsMount
	for len(data) > 0 {
		var line []byte
		line, data = nextLine(data)
		// Fast filter: the filesystem type follows " - ".
		sep := bytes.Index(line, []byte(" - "))
		if sep < 0 || !bytes.HasPrefix(line[sep+3:], []byte("nsfs ")) {
			continue
		}
		f := strings.Fields(string(line[:sep]))
		// id parent major:minor root mountpoint options [optional...]
		if len(f) < 6 {
			continue
		}
		name, err := nsrel.ParseName(unescapeMount(f[3]))
		if err != nil {
			continue
		}
		point := unescapeMount(f[4])
		if !strings.HasPrefix(point, "/") {
			continue
		}
		out = append(out, nsMount{NS: name, Point: point})
	}
	return out
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

// mounts reads the nsfs bind mounts of the mount namespace mntIno through
// the first of pids that is still there and still in it.
func (w *worker) mounts(mntIno uint64, pids []int) {
	for _, pid := range pids {
		switch err := w.mountsOf(mntIno, pid); {
		case err == nil:
			return
		case isPerm(err):
			w.s.deniedMnt.Add(1)
			return
		}
		// Exited, reused or moved to another mount namespace: try the
		// next process of this mount namespace.
	}
}

// mountsOf reads the nsfs mounts of the mount namespace mntIno through the
// process pid. The /proc/PID directory is opened first and everything else
// relative to it, and the process's ns/mnt is checked before and after:
// a PID reused by a process of another mount namespace (whose /proc
// directory is a different one) or a process that changed its mount
// namespace gives an error instead of another namespace's mounts.
func (w *worker) mountsOf(mntIno uint64, pid int) error {
	dfd, err := w.openPID(w.s.procfd, pid)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
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
	ms := parseNSMounts(data)
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
	for _, m := range ms {
		w.mount(root, pid, mntIno, m)
	}
	return nil
}

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

// mount opens the mount point m below root (the root directory of a
// process in the mount namespace mntIno) and records the namespace.
func (w *worker) mount(root, pid int, mntIno uint64, m nsMount) {
	// The path is resolved inside the process's root, with symlinks and
	// ".." kept inside it and without magic links: a hostile mount point
	// cannot make us open a file outside. O_PATH opens nothing yet.
	fd, err := unix.Openat2(root, m.Point, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		if isPerm(err) {
			w.s.deniedMnt.Add(1)
		}
		return
	}
	defer unix.Close(fd)
	// Something else may be mounted on top, or it changed.
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Ino != m.NS.Ino || st.Dev != w.s.nsdev {
		return
	}
	k := Key{st.Dev, st.Ino}
	f := Found{Via: ViaMount, PID: pid, Path: m.Point, MountNS: mntIno}
	if w.s.record(k, f, "") != nil {
		return
	}
	rfd, err := reopenNS(fd, k)
	if err != nil {
		return
	}
	w.s.add(k, m.NS.Type, f, "", rfd)
	unix.Close(rfd)
}

// unwrapErrno returns the errno inside a *os.PathError, or err.
func unwrapErrno(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
