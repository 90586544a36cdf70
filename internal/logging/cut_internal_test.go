package logging

import (
	"strconv"
	"strings"
	"testing"
)

// TestPrintableCutWhole: a value cut to fit a syslog field is cut
// before it is quoted: it ends with its closing quote and decodes (cut
// after, it ended inside an escape, "...a\u03"), within maxValue once
// the field escapes its quotes, backslashes and brackets.
func TestPrintableCutWhole(t *testing.T) {
	for _, v := range []string{strings.Repeat("a\u034f", 3000), strings.Repeat("\x1b]", 5000), strings.Repeat("x", 9000)} {
		q := printableCut(v)
		if n := len(q) + strings.Count(q, `"`) + strings.Count(q, `\`) + strings.Count(q, "]"); n > maxValue {
			t.Errorf("%.20q...: %d bytes once escaped, over %d", v, n, maxValue)
		}
		if q[0] != '"' {
			if !strings.HasPrefix(v, q) {
				t.Errorf("%.20q...: %.40q... is no start of it", v, q)
			}
			continue
		}
		if u, err := strconv.Unquote(q); err != nil || !strings.HasPrefix(v, u) {
			t.Errorf("%.20q...: %.40q... does not decode to a start of it: %v", v, q, err)
		}
	}
}
