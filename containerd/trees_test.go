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
	"testing"

	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/containers"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/runtest"
	"github.com/nsrel/nsrel/nsrel/discover"
	"github.com/nsrel/nsrel/tree"
)

func TestMain(m *testing.M) { nstest.Main(m) }

// runTool runs a tree command and returns stdout and stderr; it fails
// the test on a non-zero exit.
func runTool(t *testing.T, env []string, name string, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(nstest.Tool(t, name), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
	}
	return stdout.String(), stderr.String()
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
			ino := nstest.Ino(t, c.PID, tc.typ)
			var on []uint64
			for _, e := range doc.Namespaces {
				for _, got := range e.Containers {
					if got.ID == c.ID && got.PID == c.PID {
						on = append(on, e.Ino)
						if diff := cmp.Diff(c, got, ignoreStart); diff != "" {
							t.Errorf("%s --json: container (-want +got):\n%s", tc.tool, diff)
						}
						if st, err := inspect.StartTime(c.PID); err != nil || got.StartTime != st {
							t.Errorf("%s --json: container %s: start_time %d, the process's %d (%v)", tc.tool, c.ID, got.StartTime, st, err)
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
			pid := runtest.Runc(t, runcRoot, ctrdtest.Uniq("zoo-"+f.Name), true, nil)
			runcC := discover.Container{ID: ctrdtest.Uniq("zoo-" + f.Name), Engine: containers.EngineRunc, PID: pid}

			// A hooked containerd container is in the daemon, its state
			// root and the audit log: it must show once. A hooked runc
			// container in a root nobody lists is known only to the log.
			hookBin := nstest.Tool(t, "nsrel-hook")
			cfgPath, cfg := ctrdtest.HookConfig(t)
			hooked := ctrdtest.Uniq("hooked")
			_, hpid := d.Run(t, d.Client(t), "k8s.io", hooked, &ctrdtest.RunOpts{SpecOpts: []oci.SpecOpts{WithHook(hookBin, cfgPath)}})
			hooks := Hooks(hookBin, cfgPath)
			hidden := ctrdtest.Uniq("hidden-" + f.Name)
			hpid2 := runtest.Runc(t, filepath.Join(t.TempDir(), "unlisted"), hidden, false, &hooks)
			audittest.Wait(t, cfg.AuditLog, "hook records", func(rs []*audit.Record) bool { return len(audittest.SourceStages(rs, hidden)) >= 1 })
			want = containers.Merge(want, []discover.Container{
				{ID: hooked, Engine: containers.EngineContainerd, Namespace: "k8s.io", PID: int(hpid)},
				{ID: hidden, Engine: containers.EngineAuditLog, PID: hpid2},
			})

			env := []string{"NSREL_RUNTIME_ROOTS=runc=" + runcRoot + ",runc=" + d.RuncRoot + "/*", "NSREL_AUDIT_LOG=" + cfg.AuditLog}
			// A generous deadline: other packages' tests may load the machine.
			args := []string{"--containerd-address", d.Socket, "--container-timeout", "20s"}
			checkTrees(t, env, args, append(want, runcC))

			// The daemon's runc root unlisted (not a default root): the
			// daemon and the audit log alone know the hooked container,
			// and it still shows once, as the daemon's.
			checkTrees(t, []string{"NSREL_RUNTIME_ROOTS=runc=" + runcRoot, "NSREL_AUDIT_LOG=" + cfg.AuditLog}, args, append(want, runcC))

			// --container keeps only the branch to that container's
			// user namespace: the initial one and its own.
			userns := want[slices.IndexFunc(want, func(c discover.Container) bool { return strings.HasPrefix(c.ID, "userns") })]
			out, _ := runTool(t, env, "lsuserns", append(args, "--container", userns.ID[:8])...)
			if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.Contains(lines[1], tree.ContainerLabel(userns)) {
				t.Errorf("lsuserns --container %s:\n%s", userns.ID[:8], out)
			}

			// Without the daemon: one notice, trees still annotated from
			// the state roots, with the names the spec's annotations give
			// (the pod's CRI keys, nerdctl's), which the state holds.
			d.Stop(t)
			_, stderr := runTool(t, env, "lsuserns", args...)
			if n := strings.Count(stderr, "containerd"); n != 1 {
				t.Errorf("stderr with the daemon down mentions containerd %d times, want one notice:\n%s", n, stderr)
			}
			checkTrees(t, env, args, append(want, runcC))

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
	id := ctrdtest.Uniq("solo")
	pid := runtest.Runc(t, runcRoot, id, true, nil)
	pmID, pmPID, pmRoot := runtest.Podman(t)
	crunRoot := filepath.Join(t.TempDir(), "crun")
	crunID := ctrdtest.Uniq("crun-solo")
	crunPID := runtest.Crun(t, crunRoot, crunID)
	// An empty log: one NSREL_AUDIT_LOG names that is not there gets a
	// notice of its own (TestNamedSourceMissingSaid).
	emptyLog := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(emptyLog, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"NSREL_RUNTIME_ROOTS=runc=" + runcRoot + ",runc=" + pmRoot + ",crun=" + crunRoot, "NSREL_AUDIT_LOG=" + emptyLog}
	args := []string{"--containerd-address", filepath.Join(t.TempDir(), "no.sock"), "--container-timeout", "20s"}
	checkTrees(t, env, args, []discover.Container{
		{ID: id, Engine: containers.EngineRunc, PID: pid},
		{ID: pmID, Engine: containers.EnginePodman, PID: pmPID, Name: runtest.PodmanName()},
		{ID: crunID, Engine: containers.EngineCrun, PID: crunPID},
	})
	_, stderr := runTool(t, env, "lspidns", args...)
	if n := strings.Count(stderr, "containerd"); n != 1 {
		t.Errorf("want one notice about containerd, got:\n%s", stderr)
	}
	// The podman container by its name.
	out, _ := runTool(t, env, "lsuserns", append(args, "--container", runtest.PodmanName())...)
	if label := "podman " + pmID[:12] + " (" + runtest.PodmanName() + ")"; !strings.Contains(out, label) {
		t.Errorf("lsuserns --container %s: no %q:\n%s", runtest.PodmanName(), label, out)
	}
}
