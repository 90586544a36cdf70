// Command rss runs a command with its output discarded and prints the
// command's peak resident set size (getrusage ru_maxrss) in KiB.
//
//	rss lsuserns --details
package main

import _ "github.com/nsrel/nsrel/internal/linuxonly" // stops a build for another GOOS with one message
