package policy_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/nsrel/idmap"
)

// mapped is an ancestry one level below the initial user namespace whose
// host maps are uid and gid.
func mapped(uid, gid []audit.IDRange) *audit.Ancestry {
	return &audit.Ancestry{
		PID:  7,
		User: []audit.UserNS{{Ino: 4026532900}, {Ino: 4026531837}},
		Maps: []audit.UserMaps{
			{Ino: 4026532900, UIDMap: uid, GIDMap: gid, HostUIDMap: uid, HostGIDMap: gid, SetGroups: "allow"},
			{Ino: 4026531837, UIDMap: []audit.IDRange{{Inside: 0, Outside: 0, Count: 4294967295}}, GIDMap: []audit.IDRange{{Inside: 0, Outside: 0, Count: 4294967295}},
				HostUIDMap: []audit.IDRange{{Inside: 0, Outside: 0, Count: 4294967295}}, HostGIDMap: []audit.IDRange{{Inside: 0, Outside: 0, Count: 4294967295}}, SetGroups: "allow"},
		},
	}
}

func rules(t *testing.T, js string) *policy.Rules {
	t.Helper()
	c, err := policy.Parse("x.json", []byte(`{"version":1,"audit_log":"/a","default":{"mode":"enforce","rules":`+js+`}}`))
	if err != nil {
		t.Fatal(err)
	}
	return &c.Default.Rules
}

// useIDFiles makes allowed_subid_user read the subordinate UIDs and GIDs
// from subuid and subgid, and users from passwd, until the test ends.
func useIDFiles(t *testing.T, subuid, subgid, passwd string) {
	oldSub, oldPasswd := policy.SubIDFiles, policy.PasswdFile
	policy.SubIDFiles, policy.PasswdFile = [2]string{subuid, subgid}, passwd
	t.Cleanup(func() { policy.SubIDFiles, policy.PasswdFile = oldSub, oldPasswd })
}

func TestMapRules(t *testing.T) {
	sub := filepath.Join(t.TempDir(), "subuid")
	if err := os.WriteFile(sub, []byte("containers:100000:65536\nother:0:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	useIDFiles(t, sub, sub, policy.PasswdFile)
	good := []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}}
	root := []audit.IDRange{{Inside: 0, Outside: 0, Count: 1}, {Inside: 1, Outside: 100001, Count: 65535}}
	for _, tc := range []struct {
		name     string
		rules    string
		uid, gid []audit.IDRange
		want     []string // rule: reason substring
	}{
		{"all pass", `{"host_root_unmapped":true,"mapped_ids_min":65536,"mapped_ids_max":65536,"allowed_subid_user":"containers","allowed_host_ranges":[[300000,10]]}`, good, good, nil},
		{"host root uid", `{"host_root_unmapped":true}`, root, good, []string{"host_root_unmapped: host UID 0 is mapped into user:[4026532900]"}},
		{"host root both", `{"host_root_unmapped":true}`, root, root, []string{"host_root_unmapped: host UID 0", "host_root_unmapped: host GID 0"}},
		{"too few", `{"mapped_ids_min":65537}`, good, good, []string{"mapped_ids_min: user:[4026532900] maps 65536 UIDs, fewer than 65537", "mapped_ids_min: user:[4026532900] maps 65536 GIDs"}},
		{"too many", `{"mapped_ids_max":10}`, good, []audit.IDRange{{Inside: 0, Outside: 5, Count: 10}}, []string{"mapped_ids_max: user:[4026532900] maps 65536 UIDs, more than 10"}},
		{"outside subid", `{"allowed_subid_user":"containers"}`, []audit.IDRange{{Inside: 0, Outside: 99990, Count: 20}}, good, []string{"allowed_host_ranges: host UIDs 99990-99999 of user:[4026532900] lie outside the allowed ranges 100000-165535"}},
		{"ranges and subid", `{"allowed_subid_user":"containers","allowed_host_ranges":[[99990,10]]}`, []audit.IDRange{{Inside: 0, Outside: 99990, Count: 20}}, good, nil},
		{"no entry", `{"allowed_subid_user":"nobody"}`, good, good, []string{"allowed_host_ranges: cannot be checked", "allowed_host_ranges: cannot be checked"}},
		{"unchecked disjoint", `{"disjoint_from_running":true}`, good, good, []string{"disjoint_from_running: cannot be checked: the running processes were not scanned"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := rules(t, tc.rules).Evaluate(mapped(tc.uid, tc.gid))
			var got []string
			for _, x := range v {
				got = append(got, x.Rule+": "+x.Reason)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("violations %q, want %q", got, tc.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("violation %q, want %q", got[i], tc.want[i])
				}
			}
		})
	}
}

