package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/safefile"
	"github.com/nsrel/nsrel/internal/vocab"
)

// helperEnv makes the test binary an appender for the kill -9 test.
const helperEnv = "NSREL_AUDIT_TEST_APPENDER"

// pausedEnv makes the test binary append one record to the log it names
// and stop right before its write after the log's torn tail, saying so.
const pausedEnv = "NSREL_AUDIT_TEST_PAUSED_APPENDER"

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		appendForever(path)
		return
	}
	if path := os.Getenv(checkpointDueEnv); path != "" {
		checkpointDue(path)
		return
	}
	if path := os.Getenv(pausedEnv); path != "" {
		audit.PauseBeforeTornWrite(func() {
			os.Stdout.WriteString("paused\n")
			select {}
		})
		l, err := audit.Open(path, audit.Options{})
		if err == nil {
			err = l.Append(context.Background(), rec("paused"))
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// appendForever appends records and prints each appended seq on stdout
// only after Append returned (the record is on disk).
func appendForever(path string) {
	l, err := audit.Open(path, audit.Options{RotateBytes: 64 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		r := rec(fmt.Sprintf("p%d-%d", os.Getpid(), i))
		if err := l.Append(context.Background(), r); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintln(w, r.Seq)
		w.Flush()
	}
}

func u64(v uint64) *uint64 { return &v }

func rec(id string) *audit.Record {
	return &audit.Record{
		Source:      audit.SourceOCIHook,
		Stage:       audit.StageCreateRuntime,
		ContainerID: id,
		Bundle:      "/run/bundles/" + id,
		Annotations: map[string]string{"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "prod"},
		Ancestry: &audit.Ancestry{PID: 4242, StartTime: 99,
			User:  []audit.UserNS{{Ino: 4026532176, Dev: 4, ID: u64(805), OwnerUID: 0}, {Ino: 4026531837, Dev: 4, ID: nil}},
			PIDNS: []audit.PIDNS{{Ino: 4026532181, Dev: 4, ID: u64(809), OwnerUserIno: u64(4026532176)}, {Ino: 4026531836, Dev: 4}}},
		Policy:     "default",
		Mode:       "enforce",
		Verdict:    audit.VerdictDeny,
		Violations: []audit.Violation{{Rule: "require_user_namespace", Reason: "because"}},
		Version:    "test",
	}
}

func newLog(t *testing.T, opts audit.Options) (*audit.Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l, path
}

func appendN(t *testing.T, l *audit.Log, n int) []*audit.Record {
	t.Helper()
	var out []*audit.Record
	for i := 0; i < n; i++ {
		r := rec("c" + strconv.Itoa(i))
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func verify(t *testing.T, l *audit.Log, opts audit.VerifyOptions) (*audit.Summary, error) {
	t.Helper()
	files, err := l.Files()
	if err != nil {
		t.Fatal(err)
	}
	return audit.Verify(files, opts)
}

func TestAppendVerifyRoundTrip(t *testing.T) {
	nstest.NoFDLeak(t)
	l, path := newLog(t, audit.Options{Host: "h"})
	recs := appendN(t, l, 5)
	s, err := verify(t, l, audit.VerifyOptions{Anchor: recs[4].Hash})
	if err != nil {
		t.Fatal(err)
	}
	if s.Records != 5 || s.FirstSeq != 1 || s.LastSeq != 5 || s.LastHash != recs[4].Hash {
		t.Errorf("summary %+v", s)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v, want 0600", st.Mode().Perm())
	}
	var got []*audit.Record
	for r, err := range audit.Records(path) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if d := cmp.Diff(recs, got); d != "" {
		t.Errorf("records read back (-appended +read):\n%s", d)
	}
	for i, r := range got {
		if r.Seq != uint64(i+1) || (i > 0 && r.Prev != got[i-1].Hash) || r.Host != "h" || r.Time == "" {
			t.Errorf("record %d: seq %d prev %q host %q time %q", i, r.Seq, r.Prev, r.Host, r.Time)
		}
	}
}

// tamper rewrites the log's lines with f.
func tamper(t *testing.T, path string, f func(lines [][]byte) [][]byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	if err := os.WriteFile(path, bytes.Join(f(lines), nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

func replaceIn(i int, old, new string) func([][]byte) [][]byte {
	return func(lines [][]byte) [][]byte {
		lines[i] = bytes.Replace(lines[i], []byte(old), []byte(new), 1)
		return lines
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	tests := []struct {
		name   string
		change func([][]byte) [][]byte
		opts   func(recs []*audit.Record) audit.VerifyOptions
		line   int
		reason string
	}{
		{"edit verdict", replaceIn(2, `"verdict":"deny"`, `"verdict":"allow"`), nil, 3, "hash does not match"},
		{"edit pid", replaceIn(1, `"pid":4242`, `"pid":4243`), nil, 2, "hash does not match"},
		{"edit namespace inode", replaceIn(3, `4026532176`, `4026532177`), nil, 4, "hash does not match"},
		{"edit container id", replaceIn(0, `"container_id":"c0"`, `"container_id":"cX"`), nil, 1, "hash does not match"},
		{"edit hash", replaceIn(2, `"hash":"`, `"hash":"0`), nil, 3, "does not end with the record hash"},
		{"add field", replaceIn(1, `{"format"`, `{"extra":1,"format"`), nil, 2, "hash does not match"},
		{"add space", replaceIn(1, `"seq":2,`, `"seq": 2,`), nil, 2, "hash does not match"},
		{"delete record", func(l [][]byte) [][]byte { return append(l[:2], l[3:]...) }, nil, 3, "expected seq 3 after seq 2"},
		{"delete first record", func(l [][]byte) [][]byte { return l[1:] }, nil, 1, "starts at seq 2"},
		{"swap records", func(l [][]byte) [][]byte { l[1], l[2] = l[2], l[1]; return l }, nil, 2, "expected seq 2 after seq 1"},
		{"truncate mid-record", func(l [][]byte) [][]byte { l[4] = l[4][:40]; return l }, nil, 5, "torn last line"},
		{"truncate whole records", func(l [][]byte) [][]byte { return l[:3] },
			func(recs []*audit.Record) audit.VerifyOptions { return audit.VerifyOptions{Anchor: recs[4].Hash} }, 0, "no record has the anchor hash"},
		{"garbage line", func(l [][]byte) [][]byte { return append(l[:2], append([][]byte{[]byte("hello\n")}, l[2:]...)...) }, nil, 3, "does not end with the record hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, path := newLog(t, audit.Options{})
			recs := appendN(t, l, 5)
			tamper(t, path, tt.change)
			var opts audit.VerifyOptions
			if tt.opts != nil {
				opts = tt.opts(recs)
			}
			_, err := verify(t, l, opts)
			var p *audit.Problem
			if !errors.As(err, &p) {
				t.Fatalf("tampering not found: %v", err)
			}
			if p.File != path || p.Line != tt.line || !strings.Contains(p.Reason, tt.reason) {
				t.Errorf("problem %q, want %s:%d: ...%s...", p.Error(), path, tt.line, tt.reason)
			}
		})
	}
}

// TestForgedChainStillCaught rewrites a record and recomputes its hash, as
// an attacker who knows the format would: the next record's prev no longer
// matches.
func TestForgedChainStillCaught(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	recs := appendN(t, l, 4)
	forged := *recs[1]
	forged.Verdict = audit.VerdictAllow
	line, err := forged.Encode()
	if err != nil {
		t.Fatal(err)
	}
	tamper(t, path, func(lines [][]byte) [][]byte { lines[1] = line; return lines })
	_, err = verify(t, l, audit.VerifyOptions{})
	var p *audit.Problem
	if !errors.As(err, &p) || p.Line != 3 || !strings.Contains(p.Reason, "prev does not match the hash of seq 2") {
		t.Errorf("got %v, want line 3 prev mismatch", err)
	}
}

func TestTornTailRepaired(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 3)
	tear(t, path, []byte(`{"seq":4,"time":"2026-`))
	_, err := verify(t, l, audit.VerifyOptions{})
	var p *audit.Problem
	if !errors.As(err, &p) || p.Line != 4 || !strings.Contains(p.Reason, "3 record(s) before it are intact") {
		t.Fatalf("torn line: got %v", err)
	}
	// Readers skip it meanwhile.
	if ok, err := l.HasStart("c2", 4242, 99); !ok || err != nil {
		t.Errorf("HasStart with a torn tail: %v %v", ok, err)
	}
	r := rec("after")
	if err := l.Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	s, err := verify(t, l, audit.VerifyOptions{})
	if err != nil {
		t.Fatalf("after repair: %v", err)
	}
	if lines := readLines(t, path); len(lines) != 6 || string(lines[3]) != `{"seq":4,"time":"2026-`+audit.TornMark+"\n" {
		t.Errorf("the torn line is not kept, ended with the mark: %q", lines)
	}
	if s.Records != 5 || len(s.TornTails) != 1 || r.Seq != 5 {
		t.Fatalf("summary %+v, appended seq %d", s, r.Seq)
	}
	tr := s.TornTails[0]
	if tr.Seq != 4 || tr.Torn != `{"seq":4,"time":"2026-` || tr.TornBytes != 22 || tr.Stage != audit.StageTornTail {
		t.Errorf("torn-tail record %+v", tr)
	}
}

// TestDamagedLastRecordRecorded damages the last complete line in every
// way a crash or an editor could and checks that the next append records
// the damage (telling a crash from an edit), the chain goes on from the
// last good record, verify fails naming the line until an ack record
// acknowledges the damage, and appends go on after that.
func TestDamagedLastRecordRecorded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
		kind   string
	}{
		{"edited", func(b []byte) []byte { return bytes.Replace(b, []byte(`"pid":4242`), []byte(`"pid":1`), 1) }, "edited"},
		{"zeroed", func(b []byte) []byte { return bytes.Repeat([]byte{0}, len(b)) }, "zeroed"},
		{"garbled", func(b []byte) []byte { return append([]byte("garbage "), b[:len(b)/2]...) }, "garbled"},
		{"byte flipped", func(b []byte) []byte { b[len(b)/3] ^= 0x20; return b }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, path := newLog(t, audit.Options{})
			recs := appendN(t, l, 3)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := bytes.SplitAfter(data, []byte("\n"))
			last := bytes.TrimSuffix(lines[2], []byte("\n"))
			lines[2] = append(tc.damage(bytes.Clone(last)), '\n')
			if err := os.WriteFile(path, bytes.Join(lines, nil), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := verify(t, l, audit.VerifyOptions{}); err == nil {
				t.Fatal("verify accepts the damaged line")
			}
			after := rec("after")
			if err := l.Append(context.Background(), after); err != nil {
				t.Fatalf("append after a damaged last record: %v", err)
			}
			s, err := verify(t, l, audit.VerifyOptions{})
			var p *audit.Problem
			if !errors.As(err, &p) || !strings.Contains(p.Reason, "not acknowledged") || len(s.Damage) != 1 {
				t.Fatalf("verify after the damage was recorded: %v, damage %+v", err, s.Damage)
			}
			d := s.Damage[0].Record
			if d.Seq != 3 || d.Prev != recs[1].Hash || len(d.Damage) != 1 || (tc.kind != "" && d.Damage[0].Kind != tc.kind) {
				t.Errorf("damage record %+v", d)
			}
			if after.Seq != 4 || after.Prev != d.Hash {
				t.Errorf("the record after the damage: seq %d prev %s", after.Seq, after.Prev)
			}
			if s.Damage[0].Lines[0] != path+":3" {
				t.Errorf("damaged line at %v, want %s:3", s.Damage[0].Lines, path)
			}
			ack := &audit.Record{Source: audit.SourceOperator, Stage: audit.StageAck, Ref: &audit.Ref{Seq: d.Seq, Stage: d.Stage, Hash: d.Hash}, Note: "checked"}
			if err := l.Append(context.Background(), ack); err != nil {
				t.Fatal(err)
			}
			appendN(t, l, 1)
			if s, err := verify(t, l, audit.VerifyOptions{}); err != nil || s.Damage[0].Ack == nil {
				t.Errorf("after the ack: %v", err)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	l, path := newLog(t, audit.Options{RotateBytes: 4096})
	recs := appendN(t, l, 40)
	files, err := l.Files()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 || files[len(files)-1] != path {
		t.Fatalf("files %v", files)
	}
	for _, f := range files[:len(files)-1] {
		if !strings.HasPrefix(f, path+".0000") {
			t.Errorf("rotated file name %s", f)
		}
		if st, err := os.Stat(f); err != nil || st.Size() < 4096 || st.Mode().Perm() != 0o600 {
			t.Errorf("rotated file %s: %v %v", f, st, err)
		}
	}
	s, err := audit.Verify(files, audit.VerifyOptions{Anchor: recs[39].Hash})
	if err != nil || s.Records != 40 {
		t.Fatalf("verify across files: %+v %v", s, err)
	}
	if got, _ := audit.Files(path); !cmp.Equal(got, files) {
		t.Errorf("audit.Files = %v, want %v", got, files)
	}
	// The searcher reaches into rotated files, up to SearchFiles of them.
	if ok, err := l.HasStart("c39", 4242, 99); !ok || err != nil {
		t.Errorf("HasStart(c39) in the current file: %v %v", ok, err)
	}
	if ok, err := l.HasStart("c0", 4242, 99); ok || err != nil || len(files) <= audit.SearchFiles+1 {
		t.Errorf("HasStart(c0) beyond SearchFiles (%d of %d files): %v %v", audit.SearchFiles, len(files), ok, err)
	}
	old := audit.SearchFiles
	audit.SearchFiles = len(files)
	if ok, err := l.HasStart("c0", 4242, 99); !ok || err != nil {
		t.Errorf("HasStart(c0) in the oldest file: %v %v", ok, err)
	}
	audit.SearchFiles = old
	// A missing middle file breaks the chain.
	if err := os.Remove(files[1]); err != nil {
		t.Fatal(err)
	}
	_, err = audit.Verify(append(files[:1:1], files[2:]...), audit.VerifyOptions{})
	var p *audit.Problem
	if !errors.As(err, &p) || p.File != files[2] || p.Line != 1 || !strings.Contains(p.Reason, "expected seq") {
		t.Errorf("missing rotated file: %v", err)
	}
	// Verifying only the newest files needs --partial.
	if _, err := audit.Verify(files[2:], audit.VerifyOptions{Partial: true}); err != nil {
		t.Errorf("partial chain: %v", err)
	}
}

func TestRefusesNonRegularPaths(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, nil, 0o600)
	if err := os.Symlink(target, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"link", "fifo", "dir"} {
		t.Run(name, func(t *testing.T) {
			nstest.NoFDLeak(t)
			l, err := audit.Open(filepath.Join(dir, name), audit.Options{})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- l.Append(context.Background(), rec("x")) }()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("append blocked")
			}
			if !errors.Is(err, safefile.ErrNotRegular) {
				t.Errorf("append to a %s: %v, want ErrNotRegular", name, err)
			}
		})
	}
	if data, _ := os.ReadFile(target); len(data) != 0 {
		t.Error("the symlink's target was written")
	}
	if _, err := audit.Open("relative.jsonl", audit.Options{}); err == nil {
		t.Error("relative path accepted")
	}
}

func TestLockHonoursDeadline(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Append(ctx, rec("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("append while locked: %v, want deadline exceeded", err)
	}
}

func TestAppendWithSkips(t *testing.T) {
	l, _ := newLog(t, audit.Options{})
	appendN(t, l, 2) // c0, c1 with pid 4242 start 99
	ctx := context.Background()
	for _, tt := range []struct {
		id    string
		pid   int
		start uint64
		want  bool
	}{{"c1", 4242, 99, false}, {"c1", 4242, 0, false}, {"c1", 4242, 100, true}, {"c1", 1, 99, true}, {"c9", 4242, 99, true}} {
		r, err := l.AppendWith(ctx, func(s *audit.Searcher) (*audit.Record, error) {
			if prev, err := s.Last(tt.id, audit.StartMatcher(tt.pid, tt.start)); err != nil || prev != nil {
				return nil, err
			}
			return &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: tt.id + "-new"}, nil
		})
		if err != nil || (r != nil) != tt.want {
			t.Errorf("%s pid %d start %d: appended %v (%v), want %v", tt.id, tt.pid, tt.start, r != nil, err, tt.want)
		}
	}
}

// TestConcurrentAppends runs writers in goroutines at once: every record
// lands exactly once and the chain verifies. (Other processes: see
// TestKill9DuringAppends.)
func TestConcurrentAppends(t *testing.T) {
	l, path := newLog(t, audit.Options{RotateBytes: 16 << 10})
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own, _ := audit.Open(path, audit.Options{RotateBytes: 16 << 10})
			for i := 0; i < each; i++ {
				if err := own.Append(context.Background(), rec(fmt.Sprintf("w%d-%d", w, i))); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s, err := verify(t, l, audit.VerifyOptions{})
	if err != nil || s.Records != writers*each {
		t.Fatalf("verify: %+v %v", s, err)
	}
	files, _ := l.Files()
	seen := map[string]int{}
	for r, err := range audit.Records(files...) {
		if err != nil {
			t.Fatal(err)
		}
		seen[r.ContainerID]++
	}
	for w := 0; w < writers; w++ {
		for i := 0; i < each; i++ {
			if n := seen[fmt.Sprintf("w%d-%d", w, i)]; n != 1 {
				t.Errorf("w%d-%d recorded %d times", w, i, n)
			}
		}
	}
}

// TestKill9DuringAppends kills appending processes at random moments: no
// record whose append returned is ever lost, and the chain verifies
// after one more append repairs a torn tail, if any.
func TestKill9DuringAppends(t *testing.T) {
	l, path := newLog(t, audit.Options{RotateBytes: 64 << 10})
	acked := map[uint64]bool{}
	for round := 0; round < 6; round++ {
		var procs []*exec.Cmd
		var outs []*bufio.Reader
		var first []string
		for i := 0; i < 3; i++ {
			cmd, out := startSelf(t, helperEnv+"="+path)
			procs = append(procs, cmd)
			outs = append(outs, out)
		}
		// Each appender is killed while appending: once all of them
		// have appended (said a seq), after a while that grows with
		// the round. (A fixed time from the start let a loaded machine
		// kill them before their first append.)
		for _, out := range outs {
			line, _ := out.ReadString('\n')
			first = append(first, line)
		}
		time.Sleep(time.Duration(round*5) * time.Millisecond)
		for _, p := range procs {
			p.Process.Signal(syscall.SIGKILL)
		}
		for i, p := range procs {
			rest, _ := io.ReadAll(outs[i])
			p.Wait()
			for _, f := range strings.Fields(first[i] + string(rest)) {
				seq, err := strconv.ParseUint(f, 10, 64)
				if err != nil {
					continue // the last number may be cut short
				}
				acked[seq] = true
			}
		}
	}
	if len(acked) == 0 {
		t.Fatal("no appends acknowledged")
	}
	if err := l.Append(context.Background(), rec("final")); err != nil {
		t.Fatal(err)
	}
	files, _ := l.Files()
	s, err := audit.Verify(files, audit.VerifyOptions{})
	if err != nil {
		t.Fatalf("verify after kill -9: %v", err)
	}
	present := map[uint64]bool{}
	for r, err := range audit.Records(files...) {
		if err != nil {
			t.Fatal(err)
		}
		present[r.Seq] = true
	}
	for seq := range acked {
		if !present[seq] {
			t.Errorf("acknowledged record seq %d lost", seq)
		}
	}
	t.Logf("%d acknowledged appends, %d records, %d torn tails repaired", len(acked), s.Records, len(s.TornTails))
}

func TestDecodeRejects(t *testing.T) {
	r := rec("x")
	r.Seq = 1
	good, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Decode(good); err != nil {
		t.Fatalf("good line: %v", err)
	}
	for name, line := range map[string]string{
		"empty":       "",
		"not json":    "hello",
		"short hash":  `{"seq":1,"hash":"abc"}`,
		"upper hash":  strings.ToUpper(string(good)),
		"invalid utf": "\xff" + string(good),
		"too long":    strings.Repeat("x", audit.MaxLine+1),
	} {
		if _, err := audit.Decode([]byte(line)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	big := rec("x")
	big.Bundle = strings.Repeat("b", audit.MaxLine)
	if _, err := big.Encode(); err == nil {
		t.Error("oversized record encoded")
	}
}

func FuzzDecode(f *testing.F) {
	r := rec("x")
	r.Seq = 1
	good, _ := r.Encode()
	f.Add(good)
	r2 := &audit.Record{Seq: 2, Source: "s", Stage: audit.StagePoststop, ContainerID: "\x1b[2J", Ref: &audit.Ref{Seq: 1, Hash: r.Hash}, Prev: r.Hash}
	l2, _ := r2.Encode()
	f.Add(l2)
	f.Add([]byte(`{"seq":1,"hash":"` + strings.Repeat("a", 64) + `"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := audit.Decode(line)
		if err != nil {
			return
		}
		// Whatever decodes must encode back to the same line.
		again, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bytes.TrimSuffix(again, []byte("\n")), bytes.TrimSuffix(line, []byte("\n"))) {
			t.Errorf("decode/encode not stable:\n%q\n%q", line, again)
		}
	})
}

// TestSearcherBackwards checks the backward reader across chunk
// boundaries, with long lines and a torn tail.
func TestSearcherBackwards(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	var want []*audit.Record
	for i := 0; i < 30; i++ {
		r := rec(fmt.Sprintf("c%d", i%3))
		r.Bundle = strings.Repeat("b", i*997) // lines of many sizes, some > 64 KiB together
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		want = append(want, r)
	}
	tear(t, path, []byte(`{"seq":31,"container_id":"c0"`))
	s := l.Searcher()
	for id, wantSeq := range map[string]uint64{"c0": 28, "c1": 29, "c2": 30} {
		r, err := s.Last(id, nil)
		if err != nil || r == nil || r.Seq != wantSeq {
			t.Errorf("Last(%s) = %v, %v; want seq %d", id, r, err, wantSeq)
		}
	}
	r, err := s.Last("c0", func(r *audit.Record) bool { return r.Seq < 5 })
	if err != nil || r == nil || r.Seq != 4 {
		t.Errorf("Last(c0, seq<5) = %v, %v; want seq 4", r, err)
	}
	if r, err := s.Last("none", nil); r != nil || err != nil {
		t.Errorf("Last(none) = %v, %v", r, err)
	}
	first, err := s.Last("c0", func(r *audit.Record) bool { return r.Seq == 1 })
	if err != nil || first == nil || first.Hash != want[0].Hash {
		t.Errorf("first record not found backwards: %v %v", first, err)
	}
}

// TestSearchStopsWithContext checks that a search under the log's lock
// stops when the append's context ends (a cold page cache must not hold a
// container start, and every other writer, past its deadline): the append
// fails with the context's error, writes nothing, and leaves the lock free.
// A searcher without a context searches to the end.
func TestSearchStopsWithContext(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 64*31)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	looks := 0
	audit.SlowSearches(t, 100*time.Millisecond, func() { looks++ })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	got, err := l.AppendStart(ctx, rec("new"), 4242, 99)
	if got != nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "search of") {
		t.Fatalf("AppendStart with a search past its deadline = %v, %v; want the search's deadline error", got, err)
	}
	if looks >= 31 {
		t.Errorf("the search looked at its context %d times: it read the whole file", looks)
	}
	if after, err := os.ReadFile(path); err != nil || !bytes.Equal(after, before) {
		t.Errorf("the failed append changed the log (%v)", err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if r, err := l.Searcher().WithContext(cctx).Last("c0", nil); r != nil || !errors.Is(err, context.Canceled) {
		t.Errorf("Last with a cancelled context = %v, %v", r, err)
	}
	audit.SlowSearches(t, 0, nil)
	if r, err := l.Searcher().Last("c0", nil); err != nil || r == nil || r.Seq != 1 {
		t.Errorf("Last(c0) without a context = %v, %v; want seq 1", r, err)
	}
	if err := l.Append(context.Background(), rec("after")); err != nil {
		t.Errorf("append after the stopped search: %v", err)
	}
}

// TestEveryByteEditCaught changes each byte of one record in turn: verify
// must name that record every time.
func TestEveryByteEditCaught(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 3)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.IndexByte(orig, '\n') + 1
	end := start + bytes.IndexByte(orig[start:], '\n') // line 2, without its newline
	for i := start; i < end; i++ {
		data := bytes.Clone(orig)
		switch c := data[i]; {
		case c >= '0' && c <= '8':
			data[i] = c + 1
		case c == '9':
			data[i] = '0'
		case c == 'a':
			data[i] = 'b'
		default:
			data[i] = 'a'
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := audit.Verify([]string{path}, audit.VerifyOptions{})
		var p *audit.Problem
		if !errors.As(err, &p) || p.Line != 2 {
			t.Errorf("byte %d (%q -> %q) of line 2 changed: verify says %v", i-start, orig[i], data[i], err)
		}
	}
}

// TestSnapshot checks that a snapshot waits for a writer that holds the
// lock, shares the lock with other readers, sees only the bytes that were
// there when it was taken while appends go on, and that verify and read
// it without the lock.
func TestSnapshot(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 1)
	f, err := os.OpenFile(path+".lock", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := l.Snapshot(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("while a writer holds the lock: %v", err)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_SH) // readers share
	snap, err := l.Snapshot(context.Background())
	if err != nil {
		t.Fatalf("beside another reader: %v", err)
	}
	defer snap.Close()
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	appendN(t, l, 3) // while the snapshot is open
	s, err := audit.VerifySnapshot(snap, audit.VerifyOptions{})
	if err != nil || s.Records != 1 {
		t.Errorf("snapshot: %d records, %v; want the 1 there was", s.Records, err)
	}
	if s, err := verify(t, l, audit.VerifyOptions{}); err != nil || s.Records != 4 {
		t.Errorf("now: %d records, %v", s.Records, err)
	}
}

// BenchmarkAppend measures one locked, fdatasync'ed append to a log in
// the temporary directory.
func BenchmarkAppend(b *testing.B) {
	l, err := audit.Open(filepath.Join(b.TempDir(), "audit.jsonl"), audit.Options{RotateBytes: 16 << 20})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := l.Append(context.Background(), rec("bench")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFdatasync measures what every append must pay whatever the
// code: one write of a record-sized line to an O_APPEND file and its
// fdatasync, on the file system of the test's temporary directory.
func BenchmarkFdatasync(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "audit.jsonl"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	line := append(bytes.Repeat([]byte("x"), 799), '\n')
	for b.Loop() {
		if _, err := f.Write(line); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode measures decoding and checking one record line.
func BenchmarkDecode(b *testing.B) {
	r := rec("bench")
	r.Seq = 1
	line, _ := r.Encode()
	for b.Loop() {
		if _, err := audit.Decode(line); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify measures verifying a chain of 10000 records.
// chainLines encodes a chain of n records (seq 1 to n) as lines, for
// files built without appends.
func chainLines(b *testing.B, n int) [][]byte {
	var lines [][]byte
	prev := ""
	for i := 1; i <= n; i++ {
		r := rec(fmt.Sprintf("c%d", i))
		r.Seq, r.Prev, r.Time, r.Host = uint64(i), prev, "2026-01-01T00:00:00Z", "h"
		line, err := r.Encode()
		if err != nil {
			b.Fatal(err)
		}
		lines = append(lines, line)
		prev = r.Hash
	}
	return lines
}

func BenchmarkVerify(b *testing.B) {
	l, err := audit.Open(filepath.Join(b.TempDir(), "audit.jsonl"), audit.Options{})
	if err != nil {
		b.Fatal(err)
	}
	// Build the file directly: 10000 appends with fdatasync would dominate.
	data := bytes.Join(chainLines(b, 10000), nil)
	if err := os.WriteFile(l.Path(), data, 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if s, err := audit.Verify([]string{l.Path()}, audit.VerifyOptions{}); err != nil || s.Records != 10000 {
			b.Fatal(s, err)
		}
	}
}

// BenchmarkVerifyAfterRetention is BenchmarkVerify on a chain that
// starts after seq 1 (--partial: as after retention), where verify first
// looks among the first lines for a damage record that lists them all
// (older records again first in the files: none here).
func BenchmarkVerifyAfterRetention(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.jsonl")
	data := bytes.Join(chainLines(b, 11000)[1000:], nil)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if s, err := audit.Verify([]string{path}, audit.VerifyOptions{Partial: true}); err != nil || s.Records != 10000 {
			b.Fatal(s, err)
		}
	}
}

// BenchmarkVerifyCheckpoints verifies 10000 records against a
// checkpoint of every 10th (a year of checkpoints is about one in ten of
// a busy node's records), and against those and 10000 more that name no
// record of the log's (anyone may add lines to a collector's file): the
// time grows with records plus checkpoints, not their product.
func BenchmarkVerifyCheckpoints(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.jsonl")
	lines := chainLines(b, 10000)
	if err := os.WriteFile(path, bytes.Join(lines, nil), 0o600); err != nil {
		b.Fatal(err)
	}
	var genuine []audit.Checkpoint
	for i := 9; i < len(lines); i += 10 {
		r, err := audit.Decode(lines[i])
		if err != nil {
			b.Fatal(err)
		}
		genuine = append(genuine, audit.Checkpoint{Host: "h", Log: path, Seq: r.Seq, Hash: r.Hash, Time: r.Time})
	}
	more := slices.Clone(genuine)
	for i := range 10000 {
		more = append(more, audit.Checkpoint{Host: "h", Log: path, Seq: uint64(20000 + i), Hash: strings.Repeat("0", 64), Time: "2026-01-01T00:00:00Z"})
	}
	for _, bc := range []struct {
		name  string
		ckpts []audit.Checkpoint
		ok    bool
	}{{"1000 genuine", genuine, true}, {"11000", more, false}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, err := audit.Verify([]string{path}, audit.VerifyOptions{Checkpoints: bc.ckpts})
				if (err == nil) != bc.ok || s.Records != 10000 {
					b.Fatal(s, err)
				}
			}
		})
	}
}

// TestTornTailKeptWhenBuildFails: the torn bytes cut off the file are
// recorded even when the caller's record cannot be made.
func TestTornTailKeptWhenBuildFails(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 1)
	tear(t, path, []byte(`{"seq":2,"ti`))
	_, err := l.AppendWith(context.Background(), func(*audit.Searcher) (*audit.Record, error) {
		return nil, errors.New("no record today")
	})
	if err == nil || err.Error() != "no record today" {
		t.Fatalf("error %v", err)
	}
	s, err := verify(t, l, audit.VerifyOptions{})
	if err != nil || s.Records != 2 || len(s.TornTails) != 1 || s.TornTails[0].Torn != `{"seq":2,"ti` {
		t.Errorf("after a failed build: %+v %v", s, err)
	}
}

func TestCreatesMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "var", "log", "nsrel", "audit.jsonl")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), rec("x")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Dir(path))
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("log directory: %v %v", st, err)
	}
}

func TestFilesIgnoresOtherNames(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 1)
	for _, name := range []string{".lock", ".123", ".000000000001x", ".bak", "x.000000000001", ".000000000000000000001"} {
		os.WriteFile(path+name, nil, 0o600)
	}
	os.WriteFile(path+".000000000005", nil, 0o600)
	os.WriteFile(path+".000000000002", nil, 0o600)
	got, err := audit.Files(path)
	want := []string{path + ".000000000002", path + ".000000000005", path}
	if err != nil || !cmp.Equal(want, got) {
		t.Errorf("Files = %v, %v; want %v", got, err, want)
	}
}

// TestLongLines reads records longer than the reader's buffer, and a line
// longer than MaxLine, forwards (verify) and backwards (search).
func TestLongLines(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	for i, n := range []int{10, 200 << 10, 10, 700 << 10, 10} {
		r := rec(fmt.Sprintf("long-%d", i))
		r.Bundle = strings.Repeat("b", n)
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	s, err := verify(t, l, audit.VerifyOptions{})
	if err != nil || s.Records != 5 {
		t.Fatalf("verify long records: %+v %v", s, err)
	}
	if r, err := l.Searcher().Last("long-1", nil); err != nil || r == nil || len(r.Bundle) != 200<<10 {
		t.Errorf("search backwards across long lines: %v", err)
	}
	// A line beyond MaxLine is refused by name.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(strings.Repeat("x", audit.MaxLine+10) + "\n")
	f.Close()
	_, err = verify(t, l, audit.VerifyOptions{})
	var p *audit.Problem
	if !errors.As(err, &p) || p.Line != 6 || !strings.Contains(p.Reason, "longer than") {
		t.Errorf("over-long line: %v", err)
	}
	// The next append records it as damage and goes on.
	if err := l.Append(context.Background(), rec("after")); err != nil {
		t.Fatalf("append after an over-long last line: %v", err)
	}
	s, err = verify(t, l, audit.VerifyOptions{})
	if len(s.Damage) != 1 || s.Damage[0].Record.Damage[0].Bytes != audit.MaxLine+10 || !errors.As(err, &p) || !strings.Contains(p.Reason, "not acknowledged") {
		t.Errorf("after the append: damage %+v, %v", s.Damage, err)
	}
}

// TestLogDirOthersMayWrite: a log whose own directory others may write,
// even a sticky one of root's like /tmp, is refused: anyone could plant
// files there under the names the log rotates to (retention would then
// remove root's rotated files and keep theirs, and a file under the next
// rotated name would stop every append), or pre-create its lock.
func TestLogDirOthersMayWrite(t *testing.T) {
	nstest.RequireRoot(t)
	for _, mode := range []uint32{0o1777, 0o1770, 0o777, 0o770} {
		dir := filepath.Join(t.TempDir(), "log")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		l, err := audit.Open(filepath.Join(dir, "audit.jsonl"), audit.Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := "refusing it"
		if mode&0o1000 != 0 {
			want = "anyone could plant files" // the sticky bit passes the walk
		}
		if err := l.Append(context.Background(), rec("c1")); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("mode %04o: append: %v; want a refusal saying %q", mode, err, want)
		}
	}
}

// TestTornTailKeptOnError: an append that fails after it found a torn
// tail (here: the last complete line is of a newer format, which this
// version refuses to extend) leaves the torn bytes in the file for the
// next append to record: they were cut off before they were recorded,
// and lost with the failure.
func TestTornTailKeptOnError(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 3)
	lines := readLines(t, path)
	// The last record as a newer major format would write it.
	newer := bytes.Replace(lines[2], []byte(`"format":"`+audit.Format+`"`), []byte(`"format":"9.0"`), 1)
	lines[2] = chainFrom(lineHash(lines[1]), [][]byte{newer}, 0, nil)[0]
	writeLines(t, path, lines)
	tear(t, path, []byte(`{"seq":4,"container_id":"EVIDENCE`))
	if err := l.Append(context.Background(), rec("after")); err == nil || !strings.Contains(err.Error(), "newer format") {
		t.Fatalf("append after a newer-format line: %v", err)
	}
	if data, _ := os.ReadFile(path); !bytes.HasSuffix(data, []byte(`"container_id":"EVIDENCE`)) {
		t.Errorf("the torn tail is gone after a failed append:\n%s", data)
	}
}

// startSelf starts the test binary with env added (the mode TestMain
// gives it) and returns it with a reader of its stdout.
func startSelf(t *testing.T, env string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), env)
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewReader(pipe)
}

// tornFixture is a log of three records and a torn tail of 878 bytes.
func tornFixture(t *testing.T, dir string) (l *audit.Log, path string, torn []byte) {
	t.Helper()
	path = filepath.Join(dir, "audit.jsonl")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 3)
	torn = []byte(`{"seq":4,"container_id":"EVIDENCE` + strings.Repeat("e", 840) + `END`)
	tear(t, path, torn)
	return l, path, torn
}

// checkTornRecorded appends and checks that the torn bytes are in the
// chain, whole, in a torn-tail record, that the log verifies, and that
// the append rewrote no byte of the file: it ended the torn line with
// the mark, the torn-tail record right after.
func checkTornRecorded(t *testing.T, l *audit.Log, path string, torn []byte) {
	t.Helper()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), rec("after")); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rest, ok := bytes.CutPrefix(after, before)
	if !ok {
		t.Fatalf("the append rewrote bytes of the file:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if !bytes.HasPrefix(rest, []byte(audit.TornMark+"\n")) {
		t.Fatalf("the torn line is not ended with the mark: the append wrote\n%s", rest)
	}
	if h, ok := audit.PeekHead(bytes.TrimPrefix(rest, []byte(audit.TornMark+"\n"))); !ok || h.Stage != audit.StageTornTail {
		t.Fatalf("the torn line is not followed by its torn-tail record: %+v", h)
	}
	s, err := verify(t, l, audit.VerifyOptions{})
	if err != nil || len(s.TornTails) != 1 || s.TornTails[0].Torn != string(torn) || s.TornTails[0].TornBytes != len(torn) || s.Records != 5 {
		t.Fatalf("verify: %v; torn tails %+v", err, s.TornTails)
	}
}

// TestTornTailKeptOnKill kills an append (SIGKILL, as a runtime kills a
// hook past its timeout) right before its write after the torn tail it
// found: the torn bytes are still the file's tail, whole, and the next
// append records them. (The tail used to be cut off before that write.)
func TestTornTailKeptOnKill(t *testing.T) {
	l, path, torn := tornFixture(t, t.TempDir())
	cmd, out := startSelf(t, pausedEnv+"="+path)
	line, _ := out.ReadString('\n')
	cmd.Process.Kill()
	cmd.Wait()
	if line != "paused\n" {
		t.Fatalf("the appender said %q", line)
	}
	if data, _ := os.ReadFile(path); !bytes.HasSuffix(data, append([]byte("\n"), torn...)) {
		t.Fatalf("the torn tail is gone after the append was killed:\n%s", data)
	}
	checkTornRecorded(t, l, path, torn)
}

// TestTornTailKeptOnFullDisk appends to a log with a torn tail on a
// full file system (a usual cause of a torn tail): the append fails
// before it writes a byte (the space is reserved first); once there is room, the
// next append records the tail whole. (The tail used to be cut off,
// then the write fail part way: only a part of the record that should
// have held it was left, as a torn tail of its own.)
func TestTornTailKeptOnFullDisk(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	smallFS(t, dir)
	l, path, torn := tornFixture(t, dir)
	fill := filepath.Join(dir, "fill")
	fillFS(t, fill, 512)
	if err := l.Append(context.Background(), rec("full")); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("append on a full file system: %v", err)
	}
	if data, _ := os.ReadFile(path); !bytes.HasSuffix(data, append([]byte("\n"), torn...)) {
		t.Fatalf("the torn tail is gone after an append failed on a full disk:\n%s", data)
	}
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	checkTornRecorded(t, l, path, torn)
}

// TestRotationAfterDamagedFirstLine zeroes the first line of the current
// file (the only record in it), has the damage recorded and acknowledged,
// and appends past the rotation size: the file rotates, named after its
// first record that decodes, and the log goes on and verifies. Every
// append used to fail, the first line's seq unreadable.
func TestRotationAfterDamagedFirstLine(t *testing.T) {
	l, path := newLog(t, audit.Options{RotateBytes: 1500})
	for {
		appendN(t, l, 1)
		if files, _ := l.Files(); len(files) > 1 && len(readLines(t, path)) == 1 {
			break
		}
	}
	lines := readLines(t, path)
	lines[0] = append(bytes.Repeat([]byte{0}, len(lines[0])-1), '\n')
	writeLines(t, path, lines)
	appendN(t, l, 1) // records the damage
	s, err := verify(t, l, audit.VerifyOptions{})
	if err == nil || len(s.Damage) != 1 {
		t.Fatalf("damage not recorded: %+v, %v", s, err)
	}
	d := s.Damage[0].Record
	if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOperator, Stage: audit.StageAck, Ref: &audit.Ref{Seq: d.Seq, Stage: d.Stage, Hash: d.Hash}, Note: "zeroed by the test"}); err != nil {
		t.Fatal(err)
	}
	for range 8 {
		if err := l.Append(context.Background(), rec("after")); err != nil {
			t.Fatalf("append after the damaged first line: %v", err)
		}
	}
	if s, err := verify(t, l, audit.VerifyOptions{}); err != nil {
		t.Errorf("after rotating past the damage: %+v, %v", s, err)
	}
}

// TestRetentionAfterDamagedFirstLine zeroes the first line of a file
// just started by rotation (a crash), has the damage recorded and
// acknowledged, and appends on under keep_files 2: the log verifies
// after every append, and retention removes that file in its turn. It
// used to keep the file (its first seq unreadable) and remove the files
// after it, a hole in the chain, and verify refused a chain that starts
// with damaged lines after files retention removed.
func TestRetentionAfterDamagedFirstLine(t *testing.T) {
	l, path := newLog(t, audit.Options{RotateBytes: 2048, KeepFiles: 2})
	for {
		appendN(t, l, 1)
		if files, _ := l.Files(); len(files) == 2 {
			break
		}
	}
	lines := readLines(t, path)
	lines[0] = append(bytes.Repeat([]byte{0}, len(lines[0])-1), '\n')
	writeLines(t, path, lines)
	appendN(t, l, 1) // records the damage
	d := audittest.AckDamage(t, l, path)
	damaged := path + fmt.Sprintf(".%012d", d.Seq)
	for i := range 60 {
		appendN(t, l, 1)
		if s, err := verify(t, l, audit.VerifyOptions{}); err != nil {
			files, _ := l.Files()
			t.Fatalf("after %d appends: files %v: %v (dropped %+v)", i+1, files, err, s.Dropped)
		}
	}
	files, _ := l.Files()
	if len(files) > 3 || slices.Contains(files, damaged) {
		t.Errorf("files %v: want at most 3, the damaged one removed in its turn", files)
	}
}

// TestRetentionOfWhollyDamagedFile zeroes every line of the current file
// as it reaches the rotation size (a crash), so that the next append
// rotates it and records the damage first thing in the new file, then
// appends on under keep_files 2: retention removes the damaged file in
// its turn, described by that damage record, and the log verifies after
// every append. Retention stopped there for good (no record in the file
// to describe it by) and the log grew without bound.
func TestRetentionOfWhollyDamagedFile(t *testing.T) {
	var warnings []error
	l, path := newLog(t, audit.Options{RotateBytes: 2048, KeepFiles: 2, Warn: func(err error) { warnings = append(warnings, err) }})
	for {
		appendN(t, l, 1)
		files, _ := l.Files()
		if st, _ := os.Stat(path); len(files) == 3 && st.Size() >= 2048 {
			break
		}
	}
	lines := readLines(t, path)
	for i := range lines {
		lines[i] = append(bytes.Repeat([]byte{0}, len(lines[i])-1), '\n')
	}
	writeLines(t, path, lines)
	appendN(t, l, 1) // rotates, and records the damage in the new file
	audittest.AckDamage(t, l, path)
	for i := range 60 {
		appendN(t, l, 1)
		if _, err := verify(t, l, audit.VerifyOptions{}); err != nil {
			t.Fatalf("after %d appends: %v", i+1, err)
		}
	}
	if files, _ := l.Files(); len(files) > 3 || len(warnings) > 0 {
		t.Errorf("files %v, warnings %v: want at most 3, none", files, warnings)
	}
}

// TestRetentionOfDamageAcrossFiles: a crash zeroes the last line of the
// rotated file and every line of the current one, so the next append's
// damage record lists lines of both files. Retention removes the rotated
// file first: the damage record's lines are then in part in a file
// retention removed, and the log verifies after every append, also when
// seal-init recorded the damage (its seal-start record first). A line of
// the files given deleted is no line of a removed file: verify fails.
func TestRetentionOfDamageAcrossFiles(t *testing.T) {
	for _, seal := range []bool{false, true} {
		t.Run(fmt.Sprintf("seal=%v", seal), func(t *testing.T) {
			opts := audit.Options{RotateBytes: 2048, KeepFiles: 2}
			if seal {
				opts.SealState = filepath.Join(t.TempDir(), "state", "audit.seal")
			}
			l, path := newLog(t, opts)
			for {
				appendN(t, l, 1)
				if files, _ := l.Files(); len(files) == 2 && len(readLines(t, path)) == 3 {
					break
				}
			}
			files, _ := l.Files()
			zeroLine(t, files[0], len(readLines(t, files[0]))-1)
			for i := range 3 {
				zeroLine(t, path, i)
			}
			if seal {
				if _, _, err := l.StartSealing(context.Background(), false); err != nil {
					t.Fatal(err)
				}
			} else {
				appendN(t, l, 1)
			}
			for r, err := range audit.Records(path) {
				if err != nil {
					t.Fatal(err)
				}
				if r.Stage == audit.StageDamaged && len(r.Damage) != 4 {
					t.Fatalf("damage record lists %d lines, want 4 (1 rotated, 3 current)", len(r.Damage))
				}
			}
			audittest.AckDamage(t, l, path)
			// (A shipper's copy holds the rotated file's lines: they were
			// shipped before retention removed them.)
			for i := range 60 {
				appendN(t, l, 1)
				s, err := verify(t, l, audit.VerifyOptions{})
				if err != nil {
					t.Fatalf("after %d appends: %v", i+1, err)
				}
				if i == 0 {
					// The rotated file is gone, the current one's lines stay.
					if len(s.Damage) != 1 || len(s.Damage[0].Lines) != 4 || !strings.HasSuffix(s.Damage[0].Lines[0], "not in the files given") || strings.Contains(s.Damage[0].Lines[1], "not in") {
						t.Fatalf("damage %+v, want one record, its first line not in the files given, the others in them", s.Damage)
					}
					deletedDamagedLine(t, l)
				}
			}
		})
	}
}

// deletedDamagedLine verifies a copy of l's files whose first line (a
// damaged one) is deleted: it must fail.
func deletedDamagedLine(t *testing.T, l *audit.Log) {
	t.Helper()
	files, err := l.Files()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var copies []string
	for i, f := range files {
		lines := readLines(t, f)
		if i == 0 {
			lines = lines[1:]
		}
		c := filepath.Join(dir, filepath.Base(f))
		writeLines(t, c, lines)
		copies = append(copies, c)
	}
	if _, err := audit.Verify(copies, audit.VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "no retention record removed") {
		t.Errorf("a damaged line deleted from %s: verify %v; want a failure naming lines no retention removed", filepath.Base(files[0]), err)
	}
	// A retention record appended for that file, as root on the node
	// could, does not excuse it: the file is given; nor does --partial.
	forged, err := audit.Open(copies[len(copies)-1], audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := forged.Append(context.Background(), &audit.Record{Source: audit.SourceAudit, Stage: audit.StageRetention,
		Dropped: &audit.Dropped{File: filepath.Base(files[0]), FirstSeq: 1, LastSeq: 1, LastHash: strings.Repeat("0", 64)}}); err != nil {
		t.Fatal(err)
	}
	for _, partial := range []bool{false, true} {
		if _, err := audit.Verify(copies, audit.VerifyOptions{Partial: partial}); err == nil {
			t.Errorf("a damaged line deleted, a retention record forged for its file (partial %v): verify passed", partial)
		}
	}
}

// TestDamageNamesRotatedFile zeroes the last line of a file that the
// next append rotates: the damaged record names the rotated file the
// line is in, not the new current file.
func TestDamageNamesRotatedFile(t *testing.T) {
	l, path := newLog(t, audit.Options{RotateBytes: 1000})
	for {
		appendN(t, l, 1)
		if fi, _ := os.Stat(path); fi.Size() >= 1000 {
			break
		}
		if files, _ := l.Files(); len(files) > 1 {
			t.Fatal("rotated before the test could damage the current file")
		}
	}
	lines := readLines(t, path)
	i := len(lines) - 1
	lines[i] = append(bytes.Repeat([]byte{0}, len(lines[i])-1), '\n')
	writeLines(t, path, lines)
	appendN(t, l, 1) // rotates, then records the damage
	files, _ := l.Files()
	s, _ := verify(t, l, audit.VerifyOptions{})
	if len(files) != 2 || len(s.Damage) != 1 {
		t.Fatalf("files %v, damage %+v", files, s.Damage)
	}
	if got, want := s.Damage[0].Record.Damage[0].File, filepath.Base(files[0]); got != want {
		t.Errorf("damaged line recorded in %s, want %s (where it is)", got, want)
	}
}

// TestProblemError: a problem of the chain as a whole names the file
// alone (no ":0"), one of a line its number, and the seq when known.
func TestProblemError(t *testing.T) {
	for _, tc := range []struct {
		p    audit.Problem
		want string
	}{
		{audit.Problem{File: "a.jsonl", Line: 3, Seq: 7, Reason: "r"}, "a.jsonl:3: seq 7: r"},
		{audit.Problem{File: "a.jsonl", Line: 3, Reason: "r"}, "a.jsonl:3: r"},
		{audit.Problem{File: "a.jsonl", Seq: 7, Reason: "r"}, "a.jsonl: seq 7: r"},
		{audit.Problem{File: "a.jsonl", Reason: "r"}, "a.jsonl: r"},
	} {
		if got := tc.p.Error(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.p, got, tc.want)
		}
	}
}

// wellHashedWithKey returns line (a record line without its newline)
// with one more member, key, and the hash recomputed: a line whose hash
// matches and that does not decode (an unknown member), whose reason
// quotes the key.
func wellHashedWithKey(line []byte, key string) []byte {
	i := bytes.LastIndex(line, []byte(`,"hash":`))
	body := append(bytes.Clone(line[:i]), `,"`+key+`":1}`...)
	sum := sha256.Sum256(body)
	return append(body[:len(body)-1], `,"hash":"`+hex.EncodeToString(sum[:])+`"}`+"\n"...)
}

// TestDamageRecordBounded: the record of damaged lines always fits in a
// line, so that no damage stops the log. A reason quoting a line's
// 300000 U+0080 (7 bytes each as the reason's JSON) is cut; 4096 damaged
// lines (the most an append records) with long reasons are listed
// without them; with a long file name too, only the first lines that
// fit are listed. Each time the appends go on, and verify reports the
// damage until it is acknowledged.
func TestDamageRecordBounded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		file   string
		lines  int
		key    string
		listed func(n int) bool
		reason func(r string) bool
	}{
		{"one long reason", "audit.jsonl", 1, strings.Repeat("\u0080", 300<<10), func(n int) bool { return n == 1 },
			func(r string) bool { return strings.HasSuffix(r, "...") && len(r) < 400 }},
		{"many lines", "audit.jsonl", 4096, strings.Repeat("k", 1000), func(n int) bool { return n == 4096 },
			func(r string) bool { return r == "" }},
		{"many lines, long name", strings.Repeat("n", 200) + ".jsonl", 4096, strings.Repeat("k", 1000), func(n int) bool { return n > 1000 && n < 4096 },
			func(r string) bool { return r == "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tc.file)
			l, err := audit.Open(path, audit.Options{})
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, l, 2)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			last := bytes.TrimSuffix(bytes.SplitAfter(data, []byte("\n"))[1], []byte("\n"))
			bad := wellHashedWithKey(last, tc.key)
			if err := os.WriteFile(path, append(data, bytes.Repeat(bad, tc.lines)...), 0o600); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				if err := l.Append(context.Background(), rec("after")); err != nil {
					t.Fatalf("append %d after the damage: %v", i, err)
				}
			}
			var d *audit.Record
			for r, err := range audit.Records(path) {
				if err == nil && r.Stage == audit.StageDamaged {
					d = r
				}
			}
			if d == nil {
				t.Fatal("no damage record")
			}
			_, err = verify(t, l, audit.VerifyOptions{})
			if err == nil || !strings.Contains(err.Error(), "not acknowledged") && !strings.Contains(err.Error(), fmt.Sprintf("%d damaged lines in a row; the damage record after them (seq 3) lists %d", tc.lines, len(d.Damage))) {
				t.Fatalf("verify: %v", vocab.Cut(fmt.Sprint(err), 500))
			}
			if !tc.listed(len(d.Damage)) || !tc.reason(d.Damage[0].Reason) || d.Damage[0].SHA256 == "" {
				t.Fatalf("damage record lists %d line(s), the first %+v; error %q", len(d.Damage), d.Damage[0], d.Error)
			}
			ack := &audit.Record{Source: audit.SourceOperator, Stage: audit.StageAck, Ref: &audit.Ref{Seq: d.Seq, Stage: d.Stage, Hash: d.Hash}, Note: "checked"}
			if err := l.Append(context.Background(), ack); err != nil {
				t.Fatal(err)
			}
			_, err = verify(t, l, audit.VerifyOptions{})
			if tc.lines == len(d.Damage) && err != nil {
				t.Errorf("verify after the ack: %v", err)
			}
			if tc.lines != len(d.Damage) && err == nil {
				t.Errorf("verify after the ack passes, though %d damaged lines are not listed", tc.lines-len(d.Damage))
			}
		})
	}
}

