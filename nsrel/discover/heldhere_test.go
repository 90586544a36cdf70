package discover

import (
	"bytes"
	"os"
	"strconv"
	"strings"

	"github.com/nsrel/nsrel/nsrel"
)

// HeldHere returns n unless every tie that found it is outside this
// test (nil then): another test package's scan (lsuserns, run alongside
// by go test ./...) holds an fd of every namespace it finds, this
// test's among them, while it runs, and its helper joins mount
// namespaces that have no process to read their mount tables. A tie is
// this test's when a process of this test (this process or one of its
// descendants) holds it, or, for an owner, a parent or a bind mount,
// when the namespace it was found from is itself held here.
func HeldHere(m *Model, n *Namespace) *Namespace {
	if heldHere(m, n, map[Key]bool{}) {
		return n
	}
	return nil
}

func heldHere(m *Model, n *Namespace, seen map[Key]bool) bool {
	if n == nil || seen[n.Key()] {
		return false
	}
	seen[n.Key()] = true
	for _, p := range n.Processes {
		if Descendant(p.PID) {
			return true
		}
	}
	for _, f := range n.FoundVia {
		switch f.Via {
		case ViaOwner, ViaParent:
			of, err := nsrel.ParseName(f.Of)
			if err != nil || heldHere(m, m.Lookup(of.Type, of.Ino), seen) {
				return true
			}
		case ViaMount:
			if f.PID != 0 && Descendant(f.PID) || heldHere(m, m.Lookup(nsrel.TypeMount, f.MountNS), seen) {
				return true
			}
		default:
			if Descendant(f.PID) {
				return true
			}
		}
	}
	return false
}

// Descendant reports whether process pid is this process or a
// descendant of it (false once it is gone).
func Descendant(pid int) bool {
	for i := 0; i < 64 && pid > 1; i++ {
		if pid == os.Getpid() {
			return true
		}
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return false
		}
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 2 {
			return false
		}
		pid, _ = strconv.Atoi(f[1])
	}
	return false
}
