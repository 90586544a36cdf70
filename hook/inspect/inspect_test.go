package inspect_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
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
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/idmap"
)

func TestProcessSelf(t *testing.T) {
	nstest.NoFDLeak(t)
	a, err := inspect.Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if a.User[0].Ino != nstest.Ino(t, os.Getpid(), "user") || a.PIDNS[0].Ino != nstest.Ino(t, os.Getpid(), "pid") {
		t.Errorf("own namespaces %+v / %+v differ from /proc/self/ns", a.User[0], a.PIDNS[0])
	}
	want, err := inspect.StartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if a.StartTime != want || a.PID != os.Getpid() {
		t.Errorf("pid %d start %d, want %d %d", a.PID, a.StartTime, os.Getpid(), want)
	}
	if nstest.Ino(t, os.Getpid(), "user") == nsrel.InitialUserNSIno && nstest.Ino(t, os.Getpid(), "pid") == nsrel.InitialPIDNSIno {
		top := a.User[len(a.User)-1]
		if top.Ino != nsrel.InitialUserNSIno || a.PIDNS[len(a.PIDNS)-1].Ino != nsrel.InitialPIDNSIno {
			t.Errorf("chains do not end at the initial namespaces: %+v", a)
		}
	}
}

func TestProcessChains(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.NoFDLeak(t)
	tests := []struct {
		name              string
		start             func(t *testing.T) *nstest.Proc
		userDepth, pidDep int
	}{
		{"user depth 1", func(t *testing.T) *nstest.Proc { return nstest.UserChain(t, 1) }, 1, 0},
		{"user depth 3", func(t *testing.T) *nstest.Proc { return nstest.UserChain(t, 3) }, 3, 0},
		{"pid depth 2", func(t *testing.T) *nstest.Proc { return nstest.PIDChain(t, 2) }, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.start(t)
			a, err := inspect.Process(p.Pid)
			if err != nil {
				t.Fatal(err)
			}
			got := []int{a.UserDepth(), a.PIDDepth()}
			if d := cmp.Diff([]int{tt.userDepth, tt.pidDep}, got); d != "" {
				t.Errorf("depths (-want +got):\n%s", d)
			}
			if a.User[0].Ino != nstest.Ino(t, p.Pid, "user") || a.PIDNS[0].Ino != nstest.Ino(t, p.Pid, "pid") {
				t.Errorf("innermost namespaces differ from /proc/%d/ns", p.Pid)
			}
			// Each PID namespace is owned by the user namespace created
			// with it (unshare -Urpf): the innermost by the process's own.
			if tt.pidDep > 0 && (a.PIDNS[0].OwnerUserIno == nil || *a.PIDNS[0].OwnerUserIno != a.User[0].Ino) {
				t.Errorf("pid namespace owner %v, want %d", a.PIDNS[0].OwnerUserIno, a.User[0].Ino)
			}
			// The kernel's IDs: NS_GET_ID where supported, and equal to
			// what nsrel.ID says for the process's own namespace.
			if id, err := nsrel.ID(nsrel.Path(nstest.NSPath(p.Pid, "user"))); err == nil {
				if a.User[0].ID == nil || *a.User[0].ID != id {
					t.Errorf("user namespace id %v, want %d", a.User[0].ID, id)
				}
			} else if a.User[0].ID != nil {
				t.Errorf("id %d recorded though NS_GET_ID fails: %v", *a.User[0].ID, err)
			}
			// owner UID of a namespace created by root is 0.
			if a.User[0].OwnerUID != 0 {
				t.Errorf("owner uid %d, want 0", a.User[0].OwnerUID)
			}
		})
	}
}

func TestProcessGone(t *testing.T) {
	nstest.NoFDLeak(t)
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run /bin/true: %v", err)
	}
	_, err := inspect.Process(cmd.Process.Pid)
	if err == nil {
		// The PID was reused already; extremely unlikely, not a failure.
		t.Skip("pid reused")
	}
	if !errors.Is(err, inspect.ErrGone) {
		t.Errorf("error %v does not match ErrGone", err)
	}
	// Not there when the inspection began: it said "process exited
	// during inspection", also of a PID no process ever had.
	if !strings.Contains(err.Error(), "no such process (it exited before it could be inspected)") {
		t.Errorf("error %q; want it to say the process was not there", err)
	}
	if _, err := inspect.Process(0); err == nil {
		t.Error("pid 0 accepted")
	}
}

