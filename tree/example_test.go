package tree_test

import (
	"os"

	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
	"github.com/nsrel/nsrel/tree"
)

func ExampleText() {
	m := discover.NewModel()
	root := &discover.Namespace{Type: nsrel.TypeUser, Ino: 4026531837, OwnerUID: 0, OwnerName: "root"}
	child := &discover.Namespace{Type: nsrel.TypeUser, Ino: 4026532176, Parent: root, Owner: root, OwnerUID: 1000, OwnerName: "alice",
		Containers: []discover.Container{{ID: "zoo-1", Engine: "runc", PID: 4711}}}
	grandchild := &discover.Namespace{Type: nsrel.TypeUser, Ino: 4026532180, Parent: child, Owner: child, OwnerUID: 4242}
	other := &discover.Namespace{Type: nsrel.TypeUser, Ino: 4026532177, Parent: root, Owner: root, OwnerUID: 0, OwnerName: "root"}
	for _, n := range []*discover.Namespace{root, child, grandchild, other} {
		m.Add(n)
	}
	m.Link()
	tree.Text(os.Stdout, m, nsrel.TypeUser, tree.Options{})
	// Output:
	// user:[4026531837] owner root (0)
	// ├── user:[4026532176] owner alice (1000) containers: runc zoo-1
	// │   └── user:[4026532180] owner 4242
	// └── user:[4026532177] owner root (0)
}

func ExampleContainerLabel() {
	c := discover.Container{ID: "3f1c2a9b7e0d5a6b7c8d", Engine: "containerd", Namespace: "k8s.io", Name: "default/web-0"}
	os.Stdout.WriteString(tree.ContainerLabel(c) + "\n")
	// Output: containerd k8s.io/3f1c2a9b7e0d (pod default/web-0)
}
