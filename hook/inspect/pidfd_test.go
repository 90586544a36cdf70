package inspect_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/nstest"
)

// kernelAtLeast reports whether the running kernel is major.minor or newer.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(unix.ByteSliceToString(u.Release[:]), ".", 3)
	ma, _ := strconv.Atoi(parts[0])
	mi, _ := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return ma > major || ma == major && mi >= minor
}

// statusIDs reads the Uid: or Gid: line of /proc/PID/status (real,
// effective, saved, filesystem).
func statusIDs(t *testing.T, pid int, key string) [4]uint32 {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) == 5 && f[0] == key+":" {
			var ids [4]uint32
			for i := range ids {
				n, _ := strconv.ParseUint(f[i+1], 10, 32)
				ids[i] = uint32(n)
			}
			return ids
		}
	}
	t.Fatalf("no %s: line", key)
	return [4]uint32{}
}

// TestPidfdAndProcPathsAgree inspects a process in nested user and PID
// namespaces both ways (the pidfd ioctls, and the /proc fallback of
// kernels before 6.11, forced) and checks the same chains come out; the
// pidfd way also records the process's credentials, equal to what
// /proc/PID/status says.
func TestPidfdAndProcPathsAgree(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.NoFDLeak(t)
	p := nstest.PIDChain(t, 2)
	pfd, err := unix.PidfdOpen(p.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pfd)
	via, err := inspect.PinnedViaPidfd(pfd, p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if want := kernelAtLeast(t, 6, 11); via != want {
		t.Errorf("pidfd ioctls used: %v, want %v on this kernel", via, want)
	}

	withIoctls, err := inspect.Process(p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	restore := inspect.ForceProcFallback()
	viaProc, err := inspect.PinnedViaPidfd(pfd, p.Pid)
	if err != nil || viaProc {
		t.Errorf("forced fallback: pidfd used %v, %v", viaProc, err)
	}
	fallback, err := inspect.Process(p.Pid)
	restore()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fallback.User, withIoctls.User); diff != "" {
		t.Errorf("user chains differ (-proc +pidfd):\n%s", diff)
	}
	if diff := cmp.Diff(fallback.PIDNS, withIoctls.PIDNS); diff != "" {
		t.Errorf("PID chains differ (-proc +pidfd):\n%s", diff)
	}
	if len(withIoctls.User) != 3 || len(withIoctls.PIDNS) != 3 {
		t.Errorf("chains of %d user and %d PID levels, want 3 and 3", len(withIoctls.User), len(withIoctls.PIDNS))
	}
	if fallback.Creds != nil {
		t.Errorf("the /proc fallback recorded creds %+v", fallback.Creds)
	}
	if !kernelAtLeast(t, 6, 13) {
		return
	}
	c := withIoctls.Creds
	if c == nil {
		t.Fatal("no creds on a kernel with PIDFD_GET_INFO")
	}
	uids, gids := statusIDs(t, p.Pid, "Uid"), statusIDs(t, p.Pid, "Gid")
	if got := [4]uint32{c.UID, c.EUID, c.SUID, c.FSUID}; got != uids {
		t.Errorf("creds UIDs %v, /proc status %v", got, uids)
	}
	if got := [4]uint32{c.GID, c.EGID, c.SGID, c.FSGID}; got != gids {
		t.Errorf("creds GIDs %v, /proc status %v", got, gids)
	}
	var st unix.Stat_t
	cg, err := os.ReadFile("/proc/" + strconv.Itoa(p.Pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	// cgroup v2: "0::/PATH"; its directory's inode is the cgroup ID.
	if path, ok := strings.CutPrefix(strings.TrimSpace(string(cg)), "0::"); ok && unix.Stat("/sys/fs/cgroup"+path, &st) == nil {
		if c.CgroupID == nil || *c.CgroupID != st.Ino {
			t.Errorf("cgroup ID %v, /sys/fs/cgroup%s has inode %d", c.CgroupID, path, st.Ino)
		}
	}
}

// TestZombieGoneBothWays: a process that has exited and not been reaped
// yet (a zombie) is gone to both ways of inspecting it: the pidfd
// ioctls say so, and the /proc fallback, whose ns links a zombie keeps,
// says the same (the pidfd polls readable for it).
func TestZombieGoneBothWays(t *testing.T) {
	nstest.RequireRoot(t)
	cmd := exec.Command(nstest.RequireCmd(t, "sleep"), "infinity")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	cmd.Process.Kill()
	nstest.WaitStateZ(t, cmd.Process.Pid)
	if _, err := inspect.Process(cmd.Process.Pid); !errors.Is(err, inspect.ErrGone) {
		t.Errorf("pidfd ioctls: %v; want it gone", err)
	}
	restore := inspect.ForceProcFallback()
	_, err := inspect.Process(cmd.Process.Pid)
	restore()
	if !errors.Is(err, inspect.ErrGone) {
		t.Errorf("/proc fallback: %v; want it gone", err)
	}
}

// TestLeaderExitedInspected: a process whose thread-group leader exited
// while another thread runs (pthread_exit(3) in main) still runs; its
// stat says Z and the leader's pidfd has no namespaces left, so it was
// taken for gone ("process exited during inspection") and its container
// recorded without namespaces. Both ways, its namespaces are read now:
// through a live thread's pidfd, and through /proc.
func TestLeaderExitedInspected(t *testing.T) {
	nstest.RequireRoot(t)
	base := int(nstest.HostIDBase(t) + 600_000)
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: base, Size: 65536}}
	pid := nstest.StartLeaderExited(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID, UidMappings: m, GidMappings: m})
	for _, fallback := range []bool{false, true} {
		restore := func() {}
		if fallback {
			restore = inspect.ForceProcFallback()
		}
		a, err := inspect.Process(pid)
		restore()
		if err != nil {
			t.Errorf("fallback %v: %v", fallback, err)
			continue
		}
		if a.UserDepth() != 1 || a.PIDDepth() != 1 || a.PID != pid {
			t.Errorf("fallback %v: user depth %d, PID depth %d, pid %d", fallback, a.UserDepth(), a.PIDDepth(), a.PID)
		}
		if len(a.Maps) == 0 || len(a.Maps[0].HostUIDMap) == 0 || a.Maps[0].HostUIDMap[0].Outside != uint32(base) {
			t.Errorf("fallback %v: maps %+v", fallback, a.Maps)
		}
		// Creating a user namespace changes no credential: the threads
		// run as root of the host still.
		if !fallback && (a.Creds == nil || a.Creds.EUID != 0) {
			t.Errorf("creds %+v, want euid 0", a.Creds)
		}
	}
}

