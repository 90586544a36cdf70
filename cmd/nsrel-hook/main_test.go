package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/bundle"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/vocab"
)

// Built once per test binary by TestMain.
var (
	hookBin      string // nsrel-hook, built from this package
	sharedRootfs string // busybox rootfs shared by the runc/crun bundles
	setupErr     error  // why the rootfs could not be built
)

// The install paths the shipped configs name; tests rewrite them.
const (
	installedHook   = "/usr/local/sbin/nsrel-hook"
	installedConfig = "/etc/nsrel/hook.json"
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "nsrel-hook-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	hookBin = filepath.Join(dir, "nsrel-hook")
	// Static and written as an installed binary is (BenchmarkHookBinary
	// compares it with another build: bench/rewrite.sh).
	if err := nstest.Build(hookBin, "github.com/nsrel/nsrel/cmd/nsrel-hook"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sharedRootfs = filepath.Join(dir, "rootfs")
	setupErr = bundle.Rootfs(sharedRootfs, "")
	// The mapped root of user namespace containers must reach the rootfs.
	os.Chmod(dir, 0o711)
	guard := nstest.HostLogGuard()
	code := m.Run()
	if err := guard(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		code = 1
	}
	return code
}

// env is one test's config, audit log and runtime state root, all in
// t.TempDir().
type env struct {
	dir    string
	config string
	log    string
	root   string
	// poststart adds the opt-in poststart hook (config/poststart) to the
	// shipped hooks that runcHooks and hooksDir return.
	poststart bool
	// defaultHooksDir makes podmanRun put the hooks.d files where podman
	// reads them without --hooks-dir, in a mount namespace of its own.
	defaultHooksDir bool
	// crun makes podmanRun run podman with crun (hybrid cgroups hidden
	// from it as requireRuntime does), not runc.
	crun bool
	// rootless, when not 0, makes podmanRun run podman as that UID (no
	// passwd entry, no subordinate IDs), with its storage, state and
	// runtime directory ($XDG_RUNTIME_DIR) in the run's store: a user's
	// rootless podman.
	rootless int
	// store is the storage directory of the last podmanRun (removed
	// when the test ends).
	store string
}

// newEnv writes the shipped config file ../../config/<shipped> with the
// paths it writes (audit log, diagnostics, sealing state, checkpoints)
// moved into a temporary directory and checkpoints sent to no syslog,
// then applies edit (if any) to the decoded JSON.
func newEnv(t testing.TB, shipped string, edit func(map[string]any)) *env {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	e := &env{dir: dir, config: filepath.Join(dir, "hook.json"), log: filepath.Join(dir, "audit.jsonl"), root: filepath.Join(dir, "state")}
	data, err := os.ReadFile(filepath.Join("..", "..", "config", shipped))
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	c["audit_log"] = e.log
	c["log_file"] = filepath.Join(dir, "hook.log")
	if _, ok := c["seal_state"]; ok {
		c["seal_state"] = filepath.Join(dir, "audit.seal")
	}
	if cp, ok := c["checkpoints"].(map[string]any); ok {
		cp["file"] = filepath.Join(dir, "checkpoints.jsonl")
		cp["syslog"] = []any{} // tests that ship set their own
	}
	if edit != nil {
		edit(c)
	}
	out, _ := json.MarshalIndent(c, "", "  ")
	if err := os.WriteFile(e.config, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// rewrite points a shipped hook at the test binary and config, leaving
// everything else as shipped.
func (e *env) rewrite(t *testing.T, h specs.Hook) specs.Hook {
	t.Helper()
	if h.Path != installedHook {
		t.Fatalf("shipped hook path %q, want %q", h.Path, installedHook)
	}
	h.Path = hookBin
	args := append([]string(nil), h.Args...)
	found := false
	for i, a := range args {
		if a == installedConfig {
			args[i], found = e.config, true
		}
	}
	if !found {
		t.Fatalf("shipped hook args %q do not name %s", h.Args, installedConfig)
	}
	h.Args = args
	return h
}

// stages are the stages the env's hooks install, in a container's order:
// the shipped ones, or all three with e.poststart.
func (e *env) stages() []string {
	if e.poststart {
		return vocab.HookStages
	}
	return vocab.ShippedStages
}

// runcHooks returns the hooks of the shipped config/runc/hooks.json (with
// e.poststart, of config/poststart/runc-hooks.json), rewritten for this
// env, after checking they are at exactly the shipped stages.
func (e *env) runcHooks(t *testing.T) *specs.Hooks {
	t.Helper()
	file, stages := filepath.Join("..", "..", "config", "runc", "hooks.json"), e.stages()
	if e.poststart {
		file = filepath.Join("..", "..", "config", "poststart", "runc-hooks.json")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var snippet struct {
		Hooks specs.Hooks `json:"hooks"`
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&snippet); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	h := snippet.Hooks
	at := map[string]*[]specs.Hook{vocab.StageCreateRuntime: &h.CreateRuntime, vocab.StagePoststart: &h.Poststart, vocab.StagePoststop: &h.Poststop}
	for stage, s := range at {
		want := 0
		if slices.Contains(stages, stage) {
			want = 1
		}
		if len(*s) != want {
			t.Fatalf("%s: want one hook at each of %v, got %+v", file, stages, h)
		}
		if want == 1 {
			if got := (*s)[0].Args[len((*s)[0].Args)-1]; got != stage {
				t.Fatalf("%s: the %s hook runs stage %q", file, stage, got)
			}
			(*s)[0] = e.rewrite(t, (*s)[0])
		}
	}
	return &h
}

// records returns the log's records for container id (all if id is "").
func (e *env) records(t *testing.T, id string) []*audit.Record {
	t.Helper()
	return audittest.Records(t, e.log, id)
}

// verify checks the whole chain.
func (e *env) verify(t *testing.T) *audit.Summary {
	t.Helper()
	return audittest.Verify(t, e.log)
}
