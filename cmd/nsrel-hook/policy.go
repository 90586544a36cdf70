package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/vocab"
)

// policyHelp prints the help of policy check.
func policyHelp(stdout, stderr io.Writer) int {
	_, err := fmt.Fprintln(stdout, "usage: nsrel-hook policy check FILE\n\nValidates a config file, checks the local sockets it sends to (as every\nsend does), and prints what each policy block matches.\nexample: nsrel-hook policy check "+vocab.DefaultHookConfig)
	return vocab.Written("nsrel-hook", err, stderr)
}

func policyCmd(configPath string, args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && isHelp(args[0]) || len(args) == 2 && args[0] == "check" && isHelp(args[1]) {
		return policyHelp(stdout, stderr)
	}
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "nsrel-hook: usage: nsrel-hook policy check FILE (see --help)")
		return 2
	}
	// Parsed as every subcommand is: an unknown option is named, and
	// "--" lets FILE start with "-".
	fs := flag.NewFlagSet("policy check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	pos, err := vocab.ParseInterspersed(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return policyHelp(stdout, stderr)
		}
		fmt.Fprintf(stderr, "nsrel-hook: policy check: %s (see --help)\n", vocab.FlagError(err))
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "nsrel-hook: usage: nsrel-hook policy check FILE (see --help)")
		return 2
	}
	file := pos[0]
	if configPath == "" {
		fmt.Fprintf(stderr, "nsrel-hook: policy check: %s (see --help)\n", vocab.EmptyValue("--config", "a file"))
		return 2
	}
	if file == "" {
		fmt.Fprintln(stderr, "nsrel-hook: policy check: FILE needs a path, not an empty string (see --help)")
		return 2
	}
	cfg, err := policy.Load(file)
	if err != nil {
		for _, line := range vocab.ErrorLines(err) {
			fmt.Fprintf(stderr, "nsrel-hook: %s\n", line)
		}
		return 1
	}
	// Each send checks its socket too, and each write the directories
	// of its file; the stage's Load does neither. A directory refused
	// there left every container unrecorded (on_error allow) after a
	// check that said OK.
	if err := errors.Join(cfg.CheckSockets(), cfg.CheckPaths()); err != nil {
		for _, line := range vocab.ErrorLines(err) {
			fmt.Fprintf(stderr, "nsrel-hook: %s: %s\n", vocab.Printable(file), line)
		}
		return 1
	}
	for _, w := range append(cfg.Warnings(), cfg.SubIDWarnings()...) {
		fmt.Fprintf(stderr, "nsrel-hook: %s: warning: %s\n", vocab.Printable(file), w)
	}
	if uid := os.Geteuid(); uid != 0 {
		// safefile trusts root's files and the caller's: the hook's
		// caller is root.
		fmt.Fprintf(stderr, "nsrel-hook: note: checked as uid %d, not root: files and sockets of uid %d pass here, and the hook (run by root) refuses them\n", uid, uid)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: OK\n", vocab.Printable(file))
	keep := "all"
	if cfg.KeepFiles > 0 {
		keep = strconv.Itoa(cfg.KeepFiles)
	}
	// The config's strings are printed escaped, as everything else the
	// tools print that they did not write (a path or a key may hold
	// terminal escapes).
	rotate := "never rotated"
	if cfg.RotateBytes > 0 {
		rotate = fmt.Sprintf("rotate at %d bytes, keep %s rotated files", cfg.RotateBytes, keep)
	}
	fmt.Fprintf(&b, "audit log:   %s (%s)\n", vocab.Printable(cfg.AuditLog), rotate)
	switch {
	case cfg.SealState == "":
		b.WriteString("sealing:     off (no seal_state)\n")
	default:
		state := "not set up yet: run `nsrel-hook audit seal-init`"
		if _, err := os.Lstat(cfg.SealState); err == nil {
			state = "set up"
		}
		fmt.Fprintf(&b, "sealing:     %s (%s)\n", vocab.Printable(cfg.SealState), state)
	}
	if c := cfg.Checkpoints; c != nil {
		var to []string
		if c.File != "" {
			to = append(to, vocab.Printable(c.File))
		}
		for _, d := range c.Syslog {
			to = append(to, "syslog "+vocab.Printable(d.String()))
		}
		fmt.Fprintf(&b, "checkpoints: every %d records or %d s, to %s\n", c.EveryRecords, c.EverySeconds, strings.Join(to, ", "))
	} else {
		b.WriteString("checkpoints: off\n")
	}
	logFile := vocab.Printable(cfg.LogFile)
	if logFile == "" {
		logFile = "(none)"
	}
	if cfg.Syslog != nil {
		logFile += "; unrecorded runs also to syslog " + vocab.Printable(cfg.Syslog.String())
	}
	fmt.Fprintf(&b, "diagnostics: %s\n", logFile)
	fmt.Fprintf(&b, "on_error:    %s; deadline %d ms\n", cfg.OnError, cfg.DeadlineMS)
	keys := make([]string, len(cfg.RecordAnnotations))
	for i, k := range cfg.RecordAnnotations {
		keys[i] = vocab.Printable(k)
	}
	fmt.Fprintf(&b, "records annotations: %s\n", strings.Join(keys, ", "))
	fmt.Fprintf(&b, "trusted selectors:   %s\n", cfg.TrustedSelectors.Describe())
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
	_, err = io.WriteString(stdout, b.String())
	return vocab.Written("nsrel-hook", err, stderr)
}
