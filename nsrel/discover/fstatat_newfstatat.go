//go:build linux && (amd64 || ppc64 || ppc64le || s390x)

package discover

import "golang.org/x/sys/unix"

const sysFstatat = unix.SYS_NEWFSTATAT
