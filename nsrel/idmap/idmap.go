package idmap

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// MaxLines is the most lines the kernel accepts in a uid_map or gid_map
// file (Linux 4.15 and later; 5 before).
const MaxLines = 340

// Range is one line of a uid_map or gid_map file.
type Range struct {
	// Inside is the first ID in the namespace, Outside the ID it is in
	// the other namespace, Count how many consecutive IDs the line maps.
	Inside, Outside, Count uint32
}

// Map is the lines of a uid_map or gid_map file, in the kernel's order.
// An empty map maps nothing (a namespace whose map was not written yet).
type Map []Range

// Identity returns the map of the initial user namespace, which maps
// every ID to itself: "0 0 4294967295" (ID 4294967295 is invalid).
func Identity() Map { return Map{{Inside: 0, Outside: 0, Count: 4294967295}} }

// Own returns the IDs the lines of m map, each to itself: the maps of a
// user namespace seen from inside it, where no other ID exists (m its
// own lines, relative to its parent). nil for nil.
func Own(m Map) Map {
	return each(m, func(r Range) Range { return Range{Inside: r.Inside, Outside: r.Inside, Count: r.Count} })
}

// each returns the ranges of m, each through f; nil for nil.
func each(m Map, f func(Range) Range) Map {
	if m == nil {
		return nil
	}
	out := make(Map, len(m))
	for i, r := range m {
		out[i] = f(r)
	}
	return out
}

// Parse reads the contents of a uid_map or gid_map file: lines of three
// decimal numbers separated by blanks. It refuses a line with another
// number of fields, a number that is not a 32-bit unsigned integer, a
// count of 0, a range that runs past 2^32 on either side, and more than
// [MaxLines] lines.
func Parse(b []byte) (Map, error) {
	var m Map
	for n, line := range bytes.Split(b, []byte{'\n'}) {
		f := bytes.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("idmap: line %d: %d fields, want 3 (inside outside count)", n+1, len(f))
		}
		var v [3]uint32
		for i := range f {
			x, err := strconv.ParseUint(string(f[i]), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("idmap: line %d: %q is not a 32-bit unsigned number", n+1, f[i])
			}
			v[i] = uint32(x)
		}
		r := Range{Inside: v[0], Outside: v[1], Count: v[2]}
		if r.Count == 0 || uint64(r.Inside)+uint64(r.Count) > 1<<32 || uint64(r.Outside)+uint64(r.Count) > 1<<32 {
			return nil, fmt.Errorf("idmap: line %d: range %d %d %d is empty or runs past 2^32", n+1, r.Inside, r.Outside, r.Count)
		}
		if len(m) == MaxLines {
			return nil, fmt.Errorf("idmap: more than %d lines", MaxLines)
		}
		m = append(m, r)
	}
	return m, nil
}

// String formats m as the kernel prints it: one "inside outside count"
// line per range, right-aligned in columns of 10, each line ending in a
// newline.
func (m Map) String() string {
	var b strings.Builder
	for _, r := range m {
		fmt.Fprintf(&b, "%10d %10d %10d\n", r.Inside, r.Outside, r.Count)
	}
	return b.String()
}

// Count returns the number of IDs m maps.
func (m Map) Count() uint64 {
	var n uint64
	for _, r := range m {
		n += uint64(r.Count)
	}
	return n
}

// Host returns the outside IDs m maps, as sorted and merged [Spans].
func (m Map) Host() Spans {
	s := make(Spans, 0, len(m))
	for _, r := range m {
		s = append(s, Span{First: uint64(r.Outside), Count: uint64(r.Count)})
	}
	return s.normal()
}

// MapsOutside reports whether m maps the outside ID id.
func (m Map) MapsOutside(id uint32) bool {
	for _, r := range m {
		if id >= r.Outside && uint64(id) < uint64(r.Outside)+uint64(r.Count) {
			return true
		}
	}
	return false
}

