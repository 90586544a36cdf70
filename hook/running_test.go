package hook_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/idmap"
)

// scanBudget bounds the tests' scans of the running processes: room for
// a machine loaded by other packages' tests (a scan takes milliseconds;
// one second was not always enough there).
const scanBudget = 10 * time.Second

// userNSSleeps starts n sleeps, each in a user namespace of its own
// mapping 65536 IDs from first + i*65536 (first + n*65536 must stay
// below 2^32), and returns their PIDs.
func userNSSleeps(tb testing.TB, n int, first uint32) []int {
	tb.Helper()
	sleep := nstest.RequireCmd(tb, "sleep")
	if first >= 1_000_000_000 {
		// In nstest.HostIDBase's ranges: within this process's own, or
		// another package's test running alongside sees its IDs mapped.
		if base := nstest.HostIDBase(tb); first < base || uint64(first)+uint64(n)*65536 > uint64(base)+nstest.HostIDSpan {
			tb.Fatalf("userNSSleeps: %d x 65536 IDs from %d leave this test's host IDs %d..%d", n, first, base, uint64(base)+nstest.HostIDSpan-1)
		}
	}
	pids := make([]int, n)
	for i := range n {
		pids[i] = nstest.Start(tb, userNSAttr(first+uint32(i)*65536), sleep, "infinity").Pid
	}
	return pids
}

// inspectedSleep starts a sleep in a user namespace mapping 65536 IDs
// from first and returns its ancestry.
func inspectedSleep(t *testing.T, first uint32) *audit.Ancestry {
	t.Helper()
	a, err := inspect.Process(userNSSleeps(t, 1, first)[0])
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestRunningFindsOverlaps checks the scan behind disjoint_from_running
// on real user namespaces: of three others, it reports the two that
// overlap the container, not the disjoint one, nor the container's own
// nested namespace.
func TestRunningFindsOverlaps(t *testing.T) {
	nstest.RequireRoot(t)
	base := nstest.HostIDBase(t)
	pids := userNSSleeps(t, 3, base) // base, base+65536, base+131072
	a, err := inspect.Process(pids[1])
	if err != nil {
		t.Fatal(err)
	}
	// Two more: one overlapping the middle one but for its first ID, one
	// on its last ID only.
	over := userNSSleeps(t, 1, base+65535)
	over = append(over, userNSSleeps(t, 1, base+131071)...)
	run := hook.Running(a, scanBudget)
	if run.Err != nil {
		t.Fatal(run.Err)
	}
	r := &policy.Rules{DisjointFromRunning: true}
	var reasons []string
	for _, v := range r.EvaluateRunning(a, run) {
		if strings.Contains(v.Reason, "host UIDs") {
			reasons = append(reasons, v.Reason)
		}
	}
	got := strings.Join(reasons, "\n")
	for i, p := range over {
		want := []string{"host UIDs " + itoa(base+65536) + "-" + itoa(base+131070) + " of", "host UIDs " + itoa(base+131071) + " of"}[i]
		if !strings.Contains(got, want) || !strings.Contains(got, "of pid "+itoa(uint32(p))+" (sleep") {
			t.Errorf("no violation %q naming pid %d in:\n%s", want, p, got)
		}
	}
	for _, p := range []int{pids[0], pids[2]} {
		if strings.Contains(got, "of pid "+itoa(uint32(p))+" ") {
			t.Errorf("the disjoint pid %d is reported:\n%s", p, got)
		}
	}
}

// TestRunningZombieNotRunning: a user namespace overlapping the
// container's whose only process has exited and waits to be reaped (a
// zombie keeps its credentials, so its user namespace link, until then)
// maps nothing any more: disjoint_from_running reports it while the
// process runs, not once it is a zombie. It was reported: a container
// whose predecessor in the same range had not been reaped yet was
// refused (seen as a flake of TestRunningSharedUserNS with -count=2).
func TestRunningZombieNotRunning(t *testing.T) {
	nstest.RequireRoot(t)
	base := nstest.HostIDBase(t) + 800_000
	a := inspectedSleep(t, base)
	other := exec.Command(nstest.RequireCmd(t, "sleep"), "infinity")
	other.SysProcAttr = userNSAttr(base)
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	reaped := false
	t.Cleanup(func() {
		if !reaped {
			other.Process.Kill()
			other.Wait()
		}
	})
	reported := func() bool {
		t.Helper()
		run := hook.Running(a, scanBudget)
		if run.Err != nil {
			t.Fatal(run.Err)
		}
		for _, v := range (&policy.Rules{DisjointFromRunning: true}).EvaluateRunning(a, run) {
			if strings.Contains(v.Reason, "of pid "+strconv.Itoa(other.Process.Pid)+" ") {
				return true
			}
		}
		return false
	}
	if !reported() {
		t.Fatal("the running process's namespace is not reported")
	}
	other.Process.Kill()
	nstest.WaitStateZ(t, other.Process.Pid)
	if reported() {
		t.Error("the zombie's namespace is reported as running")
	}
	other.Wait()
	reaped = true
}

// userNSAttr starts a process in a user namespace of its own that maps
// 65536 host IDs from base, as its root (holding host IDs base, as a
// container's process does; without the credentials it kept host
// root's, unmapped there, which overlap every namespace mapping host
// root).
func userNSAttr(base uint32) *syscall.SysProcAttr {
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(base), Size: 65536}}
	return &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m, Credential: &syscall.Credential{}}
}

