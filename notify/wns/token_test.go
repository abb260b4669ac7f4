package wns_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify/wns"
)

// waitFor polls cond (the machine may be slow: the limit is generous and
// nothing is timed).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTokenRefreshGolden replays the capture of a send whose token had
// expired: 401, one token request (its body byte for byte as wns 0.5.4
// sent it), the same notification again with the new token, delivered —
// one Result, marked TokenRefreshed.
func TestTokenRefreshGolden(t *testing.T) {
	c := loadCapture(t, "toast-401-then-token-refresh")
	first, tokReq, resend := c.Requests[0], c.Requests[1], c.Requests[2]
	f := newFakeWNS(t)
	f.queueTokens(tokenAnswer("STALE", 86400), tokenAnswer("EgAcAQMAAAAALYAAY/c+Huwi3Fv4Ck10UrKNmtxRO6Njk2MgA=", 86400))
	f.queuePushes(answer{status: 401, headers: map[string]string{"WWW-Authenticate": `Bearer error="invalid_request",error_description="Token expired"`}},
		answer{status: 200, headers: map[string]string{"X-WNS-NotificationStatus": "received", "X-WNS-Msg-ID": "1ACE34A9B9F8D7C1", "X-WNS-Debug-Trace": "DB5SCH101051823"}})
	s := newSetup(t, f, nil)
	n := toastNote()
	n.Payload = []byte(first.Body)
	r := s.push(t, f, n)
	if r.Verdict != tilecast.VerdictDelivered || !r.TokenRefreshed || r.Status != 200 || r.Err != nil {
		t.Fatalf("result %+v, want delivered with TokenRefreshed", r)
	}
	if r.MsgID != "1ACE34A9B9F8D7C1" || r.DebugTrace != "DB5SCH101051823" {
		t.Errorf("extras of the second answer: %q %q", r.MsgID, r.DebugTrace)
	}
	reqs := f.requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want token, push, token, push", len(reqs))
	}
	for i, tok := range []bool{true, false, true, false} {
		if reqs[i].isToken != tok {
			t.Fatalf("request %d: token=%v", i, reqs[i].isToken)
		}
	}
	// The token request, as the capture has it.
	if reqs[2].body != tokReq.Body {
		t.Errorf("token body\n got %s\nwant %s", reqs[2].body, tokReq.Body)
	}
	if ct := reqs[2].header.Get("Content-Type"); ct != tokReq.Headers["Content-Type"] {
		t.Errorf("token Content-Type %q", ct)
	}
	// The two pushes: the same body, the stale token, then the new one.
	for i, want := range map[int]struct{ body, auth string }{
		1: {first.Body, first.Headers["Authorization"].(string)},
		3: {resend.Body, resend.Headers["Authorization"].(string)},
	} {
		if reqs[i].body != want.body || reqs[i].header.Get("Authorization") != want.auth {
			t.Errorf("push %d: body %q auth %q, want %q %q", i, reqs[i].body, reqs[i].header.Get("Authorization"), want.body, want.auth)
		}
		if reqs[i].header.Get("X-WNS-Type") != "wns/toast" || reqs[i].query != "token=AwYAAABq7aDo%2bKx1%2f4Lk2Nw5xyz%3d" {
			t.Errorf("push %d: type %q query %q", i, reqs[i].header.Get("X-WNS-Type"), reqs[i].query)
		}
	}
}

// TestOneTokenForConcurrentSends: while the first token request is under
// way, every other send waits for it; none makes its own.
func TestOneTokenForConcurrentSends(t *testing.T) {
	f := newFakeWNS(t)
	release := make(chan struct{})
	a := tokenAnswer("shared", 3600)
	a.hold = release
	f.queueTokens(a)
	s := newSetup(t, f, nil)
	const n = 40
	var wg, started sync.WaitGroup
	results := make([]tilecast.Result, n)
	started.Add(n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			results[i] = s.push(t, f, toastNote())
		}()
	}
	started.Wait()
	waitFor(t, "the token request", func() bool { tok, _ := f.counts(); return tok >= 1 })
	close(release)
	wg.Wait()
	tok, pushes := f.counts()
	if tok != 1 || pushes != n {
		t.Errorf("%d token requests and %d pushes, want 1 and %d", tok, pushes, n)
	}
	for i, r := range results {
		if r.Verdict != tilecast.VerdictDelivered {
			t.Errorf("send %d: %+v", i, r)
		}
	}
	for _, r := range f.requests() {
		if !r.isToken && r.header.Get("Authorization") != "Bearer shared" {
			t.Errorf("push with %q", r.header.Get("Authorization"))
		}
	}
}

