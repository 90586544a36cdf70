package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nsrel/nsrel/hook/internal/fastjson"
	"github.com/nsrel/nsrel/internal/vocab"
)

// This file writes and reads records without reflection. A hook is a new
// process per stage, and encoding/json's first use of a type (reflection,
// encoder caches) costs a fresh process more than the record itself.
//
// appendRecord writes the canonical encoding: exactly json.Marshal's bytes
// for a Record (FuzzCodec checks it). Reading does not depend on it: the
// hash covers a line's bytes as written, and decode reads the members by
// name (fastjson), whatever their order, so that records of other
// versions, with members this version does not know, are read too.

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as encoding/json quotes it (HTML-safe
// escaping, invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// cutJSON returns s, or its longest prefix (whole characters) followed
// by "...", whose JSON string, as [appendJSONString] writes it, takes at
// most n bytes inside its quotes.
func cutJSON(s string, n int) string {
	if len(appendJSONString(nil, s)) <= n+2 {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	var buf [16]byte
	used := 0
	for i, c := range s {
		if used += len(appendJSONString(buf[:0], string(c))) - 2; used > n-3 {
			return s[:i] + "..."
		}
	}
	return s
}

// shortKey returns a member's key as a reason quotes it: at most 64
// bytes of it, "..." after a key cut short.
func shortKey(k string) string {
	if len(k) > 64 {
		return vocab.Cut(k, 64) + "..."
	}
	return k
}

func appendKey(dst []byte, comma bool, key string) []byte {
	if comma {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, key...)
	return append(dst, '"', ':')
}

func appendOptUint(dst []byte, p *uint64) []byte {
	if p == nil {
		return append(dst, "null"...)
	}
	return strconv.AppendUint(dst, *p, 10)
}

// appendList appends s as a JSON array (nil as null), each element
// written by elem.
func appendList[T any](dst []byte, s []T, elem func([]byte, T) []byte) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, v := range s {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = elem(dst, v)
	}
	return append(dst, ']')
}

// appendNSHead opens a chain level's object with the members every
// level has.
func appendNSHead(dst []byte, ino, dev uint64, id *uint64) []byte {
	dst = appendKey(append(dst, '{'), false, "ino")
	dst = strconv.AppendUint(dst, ino, 10)
	dst = appendKey(dst, true, "dev")
	dst = strconv.AppendUint(dst, dev, 10)
	dst = appendKey(dst, true, "id")
	return appendOptUint(dst, id)
}

// appendRecord appends the canonical encoding of r without the hash: the
// bytes json.Marshal(r) returns.
func appendRecord(dst []byte, r *Record) []byte {
	dst = append(dst, '{')
	comma := false
	if r.Format != "" {
		dst = appendKey(dst, false, "format")
		dst = appendJSONString(dst, r.Format)
		comma = true
	}
	dst = appendKey(dst, comma, "seq")
	dst = strconv.AppendUint(dst, r.Seq, 10)
	dst = appendKey(dst, true, "time")
	dst = appendJSONString(dst, r.Time)
	dst = appendKey(dst, true, "host")
	dst = appendJSONString(dst, r.Host)
	dst = appendKey(dst, true, "source")
	dst = appendJSONString(dst, r.Source)
	dst = appendKey(dst, true, "stage")
	dst = appendJSONString(dst, r.Stage)
	dst = appendKey(dst, true, "container_id")
	dst = appendJSONString(dst, r.ContainerID)
	dst = appendOptString(dst, "bundle", r.Bundle)
	dst = appendOptString(dst, "namespace", r.Namespace)
	if len(r.Annotations) > 0 {
		dst = appendKey(dst, true, "annotations")
		keys := make([]string, 0, len(r.Annotations))
		for k := range r.Annotations {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			dst = appendJSONString(dst, r.Annotations[k])
		}
		dst = append(dst, '}')
	}
	if a := r.Ancestry; a != nil {
		dst = appendKey(dst, true, "pid")
		dst = strconv.AppendInt(dst, int64(a.PID), 10)
		dst = appendKey(dst, true, "start_time")
		dst = strconv.AppendUint(dst, a.StartTime, 10)
		dst = appendKey(dst, true, "user_chain")
		dst = appendList(dst, a.User, func(dst []byte, u UserNS) []byte {
			dst = appendNSHead(dst, u.Ino, u.Dev, u.ID)
			dst = appendKey(dst, true, "owner_uid")
			return append(strconv.AppendUint(dst, uint64(u.OwnerUID), 10), '}')
		})
		dst = appendKey(dst, true, "pid_chain")
		dst = appendList(dst, a.PIDNS, func(dst []byte, p PIDNS) []byte {
			dst = appendNSHead(dst, p.Ino, p.Dev, p.ID)
			dst = appendKey(dst, true, "owner_user_ino")
			return append(appendOptUint(dst, p.OwnerUserIno), '}')
		})
		if len(a.Maps) > 0 {
			dst = appendKey(dst, true, "user_maps")
			dst = appendList(dst, a.Maps, appendUserMaps)
		}
		if c := a.Creds; c != nil {
			dst = appendKey(dst, true, "creds")
			dst = append(dst, '{')
			for i, f := range c.ids() {
				dst = appendKey(dst, i > 0, f.key)
				dst = strconv.AppendUint(dst, uint64(*f.val), 10)
			}
			dst = appendKey(dst, true, "cgroup_id")
			dst = append(appendOptUint(dst, c.CgroupID), '}')
		}
		if h := a.Held; h != nil {
			dst = appendKey(dst, true, "held")
			dst = appendKey(append(dst, '{'), false, "uids")
			dst = appendList(dst, h.UIDs[:], appendUint32)
			dst = appendKey(dst, true, "gids")
			dst = appendList(dst, h.GIDs[:], appendUint32)
			dst = appendKey(dst, true, "groups")
			dst = append(appendList(dst, h.Groups, appendUint32), '}')
		}
		if len(a.IDMapped) > 0 {
			dst = appendKey(dst, true, "idmapped_mounts")
			dst = appendList(dst, a.IDMapped, func(dst []byte, m IDMappedMount) []byte {
				dst = appendKey(append(dst, '{'), false, "point")
				dst = appendJSONString(dst, m.Point)
				dst = appendKey(dst, true, "uid_map")
				dst = appendList(dst, m.UIDMap, appendIDRange)
				dst = appendKey(dst, true, "gid_map")
				dst = appendList(dst, m.GIDMap, appendIDRange)
				dst = appendOptString(dst, "error", m.Err)
				return append(dst, '}')
			})
		}
	}
	dst = appendOptString(dst, "policy", r.Policy)
	dst = appendOptString(dst, "mode", r.Mode)
	dst = appendOptString(dst, "verdict", r.Verdict)
	if len(r.Violations) > 0 {
		dst = appendKey(dst, true, "violations")
		dst = appendList(dst, r.Violations, func(dst []byte, v Violation) []byte {
			dst = appendKey(append(dst, '{'), false, "rule")
			dst = appendJSONString(dst, v.Rule)
			dst = appendKey(dst, true, "reason")
			return append(appendJSONString(dst, v.Reason), '}')
		})
	}
	dst = appendOptString(dst, "error", r.Error)
	if r.Ref != nil {
		dst = appendKey(dst, true, "ref")
		dst = appendKey(append(dst, '{'), false, "seq")
		dst = strconv.AppendUint(dst, r.Ref.Seq, 10)
		dst = appendKey(dst, true, "stage")
		dst = appendJSONString(dst, r.Ref.Stage)
		dst = appendKey(dst, true, "hash")
		dst = appendJSONString(dst, r.Ref.Hash)
		dst = append(dst, '}')
	}
	dst = appendOptString(dst, "torn", r.Torn)
	if r.TornBytes != 0 {
		dst = appendKey(dst, true, "torn_bytes")
		dst = strconv.AppendInt(dst, int64(r.TornBytes), 10)
	}
	dst = appendOptString(dst, "torn_sha256", r.TornSHA256)
	dst = appendOptString(dst, "note", r.Note)
	dst = appendOptString(dst, "seal_id", r.SealID)
	dst = appendOptString(dst, "seal_error", r.SealError)
	if len(r.LateSeals) > 0 {
		dst = appendKey(dst, true, "late_seals")
		dst = appendList(dst, r.LateSeals, appendJSONString)
	}
	if len(r.Damage) > 0 {
		dst = appendKey(dst, true, "damage")
		dst = appendList(dst, r.Damage, func(dst []byte, d DamagedLine) []byte {
			dst = appendKey(append(dst, '{'), false, "file")
			dst = appendJSONString(dst, d.File)
			dst = appendKey(dst, true, "offset")
			dst = strconv.AppendInt(dst, d.Offset, 10)
			dst = appendKey(dst, true, "bytes")
			dst = strconv.AppendInt(dst, int64(d.Bytes), 10)
			dst = appendKey(dst, true, "sha256")
			dst = appendJSONString(dst, d.SHA256)
			dst = appendKey(dst, true, "kind")
			dst = appendJSONString(dst, d.Kind)
			dst = appendKey(dst, true, "reason")
			return append(appendJSONString(dst, d.Reason), '}')
		})
	}
	if d := r.Dropped; d != nil {
		dst = appendKey(dst, true, "dropped")
		dst = appendKey(append(dst, '{'), false, "file")
		dst = appendJSONString(dst, d.File)
		dst = appendKey(dst, true, "first_seq")
		dst = strconv.AppendUint(dst, d.FirstSeq, 10)
		dst = appendKey(dst, true, "last_seq")
		dst = strconv.AppendUint(dst, d.LastSeq, 10)
		dst = appendKey(dst, true, "last_hash")
		dst = appendJSONString(dst, d.LastHash)
		dst = append(dst, '}')
	}
	dst = appendOptString(dst, "boot_id", r.BootID)
	dst = appendKey(dst, true, "version")
	dst = appendJSONString(dst, r.Version)
	dst = appendKey(dst, true, "prev")
	dst = appendJSONString(dst, r.Prev)
	return append(dst, '}')
}

// appendUserMaps appends one level's maps (format 1.2).
func appendUserMaps(dst []byte, m UserMaps) []byte {
	dst = appendKey(append(dst, '{'), false, "ino")
	dst = strconv.AppendUint(dst, m.Ino, 10)
	for _, f := range []struct {
		key string
		val []IDRange
	}{{"uid_map", m.UIDMap}, {"gid_map", m.GIDMap}, {"host_uid_map", m.HostUIDMap}, {"host_gid_map", m.HostGIDMap}} {
		dst = appendKey(dst, true, f.key)
		dst = appendList(dst, f.val, appendIDRange)
	}
	dst = appendKey(dst, true, "setgroups")
	dst = appendJSONString(dst, m.SetGroups)
	dst = appendOptString(dst, "error", m.Error)
	return append(dst, '}')
}

func appendUint32(dst []byte, v uint32) []byte { return strconv.AppendUint(dst, uint64(v), 10) }

func appendOptString(dst []byte, key, val string) []byte {
	if val == "" {
		return dst
	}
	return appendJSONString(appendKey(dst, true, key), val)
}

// Decode parses one log line (with or without its newline) and checks
// that it is a record whose hash matches its bytes. It does not check the
// chain or the seal. Errors are [*DecodeError]s with the reason in words.
func Decode(line []byte) (*Record, error) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	if len(line) >= MaxLine {
		return nil, &DecodeError{Reason: fmt.Sprintf("line longer than %d bytes", MaxLine)}
	}
	if !utf8.Valid(line) {
		return nil, &DecodeError{Reason: "not valid UTF-8"}
	}
	hashAt, hash, seal, ok := splitLine(line)
	if !ok {
		return nil, &DecodeError{Reason: "does not end with the record hash (edited or truncated record)"}
	}
	if _, err := hex.DecodeString(hash); err != nil || strings.ToLower(hash) != hash {
		return nil, &DecodeError{Reason: "record hash is not 64 lower-case hex digits"}
	}
	body := closedBody(line, hashAt)
	if bodyHash(body) != hash {
		return nil, &DecodeError{Reason: "hash does not match the contents (edited record)"}
	}
	r, err := decodeBody(body)
	if err != nil {
		return nil, err
	}
	r.Hash, r.Seal = hash, seal
	if err := r.check(); err != nil {
		return nil, &DecodeError{Reason: err.Error()}
	}
	return r, nil
}

