package inspect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
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

// errNoMountMaps says the kernel does not tell an idmapped mount's maps.
var errNoMountMaps = errors.New("this kernel does not tell an idmapped mount's ID map (statmount, Linux 6.15)")

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
func readMountMaps(mountNS func() (uint64, error), ms []audit.IDMappedMount, ids []idmappedMount) {
	fail := func(err error) {
		for i := range ms {
			ms[i].Err = err.Error()
		}
	}
	if !mountMapsReadable {
		fail(errNoMountMaps)
		return
	}
	nsid, err := mountNS()
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
	err = listMounts(nsid, func(id uint64) (bool, error) {
		n, err := statmount(id, nsid, statmountSBBasic|statmountMntBasic, buf)
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
		ms[i].Err = mountMaps(&ms[i], ids[i], id, nsid, n)
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
func mountMaps(m *audit.IDMappedMount, mi idmappedMount, id, nsid uint64, basic []byte) string {
	dev := strconv.FormatUint(uint64(binary.NativeEndian.Uint32(basic[smDevMajor:])), 10) + ":" +
		strconv.FormatUint(uint64(binary.NativeEndian.Uint32(basic[smDevMinor:])), 10)
	if dev != mi.dev || binary.NativeEndian.Uint64(basic[smAttr:])&unix.MOUNT_ATTR_IDMAP == 0 {
		return "changed since read (its mount ID is another mount's now)"
	}
	const mask = statmountSBBasic | statmountMntBasic | statmountMntRoot | statmountUIDMap | statmountGIDMap
	b, err := statmount(id, nsid, mask, make([]byte, mountMapsBuf))
	if errors.Is(err, unix.EOVERFLOW) {
		// A root longer than the room left by two full maps: as long
		// as mountinfo's line may be.
		b, err = statmount(id, nsid, mask, make([]byte, mountMapsBuf+maxMountLine))
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

// mountNSID returns the ID of the mount namespace of the process or
// thread whose /proc directory dir is.
func mountNSID(dir string) (uint64, error) {
	fd, err := unix.Open(dir+"/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &fs.PathError{Op: "open", Path: dir + "/ns/mnt", Err: err}
	}
	defer unix.Close(fd)
	var info struct {
		size, nrMounts uint32
		id             uint64
	}
	info.size = uint32(unsafe.Sizeof(info))
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), nsMntGetInfo, uintptr(unsafe.Pointer(&info))); e != 0 {
		if e == unix.ENOTTY || e == unix.EINVAL {
			return 0, errNoMountMaps
		}
		return 0, fmt.Errorf("ioctl NS_MNT_GET_INFO: %w", e)
	}
	return info.id, nil
}

// listMounts calls f with the unique ID of each mount of mount namespace
// nsid, until f returns false or an error.
func listMounts(nsid uint64, f func(uint64) (bool, error)) error {
	ids := make([]uint64, 256)
	last, listed := uint64(0), 0
	for {
		req := mntIDReq{size: mntIDReqSize1, mntID: lsmtRoot, param: last, mntNsID: nsid}
		n, _, e := unix.Syscall6(unix.SYS_LISTMOUNT, uintptr(unsafe.Pointer(&req)), uintptr(unsafe.Pointer(&ids[0])), uintptr(len(ids)), 0, 0, 0)
		if e != 0 {
			if e == unix.ENOSYS {
				return errNoMountMaps
			}
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

// statmount asks the kernel about mount id of mount namespace nsid into
// buf, and returns the part of buf it wrote.
func statmount(id, nsid, mask uint64, buf []byte) ([]byte, error) {
	req := mntIDReq{size: mntIDReqSize1, mntID: id, param: mask, mntNsID: nsid}
	for try := 1; ; try++ {
		_, _, e := unix.Syscall6(unix.SYS_STATMOUNT, uintptr(unsafe.Pointer(&req)), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0, 0)
		switch e {
		case 0:
		case unix.EINTR, unix.EAGAIN:
			if try < 8 {
				continue
			}
			return nil, e
		case unix.ENOSYS:
			return nil, errNoMountMaps
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
