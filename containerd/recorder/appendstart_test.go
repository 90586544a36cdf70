package recorder

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	eventsapi "github.com/containerd/containerd/api/events"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/ctrdtest"
)

// TestAppendStartRefBranches checks each condition under which a start
// of a container followed by ID refers to the earlier start without
// namespaces: the earlier start is in the same containerd namespace, not
// ended by an exit, and the container's last start there (a later start
// with namespaces is not followed by ID). The process started before the
// records (sleeper, then 30 ms: three clock ticks).
func TestAppendStartRefBranches(t *testing.T) {
	pid, st := sleeper(t)
	time.Sleep(30 * time.Millisecond)
	s1 := func(ns string) *audit.Record {
		return &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: "web", Namespace: ns, Version: "x", Error: "no namespaces"}
	}
	for _, c := range []struct {
		name string
		pre  func(l *audit.Log) []*audit.Record
		ref  bool
	}{
		{"plain", func(l *audit.Log) []*audit.Record { return []*audit.Record{s1("default")} }, true},
		{"other-namespace", func(l *audit.Log) []*audit.Record { return []*audit.Record{s1("other")} }, false},
		{"ended", func(l *audit.Log) []*audit.Record {
			a := s1("default")
			if err := l.Append(context.Background(), a); err != nil {
				t.Fatal(err)
			}
			return []*audit.Record{{Source: audit.SourceContainerdEvents, Stage: audit.StageExit, ContainerID: "web", Namespace: "default", Version: "x",
				Ref: &audit.Ref{Seq: a.Seq, Stage: a.Stage, Hash: a.Hash}}}
		}, false},
		{"later-start-with-namespaces", func(l *audit.Log) []*audit.Record {
			b := s1("default")
			b.Error = ""
			b.Ancestry = &audit.Ancestry{PID: 1, StartTime: 1}
			return []*audit.Record{s1("default"), b}
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := audit.Open(filepath.Join(t.TempDir(), "audit.jsonl"), audit.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range c.pre(l) {
				if err := l.Append(context.Background(), r); err != nil {
					t.Fatal(err)
				}
			}
			r := &Recorder{Log: l}
			rec := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: "web", Namespace: "default", Version: "x"}
			if _, err := r.appendStart(context.Background(), rec, pid, st, true); err != nil {
				t.Fatal(err)
			}
			if (rec.Ref != nil) != c.ref {
				t.Errorf("ref %+v, want one: %v", rec.Ref, c.ref)
			}
		})
	}
}

// sleeper starts a process that runs until the test ends and returns its
// PID and start time.
func sleeper(t *testing.T) (int, uint64) {
	t.Helper()
	cmd := exec.Command("sleep", "infinity")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	st, err := inspect.StartTime(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid, st
}

// TestOpenByIDServedOnce checks that a container followed by ID (a start
// a previous recorder recorded without namespaces, whose container was
// deleted while no recorder ran) is followed no longer once a task of the
// container is recorded: a short-lived task created again under the ID
// (its start and exit between two walks) left the entry, and each later
// start of the ID searched the whole window for the earlier start again.
func TestOpenByIDServedOnce(t *testing.T) {
	o := recordOpenStart(t, "served", true)
	ctrdtest.Delete("default", o.ctr) // while no recorder runs
	r := &Recorder{Config: o.cfg, Log: o.log, Logger: ctrdtest.Logger(t, "recorder: ")}
	ctx := context.Background()
	if err := r.walk(ctx, o.c); err != nil {
		t.Fatal(err)
	}
	key := nsID{"default", o.id}
	if !r.openByID[key] {
		t.Fatalf("openByID %v after the first walk; want %v", r.openByID, key)
	}
	ctr, pid := o.d.Run(t, o.c, "default", o.id, nil)
	handEvent(t, r, o.c, &eventsapi.TaskStart{ContainerID: o.id, Pid: pid})
	if err := ctrdtest.DeleteTask("default", ctr); err != nil {
		t.Fatal(err)
	}
	handEvent(t, r, o.c, &eventsapi.TaskExit{ContainerID: o.id, ID: o.id, Pid: pid, ExitedAt: timestamppb.Now()})
	if err := r.walk(ctx, o.c); err != nil {
		t.Fatal(err)
	}
	if r.openByID[key] {
		t.Errorf("openByID still holds %v after a task of the container was recorded", key)
	}
}