// closedBody returns a record line's bytes up to its hash member
// (at hashAt), closed: what its hash covers.
func closedBody(line []byte, hashAt int) []byte {
	body := make([]byte, 0, hashAt+1)
	body = append(body, line[:hashAt]...)
	return append(body, '}')
}

// bodyHash is a record's hash of its closed body: the lower-case hex
// SHA-256 of its bytes.
func bodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// PeekHash returns the hash a record line ends with, where [Decode]
// finds it, without checking it against the line's bytes (Decode does).
func PeekHash(line []byte) (string, bool) {
	_, hash, _, ok := splitLine(bytes.TrimSuffix(line, []byte{'\n'}))
	return hash, ok
}

// splitLine finds the hash and the seal at the end of a line: it ends
// with ,"hash":"<64 hex>"} or ,"hash":"<64 hex>","seal":"<seal>"}. hashAt
// is where ,"hash" starts. Both are structure: inside a JSON string every
// quote is escaped, so neither suffix can be string contents.
func splitLine(line []byte) (hashAt int, hash, seal string, ok bool) {
	if !bytes.HasSuffix(line, []byte(`"}`)) {
		return 0, "", "", false
	}
	q := len(line) - 2 // the closing quote of the last value
	if i := sealStart(line[:q]); i >= 0 {
		seal = string(line[i:q])
		q = i - len(sealKey) - 1 // the hash's closing quote
		if q < 0 || line[q] != '"' {
			return 0, "", "", false
		}
	}
	const hexLen = 64
	hashAt = q - hexLen - len(hashKey)
	if hashAt < 1 || string(line[hashAt:hashAt+len(hashKey)]) != hashKey {
		return 0, "", "", false
	}
	return hashAt, string(line[hashAt+len(hashKey) : q]), seal, true
}

