package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

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
	val := bytes.Repeat([]byte("tilecast"), 375) // 3000 bytes: about a page each
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("bulk"))
		if err != nil {
			return err
		}
		for i := range 4000 {
			if err := b.Put(fmt.Appendf(nil, "%08d", i), val); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Start from a cold cache, as after a reboot.
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
	n, err := db.Backup(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("Backup = %d, %v (wrote %d)", n, err, buf.Len())
	}
	if r := resident(t, db.path); dropWorks && r > 0.25 {
		t.Errorf("%.0f %% of the file is still cached after Backup read it", 100*r)
	}

	// The copy has every value.
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	bdb, err := bolt.Open(cp, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	err = bdb.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("bulk"))
		if b == nil {
			return fmt.Errorf("no bulk bucket in the copy")
		}
		for i := range 4000 {
			if v := b.Get(fmt.Appendf(nil, "%08d", i)); !bytes.Equal(v, val) {
				return fmt.Errorf("key %d: %d bytes, want %d", i, len(v), len(val))
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}
