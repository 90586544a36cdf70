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
	logging.Flush(3 * time.Second)
	os.Exit(code)
}
