package store

import (
	"errors"
	"fmt"
	"path/filepath"
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

// rotationLog opens a store whose log the test reads.
func rotationLog(t *testing.T) (*DB, *clock, *logBuffer) {
	t.Helper()
	c := newClock()
	var logs logBuffer
	db, err := Open(filepath.Join(t.TempDir(), "state.db"), Options{Timeout: 200 * time.Millisecond, Now: c.Now, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		checkCounts(t, db, "at the end")
		must(t, db.Check(), db.Close())
	})
	return db, c, &logs
}

// pendingSummary lists a channel's waiting entries as kind:item:payload.
func pendingSummary(tb testing.TB, db *DB, chID string, now time.Time) []string {
	tb.Helper()
	var out []string
	for _, p := range outboxOf(tb, db, chID, now) {
		if p.Channel.ID != chID {
			tb.Errorf("entry %d of %s carries channel %s", p.ID, chID, p.Channel.ID)
		}
		out = append(out, string(p.Kind)+":"+p.ItemID+":"+string(p.Payload))
	}
	return out
}

// A new URI for the same user and device rotates that device's channel in
// place: same ID and creation time, feeds as given, its waiting
// notifications stay, one log line without the URI.
func TestDeviceRotationKeepsChannel(t *testing.T) {
	db, clk, logs := rotationLog(t)
	old := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/old-secret", User: "ana", Device: "phone", Feeds: []string{"news", "mail"}})
	mail := toast(old, "mail", "m1")
	mail.User = "ana"
	if err := db.Enqueue([]tilecast.Notification{toast(old, "news", "n1"), mail, tile(old, "news", "T1")}); err != nil {
		t.Fatal(err)
	}
	// The tile is delivered: the channel's last tile is known.
	ps := outboxOf(t, db, old.ID, clk.Now())
	if err := db.Record([]tilecast.Record{{ID: ps[2].ID, Due: ps[2].NextAttempt, Op: tilecast.OpDone, Sent: true,
		Outcome: tilecast.Outcome{ChannelID: old.ID, Action: tilecast.ActionDelivered, Feed: "news"}}}); err != nil {
		t.Fatal(err)
	}
	before := pendingSummary(t, db, old.ID, clk.Now())

	clk.Add(time.Hour)
	nw, created, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/new-secret", User: "ana", Device: "phone", Feeds: []string{"news"}})
	if err != nil || created {
		t.Fatalf("AddChannel = %+v, %v, %v; want the rotated channel", nw, created, err)
	}
	if nw.ID != old.ID || !nw.Created.Equal(old.Created) || nw.URI != "http://127.0.0.1/new-secret" || !slices.Equal(nw.Feeds, []string{"news"}) {
		t.Errorf("rotated channel %+v, want %s created %v with the new URI and feeds [news]", nw, old.ID, old.Created)
	}
	if got := pendingSummary(t, db, old.ID, clk.Now()); !slices.Equal(got, before) || len(got) != 2 {
		t.Errorf("waiting after rotation %v, want %v", got, before)
	}
	if _, err := db.ChannelByURI("http://127.0.0.1/old-secret"); !errors.Is(err, tilecast.ErrNotFound) {
		t.Errorf("old URI still registered: %v", err)
	}
	if got, err := db.ChannelByURI(nw.URI); err != nil || got.ID != old.ID {
		t.Errorf("ChannelByURI(new) = %+v, %v", got, err)
	}
	if led, _ := db.Outcomes(old.ID, "", time.Time{}); len(led) != 1 {
		t.Errorf("ledger after rotation %v, want its entry", led)
	}
	if s, _ := db.Counts(); s.Channels != 1 || s.OutboxDepth != 2 {
		t.Errorf("counts %+v, want 1 channel and 2 entries", s)
	}
	// The new URI gets the next tile even if it is the one shown before.
	if err := db.Enqueue([]tilecast.Notification{tile(nw, "news", "T1")}); err != nil {
		t.Fatal(err)
	}
	if got := pendingSummary(t, db, old.ID, clk.Now()); len(got) != 3 {
		t.Errorf("after a tile equal to the last one %v, want it queued", got)
	}
	// Registering the same again changes nothing and logs nothing more.
	if again, created, err := db.AddChannel(tilecast.Channel{URI: nw.URI, User: "ana", Device: "phone", Feeds: []string{"news"}}); err != nil ||
		created || again.ID != old.ID {
		t.Errorf("re-registration = %+v, %v, %v", again, created, err)
	}
	out := logs.String()
	want := `msg="channel rotated" channel=` + old.ID + ` old_channel=` + old.ID + ` new_channel=` + old.ID +
		` user=ana device=phone host=127.0.0.1`
	if strings.Count(out, `msg="channel rotated"`) != 1 || !strings.Contains(out, want) {
		t.Errorf("log:\n%s\nwant one line with %q", out, want)
	}
	if strings.Contains(out, "secret") {
		t.Errorf("the log shows a URI:\n%s", out)
	}
}

// The device ID of another user's channel is another device: registering
// it makes a channel of its own and leaves theirs, with its waiting
// notifications, alone. No user is a scope of its own.
func TestDeviceRotationCrossUser(t *testing.T) {
	db, clk, logs := rotationLog(t)
	victim := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/ana", User: "ana", Device: "phone", Feeds: []string{"news"}})
	if err := db.Enqueue([]tilecast.Notification{toast(victim, "news", "1"), tile(victim, "news", "T")}); err != nil {
		t.Fatal(err)
	}
	waiting := pendingSummary(t, db, victim.ID, clk.Now())

	bob, created, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/bob", User: "bob", Device: "phone", Feeds: []string{"news"}})
	if err != nil || !created || bob.ID == victim.ID {
		t.Fatalf("bob's registration = %+v, %v, %v; want a new channel", bob, created, err)
	}
	anon, created, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/anon", Device: "phone"})
	if err != nil || !created || anon.ID == victim.ID || anon.ID == bob.ID {
		t.Fatalf("registration without a user = %+v, %v, %v; want a new channel", anon, created, err)
	}
	// Bob's next URI rotates bob's channel, not ana's; so does a
	// registration without a user for the channel without one.
	bob2, created, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/bob2", User: "bob", Device: "phone"})
	if err != nil || created || bob2.ID != bob.ID {
		t.Errorf("bob's rotation = %+v, %v, %v; want bob's channel", bob2, created, err)
	}
	anon2, _, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/anon2", Device: "phone"})
	if err != nil || anon2.ID != anon.ID {
		t.Errorf("rotation without a user = %+v, %v; want %s", anon2, err, anon.ID)
	}
	got, err := db.Channel(victim.ID)
	if err != nil || got.URI != victim.URI || got.User != "ana" || got.Device != "phone" || !got.Created.Equal(victim.Created) {
		t.Errorf("victim after the others' registrations: %+v, %v", got, err)
	}
	if p := pendingSummary(t, db, victim.ID, clk.Now()); !slices.Equal(p, waiting) {
		t.Errorf("victim's waiting notifications %v, want %v", p, waiting)
	}
	if c, _ := db.ChannelByURI(victim.URI); c.ID != victim.ID {
		t.Errorf("victim's URI now names %s", c.ID)
	}
	// Ana's own rotation still finds her channel.
	ana2, _, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/ana2", User: "ana", Device: "phone", Feeds: []string{"news"}})
	if err != nil || ana2.ID != victim.ID {
		t.Errorf("ana's rotation = %+v, %v", ana2, err)
	}
	if s, _ := db.Counts(); s.Channels != 3 || s.OutboxDepth != 2 {
		t.Errorf("counts %+v, want 3 channels, 2 entries", s)
	}
	out := logs.String()
	for _, want := range []string{
		`channel=` + bob.ID + ` old_channel=` + bob.ID + ` new_channel=` + bob.ID + ` user=bob device=phone`,
		`channel=` + anon.ID + ` old_channel=` + anon.ID + ` new_channel=` + anon.ID + ` user="" device=phone`,
		`channel=` + victim.ID + ` old_channel=` + victim.ID + ` new_channel=` + victim.ID + ` user=ana device=phone`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, `msg="channel rotated"`); n != 3 {
		t.Errorf("%d rotations logged, want 3:\n%s", n, out)
	}
}

// A device rotating onto a URI that has a channel of its own makes the two
// one: the older channel stays, with the registration applied, and takes
// over the other's waiting notifications; the other's ledger stays.
func TestDeviceRotationOntoExistingURI(t *testing.T) {
	for _, deviceOlder := range []bool{true, false} {
		t.Run(fmt.Sprintf("device channel older %v", deviceOlder), func(t *testing.T) {
			db, clk, logs := rotationLog(t)
			first := tilecast.Channel{URI: "http://127.0.0.1/dev", User: "ana", Device: "phone", Feeds: []string{"news", "inbox"}}
			second := tilecast.Channel{URI: "http://127.0.0.1/other", Feeds: []string{"news"}}
			if !deviceOlder {
				first, second = second, first
			}
			a := addChannel(t, db, first)
			clk.Add(time.Minute)
			b := addChannel(t, db, second)
			dev, other := a, b
			if !deviceOlder {
				dev, other = b, a
			}
			inbox := toast(dev, "inbox", "i1")
			inbox.User = "ana"
			if err := db.Enqueue([]tilecast.Notification{toast(dev, "news", "d1"), inbox, toast(other, "news", "o1"),
				tile(dev, "news", "TD"), tile(other, "news", "TO")}); err != nil {
				t.Fatal(err)
			}
			if err := db.Record([]tilecast.Record{{ID: 999, Op: tilecast.OpDone, Sent: true,
				Outcome: tilecast.Outcome{ChannelID: other.ID, Action: tilecast.ActionDelivered}}}); err != nil {
				t.Fatal(err)
			}
			clk.Add(time.Minute)
			got, created, err := db.AddChannel(tilecast.Channel{URI: other.URI, User: "ana", Device: "phone", Feeds: []string{"news", "inbox"}})
			if err != nil || created {
				t.Fatalf("AddChannel = %+v, %v, %v", got, created, err)
			}
			keep, gone := a, b // the older
			if got.ID != keep.ID || !got.Created.Equal(keep.Created) || got.URI != other.URI || got.User != "ana" ||
				got.Device != "phone" || !slices.Equal(got.Feeds, []string{"news", "inbox"}) {
				t.Errorf("kept channel %+v, want %s with the registration", got, keep.ID)
			}
			if _, err := db.Channel(gone.ID); !errors.Is(err, tilecast.ErrNotFound) {
				t.Errorf("the other channel is still there: %v", err)
			}
			// Every toast is kept; of the two waiting tiles for news the newer (TO).
			var items []string
			for _, p := range outboxOf(t, db, keep.ID, clk.Now()) {
				items = append(items, string(p.Payload))
			}
			slices.Sort(items)
			if want := []string{"TO", "toast d1", "toast i1", "toast o1"}; !slices.Equal(items, want) {
				t.Errorf("waiting %v, want %v", items, want)
			}
			if led, _ := db.Outcomes(other.ID, "", time.Time{}); len(led) != 1 {
				t.Errorf("ledger of %s = %v, want its entry", other.ID, led)
			}
			if c, err := db.ChannelByURI(dev.URI); !errors.Is(err, tilecast.ErrNotFound) {
				t.Errorf("the device's old URI names %+v, %v", c, err)
			}
			// The device is the kept channel's now.
			again, _, err := db.AddChannel(tilecast.Channel{URI: "http://127.0.0.1/third", User: "ana", Device: "phone"})
			if err != nil || again.ID != keep.ID {
				t.Errorf("next rotation = %+v, %v; want %s", again, err, keep.ID)
			}
			if s, _ := db.Counts(); s.Channels != 1 {
				t.Errorf("counts %+v, want 1 channel", s)
			}
			want := `msg="channel rotated" channel=` + keep.ID + ` old_channel=` + dev.ID + ` new_channel=` + other.ID + ` user=ana device=phone`
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, logs.String())
			}
		})
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
