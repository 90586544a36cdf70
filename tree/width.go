package tree

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"
)

// RuneWidth returns how many terminal columns r takes, as wcwidth(3)
// counts them in a UTF-8 locale outside East Asia: 0 for combining marks
// and other zero-width characters, 2 for East Asian wide and fullwidth
// characters (CJK, most emoji), 1 for the rest (ambiguous ones
// included). Text to measure has been through [vocab.Escape], so no
// control character reaches it.
func RuneWidth(r rune) int {
	switch {
	case r < 0x300:
		return 1 // ASCII and Latin-1: the common case, no table lookup
	case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf) || r == 0x200b || 0x1160 <= r && r <= 0x11ff:
		// Combining marks, formatting characters, ZERO WIDTH SPACE and
		// Hangul medial vowels and final consonants (they join the
		// syllable before them).
		return 0
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// TextWidth returns how many terminal columns s takes (see [RuneWidth]);
// a byte that is not UTF-8 counts as one.
func TextWidth(s string) int {
	n := 0
	for _, r := range s {
		if r == utf8.RuneError {
			n++
			continue
		}
		n += RuneWidth(r)
	}
	return n
}

// CutToWidth returns the longest start of s that takes at most w
// terminal columns (see [TextWidth]): a wide character that would cross
// the edge is left out whole, and the zero-width characters after the
// last one kept (combining marks) stay with it. So is an escape the edge
// would cut (\x0a, \\, \u{202e}; s has been through [vocab.Escape]):
// cut, "\x0a" read "\", a backslash, or "\x0" another byte.
func CutToWidth(s string, w int) string {
	n := 0
	for i, r := range s {
		rw := 1
		if r != utf8.RuneError {
			rw = RuneWidth(r)
		}
		if n+rw > w {
			return s[:escapeStart(s, i)]
		}
		n += rw
	}
	return s
}

// CutBefore returns s cut at byte i (a character boundary), or before
// the escape ([EscapeLen]) the cut would fall inside: for a label cut to
// a length, whose escapes must stay whole.
func CutBefore(s string, i int) string { return s[:escapeStart(s, i)] }

// escapeStart returns where the escape that the cut at i falls inside
// starts, or i when it falls between characters.
func escapeStart(s string, i int) int {
	for j := 0; j < i; {
		if s[j] != '\\' {
			j++
			continue
		}
		end := j + EscapeLen(s[j:])
		if i < end {
			return j
		}
		j = end
	}
	return i
}

// EscapeLen returns the length of the escape s starts with (s[0] is a
// backslash): \xHH, \u{H...}, \uHHHH, \UHHHHHHHH, or a backslash and one
// character (\\, \n, \"), as [vocab.Escape] and Go's quoting write them.
// It may be more than s holds: s is then the escape's start, as far as
// it tells it ("\u" is at least 3). A \u{ not closed within 12 bytes
// ends there.
func EscapeLen(s string) int {
	switch {
	case len(s) < 2:
		return 2
	case s[1] == 'x':
		return 4
	case s[1] == 'u' && len(s) < 3:
		return 3
	case s[1] == 'u' && s[2] == '{':
		if k := strings.IndexByte(s, '}'); k > 0 && k < 12 {
			return k + 1
		}
		return min(len(s)+1, 12)
	case s[1] == 'u':
		return 6
	case s[1] == 'U':
		return 10
	}
	return 2
}
