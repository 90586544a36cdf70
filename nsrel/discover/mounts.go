package discover

import (
	"bytes"
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
// the first of pids that is still there.
func (w *worker) mounts(mntIno uint64, pids []int) {
	s := w.s
	for _, pid := range pids {
		dir := "/proc/" + strconv.Itoa(pid)
		data, err := os.ReadFile(dir + "/mountinfo")
		if err != nil {
			if isPerm(unwrapErrno(err)) {
				s.deniedMnt.Add(1)
				return
			}
			continue // exited: try the next process of this mount namespace
		}
		ms := parseNSMounts(data)
		if len(ms) == 0 {
			return
		}
		root, err := unix.Open(dir+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			if isPerm(err) {
				s.deniedMnt.Add(1)
				return
			}
			continue
		}
		for _, m := range ms {
			w.mount(root, pid, mntIno, m)
		}
		unix.Close(root)
		return
	}
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
	nd, claim := w.s.get(k, m.NS.Type, Found{Via: ViaMount, PID: pid, Path: m.Point, MountNS: mntIno}, "")
	if !claim {
		return
	}
	rfd, err := reopenNS(fd, k)
	if err != nil {
		w.s.finish(nd, false)
		return
	}
	w.s.resolve(nd.ns, rfd)
	unix.Close(rfd)
	w.s.finish(nd, true)
}

// unwrapErrno returns the errno inside a *os.PathError, or err.
func unwrapErrno(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
