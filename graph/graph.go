package graph

import (
	"slices"
	"strconv"

	"github.com/nsrel/nsrel/internal/vocab"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
	"github.com/nsrel/nsrel/tree"
)

// LabelProcs is how many processes a node's label names before "…"; the
// HTML details list them all.
const LabelProcs = 3

// Options controls [Build].
type Options struct {
	// Keep, if set, limits the graph to the namespaces it returns true
	// for (see [Branches]); a namespace whose parent is not kept is not
	// shown, as in the text trees.
	Keep func(*discover.Namespace) bool
	// Collapse, when 2 or more, folds every run of at least Collapse
	// namespaces of one type, each without processes and containers and
	// with exactly one shown child, into one node. 0 shows every
	// namespace.
	Collapse int
}

// Graph is what a picture shows. Build makes it; its fields are exported
// for the JSON inside the HTML report.
type Graph struct {
	// Nodes in drawing order: user namespaces depth first, then PID
	// namespaces depth first, children by inode.
	Nodes []*Node `json:"nodes"`
	// Edges: parent to child, and PID namespace to owning user namespace.
	Edges []Edge `json:"edges"`
	// Namespaces counts the namespaces shown (folded ones included),
	// Processes the PIDs in them, Containers the containers on them.
	Namespaces int `json:"namespaces"`
	Processes  int `json:"processes"`
	Containers int `json:"containers"`
	// Audit describes the audit log read by AddHistory; nil without one.
	Audit *Audit `json:"audit,omitempty"`
}

// Node is one namespace, or a folded chain of process-less namespaces.
// Strings are escaped with [vocab.Escape]; the output writers escape them
// again for their language.
type Node struct {
	// ID names the node in DOT, SVG and HTML: "user_INO" or "pid_INO"
	// (the topmost inode of a folded chain).
	ID string `json:"id"`
	// Type is "user" or "pid".
	Type string `json:"type"`
	// Name is "type:[INO]".
	Name string `json:"name"`
	// Ino is the inode; Chain, for a folded node, every inode folded into
	// it, top first, and ChainIDs their namespace IDs (0 when unknown).
	Ino      uint64   `json:"ino"`
	Chain    []uint64 `json:"chain,omitempty"`
	ChainIDs []uint64 `json:"chain_ids,omitempty"`
	// NSID is the kernel's namespace ID, 0 when unknown (of the topmost
	// namespace of a folded chain).
	NSID uint64 `json:"nsid,omitempty"`
	// Owner is the owner as the trees print it ("root (0)", "4242", "?");
	// OwnerNS, for a PID namespace, the owning user namespace's name.
	Owner   string `json:"owner"`
	OwnerNS string `json:"owner_ns,omitempty"`
	// Owners, for a folded node whose namespaces have different owners,
	// names each owner once, as "OWNER_NS OWNER" ("OWNER" for user
	// namespaces), in chain order; Owner and OwnerNS are the first's.
	Owners []string `json:"owners,omitempty"`
	// Processes are the namespace's processes, sorted by PID.
	Processes []Process `json:"processes"`
	// Found says how the namespace was found, as the trees print it; for
	// a folded node, how each of its namespaces was, each way after the
	// namespace's name ("user:[INO]: fd /proc/7/fd/3"). FoundMore counts
	// the fds and mounts that hold them beyond those listed.
	Found     []string `json:"found"`
	FoundMore int      `json:"found_more,omitempty"`
	// Containers live in it.
	Containers []Container `json:"containers"`
	// History is the audit history of its containers (see AddHistory).
	History []Event `json:"history,omitempty"`
}

// Process is one process of a node.
type Process struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm,omitempty"`
}

