package nstest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
)

var tools struct {
	once sync.Once
	dir  string
	err  error
	out  []byte
}

// Tool returns the path of nsrel's command NAME (cmd/NAME), built once
// per test binary together with the other commands (one go build is
// faster than four). Call [RemoveTools] from TestMain when the tests are
// done.
func Tool(t testing.TB, name string) string {
	t.Helper()
	tools.once.Do(func() {
		if tools.dir, tools.err = os.MkdirTemp("", "nsrel-test-bin-"); tools.err != nil {
			return
		}
		// Other UIDs (a container's mapped root) may have to run them.
		if tools.err = os.Chmod(tools.dir, 0o755); tools.err != nil {
			return
		}
		if tools.out, tools.err = GoBuild("-o", tools.dir+"/", "github.com/nsrel/nsrel/cmd/...").CombinedOutput(); tools.err != nil {
			return
		}
		// Benchmarks time them: written as installed binaries are.
		var bins []os.DirEntry
		if bins, tools.err = os.ReadDir(tools.dir); tools.err != nil {
			return
		}
		for _, b := range bins {
			if tools.err = Rewrite(filepath.Join(tools.dir, b.Name())); tools.err != nil {
				return
			}
		}
	})
	if tools.err != nil {
		t.Fatalf("go build: %v\n%s", tools.err, tools.out)
	}
	p := filepath.Join(tools.dir, name)
	_, err := os.Stat(p)
	Require(t, err == nil, "%s was not built: %v", name, err)
	return p
}

// RemoveTools removes the commands [Tool] built.
func RemoveTools() {
	if tools.dir != "" {
		os.RemoveAll(tools.dir)
	}
}

// Main runs a package's tests, removes the commands [Tool] built and
// fails if a test wrote to [HostAuditLog]:
// a TestMain of one line, func TestMain(m *testing.M) { nstest.Main(m) }.
func Main(m *testing.M) {
	guard := HostLogGuard()
	code := m.Run()
	RemoveTools()
	if err := guard(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		code = 1
	}
	os.Exit(code)
}

// GoTool returns the go command from PATH (as `make test` has it), else
// the one in /usr/local/go (the build then reports any problem).
func GoTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// GoBuild returns the command `go build ARGS...` that builds static
// binaries, as make build does (CGO_ENABLED=0: with cgo, package net
// would link the C library and the binary would start through the
// dynamic loader, a millisecond slower and not what users run).
func GoBuild(args ...string) *exec.Cmd {
	cmd := exec.Command(GoTool(), append([]string{"build"}, args...)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd
}

// Rewrite writes the file at path again with one write(2) (same bytes,
// mode 0755), as a package manager writes a binary. Benchmarks rewrite
// every binary they compare: how the linker wrote a file changes how
// fast it starts while the file is in the page cache, by up to 12 % and
// differently for each file (bench/rewrite.sh does the same for the
// scripts; docs/BENCHMARKS.md).
func Rewrite(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	tmp := path + ".rewrite"
	if err := WriteExecutable(tmp, data, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // whatever the umask
		return err
	}
	return os.Rename(tmp, path)
}

// Build builds the package pkg static into the file out ([GoBuild] with
// flags) and rewrites it as an installed binary is written ([Rewrite]),
// for a test or benchmark that times it.
func Build(out, pkg string, flags ...string) error {
	if b, err := GoBuild(slices.Concat(flags, []string{"-o", out, pkg})...).CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return Rewrite(out)
}

// GoNoop builds bench/noop, the empty static Go program the benchmarks
// time as the floor of any hook written in Go, into a temporary
// directory ([Build]).
func GoNoop(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "go-noop")
	if err := Build(bin, "github.com/nsrel/nsrel/bench/noop"); err != nil {
		t.Fatal(err)
	}
	return bin
}

// WriteExecutable writes data to a new file at path with mode perm while
// no other goroutine of this process can fork. A child forked while the
// file is open for writing would hold the descriptor until it execs, and
// an exec of the file in that window fails with ETXTBSY ("text file
// busy", golang/go#22315): os/exec forks under syscall.ForkLock, which
// this takes for writing.
func WriteExecutable(path string, data []byte, perm os.FileMode) error {
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	return os.WriteFile(path, data, perm)
}

// HostAuditLog is the audit log the shipped configs name: tests write
// their own, never this one.
const HostAuditLog = "/var/log/nsrel/audit.jsonl"

// HostLogGuard notes the state of [HostAuditLog] and returns a function
// that says, after the tests, whether it changed (an error) meanwhile.
// It checks only under CI=true, on a machine where no nsrel runs: where
// one does, its records change the file.
func HostLogGuard() func() error {
	if os.Getenv("CI") != "true" {
		return func() error { return nil }
	}
	state := func() string {
		fi, err := os.Stat(HostAuditLog)
		if err != nil {
			return "absent"
		}
		return fmt.Sprintf("%d bytes, modified %s", fi.Size(), fi.ModTime())
	}
	before := state()
	return func() error {
		if after := state(); after != before {
			return fmt.Errorf("the host's %s changed while the tests ran (%s, then %s): a test wrote records to it", HostAuditLog, before, after)
		}
		return nil
	}
}

// ToFullDisk runs the command bin with args, its stdout /dev/full (every
// write fails with ENOSPC), and returns its exit status and stderr.
func ToFullDisk(t testing.TB, bin string, args ...string) (int, string) {
	t.Helper()
	return ToFullDiskCmd(t, exec.Command(bin, args...))
}

// ToFullDiskCmd is [ToFullDisk] of cmd, set up but for its stdout and
// stderr.
func ToFullDiskCmd(t testing.TB, cmd *exec.Cmd) (int, string) {
	t.Helper()
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = full, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), stderr.String()
	case err != nil:
		t.Fatal(err)
	}
	return 0, stderr.String()
}
