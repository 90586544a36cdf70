package lstool

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
	"github.com/nsrel/nsrel/nsrel/idmap"
	"github.com/nsrel/nsrel/tree"
)

// Reasons shown for maps that could not be read.
const (
	noProcess  = "not readable (no process in this namespace)"
	noParent   = "lines relative to the parent not known (the parent's maps are not readable)"
	allGone    = "not readable (its processes exited during the scan)"
	maxReaders = 3 // processes tried per namespace before giving up
)

// ReadMaps reads the ID maps of every user namespace of m through a
// process the model lists in it ([idmap.ReadProc]: one process
// throughout, checked to be still in that namespace after the read). Outside IDs are relative to the caller's
// user namespace; the lines relative to the parent are composed from the
// parent's maps. A namespace with no process (held by a bind mount, an fd
// or only a descendant) says so: its maps cannot be read without a
// process in it.
func ReadMaps(m *discover.Model) map[discover.Key]*tree.Maps {
	out := map[discover.Key]*tree.Maps{}
	self, _ := readlinkIno("/proc/self/ns/user")
	var visit func(n *discover.Namespace)
	visit = func(n *discover.Namespace) {
		out[n.Key()] = readNSMaps(n, self)
		for _, c := range n.Children {
			visit(c)
		}
	}
	for _, r := range m.Roots(nsrel.TypeUser) {
		visit(r)
	}
	for _, n := range m.Of(nsrel.TypeUser) {
		mp := out[n.Key()]
		if mp == nil || mp.HostUIDMap == nil {
			continue
		}
		switch p := n.Parent; {
		case n.Ino == self:
			// Own lines were read from /proc/self.
		case p == nil:
			mp.Error = "lines relative to the parent not known (the parent is out of sight)"
		case p.Ino == self:
			mp.UIDMap, mp.GIDMap = written(mp.HostUIDMap), written(mp.HostGIDMap)
		case out[p.Key()] != nil && out[p.Key()].HostUIDMap != nil:
			pm := out[p.Key()]
			mp.UIDMap, mp.GIDMap = written(idmap.Relative(mp.HostUIDMap, pm.HostUIDMap)), written(idmap.Relative(mp.HostGIDMap, pm.HostGIDMap))
		default:
			mp.Error = noParent
		}
	}
	return out
}

func readNSMaps(n *discover.Namespace, self uint64) *tree.Maps {
	if n.Ino == self {
		// The viewer's own: every ID is itself; its own lines (relative
		// to a parent, if any) are /proc/self's.
		own, err := idmap.ReadOwn(self == nsrel.InitialUserNSIno)
		if err != nil {
			return &tree.Maps{Error: "not readable: " + err.Error()}
		}
		return &tree.Maps{UIDMap: written(own.UID), GIDMap: written(own.GID), HostUIDMap: idmap.Identity(), HostGIDMap: idmap.Identity(), SetGroups: own.SetGroups}
	}
	if len(n.Processes) == 0 {
		return &tree.Maps{Error: noProcess}
	}
	var lastErr error
	for _, p := range n.Processes[:min(len(n.Processes), maxReaders)] {
		mp, ino, err := idmap.ReadProc("/proc/"+strconv.Itoa(p.PID), true)
		if err == nil && ino != n.Ino {
			err = errLeft
		}
		if err != nil {
			lastErr = err
			continue
		}
		return &tree.Maps{HostUIDMap: written(mp.UID), HostGIDMap: written(mp.GID), SetGroups: mp.SetGroups, PID: p.PID}
	}
	if lastErr != nil && !isGone(lastErr) {
		return &tree.Maps{Error: "not readable: " + lastErr.Error()}
	}
	return &tree.Maps{Error: allGone}
}

var errLeft = errors.New("the process left the namespace")

// isGone reports whether err says the process exited or moved.
func isGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) || errors.Is(err, errLeft)
}

func readlinkIno(path string) (uint64, error) {
	buf := make([]byte, 64)
	n, err := unix.Readlink(path, buf)
	if err != nil {
		return 0, &fs.PathError{Op: "readlink", Path: path, Err: err}
	}
	name, err := nsrel.ParseName(string(buf[:n]))
	if err != nil {
		return 0, err
	}
	return name.Ino, nil
}

// Overlap is a pair of user namespaces in different branches of the tree
// whose maps share host IDs.
type Overlap struct {
	A, B       *discover.Namespace
	UIDs, GIDs idmap.Spans
}

// Unchecked is a user namespace whose maps could not be read, so that no
// overlap of it could be found.
type Unchecked struct {
	NS     *discover.Namespace
	Reason string
}

