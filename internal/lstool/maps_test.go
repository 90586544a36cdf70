package lstool_test

import (
	"context"
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
// shows, composed to host IDs for the nested one; --overlaps reports
// host UIDs and GIDs 65000-65535 of the range as shared by A and C only
// (not D and its nested namespace) and exits 1.
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
	// Other tests on the machine run user namespaces of their own: only
	// entries naming two of ours count here. Ours are the only ones with
	// containers (the fake source knows no others), so their entries are
	// listed first and name them first. A foreign namespace mapping part
	// of our IDs (an identity map, say) could split an entry in two: the
	// spans of the entries naming a and c are merged.
	ours := map[uint64]string{userIno(a.PID): "a", userIno(b.PID): "b", userIno(c.PID): "c", userIno(d.PID): "d", userIno(nested): "nested"}
	spans := map[string]idmap.Spans{}
	for _, e := range ov.Overlaps {
		var named []string
		for _, n := range e.Listed {
			if x, ok := ours[n.Ino]; ok {
				named = append(named, x)
			}
		}
		if len(named) < 2 {
			continue
		}
		if k := strings.Join(named, ","); k != "a,c" && k != "c,a" {
			t.Errorf("%s %d+%d names %s of ours, want only a and c", e.Kind, e.First, e.Count, k)
			continue
		}
		spans[e.Kind] = append(spans[e.Kind], idmap.Span{First: e.First, Count: e.Count})
	}
	want := fmt.Sprintf("%d-%d", base+65000, base+65535)
	if got := spans["uid"].Normal().String(); got != want {
		t.Errorf("host UIDs shared by a and c: %q, want %q:\n%s", got, want, out)
	}
	if got := spans["gid"].Normal().String(); got != want {
		t.Errorf("host GIDs shared by a and c: %q, want %q:\n%s", got, want, out)
	}
	// The text the same way: blocks naming two of ours name a and c,
	// and some UID block and some GID block do.
	code, out, _ = run(t, tool(nsrel.TypeUser, src), "--overlaps")
	labels := map[string]string{}
	for _, x := range []discover.Container{a, b, c, d} {
		labels[fmt.Sprintf("    user:[%d] containers: runc %s\n", userIno(x.PID), x.ID)] = x.ID
	}
	both := map[string]bool{}
	for _, block := range strings.Split(out, "overlap: host ")[1:] {
		var named []string
		for _, line := range strings.SplitAfter(block, "\n") {
			if id, ok := labels[line]; ok {
				named = append(named, id)
			}
		}
		switch {
		case len(named) < 2:
		case len(named) == 2 && slices.Contains(named, a.ID) && slices.Contains(named, c.ID):
			both[block[:4]] = true
		default:
			t.Errorf("--overlaps block names %v of ours, want only a and c:\n%s", named, block)
		}
	}
	if code != 1 || !both["UIDs"] || !both["GIDs"] {
		t.Errorf("--overlaps exit %d, want 1 with UID and GID ranges naming a and c:\n%s", code, out)
	}
}

// TestOverlapsModel checks the sweep on a model: siblings overlap
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
	if got := describe(r); got != "UIDs 200000-200004 2/2 [20 31]; GIDs 200000-200004 2/2 [20 31]" || r.Ranges != 2 || r.Involved != 2 || r.NotListed != 0 {
		t.Errorf("shared %s, %d ranges, %d involved", got, r.Ranges, r.Involved)
	}
	if len(r.Unchecked) != 1 || r.Unchecked[0].NS != c || r.Checked != 3 {
		t.Errorf("unchecked %+v, checked %d", r.Unchecked, r.Checked)
	}
	maps[c1.Key()] = span(300000, 5)
	if r := lstool.Overlaps(m, maps); len(r.Shared) != 0 || r.Ranges != 0 || r.Involved != 0 {
		t.Errorf("disjoint branches: shared %s", describe(r))
	}
}

