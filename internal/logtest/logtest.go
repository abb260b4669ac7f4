// Package logtest holds what tests need to read logs written from other
// goroutines: the daemon's loops, several Bots, servers.
package logtest

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer safe for writes from several goroutines while
// a test reads it (a slog handler's io.Writer).
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