// TestLeaderExitedCreds: a process whose leader took another UID and
// exited runs with its live threads' credentials: the record has those,
// not the exited leader's (the namespaces are a live thread's too).
func TestLeaderExitedCreds(t *testing.T) {
	nstest.RequireRoot(t)
	pid := nstest.StartLeaderExitedAs(t, nil, 1234)
	a, err := inspect.Process(pid)
	if err != nil {
		t.Fatal(err)
	}
	if a.Creds == nil || a.Creds.UID != 0 || a.Creds.EUID != 0 || a.Creds.SUID != 0 {
		t.Errorf("creds %+v; want the running threads' (uid 0), not the exited leader's (1234)", a.Creds)
	}
}

// TestAlive: the liveness check polls the pidfd: a running process is
// alive, a zombie and a reaped process are gone, and a descriptor number
// nothing holds is an error, not a process gone.
func TestAlive(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := inspect.Alive(fd, pid); err != nil {
		t.Fatalf("running: %v", err)
	}
	cmd.Process.Kill()
	var si unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &si, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if err := inspect.Alive(fd, pid); !errors.Is(err, inspect.ErrGone) {
		t.Errorf("zombie: %v", err)
	}
	cmd.Wait()
	if err := inspect.Alive(fd, pid); !errors.Is(err, inspect.ErrGone) {
		t.Errorf("reaped: %v", err)
	}
	// A descriptor number nothing holds (poll says POLLNVAL).
	if err := inspect.Alive(987654, os.Getpid()); err == nil || errors.Is(err, inspect.ErrGone) {
		t.Errorf("no descriptor: %v, want an error other than gone", err)
	}
}

// TestThreadIDNotAProcess: a state naming a thread's ID (not its
// process's) is refused saying so, not "no such file or directory".
func TestThreadIDNotAProcess(t *testing.T) {
	pid := nstest.StartLeaderExited(t, nil)
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	tid := 0
	for _, e := range ents {
		if n, _ := strconv.Atoi(e.Name()); n != pid {
			tid = n
			break
		}
	}
	if tid == 0 {
		t.Fatalf("process %d has no thread but its leader", pid)
	}
	_, err = inspect.Process(tid)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("inspect: pid %d: not a process but a thread of process %d (pidfd_open: ", tid, pid)) {
		t.Errorf("inspect of thread %d of %d: %v", tid, pid, err)
	}
}

