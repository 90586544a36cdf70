package discover

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/nsrel"
)

func TestParseNSMounts(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []nsMount
	}{
		{"none", "22 1 0:21 / /proc rw,nosuid - proc proc rw\n", nil},
		{"user", "42 27 0:4 user:[4026532177] /tmp/nsx rw - nsfs nsfs rw\n",
			[]nsMount{{nsrel.Name{Type: nsrel.TypeUser, Ino: 4026532177}, "/tmp/nsx", 42}}},
		{"escaped space and optional fields", "42 27 0:4 net:[4026532300] /run/a\\040b rw shared:5 master:1 - nsfs nsfs rw",
			[]nsMount{{nsrel.Name{Type: nsrel.TypeNet, Ino: 4026532300}, "/run/a b", 42}}},
		{"newline in path", "1 2 0:4 pid:[7] /x\\012y rw - nsfs nsfs rw\n",
			[]nsMount{{nsrel.Name{Type: nsrel.TypePID, Ino: 7}, "/x\ny", 1}}},
		{"bad root", "1 2 0:4 / /x rw - nsfs nsfs rw\n", nil},
		{"relative point", "1 2 0:4 user:[7] x rw - nsfs nsfs rw\n", nil},
		{"short", "1 2 0:4 - nsfs nsfs rw\n", nil},
		{"two", "1 2 0:4 user:[7] /a rw - nsfs nsfs rw\n3 4 0:5 / /b rw - ext4 /dev/x rw\n5 6 0:4 mnt:[9] /c rw - nsfs nsfs rw",
			[]nsMount{{nsrel.Name{Type: nsrel.TypeUser, Ino: 7}, "/a", 1}, {nsrel.Name{Type: nsrel.TypeMount, Ino: 9}, "/c", 5}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, nsMounts([]byte(tc.in))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseNSMounts(f *testing.F) {
	f.Add([]byte("42 27 0:4 user:[4026532177] /tmp/nsx rw - nsfs nsfs rw\n"))
	f.Add([]byte("1 2 0:4 pid:[7] /x\\012y\\134 rw a:b - nsfs nsfs rw\n\n - nsfs "))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range nsMounts(data) {
			if !m.NS.Type.Valid() || !strings.HasPrefix(m.Point, "/") {
				t.Fatalf("bad mount %+v", m)
			}
		}
	})
}

func TestParseLink(t *testing.T) {
	for _, tc := range []struct {
		in   string
		typ  string
		ino  uint64
		okay bool
	}{
		{"user:[4026531837]", "user", 4026531837, true},
		{"pid:[1]", "pid", 1, true},
		{"socket:[123]", "socket", 123, true},
		{"anon_inode:[eventfd]", "", 0, false},
		{"/dev/null", "", 0, false},
		{"user:[]", "", 0, false},
		{"user:[18446744073709551616]", "", 0, false},
		{"user:[12", "", 0, false},
		{":[1]", "", 0, false},
	} {
		typ, ino, ok := parseLink([]byte(tc.in))
		if string(typ) != tc.typ || ino != tc.ino || ok != tc.okay {
			t.Errorf("parseLink(%q) = %q, %d, %v; want %q, %d, %v", tc.in, typ, ino, ok, tc.typ, tc.ino, tc.okay)
		}
	}
}

func FuzzParseLink(f *testing.F) {
	f.Add([]byte("user:[4026531837]"))
	f.Add([]byte("x:[]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, ino, ok := parseLink(data)
		if !ok {
			return
		}
		if n, err := nsrel.ParseName(string(data)); err == nil && (n.Ino != ino || n.Type.String() != string(typ)) {
			t.Fatalf("parseLink(%q) = %q %d, ParseName = %v", data, typ, ino, n)
		}
	})
}

// TestDeniedHint: what the notice says to do depends on what was
// refused and where the caller runs: the parent of a PID namespace
// above the caller's is refused to root as well.
func TestDeniedHint(t *testing.T) {
	for _, tc := range []struct {
		d                       Denied
		initialUser, initialPID bool
		want                    string
	}{
		{Denied{Processes: 1}, false, true, "permission denied; run as root in the initial user namespace to see everything"},
		{Denied{Processes: 1}, true, true, "permission denied"},
		{Denied{PIDParents: 1}, true, false, "the kernel shows no PID namespace above the caller's; run in the initial PID namespace to see everything"},
		{Denied{PIDParents: 1, Links: 1}, false, false, "permission denied; run as root in the initial user namespace and in the initial PID namespace to see everything"},
	} {
		if got := deniedHint(tc.d, tc.initialUser, tc.initialPID); got != tc.want {
			t.Errorf("deniedHint(%+v, %v, %v) = %q, want %q", tc.d, tc.initialUser, tc.initialPID, got, tc.want)
		}
	}
}

func TestNotice(t *testing.T) {
	for _, tc := range []struct {
		d    Denied
		want string
	}{
		{Denied{}, ""},
		{Denied{Processes: 1}, "could not read the namespaces of 1 process ("},
		{Denied{Processes: 1, PIDs: []int{1}}, "could not read the namespaces of 1 process [PID 1] ("},
		{Denied{Processes: 7, PIDs: []int{1, 2, 3, 4, 5}}, "could not read the namespaces of 7 processes [PID 1 2 3 4 5 ...] ("},
		{Denied{Processes: 41, MountNS: 2}, "could not read the namespaces of 41 processes, the bind mounts of 2 mount namespaces ("},
		{Denied{FDDirs: 3, Links: 1}, "could not read the open files of 3 processes, the parent or owner of 1 namespace (outside this user namespace) ("},
		{Denied{PIDParents: 2}, "could not read the parent of 2 PID namespaces (above this PID namespace) ("},
		{Denied{Links: 1, PIDParents: 1}, "could not read the parent or owner of 1 namespace (outside this user namespace), the parent of 1 PID namespace (above this PID namespace) ("},
	} {
		m := &Model{Denied: tc.d}
		got := m.Notice()
		if !strings.HasPrefix(got, tc.want) || (tc.want == "") != (got == "") || strings.Contains(got, "\n") {
			t.Errorf("Notice(%+v) = %q, want prefix %q", tc.d, got, tc.want)
		}
	}
	for _, tc := range []struct {
		m    Model
		want string
	}{
		{Model{UnreadMounts: 1, UnreadWhy: "mount namespace helper: invalid argument"}, "could not read the bind mounts of 1 mount namespace (mount namespace helper: invalid argument)"},
		{Model{UnopenedNS: 1, UnopenedWhy: "file name too long"}, "could not open 1 namespace through the bind mounts that mount tables list (file name too long)"},
		{Model{UnopenedNS: 2, UnopenedWhy: "y", UnreadMounts: 1, UnreadWhy: "x"}, "could not read the bind mounts of 1 mount namespace (x); could not open 2 namespaces through the bind mounts that mount tables list (y, ...)"},
		{Model{UnreadMounts: 3, UnreadWhy: "x", BelowFUSE: 1}, "did not open 1 namespace bind mount below a FUSE mount, or an overlay that may be on one (its server could block the lookup for good); could not read the bind mounts of 3 mount namespaces (x, ...)"},
		{Model{SkippedSockets: 1, SkippedWhy: netInUse}, "did not ask 1 socket for its network namespace (which may be missing): net_cls or net_prio cgroups (cgroup v1) are in use, and copying a socket (pidfd_getfd) could change its class ID or priority"},
		{Model{UnopenedNS: 1, UnopenedWhy: "y", SkippedSockets: 3, SkippedWhy: "x"}, "could not open 1 namespace through the bind mounts that mount tables list (y); did not ask 3 sockets for their network namespaces (which may be missing): x"},
	} {
		if got := tc.m.Notice(); got != tc.want {
			t.Errorf("Notice() = %q, want %q", got, tc.want)
		}
	}
	m := &Model{OutOfFDs: 2, BelowFUSE: 1, Denied: Denied{Processes: 1}}
	if got, want := m.Notice(), "; ran out of file descriptors (too many open files): could not open 2 files, so namespaces, parents or owners may be missing (the scan needs descriptors for its own files and holds namespaces open while it can; raise the limit of "; !strings.Contains(got, want) || !strings.HasSuffix(got, "; did not open 1 namespace bind mount below a FUSE mount, or an overlay that may be on one (its server could block the lookup for good)") {
		t.Errorf("Notice() = %q, want %q and then the FUSE part", got, want)
	}
}

func TestRootCovered(t *testing.T) {
	const data = "21 1 0:20 / / rw - ext4 /dev/sda rw\n" +
		"30 21 0:30 / /proc rw - proc proc rw\n" +
		"40 21 0:40 / / rw - tmpfs t rw\n" +
		"41 40 0:4 user:[7] /x rw - nsfs nsfs rw\n" +
		"50 40 0:50 /sub /chroot rw - tmpfs u rw\n" +
		"x 40 0:51 / / rw - tmpfs bad rw\n" +
		"60 x 0:52 / / rw - tmpfs bad rw\n" +
		"61"
	for _, tc := range []struct {
		id            uint64
		root, covered bool
	}{{21, true, true}, {40, true, false}, {30, false, false}, {50, false, false}, {99, false, false}, {60, true, false}} {
		if root, covered := rootMounts([]byte(data), tc.id); root != tc.root || covered != tc.covered {
			t.Errorf("rootMounts(%d) = %v, %v; want %v, %v", tc.id, root, covered, tc.root, tc.covered)
		}
	}
	if n := testing.AllocsPerRun(100, func() { rootMounts([]byte(data), 40) }); n != 0 {
		t.Errorf("rootMounts allocates %v times per call, want 0", n)
	}
}

// TestParseMountsAllocs: a mount table's lines of types the scan does
// not want (most of them) cost no allocation.
func TestParseMountsAllocs(t *testing.T) {
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "%d 1 0:%d / /m/m%d rw,relatime shared:%d - tmpfs t%d rw,size=4k\n", i+100, i+100, i, i, i)
	}
	data := []byte(b.String())
	// One line of each wanted type; their allocations do not grow with
	// the table.
	data = append(data, "2000 1 0:4 user:[7] /x rw - nsfs nsfs rw\n2001 1 0:60 / /f rw - fuse.sshfs h:/ rw\n2002 1 0:61 / /o rw - overlay o rw,lowerdir=/f/l,upperdir=/u,workdir=/w\n"...)
	ns, fuse, over := parseMounts(data)
	if len(ns) != 1 || !slices.Equal(fuse, []string{"/f", "/o"}) || !slices.Equal(over, []string{"/o"}) {
		t.Fatalf("parseMounts = %v, %q, %q", ns, fuse, over)
	}
	if n := testing.AllocsPerRun(20, func() { parseMounts(data) }); n > 20 {
		t.Errorf("parseMounts of 1,003 lines allocates %v times, want at most 20", n)
	}
}

