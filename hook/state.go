package hook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/hook/internal/fastjson"
	"github.com/nsrel/nsrel/internal/vocab"
)

// Limits on the state a runtime passes on stdin (at most
// [vocab.MaxStateSize] bytes). The state comes from a runtime, but its
// annotations come from whoever created the container: treat it as
// hostile.
const (
	MaxIDLen           = 1024
	MaxBundleLen       = 4096
	MaxAnnotations     = 4096
	MaxAnnotationValue = 64 << 10
)

// DecodeState reads the OCI state JSON from r: at most [vocab.MaxStateSize]
// bytes, one JSON object, unknown fields (crun's "root") ignored. It
// checks the ID, bundle, PID and annotations against the limits above.
func DecodeState(r io.Reader) (*specs.State, error) {
	data, err := ReadState(r)
	if err != nil {
		return nil, err
	}
	return ParseState(data)
}

// ErrStateCut is the error of a state larger than [vocab.MaxStateSize]:
// read that far, and cut there.
var ErrStateCut = fmt.Errorf("state: larger than %d bytes", vocab.MaxStateSize)

// ErrStateUnended marks the error of a state whose input did not end in
// time (a runtime that left stdin open) before the bytes read held a
// whole state: cut where the reading stopped, and judged as a state cut
// at its size limit ([ErrStateCut]) is. A whole state whose input stayed
// open is not cut: its annotations are all known.
var ErrStateUnended = errors.New("state cut")

// ParseState is [DecodeState] of the state's bytes.
func ParseState(data []byte) (*specs.State, error) {
	if len(data) > vocab.MaxStateSize {
		return nil, ErrStateCut
	}
	st, ok := fastState(data)
	if !ok {
		var err error
		if st, err = decodeStateJSON(data); err != nil {
			return nil, err
		}
	}
	switch {
	case st.ID == "":
		return nil, errors.New("state: no container id")
	case len(st.ID) > MaxIDLen:
		return nil, fmt.Errorf("state: container id longer than %d bytes", MaxIDLen)
	case !validID(data, st.ID):
		return nil, errors.New("state: container id is not valid UTF-8")
	case len(st.Bundle) > MaxBundleLen:
		return nil, fmt.Errorf("state: bundle path longer than %d bytes", MaxBundleLen)
	case st.Pid < 0 || st.Pid >= vocab.PIDLimit:
		return nil, fmt.Errorf("state: pid %d out of range", st.Pid)
	}
	if err := annotationsErr(st.Annotations); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return st, nil
}

// validID reports whether the state data, whose ID reads as id, holds
// an ID of valid UTF-8. Both JSON readers replace invalid UTF-8 and
// unpaired surrogate escapes with U+FFFD: two IDs that differ only there
// would be recorded as one, so an ID holding U+FFFD is checked as
// written.
func validID(data []byte, id string) bool {
	if !strings.ContainsRune(id, utf8.RuneError) {
		return true
	}
	// The member encoding/json took the ID from (the same key matching,
	// the last one winning).
	var raw struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(data, &raw) != nil {
		return false
	}
	return validJSONString(raw.ID)
}

// StateNote says what the state's bytes held that its decoding lost: a
// bundle path, or an annotation key or value, of invalid UTF-8 (or an
// unpaired surrogate escape), which both JSON readers replace with
// U+FFFD, so that two bundles that differ only there are recorded alike.
// The record keeps the replaced text and this note; the container is
// judged as any other (a path need not be UTF-8). "" when nothing was
// lost. The ID is checked by ParseState (an error).
func StateNote(data []byte, st *specs.State) string {
	if st == nil {
		return ""
	}
	bundle, annotations := strings.ContainsRune(st.Bundle, utf8.RuneError), false
	for k, v := range st.Annotations {
		if strings.ContainsRune(k, utf8.RuneError) || strings.ContainsRune(v, utf8.RuneError) {
			annotations = true
			break
		}
	}
	if !bundle && !annotations {
		return ""
	}
	// The members encoding/json took them from (the last one winning).
	var raw struct {
		Bundle      json.RawMessage `json:"bundle"`
		Annotations json.RawMessage `json:"annotations"`
	}
	if json.Unmarshal(data, &raw) != nil {
		return ""
	}
	var lost []string
	if bundle && !validJSONString(raw.Bundle) {
		lost = append(lost, "the bundle path")
	}
	if annotations && !validJSONText(raw.Annotations) {
		lost = append(lost, "annotations")
	}
	if len(lost) == 0 {
		return ""
	}
	return "state: " + strings.Join(lost, " and ") + " held invalid UTF-8, recorded with U+FFFD in its place"
}

