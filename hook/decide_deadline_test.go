package hook_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel/idmap"
)

// nobodyNamespaces has the user nobody (65534), as any local user may,
// make chains user namespaces deep each (unshare -r, each mapping root
// to the one above, so each maps host UID and GID 65534), with a sleep
// in the innermost, and waits for every sleep. They run in a PID
// namespace of their own, whose end at the test's end ends them all.
func nobodyNamespaces(t *testing.T, chains, depth int) {
	t.Helper()
	for _, c := range []string{"unshare", "sleep"} {
		nstest.RequireCmd(t, c)
	}
	sh := nstest.RequireCmd(t, "sh")
	clone, err := os.ReadFile("/proc/sys/kernel/unprivileged_userns_clone") // Debian's switch, where it exists
	nstest.Require(t, err != nil || strings.TrimSpace(string(clone)) == "1", "needs unprivileged user namespaces (kernel.unprivileged_userns_clone=1)")
	// The chain's script travels in the environment: nobody may not read
	// the test's files.
	nest := `d=$1; if [ "$d" -le 0 ]; then exec sleep infinity; fi; exec unshare -r sh -c "$NEST" nest $((d-1))`
	script := `i=0; while [ $i -lt ` + strconv.Itoa(chains) + ` ]; do sh -c "$NEST" nest ` + strconv.Itoa(depth) + ` & i=$((i+1)); done; wait`
	t.Setenv("NEST", nest)
	p := nstest.Start(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID,
		Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}, sh, "-c", script)
	pidns := nstest.NSPath(p.Pid, "pid")
	want, err := os.Readlink(pidns)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		n := 0
		procs, _ := filepath.Glob("/proc/[0-9]*")
		for _, d := range procs {
			comm, _ := os.ReadFile(d + "/comm")
			if ns, _ := os.Readlink(d + "/ns/pid"); ns == want && string(comm) == "sleep\n" {
				n++
			}
		}
		if n == chains {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d chains of user namespaces made by nobody after 60 s (are unprivileged user namespaces allowed?)", n, chains)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRefusedWithoutScan: a container in the initial user namespace
// breaks disjoint_from_running without a scan of the running processes,
// in any mode, and is refused in time under enforce. A container other
// rules of an enforcing block refuse (here one that maps host root,
// under host_root_unmapped) is still checked against every rule: its
// record lists the user namespaces it shares IDs with (nobody's), as an
// audit block's does, with no error. Such a container used to be refused
// without the scan, its record's error saying disjoint_from_running was
// not checked: every enforce refusal counted as an error, and the
// overlaps went unrecorded.
func TestRefusedWithoutScan(t *testing.T) {
	nstest.RequireRoot(t)
	nobodyNamespaces(t, 4, 3)
	host := nstest.Start(t, nil, nstest.RequireCmd(t, "sleep"), "infinity").Pid
	nested := inspectedSleep(t, 0) // maps host root, and nobody's 65534
	for _, tc := range []struct {
		name, mode, rules string
		pid               int
		// want are the rules broken, in order, before those of
		// disjoint_from_running's findings (scan).
		want       []string
		scan, deny bool
	}{
		{"host enforce", policy.ModeEnforce, `"require_user_namespace":true,"disjoint_from_running":true`, host,
			[]string{policy.RuleRequireUserNS, policy.RuleDisjoint}, false, true},
		{"host audit", policy.ModeAudit, `"require_user_namespace":true,"disjoint_from_running":true`, host,
			[]string{policy.RuleRequireUserNS, policy.RuleDisjoint}, false, false},
		{"host disjoint only", policy.ModeEnforce, `"disjoint_from_running":true`, host,
			[]string{policy.RuleDisjoint}, false, true},
		{"nested enforce", policy.ModeEnforce, `"host_root_unmapped":true,"disjoint_from_running":true`, nested.PID,
			[]string{policy.RuleHostRootUnmapped, policy.RuleHostRootUnmapped}, true, true},
		{"nested audit", policy.ModeAudit, `"host_root_unmapped":true,"disjoint_from_running":true`, nested.PID,
			[]string{policy.RuleHostRootUnmapped, policy.RuleHostRootUnmapped}, true, false},
		// The other rule cannot be checked (no subordinate ID files):
		// the overlaps found still are, as violations of their own.
		{"nested unchecked", policy.ModeEnforce, `"allowed_subid_user":"nobody","disjoint_from_running":true`, nested.PID,
			[]string{policy.RuleAllowedRanges, policy.RuleAllowedRanges}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			defer func(f [2]string) { policy.SubIDFiles = f }(policy.SubIDFiles)
			policy.SubIDFiles = [2]string{filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid")}
			// deadline_ms leaves the scan half of the caller's 5 s:
			// room to find every overlap on a loaded machine.
			cfg, err := policy.Parse("c.json", []byte(`{"version":1,"audit_log":"/x","on_error":"allow","deadline_ms":10000,
				"default":{"name":"d","mode":"`+tc.mode+`","rules":{`+tc.rules+`}}}`))
			if err != nil {
				t.Fatal(err)
			}
			log, err := audit.Open(filepath.Join(t.TempDir(), "audit.jsonl"), audit.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var live *inspect.LiveOnce
			h := &hook.Hook{Config: cfg, Log: log, Inspect: func(pid int, l *inspect.LiveOnce) (*audit.Ancestry, error) {
				live = l
				return inspect.ProcessWith(pid, l)
			}}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res, err := h.Run(ctx, audit.StageCreateRuntime, &specs.State{ID: "c", Pid: tc.pid})
			if err != nil || res.Record == nil || res.Record.Seq != 1 {
				t.Fatalf("not recorded: %+v, %v", res, err)
			}
			if ctx.Err() != nil {
				t.Error("recorded after the deadline")
			}
			if live.Scanned() != tc.scan {
				t.Errorf("scanned %v, want %v", live.Scanned(), tc.scan)
			}
			if res.Deny != tc.deny {
				t.Errorf("deny %v, want %v", res.Deny, tc.deny)
			}
			got := audittest.Rules(res.Record)
			var found []audit.Violation
			if tc.scan {
				// Then one violation per overlapping namespace of
				// nobody's (64 listed, one counting the rest).
				n := min(len(got), len(tc.want))
				got, found = got[:n], res.Record.Violations[n:]
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("violations (-want +got):\n%s", d)
			}
			for _, v := range res.Record.Violations {
				if v.Rule == policy.RuleDisjoint && !tc.scan && !strings.Contains(v.Reason, "initial user namespace") {
					t.Errorf("disjoint_from_running: %s", v.Reason)
				}
			}
			if tc.scan {
				// The record lists what the scan found, capped, those
				// that cannot be checked first (processes other tests
				// move between namespaces meanwhile may fill the list):
				// nobody's overlaps are listed or counted, and the walk
				// of the same scan finds them.
				nobody := func(v audit.Violation) bool {
					return v.Rule == policy.RuleDisjoint && strings.Contains(v.Reason, "host UIDs 65534 of") && strings.Contains(v.Reason, "(sleep")
				}
				if len(found) == 0 || !slices.ContainsFunc(found, nobody) && !strings.HasSuffix(found[len(found)-1].Reason, "not listed") {
					t.Errorf("no overlap with nobody's namespaces listed or counted: %+v", found)
				}
				run := hook.RunningFrom(res.Record.Ancestry, live)
				if !slices.ContainsFunc(run.Others, func(o policy.Other) bool {
					return o.Err == "" && strings.HasPrefix(o.Name, "sleep") && slices.ContainsFunc(o.UIDs, func(s idmap.Span) bool { return s.First <= 65534 && 65534 <= s.Last() })
				}) {
					t.Errorf("the scan found none of nobody's namespaces: %d others", len(run.Others))
				}
				for _, v := range found {
					if v.Rule != policy.RuleDisjoint {
						t.Errorf("after the scan: %+v", v)
					}
				}
			}
			// Refused or not, the rule was checked: no error says it
			// was not (processes the hook may not read are named, as
			// ever).
			if strings.Contains(res.Record.Error, policy.RuleDisjoint+": not checked") {
				t.Errorf("record error %q", res.Record.Error)
			}
		})
	}
}

// TestRunningChecksInTime: the walk of the user namespaces the scan
// found that overlap the container's (here a chain of nobody's, whose
// host IDs the container maps too) stops when the scan's budget runs out,
// and the rule cannot be checked: the container is refused and recorded
// within the deadline. The walk had no limit, and the hook's scan was
// given half of deadline_ms from its own start, not what the caller's
// deadline left ([hook.BudgetWithin], as the NRI plugin passes).
func TestRunningChecksInTime(t *testing.T) {
	nstest.RequireRoot(t)
	// A few namespaces of nobody's, which the container's overlap: the
	// test's hook makes the walk of them slow (thousands of namespaces
	// also load the machine for other tests, long after).
	nobodyNamespaces(t, 4, 3)
	// The container maps host IDs 65000 to 65999: nobody's among them.
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 65000, Size: 1000}}
	pid := nstest.Start(t, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID, UidMappings: m, GidMappings: m},
		nstest.RequireCmd(t, "sleep"), "infinity").Pid
	// deadline_ms would give the scan 5 s: the caller's deadline leaves
	// it half of its 2 s, and the append the rest.
	cfg, err := policy.Parse("c.json", []byte(`{"version":1,"audit_log":"/x","on_error":"allow","deadline_ms":10000,
		"default":{"name":"d","mode":"enforce","rules":{"require_user_namespace":true,"disjoint_from_running":true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.Open(filepath.Join(t.TempDir(), "audit.jsonl"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	end, _ := ctx.Deadline()
	var checks int
	var scanEnd time.Time
	defer hook.BeforeCheck(func(deadline time.Time) {
		// The first check waits out the budget: a slow machine, or a
		// thousand more namespaces.
		if checks++; checks == 1 {
			scanEnd = deadline
			time.Sleep(time.Until(deadline) + time.Millisecond)
		}
	})()
	res, err := (&hook.Hook{Config: cfg, Log: log}).Run(ctx, audit.StageCreateRuntime, &specs.State{ID: "c", Pid: pid})
	if err != nil || res.Record == nil || res.Record.Seq != 1 {
		t.Fatalf("not recorded: %+v, %v", res, err)
	}
	if ctx.Err() != nil {
		t.Errorf("recorded after the deadline")
	}
	// (No check at all only when the scan itself ran out of its second,
	// which it takes milliseconds of: it says so as well.)
	if checks > 1 || checks == 1 && !scanEnd.Before(end) {
		t.Errorf("%d checks after the scan, whose deadline was %v before the caller's: want one, stopped at a deadline before the caller's", checks, end.Sub(scanEnd))
	}
	want := "cannot be checked: inspect: scan of the running processes did not finish in time"
	if checks == 1 {
		want += ": its budget ran out after 0 checks of the namespaces it found"
	}
	if !res.Deny || len(res.Record.Violations) != 1 || res.Record.Violations[0].Rule != policy.RuleDisjoint ||
		!strings.Contains(res.Record.Violations[0].Reason, want) {
		t.Errorf("deny %v, violations %+v; want %q", res.Deny, res.Record.Violations, want)
	}
}

// foundViolation reports whether vs hold a violation that was found, not
// only rules that could not be checked (policy.Unchecked).
func foundViolation(vs []audit.Violation) bool {
	return slices.ContainsFunc(vs, func(v audit.Violation) bool { return !strings.HasPrefix(v.Reason, policy.Unchecked) })
}
