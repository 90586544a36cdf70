package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/nstest"
)

// oldRevision is the last revision before the versioned record format
// (format 1.0: records without a "format" member).
const oldRevision = "24c7aec"

var oldHook struct {
	once sync.Once
	dir  string // the revision's tree, with nsrel-hook built in it
	err  error
}

// oldHookTree returns the tree of oldRevision with its nsrel-hook built
// at DIR/nsrel-hook, once per test binary, in the directory TestMain
// removes at the end.
func oldHookTree(t *testing.T) string {
	t.Helper()
	git := nstest.RequireCmd(t, "git")
	repo := nstest.RepoFile(t, ".")
	have := exec.Command(git, "-C", repo, "cat-file", "-e", oldRevision+"^{commit}").Run() == nil
	nstest.Require(t, have, "needs revision %s in the repository's history (a shallow clone lacks it)", oldRevision)
	oldHook.once.Do(func() {
		oldHook.dir = filepath.Join(filepath.Dir(hookBin), "nsrel-"+oldRevision)
		if oldHook.err = os.Mkdir(oldHook.dir, 0o755); oldHook.err != nil {
			return
		}
		archive := exec.Command("sh", "-c", `"$1" -C "$2" archive "$3" | tar -x -C "$4"`, "sh", git, repo, oldRevision, oldHook.dir)
		if out, err := archive.CombinedOutput(); err != nil {
			oldHook.err = fmt.Errorf("git archive %s: %v\n%s", oldRevision, err, out)
			return
		}
		build := exec.Command(nstest.GoTool(), "build", "-o", filepath.Join(oldHook.dir, "nsrel-hook"), "./cmd/nsrel-hook")
		build.Dir = oldHook.dir
		build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
		if out, err := build.CombinedOutput(); err != nil {
			oldHook.err = fmt.Errorf("go build nsrel-hook at %s: %v\n%s", oldRevision, err, out)
		}
	})
	if oldHook.err != nil {
		t.Fatal(oldHook.err)
	}
	return oldHook.dir
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
