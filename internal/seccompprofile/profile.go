package seccompprofile

import (
	"slices"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Capabilities are the node agent's (deploy/kubernetes/daemonset.yaml:
// all dropped, SYS_PTRACE added), for which RuntimeDefault is computed.
var Capabilities = []string{"CAP_SYS_PTRACE"}

// Denied are the calls RuntimeDefault allows (ptrace and
// process_vm_readv/writev always, on Linux 4.8 and later; the others
// with CAP_SYS_PTRACE) that the profile takes away: attaching to a
// process, reading and writing its memory, copying its file
// descriptors, advising on its memory. kcmp, which only compares two
// processes' resources, stays.
var Denied = []string{"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "process_madvise"}

// NodeAgent returns the profile: RuntimeDefault for [Capabilities],
// every name of [Denied] taken out of its rules (a rule left with no
// name goes), so that those calls meet the default action (EPERM).
func NodeAgent() *specs.LinuxSeccomp {
	caps := &specs.LinuxCapabilities{Bounding: Capabilities, Effective: Capabilities, Permitted: Capabilities}
	p := seccomp.DefaultProfile(&specs.Spec{Process: &specs.Process{Capabilities: caps}})
	var rules []specs.LinuxSyscall
	for _, r := range p.Syscalls {
		r.Names = slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { return slices.Contains(Denied, n) })
		if len(r.Names) > 0 {
			rules = append(rules, r)
		}
	}
	p.Syscalls = rules
	return p
}