// TestReadPinnedExitedDuringRead: a process that exits (and is reaped)
// while its maps are read is gone, ErrGone, as everywhere else in the
// inspection: the check after the read said it had left its user
// namespace and dropped why.
func TestReadPinnedExitedDuringRead(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.UserChain(t, 1)
	if p.Pid != p.Cmd.Process.Pid {
		t.Fatalf("the sleep (%d) is not the process started (%d)", p.Pid, p.Cmd.Process.Pid)
	}
	pfd, err := unix.PidfdOpen(p.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pfd)
	want, err := nsrel.Identify(nsrel.Path(fmt.Sprintf("/proc/%d/ns/user", p.Pid)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = inspect.ReadPinnedWith(pfd, p.Pid, want, func(dir string) (idmap.Maps, error) {
		m, err := idmap.Read(dir)
		p.Cmd.Process.Kill()
		// Reaped by nstest.Start's own Wait (a second Wait would
		// block for good): /proc/PID goes with it.
		for i := 0; i < 1000; i++ {
			if _, serr := os.Stat(dir); serr != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		return m, err
	})
	if !errors.Is(err, inspect.ErrGone) {
		t.Errorf("error %v; want one matching ErrGone", err)
	}
}

// TestInPIDNSChecksUserNS: InPIDNS answers for the process found in the
// user namespace given only while it is still there; a PID whose process
// is in another (reused by a host process after the one found exited)
// is gone. Its PID namespace was taken for the process found's, and the
// host process for one that shares the container's user namespace from
// outside, refusing the container.
func TestInPIDNSChecksUserNS(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.UserChain(t, 1)
	inner, err := nsrel.Identify(nsrel.Path(fmt.Sprintf("/proc/%d/ns/user", p.Pid)))
	if err != nil {
		t.Fatal(err)
	}
	host, err := nsrel.Identify(nsrel.Path("/proc/self/ns/user"))
	if err != nil {
		t.Fatal(err)
	}
	pidNS, err := nsrel.Identify(nsrel.Path("/proc/self/ns/pid"))
	if err != nil {
		t.Fatal(err)
	}
	if in, err := inspect.InPIDNS(os.Getpid(), pidNS, host); err != nil || !in {
		t.Errorf("InPIDNS(self, its own): %v, %v; want true", in, err)
	}
	if in, err := inspect.InPIDNS(os.Getpid(), pidNS, inner); !errors.Is(err, inspect.ErrGone) {
		t.Errorf("InPIDNS(self, found in another user namespace): %v, %v; want ErrGone", in, err)
	}
}

// foreignProcEnv makes TestForeignProc, run in a PID namespace of its
// own with the host's /proc, inspect itself and print the outcome.
const foreignProcEnv = "NSREL_TEST_FOREIGN_PROC"

// TestForeignProc runs the test binary as PID 1 of a new PID namespace
// that still sees the host's /proc (unshare -p -f without
// --mount-proc): inspecting itself (PID 1 to pidfd_open, the host's init
// to /proc/1) must fail, saying why. It gave the child's namespaces with
// init's start time and no error.
func TestForeignProc(t *testing.T) {
	if os.Getenv(foreignProcEnv) != "" {
		a, err := inspect.Process(os.Getpid())
		if err != nil {
			fmt.Println("error", err)
		} else {
			fmt.Println("inspected, start time", a.StartTime)
		}
		return
	}
	nstest.RequireRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestForeignProc$")
	cmd.Env = append(os.Environ(), foreignProcEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), "error inspect: /proc is another PID namespace's (this process is PID ") {
		t.Errorf("in a PID namespace of its own with the host's /proc:\n%s\nwant an error that says /proc is another PID namespace's", out)
	}
}

func TestParseStatStartTime(t *testing.T) {
	fields := func(comm string) string {
		f := []string{"1234", "(" + comm + ")", "S"}
		for i := 4; i <= 52; i++ {
			f = append(f, strconv.Itoa(i))
		}
		return strings.Join(f, " ")
	}
	tests := []struct {
		name string
		stat string
		want uint64
		err  bool
	}{
		{"plain", fields("sleep"), 22, false},
		{"spaces and parens in comm", fields("a) (b c) 99"), 22, false},
		{"no paren", "1234 sleep S 1 2", 0, true},
		{"too short", "1 (x) S 1 2 3", 0, true},
		{"not a number", strings.Replace(fields("x"), " 22 ", " x ", 1), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := inspect.ParseStatStartTime([]byte(tt.stat))
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("got %d, %v; want %d, error %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func FuzzParseStatStartTime(f *testing.F) {
	self, _ := os.ReadFile("/proc/self/stat")
	f.Add(self)
	f.Add([]byte("1 (a) b) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, data []byte) {
		inspect.ParseStatStartTime(data) // must not panic
	})
}

// BenchmarkProcess measures inspecting a process two user and PID
// namespaces deep (the test process itself when not root).
func BenchmarkProcess(b *testing.B) {
	pid := os.Getpid()
	if os.Geteuid() == 0 {
		pid = nstest.PIDChain(b, 2).Pid
	}
	for b.Loop() {
		if _, err := inspect.Process(pid); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLiveFirstProcessExits: a user namespace whose first process found
// exits before its maps are read is read through its next process, not
// dropped as if it mapped nothing (disjoint_from_running passed a
// container whose IDs another running namespace still mapped).
func TestLiveFirstProcessExits(t *testing.T) {
	nstest.RequireRoot(t)
	link, pids, _ := churnNS(t, 3900000, 2)
	first := pids[0]
	restore := inspect.BeforeMapsRead(func(pid int) {
		if pid == first {
			killWait(t, pid)
		}
	}, nil)
	scan, err := inspect.Live(time.Time{})
	restore()
	if err != nil {
		t.Fatal(err)
	}
	l := findNS(t, scan, link)
	if l.Err != nil || l.PID != pids[1] || len(l.Maps.UID) != 1 || l.Maps.UID[0].Outside != 3900000 {
		t.Errorf("%s after its first process exited: pid %d, maps %+v, err %v; want its maps through pid %d", link, l.PID, l.Maps, l.Err, pids[1])
	}
}

// TestLiveChurningNamespace: a user namespace whose every process exits
// before its maps can be read, as one whose processes keep forking and
// exiting (each found is gone when read), cannot be checked when a
// second pass over /proc finds it again; the scan took it for gone, and
// disjoint_from_running passed a container whose IDs it mapped (a review
// got 18 of 20 such containers through). Found no more, it is gone.
func TestLiveChurningNamespace(t *testing.T) {
	nstest.RequireRoot(t)
	for _, again := range []bool{true, false} {
		t.Run(fmt.Sprintf("again=%v", again), func(t *testing.T) {
			link, pids, enter := churnNS(t, 3910000+map[bool]uint32{true: 0, false: 1000}[again], 3)
			churned := map[int]bool{}
			for _, p := range pids {
				churned[p] = true
			}
			restore := inspect.BeforeMapsRead(func(pid int) {
				if churned[pid] {
					killWait(t, pid)
				}
			}, func() {
				if again {
					churned[enter()] = true // the next one, killed in turn
				}
			})
			scan, err := inspect.Live(time.Time{})
			restore()
			if err != nil {
				t.Fatal(err)
			}
			l := findNS(t, scan, link)
			switch {
			case again && (l.Err == nil || errors.Is(l.Err, inspect.ErrGone) || !strings.Contains(l.Err.Error(), "keep forking and exiting")):
				t.Errorf("found again in the second pass: err %v; want one saying it cannot be read", l.Err)
			case !again && !errors.Is(l.Err, inspect.ErrGone):
				t.Errorf("found no more: err %v; want it gone", l.Err)
			}
		})
	}
}

// churnNS starts n processes in a new user namespace mapping 1000 IDs
// from host, the first making it, and returns the namespace's link, the
// processes and a function that starts one more in it (the namespace
// held by a descriptor meanwhile, even with no process in it).
func churnNS(t *testing.T, host uint32, n int) (string, []int, func() int) {
	t.Helper()
	nsenter, sleep := nstest.RequireCmd(t, "nsenter"), nstest.RequireCmd(t, "sleep")
	ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(host), Size: 1000}}
	first := nstest.Start(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: ids, GidMappings: ids}, sleep, "infinity")
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", first.Pid))
	if err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", first.Pid))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })
	path := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), held.Fd())
	enter := func() int {
		p := nstest.Start(t, nil, nsenter, "--user="+path, "--preserve-credentials", sleep, "infinity")
		pid := nstest.WaitLeaf(t, p.Pid, "sleep")
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid)); l != link {
			t.Fatalf("pid %d is in %s, not %s", pid, l, link)
		}
		return pid
	}
	pids := []int{first.Pid}
	for len(pids) < n {
		pids = append(pids, enter())
	}
	slices.Sort(pids)
	return link, pids, enter
}