// TestRunningLeaderExited: a process in a user namespace overlapping the
// container's, whose leader thread exited while another runs (its stat
// says Z, as a zombie's), still runs: disjoint_from_running reports it.
func TestRunningLeaderExited(t *testing.T) {
	nstest.RequireRoot(t)
	base := nstest.HostIDBase(t) + 700_000
	a := inspectedSleep(t, base)
	pid := nstest.StartLeaderExited(t, userNSAttr(base))
	run := hook.Running(a, scanBudget)
	if run.Err != nil {
		t.Fatal(run.Err)
	}
	found := false
	for _, v := range (&policy.Rules{DisjointFromRunning: true}).EvaluateRunning(a, run) {
		found = found || strings.Contains(v.Reason, "of pid "+strconv.Itoa(pid)+" ")
	}
	if !found {
		t.Errorf("the process whose leader exited is not reported: %+v", run.Others)
	}
}

// TestRunningFirstProcessExits: another namespace overlapping the
// container's, whose lowest-PID process exits after the scan, is still
// reported, through its other process: before, the namespace was judged
// through that one process only (dropped as gone, or "cannot tell").
func TestRunningFirstProcessExits(t *testing.T) {
	nstest.RequireRoot(t)
	base := nstest.HostIDBase(t)
	pids := userNSSleeps(t, 2, base) // the container, and the other
	a, err := inspect.Process(pids[0])
	if err != nil {
		t.Fatal(err)
	}
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(base), Size: 65536}}
	first := nstest.Start(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m}, nstest.RequireCmd(t, "sleep"), "infinity")
	second := nstest.Start(t, nil, nstest.RequireCmd(t, "nsenter"), "-U", "-t", strconv.Itoa(first.Pid), "--preserve-credentials", "sleep", "infinity")
	second.Pid = nstest.WaitLeaf(t, second.Pid, "sleep")
	live := inspect.NewLiveOnce(scanBudget)
	if _, err := live.Get(); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(-first.Cmd.Process.Pid, syscall.SIGKILL)
	for {
		if _, err := os.Stat("/proc/" + strconv.Itoa(first.Pid) + "/ns"); err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	run := hook.RunningFrom(a, live)
	if run.Err != nil {
		t.Fatal(run.Err)
	}
	var reasons []string
	for _, v := range (&policy.Rules{DisjointFromRunning: true}).EvaluateRunning(a, run) {
		reasons = append(reasons, v.Reason)
	}
	got := strings.Join(reasons, "\n")
	if !strings.Contains(got, "of pid "+strconv.Itoa(second.Pid)+" (sleep") || strings.Contains(got, "cannot") {
		t.Errorf("want the overlap named through pid %d, the process left in the namespace:\n%s", second.Pid, got)
	}
}

// TestRunningOutOfTime checks that a scan that runs out of its budget
// fails disjoint_from_running instead of passing it.
func TestRunningOutOfTime(t *testing.T) {
	nstest.RequireRoot(t)
	a := inspectedSleep(t, nstest.HostIDBase(t)+900_000)
	run := hook.Running(a, -time.Second)
	if !errors.Is(run.Err, inspect.ErrIncomplete) {
		t.Fatalf("scan with no time left: %v, want ErrIncomplete", run.Err)
	}
	v := (&policy.Rules{DisjointFromRunning: true}).EvaluateRunning(a, run)
	if len(v) != 1 || v[0].Rule != policy.RuleDisjoint || !strings.Contains(v[0].Reason, "cannot be checked: inspect: scan of the running processes did not finish in time") {
		t.Errorf("violations %+v", v)
	}
}

