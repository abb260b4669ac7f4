package store

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestLookupCursor checks get and del, which reuse one cursor per bucket
// for the whole transaction, against what Bucket.Get and Bucket.Delete
// would do, with puts and deletes interleaved so that the cursor must see
// every write made since its last seek (including node splits of the
// materialised nodes, which happen only at commit).
func TestLookupCursor(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "lookup.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := func(i int) []byte { return []byte(fmt.Sprintf("key-%05d", i)) }
	// Enough keys for a tree of several levels.
	const n = 5000
	err = db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i := 0; i < n; i += 2 {
			if err := bk.Put(key(i), key(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte("b"))
		b := &buckets{tx: tx}
		for i := range n {
			want := bk.Get(key(i))
			if got := b.get(bk, key(i)); !bytes.Equal(got, want) || (got == nil) != (want == nil) {
				return fmt.Errorf("get %s = %q, Bucket.Get = %q", key(i), got, want)
			}
			switch i % 3 {
			case 0: // delete through the cursor; a missing key is no error
				if err := b.del(bk, key(i)); err != nil {
					return err
				}
				if v := bk.Get(key(i)); v != nil {
					return fmt.Errorf("%s still there after del", key(i))
				}
			case 1: // put behind the cursor's back, then look it up
				if err := bk.Put(key(i), []byte("new")); err != nil {
					return err
				}
				if got := b.get(bk, key(i)); string(got) != "new" {
					return fmt.Errorf("get %s after a put = %q", key(i), got)
				}
			}
		}
		if got := b.get(bk, []byte("zzz")); got != nil {
			return fmt.Errorf("get past the last key = %q", got)
		}
		if len(b.lookups) != 1 {
			return fmt.Errorf("%d cursors for one bucket", len(b.lookups))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// What the transaction left: every third key gone, every key ≡ 1 (mod
	// 3) "new", the other even ones unchanged.
	err = db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte("b"))
		for i := range n {
			var want []byte
			switch {
			case i%3 == 0:
			case i%3 == 1:
				want = []byte("new")
			case i%2 == 0:
				want = key(i)
			}
			if got := bk.Get(key(i)); !bytes.Equal(got, want) {
				return fmt.Errorf("after commit %s = %q, want %q", key(i), got, want)
			}
		}
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
