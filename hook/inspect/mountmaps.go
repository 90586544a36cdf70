package inspect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/nsrel/idmap"
)

// The ID maps of an idmapped mount are told by statmount(2) only
// (STATMOUNT_MNT_UIDMAP and STATMOUNT_MNT_GIDMAP, Linux 6.15), which
// takes a mount's unique ID (never reused), not the ID mountinfo shows:
// the mounts of the process's mount namespace are listed (listmount(2))
// and matched by the ID mountinfo shows, their device and their root.
//
// The namespace is named by a file descriptor of it (mnt_id_req's
// mnt_ns_fd; Linux 6.18 takes it), with which a caller that could open it
// (CAP_SYS_PTRACE, as the shipped units and the node agent have) reads
// its mounts; named by its ID (mnt_ns_id), it needs CAP_SYS_ADMIN over
// the namespace, and is told ENOENT without. A kernel that does not take
// the descriptor (EINVAL) is asked by the ID.
const (
	statmountSBBasic  = 0x0001
	statmountMntBasic = 0x0002
	statmountMntRoot  = 0x0008
	statmountUIDMap   = 0x2000
	statmountGIDMap   = 0x4000
	lsmtRoot          = ^uint64(0) // listmount from the namespace's root
	mntIDReqSize1     = 32         // struct mnt_id_req with mnt_ns_id
	// nsMntGetInfo is NS_MNT_GET_INFO, _IOR(0xb7, 10, struct
	// mnt_ns_info) (Linux 6.12): a mount namespace's ID. Its direction
	// bits are the architecture's (0x8... on most, 0x4... on ppc64le):
	// taken from NS_GET_ID, _IOR(0xb7, 13, __u64).
	nsMntGetInfo = unix.NS_GET_ID&^0xffff&^(8<<16) | 16<<16 | 0xb70a
	// Offsets in struct statmount (include/uapi/linux/mount.h).
	smMask, smDevMajor, smDevMinor, smIDOld, smAttr     = 8, 16, 20, 56, 64
	smRoot                                              = 104
	smUIDMapNum, smUIDMap, smGIDMapNum, smGIDMap, smStr = 152, 156, 160, 164, 512
	// maxMountsListed bounds the mounts listed in a namespace (the
	// mountinfo read is bounded at about as many).
	maxMountsListed = 1 << 19
	// mountMapsBuf holds a statmount answer with two maps of
	// idmap.MaxLines lines of three 10-digit numbers, and a root of up
	// to PATH_MAX (a longer one is asked again with room for a
	// mountinfo line's).
	mountMapsBuf = smStr + 2*idmap.MaxLines*33 + 4096 + 64
)

// mountMapsReadable is cleared by the tests to check what a kernel
// without statmount's maps (before Linux 6.15) gives.
var mountMapsReadable = true

// mountNSFdTaken is cleared by the tests to ask by a namespace's ID, as
// on a kernel that does not take its descriptor.
var mountNSFdTaken = true

// errNoMountMaps says the kernel does not tell an idmapped mount's maps.
var errNoMountMaps = errors.New("this kernel does not tell an idmapped mount's ID map (statmount, Linux 6.15)")

// errNoListmount says listmount(2) or statmount(2) answered ENOSYS: a
// kernel before them, or a seccomp filter that does not know them (a
// container runtime's built with libseccomp before 2.6 answers so).
var errNoListmount = errors.New("listmount or statmount not available (ENOSYS: a kernel before Linux 6.8, or a seccomp filter that does not know them)")

// mountNS is a mount namespace asked about by listmount and statmount:
// an open descriptor of it, which it owns, and its ID. byID is set once
// the kernel refused the descriptor.
type mountNS struct {
	f    *os.File
	fd   uintptr // f's
	id   uint64
	byID bool
}

// Close closes the namespace's descriptor; a nil mountNS or a second
// call does nothing.
func (ns *mountNS) Close() {
	if ns != nil {
		ns.f.Close()
	}
}

// req returns the request for mount id with param of namespace ns.
func (ns *mountNS) req(id, param uint64) mntIDReq {
	r := mntIDReq{size: mntIDReqSize1, mntID: id, param: param}
	if ns.byID || !mountNSFdTaken || ns.fd == 0 || ns.fd > 1<<31 {
		r.mntNsID = ns.id
	} else {
		r.mntNsFd = uint32(ns.fd)
	}
	return r
}

type mntIDReq struct {
	size    uint32
	mntNsFd uint32
	mntID   uint64
	param   uint64
	mntNsID uint64
}

