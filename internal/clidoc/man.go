package clidoc

import (
	"fmt"
	"io"
	"strings"
)

// Man writes p as a man(7) page. date and version go into the title line
// (.TH); they are arguments so that a build is reproducible.
func (p *Page) Man(w io.Writer, date, version string) error {
	var b strings.Builder
	fmt.Fprintf(&b, ".\\\" Generated from %s --help; do not edit.\n", p.Name)
	fmt.Fprintf(&b, ".TH %s %s %s %s %s\n", strings.ToUpper(p.Name), p.Section, quote(date), quote("nsrel "+version), quote(manual(p.Section)))
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", p.Name, roff(p.Summary))
	b.WriteString(".SH SYNOPSIS\n.nf\n")
	for _, s := range p.Synopsis {
		b.WriteString(roffLine(s) + "\n")
	}
	b.WriteString(".fi\n")
	for _, s := range p.Sections {
		if len(s.Blocks) == 0 {
			continue
		}
		fmt.Fprintf(&b, ".SH %s\n", quote(s.Title))
		for i, bl := range s.Blocks {
			switch {
			case bl.Flag != nil:
				f := bl.Flag
				b.WriteString(".TP\n")
				head := "\\fB\\-\\-" + roff(f.Long) + "\\fR"
				if f.Short != "" {
					head = "\\fB\\-" + roff(f.Short) + "\\fR, " + head
				}
				if f.Arg != "" {
					head += " \\fI" + roff(f.Arg) + "\\fR"
				}
				b.WriteString(head + "\n" + roffLine(f.Help) + "\n")
			case bl.Pre:
				if i > 0 {
					b.WriteString(".PP\n")
				}
				b.WriteString(".nf\n.RS 4\n")
				for _, l := range strings.Split(bl.Text, "\n") {
					b.WriteString(roffLine(l) + "\n")
				}
				b.WriteString(".RE\n.fi\n")
			default:
				if i > 0 {
					b.WriteString(".PP\n")
				}
				b.WriteString(roffLine(bl.Text) + "\n")
			}
		}
	}
	b.WriteString(".SH SEE ALSO\n")
	var see []string
	for _, s := range seeAlso {
		if s != p.Name+"("+p.Section+")" {
			see = append(see, "\\fB"+strings.Replace(roff(s), "(", "\\fR(", 1))
		}
	}
	b.WriteString(strings.Join(see, ",\n") + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

var seeAlso = []string{"lsuserns(1)", "lspidns(1)", "nsrel-hook(8)", "nsrel-containerd(8)", "lsns(8)", "ioctl_ns(2)", "user_namespaces(7)", "pid_namespaces(7)"}

func manual(section string) string {
	if section == "8" {
		return "System Administration"
	}
	return "User Commands"
}

// roff escapes text for a roff line: backslashes and hyphens (so that
// options copy and paste as ASCII minus signs).
func roff(s string) string {
	return strings.NewReplacer(`\`, `\e`, `-`, `\-`).Replace(s)
}

// roffLine is roff for a whole output line: a line starting with a dot or
// an apostrophe would be a request, so it gets a zero-width escape.
func roffLine(s string) string {
	s = roff(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

func quote(s string) string { return `"` + strings.ReplaceAll(roff(s), `"`, `\(dq`) + `"` }
