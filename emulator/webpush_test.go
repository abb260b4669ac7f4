package emulator_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/notify/webpush"
)

// The sender in these tests is tilecast's notify/webpush: the emulator's
// checks and decryption are its own code (webpush.go), so the two meet
// only on the wire. Malformed requests are made by changing a good one.

// wpSender signs with a fresh VAPID key.
type wpSender struct {
	priv   *ecdsa.PrivateKey
	key    *webpush.VAPIDKey
	signer *webpush.Signer
	now    func() time.Time
}

func newSender(t *testing.T, now func() time.Time) *wpSender {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d, err := priv.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	key, err := webpush.ParseVAPIDKey([]byte(base64.RawURLEncoding.EncodeToString(d)))
	if err != nil {
		t.Fatal(err)
	}
	if now == nil {
		now = time.Now
	}
	signer, err := webpush.NewSigner(key, "mailto:ops@example.com", webpush.SignerOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return &wpSender{priv: priv, key: key, signer: signer, now: now}
}

// token signs claims with the sender's key: for tokens tilecast would
// never make.
func (s *wpSender) token(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	if key == nil {
		key = s.priv
	}
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return "vapid t=" + tok + ", k=" + s.key.PublicKey()
}

func createBrowser(t *testing.T, srvURL string, body map[string]any) (emulator.Browser, []byte) {
	t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	body["transport"] = "webpush"
	b, _ := json.Marshal(body)
	resp, err := http.Post(srvURL+"/channels", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create browser: %d %s", resp.StatusCode, raw)
	}
	var br emulator.Browser
	if err := json.Unmarshal(raw, &br); err != nil {
		t.Fatal(err)
	}
	return br, raw
}

func subscriptionOf(t *testing.T, br emulator.Browser) webpush.Subscription {
	t.Helper()
	doc, err := json.Marshal(br.Subscription)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := webpush.ParseSubscription(doc, webpush.ParseOptions{AllowLoopbackHTTP: true})
	if err != nil {
		t.Fatalf("the emulator's subscription does not parse as a browser's: %v\n%s", err, doc)
	}
	return sub
}

// wpPush builds a good push with tilecast's request builder, lets edit
// change it, and sends it.
func (s *wpSender) push(t *testing.T, sub webpush.Subscription, kind tilecast.Kind, plain string, ttl time.Duration, opts webpush.RequestOptions, edit ...func(*http.Request)) (*http.Response, string) {
	t.Helper()
	opts.VAPID = s.signer
	req, err := webpush.NewRequest(sub, kind, []byte(plain), ttl, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range edit {
		e(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func mustBrowser(t *testing.T, e *emulator.Emulator, token string) emulator.BrowserState {
	t.Helper()
	s, ok := e.Browser(token)
	if !ok {
		t.Fatalf("browser %s unknown", token)
	}
	return s
}

func TestWebPushCreateBrowser(t *testing.T) {
	e, srv := start(t, emulator.Options{})
	br, raw := createBrowser(t, srv.URL, map[string]any{"name": "anna"})
	// The subscription is exactly the browser's toJSON() form.
	var doc struct {
		Subscription map[string]any `json:"subscription"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	sub := doc.Subscription
	if len(sub) != 3 || sub["expirationTime"] != nil || sub["endpoint"] != srv.URL+"/webpush/"+br.Token {
		t.Errorf("subscription %v", sub)
	}
	if _, ok := sub["expirationTime"]; !ok {
		t.Error("expirationTime missing, want null")
	}
	keys, _ := sub["keys"].(map[string]any)
	if len(keys) != 2 || keys["p256dh"] == nil || keys["auth"] == nil {
		t.Errorf("keys %v", keys)
	}
	if strings.Contains(string(raw), "priv") {
		t.Errorf("the answer mentions a private key: %s", raw)
	}
	parsed := subscriptionOf(t, br)
	if len(parsed.Auth) != 16 || br.Name != "anna" || br.Behaviour != emulator.Healthy || br.Transport != "webpush" {
		t.Errorf("browser %+v", br)
	}
	if other, _ := createBrowser(t, srv.URL, nil); other.Subscription.Keys.P256DH == br.Subscription.Keys.P256DH {
		t.Error("two browsers share a key")
	}

	// GET /channels/{token} and GET /browsers show it; /channels lists MPNS phones only.
	resp, err := http.Get(srv.URL + "/channels/" + br.Token)
	if err != nil {
		t.Fatal(err)
	}
	var st emulator.BrowserState
	_ = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.Token != br.Token || st.Badge != -1 || st.Tile != nil {
		t.Errorf("GET /channels/{token}: %+v", st)
	}
	resp, err = http.Get(srv.URL + "/browsers")
	if err != nil {
		t.Fatal(err)
	}
	var all []emulator.BrowserState
	_ = json.NewDecoder(resp.Body).Decode(&all)
	resp.Body.Close()
	if len(all) != 2 || all[0].Token != br.Token || len(e.Channels()) != 0 {
		t.Errorf("GET /browsers: %d browsers, first %s; %d phones", len(all), all[0].Token, len(e.Channels()))
	}

	for _, bad := range []map[string]any{
		{"transport": "webpush", "behaviour": "queuefull"},
		{"transport": "webpush", "queuefull_n": 2},
		{"transport": "webpush", "application_server_key": "not-a-key"},
		{"transport": "webpush", "flaky_p": 2},
	} {
		if resp, out := postJSON(t, srv.URL+"/channels", bad); resp.StatusCode != http.StatusBadRequest || out["error"] == nil {
			t.Errorf("POST /channels %v: %d %v", bad, resp.StatusCode, out)
		}
	}
}

func TestWebPushDeliver(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	e, srv := start(t, emulator.Options{Now: clk.Now})
	br, _ := createBrowser(t, srv.URL, map[string]any{"name": "anna"})
	sub := subscriptionOf(t, br)
	s := newSender(t, clk.Now)

	toast, _ := webpush.ToastPayload(webpush.Toast{Title: "Daily News", Body: "Storm & <flood> watch", URL: "/item?id=1", Tag: "item-1"})
	resp, body := s.push(t, sub, tilecast.KindToast, string(toast), 3600*time.Second, webpush.RequestOptions{})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("toast: %d %s", resp.StatusCode, body)
	}
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, srv.URL+"/webpush/"+br.Token+"/messages/") || resp.Header.Get("TTL") != "3600" {
		t.Errorf("Location %q TTL %q", loc, resp.Header.Get("TTL"))
	}
	st := mustBrowser(t, e, br.Token)
	if len(st.Notifications) != 1 || st.Notifications[0].Title != "Daily News" || st.Notifications[0].Body != "Storm & <flood> watch" ||
		st.Notifications[0].URL != "/item?id=1" {
		t.Fatalf("notifications %+v", st.Notifications)
	}
	l := st.Last
	if l == nil || l.TTL != 3600 || l.Urgency != "normal" || l.Subject != "mailto:ops@example.com" || l.Audience != srv.URL ||
		l.Plaintext != string(toast) || !l.Expires.Equal(clk.Now().Add(12*time.Hour)) {
		t.Errorf("last push %+v", l)
	}

	// A tile sets the badge and the tile content; a badge keeps the content.
	seven := 7
	tile, _ := webpush.TilePayload(webpush.Tile{Count: &seven, Title: "News", Body: "Three new items", Image: "https://cdn.example.org/t.png"})
	if resp, body := s.push(t, sub, tilecast.KindTile, string(tile), time.Hour, webpush.RequestOptions{Topic: "news"}); resp.StatusCode != 201 {
		t.Fatalf("tile: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.push(t, sub, tilecast.KindBadge, string(webpush.BadgePayload(2)), time.Hour, webpush.RequestOptions{Topic: "news"}); resp.StatusCode != 201 {
		t.Fatalf("badge: %d %s", resp.StatusCode, body)
	}
	st = mustBrowser(t, e, br.Token)
	if st.Badge != 2 || st.Tile == nil || st.Tile.Title != "News" || st.Tile.Body != "Three new items" || st.Tile.Image != "https://cdn.example.org/t.png" {
		t.Errorf("badge %d tile %+v", st.Badge, st.Tile)
	}
	if st.Last.Urgency != "low" || st.Last.Topic != "news" {
		t.Errorf("badge push seen as %+v", st.Last)
	}

	// A toast with the same tag replaces the shown one; other data is data.
	again, _ := webpush.ToastPayload(webpush.Toast{Title: "Daily News", Body: "updated", Tag: "item-1"})
	s.push(t, sub, tilecast.KindToast, string(again), time.Hour, webpush.RequestOptions{})
	s.push(t, sub, tilecast.KindRaw, "app data, not JSON", time.Hour, webpush.RequestOptions{})
	st = mustBrowser(t, e, br.Token)
	if len(st.Notifications) != 1 || st.Notifications[0].Body != "updated" {
		t.Errorf("tag replacement: %+v", st.Notifications)
	}
	if len(st.Data) != 1 || st.Data[0].Body != "app data, not JSON" {
		t.Errorf("data %+v", st.Data)
	}
	if st.Counts.Total != 5 || st.Counts.Delivered != 5 || st.Counts.Rejected != 0 {
		t.Errorf("counts %+v", st.Counts)
	}
}

// TestWebPushChecks: every check refuses with its status, says why, and
// is recorded on the browser.
func TestWebPushChecks(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	e, srv := start(t, emulator.Options{Now: clk.Now})
	s := newSender(t, clk.Now)
	br, _ := createBrowser(t, srv.URL, nil)
	sub := subscriptionOf(t, br)
	pinned, _ := createBrowser(t, srv.URL, map[string]any{"application_server_key": newSender(t, clk.Now).key.PublicKey()})
	other := subscriptionOf(t, pinned)
	other.Endpoint = sub.Endpoint // encrypted for other keys, sent to br
	now := clk.Now()
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"aud": srv.URL, "exp": now.Add(time.Hour).Unix(), "sub": "mailto:ops@example.com"}
		edit(c)
		return c
	}
	setAuth := func(v string) func(*http.Request) { return func(r *http.Request) { r.Header.Set("Authorization", v) } }
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	toast := `{"kind":"toast","title":"x"}`
	for _, tc := range []struct {
		name   string
		to     webpush.Subscription
		plain  string
		edit   func(*http.Request)
		status int
		reason string
	}{
		{"no TTL", sub, toast, func(r *http.Request) { r.Header.Del("TTL") }, 400, "missing TTL"},
		{"TTL not seconds", sub, toast, func(r *http.Request) { r.Header.Set("TTL", "1h") }, 400, "TTL"},
		{"bad urgency", sub, toast, func(r *http.Request) { r.Header.Set("Urgency", "urgent") }, 400, "Urgency"},
		{"bad topic", sub, toast, func(r *http.Request) { r.Header.Set("Topic", "feed/news") }, 400, "Topic"},
		{"long topic", sub, toast, func(r *http.Request) { r.Header.Set("Topic", strings.Repeat("t", 33)) }, 400, "Topic"},
		{"body over 4096", sub, toast, func(r *http.Request) {
			b := make([]byte, 4097)
			r.Body, r.ContentLength, r.GetBody = io.NopCloser(bytes.NewReader(b)), 4097, nil
		}, 413, "4097 bytes"},
		{"no Authorization", sub, toast, func(r *http.Request) { r.Header.Del("Authorization") }, 401, "missing Authorization"},
		{"legacy WebPush scheme", sub, toast, setAuth("WebPush eyJ.eyJ.sig"), 401, "want vapid"},
		{"no k", sub, toast, func(r *http.Request) {
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", a[:strings.Index(a, ", k=")])
		}, 401, "needs t="},
		{"k not a point", sub, toast, func(r *http.Request) {
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", a[:strings.Index(a, ", k=")]+", k=AAAA")
		}, 401, "vapid k"},
		{"signed by another key", sub, toast, setAuth(s.token(t, jwt.SigningMethodES256, stranger, claims(func(jwt.MapClaims) {}))), 403, "BadJwtToken"},
		{"HS256", sub, toast, setAuth(s.token(t, jwt.SigningMethodHS256, []byte("secret"), claims(func(jwt.MapClaims) {}))), 403, "BadJwtToken"},
		{"aud another origin", sub, toast, setAuth(s.token(t, jwt.SigningMethodES256, nil, claims(func(c jwt.MapClaims) { c["aud"] = "https://fcm.googleapis.com" }))), 403, "aud"},
		{"aud with path", sub, toast, setAuth(s.token(t, jwt.SigningMethodES256, nil, claims(func(c jwt.MapClaims) { c["aud"] = srv.URL + "/webpush" }))), 403, "aud"},
		{"exp past", sub, toast, setAuth(s.token(t, jwt.SigningMethodES256, nil, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Second).Unix() }))), 403, "ExpiredJwtToken"},
		{"exp 25 h", sub, toast, setAuth(s.token(t, jwt.SigningMethodES256, nil, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(25 * time.Hour).Unix() }))), 403, "more than 24 h"},
		{"no exp", sub, toast, setAuth(s.token(t, jwt.SigningMethodES256, nil, claims(func(c jwt.MapClaims) { delete(c, "exp") }))), 403, "exp missing"},
		{"no sub", sub, toast, setAuth(s.token(t, jwt.SigningMethodES256, nil, claims(func(c jwt.MapClaims) { delete(c, "sub") }))), 403, "sub"},
		{"mailto twice", sub, toast, setAuth(s.token(t, jwt.SigningMethodES256, nil, claims(func(c jwt.MapClaims) { c["sub"] = "mailto:mailto:ops@example.com" }))), 403, "sub"},
		{"aesgcm encoding", sub, toast, func(r *http.Request) { r.Header.Set("Content-Encoding", "aesgcm") }, 400, "Content-Encoding"},
		{"damaged body", sub, toast, func(r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			b[len(b)-1] ^= 1
			r.Body, r.GetBody = io.NopCloser(bytes.NewReader(b)), nil
		}, 400, "cannot decrypt"},
		{"other keys", other, toast, nil, 400, "cannot decrypt"},
		{"tile count a string", sub, `{"kind":"tile","count":"7"}`, nil, 400, "count"},
		{"tile count negative", sub, `{"kind":"tile","count":-1}`, nil, 400, "count"},
		{"toast member unknown", sub, `{"kind":"toast","title":"x","text1":"y"}`, nil, 400, "the worker reads kind, title, body"},
		{"toast title a number", sub, `{"kind":"toast","title":5}`, nil, 400, "title: want a string"},
		{"toast with no text", sub, `{"kind":"toast","url":"/x"}`, nil, 400, "shows nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := mustBrowser(t, e, br.Token).Counts.Rejected
			edit := []func(*http.Request){}
			if tc.edit != nil {
				edit = append(edit, tc.edit)
			}
			resp, body := s.push(t, tc.to, tilecast.KindToast, tc.plain, time.Hour, webpush.RequestOptions{}, edit...)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.reason) {
				t.Fatalf("%d %s, want %d with %q", resp.StatusCode, body, tc.status, tc.reason)
			}
			var answer map[string]any
			if err := json.Unmarshal([]byte(body), &answer); err != nil || answer["code"] != float64(tc.status) {
				t.Errorf("answer %s is not the JSON error", body)
			}
			st := mustBrowser(t, e, br.Token)
			if st.Counts.Rejected != before+1 || st.Rejected[0].Status != tc.status || len(st.Notifications) != 0 {
				t.Errorf("not recorded: %+v, rejected %+v", st.Counts, st.Rejected)
			}
		})
	}

	// A subscription made with a key refuses pushes signed with another.
	resp, body := s.push(t, subscriptionOf(t, pinned), tilecast.KindToast, toast, time.Hour, webpush.RequestOptions{})
	if resp.StatusCode != 403 || !strings.Contains(body, "applicationServerKey") {
		t.Errorf("pinned key: %d %s", resp.StatusCode, body)
	}
	// Method and unknown subscription.
	resp, err := http.Get(sub.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	gone := sub
	gone.Endpoint = srv.URL + "/webpush/never-issued"
	if resp, _ := s.push(t, gone, tilecast.KindToast, toast, time.Hour, webpush.RequestOptions{}); resp.StatusCode != 404 {
		t.Errorf("unknown subscription: %d", resp.StatusCode)
	}
	// After all that, a good push still lands.
	if resp, body := s.push(t, sub, tilecast.KindToast, toast, 0, webpush.RequestOptions{}); resp.StatusCode != 201 {
		t.Errorf("good push: %d %s", resp.StatusCode, body)
	}
}

func TestWebPushBehaviours(t *testing.T) {
	e, srv := start(t, emulator.Options{})
	s := newSender(t, nil)
	toast := `{"kind":"toast","title":"x"}`
	for _, tc := range []struct {
		behaviour  string
		params     map[string]any
		status     int
		retryAfter string
		count      func(emulator.BrowserCounts) int
	}{
		{emulator.Unsubscribed, nil, 410, "", func(c emulator.BrowserCounts) int { return c.Unsubscribed }},
		{emulator.Expired, nil, 404, "", func(c emulator.BrowserCounts) int { return c.Expired }},
		{emulator.RateLimited, nil, 429, "30", func(c emulator.BrowserCounts) int { return c.RateLimited }},
		{emulator.RateLimited, map[string]any{"retry_after_s": 5}, 429, "5", func(c emulator.BrowserCounts) int { return c.RateLimited }},
		{emulator.Flaky, map[string]any{"flaky_p": 1}, 503, "", func(c emulator.BrowserCounts) int { return c.Unavailable }},
		{emulator.Slow, map[string]any{"slow_ms": 20}, 201, "", func(c emulator.BrowserCounts) int { return c.Delivered }},
		{emulator.Healthy, nil, 201, "", func(c emulator.BrowserCounts) int { return c.Delivered }},
	} {
		t.Run(tc.behaviour, func(t *testing.T) {
			body := map[string]any{"behaviour": tc.behaviour}
			for k, v := range tc.params {
				body[k] = v
			}
			br, _ := createBrowser(t, srv.URL, body)
			resp, text := s.push(t, subscriptionOf(t, br), tilecast.KindToast, toast, time.Hour, webpush.RequestOptions{})
			if resp.StatusCode != tc.status || resp.Header.Get("Retry-After") != tc.retryAfter {
				t.Fatalf("%d Retry-After %q (%s), want %d %q", resp.StatusCode, resp.Header.Get("Retry-After"), text, tc.status, tc.retryAfter)
			}
			st := mustBrowser(t, e, br.Token)
			if tc.count(st.Counts) != 1 || st.Counts.Total != 1 {
				t.Errorf("counts %+v", st.Counts)
			}
			if (tc.status == 201) != (len(st.Notifications) == 1) {
				t.Errorf("%d answer, %d notifications", tc.status, len(st.Notifications))
			}
		})
	}

	// The behaviour API switches a browser, and /expire works as for phones.
	br, _ := createBrowser(t, srv.URL, nil)
	if resp, out := postJSON(t, srv.URL+"/channels/"+br.Token+"/behaviour", map[string]any{"behaviour": "ratelimited", "retry_after_s": 9}); resp.StatusCode != 200 || out["behaviour"] != "ratelimited" {
		t.Fatalf("behaviour: %d %v", resp.StatusCode, out)
	}
	if resp, _ := s.push(t, subscriptionOf(t, br), tilecast.KindToast, toast, time.Hour, webpush.RequestOptions{}); resp.Header.Get("Retry-After") != "9" {
		t.Errorf("Retry-After %q after switching", resp.Header.Get("Retry-After"))
	}
	if resp, out := postJSON(t, srv.URL+"/channels/"+br.Token+"/expire", nil); resp.StatusCode != 200 || out["behaviour"] != "expired" {
		t.Errorf("expire: %d %v", resp.StatusCode, out)
	}
	if resp, _ := postJSON(t, srv.URL+"/channels/"+br.Token+"/behaviour", map[string]any{"behaviour": "queuefull"}); resp.StatusCode != 400 {
		t.Errorf("MPNS behaviour on a browser: %d", resp.StatusCode)
	}
}

// TestWebPushOfflineTopicTTL: an offline browser's messages wait; a newer
// one with the same Topic replaces a waiting one, TTL 0 is never held, a
// TTL that runs out drops the message, and going online delivers the
// rest in order.
func TestWebPushOfflineTopicTTL(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	e, srv := start(t, emulator.Options{Now: clk.Now})
	s := newSender(t, clk.Now)
	br, _ := createBrowser(t, srv.URL, map[string]any{"behaviour": "offline"})
	sub := subscriptionOf(t, br)
	tile := func(n int) string { return string(webpush.BadgePayload(n)) }
	for _, p := range []struct {
		kind  tilecast.Kind
		plain string
		ttl   time.Duration
		topic string
	}{
		{tilecast.KindTile, tile(1), time.Hour, "news"},
		{tilecast.KindToast, `{"kind":"toast","title":"short-lived"}`, time.Minute, ""},
		{tilecast.KindTile, tile(2), time.Hour, "news"},    // replaces tile(1)
		{tilecast.KindTile, tile(5), time.Hour, "weather"}, // another topic: kept
		{tilecast.KindToast, `{"kind":"toast","title":"now or never"}`, 0, ""},
		{tilecast.KindToast, `{"kind":"toast","title":"lasting"}`, time.Hour, ""},
	} {
		resp, body := s.push(t, sub, p.kind, p.plain, p.ttl, webpush.RequestOptions{Topic: p.topic})
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("offline push: %d %s", resp.StatusCode, body)
		}
	}
	st := mustBrowser(t, e, br.Token)
	if len(st.Held) != 4 || st.Counts.Held != 6 || st.Counts.Replaced != 1 || st.Counts.Dropped != 1 || st.Badge != -1 || len(st.Notifications) != 0 {
		t.Fatalf("held %+v counts %+v badge %d", st.Held, st.Counts, st.Badge)
	}
	if st.Held[0].Kind != "toast" || st.Held[1].Topic != "news" || st.Held[2].Topic != "weather" {
		t.Errorf("held in the wrong order: %+v", st.Held)
	}

	clk.Set(clk.Now().Add(2 * time.Minute)) // the one-minute toast runs out
	if err := e.SetBrowserBehaviour(br.Token, emulator.Healthy); err != nil {
		t.Fatal(err)
	}
	st = mustBrowser(t, e, br.Token)
	if st.Badge != 5 || len(st.Held) != 0 || st.Counts.Dropped != 2 || st.Counts.Delivered != 3 {
		t.Errorf("after going online: badge %d held %d counts %+v", st.Badge, len(st.Held), st.Counts)
	}
	if len(st.Notifications) != 1 || st.Notifications[0].Title != "lasting" {
		t.Errorf("notifications %+v", st.Notifications)
	}
}

// TestPhoneStateBrowsers: /state.json carries the browsers for the page.
func TestPhoneStateBrowsers(t *testing.T) {
	_, srv := start(t, emulator.Options{})
	br, _ := createBrowser(t, srv.URL, map[string]any{"name": "laptop"})
	s := newSender(t, nil)
	s.push(t, subscriptionOf(t, br), tilecast.KindTile, string(webpush.BadgePayload(4)), time.Hour, webpush.RequestOptions{})
	resp, err := http.Get(srv.URL + "/state.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Phones   []json.RawMessage       `json:"phones"`
		Browsers []emulator.BrowserState `json:"browsers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if len(st.Phones) != 0 || len(st.Browsers) != 1 || st.Browsers[0].Name != "laptop" || st.Browsers[0].Badge != 4 {
		t.Errorf("state %+v", st)
	}
	if fmt.Sprint(st.Browsers[0].Subscription.Keys.Auth) == "" {
		t.Error("no subscription in the state")
	}
}
