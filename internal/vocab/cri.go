package vocab

// Kubernetes keys. The CRI plugin of containerd puts the pod's name and
// namespace on every container as labels (io.kubernetes.pod.*) and in its
// OCI spec as annotations (io.kubernetes.cri.*); CRI-O sets the
// io.kubernetes.pod.* ones as annotations.
const (
	LabelPodName               = "io.kubernetes.pod.name"
	LabelPodNamespace          = "io.kubernetes.pod.namespace"
	LabelContainerName         = "io.kubernetes.container.name"
	AnnotationSandboxName      = "io.kubernetes.cri.sandbox-name"
	AnnotationSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	AnnotationContainerName    = "io.kubernetes.cri.container-name"
)

// PodName returns "pod-namespace/pod-name" (or the name alone) from CRI
// labels or annotations: the io.kubernetes.pod.* pair, else containerd's
// io.kubernetes.cri.sandbox-* pair; "" when neither names a pod.
func PodName(keys map[string]string) string {
	name, ns := keys[LabelPodName], keys[LabelPodNamespace]
	if name == "" {
		name, ns = keys[AnnotationSandboxName], keys[AnnotationSandboxNamespace]
	}
	if name == "" {
		return ""
	}
	if ns != "" {
		return ns + "/" + name
	}
	return name
}
