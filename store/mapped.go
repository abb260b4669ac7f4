package store

import (
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Why unmap: bbolt reads the state file through a read-only shared mmap,
// so every page a transaction touches stays mapped into this process and
// counts in its RSS (and in the OOM killer's score) until bbolt remaps
// the file. A fan-out to 100k channels touches the whole file: VmHWM was
// 195 MiB of which 64 MiB were the process's own memory. The pages are the
// kernel's page cache either way; unmapping them (MADV_DONTNEED on a clean
// shared file mapping) leaves the data in the cache, and the next access
// maps it again with a minor fault. Nothing is read from disk again unless
// the kernel evicted it, which it may do for mapped pages as well.

// DefaultUnmapInterval is how often, at most, a write transaction is
// followed by unmapping the file's pages (see ReleaseMapped).
const DefaultUnmapInterval = time.Second

// mapRelease rate-limits ReleaseMapped after writes.
type mapRelease struct {
	every time.Duration // ≤ 0: never after writes
	last  atomic.Int64  // monotonic nanoseconds since start of the last release
	start time.Time     // monotonic origin of last
	done  atomic.Int64  // releases after writes (tests)
}

// due reports whether a release is due now and claims it.
func (m *mapRelease) due() bool {
	if m.every <= 0 {
		return false
	}
	now := int64(time.Since(m.start))
	last := m.last.Load()
	return now-last >= int64(m.every) && m.last.CompareAndSwap(last, now)
}

// ReleaseMapped unmaps the state file's pages from this process's address
// space; the data stays in the kernel's page cache. The store does it by
// itself at most once per Options.UnmapInterval after a write; the daemon
// also calls it when idle. It runs inside a read transaction because bbolt
// only remaps the file (moving the mapping) when no transaction is open.
func (db *DB) ReleaseMapped() error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		return unmapPages(db.bolt.Info().Data, tx.Size())
	})
}

// afterWrite runs after every write transaction, committed or not.
func (db *DB) afterWrite() {
	if db.unmap.due() && db.ReleaseMapped() == nil { // a failure only costs RSS
		db.unmap.done.Add(1)
	}
}

// unmapEveryKeys is how many keys countKeys reads between unmappings.
const unmapEveryKeys = 8192

// countKeys counts b's keys. Counting reads every leaf page of the bucket,
// and Stats runs on every metrics scrape and dashboard view: for 100k
// channels that mapped ~70 MiB at once during a fan-out. So the walk
// unmaps what it has read every unmapEveryKeys keys (the caller's read
// transaction keeps the mapping in place).
func (db *DB) countKeys(tx *bolt.Tx, b *bolt.Bucket) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if n++; n%unmapEveryKeys == 0 {
			_ = unmapPages(db.bolt.Info().Data, tx.Size())
		}
	}
	if n >= unmapEveryKeys {
		_ = unmapPages(db.bolt.Info().Data, tx.Size())
	}
	return n
}