// sealStart returns where a seal ends b (ID.EPOCH.TAG after ,"seal":"),
// read backwards from its end without a search, or -1.
func sealStart(b []byte) int {
	i := len(b) - 64
	if i < 0 || !isHexBytes(b[i:]) || i < 1 || b[i-1] != '.' {
		return -1
	}
	j := i - 1
	for j > 0 && b[j-1] >= '0' && b[j-1] <= '9' {
		j--
	}
	if j == i-1 || j < 1 || b[j-1] != '.' {
		return -1
	}
	k := j - 1 - 16
	if k < len(sealKey) || !isHexBytes(b[k:j-1]) || string(b[k-len(sealKey):k]) != sealKey || !validSeal(b[k:]) {
		return -1
	}
	return k
}

func isHexBytes(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// decodeBody reads the members of a record's body (its bytes up to the
// hash, closed) by name.
func decodeBody(body []byte) (*Record, error) {
	if r, ok := parseCanonical(body); ok {
		return r, nil
	}
	return decodeMembers(body)
}

// decodeMembers is decodeBody for any member order: a tree of the body,
// then each member by name.
func decodeMembers(body []byte) (*Record, error) {
	n, ok := fastjson.Parse(body)
	if !ok {
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return nil, &DecodeError{Reason: "not a record: " + err.Error()}
		}
		return nil, &DecodeError{Reason: "not a record: duplicate member, or nesting too deep"}
	}
	if n.Kind != 'o' {
		return nil, &DecodeError{Reason: "not a record: not a JSON object"}
	}
	r := &Record{}
	minor := 0
	for _, m := range n.Members {
		if m.Key == "format" {
			major, mn, err := parseFormat(m.Val)
			if err != nil {
				return nil, err
			}
			if major > FormatMajor {
				return nil, &DecodeError{Reason: fmt.Sprintf("format %s is newer than this nsrel reads (%s): upgrade it", m.Val.Str, Format), Err: ErrNewerFormat}
			}
			r.Format, minor = m.Val.Str, mn
		}
	}
	d := &recordDecoder{}
	for _, m := range n.Members {
		if !d.member(r, m.Key, m.Val) && d.err == nil {
			if minor <= FormatMinor {
				return nil, &DecodeError{Reason: fmt.Sprintf("not a record: unknown member %q in a record of format %s", shortKey(m.Key), formatName(r.Format))}
			}
			r.Unknown = append(r.Unknown, m.Key)
		}
		if d.err != nil {
			return nil, &DecodeError{Reason: "not a record: " + m.Key + ": " + d.err.Error()}
		}
	}
	if !d.seen["seq"] || !d.seen["version"] || !d.seen["prev"] {
		return nil, &DecodeError{Reason: "not a record: seq, version or prev missing"}
	}
	return r, nil
}

