package graph

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"

	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/tree"
)

// LabelWidth is the longest label line, in characters; a longer one
// (a long mount path, say) is cut with "…" (the HTML details show it
// whole).
const LabelWidth = 64

// LabelContainers is how many containers a node's label names before
// "+N more".
const LabelContainers = 4

// Colours of the picture, also used by the HTML report.
const (
	userFill = "#dbeafe"
	pidFill  = "#fef3c7"
	ctrPen   = "#b91c1c"
)

// DOT writes the graph in Graphviz's DOT language: a cluster of user
// namespaces and one of PID namespaces, parent edges solid, ownership
// edges dashed from each PID namespace to its owner, process-less
// namespaces dashed, namespaces with containers red. Every node carries
// its ID as its id attribute, so dot's SVG names it too.
func (g *Graph) DOT(w io.Writer) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("digraph nsrel {\n\tgraph [rankdir=LR, nodesep=0.2, ranksep=0.5, fontname=\"sans-serif\", fontsize=12];\n" +
		"\tnode [shape=box, style=\"rounded,filled\", fontname=\"sans-serif\", fontsize=10, margin=\"0.12,0.06\"];\n" +
		"\tedge [arrowsize=0.6];\n")
	for _, typ := range []struct{ name, title, fill string }{{"user", "user namespaces", userFill}, {"pid", "PID namespaces", pidFill}} {
		fmt.Fprintf(bw, "\tsubgraph cluster_%s {\n\t\tlabel=%s; style=rounded; color=\"#9ca3af\";\n", typ.name, quote(typ.title))
		for _, n := range g.Nodes {
			if n.Type != typ.name {
				continue
			}
			style, pen := "rounded,filled", ""
			if len(n.Processes) == 0 {
				style = "rounded,filled,dashed"
			}
			if len(n.Containers) > 0 {
				pen = ", color=\"" + ctrPen + "\", penwidth=2"
			}
			fmt.Fprintf(bw, "\t\t%s [id=%s, label=%s, fillcolor=%q, style=%q%s];\n", n.ID, quote(n.ID), quote(strings.Join(n.Lines(), "\n")), typ.fill, style, pen)
		}
		bw.WriteString("\t}\n")
	}
	for _, e := range g.Edges {
		attr := ""
		if e.Kind == "owner" {
			attr = " [style=dashed, color=\"#6b7280\", constraint=false, arrowhead=empty]"
		}
		fmt.Fprintf(bw, "\t%s -> %s%s;\n", e.From, e.To, attr)
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

// Lines returns the text of the node's label, one line each: its name
// (first and last of a folded chain), owner, the processes grouped ("3
// processes: 1 systemd, 40 sleep, 41 sh …") or how a process-less
// namespace was found, and its containers.
func (n *Node) Lines() []string {
	var l []string
	if len(n.Chain) > 1 {
		l = append(l, n.Name+" … "+n.Type+":["+strconv.FormatUint(n.Chain[len(n.Chain)-1], 10)+"]",
			strconv.Itoa(len(n.Chain))+" process-less "+n.Type+" namespaces")
	} else {
		l = append(l, n.Name)
	}
	if owners, many := n.owners(); many {
		l = append(l, "owners "+owners)
	} else {
		l = append(l, "owner "+owners)
	}
	switch np := len(n.Processes); {
	case np > 0:
		var b strings.Builder
		b.WriteString(strconv.Itoa(np))
		if np == 1 {
			b.WriteString(" process: ")
		} else {
			b.WriteString(" processes: ")
		}
		writeProcs(&b, n.Processes, LabelProcs)
		l = append(l, b.String())
	case len(n.Found) > 0 && len(n.Chain) <= 1:
		l = append(l, "no process; found via "+n.Found[0])
	}
	for i, c := range n.Containers {
		if i == LabelContainers {
			l = append(l, "+"+strconv.Itoa(len(n.Containers)-i)+" more containers")
			break
		}
		l = append(l, c.Label)
	}
	for i, s := range l {
		if r := []rune(s); len(r) > LabelWidth {
			// Never inside an escape ("\u{e01" read as text).
			l[i] = tree.CutBefore(s, len(string(r[:LabelWidth-1]))) + "…"
		}
	}
	return l
}

// owners is the node's owner as its label and the report's table say
// it: "[OWNER_NS ]OWNER", or "A, B" for a folded node whose namespaces
// have different owners (many reports whether there are several).
func (n *Node) owners() (s string, many bool) {
	switch {
	case len(n.Owners) > 1:
		return strings.Join(n.Owners, ", "), true
	case n.OwnerNS != "":
		return n.OwnerNS + " " + n.Owner, false
	}
	return n.Owner, false
}

// quote makes s a DOT string: backslashes and double quotes escaped,
// ampersands written as &amp; (Graphviz decodes character references in
// labels: a name holding &#27; would put a raw ESC in the picture), and
// lines joined with DOT's centred line break.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '\\', '"':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// SVG runs dot (the path of Graphviz's dot(1)) on the graph and returns
// the SVG it drew and what dot said on stderr (warnings; "" normally). ctx
// bounds the run. A run that fails, or ends without an <svg> element,
// is an error that holds dot's first line on stderr (escaped), or
// ctx's error when ctx ended it.
func (g *Graph) SVG(ctx context.Context, dot string) (svg []byte, warnings string, err error) {
	var in, out, errOut bytes.Buffer
	if err := g.DOT(&in); err != nil {
		return nil, "", err
	}
	cmd := exec.CommandContext(ctx, dot, "-Tsvg")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = &in, &out, &errOut
	err = cmd.Run()
	if err != nil && ctx.Err() != nil {
		// Killed at the deadline: "signal: killed" told nothing.
		return nil, "", fmt.Errorf("%s -Tsvg: %w", vocab.Escape(dot), ctx.Err())
	}
	if err != nil {
		// dot's message may quote the input, labels a container chose.
		if msg, _, _ := strings.Cut(strings.TrimSpace(errOut.String()), "\n"); msg != "" {
			err = fmt.Errorf("%w: %s", err, vocab.Escape(msg))
		}
		return nil, "", fmt.Errorf("%s -Tsvg: %w", vocab.Escape(dot), err)
	}
	if !bytes.Contains(out.Bytes(), []byte("<svg")) {
		return nil, "", fmt.Errorf("%s -Tsvg: exit status 0 without an SVG document", vocab.Escape(dot))
	}
	return out.Bytes(), errOut.String(), nil
}

// listItem is an escaped name (a [Process]'s Comm, escaped by
// vocab.Escape) as an item of a list: in double quotes when it holds a
// list's separators, as vocab.QuoteItem quotes a name not escaped yet.
func listItem(escaped string) string {
	if vocab.PlainItem(escaped) {
		return escaped
	}
	return vocab.QuoteEscaped(escaped)
}

// writeProcs writes the first limit processes as "1 systemd, 40 sleep",
// then " …" if there are more.
func writeProcs(b *strings.Builder, procs []Process, limit int) {
	for i, p := range procs {
		if i == limit {
			b.WriteString(" …")
			return
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(p.PID))
		if p.Comm != "" {
			b.WriteString(" " + listItem(p.Comm))
		}
	}
}
