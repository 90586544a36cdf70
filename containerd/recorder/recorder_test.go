package recorder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/google/go-cmp/cmp"

	"github.com/nsrel/nsrel/containerd"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/inspect"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// startRecorder runs a recorder against the daemon at addr until the test
// ends (mod, if set, adjusts it first) and returns a channel that
// receives after each (re)connection.
func startRecorder(t *testing.T, addr, cfgPath string, mod func(*Recorder)) <-chan struct{} {
	t.Helper()
	connected, _ := runRecorder(t, addr, cfgPath, mod)
	return connected
}

// runRecorder is startRecorder that also returns a function stopping the
// recorder before the test ends.
func runRecorder(t *testing.T, addr, cfgPath string, mod func(*Recorder)) (<-chan struct{}, func()) {
	t.Helper()
	connected, stop := runRecorderErr(t, addr, cfgPath, mod)
	return connected, func() { stop() }
}

// runRecorderErr is runRecorder whose stop function returns what Run
// returned, nil for a clean stop.
func runRecorderErr(t *testing.T, addr, cfgPath string, mod func(*Recorder)) (<-chan struct{}, func() error) {
	t.Helper()
	return runRecorderCtx(t, context.Background(), addr, cfgPath, mod)
}

// runRecorderCtx is runRecorderErr with the recorder stopped when parent
// is done too (its stop function then waits for Run to return).
func runRecorderCtx(t *testing.T, parent context.Context, addr, cfgPath string, mod func(*Recorder)) (<-chan struct{}, func() error) {
	t.Helper()
	cfg, err := policy.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	log := openLog(t, cfg.AuditLog)
	connected := make(chan struct{}, 16)
	logger := ctrdtest.Logger(t, "recorder: ")
	r := &Recorder{Address: addr, Config: cfg, Log: log, Logger: logger, MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		Connected: func() { connected <- struct{}{} }}
	if mod != nil {
		mod(r)
	}
	ctx, cancel := context.WithCancel(parent)
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = r.Run(ctx) })
	stop := func() error {
		cancel()
		wg.Wait()
		if errors.Is(runErr, context.Canceled) {
			return nil // a clean stop
		}
		return runErr
	}
	t.Cleanup(func() { stop() })
	waitConnected(t, connected, "recorder did not connect")
	return connected, stop
}

// recorderSetup starts a containerd 2.x daemon with the busybox image
// in namespace "default" and a recorder (adjusted by mod) writing to a
// fresh audit log; it returns the hook config, the daemon and a client.
// The daemon's log is shown when the test fails.
func recorderSetup(t *testing.T, mod func(*Recorder)) (*policy.Config, *ctrdtest.Daemon, *client.Client) {
	t.Helper()
	cfgPath, cfg := ctrdtest.HookConfig(t)
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(d.LogPath)
			t.Logf("containerd log:\n%s", b)
		}
	})
	c := d.Client(t)
	d.ImportBusybox(t, c, "default")
	startRecorder(t, d.Socket, cfgPath, mod)
	return cfg, d, c
}

// busyboxDaemon starts a containerd 2.x daemon with the busybox image in
// namespace "default" and returns a hook config (its path too), the
// daemon and a client.
func busyboxDaemon(t *testing.T) (string, *policy.Config, *ctrdtest.Daemon, *client.Client) {
	t.Helper()
	cfgPath, cfg := ctrdtest.HookConfig(t)
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	c := d.Client(t)
	d.ImportBusybox(t, c, "default")
	return cfgPath, cfg, d, c
}

// waitConnected waits for the recorder's next (re)connection.
func waitConnected(t *testing.T, connected <-chan struct{}, msg string) {
	t.Helper()
	select {
	case <-connected:
	case <-time.After(30 * time.Second):
		t.Fatal(msg)
	}
}

const evStart, evExit = "containerd-events/start", "containerd-events/exit"