// TestHostRootHeld: host_root_unmapped looked at the maps only, and a
// container whose runtime kept its caller's supplementary groups (crun's
// run.oci.keep_original_groups) held host GID 0 and passed; one holding
// host UID 0 (as with a map not written) is refused too; a container in
// the initial user namespace is refused by the maps, once.
func TestHostRootHeld(t *testing.T) {
	good := []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}}
	r := rules(t, `{"host_root_unmapped":true}`)
	for _, tc := range []struct {
		name string
		held audit.HeldIDs
		want []string
	}{
		{"mapped IDs", audit.HeldIDs{UIDs: [4]uint32{100000, 100000, 100000, 100000}, GIDs: [4]uint32{100000, 100000, 100000, 100000}, Groups: []uint32{100005}}, nil},
		{"group 0 kept", audit.HeldIDs{UIDs: [4]uint32{100000, 100000, 100000, 100000}, GIDs: [4]uint32{100000, 100000, 100000, 100000}, Groups: []uint32{0, 42}},
			[]string{"host_root_unmapped: the container's process holds host GID 0 (gid 100000 100000 100000 100000, groups 0 42), which user:[4026532900] does not map"}},
		{"saved UID 0", audit.HeldIDs{UIDs: [4]uint32{100000, 100000, 0, 100000}, GIDs: [4]uint32{100000, 100000, 100000, 100000}},
			[]string{"host_root_unmapped: the container's process holds host UID 0 (uid 100000 100000 0 100000)"}},
	} {
		a := mapped(good, good)
		a.Held = &tc.held
		var got []string
		for _, x := range r.Evaluate(a) {
			got = append(got, x.Rule+": "+x.Reason)
		}
		if len(got) != len(tc.want) || len(got) > 0 && !strings.HasPrefix(got[0], tc.want[0]) {
			t.Errorf("%s: violations %q, want %q", tc.name, got, tc.want)
		}
	}
	unread := mapped(good, good)
	unread.FactsErr = "inspect: pid 7: process exited"
	if v := r.Evaluate(unread); len(v) != 1 || !strings.HasPrefix(v[0].Reason, policy.Unchecked+": the IDs its process holds or its mounts could not be read") {
		t.Errorf("facts not read: %+v, want not checked", v)
	}
	gone := mapped(good, good)
	gone.FactsRead, gone.FactsGone = true, true
	if v := r.Evaluate(gone); len(v) != 0 {
		t.Errorf("process gone before its facts were read: %+v, want nothing to judge", v)
	}
	host := &audit.Ancestry{PID: 7, User: []audit.UserNS{{Ino: 4026531837}}, Held: &audit.HeldIDs{Groups: []uint32{0}}}
	if v := r.Evaluate(host); len(v) != 2 {
		t.Errorf("the initial user namespace: %+v, want host UID and GID 0 mapped, once each", v)
	}
}

// wantPrefixes checks that the violations got start with want's, one
// for one.
func wantPrefixes(t *testing.T, name string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: violations %q, want %q", name, got, want)
		return
	}
	for i := range got {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("%s: violation %q, want %q", name, got[i], want[i])
		}
	}
}

