package tree

import (
	"strconv"
	"strings"

	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel/discover"
	"github.com/nsrel/nsrel/nsrel/idmap"
)

// Maps are the ID maps of one user namespace, for --details and --json
// (see [Options.Maps]).
type Maps struct {
	// UIDMap and GIDMap are the lines relative to the parent namespace
	// (what a process in the parent reads in /proc/PID/uid_map); nil when
	// not known.
	UIDMap, GIDMap idmap.Map
	// HostUIDMap and HostGIDMap are the maps relative to the viewer's
	// user namespace (the host's when run there); nil when not readable.
	HostUIDMap, HostGIDMap idmap.Map
	// SetGroups is "allow" or "deny".
	SetGroups string
	// PID is the process the maps were read through; 0 for none.
	PID int
	// Error says why maps are missing.
	Error string
	// Viewer is the viewer's user namespace ("user:[N]") when it is not
	// the initial one: the outside IDs of HostUIDMap and HostGIDMap are
	// its IDs, not the host's (its own maps are each ID its lines map,
	// itself: it cannot see further up).
	Viewer string
}

// MapsEntry is a namespace's maps in the JSON output ("maps", user
// namespaces only). Maps are lists of [inside, outside, count]; null
// when not known, with the reason in error.
type MapsEntry struct {
	UIDMap     [][3]uint32 `json:"uid_map"`
	GIDMap     [][3]uint32 `json:"gid_map"`
	HostUIDMap [][3]uint32 `json:"host_uid_map"`
	HostGIDMap [][3]uint32 `json:"host_gid_map"`
	SetGroups  *string     `json:"setgroups"`
	PID        *int        `json:"read_via_pid"`
	Error      *string     `json:"error"`
	// Viewer is [Maps].Viewer: the user namespace whose IDs the host
	// maps' outside IDs are, when it is not the initial one.
	Viewer *string `json:"viewer,omitempty"`
}

func triples(m idmap.Map) [][3]uint32 {
	if m == nil {
		return nil
	}
	out := make([][3]uint32, len(m))
	for i, r := range m {
		out[i] = [3]uint32{r.Inside, r.Outside, r.Count}
	}
	return out
}

// mapsEntry returns n's maps for JSON, nil without [Options.Maps].
func (o Options) mapsEntry(n *discover.Namespace) *MapsEntry {
	m := o.Maps[n.Key()]
	if m == nil {
		return nil
	}
	e := &MapsEntry{UIDMap: triples(m.UIDMap), GIDMap: triples(m.GIDMap), HostUIDMap: triples(m.HostUIDMap), HostGIDMap: triples(m.HostGIDMap)}
	if m.SetGroups != "" {
		s := m.SetGroups
		e.SetGroups = &s
	}
	if m.PID > 0 {
		p := m.PID
		e.PID = &p
	}
	if m.Error != "" {
		s := m.Error
		e.Error = &s
	}
	if m.Viewer != "" {
		v := m.Viewer
		e.Viewer = &v
	}
	return e
}

// writeMaps appends n's maps to a --details line: "; maps: uid 0 100000
// 65536, gid 0 100000 65536, setgroups allow, host UIDs 100000-165535,
// host GIDs 100000-165535" ("in user:[N] UIDs ..." from a user namespace
// N other than the initial one), or "; maps: not readable (REASON)".
func (o Options) writeMaps(b *strings.Builder, n *discover.Namespace) {
	m := o.Maps[n.Key()]
	if m == nil {
		return
	}
	b.WriteString("; maps: ")
	if m.HostUIDMap == nil {
		b.WriteString(vocab.Escape(m.Error))
		return
	}
	var parts []string
	if m.UIDMap != nil {
		parts = append(parts, "uid "+lines(m.UIDMap), "gid "+lines(m.GIDMap))
	}
	host := "host "
	if m.Viewer != "" {
		host = "in " + m.Viewer + " "
	}
	parts = append(parts, "setgroups "+vocab.Escape(m.SetGroups), host+"UIDs "+hostIDs(m.HostUIDMap), host+"GIDs "+hostIDs(m.HostGIDMap))
	b.WriteString(strings.Join(parts, ", "))
	if m.Error != "" {
		b.WriteString(" (" + vocab.Escape(m.Error) + ")")
	}
}

func lines(m idmap.Map) string {
	if len(m) == 0 {
		return "(none)"
	}
	s := make([]string, len(m))
	for i, r := range m {
		s[i] = strconv.FormatUint(uint64(r.Inside), 10) + " " + strconv.FormatUint(uint64(r.Outside), 10) + " " + strconv.FormatUint(uint64(r.Count), 10)
	}
	return strings.Join(s, "; ")
}

func hostIDs(m idmap.Map) string {
	if len(m) == 0 {
		return "none"
	}
	return m.Host().String()
}
