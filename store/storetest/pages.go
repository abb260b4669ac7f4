package storetest

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/store/rules"
)

func pageTests() []test {
	return []test{
		{"ChannelsPageEveryChannelOnceInOrder", testChannelsPageEveryChannelOnce},
		{"ChannelsPageWithConcurrentInserts", testChannelsPageWithConcurrentInserts},
		{"OutcomesPageFiltersAndOrder", testOutcomesPageFiltersAndOrder},
		{"OutcomesPageWithConcurrentRecords", testOutcomesPageWithConcurrentRecords},
		{"DeadLettersPage", testDeadLettersPage},
		{"BadCursors", testBadCursors},
	}
}

func channelIDs(chs []tilecast.Channel) []string {
	ids := make([]string, len(chs))
	for i, ch := range chs {
		ids[i] = ch.ID
	}
	return ids
}

func testChannelsPageEveryChannelOnce(t *testing.T, newState NewState) {
	db := newHarness(t, newState).db
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
	// The channels of a page are whole records.
	page, _, _ = db.ChannelsPage(tilecast.ChannelFilter{}, "", 1)
	if ch, _ := db.Channel(page[0].ID); len(page) != 1 || page[0].URI != ch.URI || !page[0].Created.Equal(ch.Created) {
		t.Errorf("page %+v, channel %+v", page, ch)
	}
}

// Inserts while a listing is paged (between pages and concurrently) never
// make a channel that existed before appear twice or not at all.
func testChannelsPageWithConcurrentInserts(t *testing.T, newState NewState) {
	db := newHarness(t, newState).db
	before := map[string]bool{}
	for _, ch := range addChannels(t, db, 300) {
		before[ch.ID] = true
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
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
	})
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
}

