package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

func main() {
	hook := flag.String("hook", "", "nsrel-hook binary")
	config := flag.String("config", "", "its config (audit_log: the large log)")
	pid := flag.Int("pid", 0, "a live process the state names")
	rounds := flag.Int("rounds", 10, "rounds")
	block := flag.Int("block", 10, "hook runs per block")
	flag.Parse()
	if *hook == "" || *config == "" || *pid <= 0 {
		fmt.Fprintln(os.Stderr, "usage: latency -hook BIN -config FILE -pid PID [-rounds N] [-block N]")
		os.Exit(2)
	}
	times := map[bool][]time.Duration{}
	var verifies []time.Duration
	n := 0
	runHook := func() time.Duration {
		n++
		cmd := exec.Command(*hook, "--config", *config, "createRuntime")
		cmd.Stdin = strings.NewReader(fmt.Sprintf(`{"ociVersion":"1.0.2","id":"lat-%d","status":"creating","pid":%d,"bundle":"/b"}`, n, *pid))
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "hook: %v: %s\n", err, out)
			os.Exit(1)
		}
		return time.Since(start)
	}
	for r := 0; r < *rounds; r++ {
		order := []bool{false, true}
		rand.Shuffle(2, func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, reading := range order {
			var v *exec.Cmd
			var vstart time.Time
			done := make(chan error, 1)
			if reading {
				v = exec.Command(*hook, "--config", *config, "audit", "verify")
				vstart = time.Now()
				if err := v.Start(); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				go func() { done <- v.Wait() }()
				time.Sleep(200 * time.Millisecond) // let it take its snapshot and read
			}
			for range *block {
				times[reading] = append(times[reading], runHook())
			}
			if reading {
				<-done // the appends were made while it read
				verifies = append(verifies, time.Since(vstart))
			}
		}
	}
	for _, reading := range []bool{false, true} {
		t := times[reading]
		slices.Sort(t)
		name := "appends alone"
		if reading {
			name = "appends during audit verify"
		}
		fmt.Printf("%-30s n=%d median %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n", name, len(t), ms(t[len(t)/2]), ms(t[len(t)*9/10]), ms(t[len(t)*99/100]), ms(t[len(t)-1]))
	}
	slices.Sort(verifies)
	fmt.Printf("%-30s n=%d median %.2f s\n", "audit verify of the log", len(verifies), verifies[len(verifies)/2].Seconds())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
