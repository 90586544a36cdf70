package graph_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/graph"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// historyLog makes an audit log with opts, and returns its path and a
// function that appends a record to it and returns it (with its seq and
// hash).
func historyLog(t *testing.T, opts audit.Options) (string, func(*audit.Record) *audit.Record) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "log", "audit.jsonl")
	l, err := audit.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return path, func(r *audit.Record) *audit.Record {
		t.Helper()
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// refTo is a reference to r.
func refTo(r *audit.Record) *audit.Ref { return &audit.Ref{Seq: r.Seq, Stage: r.Stage, Hash: r.Hash} }

func TestHistory(t *testing.T) {
	// An earlier container web-1 (another process: runc IDs are reused),
	// refused, and its stop; another ID; the running web-1, allowed in
	// audit mode with a violation, and its poststart; another container
	// of that ID, in a containerd namespace.
	path, appendRec := historyLog(t, audit.Options{})
	ref := refTo
	earlier := appendRec(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Verdict: audit.VerdictDeny, Mode: "enforce", Policy: "default",
		Ancestry: &audit.Ancestry{PID: 900, StartTime: 5}, Violations: []audit.Violation{{Rule: "host_root_unmapped", Reason: "the earlier container"}}})
	appendRec(&audit.Record{Source: audit.SourceOCIHook, Stage: "poststop", ContainerID: "web-1", Ref: ref(earlier)})
	appendRec(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "other", Verdict: audit.VerdictDeny, Ancestry: &audit.Ancestry{PID: 42, StartTime: 7}})
	running := appendRec(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Verdict: audit.VerdictDeny, Mode: "audit",
		Ancestry: &audit.Ancestry{PID: 42, StartTime: 7}, Violations: []audit.Violation{{Rule: "max_user_depth", Reason: "depth 3 > 2 <script>"}}})
	appendRec(&audit.Record{Source: audit.SourceContainerdEvents, Stage: "start", ContainerID: "web-1", Namespace: "k8s.io", Verdict: audit.VerdictAllow, Ancestry: &audit.Ancestry{PID: 77, StartTime: 9}})
	appendRec(&audit.Record{Source: audit.SourceOCIHook, Stage: "poststart", ContainerID: "web-1", Ref: ref(running)})
	build := func() *graph.Graph {
		m := chainModel(2)
		for _, n := range m.Namespaces {
			if len(n.Processes) > 0 && n.Ino != 100 {
				// And a local user's, which chose root's ID: the log is
				// root's, none of it is the user's.
				n.Containers = []discover.Container{{ID: "web-1", Engine: "runc", PID: 42, StartTime: 7}, {ID: "web-1", Engine: "runc", Namespace: "uid=1000", PID: 43}}
			}
		}
		return graph.Build(m, graph.Options{})
	}

	g := build()
	if err := g.AddHistory(path); err != nil {
		t.Fatal(err)
	}
	want := &graph.Audit{Path: path, Verified: true, Verdict: "chain verified: 6 records, seq 1 to 6", Records: 2}
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
	if diff := cmp.Diff([]uint64{4, 6, 4, 6}, seqs); diff != "" {
		t.Errorf("history seqs (-want +got):\n%s", diff)
	}
	if stages[0] != "deny max_user_depth: depth 3 > 2 <script>" {
		t.Errorf("event %q", stages[0])
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

// TestHistoryWhileRotating reads the history while a writer appends and
// rotates the log every few records: every read verifies the chain (the
// files are listed and opened under the log's shared lock). Listing and
// opening them without it could miss a file renamed in between, which
// read as records deleted.
func TestHistoryWhileRotating(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log", "audit.jsonl")
	l, err := audit.Open(path, audit.Options{RotateBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "first"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for i := range 800 {
			if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: fmt.Sprint("c", i)}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for reads := 0; ; reads++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if reads == 0 {
				t.Log("no read overlapped the appends")
			}
			return
		default:
		}
		g := graph.Build(chainModel(1), graph.Options{})
		if err := g.AddHistory(path); err != nil {
			t.Fatal(err)
		}
		if !g.Audit.Verified {
			t.Fatalf("read %d while rotating: %s", reads, g.Audit.Verdict)
		}
	}
}

// TestHistoryUntrustedLog: a log another user may write (its directory
// writable by others, here) is read, but not under the green banner:
// without a key whoever may write it can make its chain verify, and its
// records were shown as verified. (A copy in /tmp or a user's is read
// so: refusing it broke the reading of copies.)
func TestHistoryUntrustedLog(t *testing.T) {
	nstest.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "shared")
	path := filepath.Join(dir, "audit.jsonl")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Ancestry: &audit.Ancestry{PID: 42, StartTime: 7}}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	g := historyGraph("")
	if err := g.AddHistory(path); err != nil {
		t.Fatal(err)
	}
	if g.Audit.Verified || !strings.Contains(g.Audit.Verdict, "chain verified: 1 records, seq 1 to 1; but others may have written it (") || g.Audit.Records != 1 {
		t.Errorf("audit %+v; want the chain verified, not trusted, and its record shown", g.Audit)
	}
	var page bytes.Buffer
	if err := g.HTML(&page, graph.HTMLOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page.String(), `<div id="audit" class="audit bad">`) {
		t.Errorf("report: no red audit banner for a log others may have written")
	}
}