// readMountMaps fills the ID maps of the idmapped mounts ms of process
// pid's mount namespace, or says in each one's Err why they are not
// known. Called only when there are some: it lists the namespace's
// mounts, a system call each.
func readMountMaps(nsOf func() (*mountNS, error), ms []audit.IDMappedMount, ids []idmappedMount, deadline time.Time) {
	fail := func(err error) {
		for i := range ms {
			ms[i].Err = err.Error()
		}
	}
	if !mountMapsReadable {
		fail(errNoMountMaps)
		return
	}
	ns, err := nsOf()
	if err != nil {
		fail(err)
		return
	}
	want := make(map[uint32]int, len(ids))
	for i, m := range ids {
		want[m.id] = i
	}
	buf := make([]byte, smStr+256)
	found := 0
	err = listMounts(ns, func(id uint64) (bool, error) {
		if pastDeadline(deadline) {
			return false, fmt.Errorf("inspect: the mounts' maps: %w", errTimeUp)
		}
		n, err := statmount(id, ns, statmountSBBasic|statmountMntBasic, buf)
		if errors.Is(err, unix.ENOENT) {
			return true, nil // unmounted since listed
		}
		if err != nil {
			return false, err
		}
		i, ok := want[binary.NativeEndian.Uint32(n[smIDOld:])]
		if !ok {
			return true, nil
		}
		delete(want, ids[i].id)
		found++
		ms[i].Err = mountMaps(&ms[i], ids[i], id, ns, n)
		return found < len(ids), nil
	})
	for _, i := range want {
		if err != nil {
			ms[i].Err = err.Error()
		} else {
			ms[i].Err = "not found in its mount namespace's list of mounts (unmounted since read)"
		}
	}
}

// mountMaps reads the maps of mount id (unique ID) into m, whose
// statmount(STATMOUNT_SB_BASIC|STATMOUNT_MNT_BASIC) answer is basic, and
// returns why it could not ("" when it did).
func mountMaps(m *audit.IDMappedMount, mi idmappedMount, id uint64, ns *mountNS, basic []byte) string {
	dev := strconv.FormatUint(uint64(binary.NativeEndian.Uint32(basic[smDevMajor:])), 10) + ":" +
		strconv.FormatUint(uint64(binary.NativeEndian.Uint32(basic[smDevMinor:])), 10)
	if dev != mi.dev || binary.NativeEndian.Uint64(basic[smAttr:])&unix.MOUNT_ATTR_IDMAP == 0 {
		return "changed since read (its mount ID is another mount's now)"
	}
	const mask = statmountSBBasic | statmountMntBasic | statmountMntRoot | statmountUIDMap | statmountGIDMap
	b, err := statmount(id, ns, mask, make([]byte, mountMapsBuf))
	if errors.Is(err, unix.EOVERFLOW) {
		// A root longer than the room left by two full maps: as long
		// as mountinfo's line may be.
		b, err = statmount(id, ns, mask, make([]byte, mountMapsBuf+maxMountLine))
	}
	if err != nil {
		return "statmount: " + err.Error()
	}
	got := binary.NativeEndian.Uint64(b[smMask:])
	if got&(statmountUIDMap|statmountGIDMap) != statmountUIDMap|statmountGIDMap {
		return errNoMountMaps.Error()
	}
	// Its root too, unescaped as statmount gives it: a mount that took
	// the ID on the same device (a container's own unmount and bind at
	// poststart) is another mount.
	if root, ok := cString(b, smRoot); got&statmountMntRoot == 0 || !ok || root != unescapeMountinfo(mi.root) {
		return "changed since read (its mount ID is another mount's now, or its root was renamed or removed)"
	}
	u, uerr := mapStrings(b, smUIDMapNum, smUIDMap)
	g, gerr := mapStrings(b, smGIDMapNum, smGIDMap)
	if err := errors.Join(uerr, gerr); err != nil {
		return err.Error()
	}
	m.UIDMap, m.GIDMap = u, g
	return ""
}

