package hook

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/logging"
	"github.com/nsrel/nsrel/internal/vocab"
)

// Hook runs one stage for one container.
type Hook struct {
	// Config is the parsed configuration.
	Config *policy.Config
	// Log is the audit log.
	Log *audit.Log
	// Logger receives diagnostics; nil discards them.
	Logger logrus.FieldLogger
	// Inspect reads a process's ancestry; nil means
	// [inspect.ProcessWith] (see [Input]).
	Inspect inspect.Func
	// Source is recorded as the writer; empty means audit.SourceOCIHook.
	Source string
	// Note, if set, is said in each record's error member (what the
	// state's decoding lost: [StateNote]).
	Note string
	// Decided, if set, is called with whether the container is refused
	// once the verdict is final, before the record is appended
	// (createRuntime, poststart): a caller whose deadline passes before
	// the record is written still knows.
	Decided func(deny bool)
}

// Result is the outcome of a stage.
type Result struct {
	// Record is the record appended (nil if none could be).
	Record *audit.Record
	// Deny is set when the runtime must be told to refuse the container
	// (exit status 1).
	Deny bool
	// Message is the one line for stderr when Deny is set or when an
	// internal error was tolerated.
	Message string
}

// Run handles stage for the container described by st. An internal
// error (inspection, audit log) is returned together with a Result that
// says what on_error decided.
func (h *Hook) Run(ctx context.Context, stage string, st *specs.State) (*Result, error) {
	switch stage {
	case audit.StageCreateRuntime, audit.StagePoststart:
		return h.start(ctx, stage, st)
	case audit.StagePoststop:
		return h.stop(ctx, st)
	}
	return nil, fmt.Errorf("unknown stage %q (want one of %s)", stage, strings.Join(vocab.HookStages, ", "))
}

// input is what Decide needs of st. The scan of the running processes,
// and the work on what it found, leave the append its share of ctx's
// deadline ([BudgetWithin]).
func (h *Hook) input(ctx context.Context, stage string, st *specs.State) Input {
	return Input{Stage: stage, Source: h.Source, ID: st.ID, Bundle: st.Bundle, PID: st.Pid, Meta: st.Annotations, Inspect: h.Inspect,
		Note: h.Note, Budget: BudgetWithin(ctx, h.Config)}
}

func (h *Hook) start(ctx context.Context, stage string, st *specs.State) (*Result, error) {
	rec, ierr := Decide(h.Config, h.input(ctx, stage, st))
	// At poststart the comparison under the lock can only add a
	// violation: a refusal decided here stands.
	h.decided(rec)
	aerr := h.appendStart(ctx, rec, st.Pid, func(cerr error) {
		// A comparison that could not be made is weighed as what could
		// not be inspected: on_error decides.
		Judge(h.Config, rec, cmp.Or(ierr, cerr))
	})
	return h.finish(rec, ierr, aerr)
}

// AppendWithRef appends rec, a record of stage rec.Stage that the
// caller made for a container whose process the runtime gave as pid
// (nsrel-hook's record of a run whose config does not load), referring
// to the container's earlier record as [Hook.Run]'s records do: at
// poststart rec is compared with the createRuntime record of its
// process, judge (nil: none) then setting the verdict again, given why
// the comparison could not be made (nil if it was); at poststop it
// refers to the container's start record.
func (h *Hook) AppendWithRef(ctx context.Context, rec *audit.Record, pid int, judge func(cerr error)) error {
	switch rec.Stage {
	case audit.StagePoststart:
		if judge == nil {
			judge = func(error) {}
		}
		return h.appendStart(ctx, rec, pid, judge)
	case audit.StagePoststop:
		return h.appendStop(ctx, rec, pid)
	}
	return h.appendAsIs(ctx, rec)
}

// appendStart appends rec, a start record of the container's process
// pid. At poststart the container's createRuntime record is searched
// for first, before the log's lock is taken, and again under it only if
// the container's records changed meanwhile ([audit.AppendAfterSearch]),
// and rec compared with it ([Hook.compare]); judge then sets the verdict
// again, given why the comparison could not be made (nil if it was).
func (h *Hook) appendStart(ctx context.Context, rec *audit.Record, pid int, judge func(cerr error)) error {
	if rec.Stage != audit.StagePoststart {
		return h.appendAsIs(ctx, rec)
	}
	var note func()
	_, aerr := audit.AppendAfterSearch(ctx, h.Log, func(s *audit.Searcher) (earlier, error) {
		return createRuntimeOf(s, rec.ContainerID, pid, rec.Ancestry)
	}, func(e earlier, serr error) (*audit.Record, error) {
		var cerr error
		note, cerr = h.compare(rec, pid, e, serr)
		judge(cerr)
		h.decided(rec)
		return rec, nil
	})
	if note != nil {
		// Logged once the lock is free: the diagnostics may go to a
		// syslog server that is slow to take them.
		note()
	}
	return aerr
}

