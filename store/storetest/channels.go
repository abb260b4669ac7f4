package storetest

import (
	"bytes"
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

func channelTests() []test {
	return []test{
		{"AddChannel", testAddChannel},
		{"AddChannelInvalid", testAddChannelInvalid},
		{"AddChannelConcurrentDedupe", testAddChannelConcurrentDedupe},
		{"ChannelTransport", testChannelTransport},
		{"AddChannelOneRecordPerURI", testAddChannelOneRecordPerURI},
		{"ImportChannelsOneRecordPerURI", testImportChannelsOneRecordPerURI},
		{"AddChannelRefusesBadURIs", testAddChannelRefusesBadURIs},
		{"DeviceRotationKeepsChannel", testDeviceRotationKeepsChannel},
		{"DeviceRotationCrossUser", testDeviceRotationCrossUser},
		{"DeviceRotationOntoExistingURI", testDeviceRotationOntoExistingURI},
		{"TakeOverIgnoresGoneWaitingTile", testTakeOverIgnoresGoneWaitingTile},
		{"ChannelsAndRemove", testChannelsAndRemove},
		{"SubscribersAndFeedUsers", testSubscribersAndFeedUsers},
		{"ImportChannelsBatches", testImportChannelsBatches},
		{"ImportChannelsRules", testImportChannelsRules},
		{"ImportMatchesAddChannel", testImportMatchesAddChannel},
		{"NamesThatCannotBeStored", testNamesThatCannotBeStored},
	}
}

func testAddChannel(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
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
	if got, err := db.Channel(a.ID); err != nil || got.ID != a.ID || got.URI != a.URI || got.User != "ana" ||
		!slices.Equal(got.Feeds, a.Feeds) || !got.Created.Equal(a.Created) || got.Transport != tilecast.TransportMPNS {
		t.Errorf("Channel = %+v, %v; want %+v", got, err, a)
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

func testAddChannelInvalid(t *testing.T, newState NewState) {
	db := newHarness(t, newState).db
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
			if _, _, err := db.AddChannel(ch); !errors.Is(err, tilecast.ErrInvalidChannel) {
				t.Errorf("AddChannel = %v, want ErrInvalidChannel", err)
			}
		})
	}
	if s, _ := db.Counts(); s.Channels != 0 {
		t.Errorf("%d channels stored", s.Channels)
	}
}

