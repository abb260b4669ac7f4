// The platforms where bbolt locks its file with flock(2) (its bolt_unix.go).
//go:build !windows && !plan9 && !solaris && !aix && !android

package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/tilecast/tilecast"
)

// lockable says lockExclusive takes bbolt's lock here.
const lockable = true

// lockExclusive takes the lock bbolt takes on a file it opens read-write,
// waiting at most timeout (then tilecast.ErrStateLocked), so that no
// tilecast opens the file while this one holds it. Closing f releases it.
func lockExclusive(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		if time.Now().After(deadline) {
			return tilecast.ErrStateLocked
		}
		time.Sleep(50 * time.Millisecond) // bbolt's own retry interval
	}
}
