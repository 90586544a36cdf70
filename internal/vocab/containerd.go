package vocab

import (
	"os"
	"time"
)

// DefaultContainerdAddress is containerd's default gRPC socket.
const DefaultContainerdAddress = "/run/containerd/containerd.sock"

// DefaultContainerdTimeout bounds a listing of containerd's containers
// when the caller gives no deadline: a tree must not wait for a daemon
// that does not answer.
const DefaultContainerdTimeout = 2 * time.Second

// ContainerdAddress returns the containerd socket to use: flag if not
// empty, else $CONTAINERD_ADDRESS (as ctr reads it), else
// [DefaultContainerdAddress].
func ContainerdAddress(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv("CONTAINERD_ADDRESS"); env != "" {
		return env
	}
	return DefaultContainerdAddress
}
