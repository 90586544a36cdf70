package containerd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nsrel/nsrel/containers"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel/discover"
	"github.com/nsrel/nsrel/tree"
)

// BenchmarkTreeAnnotation measures what container annotation adds to
// lsuserns with NSREL_BENCH_CONTAINERS (default 50) running containers on
// a private daemon of each flavor: both runs of each round are timed in
// the same run, alternating, and the medians are reported as ms/run
// metrics (no-containers, containers, added). Run it through
// bench/containerd/run.sh.
func BenchmarkTreeAnnotation(b *testing.B) {
	n := 50
	if v, err := strconv.Atoi(os.Getenv("NSREL_BENCH_CONTAINERS")); err == nil && v > 0 {
		n = v
	}
	rounds := 31
	if v, err := strconv.Atoi(os.Getenv("NSREL_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	lsuserns := nstest.Tool(b, "lsuserns")
	for _, f := range ctrdtest.Flavors() {
		b.Run(f.Name, func(b *testing.B) {
			d := ctrdtest.Start(b, f, nil)
			c := d.Client(b)
			for i := range n {
				ns := []string{"default", "k8s.io", "moby"}[i%3]
				d.Run(b, c, ns, fmt.Sprintf("bench-%d-%d", os.Getpid(), i), nil)
			}
			env := append(os.Environ(), "NSREL_RUNTIME_ROOTS=runc="+d.RuncRoot+"/*")
			run := func(args ...string) time.Duration {
				cmd := exec.Command(lsuserns, append([]string{"--containerd-address", d.Socket}, args...)...)
				cmd.Env = env
				start := time.Now()
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("lsuserns %v: %v\n%s", args, err, out)
				}
				return time.Since(start)
			}
			// Check the containers are really annotated.
			out, err := exec.Command(lsuserns, "--containerd-address", d.Socket, "--json").Output()
			if err != nil {
				b.Fatal(err)
			}
			if got := countEngine(b, out); got < n {
				b.Fatalf("only %d of %d containers annotated", got, n)
			}
			for b.Loop() {
				var base, with []time.Duration
				run()
				run("--no-containers")
				for range rounds {
					base = append(base, run("--no-containers"))
					with = append(with, run())
				}
				mb, mw := median(base), median(with)
				b.ReportMetric(ms(mb), "ms-no-containers")
				b.ReportMetric(ms(mw), "ms-containers")
				b.ReportMetric(ms(mw-mb), "ms-added")
			}
		})
	}
}

// countEngine counts the containerd containers in lsuserns --json output.
func countEngine(b *testing.B, out []byte) int {
	var doc tree.Document
	if err := json.Unmarshal(out, &doc); err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, e := range doc.Namespaces {
		for _, c := range e.Containers {
			if c.Engine == containers.EngineContainerd {
				n++
			}
		}
	}
	return n
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkSources times each container source alone with 50 running
// containers on a private containerd 2.4.
func BenchmarkSources(b *testing.B) {
	d := ctrdtest.Start(b, ctrdtest.V2(), nil)
	c := d.Client(b)
	for i := range 50 {
		d.Run(b, c, []string{"default", "k8s.io", "moby"}[i%3], fmt.Sprintf("src-%d-%d", os.Getpid(), i), nil)
	}
	for _, s := range []discover.ContainerSource{
		NewSource(d.Socket),
		&containers.StateSource{Roots: []containers.Root{{Runtime: containers.EngineRunc, Dir: d.RuncRoot + "/*"}}},
	} {
		b.Run(s.Name(), func(b *testing.B) {
			for b.Loop() {
				if cs, err := s.List(context.Background()); err != nil || len(cs) != 50 {
					b.Fatalf("%d containers, %v", len(cs), err)
				}
			}
		})
	}
}
