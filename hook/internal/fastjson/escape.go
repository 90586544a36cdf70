package fastjson

// Unescape returns the byte that the escape \e stands for, for the
// one-character escapes of RFC 8259 (\" \\ \/ \b \f \n \r \t); ok is
// false for any other byte, including 'u'.
func Unescape(e byte) (b byte, ok bool) {
	switch e {
	case '"', '\\', '/':
		return e, true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	}
	return 0, false
}
