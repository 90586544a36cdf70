// Package audit is nsrel's tamper-evident audit log: JSON Lines, one
// [Record] per container event, each carrying a sequence number, the hash
// of the record before it and its own SHA-256 hash over its canonical
// encoding, so that editing, deleting, reordering or truncating records is
// found by [Verify].
//
// # Writing
//
// [Log.Append] and [Log.AppendWith] take an exclusive flock(2) on a lock
// file next to the log (PATH.lock), so that hooks running in parallel
// never interleave (the log's directory is created 0700 if missing); they
// append the line with a single write on an
// O_APPEND descriptor and fdatasync(2) it before returning. The log is
// created 0600; a log path that is a symlink, a FIFO, a directory or any
// other non-regular file is refused (O_NOFOLLOW, O_NONBLOCK, fstat).
//
// A crash in the middle of a write (kill -9, power loss, a full disk)
// can leave a torn last line. The next append cuts it off and records it
// in a "torn-tail" record (the quarantined bytes, quoted, in the chain),
// so no earlier record is lost and nothing is glued onto a fragment.
// [Verify] reports an unrepaired torn line as a failure that names it.
//
// When the log reaches [Options.RotateBytes], it is renamed to
// PATH.NNNNNNNNNNNN (the sequence number of its first record) and a new
// file is started; the chain continues across files ([Files] lists them
// in order).
//
// # Format
//
// The package owns the record format: [Record] and the types it embeds
// ([Ancestry], [UserNS], [PIDNS], [Violation]), which package inspect
// fills and package policy returns, are defined here and nowhere else.
// [Record.Encode] writes exactly what encoding/json writes for a Record,
// without reflection; [Decode] reads that exact form the same way and
// hands anything else to encoding/json, so that a line is accepted, and
// an error worded, as encoding/json would (fuzz tests hold both paths
// together).
//
// # Reading
//
// Everything in nsrel that reads the log goes through this package:
// [Lines] and [Records] forwards, [LinesBackward] and [Searcher] from the
// end, [PeekHead] for a cheap look at a line's container and stage before
// [Decode], [Verify] for the chain.
//
// # Sources
//
// Every record names its writer in [Record.Source]: [SourceOCIHook] for
// nsrel-hook, [SourceContainerdEvents] for the containerd event recorder,
// [SourceNRI] for the NRI plugin. A writer that must not record a start
// another writer already recorded uses [Log.AppendStart] (or
// [Log.AppendWith] to check and append under one lock).
package audit

import _ "github.com/nsrel/nsrel/internal/linuxonly" // stops a build for another GOOS with one message
