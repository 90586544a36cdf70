package lstool

import (
	"strings"
	"testing"
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
