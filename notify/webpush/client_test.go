package webpush_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/netguard"
	"github.com/tilecast/tilecast/notify/webpush"
)

// pushService is a loopback push service whose next answer the test sets.
// It records every request it gets.
type pushService struct {
	*httptest.Server
	mu      sync.Mutex
	status  int
	header  http.Header
	body    string
	hold    chan struct{} // when set, requests wait for it to close
	hits    atomic.Int64
	last    *http.Request
	lastRaw []byte
}

func newPushService(t *testing.T) *pushService {
	s := &pushService{status: http.StatusCreated}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.last, s.lastRaw = r, body
		status, header, text, hold := s.status, s.header, s.body, s.hold
		// Counted once its answer and hold are decided: a test that
		// waits for a hit and then changes them does not race with it.
		s.hits.Add(1)
		s.mu.Unlock()
		if hold != nil {
			<-hold
		}
		for k, v := range header {
			w.Header()[k] = v
		}
		if status == http.StatusCreated {
			w.Header().Set("Location", "/message/1")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, text)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *pushService) answer(status int, body string, header ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body, s.header = status, body, http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		s.header.Set(header[i], header[i+1])
	}
}

func (s *pushService) lastRequest() (*http.Request, []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.lastRaw
}

func newClient(t *testing.T, clk *clock, edit ...func(*webpush.ClientOptions)) *webpush.Client {
	t.Helper()
	opts := webpush.ClientOptions{VAPID: keysSigner(t, clk.Now), AllowPrivate: true, Now: clk.Now, Timeout: 30 * time.Second}
	for _, e := range edit {
		e(&opts)
	}
	c, err := webpush.NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func toastN() *tilecast.Notification {
	return &tilecast.Notification{ID: 1, Feed: "news", Kind: tilecast.KindToast, Payload: []byte(`{"kind":"toast","title":"Hi"}`)}
}

// TestClassifyOverHTTP sends a real push to a loopback service for every
// row of protocols.md §4.2 and checks the Result.
func TestClassifyOverHTTP(t *testing.T) {
	svc := newPushService(t)
	clk := newClock()
	c := newClient(t, clk)
	b := newBrowser(t, svc.URL+"/push/abc")
	longBody := strings.Repeat("x", 5000)
	for _, tc := range []struct {
		name    string
		status  int
		body    string
		header  []string
		verdict tilecast.Verdict
		wait    time.Duration
		is      error  // errors.Is target, nil: no error
		errHas  string // in the error text
	}{
		{"201 created", 201, "", nil, tilecast.VerdictDelivered, 0, nil, ""},
		{"200 (Safari)", 200, "", nil, tilecast.VerdictDelivered, 0, nil, ""},
		{"202 receipt", 202, "", nil, tilecast.VerdictDelivered, 0, nil, ""},
		{"404 not found", 404, "", nil, tilecast.VerdictGone, 0, tilecast.ErrChannelExpired, "http 404"},
		{"410 gone", 410, `{"errno":106}`, nil, tilecast.VerdictGone, 0, tilecast.ErrChannelExpired, "unsubscribed"},
		{"400 bad request", 400, `{"code":400,"errno":110,"message":"Invalid crypto headers"}`, nil, tilecast.VerdictFailed, 0, nil, `errno":110`},
		{"400 body capped", 400, longBody, nil, tilecast.VerdictFailed, 0, nil, strings.Repeat("x", 500)},
		{"401 VAPID", 401, "", nil, tilecast.VerdictFailed, 0, webpush.ErrVAPID, "vapid_private_key_file"},
		{"403 Apple", 403, `{"reason":"BadJwtToken"}`, nil, tilecast.VerdictFailed, 0, webpush.ErrVAPID, "BadJwtToken"},
		{"413 too large", 413, "Payload too large\x00\n", nil, tilecast.VerdictFailed, 0, nil, "payload too large: Payload too large"},
		{"429 seconds", 429, "", []string{"Retry-After", "120"}, tilecast.VerdictRetry, 2 * time.Minute, nil, "too many requests"},
		{"429 date", 429, "", []string{"Retry-After", clk.Now().Add(90 * time.Second).Format(http.TimeFormat)}, tilecast.VerdictRetry, 90 * time.Second, nil, ""},
		{"429 huge", 429, "", []string{"Retry-After", "999999999"}, tilecast.VerdictRetry, webpush.MaxRetryAfter, nil, ""},
		{"429 none", 429, "", nil, tilecast.VerdictRetry, 0, nil, ""},
		{"500", 500, "", nil, tilecast.VerdictRetry, 0, nil, "push service error"},
		{"502", 502, "", nil, tilecast.VerdictRetry, 0, nil, ""},
		{"503 retry-after", 503, "", []string{"Retry-After", "30"}, tilecast.VerdictRetry, 30 * time.Second, nil, ""},
		{"301 not followed", 301, "", []string{"Location", "https://elsewhere.example/"}, tilecast.VerdictFailed, 0, nil, "redirect"},
		{"418 other 4xx", 418, "teapot", nil, tilecast.VerdictFailed, 0, nil, "client error: teapot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc.answer(tc.status, tc.body, tc.header...)
			r := c.PushSubscription(context.Background(), b.sub, toastN(), time.Hour)
			if r.Status != tc.status || r.Verdict != tc.verdict || r.Wait != tc.wait {
				t.Fatalf("status %d verdict %v wait %s (err %v), want %d %v %s", r.Status, r.Verdict, r.Wait, r.Err, tc.status, tc.verdict, tc.wait)
			}
			if tc.verdict == tilecast.VerdictDelivered {
				if r.Err != nil {
					t.Errorf("delivered with error %v", r.Err)
				}
				return
			}
			if r.Err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(r.Err, tc.is) {
				t.Errorf("error %v does not match %v", r.Err, tc.is)
			}
			if !strings.Contains(r.Err.Error(), tc.errHas) {
				t.Errorf("error %q lacks %q", r.Err, tc.errHas)
			}
			if len(r.Err.Error()) > 700 {
				t.Errorf("error of %d bytes: the service's body is not capped", len(r.Err.Error()))
			}
			if strings.ContainsAny(r.Err.Error(), "\x00\n") {
				t.Errorf("error %q carries control characters", r.Err)
			}
		})
	}
	// A 401 run here did not reach 10 in a row: nothing is paused.
	if bad, why := c.Degraded(); bad {
		t.Errorf("degraded after scattered refusals: %s", why)
	}
}

