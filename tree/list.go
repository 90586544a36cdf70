package tree

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// Column is one column of the flat list (lsns -l style): its name (as -o
// takes it), what it holds, whether it is a number (right-aligned), and
// whether its values may be cut to fit a terminal (text; see
// [ListOptions].Width).
type Column struct {
	Name    string
	Help    string
	Numeric bool
	Shrink  bool
	value   func(n *discover.Namespace, depth int) string
}

// Columns are the list's columns, in the order --help lists them.
var Columns = []Column{
	{"NS", "namespace inode number", true, false, func(n *discover.Namespace, _ int) string { return strconv.FormatUint(n.Ino, 10) }},
	{"TYPE", "namespace type (user, pid)", false, false, func(n *discover.Namespace, _ int) string { return n.Type.String() }},
	{"NSID", "the kernel's 64-bit namespace ID (NS_GET_ID)", true, false, func(n *discover.Namespace, _ int) string {
		if !n.HasNSID {
			return ""
		}
		return strconv.FormatUint(n.NSID, 10)
	}},
	{"PARENT", "inode of the parent namespace", true, false, func(n *discover.Namespace, _ int) string {
		if n.Parent == nil {
			return ""
		}
		return strconv.FormatUint(n.Parent.Ino, 10)
	}},
	{"OWNERNS", "inode of the owning user namespace", true, false, func(n *discover.Namespace, _ int) string {
		if n.Owner == nil {
			return ""
		}
		return strconv.FormatUint(n.Owner.Ino, 10)
	}},
	{"UID", "UID that created the (owning) user namespace", true, false, func(n *discover.Namespace, _ int) string {
		if uid, _ := n.UID(); uid >= 0 {
			return strconv.FormatInt(uid, 10)
		}
		return ""
	}},
	{"USER", "its user name, else the UID", false, false, func(n *discover.Namespace, _ int) string {
		uid, name := n.UID()
		switch {
		case name != "":
			return vocab.Escape(name)
		case uid >= 0:
			return strconv.FormatInt(uid, 10)
		}
		return ""
	}},
	{"DEPTH", "level in the tree (0 for a root)", true, false, func(_ *discover.Namespace, depth int) string { return strconv.Itoa(depth) }},
	{"NPROCS", "number of processes in the namespace", true, false, func(n *discover.Namespace, _ int) string { return strconv.Itoa(len(n.Processes)) }},
	{"PID", "lowest PID in the namespace", true, false, func(n *discover.Namespace, _ int) string {
		if len(n.Processes) == 0 {
			return ""
		}
		return strconv.Itoa(n.Processes[0].PID)
	}},
	{"COMMAND", "command of that process", false, true, func(n *discover.Namespace, _ int) string {
		if len(n.Processes) == 0 {
			return ""
		}
		return vocab.Escape(n.Processes[0].Comm)
	}},
	{"VIA", "how it was found, when no process is in it", false, false, func(n *discover.Namespace, _ int) string { return via(n, vocab.QuoteItem) }},
	{"CONTAINERS", "containers whose process is in it", false, true, func(n *discover.Namespace, _ int) string { return containers(n, quoteName) }},
}

// rawValues are the values --raw prints of the columns that quote names
// (VIA's paths, CONTAINERS' names, when not plain): decoding \xHH once
// gives each such name in its double quotes, byte for byte but for its
// own backslashes and double quotes, as \\ and \" (written \x5c\x5c and
// \x5c"). [rawValue] of the quoted name decoded the name's backslash to
// one backslash: pod "x\" (a name ending in one) read as the pod x",
// unterminated.
var rawValues = map[string]func(n *discover.Namespace) string{
	"VIA": func(n *discover.Namespace) string {
		return via(n, func(s string) string { return rawQuoted(vocab.QuoteItem(s), s) })
	},
	"CONTAINERS": func(n *discover.Namespace) string {
		return containers(n, func(s string, pod bool) string { return rawQuoted(quoteName(s, pod), s) })
	},
}

