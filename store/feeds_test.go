package store

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// A commit that fails leaves nothing behind: not the seen IDs, not the
// state, not the outbox entries.
func TestCommitAtomic(t *testing.T) {
	tests := []struct {
		name   string
		key    tilecast.FeedKey
		inject error
	}{
		{"hook fails at the end", tilecast.FeedKey{Feed: "news"}, errors.New("injected")},
		// The seen bucket name is over bbolt's 32 KiB key limit: the first
		// write fails ("late put fails" below covers a failure mid-way).
		{"feed key too large", tilecast.FeedKey{Feed: "news", User: strings.Repeat("u", 40000)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, clk := mustOpen(t)
			ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
			db.beforeCommit = func() error { return tt.inject }
			err := db.Commit(tilecast.Commit{Key: tt.key, State: tilecast.FeedState{Baselined: true}, Seen: []string{"1", "2"}, Now: clk.Now(),
				Notifications: []tilecast.Notification{toast(ch, "news", "1"), tile(ch, "news", "T")}})
			if err == nil {
				t.Fatal("Commit succeeded")
			}
			if tt.inject != nil && !errors.Is(err, tt.inject) {
				t.Errorf("err = %v, want the injected error", err)
			}
			assertNothingCommitted(t, db, tt.key)
		})
	}
	t.Run("late put fails", func(t *testing.T) {
		// A tile whose feed name makes its tile_waiting key too large fails
		// after the seen IDs, the state and one outbox entry were put.
		db, clk := mustOpen(t)
		ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
		k := tilecast.FeedKey{Feed: "news"}
		bad := tile(ch, "news", "T")
		bad.Feed = strings.Repeat("f", 40000) // tile_waiting key too large
		err := db.Commit(tilecast.Commit{Key: k, State: tilecast.FeedState{Baselined: true}, Seen: []string{"1", "2"}, Now: clk.Now(),
			Notifications: []tilecast.Notification{toast(ch, "news", "1"), bad}})
		if err == nil {
			t.Fatal("Commit succeeded")
		}
		assertNothingCommitted(t, db, k)
	})
}

func assertNothingCommitted(t *testing.T, db *DB, k tilecast.FeedKey) {
	t.Helper()
	if k.User == "" {
		if _, ok, _ := db.FeedState(k); ok {
			t.Error("feed state was saved")
		}
		if u, _ := db.Unseen(k, []string{"1", "2"}); len(u) != 2 {
			t.Errorf("seen IDs were saved: Unseen = %v", u)
		}
	}
	if s, _ := db.Counts(); s.OutboxDepth != 0 {
		t.Errorf("outbox has %d entries", s.OutboxDepth)
	}
	err := db.view(func(b *buckets) error {
		if n := b.seen.Stats().KeyN; n != 0 {
			t.Errorf("seen holds %d keys", n)
		}
		if n := b.feedState.Stats().KeyN; n != 0 {
			t.Errorf("feedstate holds %d keys", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A badge is state like a tile, apart from it: a newer badge for the same
// channel+feed replaces a waiting one (not the tile, not another feed's),
// an unchanged badge is not sent again, and a removed channel's badge
// state goes with it.
func TestBadgeCoalescingAndLastBadge(t *testing.T) {
	db, clk := mustOpen(t)
	a := addChannel(t, db, tilecast.Channel{URI: "https://a.notify.windows.com/w/?token=a", Transport: tilecast.TransportWNS})
	k := tilecast.FeedKey{Feed: "news"}
	badge := func(ch tilecast.Channel, feed, body string) tilecast.Notification {
		return tilecast.Notification{ChannelID: ch.ID, Feed: feed, Kind: tilecast.KindBadge, Payload: []byte(body)}
	}
	commit := func(ns ...tilecast.Notification) {
		t.Helper()
		if err := db.Commit(tilecast.Commit{Key: k, Seen: []string{"x"}, Now: clk.Now(), Notifications: ns}); err != nil {
			t.Fatal(err)
		}
	}
	bodies := func(ch tilecast.Channel) []string {
		var out []string
		for _, p := range outboxOf(t, db, ch.ID, clk.Now()) {
			out = append(out, string(p.Kind)+":"+string(p.Payload))
		}
		return out
	}
	commit(tile(a, "news", "T1"), badge(a, "news", "B1"), badge(a, "weather", "W1"))
	commit(tile(a, "news", "T2"), badge(a, "news", "B2"))
	if got := bodies(a); !slices.Equal(got, []string{"badge:W1", "tile:T2", "badge:B2"}) {
		t.Errorf("a = %v: B2 replaces B1 and T2 replaces T1, each on its own; the other feed's badge stays", got)
	}
	ps, _ := db.Due(clk.Now(), 100, nil)
	var recs []tilecast.Record
	for _, p := range ps {
		recs = append(recs, tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone, Sent: true,
			Outcome: tilecast.Outcome{Action: tilecast.ActionDelivered}})
	}
	if err := db.Record(recs); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	// The badge shown is B2: an unchanged badge is skipped even when the
	// tile changed, and the unchanged tile is skipped even when the badge did.
	commit(tile(a, "news", "T3"), badge(a, "news", "B2"))
	if got := bodies(a); !slices.Equal(got, []string{"tile:T3"}) {
		t.Errorf("a = %v, want only the changed tile", got)
	}
	commit(tile(a, "news", "T2"), badge(a, "news", "B3"))
	if got := bodies(a); !slices.Equal(got, []string{"badge:B3"}) {
		t.Errorf("a = %v, want only the changed badge (T2 replaced T3 and equals the tile shown)", got)
	}
	// Removing the channel removes its waiting badge and what it last showed.
	if err := db.RemoveChannel(a.ID); err != nil {
		t.Fatal(err)
	}
	b := addChannel(t, db, tilecast.Channel{URI: "https://a.notify.windows.com/w/?token=a", Transport: tilecast.TransportWNS})
	commit(badge(b, "news", "B2"))
	if got := bodies(b); !slices.Equal(got, []string{"badge:B2"}) {
		t.Errorf("re-registered channel = %v: its badge state starts afresh", got)
	}
}
