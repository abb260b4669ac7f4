package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

var _ tilecast.Store = (*DB)(nil)

// clock is an injectable, settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

func openAt(tb testing.TB, path string, c *clock) *DB {
	tb.Helper()
	db, err := Open(path, Options{Timeout: 200 * time.Millisecond, Now: c.Now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := db.Check(); err != nil {
			tb.Errorf("check: %v", err)
		}
		checkCounts(tb, db, "at the end")
		checkExpiryIndex(tb, db, "at the end")
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	})
	return db
}

func mustOpen(tb testing.TB) (*DB, *clock) {
	tb.Helper()
	c := newClock()
	return openAt(tb, filepath.Join(tb.TempDir(), "state.db"), c), c
}

func TestOpenCreatesSchemaAndReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/a"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	db, err = Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	chs, err := db.Channels("")
	if err != nil || len(chs) != 1 {
		t.Fatalf("Channels = %v, %v; want 1 channel", chs, err)
	}
	err = db.bolt.View(func(tx *bolt.Tx) error {
		got := string(tx.Bucket([]byte(bucketMeta)).Get([]byte(schemaKey)))
		if want := strconv.Itoa(SchemaVersion()); got != want {
			t.Errorf("schema = %q, want %s", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/b"}); !errors.Is(err, berrors.ErrDatabaseReadOnly) {
		t.Errorf("write on read-only = %v, want ErrDatabaseReadOnly", err)
	}
}

// TestMigrateDropsOutboxID: a schema-1 file (with the outbox_id index and
// queued entries) is migrated on a read-write open: the index is gone and
// the entries are still sent and recorded, found by their due time.
func TestMigrateDropsOutboxID(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	if err := db.Enqueue([]tilecast.Notification{toast(ch, "news", "1"), toast(ch, "news", "2")}); err != nil {
		t.Fatal(err)
	}
	// Back to schema 1: the index as that schema kept it.
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		idx, err := tx.CreateBucket([]byte(bucketOutboxID))
		if err != nil {
			return err
		}
		c := tx.Bucket([]byte(bucketOutbox)).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if err := idx.Put(seqKey(outboxKeySeq(k)), bytes.Clone(k)); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte(bucketMeta)).Put([]byte(schemaKey), []byte("1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "needs migrating") {
		t.Errorf("read-only open of schema 1: %v, want a 'needs migrating' error", err)
	}
	db = openAt(t, path, clk)
	err = db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte(bucketOutboxID)) != nil {
			t.Error("outbox_id is still there after the migration")
		}
		if got := string(tx.Bucket([]byte(bucketMeta)).Get([]byte(schemaKey))); got != strconv.Itoa(SchemaVersion()) {
			t.Errorf("schema = %q after the migration", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := db.Due(clk.Now(), 10, nil)
	if err != nil || len(ps) != 2 {
		t.Fatalf("Due = %d entries, %v; want 2", len(ps), err)
	}
	recs := make([]tilecast.Record, len(ps))
	for i, p := range ps {
		recs[i] = tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone, Sent: true,
			Outcome: tilecast.Outcome{Action: tilecast.ActionDelivered}}
	}
	if err := db.Record(recs); err != nil {
		t.Fatal(err)
	}
	if st, err := db.Counts(); err != nil || st.OutboxDepth != 0 {
		t.Errorf("after recording both: %+v, %v; want an empty outbox", st, err)
	}
}

func TestOpenRefusesNewerSchemaAndForeignFiles(t *testing.T) {
	dir := t.TempDir()
	newer := filepath.Join(dir, "newer.db")
	db, err := Open(newer, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketMeta)).Put([]byte(schemaKey), []byte("99"))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(newer, Options{}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("open newer schema: %v, want a 'newer' error", err)
	}

	foreign := filepath.Join(dir, "foreign.db")
	bdb, err := bolt.Open(foreign, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err }); err != nil {
		t.Fatal(err)
	}
	bdb.Close()
	before, _ := os.ReadFile(foreign)
	if _, err := Open(foreign, Options{}); err == nil || !strings.Contains(err.Error(), "not a tilecast state file") {
		t.Errorf("open foreign file: %v", err)
	}
	if after, _ := os.ReadFile(foreign); !bytes.Equal(before, after) {
		t.Error("foreign file was modified")
	}
}

// S6: a second instance fails within the timeout with ErrStateLocked and
// the first keeps working.
func TestOpenLocked(t *testing.T) {
	db, _ := mustOpen(t)
	start := time.Now()
	_, err := Open(db.Path(), Options{Timeout: 200 * time.Millisecond})
	if !errors.Is(err, tilecast.ErrStateLocked) {
		t.Fatalf("second open: %v, want ErrStateLocked", err)
	}
	if !strings.Contains(err.Error(), "in use by another tilecast") {
		t.Errorf("error %q does not say the file is in use", err)
	}
	// Generous bound: only guards against waiting for the 5s default.
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("second open took %v", d)
	}
	if _, _, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/x"}); err != nil {
		t.Errorf("first instance after a refused second open: %v", err)
	}
}

// S7: damaged files are refused with the runbook and never rewritten.
func TestOpenCorrupted(t *testing.T) {
	src := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, _, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/" + string(rune('a'+i%26)) + strings.Repeat("x", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := os.Getpagesize()
	flip := func(b []byte, offs ...int) []byte {
		b = bytes.Clone(b)
		for _, o := range offs {
			b[o] ^= 0xff
		}
		return b
	}
	tests := []struct {
		name string
		data []byte
	}{
		// Byte 16+ is inside the meta struct (after the page header), so
		// each flip breaks that meta page's checksum.
		{"both meta pages", flip(good, 16+12, pageSize+16+12)},
		{"meta magic and checksum", flip(good, 16, 16+56, pageSize+16, pageSize+16+56)},
		{"truncated", good[:100]},
		{"garbage", bytes.Repeat([]byte("tilecast"), 2048)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "copy.db")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(path, Options{Timeout: 200 * time.Millisecond})
			if err == nil {
				db.Close()
				t.Fatal("open succeeded on a damaged file")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("error %v is not ErrCorrupt", err)
			}
			for _, want := range []string{"bbolt check", "surgery revert-meta-page", "COPY", "backup", path} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, tt.data) {
				t.Error("damaged file was modified")
			}
			if files := dirFiles(t, filepath.Dir(path)); len(files) != 1 {
				t.Errorf("damaged file's directory holds %d files, want only it (nothing moved aside or created)", len(files))
			}
		})
	}

	// One damaged meta page is how a torn meta write looks: bbolt falls
	// back to the other page, i.e. the file as of the last or the one but
	// last transaction.
	t.Run("one meta page", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "copy.db")
		if err := os.WriteFile(path, flip(good, 16+12), 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("open with one good meta page: %v", err)
		}
		defer db.Close()
		if chs, err := db.Channels(""); err != nil || (len(chs) != 50 && len(chs) != 49) {
			t.Errorf("Channels = %d, %v; want 50 or 49", len(chs), err)
		}
	})
}

func TestBackup(t *testing.T) {
	db, _ := mustOpen(t)
	ch, _, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/b", User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := db.Backup(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || n == 0 {
		t.Fatalf("Backup wrote %d, buffer has %d", n, buf.Len())
	}
	path := filepath.Join(t.TempDir(), "restored.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	restored, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	got, err := restored.Channel(ch.ID)
	if err != nil || got.URI != ch.URI {
		t.Errorf("restored channel = %+v, %v", got, err)
	}
}
