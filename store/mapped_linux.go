package store

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

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

// dropCached asks the kernel to drop the clean pages of the file at path
// that no process maps from the page cache (POSIX_FADV_DONTNEED).
//
// Backup calls it after reading the whole file: read(2) fills the cache
// through readahead, which on ext4 with large folios (Linux 6.18 here)
// caches the file in folios of up to 2 MiB. Every 4 KiB page a commit
// later writes into such a folio makes the kernel walk all of its block
// buffers, in the write and again in writeback, which cost a 100k fan-out
// ~8 % of its CPU (BENCHMARKS.md, finding 19). Pages faulted in again
// afterwards come one at a time (bbolt maps the file MADV_RANDOM), so they
// are small again; the price is reading them back from disk once.
func dropCached(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}
