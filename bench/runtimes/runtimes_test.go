package runtimes

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	nsrelctrd "github.com/nsrel/nsrel/containerd"
	"github.com/nsrel/nsrel/internal/bundle"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/runtest"
)

// target is the most nsrel may add to a runtime's lifecycle (issue 14).
const target = 1.03

// BenchmarkPodman times `podman run --rm` of a busybox `true` container
// (runc, private storage, no network) without hooks, with the shipped
// hooks.d files, with nsrel-hook at all three stages, and with the
// shipped files running an empty Go program (the floor of any Go hook).
func BenchmarkPodman(b *testing.B) {
	ctx := begin(b)
	nstest.RequireRoot(b)
	podman := nstest.RequireCmd(b, "podman")
	runc := nstest.RequireCmd(b, "runc")
	hookBin := nstest.Tool(b, "nsrel-hook")
	cfg, auditLog := hookConfig(b, hookBin)
	// podman wants a runroot shorter than 50 characters.
	dir, err := os.MkdirTemp("", "nsp")
	if err != nil {
		b.Fatal(err)
	}
	cgroup := "/nsrel-bench-" + filepath.Base(dir)
	b.Cleanup(func() { runtest.RemovePodmanState(b, dir, dir, cgroup) })
	noop := nstest.GoNoop(b) // put where nsrel-hook goes: the floor of any Go hook
	hooks := map[string]string{}
	for _, v := range []string{"none", "shipped", "all", "noop"} {
		hooks[v] = filepath.Join(dir, "hooks-"+v)
		if err := os.Mkdir(hooks[v], 0o755); err != nil {
			b.Fatal(err)
		}
	}
	stages := shippedHooksD(b, hooks["shipped"], hookBin, cfg)
	allStagesHooksD(b, hooks["all"], hookBin, cfg)
	shippedHooksD(b, hooks["noop"], noop, cfg)

	global := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--tmpdir", filepath.Join(dir, "tmp"),
		"--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", runc, "--runtime-flag", "root=" + filepath.Join(dir, "runc")}
	// A local image from a busybox rootfs (podman import; nothing pulled).
	const image = "localhost/nsrel-bench:latest"
	rootfs := filepath.Join(dir, "rootfs")
	if err := bundle.Rootfs(rootfs, ""); err != nil {
		b.Fatal(err)
	}
	tar := rootfs + ".tar"
	if err := command("tar", "-C", rootfs, "-cf", tar, ".")(); err != nil {
		b.Fatal(err)
	}
	if err := command(podman, append(global, "import", tar, image)...)(); err != nil {
		b.Fatal(err)
	}
	run := func(hooksDir string) func() error {
		// --hooks-dir always: without it podman reads the host's hooks.d.
		return command(podman, append(global, "--hooks-dir", hooksDir, "run", "--rm", "--network", "none", "--cgroup-parent", cgroup,
			"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768", image, "/bin/true")...)
	}
	vs := []variant{
		{name: "podman run --rm, no hooks", key: "none", run: run(hooks["none"])},
		{name: "podman, shipped hooks.d (" + stages + ")", key: "shipped", target: target, run: run(hooks["shipped"])},
		{name: "podman, hooks.d at createRuntime,poststart,poststop", key: "all", run: run(hooks["all"])},
		{name: "podman, shipped hooks.d running an empty Go program (floor)", key: "noop", run: run(hooks["noop"])},
	}
	report(b, "podman 4.3 run --rm (busybox true, runc)", vs, alternate(ctx, b, vs, 100))
	auditSummary(b, auditLog)
}