// TestLockReadableByOthers: a lock file others may read (an operator's
// chmod -R a+rX for a log reader) lets any user hold a shared lock and
// stop every writer: writers refuse it, saying so; readers still read.
func TestLockReadableByOthers(t *testing.T) {
	l, path := newLog(t, audit.Options{})
	appendN(t, l, 1)
	if err := os.Chmod(path+".lock", 0o644); err != nil {
		t.Fatal(err)
	}
	err := l.Append(context.Background(), rec("c"))
	if !errors.Is(err, safefile.ErrUntrusted) || !strings.Contains(err.Error(), "anyone who opens it can hold the lock") {
		t.Errorf("append with a lock others may read: %v; want it refused", err)
	}
	if _, err := audit.Verify([]string{path}, audit.VerifyOptions{}); err != nil {
		t.Errorf("verify: %v", err)
	}
	if err := os.Chmod(path+".lock", 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), rec("c")); err != nil {
		t.Errorf("append once it is private again: %v", err)
	}
}

// BenchmarkVerifyRetentionDamage verifies a chain of 20,000 retention
// records followed by damage records listing 20,000 lines of the files
// they name (a node's root can write that into its own log, or send it
// to a collector): the lookups of retention records are indexed, so the
// time grows with their sum, not their product.
func BenchmarkVerifyRetentionDamage(b *testing.B) {
	const n = 20000
	path := filepath.Join(b.TempDir(), "audit.jsonl")
	var data []byte
	prev, seq := "", uint64(0)
	emit := func(r *audit.Record) {
		seq++
		r.Seq, r.Prev, r.Time, r.Host, r.Source = seq, prev, "2026-12-03T08:00:00Z", "h", audit.SourceAudit
		line, err := r.Encode()
		if err != nil {
			b.Fatal(err)
		}
		prev = r.Hash
		data = append(data, line...)
	}
	sum := strings.Repeat("0", 64)
	for i := range n {
		emit(&audit.Record{Stage: audit.StageRetention, Dropped: &audit.Dropped{File: fmt.Sprint("r", i), FirstSeq: 1, LastSeq: 1, LastHash: sum}})
	}
	for i := 0; i < n; i += 5000 {
		var dl []audit.DamagedLine
		for j := i; j < i+5000; j++ {
			dl = append(dl, audit.DamagedLine{File: fmt.Sprint("r", n-1-j), Bytes: 1, SHA256: sum, Kind: "zeroed"})
		}
		emit(&audit.Record{Stage: audit.StageDamaged, Damage: dl})
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		// It fails (the damage is not acknowledged) once every damaged
		// line has been looked up.
		if _, err := audit.Verify([]string{path}, audit.VerifyOptions{}); err == nil {
			b.Fatal("verified")
		}
	}
}

