//go:build linux && (386 || arm)

package discover

import "golang.org/x/sys/unix"

const sysFstatat = unix.SYS_FSTATAT64
