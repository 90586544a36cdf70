package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/vocab"
)

// injectLog is a sealed log verified against its genuine checkpoints
// and lines added to them.
type injectLog struct {
	name    string
	files   []string // intact
	cut     []string // the same with its last record cut off
	key     audit.VerifyKey
	genuine []audit.Checkpoint
}

// injection is class 8: lines anyone who can write to the collector's
// checkpoint file adds (a local user through syslog, another node): the
// node's genuine checkpoints copied with a member changed, with their
// checkpoint seal and without it (which reads as format 1.0), and
// checkpoints made up. With the key, one such line beside the genuine
// checkpoints must not fail the intact log (a false alarm is a miss),
// nor let the log with its last record cut off pass. On the sample, and
// on a log whose oldest records retention removed (the checkpoints of
// records it no longer holds).
func (c *campaign) injection() error {
	s, err := c.makeSample()
	if err != nil {
		return err
	}
	sampleLog := filepath.Join(s.dir, "audit.jsonl")
	cutDir := filepath.Join(s.dir, "inject-cut")
	if err := os.MkdirAll(cutDir, 0o700); err != nil {
		return err
	}
	cut := filepath.Join(cutDir, "audit.jsonl")
	if err := os.WriteFile(cut, join(s.lines[:len(s.lines)-1]), 0o600); err != nil {
		return err
	}
	logs := []injectLog{{name: "the sample", files: []string{sampleLog}, cut: []string{cut}, key: s.key, genuine: s.cps}}
	retained, err := c.retainedLog()
	if err != nil {
		return err
	}
	logs = append(logs, retained)

	for _, l := range logs {
		var intact, cutOff tally
		for _, inj := range injected(l.genuine) {
			cps := append(slices.Clone(l.genuine), inj.c)
			opts := audit.VerifyOptions{Keys: []audit.VerifyKey{l.key}, Checkpoints: cps}
			_, err := audit.Verify(l.files, opts)
			intact.add(err == nil, true, inj.desc+": "+fmt.Sprint(err), "")
			_, err = audit.Verify(l.cut, opts)
			cutOff.add(err != nil, true, inj.desc, "")
		}
		for _, t := range []struct {
			variant string
			t       tally
		}{
			{l.name + ", intact, with key: one line added passes (no false alarm)", intact},
			{l.name + ", last record cut off, with key: still caught", cutOff},
		} {
			c.add(row{class: "8 injected checkpoints", variant: t.variant, cases: t.t.cases, caught: t.t.caught, missed: t.t.missed, lost: -1, repro: c.repro("inject", false)})
			if t.t.missed > 0 {
				c.note("8 injected checkpoints, %s: MISSED, e.g. %s", t.variant, strings.Join(t.t.examples, "; "))
			}
		}
	}
	return nil
}