func formatName(f string) string {
	if f == "" {
		return "1.0"
	}
	return f
}

// parseFormat reads "MAJOR.MINOR".
func parseFormat(v *fastjson.Node) (major, minor int, err error) {
	bad := &DecodeError{Reason: "not a record: format is not MAJOR.MINOR"}
	if v.Kind != 's' {
		return 0, 0, bad
	}
	a, b, ok := strings.Cut(v.Str, ".")
	if !ok {
		return 0, 0, bad
	}
	major, err1 := strconv.Atoi(a)
	minor, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || major < 1 || minor < 0 || strconv.Itoa(major) != a || strconv.Itoa(minor) != b {
		return 0, 0, bad
	}
	return major, minor, nil
}

// recordDecoder maps members onto a Record, with their types checked.
type recordDecoder struct {
	err  error
	seen map[string]bool
}

func (d *recordDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *recordDecoder) str(v *fastjson.Node) string {
	if v.Kind != 's' {
		d.fail("not a string")
	}
	return v.Str
}

func (d *recordDecoder) uint(v *fastjson.Node, bits int) uint64 {
	if v.Kind != 'n' {
		d.fail("not a number")
		return 0
	}
	x, err := strconv.ParseUint(string(v.Num), 10, bits)
	if err != nil {
		d.fail("not an unsigned %d-bit integer", bits)
	}
	return x
}

