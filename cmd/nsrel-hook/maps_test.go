package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/bundle"
	"github.com/nsrel/nsrel/internal/nstest"
)

// procMap reads /proc/PID/FILE as the kernel shows it to this (host)
// process, parsed here without package idmap.
func procMap(t *testing.T, pid int, file string) []audit.IDRange {
	t.Helper()
	return procMapIn(t, 0, pid, file)
}

// procMapIn is procMap as a process in the user namespace of process in
// reads it (nsenter), for in > 0.
func procMapIn(t *testing.T, in, pid int, file string) []audit.IDRange {
	t.Helper()
	path := "/proc/" + strconv.Itoa(pid) + "/" + file
	b, err := os.ReadFile(path)
	if in > 0 {
		b, err = exec.Command(nstest.RequireCmd(t, "nsenter"), "-U", "-t", strconv.Itoa(in), "cat", path).Output()
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []audit.IDRange
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r audit.IDRange
		if _, err := fmt.Sscan(line, &r.Inside, &r.Outside, &r.Count); err != nil {
			t.Fatalf("%s line %q: %v", file, line, err)
		}
		out = append(out, r)
	}
	return out
}

// mapsBase is the first host ID the map tests use: far from the 100000
// and 200000 ranges other tests (and engines) map, and different for
// each test process, so that parallel test runs do not overlap.
func mapsBase(t testing.TB) uint32 { return nstest.HostIDBase(t) }