// appendAsIs appends rec, which refers to no earlier record.
func (h *Hook) appendAsIs(ctx context.Context, rec *audit.Record) error {
	_, err := h.Log.AppendWith(ctx, func(*audit.Searcher) (*audit.Record, error) { return rec, nil })
	return err
}

// decided passes rec's final verdict to h.Decided.
func (h *Hook) decided(rec *audit.Record) {
	if h.Decided != nil {
		h.Decided(rec.Verdict == audit.VerdictDeny)
	}
}

// earlier is what [createRuntimeOf] found: the createRuntime record to
// compare with (prev), the ID's latest createRuntime record, the latest
// of the gone process's PID that a poststop closed, and the start records
// that poststops closed (by seq, with the poststop's seq).
type earlier struct {
	prev, latest, closed *audit.Record
	stopped              map[uint64]uint64
}

// createRuntimeOf searches for the latest createRuntime record of the
// container id's process pid, whose ancestry a is (nil when it is gone):
// its PID and start time, which no other process of the boot has. runc
// reuses a container's ID once it is deleted, and an earlier container's
// record is not this one's (TestPoststartReusedID). Its poststop may even
// land after this one's createRuntime record (runc removes the state,
// freeing the ID, before it runs poststop hooks), so a poststop closes
// only the start record it refers to, and only matters when the process
// is gone and its PID alone is known (TestPoststartLatePoststop).
func createRuntimeOf(s *audit.Searcher, id string, pid int, a *audit.Ancestry) (earlier, error) {
	var start uint64
	if a != nil {
		start = a.StartTime
	}
	e := earlier{stopped: map[uint64]uint64{}}
	var err error
	e.prev, err = s.Last(id, func(r *audit.Record) bool {
		closes(e.stopped, r)
		switch r.Stage {
		case audit.StageCreateRuntime:
			if e.latest == nil {
				e.latest = r
			}
			// A record of another boot is of another process,
			// whatever its PID and start time.
			if r.Ancestry == nil || r.PID != pid || !r.OfThisBoot() {
				return false
			}
			if a != nil {
				return r.StartTime == start
			}
			if e.stopped[r.Seq] != 0 {
				if e.closed == nil {
					e.closed = r
				}
				return false
			}
			return true
		}
		return false
	})
	return e, err
}

// compare sets rec.Ref to the createRuntime record of the container's
// process pid that the search found (e, or its error err) and adds a
// violation when the ancestry changed since. It returns what to log
// (nil: nothing), for after the log's lock is released, and why the
// comparison could not be made (the record says so too).
func (h *Hook) compare(rec *audit.Record, pid int, e earlier, err error) (func(), error) {
	prev := e.prev
	if err != nil {
		// A search past the deadline (or a read error): the record says
		// the comparison was not made.
		rec.Error = vocab.JoinErrors(rec.Error, "searching the createRuntime record: "+err.Error())
		return func() { h.logger().WithError(err).Warn("searching the createRuntime record") }, err
	}
	if l := e.latest; prev == nil && rec.Ancestry != nil && l != nil && l.Ancestry != nil && l.PID == pid &&
		l.OfThisBoot() && l.StartTime < rec.Ancestry.StartTime && e.stopped[l.Seq] == 0 &&
		l.Verdict != audit.VerdictDeny && rec.Verdict != audit.VerdictDeny {
		// The ID's latest createRuntime record, which allowed its
		// container and no poststop closed, is of this PID and of a
		// process that started before the one there now: the
		// container's process exited and its PID is another process's
		// (a user can fork until it gets it). That process's namespaces
		// are not the container's: recorded as a process gone, as when
		// the inspection found it so. Not when that record refused its
		// container (runc records no poststop of one: an earlier
		// container's, and the running one's record may be missing),
		// nor when the rules refuse this process: a refusal decided
		// stands (it was passed on already) and the record keeps what
		// it was decided on, with the note below.
		rec.Error = vocab.JoinErrors(rec.Error, fmt.Sprintf("inspect: pid %d: %v: the container's process (start time %d, createRuntime record seq %d) has exited; the pid is another process's now (start time %d), not recorded",
			pid, inspect.ErrGone, l.StartTime, l.Seq, rec.Ancestry.StartTime))
		rec.Ancestry, rec.Violations = nil, nil
		rec.Ref = &audit.Ref{Seq: l.Seq, Stage: l.Stage, Hash: l.Hash}
		return nil, nil
	}
	if prev == nil {
		// Not an error of inspection: the verdict stays the rules'. The
		// record says what is missing (and counts as one with an error).
		rec.Error = vocab.JoinErrors(rec.Error, notCompared(pid, rec.Ancestry, e.latest, e.closed, e.stopped))
		return nil, nil
	}
	rec.Ref = &audit.Ref{Seq: prev.Seq, Stage: prev.Stage, Hash: prev.Hash}
	if rec.Ancestry == nil {
		return nil, nil
	}
	if diffs := policy.Compare(prev.Ancestry, rec.Ancestry); len(diffs) > 0 {
		rec.Violations = append(rec.Violations, audit.Violation{
			Rule:   policy.RuleAncestryUnchanged,
			Reason: fmt.Sprintf("differs from the createRuntime record seq %d: %s", prev.Seq, strings.Join(diffs, "; ")),
		})
	}
	return nil, nil
}