// BenchmarkCtr times `ctr run --rm` of a busybox `true` container on a
// private containerd 2.4, its spec the shipped base runtime spec without
// hooks, as shipped, with nsrel-hook at all three stages and with an
// empty Go program at the shipped stages, and the same lifecycle through
// the Go client (image snapshot, spec from the image) without and with
// WithHook, and with WithHook running the empty Go program.
func BenchmarkCtr(b *testing.B) {
	ctx := begin(b)
	d := ctrdtest.Start(b, ctrdtest.V2(), nil)
	hookBin := nstest.Tool(b, "nsrel-hook")
	noop := nstest.GoNoop(b) // put where nsrel-hook goes: the floor of any Go hook
	cfg, auditLog := hookConfig(b, hookBin)
	const ns = "bench"
	c := d.Client(b)
	img := d.ImportBusybox(b, c, ns)
	rootfs := filepath.Join(d.Dir, "rootfs")
	if err := bundle.Rootfs(rootfs, ""); err != nil {
		b.Fatal(err)
	}
	base := filepath.Join(d.Dir, "base-runtime-spec.json")
	if err := os.WriteFile(base, shipped(b, "config/containerd/base-runtime-spec.json", hookBin, cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	stages := specStages(ctrdtest.LoadSpec(b, base).Hooks)
	// ctr --config takes the whole spec from the file: give it the
	// process, the rootfs and a cgroup below the daemon's.
	spec := func(name string, hooks func(*specs.Hooks) *specs.Hooks) string {
		s := ctrdtest.LoadSpec(b, base)
		s.Hooks = hooks(s.Hooks)
		s.Process.Args, s.Process.Env = []string{"/bin/true"}, []string{"PATH=/bin"}
		s.Root.Path = rootfs
		s.Linux.CgroupsPath = d.CgroupPath(ns, "ctr-"+name)
		data, err := json.Marshal(s)
		if err != nil {
			b.Fatal(err)
		}
		p := filepath.Join(d.Dir, "spec-"+name+".json")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
		return p
	}
	n := 0
	ctrRun := func(specPath string) func() error {
		return func() error {
			n++
			return command(d.Flavor.Ctr, "-a", d.Socket, "-n", ns, "run", "--rm", "--runc-root", d.RuncRoot,
				"--fifo-dir", filepath.Join(d.Dir, "fifo"), "--config", specPath, fmt.Sprintf("ctr-%d", n))()
		}
	}
	clientRun := func(opts ...oci.SpecOpts) func() error {
		return func() error {
			n++
			return clientLifecycle(d, c, img, ns, fmt.Sprintf("client-%d", n), opts)
		}
	}
	vs := []variant{
		{name: "ctr run --rm, base spec without hooks", key: "ctr-none", run: ctrRun(spec("none", func(*specs.Hooks) *specs.Hooks { return nil }))},
		{name: "ctr run --rm, shipped base spec (" + stages + ")", key: "ctr-shipped", target: target, run: ctrRun(spec("shipped", func(h *specs.Hooks) *specs.Hooks { return h }))},
		{name: "ctr run --rm, base spec, createRuntime,poststart,poststop", key: "ctr-all", run: ctrRun(spec("all", func(*specs.Hooks) *specs.Hooks { return allStages(hookBin, cfg) }))},
		{name: "Go client lifecycle, no hooks", key: "client-none", base: 3, run: clientRun()},
		{name: "Go client lifecycle, WithHook (" + specStages(withHookHooks(b, hookBin, cfg)) + ")", key: "client-withhook", base: 3, target: target, run: clientRun(nsrelctrd.WithHook(hookBin, cfg))},
		{name: "ctr run --rm, shipped base spec running an empty Go program (floor)", key: "ctr-noop", run: ctrRun(spec("noop", func(h *specs.Hooks) *specs.Hooks { return withPath(h, noop) }))},
		{name: "Go client lifecycle, WithHook running an empty Go program (floor)", key: "client-noop", base: 3, run: clientRun(nsrelctrd.WithHook(noop, cfg))},
	}
	report(b, "containerd 2.4 (busybox true, runc)", vs, alternate(ctx, b, vs, 100))
	auditSummary(b, auditLog)
}

// withPath returns h with every hook's path set to bin.
func withPath(h *specs.Hooks, bin string) *specs.Hooks {
	if h == nil {
		return nil
	}
	for _, hs := range [][]specs.Hook{h.CreateRuntime, h.CreateContainer, h.StartContainer, h.Poststart, h.Poststop} {
		for i := range hs {
			hs[i].Path = bin
		}
	}
	return h
}

// withHookHooks returns the hooks WithHook installs in an empty spec.
func withHookHooks(b *testing.B, hookBin, cfg string) *specs.Hooks {
	var s oci.Spec
	if err := nsrelctrd.WithHook(hookBin, cfg)(context.Background(), nil, nil, &s); err != nil {
		b.Fatal(err)
	}
	return s.Hooks
}

// clientLifecycle is what `ctr run --rm IMAGE` does through the Go
// client: a container with a snapshot of img and a spec from its config
// plus opts, a task started and waited for, then both deleted.
func clientLifecycle(d *ctrdtest.Daemon, c *client.Client, img client.Image, ns, id string, opts []oci.SpecOpts) error {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), time.Minute)
	defer cancel()
	opts = append([]oci.SpecOpts{oci.WithImageConfig(img), oci.WithProcessArgs("/bin/true"), oci.WithCgroup(d.CgroupPath(ns, id))}, opts...)
	ctr, err := c.NewContainer(ctx, id, client.WithNewSnapshot(id+"-snap", img),
		client.WithRuntime("io.containerd.runc.v2", d.RuncOptions()), client.WithNewSpec(opts...))
	if err != nil {
		return err
	}
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		return err
	}
	exit, err := task.Wait(ctx)
	if err != nil {
		return err
	}
	if err := task.Start(ctx); err != nil {
		return err
	}
	select {
	case <-exit:
	case <-ctx.Done():
		return ctx.Err()
	}
	if _, err := task.Delete(ctx); err != nil {
		return err
	}
	return ctr.Delete(ctx, client.WithSnapshotCleanup)
}

