// Command lspidns prints the PID namespaces of this host as a tree. See
// internal/lstool and `lspidns --help`.
package main
