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
)

type loader struct {
	cmds    []*exec.Cmd
	done    []chan struct{}
	mounted []string
	dir     string
	count   int
}

func main() {
	flag.Parse()
	// Descriptors inherited from the caller must not reach the load's
	// processes (they would make their fd tables differ from run to run).
	unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	l := &loader{}
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

func (l *loader) start(name string, args []string, extra []*os.File) (*exec.Cmd, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.ExtraFiles = extra
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	l.cmds = append(l.cmds, cmd)
	l.done = append(l.done, done)
	go func() { cmd.Wait(); close(done) }()
	return cmd, nil
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
		cmd, err := l.start("unshare", chainArgs(d, pid), nil)
		if err != nil {
			return err
		}
		leaves = append(leaves, cmd.Process.Pid)
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
		cmd, err := l.start("unshare", chainArgs(2, false), nil)
		if err != nil {
			return err
		}
		pid := cmd.Process.Pid
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
		cmd.Process.Kill()
	}
	// Plain processes up to the total.
	for l.count < *procs {
		if _, err := l.start(sleep, []string{"1000000"}, nil); err != nil {
			return err
		}
		l.count++
	}
	return nil
}

func (l *loader) cleanup() {
	for _, c := range l.cmds {
		syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	}
	// Wait until they are reaped, so that the next measurement does not
	// run while the kernel tears thousands of processes down.
	timeout := time.After(30 * time.Second)
wait:
	for _, d := range l.done {
		select {
		case <-d:
		case <-timeout:
			fmt.Fprintln(os.Stderr, "load: processes still running after 30s")
			break wait
		}
	}
	for _, m := range l.mounted {
		unix.Unmount(m, unix.MNT_DETACH)
	}
	if l.dir != "" {
		os.RemoveAll(l.dir)
	}
}
