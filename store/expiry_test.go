package store

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	bolt "go.etcd.io/bbolt"
)

// expiryIndexProblems compares channel_expiry with what the channel
// records say it must hold, key for key, and describes every difference:
// a write path that forgets the index (a stale or a missing key) shows
// here. Unreadable records are left out, as the migration leaves them.
func expiryIndexProblems(db *DB) ([]string, error) {
	var probs []string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		idx := tx.Bucket([]byte(bucketChannelExpiry))
		if idx == nil {
			probs = append(probs, "bucket channel_expiry is missing")
			return nil
		}
		want := map[string]bool{}
		err := tx.Bucket([]byte(bucketChannels)).ForEach(func(k, v []byte) error {
			ch, err := decodeChannel(v)
			if err == nil && !ch.Expires.IsZero() {
				ch.ID = string(k)
				want[string(expiryKey(&ch))] = true
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = idx.ForEach(func(k, v []byte) error {
			if !want[string(k)] {
				probs = append(probs, fmt.Sprintf("stale key %x", k))
			} else if len(v) != 0 {
				probs = append(probs, fmt.Sprintf("key %x has value %x", k, v))
			}
			delete(want, string(k))
			return nil
		})
		for k := range want {
			probs = append(probs, fmt.Sprintf("missing key %x", k))
		}
		return err
	})
	slices.Sort(probs)
	return probs, err
}

func checkExpiryIndex(tb testing.TB, db *DB, when string) {
	tb.Helper()
	probs, err := expiryIndexProblems(db)
	if err != nil {
		tb.Fatal(err)
	}
	if len(probs) > 0 {
		tb.Errorf("channel_expiry %s does not match the channels:\n%s", when, strings.Join(probs, "\n"))
	}
}

func expiringChannel(uri string, exp time.Time) tilecast.Channel {
	return tilecast.Channel{URI: "https://127.0.0.1/push/" + uri, Transport: tilecast.TransportWebPush, Expires: exp,
		Keys: &tilecast.PushKeys{P256DH: bytes.Repeat([]byte{4}, 65), Auth: bytes.Repeat([]byte{1}, 16)}}
}

// The check itself: a stale key and a missing one are both found, so a
// write path that forgets the index fails every test that ends with it
// (openAt, the conformance suite's checked).
func TestExpiryIndexCheckFindsStaleAndMissingKeys(t *testing.T) {
	db, clk := mustOpen(t)
	ch := addChannel(t, db, expiringChannel("a", clk.Now().Add(time.Hour)))
	if probs, err := expiryIndexProblems(db); err != nil || len(probs) != 0 {
		t.Fatalf("after AddChannel: %v, %v", probs, err)
	}
	moved := ch
	moved.Expires = ch.Expires.Add(time.Hour)
	// What a write that changed the expiry without the index would leave.
	err := db.update(func(b *buckets) error { return b.putChannel(&moved) })
	must(t, err)
	probs, err := expiryIndexProblems(db)
	if err != nil || len(probs) != 2 || !strings.HasPrefix(probs[0], "missing key") || !strings.HasPrefix(probs[1], "stale key") {
		t.Errorf("after a write that skipped the index: %q, %v; want one missing and one stale key", probs, err)
	}
	// Put right, so openAt's own check passes.
	err = db.update(func(b *buckets) error {
		if err := b.unindexExpiry(&ch); err != nil {
			return err
		}
		return b.indexExpiry(&moved)
	})
	must(t, err)
}

// downgradeExpiry makes the file at path what schema 4 left: no
// channel_expiry bucket (or, stale, one with a key naming nothing), schema
// 4, as a tilecast before the index wrote it.
func downgradeExpiry(t *testing.T, path string, stale bool) {
	t.Helper()
	db, err := Open(path, Options{})
	must(t, err)
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte(bucketChannelExpiry)); err != nil {
			return err
		}
		if stale {
			idx, err := tx.CreateBucket([]byte(bucketChannelExpiry))
			if err != nil {
				return err
			}
			ch := tilecast.Channel{ID: "gone000000000001", Expires: time.Unix(1, 0)}
			if err := idx.Put(expiryKey(&ch), nil); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte(bucketMeta)).Put([]byte(schemaKey), []byte("4"))
	})
	must(t, err, db.Close())
}

