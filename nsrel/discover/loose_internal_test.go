package discover

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
)

// TestLooseInodeReused adds a namespace past the scan's budget (loose:
// resolved, then closed), then a reference to its inode that opens
// another namespace, as when the first dies during the scan and the
// kernel gives its inode to a new one (inode numbers are reused, lowest
// first): the reference is not taken for the first namespace, and the
// scan counts it ([Model.ReusedInodes], said in the notice). A reference
// that opens the same namespace is noted on it.
func TestLooseInodeReused(t *testing.T) {
	nstest.RequireRoot(t)
	_, err := nsrel.ID(nsrel.Path("/proc/self/ns/user"))
	nstest.Require(t, err == nil, "NS_GET_ID (Linux 6.18): %v", err)
	a, b := nstest.UserChain(t, 1), nstest.UserChain(t, 1)
	open := func(pid int) int {
		fd, err := unix.Open(nstest.NSPath(pid, "user"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}
	var st unix.Stat_t
	if err := unix.Stat(nstest.NSPath(a.Pid, "user"), &st); err != nil {
		t.Fatal(err)
	}
	k := Key{st.Dev, st.Ino}
	s := &scanner{nodes: make(map[Key]*node), budget: 0}
	nd := s.add(k, nsrel.TypeUser, Found{Via: ViaFD, PID: 1, Path: "/proc/1/fd/3"}, "", open(a.Pid))
	if nd == nil || !nd.loose || nd.fd != -1 || !nd.ns.HasNSID || s.pins.Load() != 0 {
		t.Fatalf("past the budget: node %+v; want a loose one with its ID, nothing pinned", nd)
	}
	for _, path := range []string{"/proc/2/fd/3", "/proc/2/fd/4"} { // two references to one namespace count once
		if got := s.add(k, nsrel.TypeUser, Found{Via: ViaFD, PID: 2, Path: path}, "", open(b.Pid)); got != nil {
			t.Errorf("a reference to user:[%d] that opens another namespace was taken for it", k.Ino)
		}
	}
	if got := s.add(k, nsrel.TypeUser, Found{Via: ViaFD, PID: 3, Path: "/proc/3/fd/3"}, "", open(a.Pid)); got != nd {
		t.Errorf("a reference that opens the same namespace: node %p, want %p", got, nd)
	}
	if s.record(k, nsrel.TypeUser, Found{Via: ViaFD, PID: 4, Path: "/proc/4/fd/3"}, "", pinned) != nil {
		t.Error("a loose node was found without opening the reference")
	}
	// A namespace of another type may get the inode too (the types
	// share inode numbers): counted as well (it was dropped silently).
	nfd, err := unix.Open(nstest.NSPath(b.Pid, "net"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.add(k, nsrel.TypeNet, Found{Via: ViaFD, PID: 5, Path: "/proc/5/fd/3"}, "", nfd); got != nil {
		t.Errorf("a reference to user:[%d] that opens a network namespace was taken", k.Ino)
	}
	var pids []int
	for _, f := range nd.ns.FoundVia {
		pids = append(pids, f.PID)
	}
	if len(pids) != 2 || pids[0] != 1 || pids[1] != 3 {
		t.Errorf("found via PIDs %v, want [1 3]", pids)
	}
	m := s.model()
	if m.ReusedInodes != 2 {
		t.Errorf("ReusedInodes %d, want 2", m.ReusedInodes)
	}
	if want := "2 namespaces were replaced by new ones with their inodes while the scan ran: the new ones are missing (run again)"; m.Notice() != want {
		t.Errorf("notice %q, want %q", m.Notice(), want)
	}
}
