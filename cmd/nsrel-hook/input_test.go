package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/bundle"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/syslog"
	"github.com/nsrel/nsrel/internal/vocab"
)

// The tests of this file hold the hook binary to the promise that no
// container goes unrecorded: whatever is wrong with a run's input (the
// OCI state, stdin, the config), it leaves a record that says what was
// wrong and keeps what could be read; only a log that cannot be written
// ends a run without one, and that is said on stderr, in the diagnostics
// log and in syslog.

// binaryRun is the outcome of one run of the nsrel-hook binary.
type binaryRun struct {
	code   int
	stderr string
	took   time.Duration
	pid    int
	// afterStderr is how long the process ran on after its last write
	// to stderr (as the test read it, which can only be later).
	afterStderr time.Duration
}

// timedWriter records when it was last written to.
type timedWriter struct {
	strings.Builder
	last time.Time
}

func (w *timedWriter) Write(p []byte) (int, error) {
	w.last = time.Now()
	return w.Builder.Write(p)
}

// runBinary runs hookBin with args and stdin (nil: /dev/null). A run
// that outlives 60 s is killed and fails the test.
func runBinary(t *testing.T, stdin io.Reader, args ...string) binaryRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, hookBin, args...)
	cmd.Stdin = stdin
	var stderr timedWriter
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	r := binaryRun{stderr: stderr.String(), took: time.Since(start)}
	if !stderr.last.IsZero() {
		r.afterStderr = time.Since(stderr.last)
	}
	if cmd.Process != nil {
		r.pid = cmd.Process.Pid
	}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("nsrel-hook %q still running after 60 s (killed); stderr %q", args, r.stderr)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return r
}

// oneLine checks that s is exactly one line from nsrel-hook.
func oneLine(t *testing.T, what, s string) {
	t.Helper()
	if !strings.HasPrefix(s, "nsrel-hook: ") || strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") {
		t.Errorf("%s: want one line from nsrel-hook on stderr, got %q", what, s)
	}
}

// verifyOK runs `nsrel-hook audit verify` on the env's log in-process
// and checks that the chain of n records is intact.
func verifyOK(t *testing.T, e *env, n int) {
	t.Helper()
	code, out, stderr := run("", "audit", "verify", e.log)
	if want := fmt.Sprintf("OK: %d records", n); code != 0 || !strings.Contains(out, want) {
		t.Errorf("audit verify: exit %d, want 0 and %q:\n%s%s", code, want, out, stderr)
	}
}

// onErrorExit is the createRuntime exit status for an internal error.
var onErrorExit = map[string]int{policy.OnErrorAllow: 0, policy.OnErrorDeny: 1}

// wantVerdict is the verdict of a start record whose run met an internal
// error.
var wantVerdict = map[string]string{policy.OnErrorAllow: audit.VerdictAllow, policy.OnErrorDeny: audit.VerdictDeny}

// jsonString is s as a JSON string.
func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// stateOf is a JSON object of the members given, in that order (a
// runtime writes the ID first; encoding/json would sort a map's keys).
func stateOf(members ...string) []byte {
	return []byte("{" + strings.Join(members, ",") + "}")
}

func idMember(id string) string { return `"id":` + jsonString(id) }
func pidMember(pid int) string  { return `"pid":` + strconv.Itoa(pid) }

const bundleMember = `"bundle":"/b"`

// exitedPID returns the PID of a process that has exited and was
// reaped. (A zombie, not yet reaped, still has its namespaces: the hook
// records them.)
func exitedPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(hookBin, "--version")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if err := unix.Kill(pid, 0); err != unix.ESRCH {
		t.Fatalf("pid %d of a reaped process: kill 0 says %v", pid, err)
	}
	return pid
}

// recordedPID is the PID whose ancestry r records, 0 for none.
func recordedPID(r *audit.Record) int {
	if r.Ancestry == nil {
		return 0
	}
	return r.Ancestry.PID
}

