package tilecast_test

import (
	"context"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/web"
)

// ttlPusher records the time to live the Bot passes with each push, by
// channel token and kind, and hands the push on.
type ttlPusher struct {
	next tilecast.Pusher
	mu   sync.Mutex
	ttls map[string][]time.Duration // "token kind" → one per push
}

func (p *ttlPusher) Push(ctx context.Context, ch *tilecast.Channel, n *tilecast.Notification, ttl time.Duration) tilecast.Result {
	p.mu.Lock()
	k := ch.URI[strings.LastIndex(ch.URI, "/")+1:] + " " + string(n.Kind)
	p.ttls[k] = append(p.ttls[k], ttl)
	p.mu.Unlock()
	return p.next.Push(ctx, ch, n, ttl)
}

func (p *ttlPusher) got(token string, kind tilecast.Kind) []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ttls[token+" "+string(kind)]
}

// ttlHarness is the end-to-end harness with the pusher wrapped to see the
// time to live of each push and the daemon's real metrics as the Observer.
type ttlHarness struct {
	*harness
	pusher *ttlPusher
	reg    *prometheus.Registry
}

func newTTLHarness(t *testing.T) *ttlHarness { return withTTL(newHarness(t)) }

// withTTL wraps the pusher of hh's Bot and makes the daemon's metrics its
// Observer.
func withTTL(hh *harness) *ttlHarness {
	h := &ttlHarness{harness: hh, reg: prometheus.NewRegistry()}
	h.pusher = &ttlPusher{next: h.bot.Pusher, ttls: map[string][]time.Duration{}}
	h.bot.Pusher = h.pusher
	h.bot.Observer = web.NewMetrics(h.reg)
	return h
}

// pushTotal reads tilecast_push_total{kind,outcome}.
func (h *ttlHarness) pushTotal(kind tilecast.Kind, outcome tilecast.Action) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tilecast_push_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == string(kind) && labels["outcome"] == string(outcome) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// pushLines returns the `push` log lines written so far with outcome o.
func (h *ttlHarness) pushLines(o tilecast.Action) []string {
	var out []string
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(line, "msg=push ") && strings.Contains(line, " outcome="+string(o)+" ") {
			out = append(out, line)
		}
	}
	return out
}

