package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// diskFull is class 5: the audit log and its sealing state on a small
// tmpfs, filled with a filler file but for a few KiB; hooks append
// (alternately with on_error allow and deny) until appends fail with
// ENOSPC. A run that appended must exit 0 without a word and keep its
// record; one that could not must exit as on_error says with one line on
// stderr. Then the filler is removed, more hooks append, and `audit
// verify --key` must pass.
func (c *campaign) diskFull() error {
	base := filepath.Join(c.tmp, "diskfull")
	mnt := filepath.Join(base, "tmpfs")
	if err := c.mountTmpfs(mnt, c.cfg.tmpfsKiB); err != nil {
		return err
	}
	defer c.unmount(mnt)

	e, err := c.newHookEnv("diskfull", mnt, nil)
	if err != nil {
		return err
	}
	m, err := readConfig(e.config)
	if err != nil {
		return err
	}
	m["on_error"] = "deny"
	denyConfig := filepath.Join(e.dir, "hook-deny.json")
	if err := writeConfig(denyConfig, m); err != nil {
		return err
	}
	configs := []string{e.config, denyConfig}
	onError := []string{"allow", "deny"}

	var acked, bad []string
	n := 0
	const (
		appended = iota
		refused  // could not append: exit per on_error, one line
		misbehaved
	)
	// run appends once with config n%2 and judges the outcome.
	run := func(phase string) (*hookRun, int) {
		id := fmt.Sprintf("full-%s-%d", phase, n)
		cfg := n % 2
		n++
		r := c.runHook(configs[cfg], id, c.state(id))
		switch {
		case r.acknowledged():
			acked = append(acked, id)
			return r, appended
		case r.err == nil && !r.killed && len(r.lines()) == 1 && strings.Contains(r.stderr.String(), "not recorded") &&
			r.code == map[string]int{"allow": 0, "deny": 1}[onError[cfg]]:
			return r, refused
		}
		bad = append(bad, fmt.Sprintf("%s (on_error=%s): exit %d, stderr %q", id, onError[cfg], r.code, r.stderr.String()))
		return r, misbehaved
	}
	for range 4 {
		if _, o := run("before"); o != appended {
			return fmt.Errorf("appends fail before the disk is full: %s", strings.Join(bad, "; "))
		}
	}

	filler := filepath.Join(mnt, "filler")
	size, err := fill(filler)
	if err != nil {
		return err
	}
	const leave = 8 << 10 // about nine records
	if err := os.Truncate(filler, max(size-leave, 0)); err != nil {
		return err
	}

	full, fails, enospc, behaved := 0, 0, 0, 0
	for fails < c.cfg.fullFails && full < 20*c.cfg.fullFails {
		r, o := run("full")
		full++
		if o != appended {
			fails++
		}
		if o != misbehaved {
			behaved++
		}
		if strings.Contains(r.stderr.String(), "no space left on device") {
			enospc++
		}
	}
	if fails == 0 {
		return fmt.Errorf("%d appends on a full %d KiB tmpfs, none failed", full, c.cfg.tmpfsKiB)
	}
	ackedFull := len(acked) - 4

	if err := os.Remove(filler); err != nil {
		return err
	}
	after, afterOK := 0, 0
	for range 6 {
		if _, o := run("freed"); o == appended {
			afterOK++
		}
		after++
	}
	verr := e.verify()
	scan, err := e.scan()
	if err != nil {
		return err
	}
	recs := scan.byID
	lost := 0
	var lostIDs []string
	for _, id := range acked {
		if len(recs[id]) != 1 {
			lost++
			lostIDs = append(lostIDs, fmt.Sprintf("%s (%d records)", id, len(recs[id])))
		}
	}
	c.add(row{class: "5 disk full", variant: fmt.Sprintf("appends to a full %d KiB tmpfs (on_error allow and deny in turn)", c.cfg.tmpfsKiB), cases: full,
		caught: behaved, missed: full - behaved, lost: lost, repro: c.repro("diskfull", false)})
	verified := 0
	if verr == nil {
		verified = 1
	}
	c.add(row{class: "5 disk full", variant: "space freed: appends, then `audit verify --key`", cases: after + 1,
		caught: afterOK + verified, missed: after + 1 - afterOK - verified, lost: 0, repro: c.repro("diskfull", false)})
	c.note("diskfull: %d runs on the full disk: %d appended (exit 0, silent), %d could not (%d of them ENOSPC), each with one line on stderr and the exit on_error gives: %d of %d behaved so",
		full, ackedFull, fails, enospc, fails-(full-behaved), fails)
	for _, b := range first(bad, 5) {
		c.note("diskfull: MISBEHAVED: %s", oneLine(b))
	}
	if len(lostIDs) > 0 {
		c.note("diskfull: LOST or duplicated records of acknowledged runs: %s", strings.Join(first(lostIDs, 10), ", "))
	}
	torn, unused, worst := scan.sealing()
	c.note("diskfull: after freeing space: %d of %d appends succeeded; the log holds %d records, %d torn tails recorded (partial writes the next append ended and recorded), %d sealing keys sealed no record, at most %d in a row (verify accepts none)",
		afterOK, after, len(scan.all), torn, unused, worst)
	if verr != nil {
		c.note("diskfull: verify after freeing space FAILED: %s", oneLine(verr.Error()))
	}
	return nil
}

// fill writes path until the file system is full and returns its size.
func fill(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	var size int64
	for {
		n, err := f.Write(buf)
		size += int64(n)
		if errors.Is(err, unix.ENOSPC) {
			return size, nil
		}
		if err != nil {
			return size, err
		}
	}
}

// mountTmpfs mounts a tmpfs of sizeKiB on dir (made if missing), private
// to root; cleanup unmounts it if unmount does not.
func (c *campaign) mountTmpfs(dir string, sizeKiB int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return errors.New("cleaning up")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, fmt.Sprintf("size=%dk,mode=0700", sizeKiB)); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	c.mounts = append(c.mounts, dir)
	return nil
}

// unmount unmounts a tmpfs of the campaign.
func (c *campaign) unmount(mnt string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.mounts {
		if m == mnt {
			if err := unix.Unmount(mnt, 0); err != nil {
				progress("umount %s: %v (cleanup tries again)", mnt, err)
				return
			}
			c.mounts = append(c.mounts[:i], c.mounts[i+1:]...)
			return
		}
	}
}

func readConfig(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(data, &m)
}
