package clidoc

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Page is a command's --help text, parsed: the one source of its man page
// and its shell completions.
type Page struct {
	Name     string // command name, e.g. "lsuserns"
	Section  string // man section: "1" or "8"
	Summary  string // one line for NAME: what the command does
	Synopsis []string
	// Sections in the order of the help text. DESCRIPTION comes first.
	Sections []Section
	// Flags are every option the help documents (Flags: or Options:).
	Flags []Flag
	// Commands are the subcommand paths of the synopsis ("audit verify"),
	// each with the flags its synopsis line names.
	Commands []Command
}

// Section is a titled part of the help text.
type Section struct {
	Title  string  // upper case: "DESCRIPTION", "EXAMPLES", "OPTIONS"
	Blocks []Block // paragraphs, preformatted blocks and options
}

// Block is a paragraph (Pre false), a preformatted block (Pre true) or an
// option (Flag set).
type Block struct {
	Text string
	Pre  bool
	Flag *Flag
}

// Flag is one documented option.
type Flag struct {
	Short string // "J" for -J, or empty
	Long  string // "json" for --json
	Arg   string // "FILE", or empty for a switch
	Help  string // one line, continuation lines joined
}

// Command is one subcommand path of the synopsis.
type Command struct {
	Path  []string // e.g. ["audit", "verify"]
	Flags []string // long names of the flags its synopsis line shows after the subcommand
}

var (
	headerRE = regexp.MustCompile(`^([A-Z][a-z]+(?: [a-z]+)?):(?:\s+(.*))?$`)
	optionRE = regexp.MustCompile(`^ {2,6}(?:-([A-Za-z0-9]), )?--([A-Za-z0-9][A-Za-z0-9-]*)(?:[ =]([A-Za-z[][A-Za-z0-9_.:[\]-]*))?(?:\s{2,}(.*))?$`)
	flagRE   = regexp.MustCompile(`--([A-Za-z0-9][A-Za-z0-9-]*)`)
	cmdWord  = regexp.MustCompile(`^[a-z][A-Za-z-]*$`)
)

// Parse reads the --help text of the command name (man section section).
// It knows the layout nsrel's commands use: a "Usage:" header (with the
// synopsis on its line or indented below it), paragraphs at column 0,
// indented examples, a "Flags:" or "Options:" section of indented
// options (help on the same line after two spaces or on the lines below,
// indented deeper), and an "Exit status:" paragraph.
func Parse(name, section, help string) (*Page, error) {
	p := &Page{Name: name, Section: section}
	cur := p.section("DESCRIPTION")
	var para []string // the open paragraph (column 0 lines)
	var pre []string  // the open preformatted block
	var opt *Flag     // the open option
	inOptions, inUsage := false, false
	flush := func() {
		if len(para) > 0 {
			cur.Blocks = append(cur.Blocks, Block{Text: strings.Join(para, " ")})
			para = nil
		}
		if len(pre) > 0 {
			cur.Blocks = append(cur.Blocks, Block{Text: strings.Join(trimCommonIndent(pre), "\n"), Pre: true})
			pre = nil
		}
		opt = nil
	}
	for _, line := range strings.Split(strings.TrimRight(help, "\n"), "\n") {
		line = strings.TrimRight(line, " \t")
		if line == "" {
			flush()
			if inUsage {
				inUsage = false
				cur = p.section("DESCRIPTION")
			}
			continue
		}
		if m := headerRE.FindStringSubmatch(line); m != nil && !strings.HasPrefix(line, " ") {
			flush()
			title := strings.ToUpper(m[1])
			inOptions = title == "FLAGS" || title == "OPTIONS"
			inUsage = title == "USAGE"
			switch {
			case inOptions:
				title = "OPTIONS"
			case inUsage:
				if m[2] != "" {
					p.Synopsis = append(p.Synopsis, m[2])
				}
				continue
			}
			cur = p.section(title)
			if m[2] != "" {
				para = append(para, m[2])
			}
			continue
		}
		indented := strings.HasPrefix(line, " ")
		switch {
		case inUsage && indented:
			p.Synopsis = append(p.Synopsis, strings.TrimSpace(line))
		case inOptions && indented:
			if m := optionRE.FindStringSubmatch(line); m != nil {
				flush()
				p.Flags = append(p.Flags, Flag{Short: m[1], Long: m[2], Arg: m[3], Help: m[4]})
				opt = &p.Flags[len(p.Flags)-1]
				cur.Blocks = append(cur.Blocks, Block{Flag: opt})
				continue
			}
			if opt == nil {
				return nil, fmt.Errorf("%s --help: option text without an option: %q", name, line)
			}
			if strings.HasPrefix(strings.TrimSpace(line), "-") {
				return nil, fmt.Errorf("%s --help: an option line in a form clidoc does not read: %q", name, line)
			}
			opt.Help = strings.TrimSpace(opt.Help + " " + strings.TrimSpace(line))
		case indented:
			if len(para) > 0 {
				flush()
			}
			pre = append(pre, line)
		default:
			if inOptions {
				// Text at column 0 after the options: a new paragraph of
				// the description.
				flush()
				inOptions = false
				cur = p.section("DESCRIPTION")
			}
			if len(pre) > 0 {
				flush()
			}
			para = append(para, line)
		}
	}
	flush()
	if len(p.Synopsis) == 0 {
		return nil, fmt.Errorf("%s --help: no Usage line", name)
	}
	p.Summary = summary(name, p.Sections[0])
	if p.Summary == "" {
		return nil, fmt.Errorf("%s --help: no description to take a summary from", name)
	}
	p.Commands = commands(name, p.Synopsis)
	for _, line := range p.Synopsis {
		for _, m := range flagRE.FindAllStringSubmatch(line, -1) {
			if p.Flag(m[1]) == nil {
				return nil, fmt.Errorf("%s --help: the synopsis shows --%s, which no option documents", name, m[1])
			}
		}
	}
	return p, nil
}

