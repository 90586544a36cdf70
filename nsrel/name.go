package nsrel

import (
	"fmt"
	"strconv"
	"strings"
)

// Name is a namespace as /proc/PID/ns/* links and lsns(8) show it:
// "type:[inode]", for example "user:[4026531837]".
type Name struct {
	Type Type
	Ino  uint64
}

// String formats n as "type:[inode]".
func (n Name) String() string {
	return n.Type.String() + ":[" + strconv.FormatUint(n.Ino, 10) + "]"
}

// ParseName parses "type:[inode]" as read from a /proc/PID/ns/* or
// /proc/PID/fd/* link. The type must be one of the eight namespace types
// (ParseType also accepts "mount"); the inode a decimal number without sign
// or leading zeros that fits in 64 bits. Nothing may precede or follow.
func ParseName(s string) (Name, error) {
	typ, rest, ok := strings.Cut(s, ":")
	if !ok || !strings.HasPrefix(rest, "[") || !strings.HasSuffix(rest, "]") {
		return Name{}, fmt.Errorf("nsrel: %q is not of the form type:[inode]", s)
	}
	t, err := ParseType(typ)
	if err != nil || typ != t.String() {
		return Name{}, fmt.Errorf("nsrel: %q: unknown namespace type %q", s, typ)
	}
	digits := rest[1 : len(rest)-1]
	if digits == "" || (len(digits) > 1 && digits[0] == '0') || strings.TrimLeft(digits, "0123456789") != "" {
		return Name{}, fmt.Errorf("nsrel: %q: inode %q is not a decimal number", s, digits)
	}
	ino, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return Name{}, fmt.Errorf("nsrel: %q: inode out of range", s)
	}
	return Name{Type: t, Ino: ino}, nil
}
