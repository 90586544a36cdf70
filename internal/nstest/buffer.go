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

// StalledWriter is a writer that does not take anything (a pipe nobody
// reads, a stalled journald behind a service's stderr): every Write
// blocks until Release, then goes to its buffer.
type StalledWriter struct {
	LockedBuffer
	made, released sync.Once
	release        chan struct{}
}

func (w *StalledWriter) ch() chan struct{} {
	w.made.Do(func() { w.release = make(chan struct{}) })
	return w.release
}

func (w *StalledWriter) Write(p []byte) (int, error) {
	<-w.ch()
	return w.LockedBuffer.Write(p)
}

// Release lets the writes through, those waiting and those to come.
func (w *StalledWriter) Release() { w.released.Do(func() { close(w.ch()) }) }