// 100 concurrent identical registrations make exactly one record.
func testAddChannelConcurrentDedupe(t *testing.T, newState NewState) {
	db := newHarness(t, newState).db
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

// A channel names its transport (none: MPNS); a Web Push channel keeps
// its keys and expiry, replaced by a registration with others.
func testChannelTransport(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	old := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/old"})
	if old.Transport != tilecast.TransportMPNS {
		t.Errorf("unnamed transport stored as %q", old.Transport)
	}
	keys := &tilecast.PushKeys{P256DH: bytes.Repeat([]byte{4}, 65), Auth: bytes.Repeat([]byte{1}, 16)}
	exp := clk.Now().Add(24 * time.Hour)
	wp := addChannel(t, db, tilecast.Channel{URI: "https://127.0.0.1/push/abc", Transport: tilecast.TransportWebPush,
		Keys: keys, Expires: exp})
	got, err := db.Channel(wp.ID)
	if err != nil || got.Transport != tilecast.TransportWebPush || !rules.SameKeys(got.Keys, keys) || !got.Expires.Equal(exp) {
		t.Fatalf("Channel = %+v, %v", got, err)
	}
	// Registering again with new keys replaces them; the same ones write nothing.
	keys2 := &tilecast.PushKeys{P256DH: bytes.Repeat([]byte{5}, 65), Auth: bytes.Repeat([]byte{2}, 16)}
	again, created, err := db.AddChannel(tilecast.Channel{URI: wp.URI, Transport: tilecast.TransportWebPush, Keys: keys2})
	if err != nil || created || again.ID != wp.ID || !rules.SameKeys(again.Keys, keys2) || !again.Expires.IsZero() {
		t.Errorf("re-registration = %+v, %v, %v", again, created, err)
	}
	if got, _ := db.Channel(wp.ID); !rules.SameKeys(got.Keys, keys2) || !got.Expires.IsZero() {
		t.Errorf("stored keys %+v expiry %v, want the new ones", got.Keys, got.Expires)
	}
	if got, _ := db.ChannelByURI(wp.URI); !rules.SameKeys(got.Keys, keys2) {
		t.Errorf("keys by URI %+v", got.Keys)
	}
	wns := addChannel(t, db, tilecast.Channel{URI: "https://wns2-par02p.notify.windows.com/w/?token=x", Transport: tilecast.TransportWNS})
	if got, _ := db.Channel(wns.ID); got.Transport != tilecast.TransportWNS || got.Keys != nil {
		t.Errorf("WNS channel %+v", got)
	}
	for name, ch := range map[string]tilecast.Channel{
		"unknown transport": {URI: "http://127.0.0.1/x", Transport: "apns"},
		"huge key":          {URI: "http://127.0.0.1/y", Transport: tilecast.TransportWebPush, Keys: &tilecast.PushKeys{P256DH: make([]byte, 4096)}},
	} {
		if _, _, err := db.AddChannel(ch); !errors.Is(err, tilecast.ErrInvalidChannel) {
			t.Errorf("%s: %v, want ErrInvalidChannel", name, err)
		}
		if _, _, err := db.ImportChannels([]tilecast.Channel{ch}); !errors.Is(err, tilecast.ErrInvalidChannel) {
			t.Errorf("%s imported: %v, want ErrInvalidChannel", name, err)
		}
	}
}

// spellings are forms of one URI as a hostile run, an operator or an app
// may write it; canonicalURI is how the store keeps it.
const canonicalURI = "https://db3.notify.live.net/throttledthirdparty/01.00/AA~F"

var spellings = []string{
	canonicalURI,
	"https://db3.notify.live.net\u3002/throttledthirdparty/01.00/AA~F", // ideographic full stop
	"https://db3.notify.live.net\uff0e/throttledthirdparty/01.00/AA~F", // full-width full stop
	"https://db3.notify.live.net\uff61/throttledthirdparty/01.00/AA~F", // half-width ideographic full stop
	"https://db3.notify.live.net./throttledthirdparty/01.00/AA~F",
	"HTTPS://DB3.Notify.Live.NET:443/throttledthirdparty/01.00/AA%7eF",
	"https://db3.notify.live.net:0443/throttledthirdparty/01.00/AA%7EF",
	"https://\uff24\uff22\uff13.notify.live.net/throttledthirdparty/01.00/AA~F", // full-width letters
}

// AddChannel canonicalises by itself: whatever the caller checked or not,
// every spelling is one record, found by any spelling.
func testAddChannelOneRecordPerURI(t *testing.T, newState NewState) {
	db := newHarness(t, newState).db
	var id string
	for i, u := range spellings {
		ch, created, err := db.AddChannel(tilecast.Channel{URI: u, User: "ana"})
		if err != nil {
			t.Fatalf("AddChannel(%q): %v", u, err)
		}
		if created != (i == 0) || ch.URI != canonicalURI || (i > 0 && ch.ID != id) {
			t.Errorf("AddChannel(%q) = %+v, created %v; want channel %s with %s, created only first", u, ch, created, id, canonicalURI)
		}
		id = ch.ID
	}
	chs, err := db.Channels("")
	if err != nil || len(chs) != 1 || chs[0].URI != canonicalURI {
		t.Fatalf("Channels = %+v, %v; want one channel with %s", chs, err, canonicalURI)
	}
	for _, u := range spellings {
		if ch, err := db.ChannelByURI(u); err != nil || ch.ID != id {
			t.Errorf("ChannelByURI(%q) = %+v, %v; want %s", u, ch, err, id)
		}
	}
	if _, err := db.ChannelByURI("https://db3.notify.live.net/throttledthirdparty/01.00/aa~f"); !errors.Is(err, tilecast.ErrNotFound) {
		t.Errorf("ChannelByURI of another token (path case differs) = %v, want ErrNotFound", err)
	}
}

// ImportChannels canonicalises too: spellings inside one import, and
// against channels already stored, are one record.
func testImportChannelsOneRecordPerURI(t *testing.T, newState NewState) {
	db := newHarness(t, newState).db
	first := addChannel(t, db, tilecast.Channel{URI: spellings[1]})
	in := make([]tilecast.Channel, 0, len(spellings))
	for _, u := range spellings {
		in = append(in, tilecast.Channel{URI: u, User: "bob"})
	}
	added, updated, err := db.ImportChannels(in)
	if err != nil || added != 0 || updated != len(spellings) {
		t.Fatalf("ImportChannels = %d added, %d updated, %v; want 0, %d", added, updated, err, len(spellings))
	}
	chs, err := db.Channels("")
	if err != nil || len(chs) != 1 || chs[0].ID != first.ID || chs[0].URI != canonicalURI || chs[0].User != "bob" {
		t.Fatalf("Channels = %+v, %v; want only %s with %s for bob", chs, err, first.ID, canonicalURI)
	}
}

// Malformed URIs are refused by the store itself with ErrInvalidChannel
// and the reason.
func testAddChannelRefusesBadURIs(t *testing.T, newState NewState) {
	db := newHarness(t, newState).db
	for _, tc := range []struct{ uri, msg string }{
		{"https://db3.notify.live.net:0/x", "port 0 is out of range"},
		{"https://db3.notify.live.net:65536/x", "port 65536 is out of range"},
		{"https://db3.notify.live.net:99999/x", "port 99999 is out of range"},
		{"https://db3.notify.live.net\u3002\u3002/x", "empty label"},
		{"https://db3.notify.live.net/x#frag", "fragment"},
		{"https://u@db3.notify.live.net/x", "userinfo"},
		{"mailto:a@example.org", "scheme"},
		{"https://db3.notify.live.net/x?t=%g0", "invalid percent-encoding"},
	} {
		_, _, err := db.AddChannel(tilecast.Channel{URI: tc.uri})
		if !errors.Is(err, tilecast.ErrInvalidChannel) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("AddChannel(%q) = %v; want ErrInvalidChannel with %q", tc.uri, err, tc.msg)
		}
		_, _, err = db.ImportChannels([]tilecast.Channel{{URI: canonicalURI}, {URI: tc.uri}})
		if !errors.Is(err, tilecast.ErrInvalidChannel) || !strings.Contains(err.Error(), "channel 1") || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ImportChannels with %q = %v; want ErrInvalidChannel for channel 1 with %q", tc.uri, err, tc.msg)
		}
	}
	if s, err := db.Counts(); err != nil || s.Channels != 0 {
		t.Errorf("Stats = %+v, %v; want no channel stored", s, err)
	}
}