// TestBinaryRefusedInput runs createRuntime with a state of every class
// the hook refuses, under on_error allow and deny: each run exits with
// the on_error status and one line on stderr, and leaves exactly one
// record whose error says what was wrong, with the ID (cut where too
// long), the bundle, the annotations and the PID as far as they could be
// read; the chain verifies.
func TestBinaryRefusedInput(t *testing.T) {
	self := os.Getpid()
	longID := strings.Repeat("i", 1500)
	longBundle := "/" + strings.Repeat("b", 5000)
	var many []string
	for i := range 4097 {
		many = append(many, fmt.Sprintf(`"k%d":"v"`, i))
	}
	tests := []struct {
		name string
		// state returns the state bytes.
		state func(t *testing.T) []byte
		// want is in the record's error and on stderr.
		want string
		// id is the ID recorded.
		id string
		// pid is the PID recorded (0: none).
		pid int
		// check, if set, checks more of the record.
		check func(t *testing.T, r *audit.Record)
	}{
		{name: "annotation value of 65537 bytes",
			state: func(*testing.T) []byte {
				return stateOf(idMember("ann-long"), pidMember(self), bundleMember,
					`"annotations":{"io.kubernetes.pod.name":"`+strings.Repeat("v", 65537)+`","io.kubernetes.pod.namespace":"prod"}`)
			},
			want: "annotation longer than 65536 bytes", id: "ann-long", pid: self,
			check: func(t *testing.T, r *audit.Record) {
				want := map[string]string{"io.kubernetes.pod.name": strings.Repeat("v", vocab.MaxRecordedValue), "io.kubernetes.pod.namespace": "prod"}
				if d := cmp.Diff(want, r.Annotations); d != "" {
					t.Errorf("recorded annotations (-want +got):\n%s", d)
				}
			}},
		{name: "4097 annotations",
			state: func(*testing.T) []byte {
				return stateOf(idMember("ann-many"), pidMember(self), bundleMember, `"annotations":{`+strings.Join(many, ",")+`}`)
			},
			want: "more than 4096 annotations", id: "ann-many", pid: self},
		{name: "4097 annotations before the recorded ones",
			state: func(*testing.T) []byte {
				return stateOf(idMember("ann-flood"), pidMember(self), bundleMember,
					`"annotations":{`+strings.Join(many, ",")+`,"io.kubernetes.pod.name":"web-0","io.kubernetes.pod.namespace":"prod"}`)
			},
			want: "more than 4096 annotations", id: "ann-flood", pid: self,
			check: func(t *testing.T, r *audit.Record) {
				want := map[string]string{"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "prod"}
				if d := cmp.Diff(want, r.Annotations); d != "" {
					t.Errorf("recorded annotations (-want +got):\n%s", d)
				}
			}},
		{name: "state over 1 MiB",
			state: func(*testing.T) []byte {
				return stateOf(idMember("big-state"), pidMember(self), bundleMember, `"x":"`+strings.Repeat("x", vocab.MaxStateSize)+`"`)
			},
			want: "larger than 1048576 bytes", id: "big-state", pid: self},
		{name: "bundle path over 4096 bytes",
			state: func(*testing.T) []byte {
				return stateOf(idMember("bundle-long"), pidMember(self), `"bundle":`+jsonString(longBundle))
			},
			want: "bundle path longer than 4096 bytes", id: "bundle-long", pid: self,
			check: func(t *testing.T, r *audit.Record) {
				if r.Bundle != longBundle[:4096] {
					t.Errorf("recorded bundle of %d bytes, want its first 4096", len(r.Bundle))
				}
			}},
		{name: "ID over 1024 bytes",
			state: func(*testing.T) []byte { return stateOf(idMember(longID), pidMember(self), bundleMember) },
			want:  "container id longer than 1024 bytes", id: longID[:1024], pid: self},
		{name: "ID not valid UTF-8",
			state: func(*testing.T) []byte { return stateOf("\"id\":\"bad\xffid\"", pidMember(self), bundleMember) },
			want:  "container id is not valid UTF-8", id: "bad\uFFFDid", pid: self},
		{name: "no ID",
			state: func(*testing.T) []byte { return stateOf(pidMember(self), bundleMember) },
			want:  "no container id", id: "", pid: self},
		{name: "invalid JSON",
			state: func(*testing.T) []byte { return []byte(`{"id":"broken",` + pidMember(self) + `,"bundle":`) },
			want:  "state: unexpected EOF", id: "broken", pid: self},
		{name: "data after the object",
			state: func(*testing.T) []byte {
				return append(stateOf(idMember("trailing"), pidMember(self), bundleMember), `{"id":"other"}`...)
			},
			want: "data after the JSON object", id: "trailing", pid: self},
		{name: "pid out of range",
			state: func(*testing.T) []byte { return stateOf(idMember("pid-huge"), pidMember(vocab.PIDLimit), bundleMember) },
			want:  "pid 4194304 out of range", id: "pid-huge"},
		{name: "negative pid",
			state: func(*testing.T) []byte { return stateOf(idMember("pid-negative"), pidMember(-7), bundleMember) },
			want:  "pid -7 out of range", id: "pid-negative"},
		{name: "process exited",
			state: func(t *testing.T) []byte { return stateOf(idMember("exited"), pidMember(exitedPID(t)), bundleMember) },
			want:  "no such process (it exited before it could be inspected)", id: "exited"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []string{policy.OnErrorAllow, policy.OnErrorDeny} {
				t.Run(mode, func(t *testing.T) {
					e := newEnv(t, "hook.json", func(c map[string]any) { c["on_error"] = mode; c["syslog"] = "" })
					r := runBinary(t, bytes.NewReader(tt.state(t)), "--config", e.config, "createRuntime")
					if r.code != onErrorExit[mode] {
						t.Errorf("exit %d, want %d (stderr %q)", r.code, onErrorExit[mode], r.stderr)
					}
					oneLine(t, "stderr", r.stderr)
					if !strings.Contains(r.stderr, tt.want) {
						t.Errorf("stderr %q does not say %q", r.stderr, tt.want)
					}
					recs := e.records(t, "")
					if len(recs) != 1 {
						t.Fatalf("%d records, want 1: %+v", len(recs), recs)
					}
					rec := recs[0]
					if rec.Error == "" || !strings.Contains(rec.Error, tt.want) {
						t.Errorf("record error %q does not say %q", rec.Error, tt.want)
					}
					if rec.ContainerID != tt.id {
						t.Errorf("recorded ID %q (%d bytes), want %q (%d bytes)", vocab.Cut(rec.ContainerID, 80), len(rec.ContainerID), vocab.Cut(tt.id, 80), len(tt.id))
					}
					if rec.Stage != audit.StageCreateRuntime || rec.Verdict != wantVerdict[mode] {
						t.Errorf("stage %q verdict %q, want createRuntime %q", rec.Stage, rec.Verdict, wantVerdict[mode])
					}
					// A PID is recorded with the ancestry read from it.
					if got := recordedPID(rec); got != tt.pid {
						t.Errorf("recorded pid %d, want %d", got, tt.pid)
					}
					if tt.check != nil {
						tt.check(t, rec)
					}
					verifyOK(t, e, 1)
				})
			}
		})
	}
}

// TestBinaryStdinHeldOpen is TestBinaryDeadline for poststart and
// poststop: a state whose stdin is never closed is recorded as far as it
// came, within the deadline, with the on_error status at poststart and 0
// at poststop (which never fails the runtime).
func TestBinaryStdinHeldOpen(t *testing.T) {
	const deadlineMS = 2000 // the shipped one: see TestBinaryDeadline
	for _, stage := range []string{audit.StagePoststart, audit.StagePoststop} {
		for _, mode := range []string{policy.OnErrorAllow, policy.OnErrorDeny} {
			t.Run(stage+"/"+mode, func(t *testing.T) {
				e := newEnv(t, "hook.json", func(c map[string]any) { c["on_error"] = mode; c["deadline_ms"] = deadlineMS; c["syslog"] = "" })
				id := "held-" + stage
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close() // held open until the hook is done
				if _, err := w.Write(stateOf(idMember(id), pidMember(os.Getpid()), bundleMember)); err != nil {
					t.Fatal(err)
				}
				run := runBinary(t, r, "--config", e.config, stage)
				r.Close()
				want := onErrorExit[mode]
				if stage == audit.StagePoststop {
					want = 0
				}
				if run.code != want {
					t.Errorf("exit %d, want %d (stderr %q)", run.code, want, run.stderr)
				}
				if run.took > deadlineMS*time.Millisecond+time.Second {
					t.Errorf("took %v with deadline_ms %d", run.took, deadlineMS)
				}
				oneLine(t, "stderr", run.stderr)
				if !strings.Contains(run.stderr, "stdin was not closed in time") {
					t.Errorf("stderr %q does not say stdin stayed open", run.stderr)
				}
				recs := e.records(t, "")
				if len(recs) != 1 {
					t.Fatalf("%d records, want 1", len(recs))
				}
				rec := recs[0]
				if rec.Stage != stage || rec.ContainerID != id || !strings.Contains(rec.Error, "stdin was not closed in time") {
					t.Errorf("record stage %q id %q error %q", rec.Stage, rec.ContainerID, rec.Error)
				}
				if stage == audit.StagePoststart && rec.Verdict != wantVerdict[mode] {
					t.Errorf("verdict %q, want %q", rec.Verdict, wantVerdict[mode])
				}
				verifyOK(t, e, 1)
			})
		}
	}
}

