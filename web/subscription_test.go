package web_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/internal/logtest"
	"github.com/tilecast/tilecast/web"
)

// testSub is a browser's subscription with real keys.
type testSub struct {
	endpoint     string
	p256dh, auth []byte
	expires      *int64 // expirationTime in ms; nil: null
}

func newTestSub(t testing.TB, endpoint string) testSub {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	return testSub{endpoint: endpoint, p256dh: k.PublicKey().Bytes(), auth: auth}
}

// json is the subscription as the browser's toJSON() gives it.
func (s testSub) json() string {
	exp := "null"
	if s.expires != nil {
		exp = fmt.Sprint(*s.expires)
	}
	return fmt.Sprintf(`{"endpoint":%q,"expirationTime":%s,"keys":{"p256dh":%q,"auth":%q}}`, s.endpoint, exp,
		base64.RawURLEncoding.EncodeToString(s.p256dh), base64.RawURLEncoding.EncodeToString(s.auth))
}

// secrets are every encoding of the keys a leak could take.
func (s testSub) secrets() []string {
	var out []string
	for _, k := range [][]byte{s.p256dh, s.auth} {
		out = append(out, base64.RawURLEncoding.EncodeToString(k), base64.StdEncoding.EncodeToString(k),
			base64.RawStdEncoding.EncodeToString(k), hex.EncodeToString(k), string(k))
	}
	return out
}

func (s testSub) keysHash() string {
	sum := sha256.Sum256(append(append([]byte(nil), s.p256dh...), s.auth...))
	return hex.EncodeToString(sum[:])
}

// leaks returns the secrets of subs found in text.
func leaks(text string, subs ...testSub) []string {
	var found []string
	for _, s := range subs {
		for _, k := range s.secrets() {
			if strings.Contains(text, k) {
				found = append(found, fmt.Sprintf("%.12q…", k))
			}
		}
	}
	return found
}

