package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// countsModel drives a random sequence of every write the store has and
// checks the counts after each one.
type countsModel struct {
	t    *testing.T
	db   *DB
	clk  *clock
	rng  *rand.Rand
	item int
}

var (
	modelFeeds = []tilecast.FeedKey{{Feed: "news"}, {Feed: "weather"}, {Feed: "inbox", User: "ann"}, {Feed: "inbox", User: "bob"}}
	modelUsers = []string{"", "ann", "bob"}
)

func (m *countsModel) channels() []tilecast.Channel {
	chs, err := m.db.Channels("")
	if err != nil {
		m.t.Fatal(err)
	}
	return chs
}

func (m *countsModel) randomChannel() tilecast.Channel {
	m.item++
	ch := tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/c%d", m.rng.IntN(40)), User: modelUsers[m.rng.IntN(3)]}
	if m.rng.IntN(3) == 0 {
		ch.Device = fmt.Sprintf("dev%d", m.rng.IntN(6))
	}
	for _, f := range []string{"news", "inbox"} {
		if m.rng.IntN(2) == 0 {
			ch.Feeds = append(ch.Feeds, f)
		}
	}
	return ch
}

// notifications returns a few toasts and tiles for random channels, one
// of them maybe removed meanwhile (the store skips it).
func (m *countsModel) notifications() []tilecast.Notification {
	chs := m.channels()
	chs = append(chs, tilecast.Channel{ID: "gone"})
	var ns []tilecast.Notification
	for range m.rng.IntN(6) {
		ch := chs[m.rng.IntN(len(chs))]
		feed := modelFeeds[m.rng.IntN(len(modelFeeds))].Feed
		m.item++
		if m.rng.IntN(2) == 0 {
			ns = append(ns, toast(ch, feed, fmt.Sprint(m.item)))
		} else {
			ns = append(ns, tile(ch, feed, fmt.Sprintf("tile %d", m.rng.IntN(3))))
		}
	}
	return ns
}

func (m *countsModel) state() tilecast.FeedState {
	st := tilecast.FeedState{Baselined: true, LastFetch: m.clk.Now()}
	if m.rng.IntN(2) == 0 {
		st.Broken, st.Failures, st.FailingSince = true, 9, m.clk.Now().Add(-48*time.Hour)
	}
	return st
}

// step runs one random operation. An operation that must fail (an aborted
// transaction) is checked to have failed.
func (m *countsModel) step() string {
	db, rng := m.db, m.rng
	switch op := rng.IntN(12); op {
	case 0, 1:
		if _, _, err := db.AddChannel(m.randomChannel()); err != nil {
			m.t.Fatal(err)
		}
		return "add channel"
	case 2:
		chs := m.channels()
		id := "unknown"
		if len(chs) > 0 && rng.IntN(5) > 0 {
			id = chs[rng.IntN(len(chs))].ID
		}
		if err := db.RemoveChannel(id); err != nil && !errors.Is(err, tilecast.ErrNotFound) {
			m.t.Fatal(err)
		}
		return "remove channel"
	case 3:
		var chs []tilecast.Channel
		for range 1 + rng.IntN(4) {
			chs = append(chs, m.randomChannel())
		}
		if _, _, err := db.ImportChannels(chs); err != nil {
			m.t.Fatal(err)
		}
		return "import"
	case 4:
		if err := db.Enqueue(m.notifications()); err != nil {
			m.t.Fatal(err)
		}
		return "enqueue"
	case 5, 6:
		k := modelFeeds[rng.IntN(len(modelFeeds))]
		c := tilecast.Commit{Key: k, State: m.state(), Seen: []string{fmt.Sprint(m.item)}, Now: m.clk.Now()}
		if k.User == "" && rng.IntN(4) == 0 {
			c.FanOut = &tilecast.FanOutJob{Feed: k.Feed, Now: m.clk.Now()}
			return m.fanOut(c)
		}
		c.Notifications = m.notifications()
		if rng.IntN(4) == 0 {
			// Aborted inside the transaction, after every write.
			db.beforeCommit = func() error { return errors.New("abort") }
			defer func() { db.beforeCommit = nil }()
			if err := db.Commit(c); err == nil {
				m.t.Fatal("aborted commit succeeded")
			}
			return "aborted commit"
		}
		if err := db.Commit(c); err != nil {
			m.t.Fatal(err)
		}
		return "commit"
	case 7:
		k := modelFeeds[rng.IntN(len(modelFeeds))]
		if err := db.SaveFeedState(k, m.state()); err != nil {
			m.t.Fatal(err)
		}
		return "save feed state"
	case 8, 9, 10:
		return m.record()
	default:
		m.clk.Add(time.Duration(rng.IntN(120)) * time.Minute)
		if _, err := db.PruneLedger(); err != nil {
			m.t.Fatal(err)
		}
		return "prune"
	}
}

