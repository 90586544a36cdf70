// Package runtimes measures what nsrel costs a container's lifecycle on
// podman and containerd 2.4 (issue 14): its benchmarks, run through
// bench/runtimes/run.sh, alternate the variants of one lifecycle (without
// nsrel, with the shipped configuration, with nsrel-hook at all three
// stages, and for podman and ctr an empty Go program where the shipped
// configuration puts nsrel-hook: the floor of any hook written in Go) in
// a new random order
// in every round, and print per variant the median, the ratio of the
// medians and the median of the per-round ratios against the variant
// without nsrel.
//
//   - BenchmarkPodman: `podman run --rm` of a busybox `true` container,
//     with no hooks, with the shipped config/hooks.d files, with
//     hooks.d files for createRuntime, poststart and poststop, and with
//     the shipped files running an empty Go program.
//   - BenchmarkCtr: `ctr run --rm` of the same container on containerd
//     2.4, its spec the shipped config/containerd/base-runtime-spec.json
//     with its hooks removed, as shipped, at all three stages, or as
//     shipped running an empty Go program; and the same lifecycle through
//     the Go client, without and with
//     [github.com/nsrel/nsrel/containerd.WithHook], and with WithHook
//     running the empty Go program.
//   - BenchmarkCRI: a crictl pod lifecycle (runp, create, start, stop, rm,
//     stopp, rmp) on three containerd 2.4 daemons with CRI and NRI: one
//     without nsrel, one with `nsrel-containerd nri` injecting nsrel-hook,
//     one with the shipped base runtime spec.
//
// Every daemon, storage and runtime root is private and below $TMPDIR;
// nothing is pulled (the busybox images are built from /bin/busybox).
// The hook's config is config/hook.json with its logs in a temporary
// directory, sealing set up by `nsrel-hook audit seal-init` and
// checkpoints on, as users run it.
package runtimes
