package tilecast_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
	"github.com/tilecast/tilecast/notify/webpush"
	"github.com/tilecast/tilecast/notify/wns"
)

// These tests run the Bot with all three transports as cmd/tilecast wires
// them (a PushMux behind a Breaker, a renderer per transport) against the
// project's emulator, whose browsers check VAPID and decrypt with its own
// code, and against a loopback push service answering each row of Web
// Push's response table (protocols.md §4.2).

const e2eVAPIDSubject = "mailto:ops@tilecast.dev"

// newWebPushClient is a Web Push client signing with a fresh key, on the
// harness's clock.
func newWebPushClient(t *testing.T, h *harness) (*webpush.Client, *webpush.VAPIDKey) {
	t.Helper()
	key, err := webpush.NewVAPIDKey()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := webpush.NewSigner(key, e2eVAPIDSubject, webpush.SignerOptions{Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c, err := webpush.NewClient(webpush.ClientOptions{VAPID: signer, AllowPrivate: true, Timeout: 30 * time.Second,
		Now: h.clock.Now, Logger: h.bot.Logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, key
}

// wireAll gives the harness's Bot the three transports: a fresh MPNS
// client, wnsPusher (nil: none) and webPusher.
func (h *harness) wireAll(wnsPusher, webPusher tilecast.Pusher) {
	h.t.Helper()
	m, err := mpns.NewClient(mpns.ClientOptions{Timeout: 15 * time.Second, AllowPrivate: true})
	if err != nil {
		h.t.Fatal(err)
	}
	pushers := map[tilecast.Transport]tilecast.Pusher{tilecast.TransportMPNS: m, tilecast.TransportWebPush: webPusher}
	if wnsPusher != nil {
		pushers[tilecast.TransportWNS] = wnsPusher
	}
	h.bot.Pusher = tilecast.NewBreaker(tilecast.NewPushMux(pushers, tilecast.PushMuxOptions{}), tilecast.BreakerOptions{Now: h.clock.Now})
	h.bot.Renderers = map[tilecast.Transport]tilecast.Renderer{
		tilecast.TransportMPNS:    notify.NewRenderer(mpns.NewEncoder(mpns.EncoderOptions{})),
		tilecast.TransportWNS:     wns.NewRenderer(notify.RendererOptions{}),
		tilecast.TransportWebPush: webpush.NewRenderer(nil, notify.RendererOptions{}),
	}
}

// browserChannel registers an emulated browser's subscription, as the
// API stores it (webpush.ParseSubscription), for feed news.
func browserChannel(t *testing.T, h *harness, br emulator.Browser) tilecast.Channel {
	t.Helper()
	doc, err := json.Marshal(br.Subscription)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := webpush.ParseSubscription(doc, webpush.ParseOptions{AllowLoopbackHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	ch := sub.Channel()
	ch.Feeds = []string{"news"}
	saved, _, err := h.db.AddChannel(ch)
	if err != nil {
		t.Fatal(err)
	}
	return saved
}

// keyStrings are the forms a browser's keys could take in a log line.
func keyStrings(br emulator.Browser) []string {
	return []string{br.Subscription.Keys.P256DH, br.Subscription.Keys.Auth}
}

// One feed run reaches phones (MPNS), Windows devices (WNS) and browsers
// (Web Push) alike: each browser shows both toasts as notifications, its
// badge is the tile's count and its tile the latest content, each push is
// one push line with transport=webpush, a tile is one push (no separate
// badge) with Urgency low and the feed's Topic, a browser registered later
// gets the current tile (tile_on_subscribe), and no log line holds a key.
func TestWebPushMixedTransportFanOut(t *testing.T) {
	h := newWNSHarness(t)
	wp, key := newWebPushClient(t, h.harness)
	h.wireAll(countingPusher{h}, wp)
	news := h.feed("news", "/news.xml")
	h.bot.SetFeeds([]tilecast.Feed{*news})
	phone, _ := h.phone("phone")
	pc, _ := h.windows("pc")
	var browsers []emulator.Browser
	var browserChans []tilecast.Channel
	for i, name := range []string{"chrome", "firefox"} {
		var params []emulator.BrowserParams
		if i == 0 { // subscribed with our key: the emulator checks k
			params = append(params, emulator.BrowserParams{ApplicationServerKey: key.PublicKey()})
		}
		br, err := h.emu.CreateBrowser(emulator.Healthy, name, params...)
		if err != nil {
			t.Fatal(err)
		}
		browsers = append(browsers, br)
		browserChans = append(browserChans, browserChannel(t, h.harness, br))
	}
	h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
	h.run(news)
	h.feeds.add("/news.xml", rssItem{"n1", "Harbour bridge reopens", "Traffic flows again."},
		rssItem{"n2", "Ferry timetable changes", ""})
	h.run(news)
	h.deliver()

	if st, _ := h.emu.Channel(phone.Token); len(st.Toasts) != 2 || st.Tile.View().Count != 2 {
		t.Errorf("phone: toasts %+v tile %+v", st.Toasts, st.Tile.View())
	}
	if st, _ := h.emu.WindowsDeviceState(pc.Token); len(st.Toasts) != 2 || st.Badge != "2" {
		t.Errorf("pc: toasts %+v badge %q", st.Toasts, st.Badge)
	}
	logs := h.logs.String()
	for i, br := range browsers {
		st, _ := h.emu.Browser(br.Token)
		titles := []string{}
		for _, n := range st.Notifications {
			titles = append(titles, n.Body)
		}
		if len(st.Notifications) != 2 || st.Badge != 2 || st.Tile == nil || st.Tile.Body == "" || st.Counts.Rejected != 0 {
			t.Errorf("%s: notifications %q badge %d tile %+v rejected %+v", br.Name, titles, st.Badge, st.Tile, st.Rejected)
		}
		if !strings.Contains(strings.Join(titles, "|"), "Harbour bridge reopens") {
			t.Errorf("%s: notifications %q lack the item's title", br.Name, titles)
		}
		// The last push is the toast or the tile, whichever went last.
		l := st.Last
		wantUrgency, wantTopic := "normal", ""
		if l != nil && strings.HasPrefix(l.Plaintext, `{"kind":"tile"`) {
			wantUrgency, wantTopic = "low", "news"
		}
		if l == nil || l.Urgency != wantUrgency || l.Topic != wantTopic || l.Subject != e2eVAPIDSubject || l.TTL <= 0 {
			t.Errorf("%s: the service saw %+v; want Urgency %s, Topic %q, our subject, a TTL", br.Name, l, wantUrgency, wantTopic)
		}
		lines := pushLines(logs, browserChans[i].ID)
		joined := strings.Join(lines, "\n")
		if len(lines) != 3 || strings.Count(joined, "outcome=delivered") != 3 || strings.Count(joined, "transport=webpush") != 3 ||
			strings.Contains(joined, "kind=badge") || strings.Count(joined, "status=201") != 3 {
			t.Errorf("%s push lines (2 toasts and a tile, each delivered with 201):\n%s", br.Name, joined)
		}
	}

	// A browser subscribing now gets the current tile: the badge count
	// and content, no toast.
	late, err := h.emu.CreateBrowser(emulator.Healthy, "safari")
	if err != nil {
		t.Fatal(err)
	}
	lateCh := browserChannel(t, h.harness, late)
	if err := h.bot.Subscribe(lateCh); err != nil {
		t.Fatal(err)
	}
	h.deliver()
	if st, _ := h.emu.Browser(late.Token); len(st.Notifications) != 0 || st.Badge != 2 || st.Tile == nil {
		t.Errorf("late subscriber: notifications %+v badge %d tile %+v; want the current tile only", st.Notifications, st.Badge, st.Tile)
	} else if l := st.Last; l == nil || l.Urgency != "low" || l.Topic != "news" || l.Subject != e2eVAPIDSubject || l.TTL <= 0 {
		t.Errorf("late subscriber: the service saw the tile as %+v; want Urgency low, Topic news, our subject, a TTL", l)
	}
	logs = h.logs.String()
	for _, br := range append(browsers, late) {
		for _, k := range keyStrings(br) {
			if strings.Contains(logs, k) {
				t.Errorf("the log holds %s's key %q", br.Name, k)
			}
		}
	}
}

// Browsers whose push service says the subscription is gone (410
// unsubscribed, 404 expired) lose their channel; a rate-limited one is
// retried after its Retry-After; a browser subscribed with another
// application server key refuses tilecast's VAPID (403): failed, logged as
// a configuration error.
func TestWebPushEmulatorBehaviours(t *testing.T) {
	h := newWNSHarness(t)
	wp, _ := newWebPushClient(t, h.harness)
	h.wireAll(countingPusher{h}, wp)
	other, err := webpush.NewVAPIDKey()
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		behaviour string
		params    emulator.BrowserParams
		action    tilecast.Action
		status    int
		retryIn   time.Duration
		removed   bool
	}
	rows := []row{
		{behaviour: emulator.Unsubscribed, action: tilecast.ActionChannelRemoved, status: 410, removed: true},
		{behaviour: emulator.Expired, action: tilecast.ActionChannelRemoved, status: 404, removed: true},
		{behaviour: emulator.RateLimited, params: emulator.BrowserParams{RetryAfterS: 1800}, action: tilecast.ActionRetry,
			status: 429, retryIn: 30 * time.Minute},
		{behaviour: emulator.Healthy, params: emulator.BrowserParams{ApplicationServerKey: other.PublicKey()},
			action: tilecast.ActionFailed, status: 403},
	}
	toast, err := webpush.ToastPayload(webpush.Toast{Title: "News", Body: "Storm watch"})
	if err != nil {
		t.Fatal(err)
	}
	chans := make([]tilecast.Channel, len(rows))
	for i, r := range rows {
		br, err := h.emu.CreateBrowser(r.behaviour, r.behaviour, r.params)
		if err != nil {
			t.Fatal(err)
		}
		chans[i] = browserChannel(t, h.harness, br)
		if err := h.db.Enqueue([]tilecast.Notification{{ChannelID: chans[i].ID, Feed: "news", Kind: tilecast.KindToast,
			Payload: toast, NextAttempt: h.clock.Now(), Created: h.clock.Now()}}); err != nil {
			t.Fatal(err)
		}
	}
	h.deliver()
	logs := h.logs.String()
	for i, r := range rows {
		outs, err := h.db.Outcomes(chans[i].ID, "", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(outs) != 1 || outs[0].Action != r.action || outs[0].Status != r.status || outs[0].Transport != tilecast.TransportWebPush {
			t.Errorf("%s: ledger %+v; want %s with %d", r.behaviour, outs, r.action, r.status)
			continue
		}
		if r.retryIn > 0 && outs[0].RetryIn != r.retryIn {
			t.Errorf("%s: retry in %s, want the Retry-After's %s", r.behaviour, outs[0].RetryIn, r.retryIn)
		}
		_, err = h.db.Channel(chans[i].ID)
		if gone := err != nil; gone != r.removed {
			t.Errorf("%s: channel removed %v, want %v", r.behaviour, gone, r.removed)
		}
	}
	if !strings.Contains(logs, "configuration error") || !strings.Contains(logs, "transport=webpush") {
		t.Errorf("the 403 is not logged as a configuration error:\n%s", logs)
	}
}

// webPushRow is one row of Web Push's response table as a loopback push
// service plays it and as the daemon must act on it.
type webPushRow struct {
	status    int
	headers   []string
	body      string
	action    tilecast.Action
	retryIn   time.Duration // the least RetryIn of a retry; 0 for the backoff base
	removed   bool
	configErr bool
	errHas    string
}

// The Bot against a loopback push service answering each row of the
// response table: the action in the ledger, the channel kept or removed,
// Retry-After honoured, the service's error body (capped) in the outcome,
// VAPID refusals logged as a configuration error.
func TestWebPushResponseTable(t *testing.T) {
	long := strings.Repeat("x", 2000)
	rows := []webPushRow{
		{status: 201, action: tilecast.ActionDelivered},
		{status: 404, action: tilecast.ActionChannelRemoved, removed: true},
		{status: 410, action: tilecast.ActionChannelRemoved, removed: true},
		{status: 400, body: `{"errno":110,"message":"invalid encryption"}`, action: tilecast.ActionFailed, errHas: "invalid encryption"},
		{status: 413, body: `{"message":"body exceeds 4096 bytes"}` + long, action: tilecast.ActionFailed, errHas: "body exceeds 4096 bytes"},
		{status: 401, body: `{"message":"missing crypto-key"}`, action: tilecast.ActionFailed, configErr: true, errHas: "missing crypto-key"},
		{status: 403, body: `{"reason":"BadJwtToken"}`, action: tilecast.ActionFailed, configErr: true, errHas: "BadJwtToken"},
		{status: 429, headers: []string{"Retry-After", "1800"}, action: tilecast.ActionRetry, retryIn: 30 * time.Minute},
		{status: 500, action: tilecast.ActionRetry},
		{status: 503, headers: []string{"Retry-After", "2400"}, action: tilecast.ActionRetry, retryIn: 40 * time.Minute},
	}
	for _, row := range rows {
		t.Run(fmt.Sprint(row.status), func(t *testing.T) { testWebPushRow(t, row) })
	}
}

func testWebPushRow(t *testing.T, row webPushRow) {
	h := newHarness(t)
	var mu sync.Mutex
	var seen []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		for i := 0; i+1 < len(row.headers); i += 2 {
			w.Header().Set(row.headers[i], row.headers[i+1])
		}
		w.WriteHeader(row.status)
		io.WriteString(w, row.body)
	}))
	t.Cleanup(srv.Close)
	wp, _ := newWebPushClient(t, h)
	h.wireAll(nil, wp)
	h.bot.MaxAttempts = 10
	h.bot.PushConcurrency = 1

	emu := emulator.New(emulator.Options{})
	t.Cleanup(emu.Close)
	emu.SetBaseURL(srv.URL) // its browsers' keys; the endpoints are replaced
	toast, err := webpush.ToastPayload(webpush.Toast{Title: "News", Body: fmt.Sprint(row.status)})
	if err != nil {
		t.Fatal(err)
	}
	var chs []tilecast.Channel
	for i := range 2 {
		br, err := emu.CreateBrowser(emulator.Healthy, fmt.Sprint(i)) // for its keys
		if err != nil {
			t.Fatal(err)
		}
		br.Subscription.Endpoint = fmt.Sprintf("%s/push/%d", srv.URL, i)
		ch := browserChannel(t, h, br)
		chs = append(chs, ch)
		if err := h.db.Enqueue([]tilecast.Notification{{ChannelID: ch.ID, Feed: "news", Kind: tilecast.KindToast,
			Payload: toast, NextAttempt: h.clock.Now(), Created: h.clock.Now()}}); err != nil {
			t.Fatal(err)
		}
	}
	h.deliver()
	logs := h.logs.String()
	for i, ch := range chs {
		outs, err := h.db.Outcomes(ch.ID, "", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(outs) != 1 {
			t.Fatalf("channel %d: %d ledger entries, want 1: %+v\n%s", i, len(outs), outs, logs)
		}
		o := outs[0]
		if o.Action != row.action || o.Status != row.status || o.Transport != tilecast.TransportWebPush {
			t.Errorf("channel %d ledger: %+v; want %s with status %d", i, o, row.action, row.status)
		}
		if row.errHas != "" && !strings.Contains(o.Error, row.errHas) {
			t.Errorf("channel %d error %q lacks %q", i, o.Error, row.errHas)
		}
		if len(o.Error) > 1024 {
			t.Errorf("channel %d error of %d bytes: the service's body is not capped", i, len(o.Error))
		}
		if row.action == tilecast.ActionRetry {
			want := row.retryIn
			if want == 0 {
				want = 4 * time.Minute // the backoff base (jitter 1)
			}
			if o.RetryIn < want {
				t.Errorf("channel %d retries in %s, want at least %s", i, o.RetryIn, want)
			}
		}
		_, err = h.db.Channel(ch.ID)
		if gone := err != nil; gone != row.removed {
			t.Errorf("channel %d removed %v, want %v", i, gone, row.removed)
		}
		if n := len(pushLines(logs, ch.ID)); n != 1 {
			t.Errorf("channel %d: %d push lines, want 1", i, n)
		}
	}
	if got := strings.Count(logs, "configuration error"); (got == 1) != row.configErr || got > 1 {
		t.Errorf("%d configuration error lines, want %v once:\n%s", got, row.configErr, logs)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, hd := range seen {
		if hd.Get("TTL") == "" || hd.Get("Content-Encoding") != "aes128gcm" || !strings.HasPrefix(hd.Get("Authorization"), "vapid t=") {
			t.Errorf("request headers %v: want TTL, aes128gcm and VAPID", hd)
		}
	}
}

// The outbox keeps the plaintext: a browser that re-subscribes with new
// keys while a notification waits gets it encrypted for the new keys
// (encryption happens when the request is built), and the emulator, which
// decrypts with the browser's current private key, shows it.
func TestWebPushKeysChangeWhileWaiting(t *testing.T) {
	h := newWNSHarness(t)
	wp, _ := newWebPushClient(t, h.harness)
	h.wireAll(countingPusher{h}, wp)
	br, err := h.emu.CreateBrowser(emulator.Healthy, "chrome")
	if err != nil {
		t.Fatal(err)
	}
	stale, err := h.emu.CreateBrowser(emulator.Healthy, "old keys")
	if err != nil {
		t.Fatal(err)
	}
	// Registered with keys the endpoint's browser does not hold (as
	// before a re-subscription), a toast enqueued.
	old := br
	old.Subscription.Keys = stale.Subscription.Keys
	ch := browserChannel(t, h.harness, old)
	toast, err := webpush.ToastPayload(webpush.Toast{Title: "News", Body: "Sent after the new keys"})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.db.Enqueue([]tilecast.Notification{{ChannelID: ch.ID, Feed: "news", Kind: tilecast.KindToast,
		Payload: toast, NextAttempt: h.clock.Now(), Created: h.clock.Now()}}); err != nil {
		t.Fatal(err)
	}
	// The browser re-subscribes: same endpoint, its own keys.
	if again := browserChannel(t, h.harness, br); again.ID != ch.ID {
		t.Fatalf("re-subscription made channel %s, want %s", again.ID, ch.ID)
	}
	h.deliver()
	st, _ := h.emu.Browser(br.Token)
	if len(st.Notifications) != 1 || st.Notifications[0].Body != "Sent after the new keys" || st.Counts.Rejected != 0 {
		t.Errorf("browser shows %+v, rejected %+v; want the toast decrypted with the new keys", st.Notifications, st.Rejected)
	}
}
