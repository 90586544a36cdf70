package policy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/idmap"
)

// SubIDFiles are the subordinate ID files allowed_subid_user reads: UIDs,
// then GIDs (subuid(5)).
var SubIDFiles = [2]string{"/etc/subuid", "/etc/subgid"}

// PasswdFile is where allowed_subid_user's value is resolved to a UID,
// and the UID to the names whose lines count ([idmap.SubIDUsers]): a
// subordinate ID file may name the user by name or by UID (subuid(5)).
// The hook starts no process, so users only the name service knows
// (LDAP, SSSD) are matched in the form configured.
var PasswdFile = "/etc/passwd"

// HostRoot, when not "" or "/", is the host's root as this process sees
// it (a pod's /proc/1/root): [SubIDFiles] and [PasswdFile] are read
// within it, an absolute symlink among them resolved there
// ([idmap.ReadFileInRoot]), as nsrel-hook reads them on the host.
var HostRoot string

// readHostFile reads the host's file path (up to about limit bytes),
// within [HostRoot] when it is set.
func readHostFile(path string, limit int) ([]byte, error) {
	if HostRoot == "" || HostRoot == "/" {
		return idmap.ReadFileLimit(path, limit)
	}
	return idmap.ReadFileInRoot(HostRoot, path, limit)
}

// Running is what a scan of the processes running now found, for
// disjoint_from_running: the user namespaces of other containers (and
// of any other process in a user namespace of its own), without the
// container's own namespace, its ancestors and its descendants.
type Running struct {
	// Others are those user namespaces.
	Others []Other
	// Denied are processes whose user namespace could not be read
	// (recorded, not a violation: see docs/hook.md).
	Denied []int
	// Err is set when the scan failed or did not finish: the rule is
	// then violated, never passed. Others then hold what was found
	// before, which counts as found (a walk that ran out of time).
	Err error
}

// Other is the user namespace of another running process.
type Other struct {
	// Ino is the namespace; PID a process in it; Name what that process
	// is (its command and cgroup, which names the container for most
	// engines).
	Ino  uint64
	PID  int
	Name string
	// UIDs and GIDs are the host IDs its maps hold.
	UIDs, GIDs idmap.Spans
	// Err says why its maps could not be read.
	Err string
	// Shared is set when it is the container's own user namespace and
	// PID a process outside the container (and its pod) living in it:
	// the container shares all its IDs with that process. With Below, it
	// is a namespace below the container's, in which that process
	// lives: it holds IDs of the container's.
	Shared, Below bool
	// Held is set when Ino is the hook's own user namespace (the
	// initial one: the scan reads it only there), whose maps count for
	// nothing, and PID a
	// process in it that holds IDs (UIDs, GIDs) the container's maps
	// map: a container run without a user namespace as a host UID, a
	// host service.
	Held bool
}

// HeldSpans returns the host UIDs and GIDs the container holds: those
// its maps (uids, gids) map, and those its process holds outside them
// (a.Held: supplementary groups its runtime kept).
func HeldSpans(a *audit.Ancestry, uids, gids idmap.Map) (u, g idmap.Spans) {
	u, g = uids.Host(), gids.Host()
	if h := a.Held; h != nil {
		hu, hg := h.Spans()
		u, g = append(u, hu...), append(g, hg...)
	}
	return u.Normal(), g.Normal()
}

// idmappedRoot says how the idmapped mount m lets a container holding
// host UIDs u and GIDs g own files as UID or GID 0 of the mount's file
// system (host root's, for a host directory), or that its maps are not
// known: nothing when it does not.
func idmappedRoot(m audit.IDMappedMount, u, g idmap.Spans) []string {
	at := vocab.Quote(vocab.Cut(m.Point, 256))
	if m.UIDMap == nil || m.GIDMap == nil {
		return []string{fmt.Sprintf(Unchecked+": the idmapped mount at %s: through it, files the container writes may be owned by host UID 0 (its ID map is not known: %s)", at, m.Err)}
	}
	var out []string
	for _, k := range []struct {
		what string
		m    []audit.IDRange
		held idmap.Spans
	}{{"UID", m.UIDMap, u}, {"GID", m.GIDMap, g}} {
		h, ok := toMap(k.m).ToOutside(0)
		if ok && len(idmap.Overlap(k.held, idmap.Spans{{First: uint64(h), Count: 1}})) > 0 {
			out = append(out, fmt.Sprintf("the idmapped mount at %s maps %s 0 of its file system to host %s %d, which the container holds: files it writes there are owned by %s 0 (host root's, a setuid-root one too)", at, k.what, k.what, h, k.what))
		}
	}
	return out
}

