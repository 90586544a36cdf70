package hook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/vocab"
)

// Input is what a writer knows of a container when it records it.
// nsrel-hook fills it from the OCI state, the containerd event recorder
// from a task event and the container's labels and spec, the NRI plugin
// from the runtime's request.
type Input struct {
	// Stage and Source name the event and the writer in the record.
	Stage, Source string
	// ID is the container ID; Bundle its OCI bundle (when known);
	// Namespace the engine's namespace (containerd's "k8s.io"), if any.
	ID, Bundle, Namespace string
	// PID is the container's process on the host; 0 when there is none
	// (poststop) or the writer was not told.
	PID int
	// Meta are the container's annotations (and labels): they select the
	// policy block, and the keys the config lists are recorded.
	Meta map[string]string
	// Names, if set, are recorded (the keys the config lists) over
	// Meta's values of the same keys, and select nothing: the NRI
	// plugin's pod and container names, which the runtime sends and the
	// hook's annotations do not carry.
	Names map[string]string
	// Inspect reads a process's ancestry; nil means
	// [inspect.ProcessWith]. Decide passes it the decision's one scan of
	// the running processes.
	Inspect inspect.Func
	// Unknown are annotation keys the writer has no trustworthy value
	// of (the NRI plugin's image name), left out of Meta: a block that
	// selects on one of them and whose other selectors match may be the
	// container's ([policy.Config.Unsure]), so each such block that
	// enforces is evaluated too, and the first that refuses the
	// container judges it (the record names it). An audit block cannot
	// exempt that way.
	Unknown []string
	// Note is said in the record's error member (what the state's
	// decoding lost: [StateNote]).
	Note string
	// Budget bounds that scan from its start (0: [RunningBudget];
	// negative: no time left); a caller with a deadline of its own
	// passes what fits in it ([BudgetWithin]).
	Budget time.Duration
}

// BudgetWithin returns the scan's budget for a decision that must end by
// ctx's deadline, including the append of its record: half the time
// left, if that is less than [RunningBudget] (negative when none is).
func BudgetWithin(ctx context.Context, cfg *policy.Config) time.Duration {
	b := RunningBudget(cfg)
	if d, ok := ctx.Deadline(); ok {
		if left := time.Until(d) / 2; left <= 0 {
			return -1
		} else if left < b {
			return left
		}
	}
	return b
}

// Record returns the record of in under the policy block the container
// selects, without ancestry, verdict or chain fields: what every record
// of a container says, whatever the stage. Recorded annotation values
// are cut to [vocab.MaxRecordedValue] bytes at a character boundary.
func Record(cfg *policy.Config, in Input) *audit.Record {
	r, _ := record(cfg, in)
	return r
}

func record(cfg *policy.Config, in Input) (*audit.Record, *policy.Block) {
	b := cfg.Select(in.ID, in.Meta)
	r := &audit.Record{
		Source:      in.Source,
		Stage:       in.Stage,
		ContainerID: in.ID,
		Bundle:      in.Bundle,
		Namespace:   in.Namespace,
		Policy:      b.Name,
		Mode:        b.Mode,
		Version:     vocab.Version,
		Error:       in.Note,
	}
	if r.Source == "" {
		r.Source = audit.SourceOCIHook
	}
	for _, k := range cfg.RecordAnnotations {
		v, ok := in.Meta[k]
		if name, named := in.Names[k]; named {
			v, ok = name, true
		}
		if ok {
			if r.Annotations == nil {
				r.Annotations = map[string]string{}
			}
			r.Annotations[k] = vocab.Cut(v, vocab.MaxRecordedValue)
		}
	}
	return r, b
}

