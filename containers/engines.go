package containers

// Engine names used in [discover.Container].Engine: who manages a
// container, as far as the source can tell.
const (
	EngineContainerd = "containerd"
	EngineRunc       = "runc"
	EngineCrun       = "crun"
	EnginePodman     = "podman"
	EngineCRIO       = "cri-o"
	EngineAuditLog   = "audit-log"
)
