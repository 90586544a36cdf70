// Package containerd connects nsrel to containerd and the OCI runtimes
// below it. docs/containerd.md has the full picture and examples.
//
// Container lookup for the namespace trees: [Source] asks a containerd
// daemon (1.6 or 2.x, through the v2 Go client) for every container with a
// running task in every containerd namespace; [StateSource] reads runc and
// crun state directories without any daemon, so containers of plain runc,
// crun, podman and CRI-O are found too; [AuditSource] reads the nsrel-hook
// audit log, whose records name containers no runtime root lists. [Local]
// and [Multi] ask several sources at once and [Merge] their answers;
// [TreeSources] is what lsuserns and lspidns use. All implement
// [discover.ContainerSource].
//
// Installing nsrel-hook through containerd: [WithHook] is an
// [oci.SpecOpts] for Go client users; config/containerd holds the CRI
// base_runtime_spec and config fragments for Kubernetes nodes.
//
// Auditing containers no hook saw: [Recorder] subscribes to containerd's
// task events and appends to the nsrel-hook audit chain;
// cmd/nsrel-containerd runs it as a service ([Main]).
//
// Everything read from containers (state files, labels, annotations, IDs)
// is treated as hostile: sizes are limited, files are opened without
// following symlinks, and every PID is checked to still be the
// container's process (start time, owner) before it is attributed.
package containerd