// ledgerRecords are Records that put sent outcomes straight into the
// ledger: one per (channel, feed, age) with the given ages before now;
// each outcome's ItemID names it (channel/feed/age).
func ledgerRecords(chans []string, feeds []string, ages []time.Duration, now time.Time) []tilecast.Record {
	var recs []tilecast.Record
	id := uint64(1_000_000)
	for _, ch := range chans {
		for _, f := range feeds {
			for _, a := range ages {
				id++
				recs = append(recs, tilecast.Record{ID: id << 20, Op: tilecast.OpDone, Sent: true, Outcome: tilecast.Outcome{
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

func testOutcomesPageFiltersAndOrder(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	now := clk.Now()
	chans := []string{"c3", "c1", "c2", "c10", "C", "c-1", "c_1"}
	ages := []time.Duration{50 * time.Hour, 30 * time.Hour, 5 * time.Hour, time.Hour, time.Minute}
	must(t, db.Record(ledgerRecords(chans, []string{"news", "mail"}, ages, now)))

	// The expected order: channel ID (bytes), then time (then insertion).
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
	if w := want(tilecast.OutcomeFilter{}); len(w) != len(chans)*2*len(ages) || w[0] != "C/news/50h0m0s" {
		t.Fatalf("the ledger holds %d entries from %q, want %d from C's oldest", len(w), w[:min(1, len(w))], len(chans)*2*len(ages))
	}
	// Outcomes across channels is oldest first.
	all, _ := db.Outcomes("", "", time.Time{})
	if !slices.IsSortedFunc(all, func(a, b tilecast.Outcome) int { return a.Time.Compare(b.Time) }) {
		t.Error("Outcomes(every channel) is not oldest first")
	}
}

func testOutcomesPageWithConcurrentRecords(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	now := clk.Now()
	var chans []string
	for i := range 40 {
		chans = append(chans, fmt.Sprintf("ch%02d", i))
	}
	must(t, db.Record(ledgerRecords(chans, []string{"news"}, []time.Duration{3 * time.Hour, 2 * time.Hour, time.Hour}, now)))
	before, err := db.Outcomes("", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		// At most 400 writes: ≤ 10 more per channel keeps every ledger
		// under the cap, so pruning removes none of the entries the
		// listing must return.
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
	})
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

func testDeadLettersPage(t *testing.T, newState NewState) {
	db := newHarness(t, newState).db
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a"})
	const n = 23
	var ns []tilecast.Notification
	for i := range n {
		ns = append(ns, toast(ch, "news", fmt.Sprint(i+1)))
	}
	must(t, db.Enqueue(ns))
	var recs []tilecast.Record
	var first uint64
	for _, p := range mustDue(t, db, farFuture) {
		if first == 0 {
			first = p.ID
		}
		recs = append(recs, tilecast.Record{ID: p.ID, Op: tilecast.OpDead, Outcome: tilecast.Outcome{Action: tilecast.ActionFailed}})
	}
	must(t, db.Record(recs))
	var want []string
	for i := n; i >= 1; i-- {
		want = append(want, fmt.Sprint(i))
	}
	for _, limit := range []int{1, 5, 23, 100} {
		got := pageAll(t, limit, func(c string) ([]tilecast.DeadLetter, string, error) { return db.DeadLettersPage(c, limit) }, nil)
		var items []string
		for _, d := range got {
			items = append(items, d.Notification.ItemID)
		}
		if !slices.Equal(items, want) {
			t.Errorf("limit %d: %v, want newest first %v", limit, items, want)
		}
	}
	// A cursor at the oldest leaves nothing; one beyond the newest (from
	// an older listing, newer letters since) continues below it.
	seq := func(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }
	page, next, err := db.DeadLettersPage(rules.EncodeCursor(rules.CursorDead, seq(first)), 10)
	if err != nil || len(page) != 0 || next != "" {
		t.Errorf("after the oldest: %d, %q, %v", len(page), next, err)
	}
	page, _, err = db.DeadLettersPage(rules.EncodeCursor(rules.CursorDead, seq(first+1000)), 2)
	if err != nil || len(page) != 2 || page[0].Notification.ItemID != "23" {
		t.Errorf("from beyond the newest: %+v, %v", page, err)
	}
}

// Every malformed cursor is ErrBadCursor, for every listing, never a
// panic or a page from somewhere else.
func testBadCursors(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	must(t, db.Record(ledgerRecords([]string{"a", "b"}, []string{"news"}, []time.Duration{time.Hour, time.Minute}, clk.Now())))
	addChannels(t, db, 3)
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
	chCursor := rules.EncodeCursor(rules.CursorChannels, []byte("0123456789abcdef"))
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
		{"a valid checksum over a non-ledger key", rules.EncodeCursor(rules.CursorOutcomes, []byte("no-nul")), tilecast.OutcomeFilter{}},
		{"a ledger key with bytes no channel has", rules.EncodeCursor(rules.CursorOutcomes, append([]byte("\xff\xfe\x00"), make([]byte, 16)...)), tilecast.OutcomeFilter{}},
		{"too long", strings.Repeat("A", 4096), tilecast.OutcomeFilter{}},
		{"unknown version", func() string {
			b := []byte{9, rules.CursorOutcomes, 'a', 0}
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
	if _, _, err := db.DeadLettersPage(rules.EncodeCursor(rules.CursorDead, []byte{1, 2, 3}), 10); !errors.Is(err, tilecast.ErrBadCursor) {
		t.Errorf("DeadLettersPage with a short key: %v", err)
	}
	for _, key := range []string{"a\x00b", "\xff"} {
		if _, _, err := db.ChannelsPage(tilecast.ChannelFilter{}, rules.EncodeCursor(rules.CursorChannels, []byte(key)), 10); !errors.Is(err, tilecast.ErrBadCursor) {
			t.Errorf("ChannelsPage with %q in the ID: %v", key, err)
		}
	}
	// The good cursor still works for its own listing.
	if page, _, err := db.OutcomesPage(tilecast.OutcomeFilter{}, good, 10); err != nil || len(page) != 3 {
		t.Errorf("the good cursor: %d entries, %v; want the 3 after the first", len(page), err)
	}
}
