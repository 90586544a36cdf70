package inspect

// ForceProcFallback turns the pidfd namespace ioctls off until restore is
// called: the tests check the /proc fallback of older kernels with it.
func ForceProcFallback() (restore func()) {
	usePidfdIoctls = false
	return func() { usePidfdIoctls = true }
}

// PinnedViaPidfd reports whether pinnedNamespaces took the pidfd ioctls
// for pid on this kernel.
func PinnedViaPidfd(pfd, pid int) (bool, error) {
	u, p, via, err := pinnedNamespaces(pfd, pid)
	if err != nil {
		return false, err
	}
	u.Close()
	p.Close()
	return via, nil
}

// AfterProcPass has f run between Live's pass over /proc and its reads of
// the maps until restore is called.
func AfterProcPass(f func()) (restore func()) {
	afterProcPass = f
	return func() { afterProcPass = nil }
}

// Alive is the liveness check of a pinned process.
var Alive = alive
