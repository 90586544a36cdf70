package hook_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
)

func itoa64(x uint64) string { return strconv.FormatUint(x, 10) }

// reuseHook returns a Hook under an enforcing block without rules (only
// ancestry_unchanged can refuse) whose inspection returns procs[pid].
func reuseHook(t *testing.T, procs map[int]*audit.Ancestry) *hook.Hook {
	t.Helper()
	return reuseHookRules(t, procs, `{}`)
}

// reuseHookRules is reuseHook with the enforcing block's rules.
func reuseHookRules(t *testing.T, procs map[int]*audit.Ancestry, rules string) *hook.Hook {
	t.Helper()
	cfg, err := policy.Parse("reuse.json", []byte(`{"version":1,"audit_log":"/x","default":{"name":"d","mode":"enforce","rules":`+rules+`}}`))
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
// namespace userIno. A start time below fakeStart is offset by it: no
// process of the boot has it, so that the hook's poststop sees none of
// them run ([inspect.Runs]).
func proc(pid int, start, userIno uint64) *audit.Ancestry {
	if start < fakeStart {
		start += fakeStart
	}
	return &audit.Ancestry{PID: pid, StartTime: start,
		User:  []audit.UserNS{{Ino: userIno}, {Ino: nsrel.InitialUserNSIno}},
		PIDNS: []audit.PIDNS{{Ino: 4026532100 + uint64(pid)}, {Ino: nsrel.InitialPIDNSIno}}}
}

// earlierBoot is a boot ID no boot has.
const earlierBoot = audittest.OtherBoot

// inEarlierBoot runs the stage of h in an earlier boot: its records
// name that boot.
func inEarlierBoot(t *testing.T, h *hook.Hook, stage, id string, pid int) *hook.Result {
	t.Helper()
	now := h.Log
	then, err := audit.Open(now.Path(), audit.Options{BootID: earlierBoot})
	if err != nil {
		t.Fatal(err)
	}
	h.Log = then
	defer func() { h.Log = now }()
	return runStage(t, h, stage, id, pid)
}

// fakeStart is a start time (clock ticks since boot) no process reaches:
// about 3,500 years at 100 ticks a second.
const fakeStart = 1 << 43

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
// record of the same process (PID and start time) only: a container
// "web" whose createRuntime record is missing was refused (and runc
// kills a container whose poststart fails) for differing from an
// earlier "web". Without a record of its process, the poststart record
// says which is missing in its error (it was silent, a diagnostics line
// at most), and the rules alone judge it.
func TestPoststartReusedID(t *testing.T) {
	const s9, s10 = fakeStart + 9, fakeStart + 10
	for _, tc := range []struct {
		name string
		// stages before the poststart of pid 200, "create:PID" or "stop"
		before    []string
		poststart *audit.Ancestry
		wantRef   uint64 // 0: none
		deny      bool
		wantErr   string
	}{
		{"earlier container stopped", []string{"create:100", "stop"}, proc(200, 9, 4026532300), 0, false,
			"ancestry_unchanged: not compared: no createRuntime record of pid 200 (start time " + itoa64(s9) + "); the latest for the ID, seq 1, is of pid 100 (start time " + itoa64(fakeStart+5) + ")"},
		{"this one's record after a stop", []string{"create:100", "stop", "create:200"}, proc(200, 9, 4026532300), 3, false, ""},
		{"earlier container not stopped", []string{"create:100"}, proc(200, 9, 4026532300), 0, false,
			"ancestry_unchanged: not compared: no createRuntime record of pid 200 (start time " + itoa64(s9) + "); the latest for the ID, seq 1, is of pid 100 (start time " + itoa64(fakeStart+5) + ")"},
		// The container's process exited and its PID is another's: a
		// process gone, not the other's namespaces under its ID.
		{"same PID, another process", []string{"create:200"}, proc(200, 10, 4026532300), 1, false,
			"inspect: pid 200: process exited during inspection: the container's process (start time " + itoa64(s9) + ", createRuntime record seq 1) has exited; the pid is another process's now (start time " + itoa64(s10) + "), not recorded"},
		{"no record of the ID", nil, proc(200, 9, 4026532300), 0, false,
			"ancestry_unchanged: not compared: no createRuntime record of pid 200 (start time " + itoa64(s9) + "); the ID has none"},
		{"ancestry changed", []string{"create:200"}, proc(200, 9, 4026532301), 1, true, ""},
		{"process gone", []string{"create:100", "stop", "create:200"}, nil, 3, false, "process"},
		// The process's own record counts whatever poststop follows:
		// runc frees the ID before an earlier container's poststop.
		{"poststop after this one's record", []string{"create:100", "create:200", "stop"}, proc(200, 9, 4026532300), 2, false, ""},
		{"process gone, earlier one stopped", []string{"create:200", "stop"}, nil, 0, false,
			"ancestry_unchanged: not compared: the createRuntime record of pid 200, seq 1, was closed by poststop seq 2"},
		// A crash ended the boot of the ID's last record: this boot's
		// process of its PID and start time is another.
		{"same process of an earlier boot", []string{"earlier-boot:200"}, proc(200, 9, 4026532300), 0, false,
			"ancestry_unchanged: not compared: no createRuntime record of pid 200 (start time " + itoa64(s9) + "); the latest for the ID, seq 1, is of pid 200 (start time " + itoa64(s9) + ") of another boot (" + earlierBoot + ")"},
		{"process gone, stopped, a later one", []string{"create:200", "stop", "create:100"}, nil, 0, false,
			"ancestry_unchanged: not compared: the createRuntime record of pid 200, seq 1, was closed by poststop seq 2; the latest for the ID, seq 3, is of pid 100 (start time " + itoa64(fakeStart+5) + ")"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			procs := map[int]*audit.Ancestry{100: proc(100, 5, 4026532200), 200: proc(200, 9, 4026532300)}
			h := reuseHook(t, procs)
			for _, s := range tc.before {
				if pid, ok := strings.CutPrefix(s, "create:"); ok {
					n, _ := strconv.Atoi(pid)
					runStage(t, h, audit.StageCreateRuntime, "web", n)
				} else if pid, ok := strings.CutPrefix(s, "earlier-boot:"); ok {
					n, _ := strconv.Atoi(pid)
					inEarlierBoot(t, h, audit.StageCreateRuntime, "web", n)
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
			if tc.wantErr == "" && res.Record.Error != "" || !strings.Contains(res.Record.Error, tc.wantErr) {
				t.Errorf("error %q, want %q", res.Record.Error, tc.wantErr)
			}
			if strings.Contains(tc.wantErr, "another process's now") && res.Record.Ancestry != nil {
				t.Errorf("the other process's ancestry recorded: %+v", res.Record.Ancestry)
			}
			if tc.wantErr != "" && tc.wantRef == 0 && !strings.HasSuffix(res.Record.Error, tc.wantErr) {
				t.Errorf("error %q, want it to end in %q", res.Record.Error, tc.wantErr)
			}
		})
	}
}

// TestPoststartLatePoststop: runc removes a container's state, freeing
// its ID, before it runs its poststop hooks, so an earlier container's
// poststop record can come after the createRuntime record of a new
// container of the same ID. That poststop refers to the earlier
// container's start record, not to the new one's, whose process runs;
// and the new container's poststart compares with its own record. The
// poststop referred to the latest start record, and the poststart took
// any poststop as the end of the ID's records: it compared nothing.
func TestPoststartLatePoststop(t *testing.T) {
	pid := nstest.Start(t, nil, nstest.RequireCmd(t, "sleep"), "infinity").Pid
	st, err := inspect.StartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	// The sleep's ancestry, but for its start time, is made up.
	running := func(userIno uint64) *audit.Ancestry {
		a := proc(pid, 0, userIno)
		a.StartTime = st
		return a
	}
	procs := map[int]*audit.Ancestry{100: proc(100, 5, 4026532200), pid: running(4026532300)}
	h := reuseHook(t, procs)
	runStage(t, h, audit.StageCreateRuntime, "web", 100) // seq 1
	runStage(t, h, audit.StageCreateRuntime, "web", pid) // seq 2: the new container
	if res := runStage(t, h, audit.StagePoststop, "web", 0); res.Record.Ref == nil || res.Record.Ref.Seq != 1 {
		t.Errorf("the earlier container's poststop: ref %+v, want seq 1", res.Record.Ref)
	}
	res := runStage(t, h, audit.StagePoststart, "web", pid)
	if res.Record.Ref == nil || res.Record.Ref.Seq != 2 || res.Record.Error != "" || res.Deny {
		t.Errorf("poststart: ref %+v, error %q, deny %v; want ref seq 2, no error", res.Record.Ref, res.Record.Error, res.Deny)
	}
	// Its ancestry changed: the comparison says so.
	procs[pid] = running(4026532301)
	if res := runStage(t, h, audit.StagePoststart, "web", pid); !res.Deny || res.Record.Ref == nil || res.Record.Ref.Seq != 2 {
		t.Errorf("changed: ref %+v, deny %v; want ref seq 2, refused", res.Record.Ref, res.Deny)
	}
}

// TestPoststopReusedID: a poststop refers to the container's start
// record, not to that of an earlier container of the same ID that a
// poststop already closed, directly or through the poststart record
// that refers to it.
func TestPoststopReusedID(t *testing.T) {
	for _, withPoststart := range []bool{false, true} {
		h := reuseHook(t, map[int]*audit.Ancestry{100: proc(100, 5, 4026532200)})
		runStage(t, h, audit.StageCreateRuntime, "web", 100)
		want := uint64(1)
		if withPoststart {
			runStage(t, h, audit.StagePoststart, "web", 100)
			want = 2
		}
		if res := runStage(t, h, audit.StagePoststop, "web", 0); res.Record.Ref == nil || res.Record.Ref.Seq != want {
			t.Fatalf("first poststop: ref %+v, want seq %d", res.Record.Ref, want)
		}
		// A second "web", whose start was not recorded, stops.
		res := runStage(t, h, audit.StagePoststop, "web", 0)
		if res.Record.Ref != nil || res.Record.Error != "no start record for this container" {
			t.Errorf("poststart %v: second poststop: ref %+v, error %q; want no ref, no start record", withPoststart, res.Record.Ref, res.Record.Error)
		}
	}
}

// TestPoststopPID: runc frees a container's ID before its poststop
// hooks run, so an earlier container A's poststop can come after the
// createRuntime record of a new container B of the ID. When both
// processes are gone, nothing in the log tells their start records
// apart; a runtime that gives the process's PID at poststop does (runc
// 1.1 and crun 1.8 give none). A's poststop referred to B's record even
// so, and B's poststart then said it found no createRuntime record of
// its PID, naming that very record as the ID's latest. Now a start
// record of another PID is not the container's, and without a PID the
// poststart says which poststop closed its record.
func TestPoststopPID(t *testing.T) {
	for _, tc := range []struct {
		name string
		// the PIDs the runtime gives at A's and B's poststops
		pidA, pidB int
		// the start records A's poststop and B's poststart refer to
		refA, refStart uint64
		wantErr        string
	}{
		{"PID given", 100, 200, 2, 3, "process exited during inspection"},
		{"no PID", 0, 0, 3, 0, "process exited during inspection; " +
			"ancestry_unchanged: not compared: the createRuntime record of pid 200, seq 3, was closed by poststop seq 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			procs := map[int]*audit.Ancestry{100: proc(100, 5, 4026532200), 200: proc(200, 9, 4026532300)}
			h := reuseHook(t, procs)
			runStage(t, h, audit.StageCreateRuntime, "web", 100) // seq 1: A
			runStage(t, h, audit.StagePoststart, "web", 100)     // seq 2
			runStage(t, h, audit.StageCreateRuntime, "web", 200) // seq 3: B
			procs[200] = nil                                     // B's process exits
			if got := ref(runStage(t, h, audit.StagePoststop, "web", tc.pidA)); got != tc.refA {
				t.Errorf("A's poststop (seq 4): ref %d, want %d", got, tc.refA)
			}
			res := runStage(t, h, audit.StagePoststart, "web", 200) // seq 5
			if got := ref(res); got != tc.refStart || res.Record.Error != tc.wantErr {
				t.Errorf("B's poststart: ref %d, error %q; want ref %d, error %q", got, res.Record.Error, tc.refStart, tc.wantErr)
			}
			// B's poststart record, of no process, is its latest start.
			if got := ref(runStage(t, h, audit.StagePoststop, "web", tc.pidB)); got != 5 {
				t.Errorf("B's poststop: ref %d, want 5", got)
			}
		})
	}
}

// ref is the seq of the record res's record refers to, 0 if none.
func ref(res *hook.Result) uint64 {
	if res.Record.Ref == nil {
		return 0
	}
	return res.Record.Ref.Seq
}

// TestPoststopOwnSource: a poststop refers to a start record of its own
// writer, and to another's (the containerd event recorder's start, which
// it writes for a process of which it finds no start record, as after a
// restart when the hook's is in a file rotated out of its search) only
// without one: it took the latest start record whoever wrote it, and
// left the hook's open.
func TestPoststopOwnSource(t *testing.T) {
	// A process that runs: a new container of the ID whose start the
	// hook recorded before the earlier container's poststop.
	pid := nstest.Start(t, nil, nstest.RequireCmd(t, "sleep"), "infinity").Pid
	st, err := inspect.StartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	running := proc(pid, 0, 4026532300)
	running.StartTime = st
	for _, tc := range []struct {
		name string
		// the hook's createRuntime record before the recorder's start of
		// pid 100, and after it
		before, after int // 0: none
		want          uint64
	}{
		{"the hook's and the recorder's", 100, 0, 1},
		{"the recorder's alone", 0, 0, 1},
		// Its process is gone: the recorder's is of this container.
		{"the recorder's and the hook's of a process that runs", 0, pid, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := reuseHook(t, map[int]*audit.Ancestry{100: proc(100, 5, 4026532200), pid: running})
			if tc.before != 0 {
				runStage(t, h, audit.StageCreateRuntime, "web", tc.before)
			}
			recorded := &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: "web", Ancestry: proc(100, 5, 4026532200)}
			if err := h.Log.Append(context.Background(), recorded); err != nil {
				t.Fatal(err)
			}
			if tc.after != 0 {
				runStage(t, h, audit.StageCreateRuntime, "web", tc.after)
			}
			if got := ref(runStage(t, h, audit.StagePoststop, "web", 0)); got != tc.want {
				t.Errorf("poststop: ref %d, want %d", got, tc.want)
			}
		})
	}
}

