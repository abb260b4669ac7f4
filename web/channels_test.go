package web

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

const goodURI = "https://db3.notify.live.net/throttledthirdparty/01.00/AAFx7QwPf3ZKq"

func TestRegisterRefusals(t *testing.T) {
	long := "https://db3.notify.live.net/" + strings.Repeat("a", tilecast.MaxChannelURI-len("https://db3.notify.live.net/")+1)
	tests := []struct {
		name   string
		body   string
		status int
		msg    string
	}{
		// Body shape (A3, A7).
		{"not json", "hello", 400, "malformed JSON at byte 1"},
		{"empty body", "", 400, "empty body"},
		{"truncated", `{"uri":"` + goodURI, 400, "unexpected end"},
		{"unknown field", regJSON(goodURI, `,"colour":"red"`), 400, `unknown field "colour"`},
		{"two objects", regJSON(goodURI) + regJSON(goodURI), 400, "more than one value"},
		{"array", `[1,2]`, 400, "want an object"},
		{"feeds not a list", regJSON(goodURI, `,"feeds":"news"`), 400, `field "feeds" must be a list of strings`},
		{"uri not a string", `{"uri":42}`, 400, `field "uri" must be a string`},
		{"null", `null`, 400, "uri is required"},
		{"no uri", `{"user":"ann"}`, 400, "uri is required"},
		// URI shape: 400 with the reason from channeluri.Check.
		{"ftp", regJSON("ftp://db3.notify.live.net/x"), 400, `scheme "ftp"`},
		{"javascript", regJSON("javascript:alert(1)"), 400, `scheme "javascript"`},
		{"relative", regJSON("/throttledthirdparty/01.00/x"), 400, `scheme ""`},
		{"no host", regJSON("https:///x"), 400, "no host"},
		{"userinfo", regJSON("https://x@db3.notify.live.net/"), 400, "userinfo"},
		{"userinfo with password", regJSON("https://a:b@db3.notify.live.net/"), 400, "userinfo"},
		{"2049 bytes", regJSON(long), 400, "is 2049 bytes, more than 2048"},
		{"10 kB", regJSON("https://db3.notify.live.net/" + strings.Repeat("b", 10_000)), 400, "more than 2048"},
		{"bad escape", regJSON("https://db3.notify.live.net/%zz"), 400, "not a valid URL"},
		{"control char", regJSON("https://db3.notify.live.net/a\nb"), 400, "not a valid URL"},
		{"fragment", regJSON(goodURI + "#x"), 400, "fragment"},
		// Host allowlist: 422 (A3).
		{"suffix inside evil host", regJSON("https://notify.live.net.evil.com/x"), 422, `host "notify.live.net.evil.com" is not in push.allowed_hosts`},
		{"suffix in query", regJSON("https://evil.com/?h=.notify.live.net"), 422, `host "evil.com"`},
		{"bare suffix", regJSON("https://NOTIFY.live.net/x"), 422, `host "notify.live.net"`},
		{"loopback", regJSON("http://127.0.0.1/x"), 422, `host "127.0.0.1"`},
		{"ipv6 loopback", regJSON("http://[::1]/x"), 422, `host "::1"`},
		{"homograph", regJSON("https://db3.notify.live.n\u0435t/x"), 422, "not in push.allowed_hosts"},
		{"lookalike", regJSON("https://db3.notify-live.net/x"), 422, "not in push.allowed_hosts"},
		{"exact host subdomain", regJSON("https://a.push.example.org/x"), 422, `host "a.push.example.org"`},
		// Feeds and names.
		{"unknown feed", regJSON(goodURI, `,"feeds":["news","sport"]`), 422, `unknown feed "sport"`},
		{"two unknown feeds", regJSON(goodURI, `,"feeds":["x","y"]`), 422, `unknown feed "x", "y"`},
		{"empty feed name", regJSON(goodURI, `,"feeds":[""]`), 422, `unknown feed ""`},
		{"per-user feed without user", regJSON(goodURI, `,"feeds":["inbox"]`), 422, `feed "inbox" is per-user`},
		{"user with newline", regJSON(goodURI, `,"user":"ann\nINFO fake"`), 400, "user contains a control character"},
		// encoding/json replaces invalid bytes and lone surrogates with
		// U+FFFD; the replaced name is refused, never stored.
		{"user with invalid UTF-8", regJSON(goodURI, `,"user":"ann`+"\xff"+`"`), 400, "user: U+FFFD at byte 3"},
		{"user with a lone surrogate", regJSON(goodURI, `,"user":"ann\ud800"`), 400, "user: U+FFFD at byte 3"},
		{"user with a bidi override", regJSON(goodURI, `,"user":"ann`+"\u202e"+`gnp"`), 400, "user: bidi control U+202E at byte 3"},
		{"user with a bidi isolate escape", regJSON(goodURI, `,"user":"ann\u2066"`), 400, "user: bidi control U+2066 at byte 3"},
		{"long device", regJSON(goodURI, `,"device":"`+strings.Repeat("d", 257)+`"`), 400, "device is 257 bytes"},
		{"too many feeds", regJSON(goodURI, `,"feeds":[`+strings.Repeat(`"news",`, 256)+`"news"]`), 400, "feeds lists 257 names"},
		// Size (A2).
		{"17 KiB body", regJSON(goodURI, `,"user":"`+strings.Repeat("u", 17<<10)+`"`), 413, "larger than 16384 bytes"},
		{"17 KiB after the object", regJSON(goodURI) + strings.Repeat(" ", 17<<10), 413, "larger than 16384 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			rec := e.post(t, tc.body)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.status, rec.Body)
			}
			if msg := errorOf(t, rec); !strings.Contains(msg, tc.msg) {
				t.Errorf("error %q, want it to contain %q", msg, tc.msg)
			}
			if n := e.store.count(); n != 0 {
				t.Errorf("%d channels stored after a refusal", n)
			}
			if s := e.subscriptions(); len(s) != 0 {
				t.Errorf("Subscribe called for a refusal: %v", s)
			}
		})
	}
}

