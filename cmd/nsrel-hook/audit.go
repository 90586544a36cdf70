package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/vocab"
)

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
			fmt.Fprintf(stderr, "nsrel-hook: no LOG given and %s\n", vocab.OneLine(err))
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
			// s is nil when the log could not be locked or opened.
			if s != nil {
				res.Files, res.Records, res.FirstSeq, res.LastSeq, res.LastHash = files, s.Records, s.FirstSeq, s.LastSeq, s.LastHash
				for _, t := range s.TornTails {
					res.TornTails = append(res.TornTails, t.Seq)
				}
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
			fmt.Fprintf(stderr, "nsrel-hook: audit verify: FAILED: %s\n", vocab.OneLine(err))
			continue
		case err != nil:
			fmt.Fprintf(stderr, "nsrel-hook: audit verify: %s\n", vocab.OneLine(err))
			continue
		}
		fmt.Fprintf(stdout, "%s: OK: %d records (seq %d..%d) in %d file(s), last hash %s\n",
			vocab.Printable(lg), s.Records, s.FirstSeq, s.LastSeq, len(s.Files), s.LastHash)
		for _, t := range s.TornTails {
			fmt.Fprintf(stdout, "%s: note: seq %d records a torn line of %d bytes cut off after a crash\n", vocab.Printable(lg), t.Seq, t.TornBytes)
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
		fmt.Fprintf(stderr, "nsrel-hook: audit show: %s\n", vocab.OneLine(err))
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
		fmt.Fprintf(stderr, "nsrel-hook: audit show: %s\n", vocab.OneLine(err))
		return 1
	}
	if !asJSON {
		writeHistory(&out, recs)
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
	l, err := audit.Open(abs, audit.Options{Host: "-", Version: vocab.Version})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return l.ReadLocked(ctx, fn)
}
