package lstool_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/internal/bundle"
	"github.com/nsrel/nsrel/internal/lstool"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/runtest"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
	"github.com/nsrel/nsrel/nsrel/idmap"
	"github.com/nsrel/nsrel/tree"
)

// kernelMap reads /proc/PID/FILE as the kernel shows it, from this
// process's user namespace or (in > 0) from the one of process in, as
// [inside, outside, count] triples, parsed here without package idmap.
func kernelMap(t *testing.T, in, pid int, file string) [][3]uint32 {
	t.Helper()
	path := "/proc/" + strconv.Itoa(pid) + "/" + file
	var b []byte
	var err error
	if in == 0 {
		b, err = os.ReadFile(path)
	} else {
		b, err = exec.Command(nstest.RequireCmd(t, "nsenter"), "-U", "-t", strconv.Itoa(in), "cat", path).Output()
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out [][3]uint32
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r [3]uint32
		if _, err := fmt.Sscan(line, &r[0], &r[1], &r[2]); err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		out = append(out, r)
	}
	return out
}

// TestOverlapsRealContainers runs runc containers with explicit maps: A,
// B disjoint from A, C overlapping A by 536 IDs, and D disjoint from all,
// with a nested user namespace below its own (created and mapped from
// D's namespace, as a process in D would, mapping 0-9 to D's 50-59). lsuserns --details and --json show the maps the kernel
// shows, composed to host IDs for the nested one; --overlaps finds
// exactly the pair A, C among them (not D and its nested namespace) and
// exits 1.
func TestOverlapsRealContainers(t *testing.T) {
	nstest.RequireRoot(t)
	_, err := os.Stat(bundle.DefaultBusybox)
	nstest.Require(t, err == nil, "needs %s (busybox-static): %v", bundle.DefaultBusybox, err)
	root := filepath.Join(t.TempDir(), "runc")
	base := nstest.HostIDBase(t)
	uniq := strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
	start := func(name string, host, size uint32, args ...string) discover.Container {
		id := "maps-" + name + "-" + uniq
		pid := runtest.RuncBundle(t, root, id, bundle.Options{UserNS: true, MapHost: host, MapSize: size, Args: args})
		return discover.Container{ID: id, Engine: "runc", PID: pid}
	}
	a := start("a", base, 65536)
	b := start("b", base+65536, 65536)
	c := start("c", base+65000, 536)
	d := start("d", base+300000, 65536)
	nested := nstest.NestedUserNS(t, d.PID, "0 50 10")
	src := &fakeSource{name: "runc", cs: []discover.Container{a, b, c, d}}
	userIno := func(pid int) uint64 { return ino(t, pid, "user") }

	code, out, errOut := run(t, tool(nsrel.TypeUser, src), "--json")
	if code != 0 {
		t.Fatalf("--json exit %d: %s", code, errOut)
	}
	var doc struct {
		Namespaces []tree.Entry `json:"namespaces"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	entry := func(pid int) *tree.MapsEntry {
		for _, e := range doc.Namespaces {
			if e.Ino == userIno(pid) {
				if e.Maps == nil {
					t.Fatalf("user:[%d] has no maps in --json", e.Ino)
				}
				return e.Maps
			}
		}
		t.Fatalf("user:[%d] of pid %d not in --json", userIno(pid), pid)
		return nil
	}
	for _, p := range []int{a.PID, b.PID, c.PID, d.PID, nested} {
		m := entry(p)
		if d := cmp.Diff(kernelMap(t, 0, p, "uid_map"), m.HostUIDMap); d != "" {
			t.Errorf("pid %d host_uid_map (-kernel +json):\n%s", p, d)
		}
		if d := cmp.Diff(kernelMap(t, 0, p, "gid_map"), m.HostGIDMap); d != "" {
			t.Errorf("pid %d host_gid_map (-kernel +json):\n%s", p, d)
		}
	}
	// The nested namespace: its own line as D's namespace reads it, and
	// that line composed with D's map down to host IDs.
	nm := entry(nested)
	if d := cmp.Diff(kernelMap(t, d.PID, nested, "uid_map"), nm.UIDMap); d != "" {
		t.Errorf("nested uid_map (-kernel from its parent +json):\n%s", d)
	}
	if want := [][3]uint32{{0, base + 300050, 10}}; !cmp.Equal(want, nm.HostUIDMap) {
		t.Errorf("nested host_uid_map %v, want %v", nm.HostUIDMap, want)
	}

	_, out, _ = run(t, tool(nsrel.TypeUser, src), "--details")
	line, _ := lineOf(t, out, nsrel.Name{Type: nsrel.TypeUser, Ino: userIno(a.PID)})
	if want := fmt.Sprintf("; maps: uid 0 %d 65536, gid 0 %d 65536, setgroups allow, host UIDs %d-%d, host GIDs %d-%d", base, base, base, base+65535, base, base+65535); !strings.HasSuffix(line, want) {
		t.Errorf("--details line\n%s\nwant suffix\n%s", line, want)
	}

	code, out, _ = run(t, tool(nsrel.TypeUser, src), "--overlaps", "--json")
	if code != 1 {
		t.Errorf("--overlaps --json exit %d, want 1", code)
	}
	var ov lstool.OverlapDoc
	if err := json.Unmarshal([]byte(out), &ov); err != nil {
		t.Fatal(err)
	}
	ours := []uint64{userIno(a.PID), userIno(b.PID), userIno(c.PID), userIno(d.PID), userIno(nested)}
	var got []string
	for _, p := range ov.Overlaps {
		// Other tests on the machine may run user namespaces that
		// overlap one another: only pairs with ours count here.
		if slices.Contains(ours, p.A.Ino) || slices.Contains(ours, p.B.Ino) {
			got = append(got, fmt.Sprintf("%d %d %v %v %d", p.A.Ino, p.B.Ino, p.UIDs, p.GIDs, len(p.A.Containers)+len(p.B.Containers)))
		}
	}
	x, y := min(userIno(a.PID), userIno(c.PID)), max(userIno(a.PID), userIno(c.PID))
	want := []string{fmt.Sprintf("%d %d [[%d 536]] [[%d 536]] 2", x, y, base+65000, base+65000)}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("overlapping pairs with our containers (-want +got):\n%s\n%s", d, out)
	}
	code, out, _ = run(t, tool(nsrel.TypeUser, src), "--overlaps")
	if code != 1 || !strings.Contains(out, fmt.Sprintf("containers: runc %s\n", a.ID)) || !strings.Contains(out, fmt.Sprintf("containers: runc %s\n", c.ID)) ||
		!strings.Contains(out, fmt.Sprintf("    host UIDs %d-%d\n    host GIDs %d-%d\n", base+65000, base+65535, base+65000, base+65535)) {
		t.Errorf("--overlaps exit %d:\n%s", code, out)
	}
}

// TestOverlapsModel checks the pair search on a model: siblings overlap
// or not, a nested namespace is compared through its branch, a
// namespace without maps is listed as not checked and its nested
// namespace with maps stands in for it.
func TestOverlapsModel(t *testing.T) {
	m := discover.NewModel()
	ns := func(ino uint64, parent *discover.Namespace) *discover.Namespace {
		n := &discover.Namespace{Type: nsrel.TypeUser, Ino: ino, Parent: parent, Owner: parent, OwnerUID: 0}
		m.Add(n)
		return n
	}
	host := ns(1, nil)
	a, b, c := ns(10, host), ns(20, host), ns(30, host)
	a1 := ns(11, a) // nested in a: overlaps a by construction
	c1 := ns(31, c) // c has no maps: its child stands in for it
	m.Link()
	span := func(first, count uint32) *tree.Maps {
		mp := idmapOf(first, count)
		return &tree.Maps{HostUIDMap: mp, HostGIDMap: mp}
	}
	maps := map[discover.Key]*tree.Maps{
		host.Key(): span(0, 4294967295), a.Key(): span(100000, 65536), a1.Key(): span(100000, 10),
		b.Key(): span(165536, 65536), c.Key(): {Error: "not readable (no process in this namespace)"}, c1.Key(): span(200000, 5),
	}
	r := lstool.Overlaps(m, maps)
	if len(r.Overlaps) != 1 || r.Pairs != 1 || r.Overlaps[0].A() != b || r.Overlaps[0].B() != c1 || len(r.Overlaps[0].Members) != 2 || r.Overlaps[0].UIDs.String() != "200000-200004" {
		t.Errorf("overlaps %+v", r.Overlaps)
	}
	if len(r.Unchecked) != 1 || r.Unchecked[0].NS != c || r.Checked != 3 {
		t.Errorf("unchecked %+v, checked %d", r.Unchecked, r.Checked)
	}
	maps[c1.Key()] = span(300000, 5)
	if r := lstool.Overlaps(m, maps); len(r.Overlaps) != 0 || r.Pairs != 0 {
		t.Errorf("disjoint branches: overlaps %+v", r.Overlaps)
	}
}

func idmapOf(first, count uint32) idmap.Map {
	return idmap.Map{{Inside: 0, Outside: first, Count: count}}
}

// TestMapsNotWritten: a user namespace whose maps nobody wrote yet
// (`unshare --user` without -r) has empty maps, not unreadable ones:
// "(none)" in --details, [] in --json, and --overlaps has nothing to
// check there rather than a reason left empty.
func TestMapsNotWritten(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.Sleep(t, nil, "--user")
	pid := strconv.Itoa(p.Pid)
	code, out, errOut := run(t, tool(nsrel.TypeUser), "--details", "--no-containers", "-p", pid)
	if code != 0 || !strings.Contains(out, "maps: uid (none), gid (none), setgroups allow, host UIDs none, host GIDs none") {
		t.Errorf("--details: exit %d, %s\n%s", code, errOut, out)
	}
	_, out, _ = run(t, tool(nsrel.TypeUser), "-J", "--no-containers", "-p", pid)
	if !json.Valid([]byte(out)) {
		t.Fatalf("--json: not JSON:\n%s", out)
	}
	want := `"maps":{"uid_map":[],"gid_map":[],"host_uid_map":[],"host_gid_map":[],"setgroups":"allow","read_via_pid":` + pid + `,"error":null}`
	if compact := strings.Join(strings.Fields(out), ""); !strings.Contains(compact, want) {
		t.Errorf("--json: want %s in\n%s", want, out)
	}
	if _, out, _ := run(t, tool(nsrel.TypeUser), "--overlaps", "--no-containers"); strings.Contains(out, "pid "+pid+": maps \n") || strings.Contains(out, "pid "+pid+": maps\n") {
		t.Errorf("--overlaps reports the namespace as not checked without a reason:\n%s", out)
	}
}

// TestOverlapsIncomplete: a check that could not read every user
// namespace does not pass. A user namespace held only by an fd has no
// process to read its maps through: --overlaps lists it as not checked,
// ends with a line saying the check is incomplete and exits 1 (also with
// --json, whose "complete" is false). Run as an unprivileged user, the
// tool cannot read root's processes' namespaces: the same.
func TestOverlapsIncomplete(t *testing.T) {
	nstest.RequireRoot(t)
	held := nstest.UserChain(t, 1)
	userIno := ino(t, held.Pid, "user")
	holdByFD(t, nstest.NSPath(held.Pid, "user"))
	gone(t, held)

	code, out, errOut := run(t, tool(nsrel.TypeUser), "--overlaps", "--no-containers")
	notChecked := fmt.Sprintf("not checked: user:[%d]: maps not readable (no process in this namespace)\n", userIno)
	last := regexp.MustCompile(`\ncheck incomplete: [1-9][0-9]* user namespaces? could not be checked[^\n]*\n$`)
	if code != 1 || !strings.Contains(out, notChecked) || !last.MatchString(out) || strings.Contains(out, "no two user namespaces share host IDs") {
		t.Errorf("--overlaps with an fd-held user namespace: exit %d, want 1 with %q and a last line saying the check is incomplete:\n%s%s", code, notChecked, out, errOut)
	}
	code, out, errOut = run(t, tool(nsrel.TypeUser), "--overlaps", "--json", "--no-containers")
	var doc lstool.OverlapDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--overlaps --json: %v\n%s", err, out)
	}
	if code != 1 || doc.Complete || !slices.ContainsFunc(doc.Unchecked, func(u lstool.UncheckedEntry) bool { return u.Ino == userIno }) {
		t.Errorf("--overlaps --json with an fd-held user namespace: exit %d, complete %v, want 1 and false:\n%s%s", code, doc.Complete, out, errOut)
	}

	// As nobody: root's processes' namespaces cannot be read.
	cmd := exec.Command(nstest.Tool(t, "lsuserns"), "--overlaps", "--no-containers")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !regexp.MustCompile(`(?m)^check incomplete: `).MatchString(stdout.String()) || !strings.Contains(stdout.String(), "the namespaces of ") {
		t.Errorf("--overlaps as nobody: %v, want exit 1 and a line saying the check is incomplete:\n%s%s", err, stdout.String(), stderr.String())
	}
}

// TestOverlapsCommand: a namespace without containers is labelled by its
// first process with its command name, as --details names it. Two
// unshare -Ur namespaces both map host UID 0.
func TestOverlapsCommand(t *testing.T) {
	nstest.RequireRoot(t)
	a, b := nstest.UserChain(t, 1), nstest.UserChain(t, 1)
	_, out, errOut := run(t, tool(nsrel.TypeUser), "--overlaps", "--no-containers")
	for _, p := range []*nstest.Proc{a, b} {
		if want := fmt.Sprintf("user:[%d] pid %d sleep\n", ino(t, p.Pid, "user"), p.Pid); !strings.Contains(out, want) {
			t.Errorf("--overlaps lacks %q:\n%s%s", want, out, errOut)
		}
	}
}

// TestOverlapsGrouped checks the grouping on a model: 30 namespaces of
// 30 branches mapping the same host UID are one overlap naming the
// first ten and counting the rest, with every pair counted; a namespace
// whose host IDs only meet theirs is a second overlap; two namespaces of
// one branch are not a pair.
func TestOverlapsGrouped(t *testing.T) {
	m := discover.NewModel()
	host := &discover.Namespace{Type: nsrel.TypeUser, Ino: 1}
	m.Add(host)
	maps := map[discover.Key]*tree.Maps{}
	add := func(ino uint64, parent *discover.Namespace, first, count uint32) *discover.Namespace {
		n := &discover.Namespace{Type: nsrel.TypeUser, Ino: ino, Parent: parent, Owner: parent}
		m.Add(n)
		mp := idmapOf(first, count)
		maps[n.Key()] = &tree.Maps{HostUIDMap: mp, HostGIDMap: mp}
		return n
	}
	for i := range 30 {
		add(uint64(100+i), host, 1000, 1)
	}
	wide := add(200, host, 900, 200) // meets the 30 at 1000
	// One branch whose namespace has no readable maps and two children
	// mapping the same ID: they stand in for it, and are not a pair.
	holder := &discover.Namespace{Type: nsrel.TypeUser, Ino: 300, Parent: host, Owner: host}
	m.Add(holder)
	maps[holder.Key()] = &tree.Maps{Error: "not readable (no process in this namespace)"}
	add(301, holder, 5000, 1)
	add(302, holder, 5000, 1)
	m.Link()

	r := lstool.Overlaps(m, maps)
	if r.Checked != 33 || r.Pairs != 30*29/2+30 || r.NotListed != 0 || len(r.Overlaps) != 2 {
		t.Fatalf("checked %d, pairs %d, not listed %d, %d overlaps; want 33, %d, 0, 2", r.Checked, r.Pairs, r.NotListed, len(r.Overlaps), 30*29/2+30)
	}
	same, meet := r.Overlaps[0], r.Overlaps[1]
	if len(same.Members) != 10 || same.NotListed != 20 || same.Pairs != 30*29/2 || same.UIDs.String() != "1000" || same.GIDs.String() != "1000" {
		t.Errorf("the same UID: %d listed, %d more, %d pairs, UIDs %s", len(same.Members), same.NotListed, same.Pairs, same.UIDs)
	}
	if len(meet.Members) != 10 || meet.NotListed != 21 || meet.Pairs != 30 || meet.B() != wide || meet.UIDs.String() != "1000" {
		t.Errorf("the wide one: %d listed, %d more, %d pairs, B %v, UIDs %s", len(meet.Members), meet.NotListed, meet.Pairs, meet.B().Name(), meet.UIDs)
	}

	var out strings.Builder
	code, err := lstool.OverlapCheck(&out, m, maps, false, false)
	if code != 1 || err != nil || strings.Count(out.String(), "\n") > 40 ||
		!strings.Contains(out.String(), "     and 20 more user namespaces\n    host UIDs 1000\n    host GIDs 1000\n") ||
		!strings.HasSuffix(out.String(), "465 pairs of user namespaces share host IDs (33 checked)\ncheck incomplete: 1 user namespace could not be checked\n") {
		t.Errorf("text: exit %d, %v:\n%s", code, err, out.String())
	}
	out.Reset()
	code, err = lstool.OverlapCheck(&out, m, maps, true, false)
	var doc lstool.OverlapDoc
	if jerr := json.Unmarshal([]byte(out.String()), &doc); jerr != nil || code != 1 || err != nil {
		t.Fatalf("json: exit %d, %v, %v:\n%s", code, err, jerr, out.String())
	}
	if doc.Pairs != 465 || doc.OverlapsNotListed != 0 || len(doc.Overlaps) != 2 || len(doc.Overlaps[0].Others) != 8 || doc.Overlaps[0].More != 20 || doc.Overlaps[0].Pairs != 435 {
		t.Errorf("json:\n%s", out.String())
	}
}

// TestOverlapsManySameUID: 300 real user namespaces (unshare -Ur, one
// sleep each, all mapping host UID and GID 0) overlap pairwise, 44,850
// pairs; --overlaps names the shared IDs once with a bounded list of
// namespaces and counts the pairs, rather than printing every pair.
func TestOverlapsManySameUID(t *testing.T) {
	nstest.RequireRoot(t)
	const n = 300
	sh := nstest.RequireCmd(t, "sh")
	nstest.RequireCmd(t, "unshare")
	p := nstest.Start(t, nil, sh, "-c", `i=0; while [ $i -lt $0 ]; do unshare -Ur sleep infinity & i=$((i+1)); done; wait`, strconv.Itoa(n))
	self := ino(t, os.Getpid(), "user")
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.Pid, p.Pid))
		running := 0
		for _, c := range strings.Fields(string(b)) {
			comm, _ := os.ReadFile("/proc/" + c + "/comm")
			m, _ := os.ReadFile("/proc/" + c + "/uid_map")
			var st syscall.Stat_t
			if strings.TrimSpace(string(comm)) == "sleep" && len(m) > 0 && syscall.Stat("/proc/"+c+"/ns/user", &st) == nil && st.Ino != self {
				running++
			}
		}
		if running == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d processes in user namespaces of their own after 30s", running, n)
		}
		time.Sleep(10 * time.Millisecond)
	}

	code, out, errOut := run(t, tool(nsrel.TypeUser), "--overlaps", "--no-containers")
	pairs := regexp.MustCompile(`(?m)^([0-9]+) pairs of user namespaces share host IDs`).FindStringSubmatch(out)
	if code != 1 || pairs == nil || len(out) > 64<<10 || !strings.Contains(out, "    host UIDs 0\n    host GIDs 0\n") ||
		!regexp.MustCompile(`(?m)^     and [0-9]+ more user namespaces$`).MatchString(out) {
		t.Fatalf("--overlaps with %d namespaces mapping UID 0: exit %d, %d bytes, want 1, under 64 KiB, naming host UID 0 once with the rest counted:\n%.4000s%s", n, code, len(out), out, errOut)
	}
	if got, _ := strconv.Atoi(pairs[1]); got < n*(n-1)/2 {
		t.Errorf("%d pairs, want at least %d", got, n*(n-1)/2)
	}
	code, out, _ = run(t, tool(nsrel.TypeUser), "--overlaps", "--json", "--no-containers")
	var doc lstool.OverlapDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 1 || len(out) > 64<<10 || doc.Pairs < n*(n-1)/2 {
		t.Errorf("--overlaps --json: exit %d, %d bytes, %d pairs, %v", code, len(out), doc.Pairs, err)
	}
}
