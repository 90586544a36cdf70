package lstool

import (
	"io"
	"os"
	"strconv"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/tree"
)

// terminalWidth returns the width in columns of the terminal w writes to,
// or 0 when w is not a terminal (a pipe, a file): output to a terminal is
// cut to fit, output to anything else never is. COLUMNS, when it holds a
// positive number, is the width, as util-linux takes it (lsns fitted a
// terminal to COLUMNS, nsrel to the terminal's own size).
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return int(ws.Col)
}

// truncWriter cuts every line written through it to width terminal
// columns (wide characters take two, combining marks none:
// [tree.RuneWidth]), as pstree does on a terminal; a number the edge
// would cut is left out whole (an owner's UID 4242 cut to 42 read as
// another UID, an inode cut short as another namespace's). Lines may
// arrive split across writes, even inside a character; digits are held
// until what follows them tells whether they fit, so the output must end
// with a newline (the tree's does).
type truncWriter struct {
	w     io.Writer
	width int
	col   int    // columns of the current line so far
	drop  bool   // the rest of the line is cut
	part  []byte // the first bytes of a character split across writes
	run   []byte // the digits last read, held: the edge may cut their number
	esc   bool   // run holds the start of an escape (\x1b), not digits
	buf   []byte
}

func (t *truncWriter) Write(p []byte) (int, error) {
	t.buf = t.buf[:0]
	in := p
	if len(t.part) > 0 {
		// Complete the split character with as many bytes as it needs.
		n := min(utf8.UTFMax-len(t.part), len(p))
		joined := append(t.part, p[:n]...)
		if !utf8.FullRune(joined) {
			t.part = joined
			return len(p), nil
		}
		_, size := utf8.DecodeRune(joined)
		t.add(joined[:size])
		if size <= len(t.part) {
			// The held bytes started no character (a truncated
			// sequence, then a byte that does not continue it): the
			// rest of them is read again, with p.
			in = append(append([]byte(nil), t.part[size:]...), p...)
		} else {
			in = p[size-len(t.part):]
		}
		t.part = t.part[:0]
	}
	for len(in) > 0 {
		if !utf8.FullRune(in) {
			t.part = append(t.part[:0], in...)
			break
		}
		_, size := utf8.DecodeRune(in)
		t.add(in[:size])
		in = in[size:]
	}
	if _, err := t.w.Write(t.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// add passes on one character (or one byte that is not UTF-8) unless
// the line is cut before it, or before the end of the number it is a
// digit of, or of the escape it is part of (the tree's text has been
// through vocab.Escape: cut, "\x0a" read "\", a backslash).
func (t *truncWriter) add(c []byte) {
	digit := len(c) == 1 && '0' <= c[0] && c[0] <= '9'
	switch {
	case c[0] == '\n':
		t.buf = append(append(t.buf, t.run...), c...)
		t.run, t.esc = t.run[:0], false
		t.col, t.drop = 0, false
		return
	case t.drop:
		return
	}
	if !t.esc && len(c) == 1 && c[0] == '\\' {
		// An escape starts: the number held, if any, ended.
		t.buf = append(t.buf, t.run...)
		t.run, t.esc = t.run[:0], true
	}
	r, _ := utf8.DecodeRune(c)
	w := 1
	if r != utf8.RuneError {
		w = tree.RuneWidth(r)
	}
	t.col += w
	if t.drop = t.col > t.width; t.drop {
		if !digit && !t.esc {
			t.buf = append(t.buf, t.run...) // the number ended before the edge
		}
		t.run, t.esc = t.run[:0], false
		return
	}
	if t.esc {
		t.run = append(t.run, c...)
		if len(t.run) >= tree.EscapeLen(string(t.run)) {
			t.buf = append(t.buf, t.run...)
			t.run, t.esc = t.run[:0], false
		}
		return
	}
	if digit {
		t.run = append(t.run, c...)
		return
	}
	t.buf = append(append(t.buf, t.run...), c...)
	t.run = t.run[:0]
}
