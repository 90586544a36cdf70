package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
)

// Select returns the first block whose match selects the container with
// this ID and these annotations, or the default block.
func (c *Config) Select(id string, annotations map[string]string) *Block {
	for i := range c.Policies {
		if c.Policies[i].Match.Matches(id, annotations) {
			return &c.Policies[i]
		}
	}
	return &c.Default
}

// Unsure returns the blocks that may select the container in place of
// the one [Config.Select] picks when the values of the annotation keys
// unknown are not known (taken as absent there, so that a block
// selecting on one never matches): in order, every block before that
// one that selects on one of them and whose other selectors match the
// container. The first block that matches is the container's, so one of
// these is when its unknown keys match: a writer that cannot tell must
// weigh each of them (see hook.Input.Unknown).
func (c *Config) Unsure(id string, annotations map[string]string, unknown []string) []*Block {
	var out []*Block
	for i := range c.Policies {
		m := c.Policies[i].Match
		if m.Matches(id, annotations) {
			break
		}
		if m.matchesUnless(id, annotations, unknown) {
			out = append(out, &c.Policies[i])
		}
	}
	return out
}

// matchesUnless reports whether m selects on one of the keys unknown
// and all its other selectors select the container.
func (m *Match) matchesUnless(id string, annotations map[string]string, unknown []string) bool {
	if m == nil || m.ID != nil && !m.ID.MatchString(id) {
		return false
	}
	uses := false
	for _, am := range m.Annotations {
		if slices.Contains(unknown, am.Key) {
			uses = true
			continue
		}
		if v, ok := annotations[am.Key]; !ok || !am.Value.MatchString(v) {
			return false
		}
	}
	return uses
}

// Matches reports whether m selects the container. A nil Match selects
// every container.
func (m *Match) Matches(id string, annotations map[string]string) bool {
	if m == nil {
		return true
	}
	if m.ID != nil && !m.ID.MatchString(id) {
		return false
	}
	for _, am := range m.Annotations {
		if v, ok := annotations[am.Key]; !ok || !am.Value.MatchString(v) {
			return false
		}
	}
	return true
}

// Evaluate checks a's ancestry against the block's rules and returns the
// violations, in the order of the rules, or nil.
func (b *Block) Evaluate(a *audit.Ancestry) []audit.Violation {
	return b.Rules.Evaluate(a)
}

// Evaluate checks a against r, without a scan of the running processes:
// disjoint_from_running, if set, is violated as not checked.
func (r *Rules) Evaluate(a *audit.Ancestry) []audit.Violation {
	return r.EvaluateRunning(a, nil)
}

// EvaluateRunning checks a against r, with run the other user
// namespaces running now for disjoint_from_running (see
// [Rules.NeedsRunning]).
func (r *Rules) EvaluateRunning(a *audit.Ancestry, run *Running) []audit.Violation {
	var v []audit.Violation
	add := func(rule, format string, args ...any) {
		v = append(v, audit.Violation{Rule: rule, Reason: fmt.Sprintf(format, args...)})
	}
	depth := a.UserDepth()
	if r.RequireUserNS && depth == 0 {
		add(RuleRequireUserNS, "the container runs in %s", topUserNS(a))
	}
	if r.RequirePIDNS && a.PIDDepth() == 0 {
		add(RuleRequirePIDNS, "the container runs in the initial PID namespace %s", pidName(a, 0))
	}
	if r.UserDepthMin != nil && depth < *r.UserDepthMin {
		add(RuleUserDepthMin, "user namespace depth %d is below the minimum %d", depth, *r.UserDepthMin)
	}
	if r.UserDepthMax != nil && depth > *r.UserDepthMax {
		add(RuleUserDepthMax, "user namespace depth %d is above the maximum %d", depth, *r.UserDepthMax)
	}
	if r.AllowedOwnerUIDs != nil && len(a.User) > 0 && !slices.Contains(r.AllowedOwnerUIDs, a.User[0].OwnerUID) {
		add(RuleAllowedOwnerUIDs, "user namespace %s is owned by UID %d, not one of %s", userName(a, 0), a.User[0].OwnerUID, uidList(r.AllowedOwnerUIDs))
	}
	if r.PIDOwnedByUserNS && len(a.PIDNS) > 0 && len(a.User) > 0 {
		owner := a.PIDNS[0].OwnerUserIno
		switch {
		case owner == nil:
			add(RulePIDOwnedByUserNS, "the owner of PID namespace %s cannot be seen", pidName(a, 0))
		case *owner != a.User[0].Ino:
			add(RulePIDOwnedByUserNS, "PID namespace %s is owned by %s, not by the container's %s", pidName(a, 0),
				nsrel.Name{Type: nsrel.TypeUser, Ino: *owner}, userName(a, 0))
		}
	}
	r.evaluateMaps(a, run, add)
	return v
}

