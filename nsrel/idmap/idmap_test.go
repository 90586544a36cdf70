package idmap_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel/idmap"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want idmap.Map
		bad  bool
	}{
		{in: "", want: nil},
		{in: "         0          0 4294967295\n", want: idmap.Map{{0, 0, 4294967295}}},
		{in: "0 100000 65536\n65536 300000 10\n", want: idmap.Map{{0, 100000, 65536}, {65536, 300000, 10}}},
		{in: "0 1 2 3\n", bad: true},
		{in: "0 1\n", bad: true},
		{in: "0 -1 2\n", bad: true},
		{in: "0 1 0\n", bad: true},
		{in: "2 0 4294967295\n", bad: true},
		{in: "0 4294967295 2\n", bad: true},
		{in: "x 1 2\n", bad: true},
	} {
		got, err := idmap.Parse([]byte(tc.in))
		if tc.bad != (err != nil) {
			t.Errorf("Parse(%q): error %v, want error %v", tc.in, err, tc.bad)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", tc.in, diff)
		}
		if err == nil {
			again, err := idmap.Parse([]byte(got.String()))
			if err != nil || !idmap.Equal(again, got) {
				t.Errorf("Parse(String()) of %v = %v, %v", got, again, err)
			}
		}
	}
}

func TestCompose(t *testing.T) {
	parent := idmap.Map{{0, 100000, 65536}}
	for _, tc := range []struct {
		name         string
		inner, outer idmap.Map
		want         idmap.Map
	}{
		{"nested in the middle", idmap.Map{{0, 1000, 100}}, parent, idmap.Map{{0, 101000, 100}}},
		{"two outer ranges", idmap.Map{{0, 10, 20}}, idmap.Map{{0, 500, 15}, {15, 900, 100}}, idmap.Map{{0, 510, 5}, {5, 900, 15}}},
		{"unmapped part dropped", idmap.Map{{0, 65530, 10}}, parent, idmap.Map{{0, 165530, 6}}},
		{"identity", idmap.Map{{0, 0, 4294967295}}, idmap.Map{{0, 0, 4294967295}}, idmap.Map{{0, 0, 4294967295}}},
		{"merged", idmap.Map{{0, 0, 5}, {5, 5, 5}}, idmap.Map{{0, 0, 4294967295}}, idmap.Map{{0, 0, 10}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, idmap.Compose(tc.inner, tc.outer)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// Relative undoes Compose.
	child := idmap.Map{{0, 1000, 100}, {100, 5000, 1}}
	host := idmap.Compose(child, parent)
	if diff := cmp.Diff(child, idmap.Relative(host, parent)); diff != "" {
		t.Errorf("Relative(Compose(child, parent), parent) (-child +got):\n%s", diff)
	}
}

func TestToOutside(t *testing.T) {
	m := idmap.Map{{Inside: 1000, Outside: 100000, Count: 1}, {Inside: 0, Outside: 200000, Count: 10}, {Inside: 4294967290, Outside: 5, Count: 5}}
	for _, tc := range []struct {
		in, out uint32
		ok      bool
	}{{0, 200000, true}, {9, 200009, true}, {10, 0, false}, {1000, 100000, true}, {1001, 0, false}, {4294967294, 9, true}, {4294967295, 0, false}} {
		if out, ok := m.ToOutside(tc.in); out != tc.out || ok != tc.ok {
			t.Errorf("ToOutside(%d) = %d, %v; want %d, %v", tc.in, out, ok, tc.out, tc.ok)
		}
	}
	if _, ok := idmap.Identity().ToOutside(4294967295); ok {
		t.Error("the identity maps 4294967295")
	}
}

func TestSpans(t *testing.T) {
	a := idmap.Map{{0, 100000, 65536}}.Host()
	b := idmap.Map{{0, 165000, 65536}, {70000, 90000, 20000}}.Host()
	if diff := cmp.Diff(idmap.Spans{{100000, 10000}, {165000, 536}}, idmap.Overlap(a, b)); diff != "" {
		t.Errorf("Overlap (-want +got):\n%s", diff)
	}
	if got := idmap.Overlap(a, idmap.Spans{{165536, 10}}); got != nil {
		t.Errorf("Overlap of adjacent spans = %v, want none", got)
	}
	if got := idmap.Outside(a, idmap.Spans{{100000, 65536}}); got != nil {
		t.Errorf("Outside(a, a) = %v", got)
	}
	if diff := cmp.Diff(idmap.Spans{{100000, 10}, {100020, 65516}}, idmap.Outside(a, idmap.Spans{{100010, 10}, {0, 5}})); diff != "" {
		t.Errorf("Outside (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(idmap.Spans{{90000, 10000}, {165536, 65000}}, idmap.Outside(b, a)); diff != "" {
		t.Errorf("Outside(b, a) (-want +got):\n%s", diff)
	}
	if s := (idmap.Spans{{0, 1}, {10, 5}}).String(); s != "0, 10-14" {
		t.Errorf("String = %q", s)
	}
}

func TestParseSubID(t *testing.T) {
	file := "# comment\nalice:100000:65536\ncontainers:200000:1000000\n\nalice:900000:10\n"
	got, err := idmap.ParseSubID([]byte(file), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(idmap.Spans{{100000, 65536}, {900000, 10}}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := idmap.ParseSubID([]byte(file), "bob"); !errors.Is(err, idmap.ErrNoEntry) {
		t.Errorf("no entry: %v", err)
	}
	if _, err := idmap.ParseSubID([]byte("alice:1\n"), "alice"); err == nil {
		t.Error("malformed line accepted")
	}
}

// TestSubIDUsers: a subordinate ID file may name a user by name or by
// UID (subuid(5)), and newuidmap(1) (shadow 4.3 and later) takes a line
// naming the caller's UID in decimal or any user whose first passwd
// entry has that UID. The user configured is resolved as getpwnam would:
// a name (an all-digit one too) by the first passwd entry of that name,
// else a number. toor and root both gave the lines of their own name and
// "0" only, not those of the other name of UID 0; a number gave the name
// of a later entry of a name whose first entry has another UID (dup).
func TestSubIDUsers(t *testing.T) {
	passwd := []byte("root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\ncontainers:x:999:999::/:/usr/sbin/nologin\n" +
		"toor:x:0:0::/root:/bin/sh\ndup:x:2000:2000::/:/bin/sh\ndup:x:2001:2001::/:/bin/sh\n4242x:x:4242:4242::/:/bin/sh\n" +
		"1234:x:3000:3000::/:/bin/sh\nbob:x:1234:1234::/:/bin/sh\n")
	file := []byte("1000:100000:65536\ncontainers:200000:65536\n0:300000:10\ntoor:400000:10\n2001:500000:10\ndup:600000:10\n" +
		"3000:700000:10\nbob:800000:10\nroot:900000:10\n")
	for _, tc := range []struct {
		user  string
		forms []string
		want  idmap.Spans
	}{
		{"alice", []string{"alice", "1000"}, idmap.Spans{{100000, 65536}}},
		{"1000", []string{"1000", "alice"}, idmap.Spans{{100000, 65536}}},
		{"01000", []string{"01000", "1000", "alice"}, idmap.Spans{{100000, 65536}}},
		{"999", []string{"999", "containers"}, idmap.Spans{{200000, 65536}}},
		{"containers", []string{"containers", "999"}, idmap.Spans{{200000, 65536}}},
		{"root", []string{"root", "0", "toor"}, idmap.Spans{{300000, 10}, {400000, 10}, {900000, 10}}},
		{"toor", []string{"toor", "0", "root"}, idmap.Spans{{300000, 10}, {400000, 10}, {900000, 10}}},
		{"0", []string{"0", "root", "toor"}, idmap.Spans{{300000, 10}, {400000, 10}, {900000, 10}}},
		{"2001", []string{"2001"}, idmap.Spans{{500000, 10}}},
		{"dup", []string{"dup", "2000"}, idmap.Spans{{600000, 10}}},
		{"1234", []string{"1234", "3000"}, idmap.Spans{{700000, 10}}},
		{"4242", []string{"4242", "4242x"}, nil},
		{"5555", []string{"5555"}, nil},
		{"bob", []string{"bob", "1234"}, idmap.Spans{{800000, 10}}},
		{"carol", []string{"carol"}, nil},
	} {
		forms := idmap.SubIDUsers(passwd, tc.user)
		if d := cmp.Diff(tc.forms, forms); d != "" {
			t.Errorf("SubIDUsers(%q) (-want +got):\n%s", tc.user, d)
		}
		got, err := idmap.ParseSubID(file, forms...)
		if tc.want == nil {
			if !errors.Is(err, idmap.ErrNoEntry) || !strings.Contains(err.Error(), strconv.Quote(tc.user)) {
				t.Errorf("%s: %v, %v; want no entry for %q", tc.user, got, err, tc.user)
			}
			continue
		}
		if d := cmp.Diff(tc.want, got); err != nil || d != "" {
			t.Errorf("%s: %v (-want +got):\n%s", tc.user, err, d)
		}
	}
	if got := idmap.SubIDUsers(nil, "alice"); !slices.Equal(got, []string{"alice"}) {
		t.Errorf("without passwd: %q", got)
	}
}

// TestRead reads the maps of real user namespaces: one unshare -Ur level
// (root mapped to the caller's UID) and a nested one, whose map read
// from here is already composed down to this namespace.
func TestRead(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.UserChain(t, 2)
	before := nstest.FDCount(t)
	dir := "/proc/" + strconv.Itoa(p.Pid)
	m, err := idmap.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := idmap.Map{{0, 0, 1}}
	if diff := cmp.Diff(want, m.UID); diff != "" {
		t.Errorf("uid_map (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, m.GID); diff != "" {
		t.Errorf("gid_map (-want +got):\n%s", diff)
	}
	if m.SetGroups != "deny" {
		t.Errorf("setgroups %q, want deny (unshare -r writes deny)", m.SetGroups)
	}
	viaDir, ino, err := idmap.ReadProc(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, viaDir); diff != "" || ino != nstest.Ino(t, p.Pid, "user") {
		t.Errorf("ReadProc: user:[%d], want user:[%d]; maps (-Read +ReadProc):\n%s", ino, nstest.Ino(t, p.Pid, "user"), diff)
	}
	if _, _, err := idmap.ReadProc("/proc/0", false); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadProc(/proc/0): %v, want ErrNotExist", err)
	}
	self, err := idmap.Read("/proc/self")
	if err != nil {
		t.Fatal(err)
	}
	if self.UID.Count() != 4294967295 || self.SetGroups != "allow" {
		t.Errorf("own maps %+v, want the initial namespace's", self)
	}
	if _, err := idmap.Read("/proc/0"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Read(/proc/0): %v, want ErrNotExist", err)
	}
	if n := nstest.FDCount(t); n != before {
		t.Errorf("fd count %d, was %d", n, before)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("0 100000 65536\n"))
	f.Add([]byte("         0          0 4294967295\n"))
	f.Add([]byte("1 2\n3 4 5 6"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := idmap.Parse(b)
		if err != nil {
			return
		}
		again, err := idmap.Parse([]byte(m.String()))
		if err != nil || !idmap.Equal(m, again) {
			t.Fatalf("round trip of %q: %v, %v", b, again, err)
		}
		if h := m.Host(); h.Count() > m.Count() {
			t.Fatalf("host spans %v hold more IDs than the map %v", h, m)
		}
		if got := idmap.Outside(m.Host(), m.Host()); got != nil {
			t.Fatalf("Outside(h, h) = %v", got)
		}
	})
}

func FuzzParseSubID(f *testing.F) {
	f.Add([]byte("containers:100000:65536\n"), "containers")
	f.Add([]byte("#x\n:1:2\n"), "")
	f.Fuzz(func(t *testing.T, b []byte, user string) {
		s, err := idmap.ParseSubID(b, user)
		if err != nil {
			return
		}
		if len(idmap.Overlap(s, s)) != len(s) {
			t.Fatalf("spans %v not normal", s)
		}
	})
}

// TestInitialAsTheKernelSays: the maps Initial assumes for the initial
// user namespace are what the kernel shows there (this test runs there,
// as the hook does).
func TestInitialAsTheKernelSays(t *testing.T) {
	self, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		t.Fatal(err)
	}
	if self != "user:[4026531837]" {
		nstest.Require(t, false, "needs to run in the initial user namespace, not %s", self)
	}
	got, err := idmap.Read("/proc/self")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(got, idmap.Initial()); d != "" {
		t.Errorf("the initial user namespace's maps (-kernel +assumed):\n%s", d)
	}
	// setgroups cannot be turned off there.
	if err := os.WriteFile("/proc/self/setgroups", []byte("deny"), 0); err == nil {
		t.Error("setgroups turned off in the initial user namespace")
	}
}

// TestReadOwn: the initial user namespace's maps without a read, any
// other's from /proc/self.
func TestReadOwn(t *testing.T) {
	if got, err := idmap.ReadOwn(true); err != nil || !cmp.Equal(got, idmap.Initial()) {
		t.Errorf("ReadOwn(true) = %+v, %v; want Initial()", got, err)
	}
	want, err := idmap.Read("/proc/self")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := idmap.ReadOwn(false); err != nil || !cmp.Equal(got, want) {
		t.Errorf("ReadOwn(false) = %+v, %v; want /proc/self's %+v", got, err, want)
	}
}
func TestParsePasswd(t *testing.T) {
	in := "root:x:0:0:root:/root:/bin/bash\n# comment\n+nis::::::\nbad line\nalice:x:1000:1000::/home/alice:/bin/sh\nalias:x:0:0::/:/bin/sh\nneg:x:-1:0::/:\nbig:x:4294967296:0::/:\n:x:5:5::/:\nnolf:x:7:7::/:"
	want := map[uint32]string{0: "root", 1000: "alice", 7: "nolf"}
	if diff := cmp.Diff(want, idmap.ParsePasswd([]byte(in))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func FuzzParsePasswd(f *testing.F) {
	f.Add([]byte("root:x:0:0:root:/root:/bin/bash\n"))
	f.Add([]byte("a:b:c\n::::\n#x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, name := range idmap.ParsePasswd(data) {
			if name == "" || strings.ContainsAny(name, ":\n") {
				t.Fatalf("bad name %q", name)
			}
		}
	})
}

// TestReadLongMap reads maps of 125 to 340 lines (the kernel's limit),
// which a process's maps may have when root writes them. A uid_map
// returns at most a page per read, whole lines only: 124 lines of 33
// bytes in the first read, which ended the file, and the lines after it
// were never checked (allowed_host_ranges, --overlaps).
func TestReadLongMap(t *testing.T) {
	nstest.RequireRoot(t)
	for _, lines := range []int{124, 125, 200, 340} {
		t.Run(strconv.Itoa(lines), func(t *testing.T) {
			cmd := exec.Command(nstest.RequireCmd(t, "sleep"), "60")
			cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			var want idmap.Map
			var text strings.Builder
			for i := range lines {
				// Short lines: a write to a map file takes less than a page.
				e := idmap.Range{Inside: uint32(i), Outside: uint32(1000 + 2*i), Count: 1}
				want = append(want, e)
				fmt.Fprintf(&text, "%d %d %d\n", e.Inside, e.Outside, e.Count)
			}
			dir := "/proc/" + strconv.Itoa(cmd.Process.Pid)
			for _, f := range []string{"uid_map", "gid_map"} {
				if err := os.WriteFile(dir+"/"+f, []byte(text.String()), 0); err != nil {
					t.Fatal(err)
				}
			}
			m, err := idmap.Read(dir)
			if err != nil {
				t.Fatal(err)
			}
			viaDir, _, err := idmap.ReadProc(dir, false)
			if err != nil {
				t.Fatal(err)
			}
			for name, got := range map[string]idmap.Map{"Read uid_map": m.UID, "Read gid_map": m.GID, "ReadProc uid_map": viaDir.UID} {
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s: %d lines, want %d (-want +got):\n%.2000s", name, len(got), lines, diff)
				}
			}
		})
	}
}

// TestOwn: a namespace's own IDs, seen from inside it, are those its
// lines map, each itself; the initial namespace's lines are the
// identity, so its own IDs are every ID (the callers count on it).
func TestOwn(t *testing.T) {
	if got := idmap.Own(nil); got != nil {
		t.Errorf("Own(nil) = %v", got)
	}
	if got := idmap.Own(idmap.Identity()); !slices.Equal(got, idmap.Identity()) {
		t.Errorf("Own(identity) = %v, want the identity", got)
	}
	in := idmap.Map{{Inside: 0, Outside: 1000, Count: 1}, {Inside: 1, Outside: 100000, Count: 65536}}
	want := idmap.Map{{Inside: 0, Outside: 0, Count: 1}, {Inside: 1, Outside: 1, Count: 65536}}
	if got := idmap.Own(in); !slices.Equal(got, want) {
		t.Errorf("Own(%v) = %v, want %v", in, got, want)
	}
}
