package audit

import (
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/nsrel/nsrel/hook/internal/fastjson"
)

// This file writes and reads the canonical encoding without reflection.
// A hook is a new process per stage, and encoding/json's first use of a
// type (reflection, encoder caches) costs a fresh process more than the
// record itself. appendRecord produces exactly json.Marshal's bytes
// (FuzzCodec checks it); parseCanonical reads only lines in that exact
// form and Decode falls back to encoding/json for anything else, so what
// is accepted and how errors read do not change.

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
	dst = appendKey(dst, false, "seq")
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
	if r.Bundle != "" {
		dst = appendKey(dst, true, "bundle")
		dst = appendJSONString(dst, r.Bundle)
	}
	if r.Namespace != "" {
		dst = appendKey(dst, true, "namespace")
		dst = appendJSONString(dst, r.Namespace)
	}
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
	}
	for _, f := range [...]struct{ key, val string }{{"policy", r.Policy}, {"mode", r.Mode}, {"verdict", r.Verdict}} {
		if f.val != "" {
			dst = appendKey(dst, true, f.key)
			dst = appendJSONString(dst, f.val)
		}
	}
	if len(r.Violations) > 0 {
		dst = appendKey(dst, true, "violations")
		dst = appendList(dst, r.Violations, func(dst []byte, v Violation) []byte {
			dst = appendKey(append(dst, '{'), false, "rule")
			dst = appendJSONString(dst, v.Rule)
			dst = appendKey(dst, true, "reason")
			return append(appendJSONString(dst, v.Reason), '}')
		})
	}
	if r.Error != "" {
		dst = appendKey(dst, true, "error")
		dst = appendJSONString(dst, r.Error)
	}
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
	if r.Torn != "" {
		dst = appendKey(dst, true, "torn")
		dst = appendJSONString(dst, r.Torn)
	}
	if r.TornBytes != 0 {
		dst = appendKey(dst, true, "torn_bytes")
		dst = strconv.AppendInt(dst, int64(r.TornBytes), 10)
	}
	dst = appendKey(dst, true, "version")
	dst = appendJSONString(dst, r.Version)
	dst = appendKey(dst, true, "prev")
	dst = appendJSONString(dst, r.Prev)
	return append(dst, '}')
}

// canon reads a line in the exact canonical form. Any deviation makes
// it fail (ok false); the caller then re-encodes what it read and
// compares, so a lenient step here can never accept a non-canonical line.
type canon struct {
	b  []byte
	i  int
	ok bool
}

func (c *canon) lit(s string) {
	if !c.ok || len(c.b)-c.i < len(s) || string(c.b[c.i:c.i+len(s)]) != s {
		c.ok = false
		return
	}
	c.i += len(s)
}

// peekKey reports whether the next bytes are ,"key": (comma true) or
// "key":, and consumes them if so.
func (c *canon) peekKey(comma bool, key string) bool {
	if !c.ok {
		return false
	}
	j := c.i
	if comma {
		if j >= len(c.b) || c.b[j] != ',' {
			return false
		}
		j++
	}
	if len(c.b)-j < len(key)+3 || c.b[j] != '"' || string(c.b[j+1:j+1+len(key)]) != key || c.b[j+1+len(key)] != '"' || c.b[j+2+len(key)] != ':' {
		return false
	}
	c.i = j + len(key) + 3
	return true
}

func (c *canon) key(comma bool, key string) {
	if !c.peekKey(comma, key) {
		c.ok = false
	}
}

func (c *canon) uint() uint64 {
	if !c.ok {
		return 0
	}
	j := c.i
	for j < len(c.b) && c.b[j] >= '0' && c.b[j] <= '9' {
		j++
	}
	v, err := strconv.ParseUint(string(c.b[c.i:j]), 10, 64)
	if err != nil {
		c.ok = false
		return 0
	}
	c.i = j
	return v
}

func (c *canon) int() int64 {
	neg := c.ok && c.i < len(c.b) && c.b[c.i] == '-'
	if neg {
		c.i++
	}
	v := c.uint()
	if v > 1<<62 {
		c.ok = false
		return 0
	}
	if neg {
		return -int64(v)
	}
	return int64(v)
}

// list reads a JSON array, calling elem for each element.
func (c *canon) list(elem func()) {
	c.lit("[")
	for first := true; c.ok && c.i < len(c.b) && c.b[c.i] != ']'; first = false {
		if !first {
			c.lit(",")
		}
		elem()
	}
	c.lit("]")
}

// uintAt, strAt and optUintAt read a key (after a comma if comma is
// set) and its value.
func (c *canon) uintAt(comma bool, key string) uint64 {
	c.key(comma, key)
	return c.uint()
}

func (c *canon) strAt(comma bool, key string) string {
	c.key(comma, key)
	return c.str()
}

func (c *canon) optUintAt(comma bool, key string) *uint64 {
	c.key(comma, key)
	return c.optUint()
}

// nsHead reads what appendNSHead writes.
func (c *canon) nsHead() (ino, dev uint64, id *uint64) {
	c.lit("{")
	return c.uintAt(false, "ino"), c.uintAt(true, "dev"), c.optUintAt(true, "id")
}

// optStr reads an omitempty string member, if there, into dst.
func (c *canon) optStr(key string, dst *string) {
	if c.peekKey(true, key) {
		*dst = c.str()
	}
}

func (c *canon) null() bool {
	if c.ok && len(c.b)-c.i >= 4 && string(c.b[c.i:c.i+4]) == "null" {
		c.i += 4
		return true
	}
	return false
}

func (c *canon) optUint() *uint64 {
	if c.null() {
		return nil
	}
	v := c.uint()
	return &v
}

