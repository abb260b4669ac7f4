package storetest

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

func feedTests() []test {
	return []test{
		{"FeedState", testFeedState},
		{"Unseen", testUnseen},
		{"Commit", testCommit},
		{"CommitAtomic", testCommitAtomic},
		{"CommitPrunesSeenAfter30Days", testCommitPrunesSeen},
		{"TileCoalescingAndLastTile", testTileCoalescingAndLastTile},
		{"BadgeCoalescingAndLastBadge", testBadgeCoalescingAndLastBadge},
		{"SubscribersAfterPages", testSubscribersAfterPages},
		{"FanOutJobLifecycle", testFanOutJobLifecycle},
		{"FanOutResumes", testFanOutResumes},
		{"FailpointInsideTransactions", testFailpointInsideTransactions},
	}
}

func testFeedState(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	k := tilecast.FeedKey{Feed: "mail", User: "ana"}
	if _, ok, err := db.FeedState(k); ok || err != nil {
		t.Fatalf("FeedState before save = %v, %v", ok, err)
	}
	st := tilecast.FeedState{
		Validators: tilecast.Validators{ETag: `"x"`, LastModified: "Mon"},
		Baselined:  true, LastFetch: clk.Now(), LastResult: "ok", Failures: 2, Title: "Mail",
		LastSuccess: clk.Now().Add(-time.Minute), FailingSince: clk.Now().Add(-time.Hour), NextFetch: clk.Now().Add(time.Hour),
		Link: "http://127.0.0.1/mail", SeenRefreshed: clk.Now(),
		Latest: &tilecast.TemplateData{NewCount: 3, User: "ana", Feed: tilecast.FeedInfo{Name: "mail", Title: "Mail"},
			Item:  tilecast.Item{ID: "1", Title: "t", Published: clk.Now()},
			Items: []tilecast.Item{{ID: "1", Title: "t", Published: clk.Now()}}},
	}
	must(t, db.SaveFeedState(k, st))
	must(t, db.SaveFeedState(tilecast.FeedKey{Feed: "mail"}, tilecast.FeedState{Title: "global"}))
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
	// A title with bytes a feed may send is kept as far as text allows,
	// and never fails the save.
	odd := tilecast.FeedState{Title: "odd \x00 title", LastResult: "http 500: \xff"}
	must(t, db.SaveFeedState(tilecast.FeedKey{Feed: "odd"}, odd))
	if got, ok, err := db.FeedState(tilecast.FeedKey{Feed: "odd"}); err != nil || !ok || !strings.HasPrefix(got.Title, "odd ") {
		t.Errorf("odd state = %+v, %v, %v", got, ok, err)
	}
}

func testUnseen(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	k := tilecast.FeedKey{Feed: "news"}
	long := strings.Repeat("g", 40000) // stored as a hash
	odd := "id with \x00 and \xff"     // feeds send any bytes
	got, err := db.Unseen(k, []string{"b", "a", "b", "", "c"})
	if err != nil || !slices.Equal(got, []string{"b", "a", "c"}) {
		t.Errorf("Unseen on an empty set = %v, %v", got, err)
	}
	must(t, db.Commit(tilecast.Commit{Key: k, Seen: []string{"a", "c", long, odd}, Now: clk.Now()}))
	got, err = db.Unseen(k, []string{"d", "a", long, "b", "d", "c", "e", odd, long + "x"})
	if err != nil || !slices.Equal(got, []string{"d", "b", "e", long + "x"}) {
		t.Errorf("Unseen = %v, %v; want [d b e <long>x]", got, err)
	}
	// Seen sets are per feed key.
	got, _ = db.Unseen(tilecast.FeedKey{Feed: "news", User: "ana"}, []string{"a"})
	if !slices.Equal(got, []string{"a"}) {
		t.Errorf("Unseen(other key) = %v, want [a]", got)
	}
}

