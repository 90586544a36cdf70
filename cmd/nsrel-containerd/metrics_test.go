package main

import (
	"io"
	"net/http"
	"regexp"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// TestWatchMetrics runs `nsrel-containerd watch` with a metrics
// listener against a real containerd, starts a container without the
// hook, scrapes /metrics and checks the samples the start gave and the
// scrape with `promtool check metrics`.
func TestWatchMetrics(t *testing.T) {
	nstest.RequireCmd(t, "promtool")
	bin := nstest.Tool(t, "nsrel-containerd")
	cfgPath, cfg := ctrdtest.HookConfig(t)
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	w := startWatch(t, bin, "watch", "--config", cfgPath, "--address", d.Socket, "--metrics-address", "127.0.0.1:0")
	m := regexp.MustCompile(`address="?(127\.0\.0\.1:[0-9]+)"? msg="serving metrics"|msg="serving metrics" address="?(127\.0\.0\.1:[0-9]+)`).FindStringSubmatch(w.stderr.String())
	if m == nil {
		t.Fatalf("no metrics address in the diagnostics:\n%s", w.stderr.String())
	}
	addr := m[1] + m[2]
	id := ctrdtest.Uniq("ctr")
	d.Run(t, d.Client(t), "default", id, nil)
	audittest.Wait(t, cfg.AuditLog, "start record", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evStart) == 1 })

	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	text := string(body)
	if !regexp.MustCompile(`\nnsrel_audit_append_duration_seconds_count\{service="watch"\} [1-9]`).MatchString(text) {
		t.Error("no append latency observed")
	}
	nstest.CheckScrape(t, text,
		`nsrel_records_total{service="watch",source="containerd-events",stage="start"} 1`,
		`nsrel_records_total{service="watch",source="containerd-events",stage="recorder-start"} 1`,
		`nsrel_unhooked_containers_total{service="watch",source="containerd-events"} 1`,
		`nsrel_verdicts_total{service="watch",verdict="allow"} 1`,
		// The test config's audit-mode block requires a user and a PID
		// namespace: a plain container has neither of its own.
		`nsrel_violations_total{rule="require_user_namespace",service="watch"} 1`,
		`nsrel_errors_total{kind="audit_append",service="watch"} 0`)
	w.stop(t)
}
