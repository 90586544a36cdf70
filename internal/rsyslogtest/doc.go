// Package rsyslogtest starts private rsyslog daemons for tests: Debian's
// rsyslogd in the foreground (-n) with its own config, pid file, work
// directory and module directory (-M), so that a test ships logs through
// a real collector without touching the system's config or /dev/log.
// TCP inputs listen on ports the kernel chooses (port 0, written to a
// port file), so two tests never fight over one. Each daemon is stopped
// and its directory removed when the test ends.
//
// A test that needs rsyslogd skips without it, and fails under CI=true
// ([nstest.Require]); scripts/deps.sh installs it.
package rsyslogtest