// closes adds to stopped, by their seq, the start records r closes and
// the poststop that closes them, for a search of the log backwards,
// which meets a record after those it refers to: a poststop closes its
// start record, and a start record closed closes the one it refers to (a
// poststart's createRuntime record). It reports whether r is a poststop.
func closes(stopped map[uint64]uint64, r *audit.Record) bool {
	stop := r.Stage == audit.StagePoststop
	if r.Ref != nil {
		switch {
		case stop:
			stopped[r.Ref.Seq] = r.Seq
		case audit.IsStart(r.Stage) && stopped[r.Seq] != 0:
			stopped[r.Ref.Seq] = stopped[r.Seq]
		}
	}
	return stop
}

// notCompared is the note of a poststart record that found no
// createRuntime record of the container's process pid (whose ancestry a
// is, nil when it is gone) to compare with; latest is the ID's latest
// createRuntime record, if any, and closed, for a process gone, the
// latest of its PID, which a poststop closed (stopped[closed.Seq] is that
// poststop's seq), if any.
func notCompared(pid int, a *audit.Ancestry, latest, closed *audit.Record, stopped map[uint64]uint64) string {
	var b strings.Builder
	if closed != nil {
		// A poststop of the ID that refers to it, when both containers'
		// processes were gone and the runtime gave no PID at poststop
		// (runc, crun): it may have been an earlier container's.
		fmt.Fprintf(&b, "%s: not compared: the createRuntime record of pid %d, seq %d, was closed by poststop seq %d", policy.RuleAncestryUnchanged, pid, closed.Seq, stopped[closed.Seq])
		if latest == closed {
			return b.String()
		}
	} else {
		fmt.Fprintf(&b, "%s: not compared: no createRuntime record of pid %d", policy.RuleAncestryUnchanged, pid)
		if a != nil {
			fmt.Fprintf(&b, " (start time %d)", a.StartTime)
		}
	}
	switch {
	case latest == nil:
		b.WriteString("; the ID has none")
	case latest.Ancestry == nil:
		fmt.Fprintf(&b, "; the latest for the ID, seq %d, holds no process", latest.Seq)
	case !latest.OfThisBoot():
		fmt.Fprintf(&b, "; the latest for the ID, seq %d, is of pid %d (start time %d) of another boot (%s)", latest.Seq, latest.PID, latest.StartTime, vocab.Printable(latest.BootID))
	default:
		fmt.Fprintf(&b, "; the latest for the ID, seq %d, is of pid %d (start time %d)", latest.Seq, latest.PID, latest.StartTime)
	}
	return b.String()
}

func (h *Hook) stop(ctx context.Context, st *specs.State) (*Result, error) {
	rec := Record(h.Config, h.input(ctx, audit.StagePoststop, st))
	return h.finish(rec, nil, h.appendStop(ctx, rec, st.Pid))
}

