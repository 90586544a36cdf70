package containerd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/containerd/internal/ctrdtest"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
)

// startRecorder runs a recorder against the daemon at addr until the test
// ends (mod, if set, adjusts it first) and returns a channel that
// receives after each (re)connection.
func startRecorder(t *testing.T, addr, cfgPath string, mod func(*Recorder)) <-chan struct{} {
	t.Helper()
	cfg, err := policy.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.Open(cfg.AuditLog, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	connected := make(chan struct{}, 16)
	logger := logrus.New()
	logger.SetOutput(testWriter{t})
	logger.SetLevel(logrus.DebugLevel)
	r := &Recorder{Address: addr, Config: cfg, Log: log, Logger: logger, MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		Connected: func() { connected <- struct{}{} }}
	if mod != nil {
		mod(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitConnected(t, connected, "recorder did not connect")
	return connected
}

// recorderSetup starts a containerd 2.x daemon with the busybox image
// in namespace "default" and a recorder (adjusted by mod) writing to a
// fresh audit log; it returns the hook config, the daemon and a client.
// The daemon's log is shown when the test fails.
func recorderSetup(t *testing.T, mod func(*Recorder)) (*policy.Config, *ctrdtest.Daemon, *client.Client) {
	t.Helper()
	cfgPath, cfg := hookSetup(t)
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

// waitConnected waits for the recorder's next (re)connection.
func waitConnected(t *testing.T, connected <-chan struct{}, msg string) {
	t.Helper()
	select {
	case <-connected:
	case <-time.After(30 * time.Second):
		t.Fatal(msg)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Logf("recorder: %s", p); return len(p), nil }

// count returns how many records of container id have source/stage.
func count(recs []*audit.Record, id, what string) int {
	n := 0
	for _, s := range stages(recs, id) {
		if s == what {
			n++
		}
	}
	return n
}

const evStart, evExit = "containerd-events/start", "containerd-events/exit"

// TestRecorder checks, on each daemon flavor, that the event recorder
// writes exactly one start record per container start (Go client or ctr)
// in any containerd namespace, none for a container nsrel-hook recorded,
// an exit record for the starts it recorded, and that it survives a daemon
// restart with a gap record, while the chain stays intact.
func TestRecorder(t *testing.T) {
	hookBin := tool(t, "nsrel-hook")
	for _, f := range ctrdtest.Flavors() {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			cfgPath, cfg := hookSetup(t)
			d := ctrdtest.Start(t, f, nil)
			c := d.Client(t)
			// A container running before the recorder starts is caught up.
			early := uniq("early")
			_, earlyPID := d.Run(t, c, "default", early, nil)
			// The recorder reaches the daemon through a symlink that the
			// test removes to keep it away while containers start.
			link := filepath.Join(d.Dir, "link.sock")
			if err := os.Symlink(d.Socket, link); err != nil {
				t.Fatal(err)
			}
			connected := startRecorder(t, link, cfgPath, nil)
			waitRecords(t, cfg.AuditLog, "catch-up", func(rs []*audit.Record) bool { return count(rs, early, evStart) == 1 })

			plain, moby, hooked, marker := uniq("plain"), uniq("0123456789abcdef"), uniq("hooked"), uniq("marker")
			ctr, plainPID := d.Run(t, c, "default", plain, &ctrdtest.RunOpts{UserNS: true})
			mobyCtr, mobyPID := d.Run(t, c, "moby", moby, nil)
			d.Run(t, c, "k8s.io", hooked, &ctrdtest.RunOpts{SpecOpts: []oci.SpecOpts{WithHook(hookBin, cfgPath)}})
			withCtr := uniq("ctr-run")
			d.CtrRun(t, "default", withCtr)
			// Events arrive in order: once the marker is recorded, the
			// hooked container's start has been handled.
			d.Run(t, c, "default", marker, nil)
			recs := waitRecords(t, cfg.AuditLog, "marker start", func(rs []*audit.Record) bool { return count(rs, marker, evStart) == 1 })
			for _, tc := range []struct {
				id, ns string
				pid    uint32
			}{{plain, "default", plainPID}, {moby, "moby", mobyPID}, {early, "default", earlyPID}, {withCtr, "default", ctrPID(t, d, withCtr)}} {
				if n := count(recs, tc.id, evStart); n != 1 {
					t.Errorf("%s: %d start records, want 1", tc.id, n)
				}
				for _, r := range recs {
					if r.ContainerID == tc.id && r.Stage == audit.StageStart {
						if r.Ancestry == nil || r.PID != int(tc.pid) || r.Namespace != tc.ns {
							t.Errorf("%s: record %+v, want pid %d namespace %s", tc.id, r, tc.pid, tc.ns)
						} else if got, want := r.User[0].Ino, nsIno(t, int(tc.pid), "user"); got != want {
							t.Errorf("%s: user ns %d, want %d", tc.id, got, want)
						}
					}
				}
			}
			if diff := cmp.Diff([]string{"oci-hook/createRuntime", "oci-hook/poststart"}, stages(recs, hooked)); diff != "" {
				t.Errorf("hook-recorded container (-want +got):\n%s", diff)
			}

			// An exit refers back to the recorder's start record.
			ctrdtest.Delete("default", ctr)
			recs = waitRecords(t, cfg.AuditLog, "plain exit", func(rs []*audit.Record) bool { return count(rs, plain, evExit) == 1 })
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
			inGap := uniq("in-gap")
			_, inGapPID := d.Run(t, d.Client(t), "default", inGap, nil)
			// A container the recorder saw start ends in the gap: the
			// walk after reconnecting records its exit.
			ctrdtest.Delete("moby", mobyCtr)
			if err := os.Symlink(d.Socket, link); err != nil {
				t.Fatal(err)
			}
			waitConnected(t, connected, "recorder did not reconnect after a daemon restart")
			after := uniq("after")
			d.Run(t, d.Client(t), "default", after, nil)
			recs = waitRecords(t, cfg.AuditLog, "start after restart", func(rs []*audit.Record) bool { return count(rs, after, evStart) == 1 })
			gap := slices.IndexFunc(recs, func(r *audit.Record) bool { return r.Stage == StageEventsGap })
			if n := count(recs, "", "containerd-events/"+StageEventsGap); n != 1 {
				t.Errorf("%d gap records, want 1", n)
			}
			i = slices.IndexFunc(recs, func(r *audit.Record) bool { return r.ContainerID == inGap && r.Stage == audit.StageStart })
			if i < 0 || i < gap || recs[i].Ancestry == nil || recs[i].PID != int(inGapPID) {
				t.Errorf("container started in the gap: record %d (gap record %d), want a start with pid %d after the gap record", i, gap, inGapPID)
			}
			recs = waitRecords(t, cfg.AuditLog, "exit of the container that ended in the gap", func(rs []*audit.Record) bool { return count(rs, moby, evExit) == 1 })
			if i := slices.IndexFunc(recs, func(r *audit.Record) bool { return r.ContainerID == moby && r.Stage == audit.StageExit }); i < gap {
				t.Errorf("exit of %s at record %d, before the gap record %d", moby, i, gap)
			}
			// The catch-up after reconnecting must not duplicate anything.
			for _, id := range []string{early, plain, moby, marker, withCtr, inGap} {
				if n := count(recs, id, evStart); n != 1 {
					t.Errorf("%s: %d start records after restart, want 1", id, n)
				}
			}
			if n := count(recs, hooked, evStart); n != 0 {
				t.Errorf("hook-recorded container got %d recorder starts after restart", n)
			}
			verifyChain(t, cfg.AuditLog)
		})
	}
}

// watchProc is a running `nsrel-containerd watch` (or any command line
// that ends in it).
type watchProc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan error
}

// startWatch runs argv until the test ends and waits until it has
// subscribed to the daemon's events.
func startWatch(t *testing.T, argv ...string) *watchProc {
	t.Helper()
	w := &watchProc{cmd: exec.Command(argv[0], argv[1:]...), stderr: &lockedBuffer{}, done: make(chan error, 1)}
	w.cmd.Stderr = w.stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.done <- w.cmd.Wait() }()
	t.Cleanup(func() {
		w.cmd.Process.Kill()
		<-w.done
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(w.stderr.String(), "subscribed") {
		if time.Now().After(deadline) {
			t.Fatalf("watch did not subscribe:\n%s", w.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return w
}

// stop sends SIGTERM and checks that watch exits cleanly and promptly.
func (w *watchProc) stop(t *testing.T) {
	t.Helper()
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-w.done:
		w.done <- err
		if err != nil {
			t.Errorf("watch exited with %v after SIGTERM:\n%s", err, w.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop on SIGTERM")
	}
}

// TestWatchCommand runs the nsrel-containerd binary as a service would:
// it records a container start and its own start and stop, and stops
// cleanly on SIGTERM.
func TestWatchCommand(t *testing.T) {
	bin := tool(t, "nsrel-containerd")
	cfgPath, cfg := hookSetup(t)
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	w := startWatch(t, bin, "watch", "--config", cfgPath, "--address", d.Socket, "--log-level", "debug")
	id := uniq("ctr")
	d.Run(t, d.Client(t), "default", id, nil)
	waitRecords(t, cfg.AuditLog, "start record", func(rs []*audit.Record) bool { return count(rs, id, evStart) == 1 })
	w.stop(t)
	// The recorder's own start and stop bracket what it recorded.
	recs := readRecords(t, cfg.AuditLog)
	if first, last := recs[0], recs[len(recs)-1]; first.Stage != StageRecorderStart || last.Stage != StageRecorderStop {
		t.Errorf("first record %s, last %s; want %s and %s", first.Stage, last.Stage, StageRecorderStart, StageRecorderStop)
	}
	verifyChain(t, cfg.AuditLog)
}

func TestMainUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"--help"}, 0},
		{[]string{"--version"}, 0},
		{[]string{"bogus"}, 2},
		{[]string{"watch", "--bogus"}, 2},
		{[]string{"watch", "extra"}, 2},
		{[]string{"watch", "--log-level", "loud"}, 2},
		{[]string{"watch", "--config", "/nonexistent/hook.json"}, 1},
		{[]string{"nri", "--index", "1x"}, 2},
		{[]string{"nri", "--timeout", "0s"}, 2},
		{[]string{"nri", "--timeout", "soon"}, 2},
		{[]string{"nri", "--address", "/x"}, 2},
		{[]string{"nri", "--config", "/nonexistent/hook.json"}, 1},
	} {
		var out, errb bytes.Buffer
		if got := Main(tc.args, &out, &errb); got != tc.code {
			t.Errorf("Main(%q) = %d, want %d (stderr %q)", tc.args, got, tc.code, errb.String())
		}
		if tc.code != 0 && strings.Count(strings.TrimSpace(errb.String()), "\n") != 0 {
			t.Errorf("Main(%q): stderr is not one line: %q", tc.args, errb.String())
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
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
			id := uniq(fmt.Sprintf("burst-%d", i))
			ids = append(ids, id)
			t.Run(id, func(t *testing.T) {
				t.Parallel()
				d.Run(t, c, "default", id, nil) // deleted when the subtest ends
			})
		}
	})
	recs := waitRecords(t, cfg.AuditLog, "20 starts and exits", func(rs []*audit.Record) bool {
		for _, id := range ids {
			if count(rs, id, evStart) < 1 || count(rs, id, evExit) < 1 {
				return false
			}
		}
		return true
	})
	for _, id := range ids {
		if s, e := count(recs, id, evStart), count(recs, id, evExit); s != 1 || e != 1 {
			t.Errorf("%s: %d starts, %d exits; want one each", id, s, e)
		}
	}
	verifyChain(t, cfg.AuditLog)
}
