// Package help is the --help of lspidns, answered during package
// initialisation (cmd/internal/quickhelp) when the command line asks for
// nothing else. help.txt is what the flag parser prints for --help
// without CONTAINERD_ADDRESS (the default of --containerd-address); the
// command's tests check it and rewrite it with -update. The command's
// test binary imports it too: run with -h or --help alone, it prints the
// command's help, not the test flags.
package help
