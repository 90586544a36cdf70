package containerd

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/containerd/internal/ctrdtest"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/nsrel/discover"
	"github.com/nsrel/nsrel/tree"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// tool builds the repository's commands once per test binary and
// returns the path of name.
func tool(t testing.TB, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "nsrel-ctrd-bin")
		if buildErr != nil {
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = "/usr/local/go/bin/go"
		}
		var out []byte
		cmd := exec.Command(goBin, "build", "-o", buildDir+"/", "../cmd/lsuserns", "../cmd/lspidns", "../cmd/nsrel-containerd")
		if _, err := os.Stat("../cmd/nsrel-hook"); err == nil {
			cmd.Args = append(cmd.Args, "../cmd/nsrel-hook")
		}
		out, buildErr = cmd.CombinedOutput()
		if buildErr != nil {
			buildErr = &buildError{buildErr, string(out)}
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v", buildErr)
	}
	p := filepath.Join(buildDir, name)
	_, err := os.Stat(p)
	nstest.Require(t, err == nil, "%s was not built: %v", name, err)
	return p
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// runTool runs a tree command and returns stdout and stderr; it fails
// the test on a non-zero exit.
func runTool(t *testing.T, env []string, name string, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
	}
	return stdout.String(), stderr.String()
}

func nsIno(t *testing.T, pid int, typ string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/"+typ, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// checkTrees runs lsuserns and lspidns (text and JSON) and checks that
// each wanted container sits on exactly the namespace nodes of its
// process, with the wanted fields.
func checkTrees(t *testing.T, env []string, args []string, want []discover.Container) {
	t.Helper()
	for _, tc := range []struct{ tool, typ string }{{"lsuserns", "user"}, {"lspidns", "pid"}} {
		out, _ := runTool(t, env, tc.tool, append([]string{"--json"}, args...)...)
		var doc tree.Document
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("%s --json: %v\n%s", tc.tool, err, out)
		}
		text, _ := runTool(t, env, tc.tool, args...)
		for _, c := range want {
			ino := nsIno(t, c.PID, tc.typ)
			var on []uint64
			for _, e := range doc.Namespaces {
				for _, got := range e.Containers {
					if got.ID == c.ID && got.PID == c.PID {
						on = append(on, e.Ino)
						if diff := cmp.Diff(c, got); diff != "" {
							t.Errorf("%s --json: container (-want +got):\n%s", tc.tool, diff)
						}
					}
				}
			}
			if diff := cmp.Diff([]uint64{ino}, on); diff != "" {
				t.Errorf("%s --json: %s on namespaces (-want +got):\n%s", tc.tool, c.ID, diff)
			}
			label := tree.ContainerLabel(c)
			node := tc.typ + ":[" + strconv.FormatUint(ino, 10) + "]"
			found := false
			for _, line := range strings.Split(text, "\n") {
				if strings.Contains(line, label) {
					found = true
					if !strings.Contains(line, node+" owner") {
						t.Errorf("%s: %q shown on the wrong node: %q (want %s)", tc.tool, label, line, node)
					}
				}
			}
			if !found {
				t.Errorf("%s: no line shows %q:\n%s", tc.tool, label, text)
			}
		}
	}
}