// fanOut starts a paged delivery and runs its pages, unless the feed still
// has one (the commit then fails and changes nothing).
func (m *countsModel) fanOut(c tilecast.Commit) string {
	if err := m.db.Commit(c); err != nil {
		if strings.Contains(err.Error(), "unfinished delivery") {
			return "refused fan-out"
		}
		m.t.Fatal(err)
	}
	job := *c.FanOut
	f := &tilecast.Feed{Name: job.Feed}
	for {
		page, next, err := m.db.SubscribersAfter(f, job.Cursor, 3)
		if err != nil {
			m.t.Fatal(err)
		}
		var ns []tilecast.Notification
		for _, ch := range page {
			m.item++
			ns = append(ns, toast(ch, job.Feed, fmt.Sprint(m.item)))
		}
		job.Cursor = next
		done := next == ""
		if err := m.db.FanOutStep(job, ns, done); err != nil {
			m.t.Fatal(err)
		}
		if done {
			return "fan-out"
		}
	}
}

// record takes due entries and records a random outcome for each, through
// Due's key or by search, sometimes for an entry already gone; now and
// then the transaction is aborted by a panicking failpoint.
func (m *countsModel) record() string {
	ps, err := m.db.Due(m.clk.Now().Add(10*time.Hour), 1+m.rng.IntN(8), nil)
	if err != nil {
		m.t.Fatal(err)
	}
	var recs []tilecast.Record
	for _, p := range ps {
		r := tilecast.Record{ID: p.ID, Sent: m.rng.IntN(3) > 0,
			Outcome: tilecast.Outcome{ChannelID: p.ChannelID, Action: tilecast.ActionDelivered, Time: m.clk.Now()}}
		if m.rng.IntN(3) > 0 {
			r.Due = p.NextAttempt
		}
		switch m.rng.IntN(6) {
		case 0, 1:
			r.Op = tilecast.OpDone
		case 2:
			r.Op, r.NextAttempt = tilecast.OpRetry, m.clk.Now().Add(time.Minute)
		case 3:
			r.Op, r.NextAttempt = tilecast.OpPostpone, m.clk.Now().Add(time.Hour)
		case 4:
			r.Op = tilecast.OpDead
		default:
			r.Op = tilecast.OpRemoveChannel
		}
		recs = append(recs, r)
		if m.rng.IntN(8) == 0 {
			recs = append(recs, r) // the same entry twice: the second finds it gone
		}
	}
	if len(recs) > 0 && m.rng.IntN(5) == 0 {
		m.db.failpoint = func(point string) {
			if point == tilecast.FailInRecord {
				panic("crash in record")
			}
		}
		defer func() { m.db.failpoint = nil }()
		func() {
			defer func() {
				if recover() == nil {
					m.t.Fatal("record with a panicking failpoint returned")
				}
			}()
			_ = m.db.Record(recs)
		}()
		return "aborted record"
	}
	if err := m.db.Record(recs); err != nil {
		m.t.Fatal(err)
	}
	return fmt.Sprintf("record %d", len(recs))
}

// TestCountsFollowEveryWrite: after each of a random sequence of writes
// (channels added, replaced by device, imported and removed; commits,
// enqueues, fan-outs; outcomes of every op; feed states turning broken and
// back; transactions aborted by an error or a panic), Counts equals a scan,
// and again after reopening the file.
func TestCountsFollowEveryWrite(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			clk := newClock()
			db, err := Open(path, Options{Timeout: time.Second, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			m := &countsModel{t: t, db: db, clk: clk, rng: rand.New(rand.NewPCG(seed, 14))}
			seen := map[string]bool{}
			nonzero := tilecast.Counts{}
			for i := range 400 {
				what := m.step()
				seen[what] = true
				checkCounts(t, db, fmt.Sprintf("step %d (%s)", i, what))
				c, _ := db.Counts()
				nonzero.Channels = max(nonzero.Channels, c.Channels)
				nonzero.OutboxDepth = max(nonzero.OutboxDepth, c.OutboxDepth)
				nonzero.DeadLetters = max(nonzero.DeadLetters, c.DeadLetters)
				if len(c.Broken) > 0 {
					nonzero.Broken = c.Broken
				}
			}
			// The sequence must have exercised what it claims to.
			for _, what := range []string{"add channel", "remove channel", "import", "enqueue", "commit",
				"aborted commit", "fan-out", "save feed state", "aborted record"} {
				if !seen[what] {
					t.Errorf("the sequence never ran %q", what)
				}
			}
			if nonzero.Channels == 0 || nonzero.OutboxDepth == 0 || nonzero.DeadLetters == 0 || nonzero.Broken == nil {
				t.Errorf("some count never moved: maxima %+v", nonzero)
			}
			before, _ := db.Counts()
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openAt(t, path, clk)
			checkCounts(t, db, "after reopening")
			if after, _ := db.Counts(); !sameCounts(before, after) {
				t.Errorf("counts %+v before closing, %+v after reopening", before, after)
			}
		})
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
