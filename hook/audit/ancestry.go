package audit

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
	// ticks since boot. With PID it names a process uniquely.
	StartTime uint64 `json:"start_time"`
	// User is the user namespace chain: User[0] is the process's own,
	// each next entry the parent, the last the top the inspector can see
	// (the initial user namespace when it runs there).
	User []UserNS `json:"user_chain"`
	// PIDNS is the PID namespace chain, innermost first.
	PIDNS []PIDNS `json:"pid_chain"`
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
