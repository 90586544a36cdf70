package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/logging"
	"github.com/nsrel/nsrel/internal/safefile"
	"github.com/nsrel/nsrel/internal/syslog"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel/idmap"
)

// runStage is the hook proper. Its exit status is what the runtime acts
// on: 1 refuses the container.
//
// Every run that is asked about a container leaves a record, whatever is
// wrong with its input: a state that cannot be taken as it is is
// recorded with what could be read of it, and a config that does not
// load is recorded in the audit log it names, when it names one. Only
// when no record can be written does a run end without one; the line
// then goes to stderr, the diagnostics log and syslog.
//
// The deadline covers the run from its start: until the config is read,
// the default one.
func runStage(configPath, stage string, stdin io.Reader, stderr io.Writer, process bool) int {
	start := time.Now()
	phaseDone(process, "start")
	noConfigExit := 0
	if stage == audit.StageCreateRuntime {
		// Without a config there is no on_error setting: refuse at the
		// stage that can veto, since a broken install must not go
		// unnoticed.
		noConfigExit = 1
	}
	wd := newWatchdog(process, start.Add(policy.DefaultDeadlineMS*time.Millisecond), func() int {
		fmt.Fprintf(stderr, "nsrel-hook: %s: the default deadline of %d ms passed while reading the config\n", stage, policy.DefaultDeadlineMS)
		return noConfigExit
	})
	cfg, err := policy.Load(configPath)
	if err != nil && errors.Is(err, safefile.ErrUntrusted) && rootlessRun(configPath) {
		// A rootless runtime (podman run by a user) runs the host's
		// hooks.d in the user's own user namespace: root's config and
		// log are not the user's to use (here they belong to an
		// unmapped UID), and the user could leave the hook out anyway.
		// Such a container is the user's processes, as any they run.
		wd.stop()
		fmt.Fprintf(stderr, "nsrel-hook: %s: a rootless run (host root is not mapped in this user namespace): %s is not this user's config; container not recorded\n", stage, vocab.Printable(configPath))
		return 0
	}
	if err != nil {
		unrecordedConfig(configPath, stage, stdin, stderr, err, start)
		wd.stop()
		return noConfigExit
	}
	logger, closeLog := logging.File(cfg.LogFile, "nsrel-hook", stderr)
	phaseDone(process, "config")
	finished := false
	defer func() {
		// After a missed deadline the stage may still log: leave the
		// file to the process exit then.
		if finished {
			closeLog()
		}
	}()
	failExit := 0
	if cfg.OnError == policy.OnErrorDeny && stage != audit.StagePoststop {
		failExit = 1
	}
	deadline := start.Add(time.Duration(cfg.DeadlineMS) * time.Millisecond)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	// written holds the caller's record once its line is in the log: a
	// deadline passing after that (a slow fdatasync) must not contradict
	// what the record says.
	var written atomic.Pointer[audit.Record]
	// writing holds the caller's record while its line is being written,
	// and wrote gets the write's error when it returns: a deadline
	// passing then waits for it (up to writeGrace) rather than contradict
	// a line that may be in the log (a stalled write of an allow record,
	// the container refused, left an allow record for a container that
	// never ran).
	type inFlight struct {
		r     *audit.Record
		wrote chan error
	}
	var writing atomic.Pointer[inFlight]
	// phase settles which comes first, the record's write or the
	// deadline's verdict: idle, a write under way (the deadline waits
	// for it), or decided (the write is not made: the verdict said the
	// container may not be recorded, and a line landing after it, its
	// allow record for a container refused, would contradict it).
	const (
		phaseIdle = iota
		phaseWriting
		phaseDecided
	)
	var phase atomic.Int32
	// refused is set once the verdict is a refusal, before the record is
	// written: it stands at the deadline whatever on_error says, as it
	// does when the record cannot be written.
	var refused atomic.Bool
	// id holds the container's ID once the state is read, for the
	// deadline's line.
	var id atomic.Pointer[string]
	missed := func() int {
		container := "the container "
		if p := id.Load(); p != nil && *p != "" {
			container = "container " + named(*p)
		}
		r := written.Load()
		stalled := false
		if r == nil && phase.CompareAndSwap(phaseIdle, phaseDecided) {
			// No write under way, and none will be made; one that
			// ended just now stored its record first.
			r = written.Load()
		} else if w := writing.Load(); r == nil && w != nil {
			select {
			case err := <-w.wrote:
				if err == nil {
					r = w.r
				}
			case <-time.After(writeGrace):
				// Still under way: its line may land, or never (EIO, a
				// soft NFS mount giving up): not recorded, as far as
				// this run can tell; on_error decides.
				stalled = true
			}
		}
		if r != nil {
			code := 0
			if r.Verdict == audit.VerdictDeny {
				code = 1
			}
			whose := "the record"
			if r.ContainerID != "" {
				whose = "the record of container " + vocab.QuoteItem(r.ContainerID)
			}
			msg := fmt.Sprintf("%s: internal deadline of %d ms passed after %s (seq %d, %s) was written; its verdict stands", stage, cfg.DeadlineMS, whose, r.Seq, r.Verdict)
			fmt.Fprintf(stderr, "nsrel-hook: %s\n", msg)
			boundedLog(process, func() { logger.WithField("stage", stage).Warn(msg) })
			return code
		}
		code := failExit
		msg := fmt.Sprintf("%s: internal deadline of %d ms passed; %smay not be recorded (%s)", stage, cfg.DeadlineMS, container, onError(cfg, stage))
		if stalled {
			msg = fmt.Sprintf("%s: internal deadline of %d ms passed while the record of %swas being written, still not written %s later; it may not be recorded (%s)", stage, cfg.DeadlineMS, container, writeGrace, onError(cfg, stage))
		}
		if refused.Load() && stage != audit.StagePoststop {
			code = 1
			msg = fmt.Sprintf("%s: internal deadline of %d ms passed before the record was written; %sis refused by nsrel policy, whatever on_error says, and may not be recorded", stage, cfg.DeadlineMS, container)
		}
		fmt.Fprintf(stderr, "nsrel-hook: %s\n", msg)
		toSyslog(cfg.Syslog, msg, time.Now()) // the process exits at once
		boundedLog(process, func() { logger.WithField("stage", stage).Error(msg) })
		return code
	}
	wd.reset(deadline, missed)

	type outcome struct {
		res *hook.Result
		err error
		id  string // the container's, as far as the state tells
	}
	work := func() outcome {
		// The runtime writes the state and closes stdin at once; a state
		// not closed within half the deadline is recorded as it is.
		data, rerr := readInput(stdin, start, time.Duration(cfg.DeadlineMS)*time.Millisecond)
		warn := func(err error) { logger.WithError(err).Warn("audit log") }
		opts := cfg.AuditOptions(vocab.Version, warn)
		opts.Written = func(r *audit.Record) {
			if r != nil {
				written.Store(r)
				phase.Store(phaseIdle)
			}
		}
		opts.Writing = func(r *audit.Record) (func(error), error) {
			w := &inFlight{r, make(chan error, 1)}
			writing.Store(w)
			if !phase.CompareAndSwap(phaseIdle, phaseWriting) {
				return nil, errors.New("the internal deadline passed before the write, and the run said the record may not be written")
			}
			return func(err error) {
				w.wrote <- err
				if err != nil {
					phase.Store(phaseIdle)
				}
			}, nil
		}
		st, perr := hook.ParseState(data)
		rerr = cutInput(rerr, perr)
		if perr == nil && st != nil {
			id.Store(&st.ID)
		}
		log, err := audit.Open(cfg.AuditLog, opts)
		if err != nil {
			// The container still gets named where the failure is said.
			if perr != nil || st == nil {
				st = hook.SalvageState(data, hook.SalvageKeep(cfg)).State
			}
			return outcome{nil, err, st.ID}
		}
		h := &hook.Hook{Config: cfg, Log: log, Logger: logger, Decided: refused.Store, Note: hook.StateNote(data, st)}
		if rerr != nil || perr != nil {
			if rerr != nil && len(data) == 0 {
				perr = nil // nothing to parse: the read says it all
			}
			salvaged := refusedState(data, st, perr, hook.SalvageKeep(cfg))
			id.Store(&salvaged.ID)
			res, err := h.RunBadInput(ctx, stage, salvaged, errors.Join(rerr, perr))
			return outcome{res, err, salvaged.ID}
		}
		phaseDone(process, "state")
		if process && stopAfter == "inspect" {
			inspect.Process(st.Pid)
			phaseDone(process, "inspect")
		}
		res, err := h.Run(ctx, stage, st)
		phaseDone(process, "run")
		return outcome{res, err, st.ID}
	}
	var o outcome
	if process {
		o = work()
		wd.stop()
		finished = true
	} else {
		done := make(chan outcome, 1)
		go func() { done <- work() }()
		select {
		case o = <-done:
			finished = true
		case <-ctx.Done():
			// In the test's process nothing exits: the abandoned work
			// (its lock wait and reads watch ctx) ends before the
			// caller removes the directories it writes to.
			code := missed()
			<-done
			finished = true // the diagnostics log is closed on return
			return code
		}
	}
	logger.WithFields(logrus.Fields{"stage": stage, "ms": float64(time.Since(start).Microseconds()) / 1000}).Debug("done")
	switch {
	case o.res == nil || o.res.Record == nil:
		// Nothing was recorded: say so everywhere an operator looks.
		msg := fmt.Sprintf("%s: container %snot recorded: %s (%s)", stage, named(o.id), vocab.OneLine(o.err), onError(cfg, stage))
		if o.res != nil && o.res.Message != "" {
			// The hook's message names the container.
			msg = fmt.Sprintf("%s: container not recorded: %s", stage, vocab.OneLine(errors.New(o.res.Message)))
		}
		// The runtime's and syslog's line first: the diagnostics may
		// wait for a slow target.
		fmt.Fprintf(stderr, "nsrel-hook: %s\n", msg)
		toSyslog(cfg.Syslog, msg, deadline.Add(deadlineGrace))
		logger.WithFields(logrus.Fields{"stage": stage, "container": o.id}).WithError(o.err).Error("hook failed; no record written")
		if o.res != nil && o.res.Deny {
			return 1
		}
		return failExit
	}
	msg := o.res.Message
	if r := o.res.Record; r.SealError != "" {
		// Recorded, but not sealed: the operator must hear of it (a
		// sealing state others can read, or one that went missing).
		logger.WithFields(logrus.Fields{"stage": stage, "seq": r.Seq, "seal_error": r.SealError}).Warn("recorded unsealed")
		unsealed := fmt.Sprintf("container %s recorded unsealed (audit record seq %d): %s", vocab.QuoteItem(r.ContainerID), r.Seq, r.SealError)
		if msg == "" {
			msg = stage + ": " + unsealed
		} else {
			msg += "; " + unsealed
		}
	}
	if msg != "" {
		fmt.Fprintf(stderr, "nsrel-hook: %s\n", vocab.OneLine(errors.New(msg)))
	}
	if o.res.Deny {
		return 1
	}
	return 0
}