func TestClientNetworkErrors(t *testing.T) {
	clk := newClock()
	svc := newPushService(t)
	b := newBrowser(t, svc.URL+"/push/abc")
	svc.Close()
	r := newClient(t, clk).PushSubscription(context.Background(), b.sub, toastN(), time.Hour)
	if r.Verdict != tilecast.VerdictRetry || r.Status != 0 || r.Err == nil {
		t.Errorf("closed service: %v %d %v, want a retry", r.Verdict, r.Status, r.Err)
	}
	// Without allow_private the guard refuses loopback: retrying cannot help.
	svc2 := newPushService(t)
	guarded := newClient(t, clk, func(o *webpush.ClientOptions) { o.AllowPrivate = false })
	r = guarded.PushSubscription(context.Background(), newBrowser(t, svc2.URL+"/p").sub, toastN(), time.Hour)
	var pe *netguard.ProhibitedError
	if r.Verdict != tilecast.VerdictFailed || !errors.As(r.Err, &pe) {
		t.Errorf("guarded loopback: %v %v, want failed with a ProhibitedError", r.Verdict, r.Err)
	}
	if svc2.hits.Load() != 0 {
		t.Error("the guarded push reached the service")
	}
	// A payload that cannot be sent fails before any request.
	big := toastN()
	big.Payload = make([]byte, webpush.MaxPlaintext+1)
	r = newClient(t, clk).PushSubscription(context.Background(), newBrowser(t, svc2.URL+"/p").sub, big, time.Hour)
	if r.Verdict != tilecast.VerdictFailed || !errors.Is(r.Err, tilecast.ErrPayloadTooLarge) {
		t.Errorf("too large: %v %v", r.Verdict, r.Err)
	}
}