func (d *recordDecoder) int(v *fastjson.Node, bits int) int64 {
	if v.Kind != 'n' {
		d.fail("not a number")
		return 0
	}
	x, err := strconv.ParseInt(string(v.Num), 10, bits)
	if err != nil {
		d.fail("not a %d-bit integer", bits)
	}
	return x
}

func (d *recordDecoder) optUint(v *fastjson.Node) *uint64 {
	if v.Kind == 'z' {
		return nil
	}
	x := d.uint(v, 64)
	return &x
}

// object calls set for each member of v, an object; set reports whether
// it knows the key.
func (d *recordDecoder) object(v *fastjson.Node, set func(key string, v *fastjson.Node) bool) {
	if v.Kind != 'o' {
		d.fail("not an object")
		return
	}
	for _, m := range v.Members {
		if !set(m.Key, m.Val) {
			d.fail("unknown member %q", shortKey(m.Key))
		}
	}
}

// list calls elem for each element of v, an array (null: none).
func (d *recordDecoder) list(v *fastjson.Node, elem func(*fastjson.Node)) bool {
	switch v.Kind {
	case 'z':
		return false
	case 'a':
		for _, e := range v.Elems {
			elem(e)
		}
		return true
	}
	d.fail("not an array")
	return false
}

// idRanges reads a list of [inside, outside, count] arrays (null: nil).
func (d *recordDecoder) idRanges(v *fastjson.Node) []IDRange {
	out := []IDRange{}
	if !d.list(v, func(e *fastjson.Node) {
		if e.Kind != 'a' || len(e.Elems) != 3 {
			d.fail("an ID range is [inside, outside, count]")
			return
		}
		out = append(out, IDRange{uint32(d.uint(e.Elems[0], 32)), uint32(d.uint(e.Elems[1], 32)), uint32(d.uint(e.Elems[2], 32))})
	}) {
		return nil
	}
	return out
}

