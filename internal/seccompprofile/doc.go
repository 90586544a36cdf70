// Package seccompprofile builds the node agent's Localhost seccomp
// profile: containerd's RuntimeDefault for a container whose only
// capability is CAP_SYS_PTRACE ([seccomp.DefaultProfile]), without the
// calls that read, write or take over another process ([Denied]). The
// agent opens other processes' /proc/PID/ns links, a ptrace access
// check that needs the capability, but calls none of them; the profile
// keeps a compromised agent from attaching to the host's processes.
// It is for the build machine's architecture, as the image is.
package seccompprofile
