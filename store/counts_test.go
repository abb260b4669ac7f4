package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tilecast/tilecast"
	bolt "go.etcd.io/bbolt"
)

// scannedCounts counts what Counts reports by reading everything, without
// the store's count code: bbolt's own key statistics and every feed state
// decoded.
func scannedCounts(tb testing.TB, db *DB) tilecast.Counts {
	tb.Helper()
	var c tilecast.Counts
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c.Channels = tx.Bucket([]byte(bucketChannels)).Stats().KeyN
		c.OutboxDepth = tx.Bucket([]byte(bucketOutbox)).Stats().KeyN
		c.DeadLetters = tx.Bucket([]byte(bucketDead)).Stats().KeyN
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	states, err := db.FeedStates()
	if err != nil {
		tb.Fatal(err)
	}
	for k, st := range states {
		if !st.Broken {
			continue
		}
		if c.Broken == nil {
			c.Broken = map[string]tilecast.BrokenStates{}
		}
		s := c.Broken[k.Feed]
		if k.User == "" {
			s.Global++
		} else {
			s.Users++
		}
		c.Broken[k.Feed] = s
	}
	return c
}

func sameCounts(a, b tilecast.Counts) bool {
	return a.Channels == b.Channels && a.OutboxDepth == b.OutboxDepth && a.DeadLetters == b.DeadLetters &&
		maps.Equal(a.Broken, b.Broken)
}

// checkCounts fails the test when Counts disagrees with a scan. openAt runs
// it when every store test ends, so each of them checks the counts too.
func checkCounts(tb testing.TB, db *DB, step string) {
	tb.Helper()
	got, err := db.Counts()
	if err != nil {
		tb.Fatalf("%s: Counts: %v", step, err)
	}
	if want := scannedCounts(tb, db); !sameCounts(got, want) {
		tb.Fatalf("%s: Counts = %+v, a scan finds %+v", step, got, want)
	}
}

// recountAfterRawWrite rebuilds the count records after a test wrote
// records behind the store's back (old forms, damage), as the upgrade to
// counts does for whatever a file holds.
func recountAfterRawWrite(tb testing.TB, db *DB) {
	tb.Helper()
	if err := db.bolt.Update(func(tx *bolt.Tx) error { _, err := recount(tx); return err }); err != nil {
		tb.Fatal(err)
	}
}

// TestCountsConcurrentBatch: feed states saved concurrently go through
// bbolt's Batch, which runs them in one transaction and, when one fails,
// runs the others again alone. A failing commit among them leaves the
// counts exact.
func TestCountsConcurrentBatch(t *testing.T) {
	db, clk := mustOpen(t)
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	db.beforeCommit = func() error { return errors.New("abort") }
	errs := make(chan error, 40)
	for i := range 40 {
		go func() {
			k := tilecast.FeedKey{Feed: fmt.Sprint("f", i%7), User: []string{"", "ann"}[i%2]}
			st := tilecast.FeedState{Broken: i%3 != 0}
			if i%5 == 0 { // aborted: its broken state and toast must not count
				errs <- db.Commit(tilecast.Commit{Key: k, State: st, Now: clk.Now(),
					Notifications: []tilecast.Notification{toast(ch, k.Feed, fmt.Sprint(i))}})
				return
			}
			errs <- db.SaveFeedState(k, st)
		}()
	}
	failed := 0
	for range 40 {
		if err := <-errs; err != nil {
			failed++
		}
	}
	if failed != 8 {
		t.Errorf("%d writes failed, want the 8 aborted commits", failed)
	}
	checkCounts(t, db, "after concurrent saves")
	if c, _ := db.Counts(); c.OutboxDepth != 0 || len(c.Broken) == 0 {
		t.Errorf("counts %+v: want broken states and no outbox entry", c)
	}
}

