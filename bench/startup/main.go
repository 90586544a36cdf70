package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

var commands = [][]string{
	// An empty static Go program, the same binary in both builds: the
	// floor of any Go command's start-up, and its two columns show the
	// run's noise.
	{"go-noop"},
	{"lsuserns", "--help"},
	{"lsuserns", "--no-containers"},
	{"lspidns", "--no-containers"},
}

func main() {
	oldDir := flag.String("old", "", "directory with the baseline build's binaries")
	newDir := flag.String("new", "", "directory with the new build's binaries")
	rounds := flag.Int("rounds", 200, "counted rounds")
	flag.Parse()
	if *oldDir == "" || *newDir == "" || *rounds < 1 {
		fmt.Fprintln(os.Stderr, "usage: startup -old DIR -new DIR [-rounds N]")
		os.Exit(2)
	}
	type run struct {
		cmd   int
		build int // 0 old, 1 new
	}
	var runs []run
	for c := range commands {
		runs = append(runs, run{c, 0}, run{c, 1})
	}
	dirs := []string{*oldDir, *newDir}
	times := make([][2][]time.Duration, len(commands))
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for round := -1; round < *rounds; round++ {
		rand.Shuffle(len(runs), func(i, j int) { runs[i], runs[j] = runs[j], runs[i] })
		for _, r := range runs {
			args := commands[r.cmd]
			cmd := exec.Command(filepath.Join(dirs[r.build], args[0]), args[1:]...)
			cmd.Stdout, cmd.Stderr = devnull, devnull
			start := time.Now()
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "%s %v: %v\n", cmd.Path, args[1:], err)
				os.Exit(1)
			}
			if round >= 0 {
				times[r.cmd][r.build] = append(times[r.cmd][r.build], time.Since(start))
			}
		}
	}
	fmt.Printf("%-26s %28s %28s %8s %8s\n", "command", "old median (min..max) ms", "new median (min..max) ms", "ratio", "paired")
	for c, args := range commands {
		o, n := times[c][0], times[c][1]
		ratios := make([]float64, len(o))
		for i := range o {
			ratios[i] = float64(n[i]) / float64(o[i])
		}
		fmt.Printf("%-26s %28s %28s %8.3f %8.3f\n", fmt.Sprint(args), stats(o), stats(n),
			float64(median(n))/float64(median(o)), medianF(ratios))
	}
}

func stats(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("%.2f (%.2f..%.2f)", ms(median(s)), ms(s[0]), ms(s[len(s)-1]))
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianF(fs []float64) float64 {
	s := slices.Clone(fs)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
