package vocab

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestFlagError parses the same bad command lines with Go's flag package
// (nsrel-hook, nsrel-containerd) and with pflag (lsuserns, lspidns) and
// checks the words of both.
func TestFlagError(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		std, pfl  string
		shortOnly bool
	}{
		{args: []string{"--bogus"}, std: "unknown option --bogus", pfl: "unknown option --bogus"},
		{args: []string{"--a\x1b[2J"}, std: `unknown option --a\x1b[2J`, pfl: `unknown option --a\x1b[2J`},
		{args: []string{"--config"}, std: "option --config needs an argument", pfl: "option --config needs an argument"},
		{args: []string{"--timeout", "soon"}, std: `invalid value "soon" for option --timeout: parse error`,
			pfl: `invalid value "soon" for option --timeout: must be a duration like "30s" or "5m"`},
		{args: []string{"--timeout", "1\x1bs"}, std: `invalid value "1\x1bs" for option --timeout: parse error`,
			pfl: `invalid value "1\x1bs" for option --timeout: must be a duration like "30s" or "5m"`},
		{args: []string{"--count", "x"}, std: `invalid value "x" for option --count: parse error`,
			pfl: `invalid value "x" for option --count: must be an integer`},
		// flag said "parse error" of a boolean, pflag what it takes.
		{args: []string{"--version=x"}, std: `invalid value "x" for option --version: must be true or false`,
			pfl: `invalid value "x" for option --version: must be true or false`},
		{args: []string{"-x"}, pfl: "unknown option -x", shortOnly: true},
		{args: []string{"-c"}, pfl: "option -c needs an argument", shortOnly: true},
		{args: []string{"-n", "x"}, pfl: `invalid value "x" for option --count: must be an integer`, shortOnly: true},
	} {
		if !tc.shortOnly {
			std := flag.NewFlagSet("x", flag.ContinueOnError)
			std.SetOutput(io.Discard)
			std.String("config", "", "")
			std.Duration("timeout", 0, "")
			std.Int("count", 0, "")
			std.Bool("version", false, "")
			if got := FlagError(std.Parse(tc.args)); got != tc.std {
				t.Errorf("flag %q: %q, want %q", tc.args, got, tc.std)
			}
		}
		gnu := pflag.NewFlagSet("x", pflag.ContinueOnError)
		gnu.SetOutput(io.Discard)
		gnu.StringP("config", "c", "", "")
		gnu.Duration("timeout", 0, "")
		gnu.IntP("count", "n", 0, "")
		gnu.Bool("version", false, "")
		if got := FlagError(gnu.Parse(tc.args)); got != tc.pfl {
			t.Errorf("pflag %q: %q, want %q", tc.args, got, tc.pfl)
		}
	}
	if got := FlagError(errors.New("something\nelse")); got != "something" {
		t.Errorf("other error: %q", got)
	}
}

// TestParseInterspersed: options after operands, and "--" ending the
// options for good, as getopt_long; "--" as an option's value is a value.
func TestParseInterspersed(t *testing.T) {
	for _, c := range []struct {
		args      []string
		pos       []string
		reason    string
		json, bad bool
	}{
		{args: []string{"12", "--reason", "x"}, pos: []string{"12"}, reason: "x"},
		{args: []string{"a", "--json", "b"}, pos: []string{"a", "b"}, json: true},
		{args: []string{"--", "--a", "--b"}, pos: []string{"--a", "--b"}},
		{args: []string{"f", "--", "-h", "--json"}, pos: []string{"f", "-h", "--json"}},
		{args: []string{"f", "--json", "--", "g", "--", "-x"}, pos: []string{"f", "g", "--", "-x"}, json: true},
		{args: []string{"--reason", "--", "f", "--json"}, pos: []string{"f"}, reason: "--", json: true},
		{args: []string{"--reason=--", "--", "--json"}, pos: []string{"--json"}, reason: "--"},
		{args: []string{"--json", "--", "--reason", "x"}, pos: []string{"--reason", "x"}, json: true},
		{args: []string{"f", "--bogus"}, bad: true},
		{args: []string{"-"}, pos: []string{"-"}},
		{args: nil},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		reason := fs.String("reason", "", "")
		asJSON := fs.Bool("json", false, "")
		pos, err := ParseInterspersed(fs, c.args)
		if (err != nil) != c.bad {
			t.Errorf("%q: error %v", c.args, err)
			continue
		}
		if c.bad {
			continue
		}
		if !slices.Equal(pos, c.pos) || *reason != c.reason || *asJSON != c.json {
			t.Errorf("%q: operands %q, --reason %q, --json %v; want %q, %q, %v", c.args, pos, *reason, *asJSON, c.pos, c.reason, c.json)
		}
	}
}

func TestCheckedWriter(t *testing.T) {
	var b strings.Builder
	w := &CheckedWriter{W: &b}
	fmt.Fprint(w, "one\n")
	if w.Err != nil || b.String() != "one\n" {
		t.Fatalf("after a write: %q, %v", b.String(), w.Err)
	}
	fail := &CheckedWriter{W: failWriter{}}
	fmt.Fprint(fail, "a")
	if n, err := fail.Write([]byte("b")); n != 0 || !errors.Is(err, errFull) || !errors.Is(fail.Err, errFull) {
		t.Errorf("after a failed write: %d, %v, Err %v", n, err, fail.Err)
	}
}

var errFull = errors.New("full")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errFull }

func TestDedup(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{nil, nil},
		{[]string{"a"}, []string{"a"}},
		{[]string{"b", "a", "b", "c", "a", ""}, []string{"b", "a", "c", ""}},
	} {
		if got := Dedup(c.in); !slices.Equal(got, c.want) {
			t.Errorf("Dedup(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
