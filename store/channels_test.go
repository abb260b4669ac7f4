package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
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

func TestAddChannel(t *testing.T) {
	db, clk := mustOpen(t)
	a, created, err := db.AddChannel(tilecast.Channel{ID: "ignored", URI: "http://127.0.0.1/a", User: "ana", Feeds: []string{"news", "news", "mail"}})
	if err != nil || !created {
		t.Fatalf("AddChannel = %+v, %v, %v", a, created, err)
	}
	if len(a.ID) != 16 || strings.Trim(a.ID, "0123456789abcdef") != "" || a.ID == "ignored" {
		t.Errorf("ID = %q, want 16 hex chars", a.ID)
	}
	if !a.Created.Equal(clk.Now()) {
		t.Errorf("Created = %v, want %v", a.Created, clk.Now())
	}
	if !slices.Equal(a.Feeds, []string{"news", "mail"}) {
		t.Errorf("Feeds = %v, want deduplicated", a.Feeds)
	}

	clk.Add(time.Hour)
	b, created, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/a", User: "bob", Device: "d1"})
	if err != nil || created {
		t.Fatalf("re-add = %+v, %v, %v; want existing", b, created, err)
	}
	if b.ID != a.ID || !b.Created.Equal(a.Created) || b.User != "bob" || b.Device != "d1" || len(b.Feeds) != 0 {
		t.Errorf("re-add returned %+v", b)
	}
	// The indexes follow the update.
	if chs, _ := db.Channels("ana"); len(chs) != 0 {
		t.Errorf("Channels(ana) = %v, want none", chs)
	}
	if chs, _ := db.Channels("bob"); len(chs) != 1 || chs[0].ID != a.ID {
		t.Errorf("Channels(bob) = %v", chs)
	}
	news := &tilecast.Feed{Name: "news", URL: "http://127.0.0.1/feed"}
	if subs, _ := db.Subscribers(news, ""); len(subs) != 1 {
		t.Errorf("Subscribers(news) = %v, want the default-list channel", subs)
	}
	if users, _ := db.FeedUsers("mail"); len(users) != 0 {
		t.Errorf("FeedUsers(mail) = %v, want none", users)
	}
	if got, err := db.ChannelByURI("http://127.0.0.1/a"); err != nil || got.ID != a.ID {
		t.Errorf("ChannelByURI = %+v, %v", got, err)
	}
	if _, err := db.ChannelByURI("http://127.0.0.1/none"); !errors.Is(err, tilecast.ErrNotFound) {
		t.Errorf("ChannelByURI(unknown) = %v", err)
	}
	if _, err := db.Channel("nope"); !errors.Is(err, tilecast.ErrNotFound) {
		t.Errorf("Channel(unknown) = %v", err)
	}
}

func TestAddChannelInvalid(t *testing.T) {
	db, _ := mustOpen(t)
	tests := map[string]tilecast.Channel{
		"empty uri": {},
		"long uri":  {URI: "http://127.0.0.1/" + strings.Repeat("a", 2048)},
		"nul uri":   {URI: "http://127.0.0.1/\x00"},
		"nul user":  {URI: "http://127.0.0.1/a", User: "a\x00b"},
		"long user": {URI: "http://127.0.0.1/a", User: strings.Repeat("u", 1025)},
		// User names reach feed URLs, logs and the dashboard (tilecast.CheckUser).
		"invalid utf8 user": {URI: "http://127.0.0.1/a", User: "bob\xff"},
		"newline user":      {URI: "http://127.0.0.1/a", User: "bob\nmsg=x"},
		"bidi user":         {URI: "http://127.0.0.1/a", User: "bob\u202egnp"},
		"C1 user":           {URI: "http://127.0.0.1/a", User: "bob\u009b"},
		"nul device":        {URI: "http://127.0.0.1/a", Device: "\x00"},
		"empty feed":        {URI: "http://127.0.0.1/a", Feeds: []string{""}},
		"long device":       {URI: "http://127.0.0.1/a", Device: strings.Repeat("d", 2000)},
	}
	for name, ch := range tests {
		t.Run(name, func(t *testing.T) {
			if _, _, err := db.AddChannel(ch); !errors.Is(err, ErrInvalidChannel) {
				t.Errorf("AddChannel = %v, want ErrInvalidChannel", err)
			}
		})
	}
	if s, _ := db.Counts(); s.Channels != 0 {
		t.Errorf("%d channels stored", s.Channels)
	}
}

