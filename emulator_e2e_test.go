package tilecast_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
)

// These tests drive the Bot against the project's own MPNS emulator, which
// checks every payload with its own parser and keeps the phone's state.

type emuHarness struct {
	*harness
	emu *emulator.Emulator
}

func newEmuHarness(t *testing.T) *emuHarness {
	h := newHarness(t)
	emu := emulator.New(emulator.Options{Now: h.clock.Now, Rand: rand.New(rand.NewPCG(1, 2))})
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(emu.Close)
	emu.SetBaseURL(srv.URL)
	return &emuHarness{harness: h, emu: emu}
}

func (h *emuHarness) phone(behaviour string, params ...emulator.Params) (emulator.Channel, tilecast.Channel) {
	h.t.Helper()
	ec, err := h.emu.CreateChannel(behaviour, behaviour, params...)
	if err != nil {
		h.t.Fatal(err)
	}
	ch, _, err := h.db.AddChannel(tilecast.Channel{URI: ec.URI, Feeds: []string{"news"}})
	if err != nil {
		h.t.Fatal(err)
	}
	return ec, ch
}

func (h *emuHarness) state(ec emulator.Channel) emulator.ChannelState {
	h.t.Helper()
	st, ok := h.emu.Channel(ec.Token)
	if !ok {
		h.t.Fatalf("emulator lost channel %s", ec.Name)
	}
	return st
}