// historyGraph is chainModel(2) with container web-1 (PID 42, start time
// 7, in containerd namespace ns) on its namespaces with processes.
func historyGraph(ns string) *graph.Graph {
	m := chainModel(2)
	for _, n := range m.Namespaces {
		if len(n.Processes) > 0 && n.Ino != 100 {
			n.Containers = []discover.Container{{ID: "web-1", Engine: "containerd", Namespace: ns, PID: 42, StartTime: 7}}
		}
	}
	return graph.Build(m, graph.Options{})
}

// TestHistoryStartWithoutProcess: a start record whose inspection failed
// names no process (the hook's createRuntime under on_error allow, a
// recorder's or the NRI plugin's start without namespaces); for a
// container that ran on, it is often its only start, and was left out of
// its history. It is the container's when it is the ID's last start and
// nothing ended it; an earlier container's (a stop, or another process's
// start, came after it) is not.
func TestHistoryStartWithoutProcess(t *testing.T) {
	proc := func(pid int, start uint64) *audit.Ancestry { return &audit.Ancestry{PID: pid, StartTime: start} }
	for _, tc := range []struct {
		name string
		ns   string
		recs func(add func(*audit.Record) *audit.Record)
		want []uint64
	}{
		{"the hook's, then its poststart", "", func(add func(*audit.Record) *audit.Record) {
			add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Verdict: audit.VerdictAllow, Error: "inspect: permission denied"})
			add(&audit.Record{Source: audit.SourceOCIHook, Stage: "poststart", ContainerID: "web-1", Verdict: audit.VerdictAllow, Ancestry: proc(42, 7)})
		}, []uint64{1, 2}},
		{"a recorder's, the only one", "k8s.io", func(add func(*audit.Record) *audit.Record) {
			add(&audit.Record{Source: audit.SourceContainerdEvents, Stage: "start", ContainerID: "web-1", Namespace: "k8s.io", Verdict: audit.VerdictDeny, Mode: "audit", Error: "inspect: operation not permitted"})
		}, []uint64{1}},
		{"the NRI plugin's, and the records referring to it", "k8s.io", func(add func(*audit.Record) *audit.Record) {
			r := add(&audit.Record{Source: audit.SourceNRI, Stage: "start", ContainerID: "web-1", Namespace: "k8s.io", Verdict: audit.VerdictAllow, Error: "inspect: operation not permitted"})
			add(&audit.Record{Source: audit.SourceOCIHook, Stage: "poststart", ContainerID: "web-1", Ref: refTo(r)})
		}, []uint64{1, 2}},
		{"an earlier container's, stopped", "", func(add func(*audit.Record) *audit.Record) {
			add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Verdict: audit.VerdictDeny, Error: "inspect: permission denied"})
			add(&audit.Record{Source: audit.SourceOCIHook, Stage: "poststop", ContainerID: "web-1"})
			add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Verdict: audit.VerdictAllow, Ancestry: proc(42, 7)})
		}, []uint64{3}},
		{"an earlier container's, another process started after it", "", func(add func(*audit.Record) *audit.Record) {
			add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Verdict: audit.VerdictDeny, Error: "inspect: permission denied"})
			add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Verdict: audit.VerdictAllow, Ancestry: proc(900, 5)})
		}, nil},
		{"an earlier container's, left open by a crash, then the running one's start", "", func(add func(*audit.Record) *audit.Record) {
			add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Verdict: audit.VerdictDeny, Error: "inspect: permission denied"})
			add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Verdict: audit.VerdictAllow, Ancestry: proc(42, 7)})
		}, []uint64{2}},
		{"the recorder's, then the NRI plugin's with its process", "k8s.io", func(add func(*audit.Record) *audit.Record) {
			add(&audit.Record{Source: audit.SourceContainerdEvents, Stage: "start", ContainerID: "web-1", Namespace: "k8s.io", Verdict: audit.VerdictDeny, Mode: "audit", Error: "inspect: operation not permitted"})
			add(&audit.Record{Source: audit.SourceNRI, Stage: "start", ContainerID: "web-1", Namespace: "k8s.io", Verdict: audit.VerdictAllow, Ancestry: proc(42, 7)})
		}, []uint64{1, 2}},
		{"recorded again with its process, referring to it", "k8s.io", func(add func(*audit.Record) *audit.Record) {
			r := add(&audit.Record{Source: audit.SourceContainerdEvents, Stage: "start", ContainerID: "web-1", Namespace: "k8s.io", Error: "inspect: operation not permitted"})
			add(&audit.Record{Source: audit.SourceContainerdEvents, Stage: "start", ContainerID: "web-1", Namespace: "k8s.io", Ancestry: proc(42, 7), Ref: refTo(r)})
			add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Ancestry: proc(900, 5)})
		}, []uint64{1, 2}},
		{"the NRI plugin's over an earlier container's recorder start, ended", "k8s.io", func(add func(*audit.Record) *audit.Record) {
			r := add(&audit.Record{Source: audit.SourceContainerdEvents, Stage: "start", ContainerID: "web-1", Namespace: "k8s.io", Verdict: audit.VerdictAllow, Ancestry: proc(900, 5)})
			add(&audit.Record{Source: audit.SourceNRI, Stage: "start", ContainerID: "web-1", Namespace: "k8s.io", Verdict: audit.VerdictDeny, Error: "inspect: operation not permitted", Ref: refTo(r)})
			add(&audit.Record{Source: audit.SourceContainerdEvents, Stage: "exit", ContainerID: "web-1", Namespace: "k8s.io", Ref: refTo(r)})
		}, nil},
		{"an earlier container's poststart without a process, stopped", "", func(add func(*audit.Record) *audit.Record) {
			r := add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Verdict: audit.VerdictDeny, Mode: "audit", Ancestry: proc(900, 5)})
			add(&audit.Record{Source: audit.SourceOCIHook, Stage: "poststart", ContainerID: "web-1", Verdict: audit.VerdictDeny, Error: "inspect: permission denied", Ref: refTo(r)})
			add(&audit.Record{Source: audit.SourceOCIHook, Stage: "poststop", ContainerID: "web-1", Ref: refTo(r)})
		}, nil},
		{"another containerd namespace's", "k8s.io", func(add func(*audit.Record) *audit.Record) {
			add(&audit.Record{Source: audit.SourceContainerdEvents, Stage: "start", ContainerID: "web-1", Namespace: "moby", Error: "inspect: operation not permitted"})
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, add := historyLog(t, audit.Options{})
			tc.recs(add)
			g := historyGraph(tc.ns)
			if err := g.AddHistory(path); err != nil {
				t.Fatal(err)
			}
			for id, seqs := range containersHistory(g) {
				if !slices.Equal(seqs, tc.want) {
					t.Errorf("node %s: history %v; want %v", id, seqs, tc.want)
				}
			}
		})
	}
}