func testCommit(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	k := tilecast.FeedKey{Feed: "news"}
	n := toast(ch, "news", "item-3")
	later := clk.Now().Add(time.Hour)
	n2 := toast(ch, "news", "item-4")
	n2.NextAttempt = later
	gone := toast(tilecast.Channel{ID: "vanished"}, "news", "item-3")
	st := tilecast.FeedState{Baselined: true, LastResult: "ok"}
	must(t, db.Commit(tilecast.Commit{Key: k, State: st, Seen: []string{"item-1", "item-2"}, Now: clk.Now(),
		Notifications: []tilecast.Notification{n, n2, gone}}))
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
	if !bytes.Equal(ps[0].Payload, n.Payload) || ps[0].Channel.URI != ch.URI || ps[0].ItemID != "item-3" ||
		ps[0].Feed != "news" || ps[0].Kind != tilecast.KindToast || ps[0].Attempts != 0 {
		t.Errorf("entry = %+v", ps[0])
	}
	if due, _ := db.Due(clk.Now(), 10, nil); len(due) != 1 {
		t.Errorf("Due(now) = %d entries, want 1 (the other is an hour later)", len(due))
	}
	if nd, _ := db.NextDue(); !nd.Equal(clk.Now()) {
		t.Errorf("NextDue = %v, want %v", nd, clk.Now())
	}
	// Every field of a notification is kept as given.
	full := tilecast.Notification{ChannelID: ch.ID, Feed: "inbox", User: "ana", ItemID: "i\x00\xff", Kind: tilecast.KindRaw,
		Payload: []byte{0, 1, 2, 0xff}, Attempts: 3, NextAttempt: clk.Now().Add(2 * time.Hour), Created: clk.Now().Add(-time.Hour)}
	must(t, db.Commit(tilecast.Commit{Key: tilecast.FeedKey{Feed: "inbox", User: "ana"}, Now: clk.Now(),
		Notifications: []tilecast.Notification{full}}))
	ps = outboxOf(t, db, ch.ID, clk.Now())
	if len(ps) != 3 {
		t.Fatalf("outbox = %d entries, want 3", len(ps))
	}
	got := ps[2].Notification
	full.ID = got.ID
	if !reflect.DeepEqual(got, full) {
		t.Errorf("entry = %+v, want %+v", got, full)
	}
}

// A commit that fails leaves nothing behind: not the seen IDs, not the
// state, not the outbox entries, not the job.
func testCommitAtomic(t *testing.T, newState NewState) {
	k := tilecast.FeedKey{Feed: "news"}
	t.Run("crash before commit", func(t *testing.T) {
		h := newHarness(t, newState)
		db, clk := h.db, h.clk
		ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
		defer h.setFailpoint(func(point string) {
			if point == tilecast.FailInCommit {
				panic("crash in commit")
			}
		})()
		for _, c := range []tilecast.Commit{
			{Key: k, State: tilecast.FeedState{Baselined: true, Broken: true}, Seen: []string{"1", "2"}, Now: clk.Now(),
				Notifications: []tilecast.Notification{toast(ch, "news", "1"), tile(ch, "news", "T")}},
			{Key: k, State: tilecast.FeedState{Baselined: true}, Seen: []string{"1", "2"}, Now: clk.Now(),
				FanOut: &tilecast.FanOutJob{Feed: "news", Now: clk.Now()}},
		} {
			if !panics(func() { _ = db.Commit(c) }) {
				t.Fatal("Commit returned although its failpoint panicked")
			}
			assertNothingCommitted(t, db, k)
		}
	})
	t.Run("a write fails mid-way", func(t *testing.T) {
		// The second notification has no channel: the commit fails after
		// the seen IDs, the state and the first entry were written.
		h := newHarness(t, newState)
		db, clk := h.db, h.clk
		ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
		bad := toast(ch, "news", "2")
		bad.ChannelID = ""
		err := db.Commit(tilecast.Commit{Key: k, State: tilecast.FeedState{Baselined: true, Broken: true}, Seen: []string{"1", "2"},
			Now: clk.Now(), Notifications: []tilecast.Notification{toast(ch, "news", "1"), bad}})
		if err == nil {
			t.Fatal("Commit succeeded")
		}
		assertNothingCommitted(t, db, k)
	})
	t.Run("a second job for the feed", func(t *testing.T) {
		h := newHarness(t, newState)
		db, clk := h.db, h.clk
		job := &tilecast.FanOutJob{Feed: "news", Now: clk.Now()}
		must(t, db.Commit(tilecast.Commit{Key: k, State: tilecast.FeedState{Baselined: true}, Seen: []string{"1"}, Now: clk.Now(), FanOut: job}))
		err := db.Commit(tilecast.Commit{Key: k, State: tilecast.FeedState{Baselined: true, Broken: true}, Seen: []string{"2"}, Now: clk.Now(), FanOut: job})
		if err == nil || !strings.Contains(err.Error(), "unfinished delivery") {
			t.Fatalf("second job: %v", err)
		}
		if st, _, _ := db.FeedState(k); st.Broken {
			t.Error("the refused commit saved its state")
		}
		if u, _ := db.Unseen(k, []string{"1", "2"}); !slices.Equal(u, []string{"2"}) {
			t.Errorf("Unseen = %v: the refused commit marked its items", u)
		}
	})
}

