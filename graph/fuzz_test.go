package graph_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/graph"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// dotNode is a node line as DOT writes it: the label one DOT string, each
// backslash escaping the next character.
var dotNode = regexp.MustCompile(`^\t\t(user|pid)_[0-9]+ \[id="(user|pid)_[0-9]+", label="(?:[^"\\\n]|\\.)*", fillcolor="#[0-9a-f]{6}", style="[a-z,]+"(, color="#[0-9a-f]{6}", penwidth=2)?\];$`)

// FuzzNames puts container IDs, names, command names and mount paths a
// container controls into the DOT and the report: every node stays one
// well-formed line of DOT, and the report keeps its two scripts and no
// control character.
func FuzzNames(f *testing.F) {
	f.Add("web-1", "default/web-0", "sleep", "/run/x")
	f.Add(`"];x->y [label="`, "</script><script>alert(1)</script>", "\x1b[2J\\", "a\nb\"c")
	f.Add("\xff\xfe", "ns/\u202e", "\\\\\\", `}\l\N`)
	f.Fuzz(func(t *testing.T, id, name, comm, path string) {
		m := chainModel(2)
		for _, n := range m.Namespaces {
			if len(n.Processes) > 0 {
				n.Containers = []discover.Container{{ID: id, Engine: "runc", Namespace: name, PID: 42, Name: name}}
				n.Processes = []discover.Process{{PID: 42, Comm: comm}}
			} else {
				n.FoundVia = []discover.Found{{Via: discover.ViaMount, PID: 1, Path: path, MountNS: 7}}
			}
		}
		g := graph.Build(m, graph.Options{})
		var b bytes.Buffer
		if err := g.DOT(&b); err != nil {
			t.Fatal(err)
		}
		nodes := 0
		for _, l := range strings.Split(b.String(), "\n") {
			if strings.HasPrefix(l, "\t\t") && !strings.HasPrefix(l, "\t\tlabel=") {
				nodes++
				if !dotNode.MatchString(l) {
					t.Fatalf("malformed node line %q", l)
				}
			}
		}
		if nodes != len(g.Nodes) {
			t.Fatalf("%d node lines for %d nodes:\n%s", nodes, len(g.Nodes), b.String())
		}
		b.Reset()
		if err := g.HTML(&b, graph.HTMLOptions{Title: name}); err != nil {
			t.Fatal(err)
		}
		page := b.String()
		if n := strings.Count(strings.ToLower(page), "<script"); n != 2 {
			t.Fatalf("%d script elements", n)
		}
		if strings.ContainsAny(page, "\x1b\x00\u202e") {
			t.Fatalf("a control character reached the report")
		}
	})
}
