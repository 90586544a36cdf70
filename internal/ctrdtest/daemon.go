package ctrdtest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/moby/sys/mountinfo"

	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/internal/nstest"
)

// Flavor is one containerd build the tests run against.
type Flavor struct {
	// Name names the flavor in subtest names: "containerd-1.6", "containerd-2.4".
	Name string
	// Bin is the containerd daemon binary.
	Bin string
	// ShimDir holds the matching containerd-shim-runc-v2; it is put
	// first on the daemon's PATH so the daemon starts its own shim.
	ShimDir string
	// Ctr is the matching ctr binary.
	Ctr string
	// ConfigVersion is the config schema the daemon reads (2 for 1.x, 3 for 2.x).
	ConfigVersion int
}

// Tools returns $NSREL_TOOLS, by default ~/.cache/nsrel/tools.
func Tools() string {
	if d := os.Getenv("NSREL_TOOLS"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "nsrel", "tools")
}

// Debian16 is Debian's containerd 1.6 package.
func Debian16() Flavor {
	return Flavor{Name: "containerd-1.6", Bin: "/usr/bin/containerd", ShimDir: "/usr/bin", Ctr: "/usr/bin/ctr", ConfigVersion: 2}
}

// V2 is containerd v2.4.2 built by scripts/deps.sh.
func V2() Flavor {
	dir := filepath.Join(Tools(), "containerd-v2.4.2")
	return Flavor{Name: "containerd-2.4", Bin: filepath.Join(dir, "containerd"), ShimDir: dir, Ctr: filepath.Join(dir, "ctr"), ConfigVersion: 3}
}

// Flavors returns every flavor the tests cover.
func Flavors() []Flavor { return []Flavor{Debian16(), V2()} }

// Options tune a daemon.
type Options struct {
	// CRI keeps the CRI plugin on (off by default: it is slow to start
	// and not needed for client-created containers).
	CRI bool
	// NRI keeps the NRI plugin on (containerd 2.x) with its socket in
	// the daemon directory.
	NRI bool
	// NRISocket, if set with NRI, is where the NRI socket goes (its
	// directory must exist); by default in the daemon directory.
	NRISocket string
	// ExtraConfig is TOML appended to the generated config.
	ExtraConfig string
}