// TestPoststopDuplicate: a second poststop of a container (or one of a
// container whose start records are all closed) searched the whole
// search window, the current file and four rotated ones, under the
// log's lock, delaying every other container's createRuntime. It now
// stops at a start record of its PID that a poststop closed (when the
// runtime gives the PID), and after passing more poststops than other
// containers of the ID can leave after its start: the older open start
// record that a search reading on would take stays unread.
func TestPoststopDuplicate(t *testing.T) {
	for _, tc := range []struct {
		name string
		// stages before the poststop, "create:PID" or "stop:PID" (the
		// PID the runtime gives at poststop, 0 for none)
		before []string
		pid    int
		want   uint64 // the start record referred to, 0 for none
		// the error
		wantErr string
	}{
		{"second stop of a PID", []string{"create:100", "create:100", "stop:100"}, 100, 0,
			"no start record for this container: the stop of pid 100 is recorded already, by poststop seq 3 (start record seq 2)"},
		{"second stop without PID", []string{"create:300", "create:100", "stop:0", "create:100", "stop:0", "create:100", "stop:0"}, 0, 0,
			"no start record for this container since the ID's last 3 poststops (searched no further)"},
		// An earlier container's late poststop and a later container's
		// whole life come between this one's start and its poststop.
		{"two poststops after the start", []string{"create:200", "create:100", "stop:200", "create:300", "stop:300"}, 0, 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := reuseHook(t, map[int]*audit.Ancestry{100: proc(100, 5, 4026532200), 200: proc(200, 9, 4026532300), 300: proc(300, 7, 4026532400)})
			for _, s := range tc.before {
				stage, pid, _ := strings.Cut(s, ":")
				n, _ := strconv.Atoi(pid)
				if stage == "create" {
					runStage(t, h, audit.StageCreateRuntime, "web", n)
				} else {
					runStage(t, h, audit.StagePoststop, "web", n)
				}
			}
			res := runStage(t, h, audit.StagePoststop, "web", tc.pid)
			if got := ref(res); got != tc.want || res.Record.Error != tc.wantErr {
				t.Errorf("poststop: ref %d, error %q; want ref %d, error %q", got, res.Record.Error, tc.want, tc.wantErr)
			}
		})
	}
}