// Overlaps finds every pair of user namespaces that map a host UID or
// GID in common, except a namespace and its own descendants (a nested
// namespace maps a part of its parent's IDs by construction). Each
// branch below a root of the tree (the host's user namespace when run
// there) is one container or one unrelated user: since a descendant's host IDs lie within its
// ancestor's, only the shallowest namespaces with readable maps of each
// branch are compared, across branches. checked counts those.
func Overlaps(m *discover.Model, maps map[discover.Key]*tree.Maps) (pairs []Overlap, unchecked []Unchecked, checked int) {
	type rep struct {
		n      *discover.Namespace
		branch int
		uids   idmap.Spans
		gids   idmap.Spans
	}
	var reps []rep
	var collect func(n *discover.Namespace, branch int)
	collect = func(n *discover.Namespace, branch int) {
		if mp := maps[n.Key()]; mp != nil && mp.HostUIDMap != nil {
			reps = append(reps, rep{n, branch, mp.HostUIDMap.Host(), mp.HostGIDMap.Host()})
			return
		} else if mp != nil {
			unchecked = append(unchecked, Unchecked{n, mp.Error})
		}
		for _, c := range n.Children {
			collect(c, branch)
		}
	}
	branch := 0
	for _, r := range m.Roots(nsrel.TypeUser) {
		for _, c := range r.Children {
			branch++
			collect(c, branch)
		}
	}
	for i := range reps {
		for j := i + 1; j < len(reps); j++ {
			a, b := reps[i], reps[j]
			if a.branch == b.branch {
				continue
			}
			u, g := idmap.Overlap(a.uids, b.uids), idmap.Overlap(a.gids, b.gids)
			if u != nil || g != nil {
				pairs = append(pairs, Overlap{A: a.n, B: b.n, UIDs: u, GIDs: g})
			}
		}
	}
	return pairs, unchecked, len(reps)
}

// nsLabel names a namespace with its containers, or its first process.
func nsLabel(n *discover.Namespace) string {
	var parts []string
	for _, c := range n.Containers {
		parts = append(parts, tree.ContainerLabel(c))
	}
	s := n.Name().String()
	switch {
	case len(parts) > 0:
		s += " containers: " + strings.Join(parts, ", ")
	case len(n.Processes) > 0:
		s += " pid " + strconv.Itoa(n.Processes[0].PID)
		if c := n.Processes[0].Comm; c != "" {
			s += " " + vocab.Escape(c)
		}
	}
	return s
}

