package hook_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

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
			type result struct {
				err  error
				note string
			}
			var r result
			audittest.ReadsBeforeLock(t, path, 8<<20, "the "+stage+" stage", func() {
				pid := 0
				if stage == audit.StagePoststart {
					pid = 100
				}
				res, err := h.Run(context.Background(), stage, &specs.State{ID: "web", Pid: pid})
				if err == nil && res.Record != nil {
					r = result{nil, res.Record.Error}
					return
				}
				r = result{fmt.Errorf("%+v, %v", res, err), ""}
			})
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
