package nsrel

// SetIoctlGetID replaces the NS_GET_ID call, to play an older kernel, and
// returns a function that restores it.
func SetIoctlGetID(f func(fd int) (uint64, error)) (restore func()) {
	old := ioctlGetID
	ioctlGetID = f
	noNSID.Store(false)
	return func() { ioctlGetID = old; noNSID.Store(false) }
}