// TestClientRequest checks what Push puts on the wire: TTL from the
// remaining time to live (the default when none), urgency per kind,
// config and feed, topic for tiles, the channel's subscription.
func TestClientRequest(t *testing.T) {
	svc := newPushService(t)
	clk := newClock()
	b := newBrowser(t, svc.URL+"/push/abc")
	c := newClient(t, clk, func(o *webpush.ClientOptions) {
		o.UrgencyTile = webpush.UrgencyVeryLow
		o.FeedUrgency = func(feed string) string {
			if feed == "alerts" {
				return webpush.UrgencyHigh
			}
			return ""
		}
		o.DefaultTTL = 6 * time.Hour
	})
	ch := b.sub.Channel()
	ch.ID = "ch1"
	if ch.URI != b.sub.Endpoint || ch.Transport != tilecast.TransportWebPush || ch.Keys == nil || &ch.Keys.Auth[0] == &b.sub.Auth[0] {
		t.Fatalf("Subscription.Channel() = %+v", ch)
	}
	tile := &tilecast.Notification{Feed: "news", Kind: tilecast.KindTile, Payload: webpush.BadgePayload(4)}
	alert := &tilecast.Notification{Feed: "alerts", Kind: tilecast.KindToast, Payload: []byte(`{"kind":"toast","title":"!"}`)}
	for _, tc := range []struct {
		n                    *tilecast.Notification
		ttl                  time.Duration
		ttlH, urgency, topic string
	}{
		{toastN(), 0, "21600", "normal", ""},
		{toastN(), 5*time.Minute + 30*time.Second, "330", "normal", ""},
		{tile, time.Hour, "3600", "very-low", "news"},
		{alert, time.Hour, "3600", "high", ""},
	} {
		r := c.Push(context.Background(), &ch, tc.n, tc.ttl)
		if r.Verdict != tilecast.VerdictDelivered {
			t.Fatalf("push: %v %v", r.Verdict, r.Err)
		}
		req, body := svc.lastRequest()
		h := req.Header
		if h.Get("TTL") != tc.ttlH || h.Get("Urgency") != tc.urgency || h.Get("Topic") != tc.topic {
			t.Errorf("%s %s: TTL %q Urgency %q Topic %q, want %s %s %q", tc.n.Feed, tc.n.Kind, h.Get("TTL"), h.Get("Urgency"), h.Get("Topic"), tc.ttlH, tc.urgency, tc.topic)
		}
		if got := b.decrypt(t, body); string(got) != string(tc.n.Payload) {
			t.Errorf("service got %q", got)
		}
		if _, claims := vapidClaims(t, h.Get("Authorization")); claims["aud"] != svc.URL {
			t.Errorf("aud %v, want %s", claims["aud"], svc.URL)
		}
	}
	hits := svc.hits.Load()
	mpns := &tilecast.Channel{ID: "ch2", URI: svc.URL + "/push/x", Transport: tilecast.TransportMPNS}
	if r := c.Push(context.Background(), mpns, toastN(), 0); r.Verdict != tilecast.VerdictFailed || !strings.Contains(r.Err.Error(), "no subscription keys") {
		t.Errorf("channel without keys: %v %v", r.Verdict, r.Err)
	}
	// A subscription past its expirationTime is gone without a request.
	expired := ch
	expired.Expires = clk.Now()
	if r := c.Push(context.Background(), &expired, toastN(), 0); r.Verdict != tilecast.VerdictGone || !errors.Is(r.Err, tilecast.ErrChannelExpired) {
		t.Errorf("expired subscription: %v %v", r.Verdict, r.Err)
	}
	later := ch
	later.Expires = clk.Now().Add(time.Minute)
	if r := c.Push(context.Background(), &later, toastN(), 0); r.Verdict != tilecast.VerdictDelivered {
		t.Errorf("subscription expiring later: %v %v", r.Verdict, r.Err)
	}
	if got := svc.hits.Load() - hits; got != 1 {
		t.Errorf("%d requests for one sendable channel", got)
	}
	if _, err := webpush.NewClient(webpush.ClientOptions{}); err == nil {
		t.Error("NewClient without a signer")
	}
	if _, err := webpush.NewClient(webpush.ClientOptions{VAPID: keysSigner(t, nil), UrgencyTile: "soon"}); err == nil {
		t.Error("NewClient with urgency_tile soon")
	}
}