// Unchecked starts the reason of a violation of a rule that could not be
// checked (maps that cannot be read, a scan of the running processes
// that failed or ran out of time): such a rule is violated, never
// passed, though nothing was found wrong.
const Unchecked = "cannot be checked"

// NeedsRunning reports whether r has disjoint_from_running, whose check
// needs a scan of the running processes.
func (r *Rules) NeedsRunning() bool { return r.DisjointFromRunning }

// topUserNS names the top of a's user namespace chain for a container
// that runs in it (depth 0): the initial user namespace, or, for a hook
// run by a rootless runtime, the namespace the hook runs in.
func topUserNS(a *audit.Ancestry) string {
	if initialTop(a) {
		return "the initial user namespace " + userName(a, 0)
	}
	return "the user namespace the hook runs in, " + userName(a, 0) + " (not the initial one: a rootless runtime's)"
}

// initialTop reports whether the top of a's user namespace chain is the
// initial user namespace (not a rootless runtime's, where the hook runs).
func initialTop(a *audit.Ancestry) bool {
	return len(a.User) == 0 || a.User[len(a.User)-1].Ino == nsrel.InitialUserNSIno
}

func userName(a *audit.Ancestry, i int) string {
	if i >= len(a.User) {
		return "user:[?]"
	}
	return nsrel.Name{Type: nsrel.TypeUser, Ino: a.User[i].Ino}.String()
}

func pidName(a *audit.Ancestry, i int) string {
	if i >= len(a.PIDNS) {
		return "pid:[?]"
	}
	return nsrel.Name{Type: nsrel.TypePID, Ino: a.PIDNS[i].Ino}.String()
}