// TestHeldIDsMapped: host_root_unmapped judges ID 0 alone, and a
// container whose runtime kept its caller's supplementary groups (crun's
// run.oci.keep_original_groups) held host groups such as disk (6) or
// shadow (42) and passed. held_ids_mapped refuses every host ID the
// process holds that its maps do not map: one violation for the UIDs,
// one for the GIDs; not checked when they could not be read, nothing to
// judge when the process was gone before they were read.
func TestHeldIDsMapped(t *testing.T) {
	good := []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}}
	r := rules(t, `{"held_ids_mapped":true}`)
	ids := func(u, g uint32) ([4]uint32, [4]uint32) { return [4]uint32{u, u, u, u}, [4]uint32{g, g, g, g} }
	for _, tc := range []struct {
		name string
		held audit.HeldIDs
		want []string
	}{
		{"mapped", func() audit.HeldIDs {
			u, g := ids(100000, 100000)
			return audit.HeldIDs{UIDs: u, GIDs: g, Groups: []uint32{100005}}
		}(), nil},
		{"groups kept", func() audit.HeldIDs {
			u, g := ids(100000, 100000)
			return audit.HeldIDs{UIDs: u, GIDs: g, Groups: []uint32{6, 42, 100005}}
		}(),
			[]string{"held_ids_mapped: the container's process holds host GIDs 6 42 (gid 100000 100000 100000 100000, groups 6 42 100005), which user:[4026532900] does not map"}},
		{"saved UID", audit.HeldIDs{UIDs: [4]uint32{100000, 100000, 1000, 100000}, GIDs: [4]uint32{100000, 100000, 100000, 100000}},
			[]string{"held_ids_mapped: the container's process holds host UIDs 1000 (uid 100000 100000 1000 100000)"}},
		{"both", func() audit.HeldIDs { u, g := ids(7, 8); return audit.HeldIDs{UIDs: u, GIDs: g} }(),
			[]string{"held_ids_mapped: the container's process holds host UIDs 7 ", "held_ids_mapped: the container's process holds host GIDs 8 (gid 8 8 8 8, groups none), which user:[4026532900] does not map"}},
	} {
		a := mapped(good, good)
		a.Held, a.FactsRead = &tc.held, true
		var got []string
		for _, x := range r.Evaluate(a) {
			got = append(got, x.Rule+": "+x.Reason)
		}
		wantPrefixes(t, tc.name, got, tc.want)
	}
	unread := mapped(good, good)
	unread.FactsRead, unread.FactsErr = true, "inspect: pid 7: status: too many open files"
	if v := r.Evaluate(unread); len(v) != 1 || v[0].Rule != policy.RuleHeldIDsMapped || !strings.HasPrefix(v[0].Reason, policy.Unchecked+": the IDs its process holds could not be read") {
		t.Errorf("held IDs not read: %+v, want not checked", v)
	}
	gone := mapped(good, good)
	gone.FactsRead, gone.FactsGone = true, true
	if v := r.Evaluate(gone); len(v) != 0 {
		t.Errorf("process gone before its held IDs were read: %+v, want nothing to judge", v)
	}
	if !r.NeedsFacts() {
		t.Error("held_ids_mapped does not ask for the facts")
	}
	// 65,536 groups, none mapped: listed once each, sorted (a search
	// of those kept so far, for each, took 1.6 s: BenchmarkHeldIDsMapped).
	many := mapped(good, good)
	u, g := ids(100000, 100000)
	many.Held, many.FactsRead = &audit.HeldIDs{UIDs: u, GIDs: g, Groups: make([]uint32, 65536)}, true
	for i := range many.Held.Groups {
		many.Held.Groups[i] = uint32(65535 - i)
	}
	if v := r.Evaluate(many); len(v) != 1 || !strings.Contains(v[0].Reason, "holds host GIDs 0 1 2 3 ") || !strings.Contains(v[0].Reason, "and 65504 more") {
		t.Errorf("65,536 unmapped groups: %v; want one violation listing 0 1 2 3 ... and 65504 more", v)
	}
}

