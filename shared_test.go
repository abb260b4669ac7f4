package tilecast_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/pgtest"
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
