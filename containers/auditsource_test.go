package containers

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// TestAuditSource writes records about live and dead processes and checks
// that only started, not stopped containers whose process still runs with
// the recorded start time are listed.
func TestAuditSource(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.Sleep(t, nil)
	anc, err := inspect.Process(p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	log, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stale := *anc
	stale.StartTime++
	for _, r := range []*audit.Record{
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "crio-1", Ancestry: anc,
			Annotations: map[string]string{"io.kubernetes.pod.name": "api-0", "io.kubernetes.pod.namespace": "prod"}},
		{Source: audit.SourceOCIHook, Stage: audit.StagePoststart, ContainerID: "crio-1", Ancestry: anc},
		{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: "ev-1", Namespace: "moby", Ancestry: anc},
		// Hostile annotations that look like the fields the source
		// searches for must not be taken for them.
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "tricky", Ancestry: anc,
			Annotations: map[string]string{"stage": "poststop", "container_id": "ev-1", "x": `"stage":"poststop"`}},
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "stopped", Ancestry: anc},
		{Source: audit.SourceOCIHook, Stage: audit.StagePoststop, ContainerID: "stopped"},
		{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: "exited", Ancestry: anc},
		{Source: audit.SourceContainerdEvents, Stage: audit.StageExit, ContainerID: "exited"},
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "reused", Ancestry: &stale},
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "no-process", Error: "gone"},
	} {
		if err := log.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := (&AuditSource{Path: path}).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []discover.Container{
		{ID: "crio-1", Engine: EngineAuditLog, PID: p.Pid, Name: "prod/api-0"},
		{ID: "ev-1", Engine: EngineAuditLog, Namespace: "moby", PID: p.Pid},
		{ID: "tricky", Engine: EngineAuditLog, PID: p.Pid},
	}
	if diff := cmp.Diff(Merge(want), got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	got, err = (&AuditSource{Path: filepath.Join(t.TempDir(), "absent.jsonl")}).List(context.Background())
	if err != nil || len(got) != 0 {
		t.Errorf("missing log: %v, %v; want nothing, no error", got, err)
	}
}

// FuzzDecodeStart checks that a line taken for a start names a process
// that can exist and a valid container ID.
func FuzzDecodeStart(f *testing.F) {
	anc := &audit.Ancestry{PID: 5, StartTime: 7, User: []audit.UserNS{{Ino: 1}}, PIDNS: []audit.PIDNS{{Ino: 2}}}
	for _, r := range []*audit.Record{
		{Seq: 1, Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "a", Ancestry: anc,
			Annotations: map[string]string{"io.kubernetes.pod.name": "p"}},
		{Seq: 2, Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "../x", Ancestry: anc},
		{Seq: 3, Source: audit.SourceOCIHook, Stage: audit.StageStart, ContainerID: "b", Ancestry: &audit.Ancestry{PID: -1}},
	} {
		line, err := r.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(line, r.ContainerID)
	}
	f.Fuzz(func(t *testing.T, line []byte, id string) {
		r := decodeStart(line, id)
		if r == nil {
			return
		}
		if r.PID <= 0 || r.PID >= vocab.PIDLimit || !validID(r.ContainerID) || r.ContainerID != id || r.Stage == "" {
			t.Fatalf("accepted %+v", r)
		}
	})
}