func TestBehavioursAgainstEmulator(t *testing.T) {
	h := newEmuHarness(t)
	news := h.feed("news", "/news.xml")
	healthy, _ := h.phone(emulator.Healthy)
	expired, expiredCh := h.phone(emulator.Expired)
	inactive, inactiveCh := h.phone(emulator.Inactive)
	full, _ := h.phone(emulator.QueueFull, emulator.Params{QueueFullN: 2})
	supp, _ := h.phone(emulator.Suppressed)
	flaky, _ := h.phone(emulator.Flaky, emulator.Params{FlakyP: 1}) // always 503 until switched

	h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
	h.run(news)
	h.feeds.add("/news.xml", rssItem{"n1", "Harbour bridge reopens", "Traffic flows again."})
	h.run(news)
	h.deliver()

	// healthy: the phone shows the toast and the flip tile.
	st := h.state(healthy)
	if len(st.Toasts) != 1 || st.Toasts[0].Text2 != "Harbour bridge reopens" {
		t.Errorf("healthy phone toasts: %+v", st.Toasts)
	}
	if st.Tile.View().BackContent != "Harbour bridge reopens" || st.Tile.View().Count != 1 {
		t.Errorf("healthy phone tile: %+v", st.Tile.View())
	}
	if st.Counts.Rejected != 0 {
		t.Errorf("emulator rejected our payloads: %+v", st.Rejected)
	}
	// expired: channel removed from the store.
	if _, err := h.db.Channel(expiredCh.ID); err == nil {
		t.Error("expired channel still registered")
	}
	// inactive: 412, the channel waits ≥ 61 minutes.
	c, err := h.db.Channel(inactiveCh.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.NextAllowedAt.Sub(h.clock.Now()) < 61*time.Minute {
		t.Errorf("inactive channel next allowed at %v", c.NextAllowedAt)
	}
	if n := h.state(inactive).Counts.Inactive; n != 2 {
		t.Errorf("inactive phone got %d pushes, want 2 (toast and tile) before resting", n)
	}
	// suppressed: dropped, never retried.
	if n := h.state(supp).Counts.Suppressed; n != 2 {
		t.Errorf("suppressed: %d", n)
	}
	// queuefull (N=2) and flaky: retried later, then delivered.
	if err := h.emu.SetBehaviour(flaky.Token, emulator.Healthy); err != nil {
		t.Fatal(err)
	}
	h.clock.Add(5 * time.Minute)
	h.deliver()
	if st := h.state(full); len(st.Toasts) != 1 || st.Counts.QueueFull != 2 {
		t.Errorf("queuefull phone after retry: toasts %d queuefull %d", len(st.Toasts), st.Counts.QueueFull)
	}
	if st := h.state(flaky); len(st.Toasts) != 1 || st.Counts.Unavailable != 2 {
		t.Errorf("flaky phone after retry: toasts %d 503s %d", len(st.Toasts), st.Counts.Unavailable)
	}
	if n := h.state(inactive).Counts.Total; n != 2 {
		t.Errorf("inactive phone pushed again inside its hour: %d", n)
	}
	// After the hour the inactive channel gets one probe (still inactive),
	// not its whole backlog.
	h.clock.Add(61 * time.Minute)
	h.deliver()
	if n := h.state(inactive).Counts.Total; n != 3 {
		t.Errorf("inactive phone after 66 min: %d pushes, want 3 (one probe)", n)
	}
	if n := h.state(supp).Counts.Total; n != 2 {
		t.Errorf("suppressed phone was retried: %d pushes", n)
	}
	for _, w := range []string{"outcome=channel_removed", "outcome=retry", "outcome=dropped", "outcome=delivered"} {
		if !strings.Contains(h.logs.String(), w) {
			t.Errorf("log lacks %s", w)
		}
	}
	_ = expired
}

func TestDailyCapAgainstEmulator(t *testing.T) {
	h := newEmuHarness(t)
	phone, ch := h.phone(emulator.Healthy)
	enc := mpns.NewEncoder(mpns.EncoderOptions{})
	var ns []tilecast.Notification
	for i := range tilecast.DailyCap + 3 {
		payload, err := notify.Fit(enc, notify.Toast{Text1: "Cap", Text2: fmt.Sprint("toast ", i)})
		if err != nil {
			t.Fatal(err)
		}
		ns = append(ns, tilecast.Notification{ChannelID: ch.ID, Feed: "news", Kind: tilecast.KindToast,
			Payload: payload, NextAttempt: h.clock.Now()})
	}
	if err := h.db.Enqueue(ns); err != nil {
		t.Fatal(err)
	}
	h.deliver()
	st := h.state(phone)
	if st.Counts.Total != tilecast.DailyCap || st.Counts.Throttled != 0 {
		t.Fatalf("first day: %d pushes (%d throttled), want exactly %d and no 406\n%s", st.Counts.Total, st.Counts.Throttled, tilecast.DailyCap, grepLines(h.logs.String(), "outcome=retry"))
	}
	// The rest waits for the next UTC day.
	h.clock.Add(13*time.Hour + time.Minute) // 10:00 → 23:01: still the same day
	h.deliver()
	if n := h.state(phone).Counts.Total; n != tilecast.DailyCap {
		t.Fatalf("sent past the cap on the same day: %d", n)
	}
	h.clock.Add(time.Hour) // next UTC day
	h.deliver()
	if n := h.state(phone).Counts.Received; n != tilecast.DailyCap+3 {
		t.Errorf("after midnight: %d received, want %d", n, tilecast.DailyCap+3)
	}

	// A channel that reaches the emulator's own cap (pushes the store does
	// not know about, e.g. from another sender) gets 406 and rests an hour.
	other, otherCh := h.phone(emulator.Healthy)
	payload, _ := notify.Fit(enc, notify.Toast{Text1: "x"})
	client, err := mpns.NewClient(mpns.ClientOptions{AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	warm := &tilecast.Notification{Kind: tilecast.KindToast, Payload: payload}
	for range tilecast.DailyCap {
		if res := client.Push(t.Context(), &tilecast.Channel{URI: other.URI}, warm, 0); res.Verdict != tilecast.VerdictDelivered {
			t.Fatalf("warm-up push: %+v", res)
		}
	}
	if err := h.db.Enqueue([]tilecast.Notification{{ChannelID: otherCh.ID, Feed: "news", Kind: tilecast.KindToast,
		Payload: payload, NextAttempt: h.clock.Now()}}); err != nil {
		t.Fatal(err)
	}
	h.deliver()
	if n := h.state(other).Counts.Throttled; n != 1 {
		t.Errorf("want one 406 from the emulator, got %d", n)
	}
	c, _ := h.db.Channel(otherCh.ID)
	if c.NextAllowedAt.Sub(h.clock.Now()) < 61*time.Minute {
		t.Errorf("406 channel next allowed at %v, want ≥ 61 min ahead", c.NextAllowedAt)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestP11HostileTextReachesThePhone is reliability.md P11 end to end: item
// titles and summaries with markup, entities, CDATA ends, characters XML
// forbids and 10 kB strings go through the real feed parser, templates and
// MPNS encoder to the emulator, which parses every payload with its own
// parser and enforces the 3 kB limit. It must never answer 400, and the
// phone must show the text escaped (not interpreted) and cut to the limits.
func TestP11HostileTextReachesThePhone(t *testing.T) {
	h := newEmuHarness(t)
	news := h.feed("news", "/news.xml")
	news.Toast.Text1 = "{{.Item.Summary}}"
	news.Tile.WideBackContent = "{{.Item.Summary}}"
	phone, _ := h.phone(emulator.Healthy)
	h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
	h.run(news)
	h.deliver()

	long := strings.Repeat("Ü&<x>", 2000) // 10 kB, multi-byte, all escapable
	cases := []struct{ title, desc string }{
		{"Tom &amp; Jerry &lt;b&gt;bold&lt;/b&gt;", "a &amp;amp; b"},
		{"ends ]]&gt; a CDATA", "&lt;![CDATA[ x ]]&gt;"},
		{"ctl \u0001\u0008\u001f chars \uFFFE", "tab\tand\u000bvt"},
		{"<![CDATA[" + long + "]]>", "<![CDATA[" + long + "]]>"},
		{"&lt;wp:Notification xmlns:wp=\"WPNotification\"&gt;", "&lt;/wp:Toast&gt;"},
	}
	for i, c := range cases {
		h.feeds.add("/news.xml", rssItem{fmt.Sprintf("p11-%d", i), c.title, c.desc})
		h.run(news)
		h.deliver()
	}
	st := h.state(phone)
	if st.Counts.Rejected != 0 {
		t.Fatalf("the emulator rejected %d payloads: %+v", st.Counts.Rejected, st.Rejected)
	}
	// The last item is nothing but tags: stripped, it leaves no toast text,
	// so its toast is skipped with an error in the log (its tile still goes).
	if !strings.Contains(h.logs.String(), `msg="render toast" feed=news user="" item=p11-4`) {
		t.Errorf("no render error for the all-markup item:\n%s", h.logs.String())
	}
	if len(st.Toasts) != len(cases)-1 {
		t.Fatalf("phone shows %d toasts, want %d: counts %+v", len(st.Toasts), len(cases)-1, st.Counts)
	}
	for _, toast := range st.Toasts {
		for _, text := range []string{toast.Text1, toast.Text2} {
			if !utf8.ValidString(text) || strings.ContainsFunc(text, func(r rune) bool {
				return r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE
			}) {
				t.Errorf("toast text with characters XML forbids: %q", text)
			}
			if len(text) > 3072 {
				t.Errorf("toast text of %d bytes got through", len(text))
			}
		}
	}
	// Feed markup is stripped to text, entities decoded; the payload then
	// escapes what XML needs, so the phone shows the text literally.
	for _, want := range []string{"Tom & Jerry bold", "ends ]]> a CDATA"} {
		found := false
		for _, toast := range st.Toasts {
			found = found || toast.Text2 == want
		}
		if !found {
			t.Errorf("no toast shows %q: %+v", want, st.Toasts)
		}
	}
	if h.state(phone).Tile.View().BackContent == "" {
		t.Error("the tile was lost")
	}
}

// TestUnansweredSendsDoNotCountTowardCap: a send that never reached the
// push service (connection refused: no HTTP answer) is in the ledger and
// the log but does not count toward the daily cap, neither in the state
// file nor in the deliverer's own count within a run: DailyCap+1 sends to
// a dead host are all attempted in one run, none held until midnight. A
// phone that answers still counts each send. The push lines name each
// channel's device id.
func TestUnansweredSendsDoNotCountTowardCap(t *testing.T) {
	h := newEmuHarness(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURI := "http://" + ln.Addr().String() + "/throttledthirdparty/01.00/dead"
	ln.Close() // nothing listens there now: every push is refused
	dead, _, err := h.db.AddChannel(tilecast.Channel{URI: deadURI, Feeds: []string{"news"}, Device: "drawer-phone"})
	if err != nil {
		t.Fatal(err)
	}
	ec, err := h.emu.CreateChannel(emulator.Healthy, "kitchen")
	if err != nil {
		t.Fatal(err)
	}
	live, _, err := h.db.AddChannel(tilecast.Channel{URI: ec.URI, Feeds: []string{"news"}, Device: "kitchen-phone"})
	if err != nil {
		t.Fatal(err)
	}
	enc := mpns.NewEncoder(mpns.EncoderOptions{})
	payload, err := notify.Fit(enc, notify.Toast{Text1: "Cap", Text2: "unanswered"})
	if err != nil {
		t.Fatal(err)
	}
	var ns []tilecast.Notification
	for range tilecast.DailyCap + 1 {
		ns = append(ns, tilecast.Notification{ChannelID: dead.ID, Feed: "news", Kind: tilecast.KindToast,
			Payload: payload, NextAttempt: h.clock.Now()})
	}
	for range 3 {
		ns = append(ns, tilecast.Notification{ChannelID: live.ID, Feed: "news", Kind: tilecast.KindToast,
			Payload: payload, NextAttempt: h.clock.Now()})
	}
	if err := h.db.Enqueue(ns); err != nil {
		t.Fatal(err)
	}
	h.deliver()
	logs := h.logs.String()
	if n := strings.Count(grepLines(logs, "device_id=drawer-phone"), "outcome=retry"); n != tilecast.DailyCap+1 {
		t.Errorf("dead channel: %d retry lines, want %d (the cap held some back until midnight?)", n, tilecast.DailyCap+1)
	}
	c, err := h.db.Channel(dead.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.SendsToday != 0 || c.LastOutcome != string(tilecast.ActionRetry) {
		t.Errorf("dead channel: sends today %d (want 0), last outcome %q", c.SendsToday, c.LastOutcome)
	}
	c, err = h.db.Channel(live.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.SendsToday != 3 {
		t.Errorf("answered channel: sends today %d, want 3", c.SendsToday)
	}
	if n := strings.Count(grepLines(logs, "device_id=kitchen-phone"), "outcome=delivered"); n != 3 {
		t.Errorf("%d delivered lines name device_id=kitchen-phone, want 3", n)
	}
}