// uint32s reads a list of IDs (null: nil).
func (d *recordDecoder) uint32s(v *fastjson.Node) []uint32 {
	out := []uint32{}
	if !d.list(v, func(e *fastjson.Node) { out = append(out, uint32(d.uint(e, 32))) }) {
		return nil
	}
	return out
}

func (d *recordDecoder) ancestry(r *Record) *Ancestry {
	if r.Ancestry == nil {
		r.Ancestry = &Ancestry{}
	}
	return r.Ancestry
}

// member sets the field of key; it reports false for an unknown key.
func (d *recordDecoder) member(r *Record, key string, v *fastjson.Node) bool {
	if d.seen == nil {
		d.seen = map[string]bool{}
	}
	d.seen[key] = true
	switch key {
	case "format":
	case "seq":
		r.Seq = d.uint(v, 64)
	case "time":
		r.Time = d.str(v)
	case "host":
		r.Host = d.str(v)
	case "source":
		r.Source = d.str(v)
	case "stage":
		r.Stage = d.str(v)
	case "container_id":
		r.ContainerID = d.str(v)
	case "bundle":
		r.Bundle = d.str(v)
	case "namespace":
		r.Namespace = d.str(v)
	case "annotations":
		r.Annotations = map[string]string{}
		d.object(v, func(k string, v *fastjson.Node) bool {
			r.Annotations[k] = d.str(v)
			return true
		})
	case "pid":
		d.ancestry(r).PID = int(d.int(v, 32))
	case "start_time":
		d.ancestry(r).StartTime = d.uint(v, 64)
	case "user_chain":
		a := d.ancestry(r)
		if d.list(v, func(e *fastjson.Node) {
			var u UserNS
			d.object(e, func(k string, v *fastjson.Node) bool {
				switch k {
				case "ino":
					u.Ino = d.uint(v, 64)
				case "dev":
					u.Dev = d.uint(v, 64)
				case "id":
					u.ID = d.optUint(v)
				case "owner_uid":
					u.OwnerUID = uint32(d.uint(v, 32))
				default:
					return false
				}
				return true
			})
			a.User = append(a.User, u)
		}) && a.User == nil {
			a.User = []UserNS{}
		}
	case "pid_chain":
		a := d.ancestry(r)
		if d.list(v, func(e *fastjson.Node) {
			var p PIDNS
			d.object(e, func(k string, v *fastjson.Node) bool {
				switch k {
				case "ino":
					p.Ino = d.uint(v, 64)
				case "dev":
					p.Dev = d.uint(v, 64)
				case "id":
					p.ID = d.optUint(v)
				case "owner_user_ino":
					p.OwnerUserIno = d.optUint(v)
				default:
					return false
				}
				return true
			})
			a.PIDNS = append(a.PIDNS, p)
		}) && a.PIDNS == nil {
			a.PIDNS = []PIDNS{}
		}
	case "user_maps":
		a := d.ancestry(r)
		d.list(v, func(e *fastjson.Node) {
			var m UserMaps
			d.object(e, func(k string, v *fastjson.Node) bool {
				switch k {
				case "ino":
					m.Ino = d.uint(v, 64)
				case "uid_map":
					m.UIDMap = d.idRanges(v)
				case "gid_map":
					m.GIDMap = d.idRanges(v)
				case "host_uid_map":
					m.HostUIDMap = d.idRanges(v)
				case "host_gid_map":
					m.HostGIDMap = d.idRanges(v)
				case "setgroups":
					m.SetGroups = d.str(v)
				case "error":
					m.Error = d.str(v)
				default:
					return false
				}
				return true
			})
			a.Maps = append(a.Maps, m)
		})
	case "boot_id":
		r.BootID = d.str(v)
	case "creds":
		c := &Creds{}
		d.ancestry(r).Creds = c
		ids := c.ids()
		d.object(v, func(k string, v *fastjson.Node) bool {
			if k == "cgroup_id" {
				c.CgroupID = d.optUint(v)
				return true
			}
			for _, f := range ids {
				if f.key == k {
					*f.val = uint32(d.uint(v, 32))
					return true
				}
			}
			return false
		})
	case "held":
		h := &HeldIDs{}
		d.ancestry(r).Held = h
		seen := 0 // members: uids, gids and groups are all written
		d.object(v, func(k string, v *fastjson.Node) bool {
			seen++
			switch k {
			case "uids", "gids":
				ids := &h.UIDs
				if k == "gids" {
					ids = &h.GIDs
				}
				if got := d.uint32s(v); len(got) != len(ids) {
					d.fail("%s holds %d IDs: real, effective, saved and file system", k, len(ids))
				} else {
					copy(ids[:], got)
				}
			case "groups":
				h.Groups = d.uint32s(v)
			default:
				return false
			}
			return true
		})
		if seen != 3 && d.err == nil {
			d.fail("held lacks uids, gids or groups")
		}
	case "idmapped_mounts":
		a := d.ancestry(r)
		d.list(v, func(e *fastjson.Node) {
			var m IDMappedMount
			d.object(e, func(k string, v *fastjson.Node) bool {
				switch k {
				case "point":
					m.Point = d.str(v)
				case "uid_map":
					m.UIDMap = d.idRanges(v)
				case "gid_map":
					m.GIDMap = d.idRanges(v)
				case "error":
					m.Err = d.str(v)
				default:
					return false
				}
				return true
			})
			a.IDMapped = append(a.IDMapped, m)
		})
	case "policy":
		r.Policy = d.str(v)
	case "mode":
		r.Mode = d.str(v)
	case "verdict":
		r.Verdict = d.str(v)
	case "violations":
		d.list(v, func(e *fastjson.Node) {
			var vi Violation
			d.object(e, func(k string, v *fastjson.Node) bool {
				switch k {
				case "rule":
					vi.Rule = d.str(v)
				case "reason":
					vi.Reason = d.str(v)
				default:
					return false
				}
				return true
			})
			r.Violations = append(r.Violations, vi)
		})
	case "error":
		r.Error = d.str(v)
	case "ref":
		r.Ref = &Ref{}
		d.object(v, func(k string, v *fastjson.Node) bool {
			switch k {
			case "seq":
				r.Ref.Seq = d.uint(v, 64)
			case "stage":
				r.Ref.Stage = d.str(v)
			case "hash":
				r.Ref.Hash = d.str(v)
			default:
				return false
			}
			return true
		})
	case "torn":
		r.Torn = d.str(v)
	case "torn_bytes":
		r.TornBytes = int(d.int(v, strconv.IntSize))
	case "torn_sha256":
		r.TornSHA256 = d.str(v)
	case "note":
		r.Note = d.str(v)
	case "seal_id":
		r.SealID = d.str(v)
	case "seal_error":
		r.SealError = d.str(v)
	case "late_seals":
		d.list(v, func(e *fastjson.Node) {
			r.LateSeals = append(r.LateSeals, d.str(e))
		})
	case "damage":
		d.list(v, func(e *fastjson.Node) {
			var dl DamagedLine
			d.object(e, func(k string, v *fastjson.Node) bool {
				switch k {
				case "file":
					dl.File = d.str(v)
				case "offset":
					dl.Offset = d.int(v, 64)
				case "bytes":
					dl.Bytes = int(d.int(v, strconv.IntSize))
				case "sha256":
					dl.SHA256 = d.str(v)
				case "kind":
					dl.Kind = d.str(v)
				case "reason":
					dl.Reason = d.str(v)
				default:
					return false
				}
				return true
			})
			r.Damage = append(r.Damage, dl)
		})
	case "dropped":
		r.Dropped = &Dropped{}
		d.object(v, func(k string, v *fastjson.Node) bool {
			switch k {
			case "file":
				r.Dropped.File = d.str(v)
			case "first_seq":
				r.Dropped.FirstSeq = d.uint(v, 64)
			case "last_seq":
				r.Dropped.LastSeq = d.uint(v, 64)
			case "last_hash":
				r.Dropped.LastHash = d.str(v)
			default:
				return false
			}
			return true
		})
	case "version":
		r.Version = d.str(v)
	case "prev":
		r.Prev = d.str(v)
	default:
		delete(d.seen, key)
		return false
	}
	return true
}

