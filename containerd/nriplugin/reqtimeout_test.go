package nriplugin

import (
	"context"
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
)

// TestRuntimeTimeoutBelowPluginTimeout: containerd's
// plugin_request_timeout (1 s here) at or below the plugin's --timeout
// (1.5 s by default). The check's deadline was the runtime's own (ttrpc
// passes it on), with no time left for the answer: with the audit log's
// lock held, the refusal of a violating container came too late, the
// runtime dropped the plugin and started the container, and the log's
// only record of it said it was refused (8 runs of 9). The check now
// ends a margin before the runtime's deadline: the container is
// refused, the plugin stays connected, the refusal is recorded once the
// log takes it.
func TestRuntimeTimeoutBelowPluginTimeout(t *testing.T) {
	crictl := ctrdtest.Crictl(t)
	_, cfg := ctrdtest.ConfigWith(t, `"on_error": "deny",
	"trusted_selectors": {"annotations": ["io.kubernetes.cri.container-name"]},
	"policies": [{"name": "strict", "match": {"annotations": {"io\\.kubernetes\\.cri\\.container-name": "bad"}}, "mode": "enforce", "rules": {"require_user_namespace": true}}],
	"default": {"name": "default", "mode": "audit"}`)
	log := openLog(t, cfg.AuditLog)
	d := ctrdtest.Start(t, ctrdtest.V2(), &ctrdtest.Options{CRI: true, NRI: true, ExtraConfig: "  plugin_request_timeout = \"1s\"\n"})
	c := d.Client(t)
	d.ImportImage(t, c, "k8s.io", ctrdtest.PauseImageName, []string{"/bin/sleep", "infinity"})
	d.ImportBusybox(t, c, "k8s.io")
	p := &Plugin{Config: cfg, Log: log, Logger: ctrdtest.Logger(t, "nri: ")}
	reg := make(chan struct{})
	p.Registered = func() { close(reg) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, d.NRISocket, "10") }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	<-reg
	podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq("to-pod"))
	for i := range 3 {
		bad := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "bad"), podJSON)
		release := holdLog(log)
		_, _, err := d.Crictl(crictl, "start", bad)
		release()
		state, _, _ := d.Crictl(crictl, "inspect", "-o", "go-template", "--template", "{{.status.state}}", bad)
		if err == nil || strings.TrimSpace(state) == "CONTAINER_RUNNING" {
			t.Fatalf("try %d: crictl start: %v, state %s; want the container refused", i, err, state)
		}
		select {
		case rerr := <-done:
			t.Fatalf("try %d: the runtime dropped the plugin: %v", i, rerr)
		default:
		}
		audittest.Wait(t, cfg.AuditLog, "the refusal's record", func(rs []*audit.Record) bool {
			for _, r := range rs {
				if r.ContainerID == bad && r.Verdict == audit.VerdictDeny {
					return true
				}
			}
			return false
		})
		d.MustCrictl(t, crictl, "rm", bad) // its name, for the next try
	}
}
