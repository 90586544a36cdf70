package discover

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

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
	} {
		if got := tc.m.Notice(); got != tc.want {
			t.Errorf("Notice() = %q, want %q", got, tc.want)
		}
	}
	m := &Model{OutOfFDs: 2, BelowFUSE: 1, Denied: Denied{Processes: 1}}
	if got, want := m.Notice(), "; ran out of file descriptors (too many open files): could not open 2 files, so namespaces, parents or owners may be missing (the scan holds every namespace it finds open; raise the limit of "; !strings.Contains(got, want) || !strings.HasSuffix(got, "; did not open 1 namespace bind mount below a FUSE mount, or an overlay that may be on one (its server could block the lookup for good)") {
		t.Errorf("Notice() = %q, want %q and then the FUSE part", got, want)
	}
}

func TestRootCovered(t *testing.T) {
	const data = "21 1 0:20 / / rw - ext4 /dev/sda rw\n" +
		"30 21 0:30 / /proc rw - proc proc rw\n" +
		"40 21 0:40 / / rw - tmpfs t rw\n" +
		"41 40 0:4 user:[7] /x rw - nsfs nsfs rw\n"
	for _, tc := range []struct {
		id   uint64
		want bool
	}{{21, true}, {40, false}, {30, false}, {99, false}} {
		if got := rootCovered([]byte(data), tc.id); got != tc.want {
			t.Errorf("rootCovered(%d) = %v, want %v", tc.id, got, tc.want)
		}
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
