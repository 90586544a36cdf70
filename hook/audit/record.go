package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nsrel/nsrel/internal/vocab"
)

// Sources of records.
const (
	// SourceOCIHook marks records written by nsrel-hook.
	SourceOCIHook = "oci-hook"
	// SourceContainerdEvents marks records written by the containerd
	// event recorder.
	SourceContainerdEvents = "containerd-events"
	// SourceNRI marks records written by the NRI plugin.
	SourceNRI = "nri"
	// SourceAudit marks records the log itself writes: torn tails,
	// damage, retention, the start of sealing.
	SourceAudit = "audit"
	// SourceOperator marks records an operator wrote with a command
	// (`nsrel-hook audit ack`).
	SourceOperator = "operator"
)

// Stages of records. OCI hook records use the OCI stage names; other
// writers add their own.
const (
	StageCreateRuntime = vocab.StageCreateRuntime
	StagePoststart     = vocab.StagePoststart
	StagePoststop      = vocab.StagePoststop
	// StageStart is the stage a writer without OCI stages (the
	// containerd event recorder, the NRI plugin) uses for a container
	// start.
	StageStart = "start"
	// StageExit is the matching stop stage.
	StageExit = "exit"
	// StageTornTail marks the record of a torn last line that an append
	// cut off.
	StageTornTail = "torn-tail"
	// StageDamaged marks the record of complete lines at the end of the
	// log that did not decode ([Record.Damage]); the chain goes on from
	// the last good record before them.
	StageDamaged = "damaged"
	// StageAck marks an operator's acknowledgement of a damaged record
	// ([Record.Ref] points to it, [Record.Note] says why).
	StageAck = "ack"
	// StageSealStart marks the first record sealed with a new sealing
	// key ([Record.SealID]).
	StageSealStart = "seal-start"
	// StageSealEnd marks the last record sealed with a key that
	// seal-init replaces: written with the sealing state replaced before
	// the new key's [StageSealStart] record, it shows whether that state
	// sealed on where the log's records of its key end (see
	// [Log.StartSealing]).
	StageSealEnd = "seal-end"
	// StageRetention marks the removal of a rotated file by retention
	// ([Record.Dropped]).
	StageRetention = "retention"
)

// Verdicts.
const (
	VerdictAllow = "allow"
	VerdictDeny  = "deny"
)

// MaxLine is the longest record line accepted, newline included.
const MaxLine = 1 << 20

// The record format this package writes, in every record's "format"
// member. A reader accepts every older version and records of a newer
// minor version, whose members it does not know it leaves out of
// [Record] (listing their names in Record.Unknown); a newer major version
// is refused with an error matching [ErrNewerFormat]. Records written
// before the member existed are format 1.0. A new member is added with a
// new minor version, in the canonical order before "version".
const (
	FormatMajor = 1
	FormatMinor = 6
)

// Format is "FormatMajor.FormatMinor".
var Format = strconv.Itoa(FormatMajor) + "." + strconv.Itoa(FormatMinor)

// ErrNewerFormat matches errors for a record of a newer major format
// than this nsrel reads: a newer nsrel wrote it.
var ErrNewerFormat = errors.New("record format newer than this nsrel reads")