// TestTreesAnnotate checks the text and JSON annotations of both trees
// against the containers' real namespaces: containerd containers in four
// containerd namespaces (one in its own user namespace, one with CRI pod
// labels) and a plain runc container; then again with the daemon stopped,
// when the state roots alone must still annotate them.
func TestTreesAnnotate(t *testing.T) {
	for _, f := range ctrdtest.Flavors() {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			d := ctrdtest.Start(t, f, nil)
			want := startContainers(t, d)
			runcRoot := filepath.Join(t.TempDir(), "runc")
			pid := runcRun(t, runcRoot, uniq("zoo-"+f.Name), true, nil)
			runcC := discover.Container{ID: uniq("zoo-" + f.Name), Engine: EngineRunc, PID: pid}

			// A hooked containerd container is in the daemon, its state
			// root and the audit log: it must show once. A hooked runc
			// container in a root nobody lists is known only to the log.
			hookBin := tool(t, "nsrel-hook")
			cfgPath, cfg := hookSetup(t)
			hooked := uniq("hooked")
			_, hpid := d.Run(t, d.Client(t), "k8s.io", hooked, &ctrdtest.RunOpts{SpecOpts: []oci.SpecOpts{WithHook(hookBin, cfgPath)}})
			hooks := Hooks(hookBin, cfgPath)
			hidden := uniq("hidden-" + f.Name)
			hpid2 := runcRun(t, filepath.Join(t.TempDir(), "unlisted"), hidden, false, &hooks)
			waitRecords(t, cfg.AuditLog, "hook records", func(rs []*audit.Record) bool { return len(stages(rs, hidden)) >= 2 })
			want = Merge(want, []discover.Container{
				{ID: hooked, Engine: EngineContainerd, Namespace: "k8s.io", PID: int(hpid)},
				{ID: hidden, Engine: EngineAuditLog, PID: hpid2},
			})

			env := []string{"NSREL_RUNTIME_ROOTS=runc=" + runcRoot + ",runc=" + d.RuncRoot + "/*", "NSREL_AUDIT_LOG=" + cfg.AuditLog}
			// A generous deadline: other packages' tests may load the machine.
			args := []string{"--containerd-address", d.Socket, "--container-timeout", "20s"}
			checkTrees(t, env, args, append(want, runcC))

			// --container keeps only the branch to that container's
			// user namespace: the initial one and its own.
			userns := want[slices.IndexFunc(want, func(c discover.Container) bool { return strings.HasPrefix(c.ID, "userns") })]
			out, _ := runTool(t, env, "lsuserns", append(args, "--container", userns.ID[:8])...)
			if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.Contains(lines[1], tree.ContainerLabel(userns)) {
				t.Errorf("lsuserns --container %s:\n%s", userns.ID[:8], out)
			}

			// Without the daemon: one notice, trees still annotated from
			// the state roots (no pod names).
			d.Stop(t)
			_, stderr := runTool(t, env, "lsuserns", args...)
			if n := strings.Count(stderr, "containerd"); n != 1 {
				t.Errorf("stderr with the daemon down mentions containerd %d times, want one notice:\n%s", n, stderr)
			}
			var noName []discover.Container
			for _, c := range append(want, runcC) {
				c.Name = ""
				noName = append(noName, c)
			}
			checkTrees(t, env, args, noName)

			out, _ = runTool(t, env, "lsuserns", append(args, "--no-containers", "--json")...)
			if strings.Contains(out, `"engine"`) {
				t.Errorf("--no-containers still annotates")
			}
		})
	}
}

// TestTreesWithoutContainerd annotates runc-only, crun and podman
// containers with no containerd running: one notice, both trees right.
func TestTreesWithoutContainerd(t *testing.T) {
	runcRoot := filepath.Join(t.TempDir(), "runc")
	id := uniq("solo")
	pid := runcRun(t, runcRoot, id, true, nil)
	pmID, pmPID, pmRoot := podmanRun(t)
	crunRoot := filepath.Join(t.TempDir(), "crun")
	crunID := uniq("crun-solo")
	crunPID := crunRun(t, crunRoot, crunID)
	env := []string{"NSREL_RUNTIME_ROOTS=runc=" + runcRoot + ",runc=" + pmRoot + ",crun=" + crunRoot, "NSREL_AUDIT_LOG=" + filepath.Join(t.TempDir(), "none.jsonl")}
	args := []string{"--containerd-address", filepath.Join(t.TempDir(), "no.sock"), "--container-timeout", "20s"}
	checkTrees(t, env, args, []discover.Container{
		{ID: id, Engine: EngineRunc, PID: pid},
		{ID: pmID, Engine: EnginePodman, PID: pmPID},
		{ID: crunID, Engine: EngineCrun, PID: crunPID},
	})
	_, stderr := runTool(t, env, "lspidns", args...)
	if n := strings.Count(stderr, "containerd"); n != 1 {
		t.Errorf("want one notice about containerd, got:\n%s", stderr)
	}
}