// ToOutside returns the outside ID m maps the inside ID id to, and
// whether it maps it.
func (m Map) ToOutside(id uint32) (uint32, bool) {
	for _, r := range m {
		if id >= r.Inside && uint64(id) < uint64(r.Inside)+uint64(r.Count) {
			return r.Outside + (id - r.Inside), true
		}
	}
	return 0, false
}

// Invert returns m seen from the other side: every range with inside and
// outside swapped.
func Invert(m Map) Map {
	return each(m, func(r Range) Range { return Range{Inside: r.Outside, Outside: r.Inside, Count: r.Count} })
}

// Compose returns the map from the inside of inner to the outside of
// outer, where inner's outside IDs are outer's inside IDs: a nested
// namespace's map composed with its parent's. IDs of inner whose outside
// ID outer does not map are left out (the kernel would not let such a
// map be written). The result is sorted by inside ID, with adjacent
// ranges merged.
func Compose(inner, outer Map) Map {
	var out Map
	for _, a := range inner {
		aEnd := uint64(a.Outside) + uint64(a.Count)
		for _, b := range outer {
			bEnd := uint64(b.Inside) + uint64(b.Count)
			lo, hi := max(uint64(a.Outside), uint64(b.Inside)), min(aEnd, bEnd)
			if lo >= hi {
				continue
			}
			out = append(out, Range{
				Inside:  uint32(uint64(a.Inside) + lo - uint64(a.Outside)),
				Outside: uint32(uint64(b.Outside) + lo - uint64(b.Inside)),
				Count:   uint32(hi - lo),
			})
		}
	}
	return merge(out)
}

// Relative returns the map of a namespace relative to its parent (the
// lines its creator wrote) from the namespace's map and its parent's,
// both relative to the same ancestor (for example both read on the
// host): Compose(child, Invert(parent)).
func Relative(child, parent Map) Map {
	return Compose(child, Invert(parent))
}

