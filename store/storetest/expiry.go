package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/logtest"
)

func expiryTests() []test {
	return []test{
		{"ExpiredChannels", testExpiredChannels},
		{"ExpiredChannelsFollowWrites", testExpiredChannelsFollowWrites},
		{"ExpiredChannelsLimit", testExpiredChannelsLimit},
		{"SweepExpired", testSweepExpired},
		{"RemoveExpiredChannel", testRemoveExpiredChannel},
		{"SweepKeepsResubscribed", testSweepKeepsResubscribed},
	}
}

// webPush is a Web Push channel of uri that expires at exp (zero: never).
func webPush(uri string, exp time.Time) tilecast.Channel {
	return tilecast.Channel{URI: "https://127.0.0.1/push/" + uri, Transport: tilecast.TransportWebPush, Expires: exp,
		Keys: &tilecast.PushKeys{P256DH: bytes.Repeat([]byte{4}, 65), Auth: bytes.Repeat([]byte{1}, 16)}}
}

// expiredIDs returns the IDs ExpiredChannels lists at now, in its order,
// and checks that each listed channel has expired by then.
func expiredIDs(t testing.TB, db Backend, now time.Time, limit int) []string {
	t.Helper()
	chs, err := db.ExpiredChannels(now, limit)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, ch := range chs {
		if ch.Expires.IsZero() || ch.Expires.After(now) {
			t.Errorf("ExpiredChannels(%v) lists %s expiring %v", now, ch.ID, ch.Expires)
		}
		ids = append(ids, ch.ID)
	}
	return ids
}

func checkExpired(t testing.TB, db Backend, now time.Time, what string, want ...tilecast.Channel) {
	t.Helper()
	wantIDs := []string{}
	for _, ch := range want {
		wantIDs = append(wantIDs, ch.ID)
	}
	if got := expiredIDs(t, db, now, 0); !slices.Equal(got, wantIDs) {
		t.Errorf("%s: ExpiredChannels = %v, want %v", what, got, wantIDs)
	}
}

// ExpiredChannels lists the channels whose expiry has come (the instant
// itself included), earliest first; channels that expire later or never
// (Web Push without expirationTime, MPNS, WNS) are not listed.
func testExpiredChannels(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	now := clk.Now()
	b := addChannel(t, db, webPush("b", now.Add(-time.Hour)))
	a := addChannel(t, db, webPush("a", now.Add(-2*time.Hour)))
	c := addChannel(t, db, webPush("c", now))
	d := addChannel(t, db, webPush("d", now.Add(time.Hour)))
	addChannel(t, db, webPush("never", time.Time{}))
	addChannel(t, db, tilecast.Channel{URI: "http://127.0.0.1/mpns"})
	addChannel(t, db, tilecast.Channel{URI: "https://wns2-par02p.notify.windows.com/w/?token=x", Transport: tilecast.TransportWNS})

	checkExpired(t, db, now.Add(-3*time.Hour), "before any expiry")
	checkExpired(t, db, now, "now", a, b, c)
	checkExpired(t, db, now.Add(time.Hour-time.Second), "a second before d's expiry", a, b, c)
	checkExpired(t, db, now.Add(time.Hour), "at d's expiry", a, b, c, d)
	// Two channels of one expiry: by ID.
	e := addChannel(t, db, webPush("e", now))
	same := []tilecast.Channel{c, e}
	slices.SortFunc(same, func(x, y tilecast.Channel) int { return strings.Compare(x.ID, y.ID) })
	checkExpired(t, db, now, "two of one expiry", a, b, same[0], same[1])
	chs, err := db.ExpiredChannels(now, 0)
	if err != nil || len(chs) != 4 || chs[0].URI != a.URI || !chs[0].Expires.Equal(a.Expires) || chs[0].Transport != tilecast.TransportWebPush {
		t.Errorf("ExpiredChannels = %+v, %v; want whole records, %s first", chs, err, a.ID)
	}
	// Kept across a reopen.
	h.reopen()
	checkExpired(t, h.db, now, "after reopening", a, b, same[0], same[1])
}