// A file written before the index (schema 4) gets it on a read-write
// open, built from its channels: expired ones listed in expiry order,
// the others not; a stale bucket is replaced. A read-only open asks for
// the migration.
func TestMigrateBuildsExpiryIndex(t *testing.T) {
	for _, stale := range []bool{false, true} {
		t.Run(fmt.Sprintf("stale=%v", stale), func(t *testing.T) {
			clk := newClock()
			now := clk.Now()
			path := filepath.Join(t.TempDir(), "state.db")
			db, err := Open(path, Options{Now: clk.Now})
			must(t, err)
			b := addChannel(t, db, expiringChannel("b", now.Add(-time.Minute)))
			a := addChannel(t, db, expiringChannel("a", now.Add(-time.Hour)))
			c := addChannel(t, db, expiringChannel("c", now.Add(time.Hour)))
			addChannel(t, db, expiringChannel("never", time.Time{}))
			addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/mpns"})
			must(t, db.Close())
			downgradeExpiry(t, path, stale)

			if _, err := Open(path, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "needs migrating") {
				t.Errorf("read-only open of schema 4: %v, want a request to migrate", err)
			}
			db = openAt(t, path, clk)
			checkExpiryIndex(t, db, "after the migration")
			for _, x := range []struct {
				at   time.Time
				want []string
			}{
				{now, []string{a.ID, b.ID}},
				{now.Add(time.Hour), []string{a.ID, b.ID, c.ID}},
				{now.Add(-2 * time.Hour), nil},
			} {
				chs, err := db.ExpiredChannels(x.at, 0)
				must(t, err)
				var got []string
				for _, ch := range chs {
					got = append(got, ch.ID)
				}
				if !slices.Equal(got, x.want) {
					t.Errorf("ExpiredChannels(%v) = %v, want %v", x.at, got, x.want)
				}
			}
		})
	}
}

// A file older than schema 4 runs the record rewrite (which writes
// channels while no channel_expiry exists) and then the index step.
func TestMigrateFromSchema3BuildsExpiryIndex(t *testing.T) {
	f := writeOldFile(t, 3)
	// bbolt itself, not Open, which would migrate the file.
	bdb, err := bolt.Open(f.path, 0o600, nil)
	must(t, err)
	err = bdb.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte(bucketChannelExpiry)) })
	must(t, err, bdb.Close())
	db := openAt(t, f.path, f.clk)
	checkExpiryIndex(t, db, "after migrating schema 3")
	if chs, err := db.ExpiredChannels(f.clk.Now(), 0); err != nil || len(chs) != 0 {
		t.Errorf("ExpiredChannels = %v, %v; the old file has no expiring channel", chs, err)
	}
	ch := addChannel(t, db, expiringChannel("new", f.clk.Now()))
	if chs, err := db.ExpiredChannels(f.clk.Now(), 0); err != nil || len(chs) != 1 || chs[0].ID != ch.ID {
		t.Errorf("ExpiredChannels after adding one = %v, %v", chs, err)
	}
}

// A record that cannot be read does not stop the index step: it is left
// out, as the schema 4 migration left it as it was.
func TestMigrateExpiryIndexSkipsUnreadable(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path, Options{Now: clk.Now})
	must(t, err)
	ok := addChannel(t, db, expiringChannel("ok", clk.Now()))
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketChannels)).Put([]byte("bad0000000000001"), []byte{0xff, 0x00, 0x13})
	})
	must(t, err, db.Close())
	downgradeExpiry(t, path, false)
	db, err = Open(path, Options{Now: clk.Now})
	must(t, err)
	defer db.Close()
	if chs, err := db.ExpiredChannels(clk.Now(), 0); err != nil || len(chs) != 1 || chs[0].ID != ok.ID {
		t.Errorf("ExpiredChannels = %v, %v; want %s", chs, err, ok.ID)
	}
}

// The index step is schema 5 (schemaExpiryIndex), and a file of that
// schema without the bucket is damaged: a write is refused rather than
// made without the index.
func TestMissingExpiryIndexIsDamage(t *testing.T) {
	if ms := migrations(); len(ms) < schemaExpiryIndex || ms[schemaExpiryIndex-1].name != "index channel expiry" {
		t.Fatalf("migration %d is not the expiry index step", schemaExpiryIndex)
	}
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path, Options{})
	must(t, err)
	err = db.bolt.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte(bucketChannelExpiry)) })
	must(t, err)
	if _, _, err := db.AddChannel(expiringChannel("a", time.Now())); !errors.Is(err, ErrCorrupt) {
		t.Errorf("AddChannel without the bucket: %v, want ErrCorrupt", err)
	}
	if _, err := db.ExpiredChannels(time.Now(), 0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ExpiredChannels without the bucket: %v, want ErrCorrupt", err)
	}
	must(t, db.Close())
}
