package hook_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
)

// shippedHook returns a hook.Hook with the shipped config file
// config/<name> and an audit log of its own.
func shippedHook(t *testing.T, name string, inspectFn inspect.Func) (*hook.Hook, string) {
	t.Helper()
	cfg, err := policy.Load(filepath.Join("..", "config", name))
	if err != nil {
		t.Fatal(err)
	}
	log, path := tempLog(t)
	return &hook.Hook{Config: cfg, Log: log, Inspect: inspectFn}, path
}

// TestSelectorsNoBypass runs createRuntime through hook.Hook for a
// container in the host user and PID namespaces that names itself into
// a laxer block: by its ID or by Kubernetes namespace annotations it set
// itself, as runc, crun and podman let its creator do. The shipped
// enforcing configs refuse it; only hook-enforce-cri.json exempts the
// kube-system pods, by the CRI key containerd sets from the pod (which
// such a container cannot set there; docs/hook.md).
func TestSelectorsNoBypass(t *testing.T) {
	initialUser := uint64(nsrel.InitialUserNSIno)
	host := &audit.Ancestry{PID: 77, StartTime: 5,
		User:  []audit.UserNS{{Ino: nsrel.InitialUserNSIno, OwnerUID: 0}},
		PIDNS: []audit.PIDNS{{Ino: nsrel.InitialPIDNSIno, OwnerUserIno: &initialUser}}}
	// The initial user namespace maps host root too (UID and GID).
	hostRules := []string{policy.RuleRequireUserNS, policy.RuleRequirePIDNS, policy.RuleUserDepthMin, policy.RuleHostRootUnmapped, policy.RuleHostRootUnmapped}
	podNS := map[string]string{vocab.LabelPodNamespace: "kube-system", vocab.LabelPodName: "coredns"}
	criNS := map[string]string{vocab.AnnotationSandboxNamespace: "kube-system", vocab.AnnotationSandboxName: "coredns"}
	both := map[string]string{vocab.LabelPodNamespace: "kube-system", vocab.AnnotationSandboxNamespace: "kube-system"}
	tests := []struct {
		name, config, id string
		ann              map[string]string
		policy           string
		deny             bool
	}{
		{"id", "hook-enforce.json", "infra-1", nil, "userns-required", true},
		{"pod namespace", "hook-enforce.json", "c1", podNS, "userns-required", true},
		{"cri sandbox namespace", "hook-enforce.json", "c1", criNS, "userns-required", true},
		{"everything", "hook-enforce.json", "infra-1", both, "userns-required", true},
		{"cri config: id", "hook-enforce-cri.json", "infra-1", nil, "userns-required", true},
		{"cri config: pod namespace", "hook-enforce-cri.json", "c1", podNS, "userns-required", true},
		// What the CRI config trusts: under containerd's CRI plugin only
		// containerd sets this key.
		{"cri config: cri sandbox namespace", "hook-enforce-cri.json", "c1", criNS, "system", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, path := shippedHook(t, tt.config, func(int, *inspect.LiveOnce) (*audit.Ancestry, error) { return host, nil })
			res, err := h.Run(context.Background(), audit.StageCreateRuntime, &specs.State{ID: tt.id, Pid: 77, Annotations: tt.ann})
			if err != nil {
				t.Fatal(err)
			}
			r := res.Record
			if res.Deny != tt.deny || r.Policy != tt.policy {
				t.Fatalf("deny %v under block %q, want %v under %q: %s", res.Deny, r.Policy, tt.deny, tt.policy, res.Message)
			}
			want := audit.VerdictAllow
			if tt.deny {
				want = audit.VerdictDeny
				if d := cmp.Diff(hostRules, audittest.Rules(r)); d != "" {
					t.Errorf("violations (-want +got):\n%s", d)
				}
			}
			if r.Verdict != want {
				t.Errorf("verdict %s, want %s", r.Verdict, want)
			}
			audittest.Verify(t, path)
		})
	}
}

// TestSelectorsNoBypassRealProcess is TestSelectorsNoBypass's bypass
// with a real process in the host namespaces (the test itself),
// inspected by package inspect.
func TestSelectorsNoBypassRealProcess(t *testing.T) {
	u, _ := os.Readlink("/proc/self/ns/user")
	nstest.Require(t, u == (nsrel.Name{Type: nsrel.TypeUser, Ino: nsrel.InitialUserNSIno}).String(),
		"the test must run in the initial user namespace (it runs in %s)", u)
	h, path := shippedHook(t, "hook-enforce.json", nil)
	ann := map[string]string{vocab.LabelPodNamespace: "kube-system", vocab.AnnotationSandboxNamespace: "kube-system"}
	res, err := h.Run(context.Background(), audit.StageCreateRuntime, &specs.State{ID: "infra-1", Pid: os.Getpid(), Annotations: ann})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Record
	if !res.Deny || r.Verdict != audit.VerdictDeny || r.Policy != "userns-required" || r.Ancestry == nil || r.UserDepth() != 0 {
		t.Fatalf("deny %v, record %+v", res.Deny, r)
	}
	if !slices.Contains(audittest.Rules(r), policy.RuleRequireUserNS) {
		t.Errorf("violations %v do not name %s", audittest.Rules(r), policy.RuleRequireUserNS)
	}
	audittest.Verify(t, path)
}