// TestTokenRenewedBeforeExpiry: a token is reused until shortly before it
// expires (expires_in given as a string, as in the Entra sample), then
// renewed in the background while sends go on with the old one.
func TestTokenRenewedBeforeExpiry(t *testing.T) {
	f := newFakeWNS(t)
	f.queueTokens(tokenAnswer("first", "600"), tokenAnswer("second", 600))
	s := newSetup(t, f, nil)
	ctx := context.Background()
	tok := func() string {
		v, err := s.tokens.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := tok(); got != "first" {
		t.Fatalf("token %q", got)
	}
	s.clk.Add(7 * time.Minute) // 180 s left: more than the margin (a fifth of 600 s)
	if got := tok(); got != "first" {
		t.Fatalf("token %q before the margin", got)
	}
	if n, _ := f.counts(); n != 1 {
		t.Fatalf("%d token requests before the margin, want 1", n)
	}
	s.clk.Add(90 * time.Second) // 90 s left: renew, but the old one still serves
	if got := tok(); got != "first" {
		t.Fatalf("token %q while renewing, want the old one", got)
	}
	waitFor(t, "the renewed token", func() bool { return tok() == "second" })
	if n, _ := f.counts(); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
	// Past expiry without a renewal, a send waits for a new token.
	f.queueTokens(tokenAnswer("third", 600))
	s.clk.Add(11 * time.Minute)
	if got := tok(); got != "third" {
		t.Errorf("token %q after expiry, want third", got)
	}
}

// TestSecond401FailsAndPausesTransport: a renewed token refused too fails
// that notification with WNS's description and pauses every send (not
// sent, ErrCircuitOpen, no request) until one probe's token works.
func TestSecond401FailsAndPausesTransport(t *testing.T) {
	f := newFakeWNS(t)
	refuse := answer{status: 401, headers: map[string]string{"X-WNS-Error-Description": "Invalid token", "X-WNS-Msg-ID": "X1"}}
	f.queuePushes(refuse, refuse)
	s := newSetup(t, f, nil)
	r := s.push(t, f, toastNote())
	if r.Verdict != tilecast.VerdictFailed || !r.TokenRefreshed || r.Status != 401 {
		t.Fatalf("result %+v, want failed 401 with TokenRefreshed", r)
	}
	if !errors.Is(r.Err, tilecast.ErrCredentials) || !strings.Contains(r.Err.Error(), "Invalid token") {
		t.Errorf("error %v: want ErrCredentials and the description", r.Err)
	}
	tok, pushes := f.counts()
	if tok != 2 || pushes != 2 {
		t.Fatalf("%d token requests, %d pushes; want 2 and 2 (one resend, never more)", tok, pushes)
	}
	if d, reason := s.client.Degraded(); !d || !strings.Contains(reason, "Invalid token") {
		t.Errorf("Degraded() = %v %q", d, reason)
	}
	if !strings.Contains(s.logText(), "pausing all WNS sends") {
		t.Errorf("no log line about the pause:\n%s", s.logText())
	}

	// Every channel waits now: no request, postponed like an open circuit.
	for i := range 3 {
		r := s.push(t, f, toastNote())
		if r.Verdict != tilecast.VerdictRetry || !errors.Is(r.Err, tilecast.ErrCircuitOpen) || r.Status != 0 || r.Wait <= 0 || r.Wait > time.Minute {
			t.Errorf("paused send %d: %+v", i, r)
		}
	}
	if _, p := f.counts(); p != 2 {
		t.Errorf("%d pushes during the pause, want none", p-2)
	}

	// After the pause one probe goes out. Refused again, the pause doubles.
	s.clk.Add(61 * time.Second)
	f.queuePushes(refuse, refuse)
	if r := s.push(t, f, toastNote()); r.Verdict != tilecast.VerdictFailed || !r.TokenRefreshed {
		t.Fatalf("refused probe: %+v", r)
	}
	s.clk.Add(61 * time.Second)
	if r := s.push(t, f, toastNote()); !errors.Is(r.Err, tilecast.ErrCircuitOpen) {
		t.Errorf("61 s into a 2 min pause: %+v", r)
	}
	s.clk.Add(60 * time.Second)

	// The next probe works; sends while it is out still wait.
	release := make(chan struct{})
	f.queuePushes(answer{status: 200, headers: map[string]string{"X-WNS-Status": "received"}, hold: release})
	_, before := f.counts()
	probe := make(chan tilecast.Result, 1)
	go func() { probe <- s.push(t, f, toastNote()) }()
	waitFor(t, "the probe", func() bool { _, p := f.counts(); return p == before+1 })
	if r := s.push(t, f, toastNote()); !errors.Is(r.Err, tilecast.ErrCircuitOpen) {
		t.Errorf("send during the probe: %+v, want not sent", r)
	}
	close(release)
	if r := <-probe; r.Verdict != tilecast.VerdictDelivered {
		t.Fatalf("probe: %+v", r)
	}
	if d, reason := s.client.Degraded(); d {
		t.Errorf("still degraded after a working token: %q", reason)
	}
	if r := s.push(t, f, toastNote()); r.Verdict != tilecast.VerdictDelivered {
		t.Errorf("after recovery: %+v", r)
	}
	if !strings.Contains(s.logText(), "sends resume") {
		t.Errorf("no log line about resuming:\n%s", s.logText())
	}
}

// TestConcurrentRefusalsPauseOnce: sends in flight together (push.concurrency)
// whose renewed tokens are all refused are one incident: the pause is the
// base length, not doubled per refused send, and is logged once; the probe
// after it goes out, and its refusal (a second incident) doubles the pause.
func TestConcurrentRefusalsPauseOnce(t *testing.T) {
	const inFlight = 8
	refuse := answer{status: 401, headers: map[string]string{"X-WNS-Error-Description": "Invalid token"}}
	cases := []struct {
		name   string
		rounds int           // incidents: the first with inFlight sends, then refused probes
		pause  time.Duration // the pause the last incident leaves
	}{
		{name: "one incident", rounds: 1, pause: time.Minute},
		{name: "refused probe", rounds: 2, pause: 2 * time.Minute},
		{name: "two refused probes", rounds: 3, pause: 4 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeWNS(t)
			// Every first attempt waits until all inFlight are out, so all
			// were admitted before the first refusal began the pause.
			all := make(chan struct{})
			var mu sync.Mutex
			first := 0
			f.pushFn = func(seen) answer {
				mu.Lock()
				defer mu.Unlock()
				a := refuse
				if first < inFlight {
					first++
					if first == inFlight {
						close(all)
					}
				}
				a.hold = all
				return a
			}
			s := newSetup(t, f, nil)
			var wg sync.WaitGroup
			results := make([]tilecast.Result, inFlight)
			for i := range inFlight {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = s.push(t, f, toastNote())
				}()
			}
			wg.Wait()
			for i, r := range results {
				if r.Verdict != tilecast.VerdictFailed || !r.TokenRefreshed || r.Status != 401 {
					t.Fatalf("send %d: %+v, want failed 401 with TokenRefreshed", i, r)
				}
			}
			if n := strings.Count(s.logText(), "pausing all WNS sends"); n != 1 {
				t.Errorf("%d pause lines for one incident of %d refused sends, want 1:\n%s", n, inFlight, s.logText())
			}
			pause := time.Minute
			for round := 2; round <= tc.rounds; round++ {
				// The probe after the pause goes out and is refused again.
				s.clk.Add(pause + time.Second)
				_, before := f.counts()
				if r := s.push(t, f, toastNote()); r.Verdict != tilecast.VerdictFailed || !r.TokenRefreshed {
					t.Fatalf("round %d: probe %+v, want failed with TokenRefreshed", round, r)
				}
				if _, after := f.counts(); after != before+2 {
					t.Fatalf("round %d: the probe made %d pushes, want 2", round, after-before)
				}
				pause *= 2
			}
			if pause != tc.pause {
				t.Fatalf("test table: pause %v, want %v", pause, tc.pause)
			}
			if n := strings.Count(s.logText(), "pausing all WNS sends"); n != tc.rounds {
				t.Errorf("%d pause lines for %d incidents:\n%s", n, tc.rounds, s.logText())
			}
			// A second before the pause ends, sends still wait, told to
			// come back when it ends (not later).
			_, before := f.counts()
			s.clk.Add(tc.pause - time.Second)
			r := s.push(t, f, toastNote())
			if !errors.Is(r.Err, tilecast.ErrCircuitOpen) || r.Wait != time.Second {
				t.Errorf("a second before the pause ends: %+v, want not sent, wait 1s", r)
			}
			// When it ends, one send goes out as the probe; it works and
			// sending resumes.
			f.mu.Lock()
			f.pushFn = nil
			f.mu.Unlock()
			s.clk.Add(time.Second)
			if r := s.push(t, f, toastNote()); r.Verdict != tilecast.VerdictDelivered {
				t.Fatalf("the probe at the end of a %v pause: %+v, want delivered", tc.pause, r)
			}
			if _, after := f.counts(); after != before+1 {
				t.Errorf("%d pushes, want the probe's 1", after-before)
			}
			if d, reason := s.client.Degraded(); d {
				t.Errorf("still degraded after the probe's token worked: %q", reason)
			}
		})
	}
}