// Flag returns the documented option with the long name long, or nil.
func (p *Page) Flag(long string) *Flag {
	for i := range p.Flags {
		if p.Flags[i].Long == long {
			return &p.Flags[i]
		}
	}
	return nil
}

func (p *Page) section(title string) *Section {
	for i := range p.Sections {
		if p.Sections[i].Title == title {
			return &p.Sections[i]
		}
	}
	p.Sections = append(p.Sections, Section{Title: title})
	return &p.Sections[len(p.Sections)-1]
}

// summary takes NAME's line from the first paragraph: its first clause,
// without the command's name, starting in lower case.
func summary(name string, desc Section) string {
	for _, b := range desc.Blocks {
		if b.Pre || b.Flag != nil {
			continue
		}
		s := strings.TrimPrefix(b.Text, name+" ")
		if i := strings.IndexAny(s, ":."); i > 0 {
			s = s[:i]
		}
		if s == "" {
			return ""
		}
		return strings.ToLower(s[:1]) + s[1:]
	}
	return ""
}

// commands reads the subcommand paths from the synopsis lines: the
// lower-case words after the name, outside brackets, up to the first
// argument placeholder; "a|b|c" gives three paths.
func commands(name string, synopsis []string) []Command {
	var out []Command
	seen := map[string]bool{}
	for _, line := range synopsis {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != name {
			continue
		}
		var path [][]string // alternatives at each level
		var flags []string
		depth := 0
		done := false
		for _, f := range fields[1:] {
			// Options before the first subcommand word are the command's
			// own ("nsrel-hook [--config FILE] audit verify"): Go's flag
			// parsing takes them there only, so they are not tied to
			// the subcommand.
			if depth > 0 || strings.HasPrefix(f, "[") {
				depth += strings.Count(f, "[") - strings.Count(f, "]")
				for _, m := range flagRE.FindAllStringSubmatch(f, -1) {
					if len(path) > 0 {
						flags = append(flags, m[1])
					}
				}
				continue
			}
			if strings.HasPrefix(f, "--") {
				if len(path) > 0 {
					flags = append(flags, flagRE.FindStringSubmatch(f)[1])
				}
				continue
			}
			if done {
				continue
			}
			alts := strings.Split(f, "|")
			ok := true
			for _, a := range alts {
				ok = ok && cmdWord.MatchString(a)
			}
			if !ok {
				done = true
				continue
			}
			path = append(path, alts)
		}
		if len(path) == 0 {
			continue
		}
		// Expand the alternatives of the last level (nsrel's synopses
		// have them only there).
		prefix := []string{}
		for _, lv := range path[:len(path)-1] {
			prefix = append(prefix, lv[0])
		}
		for _, a := range path[len(path)-1] {
			c := Command{Path: append(append([]string{}, prefix...), a), Flags: flags}
			key := strings.Join(c.Path, " ")
			if !seen[key] {
				seen[key] = true
				out = append(out, c)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return strings.Join(out[i].Path, " ") < strings.Join(out[j].Path, " ") })
	return out
}

func trimCommonIndent(lines []string) []string {
	min := -1
	for _, l := range lines {
		n := len(l) - len(strings.TrimLeft(l, " "))
		if min < 0 || n < min {
			min = n
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l[min:]
	}
	return out
}
