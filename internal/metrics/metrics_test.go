package metrics

import (
	"bytes"
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/nstest"
	"github.com/nsrel/nsrel/internal/syslog"
)

// serve serves m on a loopback port until the test ends and returns
// the address.
func serve(t *testing.T, m *Metrics) string {
	t.Helper()
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// scrape serves m on a loopback port and returns one scrape of /metrics.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	resp, err := http.Get("http://" + serve(t, m) + "/metrics")
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
// the naming conventions. The checkpoints go to a file, a local syslog
// socket and a syslog server over TCP that never accepts (a collector
// that hangs): shipping is counted per destination kind, the TCP
// server's failures as failures, its age stays NaN, and the append
// latency leaves the shipping out. The metrics used to count such a
// checkpoint as shipped (the file took it) and the append as taking
// the 1 s the server hung.
func TestMetricsFromAudit(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 3, 11, 0, 0, 0, time.UTC)
	clock := now
	m := newAt("watch", func() time.Time { return clock })
	for _, k := range destKinds {
		if v := m.shippedAge(k); !math.IsNaN(v) {
			t.Errorf("%s: age before any checkpoint = %v, want NaN", k, v)
		}
	}
	local, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "log.sock"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	opts := m.Instrument(audit.Options{Checkpoints: &audit.CheckpointOptions{EveryRecords: 2, File: filepath.Join(dir, "ckpt.jsonl"),
		Syslog: []syslog.Dest{{Network: "unixgram", Address: local.LocalAddr().String()}, {Network: "tcp", Address: nstest.StuckListener(t)}}}})
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
	// An exit written late (the log could not be written then) is no
	// record error: it counted as one.
	m.Record(&audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageExit, ContainerID: "b", Error: "written late: the audit log could not be written then"})
	// So is a start with its namespaces written late; one judged
	// without its spec's annotations (on_error decided), namespaces or
	// not, late or not, is one.
	m.Record(&audit.Record{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: "e", Ancestry: &audit.Ancestry{PID: 7},
		Error: "written late: the audit log could not be written then (no space left on device)"})
	m.Record(&audit.Record{Source: audit.SourceContainerdEvents, Stage: audit.StageStart, ContainerID: "f", Ancestry: &audit.Ancestry{PID: 8},
		Error: "judged without the annotations of the container's spec: x; written late: the audit log could not be written then"})
	// A note of the NRI plugin (a container found running at its
	// registration) is none either.
	m.Record(&audit.Record{Source: audit.SourceNRI, Stage: audit.StageStart, ContainerID: "g", Ancestry: &audit.Ancestry{PID: 9}, Error: "started while the NRI plugin was not connected (containerd or the plugin restarting), or its start is not in the log's files searched: recorded when the plugin registered, not checked at its start"})

	text := scrape(t, m)
	sum := regexp.MustCompile(`\nnsrel_audit_append_duration_seconds_sum\{service="watch"\} (\S+)\n`).FindStringSubmatch(text)
	if sum == nil {
		t.Error("no append duration sum")
	} else if v, err := strconv.ParseFloat(sum[1], 64); err != nil || v > 0.5 {
		t.Errorf("appends took %s s in all; shipping to the hung server (1 s each) is not an append's", sum[1])
	}
	nstest.CheckScrape(t, text,
		`nsrel_records_total{service="watch",source="containerd-events",stage="start"} 2`,
		`nsrel_records_total{service="watch",source="nri",stage="start"} 3`,
		`nsrel_records_total{service="watch",source="oci-hook",stage="createRuntime"} 1`,
		`nsrel_records_total{service="watch",source="containerd-events",stage="exit"} 2`,
		`nsrel_verdicts_total{service="watch",verdict="allow"} 2`,
		`nsrel_verdicts_total{service="watch",verdict="deny"} 1`,
		`nsrel_violations_total{rule="require_pid_namespace",service="watch"} 1`,
		`nsrel_violations_total{rule="require_user_namespace",service="watch"} 1`,
		`nsrel_errors_total{kind="audit_append",service="watch"} 1`,
		`nsrel_errors_total{kind="audit_warning",service="watch"} 2`,
		`nsrel_errors_total{kind="containerd_events",service="watch"} 1`,
		`nsrel_errors_total{kind="record",service="watch"} 2`,
		`nsrel_unhooked_containers_total{service="watch",source="containerd-events"} 2`,
		`nsrel_unhooked_containers_total{service="watch",source="nri"} 3`,
		`nsrel_audit_append_duration_seconds_count{service="watch"} 5`,
		`nsrel_checkpoints_shipped_total{dest="file",service="watch"} 2`,
		`nsrel_checkpoints_shipped_total{dest="unix",service="watch"} 2`,
		`nsrel_checkpoints_shipped_total{dest="tcp",service="watch"} 0`,
		`nsrel_checkpoint_ship_failures_total{dest="file",service="watch"} 0`,
		`nsrel_checkpoint_ship_failures_total{dest="unix",service="watch"} 0`,
		`nsrel_checkpoint_ship_failures_total{dest="tcp",service="watch"} 2`,
		`nsrel_checkpoint_last_shipped_age_seconds{dest="file",service="watch"} 90`,
		`nsrel_checkpoint_last_shipped_age_seconds{dest="unix",service="watch"} 90`,
		`nsrel_checkpoint_last_shipped_age_seconds{dest="tcp",service="watch"} NaN`,
		`nsrel_diagnostics_dropped_total{level="error",service="watch"} 0`,
		`nsrel_diagnostics_dropped_total{level="warning",service="watch"} 0`,
		`nsrel_diagnostics_dropped_total{level="info",service="watch"} 0`)
}

