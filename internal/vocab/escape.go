package vocab

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Text that a container controls (its ID, annotations, process names,
// paths in its rootfs) is printed in one of two forms, chosen by where it
// appears: [Escape] keeps a tree row or a notice readable as it is, with
// only the dangerous characters spelt out; [Printable] quotes a whole
// string with Go escapes, for messages where one odd character should
// stand out. Both keep a terminal from being steered by escape sequences,
// control and bidirectional-override characters.

// Escape returns s with control characters, backslashes, invalid UTF-8,
// invisible or bidirectional formatting runes (Unicode Cf, such as
// U+202E) and the runes that show as nothing or a blank, or stand for
// bytes lost (see unseen) spelt out as \xNN or \u{N}, so that a
// container-controlled name cannot move the cursor, recolour the
// terminal, reorder the text around it or look like another name.
// Printable text (including non-ASCII letters) is unchanged.
func Escape(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '\\' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	prev := rune(-1)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteString(`\x` + hex2(s[i]))
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x` + hex2(byte(r)))
		case r >= 0x80 && hidden(prev, r):
			b.WriteString(`\u{` + strconv.FormatInt(int64(r), 16) + `}`)
		default:
			b.WriteString(s[i : i+size])
		}
		prev = r
		i += size
	}
	return b.String()
}

// Quote returns s in double quotes, escaped once: with [Escape], and a
// double quote in it as \" (which Escape leaves alone). For messages and
// labels that quote what a user or a container gave; fmt's %q of an
// escaped string would escape its backslashes again.
func Quote(s string) string {
	return QuoteEscaped(Escape(s))
}

// QuoteEscaped is [Quote] of a string [Escape]d already.
func QuoteEscaped(escaped string) string {
	return `"` + strings.ReplaceAll(escaped, `"`, `\"`) + `"`
}

// QuoteItem returns s as it is when it is a [PlainItem], else s
// [Quote]d: for names a process or a container chooses, printed in a
// list ("processes: 24323 sh, 1 systemd" was one process named
// "sh, 1 systemd").
func QuoteItem(s string) string {
	if PlainItem(s) {
		return s
	}
	return Quote(s)
}

// PlainItem reports whether s cannot pass for more than one item of a
// list, or for anything but itself: non-empty printable ASCII without a
// space, a comma, a semicolon, a double quote or a backslash (a
// non-ASCII space could pass for a space).
func PlainItem(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`,;"\`, c) >= 0 {
			return false
		}
	}
	return s != ""
}

// ShellQuote returns s as one word of a POSIX shell command: as it is
// when it holds only characters no shell gives a meaning
// (A-Za-z0-9 and _@%+=:,./-), else in single quotes (a single quote
// in it closes them, is escaped, and opens them again): for a command
// a message tells the operator to run. It
// escapes nothing: the message is escaped where it is printed.
func ShellQuote(s string) string {
	plain := s != ""
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_@%+=:,./-", c) >= 0
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

// unseen reports whether r, a rune Go counts as printable, shows as
// nothing, or as a blank, or stands for bytes lost, after prev (-1 at
// the start): U+FFFD (a state's invalid UTF-8 decodes to it), the
// default-ignorable code points (U+034F, the Hangul fillers U+115F,
// U+1160, U+3164 and U+FFA0, U+17B4), the braille blank U+2800, and a
// variation selector that belongs to no variation sequence: at the
// start, after ASCII or after a rune that shows as nothing. One after a
// non-ASCII character (an emoji's U+FE0F, an ideograph's U+E0100, a
// Mongolian letter's U+180B) is part of the text. "a\u034fb" printed as
// "ab": another name's look.
func unseen(prev, r rune) bool {
	switch {
	case r < 0x80:
		return false
	case unicode.Is(unicode.Variation_Selector, r):
		// (A selector after another: the first is unseen at the start.)
		return prev < 0x80 || hidden(-1, prev)
	}
	return r == utf8.RuneError || r == '\u2800' || unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r)
}

// hidden reports whether r, after prev, is spelt out rather than shown:
// not printable (controls, DEL, C1, Cf such as U+202E, non-ASCII spaces)
// or [unseen]. Escape (for runes past ASCII), Printable and
// AppendSafeJSON escape the same runes.
func hidden(prev, r rune) bool { return !unicode.IsPrint(r) || unseen(prev, r) }

// Printable returns s unchanged when every rune is printable, else s
// quoted ([GoQuote]), so that container-controlled strings cannot move
// the cursor or hide text on a terminal. Once printed, the result holds
// no rune Printable quotes: a message that holds it is not quoted again
// (its backslashes doubled).
func Printable(s string) string {
	prev := rune(-1)
	for _, r := range s {
		if hidden(prev, r) {
			return GoQuote(s)
		}
		prev = r
	}
	return s
}

