package idmap_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/nsrel/idmap"
)

// bigPasswd returns a passwd(5) file of just under idmap.MaxPasswdFile
// bytes (about 280,000 users): root first, an alias toor of UID 0 half
// way, containers last.
func bigPasswd(tb testing.TB) []byte {
	b := []byte("root:x:0:0:root:/root:/bin/bash\n")
	last := "containers:x:999:999::/nonexistent:/usr/sbin/nologin\n"
	for i := 0; ; i++ {
		line := fmt.Sprintf("user%06d:x:%d:%d:User %d:/home/user%06d:/bin/bash\n", i, 10000+i, 10000+i, i, i)
		if i == 140000 {
			line = "toor:x:0:0:root:/root:/bin/bash\n"
		}
		if len(b)+len(line)+len(last) > idmap.MaxPasswdFile {
			break
		}
		b = append(b, line...)
	}
	return append(b, last...)
}

// BenchmarkSubIDUsers: the forms of allowed_subid_user's value in a
// 16 MiB passwd, as each createRuntime and poststart with the rule set
// resolves them (go test ./nsrel/idmap -run - -bench SubIDUsers
// -benchmem -benchtime 20x).
func BenchmarkSubIDUsers(b *testing.B) {
	passwd := bigPasswd(b)
	for _, user := range []string{"root", "containers", "1000", "nobody"} {
		b.Run(user, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				idmap.SubIDUsers(passwd, user)
			}
		})
	}
}

// TestSubIDUsersAllocs: resolving allowed_subid_user in a 16 MiB passwd
// allocates the result, not the file's 280,000 names (it built a slice
// of every entry, about 60 MB and 517,000 allocations at each check).
func TestSubIDUsersAllocs(t *testing.T) {
	passwd := bigPasswd(t)
	for _, tc := range []struct {
		user string
		want []string
	}{
		{"root", []string{"root", "0", "toor"}},
		{"containers", []string{"containers", "999"}},
		{"10007", []string{"10007", "user000007"}},
		{"nobody", []string{"nobody"}},
	} {
		var got []string
		allocs := testing.AllocsPerRun(3, func() { got = idmap.SubIDUsers(passwd, tc.user) })
		if !slices.Equal(got, tc.want) || allocs > 10 {
			t.Errorf("SubIDUsers(%q) = %q in %.0f allocations; want %q in at most 10", tc.user, got, allocs, tc.want)
		}
	}
}

// FuzzSubIDUsers: SubIDUsers gives what its definition says, computed
// the plain way (every entry parsed first).
func FuzzSubIDUsers(f *testing.F) {
	f.Add([]byte("root:x:0:0::/:\ntoor:x:0:0::/:\ndup:x:1:1::/:\ndup:x:0:0::/:\n#c\n+n:x:0:0::/:\n7:x:0:0::/:\n"), "0")
	f.Add([]byte("a:x:01:1::\nb::1:\n:x:1:1:\nc:x:4294967296:1:\nc:x:1:1:"), "a")
	f.Fuzz(func(t *testing.T, passwd []byte, user string) {
		want := plainSubIDUsers(passwd, user)
		if got := idmap.SubIDUsers(passwd, user); !slices.Equal(got, want) {
			t.Errorf("SubIDUsers(%q, %q) = %q, want %q", passwd, user, got, want)
		}
	})
}

// plainSubIDUsers is SubIDUsers over every entry parsed first: the
// value, its UID (the first entry of that name's, else the value as a
// number) in decimal, then each name whose first entry has that UID.
func plainSubIDUsers(passwd []byte, user string) []string {
	type entry struct {
		name string
		uid  uint64
	}
	var entries []entry
	for _, line := range strings.Split(string(passwd), "\n") {
		f := strings.SplitN(line, ":", 4)
		if line == "" || strings.ContainsAny(line[:1], "#+-") || len(f) < 4 || f[0] == "" {
			continue
		}
		if uid, err := strconv.ParseUint(f[2], 10, 32); err == nil {
			entries = append(entries, entry{f[0], uid})
		}
	}
	users := []string{user}
	add := func(s string) {
		if !slices.Contains(users, s) {
			users = append(users, s)
		}
	}
	i := slices.IndexFunc(entries, func(e entry) bool { return e.name == user })
	var uid uint64
	if i >= 0 {
		uid = entries[i].uid
	} else {
		n, err := strconv.ParseUint(user, 10, 32)
		if err != nil {
			return users
		}
		uid = n
	}
	add(strconv.FormatUint(uid, 10))
	seen := map[string]bool{}
	for _, e := range entries {
		if !seen[e.name] && e.uid == uid {
			add(e.name)
		}
		seen[e.name] = true
	}
	return users
}
