// Command lsuserns prints the user namespaces of this host as a tree. See
// internal/lstool and `lsuserns --help`.
package main