// BenchmarkLookupUsers names the owners of a host through the name
// service, as every run of the trees does once: "passwd" all in
// /etc/passwd (no getent run), "nss" with a UID the file lacks (one
// getent run; 4242 has no entry anywhere).
func BenchmarkLookupUsers(b *testing.B) {
	for _, bc := range []struct {
		name string
		uids []uint32
	}{{"passwd", []uint32{0, 65534}}, {"nss", []uint32{0, 65534, 4242}}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if users := lookupUsers("", bc.uids); users[0] != "root" {
					b.Fatalf("users %v", users)
				}
			}
		})
	}
}

// nsMounts is parseMounts's nsfs mounts.
func nsMounts(data []byte) []nsMount {
	ns, _, _ := parseMounts(data)
	return ns
}

// mountTable returns a mountinfo file of n tmpfs mounts below a root
// mount (ID 21) and a few nsfs mounts, as the scan reads one per mount
// namespace.
func mountTable(n int) []byte {
	var b strings.Builder
	b.WriteString("21 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n")
	for i := range n {
		fmt.Fprintf(&b, "%d 21 0:%d / /tmp/w/m%d rw,relatime shared:%d - tmpfs t%d rw,size=4k,inode64\n", i+100, i+100, i, i+2, i)
		if i%256 == 0 {
			fmt.Fprintf(&b, "%d 21 0:4 user:[%d] /run/ns/u%d rw - nsfs nsfs rw\n", i+5000, 4026532000+uint64(i), i)
		}
	}
	return []byte(b.String())
}

