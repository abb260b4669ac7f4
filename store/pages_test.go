package store

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// ledgerFill records sent outcomes straight into the ledger: one per
// (channel, feed, age) with the given ages before now.
func ledgerFill(tb testing.TB, db *DB, chans []string, feeds []string, ages []time.Duration, now time.Time) {
	tb.Helper()
	if err := db.Record(ledgerRecords(chans, feeds, ages, now)); err != nil {
		tb.Fatal(err)
	}
}

// ledgerRecords are the Records of ledgerFill; each outcome's ItemID names
// it uniquely (channel/feed/age).
func ledgerRecords(chans []string, feeds []string, ages []time.Duration, now time.Time) []tilecast.Record {
	var recs []tilecast.Record
	id := uint64(1_000_000)
	for _, ch := range chans {
		for _, f := range feeds {
			for _, a := range ages {
				id++
				recs = append(recs, tilecast.Record{ID: id, Op: tilecast.OpDone, Sent: true, Outcome: tilecast.Outcome{
					Time: now.Add(-a), ChannelID: ch, Feed: f, Action: tilecast.ActionDelivered, ItemID: fmt.Sprint(ch, "/", f, "/", a)}})
			}
		}
	}
	return recs
}

// FuzzPageCursor: whatever a client sends as a cursor, the listings
// answer a page or ErrBadCursor, and never panic.
func FuzzPageCursor(f *testing.F) {
	f.Add("")
	f.Add(encodeCursor(cursorOutcomes, append([]byte("a\x00"), make([]byte, 16)...)))
	f.Add(encodeCursor(cursorChannels, []byte("0123456789abcdef")))
	f.Add(encodeCursor(cursorDead, seqKey(3)))
	f.Add("AQ")
	db, clk := mustOpen(f)
	ledgerFill(f, db, []string{"a", "b"}, []string{"news"}, []time.Duration{time.Hour}, clk.Now())
	addChannels(f, db, 3)
	f.Fuzz(func(t *testing.T, cursor string) {
		check := func(what string, err error) {
			if err != nil && !errors.Is(err, tilecast.ErrBadCursor) {
				t.Errorf("%s(%q): %v, want a page or ErrBadCursor", what, cursor, err)
			}
		}
		_, _, err := db.OutcomesPage(tilecast.OutcomeFilter{}, cursor, 2)
		check("OutcomesPage", err)
		_, _, err = db.OutcomesPage(tilecast.OutcomeFilter{Channel: "a", Since: clk.Now().Add(-time.Minute)}, cursor, 2)
		check("OutcomesPage(a)", err)
		_, _, err = db.ChannelsPage(tilecast.ChannelFilter{}, cursor, 2)
		check("ChannelsPage", err)
		_, _, err = db.DeadLettersPage(cursor, 2)
		check("DeadLettersPage", err)
	})
}