// TestPoststopOthersOfID: containers of the same ID run alongside one
// another under other runtime roots (runc --root), and every poststop of
// theirs counted towards the poststops past which a search gives up:
// three of them, started and stopped during the life of a container,
// left its poststop without a ref (the ID's start records all looked
// closed, and the container lookup takes a stop without one for the end
// of every earlier start of the ID). Where the runtime gives the PID, a
// poststop that closed another process's start record is no longer
// counted; those without a ref, or closing a start record that holds no
// process, still are, and without a PID every poststop is
// (TestPoststopDuplicate).
func TestPoststopOthersOfID(t *testing.T) {
	const gone = 999 // a process that was gone when its start was recorded
	for _, tc := range []struct {
		name string
		// stages after the createRuntime of pid 100 (seq 1) and before
		// its poststop, "create:PID", "poststart:PID" or "stop:PID" (the
		// PID the runtime gives at poststop), and "gone:PID" for a
		// process that exits
		between []string
		pid     int // given at the poststop of 100
		want    uint64
		wantErr string
	}{
		{"three others' lives", []string{"create:201", "stop:201", "create:202", "stop:202", "create:203", "stop:203"}, 100, 1, ""},
		{"three others' lives, overlapping", []string{"create:201", "create:202", "create:203", "stop:201", "stop:202", "stop:203"}, 100, 1, ""},
		{"three others' with a poststart each", []string{"create:201", "poststart:201", "stop:201", "create:202", "poststart:202", "stop:202", "create:203", "poststart:203", "stop:203"}, 100, 1, ""},
		// Their poststarts, of processes gone, hold none: the
		// createRuntime records they refer to tell.
		{"three others' gone at poststart", []string{"create:201", "gone:201", "poststart:201", "stop:201", "create:202", "gone:202", "poststart:202", "stop:202",
			"create:203", "gone:203", "poststart:203", "stop:203"}, 100, 1, ""},
		{"three stops without a start record", []string{"stop:301", "stop:302", "stop:303"}, 100, 0,
			"no start record for this container since the ID's last 3 poststops that closed no start record of another process (searched no further)"},
		{"three stops of starts of no process", []string{"create:999", "stop:999", "create:999", "stop:999", "create:999", "stop:999"}, 100, 0,
			"no start record for this container since the ID's last 3 poststops that closed no start record of another process (searched no further)"},
		{"three others' lives, no PID", []string{"create:201", "stop:201", "create:202", "stop:202", "create:203", "stop:203"}, 0, 0,
			"no start record for this container since the ID's last 3 poststops (searched no further)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			procs := map[int]*audit.Ancestry{100: proc(100, 5, 4026532200)}
			for _, pid := range []int{201, 202, 203} {
				procs[pid] = proc(pid, uint64(pid), 4026532000+uint64(pid))
			}
			h := reuseHook(t, procs)
			runStage(t, h, audit.StageCreateRuntime, "web", 100)
			for _, s := range tc.between {
				stage, p, _ := strings.Cut(s, ":")
				pid, _ := strconv.Atoi(p)
				if stage == "gone" {
					delete(procs, pid)
					continue
				}
				stage = map[string]string{"create": audit.StageCreateRuntime, "poststart": audit.StagePoststart, "stop": audit.StagePoststop}[stage]
				// A process gone at createRuntime is an inspection error.
				if res, err := h.Run(context.Background(), stage, &specs.State{ID: "web", Pid: pid}); res == nil || res.Record == nil || err != nil && pid != gone {
					t.Fatalf("%s: %+v, %v", s, res, err)
				}
			}
			res := runStage(t, h, audit.StagePoststop, "web", tc.pid)
			if got := ref(res); got != tc.want || res.Record.Error != tc.wantErr {
				t.Errorf("poststop: ref %d, error %q; want ref %d, error %q", got, res.Record.Error, tc.want, tc.wantErr)
			}
		})
	}
}