// killWait kills process pid and waits until its namespace links are
// gone.
func killWait(t *testing.T, pid int) {
	t.Helper()
	syscall.Kill(pid, syscall.SIGKILL)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid)); err != nil {
			return
		}
	}
	t.Fatalf("pid %d still there 10 s after SIGKILL", pid)
}

// findNS returns the namespace with link from scan; it fails the test
// when the scan did not find it.
func findNS(t *testing.T, scan *inspect.Scan, link string) inspect.LiveUserNS {
	t.Helper()
	for _, l := range scan.Namespaces {
		if fmt.Sprintf("user:[%d]", l.Ident.Ino) == link {
			return l
		}
	}
	t.Fatalf("%s not found by the scan", link)
	return inspect.LiveUserNS{}
}

// TestLiveOnlyProcessLeft: the one process of a user namespace leaves it
// (unshare -U) before its maps are read, and the second pass finds the
// namespace no more: it is gone, as if the process had exited. It was
// taken for one that cannot be checked, and disjoint_from_running
// refused containers because of it.
func TestLiveOnlyProcessLeft(t *testing.T) {
	nstest.RequireRoot(t)
	ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 3920000, Size: 1000}}
	// Root of the namespace (a mapped ID), which may make one below,
	// when told (SIGUSR1); no child meanwhile, so it is the only one.
	p := nstest.Start(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: ids, GidMappings: ids, Credential: &syscall.Credential{}},
		nstest.RequireCmd(t, "sh"), "-c", `trap 'exec unshare -U sleep 1000' USR1; while :; do :; done`)
	// Until its trap is set: SIGUSR1 would kill it before.
	for deadline := time.Now().Add(10 * time.Second); !catches(p.Pid, syscall.SIGUSR1); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the shell set no trap")
		}
	}
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", p.Pid))
	if err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", p.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	restore := inspect.BeforeMapsRead(func(pid int) {
		if pid != p.Pid {
			return
		}
		syscall.Kill(pid, syscall.SIGUSR1)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid)); l != link && l != "" {
				return
			}
		}
		t.Error("the process did not leave its user namespace")
	}, nil)
	scan, err := inspect.Live(time.Time{})
	restore()
	if err != nil {
		t.Fatal(err)
	}
	if l := findNS(t, scan, link); !errors.Is(l.Err, inspect.ErrGone) || !strings.Contains(l.Err.Error(), "left") {
		t.Errorf("its only process left it: err %v; want it gone, having left", l.Err)
	}
}