// TestVAPIDRefusalsPause: a run of 401/403 from one push service, across
// channels, pauses sending to it (retry with a wait, no request) and
// reports degraded; the pause doubles while the probe is refused, and
// the first accepted push ends it.
func TestVAPIDRefusalsPause(t *testing.T) {
	svc := newPushService(t)
	other := newPushService(t)
	clk := newClock()
	c := newClient(t, clk)
	sub := func(i int) webpush.Subscription { return newBrowser(t, fmt.Sprintf("%s/push/%d", svc.URL, i)).sub }
	push := func(s webpush.Subscription) tilecast.Result {
		return c.PushSubscription(context.Background(), s, toastN(), time.Hour)
	}

	// Nine refusals, an acceptance, nine more: never ten in a row.
	for round := range 2 {
		svc.answer(403, `{"reason":"BadJwtToken"}`)
		for i := range 9 {
			if r := push(sub(i)); r.Verdict != tilecast.VerdictFailed || !errors.Is(r.Err, webpush.ErrVAPID) {
				t.Fatalf("round %d refusal %d: %v %v", round, i, r.Verdict, r.Err)
			}
		}
		svc.answer(201, "")
		if round == 0 {
			if r := push(sub(99)); r.Verdict != tilecast.VerdictDelivered {
				t.Fatalf("acceptance: %v", r.Verdict)
			}
		}
	}
	if bad, _ := c.Degraded(); bad {
		t.Fatal("degraded without ten refusals in a row")
	}

	// The tenth in a row (401 this time) pauses the service.
	svc.answer(401, "")
	if r := push(sub(10)); r.Verdict != tilecast.VerdictFailed || !errors.Is(r.Err, webpush.ErrVAPID) {
		t.Fatalf("tenth refusal: %v %v", r.Verdict, r.Err)
	}
	bad, why := c.Degraded()
	if !bad || !strings.Contains(why, svc.URL) || !strings.Contains(why, "10 times in a row") || !strings.Contains(why, "http 401") {
		t.Fatalf("Degraded() = %v, %q", bad, why)
	}
	hits := svc.hits.Load()
	r := push(sub(11))
	if r.Verdict != tilecast.VerdictRetry || r.Wait != time.Minute || !errors.Is(r.Err, webpush.ErrPaused) || !strings.Contains(r.Err.Error(), "paused") {
		t.Fatalf("push while paused: %v wait %s %v", r.Verdict, r.Wait, r.Err)
	}
	if svc.hits.Load() != hits {
		t.Error("a push reached the paused service")
	}
	// Another push service is not affected.
	if r := c.PushSubscription(context.Background(), newBrowser(t, other.URL+"/p").sub, toastN(), time.Hour); r.Verdict != tilecast.VerdictDelivered {
		t.Errorf("other service: %v %v", r.Verdict, r.Err)
	}

	// After the pause one probe goes out; refused again, the pause doubles.
	clk.Advance(time.Minute)
	if r := push(sub(12)); r.Verdict != tilecast.VerdictFailed || svc.hits.Load() != hits+1 {
		t.Fatalf("probe: %v, hits %d", r.Verdict, svc.hits.Load()-hits)
	}
	if r := push(sub(13)); r.Verdict != tilecast.VerdictRetry || r.Wait != 2*time.Minute {
		t.Fatalf("after a refused probe: %v wait %s, want a 2 min pause", r.Verdict, r.Wait)
	}
	if bad, _ := c.Degraded(); !bad {
		t.Fatal("not degraded while paused again")
	}

	// While a probe is out, the other pushes wait for its answer.
	clk.Advance(2 * time.Minute)
	svc.answer(201, "")
	hold := make(chan struct{})
	svc.mu.Lock()
	svc.hold = hold
	svc.mu.Unlock()
	probe := make(chan tilecast.Result, 1)
	go func() { probe <- push(sub(14)) }()
	for svc.hits.Load() != hits+2 {
		time.Sleep(time.Millisecond) // the probe has reached the service
	}
	if r := push(sub(15)); r.Verdict != tilecast.VerdictRetry || !errors.Is(r.Err, webpush.ErrPaused) {
		t.Errorf("push beside the probe: %v %v", r.Verdict, r.Err)
	}
	close(hold)
	svc.mu.Lock()
	svc.hold = nil
	svc.mu.Unlock()
	if r := <-probe; r.Verdict != tilecast.VerdictDelivered {
		t.Fatalf("accepted probe: %v %v", r.Verdict, r.Err)
	}
	// Recovered: not degraded, pushes flow, and the count starts over.
	if bad, why := c.Degraded(); bad {
		t.Fatalf("still degraded after an accepted push: %s", why)
	}
	if r := push(sub(16)); r.Verdict != tilecast.VerdictDelivered {
		t.Errorf("after recovery: %v %v", r.Verdict, r.Err)
	}
	svc.answer(403, "")
	if r := push(sub(17)); r.Verdict != tilecast.VerdictFailed {
		t.Errorf("one refusal after recovery: %v", r.Verdict)
	}
	if r := push(sub(18)); r.Verdict != tilecast.VerdictFailed {
		t.Errorf("one refusal after recovery paused at once: %v", r.Verdict)
	}
}

