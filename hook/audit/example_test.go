package audit_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nsrel/nsrel/hook/audit"
)

// A second writer (the containerd event recorder) records a container
// start only when no start record for the same process exists yet,
// checking and appending under one lock.
func ExampleLog_AppendWith() {
	dir, _ := os.MkdirTemp("", "audit-example")
	defer os.RemoveAll(dir)
	log, _ := audit.Open(filepath.Join(dir, "audit.jsonl"), audit.Options{Host: "node-1", Version: "example"})
	ctx := context.Background()
	proc := &audit.Ancestry{PID: 4242, StartTime: 987654}

	// The OCI hook recorded the start.
	log.Append(ctx, &audit.Record{Source: audit.SourceOCIHook, Stage: audit.StagePoststart, ContainerID: "web-1", Ancestry: proc})

	for _, id := range []string{"web-1", "ctr-started"} {
		rec, err := log.AppendWith(ctx, func(s *audit.Searcher) (*audit.Record, error) {
			prev, err := s.Last(id, audit.StartMatcher(proc.PID, proc.StartTime))
			if err != nil || prev != nil {
				return nil, err // already recorded (or failed): append nothing
			}
			return &audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: id, Ancestry: proc}, nil
		})
		fmt.Printf("%s: appended %v, err %v\n", id, rec != nil, err)
	}
	files, _ := log.Files()
	s, err := audit.Verify(files, audit.VerifyOptions{})
	fmt.Println("records:", s.Records, "intact:", err == nil)
	// Output:
	// web-1: appended false, err <nil>
	// ctr-started: appended true, err <nil>
	// records: 2 intact: true
}
