package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/nstest"
)

// oldRevision is the last revision before the versioned record format
// (format 1.0: records without a "format" member).
const oldRevision = "24c7aec"

// format11Revision is the last revision that wrote format 1.1 (before
// the ID maps).
const format11Revision = "3ed642e"

// hookTrees holds, per revision, the tree with nsrel-hook built in it.
var hookTrees struct {
	sync.Mutex
	dirs map[string]*hookTree
}

type hookTree struct {
	once sync.Once
	dir  string
	err  error
}

// oldHookTree returns the tree of oldRevision with its nsrel-hook built
// at DIR/nsrel-hook.
func oldHookTree(t *testing.T) string { return hookTreeAt(t, oldRevision) }

// hookTreeAt returns the tree of revision rev with its nsrel-hook built
// at DIR/nsrel-hook, once per test binary, in the directory TestMain
// removes at the end.
func hookTreeAt(t *testing.T, rev string) string {
	t.Helper()
	git := nstest.RequireCmd(t, "git")
	repo := nstest.RepoFile(t, ".")
	have := exec.Command(git, "-C", repo, "cat-file", "-e", rev+"^{commit}").Run() == nil
	nstest.Require(t, have, "needs revision %s in the repository's history (a shallow clone lacks it)", rev)
	hookTrees.Lock()
	if hookTrees.dirs == nil {
		hookTrees.dirs = map[string]*hookTree{}
	}
	h := hookTrees.dirs[rev]
	if h == nil {
		h = &hookTree{}
		hookTrees.dirs[rev] = h
	}
	hookTrees.Unlock()
	h.once.Do(func() {
		h.dir = filepath.Join(filepath.Dir(hookBin), "nsrel-"+rev)
		if h.err = os.Mkdir(h.dir, 0o755); h.err != nil {
			return
		}
		archive := exec.Command("sh", "-c", `"$1" -C "$2" archive "$3" | tar -x -C "$4"`, "sh", git, repo, rev, h.dir)
		if out, err := archive.CombinedOutput(); err != nil {
			h.err = fmt.Errorf("git archive %s: %v\n%s", rev, err, out)
			return
		}
		build := nstest.GoBuild("-o", filepath.Join(h.dir, "nsrel-hook"), "./cmd/nsrel-hook")
		build.Dir = h.dir
		build.Env = append(build.Env, "GOWORK=off", "GOFLAGS=-mod=readonly")
		if out, err := build.CombinedOutput(); err != nil {
			h.err = fmt.Errorf("go build nsrel-hook at %s: %v\n%s", rev, err, out)
		}
	})
	if h.err != nil {
		t.Fatal(h.err)
	}
	return h.dir
}

