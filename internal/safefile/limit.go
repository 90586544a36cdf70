package safefile

import (
	"fmt"
	"math"

	"golang.org/x/sys/unix"
)

// FileSizeLimit returns the file size limit of this process (the soft
// RLIMIT_FSIZE: a runtime's or a unit's LimitFSIZE=), -1 for none. It is
// read at every call: a long-lived process's limit may be changed from
// outside (prlimit --pid).
func FileSizeLimit() int64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &rl); err != nil || rl.Cur == unix.RLIM_INFINITY || rl.Cur > math.MaxInt64 {
		return -1
	}
	return int64(rl.Cur)
}

// RoomFor fails when n bytes written at byte off of a file would pass
// the file size limit: the write would stop at the limit and leave part
// of a line (fallocate(2) does not enforce the limit).
func RoomFor(off int64, n int) error {
	return RoomUnder(FileSizeLimit(), off, n)
}

// RoomUnder is [RoomFor] with the limit read before ([FileSizeLimit]),
// for a caller that reads it once for several checks.
func RoomUnder(lim int64, off int64, n int) error {
	if lim >= 0 && off+int64(n) > lim {
		return fmt.Errorf("the file size limit of this process (RLIMIT_FSIZE, %d bytes) leaves no room for %d bytes at byte %d: %w", lim, n, off, unix.EFBIG)
	}
	return nil
}