// GoQuote returns s quoted with Go escapes (strconv.Quote), the runes
// Go counts as printable but that show as nothing or stand for bytes
// lost (U+FFFD) escaped too (\uXXXX): no rune of it is one [Printable]
// quotes.
func GoQuote(s string) string {
	q := strconv.Quote(s)
	var b strings.Builder
	prev, plain := rune(-1), true
	for i, r := range q {
		if unseen(prev, r) {
			if plain {
				b.WriteString(q[:i])
				plain = false
			}
			if r > 0xffff {
				fmt.Fprintf(&b, `\U%08x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		} else if !plain {
			b.WriteRune(r)
		}
		prev = r
	}
	if plain {
		return q
	}
	return b.String()
}

// ErrorLines returns the messages of err, one per error errors.Join
// joined (at any depth of joins), each [Printable]: a newline in one
// message (a path's) is escaped, not the start of another line.
func ErrorLines(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var lines []string
		for _, e := range j.Unwrap() {
			if e != nil {
				lines = append(lines, ErrorLines(e)...)
			}
		}
		return lines
	}
	return []string{Printable(err.Error())}
}

// OneLine flattens a (possibly joined) error onto one [Printable] line:
// the errors errors.Join joined (also where a wrap ends with them)
// separated by "; ", a newline within one message (a path's) escaped
// (it was taken for a join's and the path misreported).
func OneLine(err error) string {
	return Printable(flatten(err))
}

// Flatten is err's message on one line as [OneLine] has it, not
// escaped: for a caller that escapes it itself ([Escape]), which
// OneLine's quoting would have escaped twice.
func Flatten(err error) string { return flatten(err) }

// flatten is err's message with its joins' newlines as "; ".
func flatten(err error) string {
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		var parts []string
		for _, c := range e.Unwrap() {
			if c != nil {
				parts = append(parts, flatten(c))
			}
		}
		if msg := err.Error(); msg == strings.Join(joinedMessages(e.Unwrap()), "\n") {
			return strings.Join(parts, "; ")
		}
	case interface{ Unwrap() error }:
		// fmt.Errorf("...: %w", joined) ends with the joined message.
		if inner := e.Unwrap(); inner != nil {
			msg, in := err.Error(), inner.Error()
			if strings.HasSuffix(msg, in) {
				return msg[:len(msg)-len(in)] + flatten(inner)
			}
		}
	}
	return err.Error()
}

// joinedMessages is the messages of errs that errors.Join writes, one a
// line.
func joinedMessages(errs []error) []string {
	var out []string
	for _, e := range errs {
		if e != nil {
			out = append(out, e.Error())
		}
	}
	return out
}

// Cut returns s cut to at most n bytes at a character boundary, with
// invalid UTF-8 replaced by U+FFFD. Labels and annotations are the
// container owner's to choose: cutting at a boundary keeps a long
// value's last character whole instead of turning it into U+FFFD.
func Cut(s string, n int) string {
	if len(s) > n {
		i := n
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// AppendSafeJSON appends the JSON text j to dst with every DEL, C1
// control, invisible or bidirectional formatting rune (Unicode Cf) and
// other unprintable rune written as a \uXXXX escape (a surrogate pair
// above U+FFFF), and invalid UTF-8 as \ufffd: the same JSON value, that
// cannot steer a terminal it is printed to. JSON allows those runes raw
// inside strings, and a record keeps its bytes as hashed; only a reader
// printing it escapes them. Outside strings valid JSON holds only ASCII,
// which is left as it is.
func AppendSafeJSON(dst, j []byte) []byte {
	const digits = "0123456789abcdef"
	u := func(dst []byte, r rune) []byte {
		return append(dst, '\\', 'u', digits[r>>12&15], digits[r>>8&15], digits[r>>4&15], digits[r&15])
	}
	prev := rune(-1)
	for i := 0; i < len(j); {
		c := j[i]
		if c < 0x7f {
			dst = append(dst, c)
			prev = rune(c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(j[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			dst = u(dst, utf8.RuneError)
		case hidden(prev, r): // DEL, C1 controls, Cf and other unprintables; runes that show as nothing
			if r > 0xffff {
				r1, r2 := utf16.EncodeRune(r)
				dst = u(u(dst, r1), r2)
			} else {
				dst = u(dst, r)
			}
		default:
			dst = append(dst, j[i:i+size]...)
		}
		prev = r
		i += size
	}
	return dst
}

// WriteSafeJSON writes v as JSON (indented with two spaces when indent
// is set), followed by a newline, with the runes [AppendSafeJSON]
// escapes written as \u escapes: encoding/json leaves DEL, C1 controls
// and bidirectional overrides raw, and a container chooses its names.
func WriteSafeJSON(w io.Writer, v any, indent bool) error {
	var b []byte
	var err error
	if indent {
		b, err = json.MarshalIndent(v, "", "  ")
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	_, err = w.Write(append(AppendSafeJSON(nil, b), '\n'))
	return err
}
