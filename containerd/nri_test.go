package containerd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"

	"github.com/nsrel/nsrel/containerd/internal/ctrdtest"
	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/nstest"
)

// TestNRIPlugin runs the NRI plugin against containerd 2.4 (NRI on, CRI
// through crictl): the pod sandbox and an allowed container are recorded
// with source "nri", and a container whose policy block enforces a user
// namespace is refused before its process runs. With nsrel-hook also
// installed through the base runtime spec, the hook records (and refuses)
// the pod's containers and the plugin records only the sandbox, which the
// base spec does not reach.
func TestNRIPlugin(t *testing.T) {
	crictl := filepath.Join(ctrdtest.Tools(), "crictl-v1.37.0", "crictl")
	_, err := os.Stat(crictl)
	nstest.Require(t, err == nil, "needs crictl (%v); `make deps` builds it", err)
	for _, withHook := range []bool{false, true} {
		t.Run(fmt.Sprintf("hook=%v", withHook), func(t *testing.T) {
			t.Parallel()
			testNRIPlugin(t, crictl, withHook)
		})
	}
}

func testNRIPlugin(t *testing.T, crictl string, withHook bool) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "hook.json")
	os.WriteFile(cfgPath, fmt.Appendf(nil, `{
	"version": 1,
	"audit_log": %q,
	"on_error": "allow",
	"policies": [{"name": "strict",
		"match": {"annotations": {"io\\.kubernetes\\.cri\\.container-name": "bad"}},
		"mode": "enforce", "rules": {"require_user_namespace": true}}],
	"default": {"name": "default", "mode": "audit", "rules": {"require_pid_namespace": true}}
}`, filepath.Join(dir, "audit.jsonl")), 0o600)
	cfg, err := policy.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.Open(cfg.AuditLog, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}

	opts := &ctrdtest.Options{CRI: true, NRI: true}
	if withHook {
		spec := loadSpec(t, shippedSpec)
		h := Hooks(tool(t, "nsrel-hook"), cfgPath)
		spec.Hooks = &h
		data, _ := json.Marshal(spec)
		specPath := filepath.Join(dir, "base-spec.json")
		if err := os.WriteFile(specPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		opts.ExtraConfig = shippedFragment(t, ctrdtest.V2(), specPath)
	}
	d := ctrdtest.Start(t, ctrdtest.V2(), opts)
	c := d.Client(t)
	d.ImportImage(t, c, "k8s.io", ctrdtest.PauseImageName, []string{"/bin/sleep", "infinity"})
	d.ImportBusybox(t, c, "k8s.io")

	startNRIPlugin(t, d, &NRIPlugin{Config: cfg, Log: log})

	podID, podJSON := runPod(t, crictl, d, uniq("nri-pod"))
	good := mustCrictl(t, crictl, d, "create", podID, ctrConfig(t, "good"), podJSON)
	mustCrictl(t, crictl, d, "start", good)
	bad := mustCrictl(t, crictl, d, "create", podID, ctrConfig(t, "bad"), podJSON)
	_, stderr, err := crictlCmd(crictl, d, "start", bad)
	if err == nil || !strings.Contains(stderr, `refused by nsrel policy`) || !strings.Contains(stderr, `require_user_namespace`) {
		t.Errorf("start of the violating container: err %v, stderr %q; want a refusal naming the policy", err, stderr)
	}
	if out, _, _ := crictlCmd(crictl, d, "inspect", "-o", "go-template", "--template", "{{.status.state}}", bad); out == "CONTAINER_RUNNING" {
		t.Errorf("refused container is running")
	}

	recs := readRecords(t, cfg.AuditLog)
	ctrStart, refused := []string{"nri/start"}, []string{"nri/start"}
	if withHook {
		// The hook refuses "bad" at createRuntime already; runc then runs
		// the poststop hooks while it cleans up.
		ctrStart = []string{"oci-hook/createRuntime", "oci-hook/poststart"}
		refused = []string{"oci-hook/createRuntime", "oci-hook/poststop"}
	}
	for _, tc := range []struct {
		id, verdict, policy string
		want                []string
	}{
		{podID, audit.VerdictAllow, "default", []string{"nri/start"}},
		{good, audit.VerdictAllow, "default", ctrStart},
		{bad, audit.VerdictDeny, "strict", refused},
	} {
		if diff := cmp.Diff(tc.want, stages(recs, tc.id)); diff != "" {
			t.Errorf("%s: records (-want +got):\n%s", tc.id, diff)
			continue
		}
		for _, r := range recs {
			if r.ContainerID == tc.id && audit.IsStart(r.Stage) && (r.Verdict != tc.verdict || r.Policy != tc.policy || r.Ancestry == nil) {
				t.Errorf("%s: verdict %s policy %s ancestry %v; want %s %s", tc.id, r.Verdict, r.Policy, r.Ancestry != nil, tc.verdict, tc.policy)
			}
		}
	}
	verifyChain(t, cfg.AuditLog)
}

