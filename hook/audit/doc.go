// Package audit is nsrel's tamper-evident audit log: JSON Lines, one
// [Record] per container event, each carrying a sequence number, the hash
// of the record before it and its own SHA-256 hash over its bytes as
// written, so that editing, deleting, reordering or truncating records is
// found by [Verify]; sealed with a forward-secure key, so that root on the
// node later cannot rewrite what was written before; and pinned by
// checkpoints shipped off the node. docs/hook.md has the threat model.
//
// # Writing
//
// [Log.Append] and [Log.AppendWith] take an exclusive flock(2) on a lock
// file next to the log (PATH.lock), so that hooks running in parallel
// never interleave (the log's directory is created 0700 if missing); they
// append their lines with a single write on an O_APPEND descriptor and
// fdatasync(2) them before returning. The log is created 0600; a log,
// lock or state path that is a symlink, a FIFO, a directory or any other
// non-regular file is refused (O_NOFOLLOW, O_NONBLOCK, fstat), and so is
// one that someone other than root or the running user owns or may write,
// or that lies in such a directory (package safefile).
//
// A crash in the middle of a write (kill -9, power loss, a full disk)
// can leave a torn last line. The next append ends it with [TornMark]
// and a newline, rewriting no byte (a tailer that read the fragment reads
// on to the same lines), and records its bytes in a [StageTornTail]
// record right after it, so no earlier record is lost and nothing is
// glued onto a fragment. Complete lines at the end that do not decode are recorded as
// damage ([StageDamaged], with each line's SHA-256), the chain goes on
// from the last good record and [Verify] fails until a [StageAck] record
// acknowledges the damage: one damaged byte never stops the log.
//
// When the log reaches [Options.RotateBytes], it is renamed to
// PATH.NNNNNNNNNNNN (the sequence number of its first record) and a new
// file is started; the chain continues across files ([Files] lists them
// in order). [Options.KeepFiles] removes older rotated files, each
// removal recorded ([StageRetention]).
//
// # Sealing and checkpoints
//
// With [Options.SealState] set up by [Log.StartSealing], every record carries a
// seal: an HMAC of its hash under a key used once and then evolved one
// way; the node keeps only the next key, the verifier derives every key
// from the [VerifyKey] kept off the node. With [Options.Checkpoints], the
// head of the chain ([Checkpoint]) goes to a file and to syslog as it is
// written; [VerifyOptions] takes keys and checkpoints.
//
// # Format
//
// The package owns the record format: [Record] and the types it embeds
// ([Ancestry], [UserNS], [PIDNS], [Violation]), which package inspect
// fills and package policy returns, are defined here and nowhere else.
// Records carry their format version ([Format]); readers take members by
// name, accept older versions and newer minor ones (skipping what they do
// not know), and refuse a newer major version ([ErrNewerFormat]).
// [Record.Encode] writes exactly what encoding/json writes for a Record,
// without reflection; [Decode] reads that order in one pass and any other
// by name (fuzz tests hold the paths together and to encoding/json).
//
// # Reading
//
// Everything in nsrel that reads the log goes through this package:
// [Log.Snapshot] (readers hold the lock only to open the files), [Lines]
// and [Records] forwards, [LinesBackward] and [Searcher] from the end,
// [PeekHead] for a cheap look at a line's container and stage before
// [Decode], [VerifySnapshot] and [Verify] for the chain.
//
// # Sources
//
// Every record names its writer in [Record.Source]: [SourceOCIHook] for
// nsrel-hook, [SourceContainerdEvents] for the containerd event recorder,
// [SourceNRI] for the NRI plugin, [SourceAudit] for the log's own
// records, [SourceOperator] for acknowledgements. A writer that must not
// record a start another writer already recorded uses [Log.AppendStart]
// (or [Log.AppendWith] to check and append under one lock).
package audit

import _ "github.com/nsrel/nsrel/internal/linuxonly" // stops a build for another GOOS with one message