// TestDecideFactsBudget: the mounts host_root_unmapped judges are read
// within the decision's budget too: with no time left, the rule cannot
// be checked, and an enforcing block refuses (recorded), rather than the
// read outlasting the caller's deadline. The kernel prints a table of
// stacked mounts, which the container's creator sets up, in time
// quadratic in their number: 20,000 on one point took 4 s to read, and
// the hook's watchdog then let a container the policy refuses run
// unrecorded under on_error=allow.
func TestDecideFactsBudget(t *testing.T) {
	nstest.RequireRoot(t)
	pids := userNSSleeps(t, 1, nstest.HostIDBase(t)+930_000)
	cfg, err := policy.Parse("facts.json", []byte(`{"version":1,"audit_log":"/x",
		"default":{"name":"unmapped","mode":"enforce","rules":{"host_root_unmapped":true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := hook.Decide(cfg, hook.Input{Stage: audit.StageStart, ID: "late", PID: pids[0], Budget: -1})
	if rec.Verdict != audit.VerdictDeny || len(rec.Violations) != 1 || rec.Violations[0].Rule != policy.RuleHostRootUnmapped ||
		!strings.HasPrefix(rec.Violations[0].Reason, policy.Unchecked) || !strings.Contains(rec.Violations[0].Reason, "/mountinfo: not read in time") {
		t.Errorf("no time left: verdict %s, violations %+v", rec.Verdict, rec.Violations)
	}
	if rec, _ := hook.Decide(cfg, hook.Input{Stage: audit.StageStart, ID: "in-time", PID: pids[0]}); rec.Verdict != audit.VerdictAllow {
		t.Errorf("default budget: verdict %s, violations %+v", rec.Verdict, rec.Violations)
	}
}

// TestDecideBudget: a decision given no time left for the scan of the
// running processes (Input.Budget, as the NRI plugin passes what its
// request has left) refuses under disjoint_from_running rather than
// scanning past its caller's deadline; BudgetWithin gives half of what
// a deadline leaves, at most RunningBudget, and "none" once it passed.
func TestDecideBudget(t *testing.T) {
	nstest.RequireRoot(t)
	pids := userNSSleeps(t, 1, nstest.HostIDBase(t)+930_000)
	cfg, err := policy.Parse("budget.json", []byte(`{"version":1,"audit_log":"/x",
		"default":{"name":"disjoint","mode":"enforce","rules":{"disjoint_from_running":true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := hook.Decide(cfg, hook.Input{Stage: audit.StageStart, ID: "late", PID: pids[0], Budget: -1})
	if rec.Verdict != audit.VerdictDeny || len(rec.Violations) != 1 || !strings.Contains(rec.Violations[0].Reason, "did not finish in time") {
		t.Errorf("no time left: verdict %s, violations %+v", rec.Verdict, rec.Violations)
	}
	if rec, _ := hook.Decide(cfg, hook.Input{Stage: audit.StageStart, ID: "in-time", PID: pids[0]}); rec.Verdict != audit.VerdictAllow {
		t.Errorf("default budget: verdict %s, violations %+v", rec.Verdict, rec.Violations)
	}
	full := hook.RunningBudget(cfg)
	for _, tc := range []struct {
		timeout  time.Duration // 0: no deadline
		min, max time.Duration
	}{
		{0, full, full},
		{time.Hour, full, full},
		{time.Second, 400 * time.Millisecond, 500 * time.Millisecond},
		{-time.Second, -1, -1},
	} {
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if tc.timeout != 0 {
			ctx, cancel = context.WithTimeout(ctx, tc.timeout)
		}
		start := time.Now()
		got := hook.BudgetWithin(ctx, cfg)
		cancel()
		// A pause between the context and the call takes its half off.
		if min := tc.min - time.Since(start)/2; got < min || got > tc.max {
			t.Errorf("BudgetWithin with a timeout of %v: %v, want %v to %v", tc.timeout, got, tc.min, tc.max)
		}
	}
}

func itoa(x uint32) string { return strconv.FormatUint(uint64(x), 10) }

// BenchmarkRunning100 times the scan disjoint_from_running adds to a
// createRuntime stage on a node with 100 containers (each a process in
// a user namespace of its own, disjoint 65536-ID ranges), beside the
// node's other processes.
func BenchmarkRunning100(b *testing.B) {
	nstest.RequireRoot(b)
	pids := userNSSleeps(b, 101, 500_000_000) // below nstest.HostIDBase's ranges
	a, err := inspect.Process(pids[0])
	if err != nil {
		b.Fatal(err)
	}
	r := &policy.Rules{DisjointFromRunning: true}
	var others int
	for b.Loop() {
		run := hook.Running(a, scanBudget)
		others = len(run.Others)
		if run.Err != nil {
			b.Fatal(run.Err)
		}
		for _, v := range r.EvaluateRunning(a, run) {
			if strings.Contains(v.Reason, "3000") {
				b.Fatalf("violation among disjoint namespaces: %s", v.Reason)
			}
		}
	}
	// What the scan went through: every process, every other user
	// namespace (those overlapping the container are kept in Others).
	procs, _ := filepath.Glob("/proc/[0-9]*")
	b.ReportMetric(float64(len(procs)), "procs")
	b.ReportMetric(float64(others), "overlapping")
}

// BenchmarkDecideNested100 times the decision (inspection and policy)
// for a container nested two user namespaces below the host's, under
// disjoint_from_running, on a node with 100 other containers (as
// BenchmarkRunning100). The maps of the level between the container and
// the host come from a scan of the running processes, which the rule
// then checks: one scan per decision (inspect.LiveOnce), not two.
func BenchmarkDecideNested100(b *testing.B) {
	nstest.RequireRoot(b)
	userNSSleeps(b, 100, 500_000_000)
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 600_000_000, Size: 65536}}
	mid := nstest.Start(b, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m},
		nstest.RequireCmd(b, "sleep"), "infinity")
	leaf := nstest.NestedUserNS(b, mid.Pid, "0 50 10")
	cfg, err := policy.Parse("nested.json", []byte(`{"version":1,"audit_log":"/x",
		"default":{"name":"nested","mode":"enforce","rules":{"require_user_namespace":true,"disjoint_from_running":true}}}`))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		rec, ierr := hook.Decide(cfg, hook.Input{Stage: "createRuntime", ID: "nested", PID: leaf})
		if ierr != nil || rec.Verdict != "allow" || len(rec.Ancestry.Maps) != 3 || rec.Ancestry.Maps[1].Error != "" {
			b.Fatalf("decision: %v, verdict %s, violations %+v, maps %+v", ierr, rec.Verdict, rec.Violations, rec.Ancestry.Maps)
		}
	}
}

// TestMapsNotWrittenNotChecked: a container process in a user namespace
// whose maps nobody wrote yet (unshare --user) maps nothing now, but a
// map can still be written once, and until then it holds its creator's
// IDs (root here): every map rule says it cannot be checked (so enforce
// refuses), where the empty maps passed host_root_unmapped,
// allowed_host_ranges and disjoint_from_running.
func TestMapsNotWrittenNotChecked(t *testing.T) {
	nstest.RequireRoot(t)
	p := nstest.Sleep(t, nil, "--user")
	a, err := inspect.Process(p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if a.UserDepth() != 1 || len(a.Maps) == 0 || len(a.Maps[0].HostUIDMap) != 0 {
		t.Fatalf("depth %d, maps %+v; want one level with empty maps", a.UserDepth(), a.Maps)
	}
	r := &policy.Rules{HostRootUnmapped: true, AllowedHostRanges: idmap.Spans{{First: 100000, Count: 65536}}, DisjointFromRunning: true}
	got := map[string]string{}
	for _, v := range r.EvaluateRunning(a, hook.Running(a, scanBudget)) {
		got[v.Rule] = v.Reason
	}
	for _, rule := range []string{policy.RuleHostRootUnmapped, policy.RuleAllowedRanges, policy.RuleDisjoint} {
		if !strings.Contains(got[rule], "cannot be checked") || !strings.Contains(got[rule], "not written yet") {
			t.Errorf("%s: %q; want it not checked: the maps are not written yet", rule, got[rule])
		}
	}
}

// podCgroups makes a cgroup v2 directory tree for the test below the
// unified hierarchy, removed at the end (call it before starting the
// processes it will hold, so that they are killed first), and returns a
// function that moves a process into a cgroup path below it
// ("pod/app").
func podCgroups(t *testing.T) (move func(pid int, path string)) {
	t.Helper()
	root := "/sys/fs/cgroup"
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); err == nil {
		root = "/sys/fs/cgroup/unified" // a hybrid host
	}
	base := filepath.Join(root, "nsrel-test-"+strconv.Itoa(os.Getpid())+"-"+t.Name())
	var made []string
	t.Cleanup(func() {
		for i := len(made) - 1; i >= 0; i-- {
			// A killed process leaves its cgroup soon after.
			err := os.Remove(made[i])
			for try := 0; err != nil && !os.IsNotExist(err) && try < 500; try++ {
				time.Sleep(10 * time.Millisecond)
				err = os.Remove(made[i])
			}
			if err != nil && !os.IsNotExist(err) {
				t.Errorf("cgroup %s left behind: %v", made[i], err)
			}
		}
	})
	return func(pid int, path string) {
		t.Helper()
		dir := base
		for _, part := range append([]string{""}, strings.Split(path, "/")...) {
			dir = filepath.Join(dir, part)
			if err := os.Mkdir(dir, 0o755); err == nil {
				made = append(made, dir)
			} else if !os.IsExist(err) {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRunningSharedUserNS: a process outside the container (another PID
// namespace) in the container's own user namespace shares all its IDs:
// disjoint_from_running reports it, unless it is of the container's pod
// (same pod cgroup, for a CRI pod whose containers join the sandbox's
// user namespace) where the config lets the pod's cgroup decide.
func TestRunningSharedUserNS(t *testing.T) {
	nstest.RequireRoot(t)
	move := podCgroups(t) // first: its cleanup runs after the processes are killed
	leaf := 0
	t.Cleanup(func() {
		// The app's sleep is the test's grandchild: killed, it waits for
		// the host's init to reap it; until it has exited, the next run
		// (-count) would find it in the same range.
		for deadline := time.Now().Add(10 * time.Second); leaf > 0 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat("/proc/" + strconv.Itoa(leaf)); err != nil || nstest.StateZ(leaf) {
				return
			}
		}
	})
	base := nstest.HostIDBase(t) + 500_000
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(base), Size: 65536}}
	sandbox := nstest.Start(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID, UidMappings: m, GidMappings: m},
		nstest.RequireCmd(t, "sleep"), "infinity")
	// The app container: the sandbox's user namespace, a PID namespace
	// of its own (nsenter and unshare stay in the pod's cgroup too).
	app := nstest.Start(t, nil, nstest.RequireCmd(t, "nsenter"), "-U", "-t", strconv.Itoa(sandbox.Pid),
		nstest.RequireCmd(t, "unshare"), "-p", "-f", "--kill-child", nstest.RequireCmd(t, "sleep"), "infinity")
	leaf = nstest.WaitLeaf(t, app.Pid, "sleep")
	move(sandbox.Pid, "pod/sandbox")
	move(app.Pid, "pod/app")
	move(leaf, "pod/app")
	a, err := inspect.Process(leaf)
	if err != nil {
		t.Fatal(err)
	}
	if a.PIDDepth() != 1 || a.UserDepth() != 1 {
		t.Fatalf("the app: user depth %d, PID depth %d", a.UserDepth(), a.PIDDepth())
	}
	shared := func(run *policy.Running) string {
		t.Helper()
		if run.Err != nil {
			t.Fatal(run.Err)
		}
		var out []string
		for _, v := range (&policy.Rules{DisjointFromRunning: true}).EvaluateRunning(a, run) {
			if strings.Contains(v.Reason, "also the user namespace of") || strings.Contains(v.Reason, "cannot") {
				out = append(out, v.Reason)
			}
		}
		return strings.Join(out, "\n")
	}
	if got := shared(hook.RunningFrom(a, inspect.NewLiveOnce(scanBudget))); !strings.Contains(got, "outside the container: it shares all its IDs") {
		t.Errorf("not a pod: %q; want the shared namespace reported", got)
	}
	if got := shared(hook.RunningPod(a, inspect.NewLiveOnce(scanBudget), hook.SamePodCgroup(leaf))); got != "" {
		t.Errorf("the pod's own sandbox: %q; want nothing", got)
	}
	// Decide lets the pod's cgroup decide only for a CRI pod's container
	// (io.kubernetes.cri.sandbox-id) under a config that trusts the
	// CRI's keys: there the kubelet names every container's cgroup.
	meta := map[string]string{vocab.AnnotationSandboxID: "sandbox-1"}
	for _, tc := range []struct {
		trusted string
		meta    map[string]string
		refused bool
	}{
		{`"trusted_selectors":{"annotations":["io.kubernetes.cri.sandbox-namespace"]},`, meta, false},
		{``, meta, true},
		{`"trusted_selectors":{"annotations":["io.kubernetes.cri.sandbox-namespace"]},`, nil, true},
	} {
		cfg, err := policy.Parse("pod.json", []byte(`{"version":1,"audit_log":"/x",`+tc.trusted+`
			"default":{"mode":"enforce","rules":{"disjoint_from_running":true}}}`))
		if err != nil {
			t.Fatal(err)
		}
		rec, ierr := hook.Decide(cfg, hook.Input{Stage: audit.StageCreateRuntime, ID: "app-1", PID: leaf, Meta: tc.meta})
		if ierr != nil {
			t.Fatal(ierr)
		}
		if refused := rec.Verdict == audit.VerdictDeny; refused != tc.refused {
			t.Errorf("trusted %q, annotations %v: verdict %s (%+v); want refused %v", tc.trusted, tc.meta, rec.Verdict, rec.Violations, tc.refused)
		}
	}

	move(sandbox.Pid, "other/sandbox")
	got := shared(hook.RunningPod(a, inspect.NewLiveOnce(scanBudget), hook.SamePodCgroup(leaf)))
	if !strings.Contains(got, fmt.Sprintf("is also the user namespace of pid %d (sleep, cgroup ", sandbox.Pid)) {
		t.Errorf("another pod's sandbox: %q; want it named", got)
	}
}

// TestRunningJoinedPIDNSDaemon: a container with a user namespace of its
// own that joined another container's PID namespace forks a daemon
// (double fork: the daemon's parent exits, and the namespace's init
// takes it). The daemon, in the container's user namespace and not its
// descendant, came after it: it is the container's, not another's. The
// rule reported it as sharing all the container's IDs.
func TestRunningJoinedPIDNSDaemon(t *testing.T) {
	nstest.RequireRoot(t)
	sleep := nstest.RequireCmd(t, "sleep")
	base := nstest.HostIDBase(t) + 600_000
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(base), Size: 65536}}
	other := nstest.Start(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID, UidMappings: m, GidMappings: m}, sleep, "infinity")
	// The container: the other's PID namespace, a user namespace of its
	// own; its daemon forked by a subshell that exits at once.
	ctr := nstest.Start(t, nil, nstest.RequireCmd(t, "nsenter"), "--pid=/proc/"+strconv.Itoa(other.Pid)+"/ns/pid", "--",
		nstest.RequireCmd(t, "unshare"), "-U", "--map-root-user", "sh", "-c", "(sleep 1002 &); exec sleep 1001")
	ownDaemonNotReported(t, ctr.Pid, 1)
}

