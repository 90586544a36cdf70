package nstest

import (
	"os"
	"os/exec"
	"path/filepath"
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
		tools.out, tools.err = GoBuild("-o", tools.dir+"/", "github.com/nsrel/nsrel/cmd/...").CombinedOutput()
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

// Main runs a package's tests and then removes the commands [Tool] built:
// a TestMain of one line, func TestMain(m *testing.M) { nstest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	RemoveTools()
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
// binaries, as make build and the packages make them (CGO_ENABLED=0:
// with cgo, package net would link the C library and the binary would
// start through the dynamic loader, a millisecond slower and not what
// users run).
func GoBuild(args ...string) *exec.Cmd {
	cmd := exec.Command(GoTool(), append([]string{"build"}, args...)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd
}

// Rewrite writes the file at path again in one write (same bytes, mode
// 0755), as install(1) or a package manager writes a binary. Benchmarks
// rewrite every binary they compare: how the linker wrote a file changes
// how fast it starts while the file is in the page cache, by up to 12 %
// and differently for each file (bench/rewrite.sh; docs/BENCHMARKS.md).
func Rewrite(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	tmp := path + ".rewrite"
	if err := WriteExecutable(tmp, data, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, path)
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