// Every write that changes a channel's expiry moves it in the listing:
// a re-subscription with a new expirationTime (by API or import), one
// without, a device's rotation to a new subscription, a rotation onto a
// URI that has a channel already (the two made one), and a removal.
func testExpiredChannelsFollowWrites(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	now := clk.Now()
	a := addChannel(t, db, webPush("a", now.Add(-time.Hour)))
	b := addChannel(t, db, webPush("b", now.Add(-time.Hour+time.Second)))
	c := addChannel(t, db, webPush("c", now.Add(-time.Hour+2*time.Second)))
	checkExpired(t, db, now, "at the start", a, b, c)

	// A re-subscription extends a: it goes to its new place.
	later := webPush("a", now.Add(2*time.Hour))
	if got, created, err := db.AddChannel(later); err != nil || created || got.ID != a.ID {
		t.Fatalf("re-subscription = %+v, %v, %v", got, created, err)
	}
	checkExpired(t, db, now, "a extended", b, c)
	checkExpired(t, db, now.Add(2*time.Hour), "at a's new expiry", b, c, a)
	// One without expirationTime: b never expires now.
	addChannel(t, db, webPush("b", time.Time{}))
	checkExpired(t, db, farFuture, "b without expiry", c, a)
	// An import moves c before everything.
	if added, updated, err := db.ImportChannels([]tilecast.Channel{webPush("c", now.Add(-3*time.Hour))}); err != nil || added != 0 || updated != 1 {
		t.Fatalf("import = %d, %d, %v", added, updated, err)
	}
	checkExpired(t, db, now, "c imported with an earlier expiry", c)
	// A new channel that expires, by import.
	if _, _, err := db.ImportChannels([]tilecast.Channel{webPush("i", now.Add(-30*time.Minute))}); err != nil {
		t.Fatal(err)
	}
	i, err := db.ChannelByURI(webPush("i", time.Time{}).URI)
	must(t, err)
	checkExpired(t, db, now, "i imported", c, i)
	// Removal drops it.
	must(t, db.RemoveChannel(c.ID))
	checkExpired(t, db, farFuture, "c removed", i, a)

	// A device's new subscription (rotation in place): the channel keeps
	// its ID and takes the new expiry.
	dev := webPush("dev-old", now.Add(-10*time.Minute))
	dev.User, dev.Device = "ana", "laptop"
	dev = addChannel(t, db, dev)
	checkExpired(t, db, now, "the device's channel", i, dev)
	rot := webPush("dev-new", now.Add(3*time.Hour))
	rot.User, rot.Device = "ana", "laptop"
	if got, created, err := db.AddChannel(rot); err != nil || created || got.ID != dev.ID {
		t.Fatalf("rotation = %+v, %v, %v", got, created, err)
	}
	checkExpired(t, db, now, "rotated to a later subscription", i)
	checkExpired(t, db, now.Add(3*time.Hour), "at the rotated expiry", i, a, dev)

	// A rotation onto a URI with a channel of its own: the older channel
	// stays with the registration's expiry, the other goes.
	clk.Add(time.Second) // dev is the older of the two
	other := addChannel(t, db, webPush("other", now.Add(-20*time.Minute)))
	checkExpired(t, db, now, "other added", i, other)
	onto := webPush("other", now.Add(4*time.Hour))
	onto.User, onto.Device = "ana", "laptop"
	kept, created, err := db.AddChannel(onto)
	if err != nil || created || kept.ID != dev.ID {
		t.Fatalf("rotation onto other = %+v, %v, %v; want %s kept", kept, created, err, dev.ID)
	}
	checkExpired(t, db, now, "merged", i)
	checkExpired(t, db, farFuture, "merged, later", i, a, kept)
	if _, err := db.Channel(other.ID); err == nil {
		t.Errorf("channel %s still there after the merge", other.ID)
	}
	// An import that rotates a device.
	imp := webPush("dev-imported", now.Add(-5*time.Minute))
	imp.User, imp.Device = "ana", "laptop"
	if _, _, err := db.ImportChannels([]tilecast.Channel{imp}); err != nil {
		t.Fatal(err)
	}
	checkExpired(t, db, farFuture, "rotated by import", i, kept, a)
	h.reopen()
	checkExpired(t, h.db, farFuture, "after reopening", i, kept, a)
}

