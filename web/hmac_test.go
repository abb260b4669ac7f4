package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// signHeader is the Authorization value of a signed request, computed here
// from the scheme's description with crypto/hmac, not with the server's code.
func signHeader(key, method, target string, ts int64, nonce, body string) string {
	return fmt.Sprintf("TC-HMAC-SHA256 ts=%d, nonce=%s, sig=%s", ts, nonce, signHex(key, method, target, ts, nonce, body))
}

func signHex(key, method, target string, ts int64, nonce, body string) string {
	macKey := sha256.Sum256([]byte(key))
	bodySum := sha256.Sum256([]byte(body))
	m := hmac.New(sha256.New, macKey[:])
	fmt.Fprintf(m, "%s\n%s\n%d\n%s\n%x", method, target, ts, nonce, bodySum)
	return hex.EncodeToString(m.Sum(nil))
}

func signedRequest(method, target, body, auth string) *http.Request {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return req
}

// nonces hands out distinct valid nonces.
type nonces struct{ n int }

func (g *nonces) next() string {
	g.n++
	return fmt.Sprintf("nonce-%010d", g.n)
}

// noFailLimit keeps the per-address failure limit out of tests of other things.
func noFailLimit(o *Options) { o.AuthFailRatePerSecond, o.AuthFailBurst = 1e6, 1e6 }

// TestSignatureGolden checks the scheme against a vector computed outside
// Go (sha256sum and openssl dgst -hmac), so the doc comment, the server and
// a client in another language agree.
func TestSignatureGolden(t *testing.T) {
	const (
		body = `{"uri":"https://db3.notify.live.net/throttledthirdparty/01.00/AAF"}`
		post = "206a3c2632d0b3c1c3fd8ee72d796eab109dc9ba6d7a82e69c4acf1ff0e88303"
		get  = "b47f0abfb3c981f0a27bf9eddce53c59589b36e9fd191a26abd375583c3000df"
	)
	ts := t0.Unix() // 1772366400
	if got := signHex(keyOne, "POST", "/v1/channels?user=ann", ts, "nonce-0123456789abcdef", body); got != post {
		t.Fatalf("test signer: %s, want %s", got, post)
	}
	e := newEnv(t, nil)
	for _, tc := range []struct {
		method, target, body, nonce, sig string
		status                           int
	}{
		{"POST", "/v1/channels?user=ann", body, "nonce-0123456789abcdef", post, http.StatusCreated},
		{"GET", "/v1/status", "", "AAAAAAAAAAAAAAAA", get, http.StatusOK},
	} {
		auth := fmt.Sprintf("TC-HMAC-SHA256 ts=%d, nonce=%s, sig=%s", ts, tc.nonce, tc.sig)
		if rec := serve(e, signedRequest(tc.method, tc.target, tc.body, auth)); rec.Code != tc.status {
			t.Errorf("%s %s: %d, want %d (%s)", tc.method, tc.target, rec.Code, tc.status, rec.Body)
		}
	}
	if n := e.store.count(); n != 1 {
		t.Errorf("%d channels, want 1: the handler did not get the verified body", n)
	}
}