// BenchmarkHeldIDsMapped judges a process holding 65,536 groups its maps
// do not map (NGROUPS_MAX): 1.6 s an evaluation when each was searched
// for among those kept so far.
func BenchmarkHeldIDsMapped(b *testing.B) {
	good := []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}}
	c, err := policy.Parse("x.json", []byte(`{"version":1,"audit_log":"/a","default":{"mode":"enforce","rules":{"held_ids_mapped":true}}}`))
	if err != nil {
		b.Fatal(err)
	}
	a := mapped(good, good)
	a.Held, a.FactsRead = &audit.HeldIDs{UIDs: [4]uint32{100000, 100000, 100000, 100000}, GIDs: [4]uint32{100000, 100000, 100000, 100000}, Groups: make([]uint32, 65536)}, true
	for i := range a.Held.Groups {
		a.Held.Groups[i] = uint32(65535 - i)
	}
	for b.Loop() {
		c.Default.Rules.Evaluate(a)
	}
}

// TestIDMappedRoot: an idmapped mount was refused whatever its maps said
// (they were not read): a podman or crun "idmap" volume with its own map
// that keeps UID and GID 0 of its file system away from the container's
// IDs ran nowhere. Now it is refused when, through it, an ID the
// container holds (mapped, or held outside its maps) is UID or GID 0 of
// the mount's file system, and not checked when its maps are not known.
func TestIDMappedRoot(t *testing.T) {
	good := []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}}
	r := rules(t, `{"host_root_unmapped":true}`)
	same := []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}}  // podman's idmap: the container's own maps
	user := []audit.IDRange{{Inside: 1000, Outside: 100000, Count: 1}}   // the container's root writes as UID 1000
	apart := []audit.IDRange{{Inside: 0, Outside: 300000, Count: 65536}} // 0 maps to an ID the container does not hold
	kept := []audit.IDRange{{Inside: 0, Outside: 42, Count: 1}}          // 0 maps to a group the process kept
	for _, tc := range []struct {
		name   string
		mounts []audit.IDMappedMount
		held   *audit.HeldIDs
		want   []string
	}{
		{"same maps", []audit.IDMappedMount{{Point: "/run/c/rootfs/data", UIDMap: same, GIDMap: same}}, nil, []string{
			`the idmapped mount at "/run/c/rootfs/data" maps UID 0 of its file system to host UID 100000, which the container holds`,
			`the idmapped mount at "/run/c/rootfs/data" maps GID 0 of its file system to host GID 100000, which the container holds`}},
		{"to a user", []audit.IDMappedMount{{Point: "/home", UIDMap: user, GIDMap: user}}, nil, nil},
		{"apart", []audit.IDMappedMount{{Point: "/home", UIDMap: apart, GIDMap: apart}}, nil, nil},
		{"group kept", []audit.IDMappedMount{{Point: "/srv", UIDMap: user, GIDMap: kept}}, &audit.HeldIDs{UIDs: [4]uint32{100000, 100000, 100000, 100000}, GIDs: [4]uint32{100000, 100000, 100000, 100000}, Groups: []uint32{42}}, []string{
			`the idmapped mount at "/srv" maps GID 0 of its file system to host GID 42, which the container holds`}},
		{"not known", []audit.IDMappedMount{{Point: "/srv", Err: "this kernel does not tell"}}, nil, []string{
			policy.Unchecked + `: the idmapped mount at "/srv": through it, files the container writes may be owned by host UID 0 (its ID map is not known: this kernel does not tell)`}},
		// Found broken first; the rest past eight, all not checked, is
		// said not checked (it read as found broken).
		{"many not known", append(slices.Repeat([]audit.IDMappedMount{{Point: "/u", Err: "no maps"}}, 9), audit.IDMappedMount{Point: "/d", UIDMap: user, GIDMap: same}), nil, []string{
			`the idmapped mount at "/d" maps GID 0`, policy.Unchecked + `: the idmapped mount at "/u"`, policy.Unchecked, policy.Unchecked, policy.Unchecked, policy.Unchecked, policy.Unchecked, policy.Unchecked,
			policy.Unchecked + ": and 2 more of its idmapped mounts"}},
		{"many", slices.Repeat([]audit.IDMappedMount{{Point: "/d", UIDMap: same, GIDMap: same}}, 5), nil, []string{
			"the idmapped mount", "the idmapped mount", "the idmapped mount", "the idmapped mount", "the idmapped mount", "the idmapped mount", "the idmapped mount", "the idmapped mount", "and 2 more of its idmapped mounts"}},
	} {
		a := mapped(good, good)
		a.IDMapped, a.Held, a.FactsRead = tc.mounts, tc.held, true
		var got []string
		for _, x := range r.Evaluate(a) {
			if x.Rule != policy.RuleHostRootUnmapped {
				t.Errorf("%s: rule %s", tc.name, x.Rule)
			}
			got = append(got, x.Reason)
		}
		wantPrefixes(t, tc.name, got, tc.want)
	}
}

