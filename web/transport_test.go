package web_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/store"
	"github.com/tilecast/tilecast/web"
)

// transportServer is the API on a real store with the [push] rules given.
func transportServer(t *testing.T, allowed []string, allowPrivate bool, edit func(*web.Options)) (*store.DB, http.Handler) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	keys := filepath.Join(dir, "api-keys")
	if err := os.WriteFile(keys, []byte(apiKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := web.Options{
		Store:  db,
		Counts: db.Counts,
		Feeds: func() []tilecast.Feed {
			return []tilecast.Feed{{Name: "news", URL: "https://example.org/news.xml"}}
		},
		AllowedHosts: func() []string { return allowed },
		AllowPrivate: func() bool { return allowPrivate },
		APIKeysFile:  keys,
		Registry:     prometheus.NewRegistry(),
		Logger:       slog.New(slog.DiscardHandler),
		Burst:        1000,
	}
	if edit != nil {
		edit(&opts)
	}
	srv, err := web.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return db, srv.Handler()
}

// POST /v1/channels with the default push.allowed_hosts: the transport is
// inferred or named, stored and answered; WNS channels must be https on
// *.notify.windows.com, and hosts outside it only pass with
// allow_private and an explicit "wns".
func TestRegisterTransport(t *testing.T) {
	defHosts := config.Default().Push.AllowedHosts
	const wnsURI = "https://wns2-par02p.notify.windows.com/w/?token=BQYAAAB%2bQ"
	tests := []struct {
		name      string
		body      string
		allowed   []string
		private   bool
		status    int
		transport tilecast.Transport
		errHas    string
	}{
		{"wns inferred", `{"uri":"` + wnsURI + `"}`, defHosts, false, 201, tilecast.TransportWNS, ""},
		{"wns named", `{"uri":"https://db5.notify.windows.com/?token=x","transport":"wns"}`, defHosts, false, 201, tilecast.TransportWNS, ""},
		{"mpns inferred, as before", `{"uri":"https://db3.notify.live.net/throttledthirdparty/01.00/AQ"}`, defHosts, false, 201,
			tilecast.TransportMPNS, ""},
		{"emulator named wns", `{"uri":"http://127.0.0.1:8461/w/?token=e","transport":"wns"}`,
			append(defHosts, "127.0.0.1"), true, 201, tilecast.TransportWNS, ""},
		{"emulator without transport is mpns", `{"uri":"http://127.0.0.1:8461/throttledthirdparty/01.00/x"}`,
			append(defHosts, "127.0.0.1"), true, 201, tilecast.TransportMPNS, ""},

		{"wns over http", `{"uri":"http://db5.notify.windows.com/?token=x"}`, defHosts, false, 400, "", "must be https"},
		{"wns on a foreign host", `{"uri":"https://push.example.org/w/?token=x","transport":"wns"}`,
			append(defHosts, "push.example.org"), false, 422, "", "must be on *.notify.windows.com"},
		{"emulator wns without allow_private", `{"uri":"http://127.0.0.1:8461/w/?token=e","transport":"wns"}`,
			append(defHosts, "127.0.0.1"), false, 422, "", "push.allow_private"},
		{"look-alike host", `{"uri":"https://notify.windows.com.evil.example/w/?token=x","transport":"wns"}`,
			defHosts, false, 422, "", "must be on *.notify.windows.com"},
		{"mpns named on a wns host", `{"uri":"` + wnsURI + `","transport":"mpns"}`, defHosts, false, 422, "", "is a WNS host"},
		{"unknown transport", `{"uri":"` + wnsURI + `","transport":"apns"}`, defHosts, false, 400, "", "unknown transport"},
		{"transport not a string", `{"uri":"` + wnsURI + `","transport":1}`, defHosts, false, 400, "", "transport"},
		{"windows host not allowed", `{"uri":"` + wnsURI + `"}`, []string{"*.notify.live.net"}, false, 422, "",
			"not in push.allowed_hosts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, h := transportServer(t, tt.allowed, tt.private, nil)
			req := httptest.NewRequest(http.MethodPost, "/v1/channels", strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+apiKey)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.errHas != "" {
				if !strings.Contains(rec.Body.String(), tt.errHas) {
					t.Errorf("answer %s lacks %q", rec.Body, tt.errHas)
				}
				if n, err := db.Counts(); err != nil || n.Channels != 0 {
					t.Errorf("a refused registration stored a channel: %+v, %v", n, err)
				}
				return
			}
			var ch tilecast.Channel
			if err := json.Unmarshal(rec.Body.Bytes(), &ch); err != nil {
				t.Fatal(err)
			}
			stored, err := db.Channel(ch.ID)
			if err != nil {
				t.Fatal(err)
			}
			if ch.Transport != tt.transport || stored.Transport != tt.transport {
				t.Errorf("transport: answered %q, stored %q; want %q", ch.Transport, stored.Transport, tt.transport)
			}
		})
	}
}

// /healthz: the daemon's own fault is 503; a service it only sends to
// failing is 200 "degraded" with the reason.
func TestHealthzDegraded(t *testing.T) {
	type answer struct{ Status, Reason, Error string }
	get := func(h http.Handler) (int, answer) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		var a answer
		if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
			t.Fatalf("healthz body %q: %v", rec.Body, err)
		}
		return rec.Code, a
	}
	degraded := func() (bool, string) { return true, "wns token endpoint failing (3 in a row): 503" }
	_, h := transportServer(t, nil, false, func(o *web.Options) { o.Degraded = degraded })
	if code, a := get(h); code != http.StatusOK || a.Status != "degraded" || !strings.Contains(a.Reason, "wns token endpoint") {
		t.Errorf("degraded transport: %d %+v, want 200 degraded with the reason", code, a)
	}
	_, h = transportServer(t, nil, false, func(o *web.Options) {
		o.Degraded = degraded
		o.Health = func() error { return errors.New("scheduler has not ticked for 2m") }
	})
	if code, a := get(h); code != http.StatusServiceUnavailable || a.Status != "unavailable" {
		t.Errorf("own fault: %d %+v, want 503 (it outranks degraded)", code, a)
	}
	_, h = transportServer(t, nil, false, func(o *web.Options) { o.Degraded = func() (bool, string) { return false, "" } })
	if code, a := get(h); code != http.StatusOK || a.Status != "ok" {
		t.Errorf("healthy: %d %+v", code, a)
	}
}
