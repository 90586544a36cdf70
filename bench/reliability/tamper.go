package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/forge"
	"github.com/nsrel/nsrel/internal/vocab"
)

// sample is a sealed log of real records, with the checkpoints it
// shipped (one per record) and its verification key.
type sample struct {
	dir   string
	data  []byte
	lines [][]byte // without their newlines
	key   audit.VerifyKey
	cps   []audit.Checkpoint
	seal  string // the sealing state after the last append
	host  string
}

// The ways a copy of the sample is verified: the last as a collector's
// copy is (audit verify --shipped --key --checkpoints), which by design
// passes lines a shipper repeated byte for byte or sent out of order.
const (
	chainOnly = iota
	withKey
	withCheckpoints
	asShipped
	nWays
)

var wayNames = [nWays]string{"chain only", "chain + key", "chain + checkpoints", "as shipped + key + checkpoints"}

func (s *sample) verifyOptions(way int) audit.VerifyOptions {
	switch way {
	case withKey:
		return audit.VerifyOptions{Keys: []audit.VerifyKey{s.key}}
	case withCheckpoints:
		return audit.VerifyOptions{Checkpoints: s.cps}
	case asShipped:
		return audit.VerifyOptions{Keys: []audit.VerifyKey{s.key}, Checkpoints: s.cps, Shipped: true}
	}
	return audit.VerifyOptions{}
}

// makeSample writes the sample log once per campaign: a seal-start
// record, then per container createRuntime, and poststart for those
// allowed, and poststop, through hook.Hook as nsrel-hook runs them, with
// the ancestry of the campaign's sleep process. Every third container
// is under an enforcing block and refused.
func (c *campaign) makeSample() (*sample, error) {
	dir := filepath.Join(c.tmp, "sample")
	if _, err := os.Stat(dir); err == nil {
		return c.readSample(dir)
	}
	// The tampered copies are written tens of thousands of times: on a
	// tmpfs, not waiting for the disk's writeback.
	if err := c.mountTmpfs(dir, 128<<10); err != nil {
		return nil, err
	}
	shipped, err := os.ReadFile(filepath.Join(c.root, "config", "hook.json"))
	if err != nil {
		return nil, err
	}
	auditing, err := policy.Parse("config/hook.json", shipped)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(shipped, &m); err != nil {
		return nil, err
	}
	def, _ := m["default"].(map[string]any)
	if def == nil {
		return nil, fmt.Errorf("config/hook.json has no default block")
	}
	def["mode"] = policy.ModeEnforce
	edited, _ := json.Marshal(m)
	enforcing, err := policy.Parse("config/hook.json (enforce)", edited)
	if err != nil {
		return nil, err
	}
	opts := audit.Options{
		SealState:   filepath.Join(dir, "audit.seal"),
		Checkpoints: &audit.CheckpointOptions{EveryRecords: 1, File: filepath.Join(dir, "checkpoints.jsonl")},
		Version:     vocab.Version,
	}
	l, err := audit.Open(filepath.Join(dir, "audit.jsonl"), opts)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	key, _, err := l.StartSealing(ctx, false)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "verify.key"), []byte(key.String()+"\n"), 0o600); err != nil {
		return nil, err
	}
	for i := range c.cfg.containers {
		cfg := auditing
		if i%3 == 2 {
			cfg = enforcing
		}
		h := &hook.Hook{Config: cfg, Log: l}
		id := fmt.Sprintf("sample-%02d", i)
		st := &specs.State{Version: "1.0.2", ID: id, Status: specs.StateCreating, Pid: c.sleep.Process.Pid,
			Bundle:      "/run/containerd/io.containerd.runtime.v2.task/k8s.io/" + id,
			Annotations: map[string]string{"io.kubernetes.pod.name": fmt.Sprintf("web-%d", i), "io.kubernetes.pod.namespace": "prod"}}
		res, err := h.Run(ctx, audit.StageCreateRuntime, st)
		if err != nil {
			return nil, fmt.Errorf("sample %s: %w", id, err)
		}
		if !res.Deny {
			st.Status = specs.StateRunning
			if _, err := h.Run(ctx, audit.StagePoststart, st); err != nil {
				return nil, fmt.Errorf("sample %s: %w", id, err)
			}
		}
		st.Status = specs.StateStopped
		if _, err := h.Run(ctx, audit.StagePoststop, st); err != nil {
			return nil, fmt.Errorf("sample %s: %w", id, err)
		}
	}
	return c.readSample(dir)
}

