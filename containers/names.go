package containers

import (
	"encoding/json"
	"path/filepath"
	"strings"

	"github.com/nsrel/nsrel/nsrel/discover"
)

// MaxNamesFile bounds an engine's file read for container names: podman's
// storage list of containers (about 500 bytes a container) and Docker's
// container config.
const MaxNamesFile = 16 << 20

// DefaultDockerRoot is Docker's default data root, which keeps each
// container's config in containers/ID/config.v2.json.
const DefaultDockerRoot = "/var/lib/docker"

// podmanStores caches, per podman storage directory, the names of its
// containers, so one listing reads each storage's containers.json once.
type podmanStores map[storeKey]map[string]string

type storeKey struct {
	path  string
	owner uint32
}

// name returns the name podman gave container id, whose bundle is
// STORAGE/overlay-containers/ID/userdata: the first of its "names" in
// STORAGE/overlay-containers/containers.json (the list containers/storage
// keeps, read without podman). The file must belong to root or to owner,
// the owner of the container's state file (a rootless podman's storage
// belongs to its user). "" when anything is missing or does not fit.
func (p podmanStores) name(bundle, id string, owner uint32) string {
	bundle = filepath.Clean(bundle)
	ctrDir := filepath.Dir(bundle)
	store := filepath.Dir(ctrDir)
	if !filepath.IsAbs(bundle) || filepath.Base(bundle) != "userdata" || filepath.Base(ctrDir) != id || filepath.Base(store) != "overlay-containers" {
		return ""
	}
	path := filepath.Join(store, "containers.json")
	key := storeKey{path, owner}
	names, ok := p[key]
	if !ok {
		names = readPodmanNames(path, owner)
		p[key] = names
	}
	return names[id]
}

// readPodmanNames reads containers/storage's containers.json into an ID
// to name map; nil when it cannot be read or trusted.
func readPodmanNames(path string, owner uint32) map[string]string {
	data, fileOwner, err := readLimited(path, MaxNamesFile)
	if err != nil || (fileOwner != 0 && fileOwner != owner) {
		return nil
	}
	return parsePodmanNames(data)
}

// storageContainer is what is read of a container in containers.json.
type storageContainer struct {
	ID    string   `json:"id"`
	Names []string `json:"names"`
}

// parsePodmanNames decodes containers/storage's containers.json (a list
// of {"id", "names", ...}) into an ID to first name map; nil if it does
// not decode.
func parsePodmanNames(data []byte) map[string]string {
	var list []storageContainer
	if json.Unmarshal(data, &list) != nil {
		return nil
	}
	names := make(map[string]string, len(list))
	for _, c := range list {
		// podman allows no '/' in a name: one with it (in a user's file)
		// would read as a Kubernetes pod.
		if len(c.Names) > 0 && c.Names[0] != "" && !strings.Contains(c.Names[0], "/") {
			names[c.ID] = c.Names[0]
		}
	}
	return names
}

// AddDockerNames fills in the names of Docker's containers (containerd
// namespace moby, found through containerd or recorded in the audit log
// by the event recorder) that have none, from the container configs
// Docker keeps below root (DATA-ROOT/containers/ID/config.v2.json, "Name"
// without its leading "/"); root "" means [DefaultDockerRoot]. Only files
// owned by root are believed. Containers of other engines, and those
// whose config is missing (Docker not installed, another data root), are
// left as they are.
func AddDockerNames(cs []discover.Container, root string) {
	if root == "" {
		root = DefaultDockerRoot
	}
	for i, c := range cs {
		if c.Name != "" || (c.Engine != EngineContainerd && c.Engine != EngineAuditLog) || c.Namespace != "moby" || !validID(c.ID) {
			continue
		}
		data, owner, err := readLimited(filepath.Join(root, "containers", c.ID, "config.v2.json"), MaxNamesFile)
		if err != nil || owner != 0 {
			continue
		}
		var cfg struct {
			ID   string `json:"ID"`
			Name string `json:"Name"`
		}
		if json.Unmarshal(data, &cfg) != nil || cfg.ID != c.ID {
			continue
		}
		cs[i].Name = strings.TrimPrefix(cfg.Name, "/")
	}
}