// merge sorts m by inside ID and joins ranges that continue each other
// on both sides.
func merge(m Map) Map {
	slices.SortFunc(m, func(a, b Range) int { return cmp.Compare(a.Inside, b.Inside) })
	out := m[:0]
	for _, r := range m {
		if n := len(out); n > 0 {
			p := &out[n-1]
			if uint64(p.Inside)+uint64(p.Count) == uint64(r.Inside) && uint64(p.Outside)+uint64(p.Count) == uint64(r.Outside) &&
				uint64(p.Count)+uint64(r.Count) < 1<<32 {
				p.Count += r.Count
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// Equal reports whether a and b map the same IDs the same way, whatever
// the order and split of their lines.
func Equal(a, b Map) bool {
	return slices.Equal(merge(slices.Clone(a)), merge(slices.Clone(b)))
}

// Span is Count consecutive IDs from First.
type Span struct {
	First, Count uint64
}

// Last returns the last ID of s (First-1 for an empty span).
func (s Span) Last() uint64 { return s.First + s.Count - 1 }

// String returns "FIRST-LAST", or "FIRST" for a single ID.
func (s Span) String() string {
	if s.Count == 1 {
		return strconv.FormatUint(s.First, 10)
	}
	return strconv.FormatUint(s.First, 10) + "-" + strconv.FormatUint(s.Last(), 10)
}

// Spans is a set of IDs as spans. The functions of this package return
// them sorted, disjoint and merged.
type Spans []Span

// String returns the spans joined by ", ".
func (s Spans) String() string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = x.String()
	}
	return strings.Join(parts, ", ")
}

// Count returns the number of IDs in s (sorted and disjoint).
func (s Spans) Count() uint64 {
	var n uint64
	for _, x := range s {
		n += x.Count
	}
	return n
}

// normal sorts and merges s in place, dropping empty spans.
func (s Spans) normal() Spans {
	slices.SortFunc(s, func(a, b Span) int { return cmp.Compare(a.First, b.First) })
	out := s[:0]
	for _, x := range s {
		if x.Count == 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].First+out[n-1].Count >= x.First {
			out[n-1].Count = max(out[n-1].First+out[n-1].Count, x.First+x.Count) - out[n-1].First
			continue
		}
		out = append(out, x)
	}
	return out
}

// Normal returns a sorted, disjoint, merged copy of s.
func (s Spans) Normal() Spans { return slices.Clone(s).normal() }

// Overlap returns the IDs both a and b hold, as sorted merged spans (nil
// when they are disjoint). a and b need not be sorted.
func Overlap(a, b Spans) Spans {
	a, b = a.Normal(), b.Normal()
	var out Spans
	for i, j := 0, 0; i < len(a) && j < len(b); {
		lo := max(a[i].First, b[j].First)
		aEnd, bEnd := a[i].First+a[i].Count, b[j].First+b[j].Count
		hi := min(aEnd, bEnd)
		if lo < hi {
			out = append(out, Span{First: lo, Count: hi - lo})
		}
		if aEnd < bEnd {
			i++
		} else {
			j++
		}
	}
	return out
}

// Outside returns the IDs of s that allowed does not hold (nil when
// allowed holds all of s).
func Outside(s, allowed Spans) Spans {
	s, allowed = s.Normal(), allowed.Normal()
	var out Spans
	j := 0
	for _, x := range s {
		cur, end := x.First, x.First+x.Count
		for ; j < len(allowed) && allowed[j].First+allowed[j].Count <= cur; j++ {
		}
		for k := j; k < len(allowed) && cur < end && allowed[k].First < end; k++ {
			if allowed[k].First > cur {
				out = append(out, Span{First: cur, Count: allowed[k].First - cur})
			}
			cur = max(cur, allowed[k].First+allowed[k].Count)
		}
		if cur < end {
			out = append(out, Span{First: cur, Count: end - cur})
		}
	}
	return out
}

// ErrNoEntry matches errors for a subordinate ID file with no entry for
// the user.
var ErrNoEntry = errors.New("no subordinate ID entry")

// ParseSubID returns the ranges a subordinate ID file (/etc/subuid,
// /etc/subgid: lines "NAME:FIRST:COUNT", subuid(5)) grants the user
// whose name or numeric ID is users[0], on lines that name it in any of
// the forms users lists (its name and its UID: [SubIDUsers]). Empty
// lines and lines starting with '#' are skipped; a malformed line is an
// error naming it. A user with no entry is an error matching
// [ErrNoEntry].
func ParseSubID(b []byte, users ...string) (Spans, error) {
	if len(users) == 0 {
		return nil, fmt.Errorf("idmap: no user: %w", ErrNoEntry)
	}
	var out Spans
	for n, line := range bytes.Split(b, []byte{'\n'}) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		f := bytes.Split(line, []byte{':'})
		if len(f) != 3 {
			return nil, fmt.Errorf("idmap: subordinate ID line %d: want NAME:FIRST:COUNT", n+1)
		}
		first, err1 := strconv.ParseUint(string(f[1]), 10, 32)
		count, err2 := strconv.ParseUint(string(f[2]), 10, 32)
		if err1 != nil || err2 != nil || first+count > 1<<32 {
			return nil, fmt.Errorf("idmap: subordinate ID line %d: FIRST and COUNT must be 32-bit numbers within 2^32", n+1)
		}
		if slices.Contains(users, string(f[0])) {
			out = append(out, Span{First: first, Count: count})
		}
	}
	if out.Normal().Count() == 0 {
		return nil, fmt.Errorf("idmap: user %q: %w", users[0], ErrNoEntry)
	}
	return out.Normal(), nil
}