// TestHistoryLateStopOfRemovedStart: runc frees a container's ID before
// its poststop hooks run, so an earlier container's poststop can come
// after the start of a new one of the ID. Its reference names a start
// that retention removed since: it was taken for a stop without one,
// which ends every earlier start of the ID, and the running container's
// only start (its inspection failed) was left out.
func TestHistoryLateStopOfRemovedStart(t *testing.T) {
	path, add := historyLog(t, audit.Options{RotateBytes: 1500, KeepFiles: 1})
	earlier := add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Ancestry: &audit.Ancestry{PID: 900, StartTime: 5}})
	for i := range 40 {
		add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: fmt.Sprint("filler-", i)})
	}
	running := add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Error: "inspect: permission denied"})
	stop := add(&audit.Record{Source: audit.SourceOCIHook, Stage: "poststop", ContainerID: "web-1", Ref: refTo(earlier)})
	g := historyGraph("")
	if err := g.AddHistory(path); err != nil {
		t.Fatal(err)
	}
	if files, _ := audit.Files(path); len(files) != 2 {
		t.Fatalf("files %v; want the earlier start's removed by retention", files)
	}
	for id, seqs := range containersHistory(g) {
		if !slices.Equal(seqs, []uint64{running.Seq}) {
			t.Errorf("node %s: history %v; want the running container's start, seq %d (the poststop, seq %d, is of seq %d)", id, seqs, running.Seq, stop.Seq, earlier.Seq)
		}
	}
}

