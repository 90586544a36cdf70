// Package containers finds the containers on a host without asking any
// daemon, and merges what several container sources say. It answers
// "which container is this process" for lsuserns and lspidns.
//
// [StateSource] reads the state directories of runc and crun, which
// every engine built on them keeps (plain runc and crun, podman, CRI-O,
// containerd's shims, Docker), and tells the engines apart by their
// bundle paths and annotations; [AuditSource] reads the nsrel-hook audit
// log, whose records name containers no runtime root lists. Names come
// from annotations (Kubernetes, nerdctl), podman's storage (read by
// [StateSource]) and Docker's container configs ([AddDockerNames]). [Merge]
// combines the answers of several sources into one list, keeping for a
// container seen twice the most informative entry; [Multi] and [Local]
// ask several sources at once. All sources implement
// [discover.ContainerSource]; package
// [github.com/nsrel/nsrel/containerd] adds the containerd daemon's view.
//
// Everything read from containers (state files, annotations, IDs, audit
// records whose contents containers chose) is treated as hostile: sizes
// are limited, files are opened without following symlinks, and every
// PID is checked to still be the container's process (start time,
// owner) before it is attributed.
package containers
