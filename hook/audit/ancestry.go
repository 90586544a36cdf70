package audit

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"

	"github.com/nsrel/nsrel/nsrel/idmap"
)

// The types below are part of the record format ([Record] embeds
// [*Ancestry] and lists [Violation]s): package inspect fills an Ancestry
// from a live process and package policy returns Violations, but the
// shape of both on disk is defined here, once.

// UserNS is one level of a user namespace chain.
type UserNS struct {
	// Ino and Dev identify the namespace's nsfs file.
	Ino uint64 `json:"ino"`
	Dev uint64 `json:"dev"`
	// ID is the kernel's never-reused namespace ID (NS_GET_ID), nil on
	// kernels without it (before 6.18).
	ID *uint64 `json:"id"`
	// OwnerUID is the UID (in the inspector's user namespace) of the
	// process that created the namespace.
	OwnerUID uint32 `json:"owner_uid"`
}

// PIDNS is one level of a PID namespace chain.
type PIDNS struct {
	Ino uint64  `json:"ino"`
	Dev uint64  `json:"dev"`
	ID  *uint64 `json:"id"`
	// OwnerUserIno is the inode of the user namespace that owns this PID
	// namespace, or nil when the owner lies outside the inspector's reach.
	OwnerUserIno *uint64 `json:"owner_user_ino"`
}

// Ancestry is the user and PID namespace ancestry of one process.
type Ancestry struct {
	// PID is the process, as the inspector sees it.
	PID int `json:"pid"`
	// StartTime is field 22 of /proc/PID/stat: the start time in clock
	// ticks since boot. With PID it names a process uniquely within one
	// boot (after a reboot, another process can have both).
	StartTime uint64 `json:"start_time"`
	// User is the user namespace chain: User[0] is the process's own,
	// each next entry the parent, the last the top the inspector can see
	// (the initial user namespace when it runs there).
	User []UserNS `json:"user_chain"`
	// PIDNS is the PID namespace chain, innermost first.
	PIDNS []PIDNS `json:"pid_chain"`
	// Maps are the ID maps of the user namespace chain, one entry per
	// level of User in the same order; nil in records written before
	// they were recorded. Format 1.2.
	Maps []UserMaps `json:"user_maps,omitempty"`
	// Creds are the process's credentials when it was inspected, nil in
	// records written before they were recorded or by an inspector on a
	// kernel without PIDFD_GET_INFO (Linux 6.13). Format 1.2.
	Creds *Creds `json:"creds,omitempty"`
	// Held are the host IDs the process holds (/proc/PID/status), and
	// IDMapped the idmapped mounts in its mount namespace, through which
	// a file it writes may be owned by an ID its user namespace does not
	// map (host root's): read for the policy when a rule needs them
	// (inspect.ReadFacts, FactsRead then set), FactsErr saying why one
	// could not be (the record's violations or error say it), FactsGone
	// that the process had exited by then (or its PID was another's).
	// Recorded as read (nil: not read, or none): format 1.5.
	Held      *HeldIDs        `json:"held,omitempty"`
	IDMapped  []IDMappedMount `json:"idmapped_mounts,omitempty"`
	FactsRead bool            `json:"-"`
	// MountsRead says IDMapped was read (for host_root_unmapped).
	MountsRead bool   `json:"-"`
	FactsGone  bool   `json:"-"`
	FactsErr   string `json:"-"`
}

// HeldIDs are the IDs a process holds, in the inspector's user
// namespace: its real, effective, saved and filesystem UIDs and GIDs
// and its supplementary groups. A process keeps them across
// unshare(CLONE_NEWUSER) whatever its namespace maps: a runtime that
// keeps its caller's groups (crun's run.oci.keep_original_groups, a
// joined namespace whose setgroups is "deny") leaves the container host
// GIDs its maps do not show.
type HeldIDs struct {
	UIDs   [4]uint32 `json:"uids"`
	GIDs   [4]uint32 `json:"gids"`
	Groups []uint32  `json:"groups"`
}

// HasUID reports whether the process holds host UID id.
func (h *HeldIDs) HasUID(id uint32) bool {
	return h != nil && (h.UIDs[0] == id || h.UIDs[1] == id || h.UIDs[2] == id || h.UIDs[3] == id)
}

// HasGID reports whether the process holds host GID id, as one of its
// GIDs or a supplementary group.
func (h *HeldIDs) HasGID(id uint32) bool {
	return h != nil && (h.GIDs[0] == id || h.GIDs[1] == id || h.GIDs[2] == id || h.GIDs[3] == id || slices.Contains(h.Groups, id))
}