// TestHistoryListedCopy: an older record again (a stale block a crash
// exposed), which the next append files as damage, is no event of the
// container's: its history has each record once. The copy was shown
// as a third event.
func TestHistoryListedCopy(t *testing.T) {
	path, add := historyLog(t, audit.Options{})
	running := add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Ancestry: &audit.Ancestry{PID: 42, StartTime: 7}})
	post := add(&audit.Record{Source: audit.SourceOCIHook, Stage: "poststart", ContainerID: "web-1", Ref: refTo(running)})
	audittest.AppendAgain(t, path, running)
	add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "other"})
	var damage []*audit.Record
	for _, r := range audittest.Records(t, path, "") {
		if r.Stage == audit.StageDamaged {
			damage = append(damage, r)
		}
	}
	if len(damage) != 1 {
		t.Fatalf("%d damage records, want 1", len(damage))
	}
	add(audittest.AckOf(damage[0], "a stale block"))
	g := historyGraph("")
	if err := g.AddHistory(path); err != nil {
		t.Fatal(err)
	}
	h := containersHistory(g)
	if len(h) == 0 {
		t.Fatal("no node with containers")
	}
	for id, seqs := range h {
		if !slices.Equal(seqs, []uint64{running.Seq, post.Seq}) {
			t.Errorf("node %s: history %v; want seq %d and %d once each", id, seqs, running.Seq, post.Seq)
		}
	}
	if g.Audit == nil || !g.Audit.Verified {
		t.Errorf("audit %+v; want the chain verified", g.Audit)
	}
}

// TestHistoryListedCopyAfterZeroed: TestHistoryListedCopy after a
// crash zeroed bytes inside a record earlier (its seq, prev and hash
// left whole), which a damage record lists: the copy is still left out.
// (Readers that followed the chain by the records' links took the
// zeroed line for a link, and no damage record after it counted.)
func TestHistoryListedCopyAfterZeroed(t *testing.T) {
	path, add := historyLog(t, audit.Options{})
	add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "x", Note: "some words to be zeroed by a crash"})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(data, []byte("words to be zeroed"))
	clear(data[i : i+10])
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "y"})
	ack := func() {
		t.Helper()
		var last *audit.Record
		for _, r := range audittest.Records(t, path, "") {
			if r.Stage == audit.StageDamaged {
				last = r
			}
		}
		if last == nil {
			t.Fatal("no damage record")
		}
		add(audittest.AckOf(last, "a crash"))
	}
	ack()
	running := add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Ancestry: &audit.Ancestry{PID: 42, StartTime: 7}})
	post := add(&audit.Record{Source: audit.SourceOCIHook, Stage: "poststart", ContainerID: "web-1", Ref: refTo(running)})
	audittest.AppendAgain(t, path, running)
	add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "other"})
	ack()
	audittest.Verify(t, path)
	g := historyGraph("")
	if err := g.AddHistory(path); err != nil {
		t.Fatal(err)
	}
	for id, seqs := range containersHistory(g) {
		if !slices.Equal(seqs, []uint64{running.Seq, post.Seq}) {
			t.Errorf("node %s: history %v; want seq %d and %d once each", id, seqs, running.Seq, post.Seq)
		}
	}
}