// rootlessRun reports whether the hook runs as a rootless runtime runs
// it: in a user namespace where root (UID 0) of the namespace above is
// not mapped (a user's namespace, a child of the host's), with the
// config owned by an unmapped UID (the overflow UID stat shows). A
// runtime running as root in a container's user namespace, with a
// config of its own, does not step aside.
func rootlessRun(configPath string) bool {
	var st unix.Stat_t
	if unix.Stat(configPath, &st) != nil || !hostRootUnmapped() {
		return false
	}
	overflow := uint32(65534)
	if data, err := os.ReadFile("/proc/sys/kernel/overflowuid"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 32); err == nil {
			overflow = uint32(v)
		}
	}
	return st.Uid == overflow
}

// hostRootUnmapped reports whether the hook runs in a user namespace
// where root (UID 0) of the namespace above is not mapped.
func hostRootUnmapped() bool {
	m, err := idmap.ReadIDs("/proc/self")
	return err == nil && !m.UID.MapsOutside(0)
}

// unrecordedConfig handles a config that does not load: the failure is
// recorded in the audit log the config names, when a trusted config
// names one (with what can be read of the state), and said on stderr,
// in the diagnostics log it names, and, when no record could be
// written, in syslog.
func unrecordedConfig(configPath, stage string, stdin io.Reader, stderr io.Writer, cerr error, start time.Time) {
	msg := fmt.Sprintf("%s: %s", stage, vocab.OneLine(cerr))
	fmt.Fprintf(stderr, "nsrel-hook: %s\n", msg)
	sv := policy.Salvage(configPath)
	logger, closeLog := logging.File(sv.LogFile, "nsrel-hook", stderr)
	defer closeLog()
	// The state is read whether or not it can be recorded: it names the
	// container where the failure is said.
	data, rerr := readInput(stdin, start, policy.DefaultDeadlineMS*time.Millisecond)
	st, perr := hook.ParseState(data)
	rerr = cutInput(rerr, perr)
	var inputErr error
	wholeID := true
	if rerr != nil || perr != nil {
		// No config: keep the annotations recorded by default.
		sv := refusedState(data, st, perr, hook.SalvageKeep(&policy.Config{RecordAnnotations: policy.DefaultRecordAnnotations}))
		st, wholeID = sv.State, sv.WholeID
		if rerr != nil && len(data) == 0 {
			perr = nil // nothing to parse: the read says it all
		}
		inputErr = errors.Join(rerr, perr)
	}
	logger.WithFields(logrus.Fields{"stage": stage, "container": st.ID}).WithError(cerr).Error("config does not load")
	recorded := false
	if sv.AuditLog != "" {
		deadline := start.Add(policy.DefaultDeadlineMS * time.Millisecond)
		warn := func(err error) { logger.WithError(err).Warn("config error record") }
		if err := recordConfigError(sv, stage, st, wholeID, cerr, inputErr, deadline, warn); err != nil {
			logger.WithError(err).Error("cannot record the config error")
		} else {
			recorded = true
		}
	}
	if !recorded {
		toSyslog(sv.Syslog, msg+fmt.Sprintf(" (container %snot recorded)", named(st.ID)), start.Add(policy.DefaultDeadlineMS*time.Millisecond+deadlineGrace))
	}
}

