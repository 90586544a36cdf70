// Package ctrdtest starts real containerd daemons for tests: Debian's
// containerd 1.6 (/usr/bin/containerd with its own runc v2 shim) and
// containerd 2.x built by scripts/deps.sh into
// $NSREL_TOOLS/containerd-v2.4.2. Each daemon gets a private, short
// directory (the unix socket path limit is 108 bytes) holding its socket,
// --root, --state, config and runc root, so nothing lands in the host's
// /run/containerd or /var/lib/containerd and tests can run in parallel.
//
// It also builds a busybox OCI image layout tar from /bin/busybox
// (busybox-static) and imports it, and runs containers with the v2 Go
// client. When a test ends, its containers are killed and deleted, the
// daemon is stopped, leftover shims and container processes are killed,
// leftover mounts under the daemon directory are detached and the
// directory is removed.
//
// Missing prerequisites go through [nstest.Require]: a skip locally, a
// failure when CI=true.
package ctrdtest
