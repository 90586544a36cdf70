// Package logging sets up the diagnostics of nsrel's binaries (logrus
// loggers): a file that nsrel-hook appends to ([File]), standard error
// ([Stderr]), syslog (RFC 5424 with structured data) or journald's
// native protocol ([SyslogEntry], [JournalEntry]; the targets are parsed
// by syslog.ParseTarget); a service's logger ([Service]) queues its
// entries, to any of these targets, and never waits for the target
// ([Flush]), what libraries log through logrus's standard logger
// included ([Standard]); and the logger of a library type whose caller gave none
// ([OrDiscard]).
// Diagnostics are never the audit log: they say what a binary did and
// why it failed, in UTC.
package logging
