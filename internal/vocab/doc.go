// Package vocab defines, once, the vocabulary every nsrel package shares:
// how text a container controls is made safe for a terminal ([Escape],
// [Printable]), the limits on what is read from containers and kernels
// ([MaxStateSize], [PIDLimit]), the OCI hook stage names ([HookStages]),
// the install paths of the shipped configuration ([DefaultHookConfig],
// [DefaultHookPath], [DefaultAuditLog]), containerd's socket and timeout
// defaults ([ContainerdAddress]), the Kubernetes (CRI) label and
// annotation keys and the pod name built from them ([PodName]), and
// nsrel's [Version].
//
// It sits at the bottom of the import graph (docs/ARCHITECTURE.md): it
// imports only the standard library, so that nsrel-hook, which runs on
// every container start, pays nothing for it.
package vocab
