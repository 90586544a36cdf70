package lstool

import (
	"bufio"
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

// Overlap is a set of user namespaces, of at least two branches of the
// tree, that all map the host IDs UIDs and GIDs: namespaces whose maps
// give the same host IDs form one class, and an Overlap is either a
// class of several branches or two classes whose host IDs meet. Members
// lists at most [maxMembers] of them, A and B (the first two) in
// different branches; NotListed counts the rest. Pairs is how many pairs
// of namespaces in different branches it stands for.
type Overlap struct {
	Members    []*discover.Namespace
	NotListed  int
	Pairs      int
	UIDs, GIDs idmap.Spans
}

// A is the first namespace of o, B the second, in another branch.
func (o Overlap) A() *discover.Namespace { return o.Members[0] }

// B is the second namespace of o, in another branch than [Overlap.A].
func (o Overlap) B() *discover.Namespace { return o.Members[1] }

// Unchecked is a user namespace whose maps could not be read, so that no
// overlap of it could be found.
type Unchecked struct {
	NS     *discover.Namespace
	Reason string
}

// Limits of the check's report: many user namespaces mapping the same
// host IDs (any user can make thousands, each mapping their own UID)
// are reported once with maxMembers of them named, and at most
// maxOverlaps overlaps are listed, so that the report, and the memory
// it takes, stay linear in the namespaces rather than in their pairs.
const (
	maxMembers  = 10
	maxOverlaps = 1000
)

// OverlapReport is the result of [Overlaps].
type OverlapReport struct {
	// Overlaps lists at most maxOverlaps overlaps; NotListed counts the
	// others.
	Overlaps  []Overlap
	NotListed int
	// Pairs counts the pairs of namespaces in different branches that
	// share host IDs, over all overlaps (listed or not).
	Pairs     int
	Unchecked []Unchecked
	// Checked counts the namespaces compared.
	Checked int
}

// Overlaps finds the user namespaces that map a host UID or GID in
// common, except a namespace and its own descendants (a nested
// namespace maps a part of its parent's IDs by construction). Each
// branch below a root of the tree (the host's user namespace when run
// there) is one container or one unrelated user: since a descendant's
// host IDs lie within its ancestor's, only the shallowest namespaces
// with readable maps of each branch are compared, across branches.
// Namespaces with the same host IDs are grouped into one class first, so
// that the work is in the number of distinct host ID sets squared, not
// in the number of namespaces squared.
func Overlaps(m *discover.Model, maps map[discover.Key]*tree.Maps) OverlapReport {
	type class struct {
		uids, gids idmap.Spans
		members    []*discover.Namespace
		branches   []int       // of members, in order
		perBranch  map[int]int // members per branch
	}
	var r OverlapReport
	var classes []*class
	byKey := map[string]*class{}
	var collect func(n *discover.Namespace, branch int)
	collect = func(n *discover.Namespace, branch int) {
		if mp := maps[n.Key()]; mp != nil && mp.HostUIDMap != nil {
			u, g := mp.HostUIDMap.Host().Normal(), mp.HostGIDMap.Host().Normal()
			key := u.String() + "|" + g.String()
			c := byKey[key]
			if c == nil {
				c = &class{uids: u, gids: g, perBranch: map[int]int{}}
				byKey[key] = c
				classes = append(classes, c)
			}
			c.members = append(c.members, n)
			c.branches = append(c.branches, branch)
			c.perBranch[branch]++
			r.Checked++
			return
		} else if mp != nil {
			r.Unchecked = append(r.Unchecked, Unchecked{n, mp.Error})
		}
		for _, c := range n.Children {
			collect(c, branch)
		}
	}
	branch := 0
	for _, root := range m.Roots(nsrel.TypeUser) {
		for _, c := range root.Children {
			branch++
			collect(c, branch)
		}
	}
	add := func(o Overlap) {
		r.Pairs += o.Pairs
		if len(r.Overlaps) >= maxOverlaps {
			r.NotListed++
			return
		}
		r.Overlaps = append(r.Overlaps, o)
	}
	// list names the members of x (and y, when not nil) with a and b
	// first, then the others, up to maxMembers.
	list := func(x, y *class, a, b int) ([]*discover.Namespace, int) {
		total := len(x.members)
		if y != nil {
			total += len(y.members)
		}
		out := make([]*discover.Namespace, 0, min(total, maxMembers))
		var picked []*discover.Namespace
		if y == nil {
			picked = []*discover.Namespace{x.members[a], x.members[b]}
		} else {
			picked = []*discover.Namespace{x.members[a], y.members[b]}
		}
		out = append(out, picked...)
		for _, c := range []*class{x, y} {
			if c == nil {
				continue
			}
			for _, n := range c.members {
				if len(out) == maxMembers {
					break
				}
				if n != picked[0] && n != picked[1] {
					out = append(out, n)
				}
			}
		}
		return out, total - len(out)
	}
	for i, x := range classes {
		// A class of several branches: every pair of its members in
		// different branches shares all of its host IDs.
		if len(x.perBranch) > 1 && (len(x.uids) > 0 || len(x.gids) > 0) {
			pairs := len(x.members) * (len(x.members) - 1) / 2
			for _, k := range x.perBranch {
				pairs -= k * (k - 1) / 2
			}
			b := slices.IndexFunc(x.branches, func(br int) bool { return br != x.branches[0] })
			members, more := list(x, nil, 0, b)
			add(Overlap{Members: members, NotListed: more, Pairs: pairs, UIDs: x.uids, GIDs: x.gids})
		}
		for _, y := range classes[i+1:] {
			u, g := idmap.Overlap(x.uids, y.uids), idmap.Overlap(x.gids, y.gids)
			if u == nil && g == nil {
				continue
			}
			pairs := len(x.members) * len(y.members)
			small, large := x.perBranch, y.perBranch
			if len(small) > len(large) {
				small, large = large, small
			}
			for br, k := range small {
				pairs -= k * large[br]
			}
			if pairs == 0 {
				continue // all in one branch
			}
			// A member of y in another branch than x's first; else all
			// of y is in one branch, and some member of x is not.
			a, b := 0, slices.IndexFunc(y.branches, func(br int) bool { return br != x.branches[0] })
			if b < 0 {
				a, b = slices.IndexFunc(x.branches, func(br int) bool { return br != y.branches[0] }), 0
			}
			members, more := list(x, y, a, b)
			add(Overlap{Members: members, NotListed: more, Pairs: pairs, UIDs: u, GIDs: g})
		}
	}
	return r
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

// writeOverlaps prints the node-wide check in text, as it goes (the
// report is bounded by [Overlaps]). An incomplete check ends with a line
// saying what it could not read, instead of saying that no two
// namespaces overlap.
func writeOverlaps(w io.Writer, r OverlapReport, unread string) error {
	b := bufio.NewWriter(w)
	for _, o := range r.Overlaps {
		fmt.Fprintf(b, "overlap: %s\n", nsLabel(o.A()))
		for _, n := range o.Members[1:] {
			fmt.Fprintf(b, "     and: %s\n", nsLabel(n))
		}
		switch {
		case o.NotListed == 1:
			fmt.Fprintf(b, "     and 1 more user namespace\n")
		case o.NotListed > 1:
			fmt.Fprintf(b, "     and %d more user namespaces\n", o.NotListed)
		}
		if o.UIDs != nil {
			fmt.Fprintf(b, "    host UIDs %s\n", o.UIDs)
		}
		if o.GIDs != nil {
			fmt.Fprintf(b, "    host GIDs %s\n", o.GIDs)
		}
	}
	if r.NotListed > 0 {
		fmt.Fprintf(b, "%d more overlaps not listed\n", r.NotListed)
	}
	for _, u := range r.Unchecked {
		fmt.Fprintf(b, "not checked: %s: maps %s\n", nsLabel(u.NS), vocab.Escape(u.Reason))
	}
	switch {
	case r.Pairs == 0 && unread == "":
		fmt.Fprintf(b, "no two user namespaces share host IDs (%d checked)\n", r.Checked)
	case r.Pairs == 0:
		fmt.Fprintf(b, "check incomplete: %s; no two of the %d checked share host IDs\n", unread, r.Checked)
	case r.Pairs == 1:
		fmt.Fprintf(b, "1 pair of user namespaces shares host IDs (%d checked)\n", r.Checked)
	default:
		fmt.Fprintf(b, "%d pairs of user namespaces share host IDs (%d checked)\n", r.Pairs, r.Checked)
	}
	if r.Pairs > 0 && unread != "" {
		fmt.Fprintf(b, "check incomplete: %s\n", unread)
	}
	return b.Flush()
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
	Overlaps []OverlapEntry `json:"overlaps"`
	// OverlapsNotListed counts the overlaps beyond the listed ones.
	OverlapsNotListed int `json:"overlaps_not_listed"`
	// Pairs counts the pairs of namespaces that share host IDs.
	Pairs     int              `json:"pairs"`
	Checked   int              `json:"checked"`
	Unchecked []UncheckedEntry `json:"unchecked"`
	// Complete is false when some user namespace could not be checked
	// or the scan could not read or see some processes' namespaces, or
	// ran out of file descriptors.
	Complete bool `json:"complete"`
}

// OverlapEntry is one overlap: namespaces a and b (in different
// branches) and others all map the host IDs uids and gids, [first,
// count] spans (empty when none); more counts the namespaces beyond
// those listed, pairs the pairs in different branches it stands for.
type OverlapEntry struct {
	A      NSRef       `json:"a"`
	B      NSRef       `json:"b"`
	Others []NSRef     `json:"others"`
	More   int         `json:"more"`
	Pairs  int         `json:"pairs"`
	UIDs   [][2]uint64 `json:"uids"`
	GIDs   [][2]uint64 `json:"gids"`
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
func writeOverlapsJSON(w io.Writer, r OverlapReport, complete bool) error {
	doc := OverlapDoc{Overlaps: []OverlapEntry{}, OverlapsNotListed: r.NotListed, Pairs: r.Pairs, Checked: r.Checked, Unchecked: []UncheckedEntry{}, Complete: complete}
	for _, o := range r.Overlaps {
		e := OverlapEntry{A: nsRef(o.A()), B: nsRef(o.B()), Others: []NSRef{}, More: o.NotListed, Pairs: o.Pairs, UIDs: pairsOf(o.UIDs), GIDs: pairsOf(o.GIDs)}
		for _, n := range o.Members[2:] {
			e.Others = append(e.Others, nsRef(n))
		}
		doc.Overlaps = append(doc.Overlaps, e)
	}
	for _, u := range r.Unchecked {
		doc.Unchecked = append(doc.Unchecked, UncheckedEntry{NSRef: nsRef(u.NS), Reason: u.Reason})
	}
	return vocab.WriteSafeJSON(w, doc, true)
}

// overlapCheck runs --overlaps: the overlaps in text or JSON, exit
// status 1 when there is any, and also when the check is incomplete: a
// user namespace could not be checked, or the scan could not read the
// namespaces of some processes ([discover.Denied]) or could not see
// them (hidden: /proc's hidepid), or ran out of file descriptors.
func overlapCheck(w io.Writer, m *discover.Model, maps map[discover.Key]*tree.Maps, asJSON, hidden bool) (int, error) {
	r := Overlaps(m, maps)
	unread := unreadText(len(r.Unchecked), m.Denied.Processes, m.OutOfFDs, hidden)
	var err error
	if asJSON {
		err = writeOverlapsJSON(w, r, unread == "")
	} else {
		err = writeOverlaps(w, r, unread)
	}
	if r.Pairs > 0 || unread != "" {
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
