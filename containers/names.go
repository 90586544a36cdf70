package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/nsrel/nsrel/internal/safefile"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// MaxNamesFile bounds an engine's file read for container names: podman's
// storage list of containers (about 500 bytes a container) and Docker's
// container config.
const MaxNamesFile = 16 << 20

// DefaultDockerRoot is Docker's default data root, which keeps each
// container's config in containers/ID/config.v2.json.
const DefaultDockerRoot = "/var/lib/docker"

// MaxNamesRead bounds the bytes of podman's containers.json files one
// listing reads, over all its roots, from files owned by root; as many
// again may be read from each user's (rootless podman's storages, each
// naming only its user's containers, whose bundles the user may point
// at any storage path of its own), so that one user's files cannot use
// up what root's storage or another user's needs. A file that does not
// fit in what is left is not read, and the listing says so
// ([PartialError]). Decoding takes about 15 ms a MB on an idle 2-CPU VM
// (go test -bench DecodePodmanNames ./containers/), so about half a
// second a budget; the listing's deadline bounds them all.
const MaxNamesRead = 2 * MaxNamesFile

// maxNamesSkipped bounds how many skipped storages a listing names.
const maxNamesSkipped = 4

// nameReads is one listing's reading of podman's names, shared by its
// roots (read at the same time): the listing's context, and what was
// read and skipped.
type nameReads struct {
	ctx context.Context
	mu  sync.Mutex
	// read counts the bytes read from files by their owner: each
	// user's (a file of a user's names only that user's containers)
	// and root's have a budget of their own, so that one user's files
	// cannot take another's names, nor root's.
	read map[uint32]int64
	// skipped names the first storages not read and why; nskipped
	// counts them all.
	skipped  []error
	nskipped int
}

func newNameReads(ctx context.Context) *nameReads { return &nameReads{ctx: ctx} }

// ErrUnnamed ends the reasons of a [PartialError] that cost containers
// their names only: they are listed all the same.
var ErrUnnamed = errors.New("containers shown without names")

// skip records that the names in path were not read, and why.
func (n *nameReads) skip(path, why string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.nskipped++
	if len(n.skipped) < maxNamesSkipped {
		n.skipped = append(n.skipped, fmt.Errorf("podman names %s: %s; %w", path, why, ErrUnnamed))
	}
}

// take reserves size bytes of the listing's reads from files of owner;
// false when they do not fit.
func (n *nameReads) take(owner uint32, size int64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.read[owner]+size > MaxNamesRead {
		return false
	}
	if n.read == nil {
		n.read = map[uint32]int64{}
	}
	n.read[owner] += size
	return true
}

// errs returns an error per storage whose names were not read (the
// first [maxNamesSkipped], then one counting the others).
func (n *nameReads) errs() []error {
	n.mu.Lock()
	defer n.mu.Unlock()
	errs := slices.Clone(n.skipped)
	if more := n.nskipped - len(n.skipped); more > 0 {
		errs = append(errs, fmt.Errorf("podman names of %d more storages not read; %w", more, ErrUnnamed))
	}
	return errs
}

// podmanStore is one containers.json file (one inode, whatever paths
// lead to it) that containers of a root want their names from.
type podmanStore struct {
	path       string // the first path that led to it
	dev, ino   uint64
	owner      uint32
	size       int64
	containers []*found
}

// podmanStorePath returns the containers.json that names the podman
// container id, whose bundle is STORAGE/DRIVER-containers/ID/userdata:
// STORAGE/DRIVER-containers/containers.json (the list containers/storage
// keeps, read without podman), DRIVER one of its graph drivers (overlay;
// vfs, rootless podman's default where fuse-overlayfs is missing; btrfs,
// zfs, devmapper, aufs); "" when the bundle is not laid out so.
func podmanStorePath(bundle, id string) string {
	bundle = filepath.Clean(bundle)
	ctrDir := filepath.Dir(bundle)
	store := filepath.Dir(ctrDir)
	if !filepath.IsAbs(bundle) || filepath.Base(bundle) != "userdata" || filepath.Base(ctrDir) != id || !podmanDrivers[filepath.Base(store)] {
		return ""
	}
	return filepath.Join(store, "containers.json")
}

// podmanDrivers are the directories of containers/storage's graph
// drivers that hold a containers.json.
var podmanDrivers = map[string]bool{
	"overlay-containers": true, "vfs-containers": true, "btrfs-containers": true,
	"zfs-containers": true, "devmapper-containers": true, "aufs-containers": true,
}

