package store

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

func TestFeedState(t *testing.T) {
	db, clk := mustOpen(t)
	k := tilecast.FeedKey{Feed: "mail", User: "ana"}
	if _, ok, err := db.FeedState(k); ok || err != nil {
		t.Fatalf("FeedState before save = %v, %v", ok, err)
	}
	st := tilecast.FeedState{
		Validators: tilecast.Validators{ETag: `"x"`, LastModified: "Mon"},
		Baselined:  true, LastFetch: clk.Now(), LastResult: "ok", Failures: 2, Title: "Mail",
		Latest: &tilecast.TemplateData{NewCount: 3, User: "ana", Items: []tilecast.Item{{ID: "1", Title: "t"}}},
	}
	if err := db.SaveFeedState(k, st); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveFeedState(tilecast.FeedKey{Feed: "mail"}, tilecast.FeedState{Title: "global"}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := db.FeedState(k)
	if err != nil || !ok || !reflect.DeepEqual(got, st) {
		t.Errorf("FeedState = %+v, %v, %v; want %+v", got, ok, err, st)
	}
	all, err := db.FeedStates()
	if err != nil || len(all) != 2 || all[k].Title != "Mail" || all[tilecast.FeedKey{Feed: "mail"}].Title != "global" {
		t.Errorf("FeedStates = %v, %v", all, err)
	}
	if err := db.SaveFeedState(tilecast.FeedKey{}, st); err == nil {
		t.Error("SaveFeedState with an empty feed name succeeded")
	}
}

func TestUnseen(t *testing.T) {
	db, clk := mustOpen(t)
	k := tilecast.FeedKey{Feed: "news"}
	long := strings.Repeat("g", 40000) // over bbolt's key limit: stored as a hash
	got, err := db.Unseen(k, []string{"b", "a", "b", "", "c"})
	if err != nil || !slices.Equal(got, []string{"b", "a", "c"}) {
		t.Errorf("Unseen on an empty set = %v, %v", got, err)
	}
	if err := db.Commit(tilecast.Commit{Key: k, Seen: []string{"a", "c", long}, Now: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	got, err = db.Unseen(k, []string{"d", "a", long, "b", "d", "c", "e"})
	if err != nil || !slices.Equal(got, []string{"d", "b", "e"}) {
		t.Errorf("Unseen = %v, %v; want [d b e]", got, err)
	}
	// Seen sets are per feed key.
	got, _ = db.Unseen(tilecast.FeedKey{Feed: "news", User: "ana"}, []string{"a"})
	if !slices.Equal(got, []string{"a"}) {
		t.Errorf("Unseen(other key) = %v, want [a]", got)
	}
}

func TestCommit(t *testing.T) {
	db, clk := mustOpen(t)
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	k := tilecast.FeedKey{Feed: "news"}
	n := toast(ch, "news", "item-3")
	n.Attempts = 0
	later := clk.Now().Add(time.Hour)
	n2 := toast(ch, "news", "item-4")
	n2.NextAttempt = later
	gone := toast(tilecast.Channel{ID: "vanished"}, "news", "item-3")
	st := tilecast.FeedState{Baselined: true, LastResult: "ok"}
	if err := db.Commit(tilecast.Commit{Key: k, State: st, Seen: []string{"item-1", "item-2"}, Now: clk.Now(),
		Notifications: []tilecast.Notification{n, n2, gone}}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := db.FeedState(k); !reflect.DeepEqual(got, st) {
		t.Errorf("state = %+v", got)
	}
	if u, _ := db.Unseen(k, []string{"item-1", "item-2", "item-3", "item-4", "item-5"}); !slices.Equal(u, []string{"item-5"}) {
		t.Errorf("Unseen = %v: the notifications' items are seen too", u)
	}
	ps := outboxOf(t, db, ch.ID, clk.Now())
	if len(ps) != 2 {
		t.Fatalf("outbox = %d entries, want 2 (the vanished channel's is dropped)", len(ps))
	}
	if ps[0].ID == 0 || ps[1].ID <= ps[0].ID {
		t.Errorf("IDs = %d, %d: want increasing sequences", ps[0].ID, ps[1].ID)
	}
	if !ps[0].NextAttempt.Equal(clk.Now()) || !ps[1].NextAttempt.Equal(later) {
		t.Errorf("NextAttempt = %v, %v", ps[0].NextAttempt, ps[1].NextAttempt)
	}
	if !ps[0].Created.Equal(clk.Now()) || !ps[1].Created.Equal(clk.Now()) {
		t.Errorf("Created = %v, %v; want commit time", ps[0].Created, ps[1].Created)
	}
	if !bytes.Equal(ps[0].Payload, n.Payload) || ps[0].Channel.URI != ch.URI {
		t.Errorf("entry = %+v", ps[0])
	}
	if due, _ := db.Due(clk.Now(), 10, nil); len(due) != 1 {
		t.Errorf("Due(now) = %d entries, want 1 (the other is an hour later)", len(due))
	}
	if nd, _ := db.NextDue(); !nd.Equal(clk.Now()) {
		t.Errorf("NextDue = %v, want %v", nd, clk.Now())
	}
}

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

func TestCommitPrunesSeenAfter30Days(t *testing.T) {
	db, clk := mustOpen(t)
	k := tilecast.FeedKey{Feed: "news"}
	commit := func(seen ...string) {
		t.Helper()
		if err := db.Commit(tilecast.Commit{Key: k, Seen: seen, Now: clk.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	commit("old", "kept")
	clk.Add(20 * 24 * time.Hour)
	commit("kept", "new")
	clk.Add(10*24*time.Hour + time.Second) // "old" last seen 30 days + 1 s ago
	// A commit without an item list (304, failed fetch) never prunes.
	commit()
	if u, _ := db.Unseen(k, []string{"old"}); len(u) != 0 {
		t.Errorf("a commit without Seen pruned: Unseen = %v", u)
	}
	commit("kept")
	u, _ := db.Unseen(k, []string{"old", "kept", "new"})
	if !slices.Equal(u, []string{"old"}) {
		t.Errorf("Unseen = %v, want [old] (pruned after 30 days; new is 10 days old)", u)
	}
	clk.Add(30 * 24 * time.Hour)
	commit("kept")
	u, _ = db.Unseen(k, []string{"old", "kept", "new"})
	if !slices.Equal(u, []string{"old", "new"}) {
		t.Errorf("Unseen = %v, want [old new]", u)
	}
}

func TestTileCoalescingAndLastTile(t *testing.T) {
	db, clk := mustOpen(t)
	a := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	b := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/b"})
	k := tilecast.FeedKey{Feed: "news"}
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
	commit(tile(a, "news", "T1"), toast(a, "news", "1"), tile(b, "news", "T1"), tile(a, "weather", "W1"))
	commit(tile(a, "news", "T2"), toast(a, "news", "2"))
	if got := bodies(a); !slices.Equal(got, []string{"toast:toast 1", "tile:W1", "tile:T2", "toast:toast 2"}) {
		t.Errorf("a = %v: T2 replaces T1, toasts and other feeds stay", got)
	}
	if got := bodies(b); !slices.Equal(got, []string{"tile:T1"}) {
		t.Errorf("b = %v", got)
	}
	// Deliver everything; a's T2 and b's T1 become the last tiles.
	ps, _ := db.Due(clk.Now(), 100, nil)
	var recs []tilecast.Record
	for _, p := range ps {
		recs = append(recs, tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone, Sent: true, Outcome: tilecast.Outcome{Action: tilecast.ActionDelivered}})
	}
	if err := db.Record(recs); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	commit(tile(a, "news", "T2"), tile(b, "news", "T2"))
	if got := bodies(a); len(got) != 0 {
		t.Errorf("a = %v: the unchanged tile is skipped", got)
	}
	if got := bodies(b); !slices.Equal(got, []string{"tile:T2"}) {
		t.Errorf("b = %v: a changed tile is sent", got)
	}
	// A waiting tile is removed when the newest equals the tile on the device.
	commit(tile(a, "news", "T3"))
	commit(tile(a, "news", "T2"))
	if got := bodies(a); len(got) != 0 {
		t.Errorf("a = %v: back to the delivered tile, nothing to send", got)
	}
	// Enqueue follows the same rules.
	if err := db.Enqueue([]tilecast.Notification{tile(a, "news", "T2"), tile(a, "news", "T4"), tile(a, "news", "T5")}); err != nil {
		t.Fatal(err)
	}
	if got := bodies(a); !slices.Equal(got, []string{"tile:T5"}) {
		t.Errorf("a after Enqueue = %v, want [tile:T5]", got)
	}
	// A suppressed (not delivered) tile does not become the last tile.
	ps, _ = db.Due(clk.Now(), 100, nil)
	recs = recs[:0]
	for _, p := range ps {
		recs = append(recs, tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone, Sent: true, Outcome: tilecast.Outcome{Action: tilecast.ActionDropped}})
	}
	if err := db.Record(recs); err != nil {
		t.Fatal(err)
	}
	commit(tile(a, "news", "T5"))
	if got := bodies(a); !slices.Equal(got, []string{"tile:T5"}) {
		t.Errorf("a = %v: a dropped tile is sent again", got)
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
