package hook

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
)

// DefaultConfig is the config file read when --config is not given.
const DefaultConfig = "/etc/nsrel/hook.json"

const usage = `nsrel-hook records and validates the user and PID namespace ancestry of
containers in a tamper-evident audit log (an OCI runtime hook).

Usage:
  nsrel-hook [--config FILE] createRuntime|poststart|poststop   < state.json
  nsrel-hook policy check FILE
  nsrel-hook [--config FILE] audit verify [--partial] [--anchor HASH] [--json] [LOG...]
  nsrel-hook [--config FILE] audit show [--container ID] [--json] [LOG]
  nsrel-hook --version

The runtime runs the stages, with the OCI state on stdin. createRuntime can
refuse a container: in enforce mode it exits 1 with one line naming the
violated rules. LOG defaults to the audit_log of the config; a LOG path
includes its rotated files (LOG.NNNNNNNNNNNN). verify exits 0 only if the
chain is intact; --anchor HASH also requires a record with that hash (the
last hash of an earlier verify: catches records cut off at the end);
--partial accepts a chain whose older files were removed.

Options:
  --config FILE   configuration (default /etc/nsrel/hook.json)

Examples:
  # a runc config.json hook entry
  "createRuntime": [{"path": "/usr/local/libexec/nsrel/nsrel-hook",
      "args": ["nsrel-hook", "--config", "/etc/nsrel/hook.json", "createRuntime"],
      "timeout": 5}]

  nsrel-hook policy check /etc/nsrel/hook.json
  nsrel-hook audit verify                       # exit 0 only if the chain is intact
  nsrel-hook audit show --container web-1
  nsrel-hook audit show --json | jq .verdict

Exit status: 0 success (or container allowed), 1 failure (or container
refused), 2 usage error. See docs/hook.md.
`

// Main runs the nsrel-hook command line (args without the program name)
// and returns the exit status. It reads no environment variables. When a
// stage's internal deadline passes, Main returns the on_error status
// while the stage's work may still go on in the background.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return mainWith(args, stdin, stdout, stderr, false)
}

// MainProcess is [Main] for the nsrel-hook binary itself. A stage runs on
// the calling goroutine (a short-lived process spares the hand-off to a
// second one) and, when its internal deadline passes, MainProcess ends
// the process at once with the on_error status (os.Exit).
func MainProcess(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return mainWith(args, stdin, stdout, stderr, true)
}

func mainWith(args []string, stdin io.Reader, stdout, stderr io.Writer, process bool) int {
	fs := flag.NewFlagSet("nsrel-hook", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config := fs.String("config", DefaultConfig, "")
	version := fs.Bool("version", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, usage)
			return 0
		}
		fmt.Fprintf(stderr, "nsrel-hook: %v (see --help)\n", err)
		return 2
	}
	if *version {
		fmt.Fprintln(stdout, "nsrel-hook", Version)
		return 0
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintln(stderr, "nsrel-hook: missing stage or command (see --help)")
		return 2
	}
	switch rest[0] {
	case audit.StageCreateRuntime, audit.StagePoststart, audit.StagePoststop:
		if len(rest) != 1 {
			fmt.Fprintf(stderr, "nsrel-hook: unexpected arguments after %s (see --help)\n", rest[0])
			return 2
		}
		return runStage(*config, rest[0], stdin, stderr, process)
	case "policy":
		return policyCmd(rest[1:], stdout, stderr)
	case "audit":
		return auditCmd(*config, rest[1:], stdout, stderr)
	case "help":
		io.WriteString(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "nsrel-hook: unknown stage or command %s (see --help)\n", strconv.Quote(rest[0]))
	return 2
}

// runStage is the hook proper. Its exit status is what the runtime acts
// on: 1 refuses the container.
func runStage(configPath, stage string, stdin io.Reader, stderr io.Writer, process bool) int {
	start := time.Now()
	phaseDone(process, "start")
	cfg, err := policy.Load(configPath)
	if err != nil {
		// Without a config there is no on_error setting: refuse at the
		// stage that can veto, since a broken install must not go unnoticed.
		fmt.Fprintf(stderr, "nsrel-hook: %s: %s\n", stage, oneLine(err))
		if stage == audit.StageCreateRuntime {
			return 1
		}
		return 0
	}
	logger, closeLog := openLogger(cfg.LogFile, stderr)
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
		res *Result
		err error
	}
	work := func() outcome {
		st, err := DecodeState(stdin)
		if err != nil {
			return outcome{nil, err}
		}
		log, err := audit.Open(cfg.AuditLog, audit.Options{RotateBytes: cfg.RotateBytes, Version: Version})
		if err != nil {
			return outcome{nil, err}
		}
		phaseDone(process, "state")
		if process && stopAfter == "inspect" {
			inspect.Process(st.Pid)
			phaseDone(process, "inspect")
		}
		h := &Hook{Config: cfg, Log: log, Logger: logger}
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
		fmt.Fprintf(stderr, "nsrel-hook: %s: %s (on_error=%s)\n", stage, oneLine(o.err), cfg.OnError)
		return failExit
	case o.res.Deny:
		fmt.Fprintf(stderr, "nsrel-hook: %s\n", oneLine(errors.New(o.res.Message)))
		return 1
	case o.res.Message != "":
		fmt.Fprintf(stderr, "nsrel-hook: %s\n", oneLine(errors.New(o.res.Message)))
	}
	return 0
}

