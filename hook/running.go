package hook

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
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
	if len(a.User) == 0 {
		return &policy.Running{Err: errors.New("no user namespace chain")}
	}
	scan, err := live.Get()
	if err != nil {
		return &policy.Running{Err: err}
	}
	run := &policy.Running{Denied: scan.Denied}
	own := nsrel.Ident{Dev: a.User[0].Dev, Ino: a.User[0].Ino}
	chain := map[nsrel.Ident]bool{}
	for _, u := range a.User {
		chain[nsrel.Ident{Dev: u.Dev, Ino: u.Ino}] = true
	}
	uids, gids, merr := policy.HostMaps(a)
	for i := range scan.Namespaces {
		l := &scan.Namespaces[i]
		if chain[l.Ident] {
			continue
		}
		o := policy.Other{Ino: l.Ident.Ino}
		if l.Err != nil {
			if errors.Is(l.Err, inspect.ErrGone) {
				continue // every process in it exited since the scan: it maps nothing now
			}
			o.Err = l.Err.Error()
		} else {
			o.UIDs, o.GIDs = l.Maps.UID.Host(), l.Maps.GID.Host()
			if merr == nil && idmap.Overlap(uids.Host(), o.UIDs) == nil && idmap.Overlap(gids.Host(), o.GIDs) == nil {
				continue // disjoint: nothing to report, no need to know more
			}
			var below bool
			err := l.WithProcess(func(pid int) (err error) {
				below, err = inspect.Descends(pid, l.Ident, own)
				return err
			})
			switch {
			case err != nil && errors.Is(err, inspect.ErrGone):
				continue
			case err != nil:
				o.Err = "cannot tell whether it lies below the container's: " + err.Error()
			case below:
				continue // the container's own nested namespace
			}
		}
		o.PID = l.PID
		o.Name = processName(l.PID)
		run.Others = append(run.Others, o)
	}
	return run
}

// processName says what process pid is, for a violation: its command
// and its cgroup (which names the container for runc, crun, podman,
// containerd and Kubernetes), escaped: both are the container's to
// choose.
func processName(pid int) string {
	dir := "/proc/" + strconv.Itoa(pid)
	comm, _ := idmap.ReadFile(dir + "/comm")
	name := vocab.Printable(vocab.Cut(string(bytes.TrimSpace(comm)), 64))
	if cg, err := idmap.ReadFile(dir + "/cgroup"); err == nil {
		// cgroup v2 ("0::/path") or the first v1 line's path.
		path := ""
		for _, line := range bytes.Split(cg, []byte{'\n'}) {
			if f := bytes.SplitN(line, []byte{':'}, 3); len(f) == 3 {
				if path == "" || string(f[0]) == "0" {
					path = string(f[2])
				}
			}
		}
		if path != "" {
			name += ", cgroup " + vocab.Printable(vocab.Cut(path, 256))
		}
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