// TestSubIDUserNameOrUID: allowed_subid_user takes the lines of
// /etc/subuid and /etc/subgid that name the user or its UID, as
// subuid(5) and newuidmap do, the one resolved to the other through
// /etc/passwd; it took only lines in the form configured, and refused a
// container in a range granted to the UID of the user it named.
func TestSubIDUserNameOrUID(t *testing.T) {
	dir := t.TempDir()
	sub, passwd := filepath.Join(dir, "subuid"), filepath.Join(dir, "passwd")
	if err := os.WriteFile(sub, []byte("1000:100000:65536\ncontainers:300000:65536\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(passwd, []byte("alice:x:1000:1000::/home/alice:/bin/sh\ncontainers:x:999:999::/:/usr/sbin/nologin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	useIDFiles(t, sub, sub, passwd)
	alice := []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}}
	containers := []audit.IDRange{{Inside: 0, Outside: 300000, Count: 65536}}
	for _, tc := range []struct {
		user string
		ids  []audit.IDRange
		want int // violations
	}{
		{"alice", alice, 0},
		{"1000", alice, 0},
		{"999", containers, 0},
		{"containers", containers, 0},
		{"alice", containers, 2},
		{"999", alice, 2},
	} {
		v := rules(t, `{"allowed_subid_user":"`+tc.user+`"}`).Evaluate(mapped(tc.ids, tc.ids))
		if len(v) != tc.want {
			t.Errorf("allowed_subid_user %q: violations %+v, want %d", tc.user, v, tc.want)
		}
	}
}

