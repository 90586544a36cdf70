// Command floorhook is the lower bound for the nsrel-hook benchmark
// (bench/hook/run.sh): the least a Go program can do at a hook stage and
// still leave a durable, chained record of the container's namespaces.
//
//	floorhook LOG < state.json
//
// It reads the OCI state, pins the process with pidfd_open(2), reads its
// start time, walks its user and PID namespace chains with the ioctl_ns(2)
// queries, takes an exclusive flock(2) on LOG.lock, reads the tail of LOG
// for the previous record's hash, and appends one line that carries a
// SHA-256 over it, then fdatasync(2)s it. It parses no configuration,
// evaluates no policy, validates nothing and handles no error beyond
// exiting 1: it is not a hook, only the floor that a Go hook recording
// what nsrel-hook records cannot go below on a given machine. Compare it
// with an empty Go program (process start-up alone) and with nsrel-hook.
package main

import _ "github.com/nsrel/nsrel/internal/linuxonly" // stops a build for another GOOS with one message