// TestRunningHostPIDDaemon: as TestRunningJoinedPIDNSDaemon, in the
// host's PID namespace, where the rule now checks the container's own
// user namespace too (a container that joined a running one's ran): its
// daemon, given to the host's init, is its own.
func TestRunningHostPIDDaemon(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireCmd(t, "sleep")
	// The container: the host's PID namespace, a user namespace of its
	// own; its daemon forked by a subshell that exits at once.
	ctr := nstest.Start(t, nil, nstest.RequireCmd(t, "unshare"), "-U", "--map-root-user", "sh", "-c", "(sleep 1002 &); exec sleep 1001")
	ownDaemonNotReported(t, ctr.Pid, 0)
}

// ownDaemonNotReported waits for the container started as ctr (its leaf
// sleep, at PID depth pidDepth, and the daemon that left it) and checks
// that disjoint_from_running takes the daemon for the container's own.
func ownDaemonNotReported(t *testing.T, ctr, pidDepth int) {
	t.Helper()
	// The container's process once it runs sleep 1001: until the
	// subshell exits, the leaf below it is the daemon (a container
	// process so taken had the real one, started before it, reported).
	var leaf int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		leaf = nstest.WaitLeaf(t, ctr, "sleep")
		if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", leaf)); string(cmd) == "sleep\x001001\x00" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d: no sleep 1001 below it after 10 s (leaf %d)", ctr, leaf)
		}
	}
	// The daemon: the other process in the container's user namespace.
	own, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", leaf))
	if err != nil {
		t.Fatal(err)
	}
	var daemon int
	for deadline := time.Now().Add(10 * time.Second); daemon == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no daemon")
		}
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == leaf {
				continue
			}
			if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid)); l == own {
				daemon = pid
			}
		}
	}
	t.Cleanup(func() { syscall.Kill(daemon, syscall.SIGKILL) })
	if inspect.DescendsFrom(daemon, leaf) {
		t.Fatalf("the daemon %d still descends from the container's process %d", daemon, leaf)
	}
	a, err := inspect.Process(leaf)
	if err != nil {
		t.Fatal(err)
	}
	if a.PIDDepth() != pidDepth || a.UserDepth() != 1 {
		t.Fatalf("the container: user depth %d, PID depth %d; want 1 and %d", a.UserDepth(), a.PIDDepth(), pidDepth)
	}
	run := hook.RunningFrom(a, inspect.NewLiveOnce(scanBudget))
	if run.Err != nil {
		t.Fatal(run.Err)
	}
	for _, v := range (&policy.Rules{DisjointFromRunning: true}).EvaluateRunning(a, run) {
		if strings.Contains(v.Reason, "also the user namespace of") {
			t.Errorf("the container's own daemon reported: %s", v.Reason)
		}
	}
}

