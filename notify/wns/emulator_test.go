package wns_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/wns"
)

// The sender against the project's own emulator, which checks every
// request with a parser of its own: what notify/wns builds must be what a
// WNS-shaped receiver accepts.

const (
	emuID     = "ms-app://s-1-15-2-42-tilecast-test"
	emuSecret = "emu-secret+/="
)

type emuSetup struct {
	emu    *emulator.Emulator
	srv    *httptest.Server
	clk    *clock
	tokens *wns.TokenSource
	client *wns.Client
}

func startEmulator(t *testing.T, secret string) *emuSetup {
	t.Helper()
	clk := newClock()
	emu := emulator.New(emulator.Options{Now: clk.Now, WNSClientID: emuID, WNSClientSecret: []byte(emuSecret), WNSTokenTTL: 10 * time.Minute})
	srv := httptest.NewServer(emu.Handler())
	emu.SetBaseURL(srv.URL)
	t.Cleanup(srv.Close)
	t.Cleanup(emu.Close)
	tokens, err := wns.NewTokenSource(wns.Credentials{ClientID: emuID, Secret: []byte(secret), TokenURL: srv.URL + emulator.WNSClassicTokenPath},
		wns.TokenOptions{AllowHTTP: true, Now: clk.Now, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	client, err := wns.NewClient(wns.ClientOptions{Tokens: tokens, AllowedHosts: []string{"127.0.0.1"}, AllowPrivate: true,
		Now: clk.Now, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	return &emuSetup{emu: emu, srv: srv, clk: clk, tokens: tokens, client: client}
}

func (s *emuSetup) device(t *testing.T, behaviour string, p ...emulator.WNSParams) (*tilecast.Channel, string) {
	t.Helper()
	d, err := s.emu.CreateWindowsDevice(behaviour, "test "+behaviour, p...)
	if err != nil {
		t.Fatal(err)
	}
	return &tilecast.Channel{ID: d.Token, URI: d.URI}, d.Token
}

func (s *emuSetup) push(ch *tilecast.Channel, kind tilecast.Kind, payload []byte) tilecast.Result {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return s.client.Push(ctx, ch, &tilecast.Notification{Feed: "news", Kind: kind, Payload: payload}, 10*time.Minute)
}

func TestAgainstEmulator(t *testing.T) {
	s := startEmulator(t, emuSecret)
	ch, tok := s.device(t, emulator.Healthy)
	for _, legacy := range []bool{false, true} {
		opts := wns.EncoderOptions{Legacy: legacy, Audio: "Mail", AppLogoImage: "https://cdn.example.org/logo.png"}
		if !legacy {
			opts.HeroImage, opts.Scenario = "https://cdn.example.org/hero.png", wns.ScenarioReminder
		}
		enc := mustEncoder(t, opts)
		toast, err := notify.Fit(enc, notify.Toast{Text1: "Tilecast <News>", Text2: "Item & more", Param: "/item?id=1&x=2"})
		if err != nil {
			t.Fatal(err)
		}
		tile, err := notify.Fit(enc, flipTile())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := notify.BadgeOf(&notify.Tile{Count: notify.Value("7")})
		badge, err := notify.Fit(enc, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []struct {
			kind    tilecast.Kind
			payload []byte
		}{{tilecast.KindToast, toast}, {tilecast.KindTile, tile}, {tilecast.KindBadge, badge}, {tilecast.KindRaw, []byte(`{"n":1}`)}} {
			r := s.push(ch, p.kind, p.payload)
			if r.Verdict != tilecast.VerdictDelivered || r.MsgID == "" || r.CorrelationVector == "" || r.Device != "connected" {
				t.Errorf("legacy=%v %s: %+v", legacy, p.kind, r)
			}
		}
		st, _ := s.emu.WindowsDeviceState(tok)
		if len(st.Toasts) == 0 || st.Toasts[0].Texts[0] != "Tilecast <News>" || st.Toasts[0].Launch != "/item?id=1&x=2" || st.Toasts[0].AppLogo != opts.AppLogoImage {
			t.Errorf("legacy=%v: toast on the device %+v", legacy, st.Toasts)
		}
		if st.Badge != "7" || st.Tile.Tag != wns.Tag("news") {
			t.Errorf("legacy=%v: badge %q tag %q", legacy, st.Badge, st.Tile.Tag)
		}
		wantSizes := 4
		if legacy {
			wantSizes = 2
		}
		if len(st.Tile.Sizes) != wantSizes || len(st.Tile.Sizes["wide"].Texts) == 0 {
			t.Errorf("legacy=%v: tile %+v", legacy, st.Tile)
		}
		if !legacy && (st.Tile.DisplayName != "Tilecast <News>" || st.Toasts[0].Hero != opts.HeroImage || st.Toasts[0].Scenario != "reminder") {
			t.Errorf("modern extras lost: %+v / %+v", st.Tile, st.Toasts[0])
		}
	}
	if n := s.emu.WNSTokenRequests(); n != 1 {
		t.Errorf("%d token requests for 8 sends, want 1", n)
	}

	// The emulator's tokens all expire at once (mid fan-out): the next
	// send gets 401, renews and is delivered within the same call.
	s.emu.ExpireWNSTokens()
	r := s.push(ch, tilecast.KindRaw, []byte("x"))
	if r.Verdict != tilecast.VerdictDelivered || !r.TokenRefreshed {
		t.Errorf("after the tokens expired: %+v", r)
	}
	// Renewal ahead of expiry: 9 of the 10 minutes later, a new token is
	// fetched in the background while the old one still serves.
	s.clk.Add(9 * time.Minute)
	if r := s.push(ch, tilecast.KindRaw, []byte("y")); r.Verdict != tilecast.VerdictDelivered || r.TokenRefreshed {
		t.Errorf("near expiry: %+v", r)
	}
	waitFor(t, "the renewal", func() bool { return s.emu.WNSTokenRequests() == 3 })
	s.clk.Add(2 * time.Minute) // the first renewed token has expired; the second has not
	if r := s.push(ch, tilecast.KindRaw, []byte("z")); r.Verdict != tilecast.VerdictDelivered || r.TokenRefreshed {
		t.Errorf("after renewal: %+v", r)
	}
	st, _ := s.emu.WindowsDeviceState(tok)
	if st.Counts.Unauthorized != 1 {
		t.Errorf("%d refused pushes, want only the one after ExpireWNSTokens", st.Counts.Unauthorized)
	}
}

func TestEmulatorBehaviours(t *testing.T) {
	s := startEmulator(t, emuSecret)
	payload := []byte(`<toast><visual><binding template="ToastGeneric"><text>x</text></binding></visual></toast>`)
	tests := []struct {
		behaviour string
		params    emulator.WNSParams
		verdict   tilecast.Verdict
		wait      time.Duration
		is        error
	}{
		{emulator.Revoked, emulator.WNSParams{}, tilecast.VerdictGone, 0, tilecast.ErrChannelExpired},
		{emulator.Unknown, emulator.WNSParams{}, tilecast.VerdictGone, 0, tilecast.ErrChannelExpired},
		{emulator.WrongApp, emulator.WNSParams{}, tilecast.VerdictFailed, 0, tilecast.ErrCredentials},
		{emulator.Throttled, emulator.WNSParams{ContinueAfter: 30}, tilecast.VerdictRetry, 30 * time.Second, nil},
		{emulator.Throttled, emulator.WNSParams{ThrottleStatus: 429, ContinueAfter: 12}, tilecast.VerdictRetry, 12 * time.Second, nil},
		{emulator.Throttled, emulator.WNSParams{ThrottleStatus: 200}, tilecast.VerdictRetry, 5 * time.Second, nil},
		{emulator.Flaky, emulator.WNSParams{FlakyP: 1}, tilecast.VerdictRetry, 0, nil},
	}
	for _, tt := range tests {
		ch, _ := s.device(t, tt.behaviour, tt.params)
		r := s.push(ch, tilecast.KindToast, payload)
		if r.Verdict != tt.verdict || r.Wait != tt.wait || (tt.is != nil && !errors.Is(r.Err, tt.is)) {
			t.Errorf("%s %+v: %+v", tt.behaviour, tt.params, r)
		}
	}
}

func TestEmulatorWrongSecret(t *testing.T) {
	s := startEmulator(t, "not the secret")
	ch, _ := s.device(t, emulator.Healthy)
	var wg sync.WaitGroup
	results := make([]tilecast.Result, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.push(ch, tilecast.KindRaw, []byte("x"))
		}()
	}
	wg.Wait()
	for i, r := range results {
		if !errors.Is(r.Err, tilecast.ErrCircuitOpen) || r.Status != 0 {
			t.Errorf("send %d: %+v, want not sent", i, r)
		}
	}
	if d, reason := s.client.Degraded(); !d || !strings.Contains(reason, "invalid_client") || strings.Contains(reason, "not the secret") {
		t.Errorf("Degraded() = %v %q", d, reason)
	}
	if n := s.emu.WNSTokenRequests(); n != 0 {
		t.Errorf("%d tokens issued for a wrong secret", n)
	}
}
