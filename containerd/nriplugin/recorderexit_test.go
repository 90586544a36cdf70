package nriplugin

import (
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
)

// TestNRIRecorderEndsPluginStarts: the plugin (the hook not injected)
// and the event recorder on one log, as docs/containerd.md sets them
// up; a pod with one container runs, is stopped and removed. Every start
// recorded, the plugin's and the recorder's, must end with an exit: the
// plugin writes none, and the recorder wrote none for the starts the
// plugin recorded first (the container's, always: the plugin checks it
// before its task starts), so to the log they ran for good.
func TestNRIRecorderEndsPluginStarts(t *testing.T) {
	crictl := ctrdtest.Crictl(t)
	_, cfg := ctrdtest.ConfigWith(t, `"on_error": "allow", "default": {"name": "default", "mode": "audit", "rules": {}}`)
	log := openLog(t, cfg.AuditLog)
	d := ctrdtest.Start(t, ctrdtest.V2(), &ctrdtest.Options{CRI: true, NRI: true})
	c := d.Client(t)
	d.ImportImage(t, c, "k8s.io", ctrdtest.PauseImageName, []string{"/bin/sleep", "infinity"})
	d.ImportBusybox(t, c, "k8s.io")
	runRecorder(t, d, cfg, log)
	startPlugin(t, d, &Plugin{Config: cfg, Log: log})
	podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq("ends-pod"))
	ctr := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "app"), podJSON)
	d.MustCrictl(t, crictl, "start", ctr)
	recs := audittest.Wait(t, cfg.AuditLog, "the container's start", func(recs []*audit.Record) bool {
		return len(starts(recs, ctr)) > 0
	})
	if got := starts(recs, ctr); got[0].Source != audit.SourceNRI {
		t.Fatalf("the container's start by %s; want the plugin's (recorded before its task started)", got[0].Source)
	}
	d.MustCrictl(t, crictl, "stop", "-t", "0", ctr)
	d.MustCrictl(t, crictl, "rm", ctr)
	d.MustCrictl(t, crictl, "stopp", podID)
	d.MustCrictl(t, crictl, "rmp", podID)
	audittest.Wait(t, cfg.AuditLog, "an exit of every start of the pod and its container", func(recs []*audit.Record) bool {
		for _, id := range []string{podID, ctr} {
			ended := map[uint64]bool{}
			for _, rec := range recs {
				if rec.ContainerID == id && rec.Ref != nil && !audit.IsStart(rec.Stage) {
					ended[rec.Ref.Seq] = true
				}
			}
			s := starts(recs, id)
			if len(s) == 0 {
				return false
			}
			for _, rec := range s {
				if !ended[rec.Seq] {
					return false
				}
			}
		}
		return true
	})
}

// starts returns the start records of container id.
func starts(recs []*audit.Record, id string) []*audit.Record {
	var out []*audit.Record
	for _, rec := range recs {
		if rec.ContainerID == id && audit.IsStart(rec.Stage) {
			out = append(out, rec)
		}
	}
	return out
}