// TestRunningLateKeepsFound: when the walk of what the scan found runs
// past the scan's deadline, the overlaps it found until then are kept
// with the error, and disjoint_from_running lists them as found, besides
// "cannot be checked" for the rest. They were thrown away: a container
// sharing IDs with another was recorded as merely not checked (a
// violation whose reason starts with policy.Unchecked).
func TestRunningLateKeepsFound(t *testing.T) {
	nstest.RequireRoot(t)
	base := nstest.HostIDBase(t) + 900_000
	a := inspectedSleep(t, base)
	var others []int
	for range 3 {
		others = append(others, userNSSleeps(t, 1, base)...)
	}
	checks := 0
	defer hook.BeforeCheck(func(deadline time.Time) {
		// The third overlap's check comes after the deadline: two
		// were walked (one, should another namespace take a check).
		if checks++; checks == 3 {
			time.Sleep(time.Until(deadline) + time.Millisecond)
		}
	})()
	run := hook.Running(a, 2*time.Second)
	if !errors.Is(run.Err, inspect.ErrIncomplete) {
		t.Fatalf("err %v, want the deadline's", run.Err)
	}
	if len(run.Others) < 1 || len(run.Others) > 2 {
		t.Fatalf("%d others found before the deadline, want 1 or 2: %+v", len(run.Others), run.Others)
	}
	v := (&policy.Rules{DisjointFromRunning: true}).EvaluateRunning(a, run)
	if len(v) == 0 || !strings.HasPrefix(v[0].Reason, policy.Unchecked+": inspect: scan of the running processes did not finish in time") || !foundViolation(v) {
		t.Errorf("violations %+v: want cannot be checked, then what was found", v)
	}
	for _, o := range run.Others {
		if !slices.Contains(others, o.PID) {
			t.Errorf("found pid %d, not one of %v", o.PID, others)
		}
		want := "host UIDs " + itoa(base) + "-" + itoa(base+65535) + " of " + nsrel.Name{Type: nsrel.TypeUser, Ino: a.User[0].Ino}.String() +
			" are also mapped by user:[" + strconv.FormatUint(o.Ino, 10) + "] of pid " + strconv.Itoa(o.PID)
		if !slices.ContainsFunc(v, func(x audit.Violation) bool { return strings.HasPrefix(x.Reason, want) }) {
			t.Errorf("no violation %q in %+v", want, v)
		}
	}
}

