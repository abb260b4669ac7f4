//go:build !linux

package store

// unmapPages is a no-op where madvise is not wired up: the pages stay
// mapped until bbolt remaps the file.
func unmapPages(uintptr, int64) error { return nil }

// dropCached is a no-op where posix_fadvise is not wired up (see the Linux
// version for why Backup calls it).
func dropCached(string) error { return nil }
