package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/nsrel/nsrel/hook/audit"
)

// staleBlocks is class 9: what a crash exposes at the end of the log on
// a file system that shows what a block held before (ext4 without
// data=ordered, XFS): older records of the log again, one to three or
// ten to forty (beyond the 16 KiB an append looks back), after NUL bytes
// or not, with the head the last append left in the lock file as an
// earlier append left it (its later, unsynced writes lost), or gone (a
// log an nsrel before the hint wrote). Between them real nsrel-hook
// createRuntime runs append, with sealing and checkpoints, on a log that
// rotates every 32 KiB and keeps four rotated files. After each event
// one more run must append and record its container, and once the
// damage it records is acknowledged (`audit ack`), `audit verify --key
// --checkpoints` must pass: no append took an older record for the
// chain's head (a fork fails verify for good), and every run that
// exited 0 has its record.
func (c *campaign) staleBlocks() error {
	e, err := c.newHookEnv("stale", "", func(m map[string]any) {
		m["rotate_bytes"] = 32 << 10
		m["keep_files"] = 4
		m["on_error"] = "deny"
	})
	if err != nil {
		return err
	}
	lock := e.log + ".lock"
	// What a shipper following the log's files sends: every line as it
	// appears, older records again included (the collector's copy).
	ship := &shipper{log: e.log}
	var hints [][]byte // lock files saved after appends
	kinds := []string{"1 to 3 records", "10 to 40 records", "NUL bytes, then 1 to 3 records"}
	hintKinds := []string{"the lock file as the last append left it", "as an earlier one did", "empty"}
	counts, hintCounts := make([]int, len(kinds)), make([]int, len(hintKinds))
	survived, acked, runs, listed, replayed := 0, 0, 0, 0, 0
	var lostIDs, fails, exited0 []string
	acknowledged := map[uint64]bool{}
	run := func(id string) {
		runs++
		r := c.appendOne(e, id)
		ship.follow()
		switch {
		case r.code != 0 || r.killed || r.err != nil:
			fails = append(fails, fmt.Sprintf("%s: exit %d: %s", id, r.code, oneLine(r.stderr.String())))
		default:
			exited0 = append(exited0, r.id)
			if h, err := os.ReadFile(lock); err == nil {
				hints = append(hints, h)
			}
		}
	}
	for event := range c.cfg.staleEvents {
		for i := range 1 + c.rng.IntN(3) {
			run(fmt.Sprintf("stale-%d-%d", event, i))
		}
		lines, err := recordLines(e.log)
		if err != nil {
			return err
		}
		k := c.rng.IntN(len(kinds))
		counts[k]++
		var block []byte
		n := 1 + c.rng.IntN(3)
		if k == 1 {
			n = 10 + c.rng.IntN(31)
		}
		if k == 2 {
			block = append(bytes.Repeat([]byte{0}, 1+c.rng.IntN(4096)), '\n')
		}
		for range n {
			block = append(block, lines[c.rng.IntN(len(lines))]...)
		}
		h := c.rng.IntN(len(hintKinds))
		hintCounts[h]++
		switch h {
		case 1:
			if err := os.WriteFile(lock, hints[c.rng.IntN(len(hints))], 0o600); err != nil {
				return err
			}
		case 2:
			if err := os.Truncate(lock, 0); err != nil {
				return err
			}
		}
		f, err := os.OpenFile(e.log, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		_, werr := f.Write(block)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return werr
		}
		ship.follow()
		id := fmt.Sprintf("stale-%d-after", event)
		run(id)
		// The damage records not acknowledged yet, acknowledged as an
		// operator who checked them would.
		scan, err := e.scan()
		if err != nil {
			return err
		}
		// Every run of the event that exited 0 recorded (on_error
		// deny), looked for now: retention removes files later.
		for _, id := range exited0 {
			if len(scan.byID[id]) == 0 {
				lostIDs = append(lostIDs, id)
			}
		}
		exited0 = exited0[:0]
		ackErr := ""
		for _, r := range scan.all {
			if r.Stage != audit.StageDamaged || acknowledged[r.Seq] {
				continue
			}
			out, err := exec.Command(c.bin, "--config", e.config, "audit", "ack", strconv.FormatUint(r.Seq, 10), "--reason", "reliability: stale blocks").CombinedOutput()
			if err != nil {
				ackErr = fmt.Sprintf("audit ack %d: %v: %s", r.Seq, err, oneLine(string(out)))
				break
			}
			acknowledged[r.Seq] = true
			acked++
			ship.follow()
			listed += len(r.Damage)
			for _, d := range r.Damage {
				if d.Kind == "replayed" {
					replayed++
				}
			}
		}
		switch {
		case ackErr != "":
			fails = append(fails, fmt.Sprintf("event %d (%s, %s): %s", event, kinds[k], hintKinds[h], ackErr))
		case !recordedAs(scan, id):
			fails = append(fails, fmt.Sprintf("event %d (%s, %s): the next run's container is not recorded", event, kinds[k], hintKinds[h]))
		default:
			if err := e.verify(); err != nil {
				fails = append(fails, fmt.Sprintf("event %d (%s, %s): %v", event, kinds[k], hintKinds[h], err))
				continue
			}
			survived++
		}
	}
	scan, err := e.scan()
	if err != nil {
		return err
	}
	var what, hintWhat []string
	for i, k := range kinds {
		what = append(what, fmt.Sprintf("%d of %s", counts[i], k))
	}
	for i, k := range hintKinds {
		hintWhat = append(hintWhat, fmt.Sprintf("%d %s", hintCounts[i], k))
	}
	c.add(row{class: "9 stale blocks", variant: fmt.Sprintf("older records again at the log's end (%s; %s); then one more run, `audit ack` of its damage record, `audit verify --key --checkpoints`", strings.Join(what, ", "), strings.Join(hintWhat, ", ")),
		cases: c.cfg.staleEvents, caught: survived, missed: c.cfg.staleEvents - survived, lost: len(lostIDs), repro: c.repro("stale", true)})
	// The collector's copy, verified as shipped with the key and the
	// checkpoints: the chain from seq 1, the older records again
	// dropped as repeats their damage records list.
	copyPath := filepath.Join(e.dir, "collector.jsonl")
	copyErr := ship.err
	if copyErr == nil {
		copyErr = os.WriteFile(copyPath, ship.copy.Bytes(), 0o600)
	}
	if copyErr == nil {
		args := []string{"--config", e.config, "audit", "verify", "--shipped", "--key", "@" + e.key, "--checkpoints", e.cps, copyPath}
		if out, err := exec.Command(c.bin, args...).CombinedOutput(); err != nil {
			copyErr = fmt.Errorf("audit verify --shipped: %v: %s", err, oneLine(string(out)))
		}
	}
	copyOK := 0
	if copyErr == nil {
		copyOK = 1
	}
	c.add(row{class: "9 stale blocks", variant: "then the collector's copy of every line the log's files showed, `audit verify --shipped --key --checkpoints`",
		cases: 1, caught: copyOK, missed: 1 - copyOK, lost: 0, repro: c.repro("stale", true)})
	if copyErr != nil {
		c.note("stale: the collector's copy FAILED: %v", copyErr)
	}
	c.note("stale: %d events, %d hook runs (rotate_bytes 32 KiB, keep_files 4, sealed, checkpoints), %d damage records acknowledged, listing %d lines (%d of them older records again); the final log: %d lines in %d files",
		c.cfg.staleEvents, runs, acked, listed, replayed, len(scan.all)+scan.bad, countFiles(e))
	for _, f := range first(fails, 5) {
		c.note("stale: FAILED: %s", f)
	}
	if len(lostIDs) > 0 {
		c.note("stale: LOST records of runs that exited 0: %s", strings.Join(first(lostIDs, 10), ", "))
	}
	return nil
}

