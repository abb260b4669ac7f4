package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// drainDelivered drains the outbox in Record batches of at most batch
// delivered outcomes, as the deliverer records a fan-out's sends, and
// returns the pages bbolt wrote for them (its documented Stats: TxStats.Write
// counts every dirty page, the freelist and the meta page of each commit)
// and the outcomes recorded.
func drainDelivered(tb testing.TB, db *DB, clk *clock, batch int) (pages, outcomes int64) {
	tb.Helper()
	for {
		ps, err := db.Due(clk.Now(), batch, nil)
		if err != nil {
			tb.Fatal(err)
		}
		if len(ps) == 0 {
			return pages, outcomes
		}
		at := clk.Add(time.Millisecond)
		recs := make([]tilecast.Record, 0, len(ps))
		for _, p := range ps {
			recs = append(recs, tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone, Sent: true,
				Outcome: tilecast.Outcome{Time: at, ChannelID: p.ChannelID, User: p.Channel.User, Feed: p.Feed,
					ItemID: p.ItemID, Kind: p.Kind, Status: 200, Notification: "Received", Subscription: "Active",
					Device: "Connected", Action: tilecast.ActionDelivered, Attempt: 1, Duration: 3 * time.Millisecond,
					Transport: tilecast.TransportMPNS}})
		}
		before := db.bolt.Stats()
		if err := db.Record(recs); err != nil {
			tb.Fatal(err)
		}
		after := db.bolt.Stats()
		pages += after.TxStats.GetWrite() - before.TxStats.GetWrite()
		outcomes += int64(len(recs))
	}
}

// BenchmarkRecordPages10k: what persisting a fan-out's outcomes writes.
// Each iteration enqueues a new item for 10k channels (a toast and a tile
// each) and records the 20k delivered outcomes in batches of 32 — half the
// send window at push.concurrency 32, what a burst's batch holds — and
// reports the pages bbolt wrote per outcome and per commit. A commit's
// cost grows with its pages (each is a write and part of the fdatasync),
// so this is the figure persistence changes are judged by; unlike a time
// it does not depend on what else the machine runs.
func BenchmarkRecordPages10k(b *testing.B) {
	const batch = 32
	db, clk := mustOpen(b)
	chs := benchChannels(b, db, 10000)
	var pages, outcomes, commits int64
	round := 0
	for b.Loop() {
		b.StopTimer()
		item := fmt.Sprint("item-", round)
		round++
		if err := db.Commit(tilecast.Commit{Key: tilecast.FeedKey{Feed: "news"}, Seen: []string{item}, Now: clk.Now(),
			Notifications: fanOut(chs, item, true)}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		p, n := drainDelivered(b, db, clk, batch)
		pages += p
		outcomes += n
		commits += (n + batch - 1) / batch
	}
	b.ReportMetric(float64(pages)/float64(outcomes), "pages/outcome")
	b.ReportMetric(float64(pages)/float64(commits), "pages/commit")
}

// BenchmarkRecordPagesFullLedger1k is BenchmarkRecordPages10k in a
// daemon's steady state: 1k channels whose ledgers are already full
// (LedgerPerChannel outcomes each, filled by untimed rounds first), so
// every outcome recorded also prunes its channel's oldest entry. The
// tilecast-bench fan-out starts from channels with empty ledgers and does
// not see this cost.
func BenchmarkRecordPagesFullLedger1k(b *testing.B) {
	const batch = 32
	db, clk := mustOpen(b)
	chs := benchChannels(b, db, 1000)
	round := 0
	next := func() (pages, outcomes int64) {
		item := fmt.Sprint("item-", round)
		round++
		if err := db.Commit(tilecast.Commit{Key: tilecast.FeedKey{Feed: "news"}, Seen: []string{item}, Now: clk.Now(),
			Notifications: fanOut(chs, item, true)}); err != nil {
			b.Fatal(err)
		}
		return drainDelivered(b, db, clk, batch)
	}
	for range LedgerPerChannel/2 + 1 { // two outcomes per channel and round
		next()
	}
	var pages, outcomes, commits int64
	for b.Loop() {
		p, n := next()
		pages += p
		outcomes += n
		commits += (n + batch - 1) / batch
	}
	b.ReportMetric(float64(pages)/float64(outcomes), "pages/outcome")
	b.ReportMetric(float64(pages)/float64(commits), "pages/commit")
}
