package hook_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
)

// TestStageSearchesBeforeLock checks that poststop and poststart search
// the log for the container's start before they take the log's lock:
// for a container the log does not hold (started before nsrel was
// installed, say), the search reads the whole search window, and every
// other writer (a container start waiting for its record) waited all
// that time. With the lock held by the test, each stage must read the
// whole current file (this process's bytes read) before it waits; then it
// records that it found no start.
func TestStageSearchesBeforeLock(t *testing.T) {
	for _, stage := range []string{audit.StagePoststop, audit.StagePoststart} {
		t.Run(stage, func(t *testing.T) {
			h := reuseHook(t, map[int]*audit.Ancestry{100: proc(100, 5, 4026532200)})
			path := fillLog(t, h.Log, 8<<20)
			lf, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer lf.Close()
			if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
				t.Fatal(err)
			}
			before := audittest.BytesRead(t)
			type result struct {
				err  error
				note string
			}
			done := make(chan result, 1)
			go func() {
				pid := 0
				if stage == audit.StagePoststart {
					pid = 100
				}
				res, err := h.Run(context.Background(), stage, &specs.State{ID: "web", Pid: pid})
				if err == nil && res.Record != nil {
					done <- result{nil, res.Record.Error}
					return
				}
				done <- result{fmt.Errorf("%+v, %v", res, err), ""}
			}()
			var r result
			ended := false
			end := func() {
				if !ended {
					unix.Flock(int(lf.Fd()), unix.LOCK_UN)
					r, ended = <-done, true
				}
			}
			defer end() // the stage done before the log's directory goes
			for i := 0; audittest.BytesRead(t)-before < 8<<20; i++ {
				select {
				case r = <-done:
					ended = true
					t.Fatalf("the stage ended with the lock held: %+v", r)
				default:
				}
				if i == 1000 {
					t.Fatalf("the stage read %d bytes in 10 s with the lock held; want the whole file, 8 MiB, read before the lock", audittest.BytesRead(t)-before)
				}
				time.Sleep(10 * time.Millisecond)
			}
			end()
			if r.err != nil || !strings.Contains(r.note, "no start record for this container") && !strings.Contains(r.note, "no createRuntime record") {
				t.Errorf("stage: %v, record error %q; want it to say no start was found", r.err, r.note)
			}
		})
	}
}

// fillLog fills the current file of l with about size bytes of records
// of other containers (a block of appended records, repeated), and
// returns its path.
func fillLog(t *testing.T, l *audit.Log, size int) string {
	t.Helper()
	for i := range 200 {
		if err := l.Append(context.Background(), &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime,
			ContainerID: "other-" + strconv.Itoa(i), Ancestry: proc(1000+i, 5, 4026532300), Version: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	files, err := l.Files()
	if err != nil || len(files) != 1 {
		t.Fatalf("files %v, %v", files, err)
	}
	block, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files[0], bytes.Repeat(block, size/len(block)+1), 0o600); err != nil {
		t.Fatal(err)
	}
	return files[0]
}