// recordConfigError appends the record of a run whose config did not
// load: with the process's ancestry when the state names one, the
// verdict of a refusal at createRuntime, and, at poststart and poststop,
// the ref to the container's earlier record that [hook.Hook.Run] would
// have made (a poststart compared with its createRuntime record). inputErr,
// if set, says why the state was not taken as it was (st is then what
// could be read of it, and wholeID says whether its ID was read whole:
// only then is it searched by, as [hook.Hook.RunBadInput] does).
func recordConfigError(sv policy.Salvaged, stage string, st *specs.State, wholeID bool, cerr, inputErr error, deadline time.Time, warn func(error)) error {
	cfg := &policy.Config{AuditLog: sv.AuditLog, SealState: sv.SealState, OnError: policy.OnErrorDeny,
		RecordAnnotations: policy.DefaultRecordAnnotations, Default: policy.Block{Name: "(config error)", Mode: policy.ModeAudit}}
	in := hook.Input{Stage: stage, Source: audit.SourceOCIHook, ID: st.ID, Bundle: st.Bundle, PID: st.Pid, Meta: st.Annotations}
	var rec *audit.Record
	if stage == audit.StagePoststop {
		rec = hook.Record(cfg, in)
	} else {
		rec, _ = hook.Decide(cfg, in)
		rec.Verdict = ""
		if stage == audit.StageCreateRuntime {
			rec.Verdict = audit.VerdictDeny
		}
	}
	oneLine := func(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
	what := "the config does not load: " + vocab.Cut(oneLine(cerr), vocab.MaxRecordedError/2)
	search := stage == audit.StagePoststart || stage == audit.StagePoststop
	if inputErr != nil {
		what += "; the state was refused (" + vocab.Cut(oneLine(inputErr), vocab.MaxRecordedError/4) + "); the record keeps what could be read of it"
		if search {
			what += hook.SearchNote(st.ID, wholeID)
		}
		search = search && wholeID
	}
	rec.Error = vocab.JoinErrors(what, rec.Error)
	rec.Policy, rec.Mode = "", ""
	// A seal_state the salvage could not reach (a syntax error before
	// it) must not leave an unsealed record in a sealed log: that fails
	// verify for good, and the run is said on stderr and to syslog.
	log, err := audit.Open(sv.AuditLog, audit.Options{SealState: sv.SealState, Version: vocab.Version, RefuseUnsealed: true, Warn: warn})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if !search {
		return log.Append(ctx, rec)
	}
	// No verdict at poststart: the comparison adds its violation, if
	// any, to what the record says.
	return (&hook.Hook{Config: cfg, Log: log}).AppendWithRef(ctx, rec, st.Pid, nil)
}

// refusedState returns what a stage takes of a state it could not take
// as it was (perr: [hook.ParseState]'s error for data, st what it
// parsed): a whole state whose stdin stayed open as parsed, its ID the
// one the state names (a salvage reads the "id" member only, the parser
// any case of it); else what [hook.SalvageState] reads of data, with the
// annotations keep names.
func refusedState(data []byte, st *specs.State, perr error, keep func(string) bool) *hook.Salvaged {
	if perr == nil && st != nil {
		return &hook.Salvaged{State: st, WholeID: st.ID != ""}
	}
	return hook.SalvageState(data, keep)
}

// toSyslog sends a line to syslog (authpriv.err) at d (nil: nowhere),
// for runs that could not record the container, trying for 200 ms at
// most and no later than until (the stage's deadline and its grace: a
// syslog socket that does not take the line kept the binary 200 ms past
// it), but 10 ms at least.
func toSyslog(d *syslog.Dest, msg string, until time.Time) {
	if d == nil {
		return
	}
	host, _ := os.Hostname()
	ctx, cancel := context.WithTimeout(context.Background(), min(200*time.Millisecond, max(10*time.Millisecond, time.Until(until))))
	defer cancel()
	syslog.Send(ctx, *d, syslog.Message(time.Now(), syslog.Err, host, "nsrel-hook", "unrecorded", []byte(msg)))
}

// errStdin is the error of a state whose stdin stayed open.
var errStdin = errors.New("stdin was not closed")

// readInput reads the state from r until EOF, at most MaxStateSize+1
// bytes, and, when r is a file (the runtime's pipe), at most until half
// of deadline from start: a state left open is taken as far as it came.
// Once the time is up, the read goes on while the writer keeps the pipe
// filling ([drainWait] at most between two reads, for a tenth of
// deadline from when the time is up or the read begins, whichever is
// later, until nine tenths of it at most; then what the pipe holds,
// without waiting): a state the runtime wrote and closed while the
// config loaded is read whole (one larger than the pipe's buffer too,
// whose writer refills it as it is read) unless the config took nine
// tenths of the deadline.
func readInput(r io.Reader, start time.Time, deadline time.Duration) ([]byte, error) {
	f, ok := r.(*os.File)
	if !ok {
		return hook.ReadState(r)
	}
	until := start.Add(deadline / 2)
	// The refills are waited for during a tenth of the deadline from
	// when the time is up, or from now if that was before (a config that
	// took longer than half the deadline), but not past nine tenths of
	// it: the stage still inspects and appends.
	from := until
	if now := time.Now(); now.After(from) {
		from = now
	}
	drainEnd := from.Add(deadline / 10)
	if limit := start.Add(deadline * 9 / 10); drainEnd.After(limit) {
		drainEnd = limit
	}
	fd := int(f.Fd())
	buf := make([]byte, 0, 16<<10)
	for len(buf) <= vocab.MaxStateSize {
		wait := time.Until(until)
		if wait <= 0 {
			// What the pipe holds, or what its writer adds within
			// drainWait; past drainEnd, only what it holds.
			wait = min(drainWait, time.Until(drainEnd))
		}
		timeout := 0
		if wait > 0 {
			timeout = int(wait.Milliseconds()) + 1
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, timeout)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return buf, fmt.Errorf("read state: poll: %w", err)
		}
		if n == 0 {
			if !time.Now().Before(until) {
				return buf, fmt.Errorf("%w in time (%d bytes read)", errStdin, len(buf))
			}
			continue
		}
		if cap(buf)-len(buf) < 4096 {
			buf = append(buf, make([]byte, len(buf))...)[:len(buf)]
		}
		m, err := unix.Read(fd, buf[len(buf):min(cap(buf), vocab.MaxStateSize+1)])
		switch {
		case err == unix.EINTR || err == unix.EAGAIN:
		case err != nil:
			return buf, fmt.Errorf("read state: %w", err)
		case m == 0:
			return buf, nil
		default:
			buf = buf[:len(buf)+m]
		}
	}
	return buf, nil
}