// TestThreadChurnInspected: a process whose main thread exited and that
// keeps one other thread at a time running, each starting its successor
// and exiting, was taken for exited about a quarter of the time (the
// one thread listed had exited when it was asked), and its mount table
// and held IDs were not read (the leader's mountinfo says EINVAL): at
// poststart, a process that moved to another user namespace was
// recorded as gone, and host_root_unmapped refused one that runs so.
// Each is now read from a thread that runs, the next when one exits.
func TestThreadChurnInspected(t *testing.T) {
	nstest.RequireRoot(t)
	base := int(nstest.HostIDBase(t) + 650_000)
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: base, Size: 65536}}
	c := nstest.StartThreadChurn(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m, Credential: &syscall.Credential{}}, false)
	userNS := nstest.Ino(t, c.Pid, "user")
	c.Churn(t)
	for i := range 200 {
		a, err := inspect.Process(c.Pid)
		if err != nil {
			t.Fatalf("inspection %d of a process that runs: %v", i, err)
		}
		if a.User[0].Ino != userNS || a.Creds == nil || a.Creds.EUID != uint32(base) {
			t.Fatalf("inspection %d: user namespace %d (want %d), creds %+v (want euid %d)", i, a.User[0].Ino, userNS, a.Creds, base)
		}
		held, err := inspect.ReadHeld(c.Pid)
		if err != nil || held.UIDs[0] != uint32(base) {
			t.Fatalf("held IDs %d: %+v, %v", i, held, err)
		}
		if _, err := inspect.ReadIDMapped(c.Pid); err != nil {
			t.Fatalf("idmapped mounts %d: %v", i, err)
		}
	}
}

// TestTracedLastThreadGone: a process whose main thread exited and whose
// last thread exited while traced (a zombie until its tracer reaps it,
// which keeps the process's thread count at 2) has exited whole: it is
// gone at once, not after a thousand threads asked (30 to 40 ms, each
// of the inspection's reads, and an error that is not "gone"). So is a
// process that exited whole before its mount table was read (a zombie's
// says EINVAL, not that it is gone). And the IDs a process whose main
// thread alone exited holds are those of the threads that run, not the
// exited leader's.
func TestTracedLastThreadGone(t *testing.T) {
	nstest.RequireRoot(t)
	pid, tid, exit := nstest.StartLastThread(t)
	traced, reaped := make(chan error), make(chan error)
	done := make(chan struct{})
	go func() {
		// The tracer is this locked thread; it reaps the zombie thread
		// at the end (and ends with the goroutine).
		runtime.LockOSThread()
		err := unix.PtraceSeize(tid)
		traced <- err
		if err != nil {
			return
		}
		<-done
		var ws unix.WaitStatus
		_, err = unix.Wait4(tid, &ws, unix.WALL, nil)
		reaped <- err
	}()
	if err := <-traced; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Its thread must have exited to be reaped: if the test ended
		// before, it is killed.
		syscall.Kill(pid, syscall.SIGKILL)
		close(done)
		if err := <-reaped; err != nil {
			t.Errorf("reaping the traced thread: %v", err)
		}
	})
	if err := exit(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if nstest.TaskStateZ(pid, tid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d: not a zombie after 10 s", tid)
		}
	}
	for name, read := range map[string]func() error{
		"Process":      func() error { _, err := inspect.Process(pid); return err },
		"ReadHeld":     func() error { _, err := inspect.ReadHeld(pid); return err },
		"ReadIDMapped": func() error { _, err := inspect.ReadIDMapped(pid); return err },
	} {
		if err := read(); !errors.Is(err, inspect.ErrGone) {
			t.Errorf("%s of a process whose threads all exited: %v, want gone", name, err)
		}
	}

	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	nstest.WaitStateZ(t, cmd.Process.Pid)
	if _, err := inspect.ReadIDMapped(cmd.Process.Pid); !errors.Is(err, inspect.ErrGone) {
		t.Errorf("ReadIDMapped of a zombie: %v, want gone", err)
	}

	held, err := inspect.ReadHeld(nstest.StartLeaderExitedAs(t, nil, 1234))
	if err != nil || held.UIDs != [4]uint32{} {
		t.Errorf("held IDs %+v, %v; want the running threads' (UID 0), not the exited leader's (1234)", held, err)
	}
}

// TestIDMappedLeaderExited: the idmapped mounts of a process whose main
// thread exited, in a mount namespace of its own, are read, maps and
// all, from a thread that runs (the leader's mountinfo and mount
// namespace are gone: EINVAL, ENOENT).
func TestIDMappedLeaderExited(t *testing.T) {
	nstest.RequireRoot(t)
	dir := nstest.PrivateDir(t)
	src, dst := dir+"/src", dir+"/dst"
	nstest.Mkdirs(t, 0o755, src, dst)
	pid := nstest.StartLeaderExited(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS})
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var thread string
	for _, e := range ents {
		if e.Name() != strconv.Itoa(pid) {
			thread = e.Name()
		}
	}
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	nstest.IDMappedMountInNS(t, fmt.Sprintf("/proc/%d/task/%s/ns/mnt", pid, thread), src, dst, m, m)
	got, err := inspect.ReadIDMapped(pid)
	want := []audit.IDMappedMount{{Point: dst, UIDMap: []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}}, GIDMap: []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}}}}
	if err != nil || !cmp.Equal(got, want) {
		t.Errorf("ReadIDMapped = %+v, %v; want %+v", got, err, want)
	}
}

