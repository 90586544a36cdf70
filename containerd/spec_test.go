package containerd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/vocab"
)

func TestWithHookSpec(t *testing.T) {
	timeout := vocab.DefaultHookTimeout
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
		Poststop:      []specs.Hook{h("poststop")},
	}
	if diff := cmp.Diff(want, s.Hooks); diff != "" {
		t.Errorf("shipped stages (-want +got):\n%s", diff)
	}
	// The opt-in poststart re-check, added to what is there.
	if err := WithHook("/opt/nsrel-hook", "/etc/h.json", vocab.HookStages...)(context.Background(), nil, nil, s); err != nil {
		t.Fatal(err)
	}
	want.Poststart = []specs.Hook{h("poststart")}
	if diff := cmp.Diff(want, s.Hooks); diff != "" {
		t.Errorf("with poststart (-want +got):\n%s", diff)
	}
	if err := WithHook("/opt/nsrel-hook", "/etc/h.json", "prestart")(context.Background(), nil, nil, &specs.Spec{}); err == nil {
		t.Error("WithHook accepted the stage prestart")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Hooks accepted the stage prestart")
			}
		}()
		Hooks("/opt/nsrel-hook", "/etc/h.json", "prestart")
	}()
	s = &specs.Spec{}
	if err := WithHook("", "")(context.Background(), nil, nil, s); err != nil {
		t.Fatal(err)
	}
	if got := s.Hooks.Poststop[0].Args; got[2] != vocab.DefaultHookConfig || s.Hooks.Poststop[0].Path != vocab.DefaultHookPath {
		t.Errorf("defaults not applied: %v", s.Hooks.Poststop[0])
	}
	for _, args := range [][2]string{{"nsrel-hook", ""}, {"", "hook.json"}} {
		s = &specs.Spec{}
		if err := WithHook(args[0], args[1])(context.Background(), nil, nil, s); err == nil || s.Hooks != nil {
			t.Errorf("WithHook(%q, %q): err %v, hooks %v; want an error and no hooks", args[0], args[1], err, s.Hooks)
		}
	}
}

// TestWithHookRecords creates a container with the Go client and WithHook
// on each daemon flavor and checks the hook's audit records: createRuntime
// naming the task's PID and its real namespaces, then poststop after
// deletion, with an intact chain; with the opt-in poststart also a
// poststart record referring to createRuntime.
func TestWithHookRecords(t *testing.T) {
	hookBin := nstest.Tool(t, "nsrel-hook")
	for _, f := range ctrdtest.Flavors() {
		for _, poststart := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/poststart=%v", f.Name, poststart), func(t *testing.T) {
				t.Parallel()
				stages := vocab.ShippedStages
				if poststart {
					stages = vocab.HookStages
				}
				want := make([]string, len(stages))
				for i, st := range stages {
					want[i] = "oci-hook/" + st
				}
				cfgPath, cfg := ctrdtest.HookConfig(t)
				d := ctrdtest.Start(t, f, nil)
				c := d.Client(t)
				id := ctrdtest.Uniq("hooked")
				ctr, pid := d.Run(t, c, "default", id, &ctrdtest.RunOpts{UserNS: true, SpecOpts: []oci.SpecOpts{WithHook(hookBin, cfgPath, stages...)}})
				recs := audittest.Wait(t, cfg.AuditLog, "start records", func(rs []*audit.Record) bool { return len(audittest.SourceStages(rs, id)) >= len(want)-1 })
				if diff := cmp.Diff(want[:len(want)-1], audittest.SourceStages(recs, id)); diff != "" {
					t.Fatalf("records (-want +got):\n%s", diff)
				}
				for _, r := range recs {
					if r.Ancestry == nil || r.PID != int(pid) {
						t.Fatalf("record %d: ancestry %+v, want pid %d", r.Seq, r.Ancestry, pid)
					}
					if got, want := r.User[0].Ino, nstest.Ino(t, int(pid), "user"); got != want {
						t.Errorf("record %d: user ns %d, want %d", r.Seq, got, want)
					}
					if got, want := r.PIDNS[0].Ino, nstest.Ino(t, int(pid), "pid"); got != want {
						t.Errorf("record %d: pid ns %d, want %d", r.Seq, got, want)
					}
					if len(r.Violations) != 0 {
						t.Errorf("record %d: violations %+v for a container with its own user and PID namespaces", r.Seq, r.Violations)
					}
				}
				if poststart && (recs[1].Ref == nil || recs[1].Ref.Seq != recs[0].Seq) {
					t.Errorf("poststart does not refer to createRuntime: %+v", recs[1].Ref)
				}
				ctrdtest.Delete("default", ctr)
				recs = audittest.Wait(t, cfg.AuditLog, "poststop", func(rs []*audit.Record) bool { return len(audittest.SourceStages(rs, id)) >= len(want) })
				if diff := cmp.Diff(want, audittest.SourceStages(recs, id)); diff != "" {
					t.Errorf("records after deletion (-want +got):\n%s", diff)
				}
				audittest.Verify(t, cfg.AuditLog)
			})
		}
	}
}

// TestSpecAnnotationsUnread: a spec larger than MaxSpec, or that does not
// decode, has its annotations unknown (ErrSpecUnread), not none: a
// caller choosing a policy block by annotation used to take it for a
// spec without annotations.
func TestSpecAnnotationsUnread(t *testing.T) {
	if a, err := SpecAnnotations([]byte(`{"annotations": {"tier": "strict"}}`)); err != nil || a["tier"] != "strict" {
		t.Errorf("small spec: %v, %v", a, err)
	}
	if a, err := SpecAnnotations([]byte(`{}`)); err != nil || a != nil {
		t.Errorf("spec without annotations: %v, %v", a, err)
	}
	big := []byte(`{"annotations": {"tier": "strict", "filler": "` + strings.Repeat("x", MaxSpec) + `"}}`)
	for name, spec := range map[string][]byte{"too large": big, "not JSON": []byte("{\x1b[31m")} {
		a, err := SpecAnnotations(spec)
		if a != nil || !errors.Is(err, ErrSpecUnread) {
			t.Errorf("%s: %v, %v; want nil and ErrSpecUnread", name, a, err)
		} else if strings.ContainsRune(err.Error(), '\x1b') {
			t.Errorf("%s: error not escaped: %q", name, err)
		}
	}
}