// A new URI for the same user and device rotates that device's channel in
// place: same ID and creation time, feeds as given, its waiting
// notifications stay, one log line without the URI.
func testDeviceRotationKeepsChannel(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	old := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/old-secret", User: "ana", Device: "phone", Feeds: []string{"news", "mail"}})
	mail := toast(old, "mail", "m1")
	mail.User = "ana"
	must(t, db.Enqueue([]tilecast.Notification{toast(old, "news", "n1"), mail, tile(old, "news", "T1")}))
	// The tile is delivered: the channel's last tile is known.
	ps := outboxOf(t, db, old.ID, clk.Now())
	must(t, db.Record([]tilecast.Record{{ID: ps[2].ID, Due: ps[2].NextAttempt, Op: tilecast.OpDone, Sent: true,
		Outcome: tilecast.Outcome{ChannelID: old.ID, Action: tilecast.ActionDelivered, Feed: "news"}}}))
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
	must(t, db.Enqueue([]tilecast.Notification{tile(nw, "news", "T1")}))
	if got := pendingSummary(t, db, old.ID, clk.Now()); len(got) != 3 {
		t.Errorf("after a tile equal to the last one %v, want it queued", got)
	}
	// Registering the same again changes nothing and logs nothing more.
	if again, created, err := db.AddChannel(tilecast.Channel{URI: nw.URI, User: "ana", Device: "phone", Feeds: []string{"news"}}); err != nil ||
		created || again.ID != old.ID {
		t.Errorf("re-registration = %+v, %v, %v", again, created, err)
	}
	out := h.logs.String()
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
func testDeviceRotationCrossUser(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	victim := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/ana", User: "ana", Device: "phone", Feeds: []string{"news"}})
	must(t, db.Enqueue([]tilecast.Notification{toast(victim, "news", "1"), tile(victim, "news", "T")}))
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
	out := h.logs.String()
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
func testDeviceRotationOntoExistingURI(t *testing.T, newState NewState) {
	for _, deviceOlder := range []bool{true, false} {
		t.Run(fmt.Sprintf("device channel older %v", deviceOlder), func(t *testing.T) {
			h := newHarness(t, newState)
			db, clk := h.db, h.clk
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
			must(t, db.Enqueue([]tilecast.Notification{toast(dev, "news", "d1"), inbox, toast(other, "news", "o1"),
				tile(dev, "news", "TD"), tile(other, "news", "TO")}))
			must(t, db.Record([]tilecast.Record{{ID: 999, Op: tilecast.OpDone, Sent: true,
				Outcome: tilecast.Outcome{ChannelID: other.ID, Action: tilecast.ActionDelivered}}}))
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
			if !strings.Contains(h.logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, h.logs.String())
			}
		})
	}
}

// A rotation after a delivered tile: recording the kept channel's tile
// leaves it nothing waiting (bbolt keeps a tile_waiting key naming the
// gone entry), so when the device rotates onto another channel's URI, the
// other's older waiting tile moves over and stays; it is not taken for
// the newer tile of the kept channel and dropped.
func testTakeOverIgnoresGoneWaitingTile(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	keep := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/keep", User: "ana", Device: "phone", Feeds: []string{"news"}})
	clk.Add(time.Minute)
	other := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/other", Feeds: []string{"news"}})
	// other's tile first (the older entry), then keep's, which is delivered.
	must(t, db.Enqueue([]tilecast.Notification{tile(other, "news", "T-other")}))
	must(t, db.Enqueue([]tilecast.Notification{tile(keep, "news", "T-keep")}))
	var recs []tilecast.Record
	for _, p := range outboxOf(t, db, keep.ID, clk.Now()) {
		recs = append(recs, tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone, Sent: true,
			Outcome: tilecast.Outcome{ChannelID: keep.ID, Feed: "news", Kind: tilecast.KindTile, Action: tilecast.ActionDelivered}})
	}
	if len(recs) != 1 {
		t.Fatalf("%s has %d entries waiting, want its one tile", keep.ID, len(recs))
	}
	must(t, db.Record(recs))
	// The rotation: the device registers with other's URI; keep (the
	// older) stays and takes over other's waiting tile.
	clk.Add(time.Minute)
	got, created, err := db.AddChannel(tilecast.Channel{URI: other.URI, User: "ana", Device: "phone", Feeds: []string{"news"}})
	if err != nil || created || got.ID != keep.ID {
		t.Fatalf("AddChannel = %+v, %v, %v; want %s", got, created, err, keep.ID)
	}
	if p := pendingSummary(t, db, keep.ID, clk.Now()); !slices.Equal(p, []string{"tile::T-other"}) {
		t.Errorf("waiting for %s after the rotation: %v; want other's tile, moved over", keep.ID, p)
	}
	if p := outboxOf(t, db, other.ID, clk.Now()); len(p) != 0 {
		t.Errorf("the merged channel %s still has %d entries waiting", other.ID, len(p))
	}
}