// TestInstrumentKeepsCallbacks checks that the callbacks an Options had
// are still called, and that the config's checkpoint options are not
// changed.
func TestInstrumentKeepsCallbacks(t *testing.T) {
	var written, appended, shipped, sent int
	ck := &audit.CheckpointOptions{EveryRecords: 1, File: filepath.Join(t.TempDir(), "c"), Shipped: func(*audit.Checkpoint) { shipped++ },
		Sent: func(*audit.Checkpoint, string, error) { sent++ }}
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
	if written != 1 || appended != 1 || shipped != 1 || sent != 1 {
		t.Errorf("written %d, appended %d, shipped %d, sent %d; want 1 each", written, appended, shipped, sent)
	}
}

// TestServeBoundsConnections opens 200 connections to the scrape
// endpoint, as anyone who can reach the endpoint can. Those that send a
// scrape and stay open (keep-alive) are each answered and closed by the
// server: they held a slot for 30 s, and MaxConns of them kept every
// scrape out. Of those that send nothing the server holds MaxConns, the
// rest wait to be accepted: every connection used to be held until the
// daemon ran out of file descriptors (then it could not inspect a
// container) or memory.
func TestServeBoundsConnections(t *testing.T) {
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	addr := serve(t, New("test"))
	const n = 200
	closed := make(chan bool, n)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		go func() {
			c.SetReadDeadline(time.Now().Add(time.Minute))
			b, err := io.ReadAll(c) // to the server's close
			closed <- err == nil && bytes.HasPrefix(b, []byte("HTTP/1.1 404"))
		}()
	}
	for range n {
		if !<-closed {
			t.Fatal("a keep-alive connection was not answered and closed by the server")
		}
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	client := &http.Client{Timeout: 10 * time.Second}
	if resp, err := client.Get("http://" + addr + "/metrics"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("scrape after the keep-alive connections: %v", err)
	} else {
		resp.Body.Close()
	}

	before := fds()
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	time.Sleep(300 * time.Millisecond) // any more the server took would be open by now
	if held := fds() - before - n; held > MaxConns+2 {
		t.Errorf("the server holds %d connections, want at most %d", held, MaxConns)
	}
}
