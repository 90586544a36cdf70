package tree_test

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
	"github.com/nsrel/nsrel/tree"
)

func TestListExact(t *testing.T) {
	cols := []string{"NS", "TYPE", "DEPTH", "PARENT", "USER", "NPROCS", "PID", "COMMAND", "VIA"}
	for _, tc := range []struct {
		name string
		lo   tree.ListOptions
		want string
	}{
		{"table", tree.ListOptions{Columns: cols}, `        NS TYPE DEPTH     PARENT USER   NPROCS  PID COMMAND              VIA
4026531837 user     0            root        2    1 systemd
4026532200 user     1 4026531837 root        1  500 pause
4026532201 user     2 4026532200 root        0                           parent of user:[4026532202]
4026532202 user     3 4026532201 root        0                           task 600/601
4026532300 user     1 4026531837 alice       0                           mount "/run/ns/a\x0ab" in mnt:[4026532250]
4026532400 user     2 4026532300 4242        1 4000 evil\x1b[31m\u{202e}
4026532999 user     0                        0                           owner of net:[4026533000]
4026533001 user     1 4026532999 daemon      0                           process 9
`},
		{"raw without headings", tree.ListOptions{Columns: cols[:7], Raw: true, NoHeadings: true}, `4026531837 user 0  root 2 1
4026532200 user 1 4026531837 root 1 500
4026532201 user 2 4026532200 root 0 
4026532202 user 3 4026532201 root 0 
4026532300 user 1 4026531837 alice 0 
4026532400 user 2 4026532300 4242 1 4000
4026532999 user 0   0 
4026533001 user 1 4026532999 daemon 0 
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tree.List(&b, synthetic(), nsrel.TypeUser, tree.Options{}, tc.lo); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, b.String()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestListRawEscapes(t *testing.T) {
	var b bytes.Buffer
	lo := tree.ListOptions{Columns: []string{"NS", "VIA"}, Raw: true, NoHeadings: true}
	if err := tree.List(&b, synthetic(), nsrel.TypeUser, tree.Options{}, lo); err != nil {
		t.Fatal(err)
	}
	// A value with spaces stays one field; the newline in the path is
	// escaped once, as lsns -r would (it was \x5cx0a).
	if !bytes.Contains(b.Bytes(), []byte(`4026532300 mount\x20"/run/ns/a\x0ab"\x20in\x20mnt:[4026532250]`+"\n")) {
		t.Errorf("raw output:\n%s", b.String())
	}
}

// TestRawValue: --raw's escaping of a column's value, whose text a
// container controls went through [vocab.Escape]: once, each byte of a
// space, a backslash, a control character or a formatting rune as \xHH
// (as lsns -r), whatever else unchanged.
func TestRawValue(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"plain", "kthreadd", "kthreadd"},
		{"space", "a b", `a\x20b`},
		{"control", vocab.Escape("s\x1b[31mX y"), `s\x1b[31mX\x20y`},
		{"backslash", vocab.Escape(`a\b`), `a\x5cb`},
		{"formatting rune", vocab.Escape("a\u202eb"), `a\xe2\x80\xaeb`},
		{"invalid UTF-8", vocab.Escape("a\xffb"), `a\xffb`},
		{"quoted", vocab.Quote(`a"b`), `"a\x5c"b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tree.RawValue(tc.value); got != tc.want {
				t.Errorf("RawValue(%q) = %q, want %q", tc.value, got, tc.want)
			}
		})
	}
}

func TestParseColumns(t *testing.T) {
	got, err := tree.ParseColumns("ns,Type, nsid", nsrel.TypeUser)
	if err != nil || !cmp.Equal(got, []string{"NS", "TYPE", "NSID"}) {
		t.Errorf("ParseColumns: %v, %v", got, err)
	}
	got, err = tree.ParseColumns("+DEPTH", nsrel.TypePID)
	if err != nil || !cmp.Equal(got, append(tree.DefaultColumns(nsrel.TypePID), "DEPTH")) {
		t.Errorf("ParseColumns(+DEPTH): %v, %v", got, err)
	}
	if _, err := tree.ParseColumns("NS,BOGUS\x1b", nsrel.TypeUser); err == nil || bytes.ContainsRune([]byte(err.Error()), 0x1b) {
		t.Errorf("ParseColumns(bogus): %v", err)
	}
}