// Channels lists by creation time; removing a channel removes what waits
// for it and its last tiles, and keeps its ledger.
func testChannelsAndRemove(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
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
	must(t, db.Enqueue([]tilecast.Notification{toast(victim, "news", "1"), tile(victim, "news", "T"), toast(all[1], "news", "1")}))
	// A delivered tile leaves a last tile; a sent outcome a ledger entry.
	ps, _ := db.Due(clk.Now(), 10, nil)
	var recs []tilecast.Record
	for _, p := range ps {
		if p.ChannelID == victim.ID && p.Kind == tilecast.KindTile {
			recs = append(recs, tilecast.Record{ID: p.ID, Due: p.NextAttempt, Op: tilecast.OpDone, Sent: true,
				Outcome: tilecast.Outcome{Action: tilecast.ActionDelivered, Feed: "news"}})
		}
	}
	must(t, db.Record(recs))
	must(t, db.Enqueue([]tilecast.Notification{tile(victim, "news", "T2")}))
	must(t, db.RemoveChannel(victim.ID))
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
	if chs, _ := db.Channels("ana"); len(chs) != 2 || slices.ContainsFunc(chs, func(c tilecast.Channel) bool { return c.ID == victim.ID }) {
		t.Errorf("Channels(ana) after removal = %v", chs)
	}
	news := &tilecast.Feed{Name: "news", URL: "http://127.0.0.1/n"}
	if subs, _ := db.Subscribers(news, ""); len(subs) != 4 {
		t.Errorf("Subscribers after removal = %d, want 4", len(subs))
	}
	// The same URI registered again is a new channel: no last tile, no
	// entries of the old one.
	again := addChannel(t, db, tilecast.Channel{URI: victim.URI, User: "ana", Feeds: []string{"news"}})
	if again.ID == victim.ID {
		t.Fatalf("the removed channel came back: %+v", again)
	}
	must(t, db.Enqueue([]tilecast.Notification{tile(again, "news", "T")}))
	if got := pendingSummary(t, db, again.ID, clk.Now()); len(got) != 1 {
		t.Errorf("new channel of the URI waits %v, want the tile (no last tile kept)", got)
	}
}

