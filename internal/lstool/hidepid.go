package lstool

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/nsrel"
)

// HiddenNotice returns a notice when /proc hides other users' processes
// from the caller (proc(5) mount option hidepid=invisible or
// hidepid=ptraceable, and the caller is neither privileged nor in the
// group of the gid= option): the tree then misses the namespaces only
// such processes use, and nothing else would tell. Privileged is
// CAP_SYS_PTRACE in the initial user namespace: root of a child user
// namespace is as hidden from as any user. "" otherwise.
func HiddenNotice() string {
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	groups, _ := os.Getgroups()
	return hiddenNotice(info, privileged(), append(groups, os.Getegid()))
}

// privileged reports whether the caller sees every process through a
// hidepid /proc: it is in the initial user namespace and has
// CAP_SYS_PTRACE there (the capability ptrace access checks ask for).
func privileged() bool {
	if !inInitialUserNS() {
		return false
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[unix.CAP_SYS_PTRACE/32].Effective&(1<<(unix.CAP_SYS_PTRACE%32)) != 0
}

// unprivileged is !privileged, and inInitialUserNS whether the caller
// is in the initial user namespace, each asked once: for the notices of
// container sources that root's files refused.
var (
	unprivileged    = sync.OnceValue(func() bool { return !privileged() })
	inInitialUserNS = sync.OnceValue(func() bool {
		self, err := readlinkIno("/proc/self/ns/user")
		return err == nil && self == nsrel.InitialUserNSIno
	})
)

// hiddenNotice is [HiddenNotice] for a mountinfo(5) text and a caller.
func hiddenNotice(mountinfo []byte, privileged bool, groups []int) string {
	if privileged {
		return ""
	}
	var opts string
	for line := range bytes.Lines(mountinfo) {
		// One space between fields, as in the scan's parse (paths
		// may hold other whitespace, unescaped).
		f := strings.Split(strings.TrimSuffix(string(line), "\n"), " ")
		sep := slices.Index(f, "-")
		if len(f) < 5 || f[4] != "/proc" || sep < 0 || sep+3 >= len(f) || f[sep+1] != "proc" {
			continue
		}
		opts = f[sep+3] // the last mount on /proc is the one seen
	}
	hidepid, gid := "", -1
	for _, o := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "hidepid":
			hidepid = v
		case "gid":
			if n, err := strconv.Atoi(v); err == nil {
				gid = n
			}
		}
	}
	switch hidepid {
	case "invisible", "2", "ptraceable", "4":
	default:
		return ""
	}
	if gid >= 0 && slices.Contains(groups, gid) {
		return ""
	}
	return "/proc is mounted with hidepid=" + hidepid + ": other users' processes are hidden, so namespaces only they use are missing (run as root in the initial user namespace to see every namespace)"
}