// endless is a body that never ends; it counts what was read of it.
type endless struct{ n int }

func (r *endless) Read(p []byte) (int, error) {
	head := `{"uri":"`
	for i := range p {
		if r.n+i < len(head) {
			p[i] = head[r.n+i]
		} else {
			p[i] = 'a'
		}
	}
	r.n += len(p)
	return len(p), nil
}

func TestRegisterEndlessBody(t *testing.T) {
	e := newEnv(t, nil)
	body := &endless{}
	req := httptest.NewRequest(http.MethodPost, "/v1/channels", io.NopCloser(body))
	req.ContentLength = -1 // chunked: the size is not known up front
	req.Header.Set("Authorization", "Bearer "+keyOne)
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413 (%s)", rec.Code, rec.Body)
	}
	if body.n > MaxBody+1 {
		t.Errorf("read %d bytes of the body, want at most %d", body.n, MaxBody+1)
	}
	if rec.Header().Get("Connection") != "close" {
		t.Errorf("Connection = %q, want close", rec.Header().Get("Connection"))
	}
}

func TestRegisterDeclaredLengthTooLarge(t *testing.T) {
	e := newEnv(t, nil)
	body := &endless{}
	req := httptest.NewRequest(http.MethodPost, "/v1/channels", io.NopCloser(body))
	req.ContentLength = 10 << 20
	req.Header.Set("Authorization", "Bearer "+keyOne)
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge || body.n != 0 {
		t.Fatalf("status %d after reading %d bytes, want 413 without reading", rec.Code, body.n)
	}
}

