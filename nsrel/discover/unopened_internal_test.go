package discover

import (
	"errors"
	"testing"

	"github.com/nsrel/nsrel/nsrel"
)

// TestUnopenedBelowFUSECountedOnce gives the model one missing user
// namespace whose bind mounts went unopened twice, below a FUSE mount in
// one mount namespace and mounted over in another, and a second missing
// only below FUSE: the count line adds BelowFUSE and UnopenedNS, and
// counted the first namespace twice (3 for 2).
func TestUnopenedBelowFUSECountedOnce(t *testing.T) {
	s := &scanner{nodes: make(map[Key]*node), nsdev: 4, roles: roleUser}
	a := nsMount{NS: nsrel.Name{Type: nsrel.TypeUser, Ino: 100}, Point: "/fuse/a", ID: 1}
	b := nsMount{NS: nsrel.Name{Type: nsrel.TypeUser, Ino: 101}, Point: "/fuse/b", ID: 2}
	s.belowFUSE = []nsMount{a, b}
	s.unopened = []unopened{{m: nsMount{NS: a.NS, Point: "/over/a", ID: 3}, err: errors.New("another file is there (mounted over)")}}
	m := s.model()
	if got := m.BelowFUSE + m.UnopenedNS; m.BelowFUSE != 2 || got != 2 {
		t.Errorf("BelowFUSE %d + UnopenedNS %d = %d, want 2 namespaces, each counted once", m.BelowFUSE, m.UnopenedNS, got)
	}
}
