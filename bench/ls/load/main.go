package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var (
	procs  = flag.Int("procs", 2000, "total number of processes to add")
	userns = flag.Int("userns", 150, "number of user namespaces in chains")
	depth  = flag.Int("depth", 8, "maximum chain depth")
	mounts = flag.Int("mounts", 4, "user namespaces held only by a bind mount")
	fds    = flag.Int("fds", 4, "user namespaces held only by an fd")
	dir    = flag.String("dir", "", "directory for bind-mount targets (default: a new temp dir)")
	// Threads: a host has some multi-threaded daemons; the load has
	// -threads threads in processes of -per-process threads each.
	threads    = flag.Int("threads", 1000, "threads in multi-threaded processes (counted in -procs by their processes)")
	perProcess = flag.Int("per-process", 50, "threads per multi-threaded process")
	hold       = flag.Int("hold-threads", 0, "internal: be a process of this many threads that waits to be killed")
)

// loader starts and holds the load. It reaps its children in one
// goroutine on SIGCHLD and keeps no pidfd: a goroutine per child blocked
// in wait(2) would be an OS thread per child, and os.Process a pidfd per
// child, so the load generator itself would be one process with as many
// threads and fds as the load has processes (which the scans would read,
// and which at 20,000 processes exceeds the default pid_max of 32768).
type loader struct {
	pgids   []int
	alive   atomic.Int64 // children started and not yet reaped
	mounted []string
	dir     string
	count   int
}

func main() {
	flag.Parse()
	if *hold > 0 {
		holdThreads(*hold)
	}
	// Descriptors inherited from the caller must not reach the load's
	// processes (they would make their fd tables differ from run to run).
	unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	l := &loader{}
	l.reap()
	err := l.build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		l.cleanup()
		os.Exit(1)
	}
	fmt.Printf("ready %d\n", l.count)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	l.cleanup()
}

// holdThreads runs n-1 more threads, each a goroutine blocked in
// pause(2) (a goroutine in a system call keeps its thread), and waits to
// be killed.
func holdThreads(n int) {
	for i := 1; i < n; i++ {
		go pause()
	}
	pause()
}

func pause() {
	for {
		unix.Pause()
	}
}

// reap reaps every child that exits, from now on.
func (l *loader) reap() {
	sig := make(chan os.Signal, 64)
	signal.Notify(sig, syscall.SIGCHLD)
	go func() {
		for range sig {
			for {
				var ws unix.WaitStatus
				pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
				if err == unix.EINTR {
					continue
				}
				if err != nil || pid <= 0 {
					break
				}
				l.alive.Add(-1)
			}
		}
	}()
}

// start starts a command in a process group of its own, which the
// loader kills on cleanup, and returns its PID.
func (l *loader) start(name string, args []string, extra []*os.File) (int, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.ExtraFiles = extra
	l.alive.Add(1)
	if err := cmd.Start(); err != nil {
		l.alive.Add(-1)
		return 0, err
	}
	pid := cmd.Process.Pid
	cmd.Process.Release() // closes its pidfd; reap waits for it
	l.pgids = append(l.pgids, pid)
	return pid, nil
}

// waitComm waits until pid runs comm (after the unshare execs).
func waitComm(pid int, comm string) error {
	for i := 0; i < 2000; i++ {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		if strings.TrimSpace(string(b)) == comm {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("process %d never ran %s", pid, comm)
}

// leaf follows the first child of pid down to a process without children.
func leaf(pid int) int {
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		f := strings.Fields(string(b))
		if err != nil || len(f) == 0 {
			return pid
		}
		c, err := strconv.Atoi(f[0])
		if err != nil {
			return pid
		}
		pid = c
	}
}

// waitLeaf waits until the leaf below pid runs comm.
func waitLeaf(pid int, comm string) error {
	for i := 0; i < 5000; i++ {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(leaf(pid)) + "/comm")
		if strings.TrimSpace(string(b)) == comm {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("process %d: no descendant runs %s", pid, comm)
}

// chainArgs returns unshare arguments for a chain of d user namespaces,
// each also a new PID namespace (with a forked child) if pid is set.
func chainArgs(d int, pid bool) []string {
	var args []string
	for i := 0; i < d; i++ {
		if i > 0 {
			args = append(args, "unshare")
		}
		if pid {
			args = append(args, "-Urpf", "--kill-child")
		} else {
			args = append(args, "-Ur")
		}
	}
	return append(args, "sleep", "1000000")
}

func (l *loader) build() error {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		return err
	}
	// Chains of user namespaces: depth 1, 2, ..., *depth, repeated.
	made := 0
	var leaves []int
	for d := 1; made < *userns; d = d%*depth + 1 {
		if made+d > *userns {
			d = *userns - made
		}
		pid := len(leaves)%3 == 2
		p, err := l.start("unshare", chainArgs(d, pid), nil)
		if err != nil {
			return err
		}
		leaves = append(leaves, p)
		made += d
		l.count++
		if pid {
			l.count += d // the unshare parents that wait
		}
	}
	for _, p := range leaves {
		if err := waitLeaf(p, "sleep"); err != nil {
			return err
		}
	}
	// Namespaces held only by a bind mount or by an fd: make a user
	// namespace, pin it, kill its process.
	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "nsrel-load-"); err != nil {
			return err
		}
		l.dir = *dir
	}
	for i := 0; i < *mounts+*fds; i++ {
		pid, err := l.start("unshare", chainArgs(2, false), nil)
		if err != nil {
			return err
		}
		if err := waitComm(pid, "sleep"); err != nil {
			return err
		}
		nsPath := "/proc/" + strconv.Itoa(pid) + "/ns/user"
		if i < *mounts {
			target := filepath.Join(*dir, "userns-"+strconv.Itoa(i))
			if err := os.WriteFile(target, nil, 0o600); err != nil {
				return err
			}
			if err := unix.Mount(nsPath, target, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind mount %s: %w", nsPath, err)
			}
			l.mounted = append(l.mounted, target)
		} else {
			f, err := os.Open(nsPath)
			if err != nil {
				return err
			}
			_, err = l.start(sleep, []string{"1000000"}, []*os.File{f})
			f.Close()
			if err != nil {
				return err
			}
			l.count++
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
	// Multi-threaded processes, then plain processes up to the total.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for t := 0; t < *threads && l.count < *procs; t += *perProcess {
		n := min(*perProcess, *threads-t)
		if _, err := l.start(self, []string{"-hold-threads", strconv.Itoa(n)}, nil); err != nil {
			return err
		}
		l.count++
	}
	for l.count < *procs {
		if _, err := l.start(sleep, []string{"1000000"}, nil); err != nil {
			return err
		}
		l.count++
	}
	return nil
}

func (l *loader) cleanup() {
	for _, p := range l.pgids {
		syscall.Kill(-p, syscall.SIGKILL)
	}
	// Wait until they are reaped, so that the next measurement does not
	// run while the kernel tears thousands of processes down.
	deadline := time.Now().Add(30 * time.Second)
	for l.alive.Load() > 0 {
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "load: processes still running after 30s")
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, m := range l.mounted {
		unix.Unmount(m, unix.MNT_DETACH)
	}
	if l.dir != "" {
		os.RemoveAll(l.dir)
	}
}
