package metrics

import (
	"context"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/nstest"
)

// scrape serves m on a loopback port and returns one scrape of /metrics.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s, %v", resp.Status, err)
	}
	return string(body)
}

// TestMetricsFromAudit appends to a real audit log instrumented with
// Instrument, scrapes the metrics over HTTP and checks the samples and
// the naming conventions.
func TestMetricsFromAudit(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 3, 11, 0, 0, 0, time.UTC)
	clock := now
	m := newAt("watch", func() time.Time { return clock })
	if v := m.shippedAge(); !math.IsNaN(v) {
		t.Errorf("age before any checkpoint = %v, want NaN", v)
	}
	opts := m.Instrument(audit.Options{Checkpoints: &audit.CheckpointOptions{EveryRecords: 2, File: filepath.Join(dir, "ckpt.jsonl")}})
	log, err := audit.Open(filepath.Join(dir, "audit.jsonl"), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	recs := []*audit.Record{
		{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: "a", Verdict: audit.VerdictAllow,
			Violations: []audit.Violation{{Rule: "require_user_namespace", Reason: "r"}, {Rule: "require_pid_namespace", Reason: "r"}}},
		{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: "b", Verdict: audit.VerdictDeny, Error: "inspect: gone"},
		{Source: audit.SourceOCIHook, Stage: audit.StageCreateRuntime, ContainerID: "c", Verdict: audit.VerdictAllow},
		{Source: audit.SourceContainerdEvents, Stage: audit.StageExit, ContainerID: "a"},
	}
	for _, r := range recs {
		if err := log.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	clock = now.Add(90 * time.Second)
	// An append that fails: the log's path is taken by a directory.
	bad, err := audit.Open(filepath.Join(dir, "taken"), m.Instrument(audit.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(bad.Path(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := bad.Append(ctx, &audit.Record{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: "d"}); err == nil {
		t.Fatal("append to a directory succeeded")
	}
	m.Error(ErrContainerd)

	nstest.CheckScrape(t, scrape(t, m),
		`nsrel_records_total{service="watch",source="containerd-events",stage="start"} 1`,
		`nsrel_records_total{service="watch",source="nri",stage="start"} 1`,
		`nsrel_records_total{service="watch",source="oci-hook",stage="createRuntime"} 1`,
		`nsrel_records_total{service="watch",source="containerd-events",stage="exit"} 1`,
		`nsrel_verdicts_total{service="watch",verdict="allow"} 2`,
		`nsrel_verdicts_total{service="watch",verdict="deny"} 1`,
		`nsrel_violations_total{rule="require_pid_namespace",service="watch"} 1`,
		`nsrel_violations_total{rule="require_user_namespace",service="watch"} 1`,
		`nsrel_errors_total{kind="audit_append",service="watch"} 1`,
		`nsrel_errors_total{kind="audit_warning",service="watch"} 0`,
		`nsrel_errors_total{kind="containerd_events",service="watch"} 1`,
		`nsrel_errors_total{kind="record",service="watch"} 1`,
		`nsrel_unhooked_containers_total{service="watch",source="containerd-events"} 1`,
		`nsrel_unhooked_containers_total{service="watch",source="nri"} 1`,
		`nsrel_audit_append_duration_seconds_count{service="watch"} 5`,
		`nsrel_checkpoints_shipped_total{service="watch"} 2`,
		`nsrel_checkpoint_last_shipped_age_seconds{service="watch"} 90`)
}

// TestInstrumentKeepsCallbacks checks that the callbacks an Options had
// are still called, and that the config's checkpoint options are not
// changed.
func TestInstrumentKeepsCallbacks(t *testing.T) {
	var written, appended, shipped int
	ck := &audit.CheckpointOptions{EveryRecords: 1, File: filepath.Join(t.TempDir(), "c"), Shipped: func(*audit.Checkpoint) { shipped++ }}
	o := New("nri").Instrument(audit.Options{Checkpoints: ck,
		Written: func(*audit.Record) { written++ }, Appended: func(time.Duration, error) { appended++ }})
	if o.Checkpoints == ck {
		t.Error("Instrument changed the caller's checkpoint options")
	}
	log, err := audit.Open(filepath.Join(t.TempDir(), "a.jsonl"), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := log.Append(context.Background(), &audit.Record{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: "x"}); err != nil {
		t.Fatal(err)
	}
	if written != 1 || appended != 1 || shipped != 1 {
		t.Errorf("written %d, appended %d, shipped %d; want 1 each", written, appended, shipped)
	}
}
