package discover_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// fakeProcHelper mounts a tmpfs on /proc in its own mount namespace,
// with the files a scan looks for first (self/ns/user) and thread-self
// fd links to a FIFO, and prints what a scan says.
func fakeProcHelper() {
	fail := func(err error) {
		fmt.Println("SETUP:", err)
		os.Exit(1)
	}
	if err := unix.Mount("tmpfs", "/proc", "tmpfs", 0, ""); err != nil {
		fail(err)
	}
	for _, d := range []string{"/proc/self/ns", "/proc/thread-self/fd"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			fail(err)
		}
	}
	if err := os.WriteFile("/proc/self/ns/user", nil, 0o600); err != nil {
		fail(err)
	}
	if err := unix.Mkfifo("/proc/fifo", 0o600); err != nil {
		fail(err)
	}
	for i := range 64 {
		if err := os.Symlink("/proc/fifo", filepath.Join("/proc/thread-self/fd", fmt.Sprint(i))); err != nil {
			fail(err)
		}
	}
	m, err := discover.Discover(discover.Options{})
	if err != nil {
		fmt.Println("ERROR:", err)
		os.Exit(1)
	}
	fmt.Printf("SCANNED: %d user namespaces\n", len(m.Of(nsrel.TypeUser)))
}

// TestFakeProc scans with a tmpfs mounted on /proc: the scan must say at
// once that /proc is not procfs, not return an empty model as if the host
// had no namespaces, nor open a namespace through a fake fd link.
func TestFakeProc(t *testing.T) {
	nstest.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), "NSREL_DISCOVER_HELPER=fakeproc")
	// Go makes the new mount namespace's mounts private.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("scan with a tmpfs on /proc did not end: %s", out)
	}
	want := "ERROR: open /proc: not a proc file system (procfs)\n"
	if err == nil || string(out) != want {
		t.Errorf("scan with a tmpfs on /proc: %v, said\n%s\nwant\n%s", err, out, want)
	}
	if strings.HasPrefix(string(out), "SETUP:") {
		t.Fatal("helper could not set up the fake /proc")
	}
}

// TestForeignProc scans with the /proc of a PID namespace the scanner
// is not in (nsenter -m into a container's mount namespace alone): the
// scan said "stat /proc/self/ns/user: no such file or directory", not
// why; it says now that this /proc is another PID namespace's.
func TestForeignProc(t *testing.T) {
	nstest.RequireRoot(t)
	nsenter := nstest.RequireCmd(t, "nsenter")
	p := nstest.Sleep(t, nil, "-pf", "--mount-proc", "--kill-child")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, nsenter, "-m", "-t", fmt.Sprint(p.Pid), nstest.Tool(t, "lsuserns")).CombinedOutput()
	want := "lsuserns: stat /proc/self/ns/user: no such file: this /proc is of a PID namespace this process is not in (it has no /proc/self); enter that PID namespace too (nsenter -p), or mount a /proc of this one\n"
	if err == nil || string(out) != want {
		t.Errorf("lsuserns with another PID namespace's /proc: %v, said\n%s\nwant\n%s", err, out, want)
	}
}
