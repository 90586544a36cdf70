package lstool

import (
	"strings"
	"testing"

	"github.com/nsrel/nsrel/internal/nstest"
)

func TestTruncWriter(t *testing.T) {
	in := "user:[4026531837] owner root (0)\n└── user:[4026532176] owner root (0) containers: runc web-1\nshort\n"
	want := "user:[4026531837] ow\n└── user:[4026532176\nshort\n"
	// Every split of the input across two writes, also inside the
	// three-byte box characters, gives the same lines.
	for i := 0; i <= len(in); i++ {
		var b strings.Builder
		w := &truncWriter{w: &b, width: 20}
		if _, err := w.Write([]byte(in[:i])); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(in[i:])); err != nil {
			t.Fatal(err)
		}
		if b.String() != want {
			t.Fatalf("split at %d: got %q, want %q", i, b.String(), want)
		}
	}
}

func TestTerminalWidthNotATerminal(t *testing.T) {
	var b strings.Builder
	if w := terminalWidth(&b); w != 0 {
		t.Errorf("a buffer has width %d", w)
	}
	t.Setenv("COLUMNS", "200")
	if w := terminalWidth(&b); w != 0 {
		t.Errorf("a buffer with COLUMNS=200 has width %d", w)
	}
}

// TestTerminalWidthColumns: COLUMNS sets a terminal's width, as lsns
// takes it (nsrel used the terminal's size alone): a terminal 50 wide
// with COLUMNS=200 is 200 wide, one of no size with COLUMNS=40 is 40; a
// COLUMNS that is no positive number is not taken.
func TestTerminalWidthColumns(t *testing.T) {
	for _, tc := range []struct {
		cols    uint16
		columns string
		want    int
	}{{50, "200", 200}, {0, "40", 40}, {50, "", 50}, {50, "x", 50}, {50, "-3", 50}, {0, "", 0}} {
		_, s := nstest.OpenPTY(t, tc.cols)
		t.Setenv("COLUMNS", tc.columns)
		if w := terminalWidth(s); w != tc.want {
			t.Errorf("a terminal %d wide, COLUMNS %q: width %d, want %d", tc.cols, tc.columns, w, tc.want)
		}
	}
}

// TestTruncWriterEscapes: an escape the edge would cut is left out
// whole ("\x0a" cut read "\", a backslash, or "\x0" another byte);
// one that ends at the edge stays; a number before an escape is still
// judged alone, however the input is split across writes.
func TestTruncWriterEscapes(t *testing.T) {
	in := "abc\\x0ay\n" + "ab\\x0a\n" + "a\\\\bcdefgh\n" + "ab\\u{202e}c\n" + "12\\x1b9\n" + "123456\\x1b\n"
	want := "abc\n" + "ab\\x0a\n" + "a\\\\bcd\n" + "ab\n" + "12\\x1b\n" + "123456\n"
	for i := 0; i <= len(in); i++ {
		var b strings.Builder
		w := &truncWriter{w: &b, width: 6}
		for _, part := range []string{in[:i], in[i:]} {
			if _, err := w.Write([]byte(part)); err != nil {
				t.Fatal(err)
			}
		}
		if b.String() != want {
			t.Fatalf("split at %d: got %q, want %q", i, b.String(), want)
		}
	}
}

// TestTruncWriterWide checks that wide characters count two columns
// (one that would cross the edge is left out whole) and combining marks
// none, however the input is split across writes.
func TestTruncWriterWide(t *testing.T) {
	in := "12345678容器abc\n容器容器容器\ne\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301\nbad \xff\xfe byte\ncut \xf0\x9fA\n"
	want := "12345678容\n容器容器容\ne\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301e\u0301\nbad \xff\xfe byt\ncut \xf0\x9fA\n"
	for i := 0; i <= len(in); i++ {
		for j := i; j <= len(in); j++ {
			var b strings.Builder
			w := &truncWriter{w: &b, width: 10}
			for _, part := range []string{in[:i], in[i:j], in[j:]} {
				if _, err := w.Write([]byte(part)); err != nil {
					t.Fatal(err)
				}
			}
			if b.String() != want {
				t.Fatalf("split at %d and %d: got %q, want %q", i, j, b.String(), want)
			}
		}
	}
}

// TestTruncWriterWholeNumbers: the edge cut numbers as any text, and the
// start of one read as another: an owner UID 4242 as 42, an inode as
// 40265. A number the edge would cut is left out whole now (one that
// ends at the edge stays), however the input is split across writes.
func TestTruncWriterWholeNumbers(t *testing.T) {
	in := "└── user:[4026532801] owner 4242\nuser:[4026531837] owner root (0)\n"
	for _, tc := range []struct {
		width int
		want  string
	}{
		{30, "└── user:[4026532801] owner \nuser:[4026531837] owner root (\n"},
		{31, "└── user:[4026532801] owner \nuser:[4026531837] owner root (0\n"},
		{32, in},
		{15, "└── user:[\nuser:[\n"},
		{16, "└── user:[\nuser:[4026531837\n"},
	} {
		for i := 0; i <= len(in); i++ {
			var b strings.Builder
			w := &truncWriter{w: &b, width: tc.width}
			for _, part := range []string{in[:i], in[i:]} {
				if _, err := w.Write([]byte(part)); err != nil {
					t.Fatal(err)
				}
			}
			if b.String() != tc.want {
				t.Fatalf("width %d, split at %d: got %q, want %q", tc.width, i, b.String(), tc.want)
			}
		}
	}
}
