package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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
	addr := metricsAddress(t, w)
	id := ctrdtest.Uniq("ctr")
	d.Run(t, d.Client(t), "default", id, nil)
	audittest.Wait(t, cfg.AuditLog, "start record", func(rs []*audit.Record) bool { return audittest.Count(rs, id, evStart) == 1 })

	text := scrape(t, addr)
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

// metricsAddress returns the address a service's diagnostics say it
// serves metrics on.
func metricsAddress(t *testing.T, w *watchProc) string {
	t.Helper()
	m := regexp.MustCompile(`address="?(127\.0\.0\.1:[0-9]+)"? msg="serving metrics"|msg="serving metrics" address="?(127\.0\.0\.1:[0-9]+)`).FindStringSubmatch(w.stderr.String())
	if m == nil {
		t.Fatalf("no metrics address in the diagnostics:\n%s", w.stderr.String())
	}
	return m[1] + m[2]
}

// scrape returns one scrape of http://addr/metrics.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s, %v", resp.Status, err)
	}
	return string(body)
}

// TestNRIMetrics runs `nsrel-containerd nri` with a metrics listener
// against containerd 2.4 with NRI on, runs a pod with an allowed and a
// refused container through crictl, and checks the verdicts, the
// violation and the starts the plugin recorded in a scrape, and the
// scrape with promtool.
func TestNRIMetrics(t *testing.T) {
	nstest.RequireCmd(t, "promtool")
	crictl := ctrdtest.Crictl(t)
	bin := nstest.Tool(t, "nsrel-containerd")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "hook.json")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, `{
	"version": 1,
	"audit_log": %q,
	"checkpoints": {"every_records": 1, "file": %q},
	"trusted_selectors": {"annotations": ["io.kubernetes.cri.container-name"]},
	"policies": [{"name": "strict", "match": {"annotations": {"io\\.kubernetes\\.cri\\.container-name": "bad"}},
		"mode": "enforce", "rules": {"require_user_namespace": true}}],
	"default": {"name": "default", "mode": "audit"}
}`, filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "checkpoints.jsonl")), 0o600); err != nil {
		t.Fatal(err)
	}
	d := ctrdtest.Start(t, ctrdtest.V2(), &ctrdtest.Options{CRI: true, NRI: true})
	c := d.Client(t)
	d.ImportImage(t, c, "k8s.io", ctrdtest.PauseImageName, []string{"/bin/sleep", "infinity"})
	d.ImportBusybox(t, c, "k8s.io")
	w := startService(t, "registered as NRI plugin", bin, "nri", "--config", cfgPath, "--socket", d.NRISocket, "--inject-hook", "none", "--metrics-address", "127.0.0.1:0")
	addr := metricsAddress(t, w)

	podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq("metrics-pod"))
	good := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "good"), podJSON)
	d.MustCrictl(t, crictl, "start", good)
	bad := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "bad"), podJSON)
	if _, _, err := d.Crictl(crictl, "start", bad); err == nil {
		t.Error("the violating container started")
	}
	// The plugin ships checkpoints after its answer.
	shipped := `nsrel_checkpoints_shipped_total{dest="file",service="nri"} 3`
	text := scrape(t, addr)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(text, "\n"+shipped+"\n") && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		text = scrape(t, addr)
	}
	if !regexp.MustCompile(`\nnsrel_checkpoint_last_shipped_age_seconds\{dest="file",service="nri"\} [0-9.e+-]+\n`).MatchString(text) {
		t.Error("no checkpoint age after checkpoints were written")
	}
	nstest.CheckScrape(t, text,
		`nsrel_records_total{service="nri",source="nri",stage="start"} 3`,
		`nsrel_unhooked_containers_total{service="nri",source="nri"} 3`,
		`nsrel_verdicts_total{service="nri",verdict="allow"} 2`,
		`nsrel_verdicts_total{service="nri",verdict="deny"} 1`,
		`nsrel_violations_total{rule="require_user_namespace",service="nri"} 1`,
		shipped,
		`nsrel_checkpoint_ship_failures_total{dest="file",service="nri"} 0`,
		`nsrel_checkpoint_last_shipped_age_seconds{dest="tcp",service="nri"} NaN`)
	w.stop(t)
}

// TestNRIOtherPIDNamespace runs the NRI plugin in a PID namespace of its
// own (a pod without hostPID): containerd's PIDs would name other
// processes there, or none. The plugin says so and exits 1 instead of
// registering and pinning the wrong processes; on the host's it
// registers.
func TestNRIOtherPIDNamespace(t *testing.T) {
	nstest.RequireRoot(t)
	unshare := nstest.RequireCmd(t, "unshare")
	bin := nstest.Tool(t, "nsrel-containerd")
	cfgPath, _ := ctrdtest.ConfigWith(t, `"default": {"mode": "audit"}`)
	d := ctrdtest.Start(t, ctrdtest.V2(), &ctrdtest.Options{CRI: true, NRI: true})
	args := []string{"nri", "--config", cfgPath, "--socket", d.NRISocket, "--inject-hook", "none", "--metrics-address", ""}
	// Registered, it would serve until killed: a bound, not a hang.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, append([]string{"--pid", "--fork", "--kill-child", bin}, args...)...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "lives in a PID namespace this one cannot see") {
		t.Errorf("in a PID namespace of its own: %v\n%s", err, out)
	}
	w := startService(t, "registered as NRI plugin", append([]string{bin}, args...)...)
	w.stop(t)
}
