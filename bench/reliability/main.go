package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// classes in the order they run; each fills rows of the report.
var classes = []struct {
	name string
	run  func(*campaign) error
}{
	{"bytes", (*campaign).byteEdits},
	{"lines", (*campaign).lineEdits},
	{"forge", (*campaign).forgery},
	{"kill", (*campaign).kill9},
	{"diskfull", (*campaign).diskFull},
	{"concurrent", (*campaign).concurrent},
	{"badinput", (*campaign).badInput},
	{"inject", (*campaign).injection},
	{"stale", (*campaign).staleBlocks},
}

// config holds the campaign's sizes (flags).
type config struct {
	only        map[string]bool
	seed        uint64
	containers  int
	killRuns    int
	killBatch   int
	killShare   float64
	concurrent  int
	tmpfsKiB    int
	fullFails   int
	staleEvents int
	hookBin     string
	goTool      string
	keep        bool
}

// row is one line of the report.
type row struct {
	class, variant string
	cases          int
	// caught counts the cases caught (tampering) or survived (crashes:
	// the record is there, the log appends and verifies).
	caught int
	// byDesign counts cases not caught that nsrel does not claim to
	// catch (see notes); missed those it must catch.
	byDesign, missed int
	// lost counts acknowledged records missing; -1 where it does not
	// apply (tampering).
	lost  int
	repro string
}

type campaign struct {
	cfg  config
	root string // the repository
	tmp  string
	bin  string // nsrel-hook
	rng  *rand.Rand

	mu      sync.Mutex
	closing bool // set by cleanup: start nothing more
	procs   map[*os.Process]bool
	mounts  []string

	rows  []row
	notes []string
	// failed lists why the campaign fails besides missed and lost cases
	// (a class that could not run).
	failed []string
	sleep  *exec.Cmd
}

func main() {
	os.Exit(run())
}

func run() int {
	var c campaign
	only := flag.String("only", "", "run only these classes (comma-separated: bytes,lines,forge,kill,diskfull,concurrent,badinput,inject,stale)")
	seed := flag.Uint64("seed", 0, "random seed of the kill and disk-full classes (0: from the clock)")
	flag.IntVar(&c.cfg.containers, "containers", 12, "containers in the sample log of the bytes, lines and forge classes (2 or 3 records each)")
	flag.IntVar(&c.cfg.killRuns, "kill-runs", 1000, "nsrel-hook runs in the kill class")
	flag.IntVar(&c.cfg.killBatch, "kill-batch", 25, "hook processes started together in the kill class")
	flag.Float64Var(&c.cfg.killShare, "kill-share", 0.5, "share of the kill class's runs that get a SIGKILL")
	flag.IntVar(&c.cfg.concurrent, "concurrent", 200, "hook processes started at once in the concurrent class")
	flag.IntVar(&c.cfg.tmpfsKiB, "tmpfs-kib", 256, "size of the disk-full class's tmpfs, in KiB")
	flag.IntVar(&c.cfg.fullFails, "full-fails", 20, "failed appends the disk-full class waits for before it frees space")
	flag.IntVar(&c.cfg.staleEvents, "stale-events", 200, "stale blocks the stale class writes at the log's end")
	flag.StringVar(&c.cfg.hookBin, "hook", "", "a built nsrel-hook (default: built from the working tree)")
	flag.StringVar(&c.cfg.goTool, "go", "go", "the go command that builds nsrel-hook")
	flag.BoolVar(&c.cfg.keep, "keep", false, "keep the temporary directory (its path is printed)")
	flag.Parse()
	if flag.NArg() > 0 || c.cfg.containers < 2 || c.cfg.killRuns < 1 || c.cfg.killBatch < 1 || c.cfg.concurrent < 1 ||
		c.cfg.killShare < 0 || c.cfg.killShare > 1 || c.cfg.tmpfsKiB < 64 || c.cfg.fullFails < 1 || c.cfg.staleEvents < 1 {
		fmt.Fprintln(os.Stderr, "usage: reliability [-only CLASS,...] [-seed N] [-keep] [sizes] (see -help)")
		return 2
	}
	if *only != "" {
		c.cfg.only = map[string]bool{}
		for _, n := range strings.Split(*only, ",") {
			known := false
			for _, cl := range classes {
				known = known || cl.name == n
			}
			if !known {
				fmt.Fprintf(os.Stderr, "reliability: unknown class %q\n", n)
				return 2
			}
			c.cfg.only[n] = true
		}
	}
	c.cfg.seed = *seed
	if c.cfg.seed == 0 {
		c.cfg.seed = uint64(time.Now().UnixNano())
	}
	c.rng = rand.New(rand.NewPCG(c.cfg.seed, c.cfg.seed^0x9e3779b97f4a7c15))
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "reliability: run as root (the hook inspects other processes; the disk-full class mounts a tmpfs)")
		return 1
	}
	c.procs = map[*os.Process]bool{}

	// Whatever happens, processes, the mount and the directory go.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "reliability: %v: cleaning up\n", s)
		c.cleanup()
		os.Exit(130)
	}()
	defer c.cleanup()

	start := time.Now()
	if err := c.setup(); err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		return 1
	}
	c.header(start)
	for _, cl := range classes {
		if c.cfg.only != nil && !c.cfg.only[cl.name] {
			continue
		}
		t := time.Now()
		progress("class %s ...", cl.name)
		err := func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			return cl.run(&c)
		}()
		if err != nil {
			c.failed = append(c.failed, fmt.Sprintf("class %s did not complete: %v", cl.name, err))
			progress("class %s: ERROR: %v", cl.name, err)
		}
		progress("class %s done in %.1f s", cl.name, time.Since(t).Seconds())
	}
	return c.report(time.Since(start))
}

