// Package clidoc turns a command's --help text into its man page and its
// bash, zsh and fish completions, so that the three cannot drift from
// what the binary itself says: the help text is the one source.
//
// [Parse] reads the help layout nsrel's four commands share; [Page.Man],
// [Page.Bash], [Page.Zsh] and [Page.Fish] render it. The generator
// internal/clidoc/cmd/clidoc runs the built binaries and writes the files
// `make install` and the Debian package install (`make doc`).
package clidoc