// Head is what every record line starts with.
type Head struct {
	Seq                              uint64
	Host, Source, Stage, ContainerID string
	// Namespace is the engine's namespace, when the line has one.
	Namespace string
}

// HeadOf returns the head of a record line and, when it had to decode
// the line for it, the record: in its head as nsrel writes it
// ([PeekHead]: a damaged line whose head is whole still names its
// container and host), or in the record a line of another member order
// decodes to. ok is false for a line that is neither (a torn line, one
// that does not decode, nil). Keys match exactly, as the record
// decoder's do.
func HeadOf(line []byte) (h Head, r *Record, ok bool) {
	if line == nil {
		return Head{}, nil, false
	}
	if h, ok := PeekHead(line); ok {
		return h, nil, true
	}
	if r, err := Decode(line); err == nil {
		return Head{Seq: r.Seq, Host: r.Host, Source: r.Source, Stage: r.Stage, ContainerID: r.ContainerID, Namespace: r.Namespace}, r, true
	}
	return Head{}, nil, false
}

// headSeq returns the seq of a line that starts as a record does, as
// [PeekHead] does, without reading further or allocating.
func headSeq(line []byte) (uint64, bool) {
	c := &canon{b: line, ok: true}
	seq := c.seqFirst()
	return seq, c.ok
}