// threeRecords returns a log of three records, as a writer made it.
func threeRecords(t *testing.T) []byte {
	t.Helper()
	src := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(src, audit.Options{Host: "node-a", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 3)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// copyInSticky writes data as audit.jsonl in a new directory others may
// write, sticky as /tmp, and returns its path.
func copyInSticky(t *testing.T, data []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.jsonl")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSnapshotPlantedLock: a copy of a log verified in a directory
// others may write (sticky, as /tmp), where another user put a symlink
// (to a file of root's) or a FIFO under the lock's name, which every
// writer refuses. The snapshot failed ("refusing a symlink"), and with
// it verify and show of the copy; it reads the copy without a lock, as
// with a lock of another user's, and the records verify.
func TestSnapshotPlantedLock(t *testing.T) {
	nstest.RequireRoot(t)
	data := threeRecords(t)
	for name, plant := range map[string]func(string) error{
		"symlink": func(p string) error { return os.Symlink("/etc/passwd", p) },
		"FIFO":    func(p string) error { return unix.Mkfifo(p, 0o600) },
	} {
		t.Run(name, func(t *testing.T) {
			path := copyInSticky(t, data)
			if err := plant(path + ".lock"); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(path+".lock", 65534, 65534); err != nil {
				t.Fatal(err)
			}
			lc, err := audit.Open(path, audit.Options{Host: "-", Version: "-"})
			if err != nil {
				t.Fatal(err)
			}
			snap, err := lc.Snapshot(context.Background())
			if err != nil {
				t.Fatalf("snapshot with a %s as the lock: %v", name, err)
			}
			snap.Close()
			if sum, err := audit.Verify([]string{path}, audit.VerifyOptions{}); err != nil || sum.Records != 3 {
				t.Errorf("verify with a %s as the lock: %+v, %v; want 3 records verified", name, sum, err)
			}
		})
	}
}

// TestSnapshotRefusesForeignRotatedFile: a copy of a log verified in a
// directory others may write (sticky, as /tmp): a file another user put
// there under a rotated file's name was read as the log's and the
// genuine records reported as tampered with. Such a file (owned by
// another user, or writable by others) is refused, naming it and its
// owner, with an error that is no tampering verdict (no *Problem); a
// rotated file of root's is still the log's, and judged.
func TestSnapshotRefusesForeignRotatedFile(t *testing.T) {
	nstest.RequireRoot(t)
	data := threeRecords(t)
	for _, tc := range []struct {
		name  string
		uid   int
		mode  os.FileMode
		want  string // in the refusal, "" for none
		judge bool   // the file is read as the log's
	}{
		{"another user's", 65534, 0o644, `owned by uid 65534, not root or uid 0: refusing it: not trusted`, false},
		{"writable by others", 0, 0o646, "writable by others (mode 0646)", false},
		{"writable by its group", 0, 0o660, "writable by group (mode 0660)", false},
		{"root's", 0, 0o600, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := copyInSticky(t, data)
			planted := path + ".000000000001"
			if err := os.WriteFile(planted, []byte("junk\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(planted, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(planted, tc.uid, tc.uid); err != nil {
				t.Fatal(err)
			}
			lc, err := audit.Open(path, audit.Options{Host: "-", Version: "-"})
			if err != nil {
				t.Fatal(err)
			}
			snap, err := lc.Snapshot(context.Background())
			if !tc.judge {
				if err == nil {
					snap.Close()
				}
				var p *audit.Problem
				if err == nil || !errors.Is(err, safefile.ErrUntrusted) || errors.As(err, &p) || !strings.Contains(err.Error(), planted+": "+tc.want) {
					t.Errorf("snapshot: %v; want %s refused: %q", err, planted, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			defer snap.Close()
			if _, err := audit.VerifySnapshot(snap, audit.VerifyOptions{}); !errors.As(err, new(*audit.Problem)) || !strings.Contains(err.Error(), planted) {
				t.Errorf("verify: %v; want the rotated file of root's judged as the log's", err)
			}
		})
	}
}

// TestAppendFewFDs appends to a log whose current file holds no record
// (a rotation whose write failed leaves it so) and whose rotated files
// outnumber the descriptors the process may open: the last record is
// found in the newest rotated file. Every rotated file was opened before
// the first was read, and each closed only at the end: every append
// failed (EMFILE) until the current file held a record, and recording
// stopped. The append runs in a child process, whose RLIMIT_NOFILE it
// lowers.
func TestAppendFewFDs(t *testing.T) {
	const env = "NSREL_TEST_APPEND_FEW_FDS"
	if path := os.Getenv(env); path != "" {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 32, Max: 32}); err != nil {
			t.Fatal(err)
		}
		l, err := audit.Open(path, audit.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Append(context.Background(), rec("after")); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Parallel()
	l, path := newLog(t, audit.Options{RotateBytes: 1}) // one record a file
	appendN(t, l, 64)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAppendFewFDs$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("append with RLIMIT_NOFILE 32 and 63 rotated files: %v\n%s", err, out)
	}
	recs := audittest.Records(t, path, "")
	if len(recs) != 64 || recs[63].ContainerID != "after" || recs[63].Seq != 64 {
		t.Fatalf("%d records; want 64, the last the child's, seq 64", len(recs))
	}
	if _, err := verify(t, l, audit.VerifyOptions{}); err != nil {
		t.Error(err)
	}
}

// TestAnchorAfterRetention: an anchor saved from an earlier verify whose
// record retention since removed, in the normal way of keep_files. With
// its seq (SEQ:HASH, both on verify's OK line) verify passes, saying so;
// the hash alone cannot tell it from records cut off or rewritten, and
// the error says that retention may have removed it: it only blamed
// tampering, which an auditor acts on. A seq the chain has with another
// hash, or beyond its end, still fails.
func TestAnchorAfterRetention(t *testing.T) {
	l, _ := newLog(t, audit.Options{RotateBytes: 2048, KeepFiles: 1})
	anchor := appendN(t, l, 3)[2]
	appendN(t, l, 40)
	s, err := verify(t, l, audit.VerifyOptions{})
	if err != nil || s.FirstSeq <= anchor.Seq {
		t.Fatalf("verify: first seq %d, %v; want retention past seq %d", s.FirstSeq, err, anchor.Seq)
	}
	s, err = verify(t, l, audit.VerifyOptions{Anchor: anchor.Hash, AnchorSeq: anchor.Seq})
	if err != nil || !s.AnchorRetained {
		t.Errorf("anchor seq %d removed by retention: %v (retained %v); want it passed, said", anchor.Seq, err, s.AnchorRetained)
	}
	if _, err := verify(t, l, audit.VerifyOptions{Anchor: anchor.Hash}); err == nil ||
		!strings.Contains(err.Error(), fmt.Sprintf("or retention removed it with the records before seq %d: give the anchor as SEQ:HASH", s.FirstSeq)) {
		t.Errorf("hash alone: %v; want a failure that says retention may have removed it", err)
	}
	// Where the chain still names the removed record's hash (the first
	// record's prev, a retention record's last_hash), it must match.
	wrong := strings.Repeat("e", 64)
	if _, err := verify(t, l, audit.VerifyOptions{Anchor: wrong, AnchorSeq: s.FirstSeq - 1}); err == nil || !strings.Contains(err.Error(), "which retention removed, had hash") {
		t.Errorf("a wrong hash for the record before the first: %v; want the log called rewritten", err)
	}
	if len(s.Dropped) > 0 && s.Dropped[0].LastSeq != s.FirstSeq-1 {
		if _, err := verify(t, l, audit.VerifyOptions{Anchor: wrong, AnchorSeq: s.Dropped[0].LastSeq}); err == nil || !strings.Contains(err.Error(), "which retention removed, had hash") {
			t.Errorf("a wrong hash for a removed file's last record: %v", err)
		}
	}
	if _, err := verify(t, l, audit.VerifyOptions{Anchor: anchor.Hash, AnchorSeq: s.LastSeq}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("the record seq %d does not have the anchor hash", s.LastSeq)) {
		t.Errorf("a seq of the chain with another hash: %v", err)
	}
	if _, err := verify(t, l, audit.VerifyOptions{Anchor: anchor.Hash, AnchorSeq: s.LastSeq + 1}); err == nil || !strings.Contains(err.Error(), "before the anchor's record") {
		t.Errorf("a seq beyond the end: %v", err)
	}
}

// TestAnchorSeqOfAnotherRecord: --anchor SEQ:HASH whose HASH is a record
// of the chain with another seq passed: the seq was read only when no
// record had the hash, so a mistyped or mixed-up anchor (5:HASH of seq
// 22) checked nothing of what it claimed. It fails now, naming the
// record's seq.
func TestAnchorSeqOfAnotherRecord(t *testing.T) {
	l, _ := newLog(t, audit.Options{})
	recs := appendN(t, l, 30)
	anchor := recs[21] // seq 22
	if _, err := verify(t, l, audit.VerifyOptions{Anchor: anchor.Hash, AnchorSeq: anchor.Seq}); err != nil {
		t.Fatalf("the anchor as verify printed it: %v", err)
	}
	for _, seq := range []uint64{5, 23} {
		_, err := verify(t, l, audit.VerifyOptions{Anchor: anchor.Hash, AnchorSeq: seq})
		if want := fmt.Sprintf("the record with the anchor hash %s is seq %d, not %d", anchor.Hash, anchor.Seq, seq); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--anchor %d:HASH of seq %d: %v; want a failure saying %q", seq, anchor.Seq, err, want)
		}
	}
}

// smallFS mounts a tmpfs of 16 KiB at dir (0700), for tests of a full
// disk, unmounted at the test's end.
func smallFS(t *testing.T, dir string) {
	t.Helper()
	nstest.RequireRoot(t)
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=16k,mode=0700"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

// fillFS creates the file at path and writes blocks of block bytes to
// it until the file system is full.
func fillFS(t *testing.T, path string, block int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for {
		if _, err := f.Write(make([]byte, block)); err != nil {
			return
		}
	}
}

// TestHostRenamedWhileOpen: a log opened without a host (a long-running
// writer: the event recorder, the NRI plugin) wrote the node's name of
// when it was opened for ever, so that a node renamed while it ran had
// records of both names interleaved in its chain (audit verify --nodes
// failed both). Each append reads the name; a host given stays.
func TestHostRenamedWhileOpen(t *testing.T) {
	nstest.RequireRoot(t)
	// A UTS namespace of this thread's own; the thread dies with the test.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWUTS); err != nil {
		t.Fatal(err)
	}
	if err := unix.Sethostname([]byte("node-a")); err != nil {
		t.Fatal(err)
	}
	l, path := newLog(t, audit.Options{})
	fixed, err := audit.Open(path, audit.Options{Host: "given"})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 1)
	if err := unix.Sethostname([]byte("node-b")); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 1)
	if err := fixed.Append(context.Background(), rec("fixed")); err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, r := range audittest.Records(t, path, "") {
		hosts = append(hosts, r.Host)
	}
	if want := []string{"node-a", "node-b", "given"}; !slices.Equal(hosts, want) {
		t.Errorf("hosts %q; want %q", hosts, want)
	}
	if h := l.Host(); h != "node-b" {
		t.Errorf("Host() %q; want node-b", h)
	}
}

// TestAppendFullDiskNoTornLine: an append on a file system that fills
// part way through its record wrote what fit, up to the page boundary,
// and left it as a torn line, which verify failed and the next append
// recorded as a crash's. The space is reserved first: the append fails
// before it writes a byte, and the log verifies as it was.
func TestAppendFullDiskNoTornLine(t *testing.T) {
	dir := t.TempDir()
	smallFS(t, dir)
	path := filepath.Join(dir, "audit.jsonl")
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 2)
	fillFS(t, filepath.Join(dir, "fill"), 512)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Longer than what is left of the file's last page.
	big := rec("big")
	big.Annotations["x"] = strings.Repeat("a", 5000)
	if err := l.Append(context.Background(), big); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("append on a full file system: %v; want ENOSPC", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Errorf("the failed append left %d bytes in the file:\n%q", len(after)-len(before), after[len(before):])
	}
	if s, err := verify(t, l, audit.VerifyOptions{}); err != nil || s.Records != 2 || len(s.TornTails) != 0 {
		t.Errorf("verify after the failed append: %+v, %v; want 2 records, no torn tail", s, err)
	}
}
