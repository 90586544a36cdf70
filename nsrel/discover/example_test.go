package discover_test

import (
	"fmt"
	"os"

	"github.com/nsrel/nsrel/nsrel"
	"github.com/nsrel/nsrel/nsrel/discover"
)

// Discover the user namespaces and print each with its parent and how it
// was found. (Not run as a test: the output depends on the host.)
func ExampleDiscover() {
	m, err := discover.Discover(discover.Options{Types: []nsrel.Type{nsrel.TypeUser}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	if n := m.Notice(); n != "" {
		fmt.Fprintln(os.Stderr, "notice:", n)
	}
	for _, n := range m.Of(nsrel.TypeUser) {
		parent := "none"
		if n.Parent != nil {
			parent = n.Parent.Name().String()
		}
		uid, name := n.UID()
		fmt.Printf("%v parent %s owner %d %q, %d processes, found via %v\n", n.Name(), parent, uid, name, len(n.Processes), n.FoundVia[0].Via)
	}
}
