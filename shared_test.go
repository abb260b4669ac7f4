package tilecast_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/logtest"
	"github.com/tilecast/tilecast/internal/pgtest"
	"github.com/tilecast/tilecast/notify/wns"
	"github.com/tilecast/tilecast/store/postgres"
)

// What the instances on one PostgreSQL state share (design.md §10, issue
// 18): two Breakers, or two WNS token sources, each with its own
// connection pool to one real database, as two processes would have.

// openShared opens n DBs on one fresh schema, as n instances would.
func openShared(t *testing.T, n int, now func() time.Time) []*postgres.DB {
	t.Helper()
	url := pgtest.New(t)
	var dbs []*postgres.DB
	for i := 0; i < n; i++ {
		db, err := postgres.Open(context.Background(), url, postgres.Options{Now: now, MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs = append(dbs, db)
	}
	return dbs
}

// pushHost is a loopback push service that counts the requests it gets
// and answers 503 while failing is set, else 200.
type pushHost struct {
	*httptest.Server
	requests atomic.Int64
	failing  atomic.Bool
}

func newPushHost(t *testing.T) *pushHost {
	h := &pushHost{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		if h.failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.Close)
	return h
}

// httpPusher POSTs each push to the channel URI: 5xx and network errors
// are VerdictRetry with the status, 2xx delivered.
type httpPusher struct{ hc *http.Client }

func (p httpPusher) Push(ctx context.Context, ch *tilecast.Channel, _ *tilecast.Notification, _ time.Duration) tilecast.Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ch.URI, strings.NewReader("<toast/>"))
	if err != nil {
		return tilecast.Result{Verdict: tilecast.VerdictFailed, Err: err}
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return tilecast.Result{Verdict: tilecast.VerdictRetry, Err: err}
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return tilecast.Result{Status: resp.StatusCode, Verdict: tilecast.VerdictRetry}
	}
	return tilecast.Result{Status: resp.StatusCode, Verdict: tilecast.VerdictDelivered}
}

func pushTo(b *tilecast.Breaker, h *pushHost) tilecast.Result {
	return b.Push(context.Background(), &tilecast.Channel{URI: h.URL + "/ch"}, &tilecast.Notification{Kind: tilecast.KindToast}, 0)
}

