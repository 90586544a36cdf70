package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nsrel/nsrel/hook/internal/fastjson"
	"github.com/nsrel/nsrel/internal/vocab"
)

// node is a JSON value with the byte offset where it starts, so that
// errors can name a line and column; member is an object member.
type (
	node   = fastjson.Node
	member = fastjson.Member
)

// parseTree parses data (one JSON value, nothing after it) into a tree.
func parseTree(data []byte) (*node, error) {
	if n, ok := fastjson.Parse(data); ok {
		return n, nil
	}
	return parseTreeJSON(data)
}

// parseTreeJSON is parseTree with encoding/json's tokenizer, which names
// every syntax error; fastjson.Parse must give the same tree for any
// input it accepts.
func parseTreeJSON(data []byte) (*node, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	p := &treeParser{d: d, data: data}
	n, err := p.value(0, "")
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, &posError{off: p.next(), msg: "unexpected data after the top-level value"}
	}
	return n, nil
}

type treeParser struct {
	d    *json.Decoder
	data []byte
}

const maxNesting = fastjson.MaxNesting

// next returns the offset of the next token: after the last one, skipping
// white space and the separators the decoder consumes implicitly.
func (p *treeParser) next() int {
	off := int(p.d.InputOffset())
	for off < len(p.data) && strings.IndexByte(" \t\r\n,:", p.data[off]) >= 0 {
		off++
	}
	return off
}

func (p *treeParser) token() (json.Token, int, error) {
	off := p.next()
	tok, err := p.d.Token()
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			// The offset is just past the offending byte.
			o := max(int(se.Offset)-1, 0)
			return nil, o, &posError{off: o, msg: "JSON syntax error: " + se.Error()}
		}
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, len(p.data), &posError{off: len(p.data), msg: "unexpected end of file"}
		}
		return nil, off, &posError{off: off, msg: err.Error()}
	}
	return tok, off, nil
}

// value parses the value at path (the key path an error names).
func (p *treeParser) value(depth int, path string) (*node, error) {
	if depth > maxNesting {
		return nil, &posError{off: p.next(), msg: "nested too deeply"}
	}
	tok, off, err := p.token()
	if err != nil {
		return nil, err
	}
	return p.fromToken(tok, off, depth, path)
}

func (p *treeParser) fromToken(tok json.Token, off, depth int, path string) (*node, error) {
	n := &node{Off: off}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			n.Kind = 'o'
			seen := map[string]bool{}
			for p.d.More() {
				kt, koff, err := p.token()
				if err != nil {
					return nil, err
				}
				key, ok := kt.(string)
				if !ok {
					return nil, &posError{off: koff, msg: "object key is not a string"}
				}
				if seen[key] {
					return nil, &posError{off: koff, path: join(path, key), msg: "duplicate key"}
				}
				seen[key] = true
				val, err := p.value(depth+1, join(path, key))
				if err != nil {
					return nil, err
				}
				n.Members = append(n.Members, member{Key: key, KeyOff: koff, Val: val})
			}
			if _, _, err := p.token(); err != nil { // '}'
				return nil, err
			}
		case '[':
			n.Kind = 'a'
			for p.d.More() {
				val, err := p.value(depth+1, fmt.Sprintf("%s[%d]", path, len(n.Elems)))
				if err != nil {
					return nil, err
				}
				n.Elems = append(n.Elems, val)
			}
			if _, _, err := p.token(); err != nil { // ']'
				return nil, err
			}
		default:
			return nil, &posError{off: off, msg: fmt.Sprintf("unexpected %q", rune(v))}
		}
	case string:
		n.Kind, n.Str = 's', v
	case json.Number:
		n.Kind, n.Num = 'n', v
	case bool:
		n.Kind, n.Bool = 'b', v
	case nil:
		n.Kind = 'z'
	default:
		return nil, &posError{off: off, msg: fmt.Sprintf("unexpected token %v", tok)}
	}
	return n, nil
}

// posError is an error at a byte offset, turned into line:column by
// [lineCol].
type posError struct {
	off  int
	path string
	msg  string
}

func (e *posError) Error() string {
	if e.path != "" {
		// A key may hold anything: a newline split the line.
		return vocab.Printable(e.path) + ": " + e.msg
	}
	return e.msg
}

// lineCol returns the 1-based line and column of byte offset off.
func lineCol(data []byte, off int) (int, int) {
	off = min(max(off, 0), len(data))
	line := 1 + bytes.Count(data[:off], []byte{'\n'})
	col := off - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

func kindName(k byte) string {
	switch k {
	case 'o':
		return "an object"
	case 'a':
		return "an array"
	case 's':
		return "a string"
	case 'n':
		return "a number"
	case 'b':
		return "true or false"
	}
	return "null"
}