func uidList(uids []uint32) string {
	s := make([]string, len(uids))
	for i, u := range uids {
		s[i] = strconv.FormatUint(uint64(u), 10)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// Compare returns the differences between the ancestry recorded at one
// stage and the one read at a later stage, in words, or nil when they
// agree. The process start time and every level's inode, device and
// namespace ID must be equal; a changed owner UID or owning user
// namespace counts too.
func Compare(before, after *audit.Ancestry) []string {
	var d []string
	if before.PID != after.PID {
		d = append(d, fmt.Sprintf("pid %d became %d", before.PID, after.PID))
	}
	if before.StartTime != after.StartTime {
		d = append(d, fmt.Sprintf("process start time %d became %d (a different process)", before.StartTime, after.StartTime))
	}
	if len(before.User) != len(after.User) {
		d = append(d, fmt.Sprintf("user namespace depth %d became %d", before.UserDepth(), after.UserDepth()))
	} else {
		for i := range before.User {
			b, a := before.User[i], after.User[i]
			if b.Ino != a.Ino || b.Dev != a.Dev || !eqID(b.ID, a.ID) || b.OwnerUID != a.OwnerUID {
				d = append(d, fmt.Sprintf("user chain level %d: %s became %s", i, userName(before, i), userName(after, i)))
			}
		}
	}
	if len(before.PIDNS) != len(after.PIDNS) {
		d = append(d, fmt.Sprintf("PID namespace depth %d became %d", before.PIDDepth(), after.PIDDepth()))
	} else {
		for i := range before.PIDNS {
			b, a := before.PIDNS[i], after.PIDNS[i]
			if b.Ino != a.Ino || b.Dev != a.Dev || !eqID(b.ID, a.ID) || !eqID(b.OwnerUserIno, a.OwnerUserIno) {
				d = append(d, fmt.Sprintf("PID chain level %d: %s became %s", i, pidName(before, i), pidName(after, i)))
			}
		}
	}
	return d
}

func eqID(a, b *uint64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// Describe returns a short description of what the block selects and
// checks, for `nsrel-hook policy check`; the config's keys and patterns
// in it are escaped ([vocab.Printable]).
func (b *Block) Describe() []string {
	var out []string
	sel := "every container not selected above"
	if b.Match != nil {
		var parts []string
		if b.Match.ID != nil {
			parts = append(parts, "id ~ "+vocab.Printable(trimAnchor(b.Match.ID.String())))
		}
		for _, am := range b.Match.Annotations {
			parts = append(parts, "annotation "+vocab.Printable(am.Key)+" = "+vocab.Printable(trimAnchor(am.Value.String())))
		}
		sel = "containers with " + strings.Join(parts, " and ")
	}
	out = append(out, "matches: "+sel)
	out = append(out, "mode:    "+b.Mode)
	r := b.Rules
	var rules []string
	if r.RequireUserNS {
		rules = append(rules, RuleRequireUserNS)
	}
	if r.RequirePIDNS {
		rules = append(rules, RuleRequirePIDNS)
	}
	if r.UserDepthMin != nil {
		rules = append(rules, fmt.Sprintf("%s=%d", RuleUserDepthMin, *r.UserDepthMin))
	}
	if r.UserDepthMax != nil {
		rules = append(rules, fmt.Sprintf("%s=%d", RuleUserDepthMax, *r.UserDepthMax))
	}
	if r.AllowedOwnerUIDs != nil {
		rules = append(rules, RuleAllowedOwnerUIDs+"="+uidList(r.AllowedOwnerUIDs))
	}
	if r.PIDOwnedByUserNS {
		rules = append(rules, RulePIDOwnedByUserNS)
	}
	if r.HostRootUnmapped {
		rules = append(rules, RuleHostRootUnmapped)
	}
	if r.HeldIDsMapped {
		rules = append(rules, RuleHeldIDsMapped)
	}
	if r.MappedIDsMin != nil {
		rules = append(rules, fmt.Sprintf("%s=%d", RuleMappedIDsMin, *r.MappedIDsMin))
	}
	if r.MappedIDsMax != nil {
		rules = append(rules, fmt.Sprintf("%s=%d", RuleMappedIDsMax, *r.MappedIDsMax))
	}
	if len(r.AllowedHostRanges) > 0 {
		rules = append(rules, RuleAllowedRanges+"="+spanList(r.AllowedHostRanges))
	}
	if r.AllowedSubIDUser != "" {
		rules = append(rules, RuleAllowedSubIDUser+"="+vocab.GoQuote(r.AllowedSubIDUser))
	}
	if r.DisjointFromRunning {
		rules = append(rules, RuleDisjoint)
	}
	if len(rules) == 0 {
		rules = []string{"(none: record only)"}
	}
	out = append(out, "rules:   "+strings.Join(rules, ", "))
	return out
}

// Describe says which selectors t trusts, for `nsrel-hook policy check`.
func (t *TrustedSelectors) Describe() string {
	var parts []string
	for _, k := range t.Annotations {
		parts = append(parts, "annotation "+vocab.Printable(k))
	}
	if t.ID {
		parts = append(parts, "container ID")
	}
	if len(parts) == 0 {
		return "none (no block can be selected by annotation or ID)"
	}
	return strings.Join(parts, ", ")
}

func trimAnchor(s string) string {
	return strings.TrimSuffix(strings.TrimPrefix(s, "^(?:"), ")$")
}