func TestRegisterAccepts(t *testing.T) {
	tests := []struct {
		name, body string
		wantURI    string
	}{
		{"https", regJSON(goodURI), goodURI},
		{"http (unauthenticated mpns)", regJSON("http://sn1.notify.live.net/throttledthirdparty/01.00/Q"), "http://sn1.notify.live.net/throttledthirdparty/01.00/Q"},
		{"canonical host and port", regJSON("HTTPS://DB3.Notify.Live.NET.:443/Path?Q=A"), "https://db3.notify.live.net/Path?Q=A"},
		{"exact host", regJSON("https://push.example.org/x"), "https://push.example.org/x"},
		{"non-default port kept", regJSON("https://push.example.org:8443/x"), "https://push.example.org:8443/x"},
		{"per-user feed with user", regJSON(goodURI, `,"user":"ann","feeds":["inbox","news"]`), goodURI},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			ch := e.mustRegister(t, tc.body, http.StatusCreated)
			if ch.URI != tc.wantURI {
				t.Errorf("uri %q, want %q", ch.URI, tc.wantURI)
			}
			if got, err := e.store.Channel(ch.ID); err != nil || got.URI != tc.wantURI {
				t.Errorf("stored %+v, %v", got, err)
			}
		})
	}
}

func TestRegisterIdempotent(t *testing.T) {
	e := newEnv(t, nil)
	rec := e.post(t, regJSON(goodURI, `,"user":"ann","feeds":["news"]`))
	if rec.Code != http.StatusCreated {
		t.Fatalf("first POST: %d %s", rec.Code, rec.Body)
	}
	var first tilecast.Channel
	if err := json.Unmarshal(rec.Body.Bytes(), &first); err != nil {
		t.Fatal(err)
	}
	if loc := rec.Header().Get("Location"); loc != "/v1/channels/"+first.ID {
		t.Errorf("Location %q", loc)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	second := e.mustRegister(t, regJSON(goodURI, `,"user":"bob","feeds":["inbox","weather"]`), http.StatusOK)
	if second.ID != first.ID || second.User != "bob" || strings.Join(second.Feeds, ",") != "inbox,weather" {
		t.Errorf("second POST = %+v, want id %s with user bob and feeds inbox,weather", second, first.ID)
	}
	// Spelling variants of the same URI are the same channel.
	variant := strings.Replace(goodURI, "https://db3.notify.live.net/", "HTTPS://DB3.NOTIFY.LIVE.NET:443/", 1)
	third := e.mustRegister(t, regJSON(variant), http.StatusOK)
	if third.ID != first.ID {
		t.Errorf("variant got id %s, want %s", third.ID, first.ID)
	}
	if n := e.store.count(); n != 1 {
		t.Errorf("%d channels stored, want 1", n)
	}
	if s := e.subscriptions(); len(s) != 1 || s[0] != first.ID {
		t.Errorf("Subscribe calls %v, want once for %s", s, first.ID)
	}
}

func TestRegisterConcurrentFake(t *testing.T) {
	e := newEnv(t, nil)
	codes := registerConcurrently(t, e.handler, regJSON(goodURI, `,"feeds":["news"]`), 100)
	if codes[http.StatusCreated] != 1 || codes[http.StatusOK] != 99 {
		t.Errorf("answers %v, want one 201 and 99 200", codes)
	}
	if n := e.store.count(); n != 1 {
		t.Errorf("%d channels stored, want 1", n)
	}
	if s := e.subscriptions(); len(s) != 1 {
		t.Errorf("Subscribe called %d times, want 1", len(s))
	}
}

// registerConcurrently sends n identical registrations at once and counts
// the answers by status; every answer must name the same channel id.
func registerConcurrently(t *testing.T, h http.Handler, body string, n int) map[int]int {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[int]int{}
		ids   = map[string]bool{}
		start = make(chan struct{})
	)
	for range n {
		wg.Go(func() {
			<-start
			req := httptest.NewRequest(http.MethodPost, "/v1/channels", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+keyOne)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var ch tilecast.Channel
			_ = json.Unmarshal(rec.Body.Bytes(), &ch)
			mu.Lock()
			codes[rec.Code]++
			ids[ch.ID] = true
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if len(ids) != 1 {
		t.Errorf("answers name %d channel ids, want 1: %v", len(ids), ids)
	}
	return codes
}

func TestDeviceReregistration(t *testing.T) {
	e := newEnv(t, nil)
	old := e.mustRegister(t, regJSON(goodURI, `,"device":"install-7","feeds":["news"]`), http.StatusCreated)
	newURI := "https://db5.notify.live.net/throttledthirdparty/01.00/BBnew"
	cur := e.mustRegister(t, regJSON(newURI, `,"device":"install-7","feeds":["news"]`), http.StatusCreated)
	if cur.ID == old.ID {
		t.Fatalf("new uri kept id %s", cur.ID)
	}
	if rec := e.do(t, http.MethodGet, "/v1/channels/"+old.ID, keyOne, nil); rec.Code != http.StatusNotFound {
		t.Errorf("old channel: %d, want 404", rec.Code)
	}
	if rec := e.do(t, http.MethodGet, "/v1/channels/"+cur.ID, keyOne, nil); rec.Code != http.StatusOK {
		t.Errorf("new channel: %d, want 200", rec.Code)
	}
	if n := e.store.count(); n != 1 {
		t.Errorf("%d channels, want 1", n)
	}
}

func TestGetListDelete(t *testing.T) {
	e := newEnv(t, nil)
	a := e.mustRegister(t, regJSON(goodURI, `,"user":"ann"`), http.StatusCreated)
	b := e.mustRegister(t, regJSON(goodURI+"2", `,"user":"bob"`), http.StatusCreated)

	list := func(query string) []string {
		t.Helper()
		rec := e.do(t, http.MethodGet, "/v1/channels"+query, keyOne, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("list: %d %s", rec.Code, rec.Body)
		}
		var chs []tilecast.Channel
		if err := json.Unmarshal(rec.Body.Bytes(), &chs); err != nil {
			t.Fatalf("list: %v (%s)", err, rec.Body)
		}
		var ids []string
		for _, ch := range chs {
			ids = append(ids, ch.ID)
		}
		return ids
	}
	if got := list("?user=ann"); len(got) != 1 || got[0] != a.ID {
		t.Errorf("ann's channels %v, want [%s]", got, a.ID)
	}
	if got := list(""); len(got) != 2 {
		t.Errorf("all channels %v, want 2", got)
	}
	if rec := e.do(t, http.MethodGet, "/v1/channels?user=nobody", keyOne, nil); strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("empty list = %q, want []", rec.Body)
	}

	rec := e.do(t, http.MethodGet, "/v1/channels/"+b.ID, keyOne, nil)
	var got tilecast.Channel
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &got) != nil || got.URI != goodURI+"2" {
		t.Errorf("GET: %d %s", rec.Code, rec.Body)
	}

	steps := []struct {
		method, path string
		status       int
		msg          string
	}{
		{http.MethodDelete, "/v1/channels/" + b.ID, http.StatusNoContent, ""},
		{http.MethodDelete, "/v1/channels/" + b.ID, http.StatusNotFound, "not found"},
		{http.MethodGet, "/v1/channels/" + b.ID, http.StatusNotFound, "not found"},
		{http.MethodDelete, "/v1/channels/nosuch", http.StatusNotFound, `channel "nosuch" not found`},
		{http.MethodGet, "/v1/channels/" + a.ID, http.StatusOK, ""},
	}
	for _, st := range steps {
		rec := e.do(t, st.method, st.path, keyOne, nil)
		if rec.Code != st.status {
			t.Fatalf("%s %s: %d, want %d (%s)", st.method, st.path, rec.Code, st.status, rec.Body)
		}
		if st.msg != "" {
			if msg := errorOf(t, rec); !strings.Contains(msg, st.msg) {
				t.Errorf("%s %s: %q, want %q", st.method, st.path, msg, st.msg)
			}
		}
		if st.status == http.StatusNoContent && rec.Body.Len() != 0 {
			t.Errorf("204 with a body: %q", rec.Body)
		}
	}
	if got := list(""); len(got) != 1 {
		t.Errorf("after delete: %v", got)
	}
}

func TestOutcomes(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.mustRegister(t, regJSON(goodURI, `,"feeds":["news","weather"]`), http.StatusCreated)
	at := func(ago time.Duration, feed string, action tilecast.Action) tilecast.Outcome {
		return tilecast.Outcome{Time: t0.Add(-ago), ChannelID: ch.ID, Feed: feed, Kind: tilecast.KindToast,
			Status: 200, Action: action, Attempt: 1, Duration: 80 * time.Millisecond}
	}
	e.store.ledger = []tilecast.Outcome{
		at(72*time.Hour, "news", tilecast.ActionDelivered),
		at(2*time.Hour, "weather", tilecast.ActionRetry),
		at(time.Hour, "news", tilecast.ActionDelivered),
		{Time: t0.Add(-time.Hour), ChannelID: "gone1", Feed: "news", Action: tilecast.ActionChannelRemoved, Status: 404},
	}
	tests := []struct {
		query  string
		id     string
		status int
		want   int // outcomes, or the error text
		msg    string
	}{
		{"", ch.ID, 200, 3, ""},
		{"?since=24h", ch.ID, 200, 2, ""},
		{"?since=24h&feed=news", ch.ID, 200, 1, ""},
		{"?feed=sport", ch.ID, 200, 0, ""},
		{"?since=" + t0.Add(-90*time.Minute).Format(time.RFC3339), ch.ID, 200, 1, ""},
		{"?since=yesterday", ch.ID, 400, 0, "since must be a duration"},
		{"?since=-5h", ch.ID, 400, 0, "positive duration"},
		{"", "nosuch", 404, 0, `channel "nosuch" not found`},
		// The ledger outlives a removed channel and tells why it went.
		{"", "gone1", 200, 1, ""},
	}
	for _, tc := range tests {
		t.Run(tc.id+tc.query, func(t *testing.T) {
			rec := e.do(t, http.MethodGet, "/v1/channels/"+tc.id+"/outcomes"+tc.query, keyOne, nil)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.status, rec.Body)
			}
			if tc.msg != "" {
				if msg := errorOf(t, rec); !strings.Contains(msg, tc.msg) {
					t.Errorf("error %q, want %q", msg, tc.msg)
				}
				return
			}
			var out []tilecast.Outcome
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out == nil {
				t.Fatalf("decode: %v (%s)", err, rec.Body)
			}
			if len(out) != tc.want {
				t.Errorf("%d outcomes, want %d: %s", len(out), tc.want, rec.Body)
			}
		})
	}
}

