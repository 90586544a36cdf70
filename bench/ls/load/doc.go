// Command load builds a host-like namespace load for the lsuserns/lspidns
// benchmark and holds it until it gets SIGTERM or SIGINT, then kills every
// process it started and removes its mounts.
//
// The load: -procs sleeping processes in total, among them -userns user
// namespaces (chains of depth 1..-depth made with unshare -Ur, each level
// also a new PID namespace every third chain), -mounts user namespaces
// held only by a bind mount and -fds held only by an open fd of a sleeping
// process (their creators are killed), and -threads threads in processes
// of -per-process threads each (a host's multi-threaded daemons). It
// prints "ready N" on stdout when the load stands.
//
// The generator itself stays one process with a few threads and fds: it
// reaps its children in one goroutine on SIGCHLD and keeps no pidfd of
// them (a goroutine blocked in wait(2) per child would be a thread per
// child, which the scans would read and which at 20,000 processes would
// need more tasks than the default pid_max of 32768).
//
//	go run ./bench/ls/load -procs 2000 -userns 150
package main

import _ "github.com/nsrel/nsrel/internal/linuxonly" // stops a build for another GOOS with one message