func (c *campaign) readSample(dir string) (*sample, error) {
	s := &sample{dir: dir, seal: filepath.Join(dir, "audit.seal")}
	var err error
	if s.data, err = os.ReadFile(filepath.Join(dir, "audit.jsonl")); err != nil {
		return nil, err
	}
	s.lines = bytes.Split(bytes.TrimSuffix(s.data, []byte("\n")), []byte("\n"))
	k, err := os.ReadFile(filepath.Join(dir, "verify.key"))
	if err != nil {
		return nil, err
	}
	if s.key, err = audit.ParseVerifyKey(string(k)); err != nil {
		return nil, err
	}
	for cp, err := range audit.ReadCheckpoints(filepath.Join(dir, "checkpoints.jsonl")) {
		if err != nil {
			return nil, err
		}
		s.cps = append(s.cps, cp)
	}
	r, err := audit.Decode(s.lines[len(s.lines)-1])
	if err != nil {
		return nil, err
	}
	s.host = r.Host
	// The intact sample must pass all three ways, or nothing below means
	// anything.
	for way := range nWays {
		if _, err := audit.Verify([]string{filepath.Join(dir, "audit.jsonl")}, s.verifyOptions(way)); err != nil {
			return nil, fmt.Errorf("the intact sample log fails verify (%s): %w", wayNames[way], err)
		}
	}
	return s, nil
}

// tally counts the outcomes of one way of verifying.
type tally struct {
	cases, caught, byDesign, missed int
	examples                        []string // of missed cases
	designKinds                     map[string]int
}

func (t *tally) add(caught, must bool, desc, kind string) {
	t.cases++
	switch {
	case caught:
		t.caught++
	case must:
		t.missed++
		if len(t.examples) < 5 {
			t.examples = append(t.examples, desc)
		}
	default:
		t.byDesign++
		if t.designKinds == nil {
			t.designKinds = map[string]int{}
		}
		t.designKinds[kind]++
	}
}

func (t *tally) merge(o *tally) {
	t.cases += o.cases
	t.caught += o.caught
	t.byDesign += o.byDesign
	t.missed += o.missed
	for _, e := range o.examples {
		if len(t.examples) < 5 {
			t.examples = append(t.examples, e)
		}
	}
	for k, n := range o.designKinds {
		if t.designKinds == nil {
			t.designKinds = map[string]int{}
		}
		t.designKinds[k] += n
	}
}

// mutation is one tampered copy of the sample: how to make it, and for
// each way of verifying whether it must be caught, and if not, what kind
// of limit lets it pass.
type mutation struct {
	desc string
	// write makes the tampered file at path (a copy of the sample
	// before), undo restores the sample there (nil: write rewrites
	// the file whole).
	write, undo func(path string) error
	must        [nWays]bool
	kind        string
}

// tryAll verifies every mutation the three ways, on as many workers as
// there are CPUs, each with its own copy of the sample.
func (c *campaign) tryAll(s *sample, name string, muts []mutation) ([nWays]tally, error) {
	workers := runtime.NumCPU()
	var mu sync.Mutex
	var total [nWays]tally
	var firstErr error
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local [nWays]tally
			path := filepath.Join(s.dir, fmt.Sprintf("%s-%d", name, w), "audit.jsonl")
			err := func() (err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
					}
				}()
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					return err
				}
				if err := os.WriteFile(path, s.data, 0o600); err != nil {
					return err
				}
				for i := w; i < len(muts); i += workers {
					m := &muts[i]
					if err := m.write(path); err != nil {
						return fmt.Errorf("%s: %w", m.desc, err)
					}
					for way := range nWays {
						_, verr := audit.Verify([]string{path}, s.verifyOptions(way))
						local[way].add(verr != nil, m.must[way], m.desc, m.kind)
					}
					if m.undo != nil {
						if err := m.undo(path); err != nil {
							return err
						}
					}
				}
				return nil
			}()
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			for way := range nWays {
				total[way].merge(&local[way])
			}
		}()
	}
	wg.Wait()
	return total, firstErr
}

