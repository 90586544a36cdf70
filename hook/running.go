package hook

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/idmap"
)

// RunningBudget returns how long the scan of the running processes that
// disjoint_from_running (and the maps of a nested container's ancestors,
// from the same scan) needs may take, from the scan's start: half the
// config's deadline_ms (1 s by default), leaving the rest to the
// record's append. A scan that
// does not finish in time violates the rule (it is never passed
// unchecked). On a quiet node with 100 containers the scan takes a few
// milliseconds (docs/BENCHMARKS.md); a loaded node with thousands of
// processes takes tens.
func RunningBudget(cfg *policy.Config) time.Duration {
	ms := cfg.DeadlineMS
	if ms <= 0 {
		ms = policy.DefaultDeadlineMS
	}
	return time.Duration(ms) * time.Millisecond / 2
}

// Running scans the processes running now for the user namespaces other
// than the container's own (a.User[0]), its ancestors and its
// descendants, with the host IDs their maps hold, for
// disjoint_from_running. Only a namespace whose IDs overlap the
// container's is checked for descent (NS_GET_PARENT walks), so the usual
// cost is one stat per process and two map reads per namespace. The scan
// may take budget from its start, as for [inspect.NewLiveOnce] (zero: no
// limit; negative: already spent).
func Running(a *audit.Ancestry, budget time.Duration) *policy.Running {
	return RunningFrom(a, inspect.NewLiveOnce(budget))
}

// RunningFrom is [Running] on live's scan, which the inspection of a
// nested container may have made already ([inspect.ProcessWith]).
func RunningFrom(a *audit.Ancestry, live *inspect.LiveOnce) *policy.Running {
	return RunningPod(a, live, nil)
}

// RunningPod is [RunningFrom] for a container of a pod, whose other
// containers and sandbox may share its user namespace: samePod (nil:
// no pod) reports whether a process outside the container is one of its
// pod's ([SamePodCgroup]).
//
// Besides the other namespaces, it reports a process outside the
// container (in neither the container's PID namespace nor one below it)
// that lives in the container's own user namespace, one per namespace:
// a container that joined another's user namespace shares all its IDs.
// A container in the initial PID namespace (or that joined another's)
// has as its own its descendants and the processes that started after
// it.
//
// The work on what the scan found (the walks up from the namespaces that
// overlap the container's, the names of their processes, the search for
// an outsider) ends at the scan's deadline too, with an error matching
// [inspect.ErrIncomplete] and the others found until then.
func RunningPod(a *audit.Ancestry, live *inspect.LiveOnce, samePod func(pid int) bool) *policy.Running {
	if len(a.User) == 0 {
		return &policy.Running{Err: errors.New("no user namespace chain")}
	}
	scan, err := live.Get()
	if err != nil {
		return &policy.Running{Err: err}
	}
	run := &policy.Running{Denied: scan.Denied}
	// stop ends the work at the deadline (err) with what it found: an
	// overlap found is a violation all the same.
	stop := func(err error) *policy.Running {
		run.Err = err
		return run
	}
	own := nsrel.Ident{Dev: a.User[0].Dev, Ino: a.User[0].Ino}
	chain := map[nsrel.Ident]bool{}
	for _, u := range a.User {
		chain[nsrel.Ident{Dev: u.Dev, Ino: u.Ino}] = true
	}
	uids, gids, merr := policy.HostMaps(a)
	hu, hg := policy.HeldSpans(a, uids, gids)
	// What the scan found is worked through within the scan's budget
	// too: each namespace that overlaps the container's is walked up
	// (NS_GET_PARENT) and its process named, and a user may make
	// thousands of nested ones.
	late := pastDeadline(live.Deadline())
	// Before each status read (see LiveUserNS.Held): the deadline alone,
	// not a step of the work late counts (the tests' beforeCheck).
	inTime := func() error {
		if d := live.Deadline(); !d.IsZero() && time.Now().After(d) {
			return fmt.Errorf("inspect: %w: its budget ran out while the IDs processes hold were read", inspect.ErrIncomplete)
		}
		return nil
	}
	for i := range scan.Namespaces {
		l := &scan.Namespaces[i]
		if l.Ident == own {
			o, err := outsider(a, l, samePod, late)
			if err != nil {
				return stop(err)
			}
			if o != nil {
				run.Others = append(run.Others, *o)
			}
			continue
		}
		if chain[l.Ident] {
			continue
		}
		o := policy.Other{Ino: l.Ident.Ino}
		if l.Err != nil {
			if errors.Is(l.Err, inspect.ErrGone) {
				continue // every process in it exited since the scan: it maps nothing now
			}
			if err := late(); err != nil {
				return stop(err)
			}
			o.Err = l.Err.Error()
		} else {
			// Its processes hold IDs its maps need not map: those they
			// had before unshare(2) or setns(2). A container's process
			// moved into a namespace whose maps are not written (which
			// map nothing), or into one mapping other IDs, hid its IDs
			// from the check. (A read of each process's status, as the
			// scan read each one's link, within the scan's budget.)
			u, g, err := l.Held(inTime)
			switch {
			case errors.Is(err, inspect.ErrIncomplete):
				return stop(err)
			case err != nil:
				o.Err = "the IDs its processes hold could not be read: " + err.Error()
			}
			o.UIDs, o.GIDs = append(l.Maps.UID.Host(), u...).Normal(), append(l.Maps.GID.Host(), g...).Normal()
			if o.Err == "" && merr == nil && idmap.Overlap(hu, o.UIDs) == nil && idmap.Overlap(hg, o.GIDs) == nil {
				continue // disjoint: nothing to report, no need to know more
			}
			if err := late(); err != nil {
				return stop(err)
			}
			var below bool
			err = l.WithProcess(func(pid int) (err error) {
				below, err = inspect.Descends(pid, l.Ident, own)
				return err
			})
			switch {
			case err != nil && errors.Is(err, inspect.ErrGone):
				continue
			case err != nil:
				o.Err = "cannot tell whether it lies below the container's: " + err.Error()
			case below:
				// Below the container's: its own nested namespace,
				// unless a process outside the container lives in it
				// (the container joined a namespace whose processes
				// moved into a child of it, which holds their IDs).
				out, err := outsider(a, l, samePod, late)
				if err != nil {
					return stop(err)
				}
				if out != nil {
					out.Below = true
					run.Others = append(run.Others, *out)
				}
				continue
			}
		}
		o.PID = l.PID
		o.Name = processName(l.PID)
		run.Others = append(run.Others, o)
	}
	// The processes in the scanner's own user namespace (the initial
	// one, on a host) hold IDs as they are: a container run without a
	// user namespace of its own as a host UID (runc's process.user,
	// podman --user, a pod's runAsUser), a host service. A container
	// whose namespace maps one of them shares it with them; they were
	// not checked (only once one of them had unshared a namespace).
	// Read within the scan's budget, up to maxHeldOthers found. Only
	// where the hook runs in the initial namespace: a rootless
	// runtime's own namespace holds the IDs its containers map by
	// design (podman --userns=keep-id maps the user's ID, which the
	// runtime, conmon and the hook itself hold there; an ID its maps
	// lack shows as the overflow ID), not another container's.
	if own != scan.Own.Ident && scan.Own.Ident.Ino == nsrel.InitialUserNSIno && merr == nil && len(scan.Own.PIDs) > 0 {
		found := 0
		err := scan.Own.EachHeld(inTime, func(pid int, u, g idmap.Spans) bool {
			if idmap.Overlap(hu, u) == nil && idmap.Overlap(hg, g) == nil || samePod != nil && samePod(pid) {
				return true
			}
			run.Others = append(run.Others, policy.Other{Ino: scan.Own.Ident.Ino, PID: pid, Name: processName(pid), UIDs: u, GIDs: g, Held: true})
			found++
			return found < maxHeldOthers
		})
		switch {
		case errors.Is(err, inspect.ErrIncomplete):
			return stop(err)
		case err != nil:
			run.Others = append(run.Others, policy.Other{Ino: scan.Own.Ident.Ino, Held: true, Err: "the IDs its processes hold could not be read: " + err.Error()})
		}
	}
	return run
}