// addPodmanNames gives the podman containers of one root (nil entries
// skipped) that have no name the first of their "names" in their
// storage's containers.json (see [podmanStorePath]). The file must
// belong to the owner of the container's state file (a rootless
// podman's storage belongs to its user, root's to root): a user's state
// may name any path, and one naming root's storage took a root
// container's ID and name, which lsuserns --container then found on the
// user's namespaces. Each file is read
// once, however many paths lead to it (the key is its device and
// inode), keeping only the names of the containers that lead to it;
// within [MaxNamesRead], and while the listing's context lasts. A
// container whose file is missing or does not fit keeps no name.
func (n *nameReads) addPodmanNames(fs []*found) {
	byPath := make(map[string]*podmanStore)
	byInode := make(map[[2]uint64]*podmanStore)
	var stores []*podmanStore
	for _, f := range fs {
		if f == nil || f.c.Engine != EnginePodman || f.c.Name != "" {
			continue
		}
		path := podmanStorePath(f.bundle, f.c.ID)
		if path == "" {
			continue
		}
		s, seen := byPath[path]
		if !seen {
			if n.ctx.Err() != nil {
				n.skip(path, "not read in time")
				return
			}
			var st unix.Stat_t
			if statRegular(path, &st) == nil && st.Size <= MaxNamesFile {
				if s = byInode[[2]uint64{st.Dev, st.Ino}]; s == nil {
					s = &podmanStore{path: path, dev: st.Dev, ino: st.Ino, owner: st.Uid, size: st.Size}
					byInode[[2]uint64{st.Dev, st.Ino}] = s
					stores = append(stores, s)
				}
			}
			byPath[path] = s
		}
		if s != nil && s.owner == f.owner {
			s.containers = append(s.containers, f)
		}
	}
	for _, s := range stores {
		if len(s.containers) == 0 {
			continue
		}
		if n.ctx.Err() != nil {
			n.skip(s.path, "not read in time")
			return
		}
		// Paid for by its owner, whose containers alone name it.
		if !n.take(s.owner, s.size) {
			n.skip(s.path, fmt.Sprintf("not read, over the %d bytes of names a listing reads", MaxNamesRead))
			continue
		}
		names, err := n.readStore(s)
		if cerr := n.ctx.Err(); cerr != nil && errors.Is(err, cerr) {
			n.skip(s.path, "not read in time")
			return
		}
		for _, f := range s.containers {
			f.c.Name = names[f.c.ID]
		}
	}
}

// statRegular stats path as [readLimited] would open it: a regular file,
// no symlink at its last component.
func statRegular(path string, st *unix.Stat_t) error {
	f, err := safefile.OpenRegular(path, unix.O_RDONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Fstat(int(f.Fd()), st)
}

// podmanRead is what a test is told of a containers.json read.
type podmanRead struct {
	Path    string
	Bytes   int64 // read from the file
	Entries int   // containers decoded
	Kept    int   // names kept
}

// podmanReadHook, when set by a test, is told of each containers.json
// read.
var podmanReadHook atomic.Pointer[func(podmanRead)]

// readStore reads s's file, still the one found (device and inode), up
// to the size found, keeping the names of s's containers.
func (n *nameReads) readStore(s *podmanStore) (map[string]string, error) {
	f, err := safefile.OpenRegular(s.path, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	if st.Dev != s.dev || st.Ino != s.ino || st.Uid != s.owner {
		return nil, fmt.Errorf("%s: replaced while read", s.path)
	}
	wanted := make(map[string]bool, len(s.containers))
	for _, c := range s.containers {
		wanted[c.c.ID] = true
	}
	r := &countReader{r: io.LimitReader(f, s.size)}
	names, entries, err := decodePodmanNames(n.ctx, r, wanted)
	if h := podmanReadHook.Load(); h != nil {
		(*h)(podmanRead{s.path, r.n, entries, len(names)})
	}
	return names, err
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// storageContainer is what is read of a container in containers.json.
type storageContainer struct {
	ID    string   `json:"id"`
	Names []string `json:"names"`
}

// decodePodmanNames decodes containers/storage's containers.json (a list
// of {"id", "names", ...}) one container at a time, and returns the
// first name of those whose ID is wanted (not a map of them all, which a
// user's file of 16 MiB would make half a million entries long), and
// how many containers it decoded. It returns no names when the list
// does not decode (as [json.Unmarshal] would refuse it), and ctx's
// error when ctx ends first.
func decodePodmanNames(ctx context.Context, r io.Reader, wanted map[string]bool) (map[string]string, int, error) {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return nil, 0, err
	}
	names := make(map[string]string)
	if tok == nil { // null: an empty list
		return names, 0, endOfJSON(dec)
	}
	if tok != json.Delim('[') {
		return nil, 0, errors.New("containers.json: not a list")
	}
	entries := 0
	// Each container takes a byte at least.
	for ; entries < MaxNamesFile && dec.More(); entries++ {
		if err := ctx.Err(); err != nil {
			return nil, entries, err
		}
		var c storageContainer
		if err := dec.Decode(&c); err != nil {
			return nil, entries, err
		}
		// podman allows no '/' in a name: one with it (in a user's file)
		// would read as a Kubernetes pod.
		if wanted[c.ID] && len(c.Names) > 0 && c.Names[0] != "" && !strings.Contains(c.Names[0], "/") {
			names[c.ID] = c.Names[0]
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim(']') {
		return nil, entries, errors.Join(errors.New("containers.json: the list does not end"), err)
	}
	if err := endOfJSON(dec); err != nil {
		return nil, entries, err
	}
	return names, entries, nil
}

// endOfJSON returns an error unless dec has nothing more than spaces.
func endOfJSON(dec *json.Decoder) error {
	if _, err := dec.Token(); err != io.EOF {
		return errors.Join(errors.New("containers.json: trailing data"), err)
	}
	return nil
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
