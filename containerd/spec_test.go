package containerd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/containerd/internal/ctrdtest"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
)

func TestWithHookSpec(t *testing.T) {
	timeout := DefaultHookTimeout
	other := specs.Hook{Path: "/bin/true"}
	s := &specs.Spec{Hooks: &specs.Hooks{CreateRuntime: []specs.Hook{other}}}
	for range 2 { // the second application adds nothing
		if err := WithHook("/opt/nsrel-hook", "/etc/h.json")(context.Background(), nil, nil, s); err != nil {
			t.Fatal(err)
		}
	}
	h := func(stage string) specs.Hook {
		return specs.Hook{Path: "/opt/nsrel-hook", Args: []string{"nsrel-hook", "--config", "/etc/h.json", stage}, Timeout: &timeout}
	}
	want := &specs.Hooks{
		CreateRuntime: []specs.Hook{other, h("createRuntime")},
		Poststart:     []specs.Hook{h("poststart")},
		Poststop:      []specs.Hook{h("poststop")},
	}
	if diff := cmp.Diff(want, s.Hooks); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	s = &specs.Spec{}
	if err := WithHook("", "")(context.Background(), nil, nil, s); err != nil {
		t.Fatal(err)
	}
	if got := s.Hooks.Poststop[0].Args; got[2] != DefaultHookConfig || s.Hooks.Poststop[0].Path != DefaultHookPath {
		t.Errorf("defaults not applied: %v", s.Hooks.Poststop[0])
	}
	for _, args := range [][2]string{{"nsrel-hook", ""}, {"", "hook.json"}} {
		s = &specs.Spec{}
		if err := WithHook(args[0], args[1])(context.Background(), nil, nil, s); err == nil || s.Hooks != nil {
			t.Errorf("WithHook(%q, %q): err %v, hooks %v; want an error and no hooks", args[0], args[1], err, s.Hooks)
		}
	}
}

// hookSetup writes an nsrel-hook config (audit mode) whose audit log lives
// in a fresh directory, and returns the config path and the parsed config.
func hookSetup(t *testing.T) (string, *policy.Config) {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{
	"version": 1,
	"audit_log": %q,
	"log_file": %q,
	"on_error": "allow",
	"deadline_ms": 3000,
	"default": {"name": "default", "mode": "audit", "rules": {"require_user_namespace": true, "require_pid_namespace": true}}
}`, filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "hook.log"))
	p := filepath.Join(dir, "hook.json")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := policy.Load(p)
	if err != nil {
		t.Fatalf("hook config: %v", err)
	}
	return p, c
}

// readRecords returns the records of the log at path (none if absent).
func readRecords(t *testing.T, path string) []*audit.Record {
	t.Helper()
	files, err := audit.Files(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*audit.Record
	for r, err := range audit.Records(files...) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// waitRecords polls the log until ok holds for its records.
func waitRecords(t *testing.T, path string, what string, ok func([]*audit.Record) bool) []*audit.Record {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs := readRecords(t, path)
		if ok(recs) {
			return recs
		}
		if time.Now().After(deadline) {
			var b []byte
			for _, r := range recs {
				b = fmt.Appendf(b, "%d %s %s %s %s\n", r.Seq, r.Source, r.Stage, r.Namespace, r.ContainerID)
			}
			t.Fatalf("timed out waiting for %s; records:\n%s", what, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stages returns "source/stage" of the records of container id.
func stages(recs []*audit.Record, id string) []string {
	var out []string
	for _, r := range recs {
		if r.ContainerID == id {
			out = append(out, r.Source+"/"+r.Stage)
		}
	}
	return out
}

// TestWithHookRecords creates a container with the Go client and WithHook
// on each daemon flavor and checks the hook's audit records: createRuntime
// and poststart naming the task's PID and its real namespaces, then
// poststop after deletion, with an intact chain.
func TestWithHookRecords(t *testing.T) {
	hookBin := tool(t, "nsrel-hook")
	for _, f := range ctrdtest.Flavors() {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			cfgPath, cfg := hookSetup(t)
			d := ctrdtest.Start(t, f, nil)
			c := d.Client(t)
			id := uniq("hooked")
			ctr, pid := d.Run(t, c, "default", id, &ctrdtest.RunOpts{UserNS: true, SpecOpts: []oci.SpecOpts{WithHook(hookBin, cfgPath)}})
			recs := waitRecords(t, cfg.AuditLog, "poststart", func(rs []*audit.Record) bool { return len(stages(rs, id)) >= 2 })
			if diff := cmp.Diff([]string{"oci-hook/createRuntime", "oci-hook/poststart"}, stages(recs, id)); diff != "" {
				t.Fatalf("records (-want +got):\n%s", diff)
			}
			for _, r := range recs {
				if r.Ancestry == nil || r.PID != int(pid) {
					t.Fatalf("record %d: ancestry %+v, want pid %d", r.Seq, r.Ancestry, pid)
				}
				if got, want := r.User[0].Ino, nsIno(t, int(pid), "user"); got != want {
					t.Errorf("record %d: user ns %d, want %d", r.Seq, got, want)
				}
				if got, want := r.PIDNS[0].Ino, nsIno(t, int(pid), "pid"); got != want {
					t.Errorf("record %d: pid ns %d, want %d", r.Seq, got, want)
				}
				if len(r.Violations) != 0 {
					t.Errorf("record %d: violations %+v for a container with its own user and PID namespaces", r.Seq, r.Violations)
				}
			}
			ctrdtest.Delete("default", ctr)
			recs = waitRecords(t, cfg.AuditLog, "poststop", func(rs []*audit.Record) bool { return len(stages(rs, id)) >= 3 })
			if got := stages(recs, id)[2]; got != "oci-hook/poststop" {
				t.Errorf("third record %s, want oci-hook/poststop", got)
			}
			verifyChain(t, cfg.AuditLog)
		})
	}
}

func verifyChain(t *testing.T, path string) {
	t.Helper()
	files, err := audit.Files(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(files, audit.VerifyOptions{}); err != nil {
		t.Errorf("audit chain: %v", err)
	}
}