// rawQuoted is name s as q, its label's form, has it (as it is, or
// quoted), for --raw (see rawValues).
func rawQuoted(q, s string) string {
	if q == s {
		return s
	}
	// In rawValue's form, \x5c is a backslash of s and nothing else
	// (Escape writes \xHH of control bytes and invalid UTF-8 only).
	r := strings.ReplaceAll(rawValue(vocab.Escape(s)), `\x5c`, `\x5c\x5c`)
	return `"` + strings.ReplaceAll(r, `"`, `\x5c"`) + `"`
}

func via(n *discover.Namespace, quote func(string) string) string {
	if len(n.Processes) > 0 || len(n.FoundVia) == 0 {
		return ""
	}
	return foundLabel(n.FoundVia[0], quote)
}

func containers(n *discover.Namespace, quote func(string, bool) string) string {
	var s []string
	for _, c := range n.Containers {
		s = append(s, containerLabel(c, quote))
	}
	return strings.Join(s, ",")
}

// DefaultColumns are the list's columns without -o, for namespaces of
// type t.
func DefaultColumns(t nsrel.Type) []string {
	if t == nsrel.TypePID {
		return []string{"NS", "TYPE", "NPROCS", "PID", "USER", "PARENT", "OWNERNS", "COMMAND", "CONTAINERS"}
	}
	return []string{"NS", "TYPE", "NPROCS", "PID", "USER", "PARENT", "COMMAND", "CONTAINERS"}
}

// ParseColumns reads a -o value: column names separated by commas, in any
// case; "+NAME,..." adds them to the defaults of type t, as lsns does.
func ParseColumns(s string, t nsrel.Type) ([]string, error) {
	var out []string
	if rest, ok := strings.CutPrefix(s, "+"); ok {
		out, s = DefaultColumns(t), rest
	}
	for _, given := range strings.Split(s, ",") {
		name := strings.ToUpper(strings.TrimSpace(given))
		if column(name) == nil {
			// Said as given: upper-cased, "\x1b]0;pwn" read "\x1b]0;PWN".
			return nil, fmt.Errorf("unknown column %s (one of %s)", vocab.Quote(given), columnNames())
		}
		out = append(out, name)
	}
	return out, nil
}

func column(name string) *Column {
	for i := range Columns {
		if Columns[i].Name == name {
			return &Columns[i]
		}
	}
	return nil
}

func columnNames() string {
	var s []string
	for _, c := range Columns {
		s = append(s, c.Name)
	}
	return strings.Join(s, ",")
}

// ListOptions controls the flat list.
type ListOptions struct {
	// Columns to print (names of [Columns]); nil means DefaultColumns.
	Columns []string
	// NoHeadings leaves out the header line.
	NoHeadings bool
	// Raw prints the values separated by one space, unaligned, with
	// each byte of a space, a backslash, a control or invisible
	// character or invalid UTF-8 in values escaped once as \xHH
	// (\x20, \x5c, \x1b), as lsns -r (which escapes every non-ASCII
	// byte; printable non-ASCII is kept here).
	Raw bool
	// Width, if positive, is the terminal's width in columns: the text
	// columns that may shrink (COMMAND, CONTAINERS: [Column].Shrink) are
	// narrowed, the last first, one column at a time, down to their
	// heading's width, and their values cut to fit, until the line fits.
	// A number or ID is never cut: a line still too wide is printed
	// whole (the terminal wraps it), as lsns does (libsmartcols cuts
	// only its truncatable columns). Raw output is never fitted.
	Width int
}

