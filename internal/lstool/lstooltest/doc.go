// Package lstooltest tests the main packages of lsuserns and lspidns: it
// re-executes the test binary to run the command's main, so that the
// wiring (flags, sources, exit codes) is tested without a build step.
//
//	func TestMain(m *testing.M) { lstooltest.Main(m, "lsuserns", main) }
//	func TestCommand(t *testing.T) { lstooltest.CheckCommand(t, "lsuserns", nsrel.TypeUser) }
package lstooltest
