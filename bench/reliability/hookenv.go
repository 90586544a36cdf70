package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
)

// hookEnv is a config for nsrel-hook made from the shipped
// config/hook.json, its paths moved into a directory of the campaign,
// with sealing set up by `nsrel-hook audit seal-init`.
type hookEnv struct {
	c      *campaign
	dir    string
	config string
	log    string
	cps    string // the checkpoints file
	key    string // the file holding the verification key
}

// newHookEnv writes the config into dir/hook.json: audit log, sealing
// state and diagnostics in dir (the log and state in logDir when it is
// set), checkpoints to dir/checkpoints.jsonl and to no syslog, no syslog
// for unrecorded runs; edit, if set, changes the decoded JSON before it
// is written. It runs seal-init and keeps the key in dir/verify.key.
func (c *campaign) newHookEnv(name, logDir string, edit func(map[string]any)) (*hookEnv, error) {
	dir := filepath.Join(c.tmp, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if logDir == "" {
		logDir = dir
	}
	e := &hookEnv{c: c, dir: dir, config: filepath.Join(dir, "hook.json"), log: filepath.Join(logDir, "audit.jsonl"),
		cps: filepath.Join(dir, "checkpoints.jsonl"), key: filepath.Join(dir, "verify.key")}
	m, err := c.shippedConfig()
	if err != nil {
		return nil, err
	}
	m["audit_log"] = e.log
	m["log_file"] = filepath.Join(dir, "hook.log")
	m["seal_state"] = filepath.Join(logDir, "audit.seal")
	m["syslog"] = ""
	cp, ok := m["checkpoints"].(map[string]any)
	if !ok {
		return nil, errors.New("config/hook.json has no checkpoints")
	}
	cp["file"] = e.cps
	cp["syslog"] = []any{}
	if edit != nil {
		edit(m)
	}
	if err := writeConfig(e.config, m); err != nil {
		return nil, err
	}
	out, err := exec.Command(c.bin, "--config", e.config, "audit", "seal-init").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("audit seal-init: %v: %s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "nsrel-seal-v1:") {
			if err := os.WriteFile(e.key, []byte(l+"\n"), 0o600); err != nil {
				return nil, err
			}
			return e, nil
		}
	}
	return nil, fmt.Errorf("audit seal-init printed no key: %s", out)
}

// shippedConfig reads config/hook.json.
func (c *campaign) shippedConfig() (map[string]any, error) {
	data, err := os.ReadFile(filepath.Join(c.root, "config", "hook.json"))
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("config/hook.json: %w", err)
	}
	return m, nil
}

func writeConfig(path string, m map[string]any) error {
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o644)
}

// state returns an OCI state for container id naming the campaign's
// sleep process.
func (c *campaign) state(id string) []byte {
	b, _ := json.Marshal(map[string]any{"ociVersion": "1.0.2", "id": id, "status": "creating", "pid": c.sleep.Process.Pid,
		"bundle": "/run/containers/" + id, "annotations": map[string]string{"io.kubernetes.pod.name": id, "io.kubernetes.pod.namespace": "reliability"}})
	return b
}

// hookRun is one nsrel-hook process.
type hookRun struct {
	id     string
	cmd    *exec.Cmd
	stderr bytes.Buffer
	start  time.Time
	wall   time.Duration
	code   int // exit status; -1 when killed by a signal
	killed bool
	err    error // the run could not be started or waited for
	held   *os.File
}

// startHook starts `nsrel-hook --config CONFIG createRuntime` with state
// on stdin (a pipe the state is written to and closed, unless hold is
// set: then the pipe stays open until the run ends).
func (c *campaign) startHook(config, id string, state []byte, hold bool) (*hookRun, error) {
	r := &hookRun{id: id}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	r.cmd = exec.Command(c.bin, "--config", config, "createRuntime")
	r.cmd.Stdin = pr
	r.cmd.Stderr = &r.stderr
	small := len(state) <= 32<<10 // fits the pipe: written before the start
	if small {
		if _, err := pw.Write(state); err != nil {
			pr.Close()
			pw.Close()
			return nil, err
		}
		if !hold {
			pw.Close()
		}
	}
	r.start = time.Now()
	if err := c.startTracked(r.cmd); err != nil {
		pr.Close()
		pw.Close()
		return nil, err
	}
	pr.Close()
	if hold {
		r.held = pw // closed by wait, after the run ends
	}
	if !small {
		go func() {
			pw.Write(state) // EPIPE once the hook stops reading: fine
			if !hold {
				pw.Close()
			}
		}()
	}
	return r, nil
}

