package bigstack

// index keeps the compiler from proving anything about the frame.
var index int

// Size is the frame grow allocates on the stack.
const Size = 32 << 10

//go:noinline
func grow() byte {
	var frame [Size]byte
	frame[index] = 1
	return frame[Size-1-index]
}

func init() { grow() }
