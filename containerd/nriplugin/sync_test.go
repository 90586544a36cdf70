package nriplugin

import (
	"strings"
	"testing"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
)

// TestSynchronizeRecordsUnchecked: a container started while the plugin
// was not connected (stopped here; containerd restarting, or the plugin)
// ran with no record, and the plugin registered again (containerd sends
// it every pod and container) recorded nothing of it. It is recorded
// now, judged as at its start, its record saying it was not checked
// then; a container recorded at its start gets no second record.
func TestSynchronizeRecordsUnchecked(t *testing.T) {
	crictl := ctrdtest.Crictl(t)
	_, cfg := enforcingConfig(t)
	log := openLog(t, cfg.AuditLog)
	d, _, _ := criDaemon(t)
	stop := startPlugin(t, d, &Plugin{Config: cfg, Log: log})
	podID, podJSON := d.RunPod(t, crictl, ctrdtest.Uniq("sync-pod"))
	checked := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "checked"), podJSON)
	d.MustCrictl(t, crictl, "start", checked)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	bad := d.MustCrictl(t, crictl, "create", podID, ctrdtest.CtrConfig(t, "bad"), podJSON)
	d.MustCrictl(t, crictl, "start", bad) // no plugin: it runs
	stop = startPlugin(t, d, &Plugin{Config: cfg, Log: log})
	recs := audittest.Wait(t, cfg.AuditLog, "the unchecked container's record", func(rs []*audit.Record) bool {
		return len(audittest.SourceStages(rs, bad)) > 0
	})
	var got []*audit.Record
	for _, r := range recs {
		if r.ContainerID == bad {
			got = append(got, r)
		}
	}
	if len(got) != 1 || got[0].Source != audit.SourceNRI || got[0].Policy != "strict" || got[0].Verdict != audit.VerdictDeny ||
		!strings.Contains(got[0].Error, "started while the NRI plugin was not connected") || got[0].Ancestry == nil {
		t.Errorf("records of the container started without the plugin: %+v; want one of the plugin's, under strict, saying it was not checked", got)
	}
	// Nothing more of the pod or the container recorded at their start
	// (the stop waits for the records under way).
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{podID, checked} {
		if n := len(audittest.SourceStages(audittest.Records(t, cfg.AuditLog, ""), id)); n != 1 {
			t.Errorf("%s: %d records; want its start's alone", id[:12], n)
		}
	}
}
