package store

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// pageAll walks a listing page by page, checking the cursor contract on
// the way: a full page hands out a cursor, a last page does not, no page
// is larger than limit. It returns the items in the order received.
func pageAll[T any](tb testing.TB, limit int, page func(cursor string) ([]T, string, error), between func()) []T {
	tb.Helper()
	var all []T
	cursor := ""
	for i := 0; ; i++ {
		items, next, err := page(cursor)
		if err != nil {
			tb.Fatalf("page %d: %v", i, err)
		}
		if len(items) > tilecast.PageLimit(limit) {
			tb.Fatalf("page %d has %d items, limit %d", i, len(items), limit)
		}
		all = append(all, items...)
		if next == "" {
			return all
		}
		if len(items) == 0 {
			tb.Fatalf("page %d is empty but announces a next page", i)
		}
		if i > 100_000 {
			tb.Fatal("paging does not end")
		}
		cursor = next
		if between != nil {
			between()
		}
	}
}

func channelIDs(chs []tilecast.Channel) []string {
	ids := make([]string, len(chs))
	for i, ch := range chs {
		ids[i] = ch.ID
	}
	return ids
}

func TestChannelsPageEveryChannelOnceInOrder(t *testing.T) {
	db, _ := mustOpen(t)
	var wantAna []string
	for i := range 237 {
		user := ""
		if i%3 == 0 {
			user = "ana"
		}
		ch := addChannel(t, db, tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/c%d", i), User: user})
		if user == "ana" {
			wantAna = append(wantAna, ch.ID)
		}
	}
	// A user whose name extends ana's must not leak into ana's listing.
	addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/anabel", User: "anabel"})
	all, err := db.Channels("")
	if err != nil {
		t.Fatal(err)
	}
	want := channelIDs(all)
	slices.Sort(want)
	slices.Sort(wantAna)

	for _, limit := range []int{1, 7, 100, 237, 238, 1000, 0} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			got := channelIDs(pageAll(t, limit, func(c string) ([]tilecast.Channel, string, error) {
				return db.ChannelsPage(tilecast.ChannelFilter{}, c, limit)
			}, nil))
			if !slices.Equal(got, want) {
				t.Errorf("all channels: got %d %v…, want %d in ID order", len(got), got[:min(3, len(got))], len(want))
			}
			got = channelIDs(pageAll(t, limit, func(c string) ([]tilecast.Channel, string, error) {
				return db.ChannelsPage(tilecast.ChannelFilter{User: "ana"}, c, limit)
			}, nil))
			if !slices.Equal(got, wantAna) {
				t.Errorf("ana's channels: got %d, want %d in ID order", len(got), len(wantAna))
			}
		})
	}
	// Exactly one full page: no cursor, since nothing follows.
	page, next, err := db.ChannelsPage(tilecast.ChannelFilter{User: "ana"}, "", len(wantAna))
	if err != nil || len(page) != len(wantAna) || next != "" {
		t.Errorf("one exact page: %d channels, next %q, %v; want %d and no next", len(page), next, err, len(wantAna))
	}
	if page, next, err := db.ChannelsPage(tilecast.ChannelFilter{User: "nobody"}, "", 10); err != nil || len(page) != 0 || next != "" {
		t.Errorf("unknown user: %d, %q, %v", len(page), next, err)
	}
}

