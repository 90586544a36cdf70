package lstool

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/containers"
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

// viewerNS returns the inode of the caller's user namespace (0 if it
// cannot be read) and, when it is not the initial one, its name
// ("user:[N]"): outside IDs read are that namespace's.
func viewerNS() (uint64, string) {
	self, _ := readlinkIno("/proc/self/ns/user")
	if self != 0 && self != nsrel.InitialUserNSIno {
		return self, nsrel.Name{Type: nsrel.TypeUser, Ino: self}.String()
	}
	return self, ""
}

// ReadMaps reads the ID maps of every user namespace of m through a
// process the model lists in it ([idmap.ReadProc]: one process
// throughout, checked to be still in that namespace after the read). Outside IDs are relative to the caller's
// user namespace; the lines relative to the parent are composed from the
// parent's maps. A namespace with no process (held by a bind mount, an fd
// or only a descendant) says so: its maps cannot be read without a
// process in it.
func ReadMaps(m *discover.Model) map[discover.Key]*tree.Maps {
	out := map[discover.Key]*tree.Maps{}
	self, viewer := viewerNS()
	var visit func(n *discover.Namespace)
	visit = func(n *discover.Namespace) {
		mp := readNSMaps(n, self)
		mp.Viewer = viewer
		out[n.Key()] = mp
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
		// The IDs its lines map, each itself: no other exists here
		// (every ID in the initial namespace, whose lines are the
		// identity).
		return &tree.Maps{UIDMap: written(own.UID), GIDMap: written(own.GID), HostUIDMap: written(idmap.Own(own.UID)), HostGIDMap: written(idmap.Own(own.GID)), SetGroups: own.SetGroups}
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

// Shared is a range of host IDs (UIDs or GIDs) that user namespaces of
// at least two branches of the tree all map: an elementary interval of
// the sweep in [Overlaps], over which the set of namespaces mapping it
// does not change. Namespaces counts them, Branches their branches;
// Members names at most [maxMembers] of them: one of each branch first
// (one with containers where the branch has one, those branches first),
// then the others with containers, then the rest, in an order the sweep
// leaves unspecified; they are sorted with containers first, then by
// inode. NotListed counts the rest.
type Shared struct {
	GIDs       bool // false: host UIDs
	IDs        idmap.Span
	Namespaces int
	Branches   int
	Members    []*discover.Namespace
	NotListed  int
}

// Kind is "UIDs" or "GIDs".
func (s Shared) Kind() string {
	if s.GIDs {
		return "GIDs"
	}
	return "UIDs"
}

// Unchecked is a user namespace whose maps could not be read, so that no
// overlap of it could be found.
type Unchecked struct {
	NS     *discover.Namespace
	Reason string
}

// Limits of the check's report: a shared range names maxMembers of the
// namespaces mapping it (any user can make thousands, each mapping their
// own UID), at most maxShared ranges are listed, and a named namespace
// shows at most maxRefItems of its containers and (JSON) PIDs, the same
// namespace being named in up to maxShared ranges, so that the report
// stays bounded whatever the namespaces.
const (
	maxMembers  = 10
	maxShared   = 1000
	maxRefItems = 10
)

// OverlapReport is the result of [Overlaps].
type OverlapReport struct {
	// Shared lists at most maxShared shared ranges: those that
	// namespaces with containers of two branches or more map first, then
	// those that such namespaces of one branch map, then the others;
	// within each, by host ID (UIDs before GIDs at the same ID).
	// NotListed counts the others.
	Shared    []Shared
	NotListed int
	// Ranges counts the shared ranges, listed or not; Involved the
	// namespaces that map some shared range.
	Ranges    int
	Involved  int
	Unchecked []Unchecked
	// Checked counts the namespaces compared.
	Checked int
}

// checkedNS is a namespace the sweep compares.
type checkedNS struct {
	ns         *discover.Namespace
	branch     int32
	containers bool
	uids, gids idmap.Spans
}

// event starts or ends a span of host IDs of namespace ns at pos.
type event struct {
	pos uint64
	ns  int32
	end bool
}

// activeSet is a set of namespace indexes with O(1) add and remove: a
// slice and each member's place in it (pos, shared by the sets of one
// sweep, a namespace being in at most one).
type activeSet struct{ list []int32 }

func (a *activeSet) add(i int32, pos []int32) {
	pos[i] = int32(len(a.list))
	a.list = append(a.list, i)
}

func (a *activeSet) remove(i int32, pos []int32) {
	k, last := pos[i], a.list[len(a.list)-1]
	a.list[k], pos[last] = last, k
	a.list = a.list[:len(a.list)-1]
}

// Overlaps finds the host UIDs and GIDs that user namespaces of
// different branches map in common: a namespace and its own descendants
// are not compared (a nested namespace maps a part of its parent's IDs
// by construction). Each branch below a root of the tree (the host's
// user namespace when run there) is one container or one unrelated
// user: since a descendant's host IDs lie within its ancestor's, only
// the shallowest namespaces with readable maps of each branch are
// compared.
//
// For UIDs and for GIDs, the starts and ends of every compared
// namespace's host spans are sorted and swept in order, keeping the set
// of namespaces mapping the current ID, how many of each branch, how
// many branches and how many with containers; every interval between
// two events where two branches or more are active is a shared range.
// The work is O(S log S) in the number of spans S plus what is listed
// (at most maxShared ranges of maxMembers names), whatever the number of
// namespaces or pairs; memory is linear in S.
func Overlaps(m *discover.Model, maps map[discover.Key]*tree.Maps) OverlapReport {
	var r OverlapReport
	var checked []checkedNS
	var collect func(n *discover.Namespace, branch int32)
	collect = func(n *discover.Namespace, branch int32) {
		if mp := maps[n.Key()]; mp != nil && mp.HostUIDMap != nil {
			checked = append(checked, checkedNS{ns: n, branch: branch, containers: len(n.Containers) > 0,
				uids: mp.HostUIDMap.Host().Normal(), gids: mp.HostGIDMap.Host().Normal()})
			r.Checked++
			return
		} else if mp != nil {
			r.Unchecked = append(r.Unchecked, Unchecked{n, mp.Error})
		}
		for _, c := range n.Children {
			collect(c, branch)
		}
	}
	var branches int32
	for _, root := range m.Roots(nsrel.TypeUser) {
		for _, c := range root.Children {
			collect(c, branches)
			branches++
		}
	}
	involved := make([]bool, len(checked))
	var ranked [3][]Shared // by rank, each at most maxShared per kind
	st := newSweepState(checked, int(branches))
	for _, gids := range []bool{false, true} {
		rk := st.sweep(gids, involved, &r)
		for i := range ranked {
			ranked[i] = append(ranked[i], rk[i]...)
		}
	}
	for _, x := range involved {
		if x {
			r.Involved++
		}
	}
	byID := func(a, b Shared) int {
		if c := cmp.Compare(a.IDs.First, b.IDs.First); c != 0 {
			return c
		}
		return containers.CompareBool(a.GIDs, b.GIDs)
	}
	for i := len(ranked) - 1; i >= 0; i-- {
		slices.SortStableFunc(ranked[i], byID)
		r.Shared = append(r.Shared, ranked[i][:min(len(ranked[i]), maxShared-len(r.Shared))]...)
	}
	r.NotListed = r.Ranges - len(r.Shared)
	return r
}

// sweep runs the sweep of [Overlaps] over the host UIDs (or GIDs) of
// st.checked, counting shared ranges in r.Ranges and marking involved the
// namespaces active during one. It returns, by rank, the first maxShared
// shared ranges in host ID order of each rank: rank 2 for the ranges that
// namespaces with containers of two branches or more map, 1 for those
// that such namespaces of one branch map, 0 for the others. Ranking by
// container branches rather than by "some namespace with containers"
// keeps a range two containers share listed when namespaces without
// containers split one container's range into thousands of shared ranges
// at lower IDs.
func (st *sweepState) sweep(gids bool, involved []bool, r *OverlapReport) (ranked [3][]Shared) {
	checked := st.checked
	spansOf := func(c checkedNS) idmap.Spans {
		if gids {
			return c.gids
		}
		return c.uids
	}
	n := 0
	for _, c := range checked {
		n += len(spansOf(c))
	}
	events := make([]event, 0, 2*n)
	for i, c := range checked {
		for _, s := range spansOf(c) {
			events = append(events, event{s.First, int32(i), false}, event{s.First + s.Count, int32(i), true})
		}
	}
	slices.SortFunc(events, func(a, b event) int {
		if c := cmp.Compare(a.pos, b.pos); c != 0 {
			return c
		}
		return int(a.ns) - int(b.ns)
	})
	var (
		pos, posB, seenAt, perBranch, perBranchC = st.pos, st.posB, st.seenAt, st.perBranch, st.perBranchC
		branchPos, branchCPos, inBranch          = st.branchPos, st.branchCPos, st.inBranch
		activeC, activeO, branchesOn, branchesC  = &st.activeC, &st.activeO, &st.branchesOn, &st.branchesC
		sharedSeen                               int // shared intervals so far
	)
	for k := 0; k < len(events); {
		at := events[k].pos
		for ; k < len(events) && events[k].pos == at; k++ {
			e := events[k]
			c := &checked[e.ns]
			set := activeO
			if c.containers {
				set = activeC
			}
			if e.end {
				if sharedSeen > seenAt[e.ns] {
					involved[e.ns] = true
				}
				set.remove(e.ns, pos)
				inBranch[setOf(*c)].remove(e.ns, posB)
				if perBranch[c.branch]--; perBranch[c.branch] == 0 {
					branchesOn.remove(c.branch, branchPos)
				}
				if c.containers {
					if perBranchC[c.branch]--; perBranchC[c.branch] == 0 {
						branchesC.remove(c.branch, branchCPos)
					}
				}
				continue
			}
			seenAt[e.ns] = sharedSeen
			set.add(e.ns, pos)
			inBranch[setOf(*c)].add(e.ns, posB)
			if perBranch[c.branch]++; perBranch[c.branch] == 1 {
				branchesOn.add(c.branch, branchPos)
			}
			if c.containers {
				if perBranchC[c.branch]++; perBranchC[c.branch] == 1 {
					branchesC.add(c.branch, branchCPos)
				}
			}
		}
		if len(branchesOn.list) < 2 || k == len(events) {
			continue
		}
		// [at, next event) is mapped by every active namespace.
		sharedSeen++
		r.Ranges++
		list := &ranked[min(len(branchesC.list), 2)]
		if len(*list) >= maxShared {
			continue
		}
		s := Shared{GIDs: gids, IDs: idmap.Span{First: at, Count: events[k].pos - at}, Namespaces: len(activeC.list) + len(activeO.list),
			Branches: len(branchesOn.list)}
		// Named: one namespace of each branch (one with containers
		// where the branch has one, those branches first), then the
		// others with containers, then the rest, up to maxMembers; at
		// most 2·maxMembers steps whatever the number active.
		pick := func(i int32) { s.Members = append(s.Members, checked[i].ns) }
		for _, b := range branchesC.list[:min(len(branchesC.list), maxMembers)] {
			pick(inBranch[2*b].list[0])
		}
		for _, b := range branchesOn.list {
			if len(s.Members) >= maxMembers {
				break
			}
			if perBranchC[b] == 0 {
				pick(inBranch[2*b+1].list[0])
			}
		}
		for _, set := range []*activeSet{activeC, activeO} {
			for _, i := range set.list {
				if len(s.Members) >= maxMembers {
					break
				}
				if !slices.Contains(s.Members, checked[i].ns) {
					pick(i)
				}
			}
		}
		// Shown with containers first, then by inode, for a stable report.
		slices.SortFunc(s.Members, func(a, b *discover.Namespace) int {
			if c := containers.CompareBool(len(b.Containers) > 0, len(a.Containers) > 0); c != 0 {
				return c
			}
			return cmp.Compare(a.Ino, b.Ino)
		})
		s.NotListed = s.Namespaces - len(s.Members)
		*list = append(*list, s)
	}
	return ranked
}

// sweepState is what [sweepState.sweep] keeps of the active namespaces
// and branches; every set is empty and every count 0 again at the end of
// a sweep, so that one state serves the UID and the GID sweeps.
type sweepState struct {
	checked    []checkedNS
	pos        []int32 // place in activeC or activeO
	posB       []int32 // place in inBranch
	seenAt     []int   // shared intervals seen at activation
	perBranch  []int32 // active namespaces of each branch
	perBranchC []int32 // of them with containers
	branchPos  []int32 // place in branchesOn
	branchCPos []int32 // place in branchesC
	// The active namespaces of branch b with containers are
	// inBranch[2b], those without inBranch[2b+1]: slices of one array
	// with room for all of them (checked holds each branch's namespaces
	// together, as [Overlaps] collects them), without an allocation per
	// branch.
	inBranch   []activeSet
	activeC    activeSet // active namespaces with containers
	activeO    activeSet // and without
	branchesOn activeSet // branches with an active namespace
	branchesC  activeSet // with an active namespace with containers
}

func newSweepState(checked []checkedNS, branches int) *sweepState {
	st := &sweepState{checked: checked, pos: make([]int32, len(checked)), posB: make([]int32, len(checked)), seenAt: make([]int, len(checked)),
		perBranch: make([]int32, branches), perBranchC: make([]int32, branches), branchPos: make([]int32, branches), branchCPos: make([]int32, branches),
		inBranch: make([]activeSet, 2*branches)}
	counts := make([]int, 2*branches)
	for _, c := range checked {
		counts[setOf(c)]++
	}
	backing := make([]int32, len(checked))
	off := 0
	for k, cnt := range counts {
		st.inBranch[k].list = backing[off:off:(off + cnt)]
		off += cnt
	}
	return st
}

// setOf is the index in sweep's inBranch of c's set.
func setOf(c checkedNS) int32 {
	if c.containers {
		return 2 * c.branch
	}
	return 2*c.branch + 1
}

// nsLabel names a namespace with its containers (the first
// maxRefItems, then how many more), or its first process.
func nsLabel(n *discover.Namespace) string {
	var parts []string
	for _, c := range n.Containers[:min(len(n.Containers), maxRefItems)] {
		parts = append(parts, tree.ContainerLabel(c))
	}
	s := n.Name().String()
	switch {
	case len(parts) > 0:
		s += " containers: " + strings.Join(parts, ", ")
		if more := len(n.Containers) - len(parts); more > 0 {
			s += " and " + strconv.Itoa(more) + " more"
		}
	case len(n.Processes) > 0:
		s += " pid " + strconv.Itoa(n.Processes[0].PID)
		if c := n.Processes[0].Comm; c != "" {
			// Quoted when it could pass for more ("x: maps ok").
			s += " " + vocab.QuoteItem(c)
		}
	}
	return s
}

// writeOverlaps prints the node-wide check in text, as it goes (the
// report is bounded by [Overlaps]). An incomplete check ends with a line
// saying what it could not read, instead of saying that no two
// namespaces overlap.
func writeOverlaps(w io.Writer, r OverlapReport, unread, viewer string) error {
	b := bufio.NewWriter(w)
	// The IDs compared are the viewer's: the host's in the initial user
	// namespace.
	pre, post := "host ", ""
	if viewer != "" {
		pre, post = "", " in "+viewer
	}
	for _, s := range r.Shared {
		fmt.Fprintf(b, "overlap: %s%s %s%s mapped by %d user namespaces in %d branches:\n", pre, s.Kind(), s.IDs, post, s.Namespaces, s.Branches)
		for _, n := range s.Members {
			fmt.Fprintf(b, "    %s\n", nsLabel(n))
		}
		if s.NotListed > 0 {
			fmt.Fprintf(b, "    and %d more\n", s.NotListed)
		}
	}
	switch {
	case r.NotListed == 1:
		fmt.Fprintf(b, "1 more shared %sID range%s not listed\n", pre, post)
	case r.NotListed > 1:
		fmt.Fprintf(b, "%d more shared %sID ranges%s not listed\n", r.NotListed, pre, post)
	}
	for _, u := range r.Unchecked {
		fmt.Fprintf(b, "not checked: %s: maps %s\n", nsLabel(u.NS), vocab.Escape(u.Reason))
	}
	ranges := "ranges"
	if r.Ranges == 1 {
		ranges = "range"
	}
	switch {
	case r.Ranges == 0 && unread == "":
		fmt.Fprintf(b, "no two user namespaces share %sIDs%s (%d checked)\n", pre, post, r.Checked)
	case r.Ranges == 0:
		fmt.Fprintf(b, "check incomplete: %s; no two of the %d checked share %sIDs%s\n", unread, r.Checked, pre, post)
	default:
		fmt.Fprintf(b, "%d %sID %s%s shared across branches by %d user namespaces (%d checked)\n", r.Ranges, pre, ranges, post, r.Involved, r.Checked)
	}
	if r.Ranges > 0 && unread != "" {
		fmt.Fprintf(b, "check incomplete: %s\n", unread)
	}
	return b.Flush()
}

// unreadText says what an incomplete check could not read: user
// namespaces whose maps are unreadable (unchecked), and whatever the
// scan of m says it left out that could hold a user namespace or tell
// its branch: processes whose namespaces, open files or mounts could not
// be read or seen (hidden: hidepid), bind mounts not opened, parents
// and owners refused, files not opened for want of file
// descriptors. Sockets not asked for their network namespace (cgroup v1
// net_cls or net_prio in use: every socket on the node, since asking
// would change their class ID) count too: a user namespace only a
// socket's network namespace owns is missing then, and any user can
// make one (not counting them let a namespace mapping shared host IDs
// pass). "" when the check is complete.
func unreadText(unchecked int, m *discover.Model, hidden bool) string {
	var parts []string
	count := func(n int, one, many string) {
		switch {
		case n == 1:
			parts = append(parts, one)
		case n > 1:
			parts = append(parts, fmt.Sprintf(many, n))
		}
	}
	d := m.Denied
	count(unchecked, "1 user namespace could not be checked", "%d user namespaces could not be checked")
	count(d.Processes, "the namespaces of 1 process could not be read", "the namespaces of %d processes could not be read")
	if hidden {
		parts = append(parts, "/proc hides other users' processes")
	}
	count(d.FDDirs, "the open files of 1 process could not be read", "the open files of %d processes could not be read")
	count(d.MountNS+m.UnreadMounts, "the mounts of 1 mount namespace could not be read", "the mounts of %d mount namespaces could not be read")
	count(m.UnopenedNS+m.BelowFUSE, "1 namespace bind mount was not opened", "%d namespace bind mounts were not opened")
	count(m.SkippedSockets-m.UnaskedSockets, "1 socket was not asked for its network namespace (cgroup v1 net_cls or net_prio)", "%d sockets were not asked for their network namespaces (cgroup v1 net_cls or net_prio)")
	count(m.UnaskedSockets, "1 socket was not asked for its network namespace (see the notice)", "%d sockets were not asked for their network namespaces (see the notice)")
	count(d.Links, "1 parent or owner of a user namespace was refused", "%d parents or owners of user namespaces were refused")
	if m.OutOfFDs > 0 {
		parts = append(parts, "the scan ran out of file descriptors")
	}
	if m.ReusedInodes > 0 {
		parts = append(parts, "namespaces were replaced while the scan ran")
	}
	return strings.Join(parts, ", ")
}

// OverlapDoc is the JSON output of the node-wide check (docs/json.md).
type OverlapDoc struct {
	// Overlaps lists at most 1,000 shared host ID ranges.
	Overlaps []OverlapEntry `json:"overlaps"`
	// OverlapsNotListed counts the shared ranges beyond the listed ones.
	OverlapsNotListed int `json:"overlaps_not_listed"`
	// SharedRanges counts every shared range, listed or not; Involved
	// the namespaces mapping some shared range.
	SharedRanges int              `json:"shared_ranges"`
	Involved     int              `json:"namespaces_involved"`
	Checked      int              `json:"checked"`
	Unchecked    []UncheckedEntry `json:"unchecked"`
	// Complete is false when some user namespace could not be checked
	// or the scan could not read or see some processes' namespaces, or
	// ran out of file descriptors.
	Complete bool `json:"complete"`
	// Viewer is the user namespace lsuserns ran in ("user:[N]") when it
	// is not the initial one: the IDs compared are that namespace's.
	Viewer string `json:"viewer,omitempty"`
}

// OverlapEntry is one shared range: host IDs of Kind ("uid" or "gid")
// First to First+Count-1, mapped by Namespaces user namespaces of
// Branches branches, up to 10 of them listed (one of each branch
// first, one with containers where the branch has one, then others
// with containers, then the rest) and More not listed.
type OverlapEntry struct {
	Kind       string  `json:"kind"`
	First      uint64  `json:"first"`
	Count      uint64  `json:"count"`
	Namespaces int     `json:"namespaces"`
	Branches   int     `json:"branches"`
	Listed     []NSRef `json:"listed"`
	More       int     `json:"more"`
}

// NSRef names a user namespace in the check's JSON: its first
// maxRefItems containers and PIDs, and how many more it has.
type NSRef struct {
	Ino            uint64               `json:"ino"`
	Containers     []discover.Container `json:"containers"`
	ContainersMore int                  `json:"containers_more"`
	PIDs           []int                `json:"pids"`
	PIDsMore       int                  `json:"pids_more"`
}

// UncheckedEntry is a namespace whose maps could not be read.
type UncheckedEntry struct {
	NSRef
	Reason string `json:"reason"`
}

func nsRef(n *discover.Namespace) NSRef {
	r := NSRef{Ino: n.Ino, Containers: slices.Clone(n.Containers[:min(len(n.Containers), maxRefItems)]), PIDs: []int{},
		ContainersMore: max(len(n.Containers)-maxRefItems, 0), PIDsMore: max(len(n.Processes)-maxRefItems, 0)}
	if r.Containers == nil {
		r.Containers = []discover.Container{}
	}
	for _, p := range n.Processes[:min(len(n.Processes), maxRefItems)] {
		r.PIDs = append(r.PIDs, p.PID)
	}
	return r
}

// writeOverlapsJSON prints the node-wide check as an [OverlapDoc].
func writeOverlapsJSON(w io.Writer, r OverlapReport, complete bool, viewer string) error {
	doc := OverlapDoc{Overlaps: []OverlapEntry{}, OverlapsNotListed: r.NotListed, SharedRanges: r.Ranges, Involved: r.Involved,
		Checked: r.Checked, Unchecked: []UncheckedEntry{}, Complete: complete, Viewer: viewer}
	for _, s := range r.Shared {
		e := OverlapEntry{Kind: "uid", First: s.IDs.First, Count: s.IDs.Count, Namespaces: s.Namespaces, Branches: s.Branches, Listed: []NSRef{}, More: s.NotListed}
		if s.GIDs {
			e.Kind = "gid"
		}
		for _, n := range s.Members {
			e.Listed = append(e.Listed, nsRef(n))
		}
		doc.Overlaps = append(doc.Overlaps, e)
	}
	for _, u := range r.Unchecked {
		doc.Unchecked = append(doc.Unchecked, UncheckedEntry{NSRef: nsRef(u.NS), Reason: u.Reason})
	}
	return vocab.WriteSafeJSON(w, doc, true)
}

// overlapCheck runs --overlaps: the shared host ID ranges in text or
// JSON, exit status 1 when there is any, and also when the check is incomplete: a
// user namespace could not be checked, or the scan could not read the
// namespaces of some processes ([discover.Denied]) or could not see
// them (hidden: /proc's hidepid), or ran out of file descriptors.
func overlapCheck(w io.Writer, m *discover.Model, maps map[discover.Key]*tree.Maps, asJSON, hidden bool, skipped string) (int, error) {
	r := Overlaps(m, maps)
	unread := unreadText(len(r.Unchecked), m, hidden)
	if skipped != "" {
		// A source not read may hold a user namespace (one held only
		// by an fd, a bind mount, a thread, or as the owner of another
		// type's namespace): not a complete check.
		unread = strings.TrimPrefix(unread+", the scan was told not to read some sources ("+skipped+")", ", ")
	}
	_, viewer := viewerNS()
	var err error
	if asJSON {
		err = writeOverlapsJSON(w, r, unread == "", viewer)
	} else {
		err = writeOverlaps(w, r, unread, viewer)
	}
	if r.Ranges > 0 || unread != "" {
		return 1, err
	}
	return 0, err
}

// overlapsExample is the --help example of --overlaps (lsuserns only).
func overlapsExample(t nsrel.Type) string {
	if t != nsrel.TypeUser {
		return ""
	}
	return "  lsuserns --overlaps             # node check: exit 1 if user namespaces of two branches share host IDs or some could not be checked\n"
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
