package nstest

import (
	"bytes"
	"sync"
)

// LockedBuffer is a bytes.Buffer safe for writers in other goroutines
// (a process's stderr copied by exec, a logger's sender) and the test
// reading it.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