// rows adds the three ways' rows of a tampering class.
func (c *campaign) tamperRows(name, class, variant string, t [nWays]tally) {
	for way := range nWays {
		v := wayNames[way]
		if variant != "" {
			v = variant + ": " + v
		}
		c.add(row{class: class, variant: v, cases: t[way].cases, caught: t[way].caught, byDesign: t[way].byDesign, missed: t[way].missed, lost: -1, repro: c.repro(name, false)})
		if t[way].missed > 0 {
			c.note("%s, %s: MISSED, e.g. %s", class, v, strings.Join(t[way].examples, "; "))
		}
		for _, kind := range slices.Sorted(maps.Keys(t[way].designKinds)) {
			c.note("%s, %s: %d not caught by design: %s", class, v, t[way].designKinds[kind], kind)
		}
	}
}

// writeAll returns a mutation writer that replaces the file with data.
func writeAll(data []byte) func(string) error {
	return func(path string) error { return os.WriteFile(path, data, 0o600) }
}

// Parts of a seal ("ID.EPOCH.TAG") a byte can be in.
const (
	notSeal = iota
	sealID
	sealEpoch
	sealTag
)

// sealParts returns, per byte of data, which part of a seal member's
// value it is in (the part of a line after its hash, which the hash does
// not cover).
func sealParts(data []byte) (part []int) {
	part = make([]int, len(data))
	start := 0
	for start < len(data) {
		end := bytes.IndexByte(data[start:], '\n')
		if end < 0 {
			end = len(data) - start
		}
		line := data[start : start+end]
		if k := bytes.LastIndex(line, []byte(`,"seal":"`)); k >= 0 {
			v := k + len(`,"seal":"`)
			if q := bytes.IndexByte(line[v:], '"'); q >= 0 {
				p := sealID
				for i := v; i < v+q; i++ {
					if line[i] == '.' {
						p++
						continue
					}
					part[start+i] = p
				}
			}
		}
		start += end + 1
	}
	return part
}

// byteEdits is class 1: every single-byte edit of the sample.
func (c *campaign) byteEdits() error {
	s, err := c.makeSample()
	if err != nil {
		return err
	}
	part := sealParts(s.data)
	var muts []mutation
	for off, b := range s.data {
		values := []byte{b + 1}
		switch {
		case b >= 'a' && b <= 'z':
			values = append(values, b-'a'+'A')
		case b >= 'A' && b <= 'Z':
			values = append(values, b-'A'+'a')
		}
		for _, v := range values {
			m := mutation{
				desc:  fmt.Sprintf("byte %d %q -> %q", off, b, v),
				write: func(path string) error { return pwrite(path, off, v) },
				undo:  func(path string) error { return pwrite(path, off, b) },
				must:  [nWays]bool{true, true, true, true},
			}
			// A seal follows the hash and is not covered by it, and
			// checkpoints compare hashes: only the key checks a seal's
			// tag (its epoch must be one more than the record's
			// before, which every way checks).
			if part[off] == sealTag {
				m.must[chainOnly], m.must[withCheckpoints] = false, false
				m.kind = "edits of a seal's tag (hex to hex): only the key checks it"
			}
			muts = append(muts, m)
		}
	}
	t, err := c.tryAll(s, "bytes", muts)
	if err != nil {
		return err
	}
	c.note("bytes: the sample log is %d records, %d bytes (%d containers through hook.Hook, sealed, a checkpoint per record)", len(s.lines), len(s.data), c.cfg.containers)
	c.tamperRows("bytes", "1 byte edits", "", t)
	return nil
}

