package web

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tilecast/tilecast"
)

func TestAuth(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name   string
		header string // Authorization; "" sends none
		status int
		msg    string
		wwwErr bool // WWW-Authenticate carries error="invalid_token"
	}{
		{"missing", "", 401, "missing api key", false},
		{"basic scheme", "Basic " + keyOne, 401, "missing api key", false},
		{"bearer without token", "Bearer ", 401, "missing api key", false},
		{"wrong key", "Bearer nope", 401, "invalid api key", true},
		{"key prefix", "Bearer " + keyOne[:len(keyOne)-1], 401, "invalid api key", true},
		{"key with suffix", "Bearer " + keyOne + "x", 401, "invalid api key", true},
		{"comment line is no key", "Bearer # operator keys", 401, "invalid api key", true},
		{"right key", "Bearer " + keyOne, 200, "", false},
		{"second key", "Bearer " + keyTwo, 200, "", false},
		{"scheme case", "bearer " + keyOne, 200, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/v1/status", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			rec := serve(e, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.status, rec.Body)
			}
			if tc.status != 401 {
				return
			}
			if msg := errorOf(t, rec); !strings.Contains(msg, tc.msg) {
				t.Errorf("error %q, want %q", msg, tc.msg)
			}
			www := rec.Header().Get("WWW-Authenticate")
			if !strings.HasPrefix(www, "Bearer") || strings.Contains(www, "invalid_token") != tc.wwwErr {
				t.Errorf("WWW-Authenticate %q", www)
			}
		})
	}
}

func TestEveryV1RouteNeedsAKey(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.mustRegister(t, regJSON(goodURI), http.StatusCreated)
	for _, r := range []struct{ method, path string }{
		{http.MethodPost, "/v1/channels"},
		{http.MethodGet, "/v1/channels"},
		{http.MethodGet, "/v1/channels/" + ch.ID},
		{http.MethodDelete, "/v1/channels/" + ch.ID},
		{http.MethodGet, "/v1/channels/" + ch.ID + "/outcomes"},
		{http.MethodGet, "/v1/status"},
	} {
		body := strings.NewReader(regJSON(goodURI + "x"))
		if rec := e.do(t, r.method, r.path, "", body); rec.Code != http.StatusUnauthorized {
			t.Errorf("%s %s without a key: %d, want 401", r.method, r.path, rec.Code)
		}
		if rec := e.do(t, r.method, r.path, "wrong", body); rec.Code != http.StatusUnauthorized {
			t.Errorf("%s %s with a wrong key: %d, want 401", r.method, r.path, rec.Code)
		}
	}
	if n := e.store.count(); n != 1 {
		t.Errorf("%d channels, want 1: an unauthenticated request changed the store", n)
	}
	// Health and metrics are for the local monitoring, without a key.
	for _, path := range []string{"/healthz", "/metrics"} {
		if rec := e.do(t, http.MethodGet, path, "", nil); rec.Code != http.StatusOK {
			t.Errorf("GET %s without a key: %d", path, rec.Code)
		}
	}
}

func TestReloadKeys(t *testing.T) {
	e := newEnv(t, nil)
	const keyNew = "k3-new-9988776655443322110099887766"
	status := func(key string) int { return e.do(t, http.MethodGet, "/v1/status", key, nil).Code }
	if status(keyNew) != 401 || status(keyOne) != 200 {
		t.Fatal("keys before reload")
	}
	writeKeys(t, e.keysFile, keyTwo+"\n"+keyNew+"\n")
	if status(keyNew) != 401 {
		t.Error("a new key works before the reload")
	}
	if err := e.srv.ReloadKeys(); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]int{keyOne: 401, keyTwo: 200, keyNew: 200} {
		if got := status(key); got != want {
			t.Errorf("after reload, key %.6s…: %d, want %d", key, got, want)
		}
	}
	// A reload that fails keeps the keys in use.
	if err := os.Remove(e.keysFile); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.ReloadKeys(); err == nil {
		t.Error("ReloadKeys of a missing file: no error")
	}
	writeKeys(t, e.keysFile, "a key with spaces\n")
	if err := e.srv.ReloadKeys(); err == nil || strings.Contains(err.Error(), "with spaces") {
		t.Errorf("ReloadKeys of a bad line: %v (want an error that does not quote the key)", err)
	}
	if status(keyNew) != 200 {
		t.Error("a failed reload dropped the keys in use")
	}
}

