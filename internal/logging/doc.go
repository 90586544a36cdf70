// Package logging sets up the diagnostics of nsrel's binaries (logrus
// loggers): a file that nsrel-hook appends to ([File]), the standard
// error of a service ([Stderr]), syslog (RFC 5424 with structured data)
// or journald's native protocol ([Service], [SyslogEntry],
// [JournalEntry]; the targets are parsed by syslog.ParseTarget; a service
// queues its entries and never waits for the target, [Flush]), and the
// logger of a library type whose caller gave none ([OrDiscard]).
// Diagnostics are never the audit log: they say what a binary did and
// why it failed, in UTC.
package logging