// Decide is the start decision, the same for every writer: it inspects
// the container's process, selects the policy block, evaluates it and
// returns the record with ancestry, violations and verdict set. ierr is
// the inspection error that on_error weighs (also kept in the record's
// Error); it is nil when inspection succeeded, and at poststart for a
// process that already exited (a short job started; createRuntime saw
// it).
func Decide(cfg *policy.Config, in Input) (rec *audit.Record, ierr error) {
	rec, b := record(cfg, in)
	// One scan of the running processes at most, bounded by the
	// budget: for the maps of a nested container's ancestors and
	// for disjoint_from_running.
	budget := in.Budget
	if budget == 0 {
		budget = RunningBudget(cfg)
	}
	live := inspect.NewLiveOnce(budget)
	inspectFn := in.Inspect
	if inspectFn == nil {
		inspectFn = inspect.ProcessWith
	}
	var anc *audit.Ancestry
	if in.PID <= 0 {
		ierr = fmt.Errorf("no container process to inspect (pid %d)", in.PID)
	} else if anc, ierr = inspectFn(in.PID, live); ierr == nil && anc == nil {
		ierr = errors.New("inspect: no ancestry")
	}
	if ierr != nil {
		rec.Error = vocab.JoinErrors(rec.Error, ierr.Error()) // cut to MaxRecordedError
		if in.Stage == audit.StagePoststart && errors.Is(ierr, inspect.ErrGone) {
			ierr = nil
		}
	} else {
		rec.Ancestry = anc
		if u := unsure(cfg, in, rec, live); u != nil {
			*rec = *u
		} else {
			rec.Violations = evaluate(cfg, in, b, rec, live)
		}
	}
	Judge(cfg, rec, ierr)
	return rec, ierr
}

// unsure evaluates rec's container, under [Input.Unknown], against
// each enforcing block that may be its block in place of the one
// selected without the unknown keys ([policy.Config.Unsure]), in
// order, and returns the record of the first that refuses it (rules
// broken, or not checked), which names that block and says why it
// judged; nil when none refuses.
func unsure(cfg *policy.Config, in Input, rec *audit.Record, live *inspect.LiveOnce) *audit.Record {
	if len(in.Unknown) == 0 {
		return nil
	}
	for _, b := range cfg.Unsure(in.ID, in.Meta, in.Unknown) {
		if b.Mode != policy.ModeEnforce {
			continue
		}
		r := *rec
		r.Policy, r.Mode = b.Name, b.Mode
		if r.Violations = evaluate(cfg, in, b, &r, live); len(r.Violations) > 0 {
			r.Error = vocab.JoinErrors(r.Error, fmt.Sprintf("judged by block %s, which selects on %s: this writer has no trustworthy value of it, so the block may be the container's, and it refuses it",
				vocab.Quote(b.Name), strings.Join(unknownIn(b, in.Unknown), ", ")))
			return &r
		}
	}
	return nil
}

// unknownIn returns the keys of unknown b selects on.
func unknownIn(b *policy.Block, unknown []string) []string {
	var keys []string
	for _, am := range b.Match.Annotations {
		if slices.Contains(unknown, am.Key) {
			keys = append(keys, am.Key)
		}
	}
	return keys
}

// evaluate checks the container's ancestry (rec's) against b's rules,
// with one scan of the running processes when disjoint_from_running
// needs it. Every rule is evaluated, whatever the others found: the
// record lists every violation (the containerd event recorder cannot
// refuse, and a warning is all an audit block gives), and a rule that
// could not be checked is not mistaken for one found broken (its
// violation's reason starts with [policy.Unchecked]). The scan, and the walk of what it found, end at the
// scan's deadline ([RunningPod]): that, not skipping them, keeps a
// refusal within the caller's deadline (TestRunningChecksInTime).
//
// A container in the initial user namespace shares every host ID with
// the host's processes: it breaks disjoint_from_running without a scan
// (TestRefusedWithoutScan).
func evaluate(cfg *policy.Config, in Input, b *policy.Block, rec *audit.Record, live *inspect.LiveOnce) []audit.Violation {
	var run *policy.Running
	if b.Rules.NeedsFacts() && rec.Ancestry.UserDepth() > 0 {
		// The IDs its process holds (host_root_unmapped,
		// held_ids_mapped, disjoint_from_running) and its idmapped
		// mounts (host_root_unmapped), read only for the rules that
		// judge them, by half the scan's budget: a mount table made
		// slow to print cannot be checked (a violation), rather than
		// outlast the caller's deadline.
		inspect.ReadFacts(rec.Ancestry, b.Rules.HostRootUnmapped, live.FactsDeadline())
		switch a := rec.Ancestry; {
		case a.FactsGone && rec.Stage != audit.StagePoststart:
			// Forgiven at poststart only, as a process gone before its
			// inspection is: elsewhere the rules are not checked.
			a.FactsGone, a.FactsErr = false, "its process exited before they were read"
		case a.FactsGone && !strings.Contains(rec.Error, factsGoneNote):
			rec.Error = vocab.JoinErrors(rec.Error, factsGoneNote)
		}
	}
	if b.Rules.NeedsRunning() && rec.Ancestry.UserDepth() > 0 {
		run = RunningPod(rec.Ancestry, live, samePod(cfg, in))
		if note := deniedNote(run.Denied); note != "" {
			rec.Error = vocab.JoinErrors(rec.Error, note)
		}
	}
	return b.Rules.EvaluateRunning(rec.Ancestry, run)
}

