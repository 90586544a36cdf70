package seccompprofile

import (
	"slices"
	"testing"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestNodeAgent checks the profile against containerd's RuntimeDefault
// for the agent's capabilities: the same default action, architectures
// and rules, each with the same action and arguments, less the names of
// Denied, which RuntimeDefault allows (TestNodeAgent in
// internal/kubetest runs the agent under the profile).
func TestNodeAgent(t *testing.T) {
	caps := &specs.LinuxCapabilities{Bounding: Capabilities, Effective: Capabilities, Permitted: Capabilities}
	def := seccomp.DefaultProfile(&specs.Spec{Process: &specs.Process{Capabilities: caps}})
	got := NodeAgent()
	allowed := func(p *specs.LinuxSeccomp) []string {
		var names []string
		for _, r := range p.Syscalls {
			if r.Action == specs.ActAllow && len(r.Args) == 0 {
				names = append(names, r.Names...)
			}
		}
		slices.Sort(names)
		return slices.Compact(names)
	}
	for _, n := range Denied {
		if !slices.Contains(allowed(def), n) {
			t.Errorf("RuntimeDefault does not allow %s: nothing to take away", n)
		}
		for _, r := range got.Syscalls {
			if slices.Contains(r.Names, n) {
				t.Errorf("the profile names %s: %+v", n, r)
			}
		}
	}
	want := slices.DeleteFunc(allowed(def), func(n string) bool { return slices.Contains(Denied, n) })
	if diff := cmp.Diff(want, allowed(got)); diff != "" {
		t.Errorf("calls allowed unconditionally (-RuntimeDefault less Denied +profile):\n%s", diff)
	}
	if got.DefaultAction != specs.ActErrno || got.DefaultAction != def.DefaultAction || !slices.Equal(got.Architectures, def.Architectures) {
		t.Errorf("default action %s, architectures %v; want RuntimeDefault's, %s and %v", got.DefaultAction, got.Architectures, def.DefaultAction, def.Architectures)
	}
	// The rules with arguments or another action (personality, clone,
	// socket families) are RuntimeDefault's as they are.
	conditional := func(p *specs.LinuxSeccomp) []specs.LinuxSyscall {
		return slices.DeleteFunc(slices.Clone(p.Syscalls), func(r specs.LinuxSyscall) bool { return r.Action == specs.ActAllow && len(r.Args) == 0 })
	}
	if diff := cmp.Diff(conditional(def), conditional(got)); diff != "" {
		t.Errorf("conditional rules (-RuntimeDefault +profile):\n%s", diff)
	}
}
