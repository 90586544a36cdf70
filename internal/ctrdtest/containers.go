package ctrdtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/hook/policy"
)

var importMu sync.Mutex

// Context returns a context in containerd namespace ns, cancelled when
// the test ends.
func Context(t testing.TB, ns string) context.Context {
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), ns))
	t.Cleanup(cancel)
	return ctx
}

// ImportBusybox imports the busybox image into namespace ns of the
// daemon (once per namespace) and unpacks it for the overlayfs
// snapshotter.
func (d *Daemon) ImportBusybox(t testing.TB, c *client.Client, ns string) client.Image {
	t.Helper()
	return d.ImportImage(t, c, ns, ImageName, []string{"/bin/sh"})
}

// ImportImage imports a busybox image named name with command cmd into
// namespace ns (once) and unpacks it for the overlayfs snapshotter.
func (d *Daemon) ImportImage(t testing.TB, c *client.Client, ns, name string, cmd []string) client.Image {
	t.Helper()
	return d.ImportLabelled(t, c, ns, name, cmd, nil)
}

// ImportLabelled imports a busybox image as [Daemon.ImportImage] does,
// with labels in its config (an image author's, which containers made
// from it carry).
func (d *Daemon) ImportLabelled(t testing.TB, c *client.Client, ns, name string, cmd []string, labels map[string]string) client.Image {
	t.Helper()
	importMu.Lock()
	defer importMu.Unlock()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 60*time.Second)
	defer cancel()
	if img, err := c.GetImage(ctx, name); err == nil {
		return img
	}
	path := filepath.Join(d.Dir, strings.NewReplacer("/", "_", ":", "_").Replace(name)+".tar")
	if _, err := os.Stat(path); err != nil {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := BusyboxOCITar(f, "/bin/busybox", name, cmd, labels); err != nil {
			f.Close()
			t.Fatalf("build busybox image: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return d.ImportTar(t, c, ns, path)
}

// ImportTar imports and unpacks the OCI image layout tar at path into
// namespace ns (the image named by its io.containerd.image.name
// annotation).
func (d *Daemon) ImportTar(t testing.TB, c *client.Client, ns, path string) client.Image {
	t.Helper()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 60*time.Second)
	defer cancel()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	imgs, err := c.Import(ctx, f)
	if err != nil {
		t.Fatalf("%s: import %s into %s: %v", d.Flavor.Name, path, ns, err)
	}
	if len(imgs) != 1 {
		t.Fatalf("%s: import %s: %d images, want 1", d.Flavor.Name, path, len(imgs))
	}
	img := client.NewImage(c, imgs[0])
	if err := img.Unpack(ctx, "overlayfs"); err != nil {
		t.Fatalf("%s: unpack %s in %s: %v", d.Flavor.Name, path, ns, err)
	}
	return img
}

// RunOpts tune a container started by [Daemon.Run].
type RunOpts struct {
	// Args is the process; default sleep 3600.
	Args []string
	// UserNS gives the container its own user namespace mapping root to
	// host UID/GID 100000 (65536 IDs).
	UserNS bool
	// Labels are container labels (e.g. CRI pod labels).
	Labels map[string]string
	// SpecOpts are applied after the defaults.
	SpecOpts []oci.SpecOpts
	// NoStart creates the container without a task.
	NoStart bool
}

// Run creates container id in namespace ns from the busybox image, starts
// its task and returns the container and the task's host PID (0 with
// NoStart). The container is deleted when the test ends (the daemon's
// teardown catches it otherwise).
func (d *Daemon) Run(t testing.TB, c *client.Client, ns, id string, o *RunOpts) (client.Container, uint32) {
	t.Helper()
	if o == nil {
		o = &RunOpts{}
	}
	img := d.ImportBusybox(t, c, ns)
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 60*time.Second)
	defer cancel()
	args := o.Args
	if len(args) == 0 {
		args = []string{"sleep", "3600"}
	}
	specOpts := []oci.SpecOpts{oci.WithImageConfig(img), oci.WithProcessArgs(args...), oci.WithCgroup(d.CgroupPath(ns, id))}
	if o.UserNS {
		m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		specOpts = append(specOpts, oci.WithUserNamespace(m, m))
	}
	specOpts = append(specOpts, o.SpecOpts...)
	ctr, err := c.NewContainer(ctx, id,
		client.WithNewSnapshot(id+"-snap", img),
		client.WithRuntime("io.containerd.runc.v2", d.RuncOptions()),
		client.WithContainerLabels(o.Labels),
		client.WithNewSpec(specOpts...),
	)
	if err != nil {
		t.Fatalf("%s: new container %s/%s: %v", d.Flavor.Name, ns, id, err)
	}
	t.Cleanup(func() { Delete(ns, ctr) })
	if o.NoStart {
		return ctr, 0
	}
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatalf("%s: new task %s/%s: %v\n%s", d.Flavor.Name, ns, id, err, d.LogTail())
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("%s: start task %s/%s: %v", d.Flavor.Name, ns, id, err)
	}
	return ctr, task.Pid()
}