// str reads a string with only the escapes the encoder writes.
func (c *canon) str() string {
	if !c.ok || c.i >= len(c.b) || c.b[c.i] != '"' {
		c.ok = false
		return ""
	}
	j := c.i + 1
	start := j
	var buf []byte
	for j < len(c.b) {
		switch b := c.b[j]; b {
		case '"':
			var s string
			if buf == nil {
				s = string(c.b[start:j])
			} else {
				s = string(append(buf, c.b[start:j]...))
			}
			c.i = j + 1
			return s
		case '\\':
			if j+1 >= len(c.b) {
				c.ok = false
				return ""
			}
			buf = append(buf, c.b[start:j]...)
			if e, ok := fastjson.Unescape(c.b[j+1]); ok {
				buf = append(buf, e)
				j += 2
				start = j
				continue
			}
			switch c.b[j+1] {
			case 'u':
				if j+6 > len(c.b) {
					c.ok = false
					return ""
				}
				v, err := strconv.ParseUint(string(c.b[j+2:j+6]), 16, 32)
				if err != nil || (v >= utf8.RuneSelf && v != 0x2028 && v != 0x2029) {
					c.ok = false
					return ""
				}
				buf = utf8.AppendRune(buf, rune(v))
				j += 4
			default:
				c.ok = false
				return ""
			}
			j += 2
			start = j
		default:
			if b < 0x20 {
				c.ok = false
				return ""
			}
			j++
		}
	}
	c.ok = false
	return ""
}

// parseCanonical reads body (a record's canonical encoding without the
// hash) into a record; ok is false for anything it does not recognise.
// The caller must still compare appendRecord's output with body.
func parseCanonical(body []byte) (r *Record, ok bool) {
	c := &canon{b: body, ok: true}
	r = &Record{}
	c.lit(`{`)
	r.Seq = c.uintAt(false, "seq")
	r.Time = c.strAt(true, "time")
	r.Host = c.strAt(true, "host")
	r.Source = c.strAt(true, "source")
	r.Stage = c.strAt(true, "stage")
	r.ContainerID = c.strAt(true, "container_id")
	c.optStr("bundle", &r.Bundle)
	c.optStr("namespace", &r.Namespace)
	if c.peekKey(true, "annotations") {
		c.lit("{")
		r.Annotations = map[string]string{}
		for c.ok {
			if len(r.Annotations) > 0 {
				if c.i < len(c.b) && c.b[c.i] == '}' {
					break
				}
				c.lit(",")
			}
			k := c.str()
			c.lit(":")
			r.Annotations[k] = c.str()
		}
		c.lit("}")
	}
	if c.peekKey(true, "pid") {
		a := &Ancestry{}
		r.Ancestry = a
		a.PID = int(c.int())
		a.StartTime = c.uintAt(true, "start_time")
		c.key(true, "user_chain")
		if !c.null() {
			a.User = []UserNS{}
			c.list(func() {
				var u UserNS
				u.Ino, u.Dev, u.ID = c.nsHead()
				c.key(true, "owner_uid")
				uid := c.uint()
				if uid > 1<<32-1 {
					c.ok = false
				}
				u.OwnerUID = uint32(uid)
				c.lit("}")
				a.User = append(a.User, u)
			})
		}
		c.key(true, "pid_chain")
		if !c.null() {
			a.PIDNS = []PIDNS{}
			c.list(func() {
				var p PIDNS
				p.Ino, p.Dev, p.ID = c.nsHead()
				p.OwnerUserIno = c.optUintAt(true, "owner_user_ino")
				c.lit("}")
				a.PIDNS = append(a.PIDNS, p)
			})
		}
	}
	c.optStr("policy", &r.Policy)
	c.optStr("mode", &r.Mode)
	c.optStr("verdict", &r.Verdict)
	if c.peekKey(true, "violations") {
		c.list(func() {
			var v Violation
			c.lit("{")
			v.Rule = c.strAt(false, "rule")
			v.Reason = c.strAt(true, "reason")
			c.lit("}")
			r.Violations = append(r.Violations, v)
		})
	}
	c.optStr("error", &r.Error)
	if c.peekKey(true, "ref") {
		r.Ref = &Ref{}
		c.lit("{")
		r.Ref.Seq = c.uintAt(false, "seq")
		r.Ref.Stage = c.strAt(true, "stage")
		r.Ref.Hash = c.strAt(true, "hash")
		c.lit("}")
	}
	c.optStr("torn", &r.Torn)
	if c.peekKey(true, "torn_bytes") {
		n := c.int()
		if n < -1<<31 || n > 1<<31-1 {
			c.ok = false
		}
		r.TornBytes = int(n)
	}
	r.Version = c.strAt(true, "version")
	r.Prev = c.strAt(true, "prev")
	c.lit("}")
	if !c.ok || c.i != len(body) {
		return nil, false
	}
	return r, true
}

// Head is what every record line starts with, in canonical encoding.
type Head struct {
	Seq                        uint64
	Source, Stage, ContainerID string
}

// PeekHead reads the head of a record line without decoding the rest of
// it or checking its hash: a cheap look at which container and stage a
// line is about, for readers that skip most lines (the container source
// of lsuserns). ok is false when the line does not start as a record in
// canonical encoding does. Use [Decode] on the lines kept.
func PeekHead(line []byte) (h Head, ok bool) {
	c := &canon{b: line, ok: true}
	c.lit(`{`)
	h.Seq = c.uintAt(false, "seq")
	c.strAt(true, "time")
	c.strAt(true, "host")
	h.Source = c.strAt(true, "source")
	h.Stage = c.strAt(true, "stage")
	h.ContainerID = c.strAt(true, "container_id")
	return h, c.ok
}