// TestBeforeCheckConcurrent: the tests' hook into RunningPod's checks
// may be set while a decision runs in another goroutine (a test's
// leftover, the NRI plugin's): it was a plain variable read at each
// check, a data race `go test -race` reports here.
func TestBeforeCheckConcurrent(t *testing.T) {
	nstest.RequireRoot(t)
	base := nstest.HostIDBase(t) + 900_000
	a := inspectedSleep(t, base)
	userNSSleeps(t, 1, base) // an overlap: its walk checks the deadline
	done := make(chan *policy.Running)
	go func() {
		var run *policy.Running
		for range 20 {
			run = hook.Running(a, 5*time.Second)
		}
		done <- run
	}()
	for running := true; running; {
		select {
		case run := <-done:
			if run.Err != nil || len(run.Others) == 0 {
				t.Errorf("err %v, others %+v; want the overlap", run.Err, run.Others)
			}
			running = false
		default:
			hook.BeforeCheck(func(time.Time) {})()
		}
	}
}

// disjointReasons returns the disjoint_from_running violations of a
// container (a) against what runs now.
func disjointReasons(t *testing.T, a *audit.Ancestry) string {
	t.Helper()
	run := hook.Running(a, scanBudget)
	if run.Err != nil {
		t.Fatal(run.Err)
	}
	var reasons []string
	for _, v := range (&policy.Rules{DisjointFromRunning: true}).EvaluateRunning(a, run) {
		reasons = append(reasons, v.Reason)
	}
	return strings.Join(reasons, "\n")
}

