package vocab

import "strings"

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
	// AnnotationSandboxID is the pod sandbox a CRI container belongs to
	// (on the sandbox itself: its own ID).
	AnnotationSandboxID = "io.kubernetes.cri.sandbox-id"
	// AnnotationImageName is the image a CRI container was created
	// from, as its creator named it.
	AnnotationImageName = "io.kubernetes.cri.image-name"
	// CRIAnnotationPrefix starts the annotation keys containerd's CRI
	// sets itself, on a container's OCI spec. A label with such a key is
	// someone else's: a pod sandbox's labels are its pod's, which the
	// pod's author writes.
	CRIAnnotationPrefix = "io.kubernetes.cri."
	// LabelCRIKind is the label containerd's CRI puts on the containers
	// it makes, over any of the pod's: "sandbox" or "container".
	LabelCRIKind = "io.cri-containerd.kind"
)

// PodName returns "pod-namespace/pod-name" (or the name alone) from CRI
// labels or annotations: containerd's io.kubernetes.cri.sandbox-* pair,
// which its CRI sets over the pod's, else the io.kubernetes.pod.* pair
// (CRI-O's annotations; under containerd a pod's annotations that
// pod_annotations passes, which its author writes: they named a
// kube-system pod over the pod's own name); "" when neither names a pod,
// or a name or namespace holds a slash (no Kubernetes name does).
//
// Keys of both engines (containerd's sandbox-* pair and a CRI-O key)
// name no pod: each engine passes keys a pod's author writes (CRI-O its
// annotations, containerd those pod_annotations lets through), and with
// the other engine's keys added the author's pair was read, naming any
// pod; the engine cannot be told from the keys.
func PodName(keys map[string]string) string {
	if ambiguous(keys) {
		return ""
	}
	name, ns := keys[AnnotationSandboxName], keys[AnnotationSandboxNamespace]
	if name == "" || crio(keys) {
		name, ns = keys[LabelPodName], keys[LabelPodNamespace]
	}
	if name == "" || strings.Contains(name, "/") || strings.Contains(ns, "/") {
		// No Kubernetes name holds a slash: with one, "web-0/app" in
		// kube-system read as pod kube-system/web-0, container app.
		return ""
	}
	if ns != "" {
		return ns + "/" + name
	}
	return name
}

// crio reports whether keys are CRI-O's annotations (it sets
// io.kubernetes.cri-o.* and the io.kubernetes.pod.* keys itself, and no
// io.kubernetes.cri.* key, which a pod's author may add there).
func crio(keys map[string]string) bool {
	for k := range keys {
		if strings.HasPrefix(k, "io.kubernetes.cri-o.") {
			return true
		}
	}
	return false
}

// ambiguous reports whether keys hold both containerd's sandbox name
// and a CRI-O key: one engine's keys added by a pod's author under the
// other (see [PodName]).
func ambiguous(keys map[string]string) bool {
	return keys[AnnotationSandboxName] != "" && crio(keys)
}

// WithoutCRIO returns keys without CRI-O's (io.kubernetes.cri-o.*): the
// keys of a container containerd runs (its bundle tells), where such a
// key is a pod's author's (pod_annotations passed it), and its CRI's
// keys name the pod ([PodName] of both engines' keys names none).
func WithoutCRIO(keys map[string]string) map[string]string {
	if !crio(keys) {
		return keys
	}
	out := make(map[string]string, len(keys))
	for k, v := range keys {
		if !strings.HasPrefix(k, "io.kubernetes.cri-o.") {
			out[k] = v
		}
	}
	return out
}

// LabelNerdctlName is the label nerdctl puts the container's name in.
const LabelNerdctlName = "nerdctl/name"

// NerdctlName returns nerdctl's name of a container from its labels or
// annotations, "" when there is none or it holds a slash: no nerdctl
// name does, and "kube-system/web-0/app" read as a Kubernetes pod's.
func NerdctlName(keys map[string]string) string {
	if n := keys[LabelNerdctlName]; !strings.Contains(n, "/") {
		return n
	}
	return ""
}

// ContainerName returns the human name of a container from its labels or
// annotations: for a Kubernetes container "pod-namespace/pod-name/container"
// (the container from containerd's io.kubernetes.cri.container-name
// where containerd's keys name the pod, else io.kubernetes.container.name),
// for a pod sandbox (containerd's container-type sandbox: whatever
// container name the pod's annotations claim) or when the container's
// name is unknown [PodName]'s answer; else nerdctl's name; "" when none
// names it (nor a nerdctl name holding a slash).
func ContainerName(keys map[string]string) string {
	if ambiguous(keys) {
		return "" // no name the author chose instead (a nerdctl label)
	}
	pod := PodName(keys)
	if pod == "" {
		return NerdctlName(keys)
	}
	if keys[CRIAnnotationPrefix+"container-type"] == "sandbox" {
		return pod
	}
	ctr := keys[LabelContainerName]
	if keys[AnnotationSandboxName] != "" && !crio(keys) {
		ctr = keys[AnnotationContainerName]
	}
	if ctr == "" || !strings.Contains(pod, "/") || strings.Contains(ctr, "/") {
		return pod
	}
	return pod + "/" + ctr
}

// SplitContainerName splits a name [ContainerName] returns into the
// Kubernetes pod and the container's own name: "ns/pod/ctr" is pod
// "ns/pod" and name "ctr", a pod sandbox's "ns/pod" is pod "ns/pod" and
// no name, and any other name is a name of no pod. A local user's
// container ([UsersContainer]) names no pod whatever its name: do not
// split its name.
func SplitContainerName(name string) (pod, ctr string) {
	switch strings.Count(name, "/") {
	case 2:
		i := strings.LastIndexByte(name, '/')
		return name[:i], name[i+1:]
	case 1:
		return name, ""
	}
	return "", name
}

// DropSandboxContainerName removes the container names from the keys of
// a pod sandbox: its labels are its pod's, so a name among them is the
// pod author's, and CRI puts none on a sandbox.
func DropSandboxContainerName(keys map[string]string) {
	delete(keys, LabelContainerName)
	delete(keys, AnnotationContainerName)
}

// UserNamespacePrefix starts the engine namespace of a container whose
// state file a user other than root owns (a rootless runtime's):
// "uid=1000". Such a container's name is the user's: no pod's.
const UserNamespacePrefix = "uid="

// UsersContainer reports whether ns, a container's engine namespace, is
// a user's (uid=UID): the container's ID and name are that user's.
func UsersContainer(ns string) bool { return strings.HasPrefix(ns, UserNamespacePrefix) }