// TestCountsUpgrade: a file written before the counts (schema 2, no count
// records) is counted once when opened read-write, which is logged; a
// read-only open asks for that first. Count records removed or damaged by
// hand are rebuilt too.
func TestCountsUpgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	clk := newClock()
	db, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	chs := addChannels(t, db, 5)
	if err := db.Enqueue([]tilecast.Notification{toast(chs[0], "news", "1"), toast(chs[1], "news", "2"), tile(chs[2], "news", "T")}); err != nil {
		t.Fatal(err)
	}
	ps, err := db.Due(clk.Now(), 1, nil)
	if err != nil || len(ps) != 1 {
		t.Fatalf("Due = %d, %v", len(ps), err)
	}
	must(t, db.Record([]tilecast.Record{{ID: ps[0].ID, Due: ps[0].NextAttempt, Op: tilecast.OpDead, Sent: true,
		Outcome: tilecast.Outcome{Action: tilecast.ActionFailed}}}))
	broken := tilecast.FeedState{Broken: true}
	must(t, db.SaveFeedState(tilecast.FeedKey{Feed: "news"}, broken),
		db.SaveFeedState(tilecast.FeedKey{Feed: "inbox", User: "ann"}, broken),
		db.SaveFeedState(tilecast.FeedKey{Feed: "inbox", User: "bob"}, broken),
		db.SaveFeedState(tilecast.FeedKey{Feed: "weather"}, tilecast.FeedState{}))
	want := tilecast.Counts{Channels: 5, OutboxDepth: 2, DeadLetters: 1,
		Broken: map[string]tilecast.BrokenStates{"news": {Global: 1}, "inbox": {Users: 2}}}
	if got, err := db.Counts(); err != nil || !sameCounts(got, want) {
		t.Fatalf("Counts = %+v, %v; want %+v", got, err, want)
	}
	must(t, db.Close())

	// Make it the file an older tilecast left.
	dropCounts := func(schema string) {
		t.Helper()
		bdb, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = bdb.Update(func(tx *bolt.Tx) error {
			meta := tx.Bucket([]byte(bucketMeta))
			var keys [][]byte
			_ = meta.ForEach(func(k, _ []byte) error {
				if string(k) != schemaKey {
					keys = append(keys, bytes.Clone(k))
				}
				return nil
			})
			if len(keys) != 3 {
				return fmt.Errorf("count records %q, want counts and two broken ones", keys)
			}
			if err := deleteKeys(meta, keys); err != nil {
				return err
			}
			return meta.Put([]byte(schemaKey), []byte(schema))
		})
		must(t, err, bdb.Close())
	}
	dropCounts("2")
	if _, err := Open(path, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("needs migrating to %d", SchemaVersion())) {
		t.Errorf("read-only open of a schema 2 file: %v, want a request to open it read-write", err)
	}
	var log bytes.Buffer
	db, err = Open(path, Options{Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := db.Counts(); err != nil || !sameCounts(got, want) {
		t.Errorf("after the upgrade Counts = %+v, %v; want %+v", got, err, want)
	}
	if !strings.Contains(log.String(), `msg="state file migrated" schema=3 step="count records"`) {
		t.Errorf("the upgrade's count was not logged:\n%s", log.String())
	}
	must(t, db.Close())

	// Removed by hand at schema 3: counted again, with a warning.
	dropCounts("3")
	log.Reset()
	db, err = Open(path, Options{Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := db.Counts(); err != nil || !sameCounts(got, want) {
		t.Errorf("after the recount Counts = %+v, %v; want %+v", got, err, want)
	}
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "channels=5 outbox=2 dead_letters=1") {
		t.Errorf("the recount was not logged:\n%s", log.String())
	}

	// A damaged counts record: Counts scans instead, the next write that
	// changes a count stores them again.
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketMeta)).Put([]byte(countsKey), []byte{countsV1, 0xff})
	})
	must(t, err)
	if got, err := db.Counts(); err != nil || !sameCounts(got, want) {
		t.Errorf("with a damaged record Counts = %+v, %v; want %+v", got, err, want)
	}
	addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/new"})
	err = db.bolt.View(func(tx *bolt.Tx) error {
		_, err := decodeTotals(tx.Bucket([]byte(bucketMeta)).Get([]byte(countsKey)))
		return err
	})
	if err != nil {
		t.Errorf("the write did not repair the counts record: %v", err)
	}
	checkCounts(t, db, "after the repair")
	must(t, db.Close())
}

// TestCountRecords: the records decode what they encode and refuse
// anything else.
func TestCountRecords(t *testing.T) {
	c := tilecast.Counts{Channels: 1_000_000, OutboxDepth: 3, DeadLetters: 1 << 40}
	if got, err := decodeTotals(encodeTotals(&c)); err != nil || !sameCounts(got, c) {
		t.Errorf("round trip: %+v, %v", got, err)
	}
	for _, v := range [][]byte{nil, {}, {2, 1, 1, 1}, {countsV1, 1, 1}, {countsV1, 1, 1, 1, 0}, {countsV1, 0xff, 0xff}} {
		if _, err := decodeTotals(v); err == nil {
			t.Errorf("decodeTotals(%x) accepted", v)
		}
	}
	if _, err := decodeBroken([]byte{countsV1, 1}); err == nil {
		t.Error("decodeBroken accepted a short record")
	}
}

// BenchmarkCounts reads the counts of a file with 1,000 and with 1,000,000
// channels: the cost must not depend on the size (compare the two ns/op).
// The channel records are put straight into the bucket in a few large
// transactions, then counted once, so setting up a million takes seconds.
func BenchmarkCounts(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprint("channels=", n), func(b *testing.B) {
			db, _ := mustOpen(b)
			fillChannels(b, db, n)
			if c, err := db.Counts(); err != nil || c.Channels != n {
				b.Fatalf("Counts = %+v, %v; want %d channels", c, err, n)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := db.Counts(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// fillChannels puts n channel records into the channels bucket (no
// indexes: Counts reads none) and rebuilds the count records.
func fillChannels(tb testing.TB, db *DB, n int) {
	tb.Helper()
	const perTx = 100_000
	for start := 0; start < n; start += perTx {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket([]byte(bucketChannels))
			bk.FillPercent = 1 // keys in order
			for i := start; i < min(start+perTx, n); i++ {
				ch := tilecast.Channel{ID: fmt.Sprintf("%016x", i), URI: fmt.Sprintf("https://push.example/%d", i)}
				if err := bk.Put([]byte(ch.ID), encodeChannel(&ch)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	recountAfterRawWrite(tb, db)
}