// TestMapRulesRealContainers runs runc containers with explicit maps
// under an enforcing block with host_root_unmapped and
// disjoint_from_running: the records' maps are what the kernel shows in
// /proc/PID/uid_map and gid_map; a container overlapping a running one is
// refused, naming the running one's namespace, process and the
// overlapping range; a disjoint one runs; one that maps host root is
// refused.
func TestMapRulesRealContainers(t *testing.T) {
	o := requireRuntime(t, "runc")
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["default"] = map[string]any{"mode": "enforce", "rules": map[string]any{
			policy.RuleHostRootUnmapped: true, policy.RuleDisjoint: true, policy.RuleMappedIDsMin: 1000,
		}}
	})
	base := mapsBase(t)
	first := uniqueID(t, "maps-a")
	if stderr, err := o.run(t, e, first, bundle.Options{UserNS: true, MapHost: base, MapSize: 65536}, true); err != nil {
		t.Fatalf("first container refused: %v\n%s", err, stderr)
	}
	pid, err := o.pid(e, first)
	if err != nil {
		t.Fatal(err)
	}
	// runc may return before the container's init has executed its
	// command: the refusal below names the process by its name then.
	for i := 0; ; i++ {
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && string(comm) == "sleep\n" {
			break
		} else if i == 1000 {
			t.Fatalf("the first container's process is %q after 10 s, not sleep (%v)", comm, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	recs := e.records(t, first)
	if len(recs) != 1 { // createRuntime while it runs
		t.Fatalf("records %v", audittest.Stages(recs))
	}
	for _, r := range recs {
		if r.Verdict != audit.VerdictAllow || len(r.Violations) > 0 {
			t.Errorf("seq %d: verdict %s, violations %+v", r.Seq, r.Verdict, r.Violations)
		}
		if len(r.Maps) != len(r.User) || len(r.Maps) != 2 {
			t.Fatalf("seq %d: maps %+v", r.Seq, r.Maps)
		}
		m := r.Maps[0]
		uid, gid := procMap(t, pid, "uid_map"), procMap(t, pid, "gid_map")
		for name, pair := range map[string][2][]audit.IDRange{"uid_map": {uid, m.UIDMap}, "gid_map": {gid, m.GIDMap},
			"host uid_map": {uid, m.HostUIDMap}, "host gid_map": {gid, m.HostGIDMap}} {
			if d := cmp.Diff(pair[0], pair[1]); d != "" {
				t.Errorf("seq %d %s (-kernel +record):\n%s", r.Seq, name, d)
			}
		}
		if m.Ino != r.User[0].Ino || m.SetGroups != "allow" || m.Error != "" {
			t.Errorf("seq %d: level 0 maps %+v", r.Seq, m)
		}
	}
	if uid := procMap(t, pid, "uid_map"); len(uid) != 1 || uid[0] != (audit.IDRange{Inside: 0, Outside: base, Count: 65536}) {
		t.Errorf("the kernel shows %v, not the bundle's map", uid)
	}

	overlap := uniqueID(t, "maps-b")
	rec := refused(t, o, e, overlap, bundle.Options{UserNS: true, MapHost: base + 65000, MapSize: 65536}, policy.RuleDisjoint)
	wantRange := fmt.Sprintf("%d-%d", base+65000, base+65535)
	var reasons []string
	for _, v := range rec.Violations {
		reasons = append(reasons, v.Rule+": "+v.Reason)
	}
	if len(reasons) != 2 || !strings.Contains(reasons[0], "host UIDs "+wantRange) || !strings.Contains(reasons[1], "host GIDs "+wantRange) ||
		!strings.Contains(reasons[0], fmt.Sprintf("user:[%d] of pid %d (sleep, cgroup ", recs[0].User[0].Ino, pid)) {
		t.Errorf("violations %q, want UIDs and GIDs %s naming pid %d", reasons, wantRange, pid)
	}
	if !strings.Contains(strings.Join(reasons, "\n"), first) {
		t.Errorf("violations %q do not name the running container %s (by its cgroup)", reasons, first)
	}

	disjoint := uniqueID(t, "maps-c")
	if stderr, err := o.run(t, e, disjoint, bundle.Options{UserNS: true, MapHost: base + 65536, MapSize: 65536}, true); err != nil {
		t.Fatalf("a disjoint container was refused: %v\n%s", err, stderr)
	}

	root := uniqueID(t, "maps-root")
	rec = refused(t, o, e, root, bundle.Options{UserNS: true, Mappings: []specs.LinuxIDMapping{
		{ContainerID: 0, HostID: 0, Size: 1}, {ContainerID: 1, HostID: base + 200000, Size: 65535}}}, policy.RuleHostRootUnmapped)
	// Other processes on the node (other tests' unshare -r chains) may
	// map host root too: disjoint_from_running then also fires.
	rules := audittest.Rules(rec)
	if len(rules) < 2 {
		t.Fatalf("violations %+v", rec.Violations)
	}
	if d := cmp.Diff([]string{policy.RuleHostRootUnmapped, policy.RuleHostRootUnmapped}, rules[:2]); d != "" {
		t.Errorf("host root container violations (-want +got):\n%s\n%+v", d, rec.Violations)
	}
	e.verify(t)

	code, out, _ := run("", "audit", "show", "--container", first, e.log)
	want := fmt.Sprintf("maps: user:[%d] uid_map 0 %d 65536, gid_map 0 %d 65536, setgroups allow, host UIDs %d-%d, host GIDs %d-%d\n",
		recs0User(t, e, first), base, base, base, base+65535, base, base+65535)
	if code != 0 || strings.Count(out, want) != 1 {
		t.Errorf("audit show exit %d, want once %q:\n%s", code, want, out)
	}
	// The IDs host_root_unmapped judged (format 1.5): the container's
	// root, mapped; runc leaves it no supplementary group.
	held := fmt.Sprintf("held: uids %[1]d %[1]d %[1]d %[1]d, gids %[1]d %[1]d %[1]d %[1]d, groups (none)\n", base)
	if strings.Count(out, held) != 1 {
		t.Errorf("audit show, want once %q:\n%s", held, out)
	}
	code, out, _ = run("", "audit", "show", "--json", "--container", first, e.log)
	if code != 0 || !strings.Contains(out, fmt.Sprintf(`"user_maps":[{"ino":%d,"uid_map":[[0,%d,65536]],"gid_map":[[0,%d,65536]],"host_uid_map":[[0,%d,65536]]`, recs0User(t, e, first), base, base, base)) ||
		!strings.Contains(out, fmt.Sprintf(`"held":{"uids":[%[1]d,%[1]d,%[1]d,%[1]d],"gids":[%[1]d,%[1]d,%[1]d,%[1]d],"groups":[]}`, base)) {
		t.Errorf("audit show --json exit %d:\n%s", code, out)
	}
}

// TestJoinedUserNSRefused runs a runc container in a user namespace of
// its own under disjoint_from_running, then one that joins it (its
// config.json names the first one's /proc/PID/ns/user, as any
// container's creator may write): the second is refused, naming the
// first container's process, since the two share every ID; it used to
// run, the rule skipping the container's own namespace whoever else
// lived in it. So is one that joins the first one's PID namespace as
// well (it ran: the first one's processes were in its PID namespace).
// A third, in a namespace of its own, runs.
func TestJoinedUserNSRefused(t *testing.T) {
	o := requireRuntime(t, "runc")
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["default"] = map[string]any{"mode": "enforce", "rules": map[string]any{policy.RuleDisjoint: true}}
	})
	base := mapsBase(t) + 600000
	first := uniqueID(t, "joined-a")
	if stderr, err := o.run(t, e, first, bundle.Options{UserNS: true, MapHost: base, MapSize: 65536}, true); err != nil {
		t.Fatalf("first container refused: %v\n%s", err, stderr)
	}
	pid, err := o.pid(e, first)
	if err != nil {
		t.Fatal(err)
	}
	joined := uniqueID(t, "joined-b")
	rec := refused(t, o, e, joined, bundle.Options{UserNS: true, UserNSPath: nstest.NSPath(pid, "user"), MapHost: base, MapSize: 65536}, policy.RuleDisjoint)
	reasons := fmt.Sprint(rec.Violations)
	if !strings.Contains(reasons, fmt.Sprintf("is also the user namespace of pid %d (sleep, cgroup ", pid)) || !strings.Contains(reasons, first) {
		t.Errorf("violations %s; want the shared namespace named with pid %d of %s", reasons, pid, first)
	}
	// Its PID namespace too: the first container's processes are then in
	// the second's PID namespace, but not its own (it did not make that
	// namespace, and they do not descend from it).
	both := uniqueID(t, "joined-d")
	rec = refused(t, o, e, both, bundle.Options{UserNS: true, UserNSPath: nstest.NSPath(pid, "user"), PIDNSPath: nstest.NSPath(pid, "pid"), MapHost: base, MapSize: 65536}, policy.RuleDisjoint)
	if reasons := fmt.Sprint(rec.Violations); !strings.Contains(reasons, fmt.Sprintf("is also the user namespace of pid %d (sleep, cgroup ", pid)) {
		t.Errorf("joining the user and PID namespaces: violations %s; want the shared namespace named with pid %d", reasons, pid)
	}
	// In the host's PID namespace (the spec leaves it out): every
	// process is in the container's PID namespace, and the first
	// container's started before it and does not descend from it. It
	// ran: the rule checked no container in the host's PID namespace.
	hostPID := uniqueID(t, "joined-e")
	rec = refused(t, o, e, hostPID, bundle.Options{UserNS: true, UserNSPath: nstest.NSPath(pid, "user"), NoPIDNS: true, MapHost: base, MapSize: 65536}, policy.RuleDisjoint)
	if reasons := fmt.Sprint(rec.Violations); !strings.Contains(reasons, fmt.Sprintf("is also the user namespace of pid %d (sleep, cgroup ", pid)) {
		t.Errorf("joining the user namespace from the host's PID namespace: violations %s; want the shared namespace named with pid %d", reasons, pid)
	}
	own := uniqueID(t, "joined-c")
	if stderr, err := o.run(t, e, own, bundle.Options{UserNS: true, MapHost: base + 65536, MapSize: 65536}, true); err != nil {
		t.Fatalf("a container with a namespace of its own was refused: %v\n%s", err, stderr)
	}
	// So does one of its own in the host's PID namespace, whose daemon
	// (forked, its parent gone) is the container's own.
	ownHostPID := uniqueID(t, "joined-f")
	if stderr, err := o.run(t, e, ownHostPID, bundle.Options{UserNS: true, NoPIDNS: true, MapHost: base + 2*65536, MapSize: 65536,
		Args: []string{"sh", "-c", "(sleep 1002 &); exec sleep 1001"}}, true); err != nil {
		t.Fatalf("a container with a user namespace of its own in the host's PID namespace was refused: %v\n%s", err, stderr)
	}
	e.verify(t)
}