// BenchmarkMountTable checks a task's root against a mount table of
// 1,024 mounts and picks its nsfs mounts, as the scan does for every
// mount namespace it reads (go test ./nsrel/discover -run '^$' -bench
// MountTable -benchmem).
func BenchmarkMountTable(b *testing.B) {
	data := mountTable(1024)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if root, covered := rootMounts(data, 21); !root || covered {
			b.Fatal("root not found")
		}
		if ns, _, _ := parseMounts(data); len(ns) != 4 {
			b.Fatalf("%d nsfs mounts", len(ns))
		}
	}
}

func TestNetCgroupsInUse(t *testing.T) {
	const head = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n"
	for _, tc := range []struct {
		name, cgroups string
		want          bool
	}{
		// Unbound controllers count the cgroups of the unified hierarchy.
		{"unified", head + "cpu\t0\t80\t1\nnet_cls\t0\t80\t1\nnet_prio\t0\t80\t1\n", false},
		// Bound, with its root cgroup only: sockets may keep the values
		// of cgroups since removed.
		{"net_cls bound, root only", head + "cpu\t1\t6\t1\nnet_cls\t10\t1\t1\nnet_prio\t0\t5\t1\n", true},
		{"net_cls bound, a child", head + "cpu\t1\t6\t1\nnet_cls\t10\t2\t1\nnet_prio\t0\t5\t1\n", true},
		{"bound together (systemd), root only", "net_cls\t4\t1\t1\nnet_prio\t4\t1\t1\n", true},
		{"bound together (docker), children", "net_cls\t4\t3\t1\nnet_prio\t4\t3\t1\n", true},
		{"bound apart, net_prio has a child", "net_cls\t4\t1\t1\nnet_prio\t7\t2\t1\n", true},
		{"disabled (cgroup_disable=net_cls)", "net_cls\t0\t1\t0\n", false},
		{"no such controller", "cpu\t1\t6\t1\n", false},
		{"other controllers' children", "cpu\t1\t6\t1\nmemory\t4\t150\t1\nnet_cls\t0\t150\t1\n", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := netCgroupsInUse([]byte(tc.cgroups)); got != tc.want {
				t.Errorf("netCgroupsInUse = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNamesNetController(t *testing.T) {
	for _, tc := range []struct {
		name, cgroup string
		want         bool
	}{
		{"unified only", "0::/user.slice\n", false},
		{"hybrid without them", "9:name=systemd:/\n8:pids:/\n1:cpu:/\n0::/\n", false},
		{"net_cls alone, root", "10:net_cls:/\n0::/\n", true},
		{"together", "12:net_cls,net_prio:/a/b\n0::/\n", true},
		{"net_prio last", "4:cpu,net_prio:/\n", true},
		{"named like it", "3:name=net_cls:/\n", false},
		{"in a path", "1:cpu:/net_cls\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := namesNetController([]byte(tc.cgroup)); got != tc.want {
				t.Errorf("namesNetController = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestReadNetGuard: readNetGuard on a directory standing in for /proc,
// with or without cgroups (a /proc mounted with subset=pid has none) and
// thread-self/cgroup.
func TestReadNetGuard(t *testing.T) {
	const (
		rootOnly = "net_cls\t4\t1\t1\nnet_prio\t4\t1\t1\n"
		child    = "net_cls\t4\t2\t1\nnet_prio\t4\t2\t1\n"
		bound    = "4:net_cls,net_prio:/\n0::/\n"
		unbound  = "1:cpu:/\n0::/\n"
		unknown  = "cannot tell whether net_cls or net_prio cgroups (cgroup v1) are in use ("
	)
	for _, tc := range []struct {
		name, cgroups, own string // "" for no file
		want               string // the start of the reason
	}{
		{"root cgroups only", rootOnly, bound, netInUse},
		{"unbound", "net_cls\t0\t9\t1\nnet_prio\t0\t9\t1\n", unbound, ""},
		{"a child cgroup", child, bound, netInUse},
		{"subset=pid, bound", "", bound, netInUse},
		{"subset=pid, not bound", "", unbound, ""},
		{"neither file", "", "", unknown + "/proc/cgroups: no such file or directory, /proc/thread-self/cgroup: no such file or directory)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Mkdir(filepath.Join(dir, "thread-self"), 0o755); err != nil {
				t.Fatal(err)
			}
			for name, data := range map[string]string{"cgroups": tc.cgroups, "thread-self/cgroup": tc.own} {
				if data == "" {
					continue
				}
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			got := readNetGuard(fd)
			if tc.want == "" && got != "" || !strings.HasPrefix(got, tc.want) {
				t.Errorf("readNetGuard = %q, want %q...", got, tc.want)
			}
		})
	}
}
