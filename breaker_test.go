package tilecast_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// scriptedPusher answers per host with a fixed Result and counts the
// requests that reached it; block, when set, holds a push until closed.
type scriptedPusher struct {
	mu      sync.Mutex
	answers map[string]tilecast.Result
	calls   map[string]int
	block   chan struct{}
	entered chan struct{}
}

func newScriptedPusher() *scriptedPusher {
	return &scriptedPusher{answers: map[string]tilecast.Result{}, calls: map[string]int{}}
}

func (p *scriptedPusher) set(host string, r tilecast.Result) {
	p.mu.Lock()
	p.answers[host] = r
	p.mu.Unlock()
}

func (p *scriptedPusher) count(host string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[host]
}

func (p *scriptedPusher) Push(_ context.Context, ch *tilecast.Channel, _ *tilecast.Notification, _ time.Duration) tilecast.Result {
	host := ch.URI[len("http://"):]
	host = host[:len(host)-len("/ch")]
	p.mu.Lock()
	p.calls[host]++
	r, ok := p.answers[host]
	block, entered := p.block, p.entered
	p.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if block != nil {
		<-block
	}
	if !ok {
		r = tilecast.Result{Status: 200, Verdict: tilecast.VerdictDelivered}
	}
	return r
}

var (
	netErr   = tilecast.Result{Verdict: tilecast.VerdictRetry, Err: errors.New("connection refused")}
	res503   = tilecast.Result{Status: 503, Verdict: tilecast.VerdictRetry}
	res500   = tilecast.Result{Status: 500, Verdict: tilecast.VerdictRetry}
	resOK    = tilecast.Result{Status: 200, Verdict: tilecast.VerdictDelivered}
	resQFull = tilecast.Result{Status: 200, Verdict: tilecast.VerdictRetry, Notification: "QueueFull"}
	res429   = tilecast.Result{Status: 429, Verdict: tilecast.VerdictRetry, Wait: time.Minute}
	res404   = tilecast.Result{Status: 404, Verdict: tilecast.VerdictGone}
	res412   = tilecast.Result{Status: 412, Verdict: tilecast.VerdictWait}
	// Never sent: the transport was waiting for its token endpoint (it
	// wraps ErrCircuitOpen, as wns.NotSentError does), or refused the
	// push before making a request.
	resNotSent = tilecast.Result{Verdict: tilecast.VerdictRetry, Wait: time.Minute,
		Err: fmt.Errorf("wns: not sent: no access token: %w", tilecast.ErrCircuitOpen)}
	resRefused = tilecast.Result{Verdict: tilecast.VerdictFailed, Err: errors.New("wns: channel host not under notify.windows.com")}
)

func newTestBreaker(p tilecast.Pusher, c *clock) *tilecast.Breaker {
	return tilecast.NewBreaker(p, tilecast.BreakerOptions{Failures: 5, Interval: 30 * time.Second, Now: c.Now})
}

func bpush(b *tilecast.Breaker, host string) tilecast.Result {
	return b.Push(context.Background(), &tilecast.Channel{URI: "http://" + host + "/ch"}, &tilecast.Notification{Kind: tilecast.KindToast}, 0)
}

func TestBreakerOpensOnlyOnHostFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answer   tilecast.Result
		wantOpen bool
	}{
		{"network error", netErr, true},
		{"503", res503, true},
		{"500", res500, true},
		{"200 delivered", resOK, false},
		{"QueueFull is the device's queue, not the host", resQFull, false},
		{"429 carries its own Retry-After", res429, false},
		{"404 expired channel", res404, false},
		{"412 inactive device", res412, false},
		{"not sent (token endpoint down)", resNotSent, false},
		{"refused before a request", resRefused, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
			p := newScriptedPusher()
			p.set("a.test", tc.answer)
			b := newTestBreaker(p, c)
			for range 5 {
				bpush(b, "a.test")
			}
			if b.Open("a.test") != tc.wantOpen {
				t.Fatalf("open = %v after 5 × %s, want %v", b.Open("a.test"), tc.name, tc.wantOpen)
			}
			r := bpush(b, "a.test")
			wantCalls := 6
			if tc.wantOpen {
				wantCalls = 5
				if !errors.Is(r.Err, tilecast.ErrCircuitOpen) || r.Verdict != tilecast.VerdictRetry || r.Wait != 30*time.Second || r.Status != 0 {
					t.Errorf("refused push: %+v, want VerdictRetry, Wait 30s, ErrCircuitOpen", r)
				}
			}
			if got := p.count("a.test"); got != wantCalls {
				t.Errorf("%d requests reached the host, want %d", got, wantCalls)
			}
		})
	}
}