// catches reports whether process pid catches signal sig (SigCgt in
// /proc/PID/status).
func catches(pid int, sig syscall.Signal) bool {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<(uint(sig)-1)) != 0
		}
	}
	return false
}

// TestDescendsFrom walks a real chain: this process, a shell, its sleep.
// Each parent started no later than its child (a later process given a
// parent's PID mid-walk breaks the chain instead of continuing it).
func TestDescendsFrom(t *testing.T) {
	sh := nstest.Start(t, nil, nstest.RequireCmd(t, "sh"), "-c", "sleep 60 & wait")
	leaf := nstest.WaitLeaf(t, sh.Pid, "sleep")
	for _, tc := range []struct {
		pid, ancestor int
		want          bool
	}{
		{leaf, sh.Pid, true},
		{leaf, os.Getpid(), true},
		{sh.Pid, leaf, false},
		{os.Getpid(), sh.Pid, false},
	} {
		if got := inspect.DescendsFrom(tc.pid, tc.ancestor); got != tc.want {
			t.Errorf("DescendsFrom(%d, %d) = %v, want %v", tc.pid, tc.ancestor, got, tc.want)
		}
	}
}

// TestReadHeld reads this process's held IDs from its status file as
// the kernel writes it, and parses the forms it may take.
func TestReadHeld(t *testing.T) {
	h, err := inspect.ReadHeld(os.Getpid())
	if err != nil || h.UIDs[0] != uint32(os.Getuid()) || h.GIDs[1] != uint32(os.Getegid()) {
		t.Fatalf("ReadHeld(self) = %+v, %v", h, err)
	}
	groups, _ := os.Getgroups()
	if len(h.Groups) != len(groups) {
		t.Errorf("groups %v, want %v", h.Groups, groups)
	}
	h, err = inspect.ParseHeld([]byte("Name:\tsleep\nUid:\t100000\t100000\t100000\t100000\nGid:\t1\t2\t3\t4\nGroups:\t0 42 \nNStgid:\t5\t1\n"))
	if err != nil || !h.HasGID(0) || !h.HasGID(42) || !h.HasGID(4) || h.HasGID(5) || !h.HasUID(100000) || h.HasUID(0) {
		t.Errorf("parse: %+v, %v", h, err)
	}
	for _, bad := range []string{"Uid:\t1\t2\t3\nGid:\t1\t2\t3\t4\nGroups:\n", "Uid:\t1\t2\t3\t4\nGid:\t1\t2\t3\t4\n", "Uid:\t1\t2\t3\tx\nGid:\t1\t2\t3\t4\nGroups:\n"} {
		if h, err := inspect.ParseHeld([]byte(bad)); err == nil {
			t.Errorf("parse %q = %+v, want an error", bad, h)
		}
	}
}