func TestStoreErrorsAre500(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.mustRegister(t, regJSON(goodURI), http.StatusCreated)
	e.store.err = errBoom
	for _, r := range []struct{ method, path, body string }{
		{http.MethodPost, "/v1/channels", regJSON(goodURI)},
		{http.MethodGet, "/v1/channels", ""},
		{http.MethodGet, "/v1/channels/" + ch.ID, ""},
		{http.MethodDelete, "/v1/channels/" + ch.ID, ""},
		{http.MethodGet, "/v1/channels/" + ch.ID + "/outcomes", ""},
		{http.MethodGet, "/v1/status", ""},
	} {
		rec := e.do(t, r.method, r.path, keyOne, strings.NewReader(r.body))
		if rec.Code != http.StatusInternalServerError {
			t.Errorf("%s %s: %d, want 500", r.method, r.path, rec.Code)
			continue
		}
		// The store's error text stays in the log.
		if msg := errorOf(t, rec); msg != "internal error" {
			t.Errorf("%s %s: %q", r.method, r.path, msg)
		}
	}
}

func TestSubscribeErrorKeepsChannel(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Subscribe = func(tilecast.Channel) error { return fmt.Errorf("render tile: %w", errBoom) }
	})
	ch := e.mustRegister(t, regJSON(goodURI), http.StatusCreated)
	if _, err := e.store.Channel(ch.ID); err != nil {
		t.Errorf("channel gone after a failed tile on subscribe: %v", err)
	}
}