// TestExtendsOldLog has nsrel-hook of oldRevision write a log (several
// stages of several containers, rotated), then the current one extend
// it: the chain verifies, the old records read back as format 1.0, and
// the current hook finds the old start records its poststop refers to.
func TestExtendsOldLog(t *testing.T) {
	tree := oldHookTree(t)
	old := filepath.Join(tree, "nsrel-hook")
	e := newEnv(t, "hook.json", func(c map[string]any) { c["rotate_bytes"] = 4096 })

	// The old hook reads the config its revision shipped.
	data, err := os.ReadFile(filepath.Join(tree, "config", "hook.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	c["audit_log"], c["log_file"], c["rotate_bytes"] = e.log, filepath.Join(e.dir, "hook-old.log"), 4096
	oldConfig := filepath.Join(e.dir, "hook-old.json")
	data, _ = json.Marshal(c)
	if err := os.WriteFile(oldConfig, data, 0o644); err != nil {
		t.Fatal(err)
	}

	stop := func(id string) string {
		return fmt.Sprintf(`{"ociVersion":"1.0.2","id":%q,"status":"stopped","bundle":"/b"}`, id)
	}
	type step struct{ bin, config, id, stage string }
	var steps []step
	for i := range 4 {
		id := fmt.Sprintf("old-%d", i)
		steps = append(steps, step{old, oldConfig, id, "createRuntime"}, step{old, oldConfig, id, "poststart"})
		if i < 2 {
			steps = append(steps, step{old, oldConfig, id, "poststop"})
		}
	}
	oldSteps := len(steps)
	// The current hook stops two containers the old one started, and
	// runs two of its own.
	steps = append(steps, step{hookBin, e.config, "old-2", "poststop"}, step{hookBin, e.config, "old-3", "poststop"})
	for i := range 2 {
		id := fmt.Sprintf("new-%d", i)
		for _, stage := range []string{"createRuntime", "poststart", "poststop"} {
			steps = append(steps, step{hookBin, e.config, id, stage})
		}
	}
	for i, s := range steps {
		if i == oldSteps {
			if files, err := audit.Files(e.log); err != nil || len(files) < 2 {
				t.Fatalf("want the old hook to have rotated the log, files %v (%v)", files, err)
			}
		}
		state := selfState(s.id)
		if s.stage == "poststop" {
			state = stop(s.id)
		}
		cmd := exec.Command(s.bin, "--config", s.config, s.stage)
		cmd.Stdin = strings.NewReader(state)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s %s: %v\n%s", s.bin, s.id, s.stage, err, out)
		}
	}

	code, out, stderr := runBin(t, "", "audit", "verify", e.log)
	if want := fmt.Sprintf("OK: %d records (seq 1..%d)", len(steps), len(steps)); code != 0 || !strings.Contains(out, want) {
		t.Fatalf("verify: exit %d, want 0 and %q\n%s%s", code, want, out, stderr)
	}
	files, err := audit.Files(e.log)
	if err != nil {
		t.Fatal(err)
	}
	var recs []*audit.Record
	for r, err := range audit.Records(files...) {
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if len(recs) != len(steps) {
		t.Fatalf("%d records, want %d", len(recs), len(steps))
	}
	bySeq := map[uint64]*audit.Record{}
	for i, r := range recs {
		bySeq[r.Seq] = r
		s := steps[i]
		format := audit.Format
		if i < oldSteps {
			format = "" // 1.0
		}
		if r.Format != format || r.ContainerID != s.id || r.Stage != s.stage || len(r.Unknown) != 0 {
			t.Errorf("seq %d: format %q, %s %s, unknown %q; want format %q, %s %s", r.Seq, r.Format, r.ContainerID, r.Stage, r.Unknown, format, s.id, s.stage)
		}
		if s.stage != "poststop" && (r.Ancestry == nil || r.PID != os.Getpid() || len(r.User) == 0 || len(r.PIDNS) == 0) {
			t.Errorf("seq %d (%s %s): ancestry %+v, want this process's", r.Seq, s.id, s.stage, r.Ancestry)
		}
	}
	// The current hook's poststop of a container the old hook started
	// refers to the old poststart record, found by the searcher.
	for _, r := range recs[oldSteps : oldSteps+2] {
		ref := r.Ref
		if ref == nil || bySeq[ref.Seq] == nil || bySeq[ref.Seq].Hash != ref.Hash || bySeq[ref.Seq].Format != "" || bySeq[ref.Seq].ContainerID != r.ContainerID {
			t.Errorf("seq %d (%s poststop by the current hook): ref %+v, want the old hook's start record", r.Seq, r.ContainerID, ref)
		}
	}
}

// TestMapsFormatBothWays mixes records of format 1.1 (nsrel-hook of
// format11Revision, without ID maps) and 1.2 (this one, with user_maps)
// of a process in a user namespace of its own in one log: both versions
// verify the chain and show every container, the old one without maps
// (it skips the member it does not know), this one with the maps of its
// own records.
func TestMapsFormatBothWays(t *testing.T) {
	nstest.RequireRoot(t)
	old := filepath.Join(hookTreeAt(t, format11Revision), "nsrel-hook")
	e := newEnv(t, "hook.json", nil)
	p := nstest.UserChain(t, 1)
	ids := []string{"v11-a", "v12-b", "v11-c", "v12-d"}
	for i, id := range ids {
		bin := old
		if i%2 == 1 {
			bin = hookBin
		}
		state, _ := json.Marshal(map[string]any{"ociVersion": "1.0.2", "id": id, "status": "creating", "pid": p.Pid, "bundle": "/b"})
		cmd := exec.Command(bin, "--config", e.config, "createRuntime")
		cmd.Stdin = strings.NewReader(string(state))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", bin, id, err, out)
		}
	}
	mapsLine := "        maps: user:[" + strconv.FormatUint(nstest.Ino(t, p.Pid, "user"), 10) + "] uid_map 0 0 1, gid_map 0 0 1, setgroups deny, host UIDs 0, host GIDs 0\n"
	for _, bin := range []string{old, hookBin} {
		out, err := exec.Command(bin, "audit", "verify", e.log).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "OK: 4 records") {
			t.Errorf("%s audit verify: %v\n%s", bin, err, out)
		}
		out, err = exec.Command(bin, "audit", "show", e.log).CombinedOutput()
		if err != nil {
			t.Fatalf("%s audit show: %v\n%s", bin, err, out)
		}
		for _, id := range ids {
			if !strings.Contains(string(out), "container "+id+"\n") {
				t.Errorf("%s audit show lacks %s:\n%s", bin, id, out)
			}
		}
		want := 2
		if bin == old {
			want = 0
		}
		if n := strings.Count(string(out), mapsLine); n != want {
			t.Errorf("%s audit show: %d lines %q, want %d:\n%s", bin, n, mapsLine, want, out)
		}
	}
	recs := e.records(t, "")
	for i, want := range []string{"1.1", audit.Format, "1.1", audit.Format} {
		r := recs[i]
		if r.Format != want || r.Ancestry == nil || (want == "1.1") != (r.Maps == nil) {
			t.Errorf("seq %d: format %q, ancestry %+v; want format %s", r.Seq, r.Format, r.Ancestry, want)
		}
	}
}
