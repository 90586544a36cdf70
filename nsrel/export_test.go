package nsrel

// SetIoctlGetID replaces the NS_GET_ID call, to play an older kernel, and
// returns a function that restores it.
func SetIoctlGetID(f func(fd int) (uint64, error)) (restore func()) {
	old := ioctlGetID
	ioctlGetID = f
	noNSID.Store(false)
	return func() { ioctlGetID = old; noNSID.Store(false) }
}

// SetThreadFDs replaces /proc/thread-self/fd/, where a path is reopened
// after its check, to play a system without /proc, and returns a
// function that restores it.
func SetThreadFDs(dir string) (restore func()) {
	old := threadFDs
	threadFDs = dir
	return func() { threadFDs = old }
}