// Daemon is a running containerd private to one test.
type Daemon struct {
	Flavor Flavor
	// Dir is the daemon's private directory; everything below lives in it.
	Dir string
	// Socket is the gRPC address.
	Socket string
	// Root and State are --root and --state.
	Root, State string
	// RuncRoot is the runc root containers of this daemon use (runc adds
	// the containerd namespace as a subdirectory).
	RuncRoot string
	// NRISocket is the NRI socket when Options.NRI is set.
	NRISocket string
	// ConfigPath and LogPath are the config file and the daemon's output.
	ConfigPath, LogPath string

	opts Options
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Require checks that the flavor's binaries are installed.
func Require(t testing.TB, f Flavor) {
	t.Helper()
	nstest.RequireRoot(t)
	for _, p := range []string{f.Bin, filepath.Join(f.ShimDir, "containerd-shim-runc-v2"), f.Ctr} {
		_, err := os.Stat(p)
		nstest.Require(t, err == nil, "%s needs %s (%v); `make deps` installs it", f.Name, p, err)
	}
	nstest.RequireCmd(t, "runc")
	_, err := os.Stat("/bin/busybox")
	nstest.Require(t, err == nil, "needs /bin/busybox (busybox-static): %v", err)
}

// Start starts a daemon of flavor f in a fresh private directory and
// arranges for everything to be torn down when the test ends.
func Start(t testing.TB, f Flavor, o *Options) *Daemon {
	t.Helper()
	Require(t, f)
	dir, err := os.MkdirTemp("", "nc")
	if err != nil {
		t.Fatal(err)
	}
	// Containers with their own user namespace must traverse the
	// directory to reach their rootfs.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{
		Flavor:     f,
		Dir:        dir,
		Socket:     filepath.Join(dir, "c.sock"),
		Root:       filepath.Join(dir, "root"),
		State:      filepath.Join(dir, "state"),
		RuncRoot:   filepath.Join(dir, "runc"),
		ConfigPath: filepath.Join(dir, "config.toml"),
		LogPath:    filepath.Join(dir, "containerd.log"),
	}
	if o != nil {
		d.opts = *o
	}
	if d.opts.NRI {
		d.NRISocket = filepath.Join(dir, "nri.sock")
		if d.opts.NRISocket != "" {
			d.NRISocket = d.opts.NRISocket
		}
	}
	t.Cleanup(func() { d.teardown(t) })
	if err := os.WriteFile(d.ConfigPath, []byte(d.config()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.start(); err != nil {
		t.Fatalf("%s: %v", f.Name, err)
	}
	return d
}

func (d *Daemon) config() string {
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "version = %d\nroot = %s\nstate = %s\n", d.Flavor.ConfigVersion, q(d.Root), q(d.State))
	var disabled []string
	criRuntime := `plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options`
	if d.Flavor.ConfigVersion >= 3 {
		criRuntime = `plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options`
		if !d.opts.CRI {
			disabled = append(disabled, "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images", "io.containerd.podsandbox.controller.v1.podsandbox")
		}
		if !d.opts.NRI {
			disabled = append(disabled, "io.containerd.nri.v1.nri")
		}
	} else if !d.opts.CRI {
		disabled = append(disabled, "io.containerd.grpc.v1.cri")
	}
	disabled = append(disabled, "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs")
	for i := range disabled {
		disabled[i] = q(disabled[i])
	}
	fmt.Fprintf(&b, "disabled_plugins = [%s]\n", strings.Join(disabled, ", "))
	fmt.Fprintf(&b, "\n[grpc]\n  address = %s\n", q(d.Socket))
	fmt.Fprintf(&b, "\n[ttrpc]\n  address = %s\n", q(d.Socket+".ttrpc"))
	fmt.Fprintf(&b, "\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = %s\n", q(filepath.Join(d.Dir, "opt")))
	if d.opts.CRI {
		cni := fmt.Sprintf("  conf_dir = %s\n  bin_dir = %s\n", q(filepath.Join(d.Dir, "cni")), q(filepath.Join(d.Dir, "cni-bin")))
		// Streaming on a random local port (several daemons run at once),
		// no CAP_SYS_RESOURCE on the test VM, a local pause image.
		if d.Flavor.ConfigVersion >= 3 {
			fmt.Fprintf(&b, "\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n")
			fmt.Fprintf(&b, "\n[plugins.\"io.containerd.cri.v1.runtime\"]\n  restrict_oom_score_adj = true\n")
			fmt.Fprintf(&b, "\n[plugins.\"io.containerd.cri.v1.runtime\".cni]\n%s", cni)
			fmt.Fprintf(&b, "\n[plugins.\"io.containerd.cri.v1.images\".pinned_images]\n  sandbox = %s\n", q(PauseImageName))
		} else {
			fmt.Fprintf(&b, "\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n  restrict_oom_score_adj = true\n  sandbox_image = %s\n", q(PauseImageName))
			fmt.Fprintf(&b, "\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\n%s", cni)
		}
		fmt.Fprintf(&b, "\n[%s]\n  Root = %s\n", criRuntime, q(d.RuncRoot))
	}
	if d.opts.NRI {
		fmt.Fprintf(&b, "\n[plugins.\"io.containerd.nri.v1.nri\"]\n  disable = false\n  socket_path = %s\n  plugin_path = %s\n  plugin_config_path = %s\n",
			q(d.NRISocket), q(filepath.Join(d.Dir, "nri-plugins")), q(filepath.Join(d.Dir, "nri-conf")))
	}
	b.WriteString(d.opts.ExtraConfig)
	return b.String()
}

// start launches the daemon and waits until it serves.
func (d *Daemon) start() error {
	logf, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(d.Flavor.Bin, "--config", d.ConfigPath, "--log-level", "info")
	cmd.Env = []string{"PATH=" + d.Flavor.ShimDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + d.Dir}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	d.mu.Lock()
	d.cmd, d.done = cmd, done
	d.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("containerd exited at start; log:\n%s", d.LogTail())
		default:
		}
		if _, err := os.Stat(d.Socket); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ok, err := serving(ctx, d.Socket)
			cancel()
			if ok && err == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("containerd did not serve on %s within 60s; log:\n%s", d.Socket, d.LogTail())
}

