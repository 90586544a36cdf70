// Package audittest reads audit logs in tests: the records of a log, a
// verified chain, records as they arrive, and short views of records to
// compare with cmp.Diff; and acknowledges damage as an operator would.
package audittest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
)

// OtherBoot is a boot ID ([audit.BootID]) no boot has: the boot of
// records made before a crash, in tests.
const OtherBoot = "00000000-0000-4000-8000-000000000000"

// Records returns the decodable records of the log at path (none if it
// does not exist), of container id only unless id is "".
func Records(t testing.TB, path, id string) []*audit.Record {
	t.Helper()
	files, err := audit.Files(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*audit.Record
	for r, err := range audit.Records(files...) {
		if err != nil {
			t.Fatal(err)
		}
		if id == "" || r.ContainerID == id {
			out = append(out, r)
		}
	}
	return out
}

// Verify checks the whole chain of the log at path and fails the test
// if it is not intact.
func Verify(t testing.TB, path string) *audit.Summary {
	t.Helper()
	files, err := audit.Files(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.Verify(files, audit.VerifyOptions{})
	if err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	return s
}

// Wait polls the log at path until ok holds for its records (30 s at
// most), and returns them.
func Wait(t testing.TB, path string, what string, ok func([]*audit.Record) bool) []*audit.Record {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs := Records(t, path, "")
		if ok(recs) {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; records:\n%s", what, Listing(recs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Listing lists records one a line (seq, source, stage, namespace,
// container, error cut at 200 bytes), a run of records alike but for
// their seq on one line.
func Listing(recs []*audit.Record) string {
	var b []byte
	for i := 0; i < len(recs); {
		r := recs[i]
		line := func(r *audit.Record) string {
			e := r.Error
			if len(e) > 200 {
				e = e[:200] + "..."
			}
			return fmt.Sprintf("%s %s %s %s %q", r.Source, r.Stage, r.Namespace, r.ContainerID, e)
		}
		l := line(r)
		j := i + 1
		for j < len(recs) && line(recs[j]) == l {
			j++
		}
		if j-i > 1 {
			b = fmt.Appendf(b, "%d..%d (%d records) %s\n", r.Seq, recs[j-1].Seq, j-i, l)
		} else {
			b = fmt.Appendf(b, "%d %s\n", r.Seq, l)
		}
		i = j
	}
	return string(b)
}

// Stages returns the stage of each record.
func Stages(recs []*audit.Record) []string {
	var s []string
	for _, r := range recs {
		s = append(s, r.Stage)
	}
	return s
}

// SourceStages returns "source/stage" of the records of container id.
func SourceStages(recs []*audit.Record, id string) []string {
	var out []string
	for _, r := range recs {
		if r.ContainerID == id {
			out = append(out, r.Source+"/"+r.Stage)
		}
	}
	return out
}

// Rules returns the rule of each violation of r.
func Rules(r *audit.Record) []string {
	var s []string
	for _, v := range r.Violations {
		s = append(s, v.Rule)
	}
	return s
}

// Count returns how many records of container id have the given
// "source/stage" (see [SourceStages]).
func Count(recs []*audit.Record, id, sourceStage string) int {
	n := 0
	for _, s := range SourceStages(recs, id) {
		if s == sourceStage {
			n++
		}
	}
	return n
}

// AckDamage acknowledges the last damage record in file through l, as
// an operator would, and returns that record.
func AckDamage(t testing.TB, l *audit.Log, file string) *audit.Record {
	t.Helper()
	var d *audit.Record
	for r, err := range audit.Records(file) {
		if err == nil && r.Stage == audit.StageDamaged {
			d = r
		}
	}
	if d == nil {
		t.Fatalf("no damage record in %s", file)
	}
	if err := l.Append(context.Background(), AckOf(d, "damaged by the test")); err != nil {
		t.Fatal(err)
	}
	return d
}

// AppendBytes appends data to the file at path as it is, past any
// writer: what a crash's stale block, or someone who may write the
// file, leaves there.
func AppendBytes(t testing.TB, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// AppendAgain appends r, already appended, to the file at path again as
// a writer wrote it (the same bytes): an older record again.
func AppendAgain(t testing.TB, path string, r *audit.Record) {
	t.Helper()
	line, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	AppendBytes(t, path, line)
}

// AckOf returns an operator's acknowledgement of the damage record d,
// with note.
func AckOf(d *audit.Record, note string) *audit.Record {
	return &audit.Record{Source: audit.SourceOperator, Stage: audit.StageAck, Ref: &audit.Ref{Seq: d.Seq, Stage: d.Stage, Hash: d.Hash}, Note: note}
}

// BytesRead returns how many bytes this process has read (rchar of
// /proc/self/io, proc(5)): a test that holds a log's lock sees with it
// that a search went through the log before it waited for the lock.
func BytesRead(t testing.TB) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no rchar in /proc/self/io")
	return 0
}

// ReadsBeforeLock runs run (what: what it is, for messages) with the lock
// of the log at path held by the test, and checks that it reads size
// bytes ([BytesRead]) before it waits for the lock: that it searches the
// log first, not under the lock, where every other writer would wait. It
// fails the test if run ends with the lock held, or has not read size
// bytes in 10 s; it returns once the lock is freed and run has ended.
func ReadsBeforeLock(t testing.TB, path string, size int, what string, run func()) {
	t.Helper()
	lf, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	before := BytesRead(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		run()
	}()
	// run ended before the caller goes on (and its log's directory).
	defer func() {
		unix.Flock(int(lf.Fd()), unix.LOCK_UN)
		<-done
	}()
	for i := 0; BytesRead(t)-before < size; i++ {
		select {
		case <-done:
			t.Fatalf("%s ended with the log's lock held by the test", what)
		default:
		}
		if i == 1000 {
			t.Fatalf("%s read %d bytes in 10 s with the lock held; want the whole file, %d bytes, read before the lock", what, BytesRead(t)-before, size)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