// NeedsFacts reports whether a rule judges what the container's process
// holds or mounts beyond its namespaces (inspect.ReadFacts reads it).
func (r *Rules) NeedsFacts() bool {
	return r.HostRootUnmapped || r.HeldIDsMapped || r.NeedsRunning()
}

// evaluateHeld adds the violations of held_ids_mapped: the host IDs the
// container's process holds (a.Held) that its maps (uids, gids) do not
// map. A runtime may leave it its caller's supplementary groups (crun's
// run.oci.keep_original_groups annotation, a joined user namespace whose
// setgroups is "deny"): with a host group such as disk, shadow or
// docker, it reads and writes what that group may, wherever the
// container reaches a host file; host_root_unmapped judges ID 0 alone.
func (r *Rules) evaluateHeld(a *audit.Ancestry, uids, gids idmap.Map, add func(rule, format string, args ...any)) {
	h := a.Held
	if h == nil {
		if a.FactsErr != "" && !a.FactsGone {
			add(RuleHeldIDsMapped, Unchecked+": the IDs its process holds could not be read: %s", a.FactsErr)
		}
		return
	}
	// Sorted, each once: a process may hold 65,536 groups (a search
	// of those kept so far, for each, took 1.6 s of a 2 s deadline).
	unmapped := func(ids []uint32, m idmap.Map) []uint32 {
		var out []uint32
		for _, id := range ids {
			if !m.MapsOutside(id) {
				out = append(out, id)
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	if u := unmapped(h.UIDs[:], uids); len(u) > 0 {
		add(RuleHeldIDsMapped, "the container's process holds host UIDs %s (uid %d %d %d %d), which %s does not map", groupList(u), h.UIDs[0], h.UIDs[1], h.UIDs[2], h.UIDs[3], userName(a, 0))
	}
	if g := unmapped(append(h.GIDs[:], h.Groups...), gids); len(g) > 0 {
		why := ""
		if len(unmapped(h.Groups, gids)) > 0 {
			why = ": its runtime kept its caller's groups"
		}
		add(RuleHeldIDsMapped, "the container's process holds host GIDs %s (gid %d %d %d %d, groups %s), which %s does not map%s", groupList(g), h.GIDs[0], h.GIDs[1], h.GIDs[2], h.GIDs[3], groupList(h.Groups), userName(a, 0), why)
	}
}

// needsMaps reports whether a rule reads the container's maps.
func (r *Rules) needsMaps() bool {
	return r.HostRootUnmapped || r.HeldIDsMapped || r.MappedIDsMin != nil || r.MappedIDsMax != nil ||
		len(r.AllowedHostRanges) > 0 || r.AllowedSubIDUser != "" || r.DisjointFromRunning
}

// HostMaps returns the host UID and GID maps of the container's own user
// namespace (level 0) from its ancestry: the identity for a process in
// the initial user namespace. For a hook run in a user namespace of its
// own (a rootless runtime's), the IDs are that namespace's: a process
// in it has the IDs its lines map, as recorded. The error says why they
// are not known.
func HostMaps(a *audit.Ancestry) (uids, gids idmap.Map, err error) {
	if a.UserDepth() == 0 && (initialTop(a) || len(a.Maps) == 0 || a.Maps[0].HostUIDMap == nil || a.Maps[0].HostGIDMap == nil) {
		return idmap.Identity(), idmap.Identity(), nil
	}
	if len(a.Maps) == 0 {
		return nil, nil, errors.New("the record holds no ID maps")
	}
	m := a.Maps[0]
	if m.HostUIDMap == nil || m.HostGIDMap == nil {
		return nil, nil, fmt.Errorf("the maps of %s are %s", userName(a, 0), strings.TrimPrefix(m.Error, "not readable"))
	}
	if len(m.HostUIDMap) == 0 || len(m.HostGIDMap) == 0 {
		// Nothing mapped yet, and what is not written can still be, once:
		// the process holds its creator's IDs until then.
		return nil, nil, fmt.Errorf("the maps of %s are not written yet (an empty uid_map or gid_map can still be written, once)", userName(a, 0))
	}
	return toMap(m.HostUIDMap), toMap(m.HostGIDMap), nil
}

func toMap(r []audit.IDRange) idmap.Map {
	m := make(idmap.Map, len(r))
	for i, x := range r {
		m[i] = idmap.Range(x)
	}
	return m
}

// evaluateMaps adds the violations of the map rules.
func (r *Rules) evaluateMaps(a *audit.Ancestry, run *Running, add func(rule, format string, args ...any)) {
	if !r.needsMaps() {
		return
	}
	uids, gids, err := HostMaps(a)
	if err != nil {
		for _, rule := range r.mapRules() {
			add(rule, Unchecked+": %v", err)
		}
		return
	}
	if r.HostRootUnmapped {
		if uids.MapsOutside(0) {
			add(RuleHostRootUnmapped, "host UID 0 is mapped into %s", userName(a, 0))
		}
		if gids.MapsOutside(0) {
			add(RuleHostRootUnmapped, "host GID 0 is mapped into %s", userName(a, 0))
		}
		if a.UserDepth() > 0 && a.FactsErr != "" && !a.FactsGone {
			add(RuleHostRootUnmapped, Unchecked+": the IDs its process holds or its mounts could not be read: %s", a.FactsErr)
		}
		// An idmapped mount writes files under the IDs its own map
		// gives, whatever the container's maps say: crun's and
		// podman's "idmap" bind mount of a host directory lets the
		// container's root write files owned by host UID 0 there (a
		// setuid-root one too).
		if a.UserDepth() > 0 && len(a.IDMapped) > 0 {
			heldU, heldG := HeldSpans(a, uids, gids)
			// What is found first, then what is not checked: the line
			// that counts the rest past eight says "cannot be checked"
			// only of mounts none of which was found broken.
			var why, unchecked []string
			for _, m := range a.IDMapped {
				for _, w := range idmappedRoot(m, heldU, heldG) {
					if strings.HasPrefix(w, Unchecked) {
						unchecked = append(unchecked, w)
					} else {
						why = append(why, w)
					}
				}
			}
			why = append(why, unchecked...)
			for i, w := range why {
				if i == 8 {
					more := "and %d more of its idmapped mounts"
					if strings.HasPrefix(w, Unchecked) {
						more = Unchecked + ": " + more
					}
					add(RuleHostRootUnmapped, more, len(why)-i)
					break
				}
				add(RuleHostRootUnmapped, "%s", w)
			}
		}
		// The IDs the process holds, whatever the maps say: a runtime
		// may leave it its caller's supplementary groups (crun's
		// run.oci.keep_original_groups annotation, a joined namespace
		// whose setgroups is "deny"), host GID 0 among them, with which
		// it reads and writes what the host's group 0 may.
		if h := a.Held; h != nil && a.UserDepth() > 0 {
			if h.HasUID(0) && !uids.MapsOutside(0) {
				add(RuleHostRootUnmapped, "the container's process holds host UID 0 (uid %d %d %d %d), which %s does not map", h.UIDs[0], h.UIDs[1], h.UIDs[2], h.UIDs[3], userName(a, 0))
			}
			if h.HasGID(0) && !gids.MapsOutside(0) {
				add(RuleHostRootUnmapped, "the container's process holds host GID 0 (gid %d %d %d %d, groups %s), which %s does not map: its runtime kept its caller's groups", h.GIDs[0], h.GIDs[1], h.GIDs[2], h.GIDs[3], groupList(h.Groups), userName(a, 0))
			}
		}
	}
	if r.HeldIDsMapped && a.UserDepth() > 0 {
		r.evaluateHeld(a, uids, gids, add)
	}
	for _, k := range []struct {
		what string
		m    idmap.Map
	}{{"UIDs", uids}, {"GIDs", gids}} {
		n := k.m.Count()
		if r.MappedIDsMin != nil && n < *r.MappedIDsMin {
			add(RuleMappedIDsMin, "%s maps %d %s, fewer than %d", userName(a, 0), n, k.what, *r.MappedIDsMin)
		}
		if r.MappedIDsMax != nil && n > *r.MappedIDsMax {
			add(RuleMappedIDsMax, "%s maps %d %s, more than %d", userName(a, 0), n, k.what, *r.MappedIDsMax)
		}
	}
	if len(r.AllowedHostRanges) > 0 || r.AllowedSubIDUser != "" {
		var users []string
		var perr error // passwd unreadable: the form configured only, and outside ranges say so
		if r.AllowedSubIDUser != "" {
			var passwd []byte
			passwd, perr = readHostFile(PasswdFile, idmap.MaxPasswdFile)
			users = idmap.SubIDUsers(passwd, r.AllowedSubIDUser)
		}
		for i, k := range []struct {
			what string
			m    idmap.Map
		}{{"UIDs", uids}, {"GIDs", gids}} {
			allowed := r.AllowedHostRanges
			if r.AllowedSubIDUser != "" {
				sub, err := readSubID(SubIDFiles[i], users)
				if err != nil {
					add(RuleAllowedRanges, Unchecked+": %v%s", err, passwdNote(perr, r.AllowedSubIDUser))
					continue
				}
				allowed = append(append(idmap.Spans{}, allowed...), sub...)
			}
			if out := idmap.Outside(k.m.Host(), allowed); out != nil {
				add(RuleAllowedRanges, "host %s %s of %s lie outside the allowed ranges %s%s", k.what, out, userName(a, 0), allowed.Normal(), passwdNote(perr, r.AllowedSubIDUser))
			}
		}
	}
	if r.DisjointFromRunning {
		r.evaluateDisjoint(a, uids, gids, run, add)
	}
}

// mapRules lists the enabled map rules, for "cannot be checked".
func (r *Rules) mapRules() []string {
	var out []string
	for _, x := range []struct {
		on   bool
		rule string
	}{
		{r.HostRootUnmapped, RuleHostRootUnmapped},
		{r.HeldIDsMapped, RuleHeldIDsMapped},
		{r.MappedIDsMin != nil, RuleMappedIDsMin},
		{r.MappedIDsMax != nil, RuleMappedIDsMax},
		{len(r.AllowedHostRanges) > 0 || r.AllowedSubIDUser != "", RuleAllowedRanges},
		{r.DisjointFromRunning, RuleDisjoint},
	} {
		if x.on {
			out = append(out, x.rule)
		}
	}
	return out
}

// MaxDisjointListed bounds the disjoint_from_running violations a record
// lists one by one.
const MaxDisjointListed = 64

func (r *Rules) evaluateDisjoint(a *audit.Ancestry, uids, gids idmap.Map, run *Running, add func(rule, format string, args ...any)) {
	// A container in the initial user namespace breaks the rule whatever
	// runs: it needs no scan (hook.Decide makes none).
	switch {
	case a.UserDepth() == 0:
		if initialTop(a) {
			add(RuleDisjoint, "the container runs in the initial user namespace %s: it shares every host ID with the host's processes (no scan needed to tell)", userName(a, 0))
		} else {
			add(RuleDisjoint, "the container runs in %s: it shares every ID of it with the processes there (no scan needed to tell)", topUserNS(a))
		}
		return
	case run == nil:
		add(RuleDisjoint, Unchecked+": the running processes were not scanned")
		return
	case run.Err != nil:
		// What was found before counts too: each overlap found is a
		// violation of its own, beside this one for what was not
		// checked.
		add(RuleDisjoint, Unchecked+": %v", run.Err)
	}
	if a.Held == nil && a.FactsErr != "" && !a.FactsGone {
		// Its maps alone are compared: the IDs it holds beside them
		// could not be read.
		add(RuleDisjoint, Unchecked+": the IDs its process holds could not be read: %s", a.FactsErr)
	}
	// At most MaxDisjointListed violations, then one that counts the
	// rest: whoever may create user namespaces that map the same host
	// IDs could otherwise grow the record past what a line may hold.
	listed, more := 0, 0
	outer := add
	add = func(rule, format string, args ...any) {
		if listed >= MaxDisjointListed {
			more++
			return
		}
		listed++
		outer(rule, format, args...)
	}
	defer func() {
		if more > 0 {
			outer(RuleDisjoint, "and %d more such finding(s), not listed", more)
		}
	}()
	hu, hg := HeldSpans(a, uids, gids)
	// Processes sharing the container's own namespace and namespaces that
	// cannot be checked first, overlaps after: decoys with lower PIDs
	// must not push those past the listed ones.
	others := slices.Clone(run.Others)
	slices.SortStableFunc(others, func(x, y Other) int {
		rank := func(o Other) int {
			if o.Shared || o.Err != "" {
				return 0
			}
			return 1
		}
		return rank(x) - rank(y)
	})
	for _, o := range others {
		other := fmt.Sprintf("%s of pid %d (%s)", nsrel.Name{Type: nsrel.TypeUser, Ino: o.Ino}, o.PID, o.Name)
		if o.Shared && o.Below {
			if o.Err != "" {
				add(RuleDisjoint, Unchecked+" against pid %d (%s) in %s, below %s: %s", o.PID, o.Name, nsrel.Name{Type: nsrel.TypeUser, Ino: o.Ino}, userName(a, 0), o.Err)
			} else {
				add(RuleDisjoint, "%s, below %s, is the user namespace of pid %d (%s), outside the container: it holds IDs of the container's", nsrel.Name{Type: nsrel.TypeUser, Ino: o.Ino}, userName(a, 0), o.PID, o.Name)
			}
			continue
		}
		if o.Shared {
			if o.Err != "" {
				add(RuleDisjoint, Unchecked+" against pid %d (%s) in %s: %s", o.PID, o.Name, userName(a, 0), o.Err)
			} else {
				add(RuleDisjoint, "%s is also the user namespace of pid %d (%s), outside the container: it shares all its IDs", userName(a, 0), o.PID, o.Name)
			}
			continue
		}
		if o.Held {
			own := nsrel.Name{Type: nsrel.TypeUser, Ino: o.Ino}
			if o.Err != "" {
				add(RuleDisjoint, Unchecked+" against the processes of %s, the user namespace the hook runs in: %s", own, o.Err)
				continue
			}
			if ov := idmap.Overlap(hu, o.UIDs); ov != nil {
				add(RuleDisjoint, "host UIDs %s of %s are also held by pid %d (%s), in %s, the user namespace the hook runs in", ov, userName(a, 0), o.PID, o.Name, own)
			}
			if ov := idmap.Overlap(hg, o.GIDs); ov != nil {
				add(RuleDisjoint, "host GIDs %s of %s are also held by pid %d (%s), in %s, the user namespace the hook runs in", ov, userName(a, 0), o.PID, o.Name, own)
			}
			continue
		}
		if o.Err != "" {
			add(RuleDisjoint, Unchecked+" against %s: %s", other, o.Err)
			continue
		}
		if ov := idmap.Overlap(hu, o.UIDs); ov != nil {
			add(RuleDisjoint, "host UIDs %s of %s are also mapped by %s", ov, userName(a, 0), other)
		}
		if ov := idmap.Overlap(hg, o.GIDs); ov != nil {
			add(RuleDisjoint, "host GIDs %s of %s are also mapped by %s", ov, userName(a, 0), other)
		}
	}
}

// passwdNote says, for a violation of allowed_host_ranges, that the
// passwd file could not be read (err), so that only the lines naming
// user in the form configured counted; "" when it was read.
func passwdNote(err error, user string) string {
	if err == nil {
		return ""
	}
	other := "UID"
	if _, nerr := strconv.ParseUint(user, 10, 32); nerr == nil {
		other = "name"
	}
	return fmt.Sprintf(" (%v: only the subordinate ID lines naming %q as configured counted, not those naming it by %s)", err, user, other)
}

func readSubID(path string, users []string) (idmap.Spans, error) {
	b, err := readHostFile(path, idmap.MaxSubIDFile)
	if err != nil {
		return nil, err
	}
	s, err := idmap.ParseSubID(b, users...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func spanList(s idmap.Spans) string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = "[" + strconv.FormatUint(x.First, 10) + ", " + strconv.FormatUint(x.Count, 10) + "]"
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// SubIDWarnings says, for each block whose allowed_subid_user has no
// subordinate UIDs or GIDs on this host (no entry in /etc/subuid or
// /etc/subgid, or a file that cannot be read), that every container the
// block selects is refused: the rule fails closed, and a config with a
// misspelt user loaded and refused containers until someone read the
// records. For `nsrel-hook policy check`; the stages read the files at
// each decision.
func (c *Config) SubIDWarnings() []string {
	var out []string
	var passwd []byte
	var perr error
	read := false
	for _, b := range append(slices.Clone(c.Policies), c.Default) {
		u := b.Rules.AllowedSubIDUser
		if u == "" {
			continue
		}
		if !read { // once, for every block that needs it
			passwd, perr = readHostFile(PasswdFile, idmap.MaxPasswdFile)
			read = true
		}
		users := idmap.SubIDUsers(passwd, u)
		for _, f := range SubIDFiles {
			if _, err := readSubID(f, users); err != nil {
				out = append(out, fmt.Sprintf("policy %s: allowed_subid_user %s: %s%s: every container the block selects breaks %s (cannot be checked)",
					vocab.GoQuote(b.Name), vocab.Quote(u), vocab.OneLine(err), passwdNote(perr, u), RuleAllowedRanges))
			}
		}
	}
	return out
}

// groupList prints supplementary groups as status does ("0 42"), at most
// 32 of them, "none" when empty.
func groupList(g []uint32) string {
	if len(g) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, id := range g[:min(len(g), 32)] {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatUint(uint64(id), 10))
	}
	if len(g) > 32 {
		fmt.Fprintf(&b, " and %d more", len(g)-32)
	}
	return b.String()
}