// Record is one audit log entry. Field order is the canonical encoding
// order; [Record.Encode] fills Format and Hash, the log fills Seq, Prev
// and Seal.
type Record struct {
	// Format is the record format's version, "MAJOR.MINOR" ("" for
	// records of format 1.0, written before the member existed).
	Format string `json:"format,omitempty"`
	// Seq numbers the records of a log from 1, without gaps.
	Seq uint64 `json:"seq"`
	// Time is when the record was made, RFC 3339 with nanoseconds, UTC.
	Time string `json:"time"`
	// Host is the writer's host name.
	Host string `json:"host"`
	// Source names the writer: [SourceOCIHook], [SourceContainerdEvents].
	Source string `json:"source"`
	// Stage is the event: an OCI hook stage or a [StageStart]-like name.
	Stage string `json:"stage"`
	// ContainerID is the container's ID.
	ContainerID string `json:"container_id"`
	// Bundle is the OCI bundle directory, when known.
	Bundle string `json:"bundle,omitempty"`
	// Namespace is the engine's namespace (containerd "k8s.io"), when any.
	Namespace string `json:"namespace,omitempty"`
	// Annotations are the chosen annotations (Kubernetes pod name and
	// namespace, ...).
	Annotations map[string]string `json:"annotations,omitempty"`
	// Ancestry is the container process and its user and PID namespace
	// chains (pid, start_time, user_chain, pid_chain); nil for stages
	// without a process (poststop).
	*Ancestry
	// Policy names the policy block applied.
	Policy string `json:"policy,omitempty"`
	// Mode is the block's mode: "enforce" or "audit".
	Mode string `json:"mode,omitempty"`
	// Verdict is [VerdictAllow] or [VerdictDeny] for stages that decide.
	Verdict string `json:"verdict,omitempty"`
	// Violations lists the rules broken, with reasons.
	Violations []Violation `json:"violations,omitempty"`
	// Error is an internal error met while making the record (for
	// example a process that could not be inspected, or input that was
	// refused and what of it was kept).
	Error string `json:"error,omitempty"`
	// Ref points to an earlier record this one follows up (poststart and
	// poststop point to the container's start record, an ack to the
	// damage it acknowledges, a containerd event recorder's start to its
	// earlier start of the same task, recorded without namespaces, which
	// ends with it).
	Ref *Ref `json:"ref,omitempty"`
	// Torn holds the bytes of a torn line that was cut off (stage
	// [StageTornTail]), at most [MaxTornKept] of them.
	Torn string `json:"torn,omitempty"`
	// TornBytes is the length of the torn line.
	TornBytes int `json:"torn_bytes,omitempty"`
	// TornSHA256 is the hex SHA-256 of all of the torn line's bytes
	// (the line before the record holds them, ended with [TornMark]).
	// Format 1.3.
	TornSHA256 string `json:"torn_sha256,omitempty"`
	// Note is an operator's words ([StageAck]). Format 1.1.
	Note string `json:"note,omitempty"`
	// SealID names the sealing key that seals this record and the ones
	// after it ([StageSealStart]). Format 1.1.
	SealID string `json:"seal_id,omitempty"`
	// SealError says why a record that should have been sealed is not
	// (the sealing state could not be read or written). Format 1.1.
	SealError string `json:"seal_error,omitempty"`
	// LateSeals, on the first record sealed after records written
	// unsealed (SealError says why: a sealing state that could not be
	// read for a while), seal those records late, in order, the last
	// right before this one: each "ID.EPOCH.TAG" of its hash, with the
	// keys that would have sealed them, the next ones of the sealing of
	// the record before them. Format 1.6.
	LateSeals []string `json:"late_seals,omitempty"`
	// Damage describes the damaged lines a [StageDamaged] record stands
	// for. Format 1.1.
	Damage []DamagedLine `json:"damage,omitempty"`
	// Dropped describes the rotated file a [StageRetention] record
	// removed. Format 1.1.
	Dropped *Dropped `json:"dropped,omitempty"`
	// BootID is the kernel's ID of the boot the record was made in
	// (/proc/sys/kernel/random/boot_id, [BootID]): a record's PID and
	// start time name a process within that boot only. Empty in records
	// written before format 1.4, or where the file could not be read.
	BootID string `json:"boot_id,omitempty"`
	// Version is the version of the writer.
	Version string `json:"version"`
	// Prev is the hash of the record before this one, "" for the first.
	Prev string `json:"prev"`
	// Hash is the hex SHA-256 of the record's bytes on its line up to the
	// hash member, with the closing brace; it follows them on the line.
	Hash string `json:"-"`
	// Seal, on sealed records, is the forward-secure tag of the hash:
	// "ID.EPOCH.TAG" ([Sealer]); it follows the hash on the line.
	Seal string `json:"-"`
	// Unknown lists the members of a record of a newer minor format that
	// this version does not know, in their order on the line.
	Unknown []string `json:"-"`
}

// Ref refers to another record of the log.
type Ref struct {
	Seq   uint64 `json:"seq"`
	Stage string `json:"stage"`
	Hash  string `json:"hash"`
}

// DamagedLine is a complete line of the log that did not decode when an
// append found it at the end of the log.
type DamagedLine struct {
	// File is the base name of the file that holds it; Offset is where
	// the line starts in it and Bytes its length without the newline.
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	Bytes  int    `json:"bytes"`
	// SHA256 is the hex SHA-256 of the line's bytes, so that the damaged
	// line stays part of the evidence.
	SHA256 string `json:"sha256"`
	// Kind is what the bytes look like: "zeroed" (NUL bytes, what a
	// crash leaves where data had not reached the disk), "edited" (a
	// record whose contents no longer match its hash), "garbled" (not a
	// record at all: a crash or an edit), "replayed" (a record, but an
	// older one again: after a record of its seq or a later one).
	Kind string `json:"kind"`
	// Reason is why the line does not decode.
	Reason string `json:"reason"`
}

// LineKey names a line by its length and the hex SHA-256 of its bytes,
// as a damage record lists it ([DamagedLine.Key]).
type LineKey struct {
	SHA256 string
	Bytes  int
}

// LineKeyOf returns the key of line (without its newline).
func LineKeyOf(line []byte) LineKey {
	sum := sha256.Sum256(line)
	return LineKey{hex.EncodeToString(sum[:]), len(line)}
}