// appendStop appends rec, the poststop record of a container whose
// process the runtime gave as pid (0: none), with a ref to its start
// record ([stopStart]), or an error that says why it has none. The
// start record is searched for before the log's lock is taken, and
// again under it only if the container's records changed meanwhile: a
// container the log does not hold (started before nsrel was installed)
// is searched for through the whole window ([audit.AppendAfterSearch]).
func (h *Hook) appendStop(ctx context.Context, rec *audit.Record, pid int) error {
	type found struct {
		start *audit.Record
		why   string
	}
	_, aerr := audit.AppendAfterSearch(ctx, h.Log, func(s *audit.Searcher) (found, error) {
		start, why, err := stopStart(s, rec.ContainerID, pid, rec.Source)
		return found{start, why}, err
	}, func(f found, err error) (*audit.Record, error) {
		start, why := f.start, f.why
		if err != nil {
			rec.Error = vocab.JoinErrors(rec.Error, "searching the start record: "+err.Error())
		} else if start != nil {
			rec.Ref = &audit.Ref{Seq: start.Seq, Stage: start.Stage, Hash: start.Hash}
			if start.Ancestry != nil && start.OfThisBoot() && inspect.Runs(start.PID, start.StartTime) {
				// runc 1.1 gives a container whose init's main thread
				// exited as stopped, and runs poststop, while its
				// other threads run on in its namespaces.
				rec.Error = vocab.JoinErrors(rec.Error, fmt.Sprintf("pid %d of start record seq %d still runs", start.PID, start.Seq))
			}
		} else {
			rec.Error = vocab.JoinErrors(rec.Error, why)
		}
		return rec, nil
	})
	return aerr
}

