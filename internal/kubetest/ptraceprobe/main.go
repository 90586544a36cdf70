// Command ptraceprobe tries, from inside the node agent's container
// (TestNodeAgent runs it with crictl exec), the ways to reach into
// another process: ptraceprobe PID FILE prints one line per way, its
// name and "ok" or the error. First the calls (ptrace, process_vm_readv,
// process_vm_writev, pidfd_getfd, process_madvise), then two files of
// /proc that the same ptrace access check guards: proc_mem opens the
// process's memory for writing, and proc_root opens FILE, a path in the
// process's root, for writing. Nothing it does changes the target:
// ptrace seizes without stopping it (and this process's exit detaches
// it), process_vm_readv reads 8 bytes of its first mapping,
// process_vm_writev writes nothing (no iovec: only the seccomp filter
// can refuse it), pidfd_getfd copies its descriptor 0 and closes the
// copy, process_madvise advises on none of this process's own memory,
// and the files are opened and closed without a write.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: ptraceprobe PID FILE")
		os.Exit(2)
	}
	pid, err := strconv.Atoi(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "ptraceprobe:", err)
		os.Exit(2)
	}
	report := func(name string, err error) {
		if err != nil {
			fmt.Println(name, err)
		} else {
			fmt.Println(name, "ok")
		}
	}

	report("ptrace", unix.PtraceSeize(pid))

	addr, err := firstMapping(pid)
	if err == nil {
		buf := make([]byte, 8)
		local := unix.Iovec{Base: &buf[0]}
		local.SetLen(len(buf))
		_, err = unix.ProcessVMReadv(pid, []unix.Iovec{local}, []unix.RemoteIovec{{Base: addr, Len: len(buf)}}, 0)
	}
	report("process_vm_readv", err)

	_, err = unix.ProcessVMWritev(pid, nil, nil, 0)
	report("process_vm_writev", err)

	pidfd, err := unix.PidfdOpen(pid, 0)
	if err == nil {
		var fd int
		fd, err = unix.PidfdGetfd(pidfd, 0, 0)
		if err == nil {
			unix.Close(fd)
		}
		unix.Close(pidfd)
	}
	report("pidfd_getfd", err)

	self, err := unix.PidfdOpen(os.Getpid(), 0)
	if err == nil {
		_, _, errno := unix.Syscall6(unix.SYS_PROCESS_MADVISE, uintptr(self), 0, 0, unix.MADV_COLD, 0, 0)
		if errno != 0 {
			err = errno
		}
		unix.Close(self)
	}
	report("process_madvise", err)

	for _, f := range []struct{ name, path string }{
		{"proc_mem", fmt.Sprintf("/proc/%d/mem", pid)},
		{"proc_root", fmt.Sprintf("/proc/%d/root%s", pid, os.Args[2])},
	} {
		fd, err := unix.Open(f.path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		report(f.name, err)
	}
}

// firstMapping returns the start of the first mapping of process pid.
func firstMapping(pid int) (uintptr, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, fmt.Errorf("/proc/%d/maps: empty: %v", pid, sc.Err())
	}
	start, _, _ := strings.Cut(sc.Text(), "-")
	a, err := strconv.ParseUint(start, 16, 64)
	return uintptr(a), err
}
