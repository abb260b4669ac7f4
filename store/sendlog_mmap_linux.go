//go:build linux

package store

import (
	"fmt"
	"os"
	"syscall"
)

// sendLogMapped: on Linux the send log is written through a shared file
// mapping (see SendLog).
const sendLogMapped = true

// mapSendLog allocates the first n bytes of f and maps them shared and
// writable: stores into the mapping land in the page cache, as a write(2)
// would. The blocks are allocated first because a store into a page of a
// sparse file that the disk has no room for is a SIGBUS, not an error.
func mapSendLog(f *os.File, n int64) ([]byte, error) {
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, n); err != nil {
		return nil, fmt.Errorf("allocate %d bytes: %w", n, err)
	}
	return syscall.Mmap(int(f.Fd()), 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
}

func unmapSendLog(m []byte) error { return syscall.Munmap(m) }
