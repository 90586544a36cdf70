// Package containerd connects nsrel to containerd and the OCI runtimes
// below it.
//
// Container lookup for the namespace trees: [Source] asks a containerd
// daemon (1.6 or 2.x, through the v2 Go client) for every container with a
// running task in every containerd namespace; [StateSource] reads runc and
// crun state directories without any daemon, so containers of plain runc,
// crun, podman and CRI-O are found too; [Multi] asks several sources at
// once and [Merge]s their answers. All implement
// [discover.ContainerSource].
//
// Installing nsrel-hook through containerd: [WithHook] is an
// [oci.SpecOpts] for Go client users; config/containerd holds the CRI
// base_runtime_spec for Kubernetes nodes.
//
// Auditing containers no hook saw: [Recorder] subscribes to containerd's
// task events and appends to the nsrel-hook audit chain (see
// cmd/nsrel-containerd).
//
// Everything read from containers (state files, labels, IDs) is treated
// as hostile: sizes are limited, files are opened without following
// symlinks, and every PID is checked to still be the container's.
package containerd