// drainWait is how long, once the time for the state is up, the read
// waits for its writer to put more in the pipe: a writer blocked on a
// full pipe is woken as it is read, and refills it at once unless the
// machine is loaded. (A variable for tests only.)
var drainWait = 50 * time.Millisecond

// cutInput returns rerr, the error of [readInput], marked
// [hook.ErrStateUnended] when the read stopped before EOF and what it
// read does not hold a whole state (perr, [hook.ParseState]'s error, is
// set): the annotations past the cut are unknown.
func cutInput(rerr, perr error) error {
	if errors.Is(rerr, errStdin) && perr != nil {
		return fmt.Errorf("%w: %w", hook.ErrStateUnended, rerr)
	}
	return rerr
}

// watchdog ends the process with the status its function returns if the
// run outlives the deadline (a little grace lets the lock wait, which
// watches the context itself, end with its own error and record first).
// Without process set it does nothing: tests run stages in-process.
type watchdog struct {
	t *time.Timer
}

func newWatchdog(process bool, deadline time.Time, exit func() int) *watchdog {
	if !process {
		return &watchdog{}
	}
	return &watchdog{t: time.AfterFunc(time.Until(deadline)+deadlineGrace, func() { os.Exit(exit()) })}
}

// reset moves the deadline, with a new exit function.
func (w *watchdog) reset(deadline time.Time, exit func() int) {
	if w.t == nil {
		return
	}
	w.stop()
	w.t = time.AfterFunc(time.Until(deadline)+deadlineGrace, func() { os.Exit(exit()) })
}