func assertNothingCommitted(t *testing.T, db Backend, k tilecast.FeedKey) {
	t.Helper()
	if _, ok, _ := db.FeedState(k); ok {
		t.Error("feed state was saved")
	}
	if states, _ := db.FeedStates(); len(states) != 0 {
		t.Errorf("feed states %v were saved", states)
	}
	if u, _ := db.Unseen(k, []string{"1", "2"}); len(u) != 2 {
		t.Errorf("seen IDs were saved: Unseen = %v", u)
	}
	if s, _ := db.Counts(); s.OutboxDepth != 0 || len(s.Broken) != 0 {
		t.Errorf("counts %+v: the outbox or a broken state was written", s)
	}
	if due, _ := db.Due(farFuture, 100, nil); len(due) != 0 {
		t.Errorf("outbox has %d entries", len(due))
	}
	if jobs, _ := db.FanOutJobs(); len(jobs) != 0 {
		t.Errorf("jobs %+v were saved", jobs)
	}
}

func testCommitPrunesSeen(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	k := tilecast.FeedKey{Feed: "news"}
	commit := func(seen ...string) {
		t.Helper()
		must(t, db.Commit(tilecast.Commit{Key: k, Seen: seen, Now: clk.Now()}))
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

// Tiles are state: a newer tile replaces a waiting one, and a tile equal
// to the last one delivered to the channel+feed is not sent again.
func testTileCoalescingAndLastTile(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	a := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	b := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/b"})
	k := tilecast.FeedKey{Feed: "news"}
	commit := func(ns ...tilecast.Notification) {
		t.Helper()
		must(t, db.Commit(tilecast.Commit{Key: k, Seen: []string{"x"}, Now: clk.Now(), Notifications: ns}))
	}
	bodies := func(ch tilecast.Channel) []string { return outboxBodies(t, db, ch.ID, clk.Now()) }
	deliver := func(action tilecast.Action) {
		t.Helper()
		ps, _ := db.Due(clk.Now(), 100, nil)
		var recs []tilecast.Record
		for _, p := range ps {
			recs = append(recs, tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone, Sent: true, Outcome: tilecast.Outcome{Action: action}})
		}
		must(t, db.Record(recs))
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
	deliver(tilecast.ActionDelivered)
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
	// Enqueue follows the same rules, within one call too.
	must(t, db.Enqueue([]tilecast.Notification{tile(a, "news", "T2"), tile(a, "news", "T4"), tile(a, "news", "T5")}))
	if got := bodies(a); !slices.Equal(got, []string{"tile:T5"}) {
		t.Errorf("a after Enqueue = %v, want [tile:T5]", got)
	}
	// A suppressed (not delivered) tile does not become the last tile.
	deliver(tilecast.ActionDropped)
	commit(tile(a, "news", "T5"))
	if got := bodies(a); !slices.Equal(got, []string{"tile:T5"}) {
		t.Errorf("a = %v: a dropped tile is sent again", got)
	}
	// Another feed's last tile is its own.
	commit(tile(a, "weather", "W1"))
	if got := bodies(a); !slices.Equal(got, []string{"tile:T5"}) {
		t.Errorf("a = %v: W1 was delivered for weather", got)
	}
	// A fan-out step follows them too.
	must(t, db.Commit(tilecast.Commit{Key: tilecast.FeedKey{Feed: "sports"}, Now: clk.Now(), FanOut: &tilecast.FanOutJob{Feed: "sports", Now: clk.Now()}}))
	must(t, db.FanOutStep(tilecast.FanOutJob{Feed: "sports", Now: clk.Now()}, "", []tilecast.Notification{
		tile(a, "news", "T6"), tile(b, "news", "T2"), tile(a, "news", "T7")}, true))
	if got := bodies(a); !slices.Equal(got, []string{"tile:T7"}) {
		t.Errorf("a after a fan-out step = %v, want [tile:T7]", got)
	}
	if got := bodies(b); !slices.Equal(got, []string{"tile:T2"}) {
		t.Errorf("b after a fan-out step = %v, want [tile:T2] (it waits; nothing delivered yet)", got)
	}
}

// A badge is state like a tile, apart from it: a newer badge for the same
// channel+feed replaces a waiting one (not the tile, not another feed's),
// an unchanged badge is not sent again (Commit, Enqueue, a fan-out step),
// and a removed channel's badge state goes with it.
func testBadgeCoalescingAndLastBadge(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	uri := "https://a.notify.windows.com/w/?token=a"
	a := addChannel(t, db, tilecast.Channel{URI: uri, Transport: tilecast.TransportWNS})
	k := tilecast.FeedKey{Feed: "news"}
	commit := func(ns ...tilecast.Notification) {
		t.Helper()
		must(t, db.Commit(tilecast.Commit{Key: k, Seen: []string{"x"}, Now: clk.Now(), Notifications: ns}))
	}
	bodies := func(ch tilecast.Channel) []string { return outboxBodies(t, db, ch.ID, clk.Now()) }
	commit(tile(a, "news", "T1"), badge(a, "news", "B1"), badge(a, "weather", "W1"))
	commit(tile(a, "news", "T2"), badge(a, "news", "B2"))
	if got := bodies(a); !slices.Equal(got, []string{"badge:W1", "tile:T2", "badge:B2"}) {
		t.Errorf("a = %v: B2 replaces B1 and T2 replaces T1, each on its own; the other feed's badge stays", got)
	}
	ps := mustDue(t, db, clk.Now())
	var recs []tilecast.Record
	for _, p := range ps {
		recs = append(recs, tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone, Sent: true,
			Outcome: tilecast.Outcome{Action: tilecast.ActionDelivered}})
	}
	must(t, db.Record(recs))
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
	// Enqueue and a fan-out step follow the same rules, within one call too.
	must(t, db.Enqueue([]tilecast.Notification{badge(a, "news", "B4"), badge(a, "news", "B5")}))
	if got := bodies(a); !slices.Equal(got, []string{"badge:B5"}) {
		t.Errorf("a after Enqueue = %v, want [badge:B5]", got)
	}
	must(t, db.Commit(tilecast.Commit{Key: tilecast.FeedKey{Feed: "sports"}, Now: clk.Now(), FanOut: &tilecast.FanOutJob{Feed: "sports", Now: clk.Now()}}))
	must(t, db.FanOutStep(tilecast.FanOutJob{Feed: "sports", Now: clk.Now()}, "", []tilecast.Notification{
		badge(a, "news", "B6"), badge(a, "news", "B2")}, true))
	if got := bodies(a); len(got) != 0 {
		t.Errorf("a after a fan-out step = %v: back to the badge shown, nothing to send", got)
	}
	// Removing the channel removes its waiting badge and what it last showed.
	commit(badge(a, "news", "B7"))
	must(t, db.RemoveChannel(a.ID))
	b := addChannel(t, db, tilecast.Channel{URI: uri, Transport: tilecast.TransportWNS})
	if got := bodies(b); len(got) != 0 {
		t.Errorf("re-registered channel = %v: the removed channel's badge went with it", got)
	}
	commit(badge(b, "news", "B2"))
	if got := bodies(b); !slices.Equal(got, []string{"badge:B2"}) {
		t.Errorf("re-registered channel = %v: its badge state starts afresh", got)
	}
}

// Every page size walks the default list, then the feed's own
// subscribers, each exactly once, and ends with "".
func testSubscribersAfterPages(t *testing.T, newState NewState) {
	db := newHarness(t, newState).db
	var want []string
	for i, feeds := range [][]string{nil, {"news"}, {"news", "sports"}, {"sports"}, nil, {"news"}, {"news"}} {
		ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/c" + string(rune('a'+i)), Feeds: feeds})
		if feeds == nil || slices.Contains(feeds, "news") {
			want = append(want, ch.ID)
		}
	}
	f := &tilecast.Feed{Name: "news", URL: "http://127.0.0.1/news.xml"}
	slices.Sort(want)
	for limit := 1; limit <= len(want)+1; limit++ {
		var got []string
		cursor, pages := "", 0
		for {
			page, next, err := db.SubscribersAfter(f, cursor, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(page))
			}
			for _, ch := range page {
				got = append(got, ch.ID)
			}
			if pages++; next == "" || pages > 100 {
				break
			}
			cursor = next
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: got %v, want %v", limit, got, want)
		}
	}
	if _, _, err := db.SubscribersAfter(&tilecast.Feed{Name: "inbox", URL: "http://127.0.0.1/{user}"}, "", 10); err == nil {
		t.Error("paging a per-user feed: no error")
	}
}