// TestPoststopNoProcessStart: with the PID given, a start record of no
// process (its inspection found the process gone) is taken only without
// a start record of the PID. Another container of the ID, whose creator
// had its process exit before nsrel-hook inspected it (a createRuntime
// hook of its own ahead of nsrel-hook), left such a record after this
// container's start, and this container's poststop referred to it,
// leaving its own start record open.
func TestPoststopNoProcessStart(t *testing.T) {
	procs := map[int]*audit.Ancestry{100: proc(100, 5, 4026532200)}
	h := reuseHook(t, procs)
	runStage(t, h, audit.StageCreateRuntime, "web", 100) // seq 1
	if res, _ := h.Run(context.Background(), audit.StageCreateRuntime, &specs.State{ID: "web", Pid: 300}); res == nil || res.Record == nil || res.Record.Ancestry != nil {
		t.Fatalf("the other container's createRuntime: %+v; want a record of no process", res)
	}
	delete(procs, 100)
	if res := runStage(t, h, audit.StagePoststop, "web", 100); res.Record.Ref == nil || res.Record.Ref.Seq != 1 {
		t.Errorf("poststop of pid 100 refers to %+v; want its createRuntime record, seq 1", res.Record.Ref)
	}
	// Without a start record of its PID, a poststop still takes the
	// record of no process (its own container's, whose process was gone
	// at createRuntime).
	if res := runStage(t, h, audit.StagePoststop, "web", 300); res.Record.Ref == nil || res.Record.Ref.Seq != 2 {
		t.Errorf("poststop of pid 300 refers to %+v; want the record of no process, seq 2", res.Record.Ref)
	}
}

