package ctrdtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/nsrel/nsrel/nsrel"
)

// TestDaemonLifecycle starts each flavor, runs a container in two
// namespaces (one with a user namespace), checks the runc state lands in
// the private runc root and the container's namespaces are its own,
// restarts the daemon and checks the task survives.
func TestDaemonLifecycle(t *testing.T) {
	for _, f := range Flavors() {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			d := Start(t, f, nil)
			c := d.Client(t)
			id := fmt.Sprintf("life-%d", os.Getpid())
			_, pid := d.Run(t, c, "default", id, nil)
			_, upid := d.Run(t, c, "other", id+"-u", &RunOpts{UserNS: true})
			// ctr run keeps its FIFOs in the daemon's directory, not in
			// the shared /run/containerd/fifo.
			d.CtrRun(t, "default", id+"-ctr")
			if fifos, _ := filepath.Glob(filepath.Join(d.Dir, "fifo", "*", "*")); len(fifos) == 0 {
				t.Errorf("ctr run left no FIFOs in %s", filepath.Join(d.Dir, "fifo"))
			}
			for _, p := range []string{filepath.Join(d.RuncRoot, "default", id, "state.json"), filepath.Join(d.RuncRoot, "other", id+"-u", "state.json")} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("runc state not in the private root: %v", err)
				}
			}
			self, err := nsrel.NameOf(nsrel.Path("/proc/self/ns/user"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := nsrel.NameOf(nsrel.Path("/proc/" + strconv.Itoa(int(upid)) + "/ns/user"))
			if err != nil {
				t.Fatal(err)
			}
			if got == self {
				t.Errorf("user-namespaced container %d shares the host user namespace %v", upid, got)
			}
			d.Restart(t)
			if _, err := os.Stat("/proc/" + strconv.Itoa(int(pid))); err != nil {
				t.Errorf("container process %d did not survive a daemon restart: %v", pid, err)
			}
			c2 := d.Client(t)
			ctx := Context(t, "default")
			ctr, err := c2.LoadContainer(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			task, err := ctr.Task(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if task.Pid() != pid {
				t.Errorf("pid after restart = %d, want %d", task.Pid(), pid)
			}
		})
	}
}

// TestTeardownRemovesShimSocket: a shim killed (not shut down) leaves
// its socket in /run/containerd/s; the teardown removes it. Such
// sockets were left behind by the suite now and then.
func TestTeardownRemovesShimSocket(t *testing.T) {
	for _, f := range Flavors() {
		var socks []string
		t.Run(f.Name, func(t *testing.T) {
			d := Start(t, f, nil)
			c := d.Client(t)
			d.Run(t, c, "default", fmt.Sprintf("sock-%d", os.Getpid()), nil)
			for _, s := range d.shimSockets() {
				if _, err := os.Stat(s); err == nil {
					socks = append(socks, s)
				}
			}
			if len(socks) == 0 {
				t.Fatalf("no shim socket among %v", d.shimSockets())
			}
			// The shim killed: its socket stays.
			for _, pid := range Mentioning("containerd-shim") {
				if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); strings.Contains(string(b), d.Socket) {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		})
		for _, s := range socks {
			if _, err := os.Stat(s); err == nil {
				t.Errorf("%s: %s left after the teardown", f.Name, s)
			}
		}
	}
}