// Inserts while a listing is paged (between pages and concurrently) never
// make a channel that existed before appear twice or not at all.
func TestChannelsPageWithConcurrentInserts(t *testing.T) {
	db, _ := mustOpen(t)
	before := map[string]bool{}
	for _, ch := range addChannels(t, db, 300) {
		before[ch.ID] = true
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, _, err := db.AddChannel(tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/new%d", i)}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	n := 0
	got := pageAll(t, 9, func(c string) ([]tilecast.Channel, string, error) {
		return db.ChannelsPage(tilecast.ChannelFilter{}, c, 9)
	}, func() {
		n++
		addChannel(t, db, tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/between%d", n)})
	})
	close(stop)
	wg.Wait()
	seen := map[string]bool{}
	for i, ch := range got {
		if seen[ch.ID] {
			t.Errorf("channel %s listed twice", ch.ID)
		}
		seen[ch.ID] = true
		if i > 0 && got[i-1].ID >= ch.ID {
			t.Errorf("out of order: %s after %s", ch.ID, got[i-1].ID)
		}
	}
	for id := range before {
		if !seen[id] {
			t.Errorf("channel %s, there before the listing started, was skipped", id)
		}
	}
	if len(got) <= len(before) {
		t.Logf("no channel inserted ahead of the cursor was listed (%d listed); allowed, but unlikely", len(got))
	}
}

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

func outcomeKeys(os []tilecast.Outcome) []string {
	out := make([]string, len(os))
	for i, o := range os {
		out[i] = o.ItemID
	}
	return out
}

func TestOutcomesPageFiltersAndOrder(t *testing.T) {
	db, clk := mustOpen(t)
	now := clk.Now()
	chans := []string{"c3", "c1", "c2", "c10"}
	ages := []time.Duration{50 * time.Hour, 30 * time.Hour, 5 * time.Hour, time.Hour, time.Minute}
	ledgerFill(t, db, chans, []string{"news", "mail"}, ages, now)

	// The expected order: channel ID, then time (then insertion).
	want := func(f tilecast.OutcomeFilter) []string {
		all, err := db.Outcomes(f.Channel, f.Feed, f.Since)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortStableFunc(all, func(a, b tilecast.Outcome) int {
			if c := strings.Compare(a.ChannelID, b.ChannelID); c != 0 {
				return c
			}
			return a.Time.Compare(b.Time)
		})
		return outcomeKeys(all)
	}
	filters := []tilecast.OutcomeFilter{
		{},
		{Feed: "mail"},
		{Since: now.Add(-6 * time.Hour)},
		{Since: now.Add(-6 * time.Hour), Feed: "news"},
		{Channel: "c1"},
		{Channel: "c10", Since: now.Add(-2 * time.Hour)},
		{Channel: "c2", Feed: "mail", Since: now.Add(-40 * time.Hour)},
		{Channel: "nosuch"},
		{Channel: "c", Feed: ""}, // a prefix of other channels' IDs
		{Since: now.Add(time.Hour)},
	}
	for _, f := range filters {
		w := want(f)
		for _, limit := range []int{1, 3, 10, 40, 1000} {
			t.Run(fmt.Sprintf("%+v/%d", f, limit), func(t *testing.T) {
				got := outcomeKeys(pageAll(t, limit, func(c string) ([]tilecast.Outcome, string, error) {
					return db.OutcomesPage(f, c, limit)
				}, nil))
				if !slices.Equal(got, w) {
					t.Errorf("got %v\nwant %v", got, w)
				}
			})
		}
	}
	if w := want(tilecast.OutcomeFilter{}); len(w) != len(chans)*2*len(ages) {
		t.Fatalf("setup: %d entries in the ledger, want %d", len(w), len(chans)*2*len(ages))
	}
}

func TestOutcomesPageWithConcurrentRecords(t *testing.T) {
	db, clk := mustOpen(t)
	now := clk.Now()
	var chans []string
	for i := range 40 {
		chans = append(chans, fmt.Sprintf("ch%02d", i))
	}
	ledgerFill(t, db, chans, []string{"news"}, []time.Duration{3 * time.Hour, 2 * time.Hour, time.Hour}, now)
	before, err := db.Outcomes("", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		// At most 400 writes: ≤ 10 more per channel keeps every ledger
		// under LedgerPerChannel, so pruning removes none of the entries
		// the listing must return.
		for i := range 400 {
			select {
			case <-stop:
				return
			default:
			}
			ch := chans[i%len(chans)]
			if i%5 == 0 {
				ch = fmt.Sprintf("zz-new-%d", i) // ahead of every cursor
			}
			recs := ledgerRecords([]string{ch}, []string{"news"}, []time.Duration{time.Duration(i) * time.Millisecond}, now)
			if err := db.Record(recs); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	got := pageAll(t, 7, func(c string) ([]tilecast.Outcome, string, error) {
		return db.OutcomesPage(tilecast.OutcomeFilter{}, c, 7)
	}, nil)
	close(stop)
	wg.Wait()
	seen := map[string]int{}
	for _, o := range got {
		seen[o.ItemID]++
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("entry %s listed %d times", k, n)
		}
	}
	for _, o := range before {
		if seen[o.ItemID] != 1 {
			t.Errorf("entry %s, there before the listing started, listed %d times", o.ItemID, seen[o.ItemID])
		}
	}
}

func TestDeadLettersPage(t *testing.T) {
	db, _ := mustOpen(t)
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	const n = 23
	var ns []tilecast.Notification
	for i := range n {
		ns = append(ns, toast(ch, "news", fmt.Sprint(i+1)))
	}
	if err := db.Enqueue(ns); err != nil {
		t.Fatal(err)
	}
	var recs []tilecast.Record
	for id := uint64(1); id <= n; id++ {
		recs = append(recs, tilecast.Record{ID: id, Op: tilecast.OpDead, Outcome: tilecast.Outcome{Action: tilecast.ActionFailed}})
	}
	if err := db.Record(recs); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := n; i >= 1; i-- {
		want = append(want, fmt.Sprint(i))
	}
	for _, limit := range []int{1, 5, 23, 100} {
		got := pageAll(t, limit, func(c string) ([]DeadLetter, string, error) { return db.DeadLettersPage(c, limit) }, nil)
		var items []string
		for _, d := range got {
			items = append(items, d.Notification.ItemID)
		}
		if !slices.Equal(items, want) {
			t.Errorf("limit %d: %v, want newest first %v", limit, items, want)
		}
	}
	// A cursor past the oldest leaves nothing; one before the newest
	// (from an older listing, newer letters since) continues below it.
	page, next, err := db.DeadLettersPage(encodeCursor(cursorDead, seqKey(1)), 10)
	if err != nil || len(page) != 0 || next != "" {
		t.Errorf("after the oldest: %d, %q, %v", len(page), next, err)
	}
	page, _, err = db.DeadLettersPage(encodeCursor(cursorDead, seqKey(1000)), 2)
	if err != nil || len(page) != 2 || page[0].Notification.ItemID != "23" {
		t.Errorf("from beyond the newest: %+v, %v", page, err)
	}
}

// Every malformed cursor is ErrBadCursor, for every listing, never a
// panic or a page from somewhere else.
func TestBadCursors(t *testing.T) {
	db, clk := mustOpen(t)
	ledgerFill(t, db, []string{"a", "b"}, []string{"news"}, []time.Duration{time.Hour, time.Minute}, clk.Now())
	_, good, err := db.OutcomesPage(tilecast.OutcomeFilter{}, "", 1)
	if err != nil || good == "" {
		t.Fatalf("first page: %q, %v", good, err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	flip := func(i int) string {
		b := slices.Clone(raw)
		b[i] ^= 0x01
		return base64.RawURLEncoding.EncodeToString(b)
	}
	chCursor := encodeCursor(cursorChannels, []byte("0123456789abcdef"))
	cases := []struct {
		name, cursor string
		filter       tilecast.OutcomeFilter
	}{
		{"garbage", "not a cursor!", tilecast.OutcomeFilter{}},
		{"not base64url", "AAAA+/==", tilecast.OutcomeFilter{}},
		{"empty body", base64.RawURLEncoding.EncodeToString([]byte{1}), tilecast.OutcomeFilter{}},
		{"cut short", good[:len(good)-3], tilecast.OutcomeFilter{}},
		{"one more byte", good + "A", tilecast.OutcomeFilter{}},
		{"version flipped", flip(0), tilecast.OutcomeFilter{}},
		{"key flipped", flip(4), tilecast.OutcomeFilter{}},
		{"checksum flipped", flip(len(raw) - 1), tilecast.OutcomeFilter{}},
		{"another listing's", chCursor, tilecast.OutcomeFilter{}},
		{"another channel's", good, tilecast.OutcomeFilter{Channel: "b"}},
		{"a valid checksum over a non-ledger key", encodeCursor(cursorOutcomes, []byte("no-nul")), tilecast.OutcomeFilter{}},
		{"too long", strings.Repeat("A", 4096), tilecast.OutcomeFilter{}},
		{"unknown version", func() string {
			b := []byte{9, cursorOutcomes, 'a', 0}
			return base64.RawURLEncoding.EncodeToString(b)
		}(), tilecast.OutcomeFilter{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			page, next, err := db.OutcomesPage(tc.filter, tc.cursor, 10)
			if !errors.Is(err, tilecast.ErrBadCursor) || page != nil || next != "" {
				t.Errorf("OutcomesPage(%q) = %d, %q, %v; want ErrBadCursor", tc.cursor, len(page), next, err)
			}
		})
	}
	if _, _, err := db.ChannelsPage(tilecast.ChannelFilter{}, good, 10); !errors.Is(err, tilecast.ErrBadCursor) {
		t.Errorf("ChannelsPage with a ledger cursor: %v", err)
	}
	if _, _, err := db.DeadLettersPage(chCursor, 10); !errors.Is(err, tilecast.ErrBadCursor) {
		t.Errorf("DeadLettersPage with a channel cursor: %v", err)
	}
	if _, _, err := db.DeadLettersPage(encodeCursor(cursorDead, []byte{1, 2, 3}), 10); !errors.Is(err, tilecast.ErrBadCursor) {
		t.Errorf("DeadLettersPage with a short key: %v", err)
	}
	if _, _, err := db.ChannelsPage(tilecast.ChannelFilter{}, encodeCursor(cursorChannels, []byte("a\x00b")), 10); !errors.Is(err, tilecast.ErrBadCursor) {
		t.Errorf("ChannelsPage with a NUL in the ID: %v", err)
	}
	// The good cursor still works for its own listing.
	if page, _, err := db.OutcomesPage(tilecast.OutcomeFilter{}, good, 10); err != nil || len(page) != 3 {
		t.Errorf("the good cursor: %d entries, %v; want the 3 after the first", len(page), err)
	}
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
