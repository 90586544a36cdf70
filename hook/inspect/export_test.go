package inspect

import (
	"bytes"
	"strconv"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/idmap"
)

// ForceProcFallback turns the pidfd namespace ioctls off until restore is
// called: the tests check the /proc fallback of older kernels with it.
func ForceProcFallback() (restore func()) {
	usePidfdIoctls = false
	return func() { usePidfdIoctls = true }
}

// PinnedViaPidfd reports whether pinnedNamespaces took the pidfd ioctls
// for pid on this kernel.
func PinnedViaPidfd(pfd, pid int) (bool, error) {
	u, p, _, via, err := pinnedNamespaces(pfd, pid)
	if err != nil {
		return false, err
	}
	u.Close()
	p.Close()
	return via, nil
}

// BeforeMapsRead has f run before Live reads a namespace's maps through
// process pid, and between (once) before its second pass over /proc,
// until restore is called.
func BeforeMapsRead(f func(pid int), between func()) (restore func()) {
	beforeMapsRead, betweenPasses = f, between
	return func() { beforeMapsRead, betweenPasses = nil, nil }
}

// Alive is the liveness check of a pinned process.
var Alive = alive

// ReadPinnedWith is [ReadPinned] reading the maps with read.
func ReadPinnedWith(pidfd, pid int, want nsrel.Ident, read func(string) (idmap.Maps, error)) (idmap.Maps, error) {
	return readPinned(pidfd, pid, "/proc/"+strconv.Itoa(pid), want, read)
}

// ParseHeld is parseHeld.
var ParseHeld = parseHeld

// ParseIDMapped returns the mount points of the idmapped mounts of a
// mountinfo text.
func ParseIDMapped(mountinfo []byte) []string {
	var out []string
	for _, m := range idmappedOf(mountinfo) {
		out = append(out, m.point)
	}
	return out
}

// idmappedOf returns the idmapped mounts of a mountinfo text.
func idmappedOf(mountinfo []byte) []idmappedMount {
	var out []idmappedMount
	for line := range bytes.Lines(mountinfo) {
		if m, ok := parseIDMappedLine(line); ok {
			out = append(out, m)
		}
	}
	return out
}

// NotCopies is notCopies of mountinfo texts.
func NotCopies(mine, host []byte) []string {
	m := idmappedOf(mine)
	var out []string
	h := idmappedOf(host)
	none := func(ms []idmappedMount) []audit.IDMappedMount { return make([]audit.IDMappedMount, len(ms)) }
	for _, i := range notCopies(signatures(m, none(m)), signatures(h, none(h))) {
		out = append(out, m[i].point)
	}
	return out
}

// ForceNoMountMaps has ReadIDMapped take the kernel for one that does
// not tell an idmapped mount's maps (before Linux 6.15) until restore is
// called.
func ForceNoMountMaps() (restore func()) {
	mountMapsReadable = false
	return func() { mountMapsReadable = true }
}

// ForceMountNSByID has ReadIDMapped name a mount namespace by its ID,
// as on a kernel that does not take its descriptor, until restore is
// called.
func ForceMountNSByID() (restore func()) {
	mountNSFdTaken = false
	return func() { mountNSFdTaken = true }
}

// InLiveThread and ThreadNamespaces are the reads of a process whose
// main thread exited, through a thread that runs.
var (
	InLiveThread     = inLiveThread
	ThreadNamespaces = threadNamespaces
)
