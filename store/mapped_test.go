//go:build linux

package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// rssFile returns this process's resident file-backed memory (RssFile).
func rssFile(t *testing.T) int64 { return procStatus(t, "RssFile") }

const blobBucket = "test_blob"

// blobValue is value i of the test bucket: 4 KiB that say which one it is.
func blobValue(i int) []byte {
	return bytes.Repeat(binary.BigEndian.AppendUint32(nil, uint32(i)), 1024)
}

// fillBlobs writes n values of 4 KiB in one transaction.
func fillBlobs(t *testing.T, db *DB, n int) {
	t.Helper()
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(blobBucket))
		if err != nil {
			return err
		}
		for i := range n {
			if err := b.Put(binary.BigEndian.AppendUint32(nil, uint32(i)), blobValue(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// readBlobs reads every value (mapping every page) and checks it.
func readBlobs(db *DB, n int) error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(blobBucket))
		got := 0
		err := b.ForEach(func(k, v []byte) error {
			i := int(binary.BigEndian.Uint32(k))
			if !bytes.Equal(v, blobValue(i)) {
				return fmt.Errorf("value %d changed", i)
			}
			got++
			return nil
		})
		if err == nil && got != n {
			err = fmt.Errorf("read %d values, want %d", got, n)
		}
		return err
	})
}

func TestReleaseMappedDropsFilePages(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "state.db"), Options{UnmapInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 4096 // 16 MiB of values
	fillBlobs(t, db, n)
	if err := readBlobs(db, n); err != nil {
		t.Fatal(err)
	}
	mapped := rssFile(t)
	if err := db.ReleaseMapped(); err != nil {
		t.Fatal(err)
	}
	released := rssFile(t)
	if mapped-released < 12<<20 {
		t.Errorf("RssFile %d → %d KiB: want at least 12 MiB of the 16 MiB file unmapped", mapped>>10, released>>10)
	}
	// The data is still there, read back through the page cache.
	if err := readBlobs(db, n); err != nil {
		t.Fatal(err)
	}
	if again := rssFile(t); again-released < 12<<20 {
		t.Errorf("reading again mapped %d KiB, want the file back", (again-released)>>10)
	}
}