// TestStdinHeldOpenParsedID: a whole state whose stdin stayed open is
// recorded as parsed, as it is when stdin is closed: its ID is the one the
// parser takes (the last of the members that name it in any case), not
// the "id" member a salvage of a refused state reads.
func TestStdinHeldOpenParsedID(t *testing.T) {
	e := newEnv(t, "hook.json", func(c map[string]any) { c["syslog"] = "" }) // the default deadline: see TestBinaryDeadline
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close() // held open until the hook is done
	if _, err := w.Write(stateOf(idMember("decoy"), `"ID":"parsed"`, pidMember(os.Getpid()), bundleMember)); err != nil {
		t.Fatal(err)
	}
	run := runBinary(t, r, "--config", e.config, audit.StagePoststop)
	r.Close()
	recs := e.records(t, "")
	if run.code != 0 || len(recs) != 1 || recs[0].ContainerID != "parsed" {
		t.Errorf("exit %d, records %+v; want one record of container parsed (stderr %q)", run.code, recs, run.stderr)
	}
}

// TestReadInputTimeUp calls readInput with its time already up, as the
// stage does when loading the config took it: what the pipe holds is
// still taken, so a state the runtime wrote and closed is read whole (a
// large one too, past the first buffer and a default pipe's 64 KiB), and
// only a stdin left open says so, with what came before. The read used
// to check the time before its first read: it returned nothing and
// "stdin was not closed in time (0 bytes read)", and the stage recorded a
// container with neither ID nor PID.
func TestReadInputTimeUp(t *testing.T) {
	whole := stateOf(idMember("time-up"), pidMember(os.Getpid()), bundleMember)
	large := stateOf(idMember("time-up-large"), `"annotations":{"a":`+jsonString(strings.Repeat("x", 300<<10))+`}`)
	tests := []struct {
		name string
		data []byte
		open bool // the writer is left open
	}{
		{"whole", whole, false},
		{"large", large, false},
		{"empty", nil, false},
		{"open", whole[:20], true},
		{"open empty", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			// Room for the whole state with nobody reading yet.
			if _, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, max(len(tt.data), 4096)); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(tt.data); err != nil {
				t.Fatal(err)
			}
			if !tt.open {
				w.Close()
			}
			data, err := readInput(r, timeUp(), 2*time.Second)
			if !bytes.Equal(data, tt.data) {
				t.Errorf("read %d bytes %q, want %d bytes %q", len(data), vocab.Cut(string(data), 80), len(tt.data), vocab.Cut(string(tt.data), 80))
			}
			switch want := fmt.Sprintf("stdin was not closed in time (%d bytes read)", len(tt.data)); {
			case tt.open && (!errors.Is(err, errStdin) || err.Error() != want):
				t.Errorf("error %v, want %q", err, want)
			case !tt.open && err != nil:
				t.Errorf("error %v, want none: stdin was closed", err)
			}
		})
	}
}

// timeUp returns a start for readInput with a deadline of 2 s whose time
// for the state (half the deadline) was up a millisecond ago.
func timeUp() time.Time { return time.Now().Add(-time.Second - time.Millisecond) }

// TestReadInputTimeUpWriter: a state larger than a default pipe's 64 KiB,
// written in one write(2) by a runtime whose write blocked on the full
// pipe while the config loaded, is read whole with the time up: the
// writer refills the pipe as it is read. The read took only what the
// pipe held when it looked, 64 KiB, and the stage took the state for
// cut (19 of 20 runs in the review's reproduction).
func TestReadInputTimeUpWriter(t *testing.T) {
	dd := nstest.RequireCmd(t, "dd")
	large := stateOf(idMember("time-up-writer"), `"annotations":{"a":`+jsonString(strings.Repeat("x", 300<<10))+`}`)
	file := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(file, large, 0o600); err != nil {
		t.Fatal(err)
	}
	// A deadline of 20 s and refills waited for up to the 2 s that
	// leaves (not 50 ms each): the test is of the read's logic, not of
	// how soon a loaded machine runs the writer again.
	defer func(w time.Duration) { drainWait = w }(drainWait)
	drainWait = 2 * time.Second
	// The time for the state up a millisecond ago, and 13 s of the
	// deadline gone (a config that took more than six tenths of it: the
	// refills were waited for until then only).
	for _, gone := range []time.Duration{10*time.Second + time.Millisecond, 13 * time.Second} {
		r := fullPipe(t, dd, file)
		start := time.Now().Add(-gone)
		data, err := readInput(r, start, 20*time.Second)
		if err != nil || !bytes.Equal(data, large) {
			t.Errorf("%v of the deadline gone: read %d of %d bytes, error %v; want the whole state", gone, len(data), len(large), err)
		}
	}
}

