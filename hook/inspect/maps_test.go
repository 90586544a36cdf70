package inspect_test

import (
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
	"github.com/nsrel/nsrel/nsrel/idmap"
)

// kernelMap reads /proc/PID/FILE as a process in the user namespace of
// process in reads it (through nsenter), or as this process when in is
// 0: the kernel's own answer, independent of package idmap's reading.
func kernelMap(t *testing.T, in, pid int, file string) idmap.Map {
	t.Helper()
	var out []byte
	var err error
	path := "/proc/" + strconv.Itoa(pid) + "/" + file
	if in == 0 {
		out, err = os.ReadFile(path)
	} else {
		nsenter := nstest.RequireCmd(t, "nsenter")
		out, err = exec.Command(nsenter, "-U", "-t", strconv.Itoa(in), "cat", path).CombinedOutput()
	}
	if err != nil {
		t.Fatalf("read %s (in the user namespace of %d): %v: %s", path, in, err, out)
	}
	m, err := idmap.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestProcessMaps checks the recorded maps of a nested chain against
// what the kernel shows: the innermost level's host maps are its uid_map
// read here, its own lines are its uid_map read from its parent
// namespace, and the level in between (with a process of its own) is
// read through that process.
func TestProcessMaps(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.NoFDLeak(t)
	// Level 1 maps root to host 100000..100099; level 2, created from
	// level 1, maps 0..9 to level-1 IDs 50..59 (host 100050..100059).
	mid := nstest.Start(t, &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 100}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 100}},
		GidMappingsEnableSetgroups: true,
	}, nstest.RequireCmd(t, "sleep"), "infinity")
	leaf := nstest.NestedUserNS(t, mid.Pid, "0 50 10")
	// The scan that found the middle level's process is the caller's
	// to reuse (disjoint_from_running: one scan per decision, not two).
	live := inspect.NewLiveOnce(time.Minute)
	a, err := inspect.ProcessWith(leaf, live)
	if err != nil {
		t.Fatal(err)
	}
	if !live.Scanned() {
		t.Error("the ancestors' maps were read without the caller's scan")
	}
	// One level below the top needs no scan.
	top := inspect.NewLiveOnce(0)
	if _, err := inspect.ProcessWith(mid.Pid, top); err != nil || top.Scanned() {
		t.Errorf("one level below the top: err %v, scanned %v; want no scan", err, top.Scanned())
	}
	// A scan out of time leaves the ancestors' maps unread, with the reason.
	late, err := inspect.ProcessWith(leaf, inspect.NewLiveOnce(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if e := late.Maps[1].Error; !strings.Contains(e, "not readable") || !strings.Contains(e, "did not finish in time") {
		t.Errorf("middle level after a late scan: %q", e)
	}
	if len(a.Maps) != 3 || len(a.User) != 3 {
		t.Fatalf("maps %+v for chain %+v, want 3 levels", a.Maps, a.User)
	}
	for i := range a.User {
		if a.Maps[i].Ino != a.User[i].Ino {
			t.Errorf("level %d: maps of user:[%d], chain has user:[%d]", i, a.Maps[i].Ino, a.User[i].Ino)
		}
	}
	for _, f := range []string{"uid_map", "gid_map"} {
		host, own, midHost := a.Maps[0].HostUIDMap, a.Maps[0].UIDMap, a.Maps[1].HostUIDMap
		if f == "gid_map" {
			host, own, midHost = a.Maps[0].HostGIDMap, a.Maps[0].GIDMap, a.Maps[1].HostGIDMap
		}
		if diff := cmp.Diff(kernelMap(t, 0, leaf, f), inspect.Ranges(host)); diff != "" {
			t.Errorf("level 0 host %s (-kernel +recorded):\n%s", f, diff)
		}
		if diff := cmp.Diff(kernelMap(t, mid.Pid, leaf, f), inspect.Ranges(own)); diff != "" {
			t.Errorf("level 0 %s as its parent reads it (-kernel +recorded):\n%s", f, diff)
		}
		if diff := cmp.Diff(kernelMap(t, 0, mid.Pid, f), inspect.Ranges(midHost)); diff != "" {
			t.Errorf("level 1 %s (-kernel +recorded):\n%s", f, diff)
		}
	}
	if want := (idmap.Map{{Inside: 0, Outside: 100050, Count: 10}}); !cmp.Equal(want, inspect.Ranges(a.Maps[0].HostUIDMap)) {
		t.Errorf("composed host map %v, want %v", a.Maps[0].HostUIDMap, want)
	}
	if a.Maps[1].SetGroups != "allow" || a.Maps[0].SetGroups != "deny" {
		t.Errorf("setgroups %q %q, want deny allow", a.Maps[0].SetGroups, a.Maps[1].SetGroups)
	}
	if a.Maps[2].Error != "" || a.Maps[2].HostUIDMap[0].Count != 4294967295 {
		t.Errorf("top level %+v", a.Maps[2])
	}
}

// TestProcessMapsNoProcess checks that a level without a process says so.
func TestProcessMapsNoProcess(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.UserChain(t, 2) // the middle level's only process is unshare, replaced by the inner one
	a, err := inspect.Process(p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Maps) != 3 {
		t.Fatalf("maps %+v", a.Maps)
	}
	if a.Maps[1].Error != inspect.NoProcess || a.Maps[1].HostUIDMap != nil {
		t.Errorf("middle level %+v, want %q", a.Maps[1], inspect.NoProcess)
	}
	if a.Maps[0].Error != inspect.NoParentMaps || a.Maps[0].HostUIDMap == nil || a.Maps[0].UIDMap != nil {
		t.Errorf("inner level %+v, want host maps and %q", a.Maps[0], inspect.NoParentMaps)
	}
	if !strings.Contains(a.Maps[1].Error, "no process") {
		t.Errorf("reason %q", a.Maps[1].Error)
	}
}
