package main

import (
	"os"
	"time"

	"github.com/nsrel/nsrel/internal/logging"
)

func main() {
	code := run(os.Args[1:], os.Stdout, os.Stderr)
	// Diagnostics to syslog or journald are sent in the background
	// (--log-to): what is still queued is sent now, or written to stderr.
	logging.Flush(flushWait)
	os.Exit(code)
}

// flushWait bounds how long the diagnostics still queued may take to be
// written or sent at exit ([logging.Flush]).
const flushWait = 3 * time.Second