// TestPoststopNoProcessOfOtherPID: a start record of no process that
// refers to another PID's start record (a poststart of another
// container of the ID, whose process was gone by then) is that
// container's: the poststop of pid 100 took it, as the latest record of
// no process, and left its own open; the other container's poststop
// then found its stop recorded already.
func TestPoststopNoProcessOfOtherPID(t *testing.T) {
	procs := map[int]*audit.Ancestry{200: proc(200, 5, 4026532200)}
	h := reuseHook(t, procs)
	if res, _ := h.Run(context.Background(), audit.StageCreateRuntime, &specs.State{ID: "web", Pid: 100}); res == nil || res.Record == nil || res.Record.Ancestry != nil {
		t.Fatalf("A's createRuntime: %+v; want a record of no process", res) // seq 1
	}
	runStage(t, h, audit.StageCreateRuntime, "web", 200) // seq 2: B
	delete(procs, 200)
	runStage(t, h, audit.StagePoststart, "web", 200) // seq 3, of no process, ref 2
	if got := ref(runStage(t, h, audit.StagePoststop, "web", 100)); got != 1 {
		t.Errorf("A's poststop (pid 100) refers to seq %d; want 1, its own record", got)
	}
	if got := ref(runStage(t, h, audit.StagePoststop, "web", 200)); got != 3 {
		t.Errorf("B's poststop (pid 200) refers to seq %d; want 3, its poststart (ending its createRuntime record too)", got)
	}
}

