package audit

import (
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/nsrel/nsrel/hook/internal/fastjson"
)

// The fast path of decoding: the members of a record in exactly the
// order and form appendRecord writes them (this version's records and
// earlier ones', which are the same without later members), read in one
// pass without building a tree. Anything else (another order, members this version
// does not know, white space) makes it give up, and decodeMembers reads
// the line. FuzzDecodePaths holds the two to the same result.

// canon reads a line in the exact form the encoder writes. Any deviation
// makes it fail (ok false).
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

func (c *canon) uint(bits int) uint64 {
	if !c.ok {
		return 0
	}
	j := c.i
	for j < len(c.b) && c.b[j] >= '0' && c.b[j] <= '9' {
		j++
	}
	v, err := strconv.ParseUint(string(c.b[c.i:j]), 10, bits)
	if err != nil || (j-c.i > 1 && c.b[c.i] == '0') {
		c.ok = false
		return 0
	}
	c.i = j
	return v
}

func (c *canon) int(bits int) int64 {
	neg := c.ok && c.i < len(c.b) && c.b[c.i] == '-'
	if neg {
		c.i++
	}
	v := c.uint(64)
	if !c.ok || v > 1<<(bits-1) || !neg && v == 1<<(bits-1) {
		c.ok = false
		return 0
	}
	if neg {
		if v == 0 {
			c.ok = false // "-0" is not what the encoder writes
		}
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

func (c *canon) uintAt(comma bool, key string) uint64 {
	c.key(comma, key)
	return c.uint(64)
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

// skipOptStr skips an omitempty string member, if there, without
// unescaping it.
func (c *canon) skipOptStr(key string) {
	if c.peekKey(true, key) {
		c.skipStr()
	}
}

// skipStr skips a JSON string without unescaping it.
func (c *canon) skipStr() {
	if !c.ok || c.i >= len(c.b) || c.b[c.i] != '"' {
		c.ok = false
		return
	}
	for j := c.i + 1; j < len(c.b); j++ {
		switch c.b[j] {
		case '\\':
			j++
		case '"':
			c.i = j + 1
			return
		}
	}
	c.ok = false
}

// ids reads a list of IDs (null: nil).
func (c *canon) ids() []uint32 {
	if c.null() {
		return nil
	}
	out := []uint32{}
	c.list(func() { out = append(out, uint32(c.uint(32))) })
	return out
}

// fixedIDs reads a list of exactly len(dst) IDs into dst.
func (c *canon) fixedIDs(dst []uint32) {
	c.lit("[")
	for i := range dst {
		if i > 0 {
			c.lit(",")
		}
		dst[i] = uint32(c.uint(32))
	}
	c.lit("]")
}

// idRangesAt reads ,"key": and a list of [inside,outside,count] (null:
// nil), as appendIDRange writes them.
func (c *canon) idRangesAt(key string) []IDRange {
	c.key(true, key)
	if c.null() {
		return nil
	}
	out := []IDRange{}
	c.list(func() {
		var r IDRange
		c.lit("[")
		r.Inside = uint32(c.uint(32))
		c.lit(",")
		r.Outside = uint32(c.uint(32))
		c.lit(",")
		r.Count = uint32(c.uint(32))
		c.lit("]")
		out = append(out, r)
	})
	return out
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
	v := c.uint(64)
	return &v
}

// str reads a JSON string (valid UTF-8, every escape JSON has).
func (c *canon) str() string {
	if !c.ok || c.i >= len(c.b) || c.b[c.i] != '"' {
		c.ok = false
		return ""
	}
	j := c.i + 1
	start := j
	var buf []byte
	for j < len(c.b) {
		switch b := c.b[j]; {
		case b == '"':
			var s string
			if buf == nil {
				s = string(c.b[start:j])
			} else {
				s = string(append(buf, c.b[start:j]...))
			}
			c.i = j + 1
			return s
		case b == '\\':
			if j+1 >= len(c.b) {
				c.ok = false
				return ""
			}
			buf = append(buf, c.b[start:j]...)
			if c.b[j+1] == 'u' {
				r, n := fastjson.UnicodeEscape(c.b[j:])
				if n == 0 {
					c.ok = false
					return ""
				}
				buf = utf8.AppendRune(buf, r)
				j += n
				start = j
				continue
			}
			e, ok := fastjson.Unescape(c.b[j+1])
			if !ok {
				c.ok = false
				return ""
			}
			buf = append(buf, e)
			j += 2
			start = j
		case b < 0x20:
			c.ok = false
			return ""
		case b < utf8.RuneSelf:
			j++
		default:
			r, size := utf8.DecodeRune(c.b[j:])
			if r == utf8.RuneError && size == 1 {
				c.ok = false
				return ""
			}
			j += size
		}
	}
	c.ok = false
	return ""
}

// knownFormats are the versions parseCanonical reads: this one and each
// earlier one, whose members are a subset of this one's in the same
// order (an older writer wrote none of the later members).
var knownFormats = func() []string {
	f := make([]string, 0, FormatMinor+1)
	for minor := range FormatMinor + 1 {
		f = append(f, strconv.Itoa(FormatMajor)+"."+strconv.Itoa(minor))
	}
	return f
}()

// parseCanonical reads body (a record's bytes up to its hash, closed)
// written in appendRecord's order and form; ok is false for anything
// else.
func parseCanonical(body []byte) (r *Record, ok bool) {
	c := &canon{b: body, ok: true}
	r = &Record{}
	c.lit(`{`)
	comma := false
	if c.peekKey(false, "format") {
		r.Format = c.str()
		if !c.ok || !slices.Contains(knownFormats, r.Format) {
			return nil, false // other versions: by name
		}
		comma = true
	}
	r.Seq = c.uintAt(comma, "seq")
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
		last := ""
		for n := 0; c.ok; n++ {
			if n > 0 {
				if c.i < len(c.b) && c.b[c.i] == '}' {
					break
				}
				c.lit(",")
			}
			k := c.str()
			if n > 0 && k <= last {
				return nil, false // the encoder sorts keys: a duplicate or another order
			}
			last = k
			c.lit(":")
			r.Annotations[k] = c.str()
		}
		c.lit("}")
	}
	if c.peekKey(true, "pid") {
		a := &Ancestry{}
		r.Ancestry = a
		a.PID = int(c.int(32))
		a.StartTime = c.uintAt(true, "start_time")
		c.key(true, "user_chain")
		if !c.null() {
			a.User = []UserNS{}
			c.list(func() {
				var u UserNS
				u.Ino, u.Dev, u.ID = c.nsHead()
				c.key(true, "owner_uid")
				u.OwnerUID = uint32(c.uint(32))
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
		if c.peekKey(true, "user_maps") {
			c.list(func() {
				var m UserMaps
				c.lit("{")
				m.Ino = c.uintAt(false, "ino")
				m.UIDMap = c.idRangesAt("uid_map")
				m.GIDMap = c.idRangesAt("gid_map")
				m.HostUIDMap = c.idRangesAt("host_uid_map")
				m.HostGIDMap = c.idRangesAt("host_gid_map")
				m.SetGroups = c.strAt(true, "setgroups")
				c.optStr("error", &m.Error)
				c.lit("}")
				a.Maps = append(a.Maps, m)
			})
		}
		if c.peekKey(true, "creds") {
			cr := &Creds{}
			a.Creds = cr
			c.lit("{")
			for i, f := range cr.ids() {
				c.key(i > 0, f.key)
				*f.val = uint32(c.uint(32))
			}
			cr.CgroupID = c.optUintAt(true, "cgroup_id")
			c.lit("}")
		}
		if c.peekKey(true, "held") {
			h := &HeldIDs{}
			a.Held = h
			c.lit("{")
			c.key(false, "uids")
			c.fixedIDs(h.UIDs[:])
			c.key(true, "gids")
			c.fixedIDs(h.GIDs[:])
			c.key(true, "groups")
			h.Groups = c.ids()
			c.lit("}")
		}
		if c.peekKey(true, "idmapped_mounts") {
			c.list(func() {
				var m IDMappedMount
				c.lit("{")
				m.Point = c.strAt(false, "point")
				m.UIDMap = c.idRangesAt("uid_map")
				m.GIDMap = c.idRangesAt("gid_map")
				c.optStr("error", &m.Err)
				c.lit("}")
				a.IDMapped = append(a.IDMapped, m)
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
		r.TornBytes = int(c.int(strconv.IntSize))
	}
	c.optStr("torn_sha256", &r.TornSHA256)
	c.optStr("note", &r.Note)
	c.optStr("seal_id", &r.SealID)
	c.optStr("seal_error", &r.SealError)
	if c.peekKey(true, "late_seals") {
		c.list(func() {
			r.LateSeals = append(r.LateSeals, c.str())
		})
	}
	if c.peekKey(true, "damage") {
		c.list(func() {
			var d DamagedLine
			c.lit("{")
			d.File = c.strAt(false, "file")
			c.key(true, "offset")
			d.Offset = c.int(64)
			c.key(true, "bytes")
			d.Bytes = int(c.int(strconv.IntSize))
			d.SHA256 = c.strAt(true, "sha256")
			d.Kind = c.strAt(true, "kind")
			d.Reason = c.strAt(true, "reason")
			c.lit("}")
			r.Damage = append(r.Damage, d)
		})
	}
	if c.peekKey(true, "dropped") {
		r.Dropped = &Dropped{}
		c.lit("{")
		r.Dropped.File = c.strAt(false, "file")
		r.Dropped.FirstSeq = c.uintAt(true, "first_seq")
		r.Dropped.LastSeq = c.uintAt(true, "last_seq")
		r.Dropped.LastHash = c.strAt(true, "last_hash")
		c.lit("}")
	}
	c.optStr("boot_id", &r.BootID)
	r.Version = c.strAt(true, "version")
	r.Prev = c.strAt(true, "prev")
	c.lit("}")
	if !c.ok || c.i != len(body) {
		return nil, false
	}
	return r, true
}