// TestVAPIDRefusalsPauseAService: the refusals of the hosts that
// ClientOptions.Service puts into one push service count in one run,
// and the pause stops them all; without Service each origin is a service
// of its own and the same refusals pause nothing.
func TestVAPIDRefusalsPauseAService(t *testing.T) {
	for _, grouped := range []bool{true, false} {
		t.Run(fmt.Sprintf("grouped=%v", grouped), func(t *testing.T) {
			hostA, hostB := newPushService(t), newPushService(t)
			clk := newClock()
			c := newClient(t, clk, func(o *webpush.ClientOptions) {
				if grouped {
					o.Service = func(origin string) string {
						if origin == hostA.URL || origin == hostB.URL {
							return "edge"
						}
						return ""
					}
				}
			})
			push := func(svc *pushService, i int) tilecast.Result {
				b := newBrowser(t, fmt.Sprintf("%s/push/%d", svc.URL, i))
				return c.PushSubscription(context.Background(), b.sub, toastN(), time.Hour)
			}
			hostA.answer(403, "")
			hostB.answer(401, "")
			// Five refusals on each host, alternating: ten in a row for
			// the service, five for each origin.
			for i := range webpush.DefaultPauseAfter {
				svc := hostA
				if i%2 == 1 {
					svc = hostB
				}
				if r := push(svc, i); r.Verdict != tilecast.VerdictFailed || !errors.Is(r.Err, webpush.ErrVAPID) {
					t.Fatalf("refusal %d: %v %v", i, r.Verdict, r.Err)
				}
			}
			bad, why := c.Degraded()
			if bad != grouped {
				t.Fatalf("Degraded() = %v, %q; want %v", bad, why, grouped)
			}
			hitsA, hitsB := hostA.hits.Load(), hostB.hits.Load()
			for _, svc := range []*pushService{hostA, hostB} {
				r := push(svc, 99)
				if paused := errors.Is(r.Err, webpush.ErrPaused); paused != grouped {
					t.Errorf("push to %s after the run: %v %v, paused %v, want %v", svc.URL, r.Verdict, r.Err, paused, grouped)
				}
			}
			if grouped {
				if hostA.hits.Load() != hitsA || hostB.hits.Load() != hitsB {
					t.Error("a push reached a host of the paused service")
				}
				if !strings.Contains(why, "web push service edge refused") || strings.Contains(why, hostA.URL) {
					t.Errorf("Degraded() names %q, want the service", why)
				}
			}
		})
	}
}

