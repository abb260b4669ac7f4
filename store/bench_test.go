package store

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	bolt "go.etcd.io/bbolt"
)

func benchChannels(b testing.TB, db *DB, n int) []tilecast.Channel {
	b.Helper()
	chs := make([]tilecast.Channel, n)
	for i := range chs {
		// Scattered IDs like real ones, put in key order so the setup
		// itself stays linear (see enqueuer).
		id := fmt.Sprintf("%016x", uint64(i+1)*0x9e3779b97f4a7c15)
		chs[i] = tilecast.Channel{ID: id, URI: "http://127.0.0.1/ch/" + id, Created: db.now()}
	}
	slices.SortFunc(chs, func(a, b tilecast.Channel) int { return strings.Compare(a.ID, b.ID) })
	err := db.update(func(bk *buckets) error {
		for i := range chs {
			if err := bk.putChannel(&chs[i]); err != nil {
				return err
			}
			if err := bk.index(&chs[i]); err != nil {
				return err
			}
		}
		bk.delta.channels += len(chs) // what addChannel would count
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return chs
}

func fanOut(chs []tilecast.Channel, item string, tiles bool) []tilecast.Notification {
	ns := make([]tilecast.Notification, 0, 2*len(chs))
	body := make([]byte, 600)
	for _, ch := range chs {
		ns = append(ns, tilecast.Notification{ChannelID: ch.ID, Feed: "news", ItemID: item, Kind: tilecast.KindToast,
			Payload: body})
		if tiles {
			ns = append(ns, tilecast.Notification{ChannelID: ch.ID, Feed: "news", Kind: tilecast.KindTile,
				Payload: []byte(item)})
		}
	}
	return ns
}

// BenchmarkCommit1x1000: one new item to 1000 channels (a toast and a tile
// each; the tile replaces the previous iteration's).
func BenchmarkCommit1x1000(b *testing.B) {
	db, clk := mustOpen(b)
	chs := benchChannels(b, db, 1000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		item := fmt.Sprint("item-", i)
		if err := db.Commit(tilecast.Commit{Key: tilecast.FeedKey{Feed: "news"}, Seen: []string{item}, Now: clk.Now(), Notifications: fanOut(chs, item, true)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecord256: a batch of 256 sent retries (ledger, channel
// counters, re-keyed entries) across 256 channels.
func BenchmarkRecord256(b *testing.B) {
	db, clk := mustOpen(b)
	chs := benchChannels(b, db, 256)
	if err := db.Enqueue(fanOut(chs, "1", false)); err != nil {
		b.Fatal(err)
	}
	ps, err := db.Due(clk.Now(), 256, nil)
	if err != nil || len(ps) != 256 {
		b.Fatalf("Due = %d, %v", len(ps), err)
	}
	recs := make([]tilecast.Record, len(ps))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		at := clk.Now().Add(time.Duration(i) * time.Second)
		for j, p := range ps {
			recs[j] = tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpRetry, NextAttempt: at, Sent: true,
				Outcome: tilecast.Outcome{ChannelID: p.ChannelID, Feed: p.Feed, Kind: p.Kind, Status: 503, Action: tilecast.ActionRetry, Time: at}}
		}
		if err := db.Record(recs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDue256 reads 256 due entries out of 10k with their channels.
func BenchmarkDue256(b *testing.B) {
	db, clk := mustOpen(b)
	chs := benchChannels(b, db, 1000)
	for i := range 10 {
		if err := db.Enqueue(fanOut(chs, fmt.Sprint(i), false)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		ps, err := db.Due(clk.Now(), 256, nil)
		if err != nil || len(ps) != 256 {
			b.Fatalf("Due = %d, %v", len(ps), err)
		}
	}
}

// BenchmarkFanOut100k: one commit enqueues a toast and a tile for each of
// 100k channels, then the outbox is drained in Record batches of 256.
func BenchmarkFanOut100k(b *testing.B) {
	db, clk := mustOpen(b)
	chs := benchChannels(b, db, 100000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		item := fmt.Sprint("item-", i)
		start := time.Now()
		if err := db.Commit(tilecast.Commit{Key: tilecast.FeedKey{Feed: "news"}, Seen: []string{item}, Now: clk.Now(), Notifications: fanOut(chs, item, true)}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "commit-ms")
		recs := make([]tilecast.Record, 0, 256)
		for {
			ps, err := db.Due(clk.Now(), 256, nil)
			if err != nil {
				b.Fatal(err)
			}
			if len(ps) == 0 {
				break
			}
			recs = recs[:0]
			for _, p := range ps {
				recs = append(recs, tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone, Sent: true,
					Outcome: tilecast.Outcome{ChannelID: p.ChannelID, Feed: p.Feed, Kind: p.Kind, Status: 200, Action: tilecast.ActionDelivered}})
			}
			if err := db.Record(recs); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkSubscribers100k decodes the subscribers of a global feed among
// 100k channels on the default list.
func BenchmarkSubscribers100k(b *testing.B) {
	db, _ := mustOpen(b)
	benchChannels(b, db, 100000)
	f := &tilecast.Feed{Name: "news", URL: "http://127.0.0.1/news.xml"}
	b.ReportAllocs()
	for b.Loop() {
		subs, err := db.Subscribers(f, "")
		if err != nil || len(subs) != 100000 {
			b.Fatalf("Subscribers = %d, %v", len(subs), err)
		}
	}
}

// BenchmarkFanOut10kSize commits a toast and a tile to each of 10k channels
// and reports the state file's size (tx.Size: pages in use up to the high
// water mark) and the bytes the outbox and payload buckets take in leaf
// pages. One fresh file per iteration, so the numbers do not drift.
func BenchmarkFanOut10kSize(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		db, clk := mustOpen(b)
		chs := benchChannels(b, db, 10000)
		var before int64
		if err := db.bolt.View(func(tx *bolt.Tx) error { before = tx.Size(); return nil }); err != nil {
			b.Fatal(err)
		}
		ns := fanOut(chs, "item-1", true)
		b.StartTimer()
		if err := db.Commit(tilecast.Commit{Key: tilecast.FeedKey{Feed: "news"}, Seen: []string{"item-1"}, Now: clk.Now(), Notifications: ns}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		err := db.bolt.View(func(tx *bolt.Tx) error {
			b.ReportMetric(float64(tx.Size()), "file-B")
			b.ReportMetric(float64(tx.Size()-before), "growth-B")
			var leaf int
			for _, name := range []string{"outbox", "bodies"} {
				if bk := tx.Bucket([]byte(name)); bk != nil {
					leaf += bk.Stats().LeafInuse
				}
			}
			b.ReportMetric(float64(leaf), "outbox-leaf-B")
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkExpiredChannels: one listing of the 50 expired channels among
// 1k and 100k that never expire. The index makes both cost the same (the
// ratio of the two is ~1); a scan of every channel, as the sweep did
// before schema 5, grows with the second number.
func BenchmarkExpiredChannels(b *testing.B) {
	for _, never := range []int{1000, 100_000} {
		b.Run(fmt.Sprintf("never=%d", never), func(b *testing.B) {
			db, clk := mustOpen(b)
			benchChannels(b, db, never)
			var expired []tilecast.Channel
			for i := range 50 {
				expired = append(expired, addChannel(b, db, tilecast.Channel{URI: fmt.Sprintf("https://127.0.0.1/push/%d", i),
					Transport: tilecast.TransportWebPush, Expires: clk.Now().Add(-time.Duration(i+1) * time.Minute)}))
			}
			for b.Loop() {
				chs, err := db.ExpiredChannels(clk.Now(), 0)
				if err != nil || len(chs) != len(expired) {
					b.Fatalf("ExpiredChannels = %d, %v; want %d", len(chs), err, len(expired))
				}
			}
		})
	}
}
