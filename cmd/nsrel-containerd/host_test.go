package main

import (
	"os"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// otherHostError is what watch and nri say at start when the audit
// log's last record names another host.
const otherHostError = "the audit log's last record names another host than this process"

// TestWatchOtherHost runs `nsrel-containerd watch` on the host, then
// again in a UTS namespace of its own with another host name (a pod
// without the host's network: its host name is the pod's name) on the
// same audit log: the second run says at start that the log's last
// record names another host, naming both; the first, on an empty log,
// says nothing, and a third on the host after it says it too.
func TestWatchOtherHost(t *testing.T) {
	unshare := nstest.RequireCmd(t, "unshare")
	bin := nstest.Tool(t, "nsrel-containerd")
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	const pod = "nsrel-node-agent-x7k2p"
	cfgPath, cfg := ctrdtest.HookConfig(t)
	d := ctrdtest.Start(t, ctrdtest.V2(), nil)
	args := []string{"watch", "--config", cfgPath, "--address", d.Socket, "--metrics-address", "", "--log-level", "debug"}

	w := startWatch(t, append([]string{bin}, args...)...)
	w.stop(t)
	if strings.Contains(w.stderr.String(), otherHostError) {
		t.Errorf("watch on the host, with an empty log:\n%s", w.stderr.String())
	}

	script := `hostname "$1" && shift && exec "$@"`
	w = startWatch(t, append([]string{unshare, "--uts", "sh", "-c", script, "sh", pod, bin}, args...)...)
	w.stop(t)
	stderr := w.stderr.String()
	for _, want := range []string{otherHostError, "log_host=" + host, "host=" + pod} {
		if !strings.Contains(stderr, want) {
			t.Errorf("watch in a UTS namespace named %s: stderr lacks %q:\n%s", pod, want, stderr)
		}
	}
	// What it warns of: its records name the pod, the host's the host.
	hosts := map[string]bool{}
	for _, r := range audittest.Records(t, cfg.AuditLog, "") {
		hosts[r.Host] = true
	}
	if len(hosts) != 2 || !hosts[host] || !hosts[pod] {
		t.Errorf("hosts of the records: %v; want %s and %s", hosts, host, pod)
	}

	// Back on the host the last record names the pod: said again (the
	// host writes after the pod), which is true of this log.
	w = startWatch(t, append([]string{bin}, args...)...)
	w.stop(t)
	if !strings.Contains(w.stderr.String(), "log_host="+pod) {
		t.Errorf("watch on the host after the pod's records: stderr lacks log_host=%s:\n%s", pod, w.stderr.String())
	}
	var last *audit.Record
	for _, r := range audittest.Records(t, cfg.AuditLog, "") {
		last = r
	}
	if last == nil || last.Host != host {
		t.Errorf("last record %+v; want one of %s", last, host)
	}
}