// stop disarms the watchdog; if it already fired, it waits for the exit.
func (w *watchdog) stop() {
	if w.t != nil && !w.t.Stop() {
		select {} // the watchdog is exiting
	}
}

// stopAfter is set only at link time, by BenchmarkHookPhases (-ldflags
// "-X main.stopAfter=PHASE"): the binary then
// exits 0 right after PHASE of a stage (start, config, state, inspect,
// run) so that the phases of a cold hook process can be timed. Release
// builds leave it empty.
var stopAfter string

func phaseDone(process bool, phase string) {
	if process && stopAfter == phase {
		os.Exit(0)
	}
}

// boundedLog logs through the diagnostics logger from the watchdog,
// waiting for it at most deadlineGrace: the stage may hold the logger,
// stuck in a write to a hung file system or a syslog target that does
// not answer, and the exit must not wait for it.
func boundedLog(process bool, log func()) {
	if !process {
		log() // a test's process: nothing exits, nothing may write late
		return
	}
	done := make(chan struct{})
	go func() {
		log()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(deadlineGrace):
	}
}

// deadlineGrace is how long after the internal deadline the process
// ends a stage that is still running.
const deadlineGrace = 50 * time.Millisecond

// writeGrace is how long a deadline passed while the record's line is
// being written waits for the write to return (the binary then exits up
// to about deadlineGrace + writeGrace past the deadline).
const writeGrace = 500 * time.Millisecond

// onError names what decides a run that could not record the container
// at stage: on_error, but at poststop, which never refuses.
func onError(cfg *policy.Config, stage string) string {
	if stage == audit.StagePoststop {
		return "poststop never refuses"
	}
	return "on_error=" + cfg.OnError
}

// named returns the container ID id escaped and followed by a space, ""
// for none: for "container ID not recorded".
func named(id string) string {
	if id == "" {
		return ""
	}
	return vocab.QuoteItem(id) + " "
}