// progress writes a progress line to stderr.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "reliability: "+format+"\n", args...)
}

// setup finds the repository, makes the temporary directory, builds the
// hook and starts the process whose ancestry the hooks inspect.
func (c *campaign) setup() error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	c.root = root
	if c.tmp, err = os.MkdirTemp("", "nsrel-reliability-"); err != nil {
		return err
	}
	c.bin = c.cfg.hookBin
	if c.bin == "" {
		c.bin = filepath.Join(c.tmp, "nsrel-hook")
		progress("building nsrel-hook")
		build := exec.Command(c.cfg.goTool, "build", "-o", c.bin, "./cmd/nsrel-hook")
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as make build makes it
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("building nsrel-hook: %v\n%s", err, out)
		}
	} else if c.bin, err = filepath.Abs(c.bin); err != nil {
		return err
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		return err
	}
	c.sleep = exec.Command(sleep, "3600")
	c.sleep.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.startTracked(c.sleep); err != nil {
		return err
	}
	go func() {
		c.sleep.Wait()
		c.untrack(c.sleep.Process)
	}()
	return nil
}

// repoRoot finds the module root from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(data, []byte("module github.com/nsrel/nsrel\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from the nsrel repository (no go.mod of github.com/nsrel/nsrel above the working directory)")
		}
		dir = parent
	}
}

// startTracked starts cmd and remembers its process, so that cleanup
// can kill it.
func (c *campaign) startTracked(cmd *exec.Cmd) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return errors.New("cleaning up")
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	c.procs[cmd.Process] = true
	return nil
}

func (c *campaign) untrack(p *os.Process) {
	c.mu.Lock()
	delete(c.procs, p)
	c.mu.Unlock()
}

// cleanup kills the processes the campaign started that still run,
// unmounts its tmpfs and removes its directory. It may run twice (a
// signal during the deferred call): the second finds nothing left.
func (c *campaign) cleanup() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = true
	for p := range c.procs {
		p.Kill() // by the process (a pidfd): never someone else's
		delete(c.procs, p)
	}
	for _, m := range c.mounts {
		if err := unix.Unmount(m, 0); err != nil {
			if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
				fmt.Fprintf(os.Stderr, "reliability: umount %s: %v\n", m, err)
			}
		}
	}
	c.mounts = nil
	if c.tmp != "" {
		if c.cfg.keep {
			fmt.Fprintf(os.Stderr, "reliability: kept %s\n", c.tmp)
		} else {
			// A class interrupted by a signal may still be writing
			// there for a moment: try again.
			var err error
			for range 20 {
				if err = os.RemoveAll(c.tmp); err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "reliability: %v\n", err)
			}
		}
		c.tmp = ""
	}
}