func TestKeysFileAtStart(t *testing.T) {
	dir := t.TempDir()
	_, err := New(Options{Store: newFakeStore(time.Now), Counts: func() (tilecast.Counts, error) { return tilecast.Counts{}, nil },
		APIKeysFile: filepath.Join(dir, "missing")})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "api_keys_file") {
		t.Errorf("New with a missing keys file: %v", err)
	}
	for _, opts := range []Options{
		{Counts: func() (tilecast.Counts, error) { return tilecast.Counts{}, nil }},
		{Store: newFakeStore(time.Now)},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("New(%+v): no error", opts)
		}
	}
}

func TestAPIDisabled(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.APIKeysFile = "" })
	for _, key := range []string{"", keyOne} {
		rec := e.do(t, http.MethodPost, "/v1/channels", key, strings.NewReader(regJSON(goodURI)))
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", rec.Code)
		}
		if msg := errorOf(t, rec); msg != "api disabled: set http.api_keys_file" {
			t.Errorf("error %q", msg)
		}
	}
	if err := e.srv.ReloadKeys(); err != nil {
		t.Errorf("ReloadKeys with the API disabled: %v", err)
	}
	if rec := e.do(t, http.MethodGet, "/healthz", "", nil); rec.Code != http.StatusOK {
		t.Errorf("healthz with the API disabled: %d", rec.Code)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.RatePerSecond, o.Burst = 2, 3 })
	get := func(key string) (int, string) {
		rec := e.do(t, http.MethodGet, "/v1/channels", key, nil)
		return rec.Code, rec.Header().Get("Retry-After")
	}
	for i := range 3 {
		if code, _ := get(keyOne); code != 200 {
			t.Fatalf("request %d within the burst: %d", i+1, code)
		}
	}
	rec := e.do(t, http.MethodGet, "/v1/channels", keyOne, nil)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("after the burst: %d, Retry-After %q; want 429 and 1", rec.Code, rec.Header().Get("Retry-After"))
	}
	if msg := errorOf(t, rec); !strings.Contains(msg, "rate limited") {
		t.Errorf("error %q", msg)
	}
	// Refused requests take no tokens: still limited, not further behind.
	if code, _ := get(keyOne); code != 429 {
		t.Errorf("second refused request: %d", code)
	}
	// Other keys have their own bucket.
	for i := range 3 {
		if code, _ := get(keyTwo); code != 200 {
			t.Errorf("other key, request %d: %d", i+1, code)
		}
	}
	// Unauthenticated requests do not drain a bucket.
	if code, _ := get("wrong"); code != 401 {
		t.Errorf("wrong key: %d", code)
	}
	e.clock.Add(500 * time.Millisecond) // one token at 2/s
	if code, _ := get(keyOne); code != 200 {
		t.Errorf("after 0.5 s: %d, want 200", code)
	}
	if code, after := get(keyOne); code != 429 || after != "1" {
		t.Errorf("token used again: %d, Retry-After %q", code, after)
	}
	// A reload keeps a kept key's bucket: it cannot reset the limit.
	if err := e.srv.ReloadKeys(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(keyOne); code != 429 {
		t.Errorf("after reload: %d, want 429", code)
	}
}

func TestRetryAfterRoundsUp(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.RatePerSecond, o.Burst = 0.1, 1 })
	e.do(t, http.MethodGet, "/v1/status", keyOne, nil)
	rec := e.do(t, http.MethodGet, "/v1/status", keyOne, nil)
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "10" {
		t.Errorf("%d, Retry-After %q; want 429 and 10", rec.Code, rec.Header().Get("Retry-After"))
	}
	e.clock.Add(9500 * time.Millisecond)
	if rec := e.do(t, http.MethodGet, "/v1/status", keyOne, nil); rec.Header().Get("Retry-After") != "1" {
		t.Errorf("0.5 s left: Retry-After %q, want 1", rec.Header().Get("Retry-After"))
	}
}

func TestHealthz(t *testing.T) {
	var healthErr error
	e := newEnv(t, func(o *Options) { o.Health = func() error { return healthErr } })
	check := func(status int, want map[string]string) {
		t.Helper()
		rec := e.do(t, http.MethodGet, "/healthz", "", nil)
		var got map[string]string
		if rec.Code != status || json.Unmarshal(rec.Body.Bytes(), &got) != nil {
			t.Fatalf("healthz: %d %s, want %d", rec.Code, rec.Body, status)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("healthz %s = %q, want %q", k, got[k], v)
			}
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
	}
	check(200, map[string]string{"status": "ok"})
	healthErr = errors.New("scheduler: feed news overdue by 20m")
	check(503, map[string]string{"status": "unavailable", "error": "scheduler: feed news overdue by 20m"})
	healthErr = nil
	check(200, map[string]string{"status": "ok"})

	// No Health func: healthy.
	e2 := newEnv(t, func(o *Options) { o.Health = nil })
	if rec := e2.do(t, http.MethodGet, "/healthz", "", nil); rec.Code != 200 {
		t.Errorf("nil Health: %d", rec.Code)
	}
}