// TestPoststopPIDBeforeOwnSource: with the PID given, another writer's
// start record of the PID is taken before the writer's own record of no
// process: the PID tells the process's, a record of no process may be
// any container's of the ID (the own-source rule ranks records of the
// same kind).
func TestPoststopPIDBeforeOwnSource(t *testing.T) {
	procs := map[int]*audit.Ancestry{}
	h := reuseHook(t, procs)
	if res, _ := h.Run(context.Background(), audit.StageCreateRuntime, &specs.State{ID: "web", Pid: 100}); res == nil || res.Record == nil || res.Record.Ancestry != nil {
		t.Fatalf("createRuntime: %+v; want a record of no process", res) // seq 1
	}
	procs[100] = proc(100, 5, 4026532200)
	h.Source = audit.SourceContainerdEvents
	runStage(t, h, audit.StageCreateRuntime, "web", 100) // seq 2, another writer's, of the PID
	h.Source = ""
	delete(procs, 100)
	if got := ref(runStage(t, h, audit.StagePoststop, "web", 100)); got != 2 {
		t.Errorf("poststop refers to seq %d; want 2, the record of the PID", got)
	}
}

// TestPoststopEarlierBoot: a poststop of a process whose start time is
// unknown (its createRuntime could not inspect it) took an earlier
// boot's stopped start of the ID and PID for this container's, said its
// stop was recorded already, and left this boot's start without an end.
func TestPoststopEarlierBoot(t *testing.T) {
	procs := map[int]*audit.Ancestry{200: proc(200, 9, 4026532300)}
	h := reuseHook(t, procs)
	inEarlierBoot(t, h, audit.StageCreateRuntime, "web", 200) // seq 1
	inEarlierBoot(t, h, audit.StagePoststop, "web", 200)      // seq 2
	delete(procs, 200)
	cr, _ := h.Run(context.Background(), audit.StageCreateRuntime, &specs.State{ID: "web", Pid: 200}) // seq 3, no process
	res := runStage(t, h, audit.StagePoststop, "web", 200)
	if res.Record.Ref == nil || res.Record.Ref.Seq != cr.Record.Seq {
		t.Errorf("poststop ref %+v (error %q); want seq %d, this boot's start", res.Record.Ref, res.Record.Error, cr.Record.Seq)
	}
}