func TestBreakerStreakResetsOnSuccess(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	p := newScriptedPusher()
	b := newTestBreaker(p, c)
	for range 3 {
		p.set("a.test", res503)
		for range 4 {
			bpush(b, "a.test")
		}
		p.set("a.test", resOK)
		bpush(b, "a.test")
	}
	if b.Open("a.test") {
		t.Fatal("4 failures between successes opened the circuit")
	}
}

func TestBreakerProbesOncePerIntervalAndCloses(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	p := newScriptedPusher()
	p.set("down.test", res503)
	b := newTestBreaker(p, c)
	for range 5 {
		bpush(b, "down.test")
	}
	// 10 minutes of pushes every second: one probe per 30 s goes through.
	for i := range 600 {
		c.Add(time.Second)
		r := bpush(b, "down.test")
		if r.Err != nil && errors.Is(r.Err, tilecast.ErrCircuitOpen) && (r.Wait <= 0 || r.Wait > 30*time.Second) {
			t.Fatalf("push %d: wait %v outside (0, 30s]", i, r.Wait)
		}
	}
	if got := p.count("down.test") - 5; got != 20 {
		t.Errorf("%d probes in 10 min, want 20 (one per 30 s)", got)
	}
	// The host recovers: the next probe closes the circuit and all flows.
	p.set("down.test", resOK)
	c.Add(30 * time.Second)
	if r := bpush(b, "down.test"); r.Verdict != tilecast.VerdictDelivered {
		t.Fatalf("probe after recovery: %+v", r)
	}
	before := p.count("down.test")
	for range 10 {
		bpush(b, "down.test")
	}
	if b.Open("down.test") || p.count("down.test") != before+10 {
		t.Errorf("closed circuit still refusing: open %v, %d of 10 sent", b.Open("down.test"), p.count("down.test")-before)
	}
}

func TestBreakerHostsAreIndependent(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	p := newScriptedPusher()
	p.set("down.test", netErr)
	b := newTestBreaker(p, c)
	for range 20 {
		bpush(b, "down.test")
		if r := bpush(b, "up.test"); r.Verdict != tilecast.VerdictDelivered {
			t.Fatalf("healthy host refused: %+v", r)
		}
	}
	if !b.Open("down.test") || b.Open("up.test") {
		t.Errorf("open: down %v up %v", b.Open("down.test"), b.Open("up.test"))
	}
	if p.count("up.test") != 20 || p.count("down.test") != 5 {
		t.Errorf("requests: up %d (want 20), down %d (want 5)", p.count("up.test"), p.count("down.test"))
	}
}

// A probe the transport did not send (its token endpoint still down)
// tells nothing about the host: the circuit stays open, and the next probe
// goes out at its time.
func TestBreakerProbeNotSentKeepsCircuit(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	p := newScriptedPusher()
	p.set("down.test", res503)
	b := newTestBreaker(p, c)
	for range 5 {
		bpush(b, "down.test")
	}
	p.set("down.test", resNotSent)
	c.Add(31 * time.Second)
	if r := bpush(b, "down.test"); !tilecast.NotSent(r) {
		t.Fatalf("probe: %+v, want the transport's not-sent result", r)
	}
	if !b.Open("down.test") {
		t.Fatal("a probe that was not sent closed the circuit")
	}
	if r := bpush(b, "down.test"); !errors.Is(r.Err, tilecast.ErrCircuitOpen) || p.count("down.test") != 6 {
		t.Fatalf("push right after: %+v, %d requests; want refused by the breaker", r, p.count("down.test"))
	}
	p.set("down.test", resOK)
	c.Add(31 * time.Second)
	if r := bpush(b, "down.test"); r.Verdict != tilecast.VerdictDelivered || b.Open("down.test") {
		t.Fatalf("next probe: %+v, open %v", r, b.Open("down.test"))
	}
}