// describe shows the shared ranges of r as "KIND IDS NAMESPACES/BRANCHES
// [LISTED INODES] +MORE", joined by "; ".
func describe(r lstool.OverlapReport) string {
	var parts []string
	for _, s := range r.Shared {
		var inos []uint64
		for _, n := range s.Members {
			inos = append(inos, n.Ino)
		}
		x := fmt.Sprintf("%s %s %d/%d %v", s.Kind(), s.IDs, s.Namespaces, s.Branches, inos)
		if s.NotListed > 0 {
			x += fmt.Sprintf(" +%d", s.NotListed)
		}
		parts = append(parts, x)
	}
	return strings.Join(parts, "; ")
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

// privatePIDNS runs `sh -c script args...` as PID 1 of a PID namespace
// with a /proc of its own (unshare -pf --mount-proc), so that lsuserns
// run there ([runInside]) sees only the script's processes, not the user
// namespaces of other tests running on the machine. It returns the
// shell's host PID.
func privatePIDNS(t *testing.T, script string, args ...string) int {
	t.Helper()
	sh := nstest.RequireCmd(t, "sh")
	nstest.RequireCmd(t, "nsenter")
	p := nstest.Start(t, nil, nstest.RequireCmd(t, "unshare"), append([]string{"-pf", "--kill-child", "--mount-proc", sh, "-c", script}, args...)...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.Pid, p.Pid))
		if f := strings.Fields(string(b)); len(f) > 0 {
			pid, _ := strconv.Atoi(f[0])
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("unshare -pf (pid %d): no child after 30s", p.Pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitSleeps waits (up to 60 s) until n children of pid run sleep in
// user namespaces of their own with maps written, and returns them.
func waitSleeps(t *testing.T, pid, n int) []int {
	t.Helper()
	self := ino(t, os.Getpid(), "user")
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		var ready []int
		for _, c := range strings.Fields(string(b)) {
			comm, _ := os.ReadFile("/proc/" + c + "/comm")
			m, _ := os.ReadFile("/proc/" + c + "/uid_map")
			var st syscall.Stat_t
			if strings.TrimSpace(string(comm)) == "sleep" && len(m) > 0 && syscall.Stat("/proc/"+c+"/ns/user", &st) == nil && st.Ino != self {
				p, _ := strconv.Atoi(c)
				ready = append(ready, p)
			}
		}
		if len(ready) == n {
			return ready
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d processes in user namespaces of their own after 60s", len(ready), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nsPID returns the PID of host process pid in its own PID namespace.
func nsPID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "NSpid:" {
			n, _ := strconv.Atoi(f[len(f)-1])
			return n
		}
	}
	t.Fatalf("pid %d: no NSpid line", pid)
	return 0
}

// runInside runs lsuserns with args in the PID and mount namespaces of
// pid (nsenter -p -m: its /proc shows that PID namespace only). The
// mount table there is a copy of the host's, which may hold nsfs bind
// mounts of other tests' user namespaces: "not checked" lines and the
// "check incomplete" line they cause are dropped from the text output.
// After 2 minutes (it takes well under a second) nsenter and pid are
// killed: pid is the PID namespace's init, whose death kills lsuserns,
// nsenter's child there, which would otherwise hold the output pipes
// open; Wait gives up on the pipes 10 s later whatever happens.
func runInside(t *testing.T, pid int, args ...string) (code int, out, errOut string) {
	t.Helper()
	code, out, errOut = runInsideTo(t, pid, nil, args...)
	var kept []string
	for _, line := range strings.SplitAfter(out, "\n") {
		if !strings.HasPrefix(line, "not checked: ") && !strings.HasPrefix(line, "check incomplete: ") {
			kept = append(kept, line)
		}
	}
	return code, strings.Join(kept, ""), errOut
}

// runInsideTo runs lsuserns as [runInside] does, its output to stdout
// (nil: returned as out, unfiltered).
func runInsideTo(t *testing.T, pid int, stdout *os.File, args ...string) (code int, out, errOut string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nstest.RequireCmd(t, "nsenter"), append([]string{"-t", strconv.Itoa(pid), "-p", "-m", "--", nstest.Tool(t, "lsuserns")}, args...)...)
	cmd.Cancel = func() error {
		syscall.Kill(pid, syscall.SIGKILL)
		return cmd.Process.Kill()
	}
	cmd.WaitDelay = 10 * time.Second
	var output, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &output, &stderr
	if stdout != nil {
		cmd.Stdout = stdout
	}
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("nsenter: %v", err)
	}
	return code, output.String(), stderr.String()
}

// TestOverlapsReaderGone: a reader gone early (lsuserns --overlaps |
// head -1) made the node check exit 0 whatever it found: the write's
// EPIPE ends the output only, the exit status is the check's.
func TestOverlapsReaderGone(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireCmd(t, "unshare")
	sh := privatePIDNS(t, `unshare -Ur sleep 1000 & unshare -Ur sleep 1000 & wait`)
	waitSleeps(t, sh, 2)
	for _, args := range [][]string{{"--overlaps", "--no-containers"}, {"--overlaps", "--json", "--no-containers"}} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		code, _, errOut := runInsideTo(t, sh, w, args...)
		w.Close()
		if code != 1 || strings.Contains(errOut, "pipe") {
			t.Errorf("lsuserns %q, its reader gone, two namespaces sharing host IDs: exit %d, stderr %q; want 1 and no word of the pipe", args, code, errOut)
		}
	}
}

// TestOverlapsBindMountNotOpened: a user namespace held only by a bind
// mount that another mount covers is not opened (the notice says so);
// --overlaps called the check complete (exit 0, "complete": true).
func TestOverlapsBindMountNotOpened(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireCmd(t, "unshare")
	dir := t.TempDir()
	sh := privatePIDNS(t, `set -e
d=$0; mkdir "$d/sub"; touch "$d/sub/u"
unshare -U sh -c 'touch "$0/ready"; exec sleep 1000' "$d" & p=$!
while [ ! -e "$d/ready" ]; do sleep 0.01; done
mount --bind /proc/$p/ns/user "$d/sub/u"
kill $p; wait $p || true
mount -t tmpfs none "$d"
touch "$d/covered"
exec sleep 1000`, dir)
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The tmpfs is there once the file made in it is.
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/root%s/covered", sh, dir)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the bind mount was not covered after 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, out, errOut := runInsideTo(t, sh, nil, "--overlaps", "--no-containers")
	if code != 1 || !regexp.MustCompile(`(?m)^check incomplete: .*namespace bind mounts? (was|were) not opened`).MatchString(out) {
		t.Errorf("--overlaps with a covered bind mount: exit %d; want 1 and that a bind mount was not opened:\n%s%s", code, out, errOut)
	}
	code, out, errOut = runInsideTo(t, sh, nil, "--overlaps", "--json", "--no-containers")
	var doc lstool.OverlapDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--overlaps --json: %v\n%s%s", err, out, errOut)
	}
	if code != 1 || doc.Complete {
		t.Errorf("--overlaps --json with a covered bind mount: exit %d, complete %v; want 1 and false:\n%s%s", code, doc.Complete, out, errOut)
	}
}