// TestRecorder checks, on each daemon flavor, that the event recorder
// writes exactly one start record per container start (Go client or ctr)
// in any containerd namespace, none for a container nsrel-hook recorded,
// an exit record for the starts it recorded, and that it survives a daemon
// restart with a gap record, while the chain stays intact.
func TestRecorder(t *testing.T) {
	hookBin := nstest.Tool(t, "nsrel-hook")
	for _, f := range ctrdtest.Flavors() {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			cfgPath, cfg := ctrdtest.HookConfig(t)
			d := ctrdtest.Start(t, f, nil)
			c := d.Client(t)
			// A container running before the recorder starts is caught up.
			early := ctrdtest.Uniq("early")
			_, earlyPID := d.Run(t, c, "default", early, nil)
			// The recorder reaches the daemon through a symlink that the
			// test removes to keep it away while containers start.
			link := filepath.Join(d.Dir, "link.sock")
			if err := os.Symlink(d.Socket, link); err != nil {
				t.Fatal(err)
			}
			connected := startRecorder(t, link, cfgPath, nil)
			audittest.Wait(t, cfg.AuditLog, "catch-up", func(rs []*audit.Record) bool { return audittest.Count(rs, early, evStart) == 1 })

			plain, moby, hooked, marker := ctrdtest.Uniq("plain"), ctrdtest.Uniq("0123456789abcdef"), ctrdtest.Uniq("hooked"), ctrdtest.Uniq("marker")
			ctr, plainPID := d.Run(t, c, "default", plain, &ctrdtest.RunOpts{UserNS: true})
			mobyCtr, mobyPID := d.Run(t, c, "moby", moby, nil)
			d.Run(t, c, "k8s.io", hooked, &ctrdtest.RunOpts{SpecOpts: []oci.SpecOpts{containerd.WithHook(hookBin, cfgPath)}})
			withCtr := ctrdtest.Uniq("ctr-run")
			d.CtrRun(t, "default", withCtr)
			// Events arrive in order: once the marker is recorded, the
			// hooked container's start has been handled.
			d.Run(t, c, "default", marker, nil)
			recs := audittest.Wait(t, cfg.AuditLog, "marker start", func(rs []*audit.Record) bool { return audittest.Count(rs, marker, evStart) == 1 })
			for _, tc := range []struct {
				id, ns string
				pid    uint32
			}{{plain, "default", plainPID}, {moby, "moby", mobyPID}, {early, "default", earlyPID}, {withCtr, "default", ctrPID(t, d, withCtr)}} {
				if n := audittest.Count(recs, tc.id, evStart); n != 1 {
					t.Errorf("%s: %d start records, want 1", tc.id, n)
				}
				for _, r := range recs {
					if r.ContainerID == tc.id && r.Stage == audit.StageStart {
						if r.Ancestry == nil || r.PID != int(tc.pid) || r.Namespace != tc.ns {
							t.Errorf("%s: record %+v, want pid %d namespace %s", tc.id, r, tc.pid, tc.ns)
						} else if got, want := r.User[0].Ino, nstest.Ino(t, int(tc.pid), "user"); got != want {
							t.Errorf("%s: user ns %d, want %d", tc.id, got, want)
						}
					}
				}
			}
			if diff := cmp.Diff([]string{"oci-hook/createRuntime"}, audittest.SourceStages(recs, hooked)); diff != "" {
				t.Errorf("hook-recorded container (-want +got):\n%s", diff)
			}

			// An exit refers back to the recorder's start record.
			ctrdtest.Delete("default", ctr)
			recs = audittest.Wait(t, cfg.AuditLog, "plain exit", func(rs []*audit.Record) bool { return audittest.Count(rs, plain, evExit) == 1 })
			i := slices.IndexFunc(recs, func(r *audit.Record) bool { return r.ContainerID == plain && r.Stage == audit.StageExit })
			if ref := recs[i].Ref; ref == nil || ref.Stage != audit.StageStart {
				t.Errorf("exit record ref %+v, want the start record", ref)
			}

			// Restart the daemon while the recorder cannot reach it and
			// start a container in the gap: once it reconnects, the
			// recorder records the gap, then the container started in it,
			// and keeps recording.
			if err := os.Remove(link); err != nil {
				t.Fatal(err)
			}
			d.Restart(t)
			inGap := ctrdtest.Uniq("in-gap")
			_, inGapPID := d.Run(t, d.Client(t), "default", inGap, nil)
			// A container the recorder saw start ends in the gap: the
			// walk after reconnecting records its exit.
			ctrdtest.Delete("moby", mobyCtr)
			if err := os.Symlink(d.Socket, link); err != nil {
				t.Fatal(err)
			}
			waitConnected(t, connected, "recorder did not reconnect after a daemon restart")
			after := ctrdtest.Uniq("after")
			d.Run(t, d.Client(t), "default", after, nil)
			recs = audittest.Wait(t, cfg.AuditLog, "start after restart", func(rs []*audit.Record) bool { return audittest.Count(rs, after, evStart) == 1 })
			gap := slices.IndexFunc(recs, func(r *audit.Record) bool { return r.Stage == StageEventsGap })
			if n := audittest.Count(recs, "", "containerd-events/"+StageEventsGap); n != 1 {
				t.Errorf("%d gap records, want 1", n)
			}
			i = slices.IndexFunc(recs, func(r *audit.Record) bool { return r.ContainerID == inGap && r.Stage == audit.StageStart })
			if i < 0 || i < gap || recs[i].Ancestry == nil || recs[i].PID != int(inGapPID) {
				t.Errorf("container started in the gap: record %d (gap record %d), want a start with pid %d after the gap record", i, gap, inGapPID)
			}
			recs = audittest.Wait(t, cfg.AuditLog, "exit of the container that ended in the gap", func(rs []*audit.Record) bool { return audittest.Count(rs, moby, evExit) == 1 })
			if i := slices.IndexFunc(recs, func(r *audit.Record) bool { return r.ContainerID == moby && r.Stage == audit.StageExit }); i < gap {
				t.Errorf("exit of %s at record %d, before the gap record %d", moby, i, gap)
			}
			// The catch-up after reconnecting must not duplicate anything.
			for _, id := range []string{early, plain, moby, marker, withCtr, inGap} {
				if n := audittest.Count(recs, id, evStart); n != 1 {
					t.Errorf("%s: %d start records after restart, want 1", id, n)
				}
			}
			if n := audittest.Count(recs, hooked, evStart); n != 0 {
				t.Errorf("hook-recorded container got %d recorder starts after restart", n)
			}
			audittest.Verify(t, cfg.AuditLog)
		})
	}
}

