package main

import (
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/rsyslogtest"
	"github.com/nsrel/nsrel/internal/vocab"
)

// BenchmarkStages runs the three hook stages in-process for one new
// container per iteration, against the test process: config load, state
// decode, inspection, policy, search for the earlier record, locked and
// fdatasync'ed append. It leaves out process start-up; see
// BenchmarkHookBinary and bench/hook/run.sh for the whole binary.
func BenchmarkStages(b *testing.B) {
	e := newEnv(b, "hook.json", nil)
	i := 0
	for b.Loop() {
		i++
		id := fmt.Sprintf("bench-%d", i)
		for _, stage := range []string{"createRuntime", "poststart", "poststop"} {
			if code := mainWith([]string{"--config", e.config, stage}, strings.NewReader(selfState(id)), nil, os.Stderr, false); code != 0 {
				b.Fatalf("%s: exit %d", stage, code)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/3, "ns/stage")
}

// BenchmarkHookBinary runs the built nsrel-hook at createRuntime as the
// runtime would, against a process in its own user and PID namespaces
// (the test process itself when not root), and reports the median and
// 90th percentile wall time per run. maxrss-upper-KiB is an upper bound of
// the hook's peak RSS only: the kernel charges the child the parent's
// memory until exec (Go starts children with vfork); bench/hook/run.sh
// measures the real figure with GNU time. With -bench-bin it also times
// that binary, alternating with this tree's in every iteration (metrics
// with a "-base" suffix), so that other load affects both alike.
func BenchmarkHookBinary(b *testing.B) {
	nstest.Require(b, hookBin != "", "nsrel-hook was not built")
	bins := map[string]string{"": hookBin}
	if *benchBin != "" {
		bins["-base"] = *benchBin
	}
	// Each binary writes a log of its own: an older nsrel may not read
	// what a newer one writes.
	configs := map[string]string{}
	for suffix := range bins {
		dir := b.TempDir()
		cfg := fmt.Sprintf(`{"version":1,"audit_log":%q,"default":{"mode":"audit","rules":{"require_user_namespace":true,"pid_owned_by_container_user_namespace":true}}}`, dir+"/audit.jsonl")
		if err := os.WriteFile(dir+"/hook.json", []byte(cfg), 0o600); err != nil {
			b.Fatal(err)
		}
		if _, err := policy.Load(dir + "/hook.json"); err != nil {
			b.Fatal(err)
		}
		configs[suffix] = dir + "/hook.json"
	}
	pid := os.Getpid()
	if os.Geteuid() == 0 {
		pid = nstest.PIDChain(b, 1).Pid
	}
	state := strings.Replace(selfState("bench-bin"), fmt.Sprintf(`"pid":%d`, os.Getpid()), fmt.Sprintf(`"pid":%d`, pid), 1)
	var maxRSS int64
	times := map[string][]time.Duration{}
	stages := []string{"createRuntime"}
	if *allStages {
		stages = vocab.HookStages
	}
	i := 0
	for b.Loop() {
		for suffix, bin := range bins {
			i++
			st := strings.Replace(state, `"bench-bin"`, fmt.Sprintf(`"bench-bin-%d"`, i), 1)
			for _, stage := range stages {
				cmd := exec.Command(bin, "--config", configs[suffix], stage)
				cmd.Stdin = strings.NewReader(st)
				start := time.Now()
				out, err := cmd.CombinedOutput()
				times[stage+suffix] = append(times[stage+suffix], time.Since(start))
				if err != nil {
					b.Fatalf("%s %s: %v: %s", bin, stage, err, out)
				}
				if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && suffix == "" && int64(ru.Maxrss) > maxRSS {
					maxRSS = int64(ru.Maxrss)
				}
			}
		}
	}
	for suffix := range bins {
		for _, stage := range stages {
			t := times[stage+suffix]
			slices.Sort(t)
			unit := suffix + "-ms"
			if *allStages {
				unit = "-" + stage + suffix + "-ms"
			}
			b.ReportMetric(float64(t[len(t)/2].Microseconds())/1000, "median"+unit)
			b.ReportMetric(float64(t[len(t)*9/10].Microseconds())/1000, "p90"+unit)
		}
	}
	b.ReportMetric(float64(maxRSS), "maxrss-upper-KiB")
}

// BenchmarkHookPhases times the phases of a cold hook process at
// createRuntime, with sealing on (`audit seal-init`) and the shipped
// config otherwise: it builds nsrel-hook once per phase with the
// link-time stopAfter set (the process exits 0 right after that phase),
// runs the variants in a new random order each iteration (one run each,
// against a process in its own user and PID namespaces) and reports each
// variant's median and 10th percentile. The difference between
// neighbours is a phase's cost: start (Go runtime and package
// initialisation, the flag parse), config (load, parse, diagnostics log),
// state (decode, audit.Open), inspect (one inspect.Process), run
// (inspection, policy, lock, search, sealed append with fdatasync,
// checkpoint state) and the whole stage ("all", with the diagnostics line
// and exit). In the same rounds it runs the floors of issue 14: an empty
// Go program (go-noop, bench/noop) and bench/hook/floorhook (the least a
// Go hook can do and still append a durable, chained record of both
// namespace chains), each with the same state on stdin, and floorhook
// without its argument (floorhook-start: it stops once started);
// docs/BENCHMARKS.md sets the phases against them. With -bench-bin the
// other binary's whole stage runs in the same rounds too ("base", with a
// log, config and sealing state of its own), for a before/after
// comparison.
//
//	go test -run '^$' -bench HookPhases -benchtime 400x ./cmd/nsrel-hook/
func BenchmarkHookPhases(b *testing.B) {
	dir := b.TempDir()
	phases := []string{"start", "config", "state", "inspect", "run", "all"}
	bins := map[string]string{}
	// Each binary written the same way (nstest.Build): how the linker
	// wrote a file changes its start-up by more than a phase costs.
	build := func(name, pkg string, flags ...string) {
		bins[name] = filepath.Join(dir, name)
		if err := nstest.Build(bins[name], pkg, flags...); err != nil {
			b.Fatal(err)
		}
	}
	for _, p := range phases {
		var args []string
		if p != "all" {
			args = []string{"-ldflags", "-X main.stopAfter=" + p}
		}
		build(p, "github.com/nsrel/nsrel/cmd/nsrel-hook", args...)
	}
	bins["go-noop"] = nstest.GoNoop(b)
	build("floorhook", "github.com/nsrel/nsrel/bench/hook/floorhook")
	e := newEnv(b, "hook.json", nil)
	if out, err := exec.Command(bins["all"], "--config", e.config, "audit", "seal-init").CombinedOutput(); err != nil {
		b.Fatalf("seal-init: %v: %s", err, out)
	}
	// floorhook-start: floorhook without its argument, which stops with a
	// usage line once Go has started it (its start phase).
	bins["floorhook-start"] = bins["floorhook"]
	argv := map[string][]string{"go-noop": nil, "floorhook": {filepath.Join(e.dir, "floor.jsonl")}, "floorhook-start": {}}
	for _, p := range phases {
		argv[p] = []string{"--config", e.config, "createRuntime"}
	}
	if *benchBin != "" {
		// A copy written as the others are.
		bins["base"] = filepath.Join(dir, "base")
		data, err := os.ReadFile(*benchBin)
		if err == nil {
			err = nstest.WriteExecutable(bins["base"], data, 0o755)
		}
		if err == nil {
			err = os.Chmod(bins["base"], 0o755)
		}
		if err != nil {
			b.Fatal(err)
		}
		be := newEnv(b, "hook.json", nil)
		if out, err := exec.Command(bins["base"], "--config", be.config, "audit", "seal-init").CombinedOutput(); err != nil {
			b.Fatalf("base seal-init: %v: %s", err, out)
		}
		argv["base"] = []string{"--config", be.config, "createRuntime"}
	}
	pid := os.Getpid()
	if os.Geteuid() == 0 {
		pid = nstest.PIDChain(b, 1).Pid
	}
	state := strings.Replace(selfState("phase"), fmt.Sprintf(`"pid":%d`, os.Getpid()), fmt.Sprintf(`"pid":%d`, pid), 1)
	names := slices.Sorted(maps.Keys(argv))
	times := map[string][]time.Duration{}
	i := 0
	for b.Loop() {
		rand.Shuffle(len(names), func(x, y int) { names[x], names[y] = names[y], names[x] })
		for _, name := range names {
			i++
			cmd := exec.Command(bins[name], argv[name]...)
			cmd.Stdin = strings.NewReader(strings.Replace(state, `"phase"`, fmt.Sprintf(`"phase-%d"`, i), 1))
			start := time.Now()
			out, err := cmd.CombinedOutput()
			times[name] = append(times[name], time.Since(start))
			if name == "floorhook-start" {
				if cmd.ProcessState.ExitCode() != 2 {
					b.Fatalf("%s: %v: %s; want exit 2 and the usage line", name, err, out)
				}
			} else if err != nil || len(out) > 0 {
				b.Fatalf("%s: %v: %s", name, err, out)
			}
		}
	}
	for name, t := range times {
		slices.Sort(t)
		b.ReportMetric(float64(t[len(t)/2].Microseconds())/1000, "median-"+name+"-ms")
		b.ReportMetric(float64(t[len(t)/10].Microseconds())/1000, "p10-"+name+"-ms")
	}
}

// allStages makes BenchmarkHookBinary time every stage, one new container
// per iteration: go test -bench HookBinary ./hook -args -bench-all-stages
var allStages = flag.Bool("bench-all-stages", false, "BenchmarkHookBinary: time createRuntime, poststart and poststop")

// benchBin makes BenchmarkHookBinary and BenchmarkHookPhases also time
// another nsrel-hook binary (an older build, for a before/after
// comparison; bench/hook/run.sh BASELINE).
var benchBin = flag.String("bench-bin", "", "BenchmarkHookBinary and BenchmarkHookPhases: another nsrel-hook binary to time in the same rounds as the one built from this tree")

// BenchmarkSealing runs the built nsrel-hook at the three stages with
// two configs alternately, in random order each iteration: one without
// sealing and one with (seal_state set up by `audit seal-init`), against
// a process in its own user and PID namespaces, and reports each one's
// median and 90th percentile per stage. The difference is what sealing
// costs a stage: one HMAC and a write of the state's block, not waited
// for (docs/BENCHMARKS.md).
//
//	go test -run '^$' -bench BenchmarkSealing -benchtime 300x ./cmd/nsrel-hook/
func BenchmarkSealing(b *testing.B) {
	nstest.RequireRoot(b)
	nstest.Require(b, hookBin != "", "nsrel-hook was not built")
	configs := map[string]string{}
	for _, name := range []string{"plain", "sealed"} {
		dir := b.TempDir()
		seal := ""
		if name == "sealed" {
			seal = fmt.Sprintf(`"seal_state":%q,`, dir+"/audit.seal")
		}
		cfg := fmt.Sprintf(`{"version":1,"audit_log":%q,%s"default":{"mode":"audit","rules":{"user_depth_min":2}}}`, dir+"/audit.jsonl", seal)
		if err := os.WriteFile(dir+"/hook.json", []byte(cfg), 0o600); err != nil {
			b.Fatal(err)
		}
		if name == "sealed" {
			if out, err := exec.Command(hookBin, "--config", dir+"/hook.json", "audit", "seal-init").CombinedOutput(); err != nil {
				b.Fatalf("seal-init: %v: %s", err, out)
			}
		}
		configs[name] = dir + "/hook.json"
	}
	runAlternately(b, configs, "seal-bench")
	for _, name := range []string{"plain", "sealed"} {
		if _, err := audit.Verify([]string{strings.TrimSuffix(configs[name], "hook.json") + "audit.jsonl"}, audit.VerifyOptions{}); err != nil {
			b.Errorf("%s log: %v", name, err)
		}
	}
}

// runAlternately runs the built nsrel-hook at the three stages with each
// of configs (by name), in random order each iteration, against a
// process in its own user and PID namespaces, one new container ID per
// run, and reports each config's median and 90th percentile per stage.
func runAlternately(b *testing.B, configs map[string]string, id string) {
	b.Helper()
	pid := nstest.PIDChain(b, 1).Pid
	state := strings.Replace(selfState(id), fmt.Sprintf(`"pid":%d`, os.Getpid()), fmt.Sprintf(`"pid":%d`, pid), 1)
	times := map[string][]time.Duration{}
	names := slices.Sorted(maps.Keys(configs))
	order := slices.Clone(names)
	i := 0
	for b.Loop() {
		rand.Shuffle(len(order), func(x, y int) { order[x], order[y] = order[y], order[x] })
		for _, name := range order {
			i++
			st := strings.Replace(state, `"`+id+`"`, fmt.Sprintf(`"%s-%d"`, id, i), 1)
			for _, stage := range vocab.HookStages {
				cmd := exec.Command(hookBin, "--config", configs[name], stage)
				cmd.Stdin = strings.NewReader(st)
				start := time.Now()
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%s %s: %v: %s", name, stage, err, out)
				}
				times[name] = append(times[name], time.Since(start))
			}
		}
	}
	for _, name := range names {
		nstest.ReportQuantiles(b, name, times[name], time.Millisecond, "ms")
	}
}

// BenchmarkLogTarget runs the built nsrel-hook at the three stages with
// log_file set to a file, to a private rsyslogd's local socket (syslog)
// and to a datagram socket this benchmark reads in journald's place
// (journald does not run here), alternately, and reports each one's
// median and 90th percentile per stage: what sending diagnostics costs
// a stage (every stage logs one entry: the container, one user namespace
// deep, breaks user_depth_min 2 in audit mode).
//
//	go test -run '^$' -bench BenchmarkLogTarget -benchtime 300x ./cmd/nsrel-hook/
func BenchmarkLogTarget(b *testing.B) {
	nstest.RequireRoot(b)
	nstest.Require(b, hookBin != "", "nsrel-hook was not built")
	_, sock, _, _ := rsyslogtest.Diagnostics(b)
	journal, _ := rsyslogtest.JournalSocket(b)
	configs := map[string]string{}
	for name, target := range map[string]string{"file": "", "syslog": "unix://" + sock, "journald": "journald://" + journal} {
		dir := b.TempDir()
		if target == "" {
			target = dir + "/hook.log"
		}
		cfg := fmt.Sprintf(`{"version":1,"audit_log":%q,"log_file":%q,"syslog":"","default":{"mode":"audit","rules":{"require_user_namespace":true}}}`, dir+"/audit.jsonl", target)
		if err := os.WriteFile(dir+"/hook.json", []byte(cfg), 0o600); err != nil {
			b.Fatal(err)
		}
		configs[name] = dir + "/hook.json"
	}
	runAlternately(b, configs, "log-bench")
}