// SubIDUsers returns the forms in which a subordinate ID file may name
// user (a name or a numeric UID), for [ParseSubID], as newuidmap(1) and
// newgidmap(1) of shadow 4.3 and later take them (find_range in its
// lib/subordinateio.c), through passwd (the content of passwd(5)). user
// is resolved to a UID as getpwnam(3) would, by the first passwd entry
// of that name (an all-digit name too), else as a number ("01000" is
// 1000); a line then counts when it names that UID in decimal or names a
// user whose first passwd entry has that UID: the caller's own name and
// every alias of its UID (root and toor both, whichever is configured),
// but not a name whose first entry has another UID. The result is user,
// the UID in decimal, then those names in the file's order; user alone
// when it is neither a name passwd has nor a number.
func SubIDUsers(passwd []byte, user string) []string {
	// Nothing but the result is built (a 16 MiB passwd is read at each
	// check: BenchmarkSubIDUsers). One scan parses every entry, for the
	// names of the UID; the rest search for the line of a name.
	users := []string{user}
	add := func(s string) {
		if !slices.Contains(users, s) {
			users = append(users, s)
		}
	}
	uid, found := firstEntry(passwd, user)
	if !found {
		n, err := strconv.ParseUint(user, 10, 32)
		if err != nil {
			return users
		}
		uid = uint32(n)
	}
	add(strconv.FormatUint(uint64(uid), 10))
	var names []string // of entries with that UID, each once, in the file's order
	for rest := passwd; ; {
		name, id, r, ok := nextPasswdEntry(rest)
		if !ok {
			break
		}
		rest = r
		if id == uid && indexName(names, name) < 0 {
			names = append(names, string(name))
		}
	}
	for _, name := range names {
		// A later entry of a name whose first has another UID does not
		// count.
		if id, ok := firstEntry(passwd, name); ok && id == uid {
			add(name)
		}
	}
	return users
}

// firstEntry returns the UID of passwd's first entry named name, as
// [nextPasswdEntry] takes entries, finding its line without parsing the
// others.
func firstEntry(passwd []byte, name string) (uid uint32, ok bool) {
	if name == "" {
		return 0, false
	}
	key := append([]byte(name), ':')
	for off := 0; ; off++ {
		i := bytes.Index(passwd[off:], key)
		if i < 0 {
			return 0, false
		}
		off += i
		if off > 0 && passwd[off-1] != '\n' {
			continue
		}
		line := passwd[off:]
		if j := bytes.IndexByte(line, '\n'); j >= 0 {
			line = line[:j]
		}
		if n, id, _, ok := nextPasswdEntry(line); ok && string(n) == name {
			return id, true
		}
	}
}

// indexName returns the index of name in names, or -1, without
// allocating.
func indexName(names []string, name []byte) int {
	for i, n := range names {
		if n == string(name) {
			return i
		}
	}
	return -1
}

// nextPasswdEntry returns the name and UID of the first entry of data,
// in passwd(5) lines "name:password:UID:GID:...", and what follows its
// line; ok is false when no entry is left. Empty lines, comments, NIS
// "+"/"-" lines and malformed lines (fewer than four fields, an empty
// name, a UID that is not a 32-bit decimal number) are skipped. It
// allocates nothing: a passwd file may be 16 MiB ([MaxPasswdFile]).
func nextPasswdEntry(data []byte) (name []byte, uid uint32, rest []byte, ok bool) {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) == 0 || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			continue
		}
		name, line = line[:i], line[i+1:]
		if i = bytes.IndexByte(line, ':'); i < 0 { // password
			continue
		}
		line = line[i+1:]
		if i = bytes.IndexByte(line, ':'); i < 0 {
			continue
		}
		if uid, ok = parseUint32(line[:i]); ok {
			return name, uid, data, true
		}
	}
	return nil, 0, nil, false
}

// parseUint32 parses b as strconv.ParseUint(string(b), 10, 32) would,
// without allocating.
func parseUint32(b []byte) (uint32, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n = n*10 + uint64(c-'0'); n > math.MaxUint32 {
			return 0, false
		}
	}
	return uint32(n), true
}

// ParsePasswd parses passwd(5) lines "name:password:UID:GID:..." into a
// UID to name map; the first entry for a UID wins. Comments, NIS "+"/"-"
// lines and malformed lines are skipped.
func ParsePasswd(data []byte) map[uint32]string {
	users := make(map[uint32]string)
	for {
		name, uid, rest, ok := nextPasswdEntry(data)
		if !ok {
			return users
		}
		data = rest
		if _, ok := users[uid]; !ok {
			users[uid] = string(name)
		}
	}
}