// fullPipe returns the read end of a pipe that dd writes file into in
// one write (bs larger than it), as a runtime writes the state, once the
// pipe is full and dd waits.
func fullPipe(t *testing.T, dd, file string) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dd, "if="+file, "bs=1M", "status=none")
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	// The read end closed first: a writer left blocked gets EPIPE.
	t.Cleanup(func() { r.Close(); cmd.Wait() })
	for i := 0; ; i++ { // bounded: 10 s
		n, err := unix.IoctlGetInt(int(r.Fd()), unix.TIOCINQ) // FIONREAD
		if err != nil {
			t.Fatal(err)
		}
		if n >= 64<<10 {
			return r
		}
		if i == 1000 {
			t.Fatalf("the pipe holds %d bytes after 10 s; want it full", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConfigErrorStateTimeUp: a config that does not load, found so
// late that the time for stdin (half the default deadline) is up, still
// has the state the runtime wrote and closed meanwhile recorded whole:
// the record names the container and the ancestry of its process, and
// says nothing of stdin. It used to be recorded with neither ID nor PID
// and the error "stdin was not closed in time (0 bytes read)".
func TestConfigErrorStateTimeUp(t *testing.T) {
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["syslog"] = ""
		c["default"].(map[string]any)["rules"].(map[string]any)["no_such_rule"] = true
	})
	_, cerr := policy.Load(e.config)
	if cerr == nil {
		t.Fatal("the config loads")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := w.Write(stateOf(idMember("cfg-late"), pidMember(os.Getpid()), bundleMember)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	// The record's append has the other half.
	start := time.Now().Add(-policy.DefaultDeadlineMS * time.Millisecond / 2)
	var stderr strings.Builder
	unrecordedConfig(e.config, audit.StageCreateRuntime, r, &stderr, cerr, start)
	oneLine(t, "stderr", stderr.String())
	recs := e.records(t, "")
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1 (stderr %q)", len(recs), stderr.String())
	}
	rec := recs[0]
	if rec.ContainerID != "cfg-late" || recordedPID(rec) != os.Getpid() || strings.Contains(rec.Error, "stdin") || rec.Verdict != audit.VerdictDeny {
		t.Errorf("record id %q pid %d verdict %q error %q; want cfg-late, %d, deny, the config error alone", rec.ContainerID, recordedPID(rec), rec.Verdict, rec.Error, os.Getpid())
	}
	verifyOK(t, e, 1)
}

// TestBinaryStdinCutRefused is TestBinaryCutStateRefused for a state cut
// where its stdin stopped: a runtime that wrote part of the state and
// left stdin open past the time for it. Under a config whose blocks
// select by annotation such a state is refused whatever on_error says,
// since the annotations past the cut are unknown; without such a block
// on_error decides, and so it does for a whole state whose stdin stayed
// open (its annotations are all known). Judge used to refuse only a
// state cut at its size limit: this one was judged by the block its
// partial annotations selected, and ran under on_error allow. The line
// on stderr says what decided, as in TestBinaryCutStateRefused.
func TestBinaryStdinCutRefused(t *testing.T) {
	whole := stateOf(idMember("held"), pidMember(os.Getpid()), bundleMember, `"annotations":{"a":"b"}`)
	cut := whole[:len(whole)-2] // inside the annotations
	for _, tc := range []struct {
		name    string
		state   []byte
		selects bool
		refused bool
	}{
		{"cut/selects", cut, true, true},
		{"cut/no-select", cut, false, false},
		{"whole/selects", whole, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "hook.json", func(c map[string]any) {
				c["on_error"] = policy.OnErrorAllow
				c["syslog"] = ""
				c["default"] = map[string]any{"mode": policy.ModeAudit}
				if tc.selects {
					c["trusted_selectors"] = map[string]any{"annotations": []any{vocab.AnnotationSandboxNamespace}}
					c["policies"] = []any{prodBlock}
				}
			})
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close() // held open until the hook is done
			if _, err := w.Write(tc.state); err != nil {
				t.Fatal(err)
			}
			run := runBinary(t, r, "--config", e.config, audit.StageCreateRuntime)
			r.Close()
			oneLine(t, "stderr", run.stderr)
			recs := e.records(t, "")
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1 (stderr %q)", len(recs), run.stderr)
			}
			rec := recs[0]
			if rec.ContainerID != "held" || !strings.Contains(rec.Error, "stdin was not closed in time") || !strings.Contains(run.stderr, "stdin was not closed in time") {
				t.Errorf("record id %q error %q, stderr %q; want held, saying stdin stayed open", rec.ContainerID, rec.Error, run.stderr)
			}
			switch {
			case tc.refused && (run.code != 1 || rec.Verdict != audit.VerdictDeny || !strings.Contains(rec.Error, "state cut: stdin was not closed in time") || !strings.Contains(rec.Error, "refused whatever on_error says")):
				t.Errorf("exit %d, record verdict %q error %q; want a refusal saying the state was cut", run.code, rec.Verdict, rec.Error)
			case !tc.refused && (run.code != 0 || rec.Verdict != audit.VerdictAllow || strings.Contains(rec.Error, "refused whatever")):
				t.Errorf("exit %d, record verdict %q error %q; want on_error=allow to decide", run.code, rec.Verdict, rec.Error)
			}
			if want := map[bool]string{true: "refused whatever on_error says", false: "on_error=allow: allowed"}[tc.refused]; !strings.Contains(run.stderr, want) {
				t.Errorf("stderr %q does not say %q", run.stderr, want)
			}
			verifyOK(t, e, 1)
		})
	}
}