// TestSubIDLargeFiles: allowed_subid_user reads /etc/passwd and the
// subordinate ID files whole, up to idmap.MaxPasswdFile and
// idmap.MaxSubIDFile. They were read up to 16 KiB: a larger passwd
// silently lost the UID of the user named (a range granted to the UID
// refused), a larger subuid made the rule "cannot be checked" for every
// container. A passwd that cannot be read is named in the violation.
func TestSubIDLargeFiles(t *testing.T) {
	dir := t.TempDir()
	var pw, sub strings.Builder
	for i := range 20000 { // about 1 MB of passwd, 600 KB of subuid
		fmt.Fprintf(&pw, "user%d:x:%d:%d:User number %d:/home/user%d:/bin/bash\n", i, 2000+i, 2000+i, i, i)
		fmt.Fprintf(&sub, "user%d:%d:65536\n", i, 10000000+i*65536)
	}
	pw.WriteString("alice:x:1000:1000::/home/alice:/bin/sh\n")
	sub.WriteString("1000:100000:65536\n")
	subFile, passwd := filepath.Join(dir, "subuid"), filepath.Join(dir, "passwd")
	if err := os.WriteFile(subFile, []byte(sub.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(passwd, []byte(pw.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	useIDFiles(t, subFile, subFile, passwd)
	alice := []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}}
	if v := rules(t, `{"allowed_subid_user":"alice"}`).Evaluate(mapped(alice, alice)); v != nil {
		t.Errorf("large files: %+v", v)
	}
	// A passwd that cannot be read (here a directory): alice's lines by
	// UID do not count, and the violations say why.
	policy.PasswdFile = dir
	v := rules(t, `{"allowed_subid_user":"alice"}`).Evaluate(mapped(alice, alice))
	want := "cannot be checked: " + subFile + ": idmap: user \"alice\": no subordinate ID entry (read " + dir + ": is a directory: only the subordinate ID lines naming \"alice\" as configured counted, not those naming it by UID)"
	if len(v) != 2 || !strings.Contains(v[0].Reason, want) {
		t.Errorf("unreadable passwd: %+v; want %q", v, want)
	}
	// With a line naming alice: her range by UID lies outside it.
	if err := os.WriteFile(subFile, []byte(sub.String()+"alice:200000:10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	v = rules(t, `{"allowed_subid_user":"alice"}`).Evaluate(mapped(alice, alice))
	want = "host UIDs 100000-165535 of user:[4026532900] lie outside the allowed ranges 200000-200009 (read " + dir + ": is a directory: only the subordinate ID lines naming \"alice\" as configured counted, not those naming it by UID)"
	if len(v) != 2 || v[0].Reason != want {
		t.Errorf("unreadable passwd: %+v; want %q", v, want)
	}
}

func TestDisjointRule(t *testing.T) {
	r := rules(t, `{"disjoint_from_running":true}`)
	a := mapped([]audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}}, []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}})
	run := &policy.Running{Others: []policy.Other{
		{Ino: 1, PID: 10, Name: "sleep, cgroup /a", UIDs: idmap.Spans{{First: 200000, Count: 65536}}, GIDs: idmap.Spans{{First: 200000, Count: 65536}}},
		{Ino: 2, PID: 20, Name: "sleep, cgroup /b", UIDs: idmap.Spans{{First: 165000, Count: 65536}}, GIDs: idmap.Spans{{First: 300000, Count: 1}}},
		{Ino: 3, PID: 30, Name: "x", Err: "gone strange"},
	}}
	var got []string
	for _, v := range r.EvaluateRunning(a, run) {
		got = append(got, v.Reason)
	}
	want := []string{ // what cannot be checked first
		"cannot be checked against user:[3] of pid 30 (x): gone strange",
		"host UIDs 165000-165535 of user:[4026532900] are also mapped by user:[2] of pid 20 (sleep, cgroup /b)",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if v := r.EvaluateRunning(a, &policy.Running{Err: errors.New("scan of the running processes did not finish in time")}); len(v) != 1 || !strings.Contains(v[0].Reason, "cannot be checked: scan") {
		t.Errorf("incomplete scan: %v", v)
	}
	if v := r.EvaluateRunning(a, &policy.Running{}); v != nil {
		t.Errorf("nothing else running: %v", v)
	}
	// A walk out of time lists what it found before, and what it could
	// not check: found (it threw the overlaps away).
	late := &policy.Running{Err: errors.New("out of time"), Others: run.Others[1:2]}
	got = nil
	for _, v := range r.EvaluateRunning(a, late) {
		got = append(got, v.Reason)
	}
	want = []string{"cannot be checked: out of time",
		"host UIDs 165000-165535 of user:[4026532900] are also mapped by user:[2] of pid 20 (sleep, cgroup /b)"}
	if d := cmp.Diff(want, got); d != "" || !foundViolation(r.EvaluateRunning(a, late)) {
		t.Errorf("out of time with an overlap found (-want +got):\n%s", d)
	}
	// Records without maps (older writers) fail the map rules closed.
	old := &audit.Ancestry{User: a.User}
	if v := r.EvaluateRunning(old, &policy.Running{}); len(v) != 1 || !strings.Contains(v[0].Reason, "no ID maps") {
		t.Errorf("no maps: %v", v)
	}
}

// TestDisjointListBounded: thousands of user namespaces that map the
// container's host IDs (anyone with subordinate IDs there can make them)
// list MaxDisjointListed violations and one that counts the rest, so the
// record stays well below what a line may hold.
func TestDisjointListBounded(t *testing.T) {
	r := rules(t, `{"disjoint_from_running":true}`)
	a := mapped([]audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}}, []audit.IDRange{{Inside: 0, Outside: 100000, Count: 65536}})
	run := &policy.Running{}
	for i := range 10000 {
		run.Others = append(run.Others, policy.Other{Ino: uint64(i + 10), PID: i + 10, Name: "sleep, cgroup /user.slice/x",
			UIDs: idmap.Spans{{First: 100000, Count: 1}}, GIDs: idmap.Spans{{First: 100000, Count: 1}}})
	}
	// Behind the decoys, a process sharing the container's own
	// namespace: listed first all the same.
	run.Others = append(run.Others, policy.Other{Ino: 4026532900, PID: 99999, Name: "sh, cgroup /user.slice/y", Shared: true})
	v := r.EvaluateRunning(a, run)
	if len(v) != policy.MaxDisjointListed+1 || v[len(v)-1].Reason != fmt.Sprintf("and %d more such finding(s), not listed", 2*10000+1-policy.MaxDisjointListed) {
		t.Errorf("%d violations, the last %+v", len(v), v[len(v)-1])
	}
	if !strings.Contains(v[0].Reason, "pid 99999") {
		t.Errorf("the first violation is %q, want the shared namespace's", v[0].Reason)
	}
	size := 0
	for _, x := range v {
		size += len(x.Rule) + len(x.Reason)
	}
	if size > 32<<10 {
		t.Errorf("the violations take %d bytes", size)
	}
}