// TestListWideCharacters checks that columns stay aligned on a terminal
// when a value holds wide characters (two columns each) and combining
// marks (none).
func TestListWideCharacters(t *testing.T) {
	m := synthetic()
	m.Lookup(nsrel.TypeUser, 4026532200).Processes[0].Comm = "容器e\u0301" // 2+2+1+0 columns
	var b bytes.Buffer
	lo := tree.ListOptions{Columns: []string{"COMMAND", "NS"}}
	if err := tree.List(&b, m, nsrel.TypeUser, tree.Options{}, lo); err != nil {
		t.Fatal(err)
	}
	want := `COMMAND                      NS
systemd              4026531837
WIDE                 4026532200
                     4026532201
                     4026532202
                     4026532300
evil\x1b[31m\u{202e} 4026532400
                     4026532999
                     4026533001
`
	want = strings.Replace(want, "WIDE ", "容器e\u0301", 1) // 5 columns in 5 bytes' place
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestTextWidth(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want int
	}{
		{"", 0},
		{"pause", 5},
		{"└── user", 8},
		{"容器", 4},
		{"e\u0301", 1},    // combining acute accent
		{"\U0001F600", 2}, // emoji
		{"ｆｕｌｌ", 8},       // fullwidth Latin
		{"ﾊﾝ", 2},         // halfwidth katakana
		{"한\u1161", 2},    // Hangul medial vowel joins
		{"a\u200bb", 2},   // zero width space
		{"\xff\xfe", 2},   // not UTF-8: a column each (printed as \x escapes anyway)
		{"ü Ω №", 5},      // ambiguous width: one column, as outside East Asia
	} {
		if got := tree.TextWidth(tc.s); got != tc.want {
			t.Errorf("TextWidth(%q) = %d, want %d", tc.s, got, tc.want)
		}
	}
}