// limit bounds a listing; the next call, after the caller removed what
// it got, lists the next ones.
func testExpiredChannelsLimit(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	now := clk.Now()
	var want []tilecast.Channel
	for n := range 7 {
		want = append(want, addChannel(t, db, webPush(fmt.Sprint("x", n), now.Add(time.Duration(n-10)*time.Minute))))
	}
	addChannel(t, db, webPush("later", now.Add(time.Minute)))
	for _, limit := range []int{1, 3, 7, 50} {
		got := expiredIDs(t, db, now, limit)
		if n := min(limit, len(want)); len(got) != n || got[0] != want[0].ID || got[n-1] != want[n-1].ID {
			t.Errorf("limit %d: %v, want the first %d of %d", limit, got, n, len(want))
		}
	}
	first := expiredIDs(t, db, now, 3)
	for _, id := range first {
		must(t, db.RemoveChannel(id))
	}
	if got := expiredIDs(t, db, now, 3); len(got) != 3 || got[0] != want[3].ID {
		t.Errorf("after removing the first page: %v, want from %s", got, want[3].ID)
	}
	// More than the largest page: PageLimit's bound.
	var many []tilecast.Channel
	for n := range tilecast.MaxPageLimit + 5 {
		many = append(many, webPush(fmt.Sprint("m", n), now.Add(-time.Hour)))
	}
	_, _, err := db.ImportChannels(many)
	must(t, err)
	if got := expiredIDs(t, db, now, tilecast.MaxPageLimit+100); len(got) != tilecast.MaxPageLimit {
		t.Errorf("asked for more than MaxPageLimit: %d channels, want %d", len(got), tilecast.MaxPageLimit)
	}
	if got := expiredIDs(t, db, now, 0); len(got) != tilecast.DefaultPageLimit {
		t.Errorf("limit 0: %d channels, want %d", len(got), tilecast.DefaultPageLimit)
	}
}

// Bot.SweepExpired on this backend removes exactly the expired channels,
// with what waits for them, across more than one page, and logs each
// without its keys; a later sweep takes those expired meanwhile.
func testSweepExpired(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	now := clk.Now()
	var chs []tilecast.Channel
	gone := map[string]bool{}
	// More expired than one listing holds (MaxPageLimit), so a sweep
	// lists again after removing the first ones.
	soon := 0
	for n := range 2*tilecast.MaxPageLimit + 30 {
		exp := time.Time{}
		switch n % 10 {
		case 0, 2, 3, 4, 5, 6:
			exp = now.Add(-time.Duration(n) * time.Second)
		case 1:
			exp = now.Add(time.Minute)
			soon++
		}
		ch := webPush(fmt.Sprint("s", n), exp)
		ch.User = fmt.Sprint("u", n%7)
		chs = append(chs, ch)
	}
	_, _, err := db.ImportChannels(chs)
	must(t, err)
	all, err := db.Channels("")
	must(t, err)
	var waiting tilecast.Channel
	for _, ch := range all {
		if !ch.Expires.IsZero() && !ch.Expires.After(now) {
			gone[ch.ID] = true
			waiting = ch
		}
	}
	must(t, db.Enqueue([]tilecast.Notification{toast(waiting, "news", "w1")}))
	var logs logtest.Buffer
	bot := &tilecast.Bot{Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))}

	if len(gone) <= tilecast.MaxPageLimit {
		t.Fatalf("%d expired channels: want more than a page", len(gone))
	}
	n, err := bot.SweepExpired(t.Context(), db)
	if err != nil || n != len(gone) {
		t.Fatalf("SweepExpired = %d, %v; want %d", n, err, len(gone))
	}
	left, err := db.Channels("")
	must(t, err)
	if len(left) != len(all)-len(gone) {
		t.Errorf("%d channels left, want %d", len(left), len(all)-len(gone))
	}
	for _, ch := range left {
		if gone[ch.ID] {
			t.Errorf("expired channel %s still there", ch.ID)
		}
	}
	if ps := mustDue(t, db, farFuture); len(ps) != 0 {
		t.Errorf("%d entries still wait for removed channels", len(ps))
	}
	out := logs.String()
	if c := strings.Count(out, `msg="channel removed: subscription expired"`); c != len(gone) {
		t.Errorf("%d removal lines, want %d", c, len(gone))
	}
	want := fmt.Sprintf(`channel=%s user=%s transport=webpush expires=%s`, waiting.ID, waiting.User, waiting.Expires.UTC().Format(time.RFC3339))
	if !strings.Contains(out, want) {
		t.Errorf("no line with %q:\n%.2000s", want, out)
	}
	if strings.Contains(out, "BAQE") || strings.Contains(out, "AQEB") {
		t.Errorf("the log holds key material:\n%.2000s", out)
	}
	if n, err := bot.SweepExpired(t.Context(), db); err != nil || n != 0 {
		t.Errorf("second sweep = %d, %v; want 0", n, err)
	}
	clk.Add(time.Minute)
	if n, err := bot.SweepExpired(t.Context(), db); err != nil || n != soon {
		t.Errorf("a minute later = %d, %v; want the %d expired meanwhile", n, err, soon)
	}
	if s, err := db.Counts(); err != nil || s.Channels != len(all)-len(gone)-soon {
		t.Errorf("counts %+v, %v; want %d channels", s, err, len(all)-len(gone)-soon)
	}
}

