package hook

import "time"

// BeforeCheck has f run, with the scan's deadline, before each step of
// RunningPod's work on what the scan found that checks that deadline,
// until restore is called.
func BeforeCheck(f func(deadline time.Time)) (restore func()) {
	beforeCheck.Store(&f)
	return func() { beforeCheck.Store(nil) }
}
