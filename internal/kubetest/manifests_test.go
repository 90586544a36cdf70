package kubetest

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/nsrel/nsrel/hook/policy"
	"github.com/nsrel/nsrel/internal/nstest"
)

// TestDecodeStrict checks that a misspelt field fails the decode.
func TestDecodeStrict(t *testing.T) {
	good := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n"
	if _, err := Decode([]byte(good)); err != nil {
		t.Fatalf("good namespace: %v", err)
	}
	for _, bad := range []string{
		strings.Replace(good, "metadata", "metadta", 1),
		"apiVersion: apps/v1\nkind: DaemonSet\nspec:\n  template:\n    spec:\n      hostPid: true\n",
		"apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n",
	} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("decoded %q without an error", bad)
		}
	}
}

// TestManifests renders deploy/kubernetes with kustomize, decodes every
// object strictly, and checks what the node agent needs and no more.
func TestManifests(t *testing.T) {
	objs := Base(t)
	ns, cm, ds := objs.Namespaces[0], objs.ConfigMaps[0], objs.DaemonSets[0]
	if ns.Name != "nsrel-system" || ds.Namespace != ns.Name || cm.Namespace != ns.Name {
		t.Errorf("namespaces: %s, DaemonSet in %s, ConfigMap in %s", ns.Name, ds.Namespace, cm.Namespace)
	}
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Errorf("namespace labels %v: want the Pod Security level the host paths and host PID need", ns.Labels)
	}
	if _, err := policy.Parse("hook.json", []byte(cm.Data["hook.json"])); err != nil {
		t.Errorf("the ConfigMap's policy: %v", err)
	}
	spec := ds.Spec.Template.Spec
	// The host's network brings the host's UTS namespace: the agent's
	// records name the host the hook's do.
	if !spec.HostPID || !spec.HostNetwork || spec.HostIPC {
		t.Errorf("hostPID %v hostNetwork %v hostIPC %v; want host PID and host network, no host IPC", spec.HostPID, spec.HostNetwork, spec.HostIPC)
	}
	if spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("dnsPolicy %q; want %s (the cluster's DNS with the host network)", spec.DNSPolicy, corev1.DNSClusterFirstWithHostNet)
	}
	if want := map[string]string{"kubernetes.io/os": "linux"}; !maps.Equal(spec.NodeSelector, want) {
		t.Errorf("nodeSelector %v; want %v", spec.NodeSelector, want)
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tl corev1.Toleration) bool {
		return tl.Operator == corev1.TolerationOpExists && tl.Key == "" && tl.Effect == ""
	}) {
		t.Errorf("tolerations %v: want one that tolerates every taint", spec.Tolerations)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the agent needs no API token: automountServiceAccountToken must be false")
	}
	version := makefileVersion(t)
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		if !strings.HasSuffix(c.Image, ":"+version) {
			t.Errorf("%s: image %s; want the Makefile's version %s", c.Name, c.Image, version)
		}
		sc := c.SecurityContext
		if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
			sc.Privileged != nil && *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: security context %+v; want all capabilities dropped, no privilege, no escalation, a read-only root", c.Name, sc)
		} else if len(sc.Capabilities.Add) > 1 || len(sc.Capabilities.Add) == 1 && sc.Capabilities.Add[0] != "SYS_PTRACE" {
			t.Errorf("%s: adds capabilities %v; want SYS_PTRACE at most", c.Name, sc.Capabilities.Add)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[r]; !ok {
				t.Errorf("%s: no %s request", c.Name, r)
			}
			if _, ok := c.Resources.Limits[r]; !ok {
				t.Errorf("%s: no %s limit", c.Name, r)
			}
		}
	}
	for _, c := range spec.Containers {
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("%s: readiness probe %v, liveness probe %v; want both", c.Name, c.ReadinessProbe, c.LivenessProbe)
		}
	}
	// The metrics port, named: nri's default listener (127.0.0.1:9499,
	// cmd/nsrel-containerd), as the command leaves it.
	agentPorts := spec.Containers[0].Ports
	if len(agentPorts) != 1 || agentPorts[0].Name != "metrics" || agentPorts[0].ContainerPort != 9499 ||
		agentPorts[0].HostPort != 0 || slices.Contains(spec.Containers[0].Command, "--metrics-address") {
		t.Errorf("agent ports %+v, command %v; want one named metrics, 9499, the default of nri's --metrics-address", agentPorts, spec.Containers[0].Command)
	}
	hostPaths := map[string]string{}
	for _, v := range spec.Volumes {
		switch {
		case v.HostPath != nil:
			hostPaths[v.Name] = v.HostPath.Path
		case v.ConfigMap != nil && v.ConfigMap.Name != cm.Name:
			t.Errorf("volume %s names ConfigMap %s; the base has %s", v.Name, v.ConfigMap.Name, cm.Name)
		}
	}
	want := []string{"/opt/nsrel", "/var/lib/nsrel", "/var/run/nri"}
	var got []string
	for _, p := range hostPaths {
		got = append(got, p)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("host paths %v; want %v", got, want)
	}
	// The seccomp component gives the agent's container the Localhost
	// profile docs/kubernetes.md says to install, and changes nothing
	// else.
	with := BaseWith(t, "seccomp").DaemonSets[0]
	wsc := with.Spec.Template.Spec.Containers[0].SecurityContext
	if p := wsc.SeccompProfile; p == nil || p.Type != corev1.SeccompProfileTypeLocalhost || p.LocalhostProfile == nil || *p.LocalhostProfile != "nsrel/node-agent.json" {
		t.Errorf("the seccomp component gives the agent %+v; want Localhost nsrel/node-agent.json", p)
	}
	wsc.SeccompProfile = nil
	if a, b := mustJSON(t, ds), mustJSON(t, with); a != b {
		t.Errorf("the seccomp component changes more than the agent's seccomp profile:\n%s\n%s", a, b)
	}
	// The paths the agent tells the runtime are host paths under the
	// hook directory the init container fills.
	agent := spec.Containers[0]
	for _, flag := range []string{"--inject-hook", "--hook-config"} {
		i := slices.Index(agent.Command, flag)
		if i < 0 || !strings.HasPrefix(agent.Command[i+1], "/opt/nsrel/") {
			t.Errorf("agent command %v: want %s under /opt/nsrel", agent.Command, flag)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// makefileVersion returns the Makefile's VERSION.
func makefileVersion(t *testing.T) string {
	data, err := os.ReadFile(filepath.Join(nstest.RepoFile(t, "."), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VERSION \?= (\S+)$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("no VERSION in the Makefile")
	}
	return string(m[1])
}