func TestBreakerOneProbeInFlight(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	p := newScriptedPusher()
	p.set("down.test", res503)
	b := newTestBreaker(p, c)
	for range 5 {
		bpush(b, "down.test")
	}
	c.Add(31 * time.Second)
	p.mu.Lock()
	p.block, p.entered = make(chan struct{}), make(chan struct{}, 1)
	p.mu.Unlock()
	done := make(chan tilecast.Result)
	go func() { done <- bpush(b, "down.test") }()
	<-p.entered // the probe is at the host
	// The probe hangs past its interval: others are still refused.
	c.Add(45 * time.Second)
	for range 10 {
		if r := bpush(b, "down.test"); !errors.Is(r.Err, tilecast.ErrCircuitOpen) || r.Wait <= 0 {
			t.Fatalf("push during a probe: %+v", r)
		}
	}
	close(p.block)
	<-done
	if got := p.count("down.test"); got != 6 {
		t.Errorf("%d requests, want 5 + 1 probe", got)
	}
}

// An open circuit is a push service failing, which /healthz reports as
// degraded: the host, its last failure and the next probe are in the
// reason, and it clears when a probe succeeds. A failure streak that has
// not opened the circuit is no degradation yet.
func TestBreakerDegradedWhileOpen(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	p := newScriptedPusher()
	p.set("down.test", res503)
	b := newTestBreaker(p, c)
	for range 4 {
		bpush(b, "down.test")
	}
	if bad, why := b.Degraded(); bad {
		t.Fatalf("degraded with the circuit still closed: %s", why)
	}
	bpush(b, "down.test")
	bad, why := b.Degraded()
	if !bad {
		t.Fatal("not degraded with the circuit open")
	}
	for _, want := range []string{"down.test", "5 failures in a row", "HTTP 503", "next probe 2026-03-01T00:00:30Z"} {
		if !strings.Contains(why, want) {
			t.Errorf("reason %q lacks %q", why, want)
		}
	}
	// The probe time passes with nothing sent: still open, probe due.
	c.Add(31 * time.Second)
	if bad, why := b.Degraded(); !bad || !strings.Contains(why, "probe due") {
		t.Errorf("Degraded() = %v, %q; want open with the probe due", bad, why)
	}
	// A probe that fails keeps it, with a new probe time.
	bpush(b, "down.test")
	if bad, why := b.Degraded(); !bad || !strings.Contains(why, "next probe 2026-03-01T00:01:01Z") {
		t.Errorf("after a failed probe: %v, %q", bad, why)
	}
	// The host answers the next probe: closed, not degraded.
	p.set("down.test", resOK)
	c.Add(31 * time.Second)
	if r := bpush(b, "down.test"); r.Verdict != tilecast.VerdictDelivered {
		t.Fatalf("probe: %+v", r)
	}
	if bad, why := b.Degraded(); bad {
		t.Errorf("still degraded after a probe succeeded: %s", why)
	}
}

// A network error's text is in the reason without the channel's URI (a
// capability to push to the device, and /healthz is open to anyone).
func TestBreakerDegradedNetworkErrorHidesURI(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	p := newScriptedPusher()
	p.set("down.test", tilecast.Result{Verdict: tilecast.VerdictRetry, Err: fmt.Errorf("mpns: %w",
		&url.Error{Op: "Post", URL: "http://down.test/ch?token=secret-channel-token", Err: errors.New("connection refused")})})
	b := newTestBreaker(p, c)
	for range 5 {
		bpush(b, "down.test")
	}
	bad, why := b.Degraded()
	if !bad || !strings.Contains(why, "no answer: connection refused") || strings.Contains(why, "secret-channel-token") {
		t.Errorf("Degraded() = %v, %q; want the error without the URI", bad, why)
	}
}

// A thousand failing hosts make a short reason: the first few by name
// and a count of the rest.
func TestBreakerDegradedReasonIsBounded(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	p := newScriptedPusher()
	b := newTestBreaker(p, c)
	for i := range 1000 {
		host := fmt.Sprintf("h%04d.test", i)
		p.set(host, res503)
		for range 5 {
			bpush(b, host)
		}
	}
	bad, why := b.Degraded()
	if !bad || !strings.HasPrefix(why, "1000 push hosts failing") || !strings.Contains(why, "h0000.test (") ||
		!strings.Contains(why, "h0002.test (") || strings.Contains(why, "h0003.test") || !strings.HasSuffix(why, "; and 997 more") {
		t.Errorf("Degraded() = %v, %q", bad, why)
	}
	if len(why) > 600 {
		t.Errorf("reason of %d bytes for 1000 hosts: %q", len(why), why)
	}
}
