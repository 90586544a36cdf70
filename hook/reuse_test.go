package hook_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/nsrel"
)

// reuseHook returns a Hook under an enforcing block without rules (only
// ancestry_unchanged can refuse) whose inspection returns procs[pid].
func reuseHook(t *testing.T, procs map[int]*audit.Ancestry) *hook.Hook {
	t.Helper()
	cfg, err := policy.Parse("reuse.json", []byte(`{"version":1,"audit_log":"/x","default":{"name":"d","mode":"enforce"}}`))
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.Open(filepath.Join(t.TempDir(), "audit.jsonl"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &hook.Hook{Config: cfg, Log: log, Inspect: func(pid int, _ *inspect.LiveOnce) (*audit.Ancestry, error) {
		if a := procs[pid]; a != nil {
			return a, nil
		}
		return nil, inspect.ErrGone
	}}
}

// proc is the ancestry of a process pid with a start time in a user
// namespace userIno.
func proc(pid int, start, userIno uint64) *audit.Ancestry {
	return &audit.Ancestry{PID: pid, StartTime: start,
		User:  []audit.UserNS{{Ino: userIno}, {Ino: nsrel.InitialUserNSIno}},
		PIDNS: []audit.PIDNS{{Ino: 4026532100 + uint64(pid)}, {Ino: nsrel.InitialPIDNSIno}}}
}

// runStage runs stage for container id with process pid and returns the
// result, failing the test on an error.
func runStage(t *testing.T, h *hook.Hook, stage, id string, pid int) *hook.Result {
	t.Helper()
	res, err := h.Run(context.Background(), stage, &specs.State{ID: id, Pid: pid})
	if err != nil || res.Record == nil {
		t.Fatalf("%s %s pid %d: %+v, %v", stage, id, pid, res, err)
	}
	return res
}

// TestPoststartReusedID: runc reuses a container's ID once it is
// deleted. A poststart compares the ancestry with the createRuntime
// record of the same process (PID and start time) only, and not with
// one a poststop of the ID followed: a container "web" whose
// createRuntime record is missing was refused (and runc kills a
// container whose poststart fails) for differing from an earlier "web".
func TestPoststartReusedID(t *testing.T) {
	for _, tc := range []struct {
		name string
		// stages before the poststart of pid 200, "create:PID" or "stop"
		before    []string
		poststart *audit.Ancestry
		wantRef   uint64 // 0: none
		deny      bool
	}{
		{"earlier container stopped", []string{"create:100", "stop"}, proc(200, 9, 4026532300), 0, false},
		{"this one's record after a stop", []string{"create:100", "stop", "create:200"}, proc(200, 9, 4026532300), 3, false},
		{"earlier container not stopped", []string{"create:100"}, proc(200, 9, 4026532300), 0, false},
		{"same PID, another process", []string{"create:200"}, proc(200, 10, 4026532300), 0, false},
		{"ancestry changed", []string{"create:200"}, proc(200, 9, 4026532301), 1, true},
		{"process gone", []string{"create:100", "stop", "create:200"}, nil, 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			procs := map[int]*audit.Ancestry{100: proc(100, 5, 4026532200), 200: proc(200, 9, 4026532300)}
			h := reuseHook(t, procs)
			for _, s := range tc.before {
				if pid, ok := strings.CutPrefix(s, "create:"); ok {
					n, _ := strconv.Atoi(pid)
					runStage(t, h, audit.StageCreateRuntime, "web", n)
				} else {
					runStage(t, h, audit.StagePoststop, "web", 0)
				}
			}
			procs[200] = tc.poststart
			res := runStage(t, h, audit.StagePoststart, "web", 200)
			var ref uint64
			if res.Record.Ref != nil {
				ref = res.Record.Ref.Seq
			}
			if ref != tc.wantRef || res.Deny != tc.deny {
				t.Errorf("ref %d, deny %v (violations %+v); want ref %d, deny %v", ref, res.Deny, res.Record.Violations, tc.wantRef, tc.deny)
			}
		})
	}
}

// TestPoststopReusedID: a poststop refers to the container's start
// record, not to that of an earlier container of the same ID that a
// poststop already closed.
func TestPoststopReusedID(t *testing.T) {
	h := reuseHook(t, map[int]*audit.Ancestry{100: proc(100, 5, 4026532200)})
	runStage(t, h, audit.StageCreateRuntime, "web", 100)
	if res := runStage(t, h, audit.StagePoststop, "web", 0); res.Record.Ref == nil || res.Record.Ref.Seq != 1 {
		t.Fatalf("first poststop: ref %+v, want seq 1", res.Record.Ref)
	}
	// A second "web", whose start was not recorded, stops.
	res := runStage(t, h, audit.StagePoststop, "web", 0)
	if res.Record.Ref != nil || res.Record.Error != "no start record for this container" {
		t.Errorf("second poststop: ref %+v, error %q; want no ref, no start record", res.Record.Ref, res.Record.Error)
	}
}