func TestMapRuleParseErrors(t *testing.T) {
	for js, want := range map[string]string{
		`{"mapped_ids_min":5,"mapped_ids_max":4}`:  "mapped_ids_min (5) is greater than mapped_ids_max (4)",
		`{"allowed_host_ranges":[[1]]}`:            "allowed_host_ranges[0]: must be a [first, count] pair",
		`{"allowed_host_ranges":[[4294967295,2]]}`: "allowed_host_ranges[0]: runs past ID",
		`{"allowed_host_ranges":[[0,0]]}`:          "allowed_host_ranges[0][1]: must be between 1",
		`{"allowed_subid_user":"a:b"}`:             "allowed_subid_user: must be a user name or number",
		`{"host_root_unmapped":1}`:                 "host_root_unmapped: must be true or false",
		`{"mapped_ids_max":4294967296}`:            "mapped_ids_max: must be between 0 and 4294967295",
	} {
		_, err := policy.Parse("x.json", []byte(`{"version":1,"audit_log":"/a","default":{"mode":"enforce","rules":`+js+`}}`))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", js, err, want)
		}
	}
}

// foundViolation reports whether vs hold a violation that was found, not
// only rules that could not be checked (policy.Unchecked).
func foundViolation(vs []audit.Violation) bool {
	return slices.ContainsFunc(vs, func(v audit.Violation) bool { return !strings.HasPrefix(v.Reason, policy.Unchecked) })
}

// TestSubIDWarnings: policy check warns of a block whose
// allowed_subid_user has no subordinate IDs on the host (a misspelt
// user, a host without /etc/subgid): the rule fails closed, and such a
// config said OK and refused every container it selected.
func TestSubIDWarnings(t *testing.T) {
	dir := t.TempDir()
	subuid, subgid, passwd := filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid"), filepath.Join(dir, "passwd")
	if err := os.WriteFile(subuid, []byte("containers:300000:65536\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(passwd, []byte("containers:x:999:999::/:/usr/sbin/nologin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	useIDFiles(t, subuid, subgid, passwd)
	cfg, err := policy.Parse("x.json", []byte(`{"version":1,"audit_log":"/a","trusted_selectors":{"id":true},
		"policies":[{"name":"typo","mode":"enforce","match":{"id":"a"},"rules":{"allowed_subid_user":"contaners"}}],
		"default":{"mode":"enforce","rules":{"allowed_subid_user":"containers"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(cfg.SubIDWarnings(), "\n")
	for _, want := range []string{
		`policy "typo": allowed_subid_user "contaners": ` + subuid,
		`policy "typo": allowed_subid_user "contaners": open ` + subgid,
		`policy "default": allowed_subid_user "containers": open ` + subgid,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, `"containers": `+subuid) || strings.Count(got, "\n") != 2 {
		t.Errorf("warnings:\n%s\nwant three: none for the default block's subordinate UIDs", got)
	}
	if err := os.WriteFile(subgid, []byte("containers:300000:65536\ncontaners:400000:65536\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(subuid, []byte("containers:300000:65536\ncontaners:400000:65536\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if w := cfg.SubIDWarnings(); len(w) != 0 {
		t.Errorf("both users with subordinate IDs: warnings %q", w)
	}
}