func TestStatus(t *testing.T) {
	e := newEnv(t, nil)
	e.mustRegister(t, regJSON(goodURI), http.StatusCreated)
	e.mustRegister(t, regJSON(goodURI+"b", `,"user":"ann","feeds":["inbox"]`), http.StatusCreated)
	e.store.counts = tilecast.Counts{OutboxDepth: 7, DeadLetters: 2}
	e.store.states = map[tilecast.FeedKey]tilecast.FeedState{
		{Feed: "news"}: {Baselined: true, LastFetch: t0, LastResult: "ok", LastSuccess: t0, Title: "News",
			Latest: &tilecast.TemplateData{NewCount: 3}, Validators: tilecast.Validators{ETag: `"e1"`}},
		{Feed: "weather"}: {Baselined: true, LastFetch: t0, LastResult: "http 500: boom", Failures: 40,
			FailingSince: t0.Add(-25 * time.Hour), Broken: true},
		{Feed: "inbox", User: "bob"}: {Baselined: true, LastResult: "ok"},
		{Feed: "inbox", User: "ann"}: {Baselined: true, Broken: true, LastResult: "http 404: gone"},
		{Feed: "removed"}:            {Broken: true}, // no longer configured: left out
	}
	rec := e.do(t, http.MethodGet, "/v1/status", keyOne, nil)
	if rec.Code != 200 {
		t.Fatalf("status: %d %s", rec.Code, rec.Body)
	}
	var got statusBody
	dec := json.NewDecoder(strings.NewReader(rec.Body.String()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if got.Channels != 2 || got.OutboxDepth != 7 || got.DeadLetters != 2 || got.FeedsBroken != 2 {
		t.Errorf("counts = %d channels, %d outbox, %d dead, %d broken; want 2, 7, 2, 2",
			got.Channels, got.OutboxDepth, got.DeadLetters, got.FeedsBroken)
	}
	if len(got.Feeds) != 3 {
		t.Fatalf("feeds: %+v", got.Feeds)
	}
	news, weather, inbox := got.Feeds[0], got.Feeds[1], got.Feeds[2]
	if news.Name != "news" || news.Broken || news.State == nil || news.State.Title != "News" || news.Schedule != "@every 10m" {
		t.Errorf("news: %+v", news)
	}
	if weather.Name != "weather" || !weather.Broken || weather.State == nil || weather.State.Failures != 40 {
		t.Errorf("weather: %+v", weather)
	}
	if inbox.Name != "inbox" || !inbox.PerUser || !inbox.Broken || inbox.State != nil || len(inbox.Users) != 2 ||
		inbox.Users[0].User != "ann" || !inbox.Users[0].Broken || inbox.Users[1].Broken {
		t.Errorf("inbox: %+v", inbox)
	}
	// Internal state (validators, the rendered tile data) stays out.
	if body := rec.Body.String(); strings.Contains(body, "e1") || strings.Contains(body, "latest") {
		t.Errorf("status leaks internal feed state: %s", body)
	}
	if strings.Contains(rec.Body.String(), "instances") {
		t.Errorf("status of a state without instances lists some: %s", rec.Body)
	}
}

// On a shared PostgreSQL state /v1/status lists the instances with their
// leases; a failure to read them is a 500, not a status without them.
func TestStatusInstances(t *testing.T) {
	ins := []tilecast.Instance{{ID: "h-1", Host: "h", PID: 7, Started: t0, Heartbeat: t0, Alive: true, Leases: 12},
		{ID: "h-2", Host: "h", PID: 8, Started: t0, Heartbeat: t0.Add(-time.Hour)}}
	var fail error
	e := newEnv(t, func(o *Options) {
		o.Instances = func() ([]tilecast.Instance, error) { return ins, fail }
	})
	rec := e.do(t, http.MethodGet, "/v1/status", keyOne, nil)
	var got statusBody
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &got) != nil {
		t.Fatalf("status: %d %s", rec.Code, rec.Body)
	}
	if !reflect.DeepEqual(got.Instances, ins) {
		t.Errorf("instances = %+v, want %+v", got.Instances, ins)
	}
	fail = errors.New("database unreachable")
	if rec := e.do(t, http.MethodGet, "/v1/status", keyOne, nil); rec.Code != http.StatusInternalServerError {
		t.Errorf("status with the instances unreadable: %d", rec.Code)
	}
}

func TestUnknownRoutesAnswerJSON(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodGet, "/nope", 404, ""},
		{http.MethodGet, "/v2/channels", 404, ""},
		{http.MethodPut, "/v1/channels", 405, "GET, HEAD, POST"},
		{http.MethodPost, "/healthz", 405, "GET, HEAD"},
	}
	for _, tc := range tests {
		rec := e.do(t, tc.method, tc.path, keyOne, nil)
		if rec.Code != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, rec.Code, tc.status)
			continue
		}
		errorOf(t, rec)
		if rec.Header().Get("Allow") != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, rec.Header().Get("Allow"), tc.allow)
		}
	}
}

