// Package logging sets up the diagnostics of nsrel's binaries (logrus
// loggers): a file that nsrel-hook appends to ([File]), the standard
// error of a service ([Stderr]), and the logger of a library type whose
// caller gave none ([OrDiscard]). Diagnostics are never the audit log:
// they say what a binary did and why it failed, in UTC.
package logging