// Container is one container of a node.
type Container struct {
	// Label is the trees' label ([tree.ContainerLabel]).
	Label string `json:"label"`
	// ID is the full ID, Engine and Namespace the engine's, Name the
	// human name ("" when none; a Kubernetes container's own name, "app"
	// of "shop/web-0/app"), Pod the Kubernetes pod
	// ("pod-namespace/pod-name", "" when none); PID the host PID.
	ID        string `json:"id"`
	Engine    string `json:"engine"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Pod       string `json:"pod,omitempty"`
	PID       int    `json:"pid"`
	// StartTime is its process's start time (clock ticks since boot),
	// as its source knew it; 0 when unknown.
	StartTime uint64 `json:"start_time,omitempty"`
}

// Edge is a parent edge (From is the parent) or an ownership edge (From
// is the PID namespace, To its owning user namespace). A folded node has
// one ownership edge to each of its owners.
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Kind is "parent" or "owner".
	Kind string `json:"kind"`
}

// Build makes the graph of the user and PID namespaces of m.
func Build(m *discover.Model, o Options) *Graph {
	g := &Graph{}
	pids, ctrs := make(map[int]bool), make(map[discover.Container]bool)
	shown := tree.Options{Keep: o.Keep}.Filter
	nodeOf := make(map[*discover.Namespace]*Node)
	var owned []*discover.Namespace
	var walk func(n *discover.Namespace, parent *Node)
	walk = func(n *discover.Namespace, parent *Node) {
		g.Namespaces++
		kids := shown(n.Children)
		foldable := o.Collapse >= 2 && len(n.Processes) == 0 && len(n.Containers) == 0 && len(kids) == 1
		nd := parent
		if !foldable || parent == nil || parent.Chain == nil {
			// A folded run goes on while its namespaces are foldable;
			// anything else is a node of its own.
			nd = newNode(n)
			if foldable && runLength(n, shown) >= o.Collapse {
				nd.Chain = []uint64{}
			}
			g.Nodes = append(g.Nodes, nd)
			for _, p := range n.Processes {
				pids[p.PID] = true
			}
			for _, c := range n.Containers {
				ctrs[c] = true
			}
			if parent != nil {
				g.Edges = append(g.Edges, Edge{From: parent.ID, To: nd.ID, Kind: "parent"})
			}
		}
		if nd.Chain != nil {
			foldFound(nd, n)
			nd.Chain = append(nd.Chain, n.Ino)
			var id uint64
			if n.HasNSID {
				id = n.NSID
			}
			nd.ChainIDs = append(nd.ChainIDs, id)
			if o := ownerText(n); !slices.Contains(nd.Owners, o) {
				nd.Owners = append(nd.Owners, o)
			}
		}
		nodeOf[n] = nd
		if n.Type == nsrel.TypePID && n.Owner != nil {
			owned = append(owned, n)
		}
		for _, c := range kids {
			walk(c, nd)
		}
	}
	for _, t := range []nsrel.Type{nsrel.TypeUser, nsrel.TypePID} {
		for _, r := range shown(m.Roots(t)) {
			walk(r, nil)
		}
	}
	g.Processes, g.Containers = len(pids), len(ctrs)
	for _, nd := range g.Nodes {
		if len(nd.Owners) < 2 {
			nd.Owners = nil
		}
	}
	// The namespaces of a folded node share its edges.
	seen := make(map[Edge]bool)
	for _, n := range owned {
		if from, to := nodeOf[n], nodeOf[n.Owner]; from != nil && to != nil {
			e := Edge{From: from.ID, To: to.ID, Kind: "owner"}
			if !seen[e] {
				seen[e] = true
				g.Edges = append(g.Edges, e)
			}
		}
	}
	return g
}

// foldFound adds the ways n was found to the folded node nd (n is its
// topmost namespace when nd.Chain is empty: the ways newNode listed),
// each after n's name: a process-less namespace deep in a chain may be
// held by a descriptor or a bind mount that is the evidence of who holds
// it.
func foldFound(nd *Node, n *discover.Namespace) {
	name := n.Name().String() + ": "
	if len(nd.Chain) == 0 {
		for i, f := range nd.Found {
			nd.Found[i] = name + f
		}
		return
	}
	for _, f := range n.FoundVia {
		nd.Found = append(nd.Found, name+tree.FoundLabel(f))
	}
	nd.FoundMore += n.FoundViaMore
}

// runLength is the number of foldable namespaces from n down its only
// shown children.
func runLength(n *discover.Namespace, shown func([]*discover.Namespace) []*discover.Namespace) int {
	l := 0
	for n != nil && len(n.Processes) == 0 && len(n.Containers) == 0 {
		kids := shown(n.Children)
		if len(kids) != 1 {
			break
		}
		l++
		n = kids[0]
	}
	return l
}

// ownerText is n's owner as a node shows it: "OWNER_NS OWNER" for a PID
// namespace, "OWNER" for a user namespace.
func ownerText(n *discover.Namespace) string {
	uid, name := n.UID()
	if n.Type != nsrel.TypeUser && n.Owner != nil {
		return n.Owner.Name().String() + " " + tree.Owner(uid, name)
	}
	return tree.Owner(uid, name)
}

func newNode(n *discover.Namespace) *Node {
	uid, name := n.UID()
	nd := &Node{
		ID:         n.Type.String() + "_" + strconv.FormatUint(n.Ino, 10),
		Type:       n.Type.String(),
		Name:       n.Name().String(),
		Ino:        n.Ino,
		Owner:      tree.Owner(uid, name),
		Processes:  make([]Process, len(n.Processes)),
		Found:      make([]string, len(n.FoundVia)),
		Containers: make([]Container, len(n.Containers)),
	}
	if n.HasNSID {
		nd.NSID = n.NSID
	}
	if n.Type != nsrel.TypeUser && n.Owner != nil {
		nd.OwnerNS = n.Owner.Name().String()
	}
	for i, p := range n.Processes {
		nd.Processes[i] = Process{PID: p.PID, Comm: vocab.Escape(p.Comm)}
	}
	for i, f := range n.FoundVia {
		nd.Found[i] = tree.FoundLabel(f)
	}
	nd.FoundMore = n.FoundViaMore
	for i, c := range n.Containers {
		nd.Containers[i] = Container{
			Label: tree.ContainerLabel(c), ID: vocab.Escape(c.ID), Engine: vocab.Escape(c.Engine),
			Namespace: vocab.Escape(c.Namespace), PID: c.PID, StartTime: c.StartTime,
		}
		// A local user's container names no pod, whatever its name.
		pod, name := "", c.Name
		if !vocab.UsersContainer(c.Namespace) {
			pod, name = vocab.SplitContainerName(c.Name)
		}
		nd.Containers[i].Pod, nd.Containers[i].Name = vocab.Escape(pod), vocab.Escape(name)
	}
	return nd
}

// Branches returns a filter for [Options].Keep that keeps the namespaces
// picked, their ancestors, the owning user namespaces of the kept PID
// namespaces and the ancestors of those: the branches that lead to the
// picked namespaces in both hierarchies.
func Branches(picked []*discover.Namespace) func(*discover.Namespace) bool {
	keep := make(map[*discover.Namespace]bool)
	up := func(n *discover.Namespace) {
		for a := n; a != nil && !keep[a]; a = a.Parent {
			keep[a] = true
		}
	}
	for _, n := range picked {
		up(n)
	}
	var pids []*discover.Namespace
	for n := range keep {
		if n.Type == nsrel.TypePID {
			pids = append(pids, n)
		}
	}
	for _, n := range pids {
		up(n.Owner)
	}
	return func(n *discover.Namespace) bool { return keep[n] }
}
