package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// value returns the raw value of key in a flat JSON object (no escapes:
// the benchmark writes the state itself).
func value(b []byte, key string) []byte {
	i := bytes.Index(b, []byte(`"`+key+`":`))
	if i < 0 {
		return nil
	}
	b = bytes.TrimLeft(b[i+len(key)+3:], " \t\n")
	if len(b) > 0 && b[0] == '"' {
		if j := bytes.IndexByte(b[1:], '"'); j >= 0 {
			return b[1 : j+1]
		}
		return nil
	}
	if j := bytes.IndexAny(b, ",}"); j >= 0 {
		return bytes.TrimSpace(b[:j])
	}
	return nil
}

func readFD(fd int, buf []byte) []byte {
	for {
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if n <= 0 || err != nil {
			return buf
		}
		buf = buf[:len(buf)+n]
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}

// walk appends inode, NS_GET_ID and (user namespaces) the owner UID of
// each level from fd to the top; it closes the descriptors it opened.
func walk(line []byte, fd int, user bool) []byte {
	for level := 0; level < 40; level++ {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			break
		}
		line = strconv.AppendUint(append(line, `{"inode":`...), st.Ino, 10)
		if id, err := unix.IoctlGetUint64(fd, unix.NS_GET_ID); err == nil {
			line = strconv.AppendUint(append(line, `,"id":`...), id, 10)
		}
		if user {
			if uid, err := unix.IoctlGetUint32(fd, unix.NS_GET_OWNER_UID); err == nil {
				line = strconv.AppendUint(append(line, `,"owner_uid":`...), uint64(uid), 10)
			}
		}
		line = append(line, "},"...)
		parent, err := unix.IoctlRetInt(fd, unix.NS_GET_PARENT)
		if level > 0 {
			unix.Close(fd)
		}
		if err != nil {
			return line
		}
		fd = parent
	}
	return line
}

func main() {
	if len(os.Args) != 2 {
		os.Stderr.WriteString("usage: floorhook LOG < state.json\n")
		os.Exit(2)
	}
	logPath := os.Args[1]
	state := readFD(0, make([]byte, 0, 4096))
	pid, _ := strconv.Atoi(string(value(state, "pid")))

	line := make([]byte, 0, 2048)
	line = append(line, `{"time":"`...)
	line = time.Now().UTC().AppendFormat(line, time.RFC3339Nano)
	line = append(append(append(line, `","id":"`...), value(state, "id")...), '"')
	if pid > 0 {
		pidfd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			os.Exit(1)
		}
		proc := "/proc/" + strconv.Itoa(pid)
		if fd, err := unix.Open(proc+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
			stat := readFD(fd, make([]byte, 0, 1024))
			unix.Close(fd)
			if i := bytes.LastIndexByte(stat, ')'); i >= 0 {
				f := bytes.Fields(stat[i+1:])
				if len(f) > 19 {
					line = append(append(line, `,"start_time":`...), f[19]...)
				}
			}
		}
		user, err1 := unix.Open(proc+"/ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		pidns, err2 := unix.Open(proc+"/ns/pid", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		// Still running: the pidfd does not poll readable.
		if n, err := unix.Poll([]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}, 0); err1 != nil || err2 != nil || err != nil || n != 0 {
			os.Exit(1)
		}
		line = walk(append(line, `,"user":[`...), user, true)
		line = walk(append(line[:len(line)-1], `],"pid":[`...), pidns, false)
		line = append(line[:len(line)-1], ']')
		unix.Close(user)
		unix.Close(pidns)
		unix.Close(pidfd)
	}

	lock, err := unix.Open(logPath+".lock", unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil || unix.Flock(lock, unix.LOCK_EX) != nil {
		os.Exit(1)
	}
	fd, err := unix.Open(logPath, unix.O_RDWR|unix.O_APPEND|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		os.Exit(1)
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		os.Exit(1)
	}
	tail := make([]byte, min(st.Size, 4096))
	if _, err := unix.Pread(fd, tail, st.Size-int64(len(tail))); err != nil {
		os.Exit(1)
	}
	prev := []byte{}
	if i := bytes.LastIndex(tail, []byte(`"hash":"`)); i >= 0 && len(tail) >= i+8+64 {
		prev = tail[i+8 : i+8+64]
	}
	line = append(append(append(line, `,"prev":"`...), prev...), '"')
	sum := sha256.Sum256(line)
	line = append(hex.AppendEncode(append(line, `,"hash":"`...), sum[:]), "\"}\n"...)
	if _, err := unix.Write(fd, line); err != nil || unix.Fdatasync(fd) != nil {
		os.Exit(1)
	}
	unix.Close(fd)
	unix.Close(lock)
}
