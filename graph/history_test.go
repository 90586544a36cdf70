package graph_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/graph"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/nsrel/discover"
)

func TestHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log", "audit.jsonl")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*audit.Record{
		{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Verdict: audit.VerdictAllow, Mode: "enforce", Policy: "default"},
		{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "other", Verdict: audit.VerdictDeny},
		{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Verdict: audit.VerdictDeny, Mode: "audit",
			Violations: []audit.Violation{{Rule: "max_user_depth", Reason: "depth 3 > 2 <script>"}}},
	} {
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	build := func() *graph.Graph {
		m := chainModel(2)
		for _, n := range m.Namespaces {
			if len(n.Processes) > 0 && n.Ino != 100 {
				n.Containers = []discover.Container{{ID: "web-1", Engine: "runc", PID: 42}}
			}
		}
		return graph.Build(m, graph.Options{})
	}

	g := build()
	if err := g.AddHistory(path); err != nil {
		t.Fatal(err)
	}
	want := &graph.Audit{Path: path, Verified: true, Verdict: "chain verified: 3 records, seq 1 to 3", Records: 2}
	if diff := cmp.Diff(want, g.Audit); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
	var seqs []uint64
	var stages []string
	for _, n := range g.Nodes {
		for _, e := range n.History {
			seqs = append(seqs, e.Seq)
			stages = append(stages, e.Verdict+" "+strings.Join(e.Violations, ";"))
		}
	}
	// The container lives in a user and a PID namespace: both nodes.
	if diff := cmp.Diff([]uint64{1, 3, 1, 3}, seqs); diff != "" {
		t.Errorf("history seqs (-want +got):\n%s", diff)
	}
	if stages[1] != "deny max_user_depth: depth 3 > 2 <script>" {
		t.Errorf("event %q", stages[1])
	}
	var page bytes.Buffer
	if err := g.HTML(&page, graph.HTMLOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page.String(), `<div id="audit" class="audit ok">`) || strings.Contains(page.String(), "<script>\"") {
		t.Errorf("report: no verified audit banner, or an unescaped violation")
	}

	// A record changed after the fact: the report says so.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.Replace(b, []byte(`"verdict":"deny","violations"`), []byte(`"verdict":"allow","violations"`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	g = build()
	if err := g.AddHistory(path); err != nil {
		t.Fatal(err)
	}
	if g.Audit.Verified || !strings.HasPrefix(g.Audit.Verdict, "chain NOT verified: ") {
		t.Errorf("tampered log: %+v", g.Audit)
	}
	page.Reset()
	g.HTML(&page, graph.HTMLOptions{})
	if !strings.Contains(page.String(), `<div id="audit" class="audit bad">`) {
		t.Errorf("report: no failed audit banner")
	}

	if err := build().AddHistory(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Errorf("a missing log: no error")
	}
}