// sleepsShared checks the text --overlaps printed (out) for n sleeps
// (host PIDs pids) in user namespaces of n branches all mapping host UID
// and GID 0 and nothing else: the UIDs and the GIDs as two shared
// ranges, each naming min(n, 10) distinct ones of them by inode, with
// the PIDs they have in their PID namespace, and counting the rest.
func sleepsShared(t *testing.T, pids []int, out string) {
	t.Helper()
	labels := map[string]bool{}
	for _, p := range pids {
		labels[fmt.Sprintf("    user:[%d] pid %d sleep\n", ino(t, p, "user"), nsPID(t, p))] = true
	}
	var b, want strings.Builder
	seen := map[string]bool{}
	for _, line := range strings.SplitAfter(out, "\n") {
		if strings.HasPrefix(line, "overlap: ") {
			clear(seen)
		}
		if labels[line] && !seen[line] {
			seen[line] = true
			line = "    (ours)\n"
		}
		b.WriteString(line)
	}
	for _, kind := range []string{"UIDs", "GIDs"} {
		fmt.Fprintf(&want, "overlap: host %s 0 mapped by %d user namespaces in %d branches:\n", kind, len(pids), len(pids))
		want.WriteString(strings.Repeat("    (ours)\n", min(10, len(pids))))
		if len(pids) > 10 {
			fmt.Fprintf(&want, "    and %d more\n", len(pids)-10)
		}
	}
	fmt.Fprintf(&want, "2 host ID ranges shared across branches by %d user namespaces (%d checked)\n", len(pids), len(pids))
	if b.String() != want.String() {
		t.Errorf("--overlaps with %d namespaces mapping UID 0: want (ours: a label of one of them, once per range)\n%s\ngot\n%.4000s", len(pids), want.String(), out)
	}
}