// header prints when and where the campaign runs, and its sizes.
func (c *campaign) header(start time.Time) {
	var u unix.Utsname
	unix.Uname(&u)
	kernel := unix.ByteSliceToString(u.Release[:])
	host := unix.ByteSliceToString(u.Nodename[:])
	osName := "Linux"
	if f, err := os.Open("/etc/os-release"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
				osName = strings.Trim(v, `"`)
			}
		}
		f.Close()
	}
	rev := "unknown"
	if out, err := exec.Command("git", "-C", c.root, "describe", "--always", "--dirty").Output(); err == nil {
		rev = strings.TrimSpace(string(out))
	}
	fmt.Printf("nsrel reliability campaign, %s\n", start.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Printf("host %s: %s, kernel %s, %d CPUs, %s; tree %s\n", host, osName, kernel, runtime.NumCPU(), runtime.Version(), rev)
	fmt.Printf("load average at the start: %s (other work on the host shares its CPUs and disk)\n", loadavg())
	fmt.Printf("seed %d; sample log %d containers; kill: %d runs in batches of %d, %.0f%% killed; concurrent: %d; disk full: %d KiB tmpfs\n\n",
		c.cfg.seed, c.cfg.containers, c.cfg.killRuns, c.cfg.killBatch, c.cfg.killShare*100, c.cfg.concurrent, c.cfg.tmpfsKiB)
}

// loadavg returns the 1, 5 and 15 minute load averages.
func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// add records a row of the report.
func (c *campaign) add(r row) {
	c.rows = append(c.rows, r)
	status := "ok"
	if r.missed > 0 || r.lost > 0 {
		status = "FAIL"
	}
	progress("  %s / %s: %d cases, %d caught, %d by design, %d missed, lost %d: %s", r.class, r.variant, r.cases, r.caught, r.byDesign, r.missed, r.lost, status)
}

// note adds a line under the table.
func (c *campaign) note(format string, args ...any) {
	c.notes = append(c.notes, fmt.Sprintf(format, args...))
}

// repro returns the command that reruns a class (with the seed when it
// uses randomness).
func (c *campaign) repro(class string, seeded bool) string {
	s := "go run ./bench/reliability -only " + class
	if seeded {
		s += fmt.Sprintf(" -seed %d", c.cfg.seed)
	}
	return "`" + s + "`"
}

// report prints the table and the notes, and returns the exit status.
func (c *campaign) report(took time.Duration) int {
	fmt.Println("| class | variant | cases | caught / survived | not caught, by design | missed | records lost | reproduce |")
	fmt.Println("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
	bad := false
	for _, r := range c.rows {
		lost := "n/a"
		if r.lost >= 0 {
			lost = fmt.Sprint(r.lost)
		}
		if r.missed > 0 || r.lost > 0 {
			bad = true
		}
		fmt.Printf("| %s | %s | %d | %d | %d | %d | %s | %s |\n", r.class, r.variant, r.cases, r.caught, r.byDesign, r.missed, lost, r.repro)
	}
	fmt.Println()
	for _, n := range c.notes {
		fmt.Println("- " + n)
	}
	for _, f := range c.failed {
		fmt.Println("- ERROR: " + f)
	}
	if len(c.failed) > 0 {
		bad = true
	}
	fmt.Printf("\nload average at the end: %s\n", loadavg())
	verdict := "PASS: nothing missed, no record lost"
	if bad {
		verdict = "FAIL: see the rows with missed cases or lost records, and the notes"
	}
	fmt.Printf("\n%s (%.0f s)\n", verdict, took.Seconds())
	if bad {
		return 1
	}
	return 0
}
