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
package lstool