// TestPoststartReusedPIDReal: the container's process (in a user
// namespace, allowed at createRuntime) exits and another process (in a
// user namespace of its own) takes its PID before poststart. That
// process's namespaces were recorded under the container; the record
// now says the container's process is gone, records no ancestry and
// refers to its createRuntime record.
func TestPoststartReusedPIDReal(t *testing.T) {
	nstest.RequireRoot(t)
	cfg, err := policy.Parse("reuse.json", []byte(`{"version":1,"audit_log":"/x","on_error":"deny","default":{"name":"d","mode":"enforce","rules":{"require_user_namespace":true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	base := int(nstest.HostIDBase(t)) + 800_000
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: base, Size: 1}}
	// Another test package's process may take the PID first and hold
	// it (nstest.ErrStolen): the rules may refuse that one, so the
	// container is started again, on a log of its own.
	var (
		h      *hook.Hook
		create *hook.Result
		pid    int
	)
	for attempt := 0; ; attempt++ {
		log, err := audit.Open(filepath.Join(t.TempDir(), "audit.jsonl"), audit.Options{})
		if err != nil {
			t.Fatal(err)
		}
		h = &hook.Hook{Config: cfg, Log: log}
		victim := exec.Command(nstest.RequireCmd(t, "sleep"), "1000")
		victim.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m, Pdeathsig: syscall.SIGKILL}
		if err := victim.Start(); err != nil {
			t.Fatal(err)
		}
		pid = victim.Process.Pid
		t.Cleanup(func() { victim.Process.Kill(); victim.Wait() })
		create = runStage(t, h, audit.StageCreateRuntime, "web", pid)
		if create.Deny || create.Record.Ancestry == nil {
			t.Fatalf("createRuntime: deny %v, %+v", create.Deny, create.Record)
		}
		victim.Process.Kill()
		victim.Wait()
		// A start time counts clock ticks (10 ms at USER_HZ 100): a
		// process that took the PID within the victim's tick has its
		// start time, and is compared as the container's
		// (ancestry_unchanged refuses it).
		time.Sleep(30 * time.Millisecond)
		// In a user namespace of its own: the rules allow it (a process
		// they refuse keeps the refusal, TestPoststartReusedPIDRefusals).
		other, err := nstest.TakePID(pid, nstest.RequireCmd(t, "unshare"), "--user", nstest.RequireCmd(t, "sleep"), "1000")
		if errors.Is(err, nstest.ErrStolen) && attempt < 10 {
			t.Logf("attempt %d: %v; again", attempt, err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { other.Process.Kill(); other.Wait() })
		break
	}
	for deadline := time.Now().Add(5 * time.Second); nstest.Ino(t, pid, "user") == nsrel.InitialUserNSIno; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("unshare made no user namespace in 5 s")
		}
	}
	res := runStage(t, h, audit.StagePoststart, "web", pid)
	r := res.Record
	if res.Deny || r.Ancestry != nil || len(r.Violations) > 0 || r.Ref == nil || r.Ref.Seq != create.Record.Seq ||
		!strings.Contains(r.Error, "the container's process (start time "+strconv.FormatUint(create.Record.StartTime, 10)+", createRuntime record seq 1) has exited; the pid is another process's now") {
		t.Errorf("poststart after the PID was taken: deny %v, ancestry %+v, violations %+v, ref %+v, error %q", res.Deny, r.Ancestry, r.Violations, r.Ref, r.Error)
	}
}

// TestPoststartReusedPIDRefusals: a poststart whose PID the ID's latest
// createRuntime record names with an earlier start time is recorded as
// a process gone only when that record allowed its container and the
// rules allow the process there now. A refused earlier container's
// record is never closed (runc runs no poststop of it) and the running
// container's own record may be missing: its refusal was dropped, and it
// was said to be gone. A refusal passed on before the comparison was
// reversed by it.
func TestPoststartReusedPIDRefusals(t *testing.T) {
	deep := func(pid int, start uint64) *audit.Ancestry {
		a := proc(pid, start, 4026532300)
		a.User = append([]audit.UserNS{{Ino: 4026532400}}, a.User...)
		return a
	}
	for _, tc := range []struct {
		name          string
		create, later *audit.Ancestry
	}{
		{"refused earlier container, this one's record missing", deep(200, 5), deep(200, 9)},
		{"the process there now refused", proc(200, 5, 4026532300), deep(200, 9)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			procs := map[int]*audit.Ancestry{200: tc.create}
			h := reuseHookRules(t, procs, `{"user_depth_max":1}`)
			var decided []bool
			h.Decided = func(deny bool) { decided = append(decided, deny) }
			runStage(t, h, audit.StageCreateRuntime, "web", 200)
			procs[200] = tc.later
			decided = nil
			res := runStage(t, h, audit.StagePoststart, "web", 200)
			if !res.Deny || res.Record.Ancestry == nil || len(res.Record.Violations) == 0 ||
				!strings.Contains(res.Record.Error, "ancestry_unchanged: not compared: no createRuntime record of pid 200") {
				t.Errorf("deny %v, ancestry %v, violations %+v, error %q; want the rules' refusal with what it was decided on", res.Deny, res.Record.Ancestry != nil, res.Record.Violations, res.Record.Error)
			}
			if slices.Contains(decided, false) {
				t.Errorf("decided %v: a refusal passed on, then taken back", decided)
			}
		})
	}
}