// damageHead reports whether line starts as a damage record does
// (source audit, stage damaged), reading only its head: what a search
// looks at on every line. (A container's annotations may hold the same
// text, after its head.)
func damageHead(line []byte) bool {
	c := &canon{b: line, ok: true}
	c.seqFirst()
	for _, k := range []string{"time", "host"} {
		c.key(true, k)
		c.skipStr()
	}
	c.key(true, "source")
	c.lit(`"` + SourceAudit + `"`)
	c.key(true, "stage")
	c.lit(`"` + StageDamaged + `"`)
	return c.ok
}

// seqFirst reads a record line's first members, its format if there
// (not unescaped) and its seq, and returns the seq.
func (c *canon) seqFirst() uint64 {
	c.lit(`{`)
	comma := false
	if c.peekKey(false, "format") {
		c.skipStr()
		comma = true
	}
	return c.uintAt(comma, "seq")
}

// PeekHead reads the head of a record line written by nsrel (format,
// seq, time, host, source, stage and container_id first, in that order,
// then bundle and namespace when there and readable)
// without decoding the rest of it or checking its hash: a cheap look at
// which container and stage a line is about, for readers that skip most
// lines (the container source of lsuserns). ok is false when the line
// does not start that way, or ends with [TornMark] (a torn line, whose
// head may be whole); such a reader then uses [Decode] on it. Use
// [Decode] on the lines kept.
func PeekHead(line []byte) (h Head, ok bool) {
	if bytes.HasSuffix(bytes.TrimSuffix(line, []byte{'\n'}), []byte(TornMark)) {
		return Head{}, false
	}
	c := &canon{b: line, ok: true}
	h.Seq = c.seqFirst()
	c.strAt(true, "time")
	h.Host = c.strAt(true, "host")
	h.Source = c.strAt(true, "source")
	h.Stage = c.strAt(true, "stage")
	h.ContainerID = c.strAt(true, "container_id")
	if !c.ok {
		return h, false
	}
	// The namespace, when the line is whole that far: a line damaged
	// after its head still names its host and container.
	rest := *c
	rest.skipOptStr("bundle")
	var ns string
	if rest.optStr("namespace", &ns); rest.ok {
		h.Namespace = ns
	}
	return h, true
}