// BenchmarkCRI times a crictl pod lifecycle (runp, create, start, stop,
// rm, stopp, rmp of a host-network pod with one busybox sleep container)
// on four private containerd 2.4 daemons with CRI and NRI on: one
// without nsrel, one with `nsrel-containerd nri` (which injects
// nsrel-hook into the container), one with the shipped base runtime spec,
// and one with the shipped base runtime spec running an empty Go program
// (the floor of any Go hook at those stages).
func BenchmarkCRI(b *testing.B) {
	ctx := begin(b)
	crictl := ctrdtest.Crictl(b)
	hookBin := nstest.Tool(b, "nsrel-hook")
	plugin := nstest.Tool(b, "nsrel-containerd")
	noop := nstest.GoNoop(b) // put where nsrel-hook goes: the floor of any Go hook
	cfg, auditLog := hookConfig(b, hookBin)
	baseSpec := func(name, hook string) string {
		p := filepath.Join(b.TempDir(), name)
		if err := os.WriteFile(p, shipped(b, "config/containerd/base-runtime-spec.json", hook, cfg), 0o644); err != nil {
			b.Fatal(err)
		}
		return p
	}
	specPath, noopSpec := baseSpec("base-runtime-spec.json", hookBin), baseSpec("base-runtime-spec-noop.json", noop)
	start := func(extra string) *ctrdtest.Daemon {
		d := ctrdtest.Start(b, ctrdtest.V2(), &ctrdtest.Options{CRI: true, NRI: true, ExtraConfig: extra})
		c := d.Client(b)
		d.ImportImage(b, c, "k8s.io", ctrdtest.PauseImageName, []string{"/bin/sleep", "infinity"})
		d.ImportBusybox(b, c, "k8s.io")
		return d
	}
	plain, nri := start(""), start("")
	based, empty := start(ctrdtest.ShippedFragment(b, ctrdtest.V2(), specPath)), start(ctrdtest.ShippedFragment(b, ctrdtest.V2(), noopSpec))
	startNRI(b, plugin, nri, hookBin, cfg)
	vs := []variant{
		{name: "crictl pod lifecycle, no nsrel", key: "none", run: podLifecycle(b, crictl, plain)},
		{name: "crictl, nsrel-containerd nri (injects createRuntime,poststop)", key: "nri", target: target, run: podLifecycle(b, crictl, nri)},
		{name: "crictl, shipped base runtime spec (" + specStages(ctrdtest.LoadSpec(b, specPath).Hooks) + ")", key: "base-spec", run: podLifecycle(b, crictl, based)},
		{name: "crictl, shipped base runtime spec running an empty Go program (floor)", key: "noop", run: podLifecycle(b, crictl, empty)},
	}
	report(b, "containerd 2.4 CRI pod lifecycle (crictl 1.37, runc)", vs, alternate(ctx, b, vs, 60))
	auditSummary(b, auditLog)
}

// startNRI runs `nsrel-containerd nri` on d's NRI socket, injecting
// hookBin with config cfg, until the benchmark ends, and waits until
// containerd accepted it.
func startNRI(b *testing.B, plugin string, d *ctrdtest.Daemon, hookBin, cfg string) {
	b.Helper()
	ready := filepath.Join(d.Dir, "nri.ready")
	logf, err := os.Create(filepath.Join(d.Dir, "nri.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(plugin, "nri", "--config", cfg, "--socket", d.NRISocket, "--inject-hook", hookBin, "--hook-config", cfg,
		"--metrics-address", "", "--ready-file", ready)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			return
		}
		select {
		case <-done:
			out, _ := os.ReadFile(logf.Name())
			b.Fatalf("nsrel-containerd nri exited:\n%s", out)
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("nsrel-containerd nri not registered within 30 s\n%s", d.LogTail())
		}
	}
}

// podLifecycle returns one crictl pod lifecycle on d.
func podLifecycle(b *testing.B, crictl string, d *ctrdtest.Daemon) func() error {
	b.Helper()
	pod, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"name": "bench", "namespace": "bench", "uid": "bench-uid"},
		"linux": map[string]any{"cgroup_parent": d.CgroupParent() + "/k8s",
			"security_context": map[string]any{"namespace_options": map[string]any{"network": 2}}}, // host network: no CNI here
	})
	if err != nil {
		b.Fatal(err)
	}
	podCfg := filepath.Join(d.Dir, "pod.json")
	if err := os.WriteFile(podCfg, pod, 0o644); err != nil {
		b.Fatal(err)
	}
	ctrCfg := ctrdtest.CtrConfig(b, "app")
	return func() error {
		step := func(args ...string) (string, error) {
			out, stderr, err := d.Crictl(crictl, args...)
			if err != nil {
				return "", fmt.Errorf("crictl %v: %v: %s", args, err, stderr)
			}
			return out, nil
		}
		podID, err := step("runp", podCfg)
		if err != nil {
			return err
		}
		id, err := step("create", podID, ctrCfg, podCfg)
		if err != nil {
			return err
		}
		for _, args := range [][]string{{"start", id}, {"stop", id}, {"rm", id}, {"stopp", podID}, {"rmp", podID}} {
			if _, err := step(args...); err != nil {
				return err
			}
		}
		return nil
	}
}