// TestParseIDMapped finds the idmapped mounts by their mount options,
// not by a mount point or a file system option that says "idmapped".
func TestParseIDMapped(t *testing.T) {
	mi := []byte(`22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
30 22 8:1 /tmp/h /run/c/rootfs/root rw,relatime,idmapped - ext4 /dev/sda1 rw
31 22 0:40 / /idmapped rw,nosuid - tmpfs tmpfs rw,idmapped
32 22 8:1 /x /a\040b rw,idmapped,nosuid - ext4 /dev/sda1 rw
`)
	if got, want := inspect.ParseIDMapped(mi), []string{"/run/c/rootfs/root", `/a\040b`}; !slices.Equal(got, want) {
		t.Errorf("ParseIDMapped = %q, want %q", got, want)
	}
}

// TestReadFactsDeadline: the mounts are read by the deadline given: past
// it, they are not read and the error says so; the IDs held are read
// all the same.
func TestReadFactsDeadline(t *testing.T) {
	start, err := inspect.StartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	a := &audit.Ancestry{PID: os.Getpid(), StartTime: start}
	inspect.ReadFacts(a, true, time.Now().Add(-time.Millisecond))
	if a.Held == nil || a.IDMapped != nil || !strings.Contains(a.FactsErr, "/mountinfo: not read in time (0 mounts by then)") || a.FactsGone {
		t.Errorf("ReadFacts past its deadline = held %v, idmapped %v, error %q, gone %v", a.Held, a.IDMapped, a.FactsErr, a.FactsGone)
	}
	b := &audit.Ancestry{PID: os.Getpid(), StartTime: start}
	if inspect.ReadFacts(b, true, time.Now().Add(time.Minute)); b.FactsErr != "" {
		t.Errorf("ReadFacts in time: error %q", b.FactsErr)
	}
}

// TestReadFacts reads a live process's held IDs and idmapped mounts once,
// and says when the process is no longer the one the ancestry was made
// of (another start time: its PID reused), as gone: a short job that
// exited before its poststart was refused for host_root_unmapped (not
// checked).
func TestReadFacts(t *testing.T) {
	start, err := inspect.StartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	a := &audit.Ancestry{PID: os.Getpid(), StartTime: start}
	inspect.ReadFacts(a, true, time.Time{})
	if !a.FactsRead || a.FactsErr != "" || a.Held == nil || a.Held.UIDs[0] != uint32(os.Getuid()) {
		t.Fatalf("ReadFacts(self) = %+v", a)
	}
	b := &audit.Ancestry{PID: os.Getpid(), StartTime: start + 1}
	inspect.ReadFacts(b, true, time.Time{})
	if !b.FactsGone || b.FactsErr != "" || b.Held != nil {
		t.Errorf("ReadFacts of a PID reused: %+v, want FactsGone, nothing read", b)
	}
	// Out of descriptors: nothing read, but the process is not gone (it
	// was taken for gone, and the rules passed it unchecked).
	free, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(free)
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = uint64(free) // the lowest free descriptor is past it
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	c := &audit.Ancestry{PID: os.Getpid(), StartTime: start}
	inspect.ReadFacts(c, true, time.Time{})
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if c.FactsGone || c.FactsErr == "" || !strings.Contains(c.FactsErr, "too many open files") {
		t.Errorf("ReadFacts out of descriptors: %+v, want FactsErr, not gone", c)
	}
}

