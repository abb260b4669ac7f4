package tilecast_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
	"github.com/tilecast/tilecast/notify/wns"
)

// These tests run the daemon's pieces — the Bot, the store on a real
// bbolt file, the MPNS and WNS clients behind a PushMux and a Breaker, the
// per-transport renderers — against the project's emulator (which checks
// every request with its own parser) and against a loopback server that
// answers each row of WNS's response table.

const (
	e2eWNSClientID = "ms-app://s-1-15-2-e2e-tilecast"
	e2eWNSSecret   = "e2e-secret/+="
)

// wnsHarness is a harness whose Bot speaks MPNS and WNS.
type wnsHarness struct {
	*harness
	emu    *emulator.Emulator
	tokens *wns.TokenSource
	client *wns.Client
	// pushes counts the WNS pushes; at expireAt (when > 0) the emulator's
	// tokens expire, once, mid fan-out.
	pushes   atomic.Int64
	expireAt int64
}

// countingPusher lets a test act at the n-th WNS push of a fan-out.
type countingPusher struct{ h *wnsHarness }

func (c countingPusher) Push(ctx context.Context, ch *tilecast.Channel, n *tilecast.Notification, ttl time.Duration) tilecast.Result {
	if k := c.h.pushes.Add(1); k == c.h.expireAt {
		c.h.emu.ExpireWNSTokens()
	}
	return c.h.client.Push(ctx, ch, n, ttl)
}

