package runtimes

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsrel/nsrel/internal/nstest"
)

// TestMain removes the commands the benchmarks built (nstest.Tool).
func TestMain(m *testing.M) { nstest.Main(m) }

// variant is one way of running the lifecycle under test.
type variant struct {
	// name is the variant's row in the table, key its name in the
	// benchmark metrics.
	name, key string
	// base is the index of the variant this one is compared with (the
	// same lifecycle without nsrel).
	base int
	// target is the most the variant may cost as a ratio to its base
	// (0: no target).
	target float64
	run    func() error
}

// interrupted is cancelled on the first SIGINT or SIGTERM: the running
// benchmark reports the rounds it has and its cleanups take down every
// daemon, mount and directory; the benchmarks after it do not start.
var interrupted = sync.OnceValue(func() context.Context {
	ctx, _ := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return ctx
})

// begin skips the benchmark unless bench/runtimes/run.sh runs it (each
// takes minutes: not for `make bench`) or when a signal stopped an
// earlier one, and returns the context that a signal cancels.
func begin(b *testing.B) context.Context {
	if os.Getenv("NSREL_BENCH_RUNTIMES") != "1" {
		b.Skip("minutes long: run it through bench/runtimes/run.sh (NSREL_BENCH_RUNTIMES=1)")
	}
	ctx := interrupted()
	if ctx.Err() != nil {
		b.Skip("interrupted")
	}
	return ctx
}

// knob returns the positive integer in environment variable name, else def.
func knob(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// alternate runs the variants in NSREL_BENCH_ROUNDS rounds (default
// rounds), each round in a new random order, each variant as a block of
// one uncounted warm-up run (it absorbs what the previous variant left
// behind) and NSREL_BENCH_BLOCK timed runs (default 3). It returns per
// round the median of each variant's block, in the order of vs. It stops
// early, with the rounds done, when ctx is cancelled.
func alternate(ctx context.Context, b *testing.B, vs []variant, rounds int) [][]time.Duration {
	rounds = knob("NSREL_BENCH_ROUNDS", rounds)
	block := knob("NSREL_BENCH_BLOCK", 3)
	fmt.Fprintf(os.Stderr, "%s: %d rounds, blocks of 1 + %d runs per variant\n", b.Name(), rounds, block)
	order := make([]int, len(vs))
	for i := range order {
		order[i] = i
	}
	var out [][]time.Duration
	for r := 0; r < rounds; r++ {
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		row := make([]time.Duration, len(vs))
		for _, i := range order {
			times := make([]time.Duration, 0, block)
			for k := -1; k < block; k++ {
				start := time.Now()
				err := vs[i].run()
				if ctx.Err() != nil {
					return out
				}
				if err != nil {
					b.Fatalf("%s: %v", vs[i].name, err)
				}
				if k >= 0 {
					times = append(times, time.Since(start))
				}
			}
			row[i] = median(times)
		}
		out = append(out, row)
		fmt.Fprintf(os.Stderr, "%s: round %d/%d done, load average %s\n", b.Name(), r+1, rounds, loadavg())
	}
	return out
}

// report prints the table of a run (per variant the median over the
// rounds, the ratio of the medians and the median of the per-round
// ratios against the variant's base, and the target) and reports the
// same as benchmark metrics.
func report(b *testing.B, title string, vs []variant, rows [][]time.Duration) {
	if len(rows) == 0 {
		fmt.Printf("== %s: no complete round\n", title)
		return
	}
	fmt.Printf("== %s\n   %d rounds, load average at the end %s\n", title, len(rows), loadavg())
	fmt.Printf("  %-70s %10s %8s %8s  %s\n", "variant", "median ms", "ratio", "paired", "target")
	for i, v := range vs {
		m := median(column(rows, i))
		ratios := make([]float64, len(rows))
		for r, row := range rows {
			ratios[r] = float64(row[i]) / float64(row[v.base])
		}
		paired := median(ratios)
		ratio := float64(m) / float64(median(column(rows, v.base)))
		target := ""
		if v.target > 0 {
			verdict := "met"
			if ratio > v.target || paired > v.target {
				verdict = "NOT met"
			}
			target = fmt.Sprintf("<= %.2f %s", v.target, verdict)
		}
		fmt.Printf("  %-70s %10.2f %8.3f %8.3f  %s\n", v.name, ms(m), ratio, paired, target)
		b.ReportMetric(ms(m), "ms-"+v.key)
		if i != v.base {
			b.ReportMetric(ratio, "ratio-"+v.key)
			b.ReportMetric(paired, "paired-"+v.key)
		}
	}
}

func column(rows [][]time.Duration, i int) []time.Duration {
	c := make([]time.Duration, len(rows))
	for r, row := range rows {
		c[r] = row[i]
	}
	return c
}

// median returns the median of v (the mean of the middle two for an
// even count); v is left unchanged.
func median[T time.Duration | float64](v []T) T {
	s := slices.Sorted(slices.Values(v))
	return (s[(len(s)-1)/2] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// loadavg returns the 1, 5 and 15 minute load averages.
func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}