// stopAfter is set only at link time, by BenchmarkHookPhases (-ldflags
// "-X github.com/nsrel/nsrel/hook.stopAfter=PHASE"): the binary then
// exits 0 right after PHASE of a stage (start, config, state, inspect,
// run) so that the phases of a cold hook process can be timed. Release
// builds leave it empty.
var stopAfter string

func phaseDone(process bool, phase string) {
	if process && stopAfter == phase {
		os.Exit(0)
	}
}

// deadlineGrace is how long after the internal deadline MainProcess
// ends a stage that is still running.
const deadlineGrace = 50 * time.Millisecond

// oneLine flattens a (possibly joined) error onto one printable line.
func oneLine(err error) string {
	return Printable(strings.ReplaceAll(err.Error(), "\n", "; "))
}

// openLogger returns a logrus logger writing to path (created 0600, not
// following symlinks), or discarding when path is "" or cannot be opened
// (then one line goes to stderr).
func openLogger(path string, stderr io.Writer) (*logrus.Logger, func()) {
	l := logrus.New()
	l.Out = io.Discard
	l.Formatter = utcFormatter{&logrus.TextFormatter{DisableColors: true, FullTimestamp: true, TimestampFormat: time.RFC3339Nano}}
	l.Level = logrus.InfoLevel
	if path == "" {
		l.Level = logrus.PanicLevel // nothing is formatted for nobody
		return l, func() {}
	}
	f, err := audit.OpenRegular(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
			f, err = audit.OpenRegular(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "nsrel-hook: diagnostics log: %v\n", err)
		l.Level = logrus.PanicLevel
		return l, func() {}
	}
	l.Out = f
	return l, func() { f.Close() }
}

func policyCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "nsrel-hook: usage: nsrel-hook policy check FILE")
		return 2
	}
	if len(args) != 2 || strings.HasPrefix(args[1], "-") {
		if len(args) == 2 && (args[1] == "--help" || args[1] == "-h") {
			fmt.Fprintln(stdout, "usage: nsrel-hook policy check FILE\n\nValidates a config file and prints what each policy block matches.\nexample: nsrel-hook policy check /etc/nsrel/hook.json")
			return 0
		}
		fmt.Fprintln(stderr, "nsrel-hook: usage: nsrel-hook policy check FILE")
		return 2
	}
	cfg, err := policy.Load(args[1])
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "nsrel-hook: %s\n", Printable(line))
		}
		return 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: OK\n", Printable(args[1]))
	fmt.Fprintf(&b, "audit log:   %s (rotate at %d bytes)\n", cfg.AuditLog, cfg.RotateBytes)
	logFile := cfg.LogFile
	if logFile == "" {
		logFile = "(none)"
	}
	fmt.Fprintf(&b, "diagnostics: %s\n", logFile)
	fmt.Fprintf(&b, "on_error:    %s; deadline %d ms\n", cfg.OnError, cfg.DeadlineMS)
	fmt.Fprintf(&b, "records annotations: %s\n", strings.Join(cfg.RecordAnnotations, ", "))
	for i := range cfg.Policies {
		blk := &cfg.Policies[i]
		fmt.Fprintf(&b, "\npolicy %d %q\n", i+1, blk.Name)
		for _, l := range blk.Describe() {
			b.WriteString("  " + l + "\n")
		}
	}
	fmt.Fprintf(&b, "\ndefault %q\n", cfg.Default.Name)
	for _, l := range cfg.Default.Describe() {
		b.WriteString("  " + l + "\n")
	}
	io.WriteString(stdout, b.String())
	return 0
}

func auditCmd(configPath string, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "nsrel-hook: usage: nsrel-hook audit verify|show ... (see --help)")
		return 2
	}
	fs := flag.NewFlagSet("audit "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	partial := false
	anchor := ""
	container := ""
	asJSON := false
	switch args[0] {
	case "verify":
		fs.BoolVar(&partial, "partial", false, "")
		fs.StringVar(&anchor, "anchor", "", "")
		fs.BoolVar(&asJSON, "json", false, "")
	case "show":
		fs.StringVar(&container, "container", "", "")
		fs.BoolVar(&asJSON, "json", false, "")
	default:
		fmt.Fprintf(stderr, "nsrel-hook: unknown audit command %s (want verify or show)\n", strconv.Quote(args[0]))
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, usage)
			return 0
		}
		fmt.Fprintf(stderr, "nsrel-hook: audit %s: %v (see --help)\n", args[0], err)
		return 2
	}
	logs := fs.Args()
	if len(logs) == 0 {
		cfg, err := policy.Load(configPath)
		if err != nil {
			fmt.Fprintf(stderr, "nsrel-hook: no LOG given and %s\n", oneLine(err))
			return 1
		}
		logs = []string{cfg.AuditLog}
	}
	if args[0] == "show" && len(logs) != 1 {
		fmt.Fprintln(stderr, "nsrel-hook: audit show takes at most one LOG")
		return 2
	}
	if args[0] == "verify" {
		return verifyCmd(logs, audit.VerifyOptions{Partial: partial, Anchor: anchor}, asJSON, stdout, stderr)
	}
	return showCmd(logs[0], container, asJSON, stdout, stderr)
}