// webPushServer is the API on a real store with the default Web Push
// hosts (plus 127.0.0.1 for the emulator) and the given allow_private.
func webPushServer(t *testing.T, allowPrivate bool, logs io.Writer) (storeLike, http.Handler) {
	t.Helper()
	db, h := transportServer(t, config.Default().Push.AllowedHosts, allowPrivate, func(o *web.Options) {
		o.TransportHosts = func() map[tilecast.Transport][]string {
			return map[tilecast.Transport][]string{tilecast.TransportWebPush: append(config.DefaultWebPushHosts(), "127.0.0.1")}
		}
		if logs != nil {
			o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	})
	return db, h
}

// storeLike is what the tests read back from the store.
type storeLike interface {
	Channel(id string) (tilecast.Channel, error)
	Counts() (tilecast.Counts, error)
}

func postReg(t *testing.T, h http.Handler, key, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	return apiCall(t, h, http.MethodPost, "/v1/channels", key, body, hdr...)
}

func apiCall(t *testing.T, h http.Handler, method, path, key, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// channelAnswer is a channel as the API shows it.
type channelAnswer struct {
	tilecast.Channel
	Subscription *struct {
		Origin     string `json:"origin"`
		KeysSHA256 string `json:"keys_sha256"`
	} `json:"subscription"`
}

// POST /v1/channels with a browser's subscription: accepted with the
// browser's field names, its keys checked and refused with a 400 naming
// the field, its endpoint's host checked against [push.webpush]
// allowed_hosts (https only, the emulator's loopback http only with
// allow_private), and a subscription with keys is Web Push even on
// notify.windows.com (Edge).
func TestRegisterSubscription(t *testing.T) {
	fcm := newTestSub(t, "https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ:APA91bHun4MxP5egoKMwt2KZFBaFUH")
	edge := newTestSub(t, "https://wns2-par02p.notify.windows.com/w/?token=BQYAAAB%2bQ")
	emu := newTestSub(t, "http://127.0.0.1:8461/webpush/tok")
	later := time.Now().Add(48*time.Hour).UnixMilli() / 1000 * 1000
	expiring := newTestSub(t, "https://updates.push.services.mozilla.com/wpush/v2/gAAAAA")
	expiring.expires = &later
	past := int64(1_600_000_000_000)
	lapsed := newTestSub(t, "https://web.push.apple.com/QGuQkDWzjSg")
	lapsed.expires = &past

	badPoint := fcm
	badPoint.p256dh = append([]byte{4}, bytes.Repeat([]byte{7}, 64)...)
	short := fcm
	short.p256dh = fcm.p256dh[:33]
	shortAuth := fcm
	shortAuth.auth = fcm.auth[:15]
	plain := fcm
	plain.endpoint = "http://fcm.googleapis.com/fcm/send/x"
	foreign := fcm
	foreign.endpoint = "https://push.example.org/x"

	reg := func(sub string, extra ...string) string {
		return `{"subscription":` + sub + `,"feeds":["news"]` + strings.Join(extra, "") + `}`
	}
	tests := []struct {
		name    string
		body    string
		private bool
		status  int
		sub     *testSub
		errHas  string
	}{
		{"fcm", reg(fcm.json()), false, 201, &fcm, ""},
		{"named webpush", reg(fcm.json(), `,"transport":"webpush"`), false, 201, &fcm, ""},
		{"edge on notify.windows.com", reg(edge.json()), false, 201, &edge, ""},
		{"mozilla with an expirationTime", reg(expiring.json(), `,"user":"ann","device":"firefox"`), false, 201, &expiring, ""},
		{"emulator with allow_private", reg(emu.json()), true, 201, &emu, ""},

		{"p256dh not on the curve", reg(badPoint.json()), false, 400, nil, "subscription.keys.p256dh: not a point on P-256"},
		{"p256dh too short", reg(short.json()), false, 400, nil, "subscription.keys.p256dh: 33 bytes, want 65"},
		{"auth too short", reg(shortAuth.json()), false, 400, nil, "subscription.keys.auth: 15 bytes, want 16"},
		{"p256dh standard base64", reg(strings.Replace(fcm.json(), base64.RawURLEncoding.EncodeToString(fcm.p256dh),
			strings.Repeat("+", 87), 1)), false, 400, nil, "subscription.keys.p256dh: not base64url"},
		{"no keys", reg(`{"endpoint":"` + fcm.endpoint + `","expirationTime":null}`), false, 400, nil, "subscription.keys: missing"},
		{"no auth", reg(`{"endpoint":"` + fcm.endpoint + `","keys":{"p256dh":"` +
			base64.RawURLEncoding.EncodeToString(fcm.p256dh) + `"}}`), false, 400, nil, "subscription.keys.auth: missing"},
		{"field name in another case", reg(strings.Replace(fcm.json(), `"endpoint"`, `"Endpoint"`, 1)), false, 400, nil,
			"subscription.Endpoint: unknown field"},
		{"duplicate endpoint", reg(strings.Replace(fcm.json(), `{"endpoint"`, `{"endpoint":"https://fcm.googleapis.com/x","endpoint"`, 1)),
			false, 400, nil, `duplicate field "endpoint"`},
		{"duplicate p256dh", reg(strings.Replace(fcm.json(), `"keys":{`, `"keys":{"p256dh":"x",`, 1)), false, 400, nil,
			`duplicate field "p256dh"`},
		{"subscription not an object", reg(`"` + fcm.endpoint + `"`), false, 400, nil, "subscription: want a JSON object"},
		{"uri and subscription", reg(fcm.json(), `,"uri":"`+fcm.endpoint+`"`), false, 400, nil, "not both"},
		{"transport wns with keys", reg(edge.json(), `,"transport":"wns"`), false, 400, nil, "takes no subscription keys"},
		{"http endpoint", reg(plain.json()), true, 400, nil, "subscription.endpoint: http is only accepted on a loopback host"},
		{"emulator without allow_private", reg(emu.json()), false, 400, nil, "subscription.endpoint: http is refused"},
		{"host not allowed", reg(foreign.json()), false, 422, nil, "not in push.webpush.allowed_hosts"},
		{"expired", reg(lapsed.json()), false, 400, nil, "subscription.expirationTime: 1600000000000"},
		{"expirationTime a string", reg(strings.Replace(fcm.json(), `"expirationTime":null`, `"expirationTime":"soon"`, 1)),
			false, 400, nil, "subscription.expirationTime: want null or a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logtest.Buffer{}
			db, h := webPushServer(t, tt.private, logs)
			rec := postReg(t, h, apiKey, tt.body)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if found := leaks(rec.Body.String()+logs.String(), fcm, edge, emu, expiring, lapsed); len(found) > 0 {
				t.Errorf("key material in the answer or the log: %v", found)
			}
			if tt.errHas != "" {
				if !strings.Contains(errorText(t, rec), tt.errHas) {
					t.Errorf("answer %s lacks %q", rec.Body, tt.errHas)
				}
				if n, err := db.Counts(); err != nil || n.Channels != 0 {
					t.Errorf("a refused registration stored a channel: %+v, %v", n, err)
				}
				return
			}
			var got channelAnswer
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			stored, err := db.Channel(got.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Transport != tilecast.TransportWebPush || stored.Transport != tilecast.TransportWebPush {
				t.Errorf("transport: answered %q, stored %q", got.Transport, stored.Transport)
			}
			if stored.Keys == nil || !bytes.Equal(stored.Keys.P256DH, tt.sub.p256dh) || !bytes.Equal(stored.Keys.Auth, tt.sub.auth) {
				t.Errorf("stored keys differ from the subscription's")
			}
			if stored.URI != got.URI {
				t.Errorf("uri: answered %q, stored %q", got.URI, stored.URI)
			}
			wantExp := time.Time{}
			if tt.sub.expires != nil {
				wantExp = time.UnixMilli(*tt.sub.expires)
			}
			if !stored.Expires.Equal(wantExp) || !got.Expires.Equal(wantExp) {
				t.Errorf("expires: stored %v, answered %v; want %v", stored.Expires, got.Expires, wantExp)
			}
			origin := tt.sub.endpoint[:strings.Index(tt.sub.endpoint[8:], "/")+8]
			if got.Subscription == nil || got.Subscription.Origin != origin || got.Subscription.KeysSHA256 != tt.sub.keysHash() {
				t.Errorf("subscription shown as %+v, want origin %s and the keys' hash", got.Subscription, origin)
			}
			if strings.Contains(rec.Body.String(), `"keys"`) {
				t.Errorf("answer shows keys: %s", rec.Body)
			}
		})
	}
}

// errorText is the "error" of an API answer.
func errorText(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct{ Error string }
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("answer %q: %v", rec.Body, err)
	}
	return e.Error
}

// A browser re-subscribing: the same endpoint (in any spelling) is one
// channel; new keys replace the stored ones; a new expirationTime too.
// The admin listing and lookup show the endpoint's origin and the keys'
// hash, never the keys; an app key that proves the endpoint in
// X-Channel-URI reads and removes its channel as for any other.
func TestSubscriptionDedupAndViews(t *testing.T) {
	const admin, app = "admin-key-0123456789abcdef", "app-key-fedcba9876543210"
	logs := &logtest.Buffer{}
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte("admin "+admin+"\napp "+app+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db, h := transportServer(t, nil, false, func(o *web.Options) {
		o.APIKeysFile = keys
		o.TransportHosts = func() map[tilecast.Transport][]string {
			return map[tilecast.Transport][]string{tilecast.TransportWebPush: config.DefaultWebPushHosts()}
		}
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	first := newTestSub(t, "https://fcm.googleapis.com/fcm/send/abc:DEF")
	rec := postReg(t, h, app, `{"subscription":`+first.json()+`}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", rec.Code, rec.Body)
	}
	var ch channelAnswer
	json.Unmarshal(rec.Body.Bytes(), &ch)

	// The same subscription again, the host in another case: 200, same id.
	again := first
	again.endpoint = "https://FCM.googleapis.com:443/fcm/send/abc:DEF"
	rec = postReg(t, h, app, `{"subscription":`+again.json()+`}`)
	var ch2 channelAnswer
	json.Unmarshal(rec.Body.Bytes(), &ch2)
	if rec.Code != http.StatusOK || ch2.ID != ch.ID || ch2.Subscription.KeysSHA256 != first.keysHash() {
		t.Fatalf("re-registration: %d %s", rec.Code, rec.Body)
	}
	// New keys (the browser re-subscribed on the same endpoint), and an expiry.
	renewed := newTestSub(t, first.endpoint)
	exp := time.Now().Add(72*time.Hour).UnixMilli() / 1000 * 1000
	renewed.expires = &exp
	rec = postReg(t, h, app, `{"subscription":`+renewed.json()+`,"user":"bo"}`)
	json.Unmarshal(rec.Body.Bytes(), &ch2)
	if rec.Code != http.StatusOK || ch2.ID != ch.ID || ch2.Subscription.KeysSHA256 != renewed.keysHash() || ch2.User != "bo" {
		t.Fatalf("new keys: %d %s", rec.Code, rec.Body)
	}
	stored, err := db.Channel(ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored.Keys.P256DH, renewed.p256dh) || !bytes.Equal(stored.Keys.Auth, renewed.auth) ||
		!stored.Expires.Equal(time.UnixMilli(exp)) {
		t.Errorf("stored keys or expiry not updated: expires %v", stored.Expires)
	}
	if n, _ := db.Counts(); n.Channels != 1 {
		t.Errorf("%d channels, want 1", n.Channels)
	}

	var bodies strings.Builder
	// The admin's views.
	list := apiCall(t, h, http.MethodGet, "/v1/channels", admin, "")
	one := apiCall(t, h, http.MethodGet, "/v1/channels/"+ch.ID, admin, "")
	bodies.WriteString(list.Body.String() + one.Body.String())
	var listed []channelAnswer
	if err := json.Unmarshal(list.Body.Bytes(), &listed); err != nil || list.Code != 200 || len(listed) != 1 {
		t.Fatalf("list: %d %s", list.Code, list.Body)
	}
	var got channelAnswer
	json.Unmarshal(one.Body.Bytes(), &got)
	for _, v := range []channelAnswer{listed[0], got} {
		if v.Subscription == nil || v.Subscription.Origin != "https://fcm.googleapis.com" ||
			v.Subscription.KeysSHA256 != renewed.keysHash() || v.Transport != tilecast.TransportWebPush || v.URI != first.endpoint {
			t.Errorf("admin view %+v", v)
		}
	}
	// The app's: by id with the endpoint as proof.
	if r := apiCall(t, h, http.MethodGet, "/v1/channels/"+ch.ID, app, ""); r.Code != http.StatusNotFound {
		t.Errorf("app key without proof: %d", r.Code)
	}
	r := apiCall(t, h, http.MethodGet, "/v1/channels/"+ch.ID, app, "", web.ChannelURIHeader, again.endpoint)
	bodies.WriteString(r.Body.String())
	if json.Unmarshal(r.Body.Bytes(), &got) != nil || r.Code != 200 || got.ID != ch.ID || got.Subscription == nil {
		t.Errorf("app key with the endpoint: %d %s", r.Code, r.Body)
	}
	if r := apiCall(t, h, http.MethodGet, "/v1/channels/"+ch.ID+"/outcomes", app, "", web.ChannelURIHeader, first.endpoint); r.Code != 200 {
		t.Errorf("outcomes with the endpoint: %d %s", r.Code, r.Body)
	}
	if found := leaks(bodies.String()+logs.String(), first, renewed); len(found) > 0 {
		t.Errorf("key material in the answers or the log: %v", found)
	}
	if r := apiCall(t, h, http.MethodDelete, "/v1/channels/"+ch.ID, app, "", web.ChannelURIHeader, first.endpoint); r.Code != http.StatusNoContent {
		t.Errorf("app key removes its channel: %d %s", r.Code, r.Body)
	}
	if _, err := db.Channel(ch.ID); err == nil {
		t.Error("channel still stored")
	}
}
