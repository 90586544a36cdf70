// Package bundle builds OCI runtime bundles for tests and the demo: a
// busybox root filesystem (a copy of the static /bin/busybox plus one
// symlink per applet) and a config.json built with the
// [github.com/opencontainers/runtime-spec/specs-go] types, with or without
// a user namespace and its UID/GID mappings.
//
// The generated spec is what `runc spec` produces, trimmed for machines
// without CAP_SYS_RESOURCE (no rlimits, no oom_score_adj) and for cgroup
// v1 and v2. Several bundles may share one root filesystem ([Rootfs]),
// which keeps fifty-container tests cheap.
//
// The command internal/bundle/cmd/mkbundle exposes [Create] to shell
// scripts such as scripts/demo.sh.
package bundle
