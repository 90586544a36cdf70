package fastjson

import (
	"bytes"
	"encoding/json"
	"slices"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Node is a JSON value with the byte offset where it starts.
type Node struct {
	// Kind is 'o' object, 'a' array, 's' string, 'n' number, 'b' bool,
	// 'z' null.
	Kind byte
	// Off is the byte offset of the value's first byte.
	Off int
	// Members of an object, in order; Elems of an array.
	Members []Member
	Elems   []*Node
	// Str, Num and Bool hold a scalar of their kind.
	Str  string
	Num  json.Number
	Bool bool
}

// Member is an object member.
type Member struct {
	Key string
	// KeyOff is the byte offset of the key's opening quote.
	KeyOff int
	Val    *Node
}

// Parse parses plain, well-formed JSON (one value, nothing but white
// space after it) into a tree, as encoding/json's tokenizer would read
// it, \u escapes included (a lone or mismatched UTF-16 surrogate becomes
// U+FFFD, as encoding/json makes it). It gives up (ok false) on anything
// unusual: control characters, invalid UTF-8, duplicate keys, nesting
// deeper than [MaxNesting], any syntax error. The caller then takes the
// encoding/json path, which also words the error.
func Parse(data []byte) (n *Node, ok bool) {
	p := &fastParser{b: data, ok: true}
	n = p.value(0)
	p.ws()
	if !p.ok || p.i != len(data) {
		return nil, false
	}
	return n, true
}

// MaxNesting is the deepest nesting Parse reads.
const MaxNesting = 64

type fastParser struct {
	b  []byte
	i  int
	ok bool
}

func (p *fastParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) fail() *Node {
	p.ok = false
	return nil
}

func (p *fastParser) value(depth int) *Node {
	p.ws()
	if !p.ok || p.i >= len(p.b) || depth > MaxNesting {
		return p.fail()
	}
	n := &Node{Off: p.i}
	switch c := p.b[p.i]; {
	case c == '{':
		n.Kind = 'o'
		if p.open('}') {
			return n
		}
		var seen map[string]bool
		for p.ok {
			p.ws()
			koff := p.i
			key, ok := p.str()
			if !ok {
				return p.fail()
			}
			// Duplicate keys: a linear look for the small objects of
			// records and states, a map beyond.
			if len(n.Members) < 32 {
				for _, m := range n.Members {
					if m.Key == key {
						return p.fail()
					}
				}
			} else {
				if seen == nil {
					seen = make(map[string]bool, 64)
					for _, m := range n.Members {
						seen[m.Key] = true
					}
				}
				if seen[key] {
					return p.fail()
				}
				seen[key] = true
			}
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return p.fail()
			}
			p.i++
			val := p.value(depth + 1)
			if !p.ok {
				return nil
			}
			n.Members = append(n.Members, Member{Key: key, KeyOff: koff, Val: val})
			if p.end('}') {
				return n
			}
		}
		return nil
	case c == '[':
		n.Kind = 'a'
		if p.open(']') {
			return n
		}
		for p.ok {
			val := p.value(depth + 1)
			if !p.ok {
				return nil
			}
			n.Elems = append(n.Elems, val)
			if p.end(']') {
				return n
			}
		}
		return nil
	case c == '"':
		s, ok := p.str()
		if !ok {
			return p.fail()
		}
		n.Kind, n.Str = 's', s
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.i
		if !p.number() {
			return p.fail()
		}
		n.Kind, n.Num = 'n', json.Number(p.b[start:p.i])
	case p.lit("true"):
		n.Kind, n.Bool = 'b', true
	case p.lit("false"):
		n.Kind = 'b'
	case p.lit("null"):
		n.Kind = 'z'
	default:
		return p.fail()
	}
	if !p.delim() {
		return p.fail()
	}
	return n
}

// open consumes an opening bracket and reports whether closer follows
// at once (an empty object or array), consuming it too.
func (p *fastParser) open(closer byte) bool {
	p.i++
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == closer {
		p.i++
		return true
	}
	return false
}