// TestHeldChecksEachRead: the status of every process in another user
// namespace is read for the IDs it holds, and one of 65,536 groups takes
// 25 ms: Held asks stop before each read (it asked before every 64th,
// and 64 such reads ran 1.6 s past the scan's budget), and stops at its
// error.
func TestHeldChecksEachRead(t *testing.T) {
	self, err := nsrel.Identify(nsrel.Path("/proc/self/ns/user"))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for range 3 {
		pids = append(pids, nstest.Start(t, nil, nstest.RequireCmd(t, "sleep"), "infinity").Pid)
	}
	l := &inspect.LiveUserNS{Ident: self, PID: pids[0], PIDs: pids}
	calls := 0
	if _, _, err := l.Held(func() error { calls++; return nil }); err != nil || calls != 3 {
		t.Errorf("Held: %v after %d checks, want 3 checks, one a read", err, calls)
	}
	calls = 0
	stopped := errors.New("past the deadline")
	if _, _, err := l.Held(func() error {
		if calls++; calls == 2 {
			return stopped
		}
		return nil
	}); !errors.Is(err, stopped) || calls != 2 {
		t.Errorf("Held: %v after %d checks, want the second check's error", err, calls)
	}
}

// TestIDMappedNotCopies: the container's mount table at createRuntime
// is a copy of the runtime's, with the host's idmapped mounts (a
// systemd-homed home), which are not the container's; a mount of the
// container's creator stacked on such a copy, at the same point from
// the same source, shows the same line again and is the container's.
func TestIDMappedNotCopies(t *testing.T) {
	host := []byte("40 27 254:0 /home/a.homedir /home/a rw,relatime,idmapped - ext4 /dev/vda rw\n")
	copyOnly := []byte("22 1 254:0 / / rw - ext4 /dev/vda rw\n90 22 254:0 /home/a.homedir /home/a rw,relatime,idmapped - ext4 /dev/vda rw\n")
	stacked := append(append([]byte(nil), copyOnly...), "91 90 254:0 /home/a.homedir /home/a rw,relatime,idmapped - ext4 /dev/vda rw\n"...)
	own := append(append([]byte(nil), copyOnly...), "92 22 254:0 /srv /run/c/rootfs/root rw,idmapped - ext4 /dev/vda rw\n"...)
	for _, tc := range []struct {
		name string
		mine []byte
		want []string
	}{{"copy", copyOnly, nil}, {"stacked", stacked, []string{"/home/a"}}, {"own", own, []string{"/run/c/rootfs/root"}}} {
		if got := inspect.NotCopies(tc.mine, host); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestReadIDMappedMaps: an idmapped mount of the process's own (made in
// the host's mount namespace, copied into the process's private one,
// then unmounted in the host's) is read with its ID maps (statmount,
// Linux 6.15), which the policy judges; a kernel that does not tell them
// (forced) leaves them unknown and says why. The host's own idmapped
// mounts are left out still.
func TestReadIDMappedMaps(t *testing.T) {
	nstest.RequireRoot(t)
	dir := nstest.PrivateDir(t)
	// A root that mountinfo escapes (statmount does not): the two
	// compared as they are, the mount was taken for another.
	src, dst := dir+"/s r\\c", dir+"/dst"
	nstest.Mkdirs(t, 0o755, src, dst)
	uids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}, {ContainerID: 70000, HostID: 5, Size: 1}}
	gids := []syscall.SysProcIDMap{{ContainerID: 1000, HostID: 200000, Size: 10}}
	unmount := nstest.IDMappedMount(t, src, dst, uids, gids)
	copied := nstest.Sleep(t, nil, "--mount", "--propagation", "private")
	// Only the mounts at dst: another package's test may make idmapped
	// mounts of its own in this mount namespace meanwhile, copied too.
	at := func(got []audit.IDMappedMount, err error) ([]audit.IDMappedMount, error) {
		return slices.DeleteFunc(got, func(m audit.IDMappedMount) bool { return m.Point != dst }), err
	}
	if got, err := at(inspect.ReadIDMapped(copied.Pid)); err != nil || len(got) != 0 {
		t.Errorf("ReadIDMapped with the host's idmapped mount only = %+v, %v; want none", got, err)
	}
	unmount()
	want := []audit.IDMappedMount{{
		Point:  dst,
		UIDMap: []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}, {Inside: 70000, Outside: 5, Count: 1}},
		GIDMap: []audit.IDRange{{Inside: 1000, Outside: 200000, Count: 10}},
	}}
	got, err := at(inspect.ReadIDMapped(copied.Pid))
	if err != nil || !cmp.Equal(got, want) {
		t.Errorf("ReadIDMapped = %+v, %v; want %+v", got, err, want)
	}
	restore := inspect.ForceNoMountMaps()
	got, err = at(inspect.ReadIDMapped(copied.Pid))
	restore()
	if err != nil || len(got) != 1 || got[0].Point != dst || got[0].UIDMap != nil || got[0].GIDMap != nil || !strings.Contains(got[0].Err, "Linux 6.15") {
		t.Errorf("ReadIDMapped on a kernel without statmount's maps = %+v, %v; want the mount, no maps, and why", got, err)
	}
	// ReadFacts reads the mounts only when asked (held_ids_mapped alone
	// judges the IDs the process holds).
	start, err := inspect.StartTime(copied.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, mounts := range []bool{false, true} {
		a := &audit.Ancestry{PID: copied.Pid, StartTime: start}
		inspect.ReadFacts(a, mounts, time.Time{})
		if a.Held == nil || a.FactsErr != "" || a.FactsGone || (len(a.IDMapped) > 0) != mounts {
			t.Errorf("ReadFacts(mounts %v) = held %v, %d idmapped mounts, error %q, gone %v", mounts, a.Held, len(a.IDMapped), a.FactsErr, a.FactsGone)
		}
		// Asked for the mounts after a call that did not (a block with
		// held_ids_mapped alone judged first): read then. They were not,
		// and host_root_unmapped passed the idmapped mount by.
		held := a.Held
		inspect.ReadFacts(a, true, time.Time{})
		if a.Held != held || len(a.IDMapped) != 1 || a.FactsErr != "" || a.FactsGone {
			t.Errorf("ReadFacts(mounts true) after ReadFacts(mounts %v) = held %v (read again: %v), %d idmapped mounts, error %q, gone %v", mounts, a.Held, a.Held != held, len(a.IDMapped), a.FactsErr, a.FactsGone)
		}
	}
}