// recordLines returns the lines of the log's files that decode as
// records, newline included: what a stale block may hold again.
func recordLines(log string) ([][]byte, error) {
	files, err := audit.Files(log)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, f := range files {
		for l, err := range audit.Lines(f) {
			if err != nil {
				return nil, err
			}
			if _, derr := audit.Decode(l.Data); derr == nil && !l.Torn {
				out = append(out, append(bytes.Clone(l.Data), '\n'))
			}
		}
	}
	return out, nil
}

// recordedAs reports whether the log holds a record of run id (as
// appendOne names its tries).
func recordedAs(scan *logScan, id string) bool {
	for try := range 3 {
		if len(scan.byID[fmt.Sprintf("%s.%d", id, try)]) > 0 {
			return true
		}
	}
	return false
}

// shipper follows a log's current file as a shipper does (rsyslog's
// imfile): each complete line appended since it last looked, across a
// rotation the rest of the rotated file first, into copy.
type shipper struct {
	log  string
	ino  uint64
	off  int64
	copy bytes.Buffer
	err  error
}

// follow takes the lines appended since the last call.
func (s *shipper) follow() {
	if s.err != nil {
		return
	}
	var st syscall.Stat_t
	if err := syscall.Stat(s.log, &st); err != nil {
		s.err = err
		return
	}
	if s.ino != 0 && st.Ino != s.ino {
		// Rotated: the rest of the file followed, under its new name.
		files, err := audit.Files(s.log)
		if err != nil {
			s.err = err
			return
		}
		found := false
		for _, f := range files {
			var fst syscall.Stat_t
			if syscall.Stat(f, &fst) == nil && fst.Ino == s.ino {
				s.take(f)
				found = true
			}
		}
		if !found {
			s.err = fmt.Errorf("the file rotated away from %s is gone before it was shipped", s.log)
			return
		}
		s.off = 0
	}
	s.ino = uint64(st.Ino)
	s.take(s.log)
}

// take copies the complete lines of file from s.off on.
func (s *shipper) take(file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		s.err = err
		return
	}
	if int64(len(data)) < s.off {
		s.err = fmt.Errorf("%s shrank from %d to %d bytes", file, s.off, len(data))
		return
	}
	data = data[s.off:]
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		s.copy.Write(data[:i+1])
		s.off += int64(i + 1)
	}
}
