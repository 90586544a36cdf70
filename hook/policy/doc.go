// Package policy reads nsrel-hook's configuration file and evaluates its
// namespace policy.
//
// The file is JSON, parsed strictly: unknown keys, duplicate keys, wrong
// types and out-of-range values are errors that name the file, line,
// column and key path (for example
// "hook.json:14:9: policies[0].rules.user_depth_max: must be between 0 and 33").
// See docs/hook.md for the format.
//
// A policy is a list of blocks selected by container ID and annotation
// regular expressions (first match wins) plus a default block. A block
// may select only by what the config trusts ([TrustedSelectors]): a
// container's creator sets its own annotations and, under runc, its ID,
// so only annotation keys the runtime itself sets (containerd's CRI
// plugin sets io.kubernetes.cri.sandbox-namespace from the pod) can
// safely pick a laxer block; [Parse] refuses the rest. Each block
// has a mode (enforce or audit) and rules on the container process's
// user and PID namespace ancestry ([audit.Ancestry], as package inspect
// reads it); violations are [audit.Violation]s, the form the audit log
// records. [Config.Select] and [Block.Evaluate] are pure functions.
//
// The map rules (host_root_unmapped, held_ids_mapped, mapped_ids_min/max,
// allowed_host_ranges with allowed_subid_user, disjoint_from_running)
// check the container's ID maps as the ancestry records them
// ([audit.UserMaps], composed to host IDs, see package
// [github.com/nsrel/nsrel/nsrel/idmap]). disjoint_from_running compares
// them with the other user namespaces running now, which the caller
// scans and passes in ([Running], [Rules.EvaluateRunning]); without a
// scan, or with one that failed, the rule is violated, never passed.
package policy
