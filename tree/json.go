package tree

import (
	"io"

	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// Document is the JSON output: {"namespaces": [...]}. See docs/json.md.
type Document struct {
	Namespaces []Entry `json:"namespaces"`
}

// Entry is one namespace in the JSON output. Pointer fields are null when
// unknown or not applicable.
type Entry struct {
	// Type is "user" or "pid".
	Type string `json:"type"`
	// Ino is the inode of the nsfs file, as in "user:[INO]".
	Ino uint64 `json:"ino"`
	// Dev is the device of the nsfs file.
	Dev uint64 `json:"dev"`
	// NSID is the kernel's 64-bit namespace ID (NS_GET_ID, Linux 6.18).
	NSID *uint64 `json:"nsid"`
	// Parent is the inode of the parent namespace; null for a root.
	Parent *uint64 `json:"parent"`
	// Owner is the inode of the owning user namespace (for a user
	// namespace, equal to Parent).
	Owner *uint64 `json:"owner"`
	// OwnerUID is the UID that created the (owning) user namespace.
	OwnerUID *int64 `json:"owner_uid"`
	// OwnerName is its user name (name service); null without an entry.
	OwnerName *string `json:"owner_name"`
	// Processes in the namespace, sorted by PID.
	Processes []discover.Process `json:"processes"`
	// FoundVia says how it was found (fds and mounts: the first
	// [discover.MaxFoundVia] of each).
	FoundVia []discover.Found `json:"found_via"`
	// FoundViaMore counts the fds and mounts that hold it beyond those
	// FoundVia lists.
	FoundViaMore int `json:"found_via_more,omitempty"`
	// Containers whose process lives in it.
	Containers []discover.Container `json:"containers"`
	// Maps are a user namespace's ID maps, when the caller read them
	// ([Options.Maps]).
	Maps *MapsEntry `json:"maps,omitempty"`
}

// Entries returns the namespaces of type t in tree order (depth first,
// children by inode), as JSON entries.
func Entries(m *discover.Model, t nsrel.Type, o Options) []Entry {
	out := []Entry{}
	var walk func(n *discover.Namespace)
	walk = func(n *discover.Namespace) {
		e := entry(n)
		e.Maps = o.mapsEntry(n)
		out = append(out, e)
		for _, c := range o.Filter(n.Children) {
			walk(c)
		}
	}
	for _, r := range o.Filter(m.Roots(t)) {
		walk(r)
	}
	return out
}

func entry(n *discover.Namespace) Entry {
	e := Entry{
		Type:         n.Type.String(),
		Ino:          n.Ino,
		Dev:          n.Dev,
		Processes:    n.Processes,
		FoundVia:     n.FoundVia,
		FoundViaMore: n.FoundViaMore,
		Containers:   n.Containers,
	}
	if n.HasNSID {
		id := n.NSID
		e.NSID = &id
	}
	if n.Parent != nil {
		p := n.Parent.Ino
		e.Parent = &p
	}
	if n.Owner != nil {
		o := n.Owner.Ino
		e.Owner = &o
	}
	if uid, name := n.UID(); uid >= 0 {
		e.OwnerUID = &uid
		if name != "" {
			e.OwnerName = &name
		}
	}
	if e.Processes == nil {
		e.Processes = []discover.Process{}
	}
	if e.FoundVia == nil {
		e.FoundVia = []discover.Found{}
	}
	if e.Containers == nil {
		e.Containers = []discover.Container{}
	}
	return e
}

// JSON writes the namespaces of type t as a [Document], indented.
// Names, IDs and paths are a container's to choose: DEL, C1 controls and
// bidirectional overrides are written as \u escapes (the same JSON).
func JSON(w io.Writer, m *discover.Model, t nsrel.Type, o Options) error {
	return vocab.WriteSafeJSON(w, Document{Namespaces: Entries(m, t, o)}, true)
}
