package kubetest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// CRI namespace modes (k8s.io/cri-api NamespaceMode).
const (
	nsContainer = 1
	nsNode      = 2
)

// KubeletSeccompDir is where the kubelet (with its default root
// directory) looks for a pod's Localhost seccomp profiles.
const KubeletSeccompDir = "/var/lib/kubelet/seccomp"

// Node is where a test runs the DaemonSet's pod: every host path P of
// the pod template is Root+P on this machine, so that the test touches
// nothing of the real host. A host path volume mounted at its own path
// (the audit directory, the NRI socket directory: the same path inside
// and out) is mounted at Root+P inside too, and the container
// arguments naming a path below a host path volume are relocated the
// same way; nothing else of the template changes.
type Node struct {
	Root string
	// CgroupParent is the pod's cgroup parent.
	CgroupParent string
	// ConfigMaps gives the files of each ConfigMap volume (by ConfigMap
	// name); the test writes them into a directory of its own.
	ConfigMaps map[string]map[string]string
}

// Host returns where host path p of the manifest is on this machine.
func (n *Node) Host(p string) string { return filepath.Join(n.Root, p) }

// relocate rewrites an argument naming a path below one of the host
// path volumes.
func (n *Node) relocate(spec *corev1.PodSpec, arg string) string {
	for _, v := range spec.Volumes {
		if v.HostPath != nil && (arg == v.HostPath.Path || strings.HasPrefix(arg, v.HostPath.Path+"/")) {
			return n.Host(arg)
		}
	}
	return arg
}

// PodConfig writes the CRI pod sandbox config of the DaemonSet's pod
// template (name, namespace, labels, host PID, host network, security
// context) and returns its path.
func (n *Node) PodConfig(t testing.TB, ds *appsv1.DaemonSet, name string) string {
	t.Helper()
	spec := ds.Spec.Template.Spec
	sc := map[string]any{"namespace_options": namespaces(t, &spec)}
	if psc := spec.SecurityContext; psc != nil && psc.RunAsUser != nil {
		sc["run_as_user"] = map[string]any{"value": *psc.RunAsUser}
	}
	cfg := map[string]any{
		"metadata": map[string]any{"name": name, "namespace": ds.Namespace, "uid": name + "-uid", "attempt": 0},
		"labels":   ds.Spec.Template.Labels,
		"linux":    map[string]any{"cgroup_parent": n.CgroupParent, "security_context": sc},
	}
	return writeJSON(t, "pod.json", cfg)
}