func serving(ctx context.Context, sock string) (bool, error) {
	c, err := client.New(sock, client.WithTimeout(2*time.Second))
	if err != nil {
		return false, err
	}
	defer c.Close()
	return c.IsServing(ctx)
}

// LogTail returns the last lines of the daemon's output.
func (d *Daemon) LogTail() string {
	b, _ := os.ReadFile(d.LogPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// Stop stops the daemon with SIGTERM (SIGKILL after 15 s). Shims and
// containers keep running, as with a real daemon restart.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Pid returns the daemon's process ID, 0 when it is stopped.
func (d *Daemon) Pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Restart stops and starts the daemon on the same directories.
func (d *Daemon) Restart(t testing.TB) {
	t.Helper()
	d.Stop(t)
	if err := d.start(); err != nil {
		t.Fatalf("%s restart: %v", d.Flavor.Name, err)
	}
}

// Client returns a client connected to the daemon, closed when the test ends.
func (d *Daemon) Client(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.New(d.Socket, client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("connect %s: %v", d.Socket, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// RuncOptions are the runtime options that keep a container's runc
// state in the daemon's private runc root.
func (d *Daemon) RuncOptions() *options.Options { return &options.Options{Root: d.RuncRoot} }

// CgroupPath is the cgroup path [Daemon.Run] gives container id in
// namespace ns: below [Daemon.CgroupParent].
func (d *Daemon) CgroupPath(ns, id string) string {
	return filepath.Join(d.CgroupParent(), ns, id)
}

// CgroupParent is a cgroup private to the daemon, removed at teardown:
// put containers (and CRI pods, through cgroup_parent) below it.
func (d *Daemon) CgroupParent() string { return "/nsrel-test-" + filepath.Base(d.Dir) }

// RemoveCgroups removes the cgroup directories below parent in every
// mounted hierarchy, deepest first, retrying for a few seconds while
// killed processes leave them; it returns those it could not remove.
func RemoveCgroups(parent string) []string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		tops, _ := filepath.Glob("/sys/fs/cgroup/*" + parent)
		if top := "/sys/fs/cgroup" + parent; !slices.Contains(tops, top) {
			tops = append(tops, top)
		}
		var left []string
		for _, top := range tops {
			var dirs []string
			filepath.WalkDir(top, func(p string, e fs.DirEntry, err error) error {
				if err == nil && e.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			for i := len(dirs) - 1; i >= 0; i-- {
				if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
					left = append(left, dirs[i])
				}
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// teardown kills and deletes every container, stops the daemon, kills
// whatever survived, detaches leftover mounts and removes the directory.
func (d *Daemon) teardown(t testing.TB) {
	socks := d.shimSockets()
	defer func() {
		// A shim killed, not shut down, leaves its socket behind.
		for _, s := range socks {
			os.Remove(s)
		}
	}()
	d.mu.Lock()
	running := d.cmd != nil
	d.mu.Unlock()
	if !running {
		// A test stopped it: start it again so that containers are
		// deleted the normal way (shims remove their sockets in
		// /run/containerd/s and runc its cgroups).
		running = d.start() == nil
	}
	if running {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if err := d.deleteAll(ctx); err != nil {
			t.Logf("%s teardown: %v", d.Flavor.Name, err)
		}
		cancel()
	}
	d.Stop(t)
	killLeftovers(d.RuncRoot, d.Dir)
	if left := RemoveCgroups(d.CgroupParent()); len(left) > 0 {
		t.Errorf("%s teardown: cgroups left: %v", d.Flavor.Name, left)
	}
	if err := UnmountUnder(d.Dir); err != nil {
		t.Errorf("%s teardown: %v", d.Flavor.Name, err)
	}
	if err := os.RemoveAll(d.Dir); err != nil {
		t.Errorf("%s teardown: %v", d.Flavor.Name, err)
	}
}

// shimSockets returns the paths of the sockets the shims of the tasks in
// the daemon's state directory listen on (and their debug sockets), as
// containerd names them: /run/containerd/s/ and the SHA-256 of
// ADDRESS/NAMESPACE/ID.
func (d *Daemon) shimSockets() []string {
	tasks, _ := filepath.Glob(filepath.Join(d.State, "io.containerd.runtime.v2.task", "*", "*"))
	var out []string
	for _, task := range tasks {
		ns, id := filepath.Base(filepath.Dir(task)), filepath.Base(task)
		for _, p := range []string{filepath.Join(d.Socket, ns, id), filepath.Join(d.Socket, ns, id, "debug")} {
			out = append(out, fmt.Sprintf("/run/containerd/s/%x", sha256.Sum256([]byte(p))))
		}
	}
	return out
}

func (d *Daemon) deleteAll(ctx context.Context) error {
	c, err := client.New(d.Socket, client.WithTimeout(5*time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	nss, err := c.NamespaceService().List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		cs, err := c.Containers(nctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, ctr := range cs {
			if task, err := ctr.Task(nctx, nil); err == nil {
				task.Kill(nctx, syscall.SIGKILL, client.WithKillAll)
				if ch, err := task.Wait(nctx); err == nil {
					select {
					case <-ch:
					case <-time.After(10 * time.Second):
					}
				}
				if _, err := task.Delete(nctx, client.WithProcessKill); err != nil {
					errs = append(errs, fmt.Errorf("delete task %s/%s: %w", ns, ctr.ID(), err))
				}
			}
			if err := ctr.Delete(nctx, client.WithSnapshotCleanup); err != nil {
				errs = append(errs, fmt.Errorf("delete container %s/%s: %w", ns, ctr.ID(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// killLeftovers SIGKILLs container init processes recorded under
// runcRoot and every process whose command line names dir (shims carry
// the daemon address in their arguments), and waits until they are gone.
func killLeftovers(runcRoot, dir string) {
	var pids []int
	states, _ := filepath.Glob(filepath.Join(runcRoot, "*", "*", "state.json"))
	for _, s := range states {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		var st struct {
			PID   int    `json:"init_process_pid"`
			Start uint64 `json:"init_process_start"`
		}
		// Only the process runc started: a container that exited left
		// its PID free, for another package's test to take.
		if json.Unmarshal(b, &st) == nil && st.PID > 1 && st.Start != 0 && inspect.Runs(st.PID, st.Start) {
			pids = append(pids, st.PID)
		}
	}
	// dir+"/": another daemon's directory may start with this one's name.
	killPIDs(append(pids, Mentioning(dir+"/")...))
}

// Mentioning returns the processes (other than this one) whose command
// line contains s.
func Mentioning(s string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// KillMentioning SIGKILLs the processes whose command line contains s
// (for example a test's private directory) and waits until they are gone.
func KillMentioning(s string) { killPIDs(Mentioning(s)) }

func killPIDs(pids []int) {
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGKILL)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for unix.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// UnmountUnder lazily unmounts every mount point below dir, deepest first.
func UnmountUnder(dir string) error {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return err
	}
	sort.Slice(ms, func(i, j int) bool { return len(ms[i].Mountpoint) > len(ms[j].Mountpoint) })
	var errs []error
	for _, m := range ms {
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.Mountpoint, err))
		}
	}
	return errors.Join(errs...)
}