func testSubscribersAndFeedUsers(t *testing.T, newState NewState) {
	db := newHarness(t, newState).db
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

// genChannels makes n channels: every third one names a user and the
// per-user feed "inbox", every other one lists "news", the rest no feeds.
func genChannels(n int, prefix string) []tilecast.Channel {
	chs := make([]tilecast.Channel, n)
	for i := range chs {
		ch := tilecast.Channel{URI: fmt.Sprintf("http://127.0.0.1/%s/%07d", prefix, i)}
		switch i % 3 {
		case 0:
			ch.User, ch.Feeds = fmt.Sprintf("u%04d", i%5000), []string{"inbox", "news"}
		case 1:
			ch.Feeds = []string{"news"}
		}
		chs[i] = ch
	}
	return chs
}

// Enough channels for several import batches: every one stored and
// indexed; importing them again only updates.
func testImportChannelsBatches(t *testing.T, newState NewState) {
	db := newHarness(t, newState).db
	n := 3*rules.ImportBatch + 7
	chs := genChannels(n, "bulk")
	added, updated, err := db.ImportChannels(chs)
	if err != nil || added != n || updated != 0 {
		t.Fatalf("ImportChannels = %d added, %d updated, %v; want %d, 0", added, updated, err, n)
	}
	if s, err := db.Counts(); err != nil || s.Channels != n {
		t.Fatalf("Stats = %+v, %v; want %d channels", s, err, n)
	}
	news := &tilecast.Feed{Name: "news", URL: "http://127.0.0.1/news"}
	if subs, err := db.Subscribers(news, ""); err != nil || len(subs) != n {
		t.Errorf("Subscribers(news) = %d, %v; want every channel (listing it or none)", len(subs), err)
	}
	wantU3, users := 0, map[string]bool{}
	for _, ch := range chs {
		if ch.User == "u0003" {
			wantU3++
		}
		if ch.User != "" {
			users[ch.User] = true
		}
	}
	inbox := &tilecast.Feed{Name: "inbox", URL: "http://127.0.0.1/{user}"}
	if subs, err := db.Subscribers(inbox, "u0003"); err != nil || len(subs) != wantU3 || wantU3 == 0 {
		t.Errorf("Subscribers(inbox, u0003) = %d, %v; want %d", len(subs), err, wantU3)
	}
	if got, _ := db.FeedUsers("inbox"); len(got) != len(users) {
		t.Errorf("FeedUsers(inbox) = %d users, want %d", len(got), len(users))
	}
	last, err := db.ChannelByURI(chs[n-1].URI)
	if err != nil || !slices.Equal(last.Feeds, chs[n-1].Feeds) || last.User != chs[n-1].User {
		t.Errorf("ChannelByURI(last) = %+v, %v; want %+v", last, err, chs[n-1])
	}

	chs[n-1].User = "changed"
	added, updated, err = db.ImportChannels(chs)
	if err != nil || added != 0 || updated != n {
		t.Fatalf("re-import = %d added, %d updated, %v; want 0, %d", added, updated, err, n)
	}
	again, _ := db.ChannelByURI(chs[n-1].URI)
	if again.ID != last.ID || !again.Created.Equal(last.Created) || again.User != "changed" {
		t.Errorf("re-import: %+v, was %+v; want the same channel with the new user", again, last)
	}
	if got, _ := db.Channels("changed"); len(got) != 1 {
		t.Errorf("user index after re-import: %d channels of the new user, want 1", len(got))
	}
	if s, _ := db.Counts(); s.Channels != n {
		t.Errorf("after re-import %d channels, want %d", s.Channels, n)
	}
}

func testImportChannelsRules(t *testing.T, newState NewState) {
	tests := []struct {
		name             string
		existing         []tilecast.Channel
		in               []tilecast.Channel
		added, updated   int
		wantErr          error
		wantChannels     int
		wantUser         map[string]string // URI → user after the import
		wantFeeds        map[string][]string
		wantMissingURIs  []string
		wantSameIDForURI string            // a URI of existing whose ID must be kept
		wantIDOf         map[string]string // URI → the URI of existing whose ID it must have
		wantRotations    int               // channel rotated log lines
	}{
		{
			name:         "new and existing",
			existing:     []tilecast.Channel{{URI: "http://127.0.0.1/a", User: "ana", Feeds: []string{"news"}}},
			in:           []tilecast.Channel{{URI: "http://127.0.0.1/a", User: "bob"}, {URI: "http://127.0.0.1/b", Feeds: []string{"x", "x", "y"}}},
			added:        1,
			updated:      1,
			wantChannels: 2,
			wantUser:     map[string]string{"http://127.0.0.1/a": "bob", "http://127.0.0.1/b": ""},
			wantFeeds:    map[string][]string{"http://127.0.0.1/a": nil, "http://127.0.0.1/b": {"x", "y"}},

			wantSameIDForURI: "http://127.0.0.1/a",
		},
		{
			name:         "a URI repeated in the input: the later one wins",
			in:           []tilecast.Channel{{URI: "http://127.0.0.1/a", User: "ana"}, {URI: "http://127.0.0.1/a", User: "bob"}},
			added:        1,
			updated:      1,
			wantChannels: 1,
			wantUser:     map[string]string{"http://127.0.0.1/a": "bob"},
		},
		{
			name:         "one invalid channel: nothing is written",
			existing:     []tilecast.Channel{{URI: "http://127.0.0.1/a"}},
			in:           []tilecast.Channel{{URI: "http://127.0.0.1/b"}, {URI: ""}, {URI: "http://127.0.0.1/c"}},
			wantErr:      tilecast.ErrInvalidChannel,
			wantChannels: 1,

			wantMissingURIs: []string{"http://127.0.0.1/b", "http://127.0.0.1/c"},
		},
		{
			name:         "NUL in a user",
			in:           []tilecast.Channel{{URI: "http://127.0.0.1/b", User: "a\x00b"}},
			wantErr:      tilecast.ErrInvalidChannel,
			wantChannels: 0,
		},
		{
			name:         "a bidi control in a user",
			in:           []tilecast.Channel{{URI: "http://127.0.0.1/b", User: "ok"}, {URI: "http://127.0.0.1/c", User: "a\u2066b"}},
			wantErr:      tilecast.ErrInvalidChannel,
			wantChannels: 0,
		},
		{
			name:         "invalid UTF-8 in a user is refused, not replaced",
			in:           []tilecast.Channel{{URI: "http://127.0.0.1/b", User: "bob\xc3"}},
			wantErr:      tilecast.ErrInvalidChannel,
			wantChannels: 0,
		},
		{
			name:            "a device's new URI rotates its channel",
			existing:        []tilecast.Channel{{URI: "http://127.0.0.1/old", User: "ana", Device: "d1"}},
			in:              []tilecast.Channel{{URI: "http://127.0.0.1/new", User: "ana", Device: "d1"}},
			updated:         1,
			wantChannels:    1,
			wantMissingURIs: []string{"http://127.0.0.1/old"},
			wantIDOf:        map[string]string{"http://127.0.0.1/new": "http://127.0.0.1/old"},
			wantRotations:   1,
		},
		{
			name:          "another user's device ID is another device",
			existing:      []tilecast.Channel{{URI: "http://127.0.0.1/ana", User: "ana", Device: "d1"}},
			in:            []tilecast.Channel{{URI: "http://127.0.0.1/bob", User: "bob", Device: "d1"}},
			added:         1,
			wantChannels:  2,
			wantUser:      map[string]string{"http://127.0.0.1/ana": "ana", "http://127.0.0.1/bob": "bob"},
			wantIDOf:      map[string]string{"http://127.0.0.1/ana": "http://127.0.0.1/ana"},
			wantRotations: 0,
		},
		{
			name:          "one device twice in the input: the second rotates the first",
			in:            []tilecast.Channel{{URI: "http://127.0.0.1/p1", User: "ana", Device: "d1"}, {URI: "http://127.0.0.1/p2", User: "ana", Device: "d1"}},
			added:         1,
			updated:       1,
			wantChannels:  1,
			wantUser:      map[string]string{"http://127.0.0.1/p2": "ana"},
			wantRotations: 1,

			wantMissingURIs: []string{"http://127.0.0.1/p1"},
		},
		{
			name: "empty input",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, newState)
			db := h.db
			ids := map[string]string{}
			for _, ch := range tc.existing {
				ids[ch.URI] = addChannel(t, db, ch).ID
			}
			added, updated, err := db.ImportChannels(tc.in)
			if n := strings.Count(h.logs.String(), `msg="channel rotated"`); n != tc.wantRotations {
				t.Errorf("%d rotations logged, want %d:\n%s", n, tc.wantRotations, h.logs.String())
			}
			for uri, from := range tc.wantIDOf {
				if ch, err := db.ChannelByURI(uri); err != nil || ch.ID != ids[from] {
					t.Errorf("%s: %+v, %v; want the ID of %s (%s)", uri, ch, err, from, ids[from])
				}
			}
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if added != tc.added || updated != tc.updated {
				t.Errorf("added %d updated %d, want %d %d", added, updated, tc.added, tc.updated)
			}
			if s, _ := db.Counts(); s.Channels != tc.wantChannels {
				t.Errorf("%d channels, want %d", s.Channels, tc.wantChannels)
			}
			for uri, user := range tc.wantUser {
				ch, err := db.ChannelByURI(uri)
				if err != nil || ch.User != user {
					t.Errorf("%s: %+v, %v; want user %q", uri, ch, err, user)
				}
				if chs, _ := db.Channels(user); user != "" && !slices.ContainsFunc(chs, func(c tilecast.Channel) bool { return c.URI == uri }) {
					t.Errorf("user index of %q lacks %s", user, uri)
				}
			}
			for uri, feeds := range tc.wantFeeds {
				if ch, _ := db.ChannelByURI(uri); !slices.Equal(ch.Feeds, feeds) {
					t.Errorf("%s feeds %v, want %v", uri, ch.Feeds, feeds)
				}
			}
			for _, uri := range tc.wantMissingURIs {
				if _, err := db.ChannelByURI(uri); !errors.Is(err, tilecast.ErrNotFound) {
					t.Errorf("%s: %v, want not found", uri, err)
				}
			}
			if u := tc.wantSameIDForURI; u != "" {
				if ch, _ := db.ChannelByURI(u); ch.ID != ids[u] {
					t.Errorf("%s: ID %s, want the existing %s", u, ch.ID, ids[u])
				}
			}
		})
	}
}

