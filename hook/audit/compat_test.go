package audit_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/nstest"
)

// newerEnv makes the test binary a writer of a newer record format (see
// newerWriter); its value is a JSON [newerSpec].
const newerEnv = "NSREL_AUDIT_TEST_NEWER_WRITER"

// init runs before TestMain (audit_test.go's, which knows only its own
// helper): a test binary started with newerEnv appends and exits.
func init() {
	if spec := os.Getenv(newerEnv); spec != "" {
		os.Exit(newerWriter(spec))
	}
}

// newerSpec says what a newer writer process appends: Records records of
// format Format to the log at Log, container IDs ID-0, ID-1, ... It says
// "ready" on stdout, then waits for its stdin to close before it starts,
// so that all writers start together.
type newerSpec struct {
	Log     string `json:"log"`
	Format  string `json:"format"`
	ID      string `json:"id"`
	Records int    `json:"records"`
}

func newerWriter(spec string) int {
	var s newerSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for i := range s.Records {
		if err := appendNewer(s.Log, s.Format, fmt.Sprintf("%s-%d", s.ID, i)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

// newerMembers are members of a newer minor format that this version
// does not know, in their order on the line (before "version", where a
// new minor version adds its members).
var newerMembers = []string{"uid_map", "gid_map", "sandbox"}

// appendNewer appends one record of the given format for container id to
// the log at path (not rotated) the way another implementation of the
// format would, knowing only the format: under an exclusive flock of
// PATH.lock, with seq and prev from the last line (which audit.Decode
// must accept), members the current version does not know before
// "version", and the hash over the line's bytes as written.
func appendNewer(path, format, id string) error {
	lf, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close() // releases the lock
	// Polled, as Log.Append polls (from 200 µs, doubling up to 5 ms
	// there): a blocking flock would win the lock over Append's polls
	// every time, and the writers would seldom take turns. Up to 20 ms
	// here, so that 50 processes polling do not starve the lock's holder
	// of CPU on a loaded machine.
	for wait := 200 * time.Microsecond; ; wait = min(2*wait, 20*time.Millisecond) {
		err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			return fmt.Errorf("flock %s.lock: %w", path, err)
		}
		time.Sleep(wait)
	}
	seq, prev := uint64(1), ""
	for line, err := range audit.LinesBackward(path) {
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return err
		}
		r, err := audit.Decode(line)
		if err != nil {
			return fmt.Errorf("the last line of %s: %w", path, err)
		}
		seq, prev = r.Seq+1, r.Hash
		break
	}
	q := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}
	body := fmt.Sprintf(`{"format":%s,"seq":%d,"time":%s,"host":"newer-host","source":"newer-writer","stage":"start","container_id":%s,`+
		`"uid_map":[[0,100000,65536]],"gid_map":[[0,100000,65536]],"sandbox":{"name":"pod-é","uid":"ab\"c"},"version":"1.9.0","prev":%s}`,
		q(format), seq, q(time.Now().UTC().Format(time.RFC3339Nano)), q(id), q(prev))
	sum := sha256.Sum256([]byte(body))
	line := body[:len(body)-1] + `,"hash":"` + hex.EncodeToString(sum[:]) + "\"}\n"
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return err
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// TestNewerMinorWriters has 50 processes append records of format 1.9,
// with members this version does not know, while this version's
// Log.Append appends from several goroutines: the chain verifies, every
// record is there once, the newer records list their unknown members, and
// the searcher finds containers the newer writer recorded. A record of
// format 2.0 at the end then stops Append with ErrNewerFormat, leaving
// the log as it was.
func TestNewerMinorWriters(t *testing.T) {
	// The pipes to the writers start the runtime's poller (an epoll and
	// an eventfd, kept for the life of the process): start it before the
	// count.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	nstest.NoFDLeak(t)
	l, path := newLog(t, audit.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Hand the chain over both ways at least once, whatever the
	// scheduling below.
	want := map[string]string{} // container ID: the format of its record
	for i, newer := range []bool{false, true, false, true} {
		id := fmt.Sprintf("first-%d", i)
		if newer {
			if err := appendNewer(path, "1.9", id); err != nil {
				t.Fatal(err)
			}
			want[id] = "1.9"
			continue
		}
		if err := l.Append(ctx, rec(id)); err != nil {
			t.Fatal(err)
		}
		want[id] = audit.Format
	}

	const procs, each = 50, 2
	const goroutines, perGoroutine = 4, 15
	var cmds []*exec.Cmd
	var gates []io.Closer
	t.Cleanup(func() {
		// After a failure: no writer outlives the test.
		for _, cmd := range cmds {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		}
	})
	for p := range procs {
		spec, _ := json.Marshal(newerSpec{Log: path, Format: "1.9", ID: fmt.Sprintf("newer-%d", p), Records: each})
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), newerEnv+"="+string(spec))
		cmd.Stderr = &strings.Builder{}
		gate, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		ready, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, gates = append(cmds, cmd), append(gates, gate)
		if line, err := bufio.NewReader(ready).ReadString('\n'); line != "ready\n" {
			t.Fatalf("newer writer %d: %q, %v: %s", p, line, err, cmd.Stderr)
		}
		for i := range each {
			want[fmt.Sprintf("newer-%d-%d", p, i)] = "1.9"
		}
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, goroutines*perGoroutine+procs)
	for g := range goroutines {
		for i := range perGoroutine {
			want[fmt.Sprintf("current-%d-%d", g, i)] = audit.Format
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			own, err := audit.Open(path, audit.Options{})
			if err != nil {
				errs <- err
				return
			}
			<-start
			for i := range perGoroutine {
				if err := own.Append(ctx, rec(fmt.Sprintf("current-%d-%d", g, i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// Every writer is ready: go.
	for _, g := range gates {
		g.Close()
	}
	close(start)
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			errs <- fmt.Errorf("newer writer %d: %v: %s", i, err, cmd.Stderr)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	files, err := l.Files()
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.Verify(files, audit.VerifyOptions{})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if s.Records != len(want) || s.LastSeq != uint64(len(want)) {
		t.Errorf("verify: %d records, last seq %d; want %d", s.Records, s.LastSeq, len(want))
	}
	seen := map[string]int{}
	turns, lastSource := 0, "" // how often the chain went from one writer to the other
	for r, err := range audit.Records(files...) {
		if err != nil {
			t.Fatal(err)
		}
		if r.Source != lastSource {
			turns++
			lastSource = r.Source
		}
		seen[r.ContainerID]++
		format, ok := want[r.ContainerID]
		if !ok {
			t.Errorf("seq %d: unexpected container %q", r.Seq, r.ContainerID)
			continue
		}
		wantUnknown := []string(nil)
		if format == "1.9" {
			wantUnknown = newerMembers
		}
		if r.Format != format || !cmp.Equal(r.Unknown, wantUnknown) {
			t.Errorf("seq %d (%s): format %q, unknown members %q; want %q, %q", r.Seq, r.ContainerID, r.Format, r.Unknown, format, wantUnknown)
		}
	}
	t.Logf("%d records, the chain went from one writer to the other %d times", s.Records, turns-1)
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("%s recorded %d times, want once", id, seen[id])
		}
	}

	for _, id := range []string{"first-1", "newer-0-0", fmt.Sprintf("newer-%d-%d", procs-1, each-1)} {
		r, err := l.Searcher().Last(id, nil)
		if err != nil || r == nil || r.Format != "1.9" || r.Source != "newer-writer" || !cmp.Equal(r.Unknown, newerMembers) {
			t.Errorf("Searcher.Last(%q): %+v, %v; want the newer writer's record", id, r, err)
		}
	}

	t.Run("newer major refused", func(t *testing.T) {
		if err := appendNewer(path, "2.0", "from-the-future"); err != nil {
			t.Fatal(err)
		}
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		err = l.Append(ctx, rec("after-the-future"))
		if !errors.Is(err, audit.ErrNewerFormat) {
			t.Errorf("Append after a format 2.0 record: %v; want an error matching audit.ErrNewerFormat", err)
		}
		if err == nil || !strings.Contains(err.Error(), "newer format") {
			t.Errorf("Append after a format 2.0 record: %v; want it to say the format is newer", err)
		}
		after, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(after) != string(before) {
			t.Errorf("the refused append changed the log (%d bytes, was %d): a newer record is not damage", len(after), len(before))
		}
	})
}