// TestRunningUnmappedHolder: a process of a container that moves into a
// user namespace of its own whose maps it never writes (unshare -U)
// keeps the host IDs it had, but its namespace maps nothing: it hid
// those IDs from disjoint_from_running, and a container in the same
// range ran; so did it once the maps were written to another ID. The
// IDs a namespace's processes hold count with its maps.
func TestRunningUnmappedHolder(t *testing.T) {
	nstest.RequireRoot(t)
	base := nstest.HostIDBase(t) + 300_000
	a := inspectedSleep(t, base)
	id := itoa(base + 5)
	hider := nstest.Start(t, nil, nstest.RequireCmd(t, "setpriv"), "--reuid", id, "--regid", id, "--clear-groups",
		nstest.RequireCmd(t, "unshare"), "-U", nstest.RequireCmd(t, "sleep"), "infinity")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if m, err := os.ReadFile("/proc/" + strconv.Itoa(hider.Pid) + "/uid_map"); err == nil && len(m) == 0 && nstest.Ino(t, hider.Pid, "user") != a.User[1].Ino {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the hider did not reach its unmapped user namespace")
		}
	}
	got := disjointReasons(t, a)
	want := "host UIDs " + id + " of user:[" + strconv.FormatUint(a.User[0].Ino, 10) + "] are also mapped by user:[" + strconv.FormatUint(nstest.Ino(t, hider.Pid, "user"), 10) + "] of pid " + strconv.Itoa(hider.Pid)
	if !strings.Contains(got, want) || !strings.Contains(got, "host GIDs "+id+" of") {
		t.Errorf("violations:\n%s\nwant %q and its GID", got, want)
	}
	// Its maps written since, to one ID outside the container's range:
	// the process still holds base+5, which the maps do not show.
	other := itoa(base + 200_000)
	for _, f := range []string{"uid_map", "gid_map"} {
		if err := os.WriteFile("/proc/"+strconv.Itoa(hider.Pid)+"/"+f, []byte("0 "+other+" 1\n"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if got := disjointReasons(t, a); !strings.Contains(got, want) {
		t.Errorf("maps written to another ID: violations:\n%s\nwant %q", got, want)
	}
}

// TestRunningHostProcessHolder: a process in the hook's own user
// namespace (the initial one) running as a host UID and GID the
// container maps (a container run without a user namespace as that
// user, a host service) shares them: a violation naming it. It was not
// counted: the scan passed over the hook's own namespace.
func TestRunningHostProcessHolder(t *testing.T) {
	nstest.RequireRoot(t)
	base := nstest.HostIDBase(t) + 350_000
	a := inspectedSleep(t, base)
	sleepAs := func(id string) *nstest.Proc {
		p := nstest.Start(t, nil, nstest.RequireCmd(t, "setpriv"), "--reuid", id, "--regid", id, "--clear-groups", nstest.RequireCmd(t, "sleep"), "infinity")
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			comm, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Pid) + "/comm")
			if strings.TrimSpace(string(comm)) == "sleep" {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("setpriv %s did not start sleep", id)
			}
		}
	}
	// One outside the container's range: nothing of it.
	sleepAs(itoa(base + 70_000))
	if got := disjointReasons(t, a); strings.Contains(got, "held by") {
		t.Errorf("a process outside the range: violations:\n%s\nwant none held", got)
	}
	id := itoa(base + 5)
	holder := sleepAs(id)
	got := disjointReasons(t, a)
	own := "user:[" + strconv.FormatUint(nstest.Ino(t, os.Getpid(), "user"), 10) + "]"
	for _, want := range []string{
		"host UIDs " + id + " of user:[" + strconv.FormatUint(a.User[0].Ino, 10) + "] are also held by pid " + strconv.Itoa(holder.Pid) + " (",
		"host GIDs " + id + " of user:[" + strconv.FormatUint(a.User[0].Ino, 10) + "] are also held by pid " + strconv.Itoa(holder.Pid) + " (",
		"), in " + own + ", the user namespace the hook runs in",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("violations:\n%s\nwant %q", got, want)
		}
	}
}

