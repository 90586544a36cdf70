// Package layout holds no code, only the test that keeps the package
// layout of docs/ARCHITECTURE.md true: every package of nsrel sits on a
// layer and imports only packages of lower layers, test support is
// imported only by tests and tools, and the binaries link only what they
// need (nsrel-hook, which runs on every container start, no containerd
// client and no gRPC; lsuserns and lspidns neither the hook's stage code
// nor the NRI plugin).
package layout