// TestProbeReleasedWithoutAnswer: a probe that gets no answer (a 503)
// does not keep the service paused forever; the next push probes.
func TestProbeReleasedWithoutAnswer(t *testing.T) {
	svc := newPushService(t)
	clk := newClock()
	c := newClient(t, clk, func(o *webpush.ClientOptions) { o.PauseAfter = 2 })
	b := newBrowser(t, svc.URL+"/push/x")
	push := func() tilecast.Result { return c.PushSubscription(context.Background(), b.sub, toastN(), time.Hour) }
	svc.answer(403, "")
	push()
	push()
	if bad, _ := c.Degraded(); !bad {
		t.Fatal("PauseAfter 2 did not pause")
	}
	clk.Advance(time.Minute)
	svc.answer(503, "")
	if r := push(); r.Verdict != tilecast.VerdictRetry || r.Status != 503 {
		t.Fatalf("probe: %v %d", r.Verdict, r.Status)
	}
	svc.answer(201, "")
	if r := push(); r.Verdict != tilecast.VerdictDelivered {
		t.Fatalf("next probe: %v %v", r.Verdict, r.Err)
	}
	if bad, _ := c.Degraded(); bad {
		t.Error("still degraded")
	}
}

// holdWith makes the requests that arrive from now on wait until hold is
// closed (nil: answer at once); requests already waiting keep their own.
func (s *pushService) holdWith(hold chan struct{}) {
	s.mu.Lock()
	s.hold = hold
	s.mu.Unlock()
}

