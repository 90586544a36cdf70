package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/logging"
	"github.com/nsrel/nsrel/internal/vocab"
)

// runStage is the hook proper. Its exit status is what the runtime acts
// on: 1 refuses the container.
func runStage(configPath, stage string, stdin io.Reader, stderr io.Writer, process bool) int {
	start := time.Now()
	phaseDone(process, "start")
	cfg, err := policy.Load(configPath)
	if err != nil {
		// Without a config there is no on_error setting: refuse at the
		// stage that can veto, since a broken install must not go unnoticed.
		fmt.Fprintf(stderr, "nsrel-hook: %s: %s\n", stage, vocab.OneLine(err))
		if stage == audit.StageCreateRuntime {
			return 1
		}
		return 0
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

	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.DeadlineMS)*time.Millisecond)
	defer cancel()
	type outcome struct {
		res *hook.Result
		err error
	}
	work := func() outcome {
		st, err := hook.DecodeState(stdin)
		if err != nil {
			return outcome{nil, err}
		}
		log, err := audit.Open(cfg.AuditLog, audit.Options{RotateBytes: cfg.RotateBytes, Version: vocab.Version})
		if err != nil {
			return outcome{nil, err}
		}
		phaseDone(process, "state")
		if process && stopAfter == "inspect" {
			inspect.Process(st.Pid)
			phaseDone(process, "inspect")
		}
		h := &hook.Hook{Config: cfg, Log: log, Logger: logger}
		res, err := h.Run(ctx, stage, st)
		phaseDone(process, "run")
		return outcome{res, err}
	}
	missed := func() int {
		logger.WithField("stage", stage).Errorf("deadline of %d ms passed", cfg.DeadlineMS)
		fmt.Fprintf(stderr, "nsrel-hook: %s: internal deadline of %d ms passed (on_error=%s)\n", stage, cfg.DeadlineMS, cfg.OnError)
		return failExit
	}
	var o outcome
	if process {
		// The watchdog ends the process if the work (reading stdin,
		// waiting for the lock, ...) outlives the deadline. A little
		// grace lets the lock wait, which watches ctx itself, end with
		// its own error and record first.
		watchdog := time.AfterFunc(time.Duration(cfg.DeadlineMS)*time.Millisecond+deadlineGrace, func() { os.Exit(missed()) })
		o = work()
		if !watchdog.Stop() {
			select {} // the watchdog is exiting
		}
		finished = true
	} else {
		done := make(chan outcome, 1)
		go func() { done <- work() }()
		select {
		case o = <-done:
			finished = true
		case <-ctx.Done():
			return missed()
		}
	}
	logger.WithFields(logrus.Fields{"stage": stage, "ms": float64(time.Since(start).Microseconds()) / 1000}).Debug("done")
	switch {
	case o.res == nil:
		logger.WithField("stage", stage).WithError(o.err).Error("hook failed")
		fmt.Fprintf(stderr, "nsrel-hook: %s: %s (on_error=%s)\n", stage, vocab.OneLine(o.err), cfg.OnError)
		return failExit
	case o.res.Deny:
		fmt.Fprintf(stderr, "nsrel-hook: %s\n", vocab.OneLine(errors.New(o.res.Message)))
		return 1
	case o.res.Message != "":
		fmt.Fprintf(stderr, "nsrel-hook: %s\n", vocab.OneLine(errors.New(o.res.Message)))
	}
	return 0
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

// deadlineGrace is how long after the internal deadline the process
// ends a stage that is still running.
const deadlineGrace = 50 * time.Millisecond