// ContainerConfig writes the CRI container config of container c of the
// DaemonSet's pod template (an init container or a container): image,
// command, mounts, capabilities, read-only root, no_new_privs, AppArmor
// and SELinux options, seccomp profile, run as user, host PID, resource
// limits.
func (n *Node) ContainerConfig(t testing.TB, ds *appsv1.DaemonSet, c corev1.Container) string {
	t.Helper()
	spec := &ds.Spec.Template.Spec
	var args []string
	for _, a := range append(append([]string{}, c.Command...), c.Args...) {
		args = append(args, n.relocate(spec, a))
	}
	var mounts []any
	for _, m := range c.VolumeMounts {
		var host, inside string = "", m.MountPath
		for _, v := range spec.Volumes {
			if v.Name != m.Name {
				continue
			}
			switch {
			case v.HostPath != nil:
				host = n.Host(v.HostPath.Path)
				if m.MountPath == v.HostPath.Path {
					inside = host
				}
				if err := os.MkdirAll(host, 0o755); err != nil {
					t.Fatal(err)
				}
			case v.ConfigMap != nil:
				host = filepath.Join(n.Root, "configmaps", v.ConfigMap.Name)
				os.MkdirAll(host, 0o755)
				for k, data := range n.ConfigMaps[v.ConfigMap.Name] {
					if err := os.WriteFile(filepath.Join(host, k), []byte(data), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			case v.EmptyDir != nil:
				host = filepath.Join(n.Root, "emptydir", v.Name)
				os.MkdirAll(host, 0o755)
			default:
				t.Fatalf("volume %s: a kind this test cannot give", v.Name)
			}
		}
		if host == "" {
			t.Fatalf("%s: mount of unknown volume %s", c.Name, m.Name)
		}
		mounts = append(mounts, map[string]any{"container_path": inside, "host_path": host, "readonly": m.ReadOnly})
	}
	sc := map[string]any{"namespace_options": namespaces(t, spec)}
	if s := c.SecurityContext; s != nil {
		if s.Capabilities != nil {
			sc["capabilities"] = map[string]any{"add_capabilities": s.Capabilities.Add, "drop_capabilities": s.Capabilities.Drop}
		}
		sc["privileged"] = s.Privileged != nil && *s.Privileged
		sc["readonly_rootfs"] = s.ReadOnlyRootFilesystem != nil && *s.ReadOnlyRootFilesystem
		sc["no_new_privs"] = s.AllowPrivilegeEscalation != nil && !*s.AllowPrivilegeEscalation
		if a := s.AppArmorProfile; a != nil {
			if a.Type != corev1.AppArmorProfileTypeUnconfined {
				t.Fatalf("AppArmor profile %s: only Unconfined is translated", a.Type)
			}
			sc["apparmor"] = map[string]any{"profile_type": 1} // Unconfined
		}
	}
	// SELinux options: the container's, else the pod's; AppArmor: only
	// the container's is translated.
	var se *corev1.SELinuxOptions
	if psc := spec.SecurityContext; psc != nil {
		se = psc.SELinuxOptions
		if psc.AppArmorProfile != nil {
			t.Fatalf("a pod-level AppArmor profile: not translated")
		}
	}
	if s := c.SecurityContext; s != nil && s.SELinuxOptions != nil {
		se = s.SELinuxOptions
	}
	if se != nil {
		sc["selinux_options"] = map[string]any{"user": se.User, "role": se.Role, "type": se.Type, "level": se.Level}
	}
	if psc := spec.SecurityContext; psc != nil && psc.RunAsUser != nil {
		sc["run_as_user"] = map[string]any{"value": *psc.RunAsUser}
	}
	// seccomp: the container's profile, else the pod's. A Localhost
	// profile is a file below the kubelet's seccomp directory on the
	// node (here below Root).
	var seccomp *corev1.SeccompProfile
	if psc := spec.SecurityContext; psc != nil {
		seccomp = psc.SeccompProfile
	}
	if s := c.SecurityContext; s != nil && s.SeccompProfile != nil {
		seccomp = s.SeccompProfile
	}
	if seccomp != nil {
		switch seccomp.Type {
		case corev1.SeccompProfileTypeRuntimeDefault:
			sc["seccomp"] = map[string]any{"profile_type": 0}
		case corev1.SeccompProfileTypeLocalhost:
			sc["seccomp"] = map[string]any{"profile_type": 2, "localhost_ref": n.Host(filepath.Join(KubeletSeccompDir, *seccomp.LocalhostProfile))}
		default:
			t.Fatalf("seccomp profile %s: only RuntimeDefault and Localhost are translated", seccomp.Type)
		}
	}
	res := map[string]any{}
	if cpu, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		res["cpu_period"], res["cpu_quota"] = 100000, cpu.MilliValue()*100
	}
	if mem, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		res["memory_limit_in_bytes"] = mem.Value()
	}
	cfg := map[string]any{
		"metadata": map[string]any{"name": c.Name},
		"image":    map[string]any{"image": c.Image},
		"command":  args,
		"mounts":   mounts,
		"linux":    map[string]any{"security_context": sc, "resources": res},
	}
	return writeJSON(t, c.Name+".json", cfg)
}

// namespaces returns the CRI namespace options of the pod template: host
// PID as it says; the host's network (and with it, in containerd and
// CRI-O, the host's UTS namespace: its host name), which the template
// must ask for: a pod network needs a CNI plugin, which this machine
// lacks.
func namespaces(t testing.TB, spec *corev1.PodSpec) map[string]any {
	t.Helper()
	if !spec.HostNetwork {
		t.Fatalf("the pod template has no hostNetwork: its own network and UTS namespaces need CNI, not here (and its host name would be the pod's, not the one the hook records)")
	}
	pid := nsContainer
	if spec.HostPID {
		pid = nsNode
	}
	return map[string]any{"network": nsNode, "pid": pid}
}

func writeJSON(t testing.TB, name string, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
