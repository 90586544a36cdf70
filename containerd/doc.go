// Package containerd connects nsrel to a containerd daemon (1.6 or 2.x,
// through the v2 Go client). docs/containerd.md has the full picture and
// examples.
//
// Container lookup for the namespace trees: [Source] asks the daemon for
// every container with a running task in every containerd namespace, with
// the Kubernetes pod names of CRI containers. [TreeSources] gives a Go
// program what lsuserns and lspidns see: the daemon, then the daemon-less
// sources of package [github.com/nsrel/nsrel/containers] (runc and crun
// state, the audit log), so containers stay annotated while the daemon is
// down; [Sources] lists all three as one [containers.Multi]. (The two
// commands themselves reach the daemon through `nsrel-containerd
// containers`, [containers.HelperSource], to link no client.)
//
// Installing nsrel-hook through containerd: [WithHook] is an
// [oci.SpecOpts] for Go client users, [Hooks] the hooks it adds (the same
// as config/runc/hooks.json); config/containerd holds the CRI
// base_runtime_spec and config fragments for Kubernetes nodes.
//
// Recording what no hook sees is in the subpackages: containerd/recorder
// (task events into the audit chain) and containerd/nriplugin (Kubernetes
// containers checked through NRI), run by cmd/nsrel-containerd.
//
// Labels, annotations and specs come from whoever created the container
// and are treated as hostile: sizes are limited ([MaxSpec]) and every PID
// is checked to still exist before it is attributed.
package containerd
