package hook_test

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsrel/nsrel/hook"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/nstest"
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
			if code := hook.Main([]string{"--config", e.config, stage}, strings.NewReader(selfState(id)), nil, os.Stderr); code != 0 {
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
	dir := b.TempDir()
	cfg := fmt.Sprintf(`{"version":1,"audit_log":%q,"default":{"mode":"audit","rules":{"require_user_namespace":true,"pid_owned_by_container_user_namespace":true}}}`, dir+"/audit.jsonl")
	if err := os.WriteFile(dir+"/hook.json", []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	if _, err := policy.Load(dir + "/hook.json"); err != nil {
		b.Fatal(err)
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
		stages = hook.Stages
	}
	i := 0
	for b.Loop() {
		for suffix, bin := range bins {
			i++
			st := strings.Replace(state, `"bench-bin"`, fmt.Sprintf(`"bench-bin-%d"`, i), 1)
			for _, stage := range stages {
				cmd := exec.Command(bin, "--config", dir+"/hook.json", stage)
				cmd.Stdin = strings.NewReader(st)
				start := time.Now()
				out, err := cmd.CombinedOutput()
				times[stage+suffix] = append(times[stage+suffix], time.Since(start))
				if err != nil {
					b.Fatalf("%s %s: %v: %s", bin, stage, err, out)
				}
				if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && suffix == "" && ru.Maxrss > maxRSS {
					maxRSS = ru.Maxrss
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

// allStages makes BenchmarkHookBinary time every stage, one new container
// per iteration: go test -bench HookBinary ./hook -args -bench-all-stages
var allStages = flag.Bool("bench-all-stages", false, "BenchmarkHookBinary: time createRuntime, poststart and poststop")

// benchBin makes BenchmarkHookBinary also time another nsrel-hook binary
// (an older build, for a before/after comparison; bench/hook/run.sh
// BASELINE).
var benchBin = flag.String("bench-bin", "", "BenchmarkHookBinary: another nsrel-hook binary to time alternately with the one built from this tree")