// TestTracedChurnNotGone: a process whose main thread exited and whose
// one running thread at a time churns, traced by a process of its own
// that leaves the threads that exit zombies, lists many zombies and,
// often, not its running thread (started after the listing, while the
// one listed exits): three such listings were taken for an exited
// process (8 of 9 inspections said gone: at poststart nothing would be
// judged). Only three listings of the same zombies, and no new thread,
// say so now.
func TestTracedChurnNotGone(t *testing.T) {
	nstest.RequireRoot(t)
	pid := nstest.StartTracedChurn(t, 0)
	for i := range 30 {
		for name, read := range map[string]func() error{
			"Process":      func() error { _, err := inspect.Process(pid); return err },
			"ReadHeld":     func() error { _, err := inspect.ReadHeld(pid); return err },
			"ReadIDMapped": func() error { _, err := inspect.ReadIDMapped(pid); return err },
		} {
			if err := read(); err != nil {
				t.Fatalf("%s %d of a process that runs: %v", name, i, err)
			}
		}
	}
}

// TestLeaderRunsAgain: a thread that execs becomes its process's leader,
// of the leader's ID: a process whose main thread had exited, met on the
// way that asks its other threads, runs with its leader again, which
// the thread reads skipped (a thousand tries and an error: a review saw
// 81 failed inspections of 150 processes whose thread execs). The
// leader answers now.
func TestLeaderRunsAgain(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.Start(t, nil, nstest.RequireCmd(t, "sleep"), "infinity")
	var read string
	if err := inspect.InLiveThread(p.Pid, func(dir string, _ int) error { read = dir; return nil }); err != nil || read != fmt.Sprintf("/proc/%d/task/%d", p.Pid, p.Pid) {
		t.Errorf("InLiveThread: %v, read %q; want the leader's", err, read)
	}
	user, pidNS, _, err := inspect.ThreadNamespaces(p.Pid)
	if err != nil {
		t.Fatalf("ThreadNamespaces: %v", err)
	}
	user.Close()
	pidNS.Close()
}

// TestManyZombieThreads: a process whose main thread exited and whose
// tracer (its own) holds 8,000 of its exited threads as zombies, listed
// before the one that runs: the reads read every zombie's stat in name
// order (os.ReadDir sorts) before the running thread, which had exited
// by then: an error every time, 0.3 to 0.5 s each. And a process whose
// threads all exited, 2,000 zombies: three listings did not fit in the
// reads' 200 ms, and it was not taken for exited (and then the deadline
// cut each listing after the first short, under load: a CI run). Each is
// read right now: the threads newest first, in the kernel's order, and
// a zombie's stat once per read.
func TestManyZombieThreads(t *testing.T) {
	nstest.RequireRoot(t)
	const held = 8000
	threads := func(pid int) int {
		v, _ := inspect.StatusField(pid, "Threads")
		n, _ := strconv.Atoi(v)
		return n
	}
	reads := map[string]func(pid int) error{
		"Process":      func(pid int) error { _, err := inspect.Process(pid); return err },
		"ReadHeld":     func(pid int) error { _, err := inspect.ReadHeld(pid); return err },
		"ReadIDMapped": func(pid int) error { _, err := inspect.ReadIDMapped(pid); return err },
	}
	t.Run("runs", func(t *testing.T) {
		pid := nstest.StartTracedChurn(t, held)
		for deadline := time.Now().Add(time.Minute); threads(pid) <= held; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d threads after a minute, want more than %d", threads(pid), held)
			}
		}
		for name, read := range reads {
			for i := range 3 {
				if err := read(pid); err != nil {
					t.Errorf("%s %d of a process that runs: %v", name, i, err)
				}
			}
		}
	})
	t.Run("exited", func(t *testing.T) {
		// Fewer: three listings of them, each zombie's stat read once,
		// within the reads' 200 ms on a loaded machine.
		const held = 2000
		pid := nstest.StartTracedChurn(t, -held)
		task := fmt.Sprintf("/proc/%d/task", pid)
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
			ents, _ := os.ReadDir(task)
			zombies := 0
			for _, e := range ents {
				if tid, err := strconv.Atoi(e.Name()); err == nil && nstest.TaskStateZ(pid, tid) {
					zombies++
				}
			}
			if len(ents) > held && zombies == len(ents) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d threads, %d zombies after a minute; want all of more than %d", len(ents), zombies, held)
			}
		}
		for name, read := range reads {
			if err := read(pid); !errors.Is(err, inspect.ErrGone) {
				t.Errorf("%s of a process whose threads all exited: %v, want gone", name, err)
			}
		}
	})
}