// 100 concurrent identical registrations make exactly one record.
func TestAddChannelConcurrentDedupe(t *testing.T) {
	db, _ := mustOpen(t)
	var wg sync.WaitGroup
	ids := make([]string, 100)
	created := make([]bool, 100)
	errs := make([]error, 100)
	for i := range 100 {
		wg.Go(func() {
			var ch tilecast.Channel
			ch, created[i], errs[i] = db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/same", User: "u", Feeds: []string{"news"}})
			ids[i] = ch.ID
		})
	}
	wg.Wait()
	n := 0
	for i := range 100 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if ids[i] != ids[0] {
			t.Errorf("call %d got ID %s, call 0 got %s", i, ids[i], ids[0])
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d calls report created, want 1", n)
	}
	if chs, err := db.Channels(""); err != nil || len(chs) != 1 {
		t.Errorf("Channels = %d, %v; want 1", len(chs), err)
	}
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

func TestDeviceReRegistrationMovesWaiting(t *testing.T) {
	db, clk := mustOpen(t)
	old := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/old", User: "ana", Device: "phone", Feeds: []string{"news", "mail"}})
	other := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/other", Feeds: []string{"news"}})
	mine := toast(old, "news", "n1")
	userMail := toast(old, "mail", "m1")
	userMail.User = "ana"
	strange := toast(old, "mail", "m2")
	strange.User = "bob" // not this channel's user: never moves
	if err := db.Enqueue([]tilecast.Notification{mine, userMail, strange, tile(old, "news", "T1"), toast(other, "news", "n1")}); err != nil {
		t.Fatal(err)
	}
	if err := db.Record([]tilecast.Record{{ID: 1, Op: tilecast.OpPostpone, Sent: true,
		Outcome: tilecast.Outcome{Action: tilecast.ActionRetry, Feed: "news"}}}); err != nil {
		t.Fatal(err)
	}

	nw, created, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/new", User: "ana", Device: "phone", Feeds: []string{"news", "mail"}})
	if err != nil || !created {
		t.Fatalf("AddChannel = %v, %v", created, err)
	}
	if _, err := db.Channel(old.ID); !errors.Is(err, tilecast.ErrNotFound) {
		t.Errorf("old channel still there: %v", err)
	}
	got := outboxOf(t, db, nw.ID, clk.Now())
	var items []string
	for _, p := range got {
		items = append(items, string(p.Kind)+":"+p.ItemID+string(p.Payload))
		if p.Channel.ID != nw.ID || p.Channel.URI != nw.URI {
			t.Errorf("moved entry carries channel %+v", p.Channel)
		}
	}
	want := []string{"toast:n1toast n1", "toast:m1toast m1", "tile:T1"}
	if !slices.Equal(items, want) {
		t.Errorf("moved entries = %v, want %v", items, want)
	}
	if o := outboxOf(t, db, old.ID, clk.Now()); len(o) != 0 {
		t.Errorf("old channel still has %d entries", len(o))
	}
	if s, _ := db.Counts(); s.OutboxDepth != 4 || s.Channels != 2 {
		t.Errorf("Stats = %+v, want 4 entries (3 moved + other's), 2 channels", s)
	}
	// The moved tile is the waiting tile of the new channel: a newer one replaces it.
	if err := db.Enqueue([]tilecast.Notification{tile(nw, "news", "T2")}); err != nil {
		t.Fatal(err)
	}
	var tiles []string
	for _, p := range outboxOf(t, db, nw.ID, clk.Now()) {
		if p.Kind == tilecast.KindTile {
			tiles = append(tiles, string(p.Payload))
		}
	}
	if !slices.Equal(tiles, []string{"T2"}) {
		t.Errorf("tiles after re-registration = %v, want [T2]", tiles)
	}
	// The ledger of the replaced channel stays.
	if led, _ := db.Outcomes(old.ID, "", time.Time{}); len(led) != 1 {
		t.Errorf("old channel ledger = %v, want 1 entry", led)
	}
	// Same device again with an existing URI: the other channel takes it over.
	moved, created, err := db.AddChannel(tilecast.Channel{URI: other.URI, Device: "phone", Feeds: []string{"news"}})
	if err != nil || created || moved.ID != other.ID {
		t.Fatalf("AddChannel(existing uri, taken device) = %+v, %v, %v", moved, created, err)
	}
	if _, err := db.Channel(nw.ID); !errors.Is(err, tilecast.ErrNotFound) {
		t.Errorf("replaced channel still there: %v", err)
	}
	// other had toast n1; from nw it gets news entries without a user: toast n1 and tile T2.
	var left []string
	for _, p := range outboxOf(t, db, other.ID, clk.Now()) {
		left = append(left, string(p.Payload))
	}
	if !slices.Equal(left, []string{"toast n1", "toast n1", "T2"}) {
		t.Errorf("entries of other = %v", left)
	}
}

func TestChannelsAndRemove(t *testing.T) {
	db, clk := mustOpen(t)
	var all []tilecast.Channel
	for i := range 5 {
		user := "ana"
		if i%2 == 1 {
			user = "bob"
		}
		all = append(all, addChannel(t, db, tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/%d", i), User: user, Feeds: []string{"news"}}))
		if i != 2 {
			clk.Add(time.Minute)
		}
	}
	got, err := db.Channels("")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("Channels = %d", len(got))
	}
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		if a.Created.After(b.Created) || (a.Created.Equal(b.Created) && a.ID > b.ID) {
			t.Errorf("not sorted by Created, ID: %v before %v", a, b)
		}
	}
	if ana, _ := db.Channels("ana"); len(ana) != 3 {
		t.Errorf("Channels(ana) = %d, want 3", len(ana))
	}

	victim := all[0]
	if err := db.Enqueue([]tilecast.Notification{toast(victim, "news", "1"), tile(victim, "news", "T"), toast(all[1], "news", "1")}); err != nil {
		t.Fatal(err)
	}
	// A delivered tile leaves a last-tile hash; a sent outcome a ledger entry.
	ps, _ := db.Due(clk.Now(), 10, nil)
	var recs []tilecast.Record
	for _, p := range ps {
		if p.ChannelID == victim.ID && p.Kind == tilecast.KindTile {
			recs = append(recs, tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone, Sent: true, Outcome: tilecast.Outcome{Action: tilecast.ActionDelivered, Feed: "news"}})
		}
	}
	if err := db.Record(recs); err != nil {
		t.Fatal(err)
	}
	if err := db.Enqueue([]tilecast.Notification{tile(victim, "news", "T2")}); err != nil {
		t.Fatal(err)
	}
	if err := db.RemoveChannel(victim.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.RemoveChannel(victim.ID); !errors.Is(err, tilecast.ErrNotFound) {
		t.Errorf("second RemoveChannel = %v, want ErrNotFound", err)
	}
	if _, err := db.ChannelByURI(victim.URI); !errors.Is(err, tilecast.ErrNotFound) {
		t.Errorf("uri index kept: %v", err)
	}
	if s, _ := db.Counts(); s.Channels != 4 || s.OutboxDepth != 1 {
		t.Errorf("Stats = %+v, want 4 channels and the other channel's entry", s)
	}
	if led, _ := db.Outcomes(victim.ID, "", time.Time{}); len(led) != 1 {
		t.Errorf("ledger of removed channel = %v, want kept", led)
	}
	err = db.view(func(b *buckets) error {
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

func TestSubscribersAndFeedUsers(t *testing.T) {
	db, _ := mustOpen(t)
	deflt := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/default"})
	deflUser := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/default-user", User: "ana"})
	news := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/news", Feeds: []string{"news"}})
	anaMail := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/ana-mail", User: "ana", Feeds: []string{"mail", "news"}})
	anaMail2 := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/ana-mail2", User: "ana", Feeds: []string{"mail"}})
	bobMail := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/bob-mail", User: "bob", Feeds: []string{"mail"}})
	addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/nouser-mail", Feeds: []string{"mail"}})

	global := &tilecast.Feed{Name: "news", URL: "http://127.0.0.1/news.xml"}
	other := &tilecast.Feed{Name: "weather", URL: "http://127.0.0.1/w.xml"}
	mail := &tilecast.Feed{Name: "mail", URL: "http://127.0.0.1/mail/{user}.xml"}
	ids := func(chs []tilecast.Channel) []string {
		var out []string
		for _, c := range chs {
			out = append(out, c.ID)
		}
		slices.Sort(out)
		return out
	}
	sorted := func(chs ...tilecast.Channel) []string { return ids(chs) }
	tests := []struct {
		name string
		f    *tilecast.Feed
		user string
		want []string
	}{
		{"global named or default", global, "", sorted(deflt, deflUser, news, anaMail)},
		{"global ignores user", global, "bob", sorted(deflt, deflUser, news, anaMail)},
		{"global unnamed: default list only", other, "", sorted(deflt, deflUser)},
		{"per-user ana", mail, "ana", sorted(anaMail, anaMail2)},
		{"per-user bob", mail, "bob", sorted(bobMail)},
		{"per-user without user", mail, "", nil},
		{"per-user unknown user", mail, "zed", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Subscribers(tt.f, tt.user)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tt.want) {
				t.Errorf("Subscribers = %v, want %v", ids(got), tt.want)
			}
			for _, ch := range got {
				if !ch.Subscribed(tt.f) {
					t.Errorf("%s is not subscribed to %s", ch.ID, tt.f.Name)
				}
			}
		})
	}
	for feed, want := range map[string][]string{"mail": {"ana", "bob"}, "news": {"ana"}, "weather": nil, "": nil} {
		if got, err := db.FeedUsers(feed); err != nil || !slices.Equal(got, want) {
			t.Errorf("FeedUsers(%q) = %v, %v; want %v", feed, got, err, want)
		}
	}
}
