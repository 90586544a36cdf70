package lstool

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
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

// truncWriter cuts every line written through it to width characters
// (runes), as lsns does on a terminal. Lines may arrive split across
// writes, even inside a character.
type truncWriter struct {
	w     io.Writer
	width int
	col   int  // characters of the current line so far
	drop  bool // the rest of the line is cut
	buf   []byte
}

func (t *truncWriter) Write(p []byte) (int, error) {
	t.buf = t.buf[:0]
	for _, b := range p {
		switch {
		case b == '\n':
			t.col, t.drop = 0, false
		case b&0xc0 == 0x80: // continuation byte: follows its character
		default:
			t.col++
			t.drop = t.col > t.width
		}
		if !t.drop {
			t.buf = append(t.buf, b)
		}
	}
	if _, err := t.w.Write(t.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}