// end reads what follows a member or element: the closer (true) or a
// comma (false); anything else fails the parse.
func (p *fastParser) end(closer byte) bool {
	p.ws()
	switch {
	case p.i < len(p.b) && p.b[p.i] == closer:
		p.i++
		return true
	case p.i < len(p.b) && p.b[p.i] == ',':
		p.i++
	default:
		p.ok = false
	}
	return false
}

// delim reports whether a scalar ends here: white space, a separator or
// the end of the input.
func (p *fastParser) delim() bool {
	if p.i >= len(p.b) {
		return true
	}
	switch p.b[p.i] {
	case ' ', '\t', '\n', '\r', ',', ']', '}', ':':
		return true
	}
	return false
}

func (p *fastParser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// number reads a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *fastParser) number() bool {
	digits := func() int {
		s := p.i
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
		}
		return p.i - s
	}
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return false
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return false
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// str reads a string of valid UTF-8.
func (p *fastParser) str() (string, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", false
	}
	j := p.i + 1
	start := j
	var buf []byte
	for j < len(p.b) {
		c := p.b[j]
		switch {
		case c == '"':
			s := string(p.b[start:j])
			if buf != nil {
				s = string(append(buf, p.b[start:j]...))
			}
			p.i = j + 1
			return s, true
		case c == '\\':
			if j+1 >= len(p.b) {
				return "", false
			}
			buf = append(buf, p.b[start:j]...)
			if p.b[j+1] == 'u' {
				r, n := UnicodeEscape(p.b[j:])
				if n == 0 {
					return "", false
				}
				buf = utf8.AppendRune(buf, r)
				j += n
				start = j
				continue
			}
			e, ok := Unescape(p.b[j+1])
			if !ok {
				return "", false
			}
			buf = append(buf, e)
			j += 2
			start = j
		case c < 0x20:
			return "", false
		case c < utf8.RuneSelf:
			j++
		default:
			r, size := utf8.DecodeRune(p.b[j:])
			if r == utf8.RuneError && size == 1 {
				return "", false
			}
			j += size
		}
	}
	return "", false
}

// UnicodeEscape reads the \uXXXX escape that b starts with, and the low
// surrogate's escape after it when XXXX is a high surrogate, and returns
// the rune and the bytes read (0: not a valid escape). A surrogate that is
// not part of a valid pair reads as U+FFFD, and an escape after it is
// left for the next call, as encoding/json reads them.
func UnicodeEscape(b []byte) (rune, int) {
	r := hex4(b)
	if r < 0 {
		return 0, 0
	}
	if !utf16.IsSurrogate(r) {
		return r, 6
	}
	if d := utf16.DecodeRune(r, hex4(b[6:])); d != unicode.ReplacementChar {
		return d, 12
	}
	return unicode.ReplacementChar, 6
}

// hex4 reads \uXXXX (hex digits of either case) at the start of b, or
// returns -1.
func hex4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// TopLevelStrings reads the members of a JSON object in data up to the
// first syntax error (so also from invalid or cut input) and returns the
// string values of the given keys found at the top level: what a caller
// can still learn from a document it must refuse.
func TopLevelStrings(data []byte, keys ...string) map[string]string {
	out := map[string]string{}
	d := json.NewDecoder(bytes.NewReader(data))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return out
	}
	for d.More() {
		kt, err := d.Token()
		if err != nil {
			return out
		}
		vt, err := d.Token()
		if err != nil {
			return out
		}
		k, _ := kt.(string)
		if s, ok := vt.(string); ok && slices.Contains(keys, k) {
			out[k] = s
		}
		for depth := 0; vt == json.Delim('{') || vt == json.Delim('[') || depth > 0; {
			switch vt {
			case json.Delim('{'), json.Delim('['):
				depth++
			case json.Delim('}'), json.Delim(']'):
				depth--
			}
			if depth == 0 {
				break
			}
			if vt, err = d.Token(); err != nil {
				return out
			}
		}
	}
	return out
}