// refused runs a container the policy must refuse at createRuntime and
// returns its record; runc's error must name rule.
func refused(t *testing.T, o oci, e *env, id string, opts bundle.Options, rule string) *audit.Record {
	t.Helper()
	stderr, err := o.run(t, e, id, opts, true)
	if err == nil {
		t.Fatalf("container %s was started", id)
	}
	if !strings.Contains(stderr, rule) {
		t.Errorf("runc's error does not name %s:\n%s", rule, stderr)
	}
	recs := e.records(t, id)
	if len(recs) == 0 || recs[0].Stage != audit.StageCreateRuntime || recs[0].Verdict != audit.VerdictDeny {
		t.Fatalf("%s: records %v", id, audittest.Stages(recs))
	}
	return recs[0]
}

func recs0User(t *testing.T, e *env, id string) uint64 {
	t.Helper()
	recs := e.records(t, id)
	if len(recs) == 0 || recs[0].Ancestry == nil {
		t.Fatalf("no records of %s", id)
	}
	return recs[0].User[0].Ino
}

// TestNestedContainerMaps runs a runc container in a user namespace
// nested two deep (it joins a namespace made below another one): the
// record holds both levels' maps, the container's own lines as its
// parent namespace reads them and its host maps composed through the
// chain, each what the kernel shows.
func TestNestedContainerMaps(t *testing.T) {
	o := requireRuntime(t, "runc")
	e := newEnv(t, "hook.json", nil)
	base := mapsBase(t) + 400000
	parent := nstest.Start(t, &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(base), Size: 1000}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(base), Size: 1000}},
	}, nstest.RequireCmd(t, "sleep"), "infinity")
	nested := nstest.NestedUserNS(t, parent.Pid, "0 100 50")
	id := uniqueID(t, "nested")
	opts := bundle.Options{UserNS: true, UserNSPath: nstest.NSPath(nested, "user"),
		Mappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: base + 100, Size: 50}}}
	if stderr, err := o.run(t, e, id, opts, true); err != nil {
		t.Fatalf("runc run in a nested user namespace: %v\n%s", err, stderr)
	}
	pid, err := o.pid(e, id)
	if err != nil {
		t.Fatal(err)
	}
	recs := e.records(t, id)
	if len(recs) == 0 || recs[0].Ancestry == nil || recs[0].UserDepth() != 2 || len(recs[0].Maps) != 3 {
		t.Fatalf("records %v, first %+v", audittest.Stages(recs), recs[0])
	}
	m := recs[0].Maps
	for name, pair := range map[string][2][]audit.IDRange{
		"container host uid_map":    {procMap(t, pid, "uid_map"), m[0].HostUIDMap},
		"container uid_map":         {procMapIn(t, parent.Pid, pid, "uid_map"), m[0].UIDMap},
		"container gid_map":         {procMapIn(t, parent.Pid, pid, "gid_map"), m[0].GIDMap},
		"parent uid_map":            {procMap(t, parent.Pid, "uid_map"), m[1].UIDMap},
		"parent host gid_map":       {procMap(t, parent.Pid, "gid_map"), m[1].HostGIDMap},
		"container host (composed)": {{{Inside: 0, Outside: base + 100, Count: 50}}, m[0].HostGIDMap},
	} {
		if d := cmp.Diff(pair[0], pair[1]); d != "" {
			t.Errorf("%s (-kernel +record):\n%s", name, d)
		}
	}
}
