package runtimes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/vocab"
)

// hookConfig writes the shipped config/hook.json with its logs and seal
// state in a fresh directory (no syslog copy of the checkpoints: the
// benchmark must not write to the host's log), sets up sealing with
// `nsrel-hook audit seal-init`, and returns the config's path and its
// audit log.
func hookConfig(b *testing.B, hookBin string) (string, string) {
	b.Helper()
	dir := b.TempDir()
	data, err := os.ReadFile(nstest.RepoFile(b, "config/hook.json"))
	if err != nil {
		b.Fatal(err)
	}
	text := strings.NewReplacer("/var/log/nsrel/", dir+"/", "/var/lib/nsrel/", dir+"/", `"unix:///dev/log"`, "").Replace(string(data))
	path := filepath.Join(dir, "hook.json")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := policy.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command(hookBin, "--config", path, "audit", "seal-init").CombinedOutput(); err != nil {
		b.Fatalf("seal-init: %v\n%s", err, out)
	}
	return path, cfg.AuditLog
}

// shipped returns the shipped file rel (below the repository) with
// nsrel-hook's install path and config path replaced by hookBin and cfg.
func shipped(b *testing.B, rel, hookBin, cfg string) []byte {
	b.Helper()
	data, err := os.ReadFile(nstest.RepoFile(b, rel))
	if err != nil {
		b.Fatal(err)
	}
	if !bytes.Contains(data, []byte(vocab.DefaultHookPath)) {
		b.Fatalf("%s does not name %s", rel, vocab.DefaultHookPath)
	}
	return []byte(strings.NewReplacer(vocab.DefaultHookPath, hookBin, vocab.DefaultHookConfig, cfg).Replace(string(data)))
}

// threeStages are the stages of the variant that runs nsrel-hook at
// every stage it has code for.
var threeStages = []string{vocab.StageCreateRuntime, vocab.StagePoststart, vocab.StagePoststop}

// stageHook is nsrel-hook at one stage, as the shipped files run it.
func stageHook(hookBin, cfg, stage string) specs.Hook {
	timeout := vocab.DefaultHookTimeout
	return specs.Hook{Path: hookBin, Args: []string{"nsrel-hook", "--config", cfg, stage}, Timeout: &timeout}
}

// allStages returns the OCI hooks of nsrel-hook at createRuntime,
// poststart and poststop, built here rather than taken from config/,
// whose stage set may be smaller.
func allStages(hookBin, cfg string) *specs.Hooks {
	return &specs.Hooks{
		CreateRuntime: []specs.Hook{stageHook(hookBin, cfg, vocab.StageCreateRuntime)},
		Poststart:     []specs.Hook{stageHook(hookBin, cfg, vocab.StagePoststart)},
		Poststop:      []specs.Hook{stageHook(hookBin, cfg, vocab.StagePoststop)},
	}
}

// specStages names the stages of h that have hooks.
func specStages(h *specs.Hooks) string {
	if h == nil {
		return "none"
	}
	var s []string
	for _, st := range []struct {
		name  string
		hooks []specs.Hook
	}{{"createRuntime", h.CreateRuntime}, {"createContainer", h.CreateContainer},
		{"startContainer", h.StartContainer}, {"poststart", h.Poststart}, {"poststop", h.Poststop}} {
		if len(st.hooks) > 0 {
			s = append(s, st.name)
		}
	}
	return strings.Join(s, ",")
}

// hooksDFile is a podman hooks.d file (schema 1.0.0) of one stage.
type hooksDFile struct {
	Version string          `json:"version"`
	Hook    specs.Hook      `json:"hook"`
	When    map[string]bool `json:"when"`
	Stages  []string        `json:"stages"`
}

// shippedHooksD copies config/hooks.d/*.json into dir, pointed at hookBin
// and cfg, and returns the stages they install.
func shippedHooksD(b *testing.B, dir, hookBin, cfg string) string {
	b.Helper()
	files, err := filepath.Glob(filepath.Join(nstest.RepoFile(b, "config/hooks.d"), "*.json"))
	if err != nil || len(files) == 0 {
		b.Fatalf("no config/hooks.d files: %v", err)
	}
	var stages []string
	for _, f := range files {
		rel := "config/hooks.d/" + filepath.Base(f)
		data := shipped(b, rel, hookBin, cfg)
		var h hooksDFile
		if err := json.Unmarshal(data, &h); err != nil {
			b.Fatalf("%s: %v", rel, err)
		}
		stages = append(stages, h.Stages...)
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	slices.SortFunc(stages, func(x, y string) int { return slices.Index(threeStages, x) - slices.Index(threeStages, y) })
	return strings.Join(stages, ",")
}

// allStagesHooksD writes hooks.d files for nsrel-hook at every stage of
// threeStages into dir.
func allStagesHooksD(b *testing.B, dir, hookBin, cfg string) {
	b.Helper()
	for _, stage := range threeStages {
		data, err := json.Marshal(hooksDFile{Version: "1.0.0", Hook: stageHook(hookBin, cfg, stage), When: map[string]bool{"always": true}, Stages: []string{stage}})
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "nsrel-"+stage+".json"), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// command returns a function that runs name with args, its output
// returned in the error when it fails.
func command(name string, args ...string) func() error {
	return func() error {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		}
		return nil
	}
}

// auditSummary verifies the chain of the audit log and prints how many
// records each source and stage wrote: the proof that the hooks ran.
func auditSummary(b *testing.B, auditLog string) {
	b.Helper()
	audittest.Verify(b, auditLog)
	count := map[string]int{}
	for _, r := range audittest.Records(b, auditLog, "") {
		count[r.Source+"/"+r.Stage]++
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(count)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, count[k]))
	}
	fmt.Printf("   audit log verified: %s\n", strings.Join(parts, ", "))
}