// stopStart returns the start record that a poststop of container id,
// whose process the runtime gave as pid (0: none), written by source,
// refers to: the container's last start record that no later poststop
// refers to (else that start was an earlier container's, whose ID runc
// reused: TestPoststopReusedID). Without one it returns why, for the
// record's error.
//
// runc frees the ID before it runs poststop hooks, so a new container of
// the ID may have recorded its start already (TestPoststartLatePoststop):
// when the runtime names the container's process (runc 1.1 and crun 1.8
// give no PID at poststop), a start record of another PID is not this
// container's (TestPoststopPID), and one of no process is taken only
// without a start record of the PID (TestPoststopNoProcessStart);
// without it, one whose process no longer runs is preferred. And of the container's start records, source's own
// are preferred: another writer's (the containerd event recorder's
// start, written when it found none of the process) is taken only
// without one, lest source's stay open (TestPoststopOwnSource).
//
// The search stops where no start record of the
// container can be further back: at a start record of pid that a
// poststop closed (this stop is recorded already), and at the poststop
// after [laterStops] (TestPoststopDuplicate). With pid given, a poststop
// that closed a start record of another process is not counted (it is
// known once that record is met): it cannot be this container's, and
// other containers of the ID, run alongside under another runtime root,
// can leave any number of them (TestPoststopOthersOfID).
func stopStart(s *audit.Searcher, id string, pid int, source string) (start *audit.Record, why string, err error) {
	stopped := map[uint64]uint64{}
	// fallback[k] are the start records of rank k met, latest first: 2
	// for a process that runs (with pid given: for a start record of no
	// process), plus 1 for another writer's. The latest not among
	// others (records of no process known to be another process's: see
	// refersTo) is taken when no record of rank 0 is found.
	var fallback [4][]*audit.Record
	others := map[uint64]bool{}
	stops := 0
	// pending holds, with pid given, the poststops (by seq) met with a
	// ref whose start record is not met yet: counted only if that holds
	// no process, whose PID could be pid.
	pending := map[uint64]bool{}
	gaveUp := false
	count := func() bool {
		if stops++; stops > laterStops {
			gaveUp = true
			if pid > 0 {
				why = fmt.Sprintf("no start record for this container since the ID's last %d poststops that closed no start record of another process (searched no further)", stops)
			} else {
				why = fmt.Sprintf("no start record for this container since the ID's last %d poststops (searched no further)", stops)
			}
		}
		return gaveUp
	}
	var done *audit.Record // a start record of pid closed
	// refersTo maps, with pid given, the seq of a start record that
	// later start records of no process refer to (a poststart's
	// createRuntime record) to those records, latest first: the one
	// referred to tells whose they are (of pid: the latest is the
	// container's start, and ending it ends both; of another PID: they
	// are another container's). took is the record taken for the one
	// the search stopped at.
	refersTo := map[uint64][]*audit.Record{}
	var took *audit.Record
	start, err = s.Last(id, func(r *audit.Record) bool {
		if closes(stopped, r) {
			if pid > 0 && r.Ref != nil {
				pending[r.Seq] = true
				return false
			}
			return count()
		}
		if !audit.IsStart(r.Stage) || !r.OfThisBoot() {
			// An earlier boot's start, with a process or without, is
			// another container's.
			return false
		}
		if stop := stopped[r.Seq]; stop != 0 {
			if pid > 0 && r.Ancestry != nil && r.PID == pid {
				done = r
				why = fmt.Sprintf("no start record for this container: the stop of pid %d is recorded already, by poststop seq %d (start record seq %d)", pid, stop, r.Seq)
				return true
			}
			switch {
			case !pending[stop]:
			case r.Ancestry != nil:
				delete(pending, stop) // another process's
			case r.Ref == nil || !audit.IsStart(r.Ref.Stage):
				delete(pending, stop)
				return count()
			}
			// A start record of no process that refers to another
			// (a poststart's createRuntime record): that one tells.
			return false
		}
		k := 0
		switch {
		case pid > 0 && r.Ancestry != nil:
			if r.PID != pid {
				for _, later := range refersTo[r.Seq] {
					others[later.Seq] = true
				}
				return false
			}
			if later := refersTo[r.Seq]; len(later) > 0 {
				r = later[0]
			}
		case pid > 0:
			// A start record of no process (its inspection failed: it
			// exited first) may be another container's of the ID, whose
			// creator had its process exit before it was inspected:
			// taken only without a start record of pid, unless it
			// refers to one (above).
			if r.Ref != nil && audit.IsStart(r.Ref.Stage) {
				refersTo[r.Ref.Seq] = append(refersTo[r.Ref.Seq], r)
			}
			k = 2
		case r.Ancestry != nil && r.OfThisBoot() && inspect.Runs(r.PID, r.StartTime):
			k = 2
		}
		if r.Source != source {
			k++
		}
		if k == 0 {
			took = r
			return true
		}
		if len(fallback[k]) < maxFallback {
			fallback[k] = append(fallback[k], r)
		}
		return false
	})
	if err != nil || done != nil {
		// Recorded already: no other writer's start record of the
		// process is taken for a second stop.
		return nil, why, err
	}
	if gaveUp {
		start = nil
	} else if start != nil && took != nil {
		start = took
	}
	for _, rs := range fallback {
		for _, r := range rs {
			if start == nil && !others[r.Seq] {
				start = r
			}
		}
	}
	if start == nil && why == "" {
		why = "no start record for this container"
	}
	return start, why, nil
}

// maxFallback bounds the start records of each rank [stopStart] keeps
// (a reused ID's records over weeks would otherwise all be held).
const maxFallback = 16

// laterStops is how many poststops of other containers of an ID can come
// after a container's start record and before its poststop: runc frees
// the ID before it runs poststop hooks, so an earlier container's
// poststop can come late, and a later container may even start and stop
// before the poststop hooks of this one run. A poststop search that
// passes more stops there: what it would read (the whole search window,
// tens of MiB, under the log's lock, as for a duplicate poststop) holds
// no start record of this container. Where the runtime gives the PID,
// the stops that closed another process's start record are not counted
// ([stopStart]): containers of the ID run alongside this one can leave
// any number.
const laterStops = 2

