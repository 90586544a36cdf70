// Command nsrel-containerd is nsrel's long-lived containerd companion:
// `watch` records every container start containerd reports into the
// nsrel-hook audit chain (package
// [github.com/nsrel/nsrel/containerd/recorder]), `nri` validates and
// records Kubernetes containers as an NRI plugin (package
// [github.com/nsrel/nsrel/containerd/nriplugin]). See
// `nsrel-containerd --help` and docs/containerd.md.
package main