// waitHits waits until the service has got n requests.
func (s *pushService) waitHits(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.hits.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("service got %d requests, want %d", s.hits.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestVAPIDRefusalBurstPausesPauseMin: with push.concurrency pushes in
// flight to a service that refuses them all, their refusals arrive
// together after the tenth has paused the service. They count in the run
// but do not lengthen the pause: it is PauseMin, and only the probe's
// refusal doubles it.
func TestVAPIDRefusalBurstPausesPauseMin(t *testing.T) {
	for _, tc := range []struct {
		name     string
		inFlight int
	}{
		{"exactly PauseAfter", webpush.DefaultPauseAfter},
		{"push.concurrency default", 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newPushService(t)
			clk := newClock()
			c := newClient(t, clk, func(o *webpush.ClientOptions) { o.Concurrency = tc.inFlight })
			sub := func(i int) webpush.Subscription { return newBrowser(t, fmt.Sprintf("%s/push/%d", svc.URL, i)).sub }
			push := func(s webpush.Subscription) tilecast.Result {
				return c.PushSubscription(context.Background(), s, toastN(), time.Hour)
			}
			svc.answer(403, "")
			// Every push is admitted before any answer is recorded: all are
			// in flight when the pause begins.
			hold := make(chan struct{})
			svc.holdWith(hold)
			subs := make([]webpush.Subscription, tc.inFlight)
			for i := range subs {
				subs[i] = sub(i)
			}
			results := make(chan tilecast.Result, tc.inFlight)
			for _, s := range subs {
				go func() { results <- push(s) }()
			}
			svc.waitHits(t, int64(tc.inFlight))
			svc.holdWith(nil)
			close(hold)
			for range tc.inFlight {
				if r := <-results; r.Verdict != tilecast.VerdictFailed || !errors.Is(r.Err, webpush.ErrVAPID) {
					t.Errorf("in-flight push: %v %v, want a VAPID refusal", r.Verdict, r.Err)
				}
			}
			bad, why := c.Degraded()
			if want := fmt.Sprintf("%d times in a row", tc.inFlight); !bad || !strings.Contains(why, want) {
				t.Fatalf("Degraded() = %v, %q; want %q", bad, why, want)
			}
			if r := push(sub(100)); r.Verdict != tilecast.VerdictRetry || r.Wait != webpush.DefaultPauseMin {
				t.Fatalf("after %d refusals in flight: %v wait %s, want a pause of %s", tc.inFlight, r.Verdict, r.Wait, webpush.DefaultPauseMin)
			}
			// The probe's refusal is news: the pause doubles.
			clk.Advance(webpush.DefaultPauseMin)
			hits := svc.hits.Load()
			if r := push(sub(101)); r.Verdict != tilecast.VerdictFailed || svc.hits.Load() != hits+1 {
				t.Fatalf("probe: %v, %d requests", r.Verdict, svc.hits.Load()-hits)
			}
			if r := push(sub(102)); r.Verdict != tilecast.VerdictRetry || r.Wait != 2*webpush.DefaultPauseMin {
				t.Fatalf("after the refused probe: %v wait %s, want %s", r.Verdict, r.Wait, 2*webpush.DefaultPauseMin)
			}
		})
	}
}

// TestLateAnswerBesideProbe: a push sent before the pause whose answer
// comes while the probe is out neither lengthens the pause (a refusal)
// nor lets a second probe out (an answer that says nothing about the
// authorization); the probe's own refusal doubles the pause once.
func TestLateAnswerBesideProbe(t *testing.T) {
	for _, tc := range []struct {
		name string
		late int // the status the push sent before the pause gets
	}{
		{"late refusal", 403},
		{"late 503", 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newPushService(t)
			clk := newClock()
			c := newClient(t, clk)
			sub := func(i int) webpush.Subscription { return newBrowser(t, fmt.Sprintf("%s/push/%d", svc.URL, i)).sub }
			push := func(s webpush.Subscription) tilecast.Result {
				return c.PushSubscription(context.Background(), s, toastN(), time.Hour)
			}
			// The late push reaches the service first and is held there.
			svc.answer(tc.late, "")
			holdLate := make(chan struct{})
			svc.holdWith(holdLate)
			late := make(chan tilecast.Result, 1)
			lateSub := sub(0)
			go func() { late <- push(lateSub) }()
			svc.waitHits(t, 1)
			// Ten refusals in a row pause the service.
			svc.holdWith(nil)
			svc.answer(403, "")
			for i := range webpush.DefaultPauseAfter {
				if r := push(sub(1 + i)); r.Verdict != tilecast.VerdictFailed {
					t.Fatalf("refusal %d: %v %v", i, r.Verdict, r.Err)
				}
			}
			if bad, _ := c.Degraded(); !bad {
				t.Fatal("ten refusals did not pause")
			}
			// The probe goes out after the pause and is held there too.
			clk.Advance(webpush.DefaultPauseMin)
			holdProbe := make(chan struct{})
			svc.holdWith(holdProbe)
			probe := make(chan tilecast.Result, 1)
			probeSub := sub(50)
			go func() { probe <- push(probeSub) }()
			svc.waitHits(t, int64(2+webpush.DefaultPauseAfter))
			svc.holdWith(nil)
			svc.answer(201, "")
			// The late answer comes in.
			close(holdLate)
			if r := <-late; r.Status != tc.late {
				t.Fatalf("late push: status %d, want %d", r.Status, tc.late)
			}
			// The probe is still out: others wait, without a request.
			hits := svc.hits.Load()
			if r := push(sub(60)); r.Verdict != tilecast.VerdictRetry || !errors.Is(r.Err, webpush.ErrPaused) {
				t.Errorf("push beside the probe after the late answer: %v %v, want paused", r.Verdict, r.Err)
			}
			if got := svc.hits.Load() - hits; got != 0 {
				t.Errorf("%d requests beside the probe", got)
			}
			close(holdProbe)
			if r := <-probe; r.Status != 403 {
				t.Fatalf("probe: status %d, want 403", r.Status)
			}
			if r := push(sub(61)); r.Verdict != tilecast.VerdictRetry || r.Wait != 2*webpush.DefaultPauseMin {
				t.Fatalf("after the refused probe: %v wait %s, want %s", r.Verdict, r.Wait, 2*webpush.DefaultPauseMin)
			}
		})
	}
}