// TestIDMappedCopyByMaps: a host idmapped mount propagated into the
// container's mount namespace after it was made lands beside the
// creator's own idmapped mount at the same point, of the same root: the
// two lines differ only in their maps. By device, root and mount point
// alone the creator's mount (mapping the container's root to UID 0 of
// the file system) was taken for the host's copy and left out, and the
// copy's harmless maps judged. The maps tell them apart now.
func TestIDMappedCopyByMaps(t *testing.T) {
	nstest.RequireRoot(t)
	// Shared below a private mount: its mounts reach the container's
	// namespace, and no other.
	shared := nstest.PrivateDir(t) + "/shared"
	nstest.Mkdirs(t, 0o755, shared)
	if err := unix.Mount(shared, shared, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(shared, unix.MNT_DETACH) })
	if err := unix.Mount("", shared, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	src, dst := shared+"/src", shared+"/dst"
	nstest.Mkdirs(t, 0o755, src, dst)
	// The container's namespace receives the host's mounts under shared.
	c := nstest.Sleep(t, nil, "--mount", "--propagation", "slave")
	creator := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	nstest.IDMappedMountIn(t, c.Pid, src, dst, creator, creator)
	host := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 300000, Size: 65536}}
	nstest.IDMappedMount(t, src, dst, host, host)
	mi, err := os.ReadFile("/proc/" + strconv.Itoa(c.Pid) + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(mi), " "+dst+" "); n != 2 {
		t.Fatalf("the container's namespace has %d mounts at %s, want 2 (its own, the host's propagated):\n%s", n, dst, mi)
	}
	got, err := inspect.ReadIDMapped(c.Pid)
	got = slices.DeleteFunc(got, func(m audit.IDMappedMount) bool { return m.Point != dst })
	want := []audit.IDMappedMount{{Point: dst, UIDMap: []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}}, GIDMap: []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}}}}
	if err != nil || !cmp.Equal(got, want) {
		t.Errorf("ReadIDMapped = %+v, %v; want the creator's mount only, %+v", got, err, want)
	}
}

