package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
)

// order is the row order; lsns maps the tools to the command they are
// compared with.
var (
	order = []string{"lsuserns", "lsuserns --no-other-types", "lspidns", "lsuserns (with container lookup)",
		"lsns --tree=owner -t user", "lsns --tree=parent -t pid", "floor"}
	lsns = map[string]string{"lsuserns": "lsns --tree=owner -t user", "lsuserns --no-other-types": "lsns --tree=owner -t user",
		"lspidns": "lsns --tree=parent -t pid", "lsuserns (with container lookup)": "lsns --tree=owner -t user"}
)

type export struct {
	Results []struct {
		Command   string    `json:"command"`
		Times     []float64 `json:"times"`
		ExitCodes []int     `json:"exit_codes"`
		// User and System are the means of the run's user and system
		// CPU times.
		User   float64 `json:"user"`
		System float64 `json:"system"`
	} `json:"results"`
}

func main() {
	procs := flag.Int("procs", 0, "number of processes")
	userns := flag.Int("userns", 0, "number of user namespaces (lines of lsuserns)")
	pidns := flag.Int("pidns", 0, "number of PID namespaces (lines of lspidns)")
	rssUser := flag.Int("rss-user", 0, "peak RSS of lsuserns in KiB")
	rssPID := flag.Int("rss-pid", 0, "peak RSS of lspidns in KiB")
	rssLsns := flag.Int("rss-lsns", 0, "peak RSS of lsns in KiB")
	flag.Parse()

	times := map[string][]float64{}
	cpu := map[string][]float64{} // user + system, per run, weighted by its runs
	failed := map[string]int{}
	for _, path := range flag.Args() {
		b, err := os.ReadFile(path)
		if err != nil {
			fail(err)
		}
		var e export
		if err := json.Unmarshal(b, &e); err != nil {
			fail(fmt.Errorf("%s: %w", path, err))
		}
		for _, r := range e.Results {
			times[r.Command] = append(times[r.Command], r.Times...)
			for range r.Times {
				cpu[r.Command] = append(cpu[r.Command], r.User+r.System)
			}
			for _, c := range r.ExitCodes {
				if c != 0 {
					failed[r.Command]++
				}
			}
		}
	}
	med := map[string]float64{}
	for k, v := range times {
		med[k] = median(v) * 1000
	}
	floor := med["floor"]
	if floor == 0 {
		fail(fmt.Errorf("no floor measurements"))
	}
	fmt.Printf("\n## %d processes, %d user namespaces, %d PID namespaces\n\n", *procs, *userns, *pidns)
	// CPU is the mean of user + system time: what the command costs the
	// machine, which lsns spends on one CPU and the tools on several.
	fmt.Println("| command | median ms | mean ± σ ms | CPU ms | × floor | vs lsns | CPU vs lsns |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, k := range order {
		v, ok := times[k]
		if !ok {
			continue
		}
		mean, sd := meanSD(v)
		c, _ := meanSD(cpu[k])
		vs, cvs := "", ""
		if o, ok := lsns[k]; ok && med[o] > 0 {
			co, _ := meanSD(cpu[o])
			vs = fmt.Sprintf("%.2f×", med[k]/med[o])
			cvs = fmt.Sprintf("%.2f×", c/co)
		}
		fmt.Printf("| %s | %.1f | %.1f ± %.1f | %.1f | %.2f | %s | %s |\n", k, med[k], mean*1000, sd*1000, c*1000, med[k]/floor, vs, cvs)
	}
	for _, k := range order {
		if n := failed[k]; n > 0 {
			fmt.Printf("\nwarning: %s exited non-zero in %d of %d runs\n", k, n, len(times[k]))
		}
	}
	fmt.Printf("\npeak RSS: lsuserns %.1f MiB, lspidns %.1f MiB, lsns %.1f MiB\n",
		float64(*rssUser)/1024, float64(*rssPID)/1024, float64(*rssLsns)/1024)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func meanSD(v []float64) (mean, sd float64) {
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for _, x := range v {
		sd += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sd / float64(len(v)))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "summary:", err)
	os.Exit(1)
}