func TestPanicIs500(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Health = func() error { panic("bug") } })
	rec := e.do(t, http.MethodGet, "/healthz", "", nil)
	if rec.Code != 500 || errorOf(t, rec) != "internal error" {
		t.Errorf("panic: %d %s", rec.Code, rec.Body)
	}
}

func TestHTTPServerLimits(t *testing.T) {
	e := newEnv(t, nil)
	hs := e.srv.HTTPServer("127.0.0.1:0")
	if hs.Addr != "127.0.0.1:0" || hs.Handler == nil {
		t.Errorf("addr %q handler %v", hs.Addr, hs.Handler)
	}
	for name, got := range map[string]time.Duration{
		"ReadHeaderTimeout 5s": hs.ReadHeaderTimeout - 5*time.Second,
		"ReadTimeout 15s":      hs.ReadTimeout - 15*time.Second,
		"WriteTimeout 30s":     hs.WriteTimeout - 30*time.Second,
		"IdleTimeout 60s":      hs.IdleTimeout - 60*time.Second,
	} {
		if got != 0 {
			t.Errorf("%s: off by %v", name, got)
		}
	}
	if hs.MaxHeaderBytes != 16<<10 || hs.ErrorLog == nil {
		t.Errorf("MaxHeaderBytes %d, ErrorLog %v", hs.MaxHeaderBytes, hs.ErrorLog)
	}
}

func TestNewRegistersOnGivenRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	e := newEnv(t, func(o *Options) { o.Registry, o.Metrics = reg, m })
	if e.srv.Metrics() != m {
		t.Error("Metrics() is not the given value")
	}
	// A second server on the same registry is a wiring bug: an error, not a panic.
	if _, err := New(Options{Store: e.store, Counts: e.store.Counts, Registry: reg, Metrics: m}); err == nil {
		t.Error("two servers on one registry: no error")
	}
}

func serve(e *env, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec
}

// TestAuthFailuresThrottledPerAddress: failed authentications from one
// address get 429 after the burst; other addresses, and valid keys from the
// throttled address, are not affected.
func TestAuthFailuresThrottledPerAddress(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AuthFailRatePerSecond, o.AuthFailBurst = 1, 3 })
	from := func(addr, auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/v1/status", nil)
		req.RemoteAddr = addr
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		return serve(e, req)
	}
	const guesser = "198.51.100.7:40000"
	for i, auth := range []string{"Bearer guess1", "", "Basic Z3Vlc3M6Z3Vlc3M="} {
		if rec := from(guesser, auth); rec.Code != 401 {
			t.Fatalf("failure %d within the burst: %d", i+1, rec.Code)
		}
	}
	for _, auth := range []string{"Bearer guess4", "", "Basic Z3Vlc3M6Z3Vlc3M=", "TC-HMAC-SHA256 junk"} {
		rec := from(guesser, auth)
		if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
			t.Fatalf("%q after the burst: %d, Retry-After %q; want 429 and 1", auth, rec.Code, rec.Header().Get("Retry-After"))
		}
		if msg := errorOf(t, rec); !strings.Contains(msg, "too many failed authentications") {
			t.Errorf("error %q", msg)
		}
	}
	// Another port of the same host is the same address; an IPv4-mapped
	// IPv6 peer too.
	for _, addr := range []string{"198.51.100.7:40001", "[::ffff:198.51.100.7]:40002"} {
		if rec := from(addr, "Bearer guess"); rec.Code != 429 {
			t.Errorf("%s: %d, want 429", addr, rec.Code)
		}
	}
	// Other addresses have their own bucket.
	if rec := from("198.51.100.8:40000", "Bearer guess"); rec.Code != 401 {
		t.Errorf("other address: %d, want 401", rec.Code)
	}
	// A valid key from the throttled address is served, by its own bucket,
	// and takes nothing from the address's.
	for _, auth := range []string{"Bearer " + keyOne, "Bearer " + keyTwo} {
		if rec := from(guesser, auth); rec.Code != 200 {
			t.Errorf("valid credentials from the throttled address: %d %s", rec.Code, rec.Body)
		}
	}
	// One token a second.
	e.clock.Add(time.Second)
	if rec := from(guesser, "Bearer guess5"); rec.Code != 401 {
		t.Errorf("after 1 s: %d, want 401", rec.Code)
	}
	if rec := from(guesser, "Bearer guess6"); rec.Code != 429 {
		t.Errorf("second failure after 1 s: %d, want 429", rec.Code)
	}
}

