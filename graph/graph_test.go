package graph_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/graph"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
	"github.com/nsrel/nsrel/tree"
)

// synthetic builds a host: the initial user and PID namespaces, users
// user namespaces below (a chain of depth 3 every tenth, the rest
// children of the initial one), each with a PID namespace it owns,
// procs processes spread over them, and a container in every fifth.
func synthetic(users, procs int) *discover.Model {
	m := discover.NewModel()
	ino := uint64(4026532000)
	root := &discover.Namespace{Type: nsrel.TypeUser, Ino: 4026531837, OwnerUID: 0, OwnerName: "root"}
	proot := &discover.Namespace{Type: nsrel.TypePID, Ino: 4026531836, Owner: root, OwnerUID: -1}
	m.Add(root)
	m.Add(proot)
	var spaces [][2]*discover.Namespace
	parent := root
	for i := 0; i < users; i++ {
		if i%10 == 0 {
			parent = root
		}
		ino++
		u := &discover.Namespace{Type: nsrel.TypeUser, Ino: ino, Parent: parent, Owner: parent, OwnerUID: 1000 + int64(i)}
		ino++
		p := &discover.Namespace{Type: nsrel.TypePID, Ino: ino, Parent: proot, Owner: u, OwnerUID: -1}
		m.Add(u)
		m.Add(p)
		if i%10 < 2 {
			parent = u // a chain of three: i%10 == 0, 1, 2
		}
		if i%5 == 0 {
			id := strconv.Itoa(i)
			c := discover.Container{ID: "ctr-" + id, Engine: "runc", PID: 100000 + i, Name: "default/web-" + id}
			u.Containers = append(u.Containers, c)
			p.Containers = append(p.Containers, c)
		}
		spaces = append(spaces, [2]*discover.Namespace{u, p})
	}
	for pid := 1; pid <= procs; pid++ {
		pr := discover.Process{PID: pid, Comm: "proc" + strconv.Itoa(pid%17)}
		if pid%2 == 0 || len(spaces) == 0 {
			root.Processes = append(root.Processes, pr)
			proot.Processes = append(proot.Processes, pr)
			continue
		}
		s := spaces[pid%len(spaces)]
		s[0].Processes = append(s[0].Processes, pr)
		s[1].Processes = append(s[1].Processes, pr)
	}
	for _, n := range m.Namespaces {
		if len(n.Processes) == 0 {
			n.FoundVia = []discover.Found{{Via: discover.ViaFD, PID: 1, Path: "/proc/1/fd/3"}}
		} else {
			n.FoundVia = []discover.Found{{Via: discover.ViaProcess, PID: n.Processes[0].PID}}
		}
	}
	m.Link()
	return m
}

// chainModel is a user namespace chain of depth below the initial one,
// with a process only in the last; the PID namespace of that process is
// owned by the namespace in the middle.
func chainModel(depth int) *discover.Model {
	m := discover.NewModel()
	root := &discover.Namespace{Type: nsrel.TypeUser, Ino: 100, OwnerUID: 0, OwnerName: "root", Processes: []discover.Process{{PID: 1, Comm: "init"}}}
	m.Add(root)
	prev, all := root, []*discover.Namespace{root}
	for i := 1; i <= depth; i++ {
		u := &discover.Namespace{Type: nsrel.TypeUser, Ino: 100 + uint64(i), Parent: prev, Owner: prev, OwnerUID: 0,
			FoundVia: []discover.Found{{Via: discover.ViaParent, Of: "user:[" + strconv.Itoa(101+i) + "]"}}}
		m.Add(u)
		prev = u
		all = append(all, u)
	}
	prev.Processes = []discover.Process{{PID: 42, Comm: "sleep"}}
	prev.FoundVia = []discover.Found{{Via: discover.ViaProcess, PID: 42}}
	p := &discover.Namespace{Type: nsrel.TypePID, Ino: 200, Owner: all[depth/2], OwnerUID: -1, Processes: prev.Processes}
	m.Add(p)
	m.Link()
	return m
}