// startNRIPlugin registers p (with a logger to the test log) on d's NRI
// socket until the test ends, when it must still be connected.
func startNRIPlugin(t *testing.T, d *ctrdtest.Daemon, p *NRIPlugin) {
	t.Helper()
	logger := logrus.New()
	logger.SetOutput(testWriter{t})
	registered := make(chan struct{})
	p.Logger, p.Registered = logger, func() { close(registered) }
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = p.Run(ctx, d.NRISocket, "10") })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if runErr != nil {
			t.Errorf("NRIPlugin.Run: %v", runErr)
		}
	})
	select {
	case <-registered:
	case <-time.After(30 * time.Second):
		t.Fatalf("plugin did not register; containerd log:\n%s", d.LogTail())
	}
}

// TestNRISlowAuditLog holds the audit log's lock while a container
// starts: the plugin's check runs out of time before containerd's plugin
// request timeout and, under on_error=deny, refuses the container,
// instead of being disconnected by containerd (which would then start
// the container unchecked). The plugin stays connected and checks the
// next container.
func TestNRISlowAuditLog(t *testing.T) {
	crictl := filepath.Join(ctrdtest.Tools(), "crictl-v1.37.0", "crictl")
	_, err := os.Stat(crictl)
	nstest.Require(t, err == nil, "needs crictl (%v); `make deps` builds it", err)
	t.Parallel()
	_, cfg := hookSetup(t)
	cfg.OnError = policy.OnErrorDeny
	log, err := audit.Open(cfg.AuditLog, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := ctrdtest.Start(t, ctrdtest.V2(), &ctrdtest.Options{CRI: true, NRI: true})
	c := d.Client(t)
	d.ImportImage(t, c, "k8s.io", ctrdtest.PauseImageName, []string{"/bin/sleep", "infinity"})
	d.ImportBusybox(t, c, "k8s.io")
	startNRIPlugin(t, d, &NRIPlugin{Config: cfg, Log: log, Timeout: 500 * time.Millisecond})
	podID, podJSON := runPod(t, crictl, d, uniq("slow-pod"))

	held, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		log.AppendWith(context.Background(), func(*audit.Searcher) (*audit.Record, error) {
			close(held)
			<-release
			return nil, nil
		})
	}()
	<-held
	slow := mustCrictl(t, crictl, d, "create", podID, ctrConfig(t, "slow"), podJSON)
	_, stderr, err := crictlCmd(crictl, d, "start", slow)
	close(release)
	<-done
	if err == nil || !strings.Contains(stderr, "on_error=deny") {
		t.Errorf("start while the audit log is locked: err %v, stderr %q; want a refusal naming on_error=deny", err, stderr)
	}
	if out, _, _ := crictlCmd(crictl, d, "inspect", "-o", "go-template", "--template", "{{.status.state}}", slow); out == "CONTAINER_RUNNING" {
		t.Errorf("container started although its check ran out of time")
	}

	next := mustCrictl(t, crictl, d, "create", podID, ctrConfig(t, "next"), podJSON)
	mustCrictl(t, crictl, d, "start", next)
	recs := readRecords(t, cfg.AuditLog)
	if diff := cmp.Diff([]string{"nri/start"}, stages(recs, next)); diff != "" {
		t.Errorf("the next container after the timeout (-want +got):\n%s", diff)
	}
}