// TestBreakerSharedAcrossInstances: failures through breaker A open the
// host for breaker B too, which refuses pushes to it without a request
// until the probe time; a failed probe on one moves the others' probe
// time; a probe that succeeds on either closes the host for both.
func TestBreakerSharedAcrossInstances(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prober int // the breaker whose probe succeeds
	}{
		{"probe succeeds on B", 1},
		{"probe succeeds on A", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
			dbs := openShared(t, 2, c.Now)
			failing, healthy := newPushHost(t), newPushHost(t)
			p := httpPusher{hc: &http.Client{Timeout: 10 * time.Second}}
			const interval = 30 * time.Second
			var br [2]*tilecast.Breaker
			for i := range br {
				br[i] = tilecast.NewBreaker(p, tilecast.BreakerOptions{Failures: 3, Interval: interval, Now: c.Now,
					Shared: dbs[i], SharedRefresh: time.Second})
			}
			a, b := br[0], br[1]
			host := strings.TrimPrefix(failing.URL, "http://")

			failing.failing.Store(true)
			for i := 0; i < 3; i++ {
				if r := pushTo(a, failing); r.Status != 503 {
					t.Fatalf("push %d through A: %+v, want the host's 503", i+1, r)
				}
			}
			if !a.Open(host) {
				t.Fatal("A: circuit not open after 3 failures")
			}
			if n := failing.requests.Load(); n != 3 {
				t.Fatalf("%d requests, want 3", n)
			}

			// B never failed a push to the host, and refuses it.
			for i := 0; i < 5; i++ {
				r := pushTo(b, failing)
				if !errors.Is(r.Err, tilecast.ErrCircuitOpen) || r.Verdict != tilecast.VerdictRetry {
					t.Fatalf("push %d through B: %+v, want refused with ErrCircuitOpen", i+1, r)
				}
				if r.Wait <= 0 || r.Wait > interval {
					t.Fatalf("push %d through B: wait %v, want the time to A's probe (≤ %v)", i+1, r.Wait, interval)
				}
			}
			if n := failing.requests.Load(); n != 3 {
				t.Fatalf("B made requests to the open host: %d, want 3", n)
			}
			// Still refused just before the probe time, after a new read.
			c.Add(interval - time.Second)
			if r := pushTo(b, failing); !errors.Is(r.Err, tilecast.ErrCircuitOpen) {
				t.Fatalf("B one second before the probe: %+v, want refused", r)
			}
			if n := failing.requests.Load(); n != 3 {
				t.Fatalf("%d requests before the probe time, want 3", n)
			}

			// At the probe time the other breaker probes, and fails: the
			// prober, reading the new probe time, waits for it too.
			other := br[1-tc.prober]
			c.Add(2 * time.Second)
			if r := pushTo(other, failing); r.Status != 503 {
				t.Fatalf("probe: %+v, want a request answered 503", r)
			}
			if n := failing.requests.Load(); n != 4 {
				t.Fatalf("%d requests after one probe, want 4", n)
			}
			c.Add(2 * time.Second) // past the first probe time, before the new one
			if r := pushTo(br[tc.prober], failing); !errors.Is(r.Err, tilecast.ErrCircuitOpen) {
				t.Fatalf("after the other's failed probe: %+v, want refused until its next probe", r)
			}
			if n := failing.requests.Load(); n != 4 {
				t.Fatalf("%d requests, want 4: the failed probe moved the probe time for both", n)
			}

			// The next probe, on the prober, succeeds.
			failing.failing.Store(false)
			c.Add(interval)
			if r := pushTo(br[tc.prober], failing); r.Status != 200 {
				t.Fatalf("probe: %+v, want delivered", r)
			}
			if br[tc.prober].Open(host) {
				t.Fatal("prober: circuit still open after a successful probe")
			}
			// The other learns it at its next read (a push to any host),
			// without probing the host itself.
			c.Add(2 * time.Second)
			if r := pushTo(other, healthy); r.Status != 200 {
				t.Fatalf("push to a healthy host: %+v", r)
			}
			if other.Open(host) {
				t.Fatal("other: circuit still open after the prober's probe succeeded")
			}
			before := failing.requests.Load()
			for i := 0; i < 3; i++ {
				if r := pushTo(other, failing); r.Status != 200 {
					t.Fatalf("push %d after the close: %+v, want delivered", i+1, r)
				}
			}
			if n := failing.requests.Load() - before; n != 3 {
				t.Fatalf("%d requests after the close, want 3 (each push sent)", n)
			}
		})
	}
}

// TestBreakerSharedCloseReachesReader: an instance that only read of a
// host's open circuit (it never wrote to the shared view) closes it at
// its first read after another instance's probe succeeded, rather than
// holding sends to the healthy host until the old probe time.
func TestBreakerSharedCloseReachesReader(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	dbs := openShared(t, 2, c.Now)
	failing, healthy := newPushHost(t), newPushHost(t)
	p := httpPusher{hc: &http.Client{Timeout: 10 * time.Second}}
	var br [2]*tilecast.Breaker
	for i := range br {
		br[i] = tilecast.NewBreaker(p, tilecast.BreakerOptions{Failures: 3, Interval: 30 * time.Second, Now: c.Now,
			Shared: dbs[i], SharedRefresh: time.Second})
	}
	a, b := br[0], br[1]
	host := strings.TrimPrefix(failing.URL, "http://")
	failing.failing.Store(true)
	for range 3 {
		pushTo(a, failing)
	}
	if r := pushTo(b, healthy); r.Status != 200 || !b.Open(host) {
		t.Fatalf("B's first push (%+v) read the view: open %v, want A's host open", r, b.Open(host))
	}
	failing.failing.Store(false)
	c.Add(31 * time.Second)
	if r := pushTo(a, failing); r.Status != 200 {
		t.Fatalf("A's probe: %+v", r)
	}
	c.Add(2 * time.Second)
	if r := pushTo(b, healthy); r.Status != 200 {
		t.Fatalf("B's push to the healthy host: %+v", r)
	}
	if b.Open(host) {
		t.Error("B: circuit still open after A's probe closed the host and B read the view again")
	}
}

