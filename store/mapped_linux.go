package store

import "syscall"

// unmapPages drops the mapping's pages in [addr, addr+n) from the page
// tables. The caller guarantees the range is mapped (a read transaction).
func unmapPages(addr uintptr, n int64) error {
	if n <= 0 {
		return nil
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, addr, uintptr(n), syscall.MADV_DONTNEED); errno != 0 {
		return errno
	}
	return nil
}
