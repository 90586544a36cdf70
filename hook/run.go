package hook

import (
	"context"
	"errors"
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
)

// Version is nsrel's version, recorded in every audit record. Release
// builds set it with -ldflags "-X github.com/nsrel/nsrel/hook.Version=...".
var Version = "0.1.0-dev"

// Stages the hook handles.
var Stages = []string{audit.StageCreateRuntime, audit.StagePoststart, audit.StagePoststop}

// Hook runs one stage for one container.
type Hook struct {
	// Config is the parsed configuration.
	Config *policy.Config
	// Log is the audit log.
	Log *audit.Log
	// Logger receives diagnostics; nil discards them.
	Logger logrus.FieldLogger
	// Inspect reads a process's ancestry; nil means [inspect.Process].
	Inspect func(pid int) (*inspect.Ancestry, error)
	// Source is recorded as the writer; empty means audit.SourceOCIHook.
	Source string
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
	return nil, fmt.Errorf("unknown stage %q (want one of %s)", stage, strings.Join(Stages, ", "))
}

func (h *Hook) base(stage string, st *specs.State, b *policy.Block) *audit.Record {
	r := &audit.Record{
		Source:      h.Source,
		Stage:       stage,
		ContainerID: st.ID,
		Bundle:      st.Bundle,
		Policy:      b.Name,
		Mode:        b.Mode,
		Version:     Version,
	}
	if r.Source == "" {
		r.Source = audit.SourceOCIHook
	}
	for _, k := range h.Config.RecordAnnotations {
		if v, ok := st.Annotations[k]; ok {
			if r.Annotations == nil {
				r.Annotations = map[string]string{}
			}
			if len(v) > 1024 {
				v = v[:1024]
			}
			r.Annotations[k] = v
		}
	}
	return r
}

func (h *Hook) start(ctx context.Context, stage string, st *specs.State) (*Result, error) {
	b := h.Config.Select(st.ID, st.Annotations)
	rec := h.base(stage, st, b)
	inspectFn := h.Inspect
	if inspectFn == nil {
		inspectFn = inspect.Process
	}
	var ierr error
	if st.Pid <= 0 {
		ierr = fmt.Errorf("the state names no container process (pid %d)", st.Pid)
	} else {
		rec.Ancestry, ierr = inspectFn(st.Pid)
	}
	if ierr != nil {
		rec.Error = ierr.Error()
		if stage == audit.StagePoststart && errors.Is(ierr, inspect.ErrGone) {
			// A container whose process already exited (a short job) is
			// no internal error: it started, and createRuntime saw it.
			ierr = nil
		}
	} else {
		rec.Violations = b.Evaluate(rec.Ancestry)
	}
	_, aerr := h.Log.AppendWith(ctx, func(s *audit.Searcher) (*audit.Record, error) {
		if stage == audit.StagePoststart {
			h.compare(s, rec)
		}
		rec.Verdict = audit.VerdictAllow
		if ierr != nil && h.Config.OnError == policy.OnErrorDeny {
			rec.Verdict = audit.VerdictDeny
		}
		if b.Mode == policy.ModeEnforce && len(rec.Violations) > 0 {
			rec.Verdict = audit.VerdictDeny
		}
		return rec, nil
	})
	return h.finish(rec, ierr, aerr)
}

// compare sets rec.Ref to the container's createRuntime record and adds
// a violation when the ancestry changed since.
func (h *Hook) compare(s *audit.Searcher, rec *audit.Record) {
	// The container's latest createRuntime record, whatever its PID: a
	// different PID now is itself a difference.
	prev, err := s.Last(rec.ContainerID, func(r *audit.Record) bool {
		return r.Stage == audit.StageCreateRuntime && r.Ancestry != nil
	})
	if err != nil {
		h.logger().WithError(err).Warn("searching the createRuntime record")
		return
	}
	if prev == nil {
		h.logger().WithField("container", rec.ContainerID).Info("no createRuntime record to compare with")
		return
	}
	rec.Ref = &audit.Ref{Seq: prev.Seq, Stage: prev.Stage, Hash: prev.Hash}
	if rec.Ancestry == nil {
		return
	}
	if diffs := policy.Compare(prev.Ancestry, rec.Ancestry); len(diffs) > 0 {
		rec.Violations = append(rec.Violations, policy.Violation{
			Rule:   policy.RuleAncestryUnchanged,
			Reason: fmt.Sprintf("differs from the createRuntime record seq %d: %s", prev.Seq, strings.Join(diffs, "; ")),
		})
	}
}

func (h *Hook) stop(ctx context.Context, st *specs.State) (*Result, error) {
	b := h.Config.Select(st.ID, st.Annotations)
	rec := h.base(audit.StagePoststop, st, b)
	_, aerr := h.Log.AppendWith(ctx, func(s *audit.Searcher) (*audit.Record, error) {
		start, err := s.Last(st.ID, func(r *audit.Record) bool { return audit.IsStart(r.Stage) })
		if err != nil {
			rec.Error = "searching the start record: " + err.Error()
		} else if start != nil {
			rec.Ref = &audit.Ref{Seq: start.Seq, Stage: start.Stage, Hash: start.Hash}
		} else {
			rec.Error = "no start record for this container"
		}
		return rec, nil
	})
	return h.finish(rec, nil, aerr)
}

// finish turns the record and the errors met into a Result.
func (h *Hook) finish(rec *audit.Record, ierr, aerr error) (*Result, error) {
	res := &Result{Record: rec}
	log := h.logger().WithFields(logrus.Fields{"stage": rec.Stage, "container": rec.ContainerID, "policy": rec.Policy, "verdict": rec.Verdict})
	if aerr != nil {
		res.Record = nil
		log.WithError(aerr).Error("audit log append failed")
		res.Deny = h.Config.OnError == policy.OnErrorDeny && rec.Stage != audit.StagePoststop
		res.Message = fmt.Sprintf("container %s: cannot write the audit record (%s): %v", Printable(rec.ContainerID), decision(res.Deny), aerr)
		return res, aerr
	}
	log = log.WithField("seq", rec.Seq)
	if ierr != nil {
		log.WithError(ierr).Error("inspection failed")
		res.Deny = rec.Verdict == audit.VerdictDeny
		res.Message = fmt.Sprintf("container %s: cannot inspect its namespaces (%s): %v", Printable(rec.ContainerID), decision(res.Deny), ierr)
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
		log.Info("recorded")
	}
	return res, nil
}

func decision(deny bool) string {
	if deny {
		return "on_error=deny: refused"
	}
	return "on_error=allow: allowed"
}

func (h *Hook) logger() logrus.FieldLogger {
	if h.Logger == nil {
		l := logrus.New()
		l.Out = discard{}
		return l
	}
	return h.Logger
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// DenyMessage is the one line that tells the runtime (and its user) why
// a container was refused, naming every violated rule.
func DenyMessage(rec *audit.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "container %s refused by nsrel policy %q (enforce): ", Printable(rec.ContainerID), rec.Policy)
	for i, v := range rec.Violations {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(v.Rule + ": " + v.Reason)
	}
	if len(rec.Violations) == 0 && rec.Error != "" {
		b.WriteString(rec.Error)
	}
	fmt.Fprintf(&b, " (audit record seq %d)", rec.Seq)
	return b.String()
}

func rules(vs []policy.Violation) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = v.Rule
	}
	return strings.Join(s, ",")
}
