package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
)

// kill9 is class 4: nsrel-hook createRuntime processes in parallel
// batches, a random share of them killed with SIGKILL at a random moment
// of their life. After each batch one more hook run appends (and repairs
// a torn tail, if any) and `audit verify --key --checkpoints` must pass:
// the batch survived. At the end every run that exited 0 must have its
// record. The config is the shipped one with on_error deny, so that exit
// 0 means recorded (with allow, a run that could not record exits 0 too,
// saying so on stderr).
func (c *campaign) kill9() error {
	e, err := c.newHookEnv("kill", "", func(m map[string]any) {
		m["rotate_bytes"] = 128 << 10 // about 140 records a file: rotates several times
		m["on_error"] = "deny"
	})
	if err != nil {
		return err
	}
	// How long a hook lives in a batch without kills, to draw the kills
	// from.
	var calib []*hookRun
	for i := range c.cfg.killBatch {
		r, err := c.startHook(e.config, fmt.Sprintf("calibrate-%d", i), c.state(fmt.Sprintf("calibrate-%d", i)), false)
		if err != nil {
			return err
		}
		calib = append(calib, r)
	}
	var walls []time.Duration
	for _, r := range calib {
		r.wait(c)
		walls = append(walls, r.wall)
	}
	slices.Sort(walls)
	span := walls[len(walls)-1]

	var runs []*hookRun
	batches, survived := 0, 0
	var verifyErrs []string
	for len(runs) < c.cfg.killRuns {
		batches++
		var batch []*hookRun
		var wg sync.WaitGroup
		for i := 0; i < c.cfg.killBatch && len(runs)+len(batch) < c.cfg.killRuns; i++ {
			id := fmt.Sprintf("kill-%d-%d", batches, i)
			r, err := c.startHook(e.config, id, c.state(id), false)
			if err != nil {
				return err
			}
			batch = append(batch, r)
			if c.rng.Float64() < c.cfg.killShare {
				delay := time.Duration(c.rng.Int64N(int64(span)))
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(delay - time.Since(r.start))
					r.cmd.Process.Kill() // through a pidfd: ErrProcessDone if it already ended
				}()
			}
		}
		for _, r := range batch {
			r.wait(c)
		}
		wg.Wait()
		runs = append(runs, batch...)
		rep := c.appendOne(e, fmt.Sprintf("repair-%d", batches))
		if rep.code != 0 || rep.killed || rep.err != nil {
			verifyErrs = append(verifyErrs, fmt.Sprintf("batch %d: the next append failed: exit %d: %s", batches, rep.code, strings.TrimSpace(rep.stderr.String())))
			continue
		}
		if err := e.verify(); err != nil {
			verifyErrs = append(verifyErrs, fmt.Sprintf("batch %d: %v", batches, err))
			continue
		}
		survived += len(batch)
	}
	final := c.appendOne(e, "final")
	finalErr := e.verify()
	if final.code != 0 || final.killed || final.err != nil {
		finalErr = fmt.Errorf("the final append failed: exit %d: %s", final.code, final.stderr.String())
	}

	scan, err := e.scan()
	if err != nil {
		return err
	}
	killed, exited0, recorded, lost, dup := 0, 0, 0, 0, 0
	notKilled, deadline, deadlineAllowed, otherFail := 0, 0, 0, 0
	var lostIDs, failWhat []string
	for _, r := range runs {
		if r.err != nil {
			return fmt.Errorf("run %s: %v", r.id, r.err)
		}
		n := len(scan.byID[r.id])
		if n > 0 {
			recorded++
		}
		if n > 1 {
			dup++
		}
		if r.killed {
			killed++
			continue
		}
		notKilled++
		switch {
		case r.code == 0:
			exited0++
			if n == 0 {
				lost++
				lostIDs = append(lostIDs, r.id)
			}
		case strings.Contains(r.stderr.String(), "deadline"):
			deadline++
			if n > 0 && scan.byID[r.id][0].Verdict == "allow" {
				deadlineAllowed++
			}
			failWhat = append(failWhat, fmt.Sprintf("%s (%.0f ms): %s", r.id, ms(r.wall), oneLine(r.stderr.String())))
		default:
			otherFail++
			failWhat = append(failWhat, fmt.Sprintf("%s: exit %d: %s", r.id, r.code, oneLine(r.stderr.String())))
		}
	}
	torn, unused, worst := scan.sealing()
	if finalErr != nil {
		survived = 0
	}
	c.add(row{class: "4 kill -9", variant: fmt.Sprintf("createRuntime runs, %d killed at random; after each of %d batches one more append and `audit verify --key --checkpoints`", killed, batches),
		cases: len(runs), caught: survived, missed: len(runs) - survived, lost: lost, repro: c.repro("kill", true)})
	c.add(row{class: "4 kill -9", variant: "runs not killed: exited 0 and recorded (a missed deadline refuses, on_error deny)",
		cases: notKilled, caught: exited0 - lost, byDesign: deadline, missed: otherFail + lost, lost: lost, repro: c.repro("kill", true)})
	c.note("kill: %d runs in batches of %d, %d killed by SIGKILL (drawn for %.0f%%; the others had ended), %d exited 0, all %d with their record: %d lost; %d runs recorded in all (killed ones too, when the kill came after the write), %d more than once",
		len(runs), c.cfg.killBatch, killed, c.cfg.killShare*100, exited0, exited0-lost, lost, recorded, dup)
	c.note("kill: in a batch without kills a hook lived %.1f ms (median) to %.1f ms; the kills were drawn uniformly from 0 to %.1f ms after each start",
		ms(walls[len(walls)/2]), ms(span), ms(span))
	c.note("kill: %d of %d batches verified after one more append; the final log: %d records in %d files (rotate_bytes 128 KiB), %d torn tails repaired (recorded), %d sealing keys sealed no record (at most %d in a row), %d lines that are no record",
		batches-len(verifyErrs), batches, len(scan.all), countFiles(e), torn, unused, worst, scan.bad)
	if deadline > 0 {
		c.note("kill: %d runs not killed passed the internal deadline (%s ms) and refused with one line (on_error deny); %d of them are recorded nonetheless with verdict allow: the append finished before the watchdog's exit",
			deadline, c.shippedValue("deadline_ms"), deadlineAllowed)
	}
	for _, w := range first(failWhat, 3) {
		c.note("kill: not recorded: %s", w)
	}
	if len(lostIDs) > 0 {
		c.note("kill: LOST records of runs that exited 0: %s", strings.Join(first(lostIDs, 10), ", "))
	}
	for _, v := range first(verifyErrs, 5) {
		c.note("kill: verify FAILED after %s", oneLine(v))
	}
	if finalErr != nil {
		c.note("kill: the final verify FAILED: %s", oneLine(finalErr.Error()))
	}
	return nil
}

// appendOne runs one hook for container id, again (up to three times)
// if it misses its deadline: a slow disk, not the log, is to blame then.
func (c *campaign) appendOne(e *hookEnv, id string) *hookRun {
	var r *hookRun
	for try := range 3 {
		r = c.runHook(e.config, fmt.Sprintf("%s.%d", id, try), c.state(fmt.Sprintf("%s.%d", id, try)))
		if r.code == 0 || !strings.Contains(r.stderr.String(), "deadline") {
			break
		}
	}
	return r
}

// countFiles returns how many files the env's log has.
func countFiles(e *hookEnv) int {
	files, _ := audit.Files(e.log)
	return len(files)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("... (%d in all)", len(s)))
	}
	return s
}

func oneLine(s string) string {
	s = strings.ReplaceAll(strings.TrimSpace(s), "\n", " / ")
	if len(s) > 600 {
		s = s[:600] + "..."
	}
	return s
}