func newWNSHarness(t *testing.T) *wnsHarness {
	h := &wnsHarness{harness: newHarness(t)}
	h.emu = emulator.New(emulator.Options{Now: h.clock.Now, Rand: rand.New(rand.NewPCG(3, 4)),
		WNSClientID: e2eWNSClientID, WNSClientSecret: []byte(e2eWNSSecret), WNSTokenTTL: time.Hour})
	srv := httptest.NewServer(h.emu.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(h.emu.Close)
	h.emu.SetBaseURL(srv.URL)
	var err error
	h.tokens, err = wns.NewTokenSource(wns.Credentials{ClientID: e2eWNSClientID, Secret: []byte(e2eWNSSecret),
		TokenURL: srv.URL + emulator.WNSClassicTokenPath}, wns.TokenOptions{AllowHTTP: true, Now: h.clock.Now, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h.client, err = wns.NewClient(wns.ClientOptions{Tokens: h.tokens, AllowedHosts: []string{"127.0.0.1"}, AllowPrivate: true,
		Timeout: 30 * time.Second, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.client.Close)
	h.wire(countingPusher{h})
	return h
}

// wire gives the harness's Bot both transports: the MPNS client it has
// and wnsPusher, behind a PushMux and a Breaker, as cmd/tilecast wires
// them, with a renderer per transport.
func (h *harness) wire(wnsPusher tilecast.Pusher) {
	h.bot.Pusher = tilecast.NewBreaker(tilecast.NewPushMux(map[tilecast.Transport]tilecast.Pusher{
		tilecast.TransportMPNS: h.bot.Pusher,
		tilecast.TransportWNS:  wnsPusher,
	}, tilecast.PushMuxOptions{}), tilecast.BreakerOptions{Now: h.clock.Now})
	h.bot.Renderers = map[tilecast.Transport]tilecast.Renderer{
		tilecast.TransportMPNS: notify.NewRenderer(mpns.NewEncoder(mpns.EncoderOptions{})),
		tilecast.TransportWNS:  wns.NewRenderer(notify.RendererOptions{}),
	}
}

// windows registers an emulated Windows device on feed news.
func (h *wnsHarness) windows(name string) (emulator.WindowsDevice, tilecast.Channel) {
	h.t.Helper()
	d, err := h.emu.CreateWindowsDevice(emulator.Healthy, name)
	if err != nil {
		h.t.Fatal(err)
	}
	ch, _, err := h.db.AddChannel(tilecast.Channel{URI: d.URI, Feeds: []string{"news"}, Transport: tilecast.TransportWNS})
	if err != nil {
		h.t.Fatal(err)
	}
	return d, ch
}

// phone registers an emulated MPNS phone on feed news.
func (h *wnsHarness) phone(name string) (emulator.Channel, tilecast.Channel) {
	h.t.Helper()
	ec, err := h.emu.CreateChannel(emulator.Healthy, name)
	if err != nil {
		h.t.Fatal(err)
	}
	ch, _, err := h.db.AddChannel(tilecast.Channel{URI: ec.URI, Feeds: []string{"news"}})
	if err != nil {
		h.t.Fatal(err)
	}
	return ec, ch
}

// pushLines returns the `push` log lines of channel id.
func pushLines(logs, id string) []string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "msg=push channel="+id+" ") {
			out = append(out, l)
		}
	}
	return out
}

// A fan-out to many Windows devices while WNS's tokens expire: every
// device gets its toast, its tile and its badge, each in one push line;
// the sends that met the expired token are marked token_refreshed; and the
// token endpoint is asked a bounded number of times, not once per device.
func TestWNSFanOutTokensExpireMidway(t *testing.T) {
	h := newWNSHarness(t)
	h.bot.PushConcurrency = 8
	h.bot.FanOutPage = 16 // a paged fan-out, several transactions
	news := h.feed("news", "/news.xml")
	h.bot.SetFeeds([]tilecast.Feed{*news})
	const devices = 60
	type dev struct {
		d  emulator.WindowsDevice
		ch tilecast.Channel
	}
	var devs []dev
	for i := range devices {
		d, ch := h.windows(fmt.Sprintf("pc-%d", i))
		devs = append(devs, dev{d, ch})
	}
	h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
	h.run(news)
	h.feeds.add("/news.xml", rssItem{"n1", "Storm warning & gales", "Gales of 90 km/h tonight."})
	h.run(news)
	// 3 pushes per device; the tokens expire a third of the way through.
	h.expireAt = devices
	h.deliver()

	if got := h.pushes.Load(); got < 3*devices {
		t.Fatalf("%d WNS pushes, want at least %d", got, 3*devices)
	}
	logs := h.logs.String()
	refreshed := 0
	for _, dv := range devs {
		st, ok := h.emu.WindowsDeviceState(dv.d.Token)
		if !ok {
			t.Fatalf("emulator lost %s", dv.d.Name)
		}
		if len(st.Toasts) != 1 || len(st.Toasts[0].Texts) != 2 || st.Toasts[0].Texts[1] != "Storm warning & gales" {
			t.Errorf("%s toasts: %+v", dv.d.Name, st.Toasts)
		}
		if len(st.Tile.Sizes) != 4 || st.Tile.DisplayName == "" {
			t.Errorf("%s tile: %+v", dv.d.Name, st.Tile)
		}
		if st.Badge != "1" {
			t.Errorf("%s badge %q, want 1", dv.d.Name, st.Badge)
		}
		if st.Counts.Rejected != 0 {
			t.Errorf("%s: the emulator rejected our payloads: %+v", dv.d.Name, st.Rejected)
		}
		lines := pushLines(logs, dv.ch.ID)
		if len(lines) != 3 {
			t.Errorf("%s: %d push lines, want 3 (toast, tile, badge):\n%s", dv.d.Name, len(lines), strings.Join(lines, "\n"))
		}
		for _, l := range lines {
			if !strings.Contains(l, "outcome=delivered") || !strings.Contains(l, "transport=wns") ||
				!regexp.MustCompile(`msg_id=\w+ debug_trace=\w+ ms_cv=\S+`).MatchString(l) {
				t.Errorf("%s: push line %s", dv.d.Name, l)
			}
			if strings.Contains(l, "token_refreshed=true") {
				refreshed++
			}
		}
		outs, err := h.db.Outcomes(dv.ch.ID, "", time.Time{})
		if err != nil || len(outs) != 3 {
			t.Fatalf("%s ledger: %d entries, %v", dv.d.Name, len(outs), err)
		}
		kinds := map[tilecast.Kind]bool{}
		for _, o := range outs {
			kinds[o.Kind] = true
			if o.Transport != tilecast.TransportWNS || o.MsgID == "" || o.Action != tilecast.ActionDelivered {
				t.Errorf("%s ledger entry %+v", dv.d.Name, o)
			}
		}
		if !kinds[tilecast.KindToast] || !kinds[tilecast.KindTile] || !kinds[tilecast.KindBadge] {
			t.Errorf("%s ledger kinds %v", dv.d.Name, kinds)
		}
	}
	if refreshed == 0 {
		t.Error("no push line is marked token_refreshed=true, though the tokens expired mid fan-out")
	}
	ledgerRefreshed := 0
	all, err := h.db.Outcomes("", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range all {
		if o.TokenRefreshed {
			ledgerRefreshed++
		}
	}
	if ledgerRefreshed != refreshed {
		t.Errorf("ledger marks %d outcomes token_refreshed, the log %d", ledgerRefreshed, refreshed)
	}
	// One token at the start, one after the expiry: a few more at most if
	// a renewal raced a second expired answer — never one per device.
	if n := h.emu.WNSTokenRequests(); n < 2 || n > 4 {
		t.Errorf("token endpoint issued %d tokens for %d devices, want 2 (at most 4)", n, devices)
	}
	if c, _ := h.db.Counts(); c.OutboxDepth != 0 {
		t.Errorf("outbox depth %d after the fan-out, want 0", c.OutboxDepth)
	}
}

// Phones (MPNS) and Windows devices (WNS) subscribed to one feed each get
// their own transport's payloads: a phone a toast and a flip tile with the
// count inside, a Windows device a ToastGeneric toast, an adaptive tile
// and a badge. A device subscribing later gets the current tile and badge.
func TestMixedTransportFanOut(t *testing.T) {
	h := newWNSHarness(t)
	news := h.feed("news", "/news.xml")
	h.bot.SetFeeds([]tilecast.Feed{*news})
	p1, p1ch := h.phone("phone 1")
	w1, w1ch := h.windows("pc 1")
	p2, _ := h.phone("phone 2")
	w2, _ := h.windows("pc 2")
	h.feeds.add("/news.xml", rssItem{"n0", "Baseline", ""})
	h.run(news)
	h.feeds.add("/news.xml", rssItem{"n1", "Harbour bridge reopens", "Traffic flows again."},
		rssItem{"n2", "Ferry timetable changes", ""})
	h.run(news)
	h.deliver()

	for _, p := range []emulator.Channel{p1, p2} {
		st, _ := h.emu.Channel(p.Token)
		if len(st.Toasts) != 2 || st.Tile.View().Count != 2 || st.Tile.View().BackContent == "" || st.Counts.Rejected != 0 {
			t.Errorf("%s: toasts %+v tile %+v rejected %+v", p.Name, st.Toasts, st.Tile.View(), st.Rejected)
		}
	}
	for _, w := range []emulator.WindowsDevice{w1, w2} {
		st, _ := h.emu.WindowsDeviceState(w.Token)
		if len(st.Toasts) != 2 || st.Toasts[0].Template != "ToastGeneric" || len(st.Tile.Sizes) != 4 || st.Badge != "2" ||
			st.Counts.Rejected != 0 {
			t.Errorf("%s: toasts %+v tile %+v badge %q rejected %+v", w.Name, st.Toasts, st.Tile, st.Badge, st.Rejected)
		}
	}
	lines := pushLines(h.logs.String(), p1ch.ID)
	if len(lines) != 3 || strings.Contains(strings.Join(lines, "\n"), "kind=badge") ||
		!strings.Contains(lines[0], "transport=mpns") {
		t.Errorf("phone push lines (2 toasts and a tile, no badge):\n%s", strings.Join(lines, "\n"))
	}
	if lines := pushLines(h.logs.String(), w1ch.ID); len(lines) != 4 {
		t.Errorf("windows push lines (2 toasts, a tile, a badge):\n%s", strings.Join(lines, "\n"))
	}

	// tile_on_subscribe: a Windows device registered now gets the current
	// tile and badge, a phone its flip tile.
	w3, err := h.emu.CreateWindowsDevice(emulator.Healthy, "pc 3")
	if err != nil {
		t.Fatal(err)
	}
	w3ch, _, err := h.db.AddChannel(tilecast.Channel{URI: w3.URI, Feeds: []string{"news"}, Transport: tilecast.TransportWNS})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.bot.Subscribe(w3ch); err != nil {
		t.Fatal(err)
	}
	h.deliver()
	st, _ := h.emu.WindowsDeviceState(w3.Token)
	if len(st.Toasts) != 0 || len(st.Tile.Sizes) != 4 || st.Badge != "2" {
		t.Errorf("late subscriber: toasts %d tile %+v badge %q; want the current tile and badge only", len(st.Toasts), st.Tile, st.Badge)
	}
}

// wnsRow is one row of WNS's response table (protocols.md §3.3) as the
// loopback server plays it and as the daemon must act on it.
type wnsRow struct {
	name string
	// answer writes the answer to r.
	answer func(w http.ResponseWriter, r *http.Request)
	action tilecast.Action
	status int
	// retryIn is the least RetryIn of a retry; 0 for the backoff base.
	retryIn   time.Duration
	removed   bool // the channel is deleted
	refreshed bool // token_refreshed (the first channel's: the second has the new token)
	configErr bool // logged as a configuration error
	errHas    string
}

func answerWNS(status int, headers ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(status)
	}
}

// The daemon against a loopback WNS that answers each row of the response
// table: the action in the ledger and the push line, the channel kept or
// removed, the wait honoured, and credentials refused logged once as a
// configuration error.
func TestWNSResponseTable(t *testing.T) {
	rows := []wnsRow{
		{name: "200 received", answer: answerWNS(200, "X-WNS-Status", "received"), action: tilecast.ActionDelivered, status: 200},
		{name: "200 old status header", answer: answerWNS(200, "X-WNS-NotificationStatus", "received"),
			action: tilecast.ActionDelivered, status: 200},
		{name: "200 dropped", answer: answerWNS(200, "X-WNS-Status", "dropped", "X-WNS-CONTINUE-AFTER", "600"),
			action: tilecast.ActionRetry, status: 200, retryIn: 10 * time.Minute, errHas: "dropped"},
		{name: "200 channelthrottled", answer: answerWNS(200, "X-WNS-Status", "channelthrottled", "X-WNS-CONTINUE-AFTER", "900"),
			action: tilecast.ActionRetry, status: 200, retryIn: 15 * time.Minute, errHas: "throttled"},
		{name: "400", answer: answerWNS(400, "X-WNS-Error-Description", "Bad header X-WNS-Type"),
			action: tilecast.ActionFailed, status: 400, errHas: "Bad header X-WNS-Type"},
		{name: "401 then a new token", answer: func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") == "Bearer tok-1" { // WNS no longer takes the first token
				w.Header().Set("X-WNS-Error-Description", "Token expired")
				w.WriteHeader(401)
				return
			}
			w.Header().Set("X-WNS-Status", "received")
		}, action: tilecast.ActionDelivered, status: 200, refreshed: true},
		{name: "401 twice", answer: answerWNS(401, "X-WNS-Error-Description", "Token does not grant access"),
			action: tilecast.ActionFailed, status: 401, refreshed: true, configErr: true, errHas: "check the WNS credentials"},
		{name: "403", answer: answerWNS(403, "X-WNS-Error-Description", "Channel belongs to another app"),
			action: tilecast.ActionFailed, status: 403, configErr: true, errHas: "configuration error"},
		{name: "404", answer: answerWNS(404), action: tilecast.ActionChannelRemoved, status: 404, removed: true},
		{name: "405", answer: answerWNS(405), action: tilecast.ActionFailed, status: 405, errHas: "method not allowed"},
		{name: "406", answer: answerWNS(406, "X-WNS-CONTINUE-AFTER", "1200"), action: tilecast.ActionRetry, status: 406,
			retryIn: 20 * time.Minute, errHas: "throttled"},
		{name: "410", answer: answerWNS(410), action: tilecast.ActionChannelRemoved, status: 410, removed: true},
		{name: "413", answer: answerWNS(413), action: tilecast.ActionFailed, status: 413, errHas: "5000 bytes"},
		{name: "429", answer: answerWNS(429, "Retry-After", "1800"), action: tilecast.ActionRetry, status: 429,
			retryIn: 30 * time.Minute, errHas: "throttled"},
		{name: "500", answer: answerWNS(500), action: tilecast.ActionRetry, status: 500},
		{name: "503", answer: answerWNS(503, "Retry-After", "2400"), action: tilecast.ActionRetry, status: 503,
			retryIn: 40 * time.Minute},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) { testWNSRow(t, row) })
	}
}