// TestTokenEndpointDown: a failing token endpoint makes sends wait (not
// sent, no request per send), reports degraded, and is asked again after
// its backoff.
func TestTokenEndpointDown(t *testing.T) {
	f := newFakeWNS(t)
	f.queueTokens(answer{status: 400, body: `{"error":"invalid_client"}`}, answer{status: 503, body: "down for maintenance"})
	s := newSetup(t, f, nil)
	r := s.push(t, f, toastNote())
	var ns *wns.NotSentError
	if r.Verdict != tilecast.VerdictRetry || !errors.As(r.Err, &ns) || !errors.Is(r.Err, tilecast.ErrCircuitOpen) || r.Wait != 2*time.Second {
		t.Fatalf("result %+v, want not sent, retry in 2s", r)
	}
	if !strings.Contains(r.Err.Error(), "http 400: invalid_client") {
		t.Errorf("error %q lacks the endpoint's answer", r.Err)
	}
	if d, reason := s.client.Degraded(); !d || !strings.Contains(reason, "invalid_client") {
		t.Errorf("Degraded() = %v %q", d, reason)
	}
	for range 5 {
		s.push(t, f, toastNote())
	}
	if tok, pushes := f.counts(); tok != 1 || pushes != 0 {
		t.Errorf("%d token requests, %d pushes during the backoff; want 1, 0", tok, pushes)
	}
	s.clk.Add(2 * time.Second)
	r = s.push(t, f, toastNote())
	if !errors.Is(r.Err, tilecast.ErrCircuitOpen) || r.Wait != 4*time.Second || !strings.Contains(r.Err.Error(), "http 503: down for maintenance") {
		t.Errorf("second failure: %+v, want a 4 s backoff", r)
	}
	s.clk.Add(4 * time.Second)
	if r := s.push(t, f, toastNote()); r.Verdict != tilecast.VerdictDelivered {
		t.Errorf("after recovery: %+v", r)
	}
	if d, reason := s.client.Degraded(); d {
		t.Errorf("degraded after recovery: %q", reason)
	}
	log := s.logText()
	if !strings.Contains(log, "wns access token request failed") || !strings.Contains(log, "wns token endpoint recovered") {
		t.Errorf("log lacks the failure and the recovery:\n%s", log)
	}
}