// TestOverlapsCommand: a namespace without containers is labelled by its
// first process with its command name, as --details names it. Two
// unshare -Ur namespaces both map host UID and GID 0, in a PID namespace
// of their own so that the report holds them only.
func TestOverlapsCommand(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireCmd(t, "unshare")
	sh := privatePIDNS(t, `unshare -Ur sleep 1000 & unshare -Ur sleep 1000 & wait`)
	pids := waitSleeps(t, sh, 2)
	code, out, errOut := runInside(t, sh, "--overlaps", "--no-containers")
	if code != 1 {
		t.Errorf("--overlaps: exit %d, want 1:\n%s%s", code, out, errOut)
	}
	sleepsShared(t, pids, out)
	// Both named, by inode.
	a, b := ino(t, pids[0], "user"), ino(t, pids[1], "user")
	if a > b {
		a, b = b, a
	}
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^    user:\[%d\] pid [0-9]+ sleep\n    user:\[%d\] pid [0-9]+ sleep$`, a, b)).MatchString(out) {
		t.Errorf("--overlaps does not name user:[%d] and user:[%d] in this order:\n%s", a, b, out)
	}
}

// TestOverlapsGrouped checks the sweep on a model: 30 namespaces of 30
// branches mapping the same host UID and one namespace whose wider range
// holds it share one range per kind, naming the first ten and counting
// the rest; two namespaces of one branch mapping the same ID share
// nothing.
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
	add(200, host, 900, 200) // holds the 30's 1000
	// One branch whose namespace has no readable maps and two children
	// mapping the same ID: they stand in for it, and share nothing.
	holder := &discover.Namespace{Type: nsrel.TypeUser, Ino: 300, Parent: host, Owner: host}
	m.Add(holder)
	maps[holder.Key()] = &tree.Maps{Error: "not readable (no process in this namespace)"}
	add(301, holder, 5000, 1)
	add(302, holder, 5000, 1)
	m.Link()

	r := lstool.Overlaps(m, maps)
	// The first ten of the set mapping 1000 when the sweep reaches it:
	// the wide one, which came first, and nine of the thirty.
	first := "[100 101 102 103 104 105 106 107 108 200] +21"
	if got, want := describe(r), "UIDs 1000 31/31 "+first+"; GIDs 1000 31/31 "+first; got != want || r.Checked != 33 || r.Ranges != 2 || r.Involved != 31 || r.NotListed != 0 {
		t.Fatalf("shared %s, checked %d, %d ranges, %d involved, %d not listed; want %s, 33, 2, 31, 0", got, r.Checked, r.Ranges, r.Involved, r.NotListed, want)
	}

	var out strings.Builder
	code, err := lstool.OverlapCheck(&out, m, maps, false, false, "")
	var want strings.Builder
	for _, kind := range []string{"UIDs", "GIDs"} {
		fmt.Fprintf(&want, "overlap: host %s 1000 mapped by 31 user namespaces in 31 branches:\n", kind)
		for i := range 9 {
			fmt.Fprintf(&want, "    user:[%d]\n", 100+i)
		}
		want.WriteString("    user:[200]\n")
		want.WriteString("    and 21 more\n")
	}
	want.WriteString("not checked: user:[300]: maps not readable (no process in this namespace)\n" +
		"2 host ID ranges shared across branches by 31 user namespaces (33 checked)\n" +
		"check incomplete: 1 user namespace could not be checked\n")
	if code != 1 || err != nil || out.String() != want.String() {
		t.Errorf("text: exit %d, %v, want 1 and\n%s\ngot\n%s", code, err, want.String(), out.String())
	}
	out.Reset()
	code, err = lstool.OverlapCheck(&out, m, maps, true, false, "")
	var doc lstool.OverlapDoc
	if jerr := json.Unmarshal([]byte(out.String()), &doc); jerr != nil || code != 1 || err != nil {
		t.Fatalf("json: exit %d, %v, %v:\n%s", code, err, jerr, out.String())
	}
	if doc.SharedRanges != 2 || doc.Involved != 31 || doc.Checked != 33 || doc.Complete || doc.OverlapsNotListed != 0 || len(doc.Overlaps) != 2 ||
		doc.Overlaps[0].Kind != "uid" || doc.Overlaps[1].Kind != "gid" || doc.Overlaps[0].First != 1000 || doc.Overlaps[0].Count != 1 ||
		doc.Overlaps[0].Namespaces != 31 || doc.Overlaps[0].Branches != 31 || len(doc.Overlaps[0].Listed) != 10 || doc.Overlaps[0].More != 21 || len(doc.Unchecked) != 1 {
		t.Errorf("json:\n%s", out.String())
	}
}

// sweepModel builds a model of user namespaces below the host's: each
// spec is an inode, a parent inode (0: the host's), host UID spans as
// [first, count] pairs (GIDs: the same plus gidOffset) and whether it
// has containers; a parent given with no spans has no readable maps.
type sweepNS struct {
	ino, parent uint64
	spans       [][2]uint32
	containers  bool
}

func sweepModel(gidOffset uint32, specs ...sweepNS) (*discover.Model, map[discover.Key]*tree.Maps) {
	m := discover.NewModel()
	host := &discover.Namespace{Type: nsrel.TypeUser, Ino: 1}
	m.Add(host)
	byIno := map[uint64]*discover.Namespace{1: host}
	maps := map[discover.Key]*tree.Maps{}
	for _, sp := range specs {
		parent := byIno[max(sp.parent, 1)]
		n := &discover.Namespace{Type: nsrel.TypeUser, Ino: sp.ino, Parent: parent, Owner: parent}
		if sp.containers {
			n.Containers = []discover.Container{{ID: fmt.Sprint("c", sp.ino), Engine: "runc"}}
		}
		byIno[sp.ino] = n
		m.Add(n)
		if sp.spans == nil {
			maps[n.Key()] = &tree.Maps{Error: "not readable (no process in this namespace)"}
			continue
		}
		var u, g idmap.Map
		inside := uint32(0)
		for _, s := range sp.spans {
			u = append(u, idmap.Range{Inside: inside, Outside: s[0], Count: s[1]})
			g = append(g, idmap.Range{Inside: inside, Outside: s[0] + gidOffset, Count: s[1]})
			inside += s[1]
		}
		maps[n.Key()] = &tree.Maps{HostUIDMap: u, HostGIDMap: g}
	}
	m.Link()
	return m, maps
}

// TestOverlapsSweep: partial and nested overlaps split into elementary
// ranges, each with the namespaces mapping it; namespaces of one branch
// (two children standing in for an unreadable one) share nothing
// between them but do with other branches; ranges mapped by a namespace
// with containers come first, and name those first; a namespace's
// several spans; the counts.
func TestOverlapsSweep(t *testing.T) {
	m, maps := sweepModel(1_000_000,
		sweepNS{ino: 10, spans: [][2]uint32{{100, 100}}},                  // A 100-199
		sweepNS{ino: 20, spans: [][2]uint32{{150, 100}}},                  // B 150-249
		sweepNS{ino: 30, spans: [][2]uint32{{180, 10}}, containers: true}, // C 180-189
		sweepNS{ino: 40}, // unreadable branch root
		sweepNS{ino: 41, parent: 40, spans: [][2]uint32{{100, 200}}},              // H1 100-299
		sweepNS{ino: 42, parent: 40, spans: [][2]uint32{{400, 100}}},              // H2 400-499
		sweepNS{ino: 43, parent: 40, spans: [][2]uint32{{600, 10}}},               // H3 600-609
		sweepNS{ino: 44, parent: 40, spans: [][2]uint32{{605, 10}}},               // H4 605-614, H3's branch
		sweepNS{ino: 50, spans: [][2]uint32{{450, 10}, {5, 1}}, containers: true}, // E 450-459 and 5
		sweepNS{ino: 60, spans: [][2]uint32{{5, 2}}},                              // F 5-6
	)
	r := lstool.Overlaps(m, maps)
	want := []string{
		// Mapped by a namespace with containers, by host ID.
		"UIDs 5 2/2 [50 60]", "UIDs 180-189 4/4 [30 10 20 41]", "UIDs 450-459 2/2 [50 42]",
		"GIDs 1000005 2/2 [50 60]", "GIDs 1000180-1000189 4/4 [30 10 20 41]", "GIDs 1000450-1000459 2/2 [50 42]",
		// The others.
		"UIDs 100-149 2/2 [10 41]", "UIDs 150-179 3/3 [10 20 41]", "UIDs 190-199 3/3 [10 20 41]", "UIDs 200-249 2/2 [20 41]",
		"GIDs 1000100-1000149 2/2 [10 41]", "GIDs 1000150-1000179 3/3 [10 20 41]", "GIDs 1000190-1000199 3/3 [10 20 41]", "GIDs 1000200-1000249 2/2 [20 41]",
	}
	if got := describe(r); got != strings.Join(want, "; ") {
		t.Errorf("shared ranges\n%s\nwant\n%s", strings.ReplaceAll(got, "; ", "\n"), strings.Join(want, "\n"))
	}
	// A, B, C, H1, H2, E, F; not H3 and H4, of one branch.
	if r.Ranges != 14 || r.Involved != 7 || r.Checked != 9 || r.NotListed != 0 || len(r.Unchecked) != 1 {
		t.Errorf("%d ranges, %d involved, %d checked, %d not listed, %d unchecked; want 14, 7, 9, 0, 1", r.Ranges, r.Involved, r.Checked, r.NotListed, len(r.Unchecked))
	}
}

// TestOverlapsCapped: 1,500 namespaces of as many branches, each
// overlapping the next by one ID, share 1,499 UID and 1,499 GID ranges;
// 1,000 are listed, those of the one namespace with containers (the
// last) first, then by host ID, UIDs before GIDs; the rest are counted,
// in text and JSON, and the output stays bounded.
func TestOverlapsCapped(t *testing.T) {
	const n = 1500
	var specs []sweepNS
	for i := range n {
		specs = append(specs, sweepNS{ino: uint64(100 + i), spans: [][2]uint32{{uint32(10 * i), 11}}, containers: i == n-1})
	}
	m, maps := sweepModel(0, specs...)
	r := lstool.Overlaps(m, maps)
	if r.Ranges != 2*(n-1) || r.Involved != n || r.Checked != n || len(r.Shared) != 1000 || r.NotListed != 2*(n-1)-1000 {
		t.Fatalf("%d ranges, %d involved, %d checked, %d listed, %d not listed", r.Ranges, r.Involved, r.Checked, len(r.Shared), r.NotListed)
	}
	last := 10 * (n - 1)
	for i, want := range []string{
		fmt.Sprintf("UIDs %d 2/2 [%d %d]", last, 100+n-1, 100+n-2), fmt.Sprintf("GIDs %d 2/2 [%d %d]", last, 100+n-1, 100+n-2),
		"UIDs 10 2/2 [100 101]", "GIDs 10 2/2 [100 101]", "UIDs 20 2/2 [101 102]",
	} {
		if got := describe(lstool.OverlapReport{Shared: r.Shared[i : i+1]}); got != want {
			t.Errorf("shared range %d: %s, want %s", i, got, want)
		}
	}
	var out strings.Builder
	if code, err := lstool.OverlapCheck(&out, m, maps, false, false, ""); code != 1 || err != nil ||
		strings.Count(out.String(), "overlap: ") != 1000 || !strings.HasSuffix(out.String(), fmt.Sprintf("\n%d more shared host ID ranges not listed\n%d host ID ranges shared across branches by %d user namespaces (%d checked)\n", 2*(n-1)-1000, 2*(n-1), n, n)) {
		t.Errorf("text: exit %d, %v:\n%.2000s", code, err, out.String())
	}
	out.Reset()
	var doc lstool.OverlapDoc
	code, err := lstool.OverlapCheck(&out, m, maps, true, false, "")
	if jerr := json.Unmarshal([]byte(out.String()), &doc); jerr != nil || code != 1 || err != nil || len(doc.Overlaps) != 1000 || doc.OverlapsNotListed != 2*(n-1)-1000 || doc.SharedRanges != 2*(n-1) || doc.Involved != n {
		t.Errorf("json: exit %d, %v, %v, %d listed, %d not listed", code, err, jerr, len(doc.Overlaps), doc.OverlapsNotListed)
	}
}

// TestOverlapsManySameUID: 300 real user namespaces (unshare -Ur, one
// sleep each, all mapping host UID and GID 0), in a PID namespace of
// their own: --overlaps names host UID 0 and GID 0 once each with ten
// namespaces and the rest counted, rather than their 44,850 pairs.
func TestOverlapsManySameUID(t *testing.T) {
	nstest.RequireRoot(t)
	const n = 300
	nstest.RequireCmd(t, "unshare")
	sh := privatePIDNS(t, `i=0; while [ $i -lt $0 ]; do unshare -Ur sleep 1000 & i=$((i+1)); done; wait`, strconv.Itoa(n))
	pids := waitSleeps(t, sh, n)

	code, out, errOut := runInside(t, sh, "--overlaps", "--no-containers")
	if code != 1 {
		t.Errorf("--overlaps: exit %d, want 1:\n%.4000s%s", code, out, errOut)
	}
	sleepsShared(t, pids, out)
	code, out, errOut = runInside(t, sh, "--overlaps", "--json", "--no-containers")
	var doc lstool.OverlapDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 1 || len(out) > 64<<10 || doc.SharedRanges != 2 || doc.Involved != n || doc.Checked != n || len(doc.Overlaps) != 2 {
		t.Fatalf("--overlaps --json: exit %d, %d bytes, %v, want 1, under 64 KiB, 2 shared ranges of %d namespaces:\n%.4000s%s", code, len(out), err, n, out, errOut)
	}
	for _, e := range doc.Overlaps {
		if e.First != 0 || e.Count != 1 || e.Namespaces != n || e.Branches != n || len(e.Listed) != 10 || e.More != n-10 {
			t.Errorf("--overlaps --json entry %+v", e)
		}
	}
}

// TestOverlapsRankedByContainerBranches: namespaces that share host IDs
// with one container's namespace only cannot push a range two
// containers of different branches share out of the 1,000 listed. C
// (containers) maps 0-9999; 1,200 namespaces without containers, each
// in a branch of its own, map 0, 2, 4, …, splitting C's range into 1,200
// shared single IDs (per kind) below the 900000-900009 that containers
// A and B share: that range is listed first, then those involving one
// container branch, by host ID.
func TestOverlapsRankedByContainerBranches(t *testing.T) {
	specs := []sweepNS{
		{ino: 10, spans: [][2]uint32{{0, 10000}}, containers: true},
		{ino: 20, spans: [][2]uint32{{900000, 10}}, containers: true},
		{ino: 30, spans: [][2]uint32{{900000, 10}}, containers: true},
	}
	for i := range 1200 {
		specs = append(specs, sweepNS{ino: uint64(1000 + i), spans: [][2]uint32{{uint32(2 * i), 1}}})
	}
	m, maps := sweepModel(0, specs...)
	r := lstool.Overlaps(m, maps)
	if r.Ranges != 2402 || len(r.Shared) != 1000 || r.NotListed != 1402 {
		t.Fatalf("%d ranges, %d listed, %d not listed; want 2402, 1000, 1402", r.Ranges, len(r.Shared), r.NotListed)
	}
	for i, want := range []string{"UIDs 900000-900009 2/2 [20 30]", "GIDs 900000-900009 2/2 [20 30]", "UIDs 0 2/2 [10 1000]", "GIDs 0 2/2 [10 1000]", "UIDs 2 2/2 [10 1001]"} {
		if got := describe(lstool.OverlapReport{Shared: r.Shared[i : i+1]}); got != want {
			t.Errorf("shared range %d: %s, want %s", i, got, want)
		}
	}
}

// TestOverlapsNamesBranches: 12 namespaces with containers in one
// branch (children of an unreadable one) and one without containers in
// another all map host ID 1000: the 10 named include the second
// branch's, with the containers' first.
func TestOverlapsNamesBranches(t *testing.T) {
	specs := []sweepNS{{ino: 40}}
	for i := range 12 {
		specs = append(specs, sweepNS{ino: uint64(41 + i), parent: 40, spans: [][2]uint32{{1000, 1}}, containers: true})
	}
	specs = append(specs, sweepNS{ino: 60, spans: [][2]uint32{{1000, 1}}})
	m, maps := sweepModel(1_000_000, specs...)
	r := lstool.Overlaps(m, maps)
	if got, want := describe(r), "UIDs 1000 13/2 [41 42 43 44 45 46 47 48 49 60] +3; GIDs 1001000 13/2 [41 42 43 44 45 46 47 48 49 60] +3"; got != want {
		t.Errorf("shared %s, want %s", got, want)
	}
	// Three branches with containers and nine without, one namespace
	// each, plus eight more with containers in the first branch: one of
	// each branch is named before the first branch's others.
	specs = []sweepNS{{ino: 100}}
	for i := range 9 {
		specs = append(specs, sweepNS{ino: uint64(101 + i), parent: 100, spans: [][2]uint32{{1000, 1}}, containers: true})
	}
	specs = append(specs, sweepNS{ino: 200, spans: [][2]uint32{{1000, 1}}, containers: true}, sweepNS{ino: 300, spans: [][2]uint32{{1000, 1}}, containers: true})
	for i := range 9 {
		specs = append(specs, sweepNS{ino: uint64(400 + i), spans: [][2]uint32{{1000, 1}}})
	}
	m, maps = sweepModel(0, specs...)
	r = lstool.Overlaps(m, maps)
	if got, want := describe(lstool.OverlapReport{Shared: r.Shared[:1]}), "UIDs 1000 20/12 [101 200 300 400 401 402 403 404 405 406] +10"; got != want {
		t.Errorf("shared %s, want %s", got, want)
	}
}

// TestOverlapsJSONBounded: a namespace with 340 host spans, 5,000
// processes and 50 containers, each span shared with another namespace,
// is named in 680 entries: each names its first 10 PIDs and 10
// containers and counts the rest, so that the document stays small (it
// was 64.8 MB); the text names 10 containers too.
func TestOverlapsJSONBounded(t *testing.T) {
	var spans [][2]uint32
	for i := range 340 {
		spans = append(spans, [2]uint32{uint32(10 * i), 1})
	}
	m, maps := sweepModel(1_000_000, sweepNS{ino: 10, spans: spans, containers: true}, sweepNS{ino: 20, spans: [][2]uint32{{0, 3400}}}, sweepNS{ino: 30})
	for _, n := range m.Of(nsrel.TypeUser) {
		if n.Ino != 10 && n.Ino != 30 {
			continue
		}
		n.Containers = nil
		for i := range 50 {
			n.Containers = append(n.Containers, discover.Container{ID: fmt.Sprintf("web-%d-%d", n.Ino, i), Engine: "runc"})
		}
		for i := range 5000 {
			n.Processes = append(n.Processes, discover.Process{PID: 100000 + i})
		}
	}
	var out strings.Builder
	if _, err := lstool.OverlapCheck(&out, m, maps, true, false, ""); err != nil {
		t.Fatal(err)
	}
	var doc lstool.OverlapDoc
	if err := json.Unmarshal([]byte(out.String()), &doc); err != nil || len(doc.Overlaps) != 680 || len(out.String()) > 2<<20 {
		t.Fatalf("%d entries, %d bytes, %v; want 680, under 2 MiB", len(doc.Overlaps), len(out.String()), err)
	}
	refs := []lstool.NSRef{doc.Unchecked[0].NSRef}
	for _, e := range doc.Overlaps {
		refs = append(refs, e.Listed[0])
	}
	for _, ref := range refs {
		if ref.Ino != 10 && ref.Ino != 30 || len(ref.PIDs) != 10 || ref.PIDs[0] != 100000 || ref.PIDsMore != 4990 || len(ref.Containers) != 10 || ref.ContainersMore != 40 {
			t.Fatalf("user:[%d]: %d pids, %d more, %d containers, %d more; want 10, 4990, 10, 40", ref.Ino, len(ref.PIDs), ref.PIDsMore, len(ref.Containers), ref.ContainersMore)
		}
	}
	out.Reset()
	if _, err := lstool.OverlapCheck(&out, m, maps, false, false, ""); err != nil || !strings.Contains(out.String(), "    user:[10] containers: runc web-10-0, runc web-10-1, runc web-10-2, runc web-10-3, runc web-10-4, runc web-10-5, runc web-10-6, runc web-10-7, runc web-10-8, runc web-10-9 and 40 more\n") || len(out.String()) > 1<<20 {
		t.Errorf("text: %v, %d bytes:\n%.2000s", err, len(out.String()), out.String())
	}
}

// TestOverlapCheckReusedInodes: a scan in which a namespace took the
// inode of one it had found without holding it open (past its budget of
// descriptors) misses the new one: the node check is incomplete, exit 1
// (it passed, exit 0, and an unprivileged user could make it so).
func TestOverlapCheckReusedInodes(t *testing.T) {
	m := discover.NewModel()
	m.ReusedInodes = 1
	var out strings.Builder
	code, err := lstool.OverlapCheck(&out, m, map[discover.Key]*tree.Maps{}, false, false, "")
	if code != 1 || err != nil || !strings.Contains(out.String(), "check incomplete: namespaces were replaced while the scan ran") {
		t.Errorf("exit %d, %v; want 1 and the check incomplete:\n%s", code, err, out.String())
	}
}

// TestOverlapCheckSkippedSockets: sockets not asked for their network
// namespace (cgroup v1 net_cls or net_prio in use: every socket on the
// node) leave out a user namespace only a socket's network namespace
// owns, which any user can make: the check is incomplete, and says why
// (a version that did not count them, lest such nodes fail for good,
// let a hidden namespace pass, a review found).
func TestOverlapCheckSkippedSockets(t *testing.T) {
	m := discover.NewModel()
	m.SkippedSockets, m.SkippedWhy = 40, "net_cls"
	var out strings.Builder
	code, err := lstool.OverlapCheck(&out, m, map[discover.Key]*tree.Maps{}, false, false, "")
	if code != 1 || err != nil || !strings.Contains(out.String(), "check incomplete: 40 sockets were not asked for their network namespaces (cgroup v1 net_cls or net_prio)") {
		t.Errorf("exit %d, %v; want 1 and the check incomplete:\n%s", code, err, out.String())
	}
}

// TestOverlapsFUSEMountOfFoundNamespace: a bind mount below a FUSE mount
// (not opened: its server could hold the lookup for good) of a user
// namespace a process holds too hides nothing; it made the check
// incomplete (pods' namespace pins below a FUSE root: every such node
// failed it).
func TestOverlapsFUSEMountOfFoundNamespace(t *testing.T) {
	nstest.RequireRoot(t)
	_, err := os.Stat("/dev/fuse")
	nstest.Require(t, err == nil, "/dev/fuse: %v", err)
	dir := t.TempDir()
	sh := privatePIDNS(t, `set -e
d=$0; mkdir -p "$d/a/b"; touch "$d/a/b/x"
unshare -U sh -c 'touch "$0/ready"; exec sleep 1000' "$d" & p=$!
while [ ! -e "$d/ready" ]; do sleep 0.01; done
mount --bind /proc/$p/ns/user "$d/a/b/x"
exec 3<>/dev/fuse
mount -i -t fuse -o fd=3,rootmode=40000,user_id=0,group_id=0 nsrel-test "$d/a"
touch "$d/fused"
exec sleep 1000`, dir)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/root%s/fused", sh, dir)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the FUSE mount was not made after 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, out, errOut := runInsideTo(t, sh, nil, "--overlaps", "--no-containers")
	if code != 0 || strings.Contains(out, "check incomplete") {
		t.Errorf("--overlaps with a FUSE-covered mount of a namespace a process holds: exit %d; want 0, complete:\n%s%s", code, out, errOut)
	}
	// Told not to read a source: not complete.
	for _, flag := range []string{"--no-fds", "--no-mounts", "--no-threads", "--no-other-types"} {
		code, out, errOut = runInsideTo(t, sh, nil, "--overlaps", "--no-containers", flag)
		if code != 1 || !strings.Contains(out, "check incomplete: the scan was told not to read some sources ("+flag+")") {
			t.Errorf("--overlaps %s: exit %d; want 1, incomplete:\n%s%s", flag, code, out, errOut)
		}
	}
}

// TestDetailsFromChildUserNS: lsuserns --details run in a user namespace
// other than the initial one said its own namespace mapped "host UIDs
// 0-4294967294": the maps are relative to the viewer's namespace, whose
// IDs are not the host's. They are labelled with it now.
func TestDetailsFromChildUserNS(t *testing.T) {
	nstest.RequireRoot(t)
	unshare := nstest.RequireCmd(t, "unshare")
	out, err := exec.Command(unshare, "-Ur", "sh", "-c", `readlink /proc/self/ns/user; "$0" --details --no-containers && echo JSON && exec "$0" --json --no-containers`, nstest.Tool(t, "lsuserns")).Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	self, rest, _ := strings.Cut(string(out), "\n")
	rest, js, _ := strings.Cut(rest, "JSON\n")
	// Its own maps are the IDs its lines map (unshare -r: 0 alone).
	if strings.Contains(rest, "host UIDs") || !strings.Contains(rest, self+" owner ") || !strings.Contains(rest, "setgroups deny, in "+self+" UIDs 0, in "+self+" GIDs 0") {
		t.Errorf("lsuserns --details in %s:\n%s\nwant its maps labelled with it, not the host, and only the IDs it has", self, rest)
	}
	var doc struct {
		Namespaces []struct {
			Ino  uint64
			Maps struct {
				HostUIDMap [][3]uint32 `json:"host_uid_map"`
				Viewer     *string
			}
		}
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		t.Fatalf("--json: %v\n%s", err, js)
	}
	for _, n := range doc.Namespaces {
		if n.Maps.Viewer == nil || *n.Maps.Viewer != self {
			t.Errorf("--json in %s: user:[%d] has viewer %v", self, n.Ino, n.Maps.Viewer)
		}
		if fmt.Sprintf("user:[%d]", n.Ino) == self && !cmp.Equal(n.Maps.HostUIDMap, [][3]uint32{{0, 0, 1}}) {
			t.Errorf("--json in %s: its own host_uid_map %v; want [[0 0 1]]", self, n.Maps.HostUIDMap)
		}
	}
}

// TestOverlapsFromChildUserNS runs lsuserns --overlaps in a user
// namespace (unshare -r), with two child namespaces that both map its
// UID 0: the shared IDs are that namespace's, and the check said "host
// UIDs 0"; its JSON did not name the namespace.
func TestOverlapsFromChildUserNS(t *testing.T) {
	nstest.RequireRoot(t)
	unshare := nstest.RequireCmd(t, "unshare")
	script := `readlink /proc/self/ns/user
"$1" -Ur sleep 60 & a=$!
"$1" -Ur sleep 60 & b=$!
trap 'kill $a $b 2>/dev/null' EXIT
for i in $(seq 100); do
	[ "$(readlink /proc/$a/ns/user)" != "$(readlink /proc/self/ns/user)" ] && [ "$(readlink /proc/$b/ns/user)" != "$(readlink /proc/self/ns/user)" ] && break
	sleep 0.05
done
"$0" --overlaps --no-containers
echo "EXIT $?"
"$0" --overlaps --json --no-containers
echo "EXIT $?"`
	out, err := exec.Command(unshare, "-Ur", "sh", "-c", script, nstest.Tool(t, "lsuserns"), unshare).Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	self, rest, _ := strings.Cut(string(out), "\n")
	text, js, _ := strings.Cut(rest, "EXIT 1\n")
	js = strings.TrimSuffix(js, "EXIT 1\n")
	if strings.Contains(text, "host") || !strings.Contains(text, "overlap: UIDs 0 in "+self+" mapped by ") || !strings.Contains(text, " in "+self+" shared across branches") {
		t.Errorf("lsuserns --overlaps in %s (exit 1 wanted):\n%s\nwant the shared UID 0 named as its, not the host's", self, rest)
	}
	var doc lstool.OverlapDoc
	if err := json.Unmarshal([]byte(js), &doc); err != nil || doc.Viewer != self || doc.SharedRanges == 0 {
		t.Errorf("--overlaps --json in %s: viewer %q, %d shared ranges (%v)\n%s", self, doc.Viewer, doc.SharedRanges, err, js)
	}
}
