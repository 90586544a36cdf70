package clidoc

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const sample = `Usage: demo [options]

Demo prints things: more words here.

  an example line

Examples:
  demo -J

Options:
  -J, --json
        print JSON
      --format FORMAT
        output format
  -o, --output COLUMNS
        columns
        on two lines (default "NS")

Exit status: 0 success, 1 failure.
`

func TestParse(t *testing.T) {
	p, err := Parse("demo", "1", sample)
	if err != nil {
		t.Fatal(err)
	}
	want := []Flag{
		{Short: "J", Long: "json", Help: "print JSON"},
		{Long: "format", Arg: "FORMAT", Help: "output format"},
		{Short: "o", Long: "output", Arg: "COLUMNS", Help: `columns on two lines (default "NS")`},
	}
	if diff := cmp.Diff(want, p.Flags); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}
	if p.Summary != "demo prints things" || !cmp.Equal(p.Synopsis, []string{"demo [options]"}) {
		t.Errorf("summary %q, synopsis %q", p.Summary, p.Synopsis)
	}
	var titles []string
	for _, s := range p.Sections {
		titles = append(titles, s.Title)
	}
	if !cmp.Equal(titles, []string{"DESCRIPTION", "EXAMPLES", "OPTIONS", "EXIT STATUS"}) {
		t.Errorf("sections %q", titles)
	}
	var man bytes.Buffer
	if err := p.Man(&man, "2026-12-03", "1.0"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{".TH DEMO 1 \"2026\\-12\\-03\"", "\\fB\\-J\\fR, \\fB\\-\\-json\\fR", "\\fB\\-\\-format\\fR \\fIFORMAT\\fR"} {
		if !strings.Contains(man.String(), s) {
			t.Errorf("man page lacks %q:\n%s", s, man.String())
		}
	}
}

// TestParseRefusesUnreadOptions: an option line clidoc cannot read is an
// error, not text of the option above it (the man page and completions
// would silently lack it).
func TestParseRefusesUnreadOptions(t *testing.T) {
	bad := strings.Replace(sample, "      --format FORMAT", "         --format FORMAT", 1)
	if _, err := Parse("demo", "1", bad); err == nil || !strings.Contains(err.Error(), "--format") {
		t.Errorf("Parse: %v", err)
	}
	bad = strings.Replace(sample, "  demo -J\n", "  demo --nope\n", 1)
	bad = strings.Replace(bad, "Usage: demo [options]", "Usage: demo [--nope]", 1)
	if _, err := Parse("demo", "1", bad); err == nil || !strings.Contains(err.Error(), "--nope") {
		t.Errorf("Parse with an undocumented synopsis option: %v", err)
	}
}

// TestCommandsTieOptionsAfterSubcommand: an option the synopsis shows
// before the subcommand is the command's own, not the subcommand's.
func TestCommandsTieOptionsAfterSubcommand(t *testing.T) {
	got := commands("demo", []string{
		"demo [--config FILE] audit verify [--json] [LOG...]",
		"demo watch [--config FILE] --address SOCK",
		"demo --version",
	})
	want := []Command{{Path: []string{"audit", "verify"}, Flags: []string{"json"}}, {Path: []string{"watch"}, Flags: []string{"config", "address"}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
}
