// Package safefile opens the files nsrel reads and writes where someone
// else may have put something in their place: audit logs, lock files,
// diagnostics logs, runtime state files. A symlink in the last path
// component, a FIFO (which would block the opener), a socket, a device or
// a directory is refused, and descriptors stay out of the Go runtime's
// poller, which a short-lived hook process need not set up. The same
// trust rule holds for the local sockets diagnostics and checkpoints are
// sent to ([CheckSocket]).
package safefile

import _ "github.com/nsrel/nsrel/internal/linuxonly" // stops a build for another GOOS with one message
