// Package linuxonly stops a build for any other system than Linux with
// one clear message. nsrel asks the Linux kernel about namespaces
// (ioctl_ns(2)), pins processes with pidfds and reads /proc: there is
// nothing it could do elsewhere. The packages that would otherwise be the
// first to fail, with undefined names from golang.org/x/sys/unix, import
// this one (import _), so a build for another GOOS stops here, before
// anything that depends on them is compiled.
package linuxonly
