package inspect_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
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
	if _, err := inspect.Process(0); err == nil {
		t.Error("pid 0 accepted")
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

// TestLiveFirstProcessExits: a user namespace whose lowest-PID process
// exits between the scan's pass over /proc and the read of its maps is
// read through its next process, not dropped as if it mapped nothing
// (disjoint_from_running passed a container whose IDs another running
// namespace still mapped).
func TestLiveFirstProcessExits(t *testing.T) {
	nstest.RequireRoot(t)
	nsenter := nstest.RequireCmd(t, "nsenter")
	ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 3900000, Size: 1000}}
	first := nstest.Start(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: ids, GidMappings: ids}, nstest.RequireCmd(t, "sleep"), "infinity")
	second := nstest.Start(t, nil, nsenter, "-U", "-t", strconv.Itoa(first.Pid), "--preserve-credentials", "sleep", "infinity")
	second.Pid = nstest.WaitLeaf(t, second.Pid, "sleep")
	if second.Pid < first.Pid {
		t.Skipf("PIDs wrapped: %d < %d", second.Pid, first.Pid)
	}
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", first.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if l2, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", second.Pid)); l2 != link {
		t.Fatalf("the second process is in %s, not %s", l2, link)
	}
	restore := inspect.AfterProcPass(func() {
		syscall.Kill(-first.Cmd.Process.Pid, syscall.SIGKILL)
		for {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d/ns", first.Pid)); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	scan, err := inspect.Live(time.Time{})
	restore()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range scan.Namespaces {
		if fmt.Sprintf("user:[%d]", l.Ident.Ino) != link {
			continue
		}
		if l.Err != nil || l.PID != second.Pid || len(l.Maps.UID) != 1 || l.Maps.UID[0].Outside != 3900000 {
			t.Errorf("%s after its first process exited: pid %d, maps %+v, err %v; want its maps through pid %d", link, l.PID, l.Maps, l.Err, second.Pid)
		}
		return
	}
	t.Errorf("%s not found by the scan", link)
}
