// Package idmap reads and reasons about the ID maps of Linux user
// namespaces: the /proc/PID/uid_map, gid_map and setgroups files
// (user_namespaces(7)) and the subordinate ID files /etc/subuid and
// /etc/subgid (subuid(5)).
//
// A [Map] is the lines of a uid_map or gid_map file, each a [Range]: Count
// IDs starting at Inside in the namespace are the IDs starting at Outside
// in another one. Which other one depends on who reads the file: the
// kernel gives outside IDs relative to the reader's user namespace, or to
// the parent namespace when the reader is in the namespace itself. Read
// by a process in the initial user namespace, a map is therefore already
// composed down to host IDs; [Compose] and [Invert] turn maps relative to
// one namespace into maps relative to another ([Relative] gives the lines
// the namespace's creator wrote, relative to its parent, from two maps
// read on the host).
//
// [Spans] are sets of IDs on one side of maps (sorted, merged): [Map.Host]
// gives the outside IDs a map uses, [Overlap] the IDs two sets share,
// [Outside] the IDs of one set that another does not hold, and
// [ParseSubID] the ranges /etc/subuid grants a user.
//
// The package reads files with plain system calls (no runtime poller), so
// that a short-lived hook process stays cheap; parsers are fuzzed.
package idmap

import _ "github.com/nsrel/nsrel/internal/linuxonly" // stops a build for another GOOS with one message
