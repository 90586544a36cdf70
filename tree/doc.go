// Package tree renders a [discover.Model] for people and machines: the
// user or PID namespace hierarchy as a text tree in the format of
// linuxns_rel's lsuserns/lspidns, or as the JSON document described in
// docs/json.md.
//
// Text lines look like
//
//	user:[4026531837] owner root (0)
//	├── user:[4026532176] owner root (0) containers: containerd k8s.io/3f1c2a9b7e0d (pod default/web-0)
//	│   └── user:[4026532180] owner 4242
//	└── user:[4026532300] owner alice (1000)
//
// and for PID namespaces name the owning user namespace:
//
//	pid:[4026531836] owner user:[4026531837] root (0)
//
// Children are sorted by inode; several roots (when the caller cannot see
// the top of the hierarchy) print as separate trees. Everything that comes
// from processes or containers (command names, container IDs and names,
// mount paths) is escaped with [vocab.Escape] before it reaches a terminal;
// a container name that could read as a separator is quoted as well
// ([ContainerLabel]).
//
// With [Options].Maps (which lsuserns reads, see [Maps]) user namespaces
// also show their ID maps: at the end of a --details line and as "maps"
// in JSON.
package tree
