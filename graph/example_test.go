package graph_test

import (
	"fmt"
	"os"

	"github.com/nsrel/nsrel/graph"
	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

func ExampleGraph_DOT() {
	m := discover.NewModel()
	root := &discover.Namespace{Type: nsrel.TypeUser, Ino: 4026531837, OwnerUID: 0, OwnerName: "root",
		Processes: []discover.Process{{PID: 1, Comm: "systemd"}}}
	child := &discover.Namespace{Type: nsrel.TypeUser, Ino: 4026532176, Parent: root, Owner: root, OwnerUID: 1000, OwnerName: "alice",
		FoundVia: []discover.Found{{Via: discover.ViaMount, PID: 1, Path: "/run/userns", MountNS: 4026531841}}}
	pid := &discover.Namespace{Type: nsrel.TypePID, Ino: 4026531836, Owner: root, OwnerUID: -1,
		Processes: root.Processes, Containers: []discover.Container{{ID: "web-1", Engine: "runc", PID: 1}}}
	for _, n := range []*discover.Namespace{root, child, pid} {
		m.Add(n)
	}
	m.Link()
	g := graph.Build(m, graph.Options{})
	for _, n := range g.Nodes {
		fmt.Printf("%s: %q\n", n.ID, n.Lines())
	}
	g.DOT(os.Stdout)
	// Output:
	// user_4026531837: ["user:[4026531837]" "owner root (0)" "1 process: 1 systemd"]
	// user_4026532176: ["user:[4026532176]" "owner alice (1000)" "no process; found via mount /run/userns in mnt:[4026531841]"]
	// pid_4026531836: ["pid:[4026531836]" "owner user:[4026531837] root (0)" "1 process: 1 systemd" "runc web-1"]
	// digraph nsrel {
	// 	graph [rankdir=LR, nodesep=0.2, ranksep=0.5, fontname="sans-serif", fontsize=12];
	// 	node [shape=box, style="rounded,filled", fontname="sans-serif", fontsize=10, margin="0.12,0.06"];
	// 	edge [arrowsize=0.6];
	// 	subgraph cluster_user {
	// 		label="user namespaces"; style=rounded; color="#9ca3af";
	// 		user_4026531837 [id="user_4026531837", label="user:[4026531837]\nowner root (0)\n1 process: 1 systemd", fillcolor="#dbeafe", style="rounded,filled"];
	// 		user_4026532176 [id="user_4026532176", label="user:[4026532176]\nowner alice (1000)\nno process; found via mount /run/userns in mnt:[4026531841]", fillcolor="#dbeafe", style="rounded,filled,dashed"];
	// 	}
	// 	subgraph cluster_pid {
	// 		label="PID namespaces"; style=rounded; color="#9ca3af";
	// 		pid_4026531836 [id="pid_4026531836", label="pid:[4026531836]\nowner user:[4026531837] root (0)\n1 process: 1 systemd\nrunc web-1", fillcolor="#fef3c7", style="rounded,filled", color="#b91c1c", penwidth=2];
	// 	}
	// 	user_4026531837 -> user_4026532176;
	// 	pid_4026531836 -> user_4026531837 [style=dashed, color="#6b7280", constraint=false, arrowhead=empty];
	// }
}
