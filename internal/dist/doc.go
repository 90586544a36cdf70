// Package dist tests what nsrel installs: `make install` into a DESTDIR
// (every path a shipped file names exists there, the commands work as the
// README says), the man pages and shell completions generated from the
// --help texts (internal/clidoc), the Debian package (`make deb`:
// lintian, install, purge), and that every relative link of the README
// and docs/ resolves, anchors included. It has no code of its own.
package dist