// TestSecretNeverLeaks: neither the client secret nor an access token
// appears in a log line, an error or the degraded reason — not even when
// the token endpoint echoes the request back.
func TestSecretNeverLeaks(t *testing.T) {
	f := newFakeWNS(t)
	const secret = "s3cr3t+with/odd=chars&more"
	escaped := url.QueryEscape(secret)
	f.queueTokens(
		answer{status: 401, body: `{"error":"invalid_client","error_description":"bad secret ` + secret + ` in ` + escaped + `"}`},
		answer{status: 500, body: "echo: client_secret=" + escaped + " raw " + secret},
		tokenAnswer("TOKEN-VALUE-42", 3600),
	)
	s := newSetup(t, f, func(c *wns.Credentials, _ *wns.TokenOptions, _ *wns.ClientOptions) { c.Secret = []byte(secret) })
	var texts []string
	for range 3 {
		r := s.push(t, f, toastNote())
		if r.Err != nil {
			texts = append(texts, r.Err.Error())
		}
		_, reason := s.client.Degraded()
		texts = append(texts, reason)
		s.clk.Add(time.Minute)
	}
	f.queuePushes(answer{status: 401}, answer{status: 401})
	s.clk.Add(time.Hour) // a new token for the refusal below
	if r := s.push(t, f, toastNote()); r.Err != nil {
		texts = append(texts, r.Err.Error())
	}
	_, reason := s.client.Degraded()
	texts = append(texts, reason, s.logText())
	all := strings.Join(texts, "\n")
	for _, bad := range []string{secret, escaped, "TOKEN-VALUE-42", "token-1"} {
		if strings.Contains(all, bad) {
			t.Errorf("%q leaked:\n%s", bad, all)
		}
	}
	if !strings.Contains(all, "[redacted]") || !strings.Contains(all, "invalid_client") {
		t.Errorf("the endpoint's answers are missing from the errors:\n%s", all)
	}
	if tok, _ := f.counts(); tok < 3 {
		t.Errorf("only %d token requests", tok)
	}
}