// TestStaleToastExpires: a toast that waited past toast_ttl is dropped
// unsent, with outcome expired in the push log line, the ledger and
// tilecast_push_total, and is not counted toward the daily cap; the tile
// of the same run, within tile_ttl, is sent with what is left of its time
// to live.
func TestStaleToastExpires(t *testing.T) {
	h := newTTLHarness(t)
	news := h.feed("news", "/news.xml")
	news.TTL = tilecast.TTL{tilecast.KindToast: time.Hour} // tile: the default 72h
	h.bot.SetFeeds([]tilecast.Feed{*news})
	ch := h.channel("A", "", "news")
	h.feeds.add("/news.xml", rssItem{"n1", "Old", ""})
	h.run(news)
	h.deliver()
	h.feeds.add("/news.xml", rssItem{"n2", "Fresh", ""})
	h.run(news) // enqueued now

	h.clock.Add(2 * time.Hour)
	got := h.deliver()
	if n := count(got, "A", "toast"); n != 0 {
		t.Errorf("the stale toast was pushed %d times", n)
	}
	if n := count(got, "A", "token"); n != 1 {
		t.Errorf("the tile was pushed %d times, want 1", n)
	}
	if ttls := h.pusher.got("A", tilecast.KindTile); len(ttls) != 1 || ttls[0] != 70*time.Hour {
		t.Errorf("tile pushed with ttl %v, want [70h] (72h tile_ttl − 2h waited)", ttls)
	}
	if ttls := h.pusher.got("A", tilecast.KindToast); len(ttls) != 0 {
		t.Errorf("Push was called for the toast with ttl %v", ttls)
	}

	lines := h.pushLines(tilecast.ActionExpired)
	if len(lines) != 1 || !strings.Contains(lines[0], "kind=toast") || !strings.Contains(lines[0], "item=n2") ||
		!strings.Contains(lines[0], "channel="+ch.ID) || !strings.Contains(lines[0], "attempt=0") ||
		!strings.Contains(lines[0], "waited 2h0m0s") {
		t.Errorf("expired push lines = %q, want one for toast n2 on %s, attempt 0, saying it waited 2h", lines, ch.ID)
	}
	if v := h.pushTotal(tilecast.KindToast, tilecast.ActionExpired); v != 1 {
		t.Errorf(`push_total{kind="toast",outcome="expired"} = %v, want 1`, v)
	}
	if v := h.pushTotal(tilecast.KindTile, tilecast.ActionDelivered); v != 1 {
		t.Errorf(`push_total{kind="tile",outcome="delivered"} = %v, want 1`, v)
	}
	led, err := h.db.Outcomes(ch.ID, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	actions := map[tilecast.Action]int{}
	for _, o := range led {
		actions[o.Action]++
		if o.Action == tilecast.ActionExpired && (o.Kind != tilecast.KindToast || o.ItemID != "n2" || o.Status != 0 ||
			!o.Time.Equal(h.clock.Now())) {
			t.Errorf("expired ledger entry = %+v", o)
		}
	}
	if actions[tilecast.ActionExpired] != 1 || actions[tilecast.ActionDelivered] != 1 || len(led) != 2 {
		t.Errorf("ledger = %+v, want one expired toast and one delivered tile", led)
	}
	c, err := h.db.Channel(ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.SendsToday != 1 || c.LastOutcome != string(tilecast.ActionDelivered) {
		t.Errorf("channel sends today %d, last outcome %q; want 1 (the tile only), delivered", c.SendsToday, c.LastOutcome)
	}
	if n, _ := h.db.NextDue(); !n.IsZero() {
		t.Errorf("outbox not empty: next due %v", n)
	}
}

// TestTTLPerFeedAndRemovedFeed: each feed's own toast_ttl decides, and the
// notifications of a feed no longer configured use [defaults]' (or the
// built-in 24h when none is set). Pushes carry the rest of the TTL.
func TestTTLPerFeedAndRemovedFeed(t *testing.T) {
	tests := []struct {
		name     string
		feedTTL  time.Duration // the feed's toast_ttl; 0: the built-in
		removed  bool          // the feed is dropped from the config before delivery
		defaults tilecast.TTL  // SetDefaultTTL
		wait     time.Duration
		wantTTL  time.Duration // 0: expired
	}{
		{"feed override expires", 10 * time.Minute, false, tilecast.TTL{tilecast.KindToast: 48 * time.Hour}, 30 * time.Minute, 0},
		{"feed override keeps", 2 * time.Hour, false, tilecast.TTL{tilecast.KindToast: time.Minute}, 30 * time.Minute, 90 * time.Minute},
		{"built-in 24h", 0, false, nil, 30 * time.Minute, 23*time.Hour + 30*time.Minute},
		{"almost out: at least 1s", time.Hour, false, nil, time.Hour - time.Millisecond, time.Second},
		{"exactly out", time.Hour, false, nil, time.Hour, 0},
		{"removed feed: defaults expire", 48 * time.Hour, true, tilecast.TTL{tilecast.KindToast: time.Hour}, 2 * time.Hour, 0},
		{"removed feed: defaults keep", 10 * time.Minute, true, tilecast.TTL{tilecast.KindToast: 3 * time.Hour}, 2 * time.Hour, time.Hour},
		{"removed feed: no defaults set", 10 * time.Minute, true, nil, 2 * time.Hour, 22 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTTLHarness(t)
			f := h.feed("news", "/news.xml")
			f.Tile = nil // toasts only
			if tt.feedTTL > 0 {
				f.TTL = tilecast.TTL{tilecast.KindToast: tt.feedTTL}
			}
			h.bot.SetFeeds([]tilecast.Feed{*f})
			h.bot.SetDefaultTTL(tt.defaults)
			h.channel("A", "", "news")
			h.feeds.add("/news.xml", rssItem{"n1", "Old", ""})
			h.run(f)
			h.feeds.add("/news.xml", rssItem{"n2", "Fresh", ""})
			h.run(f)
			if tt.removed {
				h.bot.SetFeeds(nil)
			}
			h.clock.Add(tt.wait)
			got := h.deliver()
			ttls := h.pusher.got("A", tilecast.KindToast)
			expired := h.pushTotal(tilecast.KindToast, tilecast.ActionExpired)
			if tt.wantTTL == 0 {
				if len(got) != 0 || len(ttls) != 0 || expired != 1 {
					t.Errorf("pushed %d (ttls %v), %v expired; want the toast expired unsent", len(got), ttls, expired)
				}
				return
			}
			if count(got, "A", "toast") != 1 || len(ttls) != 1 || ttls[0] != tt.wantTTL || expired != 0 {
				t.Errorf("pushed %d with ttls %v, %v expired; want one push with ttl %v", len(got), ttls, expired, tt.wantTTL)
			}
		})
	}
}

// TestToastExpiresWhileItsChannelRests: a toast held back by its channel's
// 61-minute rest (412) is checked again when the rest ends and dropped,
// not sent, once past its time to live.
func TestToastExpiresWhileItsChannelRests(t *testing.T) {
	h := newTTLHarness(t)
	f := h.feed("news", "/news.xml")
	f.Tile = nil
	f.TTL = tilecast.TTL{tilecast.KindToast: 30 * time.Minute}
	h.bot.SetFeeds([]tilecast.Feed{*f})
	ch := h.channel("R", "", "news")
	h.mpns.script("R", inactive, received)
	h.feeds.add("/news.xml", rssItem{"n1", "Old", ""})
	h.run(f)
	h.feeds.add("/news.xml", rssItem{"n2", "Fresh", ""})
	h.run(f)
	if got := h.deliver(); count(got, "R", "toast") != 1 {
		t.Fatalf("first delivery pushed %d toasts, want 1 (answered 412)", count(got, "R", "toast"))
	}
	if ttls := h.pusher.got("R", tilecast.KindToast); len(ttls) != 1 || ttls[0] != 30*time.Minute {
		t.Errorf("first push ttl %v, want [30m]", ttls)
	}
	h.clock.Add(tilecast.ChannelWait + time.Minute)
	if got := h.deliver(); len(got) != 0 {
		t.Errorf("after the rest: %d pushes, want 0 (the toast expired)", len(got))
	}
	led, err := h.db.Outcomes(ch.ID, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(led) != 2 || led[0].Action != tilecast.ActionRetry || led[1].Action != tilecast.ActionExpired || led[1].Attempt != 1 {
		t.Errorf("ledger = %+v, want the 412 retry, then expired after 1 attempt", led)
	}
	if c, _ := h.db.Channel(ch.ID); c.SendsToday != 1 {
		t.Errorf("sends today = %d, want 1 (the expiry is not a send)", c.SendsToday)
	}
}

// wnsToken is how ttlPusher keys a push to Windows device d (its URI ends
// in /w/?token=…).
func wnsToken(d emulator.WindowsDevice) string { return "?token=" + d.Token }

// TestPushTotalKindBadge: a new item sends a Windows device its toast,
// its tile and its badge, and tilecast_push_total counts each under its
// own kind label, the badge under kind="badge".
func TestPushTotalKindBadge(t *testing.T) {
	w := newWNSHarness(t)
	h := withTTL(w.harness)
	news := h.feed("news", "/news.xml")
	h.bot.SetFeeds([]tilecast.Feed{*news})
	d, _ := w.windows("pc")
	h.feeds.add("/news.xml", rssItem{"n1", "Old", ""})
	h.run(news)
	h.deliver()
	h.feeds.add("/news.xml", rssItem{"n2", "Fresh", ""})
	h.run(news)
	h.deliver()
	if st, _ := w.emu.WindowsDeviceState(d.Token); st.Badge != "1" || len(st.Toasts) != 1 {
		t.Fatalf("device badge %q, %d toasts; want badge 1 and one toast", st.Badge, len(st.Toasts))
	}
	for _, kind := range []tilecast.Kind{tilecast.KindToast, tilecast.KindTile, tilecast.KindBadge} {
		if n := len(h.pusher.got(wnsToken(d), kind)); n != 1 {
			t.Errorf("%s pushed %d times, want 1", kind, n)
		}
		if v := h.pushTotal(kind, tilecast.ActionDelivered); v != 1 {
			t.Errorf(`push_total{kind=%q,outcome="delivered"} = %v, want 1`, kind, v)
		}
	}
}

// TestStaleBadgeExpires: a badge that waited past its feed's badge_ttl
// is dropped unsent, with outcome expired in the push log line, the
// ledger and tilecast_push_total{kind="badge"}, while the toast and tile
// of the same item, with longer times to live, are sent with what is left
// of theirs; within badge_ttl the badge goes too.
func TestStaleBadgeExpires(t *testing.T) {
	tests := []struct {
		name       string
		wait       time.Duration
		badgeTTL   time.Duration // pushed with; 0: expired
		toastTTL   time.Duration
		tileTTL    time.Duration
		wantBadge  string // on the device
		wantLedger map[tilecast.Kind]tilecast.Action
	}{
		{"past badge_ttl", 2 * time.Hour, 0, time.Hour, 70 * time.Hour, "",
			map[tilecast.Kind]tilecast.Action{tilecast.KindBadge: tilecast.ActionExpired,
				tilecast.KindToast: tilecast.ActionDelivered, tilecast.KindTile: tilecast.ActionDelivered}},
		{"within badge_ttl", 30 * time.Minute, 30 * time.Minute, 150 * time.Minute, 71*time.Hour + 30*time.Minute, "1",
			map[tilecast.Kind]tilecast.Action{tilecast.KindBadge: tilecast.ActionDelivered,
				tilecast.KindToast: tilecast.ActionDelivered, tilecast.KindTile: tilecast.ActionDelivered}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWNSHarness(t)
			h := withTTL(w.harness)
			news := h.feed("news", "/news.xml")
			news.TTL = tilecast.TTL{tilecast.KindBadge: time.Hour, tilecast.KindToast: 3 * time.Hour} // tile: the default 72h
			h.bot.SetFeeds([]tilecast.Feed{*news})
			d, ch := w.windows("pc")
			h.feeds.add("/news.xml", rssItem{"n1", "Old", ""})
			h.run(news)
			h.deliver()
			h.feeds.add("/news.xml", rssItem{"n2", "Fresh", ""})
			h.run(news) // enqueued now

			h.clock.Add(tt.wait)
			h.deliver()
			for kind, want := range map[tilecast.Kind]time.Duration{tilecast.KindBadge: tt.badgeTTL,
				tilecast.KindToast: tt.toastTTL, tilecast.KindTile: tt.tileTTL} {
				got := h.pusher.got(wnsToken(d), kind)
				if (want == 0 && len(got) != 0) || (want != 0 && (len(got) != 1 || got[0] != want)) {
					t.Errorf("%s pushed with ttls %v, want %v (none: expired)", kind, got, want)
				}
			}
			st, _ := w.emu.WindowsDeviceState(d.Token)
			if st.Badge != tt.wantBadge || len(st.Toasts) != 1 || len(st.Tile.Sizes) == 0 {
				t.Errorf("device badge %q, %d toasts, tile %+v; want badge %q, the toast and the tile", st.Badge, len(st.Toasts), st.Tile, tt.wantBadge)
			}

			led, err := h.db.Outcomes(ch.ID, "", time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			got := map[tilecast.Kind]tilecast.Action{}
			for _, o := range led {
				got[o.Kind] = o.Action
				if o.Action == tilecast.ActionExpired && (o.ItemID != "n2" || o.Status != 0 || o.Attempt != 0 || !o.Time.Equal(h.clock.Now())) {
					t.Errorf("expired ledger entry = %+v", o)
				}
			}
			if len(led) != len(tt.wantLedger) || !maps.Equal(got, tt.wantLedger) {
				t.Errorf("ledger = %+v, want %v", led, tt.wantLedger)
			}
			for kind, action := range tt.wantLedger {
				if v := h.pushTotal(kind, action); v != 1 {
					t.Errorf(`push_total{kind=%q,outcome=%q} = %v, want 1`, kind, action, v)
				}
			}
			lines := h.pushLines(tilecast.ActionExpired)
			if tt.badgeTTL != 0 {
				if len(lines) != 0 {
					t.Errorf("expired push lines %q, want none", lines)
				}
				return
			}
			if len(lines) != 1 || !strings.Contains(lines[0], "kind=badge") || !strings.Contains(lines[0], "channel="+ch.ID) ||
				!strings.Contains(lines[0], "transport=wns") || !strings.Contains(lines[0], "waited 2h0m0s") {
				t.Errorf("expired push lines = %q, want one for the badge on %s saying it waited 2h", lines, ch.ID)
			}
		})
	}
}
