package graph

import (
	_ "embed"
	"html/template"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/nsrel/nsrel/internal/vocab"
)

//go:embed report.html
var reportHTML string

// report is parsed on first use, not when a program that links the
// package starts (lsuserns printing a text tree never needs it).
var report = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("report").Funcs(template.FuncMap{
		"join":  strings.Join,
		"procs": procSummary,
		"lines": func(n *Node) []string { return n.Lines() },
	}).Parse(reportHTML))
})

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
	// NoSVG says why there is no picture ("dot not found").
	NoSVG string
}

// HTML writes the report: one self-contained HTML page with the picture
// inline, a table of every node, a search box and details on click. It
// loads nothing: no script, style, font or image from anywhere.
func (g *Graph) HTML(w io.Writer, o HTMLOptions) error {
	return report().Execute(w, struct {
		Title, NoSVG string
		SVG          template.HTML
		G            *Graph
		UserFill     string
		PIDFill      string
		CtrPen       string
		FitNodes     int
	}{vocab.Escape(o.Title), o.NoSVG, template.HTML(inlineSVG(o.SVG)), g, userFill, pidFill, ctrPen, FitNodes})
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