// finish turns the record and the errors met into a Result.
func (h *Hook) finish(rec *audit.Record, ierr, aerr error) (*Result, error) {
	res := &Result{Record: rec}
	log := h.logger().WithFields(logrus.Fields{"stage": rec.Stage, "container": rec.ContainerID, "policy": rec.Policy, "verdict": rec.Verdict})
	if aerr != nil {
		res.Record = nil
		log.WithError(aerr).Error("audit log append failed")
		if rec.Verdict == audit.VerdictDeny && rec.Stage != audit.StagePoststop {
			// A refusal stands whatever on_error says: on_error=allow
			// weighs what could not be checked, and this was. (Anyone
			// who could make the record fail, by filling the disk or
			// making it too long, could otherwise run what the policy
			// refuses.)
			res.Deny = true
			res.Message = UnrecordedDenyMessage(rec, aerr)
			return res, aerr
		}
		res.Deny = h.Config.OnError == policy.OnErrorDeny && rec.Stage != audit.StagePoststop
		res.Message = fmt.Sprintf("container %s: cannot write the audit record (%s): %v", vocab.QuoteItem(rec.ContainerID), decision(rec.Stage, res.Deny), aerr)
		return res, aerr
	}
	log = log.WithField("seq", rec.Seq)
	if ierr != nil {
		res.Deny = rec.Verdict == audit.VerdictDeny
		if errors.Is(ierr, ErrInput) {
			log.WithError(ierr).Error("state refused; recorded what could be read")
			id := "(no ID)"
			if rec.ContainerID != "" {
				id = vocab.QuoteItem(rec.ContainerID)
			}
			res.Message = fmt.Sprintf("container %s: %v (%s; audit record seq %d)", id, ierr, verdictWhy(h.Config, rec, res.Deny, ierr), rec.Seq)
			return res, ierr
		}
		log.WithError(ierr).Error("inspection failed")
		res.Message = fmt.Sprintf("container %s: cannot inspect its namespaces (%s; audit record seq %d): %v", vocab.QuoteItem(rec.ContainerID), verdictWhy(h.Config, rec, res.Deny, ierr), rec.Seq, ierr)
		return res, ierr
	}
	if rec.Verdict == audit.VerdictDeny {
		res.Deny = true
		res.Message = DenyMessage(rec)
		log.Warn(res.Message)
		return res, nil
	}
	if len(rec.Violations) > 0 {
		log.WithField("violations", rules(rec.Violations)).Warn("policy violated (audit mode: allowed)")
	} else {
		// The audit record says it all: a diagnostics entry for every
		// container start would only repeat it (and cost each stage the
		// diagnostics file's open and write).
		log.Debug("recorded")
	}
	return res, nil
}

// verdictWhy says what decided the verdict of a record written despite
// an error: the enforcing block when it was violated (the state of a
// refused input still selects a block and is inspected), the cut of a
// state [Judge] refuses whatever on_error says, on_error otherwise.
func verdictWhy(cfg *policy.Config, rec *audit.Record, deny bool, ierr error) string {
	if deny && rec.Mode == policy.ModeEnforce && len(rec.Violations) > 0 {
		return fmt.Sprintf("refused by nsrel policy %q (enforce): %s", rec.Policy, rules(rec.Violations))
	}
	if deny && cutJudged(cfg, ierr) {
		return cutRefused
	}
	return decision(rec.Stage, deny)
}

// decision says what on_error decided at stage; poststop never refuses,
// whatever on_error says (TestPoststopMessages).
func decision(stage string, deny bool) string {
	switch {
	case stage == audit.StagePoststop:
		return "poststop never refuses"
	case deny:
		return "on_error=deny: refused"
	}
	return "on_error=allow: allowed"
}

func (h *Hook) logger() logrus.FieldLogger { return logging.OrDiscard(h.Logger) }

// DenyMessage is the one line that tells the runtime (and its user) why
// a container was refused, naming every violated rule.
func DenyMessage(rec *audit.Record) string {
	return fmt.Sprintf("%s (audit record seq %d)", denyReason(rec), rec.Seq)
}

// UnrecordedDenyMessage is [DenyMessage] for a refusal whose record
// could not be written (err).
func UnrecordedDenyMessage(rec *audit.Record, err error) string {
	return fmt.Sprintf("%s (refused, though the audit record could not be written: %v)", denyReason(rec), err)
}

func denyReason(rec *audit.Record) string {
	if rec.Mode != policy.ModeEnforce || len(rec.Violations) == 0 {
		// Refused for what could not be checked, not by a rule: by
		// on_error, or by the cut of a state whatever on_error says
		// ([Judge]).
		why := "on_error=deny"
		if strings.Contains(rec.Error, cutRefused) {
			why = "a cut state"
		}
		return fmt.Sprintf("container %s refused by nsrel (%s, policy %q): %s", vocab.QuoteItem(rec.ContainerID), why, rec.Policy, rec.Error)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "container %s refused by nsrel policy %q (enforce): ", vocab.QuoteItem(rec.ContainerID), rec.Policy)
	for i, v := range rec.Violations {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(v.Rule + ": " + v.Reason)
	}
	return b.String()
}

func rules(vs []audit.Violation) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = v.Rule
	}
	return strings.Join(s, ",")
}