// TestBreakerSharedDegraded: on one PostgreSQL state, every instance's
// /healthz (Breaker.Degraded) names a host another instance's circuit
// opened, even one that sends nothing (Degraded reads the shared view
// itself, at most once per refresh), and stops when that instance's probe
// succeeds.
func TestBreakerSharedDegraded(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	dbs := openShared(t, 2, c.Now)
	failing := newPushHost(t)
	p := httpPusher{hc: &http.Client{Timeout: 10 * time.Second}}
	var br [2]*tilecast.Breaker
	for i := range br {
		br[i] = tilecast.NewBreaker(p, tilecast.BreakerOptions{Failures: 3, Interval: 30 * time.Second, Now: c.Now,
			Shared: dbs[i], SharedRefresh: time.Second})
	}
	a, b := br[0], br[1]
	host := strings.TrimPrefix(failing.URL, "http://")
	if bad, why := b.Degraded(); bad {
		t.Fatalf("B degraded before any failure: %s", why)
	}

	failing.failing.Store(true)
	for range 3 {
		pushTo(a, failing)
	}
	c.Add(2 * time.Second) // past B's refresh: its next Degraded reads the view
	bad, why := b.Degraded()
	if !bad || !strings.Contains(why, host) || !strings.Contains(why, "opened by another instance") ||
		!strings.Contains(why, "next probe 2026-12-03T12:00:30Z") {
		t.Fatalf("B.Degraded() = %v, %q; want A's open host, its probe time", bad, why)
	}
	if bad, why := a.Degraded(); !bad || !strings.Contains(why, host) || !strings.Contains(why, "HTTP 503") {
		t.Errorf("A.Degraded() = %v, %q", bad, why)
	}
	if n := failing.requests.Load(); n != 3 {
		t.Errorf("%d requests, want A's 3 (B's Degraded sends nothing)", n)
	}

	// A's probe succeeds: B stops saying degraded at its next read.
	failing.failing.Store(false)
	c.Add(30 * time.Second)
	if r := pushTo(a, failing); r.Status != 200 {
		t.Fatalf("A's probe: %+v", r)
	}
	if bad, why := a.Degraded(); bad {
		t.Errorf("A degraded after its probe succeeded: %s", why)
	}
	c.Add(2 * time.Second)
	if bad, why := b.Degraded(); bad {
		t.Errorf("B still degraded after A's probe closed the host: %s", why)
	}
}

// tokenEndpoint is a loopback WNS token endpoint: each request gets a new
// token, prefix + its number, valid for an hour.
type tokenEndpoint struct {
	*httptest.Server
	prefix   string
	requests atomic.Int64
	failing  atomic.Bool // answer 503
}