// TestRunningJoinedNamespaceMovedBelow: a container that joins another's
// user namespace, whose processes have moved into a namespace below it
// (unshare -U, then a map written), holds their IDs; the overlap with
// that namespace was passed over as the container's own nested one, and
// the container ran. A namespace below the container's in which a
// process outside the container lives is reported.
func TestRunningJoinedNamespaceMovedBelow(t *testing.T) {
	nstest.RequireRoot(t)
	base := nstest.HostIDBase(t) + 400_000
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(base), Size: 65536}}
	// The first container: its process moves below its namespace, into
	// one mapping its root, as the first container's root may.
	first := nstest.Start(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID, UidMappings: m, GidMappings: m, Credential: &syscall.Credential{}},
		nstest.RequireCmd(t, "unshare"), "-U", "-r", nstest.RequireCmd(t, "sleep"), "infinity")
	leaf := first.Pid // unshare execs sleep
	var own uint64
	var ownNS *nsrel.Namespace
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(leaf) + "/comm")
		if strings.TrimSpace(string(comm)) == "sleep" {
			// The namespace its process was made in: its PID
			// namespace's owner.
			var err error
			if ownNS, err = nsrel.OwnerUserNS(nsrel.Path(nstest.NSPath(leaf, "pid"))); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ownNS.Close() })
			id, err := nsrel.Identify(ownNS)
			if err != nil {
				t.Fatal(err)
			}
			own = id.Ino
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first container's process did not move below its namespace")
		}
	}
	if own == nstest.Ino(t, leaf, "user") {
		t.Fatal("the first container's process is still in its namespace")
	}
	// The second joins the first's namespace, in a PID namespace of its
	// own (made first, so that no process of the second but its own
	// lives in the namespace it joins).
	second := nstest.Start(t, nil, nstest.RequireCmd(t, "unshare"), "-p", "-f", "--kill-child",
		nstest.RequireCmd(t, "nsenter"), fmt.Sprintf("--user=/proc/%d/fd/%d", os.Getpid(), ownNS.Fd()), nstest.RequireCmd(t, "sleep"), "infinity")
	app := nstest.WaitLeaf(t, second.Pid, "sleep")
	a, err := inspect.Process(app)
	if err != nil {
		t.Fatal(err)
	}
	if a.User[0].Ino != own {
		t.Fatalf("the second container is in user:[%d], want the first's, user:[%d]", a.User[0].Ino, own)
	}
	got := disjointReasons(t, a)
	want := fmt.Sprintf("user:[%d], below user:[%d], is the user namespace of pid %d (sleep", nstest.Ino(t, leaf, "user"), own, leaf)
	if !strings.Contains(got, want) {
		t.Errorf("violations:\n%s\nwant %q", got, want)
	}
}
