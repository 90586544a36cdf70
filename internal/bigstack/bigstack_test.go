package bigstack

import "testing"

// TestFrameOnTheStack: the frame stays on the stack (a frame the
// compiler moved to the heap would grow nothing).
func TestFrameOnTheStack(t *testing.T) {
	if n := testing.AllocsPerRun(10, func() { grow() }); n != 0 {
		t.Errorf("grow allocates %v times: its frame is not on the stack", n)
	}
}
