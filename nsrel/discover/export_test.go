package discover

import "time"

// SetAfterProcesses makes Discover call f between the process scan and
// the bind mount scan (a pause in which a test changes the host), and
// returns a function that removes it.
func SetAfterProcesses(f func()) (restore func()) {
	afterProcesses = f
	return func() { afterProcesses = nil }
}

// SetBeforeSockets makes Discover call f before it asks the sockets met
// for their network namespaces, until the test ends.
func SetBeforeSockets(t interface{ Cleanup(func()) }, f func()) {
	beforeSockets = f
	t.Cleanup(func() { beforeSockets = nil })
}

// HelpersStarted returns how many mount namespace helper processes this
// process has started.
func HelpersStarted() int64 { return helpersStarted.Load() }

// UnopenedKeys returns the namespaces m.UnopenedNS counts.
func UnopenedKeys(m *Model) []Key { return m.unopened }

// SetNoPinIDs makes scans play a kernel without NS_GET_ID: every
// namespace found is held open until the scan ends.
func SetNoPinIDs() { noPinIDs = true }

// ReserveFDs returns how many descriptors a scan with workers keeps free
// of the namespaces it holds open.
func ReserveFDs(workers int) int { return reserveFDs + reservePerWorker*workers }

// SetSockAnswerWait sets how long a scan waits for its socket helper's
// answer, until the test ends.
func SetSockAnswerWait(t interface{ Cleanup(func()) }, d time.Duration) {
	old := sockAnswerWait
	sockAnswerWait = d
	t.Cleanup(func() { sockAnswerWait = old })
}

// SetMaxSockHelpersLost sets how many socket helpers a scan gives up
// before it asks no more sockets, until the test ends.
func SetMaxSockHelpersLost(t interface{ Cleanup(func()) }, n int64) {
	old := maxSockHelpersLost
	maxSockHelpersLost = n
	t.Cleanup(func() { maxSockHelpersLost = old })
}
