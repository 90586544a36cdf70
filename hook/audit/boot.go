package audit

import (
	"sync"

	"golang.org/x/sys/unix"
)

// bootIDPath is the kernel's random ID of the running boot (random(4)),
// made anew at each boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

var bootID = sync.OnceValue(func() string { return readBootID(bootIDPath) })

// BootID returns the ID of the boot this process runs in, the UUID the
// kernel shows in /proc/sys/kernel/random/boot_id (what journald records
// as _BOOT_ID, with dashes), or "" when it cannot be read. It is read
// once.
func BootID() string { return bootID() }

// readBootID reads a boot ID from path: 36 characters of lower-case hex
// digits and dashes, then a newline; "" for anything else.
func readBootID(path string) string {
	// Read without os.ReadFile, which would set up the runtime's poller
	// in the hook.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	for err == unix.EINTR {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	var buf [64]byte
	n, err := unix.Read(fd, buf[:])
	for err == unix.EINTR {
		n, err = unix.Read(fd, buf[:])
	}
	if err != nil || n != 37 || buf[36] != '\n' {
		return ""
	}
	for i, c := range buf[:36] {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return ""
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		default:
			return ""
		}
	}
	return string(buf[:36])
}
