package discover

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// helperEnv, set to "1" in the environment of a process running a binary
// that links this package, makes it the mount namespace helper: see
// runHelper.
const helperEnv = "NSREL_DISCOVER_MOUNT_HELPER"

func init() {
	if os.Getenv(helperEnv) == "1" {
		runHelper()
	}
}

// runHelper is the helper process that lets the scan read a mount
// namespace no usable task is in: it joins the mount namespace open as
// its fd 3 (setns(2) with CLONE_NEWNS, on the main thread, after
// unshare(CLONE_FS), which a multi-threaded process needs), says "ok" on
// stdout and waits until stdin closes. Meanwhile the scan reads the
// namespace's mount table and opens its mount points through
// /proc/HELPER, whose root is the namespace's root. It runs in a package
// initializer, on the main thread, before the program's main; it never
// returns.
func runHelper() {
	err := unix.Unshare(unix.CLONE_FS)
	if err == nil {
		err = unix.Setns(3, unix.CLONE_NEWNS)
	}
	if err != nil {
		errno, _ := err.(unix.Errno)
		os.Stdout.WriteString("error " + strconv.Itoa(int(errno)) + "\n")
		os.Exit(1)
	}
	unix.Close(3)
	os.Stdout.WriteString("ok\n")
	var b [1]byte
	for {
		if n, err := unix.Read(0, b[:]); n <= 0 && err != unix.EINTR {
			os.Exit(0)
		}
	}
}

// mountsByHelper reads the nsfs bind mounts of the mount namespace of nd
// (pinned) through a helper process that joins it: this binary again
// (/proc/self/exe), with helperEnv set. It costs a fork and exec, about
// as much as starting the binary, and happens only for mount namespaces
// without a usable task: held by an fd or a bind mount only, or all of
// whose tasks are chrooted or gone.
func (w *worker) mountsByHelper(nd *node) error {
	fd, err := unix.FcntlInt(uintptr(nd.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return err
	}
	ns := os.NewFile(uintptr(fd), "mntns")
	defer ns.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"nsrel-mount-helper"}
	cmd.Env = []string{helperEnv + "=1"}
	cmd.ExtraFiles = []*os.File{ns}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		stdin.Close()
		return err
	}
	if err := cmd.Start(); err != nil {
		stdin.Close()
		return err
	}
	defer func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	}()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "ok\n" {
		if n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "error "))); err == nil {
			return unix.Errno(n)
		}
		return unix.ECHILD
	}
	return w.mountsOf(nd.ns.Ino, task{pid: cmd.Process.Pid}, 0)
}
