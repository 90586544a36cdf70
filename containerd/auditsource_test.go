package containerd

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/nstest"
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

func FuzzParseAuditLine(f *testing.F) {
	f.Add([]byte(`{"seq":1,"container_id":"a","stage":"createRuntime","pid":5,"start_time":7,"annotations":{"io.kubernetes.pod.name":"p"}}`))
	f.Add([]byte(`{"container_id":"../x","stage":"start","pid":-1}`))
	f.Add([]byte(`{"container_id":"a","stage":"start","pid":99999999999}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, ok := parseAuditLine(line)
		if !ok {
			return
		}
		if r.PID < 0 || r.PID > maxPID || !validID.MatchString(r.ContainerID) || r.Stage == "" {
			t.Fatalf("accepted %+v", r)
		}
	})
}

func FuzzAuditFields(f *testing.F) {
	f.Add([]byte(`{"seq":1,"time":"t","host":"h","source":"oci-hook","stage":"createRuntime","container_id":"a","annotations":{"stage":"poststop"}}`))
	f.Add([]byte(`{"stage":"x\"y","container_id":"a"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		stage, id, ok := auditFields(line)
		if ok && (id == "" || strings.ContainsAny(stage+id, `"\`)) {
			t.Fatalf("fields %q %q from %q", stage, id, line)
		}
	})
}