// ctrPID returns the task PID of container id in namespace "default".
func ctrPID(t *testing.T, d *ctrdtest.Daemon, id string) uint32 {
	t.Helper()
	ctx := ctrdtest.Context(t, "default")
	ctr, err := d.Client(t).LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return task.Pid()
}

// TestRecorderBurst starts and deletes 20 containers at once while the
// recorder runs: exactly one start and one exit record each, in an intact
// chain.
func TestRecorderBurst(t *testing.T) {
	cfg, d, c := recorderSetup(t, nil)
	var ids []string
	t.Run("burst", func(t *testing.T) {
		for i := range 20 {
			id := ctrdtest.Uniq(fmt.Sprintf("burst-%d", i))
			ids = append(ids, id)
			t.Run(id, func(t *testing.T) {
				t.Parallel()
				d.Run(t, c, "default", id, nil) // deleted when the subtest ends
			})
		}
	})
	recs := audittest.Wait(t, cfg.AuditLog, "20 starts and exits", func(rs []*audit.Record) bool {
		for _, id := range ids {
			if audittest.Count(rs, id, evStart) < 1 || audittest.Count(rs, id, evExit) < 1 {
				return false
			}
		}
		return true
	})
	for _, id := range ids {
		if s, e := audittest.Count(recs, id, evStart), audittest.Count(recs, id, evExit); s != 1 || e != 1 {
			t.Errorf("%s: %d starts, %d exits; want one each", id, s, e)
		}
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestNoNamespacesRecordedOnce runs a container whose inspection fails
// (as without CAP_SYS_PTRACE for a process of another UID): its start is
// recorded once, without namespaces, and the walks that follow leave it
// at that. It was recorded again at every walk (twice a minute, for as
// long as it ran), its start time taken for 0.
func TestNoNamespacesRecordedOnce(t *testing.T) {
	id := ctrdtest.Uniq("no-namespaces")
	var waitWalks func(int)
	cfg, _, _, _, _ := runUninspected(t, id, func(r *Recorder) {
		r.Resync = 200 * time.Millisecond
		waitWalks = countWalks(t, r)
	})
	waitWalks(3)
	recs := audittest.Records(t, cfg.AuditLog, "")
	if n := audittest.Count(recs, id, evStart); n != 1 {
		t.Errorf("%d start records after three walks, want 1", n)
	}
	for _, r := range recs {
		if r.ContainerID == id && r.Ancestry != nil {
			t.Errorf("seq %d: namespaces recorded though inspection failed", r.Seq)
		}
	}
}

// countWalks makes r count its walks and returns a function that waits
// (at most 30 s) for n walks to end after it is called.
func countWalks(t *testing.T, r *Recorder) func(n int) {
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	walks := 0
	r.walked = func() {
		mu.Lock()
		walks++
		mu.Unlock()
		cond.Broadcast()
	}
	return func(n int) {
		t.Helper()
		expired := false
		timer := time.AfterFunc(30*time.Second, func() {
			mu.Lock()
			expired = true
			mu.Unlock()
			cond.Broadcast()
		})
		defer timer.Stop()
		mu.Lock()
		defer mu.Unlock()
		for until := walks + n; walks < until; cond.Wait() {
			if expired {
				t.Fatalf("%d walks in 30 s, want %d", walks-until+n, n)
			}
		}
	}
}

// TestExitNotOtherDaemons runs two daemons whose recorders write one
// audit log: a recorder that starts while a container of the other
// daemon runs records no exit for it (its task list is its own
// daemon's). Taking the starts without exit from the log, a recorder
// used to record the exit of every running container of the other.
func TestExitNotOtherDaemons(t *testing.T) {
	cfgPath, cfg := ctrdtest.HookConfig(t)
	a := ctrdtest.Start(t, ctrdtest.V2(), nil)
	b := ctrdtest.Start(t, ctrdtest.V2(), nil)
	cb := b.Client(t)
	b.ImportBusybox(t, cb, "default")
	startRecorder(t, b.Socket, cfgPath, nil)
	onB := ctrdtest.Uniq("on-b")
	b.Run(t, cb, "default", onB, nil)
	audittest.Wait(t, cfg.AuditLog, "the start on b", func(rs []*audit.Record) bool { return audittest.Count(rs, onB, evStart) == 1 })
	var waitWalks func(int)
	startRecorder(t, a.Socket, cfgPath, func(r *Recorder) { r.Resync = 200 * time.Millisecond; waitWalks = countWalks(t, r) })
	waitWalks(2)
	if n := audittest.Count(audittest.Records(t, cfg.AuditLog, ""), onB, evExit); n != 0 {
		t.Errorf("%d exit records for %s, which runs on the other daemon", n, onB)
	}
}

// TestExitWhileStopped stops the recorder, deletes one of the two
// containers whose starts it recorded, and starts it again: its first
// walk records the exit of the one that ended while it was stopped, and
// nothing for the one that runs on (not a second start either). That
// exit used to go unrecorded for good: a new recorder knew no task.
func TestExitWhileStopped(t *testing.T) {
	cfgPath, cfg, d, c := busyboxDaemon(t)
	run := func() (stop func(), waitWalks func(int)) {
		_, stop = runRecorder(t, d.Socket, cfgPath, func(r *Recorder) { r.Resync = 200 * time.Millisecond; waitWalks = countWalks(t, r) })
		return stop, waitWalks
	}
	stop, _ := run()
	ended, runs := ctrdtest.Uniq("ends-while-stopped"), ctrdtest.Uniq("runs-on")
	ctr, _ := d.Run(t, c, "default", ended, nil)
	d.Run(t, c, "default", runs, nil)
	audittest.Wait(t, cfg.AuditLog, "both starts", func(rs []*audit.Record) bool {
		return audittest.Count(rs, ended, evStart) == 1 && audittest.Count(rs, runs, evStart) == 1
	})
	stop()
	ctrdtest.Delete("default", ctr)
	_, waitWalks := run()
	audittest.Wait(t, cfg.AuditLog, "the exit of the container that ended while the recorder was stopped", func(rs []*audit.Record) bool {
		return audittest.Count(rs, ended, evExit) == 1
	})
	waitWalks(2)
	recs := audittest.Records(t, cfg.AuditLog, "")
	if s, e := audittest.Count(recs, runs, evStart), audittest.Count(recs, runs, evExit); s != 1 || e != 0 {
		t.Errorf("the container that runs on: %d starts, %d exits; want 1 and 0", s, e)
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestRestartWhileStopped restarts a container under the same ID (a new
// task) while the recorder is stopped: the next recorder records the old
// task's exit, then the new task's start, and later the new task's exit.
// The exit search took any exit of the container for the new task's, so
// its exit was never recorded (and the old exit came after the new
// start).
func TestRestartWhileStopped(t *testing.T) {
	t.Parallel()
	cfgPath, cfg, d, c := busyboxDaemon(t)
	_, stop := runRecorder(t, d.Socket, cfgPath, nil)
	id := ctrdtest.Uniq("restarted")
	ctr, _ := d.Run(t, c, "default", id, nil)
	audittest.Wait(t, cfg.AuditLog, "the first start", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evStart) == 1 })
	stop()
	ctrdtest.RestartTask(t, "default", ctr)
	runRecorder(t, d.Socket, cfgPath, nil)
	audittest.Wait(t, cfg.AuditLog, "the old exit and the new start", func(rs []*audit.Record) bool {
		return audittest.Count(rs, id, evStart) == 2 && audittest.Count(rs, id, evExit) == 1
	})
	ctrdtest.Delete("default", ctr)
	recs := audittest.Wait(t, cfg.AuditLog, "the new exit", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evExit) == 2 })
	if diff := cmp.Diff([]string{evStart, evExit, evStart, evExit}, audittest.SourceStages(recs, id)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	var starts []uint64
	for _, r := range recs {
		switch {
		case r.ContainerID != id:
		case r.Stage == audit.StageStart:
			starts = append(starts, r.Seq)
		case r.Ref == nil || len(starts) == 0 || r.Ref.Seq != starts[len(starts)-1]:
			t.Errorf("exit seq %d refers to %v, want the start before it (starts %v)", r.Seq, r.Ref, starts)
		}
	}
	audittest.Verify(t, cfg.AuditLog)
}

// TestExitOfDeletedNamespace: a container ends, and its containerd
// namespace is deleted, while no recorder runs: the next recorder records
// its exit. Exits of known tasks in namespaces no longer listed were
// dropped.
func TestExitOfDeletedNamespace(t *testing.T) {
	t.Parallel()
	cfgPath, cfg := ctrdtest.HookConfig(t)
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	c := d.Client(t)
	ns := "short-lived"
	_, stop := runRecorder(t, d.Socket, cfgPath, nil)
	id := ctrdtest.Uniq("in-deleted-ns")
	ctr, _ := d.Run(t, c, ns, id, nil)
	audittest.Wait(t, cfg.AuditLog, "the start", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evStart) == 1 })
	stop()
	ctrdtest.Delete(ns, ctr)
	ctx := namespaces.WithNamespace(context.Background(), ns)
	imgs, err := c.ImageService().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs {
		if err := c.ImageService().Delete(ctx, img.Name, images.SynchronousDelete()); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.NamespaceService().Delete(context.Background(), ns); err != nil {
		t.Fatalf("delete namespace %s: %v", ns, err)
	}
	runRecorder(t, d.Socket, cfgPath, nil)
	recs := audittest.Wait(t, cfg.AuditLog, "the exit", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evExit) == 1 })
	if diff := cmp.Diff([]string{evStart, evExit}, audittest.SourceStages(recs, id)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// inspectFailsFor returns an inspection that fails for the process
// whose PID victim holds, as without CAP_SYS_PTRACE, and inspects the
// others.
func inspectFailsFor(victim *atomic.Int64) func(int, *inspect.LiveOnce) (*audit.Ancestry, error) {
	return func(pid int, live *inspect.LiveOnce) (*audit.Ancestry, error) {
		if int64(pid) == victim.Load() {
			return nil, fmt.Errorf("inspect: pid %d: open /proc/%d/ns/user: permission denied", pid, pid)
		}
		return inspect.ProcessWith(pid, live)
	}
}

// runUninspected starts a recorder (mod, if not nil, sets it up) and
// container id, whose inspection the recorder is refused (as without
// CAP_SYS_PTRACE for a process of another UID), and waits for its start
// record, without namespaces. It returns the daemon, a client of it, the
// container and the context of its namespace.
func runUninspected(t *testing.T, id string, mod func(*Recorder)) (*policy.Config, *ctrdtest.Daemon, *client.Client, client.Container, context.Context) {
	t.Helper()
	var victim atomic.Int64
	cfg, d, c := recorderSetup(t, func(r *Recorder) {
		if mod != nil {
			mod(r)
		}
		r.Inspect = inspectFailsFor(&victim)
	})
	ctr, _ := d.Run(t, c, "default", id, &ctrdtest.RunOpts{NoStart: true})
	ctx := ctrdtest.Context(t, "default")
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	victim.Store(int64(task.Pid()))
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	audittest.Wait(t, cfg.AuditLog, "the start record", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evStart) > 0 })
	return cfg, d, c, ctr, ctx
}