func TestCollapse(t *testing.T) {
	m := chainModel(6)
	g := graph.Build(m, graph.Options{})
	if len(g.Nodes) != 8 || g.Namespaces != 8 {
		t.Fatalf("without collapse: %d nodes, %d namespaces; want 8", len(g.Nodes), g.Namespaces)
	}
	g = graph.Build(m, graph.Options{Collapse: 3})
	var ids []string
	for _, n := range g.Nodes {
		ids = append(ids, n.ID)
	}
	// user:[101] to user:[105] have no process and one child: folded.
	if diff := cmp.Diff([]string{"user_100", "user_101", "user_106", "pid_200"}, ids); diff != "" {
		t.Fatalf("nodes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint64{101, 102, 103, 104, 105}, g.Nodes[1].Chain); diff != "" {
		t.Errorf("chain (-want +got):\n%s", diff)
	}
	want := []graph.Edge{{"user_100", "user_101", "parent"}, {"user_101", "user_106", "parent"}, {"pid_200", "user_101", "owner"}}
	if diff := cmp.Diff(want, g.Edges); diff != "" {
		t.Errorf("edges (-want +got):\n%s", diff)
	}
	if got := g.Nodes[1].Lines()[:2]; got[0] != "user:[101] … user:[105]" || got[1] != "5 process-less user namespaces" {
		t.Errorf("folded label %q", got)
	}
	// A run shorter than Collapse stays.
	if g := graph.Build(m, graph.Options{Collapse: 6}); len(g.Nodes) != 8 {
		t.Errorf("collapse 6 of a run of 5: %d nodes, want 8", len(g.Nodes))
	}
}

// TestCollapseKeepsFoundVia: a folded node lists how each of its
// namespaces was found and each one's ID (a descriptor holding one deep
// in the chain is who holds it), and counts the fds and mounts past
// those listed; the report's table counts them so.
func TestCollapseKeepsFoundVia(t *testing.T) {
	m := chainModel(6)
	for _, n := range m.Of(nsrel.TypeUser) {
		if n.Ino >= 101 && n.Ino <= 105 {
			n.NSID, n.HasNSID = 1000+n.Ino, true
		}
		if n.Ino == 103 {
			for fd := 3; fd < 3+discover.MaxFoundVia; fd++ {
				n.FoundVia = append(n.FoundVia, discover.Found{Via: discover.ViaFD, PID: 9, Path: "/proc/9/fd/" + strconv.Itoa(fd)})
			}
			n.FoundViaMore = 136
		}
	}
	g := graph.Build(m, graph.Options{Collapse: 3})
	nd := g.Nodes[1]
	if diff := cmp.Diff([]uint64{1101, 1102, 1103, 1104, 1105}, nd.ChainIDs); diff != "" {
		t.Errorf("chain IDs (-want +got):\n%s", diff)
	}
	if !slices.Contains(nd.Found, "user:[101]: parent of user:[102]") || !slices.Contains(nd.Found, "user:[103]: fd /proc/9/fd/3") ||
		!slices.Contains(nd.Found, "user:[105]: parent of user:[106]") || nd.FoundMore != 136 {
		t.Errorf("folded node found via %q, +%d more; want every namespace's, +136", nd.Found, nd.FoundMore)
	}
	var b bytes.Buffer
	if err := g.HTML(&b, graph.HTMLOptions{}); err != nil {
		t.Fatal(err)
	}
	// 5 parents and 64 fds listed, the first MaxDetailProcs in the table.
	if want := fmt.Sprintf(" +%d more</td></tr>", 5+discover.MaxFoundVia-tree.MaxDetailProcs+136); !strings.Contains(b.String(), want) {
		i := strings.Index(b.String(), `id="row-user_101"`)
		t.Errorf("table row: %.2000s\nwant %q", b.String()[max(i, 0):], want)
	}
}

// TestCollapseOwners: a folded chain of PID namespaces has one
// ownership edge per owner, not one per folded namespace, and its label
// names every owner when they differ.
func TestCollapseOwners(t *testing.T) {
	build := func(owners ...int) *discover.Model {
		m := discover.NewModel()
		root := &discover.Namespace{Type: nsrel.TypeUser, Ino: 100, OwnerUID: 0, OwnerName: "root", Processes: []discover.Process{{PID: 1, Comm: "init"}}}
		m.Add(root)
		users := map[int]*discover.Namespace{}
		for _, o := range owners {
			if users[o] == nil {
				users[o] = &discover.Namespace{Type: nsrel.TypeUser, Ino: uint64(100 + o), Parent: root, Owner: root, OwnerUID: int64(1000 + o),
					Processes: []discover.Process{{PID: 10 + o, Comm: "sh"}}}
				m.Add(users[o])
			}
		}
		prev := &discover.Namespace{Type: nsrel.TypePID, Ino: 200, Owner: root, OwnerUID: -1, Processes: root.Processes}
		m.Add(prev)
		for i, o := range owners {
			p := &discover.Namespace{Type: nsrel.TypePID, Ino: 201 + uint64(i), Parent: prev, Owner: users[o], OwnerUID: -1,
				FoundVia: []discover.Found{{Via: discover.ViaParent, Of: "pid:[" + strconv.Itoa(202+i) + "]"}}}
			m.Add(p)
			prev = p
		}
		last := &discover.Namespace{Type: nsrel.TypePID, Ino: 201 + uint64(len(owners)), Parent: prev, Owner: users[owners[len(owners)-1]], OwnerUID: -1,
			Processes: []discover.Process{{PID: 99, Comm: "sleep"}}}
		m.Add(last)
		m.Link()
		return m
	}
	owns := func(g *graph.Graph) []graph.Edge {
		var out []graph.Edge
		for _, e := range g.Edges {
			if e.Kind == "owner" {
				out = append(out, e)
			}
		}
		return out
	}
	folded := func(g *graph.Graph) *graph.Node {
		for _, n := range g.Nodes {
			if n.ID == "pid_201" {
				return n
			}
		}
		t.Fatalf("no node pid_201")
		return nil
	}

	// Five folded namespaces, one owner: one edge, one owner.
	g := graph.Build(build(1, 1, 1, 1, 1), graph.Options{Collapse: 3})
	want := []graph.Edge{{"pid_200", "user_100", "owner"}, {"pid_201", "user_101", "owner"}, {"pid_206", "user_101", "owner"}}
	if diff := cmp.Diff(want, owns(g)); diff != "" {
		t.Errorf("one owner: ownership edges (-want +got):\n%s", diff)
	}
	if got := folded(g).Lines()[2]; got != "owner user:[101] 1001" {
		t.Errorf("one owner: label line %q", got)
	}
	var dot strings.Builder
	if err := g.DOT(&dot); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(dot.String(), "pid_201 -> user_101 "); n != 1 {
		t.Errorf("one owner: %d DOT edges pid_201 -> user_101, want 1:\n%s", n, dot.String())
	}

	// Two owners: an edge to each, both named.
	g = graph.Build(build(1, 1, 2, 2, 2), graph.Options{Collapse: 3})
	want = []graph.Edge{{"pid_200", "user_100", "owner"}, {"pid_201", "user_101", "owner"}, {"pid_201", "user_102", "owner"}, {"pid_206", "user_102", "owner"}}
	if diff := cmp.Diff(want, owns(g)); diff != "" {
		t.Errorf("two owners: ownership edges (-want +got):\n%s", diff)
	}
	n := folded(g)
	if diff := cmp.Diff([]string{"user:[101] 1001", "user:[102] 1002"}, n.Owners); diff != "" {
		t.Errorf("two owners: Owners (-want +got):\n%s", diff)
	}
	if got := n.Lines()[2]; got != "owners user:[101] 1001, user:[102] 1002" {
		t.Errorf("two owners: label line %q", got)
	}
}

func TestBranches(t *testing.T) {
	m := synthetic(30, 100)
	var picked []*discover.Namespace
	for _, n := range m.Namespaces {
		for _, c := range n.Containers {
			if c.ID == "ctr-20" {
				picked = append(picked, n)
			}
		}
	}
	g := graph.Build(m, graph.Options{Keep: graph.Branches(picked)})
	var names []string
	for _, n := range g.Nodes {
		names = append(names, n.Name)
	}
	// ctr-20's user namespace is the top of a chain; its PID namespace
	// is a child of the initial one, owned by it.
	want := []string{"user:[4026531837]", "user:[4026532041]", "pid:[4026531836]", "pid:[4026532042]"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
}

// hostile is a model whose container and process names try to break out
// of DOT strings and HTML.
func hostile() *discover.Model {
	m := chainModel(1)
	evil := "&#27;[2J&#x202E;&#xD800;\"];x->y [label=\"</script><script src=\"https://evil.example/x.js\"></script>\\\x1b[31m"
	for _, n := range m.Namespaces {
		if len(n.Processes) > 0 {
			n.Containers = []discover.Container{{ID: evil, Engine: "runc", PID: 42, Name: "ns/" + evil}}
			n.Processes = []discover.Process{{PID: 42, Comm: evil}}
		}
	}
	return m
}

// dotSVG runs dot on g and fails on a warning.
func dotSVG(t *testing.T, g *graph.Graph) []byte {
	t.Helper()
	dot := nstest.RequireCmd(t, "dot")
	svg, warnings, err := g.SVG(context.Background(), dot)
	if err != nil || warnings != "" {
		t.Fatalf("dot -Tsvg: %v; stderr: %s", err, warnings)
	}
	return svg
}

func TestDOTThroughGraphviz(t *testing.T) {
	for name, m := range map[string]*discover.Model{"synthetic": synthetic(40, 300), "hostile": hostile(), "chain": chainModel(5)} {
		t.Run(name, func(t *testing.T) {
			g := graph.Build(m, graph.Options{Collapse: 3})
			var b bytes.Buffer
			if err := g.DOT(&b); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(b.String(), "\x1b") {
				t.Errorf("DOT has a raw control character:\n%s", b.String())
			}
			svg := dotSVG(t, g)
			// Graphviz decodes character references in labels: a name's
			// &#27; must stay text, not become a raw ESC (or a lone
			// surrogate that makes the SVG no XML at all).
			if bytes.ContainsAny(svg, "\x1b\x07\u202e") || !utf8.Valid(svg) {
				t.Errorf("SVG has a raw control or bidi character, or invalid UTF-8")
			}
			for d := xml.NewDecoder(bytes.NewReader(svg)); ; {
				if _, err := d.Token(); err == io.EOF {
					break
				} else if err != nil {
					t.Fatalf("SVG is not well-formed XML: %v", err)
				}
			}
			for _, n := range g.Nodes {
				if !bytes.Contains(svg, []byte(`<g id="`+n.ID+`" class="node">`)) {
					t.Errorf("SVG has no node %s", n.ID)
				}
			}
			// Nothing a name holds became a node or an edge of its own.
			if nodes, edges := bytes.Count(svg, []byte(`class="node"`)), bytes.Count(svg, []byte(`class="edge"`)); nodes != len(g.Nodes) || edges != len(g.Edges) {
				t.Errorf("SVG has %d nodes and %d edges, want %d and %d", nodes, edges, len(g.Nodes), len(g.Edges))
			}
		})
	}
}

// networkRef finds anything in a page that would load from elsewhere.
var networkRef = regexp.MustCompile(`(?i)(src|href|action|poster|srcset)\s*=\s*["']?\s*(https?:|//|ftp:)|url\(|@import|@font-face|<link\b|<iframe\b`)

func TestHTMLSelfContained(t *testing.T) {
	g := graph.Build(hostile(), graph.Options{})
	var b bytes.Buffer
	if err := g.HTML(&b, graph.HTMLOptions{Title: "test <b>", SVG: dotSVG(t, g)}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if loc := networkRef.FindStringIndex(page); loc != nil {
		t.Errorf("network reference in the report: %q", page[max(0, loc[0]-40):min(len(page), loc[1]+40)])
	}
	for _, bad := range []string{"<script src", "</script><script", "\x1b", "<!DOCTYPE svg", "<?xml", "test <b>"} {
		if strings.Contains(page, bad) {
			t.Errorf("report contains %q", bad)
		}
	}
	if n := strings.Count(page, "<script"); n != 2 {
		t.Errorf("%d script elements, want 2 (the data and the code)", n)
	}
}

// BenchmarkLargeHost renders a synthetic host of 2,000 processes in 150
// user namespaces (and 150 PID namespaces), every output but the SVG.
func BenchmarkLargeHost(b *testing.B) {
	m := synthetic(150, 2000)
	b.Run("build", func(b *testing.B) {
		for b.Loop() {
			graph.Build(m, graph.Options{Collapse: 3})
		}
	})
	g := graph.Build(m, graph.Options{Collapse: 3})
	var buf bytes.Buffer
	b.Run("dot", func(b *testing.B) {
		for b.Loop() {
			buf.Reset()
			g.DOT(&buf)
		}
		b.ReportMetric(float64(buf.Len()), "bytes")
	})
	b.Run("html", func(b *testing.B) {
		for b.Loop() {
			buf.Reset()
			g.HTML(&buf, graph.HTMLOptions{NoSVG: "benchmark"})
		}
		b.ReportMetric(float64(buf.Len()), "bytes")
	})
	// dot itself, once per iteration: what --format svg and html add.
	b.Run("svg", func(b *testing.B) {
		dot := nstest.RequireCmd(b, "dot")
		var n int
		for b.Loop() {
			svg, warnings, err := g.SVG(context.Background(), dot)
			if err != nil || warnings != "" {
				b.Fatalf("dot: %v %s", err, warnings)
			}
			n = len(svg)
		}
		b.ReportMetric(float64(n), "bytes")
	})
}

// containerNames builds the graph of an initial user namespace with
// containers cs, and returns it with its containers as "ID pod=POD
// name=NAME".
func containerNames(cs ...discover.Container) (*graph.Graph, []string) {
	m := discover.NewModel()
	m.Add(&discover.Namespace{Type: nsrel.TypeUser, Ino: 4026531837, OwnerUID: 0, OwnerName: "root",
		FoundVia: []discover.Found{{Via: discover.ViaProcess, PID: 1}}, Containers: cs})
	m.Link()
	g := graph.Build(m, graph.Options{})
	var got []string
	for _, n := range g.Nodes {
		for _, c := range n.Containers {
			got = append(got, c.ID+" pod="+c.Pod+" name="+c.Name)
		}
	}
	return g, got
}

// TestUsersContainerNamesNoPod: a container name with a slash is a
// Kubernetes pod's, unless a local user named the container (namespace
// uid=UID): the user chooses its names, so it names no pod in the
// picture's data.
func TestUsersContainerNamesNoPod(t *testing.T) {
	_, got := containerNames(
		discover.Container{ID: "aaaa", Engine: "containerd", Namespace: "k8s.io", PID: 10, Name: "prod/web-0"},
		discover.Container{ID: "bbbb", Engine: "runc", Namespace: "uid=65534", PID: 11, Name: "prod/web-0"},
	)
	if diff := cmp.Diff([]string{"aaaa pod=prod/web-0 name=", "bbbb pod= name=prod/web-0"}, got); diff != "" {
		t.Errorf("containers (-want +got):\n%s", diff)
	}
}

// TestKubernetesContainerNames: a Kubernetes container's name,
// "pod-namespace/pod-name/container", splits into its pod and its own
// name; a pod sandbox's "pod-namespace/pod-name" is a pod; a name
// without a slash is a name. The report's data carries them so.
func TestKubernetesContainerNames(t *testing.T) {
	g, got := containerNames(
		discover.Container{ID: "aaaa", Engine: "containerd", Namespace: "k8s.io", PID: 10, Name: "shop/web-0/app"},
		discover.Container{ID: "bbbb", Engine: "containerd", Namespace: "k8s.io", PID: 11, Name: "shop/web-0"},
		discover.Container{ID: "cccc", Engine: "podman", PID: 12, Name: "db"},
	)
	if diff := cmp.Diff([]string{"aaaa pod=shop/web-0 name=app", "bbbb pod=shop/web-0 name=", "cccc pod= name=db"}, got); diff != "" {
		t.Errorf("containers (-want +got):\n%s", diff)
	}
	var page bytes.Buffer
	if err := g.HTML(&page, graph.HTMLOptions{NoSVG: "test"}); err != nil {
		t.Fatal(err)
	}
	if want := `"id":"aaaa","engine":"containerd","namespace":"k8s.io","name":"app","pod":"shop/web-0"`; !strings.Contains(page.String(), want) {
		t.Errorf("the report's data lacks %s", want)
	}
}

// TestProcessNameQuoted: a process name holding a list's separators is
// quoted in a node's label: "42 sh, 1 systemd" read as two processes,
// PID 1 among them.
func TestProcessNameQuoted(t *testing.T) {
	m := discover.NewModel()
	m.Add(&discover.Namespace{Type: nsrel.TypeUser, Ino: 4026532176, OwnerUID: 1000, OwnerName: "alice",
		Processes: []discover.Process{{PID: 42, Comm: "sh, 1 systemd"}, {PID: 43, Comm: "a\"b\x1b"}, {PID: 44, Comm: "sleep"}}})
	m.Link()
	g := graph.Build(m, graph.Options{})
	want := `3 processes: 42 "sh, 1 systemd", 43 "a\"b\x1b", 44 sleep`
	if len(g.Nodes) != 1 || !slices.Contains(g.Nodes[0].Lines(), want) {
		t.Errorf("labels %q; want the line %q", g.Nodes[0].Lines(), want)
	}
}

// TestSVGErrorEscaped: what dot says when it fails (its message may
// quote a label, which a container chose) reaches the error escaped.
func TestSVGErrorEscaped(t *testing.T) {
	dot := filepath.Join(t.TempDir(), "dot")
	if err := os.WriteFile(dot, []byte("#!/bin/sh\nprintf 'Error: near \"\\033[2J\\342\\200\\256x\"\\n' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := discover.NewModel()
	m.Add(&discover.Namespace{Type: nsrel.TypeUser, Ino: 4026532176, OwnerUID: 0, OwnerName: "root"})
	m.Link()
	_, _, err := graph.Build(m, graph.Options{}).SVG(context.Background(), dot)
	if err == nil || strings.ContainsAny(err.Error(), "\x1b\u202e") || !strings.Contains(err.Error(), `near "\x1b[2J\u{202e}x"`) {
		t.Errorf("error %q; want dot's message escaped", err)
	}
}

// TestLabelCutKeepsEscapes: a label line longer than LabelWidth is cut
// before an escape the cut would fall inside: "\u{e01" read as text.
func TestLabelCutKeepsEscapes(t *testing.T) {
	for pad := 50; pad < 64; pad++ {
		m := discover.NewModel()
		name := strings.Repeat("x", pad) + strings.Repeat("\u034f", 10)
		m.Add(&discover.Namespace{Type: nsrel.TypeUser, Ino: 4026532176, OwnerUID: 1000, OwnerName: "alice",
			Processes:  []discover.Process{{PID: 42, Comm: "sleep"}},
			Containers: []discover.Container{{ID: "c1", Engine: "podman", PID: 42, Name: name}}})
		m.Link()
		g := graph.Build(m, graph.Options{})
		for _, l := range g.Nodes[0].Lines() {
			cut, ok := strings.CutSuffix(l, "…")
			if !ok {
				continue
			}
			if i := strings.LastIndexByte(cut, '\\'); i >= 0 && tree.EscapeLen(cut[i:]) > len(cut)-i {
				t.Errorf("pad %d: label %q cut inside an escape", pad, l)
			}
		}
	}
}
