// Package dist tests what nsrel installs: `make install` into a DESTDIR
// (every path a shipped file names exists there, the commands work as the
// README says), the man pages and shell completions generated from the
// --help texts (internal/clidoc), and the Debian package (`make deb`:
// lintian, install, purge). It has no code of its own.
package dist