// wait waits for the run and fills its outcome.
func (r *hookRun) wait(c *campaign) {
	err := r.cmd.Wait()
	r.wall = time.Since(r.start)
	if r.held != nil {
		r.held.Close()
	}
	c.untrack(r.cmd.Process)
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(interface{ Signaled() bool }); ok && ws.Signaled() {
			r.killed = true
		}
	default:
		r.err = err
		r.code = -1
	}
}

// runHook runs one hook to its end.
func (c *campaign) runHook(config, id string, state []byte) *hookRun {
	r, err := c.startHook(config, id, state, false)
	if err != nil {
		return &hookRun{id: id, err: err, code: -1}
	}
	r.wait(c)
	return r
}

// lines returns the run's stderr lines.
func (r *hookRun) lines() []string {
	s := strings.TrimSuffix(r.stderr.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// acknowledged reports whether the run exited 0 without a word: its
// container was recorded.
func (r *hookRun) acknowledged() bool {
	return r.err == nil && !r.killed && r.code == 0 && r.stderr.Len() == 0
}

// logScan is what the env's log holds.
type logScan struct {
	byID map[string][]*audit.Record
	all  []*audit.Record
	// bad counts lines that are no record (torn, damaged).
	bad int
}

// scan reads the records of the env's log, in chain order.
func (e *hookEnv) scan() (*logScan, error) {
	files, err := audit.Files(e.log)
	if err != nil {
		return nil, err
	}
	s := &logScan{byID: map[string][]*audit.Record{}}
	for _, f := range files {
		for l, err := range audit.Lines(f) {
			if err != nil {
				return nil, err
			}
			r, derr := audit.Decode(l.Data)
			if l.Torn || derr != nil {
				s.bad++
				continue
			}
			s.byID[r.ContainerID] = append(s.byID[r.ContainerID], r)
			s.all = append(s.all, r)
		}
	}
	return s, nil
}

// records returns the records of the env's log by container ID, and the
// number of lines that are no record.
func (e *hookEnv) records() (map[string][]*audit.Record, int, error) {
	s, err := e.scan()
	if err != nil {
		return nil, 0, err
	}
	return s.byID, s.bad, nil
}

// sealing counts what the chain's records say of crashes: torn-tail
// records, sealing keys that sealed no record (in all, and the most in
// a row: verify accepts none, a key is destroyed only after its record
// is on the disk).
func (s *logScan) sealing() (torn int, unused, worst uint64) {
	var last audit.ParsedSeal
	have := false
	for _, r := range s.all {
		if r.Stage == audit.StageTornTail {
			torn++
		}
		p, err := audit.ParseSeal(r.Seal)
		if err != nil {
			continue
		}
		if have && p.ID == last.ID && p.Epoch > last.Epoch+1 {
			gap := p.Epoch - last.Epoch - 1
			unused += gap
			worst = max(worst, gap)
		}
		last, have = p, true
	}
	return torn, unused, worst
}

// verify runs `nsrel-hook audit verify --key @KEY [--checkpoints FILE]`
// on the env's log (the checkpoints when any were shipped), and returns
// nil or what it said.
func (e *hookEnv) verify() error {
	args := []string{"--config", e.config, "audit", "verify", "--key", "@" + e.key}
	if st, err := os.Stat(e.cps); err == nil && st.Size() > 0 {
		args = append(args, "--checkpoints", e.cps)
	}
	args = append(args, e.log)
	cmd := exec.Command(e.c.bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("audit verify: %v: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}