// mapStrings parses the map of a statmount answer b whose count and
// string offset are at numAt and strAt: NUL-terminated "inside outside
// count" lines, the outside IDs as the caller's user namespace sees
// them.
func mapStrings(b []byte, numAt, strAt int) ([]audit.IDRange, error) {
	num := int(binary.NativeEndian.Uint32(b[numAt:]))
	off := smStr + int(binary.NativeEndian.Uint32(b[strAt:]))
	if num > idmap.MaxLines || off > len(b) {
		return nil, fmt.Errorf("statmount: a map of %d lines at %d of %d bytes", num, off, len(b))
	}
	out := make([]audit.IDRange, 0, num)
	rest := b[off:]
	for range num {
		line, after, ok := bytes.Cut(rest, []byte{0})
		if !ok {
			return nil, errors.New("statmount: a map line not terminated")
		}
		m, err := idmap.Parse(line)
		if err != nil || len(m) != 1 {
			return nil, fmt.Errorf("statmount: map line %q: %v", line, err)
		}
		out = append(out, audit.IDRange(m[0]))
		rest = after
	}
	return out, nil
}

// cString returns the NUL-terminated string of a statmount answer b
// whose offset is at strAt.
func cString(b []byte, strAt int) (string, bool) {
	off := smStr + int(binary.NativeEndian.Uint32(b[strAt:]))
	if off >= len(b) {
		return "", false
	}
	s, _, ok := bytes.Cut(b[off:], []byte{0})
	return string(s), ok
}

// unescapeMountinfo undoes mountinfo's escapes of a path: a space, tab,
// newline and backslash as \040, \011, \012 and \134.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }

// openMountNS opens the mount namespace of the process or thread whose
// /proc directory dir is, and reads its ID.
func openMountNS(dir string) (*mountNS, error) {
	f, err := os.OpenFile(dir+"/ns/mnt", os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var info struct {
		size, nrMounts uint32
		id             uint64
	}
	info.size = uint32(unsafe.Sizeof(info))
	fd := f.Fd()
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, nsMntGetInfo, uintptr(unsafe.Pointer(&info))); e != 0 {
		f.Close()
		if e == unix.ENOTTY || e == unix.EINVAL {
			return nil, errNoMountMaps
		}
		return nil, fmt.Errorf("ioctl NS_MNT_GET_INFO: %w", e)
	}
	return &mountNS{f: f, fd: fd, id: info.id}, nil
}

// listMounts calls f with the unique ID of each mount of mount namespace
// ns, until f returns false or an error.
func listMounts(ns *mountNS, f func(uint64) (bool, error)) error {
	ids := make([]uint64, 256)
	last, listed := uint64(0), 0
	for {
		req := ns.req(lsmtRoot, last)
		n, _, e := unix.Syscall6(unix.SYS_LISTMOUNT, uintptr(unsafe.Pointer(&req)), uintptr(unsafe.Pointer(&ids[0])), uintptr(len(ids)), 0, 0, 0)
		if e == unix.EINVAL && req.mntNsFd != 0 {
			// A kernel that does not take the descriptor: by the ID.
			ns.byID = true
			continue
		}
		runtime.KeepAlive(ns.f)
		switch {
		case e == 0:
		case e == unix.ENOSYS:
			return errNoListmount
		case e == unix.EPERM:
			return fmt.Errorf("listmount: %w (a seccomp filter that does not allow it?)", e)
		case e == unix.ENOENT && req.mntNsFd == 0:
			return fmt.Errorf("listmount: %w (a mount namespace named by its ID needs CAP_SYS_ADMIN over it)", e)
		default:
			return fmt.Errorf("listmount: %w", e)
		}
		if n == 0 {
			return nil
		}
		for _, id := range ids[:n] {
			more, err := f(id)
			if err != nil || !more {
				return err
			}
		}
		if listed += int(n); listed > maxMountsListed {
			return fmt.Errorf("listmount: more than %d mounts", maxMountsListed)
		}
		last = ids[n-1]
	}
}

// statmount asks the kernel about mount id of mount namespace ns into
// buf, and returns the part of buf it wrote.
func statmount(id uint64, ns *mountNS, mask uint64, buf []byte) ([]byte, error) {
	req := ns.req(id, mask)
	for try := 1; ; try++ {
		_, _, e := unix.Syscall6(unix.SYS_STATMOUNT, uintptr(unsafe.Pointer(&req)), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0, 0)
		runtime.KeepAlive(ns.f)
		switch e {
		case 0:
		case unix.EINTR, unix.EAGAIN:
			if try < 8 {
				continue
			}
			return nil, e
		case unix.ENOSYS:
			return nil, errNoListmount
		default:
			return nil, e
		}
		size := int(binary.NativeEndian.Uint32(buf))
		if size < smStr || size > len(buf) {
			return nil, fmt.Errorf("statmount: an answer of %d bytes in %d", size, len(buf))
		}
		return buf[:size], nil
	}
}