// A Commit starts a job, steps enqueue and move it, the last step deletes
// it; a second job for the same feed, a step for a finished job and a
// commit mixing both kinds are refused.
func testFanOutJobLifecycle(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	a := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a", Feeds: []string{"news"}})
	k := tilecast.FeedKey{Feed: "news"}
	job := tilecast.FanOutJob{Feed: "news", Info: tilecast.FeedInfo{Name: "news", Title: "News"},
		Fresh: []tilecast.Item{{ID: "1", Title: "one", Published: clk.Now()}}, Now: clk.Now()}
	c := tilecast.Commit{Key: k, State: tilecast.FeedState{Baselined: true}, Seen: []string{"1"}, Now: clk.Now(), FanOut: &job}
	must(t, db.Commit(c))
	if err := db.Commit(c); err == nil || !strings.Contains(err.Error(), "unfinished delivery") {
		t.Errorf("second job for the feed: %v", err)
	}
	mixed := c
	mixed.Key = tilecast.FeedKey{Feed: "sports"}
	mixed.FanOut = &tilecast.FanOutJob{Feed: "sports"}
	mixed.Notifications = []tilecast.Notification{toast(a, "sports", "1")}
	if err := db.Commit(mixed); err == nil {
		t.Error("a commit with both a job and notifications was accepted")
	}
	jobs, err := db.FanOutJobs()
	if err != nil || len(jobs) != 1 || !reflect.DeepEqual(jobs[0], job) {
		t.Fatalf("jobs = %+v, %v; want %+v", jobs, err, job)
	}

	job.Cursor = "somewhere"
	must(t, db.FanOutStep(job, "", []tilecast.Notification{toast(a, "news", "1")}, false))
	jobs, err = db.FanOutJobs()
	if err != nil || len(jobs) != 1 || jobs[0].Cursor != "somewhere" || jobs[0].Fresh[0].ID != "1" {
		t.Fatalf("jobs = %+v, %v", jobs, err)
	}
	// A step for the page already stepped past (another instance read it
	// at the old cursor) enqueues nothing and leaves the job where it is.
	stale := job
	stale.Cursor = "elsewhere"
	if err := db.FanOutStep(stale, "", []tilecast.Notification{toast(a, "news", "2")}, false); !errors.Is(err, tilecast.ErrFanOutMoved) {
		t.Errorf("a step from a stale cursor: %v, want ErrFanOutMoved", err)
	}
	if jobs, _ := db.FanOutJobs(); len(jobs) != 1 || jobs[0].Cursor != "somewhere" {
		t.Errorf("jobs after a stale step = %+v, want the cursor left at somewhere", jobs)
	}
	must(t, db.FanOutStep(job, "somewhere", nil, true))
	if jobs, _ := db.FanOutJobs(); len(jobs) != 0 {
		t.Errorf("jobs after the last step: %+v", jobs)
	}
	if err := db.FanOutStep(job, "somewhere", []tilecast.Notification{toast(a, "news", "1")}, false); !errors.Is(err, tilecast.ErrFanOutMoved) {
		t.Errorf("a step for a finished job: %v, want ErrFanOutMoved (it would send a page twice)", err)
	}
	due, err := db.Due(clk.Now(), 10, func(uint64) bool { return false })
	if err != nil || len(due) != 1 {
		t.Errorf("outbox: %d entries, %v; want the one page entry", len(due), err)
	}
}