// factsGoneNote says, in a record, that the container's process exited
// before what host_root_unmapped, held_ids_mapped and
// disjoint_from_running read of it (the IDs it holds, its mounts): a
// short job at poststart, recorded as one that exited before its
// inspection is.
const factsGoneNote = "the container's process exited before the IDs it holds and its mounts were read: not judged"

// samePod returns how to tell the processes of the container's pod,
// which may share its user namespace, for [RunningPod]: by the pod's
// cgroup ([SamePodCgroup]), and only for a container of a CRI pod on a
// node whose config trusts the CRI's keys (trusted_selectors: there only
// the CRI creates containers, and the kubelet chooses their cgroups; a
// container's creator under runc, crun or podman names its own). nil
// otherwise: every process outside the container counts.
func samePod(cfg *policy.Config, in Input) func(int) bool {
	if in.Meta[vocab.AnnotationSandboxID] == "" || in.PID <= 0 {
		return nil
	}
	for _, k := range []string{vocab.AnnotationSandboxNamespace, vocab.AnnotationSandboxName, vocab.AnnotationContainerName, vocab.AnnotationSandboxID} {
		if cfg.TrustedSelectors.TrustsAnnotation(k) {
			return SamePodCgroup(in.PID)
		}
	}
	return nil
}

// cutRefused says why a cut state is refused whatever on_error says.
const cutRefused = "refused whatever on_error says: a block selects by annotation, and the annotations past the cut are unknown"

// Judge sets rec.Verdict: deny when the record's block enforces and a
// rule was violated, or when ierr is set and on_error is deny; allow
// otherwise. Call it again after adding violations (poststart's
// comparison with the createRuntime record).
//
// A state cut at its size limit ([ErrStateCut]), or where its input
// stopped before it was whole ([ErrStateUnended]), is refused whatever
// on_error says when a block selects containers by annotation: the
// annotations past the cut are unknown, so the block that should have
// judged it is too (a pod could otherwise flood its annotations to fall
// under the default).
func Judge(cfg *policy.Config, rec *audit.Record, ierr error) {
	rec.Verdict = audit.VerdictAllow
	if ierr != nil && cfg.OnError == policy.OnErrorDeny {
		rec.Verdict = audit.VerdictDeny
	}
	if cutJudged(cfg, ierr) {
		rec.Verdict = audit.VerdictDeny
		if !strings.Contains(rec.Error, cutRefused) {
			rec.Error = vocab.JoinErrors(rec.Error, cutRefused)
		}
	}
	if rec.Mode == policy.ModeEnforce && len(rec.Violations) > 0 {
		rec.Verdict = audit.VerdictDeny
	}
}

// cutJudged reports whether ierr is the error of a cut state that [Judge]
// refuses whatever on_error says under cfg.
func cutJudged(cfg *policy.Config, ierr error) bool {
	return (errors.Is(ierr, ErrStateCut) || errors.Is(ierr, ErrStateUnended)) && cfg.SelectsByAnnotation()
}