// pwrite writes one byte at off.
func pwrite(path string, off int, b byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt([]byte{b}, int64(off))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// join makes a log file of lines.
func join(lines [][]byte) []byte {
	if len(lines) == 0 {
		return nil
	}
	return append(bytes.Join(lines, []byte("\n")), '\n')
}

// lineEdits is class 2: deleting, duplicating, inserting, reordering
// lines and truncating the file.
func (c *campaign) lineEdits() error {
	s, err := c.makeSample()
	if err != nil {
		return err
	}
	n := len(s.lines)
	all := [nWays]bool{true, true, true, true}
	// Whole records cut off the end: the chain and the seals before the
	// cut are intact; only a checkpoint shipped before knows more.
	tail := [nWays]bool{false, false, true, true}
	const tailKind = "whole records cut off the end: the chain and the seals before the cut are intact (only checkpoints catch it)"
	// As shipped, a line repeated byte for byte is dropped and lines out
	// of order are put back: what a shipper's resend does, which hides
	// no record and adds none.
	notShipped := [nWays]bool{true, true, true, false}
	const repeatKind = "a record repeated byte for byte: as shipped, dropped (a shipper's resend)"
	const reorderKind = "records out of order: as shipped, put back in chain order (a shipper's resend)"
	// As shipped, an empty line is skipped and counted: rsyslog delivers
	// a crash's line of NUL bytes empty. It holds no record.
	const emptyKind = "an empty line: as shipped, skipped and counted (rsyslog delivers a crash's line of NUL bytes empty)"
	type group struct {
		name string
		muts []mutation
	}
	var groups []group

	var del []mutation
	for i := range n {
		lines := append(append([][]byte{}, s.lines[:i]...), s.lines[i+1:]...)
		m := mutation{desc: fmt.Sprintf("line %d deleted", i+1), write: writeAll(join(lines)), must: all}
		if i == n-1 {
			m.must, m.kind = tail, tailKind
		}
		del = append(del, m)
	}
	groups = append(groups, group{"deletion of each line", del})

	var dup []mutation
	for i := range n {
		for j := 0; j <= n; j++ {
			if j == i+1 {
				continue // the same file as j == i
			}
			lines := append([][]byte{}, s.lines[:j]...)
			lines = append(lines, s.lines[i])
			lines = append(lines, s.lines[j:]...)
			dup = append(dup, mutation{desc: fmt.Sprintf("line %d copied before line %d", i+1, j+1), write: writeAll(join(lines)), must: notShipped, kind: repeatKind})
		}
	}
	groups = append(groups, group{"each line duplicated at every other place", dup})

	var garbage []mutation
	for _, g := range []string{"garbage, not a record", `{"seq":1,"note":"a JSON object, not a record"}`, ""} {
		for j := 0; j <= n; j++ {
			lines := append([][]byte{}, s.lines[:j]...)
			lines = append(lines, []byte(g))
			lines = append(lines, s.lines[j:]...)
			m := mutation{desc: fmt.Sprintf("%q inserted before line %d", g, j+1), write: writeAll(join(lines)), must: all}
			if g == "" {
				m.must, m.kind = notShipped, emptyKind
			}
			garbage = append(garbage, m)
		}
	}
	groups = append(groups, group{"a garbage, non-record or empty line inserted at every place", garbage})

	var swap []mutation
	for i := 0; i+1 < n; i++ {
		lines := append([][]byte{}, s.lines...)
		lines[i], lines[i+1] = lines[i+1], lines[i]
		swap = append(swap, mutation{desc: fmt.Sprintf("lines %d and %d swapped", i+1, i+2), write: writeAll(join(lines)), must: notShipped, kind: reorderKind})
	}
	groups = append(groups, group{"each adjacent pair swapped", swap})

	var trunc []mutation
	for off := 0; off < len(s.data); off++ {
		m := mutation{desc: fmt.Sprintf("truncated at byte %d", off), write: writeAll(s.data[:off]), must: all}
		if off == 0 || s.data[off-1] == '\n' {
			m.must, m.kind = tail, tailKind
			if off == 0 {
				m.desc += " (empty file)"
			}
		}
		trunc = append(trunc, m)
	}
	groups = append(groups, group{"truncation at every byte offset", trunc})

	for _, g := range groups {
		t, err := c.tryAll(s, "lines", g.muts)
		if err != nil {
			return err
		}
		c.tamperRows("lines", "2 lines", g.name, t)
	}
	return nil
}

// forgery is class 3: whole-chain forgeries by someone who knows the
// format and has root on the node (the sealing state as it is now), but
// not the verification key, and cannot reach the checkpoints shipped.
func (c *campaign) forgery() error {
	s, err := c.makeSample()
	if err != nil {
		return err
	}
	n := len(s.lines)
	deny := -1
	for i, l := range s.lines[:n-1] {
		if bytes.Contains(l, []byte(`"verdict":"deny"`)) {
			deny = i
			break
		}
	}
	if deny < 0 {
		return fmt.Errorf("the sample log has no refused container")
	}
	edited := func() [][]byte {
		lines := append([][]byte{}, s.lines...)
		lines[deny] = bytes.Replace(lines[deny], []byte(`"verdict":"deny"`), []byte(`"verdict":"allow"`), 1)
		return lines
	}
	rechain := func(lines [][]byte, from int) ([]byte, error) {
		out, err := forge.Rechain(lines, from)
		if err != nil {
			return nil, err
		}
		return join(out), nil
	}
	type forged struct {
		desc string
		data []byte
		must [nWays]bool
		kind [nWays]string
	}
	limit := "the expected limit: a chain recomputed whole verifies on its own"
	var cases []forged

	verdict, err := rechain(edited(), deny)
	if err != nil {
		return err
	}
	cases = append(cases, forged{desc: fmt.Sprintf("line %d: verdict deny -> allow, chain recomputed", deny+1), data: verdict,
		must: [nWays]bool{false, true, true, true}, kind: [nWays]string{limit}})

	mid := n / 2
	lines := append(append([][]byte{}, s.lines[:mid]...), s.lines[mid+1:]...)
	deleted, err := rechain(lines, mid)
	if err != nil {
		return err
	}
	cases = append(cases, forged{desc: fmt.Sprintf("line %d deleted, chain recomputed", mid+1), data: deleted,
		must: [nWays]bool{false, true, true, true}, kind: [nWays]string{limit}})

	lines = edited()
	lines[n-1] = bytes.Replace(lines[n-1], []byte(`"host":`+quote(s.host)), []byte(`"host":"elsewhere"`), 1)
	renamed, err := rechain(lines, deny)
	if err != nil {
		return err
	}
	cases = append(cases, forged{desc: fmt.Sprintf("line %d: verdict deny -> allow, last record's host renamed, chain recomputed", deny+1), data: renamed,
		must: [nWays]bool{false, true, true, true}, kind: [nWays]string{limit}})

	// The node's sealing state is past the record cut off: the record
	// appended with it leaves a key without a record, which every way
	// of verifying refuses.
	for _, host := range []string{s.host, "elsewhere"} {
		data, err := c.cutAndAppend(s, host)
		if err != nil {
			return err
		}
		desc := "last record replaced by a new one appended with the node's sealing state"
		if host != s.host {
			desc += ", under another host name"
		}
		cases = append(cases, forged{desc: desc, data: data,
			must: [nWays]bool{true, true, true, true}})
	}

	var total [nWays]tally
	path := filepath.Join(s.dir, "forge", "audit.jsonl")
	for _, f := range cases {
		if err := os.WriteFile(path, f.data, 0o600); err != nil {
			return err
		}
		var res []string
		for way := range nWays {
			_, verr := audit.Verify([]string{path}, s.verifyOptions(way))
			total[way].add(verr != nil, f.must[way], f.desc, f.kind[way])
			switch {
			case verr != nil:
				res = append(res, wayNames[way]+": caught")
			case f.must[way]:
				res = append(res, wayNames[way]+": MISSED")
			default:
				res = append(res, wayNames[way]+": passes (by design)")
			}
		}
		c.note("forge: %s: %s", f.desc, strings.Join(res, ", "))
	}
	c.tamperRows("forge", "3 forgery", "", total)
	return nil
}

// cutAndAppend returns the sample with its last record removed and a
// record appended, as root on the node can: through audit.Log, with a
// copy of the node's sealing state, writing records under host.
func (c *campaign) cutAndAppend(s *sample, host string) ([]byte, error) {
	dir := filepath.Join(s.dir, "forge")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	state, err := os.ReadFile(s.seal)
	if err != nil {
		return nil, err
	}
	seal := filepath.Join(dir, "audit.seal")
	if err := os.WriteFile(seal, state, 0o600); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "audit.jsonl")
	if err := os.WriteFile(path, join(s.lines[:len(s.lines)-1]), 0o600); err != nil {
		return nil, err
	}
	l, err := audit.Open(path, audit.Options{SealState: seal, Host: host, Version: vocab.Version})
	if err != nil {
		return nil, err
	}
	if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime,
		ContainerID: "forged", Verdict: audit.VerdictAllow}); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