// validJSONString reports whether the JSON string literal s reads
// without U+FFFD replacing anything: valid UTF-8, and every \u escape of
// a surrogate part of a pair.
func validJSONString(s []byte) bool {
	if len(s) < 2 || s[0] != '"' {
		return true // not a string: decoding said what it is
	}
	return validJSONText(s[1 : len(s)-1])
}

// validJSONText reports whether the JSON text s (a string literal's
// inside, or a whole value) reads without U+FFFD replacing anything, as
// validJSONString.
func validJSONText(s []byte) bool {
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s) && s[i+1] == 'u':
			r := hex4(s[i+2:])
			switch {
			case r < 0:
				return false
			case utf16.IsSurrogate(r):
				r2 := rune(-1)
				if i+8 <= len(s) && s[i+6] == '\\' && s[i+7] == 'u' {
					r2 = hex4(s[i+8:])
				}
				if utf16.DecodeRune(r, r2) == utf8.RuneError {
					return false
				}
				i += 12
			default:
				i += 6
			}
		case c == '\\':
			i += 2
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && n == 1 {
				return false
			}
			i += n
		}
	}
	return true
}

// hex4 reads the four hex digits b starts with; -1 if it does not.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	n, err := strconv.ParseUint(string(b[:4]), 16, 16)
	if err != nil {
		return -1
	}
	return rune(n)
}

// decodeStateJSON decodes the state with encoding/json.
func decodeStateJSON(data []byte) (*specs.State, error) {
	var st specs.State
	d := json.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(&st); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("state: data after the JSON object")
	}
	if k := twiceGiven(data); k != "" {
		return nil, fmt.Errorf("state: member %s given twice", vocab.Quote(k))
	}
	return &st, nil
}

// twiceGiven returns the key of a second "annotations" member of the
// state (as encoding/json matches keys: case-insensitively), "" for
// none. encoding/json takes the last of two members of a string, as the
// state's notes do, but merges two objects: a block was selected by the
// first's annotations, which the notes did not read, and what was lost
// there went unsaid (fastState gives up on duplicate keys).
func twiceGiven(data []byte) string {
	d := json.NewDecoder(bytes.NewReader(data))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	seen := false
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return ""
		}
		if key, _ := t.(string); strings.EqualFold(key, "annotations") {
			if seen {
				return key
			}
			seen = true
		}
		var skip json.RawMessage
		if d.Decode(&skip) != nil {
			return ""
		}
	}
	return ""
}

// stateKeys are the members of the OCI state that specs.State holds.
var stateKeys = []string{"ociVersion", "id", "status", "pid", "bundle", "annotations"}

// fastState reads a plain state without encoding/json (whose reflection
// costs a hook process more than the state is worth): the known members
// spelt exactly and holding values of their type, other members (crun's
// "root") anything. It gives up (ok false) where encoding/json might read
// differently or fail: a null or mistyped known member, a key that only
// case-insensitively matches a known one (encoding/json would fill the
// field), a non-ASCII unknown key (Unicode case folding), a pid that is
// not a whole number, or anything [fastjson.Parse] gives up on.
func fastState(data []byte) (*specs.State, bool) {
	n, ok := fastjson.Parse(data)
	if !ok || n.Kind != 'o' {
		return nil, false
	}
	st := &specs.State{}
	for _, m := range n.Members {
		v := m.Val
		switch m.Key {
		case "pid":
			if v.Kind != 'n' {
				return nil, false
			}
			pid, err := strconv.Atoi(string(v.Num))
			if err != nil {
				return nil, false
			}
			st.Pid = pid
		case "annotations":
			if v.Kind != 'o' {
				return nil, false
			}
			st.Annotations = make(map[string]string, len(v.Members))
			for _, a := range v.Members {
				if a.Val.Kind != 's' {
					return nil, false
				}
				st.Annotations[a.Key] = a.Val.Str
			}
		case "ociVersion", "id", "status", "bundle":
			if v.Kind != 's' {
				return nil, false
			}
			switch m.Key {
			case "ociVersion":
				st.Version = v.Str
			case "id":
				st.ID = v.Str
			case "status":
				st.Status = specs.ContainerState(v.Str)
			default:
				st.Bundle = v.Str
			}
		default:
			for i := 0; i < len(m.Key); i++ {
				if m.Key[i] >= utf8.RuneSelf {
					return nil, false
				}
			}
			for _, k := range stateKeys {
				if strings.EqualFold(m.Key, k) {
					return nil, false
				}
			}
		}
	}
	return st, true
}