// Delete kills the task and deletes the container, ignoring
// errors (the daemon may be gone already).
func Delete(ns string, ctr client.Container) {
	DeleteTask(ns, ctr)
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 20*time.Second)
	defer cancel()
	ctr.Delete(ctx, client.WithSnapshotCleanup)
}

// DeleteTask kills the container's task, waits for it to exit and
// deletes it, leaving the container for a new task; it returns why it
// could not (the daemon may be gone already).
func DeleteTask(ns string, ctr client.Container) error {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 20*time.Second)
	defer cancel()
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return err
	}
	task.Kill(ctx, syscall.SIGKILL, client.WithKillAll)
	if ch, err := task.Wait(ctx); err == nil {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
	_, err = task.Delete(ctx, client.WithProcessKill)
	return err
}

// RestartTask ends the task of container ctr in namespace ns
// ([DeleteTask]) and starts a new one, as a container started again
// under its ID. It returns a time between the two (after the old task
// exited, before the new one was made) and the new task's PID.
func RestartTask(t testing.TB, ns string, ctr client.Container) (time.Time, uint32) {
	t.Helper()
	if err := DeleteTask(ns, ctr); err != nil {
		t.Fatal(err)
	}
	between := time.Now()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 30*time.Second)
	defer cancel()
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return between, task.Pid()
}

// CtrRun starts container id in namespace ns from the busybox image with
// the flavor's ctr (`ctr run -d`), its runc state in the daemon's runc
// root, its FIFOs in the daemon's directory and its cgroup below the
// daemon's, and returns ctr's output. The daemon's teardown deletes it.
func (d *Daemon) CtrRun(t testing.TB, ns, id string, args ...string) string {
	t.Helper()
	d.ImportBusybox(t, d.Client(t), ns)
	// --fifo-dir: ctr leaves a detached container's FIFOs behind, by
	// default in the shared /run/containerd/fifo.
	cmdArgs := []string{"-a", d.Socket, "-n", ns, "run", "-d", "--fifo-dir", filepath.Join(d.Dir, "fifo"), "--runc-root", d.RuncRoot, "--cgroup", d.CgroupPath(ns, id), ImageName, id}
	if len(args) == 0 {
		args = []string{"sleep", "3600"}
	}
	cmd := exec.Command(d.Flavor.Ctr, append(cmdArgs, args...)...)
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	cmd.Stdin = devnull
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: ctr run %s/%s: %v\n%s", d.Flavor.Name, ns, id, err, out)
	}
	return string(out)
}

// Uniq returns name made unique to this test process, so that tests of
// several packages running at once never share a container ID.
func Uniq(name string) string { return fmt.Sprintf("%s-%d", name, os.Getpid()) }

// HookConfig writes an nsrel-hook config (audit mode, requiring user and
// PID namespaces) whose audit log and diagnostics log live in a fresh
// directory, and returns the config path and the parsed config.
func HookConfig(t testing.TB) (string, *policy.Config) {
	t.Helper()
	return ConfigWith(t, `"on_error": "allow",
	"deadline_ms": 3000,
	"default": {"name": "default", "mode": "audit", "rules": {"require_user_namespace": true, "require_pid_namespace": true}}`)
}

// ConfigWith writes an nsrel-hook config of version 1 whose audit log
// and diagnostics log live in a fresh directory, with members (JSON
// object members: on_error, the blocks, ...) after them, and returns the
// config path and the parsed config.
func ConfigWith(t testing.TB, members string) (string, *policy.Config) {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf("{\n\t\"version\": 1,\n\t\"audit_log\": %q,\n\t\"log_file\": %q,\n\t%s\n}", filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "hook.log"), members)
	p := filepath.Join(dir, "hook.json")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := policy.Load(p)
	if err != nil {
		t.Fatalf("hook config: %v", err)
	}
	return p, c
}

// Logger returns a debug-level logger that writes to the test's log, each
// line prefixed with prefix (e.g. "recorder: ").
func Logger(t testing.TB, prefix string) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(testWriter{t, prefix})
	l.SetLevel(logrus.DebugLevel)
	return l
}

type testWriter struct {
	t      testing.TB
	prefix string
}

func (w testWriter) Write(p []byte) (int, error) { w.t.Logf("%s%s", w.prefix, p); return len(p), nil }

// MuteSocket returns a socket that accepts connections and never
// answers, open until the test ends.
func MuteSocket(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ns")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := net.Listen("unix", filepath.Join(dir, "mute.sock"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return filepath.Join(dir, "mute.sock")
}