func TestAuthFailuresIPv6PerPrefix(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AuthFailRatePerSecond, o.AuthFailBurst = 1, 1 })
	status := func(addr string) int {
		req := httptest.NewRequest(http.MethodGet, "/v1/status", nil)
		req.RemoteAddr = addr
		return serve(e, req).Code
	}
	for _, tc := range []struct {
		addr string
		want int
	}{
		{"[2001:db8:1:2::1]:1000", 401},
		{"[2001:db8:1:2:ffff::9]:1000", 429}, // same /64
		{"[2001:db8:1:2::1%eth0]:1000", 429}, // zone ignored
		{"[2001:db8:1:3::1]:1000", 401},      // next /64
		{"not-an-address", 401},              // unparsable ones share one bucket
		{"also-not-one", 429},
	} {
		if got := status(tc.addr); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.addr, got, tc.want)
		}
	}
}

// TestTrackedAddrsBounded: the address map never grows past its cap; when
// it is full of throttled addresses a failure from a new one is 429, and
// idle addresses make room again.
func TestTrackedAddrsBounded(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AuthFailRatePerSecond, o.AuthFailBurst, o.MaxTrackedAddrs = 1, 2, 3 })
	from := func(addr, key string) int {
		req := httptest.NewRequest(http.MethodGet, "/v1/status", nil)
		req.RemoteAddr = addr + ":1"
		req.Header.Set("Authorization", "Bearer "+key)
		return serve(e, req).Code
	}
	for _, a := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		if c := from(a, "bad"); c != 401 {
			t.Fatalf("%s: %d", a, c)
		}
	}
	if c := from("192.0.2.4", "bad"); c != 429 {
		t.Errorf("fourth address with the map full: %d, want 429", c)
	}
	if c := from("192.0.2.4", keyOne); c != 200 {
		t.Errorf("valid key with the map full: %d, want 200", c)
	}
	if n := e.srv.failures.len(); n != 3 {
		t.Errorf("tracking %d addresses, want 3", n)
	}
	e.clock.Add(2 * time.Second) // every bucket full again: idle
	if c := from("192.0.2.4", "bad"); c != 401 {
		t.Errorf("after the others went idle: %d, want 401", c)
	}
	if n := e.srv.failures.len(); n != 1 {
		t.Errorf("tracking %d addresses after the sweep, want 1", n)
	}
}

func TestHTTPServerTimeoutOptions(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.ReadHeaderTimeout, o.ReadTimeout, o.WriteTimeout, o.IdleTimeout = 1, 2, 3, -4
	})
	hs := e.srv.HTTPServer("127.0.0.1:0")
	if hs.ReadHeaderTimeout != 1 || hs.ReadTimeout != 2 || hs.WriteTimeout != 3 || hs.IdleTimeout != IdleTimeout {
		t.Errorf("timeouts %v %v %v %v, want 1ns 2ns 3ns and the default idle",
			hs.ReadHeaderTimeout, hs.ReadTimeout, hs.WriteTimeout, hs.IdleTimeout)
	}
}

func TestShortKeyWarning(t *testing.T) {
	for _, tc := range []struct {
		keys string
		warn bool
	}{
		{keyOne + "\n", false},
		{keyOne + "\nshort-key\n", true},
		{"1234567890123456789012\n", false}, // 22 characters
	} {
		var log strings.Builder
		e := newEnv(t, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&log, nil)) })
		writeKeys(t, e.keysFile, tc.keys)
		log.Reset()
		if err := e.srv.ReloadKeys(); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(log.String(), "short keys"); got != tc.warn {
			t.Errorf("keys %q: warned %v, want %v (%s)", tc.keys, got, tc.warn, log.String())
		}
		if strings.Contains(log.String(), "short-key") {
			t.Error("the warning quotes a key")
		}
	}
}