// maxHeldOthers bounds the processes of the scanner's own user namespace
// that RunningPod reports as holding a container's IDs: one is a
// violation already (a container mapping host root shares it with
// every root process).
const maxHeldOthers = 8

// outsider returns the first process in the container's own user
// namespace l that is not the container's (it lives in neither the
// container's PID namespace nor one below it, or, when the container
// joined that PID namespace or stayed in the top one, it is not its
// descendant and started before it) and not its pod's, as an
// [policy.Other] that shares the namespace; nil when there is none.
//
// late says when the scan's budget ran out: the search then stops with
// its error.
func outsider(a *audit.Ancestry, l *inspect.LiveUserNS, samePod func(pid int) bool, late func() error) (*policy.Other, error) {
	// A container in the PID namespace of the top of the chain (the
	// host's: runc, crun and podman let its creator leave the PID
	// namespace out) shares it with every process: as one that joined a
	// PID namespace, its own are its descendants and what started after
	// it (a daemon it forked, given to init). It was not checked, and a
	// container that joined a running one's user namespace ran.
	hostPID := a.PIDDepth() == 0
	joined := hostPID
	var own nsrel.Ident
	if !hostPID {
		own = nsrel.Ident{Dev: a.PIDNS[0].Dev, Ino: a.PIDNS[0].Ino}
		// A container that joined a PID namespace (rather than made
		// it, as its init) finds processes there that are not its
		// own: only its descendants are.
		// One that cannot be told is taken for joined: fewer processes
		// count as its own.
		made, merr := inspect.PIDNSInit(a.PID)
		joined = merr != nil || !made
	}
	for _, pid := range l.PIDs {
		if pid == a.PID {
			continue
		}
		if err := late(); err != nil {
			return nil, err
		}
		in, err := true, error(nil)
		if !hostPID {
			in, err = inspect.InPIDNS(pid, own, l.Ident)
		}
		switch {
		case errors.Is(err, inspect.ErrGone):
			continue
		case err == nil && in && (!joined || inspect.DescendsFrom(pid, a.PID) || !startedBefore(pid, a.StartTime)):
			// Of a joined PID namespace, the processes that were there
			// before the container's are not its own: a daemon it
			// forked, given to the namespace's init, came after.
			continue
		case err != nil:
			return &policy.Other{Ino: l.Ident.Ino, PID: pid, Name: processName(pid), Shared: true,
				Err: "cannot tell whether it is the container's: " + err.Error()}, nil
		case samePod != nil && samePod(pid):
			continue
		}
		return &policy.Other{Ino: l.Ident.Ino, PID: pid, Name: processName(pid), Shared: true}, nil
	}
	return nil, nil
}