// retainedLog writes a sealed log that rotates every 4 KiB and keeps one
// rotated file, with a checkpoint of every record: retention removes its
// oldest records, and their checkpoints name records it no longer holds.
func (c *campaign) retainedLog() (injectLog, error) {
	dir := filepath.Join(c.tmp, "inject-retained")
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		return injectLog{}, err
	}
	cpFile := filepath.Join(dir, "checkpoints.jsonl")
	l, err := audit.Open(filepath.Join(dir, "audit.jsonl"), audit.Options{RotateBytes: 4096, KeepFiles: 1,
		SealState: filepath.Join(dir, "state", "audit.seal"), Version: vocab.Version,
		Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: cpFile}})
	if err != nil {
		return injectLog{}, err
	}
	ctx := context.Background()
	key, _, err := l.StartSealing(ctx, false)
	if err != nil {
		return injectLog{}, err
	}
	for i := range 40 {
		r := &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: fmt.Sprintf("retained-%02d", i), Verdict: audit.VerdictAllow}
		if err := l.Append(ctx, r); err != nil {
			return injectLog{}, err
		}
	}
	files, err := l.Files()
	if err != nil {
		return injectLog{}, err
	}
	var genuine []audit.Checkpoint
	for cp, err := range audit.ReadCheckpoints(cpFile) {
		if err != nil {
			return injectLog{}, err
		}
		genuine = append(genuine, cp)
	}
	s, err := audit.Verify(files, audit.VerifyOptions{Keys: []audit.VerifyKey{key}, Checkpoints: genuine})
	if err != nil {
		return injectLog{}, fmt.Errorf("the intact retained log fails verify: %w", err)
	}
	if len(s.Dropped) == 0 {
		return injectLog{}, fmt.Errorf("the retained log removed no file")
	}
	// The cut copy: the same files, the current one without its last
	// record.
	cutDir := filepath.Join(dir, "cut")
	if err := os.MkdirAll(cutDir, 0o700); err != nil {
		return injectLog{}, err
	}
	var cut []string
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return injectLog{}, err
		}
		if i == len(files)-1 {
			lines := bytes.SplitAfter(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
			data = bytes.Join(lines[:len(lines)-1], nil)
		}
		to := filepath.Join(cutDir, filepath.Base(f))
		if err := os.WriteFile(to, data, 0o600); err != nil {
			return injectLog{}, err
		}
		cut = append(cut, to)
	}
	return injectLog{name: "a log retention removed records of", files: files, cut: cut, key: key, genuine: genuine}, nil
}

// injectedLine is one line added to the checkpoints.
type injectedLine struct {
	desc string
	c    audit.Checkpoint
}

// injected returns the lines added, one at a time, to genuine: each
// genuine checkpoint moved to other seqs, relabelled and re-timed, each
// with its checkpoint seal and without; its seal moved to another epoch;
// and checkpoints without a seal at its seq and beyond the end.
func injected(genuine []audit.Checkpoint) []injectedLine {
	var out []injectedLine
	last := uint64(0)
	for _, g := range genuine {
		last = max(last, g.Seq)
	}
	for _, g := range genuine {
		name := fmt.Sprintf("checkpoint of seq %d", g.Seq)
		variants := []injectedLine{}
		for _, seq := range []uint64{1, g.Seq - 1, g.Seq + 1, last, last + 1, last + 100, 1 << 40} {
			if seq == g.Seq || seq == 0 {
				continue
			}
			c := g
			c.Seq = seq
			variants = append(variants, injectedLine{fmt.Sprintf("%s moved to seq %d", name, seq), c})
		}
		for _, f := range []struct {
			what string
			set  func(*audit.Checkpoint)
		}{
			{"relabelled with another host", func(c *audit.Checkpoint) { c.Host = "elsewhere" }},
			{"relabelled with another log", func(c *audit.Checkpoint) { c.Log = "/elsewhere/audit.jsonl" }},
			{"re-timed", func(c *audit.Checkpoint) { c.Time = "2030-01-01T00:00:00Z" }},
		} {
			c := g
			f.set(&c)
			variants = append(variants, injectedLine{name + " " + f.what, c})
		}
		for _, v := range variants {
			out = append(out, v)
			if v.c.CheckpointSeal != "" {
				v.c.CheckpointSeal = ""
				out = append(out, injectedLine{v.desc + ", its checkpoint seal left out", v.c})
			}
		}
		if p, err := audit.ParseSeal(g.Seal); err == nil {
			c := g
			c.Seal = p.ID.String() + "." + strconv.FormatUint(p.Epoch+1, 10) + "." + g.Seal[strings.LastIndexByte(g.Seal, '.')+1:]
			out = append(out, injectedLine{name + " with its seal's epoch changed", c})
		}
		c := g
		c.Seal, c.CheckpointSeal, c.Hash = "", "", strings.Repeat("0", 64)
		out = append(out, injectedLine{name + " unsealed, another hash", c})
		c.Seq = last + 1
		out = append(out, injectedLine{"unsealed, beyond the end", c})
	}
	return out
}