// TestBinaryConfigErrorRecorded runs every stage with a trusted config
// that does not load (an unknown rule) but names its audit log: each run
// is recorded there, with the config error and what could be read of the
// state (also when the state is itself refused), and createRuntime
// refuses whatever on_error says. The poststart and poststop records
// refer to the container's earlier record as those of a config that
// loads do (they referred to none; a refused state's ID is searched by
// only when read whole).
func TestBinaryConfigErrorRecorded(t *testing.T) {
	for _, mode := range []string{policy.OnErrorAllow, policy.OnErrorDeny} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, "hook.json", func(c map[string]any) {
				c["on_error"] = mode
				c["syslog"] = ""
				c["default"].(map[string]any)["rules"].(map[string]any)["no_such_rule"] = true
			})
			self := os.Getpid()
			longID := strings.Repeat("c", 1100)
			runs := []struct {
				stage, state string
				code         int
				id           string
				verdict      string
				also         string // more the record's error says
				ref          uint64 // the record referred to (0: none)
			}{
				{audit.StageCreateRuntime, string(stateOf(idMember("cfg"), pidMember(self), bundleMember)), 1, "cfg", audit.VerdictDeny, "", 0},
				{audit.StagePoststart, string(stateOf(idMember("cfg"), pidMember(self), bundleMember)), 0, "cfg", "", "", 1},
				{audit.StagePoststop, string(stateOf(idMember("cfg"), bundleMember)), 0, "cfg", "", "", 2},
				{audit.StageCreateRuntime, string(stateOf(idMember(longID), pidMember(self), bundleMember)), 1, longID[:1024], audit.VerdictDeny, "container id longer than 1024 bytes", 0},
				// A refused state's ID read whole is searched by, one
				// cut is not.
				{audit.StageCreateRuntime, string(stateOf(idMember("cfg-2"), pidMember(self), bundleMember)), 1, "cfg-2", audit.VerdictDeny, "", 0},
				{audit.StagePoststop, `{"id":"cfg-2","bundle":`, 0, "cfg-2", "", "its ID was searched by for the container's earlier record", 5},
				{audit.StagePoststop, string(stateOf(idMember(longID), bundleMember)), 0, longID[:1024], "", "no earlier record of the container was searched for: its ID was not read whole", 0},
			}
			for i, rr := range runs {
				r := runBinary(t, strings.NewReader(rr.state), "--config", e.config, rr.stage)
				if r.code != rr.code {
					t.Errorf("run %d %s: exit %d, want %d", i, rr.stage, r.code, rr.code)
				}
				oneLine(t, rr.stage, r.stderr)
				if !strings.Contains(r.stderr, e.config) || !strings.Contains(r.stderr, "no_such_rule: unknown key") {
					t.Errorf("run %d %s: stderr %q does not name the config and the problem", i, rr.stage, r.stderr)
				}
			}
			recs := e.records(t, "")
			if len(recs) != len(runs) {
				t.Fatalf("%d records, want %d: %v", len(recs), len(runs), audittest.Stages(recs))
			}
			for i, rec := range recs {
				rr := runs[i]
				if rec.Stage != rr.stage || rec.ContainerID != rr.id || rec.Verdict != rr.verdict {
					t.Errorf("seq %d: stage %q id %q verdict %q, want %q %q %q", rec.Seq, rec.Stage, vocab.Cut(rec.ContainerID, 40), rec.Verdict, rr.stage, vocab.Cut(rr.id, 40), rr.verdict)
				}
				if !strings.Contains(rec.Error, "the config does not load") || !strings.Contains(rec.Error, "no_such_rule") || !strings.Contains(rec.Error, rr.also) {
					t.Errorf("seq %d: error %q", rec.Seq, rec.Error)
				}
				if rec.Stage != audit.StagePoststop && rec.Ancestry == nil {
					t.Errorf("seq %d: no ancestry for a live process", rec.Seq)
				}
				var ref uint64
				if rec.Ref != nil {
					ref = rec.Ref.Seq
				}
				if ref != rr.ref {
					t.Errorf("seq %d: ref %d, want %d (error %q)", rec.Seq, ref, rr.ref, rec.Error)
				}
			}
			verifyOK(t, e, len(runs))
		})
	}
}

// syslogSink is a syslog socket a test listens on: a unix datagram
// socket (the "syslog" setting unix:///PATH) or a TCP listener
// (tcp://HOST:PORT).
type syslogSink struct {
	dest  string
	dgram *net.UnixConn
	tcp   chan string // what each TCP connection sent, read as a server does: until the sender's end, then closed
}

func newSyslogSink(t *testing.T, network string) *syslogSink {
	t.Helper()
	s := &syslogSink{}
	switch network {
	case "unix":
		path := filepath.Join(t.TempDir(), "log")
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s.dgram, s.dest = c, "unix://"+path
	case "tcp":
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		s.tcp, s.dest = make(chan string, 16), "tcp://"+l.Addr().String()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				data, err := io.ReadAll(c)
				c.Close()
				if err != nil {
					data = append(data, "(read error: "+err.Error()+")"...)
				}
				s.tcp <- string(data)
			}
		}()
	default:
		t.Fatalf("network %q", network)
	}
	return s
}

// next returns the next message: the hook sends before it exits, so a
// message not there within 10 s after its exit is missing.
func (s *syslogSink) next(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	if s.dgram != nil {
		s.dgram.SetReadDeadline(deadline)
		buf := make([]byte, 64<<10)
		n, err := s.dgram.Read(buf)
		if err != nil {
			t.Fatalf("syslog: no message: %v", err)
		}
		return string(buf[:n])
	}
	var data string
	select {
	case data = <-s.tcp:
	case <-time.After(time.Until(deadline)):
		t.Fatal("syslog: no connection")
	}
	// RFC 6587 octet counting: "LEN SP MSG".
	n, msg, ok := strings.Cut(data, " ")
	if l, err := strconv.Atoi(n); !ok || err != nil || l != len(msg) {
		t.Fatalf("syslog: not one octet-counted message: %q", data)
	}
	return msg
}

// none checks that no message is waiting (the hook has exited: whatever
// it sent is there).
func (s *syslogSink) none(t *testing.T) {
	t.Helper()
	var err error
	if s.dgram != nil {
		s.dgram.SetReadDeadline(time.Now())
		buf := make([]byte, 64<<10)
		var n int
		if n, err = s.dgram.Read(buf); err == nil {
			t.Errorf("unexpected syslog message %q", buf[:n])
		}
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Errorf("syslog: %v", err)
		}
		return
	}
	select {
	case data := <-s.tcp:
		t.Errorf("unexpected syslog message %q", data)
	default:
	}
}

// unrecorded checks that msg is nsrel-hook's RFC 5424 message (authpriv.err,
// MSGID "unrecorded") from process pid, and returns its MSG.
func unrecorded(t *testing.T, msg string, pid int) string {
	t.Helper()
	f := strings.SplitN(msg, " ", 8)
	if len(f) != 8 || f[0] != "<83>1" || f[3] != "nsrel-hook" || f[4] != strconv.Itoa(pid) || f[5] != "unrecorded" || f[6] != "-" {
		t.Errorf("syslog message %q: want <83>1 TIME HOST nsrel-hook %d unrecorded - MSG", msg, pid)
		return msg
	}
	if _, err := time.Parse(time.RFC3339Nano, f[1]); err != nil {
		t.Errorf("syslog message time %q: %v", f[1], err)
	}
	return f[7]
}