// Key is the key of the line d lists.
func (d DamagedLine) Key() LineKey { return LineKey{d.SHA256, d.Bytes} }

// Dropped describes a rotated file removed by retention: the records it
// held, and the hash of its last record, which the chain after it goes
// on from.
type Dropped struct {
	File     string `json:"file"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	LastHash string `json:"last_hash"`
}

// MaxTornKept bounds how much of a torn line a torn-tail record keeps.
const MaxTornKept = 4096

// TornMark ends a torn line: the append that records it writes the mark
// and a newline after its bytes, then its [StageTornTail] record. No
// record line ends so (every one ends with `"}`).
const TornMark = " [torn: the next record holds these bytes]"

const (
	hashKey = `,"hash":"`
	sealKey = `,"seal":"`
)

// Encode sets r.Format and r.Hash and returns the line to append,
// newline included, with r.Seal after the hash when it is set. Seq, Prev
// and every other field must already be set.
//
// Strings that are not valid UTF-8 (a container controls its ID,
// annotations and bundle path, and a torn line may end mid-character) are
// first made valid, each invalid byte sequence replaced by U+FFFD, in r
// itself: JSON cannot carry them.
func (r *Record) Encode() ([]byte, error) {
	body := r.body()
	return r.line(body)
}

// body sets Format and Hash and returns the canonical encoding without
// the hash: the bytes the hash covers.
func (r *Record) body() []byte {
	r.makeValidUTF8()
	r.Format = Format
	body := appendRecord(make([]byte, 0, 1024), r)
	r.Hash = bodyHash(body)
	return body
}

// shrink cuts what can make r too long to be written (a body of n
// bytes), keeping what identifies the container and the decision, in
// three steps: first the violations (at most 64 listed, each reason cut
// to 512 bytes), then the supplementary groups and idmapped mounts the
// process held (its IDs stay), then the ranges of its user namespaces'
// ID maps (each map's error says so). It says so in r's error, and returns false when
// nothing is left to cut.
func (r *Record) shrink(n int) bool {
	const maxViolations, maxReason = 64, 512
	var cut string
	switch {
	case len(r.Violations) > maxViolations || slices.ContainsFunc(r.Violations, func(v Violation) bool { return len(v.Reason) > maxReason }):
		if len(r.Violations) > maxViolations {
			r.Violations = r.Violations[:maxViolations]
		}
		for i := range r.Violations {
			r.Violations[i].Reason = vocab.Cut(r.Violations[i].Reason, maxReason)
		}
		cut = "its violations cut"
	case r.Ancestry != nil && (r.Held != nil && len(r.Held.Groups) > keptGroups || len(r.IDMapped) > 0):
		cut = r.cutFacts()
	case r.Ancestry != nil && slices.ContainsFunc(r.Ancestry.Maps, func(m UserMaps) bool { return m.UIDMap != nil || m.GIDMap != nil }):
		for i := range r.Ancestry.Maps {
			m := &r.Ancestry.Maps[i]
			m.UIDMap, m.GIDMap, m.HostUIDMap, m.HostGIDMap = nil, nil, nil, nil
			m.Error = vocab.Cut(strings.TrimSuffix("ID maps left out: the record was too long to be written with them; "+m.Error, "; "), 1024)
		}
		cut = "its user namespaces' ID maps left out"
	default:
		return false
	}
	// The note first: an error near its limit must not cut it away.
	r.Error = vocab.JoinErrors(fmt.Sprintf("the record was longer than a record may be (%d bytes, over %d): %s", n, MaxLine, cut), r.Error)
	return true
}

// keptGroups is how many supplementary groups a record cut keeps (11
// KiB at most).
const keptGroups = 1024

// cutFacts keeps the first keptGroups supplementary groups of r's
// process and leaves its idmapped mounts out (a process may hold 65,536
// groups, a mount namespace many idmapped mounts with long points and
// maps; the violations name those that broke a rule), and says what it
// cut.
func (r *Record) cutFacts() string {
	var cut []string
	if h := r.Held; h != nil && len(h.Groups) > keptGroups {
		cut = append(cut, fmt.Sprintf("its supplementary groups cut to the first %d of %d", keptGroups, len(h.Groups)))
		h.Groups = h.Groups[:keptGroups:keptGroups]
	}
	if len(r.IDMapped) > 0 {
		cut = append(cut, fmt.Sprintf("its %d idmapped mounts left out", len(r.IDMapped)))
		r.IDMapped = nil
	}
	return strings.Join(cut, ", ")
}

// precut cuts, before r is encoded, the groups and idmapped mounts of
// its process when they alone may not fit in a line: encoding them all
// first took seconds and gigabytes for 20,000 mounts with long points
// and maps, which the container's creator chooses. The bound is what
// they take at most (every byte of a string escaped).
func (r *Record) precut() {
	if r.Ancestry == nil {
		return
	}
	n := 0
	if r.Held != nil {
		n += 11 * len(r.Held.Groups)
	}
	for _, m := range r.IDMapped {
		if n > MaxLine {
			break
		}
		n += 64 + 6*(len(m.Point)+len(m.Err)) + 36*(len(m.UIDMap)+len(m.GIDMap))
	}
	if n > MaxLine {
		r.Error = vocab.JoinErrors(fmt.Sprintf("the record would be longer than a record may be (its process's groups and idmapped mounts alone up to %d bytes, over %d): %s", n, MaxLine, r.cutFacts()), r.Error)
	}
}

// line assembles the record's line from its body, hash and seal.
func (r *Record) line(body []byte) ([]byte, error) {
	line := make([]byte, 0, len(body)+len(hashKey)+len(r.Hash)+len(sealKey)+len(r.Seal)+4)
	line = append(line, body[:len(body)-1]...)
	line = append(line, hashKey...)
	line = append(line, r.Hash...)
	line = append(line, '"')
	if r.Seal != "" {
		line = append(line, sealKey...)
		line = append(line, r.Seal...)
		line = append(line, '"')
	}
	line = append(line, '}', '\n')
	if len(line) > MaxLine {
		return nil, fmt.Errorf("audit: record of %d bytes is longer than %d", len(line), MaxLine)
	}
	return line, nil
}

// makeValidUTF8 replaces invalid UTF-8 in every string of r by U+FFFD.
func (r *Record) makeValidUTF8() {
	for _, p := range []*string{&r.Time, &r.Host, &r.Source, &r.Stage, &r.ContainerID, &r.Bundle,
		&r.Namespace, &r.Policy, &r.Mode, &r.Verdict, &r.Error, &r.Version, &r.Prev, &r.Torn,
		&r.TornSHA256, &r.Note, &r.SealID, &r.SealError, &r.BootID} {
		*p = validUTF8(*p)
	}
	if r.Ref != nil {
		r.Ref.Stage = validUTF8(r.Ref.Stage)
		r.Ref.Hash = validUTF8(r.Ref.Hash)
	}
	if r.Ancestry != nil {
		for i := range r.IDMapped {
			m := &r.IDMapped[i]
			m.Point, m.Err = validUTF8(m.Point), validUTF8(m.Err)
		}
		for i := range r.Maps {
			m := &r.Maps[i]
			m.SetGroups, m.Error = validUTF8(m.SetGroups), validUTF8(m.Error)
		}
	}
	for i := range r.Violations {
		r.Violations[i].Rule = validUTF8(r.Violations[i].Rule)
		r.Violations[i].Reason = validUTF8(r.Violations[i].Reason)
	}
	for i := range r.Damage {
		d := &r.Damage[i]
		d.File, d.SHA256, d.Kind, d.Reason = validUTF8(d.File), validUTF8(d.SHA256), validUTF8(d.Kind), validUTF8(d.Reason)
	}
	if r.Dropped != nil {
		r.Dropped.File, r.Dropped.LastHash = validUTF8(r.Dropped.File), validUTF8(r.Dropped.LastHash)
	}
	bad := false
	for k, v := range r.Annotations {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			bad = true
			break
		}
	}
	if bad {
		m := make(map[string]string, len(r.Annotations))
		for k, v := range r.Annotations {
			m[validUTF8(k)] = validUTF8(v)
		}
		r.Annotations = m
	}
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// DecodeError is why a line is not a valid record.
type DecodeError struct {
	Reason string
	// Err is ErrNewerFormat for a record of a newer major format.
	Err error
}

// Error returns the reason.
func (e *DecodeError) Error() string { return e.Reason }

// Unwrap returns Err.
func (e *DecodeError) Unwrap() error { return e.Err }

// check validates fields beyond their JSON types.
func (r *Record) check() error {
	switch {
	case r.Seq == 0:
		return errors.New("sequence number 0")
	case r.Stage == "" || r.Source == "":
		return errors.New("missing stage or source")
	case r.Prev != "" && (len(r.Prev) != 64 || !isHex(r.Prev)):
		return errors.New("prev is not a hash")
	}
	return nil
}

func isHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// OfThisBoot reports whether r was made in the running boot: it names
// this boot, or names none (written before format 1.4), or this boot's
// ID cannot be read. A start record of an earlier boot does not name a
// process running now, whatever its PID and start time (both count from
// boot: after a crash another process can have them).
func (r *Record) OfThisBoot() bool {
	if r.BootID == "" {
		return true
	}
	b := BootID()
	return b == "" || r.BootID == b
}
