//go:build !linux

package linuxonly

// The build fails here, on purpose, with this sentence as its message.
const _ int = "nsrel builds only for Linux (GOOS=linux): it needs Linux namespaces, ioctl_ns(2), pidfds and /proc"