// beforeCheck, when set (by the tests), runs before each step of
// [RunningPod]'s work after the scan that checks the scan's deadline,
// with that deadline. It is loaded once per [RunningPod], atomically: a
// test may set it while another's decision still runs.
var beforeCheck atomic.Pointer[func(deadline time.Time)]

// pastDeadline returns a check that says, once deadline passed (never
// for a zero one), that the work on the scan did not finish in time, as
// the scan itself says ([inspect.ErrIncomplete]).
func pastDeadline(deadline time.Time) func() error {
	steps := 0
	before := beforeCheck.Load()
	return func() error {
		if before != nil {
			(*before)(deadline)
		}
		steps++
		if deadline.IsZero() || !time.Now().After(deadline) {
			return nil
		}
		return fmt.Errorf("inspect: %w: its budget ran out after %d checks of the namespaces it found", inspect.ErrIncomplete, steps-1)
	}
}

// startedBefore reports whether process pid started before the start
// time (clock ticks since boot) of the container's process; a process
// gone or unreadable did not.
func startedBefore(pid int, start uint64) bool {
	st, err := inspect.StartTime(pid)
	return err == nil && st < start
}

// SamePodCgroup returns a samePod for [RunningPod]: a process is of the
// container's pod when its cgroup has the same parent as that of the
// container's process pid (Kubernetes puts a pod's sandbox and
// containers in one pod cgroup, kubepods/.../pod<UID>). Only where the
// kubelet chooses every container's cgroup may that decide: under runc,
// crun or podman the container's creator names its cgroup.
func SamePodCgroup(pid int) func(int) bool {
	parent := cgroupParent(pid)
	return func(other int) bool {
		return parent != "" && cgroupParent(other) == parent
	}
}

// cgroupParent returns the parent of process pid's cgroup (v2, or the
// first v1 hierarchy), or "" when it is unknown or the root.
func cgroupParent(pid int) string {
	p := cgroupPath(pid)
	if p == "" {
		return ""
	}
	parent := path.Dir(p)
	if parent == "/" || parent == "." {
		return ""
	}
	return parent
}

// cgroupPath returns process pid's cgroup: cgroup v2's ("0::/path"),
// else that of the first v1 hierarchy the runtimes and the kubelet always
// set (name=systemd, memory, pids), else the first v1 line's; "" when
// unknown.
func cgroupPath(pid int) string {
	cg, err := idmap.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return ""
	}
	return pickCgroup(cg)
}

// pickCgroup picks the path of /proc/PID/cgroup's content cg, as
// [cgroupPath] says.
func pickCgroup(cg []byte) string {
	rank := func(controllers string) int {
		switch {
		case controllers == "": // v2's "0::"
			return 0
		case controllers == "name=systemd":
			return 1
		}
		for _, c := range strings.Split(controllers, ",") {
			if c == "memory" || c == "pids" {
				return 2
			}
		}
		return 3
	}
	p, best := "", 4
	for _, line := range bytes.Split(cg, []byte{'\n'}) {
		if f := bytes.SplitN(line, []byte{':'}, 3); len(f) == 3 {
			if r := rank(string(f[1])); r < best {
				p, best = string(f[2]), r
			}
		}
	}
	return p
}

// processName says what process pid is, for a violation: its command
// and its cgroup (which names the container for runc, crun, podman,
// containerd and Kubernetes), each quoted unless plain
// ([vocab.QuoteItem]): both are the container's to choose, and a cgroup
// path "/web-1) (audit record seq 7); require_user_namespace: ok (x"
// passed for more of the refusal line than a name.
func processName(pid int) string {
	dir := "/proc/" + strconv.Itoa(pid)
	comm, _ := idmap.ReadFile(dir + "/comm")
	name := vocab.QuoteItem(vocab.Cut(string(bytes.TrimSpace(comm)), 64))
	if cg := cgroupPath(pid); cg != "" {
		name += ", cgroup " + vocab.QuoteItem(vocab.Cut(cg, 256))
	}
	return name
}

// deniedNote says which processes a scan could not read, for the
// record's error member.
func deniedNote(pids []int) string {
	if len(pids) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: the user namespaces of %d processes could not be read and were not checked (pids %v)",
		policy.RuleDisjoint, len(pids), pids[:min(len(pids), 10)])
}