// TestBinaryConfigErrorUnrecorded runs createRuntime with a config that
// does not load and whose audit log is not known (none named) or cannot
// be written (in a directory others may write): nothing is recorded, and
// the line goes to stderr, to the diagnostics log and, in RFC 5424 with
// MSGID "unrecorded", to the syslog the config names (a unix datagram
// socket or TCP).
func TestBinaryConfigErrorUnrecorded(t *testing.T) {
	for _, where := range []string{"no audit_log", "untrusted log directory"} {
		for _, network := range []string{"unix", "tcp"} {
			t.Run(where+"/"+network, func(t *testing.T) {
				sink := newSyslogSink(t, network)
				var logDir string
				e := newEnv(t, "hook.json", func(c map[string]any) {
					c["syslog"] = sink.dest
					c["default"].(map[string]any)["rules"].(map[string]any)["no_such_rule"] = true
					if where == "no audit_log" {
						delete(c, "audit_log")
					}
				})
				if where == "untrusted log directory" {
					logDir = filepath.Join(e.dir, "logs")
					if err := os.Mkdir(logDir, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.Chmod(logDir, 0o777); err != nil {
						t.Fatal(err)
					}
					e.log = filepath.Join(logDir, "audit.jsonl")
					setConfig(t, e, "audit_log", e.log)
				}
				r := runBinary(t, bytes.NewReader(stateOf(idMember("unrec"), pidMember(os.Getpid()), bundleMember)), "--config", e.config, "createRuntime")
				if r.code != 1 {
					t.Errorf("exit %d, want 1", r.code)
				}
				oneLine(t, "stderr", r.stderr)
				if !strings.Contains(r.stderr, "no_such_rule: unknown key") {
					t.Errorf("stderr %q does not say what is wrong", r.stderr)
				}
				if recs := e.records(t, ""); len(recs) != 0 {
					t.Errorf("%d records in %s", len(recs), e.log)
				}
				msg := unrecorded(t, sink.next(t), r.pid)
				if !strings.Contains(msg, "createRuntime: ") || !strings.Contains(msg, "no_such_rule: unknown key") || !strings.Contains(msg, "(container unrec not recorded)") || strings.Contains(msg, "\n") {
					t.Errorf("syslog MSG %q", msg)
				}
				sink.none(t)
				diag, err := os.ReadFile(filepath.Join(e.dir, "hook.log"))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(diag, []byte("config does not load")) || !bytes.Contains(diag, []byte("no_such_rule")) {
					t.Errorf("diagnostics log:\n%s", diag)
				}
				if logDir != "" && !bytes.Contains(diag, []byte(logDir+": writable by group and others")) {
					t.Errorf("diagnostics log does not say why the log cannot be written:\n%s", diag)
				}
			})
		}
	}
}

// setConfig sets key in the env's config file.
func setConfig(t *testing.T, e *env, key string, v any) {
	t.Helper()
	editConfig(t, e.config, e.config, func(c map[string]any) { c[key] = v })
}

// editConfig writes the config at from, edited, to the path to.
func editConfig(t *testing.T, from, to string, edit func(map[string]any)) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	edit(c)
	out, _ := json.MarshalIndent(c, "", "  ")
	if err := os.WriteFile(to, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRuntimeLongAnnotationRecorded is the demonstration: a
// container with one annotation of 65,537 bytes, under the shipped
// audit-mode config (on_error allow), runs, and every stage is recorded
// with the refused state's error, the ancestry of the real process and
// the recorded annotation cut.
func TestRuntimeLongAnnotationRecorded(t *testing.T) {
	for _, rt := range []string{"runc", "crun"} {
		t.Run(rt, func(t *testing.T) {
			o := requireRuntime(t, rt)
			e := newEnv(t, "hook.json", nil)
			id := uniqueID(t, rt+"-ann")
			long := strings.Repeat("a", 65537)
			opts := bundle.Options{UserNS: true, Annotations: map[string]string{"io.kubernetes.pod.name": long}}
			if stderr, err := o.run(t, e, id, opts, true); err != nil {
				t.Fatalf("%s run: %v\n%s", rt, err, stderr)
			}
			pid, err := o.pid(e, id)
			if err != nil {
				t.Fatalf("the container is not running: %v", err)
			}
			for _, r := range e.records(t, id) {
				checkAncestry(t, r, pid, 1) // while the process lives
			}
			if err := o.delete(e, id); err != nil {
				t.Fatal(err)
			}
			recs := e.records(t, id)
			if d := cmp.Diff(vocab.ShippedStages, audittest.Stages(recs)); d != "" {
				t.Fatalf("stages (-want +got):\n%s", d)
			}
			for _, r := range recs {
				if !strings.Contains(r.Error, "annotation longer than 65536 bytes") {
					t.Errorf("seq %d %s: error %q", r.Seq, r.Stage, r.Error)
				}
				if got := r.Annotations["io.kubernetes.pod.name"]; got != long[:vocab.MaxRecordedValue] {
					t.Errorf("seq %d: recorded annotation of %d bytes, want %d", r.Seq, len(got), vocab.MaxRecordedValue)
				}
				if r.Bundle != filepath.Join(e.dir, "bundles", id) {
					t.Errorf("seq %d: bundle %q", r.Seq, r.Bundle)
				}
				if r.Stage != audit.StagePoststop && r.Verdict != audit.VerdictAllow {
					t.Errorf("seq %d: verdict %q", r.Seq, r.Verdict)
				}
			}
			e.verify(t)
		})
	}
}

// prodBlock is a block that enforces a user namespace on the containers
// of Kubernetes namespaces prod-*, selected by a trusted CRI key.
var prodBlock = map[string]any{
	"name":  "prod",
	"match": map[string]any{"annotations": map[string]any{`io\.kubernetes\.cri\.sandbox-namespace`: "prod-.*"}},
	"mode":  policy.ModeEnforce,
	"rules": map[string]any{"require_user_namespace": true},
}

// TestBinaryFloodedAnnotationsSelect: a state with more annotations than
// the hook takes, all before the trusted one a block selects by (as a
// runtime writes them, in key order), is refused as input, yet selects
// the block the trusted annotation names: the creator cannot flood its
// way out of an enforcing block into a laxer default, whatever on_error
// says.
func TestBinaryFloodedAnnotationsSelect(t *testing.T) {
	var flood []string
	for i := range 4097 {
		flood = append(flood, fmt.Sprintf(`"a%04d":"v"`, i))
	}
	for _, tc := range []struct {
		name, ann, err string
	}{
		{"whole", "", ""},
		{"flooded", strings.Join(flood, ",") + ",", "more than 4096 annotations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "hook.json", func(c map[string]any) {
				c["on_error"] = policy.OnErrorAllow
				c["syslog"] = ""
				c["trusted_selectors"] = map[string]any{"annotations": []any{vocab.AnnotationSandboxNamespace}}
				c["policies"] = []any{prodBlock}
				c["default"] = map[string]any{"mode": policy.ModeAudit}
			})
			// The test process runs in the initial user namespace: prod refuses it.
			state := stateOf(idMember("flood-"+tc.name), pidMember(os.Getpid()), bundleMember,
				`"annotations":{`+tc.ann+`"`+vocab.AnnotationSandboxNamespace+`":"prod-a"}`)
			r := runBinary(t, bytes.NewReader(state), "--config", e.config, "createRuntime")
			if r.code != 1 || !strings.Contains(r.stderr, `"prod"`) {
				t.Errorf("exit %d, stderr %q; want a refusal by the prod block", r.code, r.stderr)
			}
			recs := e.records(t, "")
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1", len(recs))
			}
			rec := recs[0]
			if rec.Policy != "prod" || rec.Verdict != audit.VerdictDeny || !strings.Contains(rec.Error, tc.err) {
				t.Errorf("record policy %q verdict %q error %q; want prod, deny, %q", rec.Policy, rec.Verdict, rec.Error, tc.err)
			}
			verifyOK(t, e, 1)
		})
	}
}

