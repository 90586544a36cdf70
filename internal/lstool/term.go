package lstool

import (
	"io"
	"os"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/tree"
)

// terminalWidth returns the width in columns of the terminal w writes to,
// or 0 when w is not a terminal (a pipe, a file): output to a terminal is
// cut to fit, output to anything else never is.
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 0
	}
	return int(ws.Col)
}

// truncWriter cuts every line written through it to width terminal
// columns (wide characters take two, combining marks none:
// [tree.RuneWidth]), as lsns does on a terminal. Lines may arrive split
// across writes, even inside a character.
type truncWriter struct {
	w     io.Writer
	width int
	col   int    // columns of the current line so far
	drop  bool   // the rest of the line is cut
	part  []byte // the first bytes of a character split across writes
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
// the line is cut before it.
func (t *truncWriter) add(c []byte) {
	if c[0] == '\n' {
		t.col, t.drop = 0, false
	} else if !t.drop {
		r, _ := utf8.DecodeRune(c)
		w := 1
		if r != utf8.RuneError {
			w = tree.RuneWidth(r)
		}
		t.col += w
		t.drop = t.col > t.width
	}
	if !t.drop {
		t.buf = append(t.buf, c...)
	}
}