// Writes unmap the file by themselves (UnmapInterval), while readers and
// writers run; nothing read may change (run with -race).
func TestUnmapAfterWritesUnderLoad(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "state.db"), Options{UnmapInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 1024
	fillBlobs(t, db, n)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if err := readBlobs(db, n); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// Writes that grow the file make bbolt remap it, which must wait for
	// the unmapping (and the readers) to finish.
	for i := range 40 {
		err := db.update(func(b *buckets) error {
			g, err := b.tx.CreateBucketIfNotExists([]byte("test_grow"))
			if err != nil {
				return err
			}
			return g.Put([]byte(strconv.Itoa(i)), bytes.Repeat([]byte{byte(i)}, 64<<10))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if got := db.unmap.done.Load(); got < 40 {
		t.Errorf("%d releases after 41 writes, want one after each", got)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := db.Check(); err != nil {
		t.Fatal(err)
	}
	if err := readBlobs(db, n); err != nil {
		t.Fatal(err)
	}
}

// procStatus returns a /proc/self/status field in bytes.
func procStatus(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s %q: %v", field, v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// Counting a bucket for Stats walks its leaf pages; it must not leave
// them all mapped at once (a metrics scrape during a big fan-out).
func TestCountKeysBoundsMappedPages(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "state.db"), Options{UnmapInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 200_000 // ~20 MiB of leaf pages
	val := bytes.Repeat([]byte{'v'}, 80)
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte(blobBucket))
		if err != nil {
			return err
		}
		for i := range n {
			if err := b.Put(binary.BigEndian.AppendUint32(nil, uint32(i)), val); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.ReleaseMapped(); err != nil {
		t.Fatal(err)
	}
	var got int
	var file int64
	before := procStatus(t, "RssFile")
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0o200); err != nil {
		t.Fatalf("reset VmHWM: %v", err)
	}
	rss0 := procStatus(t, "VmRSS")
	err = db.bolt.View(func(tx *bolt.Tx) error {
		got = db.countKeys(tx, tx.Bucket([]byte(blobBucket)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	peak := procStatus(t, "VmHWM") - rss0
	file = procStatus(t, "RssFile") - before
	if got != n {
		t.Fatalf("counted %d keys, want %d", got, n)
	}
	if peak > 12<<20 {
		t.Errorf("counting raised the peak RSS by %d KiB, want < 12 MiB of a ~20 MiB bucket", peak>>10)
	}
	if file > 2<<20 {
		t.Errorf("%d KiB of the file still mapped after counting", file>>10)
	}
}

// resident returns the fraction of path's pages in the page cache
// (mincore on a fresh mapping, which faults nothing in).
func resident(t *testing.T, path string) float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	pg := os.Getpagesize()
	vec := make([]byte, (len(m)+pg-1)/pg)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	in := 0
	for _, v := range vec {
		in += int(v & 1)
	}
	return float64(in) / float64(len(vec))
}

// TestBackupDropsReadCache: the pages Backup reads into the page cache
// leave it again, so they cannot stay behind as large folios that slow
// every later commit (see dropCached). The copy is checked too.
func TestBackupDropsReadCache(t *testing.T) {
	db, _ := mustOpen(t)
	const n = 4096 // 16 MiB of values
	fillBlobs(t, db, n)
	// Start from a cold cache, as after a reboot: written back first, or
	// the dirty pages could not be dropped.
	if err := db.bolt.Sync(); err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(db.path, &st); err != nil {
		t.Fatal(err)
	}
	// On tmpfs the page cache is where the file lives: nothing can be
	// dropped, and the cache checks below would not mean anything.
	dropWorks := st.Type != unix.TMPFS_MAGIC
	if err := dropCached(db.path); err != nil {
		t.Fatal(err)
	}
	if r := resident(t, db.path); dropWorks && r > 0.25 {
		t.Fatalf("%.0f %% of the file is cached after dropCached on a cold start", 100*r)
	}

	var buf bytes.Buffer
	written, err := db.Backup(&buf)
	if err != nil || written != int64(buf.Len()) {
		t.Fatalf("Backup = %d, %v (wrote %d)", written, err, buf.Len())
	}
	if r := resident(t, db.path); dropWorks && r > 0.25 {
		t.Errorf("%.0f %% of the file is still cached after Backup read it", 100*r)
	}

	// The copy has every value.
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cdb, err := Open(cp, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cdb.Close()
	if err := readBlobs(cdb, n); err != nil {
		t.Errorf("the copy: %v", err)
	}
}

// BenchmarkWriteAfterRead measures what finding 19 (BENCHMARKS.md) is
// about: the CPU a 4 KiB page write costs, by how the file's pages came
// into the page cache. A 64 MiB file is cached by page-sized writes, by a
// read(2) pass (readahead: large folios on ext4 with Linux 6.x), or by a
// read pass followed by dropCached, as Backup does; then pages at random
// offsets are rewritten with an fdatasync every 70 writes, about one
// commit's worth. cpu-µs/write is user + system time per write.
func BenchmarkWriteAfterRead(b *testing.B) {
	const size = 64 << 20
	const pg = 4096
	for _, mode := range []string{"page-writes", "read", "read+drop"} {
		b.Run(mode, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "file")
			f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			page := make([]byte, pg)
			for off := int64(0); off < size; off += pg {
				if _, err := f.WriteAt(page, off); err != nil {
					b.Fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			if mode != "page-writes" {
				// Cold cache, then one read(2) pass over the whole file.
				if err := dropCached(path); err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, io.NewSectionReader(f, 0, size)); err != nil {
					b.Fatal(err)
				}
			}
			if mode == "read+drop" {
				if err := dropCached(path); err != nil {
					b.Fatal(err)
				}
			}
			var r0, r1 syscall.Rusage
			if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r0); err != nil {
				b.Fatal(err)
			}
			writes := 0
			for b.Loop() {
				off := rand.Int64N(size/pg) * pg
				if _, err := f.WriteAt(page, off); err != nil {
					b.Fatal(err)
				}
				if writes++; writes%70 == 0 {
					if err := f.Sync(); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := syscall.Getrusage(syscall.RUSAGE_SELF, &r1); err != nil {
				b.Fatal(err)
			}
			cpu := time.Duration(r1.Utime.Nano() - r0.Utime.Nano() + r1.Stime.Nano() - r0.Stime.Nano())
			b.ReportMetric(float64(cpu.Microseconds())/float64(max(writes, 1)), "cpu-µs/write")
		})
	}
}
