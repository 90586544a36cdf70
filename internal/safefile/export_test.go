package safefile

import "testing"

// BeforeOpen makes f run between the checks of the directories and the
// open of [OpenPrivate] and [OpenTrusted], until the test ends.
func BeforeOpen(t testing.TB, f func()) {
	beforeOpen = f
	t.Cleanup(func() { beforeOpen = nil })
}
