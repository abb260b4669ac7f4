package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/internal/pgtest"
)

// Two daemons' Bots on one PostgreSQL state, as newBot wires them: the
// WNS access token one obtained serves the other without a token
// request, and a push host whose circuit one opened is refused by the
// other without a request and makes its /healthz degraded (design.md §10).
func TestPostgresBotsShareTokenAndOpenHosts(t *testing.T) {
	const clientID = "ms-app://s-1-15-2-shared-test"
	emu := emulator.New(emulator.Options{WNSClientID: clientID, WNSClientSecret: []byte("right-secret")})
	var tokenRequests atomic.Int64
	esrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == emulator.WNSClassicTokenPath {
			tokenRequests.Add(1)
		}
		emu.Handler().ServeHTTP(w, r)
	}))
	defer esrv.Close()
	defer emu.Close()
	emu.SetBaseURL(esrv.URL)
	pc, err := emu.CreateWindowsDevice(emulator.Healthy, "pc")
	if err != nil {
		t.Fatal(err)
	}
	var failing atomic.Int64
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		failing.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()

	dir := t.TempDir()
	secretFile := filepath.Join(dir, "wns-secret")
	if err := os.WriteFile(secretFile, []byte("right-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tilecast.toml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`state = %q
[http]
listen = ""
[push]
allow_private = true
allowed_hosts = ["127.0.0.1"]
[push.wns]
client_id = %q
client_secret_file = %q
token_url = %q
[[feed]]
name = "news"
url = "http://127.0.0.1:1/news.xml"
schedule = "@every 1h"
[feed.toast]
text2 = "{{.Item.Title}}"
`, pgtest.New(t), clientID, secretFile, esrv.URL+emulator.WNSClassicTokenPath)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var bots [2]*daemonBot
	for i := range bots {
		db, err := openDatabase(cfg, log, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		bots[i], err = newBot(cfg, db, log)
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	toast := &tilecast.Notification{Kind: tilecast.KindToast,
		Payload: []byte(`<toast><visual><binding template="ToastGeneric"><text>hi</text></binding></visual></toast>`)}
	// The breaker first: the second bot reads the shared view on its
	// first push (then every few seconds).
	mpnsCh := &tilecast.Channel{URI: down.URL + "/ch"}
	for i := 0; i < tilecast.DefaultBreakerFailures; i++ {
		if r := bots[0].Pusher.Push(ctx, mpnsCh, toast, 0); r.Status != http.StatusServiceUnavailable {
			t.Fatalf("push %d to the failing host: %+v, want its 503", i+1, r)
		}
	}
	// The second daemon's /healthz names the host before it sends anything.
	downHost := strings.TrimPrefix(down.URL, "http://")
	if bad, why := bots[1].Degraded(); !bad || !strings.Contains(why, downHost) || !strings.Contains(why, "opened by another instance") {
		t.Errorf("the other daemon's Degraded() = %v, %q; want the host the first opened", bad, why)
	}
	r := bots[1].Pusher.Push(ctx, mpnsCh, toast, 0)
	if !errors.Is(r.Err, tilecast.ErrCircuitOpen) || !strings.Contains(r.Err.Error(), "circuit open") {
		t.Fatalf("the other bot's push to the host the first found failing: %+v, want refused", r)
	}
	if n := failing.Load(); n != tilecast.DefaultBreakerFailures {
		t.Fatalf("the failing host got %d requests, want %d (none from the second bot)", n, tilecast.DefaultBreakerFailures)
	}

	wnsCh := &tilecast.Channel{URI: pc.URI, Transport: tilecast.TransportWNS}
	for i, b := range bots {
		if r := b.Pusher.Push(ctx, wnsCh, toast, 0); r.Verdict != tilecast.VerdictDelivered {
			t.Fatalf("bot %d: WNS toast: %+v", i, r)
		}
	}
	if n := tokenRequests.Load(); n != 1 {
		t.Errorf("%d token requests for two bots, want 1: the second takes the first's token", n)
	}
	if st, _ := emu.WindowsDeviceState(pc.Token); len(st.Toasts) != 2 {
		t.Errorf("device got %d toasts, want 2", len(st.Toasts))
	}
}