// A paged delivery interrupted between steps (the store closed and opened
// again) resumes from the saved job: every subscriber gets the page
// entry once, and a channel registered after the run started is known by
// its creation time (the caller skips it: it got the tile on subscribing).
func testFanOutResumes(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	clk := h.clk
	var want []string
	for i := range 23 {
		feeds := []string{"news"}
		if i%3 == 0 {
			feeds = nil
		}
		want = append(want, addChannel(t, h.db, tilecast.Channel{URI: "http://127.0.0.1/s/" + string(rune('a'+i)), Feeds: feeds}).ID)
	}
	addChannel(t, h.db, tilecast.Channel{URI: "http://127.0.0.1/other", Feeds: []string{"sports"}})
	f := &tilecast.Feed{Name: "news", URL: "http://127.0.0.1/news.xml"}
	start := clk.Now()
	must(t, h.db.Commit(tilecast.Commit{Key: tilecast.FeedKey{Feed: "news"}, State: tilecast.FeedState{Baselined: true},
		Seen: []string{"n1"}, Now: start, FanOut: &tilecast.FanOutJob{Feed: "news", Fresh: []tilecast.Item{{ID: "n1"}}, Now: start}}))
	clk.Add(time.Second)
	late := addChannel(t, h.db, tilecast.Channel{URI: "http://127.0.0.1/late", Feeds: []string{"news"}})

	step := func() bool {
		t.Helper()
		jobs, err := h.db.FanOutJobs()
		if err != nil || len(jobs) != 1 {
			t.Fatalf("jobs = %+v, %v", jobs, err)
		}
		job := jobs[0]
		page, next, err := h.db.SubscribersAfter(f, job.Cursor, 5)
		if err != nil {
			t.Fatal(err)
		}
		var ns []tilecast.Notification
		for _, ch := range page {
			if ch.Created.After(job.Now) {
				if ch.ID != late.ID {
					t.Errorf("channel %s created %v, after the run's %v", ch.ID, ch.Created, job.Now)
				}
				continue
			}
			n := toast(ch, "news", "n1")
			n.Created = job.Now
			ns = append(ns, n)
		}
		from := job.Cursor
		job.Cursor = next
		must(t, h.db.FanOutStep(job, from, ns, next == ""))
		return next == ""
	}
	step()
	step()
	h.reopen()
	for i := 0; !step(); i++ {
		if i > 20 {
			t.Fatal("the fan-out does not end")
		}
		if i == 1 {
			h.reopen()
		}
	}
	var got []string
	for _, p := range mustDue(t, h.db, farFuture) {
		got = append(got, p.ChannelID)
		if !p.Created.Equal(start) {
			t.Errorf("entry of %s created %v, want the run's %v", p.ChannelID, p.Created, start)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("entries for %v, want one for each of %v", got, want)
	}
}

func mustDue(tb testing.TB, db Backend, at time.Time) []tilecast.Pending {
	tb.Helper()
	ps, err := db.Due(at, 1<<30, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return ps
}

// The failpoint fires once per Commit and once per Record, inside the
// write transaction, when its writes are complete but not yet visible to
// a reader: where the crash tests kill the daemon "inside the diff tx"
// and "inside the mark-sent tx" (reliability.md S2 b, e).
func testFailpointInsideTransactions(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, c := h.db, h.clk
	type hit struct {
		point   string
		visible int // outbox entries a concurrent reader sees at the hit
	}
	var hits []hit
	defer h.setFailpoint(func(point string) {
		if point == tilecast.FailInMigrate {
			return
		}
		// A reader in another goroutine sees the last committed state.
		seen := make(chan int, 1)
		go func() {
			due, err := db.Due(c.Now().Add(time.Hour), 100, func(uint64) bool { return false })
			if err != nil {
				t.Error(err)
			}
			seen <- len(due)
		}()
		hits = append(hits, hit{point, <-seen})
	})()
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	k := tilecast.FeedKey{Feed: "news"}
	must(t, db.Commit(tilecast.Commit{Key: k, State: tilecast.FeedState{Baselined: true}, Seen: []string{"1"}, Now: c.Now(),
		Notifications: []tilecast.Notification{toast(ch, "news", "1")}}))
	due, err := db.Due(c.Now(), 10, func(uint64) bool { return false })
	if err != nil || len(due) != 1 {
		t.Fatalf("after Commit: %d due, %v; want 1", len(due), err)
	}
	must(t, db.Record([]tilecast.Record{{ID: due[0].ID, Due: due[0].NextAttempt, Op: tilecast.OpDone, Sent: true,
		Outcome: tilecast.Outcome{ChannelID: ch.ID, Action: tilecast.ActionDelivered, Time: c.Now()}}}))
	want := []hit{
		{tilecast.FailInCommit, 0}, // the new entry is not visible yet
		{tilecast.FailInRecord, 1}, // the entry is still there for readers
	}
	if len(hits) != len(want) {
		t.Fatalf("hits = %+v, want %+v", hits, want)
	}
	for i := range want {
		if hits[i] != want[i] {
			t.Errorf("hit %d = %+v, want %+v", i, hits[i], want[i])
		}
	}
	if due, _ := db.Due(c.Now().Add(time.Hour), 10, func(uint64) bool { return false }); len(due) != 0 {
		t.Errorf("after Record: %d entries left, want 0", len(due))
	}
	// A panic at the failpoint of Record leaves the batch unapplied.
	must(t, db.Enqueue([]tilecast.Notification{toast(ch, "news", "2")}))
	ps := mustDue(t, db, farFuture)
	h.setFailpoint(func(point string) {
		if point == tilecast.FailInRecord {
			panic("crash in record")
		}
	})
	if !panics(func() {
		_ = db.Record([]tilecast.Record{{ID: ps[0].ID, Due: ps[0].NextAttempt, Op: tilecast.OpDead, Sent: true,
			Outcome: tilecast.Outcome{ChannelID: ch.ID, Action: tilecast.ActionFailed}}})
	}) {
		t.Fatal("Record returned although its failpoint panicked")
	}
	h.setFailpoint(nil)
	if got := mustDue(t, db, farFuture); len(got) != 1 || got[0].Attempts != 0 {
		t.Errorf("after the crashed record: %+v, want the entry as it was", got)
	}
	if dl, _ := db.DeadLetters(0); len(dl) != 0 {
		t.Errorf("dead letters %+v after the crashed record", dl)
	}
	if led, _ := db.Outcomes(ch.ID, "", time.Time{}); len(led) != 1 {
		t.Errorf("ledger %d entries, want only the first record's", len(led))
	}
	if got, _ := db.Channel(ch.ID); got.SendsToday != 1 || got.LastOutcome != "delivered" {
		t.Errorf("channel %+v after the crashed record, want the first record's effects only", got)
	}
}
