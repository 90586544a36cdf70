package layout

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/internal/nstest"
)

const module = "github.com/nsrel/nsrel/"

// layers places each package of nsrel (without the module prefix) on a
// layer: a package may import project packages of lower layers only.
// docs/ARCHITECTURE.md draws the same picture; a new package must be
// added to both.
var layers = map[string]int{
	"internal/vocab":         0,
	"internal/safefile":      -1,
	"internal/syslog":        0,
	"internal/linuxonly":     -2,
	"internal/bigstack":      -1,
	"cmd/internal/quickhelp": -1,
	"cmd/lsuserns/help":      0,
	"cmd/lspidns/help":       0,
	"hook/internal/fastjson": 0,
	"nsrel/idmap":            0,
	"nsrel":                  1,
	"hook/audit":             1,
	"internal/logging":       1,
	"internal/metrics":       2,
	"nsrel/discover":         2,
	"hook/inspect":           2,
	"hook/policy":            2,
	"tree":                   3,
	"hook":                   3,
	"containers":             3,
	"graph":                  4,
	"containerd":             4,
	"internal/lstool":        5,
	"containerd/recorder":    5,
	"containerd/nriplugin":   5,
	"cmd/lsuserns":           6,
	"cmd/lspidns":            6,
	"cmd/nsrel-hook":         6,
	"cmd/nsrel-containerd":   6,
}

// support are packages for tests, benchmarks and the demo: they may
// import any library package, and only tests and other support may
// import them.
func support(p string) bool {
	switch {
	case strings.HasPrefix(p, "bench/"), strings.HasPrefix(p, "internal/bundle"), strings.HasPrefix(p, "internal/forge"), p == "internal/lstool/lstooltest",
		strings.HasPrefix(p, "internal/clidoc"), strings.HasPrefix(p, "internal/ociimage"), p == "internal/dist",
		strings.HasPrefix(p, "internal/seccompprofile"), strings.HasPrefix(p, "internal/kubetest/"):
		return true
	}
	switch p {
	case "internal/nstest", "internal/ctrdtest", "internal/runtest", "internal/audittest", "internal/rsyslogtest", "internal/kubetest", "internal/layout":
		return true
	}
	return false
}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func list(t *testing.T, args ...string) []pkg {
	t.Helper()
	goBin := nstest.RequireCmd(t, "go")
	cmd := exec.Command(goBin, append([]string{"list", "-json"}, args...)...)
	cmd.Dir = nstest.RepoFile(t, ".")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestImportsGoDown checks the layers: every library package imports only
// library packages of lower layers, no library package imports test
// support, and only packages under cmd/ import packages under cmd/.
func TestImportsGoDown(t *testing.T) {
	for _, p := range list(t, "./...") {
		name := strings.TrimPrefix(p.ImportPath, module)
		if support(name) {
			continue
		}
		layer, ok := layers[name]
		if !ok {
			t.Errorf("%s is on no layer: add it to layers here and to docs/ARCHITECTURE.md", name)
			continue
		}
		for _, imp := range p.Imports {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			switch dl, known := layers[dep]; {
			case strings.HasPrefix(dep, "cmd/") && !strings.HasPrefix(name, "cmd/"):
				t.Errorf("%s imports %s: only the commands import packages under cmd/", name, dep)
			case support(dep):
				t.Errorf("%s imports %s, which is test support", name, dep)
			case !known:
				t.Errorf("%s imports %s, which is on no layer", name, dep)
			case dl >= layer:
				t.Errorf("%s (layer %d) imports %s (layer %d): imports must go down", name, layer, dep, dl)
			}
		}
	}
}

// TestLeanBinaries checks what the binaries link. nsrel-hook runs on
// every container start: no containerd client, gRPC, protobuf, NRI or
// Kubernetes types.
// lsuserns and lspidns run often and interactively: not the hook's stage
// code, the recorder, the NRI plugin or the WebAssembly runtime NRI
// brings, and no containerd client, gRPC or protobuf either (their
// package initialisation cost every run milliseconds, also where no
// daemon runs): they ask containerd through `nsrel-containerd
// containers`.
func TestLeanBinaries(t *testing.T) {
	banned := map[string][]string{
		"cmd/nsrel-hook": {"github.com/containerd/...", "github.com/prometheus/...", module + "internal/metrics", "google.golang.org/grpc/...", "google.golang.org/protobuf/...",
			module + "containerd/...", module + "containers/...", "k8s.io/...", "sigs.k8s.io/..."},
		"cmd/lsuserns": {module + "hook", module + "containerd", module + "containerd/recorder", module + "containerd/nriplugin",
			module + "internal/logging", "github.com/containerd/...", "google.golang.org/grpc/...", "google.golang.org/protobuf/...",
			"github.com/tetratelabs/wazero/...", "k8s.io/...", "sigs.k8s.io/...", "github.com/prometheus/..."},
	}
	banned["cmd/lspidns"] = banned["cmd/lsuserns"]
	for cmd, bans := range banned {
		pkgs := list(t, "-deps=false", "./"+cmd)
		if len(pkgs) != 1 {
			t.Fatalf("go list ./%s: %d packages", cmd, len(pkgs))
		}
		for _, dep := range pkgs[0].Deps {
			for _, b := range bans {
				// "P/..." bans P and everything below it, as go list reads it.
				base, tree := strings.CutSuffix(b, "/...")
				if dep == base || tree && strings.HasPrefix(dep, base+"/") {
					t.Errorf("%s links %s", cmd, dep)
				}
			}
		}
	}
}

// TestTopLevel checks that the repository's top level holds only what
// the project ships or builds with: scratch files (a daemon's output, an
// experiment's config) once slipped into a commit there.
func TestTopLevel(t *testing.T) {
	_, err := exec.LookPath("git")
	nstest.Require(t, err == nil, "git: %v", err)
	out, err := exec.Command("git", "-C", "../..", "ls-files", "--cached", "--others", "--exclude-standard").Output()
	nstest.Require(t, err == nil, "git ls-files (not a git checkout?): %v", err)
	allowed := map[string]bool{
		".ci": true, ".gitattributes": true, ".gitignore": true, "LICENSE": true, "Makefile": true, "README.md": true,
		"go.mod": true, "go.sum": true, "bench": true, "cmd": true, "config": true, "containerd": true,
		"containers": true, "deploy": true, "docs": true, "graph": true, "hook": true, "internal": true,
		"nsrel": true, "scripts": true, "tree": true,
	}
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		top, _, _ := strings.Cut(f, "/")
		if !allowed[top] {
			t.Errorf("%s at the top level: not a file the project ships (add it here if it is)", f)
		}
	}
}
