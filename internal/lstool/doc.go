// Package lstool is the shared implementation of lsuserns and lspidns:
// flags, discovery ([discover.Discover]), container annotation from
// [discover.ContainerSource]s, rendering ([tree.Text], [tree.JSON], and
// for --format dot, svg and html the [graph] package) and exit codes (0
// success, 1 failure, 2 bad usage).
//
// The commands' main packages only say which namespace type they show and
// which container sources exist:
//
//	func main() {
//		os.Exit(lstool.Main(lstool.Tool{
//			Name:    "lsuserns",
//			Type:    nsrel.TypeUser,
//			Sources: func(c lstool.SourceConfig) []discover.ContainerSource { return nil },
//		}))
//	}
//
// For lsuserns it also reads each user namespace's ID maps ([ReadMaps])
// and runs the node-wide --overlaps check ([Overlaps]: exit 1 when user
// namespaces of two branches share host IDs, and when the check is incomplete).
package lstool
