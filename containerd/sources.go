package containerd

import (
	"time"

	"github.com/nsrel/nsrel/containers"
	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// Options select the sources of [Sources].
type Options struct {
	// Address is the containerd socket; see [vocab.ContainerdAddress].
	Address string
	// Timeout bounds the containerd query
	// ([vocab.DefaultContainerdTimeout] if zero).
	Timeout time.Duration
	// Roots are the runtime state roots (see [containers.StateSource]).
	Roots []containers.Root
	// AuditLog is the nsrel-hook audit log (see [containers.AuditSource]).
	AuditLog string
}

// Sources returns every container source as one [containers.Multi]: the
// containerd daemon, the runc and crun state roots and the nsrel-hook
// audit log.
func Sources(o Options) containers.Multi {
	return containers.Multi{
		&Source{Address: vocab.ContainerdAddress(o.Address), Timeout: o.Timeout},
		&containers.StateSource{Roots: o.Roots},
		&containers.AuditSource{Path: o.AuditLog},
	}
}

// TreeSources returns the container sources for lsuserns and lspidns, in
// the order their annotations should prefer: the containerd daemon at
// address (see [vocab.ContainerdAddress]) with the given timeout, then a
// [containers.Local] source of
// the runc and crun state roots and the nsrel-hook audit log. The state
// roots also find containerd's containers (by their bundle path, under the
// same engine, namespace and ID as the daemon reports), so they stay
// annotated, without pod names, while the daemon is down.
func TreeSources(address string, timeout time.Duration) []discover.ContainerSource {
	return []discover.ContainerSource{
		&Source{Address: vocab.ContainerdAddress(address), Timeout: timeout},
		containers.Local{&containers.StateSource{}, &containers.AuditSource{}},
	}
}