// writeOverlaps prints the node-wide check in text. An incomplete
// check ends with a line saying what it could not read, instead of
// saying that no two namespaces overlap.
func writeOverlaps(w io.Writer, pairs []Overlap, unchecked []Unchecked, checked int, unread string) error {
	var b strings.Builder
	for _, p := range pairs {
		fmt.Fprintf(&b, "overlap: %s\n     and: %s\n", nsLabel(p.A), nsLabel(p.B))
		if p.UIDs != nil {
			fmt.Fprintf(&b, "    host UIDs %s\n", p.UIDs)
		}
		if p.GIDs != nil {
			fmt.Fprintf(&b, "    host GIDs %s\n", p.GIDs)
		}
	}
	for _, u := range unchecked {
		fmt.Fprintf(&b, "not checked: %s: maps %s\n", nsLabel(u.NS), vocab.Escape(u.Reason))
	}
	switch {
	case len(pairs) == 0 && unread == "":
		fmt.Fprintf(&b, "no two user namespaces share host IDs (%d checked)\n", checked)
	case len(pairs) == 0:
		fmt.Fprintf(&b, "check incomplete: %s; no two of the %d checked share host IDs\n", unread, checked)
	case len(pairs) == 1:
		fmt.Fprintf(&b, "1 pair of user namespaces shares host IDs (%d checked)\n", checked)
	default:
		fmt.Fprintf(&b, "%d pairs of user namespaces share host IDs (%d checked)\n", len(pairs), checked)
	}
	if len(pairs) > 0 && unread != "" {
		fmt.Fprintf(&b, "check incomplete: %s\n", unread)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// unreadText says what an incomplete check could not read: user
// namespaces whose maps are unreadable, processes whose namespaces the
// scan could not read (deniedProcs) or could not see (hidden: hidepid),
// files it could not open for want of file descriptors (outOfFDs).
// "" when the check is complete.
func unreadText(unchecked, deniedProcs, outOfFDs int, hidden bool) string {
	var parts []string
	switch {
	case unchecked == 1:
		parts = append(parts, "1 user namespace could not be checked")
	case unchecked > 1:
		parts = append(parts, strconv.Itoa(unchecked)+" user namespaces could not be checked")
	}
	switch {
	case deniedProcs == 1:
		parts = append(parts, "the namespaces of 1 process could not be read")
	case deniedProcs > 1:
		parts = append(parts, "the namespaces of "+strconv.Itoa(deniedProcs)+" processes could not be read")
	}
	if hidden {
		parts = append(parts, "/proc hides other users' processes")
	}
	if outOfFDs > 0 {
		parts = append(parts, "the scan ran out of file descriptors")
	}
	return strings.Join(parts, ", ")
}

// OverlapDoc is the JSON output of the node-wide check (docs/json.md).
type OverlapDoc struct {
	Overlaps  []OverlapEntry   `json:"overlaps"`
	Checked   int              `json:"checked"`
	Unchecked []UncheckedEntry `json:"unchecked"`
	// Complete is false when some user namespace could not be checked
	// or the scan could not read or see some processes' namespaces, or
	// ran out of file descriptors.
	Complete bool `json:"complete"`
}

// OverlapEntry is one overlapping pair; uids and gids are [first, count]
// spans of host IDs both map (empty when none).
type OverlapEntry struct {
	A    NSRef       `json:"a"`
	B    NSRef       `json:"b"`
	UIDs [][2]uint64 `json:"uids"`
	GIDs [][2]uint64 `json:"gids"`
}

// NSRef names a user namespace in the check's JSON.
type NSRef struct {
	Ino        uint64               `json:"ino"`
	Containers []discover.Container `json:"containers"`
	PIDs       []int                `json:"pids"`
}

// UncheckedEntry is a namespace whose maps could not be read.
type UncheckedEntry struct {
	NSRef
	Reason string `json:"reason"`
}

func nsRef(n *discover.Namespace) NSRef {
	r := NSRef{Ino: n.Ino, Containers: slices.Clone(n.Containers), PIDs: []int{}}
	if r.Containers == nil {
		r.Containers = []discover.Container{}
	}
	for _, p := range n.Processes {
		r.PIDs = append(r.PIDs, p.PID)
	}
	return r
}

func pairsOf(s idmap.Spans) [][2]uint64 {
	out := [][2]uint64{}
	for _, x := range s {
		out = append(out, [2]uint64{x.First, x.Count})
	}
	return out
}

// writeOverlapsJSON prints the node-wide check as an [OverlapDoc].
func writeOverlapsJSON(w io.Writer, pairs []Overlap, unchecked []Unchecked, checked int, complete bool) error {
	doc := OverlapDoc{Overlaps: []OverlapEntry{}, Checked: checked, Unchecked: []UncheckedEntry{}, Complete: complete}
	for _, p := range pairs {
		doc.Overlaps = append(doc.Overlaps, OverlapEntry{A: nsRef(p.A), B: nsRef(p.B), UIDs: pairsOf(p.UIDs), GIDs: pairsOf(p.GIDs)})
	}
	for _, u := range unchecked {
		doc.Unchecked = append(doc.Unchecked, UncheckedEntry{NSRef: nsRef(u.NS), Reason: u.Reason})
	}
	return vocab.WriteSafeJSON(w, doc, true)
}

// overlapCheck runs --overlaps: the pairs in text or JSON, exit status 1
// when there is any, and also when the check is incomplete: a user
// namespace could not be checked, or the scan could not read the
// namespaces of some processes ([discover.Denied]) or could not see
// them (hidden: /proc's hidepid), or ran out of file descriptors.
func overlapCheck(w io.Writer, m *discover.Model, maps map[discover.Key]*tree.Maps, asJSON, hidden bool) (int, error) {
	pairs, unchecked, checked := Overlaps(m, maps)
	unread := unreadText(len(unchecked), m.Denied.Processes, m.OutOfFDs, hidden)
	var err error
	if asJSON {
		err = writeOverlapsJSON(w, pairs, unchecked, checked, unread == "")
	} else {
		err = writeOverlaps(w, pairs, unchecked, checked, unread)
	}
	if len(pairs) > 0 || unread != "" {
		return 1, err
	}
	return 0, err
}

// overlapsExample is the --help example of --overlaps (lsuserns only).
func overlapsExample(t nsrel.Type) string {
	if t != nsrel.TypeUser {
		return ""
	}
	return "  lsuserns --overlaps             # node check: exit 1 if two containers share host IDs or some could not be checked\n"
}

// written returns a map that was read as it is, and an empty one (not
// nil, which the model keeps for "not readable") for a map nobody wrote
// yet (a user namespace just made, before its creator writes uid_map).
func written(m idmap.Map) idmap.Map {
	if m == nil {
		return idmap.Map{}
	}
	return m
}
