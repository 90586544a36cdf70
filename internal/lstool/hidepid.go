package lstool

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"
)

// HiddenNotice returns a notice when /proc hides other users' processes
// from the caller (proc(5) mount option hidepid=invisible or
// hidepid=ptraceable, and the caller is neither root nor in the group of
// the gid= option): the tree then misses the namespaces only such
// processes use, and nothing else would tell. "" otherwise.
func HiddenNotice() string {
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	groups, _ := os.Getgroups()
	return hiddenNotice(info, os.Geteuid(), append(groups, os.Getegid()))
}

// hiddenNotice is [HiddenNotice] for a mountinfo(5) text and a caller.
func hiddenNotice(mountinfo []byte, euid int, groups []int) string {
	if euid == 0 {
		return ""
	}
	var opts string
	for line := range bytes.Lines(mountinfo) {
		f := strings.Fields(string(line))
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
	return "/proc is mounted with hidepid=" + hidepid + ": other users' processes are hidden, so namespaces only they use are missing (run as root to see every namespace)"
}
