package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/vocab"
)

// badInput is class 7: one createRuntime run per kind of hostile or
// broken input. Each must leave exactly one record, for its container,
// that says what was wrong (Error), with one line on stderr and the exit
// status on_error (allow, as shipped) gives; a config that does not load
// refuses at createRuntime (exit 1) and is recorded in the log it names.
func (c *campaign) badInput() error {
	e, err := c.newHookEnv("badinput", "", nil)
	if err != nil {
		return err
	}
	pid := c.sleep.Process.Pid
	// States as a runtime writes them (specs.State: ociVersion, id,
	// status, pid, bundle, annotations, in that order).
	state := func(id string, edit func(*specs.State)) []byte {
		st := &specs.State{Version: "1.0.2", ID: id, Status: specs.StateCreating, Pid: pid, Bundle: "/run/containers/" + id}
		if edit != nil {
			edit(st)
		}
		b, _ := json.Marshal(st)
		return b
	}
	// A process that ran and was reaped: its PID names nothing now.
	gone := exec.Command(c.sleep.Path, "0")
	if err := gone.Run(); err != nil {
		return err
	}
	// A config that does not load, naming the same log and sealing state.
	m, err := readConfig(e.config)
	if err != nil {
		return err
	}
	m["on_error"] = "sometimes"
	badConfig := filepath.Join(e.dir, "hook-broken.json")
	if err := writeConfig(badConfig, m); err != nil {
		return err
	}
	long := func(prefix string, n int) string { return prefix + strings.Repeat("x", n-len(prefix)) }
	cases := []struct {
		name, id string
		state    []byte
		hold     bool
		config   string
		exit     int
	}{
		{name: fmt.Sprintf("annotation value of %d bytes", hook.MaxAnnotationValue+1), id: "bad-annotation",
			state: state("bad-annotation", func(st *specs.State) {
				st.Annotations = map[string]string{"io.kubernetes.pod.name": "big", "big": strings.Repeat("v", hook.MaxAnnotationValue+1)}
			})},
		{name: fmt.Sprintf("%d annotations", hook.MaxAnnotations+1), id: "bad-annotations",
			state: state("bad-annotations", func(st *specs.State) {
				st.Annotations = map[string]string{}
				for i := range hook.MaxAnnotations + 1 {
					st.Annotations[fmt.Sprintf("a%d", i)] = "v"
				}
			})},
		{name: fmt.Sprintf("state of %d bytes (> %d)", vocab.MaxStateSize+4096, vocab.MaxStateSize), id: "bad-huge",
			state: state("bad-huge", func(st *specs.State) {
				st.Annotations = map[string]string{"filler": strings.Repeat("f", vocab.MaxStateSize+4096)}
			})},
		{name: fmt.Sprintf("bundle of %d bytes", hook.MaxBundleLen+1), id: "bad-bundle",
			state: state("bad-bundle", func(st *specs.State) { st.Bundle = long("/", hook.MaxBundleLen+1) })},
		{name: fmt.Sprintf("ID of %d bytes", hook.MaxIDLen+1), id: long("bad-id-", hook.MaxIDLen+1)},
		{name: "invalid JSON (cut short)", id: "bad-json", state: []byte(fmt.Sprintf(`{"ociVersion":"1.0.2","id":"bad-json","pid":%d,"bundle":`, pid))},
		{name: "trailing data after the object", id: "bad-trailing", state: append(state("bad-trailing", nil), []byte("\ntrailing garbage")...)},
		{name: fmt.Sprintf("pid %d (out of range)", vocab.PIDLimit), id: "bad-pid", state: state("bad-pid", func(st *specs.State) { st.Pid = vocab.PIDLimit })},
		{name: "stdin held open past the deadline", id: "bad-stdin", state: state("bad-stdin", nil), hold: true},
		{name: "vanished process (reaped)", id: "bad-gone", state: state("bad-gone", func(st *specs.State) { st.Pid = gone.Process.Pid })},
		{name: "config that does not load (on_error \"sometimes\"), log known", id: "bad-config", state: state("bad-config", nil), config: badConfig, exit: 1},
	}
	cases[4].state = state(cases[4].id, nil)

	count := func() (int, map[string][]*audit.Record, error) {
		recs, _, err := e.records()
		n := 0
		for _, rs := range recs {
			n += len(rs)
		}
		return n, recs, err
	}
	ok, lost := 0, 0
	for _, tc := range cases {
		before, _, err := count()
		if err != nil {
			return err
		}
		cfg := e.config
		if tc.config != "" {
			cfg = tc.config
		}
		r, err := c.startHook(cfg, tc.id, tc.state, tc.hold)
		if err != nil {
			return err
		}
		r.wait(c)
		after, recs, err := count()
		if err != nil {
			return err
		}
		want := tc.id
		if len(want) > hook.MaxIDLen {
			want = vocab.Cut(want, hook.MaxIDLen)
		}
		mine := recs[want]
		var problems []string
		if after-before != 1 {
			problems = append(problems, fmt.Sprintf("%d records added", after-before))
		}
		if len(mine) != 1 || mine[0].Error == "" {
			problems = append(problems, fmt.Sprintf("%d records of the container", len(mine)))
			if len(mine) == 0 {
				lost++
			}
		} else if mine[0].Error == "" {
			problems = append(problems, "its record has no error")
		}
		if n := len(r.lines()); n != 1 {
			problems = append(problems, fmt.Sprintf("%d lines on stderr", n))
		}
		if r.code != tc.exit || r.killed || r.err != nil {
			problems = append(problems, fmt.Sprintf("exit %d, want %d", r.code, tc.exit))
		}
		what := "?"
		if len(mine) > 0 {
			what = oneLine(vocab.Cut(mine[0].Error, 160))
		}
		if len(problems) == 0 {
			ok++
			c.note("badinput: %s: one record (verdict %s, %.0f ms): %s", tc.name, mine[0].Verdict, ms(r.wall), what)
		} else {
			c.note("badinput: %s: FAILED: %s; stderr %q", tc.name, strings.Join(problems, ", "), oneLine(r.stderr.String()))
		}
	}
	c.add(row{class: "7 bad input", variant: "one run per kind (11 kinds)", cases: len(cases), caught: ok, missed: len(cases) - ok, lost: lost, repro: c.repro("badinput", false)})
	verr := e.verify()
	verified := 0
	if verr == nil {
		verified = 1
	} else {
		c.note("badinput: verify FAILED: %s", oneLine(verr.Error()))
	}
	c.add(row{class: "7 bad input", variant: "then `audit verify --key`", cases: 1, caught: verified, missed: 1 - verified, lost: 0, repro: c.repro("badinput", false)})
	return nil
}