// verifyResult is one log's result in `audit verify --json`.
type verifyResult struct {
	Log       string         `json:"log"`
	OK        bool           `json:"ok"`
	Files     []string       `json:"files"`
	Records   int            `json:"records"`
	FirstSeq  uint64         `json:"first_seq"`
	LastSeq   uint64         `json:"last_seq"`
	LastHash  string         `json:"last_hash"`
	TornTails []uint64       `json:"torn_tails"`
	Problem   *audit.Problem `json:"problem,omitempty"`
	Error     string         `json:"error,omitempty"`
}

func verifyCmd(logs []string, opts audit.VerifyOptions, asJSON bool, stdout, stderr io.Writer) int {
	status := 0
	enc := json.NewEncoder(stdout)
	for _, lg := range logs {
		res := verifyResult{Log: lg, Files: []string{}, TornTails: []uint64{}}
		files, err := audit.Files(lg)
		if err == nil && len(files) == 0 {
			err = fmt.Errorf("%s: no such audit log", lg)
		}
		var s *audit.Summary
		if err == nil {
			err = readLocked(lg, func() error {
				var verr error
				s, verr = audit.Verify(files, opts)
				return verr
			})
			res.Files, res.Records, res.FirstSeq, res.LastSeq, res.LastHash = files, s.Records, s.FirstSeq, s.LastSeq, s.LastHash
			for _, t := range s.TornTails {
				res.TornTails = append(res.TornTails, t.Seq)
			}
		}
		res.OK = err == nil
		if err != nil {
			status = 1
			res.Error = err.Error()
			if p, ok := err.(*audit.Problem); ok {
				res.Problem = p
			}
		}
		if asJSON {
			enc.Encode(res)
			continue
		}
		switch {
		case res.Problem != nil:
			fmt.Fprintf(stderr, "nsrel-hook: audit verify: FAILED: %s\n", oneLine(err))
			continue
		case err != nil:
			fmt.Fprintf(stderr, "nsrel-hook: audit verify: %s\n", oneLine(err))
			continue
		}
		fmt.Fprintf(stdout, "%s: OK: %d records (seq %d..%d) in %d file(s), last hash %s\n",
			Printable(lg), s.Records, s.FirstSeq, s.LastSeq, len(s.Files), s.LastHash)
		for _, t := range s.TornTails {
			fmt.Fprintf(stdout, "%s: note: seq %d records a torn line of %d bytes cut off after a crash\n", Printable(lg), t.Seq, t.TornBytes)
		}
	}
	return status
}

func showCmd(lg, container string, asJSON bool, stdout, stderr io.Writer) int {
	files, err := audit.Files(lg)
	if err == nil && len(files) == 0 {
		err = fmt.Errorf("%s: no such audit log", lg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "nsrel-hook: audit show: %s\n", oneLine(err))
		return 1
	}
	var recs []*audit.Record
	var out strings.Builder
	bad := 0
	err = readLocked(lg, func() error {
		for _, f := range files {
			for l, err := range audit.Lines(f) {
				if err != nil {
					return err
				}
				r, derr := audit.Decode(l.Data)
				if l.Torn || derr != nil {
					bad++
					continue
				}
				if container != "" && r.ContainerID != container && !strings.HasPrefix(r.ContainerID, container) {
					continue
				}
				if asJSON {
					out.Write(l.Data)
					out.WriteByte('\n')
				} else {
					recs = append(recs, r)
				}
			}
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "nsrel-hook: audit show: %s\n", oneLine(err))
		return 1
	}
	if !asJSON {
		WriteHistory(&out, recs)
	}
	io.WriteString(stdout, out.String())
	if bad > 0 {
		fmt.Fprintf(stderr, "nsrel-hook: audit show: skipped %d damaged or torn line(s); run `nsrel-hook audit verify`\n", bad)
	}
	return 0
}

// readLocked runs fn under a shared lock of the log at path (see
// [audit.Log.ReadLocked]), waiting at most 10 s for writers.
func readLocked(path string, fn func() error) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	l, err := audit.Open(abs, audit.Options{Host: "-", Version: Version})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return l.ReadLocked(ctx, fn)
}

// utcFormatter writes diagnostics in UTC, like the audit records, which
// also spares every hook run reading /etc/localtime.
type utcFormatter struct{ f logrus.Formatter }

func (u utcFormatter) Format(e *logrus.Entry) ([]byte, error) {
	e.Time = e.Time.UTC()
	return u.f.Format(e)
}