// ImportChannels and AddChannel apply the same rules: the same input
// gives the same records (ID aside) and the same indexes.
func testImportMatchesAddChannel(t *testing.T, newState NewState) {
	in := genChannels(30, "same")
	in = append(in, tilecast.Channel{URI: in[4].URI, User: "zed", Feeds: []string{"inbox"}, Device: "dev"})
	one, two := newHarness(t, newState).db, newHarness(t, newState).db
	for _, ch := range in {
		addChannel(t, one, ch)
	}
	if _, _, err := two.ImportChannels(in); err != nil {
		t.Fatal(err)
	}
	a, _ := one.Channels("")
	b, _ := two.Channels("")
	norm := func(chs []tilecast.Channel) []string {
		var out []string
		for _, c := range chs {
			out = append(out, fmt.Sprintf("%s|%s|%v|%s|%s", c.URI, c.User, c.Feeds, c.Device, c.Created))
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(norm(a), norm(b)) {
		t.Errorf("AddChannel and ImportChannels differ:\n%v\n%v", norm(a), norm(b))
	}
	for _, db := range []Backend{one, two} {
		if users, _ := db.FeedUsers("inbox"); !slices.Contains(users, "zed") {
			t.Errorf("FeedUsers(inbox) = %v, want zed", users)
		}
	}
}

// Names a caller passes that no channel can have (from a URL path, an
// operator's typo: NUL bytes, invalid UTF-8) find nothing and break
// nothing.
func testNamesThatCannotBeStored(t *testing.T, newState NewState) {
	db := newHarness(t, newState).db
	ch := addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/a", User: "ana", Feeds: []string{"news"}})
	for _, bad := range []string{"a\x00b", "\xff\xfe", ch.ID + "\x00"} {
		if _, err := db.Channel(bad); !errors.Is(err, tilecast.ErrNotFound) {
			t.Errorf("Channel(%q) = %v, want ErrNotFound", bad, err)
		}
		if _, err := db.ChannelByURI("http://127.0.0.1/" + bad); !errors.Is(err, tilecast.ErrNotFound) {
			t.Errorf("ChannelByURI(%q) = %v, want ErrNotFound", bad, err)
		}
		if err := db.RemoveChannel(bad); !errors.Is(err, tilecast.ErrNotFound) {
			t.Errorf("RemoveChannel(%q) = %v, want ErrNotFound", bad, err)
		}
		if chs, err := db.Channels(bad); err != nil || len(chs) != 0 {
			t.Errorf("Channels(%q) = %v, %v", bad, chs, err)
		}
		if chs, next, err := db.ChannelsPage(tilecast.ChannelFilter{User: bad}, "", 10); err != nil || len(chs) != 0 || next != "" {
			t.Errorf("ChannelsPage(user %q) = %v, %q, %v", bad, chs, next, err)
		}
		if os, _, err := db.OutcomesPage(tilecast.OutcomeFilter{Channel: bad}, "", 10); err != nil || len(os) != 0 {
			t.Errorf("OutcomesPage(channel %q) = %v, %v", bad, os, err)
		}
		if users, err := db.FeedUsers(bad); err != nil || len(users) != 0 {
			t.Errorf("FeedUsers(%q) = %v, %v", bad, users, err)
		}
		if subs, err := db.Subscribers(&tilecast.Feed{Name: "inbox", URL: "http://127.0.0.1/{user}"}, bad); err != nil || len(subs) != 0 {
			t.Errorf("Subscribers(inbox, %q) = %v, %v", bad, subs, err)
		}
		// A record whose outcome names such a channel changes nothing and fails nothing.
		if err := db.Record([]tilecast.Record{{ID: 1 << 40, Op: tilecast.OpDone, Sent: true,
			Outcome: tilecast.Outcome{ChannelID: bad, Action: tilecast.ActionDelivered}}}); err != nil {
			t.Errorf("Record for channel %q: %v", bad, err)
		}
	}
	// Outcomes from the outside world with any bytes are kept.
	weird := tilecast.Outcome{ChannelID: ch.ID, Feed: "news", Action: tilecast.ActionFailed, ItemID: "item\x00\xff",
		Error: "bad \x00 body \xfe", Notification: "Received\x00"}
	must(t, db.Record([]tilecast.Record{{ID: 1 << 41, Op: tilecast.OpDone, Sent: true, Outcome: weird}}))
	led, err := db.Outcomes(ch.ID, "", time.Time{})
	if err != nil || len(led) != 1 || !strings.Contains(led[0].Error, "body") || led[0].Action != tilecast.ActionFailed {
		t.Errorf("ledger = %+v, %v; want the outcome with the odd bytes", led, err)
	}
}
