package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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
)

// Stages of records. OCI hook records use the OCI stage names; other
// writers may add their own (for example "start" and "exit" for
// containerd task events).
const (
	StageCreateRuntime = vocab.StageCreateRuntime
	StagePoststart     = vocab.StagePoststart
	StagePoststop      = vocab.StagePoststop
	// StageStart is the stage a writer without OCI stages (the
	// containerd event recorder) uses for a container start.
	StageStart = "start"
	// StageExit is the matching stop stage.
	StageExit = "exit"
	// StageTornTail marks the record of a torn last line that an append
	// cut off.
	StageTornTail = "torn-tail"
)

// Verdicts.
const (
	VerdictAllow = "allow"
	VerdictDeny  = "deny"
)

// MaxLine is the longest record line accepted, newline included.
const MaxLine = 1 << 20

// Record is one audit log entry. Field order is the canonical encoding
// order; [Record.Encode] fills Seq, Prev and Hash.
type Record struct {
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
	// example a process that could not be inspected).
	Error string `json:"error,omitempty"`
	// Ref points to an earlier record this one follows up (poststart and
	// poststop point to the container's start record).
	Ref *Ref `json:"ref,omitempty"`
	// Torn holds the bytes of a torn line that was cut off (stage
	// [StageTornTail]), at most [MaxTornKept] of them.
	Torn string `json:"torn,omitempty"`
	// TornBytes is the length of the torn line.
	TornBytes int `json:"torn_bytes,omitempty"`
	// Version is the version of the writer.
	Version string `json:"version"`
	// Prev is the hash of the record before this one, "" for the first.
	Prev string `json:"prev"`
	// Hash is the hex SHA-256 of the record's canonical encoding without
	// the hash itself; it is written last on the line.
	Hash string `json:"-"`
}

// Ref refers to another record of the log.
type Ref struct {
	Seq   uint64 `json:"seq"`
	Stage string `json:"stage"`
	Hash  string `json:"hash"`
}

// MaxTornKept bounds how much of a torn line a torn-tail record keeps.
const MaxTornKept = 4096

const hashKey = `,"hash":"`

// Encode sets r.Hash from r's canonical encoding and returns the line to
// append, newline included. Seq, Prev and every other field must already
// be set.
//
// Strings that are not valid UTF-8 (a container controls its ID,
// annotations and bundle path, and a torn line may end mid-character) are
// first made valid, each invalid byte sequence replaced by U+FFFD, in r
// itself: JSON cannot carry them, and a record whose text changed on the
// way to the disk would fail verification as if edited.
func (r *Record) Encode() ([]byte, error) {
	r.makeValidUTF8()
	body := appendRecord(make([]byte, 0, 1024), r)
	sum := sha256.Sum256(body)
	r.Hash = hex.EncodeToString(sum[:])
	line := make([]byte, 0, len(body)+len(hashKey)+len(r.Hash)+3)
	line = append(line, body[:len(body)-1]...)
	line = append(line, hashKey...)
	line = append(line, r.Hash...)
	line = append(line, '"', '}', '\n')
	if len(line) > MaxLine {
		return nil, fmt.Errorf("audit: record of %d bytes is longer than %d", len(line), MaxLine)
	}
	return line, nil
}

// makeValidUTF8 replaces invalid UTF-8 in every string of r by U+FFFD.
func (r *Record) makeValidUTF8() {
	for _, p := range []*string{&r.Time, &r.Host, &r.Source, &r.Stage, &r.ContainerID, &r.Bundle,
		&r.Namespace, &r.Policy, &r.Mode, &r.Verdict, &r.Error, &r.Version, &r.Prev, &r.Torn} {
		*p = validUTF8(*p)
	}
	if r.Ref != nil {
		r.Ref.Stage = validUTF8(r.Ref.Stage)
		r.Ref.Hash = validUTF8(r.Ref.Hash)
	}
	for i := range r.Violations {
		r.Violations[i].Rule = validUTF8(r.Violations[i].Rule)
		r.Violations[i].Reason = validUTF8(r.Violations[i].Reason)
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
type DecodeError struct{ Reason string }

// Error returns the reason.
func (e *DecodeError) Error() string { return e.Reason }

// Decode parses one log line (with or without its newline) and checks
// that it is a well-formed record in canonical encoding whose hash
// matches its contents. It does not check the chain. Errors are
// [*DecodeError]s with the reason in words.
func Decode(line []byte) (*Record, error) { return decode(line, true) }

// decode is [Decode]; fast false always takes the encoding/json path
// (the reference the fast path is tested against).
func decode(line []byte, fast bool) (*Record, error) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	if len(line) >= MaxLine {
		return nil, &DecodeError{fmt.Sprintf("line longer than %d bytes", MaxLine)}
	}
	if !utf8.Valid(line) {
		return nil, &DecodeError{"not valid UTF-8"}
	}
	// The line must end with ,"hash":"<64 hex>"}.
	const tail = len(hashKey) + 64 + 2
	if len(line) < tail+2 || !bytes.HasPrefix(line[len(line)-tail:], []byte(hashKey)) || !bytes.HasSuffix(line, []byte(`"}`)) {
		return nil, &DecodeError{"does not end with the record hash (edited or truncated record)"}
	}
	hash := string(line[len(line)-66 : len(line)-2])
	if _, err := hex.DecodeString(hash); err != nil || strings.ToLower(hash) != hash {
		return nil, &DecodeError{"record hash is not 64 lower-case hex digits"}
	}
	body := make([]byte, 0, len(line)-tail+1)
	body = append(body, line[:len(line)-tail]...)
	body = append(body, '}')
	var r *Record
	ok := false
	if fast {
		r, ok = parseCanonical(body)
	}
	if !ok || !bytes.Equal(appendRecord(make([]byte, 0, len(body)), r), body) {
		// Not in the form the fast path reads: let encoding/json decide
		// and name what is wrong.
		var err error
		if r, err = decodeJSON(body); err != nil {
			return nil, err
		}
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != hash {
		return nil, &DecodeError{"hash does not match the contents (edited record)"}
	}
	r.Hash = hash
	if err := r.check(); err != nil {
		return nil, &DecodeError{err.Error()}
	}
	return r, nil
}

// decodeJSON decodes body with encoding/json and checks that it is in
// canonical encoding.
func decodeJSON(body []byte) (*Record, error) {
	var r Record
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return nil, &DecodeError{"not a record: " + err.Error()}
	}
	if d.More() {
		return nil, &DecodeError{"data after the record"}
	}
	again, err := json.Marshal(&r)
	if err != nil || !bytes.Equal(again, body) {
		return nil, &DecodeError{"not in canonical encoding (edited record)"}
	}
	return &r, nil
}

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