// Spans returns the UIDs and the GIDs (its GIDs and supplementary
// groups) the process holds, as sorted merged spans.
func (h *HeldIDs) Spans() (uids, gids idmap.Spans) {
	for _, id := range h.UIDs {
		uids = append(uids, idmap.Span{First: uint64(id), Count: 1})
	}
	for _, id := range append(h.GIDs[:], h.Groups...) {
		gids = append(gids, idmap.Span{First: uint64(id), Count: 1})
	}
	return uids.Normal(), gids.Normal()
}

// Creds are a process's credentials as the kernel reports them for its
// pidfd (PIDFD_GET_INFO), in the inspector's user namespace: real,
// effective, saved and filesystem UIDs and GIDs, and the ID of its
// cgroup (v2).
type Creds struct {
	UID   uint32 `json:"uid"`
	EUID  uint32 `json:"euid"`
	SUID  uint32 `json:"suid"`
	FSUID uint32 `json:"fsuid"`
	GID   uint32 `json:"gid"`
	EGID  uint32 `json:"egid"`
	SGID  uint32 `json:"sgid"`
	FSGID uint32 `json:"fsgid"`
	// CgroupID is nil when the kernel did not report it.
	CgroupID *uint64 `json:"cgroup_id"`
}

// UserMaps are the ID maps of one level of a user namespace chain
// (user_namespaces(7)). Maps that could not be read are nil, with the
// reason in Error.
type UserMaps struct {
	// Ino is the inode of the level's namespace (User[i].Ino).
	Ino uint64 `json:"ino"`
	// UIDMap and GIDMap are the lines of the namespace's uid_map and
	// gid_map relative to its parent namespace: the lines its creator
	// wrote, what a process in the parent reads in /proc/PID/uid_map.
	UIDMap []IDRange `json:"uid_map"`
	GIDMap []IDRange `json:"gid_map"`
	// HostUIDMap and HostGIDMap are the same maps composed through the
	// chain down to the top of the chain (the inspector's user namespace,
	// the host's when it runs there): the outside IDs are host IDs. For
	// a namespace whose parent is the top they equal UIDMap and GIDMap.
	HostUIDMap []IDRange `json:"host_uid_map"`
	HostGIDMap []IDRange `json:"host_gid_map"`
	// SetGroups is "allow" or "deny" (the namespace's setgroups file).
	SetGroups string `json:"setgroups"`
	// Error says why maps are missing, e.g. "no process in this
	// namespace".
	Error string `json:"error,omitempty"`
}

// IDMappedMount is an idmapped mount of a process's mount namespace.
type IDMappedMount struct {
	// Point is its mount point, escaped as mountinfo escapes it.
	Point string `json:"point"`
	// UIDMap and GIDMap are its ID maps as statmount(2) tells them
	// (Linux 6.15): an ID on its file system (Inside) is the host ID
	// Outside through it. Nil when not read, Err saying why.
	UIDMap []IDRange `json:"uid_map"`
	GIDMap []IDRange `json:"gid_map"`
	Err    string    `json:"error,omitempty"`
}

// IDRange is one line of an ID map: Count IDs from Inside in the
// namespace are the IDs from Outside in the other one. It is encoded as
// the JSON array [inside, outside, count].
type IDRange struct {
	Inside, Outside, Count uint32
}

// MarshalJSON encodes r as [inside, outside, count].
func (r IDRange) MarshalJSON() ([]byte, error) {
	return appendIDRange(nil, r), nil
}

// UnmarshalJSON decodes [inside, outside, count].
func (r *IDRange) UnmarshalJSON(b []byte) error {
	var v []uint32
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if len(v) != 3 {
		return errors.New("an ID range is [inside, outside, count]")
	}
	r.Inside, r.Outside, r.Count = v[0], v[1], v[2]
	return nil
}

func appendIDRange(dst []byte, r IDRange) []byte {
	dst = strconv.AppendUint(append(dst, '['), uint64(r.Inside), 10)
	dst = strconv.AppendUint(append(dst, ','), uint64(r.Outside), 10)
	dst = strconv.AppendUint(append(dst, ','), uint64(r.Count), 10)
	return append(dst, ']')
}

// UserDepth returns the number of user namespaces below the top of the
// chain: 0 for a process in the initial user namespace.
func (a *Ancestry) UserDepth() int { return max(len(a.User)-1, 0) }

// PIDDepth returns the number of PID namespaces below the top.
func (a *Ancestry) PIDDepth() int { return max(len(a.PIDNS)-1, 0) }

// Violation is a policy rule a container broke, with the reason in words.
type Violation struct {
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
}

// ids lists the UID and GID fields of c with their keys, in the order
// they are written.
func (c *Creds) ids() []struct {
	key string
	val *uint32
} {
	return []struct {
		key string
		val *uint32
	}{
		{"uid", &c.UID}, {"euid", &c.EUID}, {"suid", &c.SUID}, {"fsuid", &c.FSUID},
		{"gid", &c.GID}, {"egid", &c.EGID}, {"sgid", &c.SGID}, {"fsgid", &c.FSGID},
	}
}