func TestEntraFlow(t *testing.T) {
	c := wns.Credentials{ClientID: "0f0e0d0c-aaaa-bbbb-cccc-0123456789ab", Secret: []byte("x"), Tenant: "contoso.onmicrosoft.com"}
	if u, scope := c.Endpoint(); u != "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token" || scope != wns.EntraScope {
		t.Errorf("Entra endpoint %s %s", u, scope)
	}
	if u, scope := (wns.Credentials{}).Endpoint(); u != wns.ClassicTokenURL || scope != "notify.windows.com" {
		t.Errorf("classic endpoint %s %s", u, scope)
	}
	f := newFakeWNS(t)
	f.queueTokens(answer{status: 200, body: `{"token_type":"Bearer","expires_in":"86399","ext_expires_in":"86399","access_token":"eyJ0"}`})
	s := newSetup(t, f, func(cr *wns.Credentials, _ *wns.TokenOptions, _ *wns.ClientOptions) {
		cr.ClientID, cr.Tenant = c.ClientID, c.Tenant
	})
	if r := s.push(t, f, toastNote()); r.Verdict != tilecast.VerdictDelivered {
		t.Fatalf("push: %+v", r)
	}
	reqs := f.requests()
	want := "grant_type=client_credentials&client_id=0f0e0d0c-aaaa-bbbb-cccc-0123456789ab&client_secret=FAKE%2Bsecret%2FWith%3DChars&scope=https%3A%2F%2Fwns.windows.com%2F.default"
	if reqs[0].body != want {
		t.Errorf("token body\n got %s\nwant %s", reqs[0].body, want)
	}
	if reqs[1].header.Get("Authorization") != "Bearer eyJ0" {
		t.Errorf("push authorization %q", reqs[1].header.Get("Authorization"))
	}
}

func TestTokenAnswersRefused(t *testing.T) {
	for name, a := range map[string]answer{
		"not json":          {status: 200, body: "<html>"},
		"no token":          {status: 200, body: `{"token_type":"bearer","expires_in":60}`},
		"mac token":         {status: 200, body: `{"access_token":"a","token_type":"mac"}`},
		"header injection":  {status: 200, body: `{"access_token":"a\r\nX: y","token_type":"bearer"}`},
		"redirect":          {status: 307, headers: map[string]string{"Location": "/elsewhere"}},
		"answer over 64KiB": {status: 200, body: `{"access_token":"` + strings.Repeat("a", 70<<10) + `"}`},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeWNS(t)
			f.queueTokens(a)
			s := newSetup(t, f, nil)
			_, err := s.tokens.Token(context.Background())
			var te *wns.TokenError
			if !errors.As(err, &te) {
				t.Fatalf("Token() = %v, want a TokenError", err)
			}
			if tok, _ := f.counts(); tok != 1 {
				t.Errorf("%d token requests (a redirect must not be followed)", tok)
			}
		})
	}
}