// RemoveExpiredChannel removes a channel only if it has expired when the
// removal happens: one that expires later or never, one re-subscribed
// since it was listed, and an unknown ID are left alone, without error.
func testRemoveExpiredChannel(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	now := clk.Now()
	expired := addChannel(t, db, webPush("old", now.Add(-time.Minute)))
	atNow := addChannel(t, db, webPush("now", now))
	later := addChannel(t, db, webPush("later", now.Add(time.Hour)))
	never := addChannel(t, db, webPush("never", time.Time{}))
	listed := addChannel(t, db, webPush("listed", now.Add(-time.Hour)))
	checkExpired(t, db, now, "at the start", listed, expired, atNow)

	// listed re-subscribes after the listing, before the removal.
	if _, created, err := db.AddChannel(webPush("listed", now.Add(24*time.Hour))); err != nil || created {
		t.Fatalf("re-subscription: created %v, %v", created, err)
	}
	for _, c := range []struct {
		name string
		id   string
		want bool
	}{
		{"expires later", later.ID, false},
		{"never expires", never.ID, false},
		{"re-subscribed since listed", listed.ID, false},
		{"unknown", "no-such-channel", false},
		{"expired", expired.ID, true},
		{"expires at this instant", atNow.ID, true},
		{"expired, again", expired.ID, false},
	} {
		got, err := db.RemoveExpiredChannel(c.id, now)
		if err != nil || got != c.want {
			t.Errorf("%s: RemoveExpiredChannel = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	for _, ch := range []tilecast.Channel{later, never, listed} {
		if _, err := db.ChannelByURI(ch.URI); err != nil {
			t.Errorf("channel %s (%s) was removed: %v", ch.ID, ch.URI, err)
		}
	}
	for _, ch := range []tilecast.Channel{expired, atNow} {
		if _, err := db.ChannelByURI(ch.URI); !errors.Is(err, tilecast.ErrNotFound) {
			t.Errorf("expired channel %s still there: %v", ch.ID, err)
		}
	}
	checkExpired(t, db, now, "at the end")
}

// resubscribing is a store on which, right after each listing of expired
// channels, the browser of the first listed one re-subscribes with a
// later expirationTime: the race between a sweep's listing and its
// removals.
type resubscribing struct {
	Backend
	t     testing.TB
	later time.Time
	did   []string
}

func (r *resubscribing) ExpiredChannels(now time.Time, limit int) ([]tilecast.Channel, error) {
	chs, err := r.Backend.ExpiredChannels(now, limit)
	if err == nil && len(chs) > 0 {
		ch := chs[0]
		ch.Expires = r.later
		if _, _, err := r.Backend.AddChannel(ch); err != nil {
			r.t.Errorf("re-subscribe %s: %v", ch.ID, err)
		}
		r.did = append(r.did, ch.ID)
	}
	return chs, err
}

// A sweep removes the channels that still have expired when it removes
// them: a browser that re-subscribed after the sweep listed its channel
// keeps it (and its new expiry), and is not counted or logged as removed.
func testSweepKeepsResubscribed(t *testing.T, newState NewState) {
	h := newHarness(t, newState)
	db, clk := h.db, h.clk
	now := clk.Now()
	var all []tilecast.Channel
	for n := range 5 {
		all = append(all, addChannel(t, db, webPush(fmt.Sprint("r", n), now.Add(-time.Duration(5-n)*time.Minute))))
	}
	st := &resubscribing{Backend: db, t: t, later: now.Add(48 * time.Hour)}
	var logs logtest.Buffer
	bot := &tilecast.Bot{Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	n, err := bot.SweepExpired(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	// The first listing's first channel re-subscribed; the second listing
	// is empty (everything else was removed), so it re-subscribes nothing.
	if len(st.did) != 1 || st.did[0] != all[0].ID {
		t.Fatalf("re-subscribed %v, want [%s]", st.did, all[0].ID)
	}
	if n != len(all)-1 {
		t.Errorf("SweepExpired = %d, want %d", n, len(all)-1)
	}
	kept, err := db.ChannelByURI(all[0].URI)
	if err != nil {
		t.Fatalf("the re-subscribed channel was removed: %v", err)
	}
	if !kept.Expires.Equal(st.later) {
		t.Errorf("kept channel expires %v, want %v", kept.Expires, st.later)
	}
	if strings.Contains(logs.String(), "channel="+all[0].ID+" ") {
		t.Errorf("the re-subscribed channel is logged as removed:\n%s", logs.String())
	}
	if c := strings.Count(logs.String(), `msg="channel removed: subscription expired"`); c != len(all)-1 {
		t.Errorf("%d removal lines, want %d", c, len(all)-1)
	}
	checkExpired(t, db, st.later, "at the new expiry", kept)
}
