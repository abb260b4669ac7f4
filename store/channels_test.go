package store

import (
	"slices"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

func addChannel(tb testing.TB, db *DB, ch tilecast.Channel) tilecast.Channel {
	tb.Helper()
	got, _, err := db.AddChannel(ch)
	if err != nil {
		tb.Fatal(err)
	}
	return got
}

func toast(ch tilecast.Channel, feed, item string) tilecast.Notification {
	return tilecast.Notification{
		ChannelID: ch.ID, Feed: feed, User: "", ItemID: item, Kind: tilecast.KindToast,
		Payload: []byte("toast " + item),
	}
}

func tile(ch tilecast.Channel, feed, body string) tilecast.Notification {
	return tilecast.Notification{
		ChannelID: ch.ID, Feed: feed, Kind: tilecast.KindTile,
		Payload: []byte(body),
	}
}

// outboxOf returns every outbox entry of a channel, in due order.
func outboxOf(tb testing.TB, db *DB, chID string, now time.Time) []tilecast.Pending {
	tb.Helper()
	ps, err := db.Due(now.Add(1000*time.Hour), 1<<30, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return slices.DeleteFunc(ps, func(p tilecast.Pending) bool { return p.ChannelID != chID })
}

// TestRemoveChannelLeavesNoIndexEntries: what removal means to a user
// (listings, subscribers, outbox, kept ledger) is the conformance suite's
// ChannelsAndRemove case; this checks bbolt's own indexes keep nothing of
// the removed channel.
func TestRemoveChannelLeavesNoIndexEntries(t *testing.T) {
	db, clk := mustOpen(t)
	victim := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/0", User: "ana", Feeds: []string{"news"}})
	if err := db.Enqueue([]tilecast.Notification{toast(victim, "news", "1"), tile(victim, "news", "T")}); err != nil {
		t.Fatal(err)
	}
	// A delivered tile leaves a last-tile hash (and its tile_waiting key).
	ps, _ := db.Due(clk.Now(), 10, nil)
	var recs []tilecast.Record
	for _, p := range ps {
		if p.Kind == tilecast.KindTile {
			recs = append(recs, tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone, Sent: true, Outcome: tilecast.Outcome{Action: tilecast.ActionDelivered, Feed: "news"}})
		}
	}
	if err := db.Record(recs); err != nil {
		t.Fatal(err)
	}
	if err := db.Enqueue([]tilecast.Notification{tile(victim, "news", "T2")}); err != nil {
		t.Fatal(err)
	}
	// The indexes do hold the channel before: the check below can fail.
	if err := db.view(func(b *buckets) error {
		if len(scanPrefix(b.tileLast, prefix(victim.ID))) == 0 || len(scanPrefix(b.chanFeed, joinStr("news", victim.ID))) == 0 {
			t.Fatal("no tile_last or channel_feed entries before the removal")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.RemoveChannel(victim.ID); err != nil {
		t.Fatal(err)
	}
	err := db.view(func(b *buckets) error {
		for _, x := range []struct {
			name string
			n    int
		}{
			{"tile_waiting", len(scanPrefix(b.tileWaiting, prefix(victim.ID)))},
			{"tile_last", len(scanPrefix(b.tileLast, prefix(victim.ID)))},
			{"outbox_channel", len(scanPrefix(b.outboxChan, prefix(victim.ID)))},
			{"channel_feed", len(scanPrefix(b.chanFeed, joinStr("news", victim.ID)))},
			{"channel_user", len(scanPrefix(b.chanUser, joinStr("ana", victim.ID)))},
		} {
			if x.n != 0 {
				t.Errorf("%s keeps %d entries of the removed channel", x.name, x.n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