// TestBinaryCutStateRefused: a state over 1 MiB is read that far, and
// the annotations past the cut are unknown. Under a config whose blocks
// select by annotation it is refused whatever on_error says, since the
// block that should judge it is unknown too: a pod's annotations that
// sort before the trusted key (a Go runtime writes < as \u003c, six
// bytes for one) pushed that key past the cut, and the container ran
// under the laxer default block. Without such a block on_error decides.
// The line on stderr says which of the two decided (it used to say
// "on_error=deny: refused" under on_error allow).
func TestBinaryCutStateRefused(t *testing.T) {
	var flood []string
	for i := range 20 {
		flood = append(flood, fmt.Sprintf(`"a%02d":%q`, i, strings.Repeat("<", 60000)))
	}
	for _, selects := range []bool{true, false} {
		t.Run(fmt.Sprintf("selects=%v", selects), func(t *testing.T) {
			e := newEnv(t, "hook.json", func(c map[string]any) {
				c["on_error"] = policy.OnErrorAllow
				c["syslog"] = ""
				c["default"] = map[string]any{"mode": policy.ModeAudit}
				if selects {
					c["trusted_selectors"] = map[string]any{"annotations": []any{vocab.AnnotationSandboxNamespace}}
					c["policies"] = []any{prodBlock}
				}
			})
			state := stateOf(idMember("cut"), pidMember(os.Getpid()), bundleMember,
				`"annotations":{`+strings.Join(flood, ",")+`,"`+vocab.AnnotationSandboxNamespace+`":"prod-a"}`)
			if len(state) <= vocab.MaxStateSize {
				t.Fatalf("state of %d bytes, not over the limit", len(state))
			}
			r := runBinary(t, bytes.NewReader(state), "--config", e.config, "createRuntime")
			recs := e.records(t, "")
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1", len(recs))
			}
			rec := recs[0]
			switch {
			case selects && (r.code != 1 || rec.Verdict != audit.VerdictDeny || !strings.Contains(rec.Error, "larger than") || !strings.Contains(rec.Error, "refused whatever on_error says")):
				t.Errorf("exit %d, record verdict %q error %q; want a refusal saying the state was cut", r.code, rec.Verdict, rec.Error)
			case !selects && (r.code != 0 || rec.Verdict != audit.VerdictAllow):
				t.Errorf("exit %d, record verdict %q error %q; want on_error=allow to decide", r.code, rec.Verdict, rec.Error)
			}
			if want := map[bool]string{true: "refused whatever on_error says", false: "on_error=allow: allowed"}[selects]; !strings.Contains(r.stderr, want) {
				t.Errorf("stderr %q does not say %q", r.stderr, want)
			}
			verifyOK(t, e, 1)
		})
	}
}

// TestBinaryDeadlineStuckDiagnostics: with the diagnostics sent to a
// syslog server that hangs (log_file tcp://, a send waits up to its 1 s
// timeout), the stage waits for it logging.SyncBudget (150 ms) at most,
// then writes the diagnostics to stderr, and ends with the record's
// verdict. Where the deadline passes first all the same (a loaded
// machine), the stage ends at the deadline: the watchdog used to log
// through the same logger and wait for the stuck entry; that exit is
// timed from the watchdog's line on stderr, not from the start (a loaded
// machine stretches the start, not what is asserted).
func TestBinaryDeadlineStuckDiagnostics(t *testing.T) {
	nstest.RequireRoot(t)
	const deadlineMS = 300
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["log_file"] = "tcp://" + nstest.StuckListener(t)
		c["deadline_ms"] = deadlineMS
		c["syslog"] = ""
		// Violated by the test process (the initial user namespace),
		// allowed, and said in the diagnostics after the record.
		c["default"] = map[string]any{"mode": "audit", "rules": map[string]any{"require_user_namespace": true}}
	})
	run := runBinary(t, bytes.NewReader(stateOf(idMember("stuck-diag"), pidMember(os.Getpid()), bundleMember)), "--config", e.config, audit.StageCreateRuntime)
	if run.code != 0 {
		t.Errorf("exit %d, want 0 (recorded, allowed); stderr %q", run.code, run.stderr)
	}
	switch {
	case strings.Contains(run.stderr, "internal deadline of 300 ms passed after the record"):
		if run.afterStderr >= syslog.Timeout {
			t.Errorf("exited %v after the watchdog's line (stderr %q); a wait for the stuck diagnostics takes %v", run.afterStderr, run.stderr, syslog.Timeout)
		}
	case !strings.Contains(run.stderr, "cannot send diagnostics; this entry and the next ones follow on stderr") || !strings.Contains(run.stderr, "policy violated"):
		t.Errorf("stderr %q; want the diagnostics there, after the line that says why", run.stderr)
	}
	if recs := e.records(t, "stuck-diag"); len(recs) != 1 || recs[0].Verdict != audit.VerdictAllow {
		t.Errorf("records %+v", recs)
	}
}