func TestSignedAuth(t *testing.T) {
	e := newEnv(t, noFailLimit)
	var g nonces
	now := t0.Unix()
	const other = `{"uri":"https://db3.notify.live.net/throttledthirdparty/01.00/OTHER"}`
	reg := regJSON(goodURI)
	tests := []struct {
		name                string
		method, target, bod string // what is sent
		auth                string // "" sends none
		status              int
		msg                 string // part of the error
	}{
		{"missing", "GET", "/v1/status", "", "", 401, "missing api key"},
		{"get", "GET", "/v1/status", "", signHeader(keyOne, "GET", "/v1/status", now, g.next(), ""), 200, ""},
		{"second key", "GET", "/v1/status", "", signHeader(keyTwo, "GET", "/v1/status", now, g.next(), ""), 200, ""},
		{"query", "GET", "/v1/channels?user=ann", "", signHeader(keyOne, "GET", "/v1/channels?user=ann", now, g.next(), ""), 200, ""},
		{"post", "POST", "/v1/channels", reg, signHeader(keyOne, "POST", "/v1/channels", now, g.next(), reg), 201, ""},
		{"scheme case", "GET", "/v1/status", "", strings.Replace(signHeader(keyOne, "GET", "/v1/status", now, g.next(), ""), "TC-HMAC-SHA256", "tc-hmac-sha256", 1), 200, ""},
		{"uppercase sig", "GET", "/v1/status", "", upperSig(signHeader(keyOne, "GET", "/v1/status", now, g.next(), "")), 200, ""},
		{"ts 300 s behind", "GET", "/v1/status", "", signHeader(keyOne, "GET", "/v1/status", now-300, g.next(), ""), 200, ""},
		{"ts 300 s ahead", "GET", "/v1/status", "", signHeader(keyOne, "GET", "/v1/status", now+300, g.next(), ""), 200, ""},

		{"wrong key", "GET", "/v1/status", "", signHeader("k9-not-a-configured-key-0000000000", "GET", "/v1/status", now, g.next(), ""), 401, "invalid signature"},
		{"key itself as mac key", "GET", "/v1/status", "", rawKeySig(keyOne, "GET", "/v1/status", now, g.next(), ""), 401, "invalid signature"},
		{"wrong body", "POST", "/v1/channels", other, signHeader(keyOne, "POST", "/v1/channels", now, g.next(), reg), 401, "invalid signature"},
		{"body dropped", "POST", "/v1/channels", "", signHeader(keyOne, "POST", "/v1/channels", now, g.next(), reg), 401, "invalid signature"},
		{"wrong method", "DELETE", "/v1/channels/ch0001", "", signHeader(keyOne, "GET", "/v1/channels/ch0001", now, g.next(), ""), 401, "invalid signature"},
		{"wrong query", "GET", "/v1/channels?user=bob", "", signHeader(keyOne, "GET", "/v1/channels?user=ann", now, g.next(), ""), 401, "invalid signature"},
		{"wrong path", "GET", "/v1/channels", "", signHeader(keyOne, "GET", "/v1/status", now, g.next(), ""), 401, "invalid signature"},
		{"ts 301 s behind", "GET", "/v1/status", "", signHeader(keyOne, "GET", "/v1/status", now-301, g.next(), ""), 401, "301 s behind the server's clock"},
		{"ts 301 s ahead", "GET", "/v1/status", "", signHeader(keyOne, "GET", "/v1/status", now+301, g.next(), ""), 401, "301 s ahead of the server's clock"},
		{"ts zero", "GET", "/v1/status", "", signHeader(keyOne, "GET", "/v1/status", 0, g.next(), ""), 401, "1772366400 s behind the server's clock"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(e, signedRequest(tc.method, tc.target, tc.bod, tc.auth))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.status, rec.Body)
			}
			if tc.status != 401 {
				return
			}
			if msg := errorOf(t, rec); !strings.Contains(msg, tc.msg) {
				t.Errorf("error %q, want %q", msg, tc.msg)
			}
			if rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if n := e.store.count(); n != 1 {
		t.Errorf("%d channels, want 1 (only the valid post)", n)
	}
}

func upperSig(auth string) string {
	i := strings.Index(auth, "sig=")
	return auth[:i] + "sig=" + strings.ToUpper(auth[i+4:])
}

// rawKeySig signs with the key itself rather than its digest.
func rawKeySig(key, method, target string, ts int64, nonce, body string) string {
	bodySum := sha256.Sum256([]byte(body))
	m := hmac.New(sha256.New, []byte(key))
	fmt.Fprintf(m, "%s\n%s\n%d\n%s\n%x", method, target, ts, nonce, bodySum)
	return fmt.Sprintf("TC-HMAC-SHA256 ts=%d, nonce=%s, sig=%x", ts, nonce, m.Sum(nil))
}

