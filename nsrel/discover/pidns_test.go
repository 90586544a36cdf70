package discover_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// childPIDNSHelper scans, holding a namespace open itself, and prints
// how it found the user namespace $USER_INO (MOUNT: the mount
// namespace of its bind mount, 0 if none) and how many ways of finding
// a namespace name its own fds (SELFFD: its PID as /proc numbers it).
func childPIDNSHelper() {
	own, err := unix.Open("/proc/self/ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Println("ERROR:", err)
		os.Exit(1)
	}
	defer unix.Close(own)
	self, err := os.Readlink("/proc/self")
	if err != nil {
		fmt.Println("ERROR:", err)
		os.Exit(1)
	}
	userIno, _ := strconv.ParseUint(os.Getenv("USER_INO"), 10, 64)
	m, err := discover.Discover(discover.Options{Types: []nsrel.Type{nsrel.TypeUser}, Workers: 1})
	if err != nil {
		fmt.Println("ERROR:", err)
		os.Exit(1)
	}
	var mnt uint64
	if n := m.Lookup(nsrel.TypeUser, userIno); n != nil {
		for _, f := range n.FoundVia {
			if f.Via == discover.ViaMount {
				mnt = f.MountNS
			}
		}
	}
	selfFDs := 0
	for _, n := range m.Namespaces {
		for _, f := range n.FoundVia {
			if (f.Via == discover.ViaFD || f.Via == discover.ViaSocket) && strconv.Itoa(f.PID) == self {
				selfFDs++
			}
		}
	}
	fmt.Printf("GETPID: %d\nMOUNT: %d\nSELFFD: %d\nNOTICE: %s\n", os.Getpid(), mnt, selfFDs, m.Notice())
}

// TestChildPIDNamespaceHostProc scans from a child PID namespace with
// the host's /proc (unshare -p -f, no new /proc mount), where /proc
// numbers processes by their host PIDs and os.Getpid() says another
// number. The scan must skip its own fds (it read them, and another
// process's were skipped), and read a mount namespace no task is in
// through its helper's /proc directory (it looked up the helper's PID
// in this namespace: another process, so the bind mount there, the only
// reference to a user namespace, was not read).
func TestChildPIDNamespaceHostProc(t *testing.T) {
	nstest.RequireRoot(t)
	unshare := nstest.RequireCmd(t, "unshare")
	// A user namespace bind-mounted in a mount namespace that only an
	// fd holds.
	p := nstest.Sleep(t, nil, "-m", "--propagation", "private")
	mnt := nstest.NSPath(p.Pid, "mnt")
	f, err := os.Open(mnt)
	if err != nil {
		t.Fatal(err)
	}
	mntIno := nstest.Ino(t, p.Pid, "mnt")
	userNS, userIno := heldUserNS(t)
	nsenterMount(t, mnt, "mount", "--bind", fdPath(userNS), bindTarget(t))
	userNS.Close()
	killWait(t, p, p.Pid)
	holdFiles(t, []*os.File{f})
	f.Close()

	cmd := exec.Command(unshare, "-p", "-f", "--kill-child", os.Args[0])
	cmd.Env = append(os.Environ(), "NSREL_DISCOVER_HELPER=pidns", "USER_INO="+strconv.FormatUint(userIno, 10))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scan in a child PID namespace: %v\n%s", err, out)
	}
	var getpid int
	var mountNS uint64
	var selfFDs int
	if _, err := fmt.Sscanf(string(out), "GETPID: %d\nMOUNT: %d\nSELFFD: %d\n", &getpid, &mountNS, &selfFDs); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	if getpid != 1 {
		t.Fatalf("set-up: the scan ran as PID %d, want 1 of a new PID namespace:\n%s", getpid, out)
	}
	if mountNS != mntIno {
		t.Errorf("user:[%d] bind-mounted in mnt:[%d], which no task is in: found via a mount in mnt:[%d]:\n%s", userIno, mntIno, mountNS, out)
	}
	if selfFDs != 0 {
		t.Errorf("%d ways of finding a namespace name the scan's own fds:\n%s", selfFDs, strings.TrimSpace(string(out)))
	}
}