func testWNSRow(t *testing.T, row wnsRow) {
	h := newHarness(t)
	var (
		mu       sync.Mutex
		requests = map[string]int{}
		tokens   int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			mu.Lock()
			tokens++
			n := tokens
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"bearer","expires_in":86400}`, n)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		requests[r.URL.Path]++
		n := requests[r.URL.Path]
		mu.Unlock()
		w.Header().Set("X-WNS-Msg-ID", fmt.Sprintf("MSG%d", n))
		w.Header().Set("X-WNS-Debug-Trace", "TRACE-"+strings.ReplaceAll(row.name, " ", "-"))
		w.Header().Set("MS-CV", "cv.1")
		row.answer(w, r)
	}))
	t.Cleanup(srv.Close)
	ts, err := wns.NewTokenSource(wns.Credentials{ClientID: "ms-app://s-1-15-2-9", Secret: []byte("s"), TokenURL: srv.URL + "/token"},
		wns.TokenOptions{AllowHTTP: true, Now: h.clock.Now, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	client, err := wns.NewClient(wns.ClientOptions{Tokens: ts, AllowedHosts: []string{"127.0.0.1"}, AllowPrivate: true,
		Timeout: 30 * time.Second, Now: h.clock.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	h.wire(client)
	h.bot.MaxAttempts = 10
	h.bot.PushConcurrency = 1 // the channels one after the other: the second meets the first's aftermath

	// Two channels with this answer: a configuration error is logged once
	// for both, each still gets its push line.
	enc := &wns.Encoder{}
	payload, err := notify.Fit(enc, notify.Toast{Text1: "News", Text2: row.name})
	if err != nil {
		t.Fatal(err)
	}
	var chs []tilecast.Channel
	for i := range 2 {
		ch, _, err := h.db.AddChannel(tilecast.Channel{URI: fmt.Sprintf("%s/w/%d?token=x", srv.URL, i), Transport: tilecast.TransportWNS})
		if err != nil {
			t.Fatal(err)
		}
		chs = append(chs, ch)
		if err := h.db.Enqueue([]tilecast.Notification{{ChannelID: ch.ID, Feed: "news", Kind: tilecast.KindToast,
			Payload: payload, NextAttempt: h.clock.Now(), Created: h.clock.Now()}}); err != nil {
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
		if row.configErr && i == 1 && row.refreshed {
			// After a renewed token was refused, the transport pauses:
			// the second channel's notification waits, unsent.
			if len(outs) != 0 {
				t.Errorf("channel 2 was sent to while WNS sends are paused: %+v", outs)
			}
			continue
		}
		if len(outs) != 1 {
			t.Fatalf("channel %d: %d ledger entries, want 1: %+v\n%s", i, len(outs), outs, logs)
		}
		o := outs[0]
		refreshed := row.refreshed && i == 0 // the second channel is sent with the renewed token
		if o.Action != row.action || o.Status != row.status || o.TokenRefreshed != refreshed ||
			o.Transport != tilecast.TransportWNS || !strings.HasPrefix(o.MsgID, "MSG") || o.DebugTrace == "" || o.CorrelationVector != "cv.1" {
			t.Errorf("channel %d ledger: %+v; want %s, status %d, token_refreshed %v and WNS's ids", i, o, row.action, row.status, refreshed)
		}
		if row.errHas != "" && !strings.Contains(o.Error, row.errHas) {
			t.Errorf("channel %d error %q lacks %q", i, o.Error, row.errHas)
		}
		if row.action == tilecast.ActionRetry {
			want := row.retryIn
			if want == 0 {
				want = 4 * time.Minute // the backoff base (jitter 1 in the harness)
			}
			if o.RetryIn < want {
				t.Errorf("channel %d retries in %v, want at least %v", i, o.RetryIn, want)
			}
		}
		lines := pushLines(logs, ch.ID)
		if len(lines) != 1 || !strings.Contains(lines[0], "outcome="+string(row.action)) ||
			!strings.Contains(lines[0], fmt.Sprintf("token_refreshed=%v", refreshed)) || !strings.Contains(lines[0], "msg_id=MSG") {
			t.Errorf("channel %d push lines:\n%s", i, strings.Join(lines, "\n"))
		}
		_, err = h.db.Channel(ch.ID)
		if removed := err != nil; removed != row.removed {
			t.Errorf("channel %d removed = %v, want %v (%v)", i, removed, row.removed, err)
		}
	}
	n := strings.Count(logs, `level=ERROR msg="configuration error`)
	if row.configErr && n != 1 {
		t.Errorf("%d configuration error lines for 2 refused channels, want 1:\n%s", n, logs)
	}
	if !row.configErr && n != 0 {
		t.Errorf("%d configuration error lines, want none:\n%s", n, logs)
	}
	mu.Lock()
	defer mu.Unlock()
	wantTokens := 1
	if row.refreshed {
		wantTokens = 2
	}
	if tokens != wantTokens {
		t.Errorf("token endpoint asked %d times, want %d", tokens, wantTokens)
	}
}