func TestSignedAuthMalformed(t *testing.T) {
	e := newEnv(t, noFailLimit)
	ts := strconv.FormatInt(t0.Unix(), 10)
	sig := signHex(keyOne, "GET", "/v1/status", t0.Unix(), "nonce-0123456789", "")
	tests := []struct{ name, auth, msg string }{
		{"no parameters", "TC-HMAC-SHA256", "want ts=…, nonce=…, sig=…"},
		{"blank parameters", "TC-HMAC-SHA256 ", "want ts=…, nonce=…, sig=…"},
		{"no ts", "TC-HMAC-SHA256 nonce=nonce-0123456789, sig=" + sig, "no ts"},
		{"no nonce", "TC-HMAC-SHA256 ts=" + ts + ", sig=" + sig, "no nonce"},
		{"no sig", "TC-HMAC-SHA256 ts=" + ts + ", nonce=nonce-0123456789", "no sig"},
		{"ts twice", "TC-HMAC-SHA256 ts=" + ts + ", ts=" + ts + ", nonce=nonce-0123456789, sig=" + sig, "ts given twice"},
		{"nonce twice", "TC-HMAC-SHA256 ts=" + ts + ", nonce=nonce-0123456789, nonce=nonce-0123456789, sig=" + sig, "nonce given twice"},
		{"sig twice", "TC-HMAC-SHA256 ts=" + ts + ", nonce=nonce-0123456789, sig=" + sig + ", sig=" + sig, "sig given twice"},
		{"negative ts", "TC-HMAC-SHA256 ts=-" + ts + ", nonce=nonce-0123456789, sig=" + sig, "ts must be Unix seconds"},
		{"plus ts", "TC-HMAC-SHA256 ts=+" + ts + ", nonce=nonce-0123456789, sig=" + sig, "ts must be Unix seconds"},
		{"ts in ms", "TC-HMAC-SHA256 ts=" + ts + "000, nonce=nonce-0123456789, sig=" + sig, "ts must be Unix seconds"},
		{"ts float", "TC-HMAC-SHA256 ts=" + ts + ".5, nonce=nonce-0123456789, sig=" + sig, "ts must be Unix seconds"},
		{"empty ts", "TC-HMAC-SHA256 ts=, nonce=nonce-0123456789, sig=" + sig, "ts must be Unix seconds"},
		{"quoted ts", `TC-HMAC-SHA256 ts="` + ts + `", nonce=nonce-0123456789, sig=` + sig, "ts must be Unix seconds"},
		{"short nonce", "TC-HMAC-SHA256 ts=" + ts + ", nonce=nonce-012345678, sig=" + sig, "nonce must be 16 to 64"},
		{"long nonce", "TC-HMAC-SHA256 ts=" + ts + ", nonce=" + strings.Repeat("n", 65) + ", sig=" + sig, "nonce must be 16 to 64"},
		{"nonce with dot", "TC-HMAC-SHA256 ts=" + ts + ", nonce=nonce.0123456789, sig=" + sig, "nonce must be 16 to 64"},
		{"nonce with padding", "TC-HMAC-SHA256 ts=" + ts + ", nonce=nonce-0123456789==, sig=" + sig, "nonce must be 16 to 64"},
		{"short sig", "TC-HMAC-SHA256 ts=" + ts + ", nonce=nonce-0123456789, sig=" + sig[1:], "sig must be 64 hex digits"},
		{"long sig", "TC-HMAC-SHA256 ts=" + ts + ", nonce=nonce-0123456789, sig=" + sig + "0", "sig must be 64 hex digits"},
		{"non-hex sig", "TC-HMAC-SHA256 ts=" + ts + ", nonce=nonce-0123456789, sig=g" + sig[1:], "sig must be 64 hex digits"},
		{"base64 sig", "TC-HMAC-SHA256 ts=" + ts + ", nonce=nonce-0123456789, sig=3q2+7w==", "sig must be 64 hex digits"},
		{"unknown parameter", "TC-HMAC-SHA256 ts=" + ts + ", nonce=nonce-0123456789, sig=" + sig + ", key=" + keyOne, `unknown parameter "key"`},
		{"trailing comma", "TC-HMAC-SHA256 ts=" + ts + ", nonce=nonce-0123456789, sig=" + sig + ",", "want ts=…"},
		{"semicolons", "TC-HMAC-SHA256 ts=" + ts + "; nonce=nonce-0123456789; sig=" + sig, "ts must be Unix seconds"},
		{"no equals", "TC-HMAC-SHA256 ts " + ts + ", nonce=nonce-0123456789, sig=" + sig, "want ts=…"},
		{"upper-case name", "TC-HMAC-SHA256 TS=" + ts + ", nonce=nonce-0123456789, sig=" + sig, `unknown parameter "TS"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(e, signedRequest("GET", "/v1/status", "", tc.auth))
			if rec.Code != 401 {
				t.Fatalf("status %d, want 401 (%s)", rec.Code, rec.Body)
			}
			msg := errorOf(t, rec)
			if !strings.HasPrefix(msg, "malformed TC-HMAC-SHA256 authorization: ") || !strings.Contains(msg, tc.msg) {
				t.Errorf("error %q, want %q", msg, tc.msg)
			}
			if strings.Contains(msg, keyOne) || strings.Contains(msg, sig[:16]) {
				t.Errorf("error quotes a value: %q", msg)
			}
			if www := rec.Header().Get("WWW-Authenticate"); www != `TC-HMAC-SHA256 realm="tilecast"` {
				t.Errorf("WWW-Authenticate %q", www)
			}
		})
	}
	// Two Authorization headers: refused, whichever is valid.
	req := signedRequest("GET", "/v1/status", "", "Bearer "+keyOne)
	req.Header.Add("Authorization", "Bearer "+keyTwo)
	if rec := serve(e, req); rec.Code != 401 || !strings.Contains(errorOf(t, rec), "more than one Authorization") {
		t.Errorf("two Authorization headers: %d %s", rec.Code, rec.Body)
	}
}

func TestSignedReplay(t *testing.T) {
	e := newEnv(t, noFailLimit)
	reg := regJSON(goodURI)
	auth := signHeader(keyOne, "POST", "/v1/channels", t0.Unix(), "replay-nonce-0001", reg)
	send := func() *httptest.ResponseRecorder { return serve(e, signedRequest("POST", "/v1/channels", reg, auth)) }
	if rec := send(); rec.Code != http.StatusCreated {
		t.Fatalf("first: %d %s", rec.Code, rec.Body)
	}
	e.clock.Add(299 * time.Second)
	rec := send()
	if rec.Code != 401 || !strings.Contains(errorOf(t, rec), "replayed request") {
		t.Fatalf("replay inside the window: %d %s", rec.Code, rec.Body)
	}
	// Upper-case hex is the same signature.
	if rec := serve(e, signedRequest("POST", "/v1/channels", reg, upperSig(auth))); rec.Code != 401 {
		t.Errorf("replay in upper-case hex: %d", rec.Code)
	}
	// Past the window the ts refuses it, and the cache has forgotten it.
	e.clock.Add(2 * time.Second)
	if rec := send(); rec.Code != 401 || !strings.Contains(errorOf(t, rec), "301 s behind the server's clock") {
		t.Errorf("replay after the window: %d %s", rec.Code, rec.Body)
	}
	fresh := signHeader(keyOne, "GET", "/v1/status", e.clock.Now().Unix(), "replay-nonce-0002", "")
	if rec := serve(e, signedRequest("GET", "/v1/status", "", fresh)); rec.Code != 200 {
		t.Errorf("fresh request: %d", rec.Code)
	}
	if n := e.srv.replay.len(); n != 1 {
		t.Errorf("replay cache holds %d signatures, want 1 (the expired one dropped)", n)
	}
	if n := e.store.count(); n != 1 {
		t.Errorf("%d channels", n)
	}
}

// TestSignedReplayConcurrent sends one signed request from many goroutines:
// exactly one is served.
func TestSignedReplayConcurrent(t *testing.T) {
	e := newEnv(t, noFailLimit)
	auth := signHeader(keyOne, "GET", "/v1/status", t0.Unix(), "concurrent-nonce-1", "")
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			rec := serve(e, signedRequest("GET", "/v1/status", "", auth))
			mu.Lock()
			codes[rec.Code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[200] != 1 || codes[401] != 49 {
		t.Errorf("codes %v, want one 200 and 49 401", codes)
	}
}

func TestReplayCacheFull(t *testing.T) {
	e := newEnv(t, func(o *Options) { noFailLimit(o); o.ReplayCacheSize = 2 })
	var g nonces
	get := func(ts int64) *httptest.ResponseRecorder {
		return serve(e, signedRequest("GET", "/v1/status", "", signHeader(keyOne, "GET", "/v1/status", ts, g.next(), "")))
	}
	now := t0.Unix()
	if a, b := get(now-100), get(now); a.Code != 200 || b.Code != 200 {
		t.Fatalf("filling: %d %d", a.Code, b.Code)
	}
	rec := get(now)
	// The oldest signature (ts now-100) leaves the window in 200 s; it is
	// dropped one second later.
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "201" {
		t.Fatalf("full cache: %d, Retry-After %q; want 503 and 201", rec.Code, rec.Header().Get("Retry-After"))
	}
	if msg := errorOf(t, rec); !strings.Contains(msg, "too many signed requests") {
		t.Errorf("error %q", msg)
	}
	// Bearer keys do not use the cache.
	if rec := e.do(t, "GET", "/v1/status", keyOne, nil); rec.Code != 200 {
		t.Errorf("bearer with the cache full: %d", rec.Code)
	}
	e.clock.Add(201 * time.Second)
	if rec := get(e.clock.Now().Unix()); rec.Code != 200 {
		t.Errorf("after the oldest expired: %d %s", rec.Code, rec.Body)
	}
	if n := e.srv.replay.len(); n != 2 {
		t.Errorf("cache holds %d, want 2", n)
	}
}

// TestSignedRateLimit: signed and bearer requests of a key share its
// bucket, and a signed request refused with 429 may be sent again.
func TestSignedRateLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) { noFailLimit(o); o.RatePerSecond, o.Burst = 2, 3 })
	var g nonces
	signed := func(key string) string {
		return signHeader(key, "GET", "/v1/status", e.clock.Now().Unix(), g.next(), "")
	}
	send := func(auth string) *httptest.ResponseRecorder {
		return serve(e, signedRequest("GET", "/v1/status", "", auth))
	}
	for i, auth := range []string{signed(keyOne), "Bearer " + keyOne, signed(keyOne)} {
		if rec := send(auth); rec.Code != 200 {
			t.Fatalf("request %d within the burst: %d", i+1, rec.Code)
		}
	}
	limited := signed(keyOne)
	rec := send(limited)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("after the burst: %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if msg := errorOf(t, rec); !strings.Contains(msg, "rate limited") {
		t.Errorf("error %q", msg)
	}
	if rec := send(signed(keyTwo)); rec.Code != 200 {
		t.Errorf("other key: %d", rec.Code)
	}
	e.clock.Add(500 * time.Millisecond)
	if rec := send(limited); rec.Code != 200 {
		t.Fatalf("the refused request sent again: %d %s", rec.Code, rec.Body)
	}
	if rec := send(limited); rec.Code != 401 {
		t.Errorf("served request sent again: %d, want 401", rec.Code)
	}
}

// errReader fails after its data, like a client that hangs up mid-body.
type errReader struct{ data io.Reader }

func (r errReader) Read(p []byte) (int, error) {
	n, err := r.data.Read(p)
	if errors.Is(err, io.EOF) {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func TestSignedBody(t *testing.T) {
	e := newEnv(t, noFailLimit)
	var g nonces
	big := regJSON(goodURI, `,"user":"`+strings.Repeat("u", MaxBody)+`"`)
	tests := []struct {
		name   string
		body   io.Reader
		length int64 // Content-Length; -1 unknown (chunked)
		status int
		msg    string
	}{
		{"over the limit", strings.NewReader(big), int64(len(big)), 413, "larger than 16384 bytes"},
		{"over the limit, chunked", strings.NewReader(big), -1, 413, "larger than 16384 bytes"},
		{"exactly the limit", strings.NewReader(strings.Repeat(" ", MaxBody)), MaxBody, 401, "invalid signature"},
		{"broken body", errReader{strings.NewReader("{")}, -1, 400, "could not read the request body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/v1/channels", tc.body)
			req.ContentLength = tc.length
			req.Header.Set("Authorization", signHeader(keyOne, "POST", "/v1/channels", t0.Unix(), g.next(), "x"))
			rec := serve(e, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.status, rec.Body)
			}
			if msg := errorOf(t, rec); !strings.Contains(msg, tc.msg) {
				t.Errorf("error %q, want %q", msg, tc.msg)
			}
		})
	}
	if e.store.count() != 0 {
		t.Error("a refused request stored a channel")
	}
}

func TestParseSignedAuth(t *testing.T) {
	sig := strings.Repeat("ab", 32)
	p, err := parseSignedAuth("ts=01772366400,nonce=" + strings.Repeat("_", 64) + " ,\t sig=" + sig)
	if err != nil {
		t.Fatal(err)
	}
	if p.ts != 1772366400 || p.tsRaw != "01772366400" ||
		p.nonce != strings.Repeat("_", 64) || hex.EncodeToString(p.sig[:]) != sig {
		t.Errorf("parsed %+v", p)
	}
}

func TestReplayCache(t *testing.T) {
	c := newReplayCache(3)
	sig := func(b byte) (s [32]byte) { s[0] = b; return s }
	for i, exp := range []int64{30, 10, 20} {
		if _, res := c.claim(sig(byte(i)), exp, 0); res != claimOK {
			t.Fatalf("claim %d: %v", i, res)
		}
	}
	if _, res := c.claim(sig(0), 99, 0); res != claimSeen {
		t.Errorf("claim again: %v", res)
	}
	if wait, res := c.claim(sig(9), 99, 5); res != claimFull || wait != 6 {
		t.Errorf("full: %d %v, want 6 and full", wait, res)
	}
	c.release(sig(2)) // exp 20, in the middle of the heap
	if _, res := c.claim(sig(9), 99, 5); res != claimOK {
		t.Errorf("after release: %v", res)
	}
	// At 11 the exp-10 entry is gone, the others stay.
	if _, res := c.claim(sig(8), 99, 11); res != claimOK || c.len() != 3 {
		t.Errorf("after expiry: %v, len %d", res, c.len())
	}
	for _, b := range []byte{0, 9, 8} {
		if _, res := c.claim(sig(b), 99, 11); res != claimSeen {
			t.Errorf("sig %d forgotten", b)
		}
	}
	if _, res := c.claim(sig(1), 99, 11); res != claimFull {
		t.Errorf("expired sig 1 after refill: %v, want full", res)
	}
}
