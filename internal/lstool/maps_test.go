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
	pairs, unchecked, checked := lstool.Overlaps(m, maps)
	if len(pairs) != 1 || pairs[0].A != b || pairs[0].B != c1 || pairs[0].UIDs.String() != "200000-200004" {
		t.Errorf("pairs %+v", pairs)
	}
	if len(unchecked) != 1 || unchecked[0].NS != c || checked != 3 {
		t.Errorf("unchecked %+v, checked %d", unchecked, checked)
	}
	maps[c1.Key()] = span(300000, 5)
	if pairs, _, _ := lstool.Overlaps(m, maps); len(pairs) != 0 {
		t.Errorf("disjoint branches: pairs %+v", pairs)
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
