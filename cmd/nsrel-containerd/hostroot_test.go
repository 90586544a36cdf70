package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsrel/nsrel/hook/audit"
	"github.com/nsrel/nsrel/internal/audittest"
	"github.com/nsrel/nsrel/internal/ctrdtest"
	"github.com/nsrel/nsrel/internal/nstest"
)

// TestNRIHostRoot runs `nsrel-containerd nri` against containerd 2.4
// (CRI, NRI) under an enforcing default with allowed_subid_user: a pod
// in a user namespace of the user's subordinate IDs runs when the
// plugin reads the host's /etc/subuid, subgid and passwd under
// --host-root (the DaemonSet's /proc/1/root; here a directory holding
// them, /etc/subuid an absolute symlink resolved within it), and is
// refused when it reads a root that lacks them, as the image's /etc
// does, which it warns of at start: the DaemonSet's plugin read its own
// image's files and refused every such pod the hook on the host allowed.
func TestNRIHostRoot(t *testing.T) {
	nstest.RequireRoot(t)
	bin := nstest.Tool(t, "nsrel-containerd")
	crictl := ctrdtest.Crictl(t)
	host := nstest.HostIDBase(t)
	cfgPath, cfg := ctrdtest.ConfigWith(t, `"on_error": "allow",
	"default": {"name": "subids", "mode": "enforce", "rules": {"allowed_subid_user": "kube-ids"}}`)
	// The host's root: its /etc/subuid an absolute symlink, which a
	// plain open through the root resolved in this process's own root.
	root := t.TempDir()
	for _, d := range []string{"etc", "data"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string]string{
		"etc/passwd":  "root:x:0:0:root:/root:/bin/sh\nkube-ids:x:4321:4321::/:/bin/false\n",
		"data/subuid": fmt.Sprintf("kube-ids:%d:65536\n", host),
		"etc/subgid":  fmt.Sprintf("kube-ids:%d:65536\n", host),
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/data/subuid", filepath.Join(root, "etc/subuid")); err != nil {
		t.Fatal(err)
	}
	d := ctrdtest.Start(t, ctrdtest.V2(), &ctrdtest.Options{CRI: true, NRI: true})
	d.ImportImage(t, d.Client(t), "k8s.io", ctrdtest.PauseImageName, []string{"/bin/sleep", "infinity"})
	userns := fmt.Sprintf(`"userns_options":{"mode":0,"uids":[{"host_id":%d,"container_id":0,"length":65536}],"gids":[{"host_id":%d,"container_id":0,"length":65536}]}`, host, host)
	runPod := func(name string) (bool, string) {
		podJSON := filepath.Join(t.TempDir(), "pod.json")
		os.WriteFile(podJSON, fmt.Appendf(nil, `{"metadata":{"name":%q,"namespace":"shop","uid":%q,"attempt":0},
		"linux":{"cgroup_parent":%q,"security_context":{"namespace_options":{"network":2,%s}}}}`, name, name+"-uid", d.CgroupParent()+"/k8s", userns), 0o644)
		return d.TryPod(crictl, podJSON)
	}
	for _, c := range []struct {
		root string
		runs bool
	}{{root, true}, {t.TempDir(), false}} {
		ready := filepath.Join(t.TempDir(), "ready")
		cmd := exec.Command(bin, "nri", "--config", cfgPath, "--socket", d.NRISocket, "--inject-hook", "none",
			"--metrics-address", "", "--ready-file", ready, "--host-root", c.root)
		var stderr nstest.LockedBuffer // written as the test reads it
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stopped := false
		stop := func() {
			if !stopped {
				stopped = true
				cmd.Process.Signal(os.Interrupt)
				cmd.Wait()
			}
		}
		t.Cleanup(stop)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(ready); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("nri --host-root %s not ready after 30 s:\n%s", c.root, stderr.String())
			}
		}
		// The warning goes through the log's queue and a pipe: it may
		// come a moment after the ready file (its absence is checked
		// once the plugin has exited, all its output read).
		warned := func() bool { return strings.Contains(stderr.String(), `allowed_subid_user \"kube-ids\"`) }
		for deadline := time.Now().Add(10 * time.Second); !c.runs && !warned() && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		}
		if !c.runs && !warned() {
			t.Errorf("--host-root %s: not warned at start; want the warning:\n%s", c.root, stderr.String())
		}
		name := ctrdtest.Uniq(fmt.Sprintf("subids-%v", c.runs))
		ran, out := runPod(name)
		if ran != c.runs || !c.runs && !strings.Contains(out, "refused by nsrel policy") {
			t.Errorf("--host-root %s: pod in the user's subordinate IDs ran %v (%s); want %v", c.root, ran, strings.TrimSpace(out), c.runs)
		}
		stop()
		if c.runs && warned() {
			t.Errorf("--host-root %s: warned at start; want no warning:\n%s", c.root, stderr.String())
		}
	}
	for _, r := range audittest.Records(t, cfg.AuditLog, "") {
		if audit.IsStart(r.Stage) {
			t.Logf("%s %s %s %v", r.Source, r.Policy, r.Verdict, r.Violations)
		}
	}
}