// TestBinaryRefusedStateRefersBack: a poststart whose state is refused
// (an annotation over 64 KiB, which the container's creator chooses) is
// compared with the createRuntime record of its process, as one of a
// state taken whole is: a process that moved to a user namespace of its
// own between createRuntime and poststart (unshare -U, which keeps its
// PID and start time) breaks ancestry_unchanged, which an enforcing
// block refuses under on_error allow. It was recorded without ref or
// comparison and allowed. The poststop of a refused state (4097
// annotations) refers to the container's start record: it referred to
// none, which the container lookup takes for the end of every earlier
// start of the ID.
func TestBinaryRefusedStateRefersBack(t *testing.T) {
	nstest.RequireRoot(t)
	e := newEnv(t, "hook.json", func(c map[string]any) {
		c["on_error"] = policy.OnErrorAllow
		c["syslog"] = ""
		c["default"] = map[string]any{"mode": policy.ModeEnforce}
	})
	pid, move := mover(t)
	long := stateOf(idMember("c"), pidMember(pid), bundleMember, `"annotations":{"a":"`+strings.Repeat("v", 65537)+`"}`)
	if r := runBinary(t, bytes.NewReader(long), "--config", e.config, "createRuntime"); r.code != 0 {
		t.Fatalf("createRuntime: exit %d, want 0 (on_error allow): %s", r.code, r.stderr)
	}
	move()
	r := runBinary(t, bytes.NewReader(long), "--config", e.config, "poststart")
	if r.code != 1 || !strings.Contains(r.stderr, policy.RuleAncestryUnchanged) {
		t.Errorf("poststart: exit %d, stderr %q; want 1 and the rule named", r.code, r.stderr)
	}
	var many []string
	for i := range 4097 {
		many = append(many, fmt.Sprintf(`"k%d":"v"`, i))
	}
	if r := runBinary(t, bytes.NewReader(stateOf(idMember("c"), pidMember(pid), bundleMember, `"annotations":{`+strings.Join(many, ",")+`}`)), "--config", e.config, "poststop"); r.code != 0 {
		t.Errorf("poststop: exit %d: %s", r.code, r.stderr)
	}
	recs := e.records(t, "c")
	if len(recs) != 3 {
		t.Fatalf("records %v, want createRuntime, poststart, poststop", audittest.Stages(recs))
	}
	if a := recs[0].Ancestry; a == nil || a.UserDepth() != 0 {
		t.Fatalf("createRuntime recorded %+v, want user namespace depth 0", a)
	}
	for i, want := range []struct {
		ref  uint64
		also string // the record's error says, after the refusal
	}{{0, ""}, {1, "its ID was searched by"}, {2, "its ID was searched by"}} {
		rec := recs[i]
		var ref uint64
		if rec.Ref != nil {
			ref = rec.Ref.Seq
		}
		if ref != want.ref || !strings.Contains(rec.Error, "the state was refused") || !strings.Contains(rec.Error, want.also) {
			t.Errorf("%s: ref %d, error %q; want ref %d, the refusal and %q said", rec.Stage, ref, rec.Error, want.ref, want.also)
		}
	}
	v := recs[1].Violations
	if len(v) != 1 || v[0].Rule != policy.RuleAncestryUnchanged || !strings.Contains(v[0].Reason, "user namespace depth 0 became 1") || recs[1].Verdict != audit.VerdictDeny {
		t.Errorf("poststart: verdict %q, violations %+v; want deny for %s", recs[1].Verdict, v, policy.RuleAncestryUnchanged)
	}
	verifyOK(t, e, 3)
}

// TestStateInvalidUTF8Note: a state whose bundle path or annotations
// hold invalid UTF-8 (a runtime that writes the bytes as they are) is
// recorded with U+FFFD in their place, as JSON readers decode it, and
// with a note that says so: two bundles that differed only there were
// recorded alike without a word. U+FFFD written as such is no loss.
// The container is judged as any other (a path need not be UTF-8).
func TestStateInvalidUTF8Note(t *testing.T) {
	e := newEnv(t, "hook.json", nil)
	pid := pidMember(os.Getpid())
	for _, tc := range []struct {
		id, state, want string
	}{
		{"u1", `{"id":"u1",` + pid + `,"bundle":"/tmp/` + "\xff\xfe" + `"}`, "state: the bundle path held invalid UTF-8, recorded with U+FFFD in its place"},
		{"u2", `{"id":"u2",` + pid + `,"bundle":"/b","annotations":{"a":"` + "\xff" + `"}}`, "state: annotations held invalid UTF-8"},
		{"u3", `{"id":"u3",` + pid + `,"bundle":"/tmp/\ud800","annotations":{"` + "\xc3" + `":"v"}}`, "state: the bundle path and annotations held invalid UTF-8"},
		{"u4", `{"id":"u4",` + pid + `,"bundle":"/tmp/\ufffd` + "\xef\xbf\xbd" + `"}`, ""},
	} {
		if code, _, stderr := run(tc.state, "--config", e.config, audit.StageCreateRuntime); code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.id, code, stderr)
		}
		recs := e.records(t, tc.id)
		if len(recs) != 1 || recs[0].Verdict != audit.VerdictAllow {
			t.Fatalf("%s: records %+v; want one allow", tc.id, recs)
		}
		if got := recs[0].Error; tc.want == "" && strings.Contains(got, "UTF-8") || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: error member %q; want %q", tc.id, got, tc.want)
		}
	}
	verifyOK(t, e, 4)
}