// BenchmarkReadIDMapped reads the idmapped mounts of a process with one
// of its own (and the host's copies of none): the mountinfo reads, then
// listmount and a statmount for each of its namespace's mounts until
// the mount is found, then one for its maps. Only a container with an
// idmapped mount of its own pays it.
func BenchmarkReadIDMapped(b *testing.B) {
	p, _ := idmappedProcess(b)
	for b.Loop() {
		if got, err := inspect.ReadIDMapped(p.Pid); err != nil || len(got) == 0 || got[0].UIDMap == nil {
			b.Fatalf("ReadIDMapped = %+v, %v", got, err)
		}
	}
}

// ptraceOnlyEnv makes TestReadIDMappedPtraceOnly, run with no
// capability but CAP_SYS_PTRACE, read the idmapped mounts of the
// process it names ("PID MOUNTPOINT") and print them as JSON.
const ptraceOnlyEnv = "NSREL_TEST_PTRACE_ONLY"

// TestReadIDMappedPtraceOnly: the shipped units and the node agent run
// with CAP_SYS_PTRACE alone. listmount and statmount asked about a
// mount namespace by its ID need CAP_SYS_ADMIN over it (ENOENT without);
// asked by a descriptor of it they need none: the maps are read. Asked
// by the ID, as on a kernel that does not take the descriptor, with
// every capability, they are read too.
func TestReadIDMappedPtraceOnly(t *testing.T) {
	if arg := os.Getenv(ptraceOnlyEnv); arg != "" {
		var pid int
		var point string
		if _, err := fmt.Sscan(arg, &pid, &point); err != nil {
			t.Fatal(err)
		}
		got, err := inspect.ReadIDMapped(pid)
		got = slices.DeleteFunc(got, func(m audit.IDMappedMount) bool { return m.Point != point })
		b, _ := json.Marshal(got)
		fmt.Printf("error %v\nmounts %s\n", err, b)
		return
	}
	setpriv := nstest.RequireCmd(t, "setpriv")
	copied, dst := idmappedProcess(t)
	want := []audit.IDMappedMount{{Point: dst, UIDMap: []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}}, GIDMap: []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}}}}

	cmd := exec.Command(setpriv, "--inh-caps=-all", "--bounding-set=-all,+sys_ptrace", "--", os.Args[0], "-test.run=^TestReadIDMappedPtraceOnly$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %s", ptraceOnlyEnv, copied.Pid, dst))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	b, _ := json.Marshal(want)
	if !strings.Contains(string(out), "error <nil>\nmounts "+string(b)+"\n") {
		t.Errorf("ReadIDMapped with CAP_SYS_PTRACE alone:\n%s\nwant no error and %s", out, b)
	}

	restore := inspect.ForceMountNSByID()
	got, err := inspect.ReadIDMapped(copied.Pid)
	restore()
	got = slices.DeleteFunc(got, func(m audit.IDMappedMount) bool { return m.Point != dst })
	if err != nil || !cmp.Equal(got, want) {
		t.Errorf("ReadIDMapped by the namespace's ID = %+v, %v; want %+v", got, err, want)
	}
}

// idmappedProcess starts a process in a mount namespace of its own whose
// one idmapped mount, at dst, maps 0-65535 to 100000-165535 (made in this
// process's, copied, unmounted here).
func idmappedProcess(t testing.TB) (p *nstest.Proc, dst string) {
	t.Helper()
	nstest.RequireRoot(t)
	dir := nstest.PrivateDir(t)
	src, dst := dir+"/src", dir+"/dst"
	nstest.Mkdirs(t, 0o755, src, dst)
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	unmount := nstest.IDMappedMount(t, src, dst, m, m)
	p = nstest.Sleep(t, nil, "--mount", "--propagation", "private")
	unmount()
	return p, dst
}