func TestNewTokenSourceRefuses(t *testing.T) {
	good := wns.Credentials{ClientID: "ms-app://s-1", Secret: []byte("x")}
	for name, c := range map[string]wns.Credentials{
		"no client id": {Secret: []byte("x")},
		"no secret":    {ClientID: "ms-app://s-1"},
		"http url":     {ClientID: "ms-app://s-1", Secret: []byte("x"), TokenURL: "http://login.example/token"},
		"relative url": {ClientID: "ms-app://s-1", Secret: []byte("x"), TokenURL: "/token"},
	} {
		if _, err := wns.NewTokenSource(c, wns.TokenOptions{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := wns.NewTokenSource(good, wns.TokenOptions{}); err != nil {
		t.Errorf("good credentials: %v", err)
	}
	http := good
	http.TokenURL = "http://127.0.0.1:1/token"
	if _, err := wns.NewTokenSource(http, wns.TokenOptions{AllowHTTP: true}); err != nil {
		t.Errorf("http with AllowHTTP: %v", err)
	}
	if _, err := wns.NewClient(wns.ClientOptions{}); err == nil {
		t.Error("client without a token source")
	}
}

// TestTokenOnlyToWNS: a channel URI off notify.windows.com is refused
// before any token is asked for or any request made.
func TestTokenOnlyToWNS(t *testing.T) {
	f := newFakeWNS(t)
	s := newSetup(t, f, func(_ *wns.Credentials, _ *wns.TokenOptions, o *wns.ClientOptions) { o.AllowedHosts = nil })
	r := s.push(t, f, toastNote())
	if r.Verdict != tilecast.VerdictFailed || !errors.Is(r.Err, tilecast.ErrHostNotAllowed) {
		t.Errorf("loopback channel without AllowedHosts: %+v", r)
	}
	if tok, pushes := f.counts(); tok+pushes != 0 {
		t.Errorf("%d requests made", tok+pushes)
	}
	s2 := newSetup(t, f, nil)
	bad := &tilecast.Notification{Kind: "flip", Payload: []byte("x")}
	if r := s2.client.Push(context.Background(), f.channel(), bad, 0); r.Verdict != tilecast.VerdictFailed {
		t.Errorf("unknown kind: %+v", r)
	}
	if tok, pushes := f.counts(); tok+pushes != 0 {
		t.Errorf("%d requests made for a notification WNS cannot take", tok+pushes)
	}
}

// TestPushHeaders: the ttl argument and the feed's tag reach the wire.
func TestPushHeaders(t *testing.T) {
	f := newFakeWNS(t)
	s := newSetup(t, f, nil)
	n := &tilecast.Notification{Feed: "my-news", Kind: tilecast.KindTile, Payload: []byte(`<tile/>`)}
	if r := s.client.Push(context.Background(), f.channel(), n, 90*time.Second); r.Verdict != tilecast.VerdictDelivered {
		t.Fatalf("%+v", r)
	}
	n = &tilecast.Notification{Feed: "my-news", Kind: tilecast.KindBadge, Payload: []byte(`<badge value="3"/>`)}
	if r := s.client.Push(context.Background(), f.channel(), n, 0); r.Verdict != tilecast.VerdictDelivered {
		t.Fatalf("%+v", r)
	}
	reqs := f.requests()
	tile, badge := reqs[1], reqs[2]
	if tile.header.Get("X-WNS-TTL") != "90" || tile.header.Get("X-WNS-Tag") != wns.Tag("my-news") || tile.header.Get("X-WNS-Type") != "wns/tile" {
		t.Errorf("tile headers %v", tile.header)
	}
	if badge.header.Get("X-WNS-TTL") != "" || badge.header.Get("X-WNS-Tag") != wns.Tag("my-news") || badge.header.Get("X-WNS-Type") != "wns/badge" {
		t.Errorf("badge headers %v", badge.header)
	}
	if tile.header.Get("User-Agent") != "tilecast-test" || tile.header.Get("X-WNS-RequestForStatus") != "true" {
		t.Errorf("headers %v", tile.header)
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := dir + "/" + name
		if err := writeFile(p, content); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := wns.ReadSecret(write("ok", "abc+/=\n"))
	if err != nil || string(got) != "abc+/=" {
		t.Errorf("ReadSecret = %q, %v", got, err)
	}
	for name, content := range map[string]string{"empty": "", "blank": " \n\n", "huge": strings.Repeat("x", 5000)} {
		_, err := wns.ReadSecret(write(name, content))
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "xxxx") {
			t.Errorf("%s: error shows the content: %v", name, err)
		}
	}
	if _, err := wns.ReadSecret(dir); err == nil {
		t.Error("a directory accepted")
	}
	if _, err := wns.ReadSecret(dir + "/missing"); err == nil {
		t.Error("a missing file accepted")
	}
}
