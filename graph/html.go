package graph

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"strconv"
	"strings"

	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/tree"
)

// reportHTML is the page with {{name}} markers where [Graph.HTML] puts
// the values, each escaped for where it stands. No template engine: the
// values are few and their places fixed, and html/template's package
// initialisation was a tenth of lsuserns's start-up (docs/BENCHMARKS.md).
//
//go:embed report.html
var reportHTML string

// FitNodes is the most nodes a picture may have to be scaled down to
// the window when the report opens; a larger one opens at full size, to
// scroll (the reader can switch).
const FitNodes = 60

// HTMLOptions controls [Graph.HTML].
type HTMLOptions struct {
	// Title heads the page (escaped), e.g. "lsuserns on node-7".
	Title string
	// SVG is the picture dot drew of the graph ([Graph.SVG]); without it
	// the report has the table, search and details only and says why.
	SVG []byte
	// NoSVG says why there is no picture ("dot not found"), printed as
	// given (HTML-escaped): what a container chose in it must be escaped
	// already, as [Graph.SVG]'s errors are.
	NoSVG string
}

// HTML writes the report: one self-contained HTML page with the picture
// inline, a table of every node, a search box and details on click. It
// loads nothing: no script, style, font or image from anywhere.
//
// Every value is escaped for its place: text and quoted attribute values
// with [html.EscapeString] (after [vocab.Escape], which the graph's
// strings went through when it was built), the data for the page's
// script as JSON with <, > and & written as \u escapes, so that no
// string can end the script element. The SVG is dot's, from the
// graph's own escaped DOT.
func (g *Graph) HTML(w io.Writer, o HTMLOptions) error {
	data, err := json.Marshal(g)
	if err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	// Written as it is made: a report of a long audit history is as
	// large as the history, and a page buffered whole held it twice.
	b := bufio.NewWriterSize(w, 64<<10)
	fit := len(g.Nodes) <= FitNodes
	rest := reportHTML
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:i])
		rest = rest[i+2:]
		j := strings.Index(rest, "}}")
		if j < 0 {
			return fmt.Errorf("graph: report.html: unclosed {{")
		}
		name := rest[:j]
		rest = rest[j+2:]
		switch name {
		case "title":
			if o.Title == "" {
				b.WriteString("nsrel namespaces")
			} else {
				b.WriteString(text(vocab.Escape(o.Title)))
			}
		case "userFill":
			b.WriteString(userFill)
		case "pidFill":
			b.WriteString(pidFill)
		case "ctrPen":
			b.WriteString(ctrPen)
		case "counts":
			fmt.Fprintf(b, "%d namespaces, %d processes, %d containers", g.Namespaces, g.Processes, g.Containers)
		case "fitChecked":
			if fit {
				b.WriteString(" checked")
			}
		case "fitClass":
			if fit {
				b.WriteString(` class="fit"`)
			}
		case "audit":
			if a := g.Audit; a != nil {
				class := "bad"
				if a.Verified {
					class = "ok"
				}
				fmt.Fprintf(b, `<div id="audit" class="audit %s">Audit log %s: %s; %d records of the shown containers</div>`,
					class, text(a.Path), text(a.Verdict), a.Records)
			}
		case "picture":
			if svg := inlineSVG(o.SVG); svg != "" {
				b.WriteString(svg)
			} else {
				b.WriteString("<p>No picture: " + text(o.NoSVG) + ". The table below lists every namespace.</p>")
			}
		case "rows":
			for _, n := range g.Nodes {
				writeRow(b, n)
			}
		case "data":
			b.Write(data)
		default:
			return fmt.Errorf("graph: report.html: unknown field {{%s}}", name)
		}
	}
	return b.Flush()
}

// writeRow writes n's row of the table.
func writeRow(b *bufio.Writer, n *Node) {
	id := text(n.ID)
	b.WriteString(`<tr id="row-` + id + `" class="ns ` + text(n.Type) + `" data-id="` + id + `"><td>` + text(n.Lines()[0]))
	if n.NSID != 0 {
		b.WriteString(" (ID " + strconv.FormatUint(n.NSID, 10) + ")")
	}
	owners, _ := n.owners()
	b.WriteString("</td><td>" + text(owners) + "</td><td>" + text(procSummary(n)) + "</td><td>")
	for _, c := range n.Containers {
		b.WriteString(`<div class="ctr">` + text(c.Label) + "</div>")
	}
	// A process may hold thousands of fds to one namespace: the first
	// ways, as the --details line says it (the details list them all).
	b.WriteString("</td><td>" + text(tree.CappedList(n.Found, n.FoundMore)) + "</td></tr>\n")
}

// text escapes s for HTML text and quoted attribute values; a NUL
// (which vocab.Escape already spells out) would become U+FFFD.
func text(s string) string {
	return strings.ReplaceAll(html.EscapeString(s), "\x00", "\uFFFD")
}

// inlineSVG cuts dot's SVG document to its <svg> element: no XML
// declaration and no DOCTYPE (which names a DTD by URL).
func inlineSVG(b []byte) string {
	s := string(b)
	if i := strings.Index(s, "<svg"); i >= 0 {
		return s[i:]
	}
	return ""
}

// procSummary is the processes of a node for the table: "3: 1 systemd, 2
// kthreadd, 9 sh …" (the details list them all).
func procSummary(n *Node) string {
	if len(n.Processes) == 0 {
		return "none"
	}
	var b strings.Builder
	b.WriteString(strconv.Itoa(len(n.Processes)) + ": ")
	writeProcs(&b, n.Processes, 2*LabelProcs)
	return b.String()
}
