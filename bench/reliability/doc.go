// Command reliability is nsrel's reliability campaign: it attacks and
// crashes the audit log (package hook/audit) the ways docs/RELIABILITY.md
// lists and prints, per class, how many cases it tried, how many were
// caught (or, for crash classes, survived: the log still appends and
// verifies), how many were not caught by design, how many were missed
// although they must be caught, how many records were lost, and the
// command that reproduces the class.
//
// The classes:
//
//   - bytes: every single-byte edit of a sealed sample log (each byte +1
//     mod 256, and the case of each letter flipped), verified with the
//     chain only, with the verification key, with the checkpoints the
//     log shipped (one per record), and as a collector's copy is (as
//     shipped, with the key and the checkpoints).
//   - lines: each line deleted, each line duplicated at every other
//     place, a garbage line inserted at every place, each adjacent pair
//     swapped, the file truncated at every byte offset; verified the
//     the same four ways.
//   - forge: whole-chain forgeries made with package internal/forge (a
//     verdict edited, a record deleted, the chain recomputed), and the
//     last record replaced by one under another host name.
//   - kill: real nsrel-hook createRuntime processes in parallel batches,
//     a random subset killed with SIGKILL at random moments.
//   - diskfull: the audit log on a small tmpfs, appended to until ENOSPC,
//     then space freed and appended again.
//   - concurrent: many hook processes started at once.
//   - badinput: one run per kind of hostile or broken input.
//   - inject: lines anyone who can write to a collector's checkpoint
//     file adds (the node's genuine checkpoints copied with a member
//     changed, with and without their checkpoint seal; made-up ones),
//     one at a time beside the genuine ones, verified with the key: the
//     intact log must pass, the log with its last record cut off must
//     fail; on the sample and on a log retention removed records of.
//   - stale: older records of the log again at its end (what a crash
//     exposes on a file system that shows what a block held before),
//     1 to 3 or 10 to 40 of them, after NUL bytes or not, with the lock
//     file's hint as the last append left it, as an earlier one did, or
//     empty; between runs of real hooks on a sealed log that rotates
//     and removes files. After each, one more run, `audit ack` of the
//     damage recorded, and `audit verify --key --checkpoints`; at the
//     end, a collector's copy of every line shipped, verified as
//     shipped.
//
// The sample log of the tampering classes (bytes, lines, forge, inject)
// is made in-process through audit.Log and hook.Hook (real ancestry of a
// sleep process the campaign starts); the other classes run the nsrel-hook binary, built from the
// working tree, with config/hook.json rewritten to paths in a temporary
// directory and sealing set up with `nsrel-hook audit seal-init`.
//
// It needs root (inspection of other processes, the tmpfs mount). Every
// process it starts, the mount and the temporary directory are removed
// at the end, also on failure or SIGINT. It exits 1 if any class loses a
// record or misses a case it must catch.
//
//	go run ./bench/reliability [-only CLASS,...] [-seed N] [-keep]
//	make reliability
package main
