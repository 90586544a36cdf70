package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// concurrent is class 6: many createRuntime hooks started at once (each
// with its state ready in its pipe), all on one log: every one must be
// recorded once and the chain verify. It reports the hooks' wall times,
// from the start of each process to its end.
func (c *campaign) concurrent() error {
	e, err := c.newHookEnv("concurrent", "", nil)
	if err != nil {
		return err
	}
	// A baseline: hooks one at a time on the same log.
	var alone, aloneCPU []time.Duration
	for i := range 10 {
		id := fmt.Sprintf("alone-%d", i)
		r := c.runHook(e.config, id, c.state(id))
		if !r.acknowledged() {
			return fmt.Errorf("a hook alone: exit %d: %s", r.code, r.stderr.String())
		}
		alone = append(alone, r.wall)
		aloneCPU = append(aloneCPU, r.cmd.ProcessState.UserTime()+r.cmd.ProcessState.SystemTime())
	}
	slices.Sort(alone)
	slices.Sort(aloneCPU)

	runs := make([]*hookRun, 0, c.cfg.concurrent)
	t0 := time.Now()
	for i := range c.cfg.concurrent {
		id := fmt.Sprintf("concurrent-%d", i)
		r, err := c.startHook(e.config, id, c.state(id), false)
		if err != nil {
			for _, r := range runs {
				r.wait(c)
			}
			return err
		}
		runs = append(runs, r)
	}
	started := time.Since(t0)
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.wait(c)
		}()
	}
	wg.Wait()
	span := time.Since(t0)
	recs, _, err := e.records()
	if err != nil {
		return err
	}
	ok, lost := 0, 0
	var walls, cpu []time.Duration
	var failed []string
	for _, r := range runs {
		walls = append(walls, r.wall)
		if ps := r.cmd.ProcessState; ps != nil {
			cpu = append(cpu, ps.UserTime()+ps.SystemTime())
		}
		n := len(recs[r.id])
		switch {
		case r.acknowledged() && n == 1:
			ok++
		case r.acknowledged() && n == 0:
			lost++
			failed = append(failed, r.id+": acknowledged, no record")
		default:
			failed = append(failed, fmt.Sprintf("%s: exit %d, %d records, stderr %q", r.id, r.code, n, r.stderr.String()))
		}
	}
	verr := e.verify()
	slices.Sort(walls)
	slices.Sort(cpu)
	if len(cpu) == 0 {
		cpu = []time.Duration{0}
	}
	c.add(row{class: "6 concurrent starts", variant: fmt.Sprintf("%d createRuntime hooks at once", len(runs)), cases: len(runs),
		caught: ok, missed: len(runs) - ok, lost: lost, repro: c.repro("concurrent", false)})
	verified := 0
	if verr == nil {
		verified = 1
	}
	c.add(row{class: "6 concurrent starts", variant: "then `audit verify --key --checkpoints`", cases: 1, caught: verified, missed: 1 - verified, lost: 0, repro: c.repro("concurrent", false)})
	c.note("concurrent: %d hooks started in %.0f ms, all ended %.0f ms after the first start; hook wall time (process start to exit) median %.1f ms, 90th percentile %.1f ms, max %.1f ms (deadline_ms %s); CPU time per hook median %.1f ms. One at a time, a hook took %.1f ms (median of 10), %.1f ms of CPU",
		len(runs), ms(started), ms(span), ms(walls[len(walls)/2]), ms(walls[len(walls)*9/10]), ms(walls[len(walls)-1]), c.shippedValue("deadline_ms"), ms(cpu[len(cpu)/2]), ms(alone[len(alone)/2]), ms(aloneCPU[len(aloneCPU)/2]))
	for _, f := range first(failed, 5) {
		c.note("concurrent: FAILED: %s", oneLine(f))
	}
	if verr != nil {
		c.note("concurrent: verify FAILED: %s", oneLine(verr.Error()))
	}
	return nil
}

// shippedValue returns a top-level value of config/hook.json as text.
func (c *campaign) shippedValue(key string) string {
	m, err := c.shippedConfig()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(fmt.Sprint(m[key]))
}