// containersHistory returns the seqs of the history of each node of g
// with containers, by node ID.
func containersHistory(g *graph.Graph) map[string][]uint64 {
	out := make(map[string][]uint64)
	for _, n := range g.Nodes {
		if len(n.Containers) == 0 {
			continue
		}
		out[n.ID] = []uint64{}
		for _, e := range n.History {
			out[n.ID] = append(out[n.ID], e.Seq)
		}
	}
	return out
}

// TestHistorySameIDTwoContainers: two shown containers of one ID, in two
// containerd namespaces. A start without a process and without a
// namespace (the hook's) cannot be told whose: neither gets it. A start
// of one's process naming no namespace does not end the other's start
// without a process, which names its namespace; nor does a stop without
// a reference naming none.
func TestHistorySameIDTwoContainers(t *testing.T) {
	path, add := historyLog(t, audit.Options{})
	for _, r := range []*audit.Record{
		{Source: audit.SourceContainerdEvents, Stage: "start", ContainerID: "web-1", Namespace: "k8s.io", Error: "inspect: operation not permitted"},
		{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Ancestry: &audit.Ancestry{PID: 50, StartTime: 9}},
		{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Error: "inspect: permission denied"},
		// A stop of neither's start (a late poststop whose search found
		// none), naming no namespace: whose cannot be told.
		{Source: audit.SourceOCIHook, Stage: "poststop", ContainerID: "web-1"},
	} {
		add(r)
	}
	m := chainModel(2)
	var nodes []string
	for _, n := range m.Namespaces {
		if n.Type == nsrel.TypeUser && len(n.Processes) > 0 && n.Ino != 100 {
			n.Containers = []discover.Container{{ID: "web-1", Engine: "containerd", Namespace: "k8s.io", PID: 42, StartTime: 7}}
		}
		if n.Type == nsrel.TypePID && n.Ino == 200 {
			n.Containers = []discover.Container{{ID: "web-1", Engine: "containerd", Namespace: "moby", PID: 50, StartTime: 9}}
		}
	}
	g := graph.Build(m, graph.Options{})
	if err := g.AddHistory(path); err != nil {
		t.Fatal(err)
	}
	got := map[string][]uint64{}
	for _, n := range g.Nodes {
		if len(n.Containers) > 0 {
			nodes = append(nodes, n.Containers[0].Namespace)
			for _, e := range n.History {
				got[n.Containers[0].Namespace] = append(got[n.Containers[0].Namespace], e.Seq)
			}
		}
	}
	if want := map[string][]uint64{"k8s.io": {1}, "moby": {2}}; len(nodes) != 2 || !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("histories %v (containers in %v); want %v", got, nodes, want)
	}
}