func newTokenEndpoint(t *testing.T, prefix string) *tokenEndpoint {
	e := &tokenEndpoint{prefix: prefix}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("client_secret") != "s3cret" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		n := e.requests.Add(1)
		if e.failing.Load() {
			http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"%s%d","token_type":"bearer","expires_in":3600}`, e.prefix, n)
	}))
	t.Cleanup(e.Close)
	return e
}

func newSharedTokens(t *testing.T, e *tokenEndpoint, db *postgres.DB, now func() time.Time, log *slog.Logger) *wns.TokenSource {
	t.Helper()
	ts, err := wns.NewTokenSource(wns.Credentials{ClientID: "ms-app://s-1-15-2-1", Secret: []byte("s3cret"), TokenURL: e.URL + "/accesstoken.srf"},
		wns.TokenOptions{AllowHTTP: true, Now: now, Logger: log, Shared: db})
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func token(t *testing.T, ts *wns.TokenSource) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := ts.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestWNSTokenSharedAcrossInstances: a token one instance obtained is
// used by the others without a request of theirs; one within its renewal
// margin is not; a token WNS refused (401) is dropped for all, and a
// newer one is never dropped by an instance that was refused the old one.
func TestWNSTokenSharedAcrossInstances(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	dbs := openShared(t, 3, c.Now)
	e := newTokenEndpoint(t, "tok-")
	a := newSharedTokens(t, e, dbs[0], c.Now, nil)
	b := newSharedTokens(t, e, dbs[1], c.Now, nil)

	if tok := token(t, a); tok != "tok-1" {
		t.Fatalf("A: %q, want tok-1", tok)
	}
	if tok := token(t, b); tok != "tok-1" {
		t.Fatalf("B: %q, want A's tok-1", tok)
	}
	if n := e.requests.Load(); n != 1 {
		t.Fatalf("%d token requests, want 1: B should take A's token", n)
	}

	// A is refused tok-1 and gets tok-2; B, refused tok-1 later, takes
	// tok-2 (its drop of tok-1 leaves tok-2) without a request.
	a.Invalidate("tok-1")
	if tok := token(t, a); tok != "tok-2" {
		t.Fatalf("A after 401: %q, want tok-2", tok)
	}
	b.Invalidate("tok-1")
	if tok := token(t, b); tok != "tok-2" {
		t.Fatalf("B after 401: %q, want tok-2 from A", tok)
	}
	if n := e.requests.Load(); n != 2 {
		t.Fatalf("%d token requests, want 2", n)
	}

	// Both refused at once: each converges on a token other than the
	// refused one, with one request each at most.
	a.Invalidate("tok-2")
	b.Invalidate("tok-2")
	var wg sync.WaitGroup
	got := make([]string, 2)
	for i, ts := range []*wns.TokenSource{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tok, err := ts.Token(ctx)
			if err != nil {
				t.Error(err)
			}
			got[i] = tok
		}()
	}
	wg.Wait()
	for i, tok := range got {
		if tok == "" || tok == "tok-2" || tok == "tok-1" {
			t.Fatalf("source %d after both were refused tok-2: %q, want a new token", i, tok)
		}
	}
	if n := e.requests.Load(); n < 3 || n > 4 {
		t.Fatalf("%d token requests, want 3 or 4 (one each at most)", n)
	}
	// A third instance starting now takes the token saved last.
	newest := fmt.Sprintf("tok-%d", e.requests.Load())
	if tok := token(t, newSharedTokens(t, e, dbs[2], c.Now, nil)); tok != got[0] && tok != got[1] {
		t.Fatalf("third instance: %q, want one of %q", tok, got)
	} else if n := e.requests.Load(); fmt.Sprintf("tok-%d", n) != newest {
		t.Fatalf("third instance made a token request (%d in all)", n)
	}

	// Other credentials (another app) do not take this app's token.
	before := e.requests.Load()
	other, err := wns.NewTokenSource(wns.Credentials{ClientID: "ms-app://s-1-15-2-2", Secret: []byte("s3cret"), TokenURL: e.URL + "/accesstoken.srf"},
		wns.TokenOptions{AllowHTTP: true, Now: c.Now, Shared: dbs[2]})
	if err != nil {
		t.Fatal(err)
	}
	if tok := token(t, other); tok != fmt.Sprintf("tok-%d", before+1) {
		t.Fatalf("another client id: %q, want its own token tok-%d", tok, before+1)
	}

	// A token within its renewal margin (the last five minutes of its
	// hour) is not taken: the new instance requests its own.
	c.Add(56 * time.Minute)
	before = e.requests.Load()
	d := newSharedTokens(t, e, dbs[2], c.Now, nil)
	if tok := token(t, d); tok != fmt.Sprintf("tok-%d", before+1) {
		t.Fatalf("instance starting in the renewal margin: %q, want a new token tok-%d", tok, before+1)
	}
}

// TestWNSSharedTokenDuringBackoff: a source whose token request failed
// does not ask the endpoint again before its backoff ends, but takes a
// token another instance got meanwhile from the shared cache.
func TestWNSSharedTokenDuringBackoff(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	dbs := openShared(t, 2, c.Now)
	e := newTokenEndpoint(t, "tok-")
	a, err := wns.NewTokenSource(wns.Credentials{ClientID: "ms-app://s-1-15-2-1", Secret: []byte("s3cret"), TokenURL: e.URL + "/accesstoken.srf"},
		wns.TokenOptions{AllowHTTP: true, Now: c.Now, Shared: dbs[0], RetryBase: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	b := newSharedTokens(t, e, dbs[1], c.Now, nil)

	e.failing.Store(true)
	var te *wns.TokenError
	if _, err := a.Token(t.Context()); !errors.As(err, &te) {
		t.Fatalf("A with the endpoint failing: %v, want a TokenError", err)
	}
	if _, err := a.Token(t.Context()); !errors.As(err, &te) || e.requests.Load() != 1 {
		t.Fatalf("A again, in its backoff: %v, %d requests; want the error and no new request", err, e.requests.Load())
	}
	e.failing.Store(false)
	if tok := token(t, b); tok != "tok-2" {
		t.Fatalf("B: %q, want tok-2", tok)
	}
	c.Add(time.Second) // A's backoff (1 min) runs; no look in the cache for 5 s
	if _, err := a.Token(t.Context()); !errors.As(err, &te) {
		t.Fatalf("A one second later: %v, want the error (no look in the cache yet)", err)
	}
	c.Add(5 * time.Second) // still in A's backoff
	if tok, err := a.Token(t.Context()); err != nil || tok != "tok-2" {
		t.Fatalf("A in its backoff, looking in the cache: %q %v, want B's tok-2", tok, err)
	}
	if n := e.requests.Load(); n != 2 {
		t.Fatalf("%d token requests, want 2 (A's failed one, B's)", n)
	}
	if bad, why := a.Degraded(); bad {
		t.Errorf("A degraded with a token: %s", why)
	}
}

// TestWNSSharedTokenNeverLogged: the token is a bearer secret. Through
// every path that logs (a request, a token taken from the database, a
// refused token dropped, a database that fails) no log line, of the
// sources or of the stores, holds a token value.
func TestWNSSharedTokenNeverLogged(t *testing.T) {
	var buf logtest.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	url := pgtest.New(t)
	open := func() *postgres.DB {
		db, err := postgres.Open(context.Background(), url, postgres.Options{Logger: log, MaxConns: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	dba, dbb := open(), open()
	e := newTokenEndpoint(t, "bearer-6a1f0c-")
	a := newSharedTokens(t, e, dba, nil, log)
	b := newSharedTokens(t, e, dbb, nil, log)
	tokens := []string{token(t, a), token(t, b)}
	a.Invalidate(tokens[0])
	tokens = append(tokens, token(t, a))
	b.Invalidate(tokens[1])
	tokens = append(tokens, token(t, b))
	// B's database goes away: its drop, load and save fail and are
	// logged, and B requests its own token.
	dbb.Close()
	b.Invalidate(tokens[3])
	tokens = append(tokens, token(t, b))

	out := buf.String()
	for _, want := range []string{"wns access token obtained", "wns access token taken from the shared cache",
		"wns shared access token unavailable", "wns access token not shared"} {
		if !strings.Contains(out, want) {
			t.Errorf("log has no %q line; the test does not reach every path that logs:\n%s", want, out)
		}
	}
	if strings.Contains(out, "bearer-6a1f0c-") {
		t.Fatalf("a token value reached the log:\n%s", out)
	}
	if n := e.requests.Load(); n != 3 {
		t.Fatalf("%d token requests, want 3 (A twice, B once its database was gone)", n)
	}
	t.Logf("tokens: %d handed out, %d requested", len(tokens), e.requests.Load())
}

// TestBreakerSharedConcurrent: two Breakers on one database, each pushed
// to by many goroutines at once while the host fails and then recovers
// (for the race detector, and for the end state): once the host answers
// and a probe got through on each, neither refuses it.
func TestBreakerSharedConcurrent(t *testing.T) {
	dbs := openShared(t, 2, nil)
	h := newPushHost(t)
	p := httpPusher{hc: &http.Client{Timeout: 10 * time.Second}}
	var br [2]*tilecast.Breaker
	for i := range br {
		br[i] = tilecast.NewBreaker(p, tilecast.BreakerOptions{Failures: 3, Interval: 50 * time.Millisecond,
			Shared: dbs[i], SharedRefresh: 10 * time.Millisecond})
	}
	host := strings.TrimPrefix(h.URL, "http://")
	h.failing.Store(true)
	var wg sync.WaitGroup
	var refused atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if r := pushTo(br[g%2], h); errors.Is(r.Err, tilecast.ErrCircuitOpen) {
					refused.Add(1)
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if refused.Load() == 0 || !br[0].Open(host) && !br[1].Open(host) {
		t.Fatalf("a failing host: %d pushes refused, open on A %v, on B %v", refused.Load(), br[0].Open(host), br[1].Open(host))
	}
	h.failing.Store(false)
	deadline := time.Now().Add(30 * time.Second)
	for br[0].Open(host) || br[1].Open(host) {
		if time.Now().After(deadline) {
			t.Fatalf("host answers again but the circuit stays open: A %v, B %v", br[0].Open(host), br[1].Open(host))
		}
		for _, b := range br {
			pushTo(b, h)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