// TestListFitsWidth: on a terminal the list was cut line by line at the
// edge, so a number in a column of whole ones showed its start only (at
// 36 columns a PARENT inode 4026531837 as 40). Now the text columns
// (COMMAND, CONTAINERS) shrink, the last first, down to their heading's
// width, as lsns's COMMAND does, and a line still too wide is printed
// whole: no number or ID is cut, nor an escape (evil\x1b cut as evil\x1).
func TestListFitsWidth(t *testing.T) {
	cols := []string{"NS", "TYPE", "NPROCS", "PID", "USER", "PARENT", "COMMAND", "CONTAINERS"}
	narrowest := `        NS TYPE NPROCS  PID USER       PARENT COMMAND CONTAINERS
4026531837 user      2    1 root              systemd
4026532200 user      1  500 root   4026531837 pause   containerd
4026532201 user      0      root   4026532200
4026532202 user      0      root   4026532201
4026532300 user      0      alice  4026531837
4026532400 user      1 4000 4242   4026532300 evil    runc zoo-1
4026532999 user      0
4026533001 user      0      daemon 4026532999
`
	for _, tc := range []struct {
		width int
		want  string
	}{
		{80, `        NS TYPE NPROCS  PID USER       PARENT COMMAND CONTAINERS
4026531837 user      2    1 root              systemd
4026532200 user      1  500 root   4026531837 pause   containerd k8s.io/3f1c2a9b
4026532201 user      0      root   4026532200
4026532202 user      0      root   4026532201
4026532300 user      0      alice  4026531837
4026532400 user      1 4000 4242   4026532300 evil    runc zoo-1
4026532999 user      0
4026533001 user      0      daemon 4026532999
`},
		{65, narrowest},
		{36, narrowest}, // 65 columns wide: printed whole, not cut
	} {
		t.Run(strconv.Itoa(tc.width), func(t *testing.T) {
			var b bytes.Buffer
			if err := tree.List(&b, synthetic(), nsrel.TypeUser, tree.Options{}, tree.ListOptions{Columns: cols, Width: tc.width}); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, b.String()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// Without text columns nothing shrinks: the lines are as wide as
	// without a width.
	lo := tree.ListOptions{Columns: []string{"NS", "PARENT", "OWNERNS"}}
	var whole, fitted bytes.Buffer
	if err := tree.List(&whole, synthetic(), nsrel.TypeUser, tree.Options{}, lo); err != nil {
		t.Fatal(err)
	}
	lo.Width = 12
	if err := tree.List(&fitted, synthetic(), nsrel.TypeUser, tree.Options{}, lo); err != nil {
		t.Fatal(err)
	}
	if fitted.String() != whole.String() {
		t.Errorf("numbers only, at 12 columns:\n%s\nwant as without a width:\n%s", fitted.String(), whole.String())
	}
}

func TestCutToWidth(t *testing.T) {
	for _, tc := range []struct {
		s    string
		w    int
		want string
	}{
		{"systemd", 3, "sys"},
		{"容器ab", 3, "容"},                 // the second wide character would cross
		{"e\u0301e\u0301", 1, "e\u0301"}, // the mark stays with its letter
		{"ab\xffc", 3, "ab\xff"},
		{"short", 10, "short"},
		// An escape the edge would cut is left out whole: "ev\x1b[31mRED\"
		// ended in a lone backslash where \x0a was cut.
		{`RED\x0ax`, 4, "RED"}, {`RED\x0ax`, 6, "RED"}, {`RED\x0ax`, 7, `RED\x0a`},
		{`a\\b`, 2, "a"}, {`a\\b`, 3, `a\\`},
		{`a\u{202e}b`, 8, "a"}, {`a\u{202e}b`, 9, `a\u{202e}`},
		{`"a\u00e9"`, 4, `"a`}, {`\x1b\x1b`, 5, `\x1b`},
	} {
		if got := tree.CutToWidth(tc.s, tc.w); got != tc.want {
			t.Errorf("CutToWidth(%q, %d) = %q, want %q", tc.s, tc.w, got, tc.want)
		}
	}
}

// TestRawQuotedNamesDecode: decoding --raw's \xHH once gives each quoted
// name in its double quotes, byte for byte but for its own backslashes
// and double quotes (\\ and \"): a pod name ending in a backslash, or
// holding a double quote, a comma, a newline or a space, decodes back
// to itself. \\ in a quoted name was written \x5c: pod "x\\" decoded to
// pod "x\" (the pod x", unterminated).
func TestRawQuotedNamesDecode(t *testing.T) {
	names := []string{`x\`, `x", container "y`, "a,b c", "new\nline", `\"`, "esc\x1b[2J\u202e", "é"}
	m := discover.NewModel()
	n := &discover.Namespace{Type: nsrel.TypeUser, Dev: 4, Ino: 4026531837, OwnerUID: 0, OwnerName: "root"}
	for i, name := range names {
		n.Containers = append(n.Containers, discover.Container{ID: fmt.Sprint("c", i), Engine: "containerd", Namespace: "k8s.io", Name: name + "/pod/ctr"})
	}
	n.FoundVia = []discover.Found{{Via: discover.ViaMount, Path: `/run/ns/x\" y`, MountNS: 4026532250}}
	m.Add(n)
	var b bytes.Buffer
	lo := tree.ListOptions{Columns: []string{"NS", "VIA", "CONTAINERS"}, Raw: true, NoHeadings: true}
	if err := tree.List(&b, m, nsrel.TypeUser, tree.Options{}, lo); err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(b.String())
	if len(fields) != 3 {
		t.Fatalf("raw line %q: %d fields, want 3", b.String(), len(fields))
	}
	// Decoding \xHH once, then reading the quoted names.
	unhex := regexp.MustCompile(`\\x[0-9a-f]{2}`)
	decode := func(s string) string {
		return unhex.ReplaceAllStringFunc(s, func(e string) string {
			c, _ := strconv.ParseUint(e[2:], 16, 8)
			return string([]byte{byte(c)})
		})
	}
	quoted := func(s string) []string {
		var out []string
		for i := 0; i < len(s); i++ {
			if s[i] != '"' {
				continue
			}
			var q []byte
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				q = append(q, s[i])
			}
			out = append(out, string(q))
		}
		return out
	}
	var want []string
	for _, name := range names {
		want = append(want, name+"/pod")
	}
	if got := quoted(decode(fields[2])); !cmp.Equal(got, want) {
		t.Errorf("CONTAINERS %s decodes to pods %q, want %q", fields[2], got, want)
	}
	if got := quoted(decode(fields[1])); !cmp.Equal(got, []string{`/run/ns/x\" y`}) {
		t.Errorf("VIA %s decodes to paths %q", fields[1], got)
	}
}
