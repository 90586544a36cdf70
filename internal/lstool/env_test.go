package lstool_test

import (
	"bytes"
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsrel/nsrel/containers"
	"github.com/nsrel/nsrel/internal/lstool"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// envRead returns the environment variables that the packages of this
// module that pkg is built from read by name (os.Getenv or os.LookupEnv
// of a string literal; markers the commands set for their own re-exec
// are named by constants and not counted).
func envRead(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command(nstest.RequireCmd(t, "go"), "list", "-deps",
		"-f", `{{if and .Module (eq .Module.Path "github.com/nsrel/nsrel")}}{{.Dir}}{{"\t"}}{{join .GoFiles "\t"}}{{end}}`, pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	seen := map[string]bool{}
	fset := token.NewFileSet()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Split(line, "\t")
		for _, name := range fields[1:] {
			f, err := parser.ParseFile(fset, filepath.Join(fields[0], name), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) != 1 {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "Getenv" && sel.Sel.Name != "LookupEnv") {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "os" {
					return true
				}
				if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if v, err := strconv.Unquote(lit.Value); err == nil {
						seen[v] = true
					}
				}
				return true
			})
		}
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TestHelpNamesEnvironment: every environment variable the code of
// lsuserns and lspidns reads is described in the Environment section of
// their --help (and so in their man pages).
func TestHelpNamesEnvironment(t *testing.T) {
	for _, tool := range []lstool.Tool{{Name: "lsuserns", Type: nsrel.TypeUser}, {Name: "lspidns", Type: nsrel.TypePID}} {
		t.Run(tool.Name, func(t *testing.T) {
			names := envRead(t, "github.com/nsrel/nsrel/cmd/"+tool.Name)
			for _, want := range []string{"CONTAINERD_ADDRESS", "NSREL_AUDIT_LOG", "NSREL_RUNTIME_ROOTS"} {
				if !slices.Contains(names, want) {
					t.Errorf("the scan of the code found %q, not %s: it misses reads", names, want)
				}
			}
			var out, errb bytes.Buffer
			if code := lstool.Run(context.Background(), tool, []string{"--help"}, &out, &errb); code != 0 {
				t.Fatalf("--help: exit %d, %s", code, errb.String())
			}
			_, env, ok := strings.Cut(out.String(), "\nEnvironment:\n")
			if !ok {
				t.Fatalf("--help has no Environment section:\n%s", out.String())
			}
			env, _, _ = strings.Cut(env, "\n\n")
			for _, n := range names {
				if !strings.Contains("\n"+env, "\n  "+n+" ") {
					t.Errorf("the code reads $%s, which the Environment section of --help does not describe:\n%s", n, env)
				}
			}
		})
	}
}

// TestBadRuntimeRootsSaid: an NSREL_RUNTIME_ROOTS the state source
// refuses (one bad entry refuses them all) left every runc, crun,
// podman and CRI-O container out of the tree without a word while the
// audit log answered; so did an audit log refused. A notice says so now.
func TestBadRuntimeRootsSaid(t *testing.T) {
	t.Setenv("NSREL_RUNTIME_ROOTS", "runc=/run/runc,crun=run/crun")
	// A log that is there, empty: one named and missing is said too
	// (TestNamedSourceMissingSaid).
	log := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(log, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NSREL_AUDIT_LOG", log)
	src := []discover.ContainerSource{containers.Local{&containers.StateSource{}, &containers.AuditSource{}}}
	_, notices := lstool.ListContainers(context.Background(), src, 5*time.Second, false)
	if len(notices) != 1 || !strings.Contains(notices[0], "NSREL_RUNTIME_ROOTS") || !strings.Contains(notices[0], "not shown") {
		t.Errorf("notices %q; want one naming NSREL_RUNTIME_ROOTS and that containers are not shown", notices)
	}
	// The entry escaped once (it was quoted with Go escapes, then
	// escaped again: "bogus\\x1b[31m").
	t.Setenv("NSREL_RUNTIME_ROOTS", "bogus\x1b[31m")
	_, notices = lstool.ListContainers(context.Background(), src, 5*time.Second, false)
	if want := `NSREL_RUNTIME_ROOTS: "bogus\x1b[31m" is not runc=/DIR`; len(notices) != 1 || !strings.Contains(notices[0], want) {
		t.Errorf("notices %q; want one saying %s", notices, want)
	}
}

// TestNamedSourceMissingSaid: a container source named explicitly that
// is not there (NSREL_AUDIT_LOG=/nonexistent, a relative path not in the
// working directory, NSREL_RUNTIME_ROOTS=runc=/nonexistent) was passed
// over without a word, as a default one is where the runtime or hook is
// not installed, while a CONTAINERD_ADDRESS that is not there was said.
// One notice each now; the default ones stay unsaid.
func TestNamedSourceMissingSaid(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none")
	root := filepath.Join(dir, "runc")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "audit.jsonl")
	if err := os.WriteFile(log, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for _, tc := range []struct {
		roots, log string
		want       []string
	}{
		{"runc=" + root, missing, []string{`audit-log: NSREL_AUDIT_LOG names "` + missing + `": lstat ` + missing + `: no such file or directory; containers there are not shown`}},
		{"runc=" + root, "rel.jsonl", []string{`audit-log: NSREL_AUDIT_LOG names "rel.jsonl": a relative path, read from the working directory: lstat ` + filepath.Join(dir, "rel.jsonl") + `: no such file or directory`}},
		{"runc=" + root + ",crun=" + missing, log, []string{`NSREL_RUNTIME_ROOTS names "crun=` + missing + `": crun state ` + missing + `: lstat ` + missing + `: no such file or directory; containers there are not shown`}},
		{"runc=" + missing, missing, []string{`NSREL_RUNTIME_ROOTS names "runc=` + missing + `"`, `NSREL_AUDIT_LOG names "` + missing + `"`}},
		// A pattern matching nothing is no error: it names directories
		// that come and go (/run/user/*/runc).
		{"runc=" + missing + "/*", log, nil},
	} {
		t.Setenv("NSREL_RUNTIME_ROOTS", tc.roots)
		t.Setenv("NSREL_AUDIT_LOG", tc.log)
		src := []discover.ContainerSource{containers.Local{&containers.StateSource{}, &containers.AuditSource{}}}
		_, notices := lstool.ListContainers(context.Background(), src, 5*time.Second, false)
		ok := len(notices) == len(tc.want)
		for i := 0; ok && i < len(notices); i++ {
			ok = strings.Contains(notices[i], tc.want[i])
		}
		if !ok {
			t.Errorf("NSREL_RUNTIME_ROOTS=%s NSREL_AUDIT_LOG=%s: notices %q; want one with each of %q", tc.roots, tc.log, notices, tc.want)
		}
	}
}
