package discover

import "context"

// Container is a container whose process lives in a namespace of the
// model. Sources (the containerd client, runtime state directories, the
// nsrel-hook audit log) produce them; the trees attach each to the user and
// PID namespaces of its process.
type Container struct {
	// ID is the full container ID.
	ID string `json:"id"`
	// Engine says who manages it: "containerd", "runc", "crun",
	// "podman", "cri-o", "audit-log".
	Engine string `json:"engine"`
	// Namespace is the engine's namespace (containerd: "default",
	// "k8s.io", "moby"; "uid=UID" for a rootless runtime's container,
	// whose IDs are its user's to choose); empty where the engine has
	// none.
	Namespace string `json:"namespace"`
	// PID is the host PID of the container's init process.
	PID int `json:"pid"`
	// StartTime is that process's start time (clock ticks since boot,
	// field 22 of /proc/PID/stat) when the source knew it, else 0: it
	// tells the process from a later one given the same PID.
	StartTime uint64 `json:"start_time,omitempty"`
	// Name is a human name: Kubernetes "pod-namespace/pod-name" from CRI
	// labels, a podman container name, or "".
	Name string `json:"name"`
}

// ContainerSource lists containers. List must honour ctx's deadline; an
// error means the source could not be read (e.g. containerd not running)
// and is reported once on stderr while the trees still print.
type ContainerSource interface {
	// Name names the source in notices, e.g. "containerd".
	Name() string
	List(ctx context.Context) ([]Container, error)
}
