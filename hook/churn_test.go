package hook_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// TestPoststartThreadChurn: a container's process that, after
// createRuntime, moves to a user namespace of its own, ends its main
// thread and keeps one other thread at a time running (each starts its
// successor and exits) was, at poststart, taken for exited about one
// time in five: the record said "process exited during inspection", no
// ancestry, allowed. Each poststart now refuses it (ancestry_unchanged),
// and a process whose main thread alone exited has its mount table read
// from a thread that runs (host_root_unmapped refused it: "cannot be
// checked", EINVAL).
func TestPoststartThreadChurn(t *testing.T) {
	nstest.RequireRoot(t)
	for _, moves := range []bool{true, false} {
		t.Run(fmt.Sprint("moves ", moves), func(t *testing.T) {
			base := nstest.HostIDBase(t) + 900_000
			c := nstest.StartThreadChurn(t, userNSAttr(base), moves)
			rules := policy.Rules{RequireUserNS: true, HostRootUnmapped: !moves}
			cfg := &policy.Config{OnError: policy.OnErrorAllow, DeadlineMS: 5000, Default: policy.Block{Name: "d", Mode: policy.ModeEnforce, Rules: rules}}
			log, err := audit.Open(filepath.Join(t.TempDir(), "audit.jsonl"), audit.Options{})
			if err != nil {
				t.Fatal(err)
			}
			h := &hook.Hook{Config: cfg, Log: log}
			st := &specs.State{ID: "churn", Pid: c.Pid}
			run := func(stage string) *hook.Result {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				res, err := h.Run(ctx, stage, st)
				if err != nil {
					t.Fatalf("%s: %v", stage, err)
				}
				return res
			}
			if res := run(audit.StageCreateRuntime); res.Deny {
				t.Fatalf("createRuntime refused: %s", res.Message)
			}
			c.Churn(t)
			var want []string
			if moves {
				want = []string{policy.RuleAncestryUnchanged}
			}
			for i := range 20 {
				res := run(audit.StagePoststart)
				r := res.Record
				if res.Deny != moves || r.Ancestry == nil || r.Error != "" || !slices.Equal(audittest.Rules(r), want) {
					t.Fatalf("poststart %d: deny %v, violations %+v, error %q, ancestry %v; want rules %v", i, res.Deny, r.Violations, r.Error, r.Ancestry != nil, want)
				}
			}
		})
	}
}

// TestPoststopWhileThreadsRun: runc 1.1 gives a container whose init's
// main thread exited (pthread_exit(3) in main) as stopped, and `runc
// delete` runs poststop, while its other threads run on in its
// namespaces: the poststop record closed the start record saying
// nothing of it; it now says the process still runs.
func TestPoststopWhileThreadsRun(t *testing.T) {
	nstest.RequireRoot(t)
	pid := nstest.StartLeaderExited(t, userNSAttr(nstest.HostIDBase(t)+950_000))
	log, err := audit.Open(filepath.Join(t.TempDir(), "audit.jsonl"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &hook.Hook{Config: &policy.Config{OnError: policy.OnErrorAllow}, Log: log}
	for _, stage := range []string{audit.StageCreateRuntime, audit.StagePoststop} {
		given := pid
		if stage == audit.StagePoststop {
			given = 0 // as runc 1.1 gives it
		}
		res, err := h.Run(context.Background(), stage, &specs.State{ID: "threads", Pid: given})
		if err != nil {
			t.Fatal(err)
		}
		r := res.Record
		if want := fmt.Sprintf("pid %d of start record seq 1 still runs", pid); stage == audit.StagePoststop && (r.Ref == nil || r.Ref.Seq != 1 || r.Error != want) {
			t.Errorf("poststop: ref %+v, error %q; want ref to seq 1, error %q", r.Ref, r.Error, want)
		}
	}
}