// List writes the namespaces of type t, one per line in tree order (depth
// first, children by inode), as a table of the chosen columns.
func List(w io.Writer, m *discover.Model, t nsrel.Type, o Options, lo ListOptions) error {
	names := lo.Columns
	if len(names) == 0 {
		names = DefaultColumns(t)
	}
	cols := make([]*Column, len(names))
	for i, name := range names {
		if cols[i] = column(name); cols[i] == nil {
			return fmt.Errorf("unknown column %s", vocab.Quote(name))
		}
	}
	var rows [][]string
	if !lo.NoHeadings {
		rows = append(rows, names)
	}
	var walk func(n *discover.Namespace, depth int)
	walk = func(n *discover.Namespace, depth int) {
		row := make([]string, len(cols))
		for i, c := range cols {
			if rv := rawValues[c.Name]; lo.Raw && rv != nil {
				row[i] = rv(n)
				continue
			}
			row[i] = c.value(n, depth)
		}
		rows = append(rows, row)
		for _, c := range o.Filter(n.Children) {
			walk(c, depth+1)
		}
	}
	for _, r := range o.Filter(m.Roots(t)) {
		walk(r, 0)
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	if lo.Raw {
		for _, row := range rows {
			for i, v := range row {
				if i > 0 {
					bw.WriteByte(' ')
				}
				bw.WriteString(rawValue(v))
			}
			bw.WriteByte('\n')
		}
		return bw.Flush()
	}
	width := make([]int, len(cols))
	for _, row := range rows {
		for i, v := range row {
			width[i] = max(width[i], TextWidth(v))
		}
	}
	if lo.Width > 0 {
		fit(width, cols, lo.Width)
	}
	for _, row := range rows {
		var line strings.Builder
		for i, v := range row {
			if i > 0 {
				line.WriteByte(' ')
			}
			if TextWidth(v) > width[i] {
				v = CutToWidth(v, width[i])
			}
			pad := strings.Repeat(" ", width[i]-TextWidth(v))
			switch {
			case cols[i].Numeric:
				line.WriteString(pad + v)
			case i == len(row)-1:
				line.WriteString(v) // no trailing blanks
			default:
				line.WriteString(v + pad)
			}
		}
		bw.WriteString(strings.TrimRight(line.String(), " "))
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// fit narrows the columns that may shrink until the table's lines (the
// widths and one space between columns) fit in total columns, or none can
// shrink further: each down to its heading's width, one column at a time
// from the last, as libsmartcols shrinks lsns's COMMAND.
func fit(width []int, cols []*Column, total int) {
	line := len(width) - 1
	for _, w := range width {
		line += w
	}
	for line > total {
		shrunk := false
		for i := len(cols) - 1; i >= 0 && line > total; i-- {
			if cols[i].Shrink && width[i] > TextWidth(cols[i].Name) {
				width[i]--
				line--
				shrunk = true
			}
		}
		if !shrunk {
			return
		}
	}
}

// rawValue is a column's value as --raw prints it: each byte of a
// space, a backslash, a control character or a formatting rune as \xHH,
// as lsns -r, so that a value stays one field and decoding \xHH once
// gives what was named, byte for byte. The text a container controls in
// v went through [vocab.Escape] already: its \xHH are kept, its \\ of
// a backslash is written \x5c and its \u{H} of a rune as the rune's
// UTF-8 bytes. (Escaping v's backslashes again wrote a newline in a
// name as \x5cx0a.)
func rawValue(v string) string {
	if !strings.ContainsAny(v, ` \`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); {
		c := v[i]
		n := 1
		if c == '\\' {
			n = min(EscapeLen(v[i:]), len(v)-i)
		}
		e := v[i : i+n]
		switch {
		case c == ' ':
			b.WriteString(`\x20`)
		case e == `\\`:
			b.WriteString(`\x5c`)
		case strings.HasPrefix(e, `\x`) && n == 4:
			b.WriteString(e)
		case strings.HasPrefix(e, `\u{`) && strings.HasSuffix(e, "}"):
			r, err := strconv.ParseUint(e[3:n-1], 16, 32)
			if err != nil || !utf8.ValidRune(rune(r)) {
				b.WriteString(`\x5c`)
				n = 1
				break
			}
			for _, x := range utf8.AppendRune(nil, rune(r)) {
				fmt.Fprintf(&b, `\x%02x`, x)
			}
		case c == '\\':
			// Not an escape of Escape's (a quote's \"): the backslash
			// itself.
			b.WriteString(`\x5c`)
			n = 1
		default:
			b.WriteByte(c)
		}
		i += n
	}
	return b.String()
}