// TestHistoryEarlierBoot: start times count from boot, so a container of
// an earlier boot (a crash: no stop recorded) can have the PID and start
// time of the one shown now. Its records are not the shown container's:
// they were attached to its history, an earlier boot's refusal shown as
// its own.
func TestHistoryEarlierBoot(t *testing.T) {
	path, add := historyLog(t, audit.Options{})
	then := add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Verdict: audit.VerdictDeny, Mode: "enforce",
		Ancestry: &audit.Ancestry{PID: 42, StartTime: 7}, BootID: audittest.OtherBoot})
	add(&audit.Record{Source: audit.SourceOCIHook, Stage: "poststart", ContainerID: "web-1", Ref: refTo(then),
		Ancestry: &audit.Ancestry{PID: 42, StartTime: 7}, BootID: audittest.OtherBoot})
	add(&audit.Record{Source: audit.SourceOCIHook, Stage: "createRuntime", ContainerID: "web-1", Verdict: audit.VerdictAllow,
		Ancestry: &audit.Ancestry{PID: 42, StartTime: 7}, BootID: audit.BootID()})
	g := historyGraph("k8s.io")
	if err := g.AddHistory(path); err != nil {
		t.Fatal(err)
	}
	for id, seqs := range containersHistory(g) {
		if !slices.Equal(seqs, []uint64{3}) {
			t.Errorf("%s: history %v; want [3], this boot's start alone", id, seqs)
		}
	}
}

// TestHistoryEarlierBootWithoutProcess: a start whose inspection failed
// names no process, and was taken for the shown container's when the
// ID's last start and not ended; one of an earlier boot (records name
// their boot) is not: its container ended with its boot.
func TestHistoryEarlierBootWithoutProcess(t *testing.T) {
	path, add := historyLog(t, audit.Options{})
	add(&audit.Record{Source: audit.SourceContainerdEvents, Stage: "start", ContainerID: "web-1", Namespace: "k8s.io",
		Error: "inspect: operation not permitted", BootID: audittest.OtherBoot})
	g := historyGraph("k8s.io")
	if err := g.AddHistory(path); err != nil {
		t.Fatal(err)
	}
	for id, seqs := range containersHistory(g) {
		if len(seqs) != 0 {
			t.Errorf("%s: history %v; want none", id, seqs)
		}
	}
}

// TestHistoryEmptyLog: an empty log is verified and says it holds no
// record ("0 records, seq 0 to 0" read as a range).
func TestHistoryEmptyLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	g := historyGraph("")
	if err := g.AddHistory(path); err != nil {
		t.Fatal(err)
	}
	if !g.Audit.Verified || g.Audit.Verdict != "chain verified: the log holds no record" || g.Audit.Records != 0 {
		t.Errorf("audit %+v of an empty log", g.Audit)
	}
}

// BenchmarkHistoryReusedID: AddHistory of one container over a log that
// holds 5,000 earlier starts of its ID by other processes (runc's
// "build", run again and again), each with a 2,000-byte violation and a
// 1,000-byte annotation (20 MB): time, and the most heap it held
// (peak-heap-MiB, sampled every millisecond).
func BenchmarkHistoryReusedID(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.jsonl")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 5000 {
		a := &audit.Ancestry{PID: 1000 + i, StartTime: uint64(i),
			User:  []audit.UserNS{{Ino: 4026532000 + uint64(i)}, {Ino: nsrel.InitialUserNSIno}},
			PIDNS: []audit.PIDNS{{Ino: 4026533000 + uint64(i)}, {Ino: nsrel.InitialPIDNSIno}}}
		if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime,
			ContainerID: "build", Ancestry: a, Policy: "p", Mode: "enforce", Verdict: audit.VerdictDeny,
			Annotations: map[string]string{"k": strings.Repeat("v", 1000)},
			Violations:  []audit.Violation{{Rule: "r", Reason: strings.Repeat("x", 2000)}}}); err != nil {
			b.Fatal(err)
		}
	}
	m := discover.NewModel()
	m.Add(&discover.Namespace{Type: nsrel.TypeUser, Ino: 100, Processes: []discover.Process{{PID: 42}},
		Containers: []discover.Container{{ID: "build", Engine: "runc", PID: 42, StartTime: 7}}})
	m.Link()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
				metrics.Read(sample)
				if v := sample[0].Value.Uint64(); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	runtime.GC()
	b.ResetTimer()
	for b.Loop() {
		g := graph.Build(m, graph.Options{})
		if err := g.AddHistory(path); err != nil || g.Audit.Records != 0 {
			b.Fatalf("%v, %+v", err, g.Audit)
		}
	}
	close(done)
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
}
