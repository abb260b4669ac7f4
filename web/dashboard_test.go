package web

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/tileview"
)

// dashFeeds are configured feeds with templates, for the previews.
func dashFeeds() []tilecast.Feed {
	return []tilecast.Feed{
		{Name: "news", URL: "https://example.org/news.xml", Schedule: "@every 10m",
			Toast: &tilecast.ToastSpec{Text1: "{{.Feed.Title}}", Text2: "{{.Item.Title}}", Param: "/Item.xaml?id={{.Item.ID | urlquery}}"},
			Tile: &tilecast.TileSpec{Template: tilecast.TileFlip, Title: "{{.Feed.Title}}", Count: "{{.NewCount}}",
				BackTitle: "{{.Feed.Title}}", BackContent: "{{.Item.Title}}"}},
		{Name: "weather", URL: "https://example.org/weather.xml", Schedule: "@hourly",
			Tile: &tilecast.TileSpec{Template: tilecast.TileIconic, Title: "{{.Feed.Title}}", WideContent1: "{{.Item.Title}}"}},
		{Name: "inbox", URL: "https://api.example.org/users/{user}/feed", Schedule: "*/5 * * * *",
			Toast: &tilecast.ToastSpec{Text1: "Inbox of {{.User}}", Text2: "{{.Item.Title}}"}},
	}
}

func latest(feedTitle, itemTitle string, n int) *tilecast.TemplateData {
	item := tilecast.Item{ID: "i1", Title: itemTitle}
	return &tilecast.TemplateData{Feed: tilecast.FeedInfo{Name: "x", Title: feedTitle}, Item: item,
		Items: []tilecast.Item{item}, NewCount: n}
}

// newDashEnv is a server with dashFeeds, feed states, channels and stats.
func newDashEnv(t testing.TB, edit func(*Options)) *env {
	t.Helper()
	e := newEnv(t, func(o *Options) {
		o.Feeds = dashFeeds
		o.NextRun = func(feed string) time.Time {
			switch feed {
			case "news":
				return t0.Add(5 * time.Minute)
			case "weather": // held for 3 h: this run is skipped
				return t0.Add(2 * time.Second)
			}
			return time.Time{}
		}
		if edit != nil {
			edit(o)
		}
	})
	e.store.counts = tilecast.Counts{OutboxDepth: 7, DeadLetters: 3}
	e.store.states = map[tilecast.FeedKey]tilecast.FeedState{
		{Feed: "news"}: {Baselined: true, LastFetch: t0.Add(-2 * time.Minute), LastResult: "ok", LastSuccess: t0.Add(-2 * time.Minute),
			Title: "Daily News", Latest: latest("Daily News", "Go 1.26 released", 4)},
		{Feed: "weather"}: {Baselined: true, LastFetch: t0.Add(-time.Hour), LastResult: "http 500: boom", Failures: 40,
			FailingSince: t0.Add(-25 * time.Hour), Broken: true, NextFetch: t0.Add(3 * time.Hour),
			Latest: latest("Weather", "Rain later", 1)},
		{Feed: "inbox", User: "ann"}: {Baselined: true, LastFetch: t0.Add(-time.Minute), LastResult: "ok",
			Latest: &tilecast.TemplateData{User: "ann", Item: tilecast.Item{Title: "Hello Ann"}}},
		{Feed: "inbox", User: "bob"}: {Baselined: true, LastFetch: t0.Add(-time.Hour), LastResult: "http 404: gone", Broken: true},
	}
	e.store.chans["ch0001"] = tilecast.Channel{ID: "ch0001", URI: "http://db3.notify.live.net/throttledthirdparty/01.00/AAA",
		Created: t0.Add(-48 * time.Hour), LastOutcome: "delivered", LastOutcomeAt: t0.Add(-time.Minute),
		SendsDay: "2026-03-01", SendsToday: 12}
	e.store.chans["ch0002"] = tilecast.Channel{ID: "ch0002", URI: "https://push.example.org/x/secret-token", User: "ann",
		Feeds: []string{"inbox", "news"}, Device: "lumia-920", Created: t0.Add(-time.Hour),
		LastOutcome: "retry", LastOutcomeAt: t0.Add(-30 * time.Second), FailureStreak: 4, NextAllowedAt: t0.Add(time.Hour)}
	return e
}

// login posts key to /login and returns the answer.
func (e *env) login(t testing.TB, key string, edit ...func(*http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	form := url.Values{"key": {key}}.Encode()
	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, f := range edit {
		f(req)
	}
	return serve(e, req)
}

// mustLogin logs in with key and returns the session cookie.
func (e *env) mustLogin(t testing.TB, key string) *http.Cookie {
	t.Helper()
	rec := e.login(t, key)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/" {
		t.Fatalf("login: %d to %q: %s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == SessionCookie {
			return c
		}
	}
	t.Fatalf("login set no session cookie: %v", rec.Header()["Set-Cookie"])
	return nil
}

// get fetches path with the cookie (nil: none).
func (e *env) get(t testing.TB, path string, c *http.Cookie) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if c != nil {
		req.AddCookie(c)
	}
	return serve(e, req)
}

// wantLoginRedirect checks that the answer sends the browser to /login.
func wantLoginRedirect(t testing.TB, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/login" {
		t.Errorf("got %d to %q, want 303 to /login", rec.Code, rec.Header().Get("Location"))
	}
	if strings.Contains(rec.Body.String(), "outbox-depth") {
		t.Error("the dashboard was served anyway")
	}
}

func wantHTML(t testing.TB, rec *httptest.ResponseRecorder) {
	t.Helper()
	h := rec.Header()
	if ct := h.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if h.Get("X-Frame-Options") != "DENY" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", h)
	}
}

func TestDashboardLogin(t *testing.T) {
	e := newDashEnv(t, nil)

	wantLoginRedirect(t, e.get(t, "/", nil))

	form := e.get(t, "/login", nil)
	if form.Code != 200 || !strings.Contains(form.Body.String(), `name="key"`) {
		t.Fatalf("login form: %d %s", form.Code, form.Body)
	}
	wantHTML(t, form)

	for name, key := range map[string]string{
		"wrong key":  "nope",
		"empty key":  "",
		"key prefix": keyOne[:len(keyOne)-1],
		"comment":    "# operator keys",
	} {
		t.Run(name, func(t *testing.T) {
			rec := e.login(t, key)
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", rec.Code)
			}
			wantHTML(t, rec)
			if !strings.Contains(rec.Body.String(), "Invalid API key") || !strings.Contains(rec.Body.String(), `name="key"`) {
				t.Errorf("401 page lacks the message or the form: %s", rec.Body)
			}
			if len(rec.Result().Cookies()) != 0 {
				t.Errorf("a refused login set cookies: %v", rec.Header()["Set-Cookie"])
			}
		})
	}

	c := e.mustLogin(t, "  "+keyTwo+" ") // pasted with spaces
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure ||
		c.MaxAge != int(SessionLifetime/time.Second) {
		t.Errorf("cookie %+v", c)
	}
	if strings.Contains(c.Value, keyTwo) {
		t.Error("the cookie holds the key")
	}
	rec := e.get(t, "/", c)
	if rec.Code != 200 {
		t.Fatalf("dashboard with cookie: %d %s", rec.Code, rec.Body)
	}
	wantHTML(t, rec)
	if again := e.get(t, "/login", c); again.Code != http.StatusSeeOther || again.Header().Get("Location") != "/" {
		t.Errorf("login form while logged in: %d %q", again.Code, again.Header().Get("Location"))
	}

	// Over TLS the cookie is Secure.
	req := httptest.NewRequest(http.MethodPost, "https://tilecast.example/login", strings.NewReader("key="+keyOne))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	tls := serve(e, req)
	if cs := tls.Result().Cookies(); tls.Code != http.StatusSeeOther || len(cs) != 1 || !cs[0].Secure {
		t.Errorf("login over TLS: %d %v", tls.Code, tls.Header()["Set-Cookie"])
	}
}

// TestDashboardLoginThrottledPerAddress: the login form and the dashboard's
// bearer path count wrong keys against the source address like the API
// (a second address and a right key are unaffected).
func TestDashboardLoginThrottledPerAddress(t *testing.T) {
	e := newDashEnv(t, func(o *Options) { o.AuthFailRatePerSecond, o.AuthFailBurst = 0.01, 2 })
	for i, want := range []int{http.StatusUnauthorized, http.StatusUnauthorized, http.StatusTooManyRequests} {
		if rec := e.login(t, "wrong"); rec.Code != want {
			t.Fatalf("wrong login %d: status %d, want %d", i+1, rec.Code, want)
		}
	}
	breq := httptest.NewRequest(http.MethodGet, "/", nil)
	breq.Header.Set("Authorization", "Bearer wrong")
	rec := serve(e, breq)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Errorf("wrong bearer key from the throttled address: %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	e.mustLogin(t, keyOne) // a right key is never refused by the address limit

	other := e.login(t, "wrong", func(r *http.Request) { r.RemoteAddr = "192.0.2.7:4000" })
	if rec := other; rec.Code != http.StatusUnauthorized {
		t.Errorf("another address: %d, want 401", rec.Code)
	}
}

func TestDashboardLoginBodyLimit(t *testing.T) {
	e := newDashEnv(t, nil)
	rec := e.login(t, strings.Repeat("k", MaxBody+1))
	if rec.Code != http.StatusRequestEntityTooLarge || len(rec.Result().Cookies()) != 0 {
		t.Errorf("oversized form: %d", rec.Code)
	}
}

// between returns the text from the element with the given id to the end
// of that element (the next closing tag named end).
func between(t testing.TB, body, id, end string) string {
	t.Helper()
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		t.Fatalf("no element %q in page", id)
	}
	j := strings.Index(body[i:], end)
	if j < 0 {
		t.Fatalf("element %q not closed by %s", id, end)
	}
	return body[i : i+j]
}

// TestDashboardWordsAndRetries: results and outcomes read as words, and a
// channel waiting on a retry (no 406/412 rest) shows when it is tried
// again, from its ledger entry's retry_in.
func TestDashboardWordsAndRetries(t *testing.T) {
	e := newDashEnv(t, nil)
	st := e.store.states[tilecast.FeedKey{Feed: "news"}]
	st.LastResult = "not_modified"
	e.store.states[tilecast.FeedKey{Feed: "news"}] = st
	ch := e.store.chans["ch0002"]
	ch.NextAllowedAt = time.Time{}
	e.store.chans["ch0002"] = ch
	e.store.ledger = append(e.store.ledger,
		tilecast.Outcome{Time: t0.Add(-10 * time.Minute), ChannelID: "ch0002", Feed: "news", Action: tilecast.ActionRetry, RetryIn: time.Minute},
		tilecast.Outcome{Time: t0.Add(-30 * time.Second), ChannelID: "ch0002", Feed: "news", Action: tilecast.ActionRetry, RetryIn: 90 * time.Second})
	ch1 := e.store.chans["ch0001"]
	ch1.LastOutcome = string(tilecast.ActionChannelRemoved)
	e.store.chans["ch0001"] = ch1

	body := e.get(t, "/", e.mustLogin(t, keyOne)).Body.String()
	if news := between(t, body, "feed-news", "</tr>"); !strings.Contains(news, ">not modified (304)<") {
		t.Errorf("news row does not say \"not modified\":\n%s", news)
	}
	row2 := between(t, body, "channel-ch0002", "</tr>")
	if !strings.Contains(row2, `retry <time datetime="2026-03-01T12:01:00Z"`) || !strings.Contains(row2, ">in 1 min<") {
		t.Errorf("ch0002 waiting on a retry does not show its time:\n%s", row2)
	}
	if row1 := between(t, body, "channel-ch0001", "</tr>"); !strings.Contains(row1, ">channel removed<") || !strings.Contains(row1, "not waiting") {
		t.Errorf("ch0001 row:\n%s", row1)
	}
}

func TestDashboardContent(t *testing.T) {
	e := newDashEnv(t, nil)
	rec := e.get(t, "/", e.mustLogin(t, keyOne))
	if rec.Code != 200 {
		t.Fatalf("dashboard: %d %s", rec.Code, rec.Body)
	}
	body := rec.Body.String()

	for id, want := range map[string]string{
		"outbox-depth":  `id="outbox-depth">7<`,
		"dead-letters":  `id="dead-letters" class="warn">3<`,
		"channel-count": `id="channel-count">2<`,
		"feeds-broken":  `id="feeds-broken" class="bad">2<`, // weather, and inbox for bob
		"refresh":       `<meta http-equiv="refresh" content="10">`,
		"channel range": `2 channels; showing 1–2, failing first`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("%s: page lacks %q", id, want)
		}
	}

	news := between(t, body, "feed-news", "</tr>")
	for _, want := range []string{"Daily News", "@every 10m", `class="ok">ok<`, ">2 min ago<", ">in 5 min<", ">no<"} {
		if !strings.Contains(news, want) {
			t.Errorf("news row lacks %q:\n%s", want, news)
		}
	}
	weather := between(t, body, "feed-weather", "</tr>")
	for _, want := range []string{`class="broken"`, `<span class="flag">broken</span>`, "http 500: boom", ">40<",
		"backing off after 40 failed fetches", ">in 3 h<"} {
		if !strings.Contains(weather, want) {
			t.Errorf("weather row lacks %q:\n%s", want, weather)
		}
	}
	// The schedule's run in 2 s is skipped by the hold: not shown beside it.
	if strings.Contains(weather, "in 2 s") {
		t.Errorf("weather row claims the next run in 2 s while held for 3 h:\n%s", weather)
	}
	inbox := between(t, body, "feed-inbox", "</tr>")
	for _, want := range []string{"per user: 2 fetched, 1 broken", "user ann", `<span class="flag">broken</span>`} {
		if !strings.Contains(inbox, want) {
			t.Errorf("inbox row lacks %q:\n%s", want, inbox)
		}
	}

	// The failing channel comes first; its push URI shows only the host.
	ch2, ch1 := strings.Index(body, `id="channel-ch0002"`), strings.Index(body, `id="channel-ch0001"`)
	if ch2 < 0 || ch1 < 0 || ch2 > ch1 {
		t.Errorf("channel order: ch0002 at %d, ch0001 at %d", ch2, ch1)
	}
	row2 := between(t, body, "channel-ch0002", "</tr>")
	for _, want := range []string{`<span class="warn">retry</span>`, "30 s ago", `class="num bad">4<`, "push.example.org", "inbox, news", "lumia-920", "rest <time", "in 1 h"} {
		if !strings.Contains(row2, want) {
			t.Errorf("ch0002 row lacks %q:\n%s", want, row2)
		}
	}
	row1 := between(t, body, "channel-ch0001", "</tr>")
	for _, want := range []string{`<span class="ok">delivered</span>`, "all global", "12 / 500"} {
		if !strings.Contains(row1, want) {
			t.Errorf("ch0001 row lacks %q:\n%s", want, row1)
		}
	}
	if strings.Contains(body, "secret-token") || strings.Contains(body, "AAA") {
		t.Error("page shows channel URIs")
	}

	// Previews: rendered by tileview from the stored template data.
	pn := between(t, body, "preview-news", "</section>")
	for _, want := range []string{`data-template="FlipTile"`, `class="tv-title">Daily News<`, `class="tv-count">4<`,
		`<b>Daily News</b> Go 1.26 released`, "<code>/Item.xaml?id=i1</code>", `class="tv-content">Go 1.26 released<`} {
		if !strings.Contains(pn, want) {
			t.Errorf("news preview lacks %q:\n%s", want, pn)
		}
	}
	pw := between(t, body, "preview-weather", "</section>")
	if !strings.Contains(pw, `data-template="IconicTile"`) || !strings.Contains(pw, "<span>Rain later</span>") || strings.Contains(pw, "tv-toast") {
		t.Errorf("weather preview:\n%s", pw)
	}
	pi := between(t, body, "preview-inbox", "</section>")
	if !strings.Contains(pi, "(user ann)") || !strings.Contains(pi, "<b>Inbox of ann</b> Hello Ann") || strings.Contains(pi, "tv-tile") {
		t.Errorf("inbox preview:\n%s", pi)
	}
}

func TestDashboardPreviewStates(t *testing.T) {
	e := newDashEnv(t, nil)
	e.store.states[tilecast.FeedKey{Feed: "news"}] = tilecast.FeedState{LastResult: "ok"} // no tile data yet
	st := e.store.states[tilecast.FeedKey{Feed: "weather"}]
	st.Latest = &tilecast.TemplateData{} // renders an empty tile
	e.store.states[tilecast.FeedKey{Feed: "weather"}] = st
	body := e.do(t, http.MethodGet, "/", keyOne, nil).Body.String()
	if pn := between(t, body, "preview-news", "</section>"); !strings.Contains(pn, "No tile yet") || strings.Contains(pn, "tv-tile") {
		t.Errorf("news preview without data:\n%s", pn)
	}
	if pw := between(t, body, "preview-weather", "</section>"); !strings.Contains(pw, `class="err">feed weather: tile: no fields: empty payload<`) {
		t.Errorf("weather preview of an empty tile:\n%s", pw)
	}
}

func TestDashboardEscapesHostileText(t *testing.T) {
	const evil = `<script>alert(1)</script>`
	const evilImg = `"><img src=x onerror=alert(2)>`
	e := newDashEnv(t, nil)
	st := e.store.states[tilecast.FeedKey{Feed: "news"}]
	st.Title = evil
	st.LastResult = evilImg
	st.Latest = latest(evil, evilImg, 1)
	st.Latest.Item.ID = evilImg
	e.store.states[tilecast.FeedKey{Feed: "news"}] = st
	ch := e.store.chans["ch0002"]
	ch.User, ch.Device, ch.Feeds, ch.LastOutcome = evil, evilImg, []string{evil}, evilImg
	e.store.chans["ch0002"] = ch

	body := e.get(t, "/", e.mustLogin(t, keyOne)).Body.String()
	if strings.Contains(strings.ToLower(body), "<script") {
		t.Error("a <script> element reached the page")
	}
	if strings.Contains(body, "<img src=x") || strings.Contains(body, `src="x"`) {
		t.Error("an injected <img> reached the page")
	}
	escaped := "&lt;script&gt;alert(1)&lt;/script&gt;"
	if !strings.Contains(body, "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;") {
		t.Error("the hostile result is not shown as text")
	}
	if n := strings.Count(body, escaped); n < 5 { // feed title, tile title and back title, toast, channel user and feeds
		t.Errorf("escaped title shown %d times, want ≥ 5", n)
	}
}

func TestDashboardSessionTampering(t *testing.T) {
	e := newDashEnv(t, nil)
	good := e.mustLogin(t, keyOne)
	if rec := e.get(t, "/", good); rec.Code != 200 {
		t.Fatalf("good cookie: %d", rec.Code)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	raw, err := base64.RawURLEncoding.DecodeString(good.Value)
	if err != nil {
		t.Fatal(err)
	}
	extended := append([]byte(nil), raw...)
	extended[1] = 0x7f // expiry far in the future, signature unchanged
	other := newDashEnv(t, nil).mustLogin(t, keyOne).Value

	for name, v := range map[string]string{
		"version byte":       flip(good.Value, 0),
		"expiry":             flip(good.Value, 4),
		"nonce":              flip(good.Value, 20),
		"key tag":            flip(good.Value, 45),
		"signature":          flip(good.Value, len(good.Value)-5),
		"extended expiry":    base64.RawURLEncoding.EncodeToString(extended),
		"truncated":          good.Value[:len(good.Value)-1],
		"extra character":    good.Value + "A",
		"padded":             good.Value + "==",
		"empty":              "",
		"not base64":         strings.Repeat("*", len(good.Value)),
		"the api key itself": keyOne,
		"another process":    other, // a different secret
	} {
		t.Run(name, func(t *testing.T) {
			wantLoginRedirect(t, e.get(t, "/", &http.Cookie{Name: SessionCookie, Value: v}))
		})
	}
	t.Run("other cookie name", func(t *testing.T) {
		wantLoginRedirect(t, e.get(t, "/", &http.Cookie{Name: "session", Value: good.Value}))
	})
	if rec := e.get(t, "/", good); rec.Code != 200 {
		t.Errorf("good cookie after the attempts: %d", rec.Code)
	}
}

func TestDashboardSessionEnds(t *testing.T) {
	t.Run("expiry", func(t *testing.T) {
		e := newDashEnv(t, nil)
		c := e.mustLogin(t, keyOne)
		e.clock.Add(SessionLifetime - time.Second)
		if rec := e.get(t, "/", c); rec.Code != 200 {
			t.Fatalf("just before expiry: %d", rec.Code)
		}
		e.clock.Add(time.Second)
		wantLoginRedirect(t, e.get(t, "/", c))
	})
	t.Run("key removed", func(t *testing.T) {
		e := newDashEnv(t, nil)
		one, two := e.mustLogin(t, keyOne), e.mustLogin(t, keyTwo)
		writeKeys(t, e.keysFile, keyTwo+"\n")
		if err := e.srv.ReloadKeys(); err != nil {
			t.Fatal(err)
		}
		wantLoginRedirect(t, e.get(t, "/", one))
		if rec := e.get(t, "/", two); rec.Code != 200 {
			t.Errorf("session of a kept key: %d", rec.Code)
		}
	})
	t.Run("logout", func(t *testing.T) {
		e := newDashEnv(t, nil)
		c, other := e.mustLogin(t, keyOne), e.mustLogin(t, keyOne)
		req := httptest.NewRequest(http.MethodPost, "/logout", nil)
		req.AddCookie(c)
		rec := serve(e, req)
		if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/login" {
			t.Fatalf("logout: %d %q", rec.Code, rec.Header().Get("Location"))
		}
		cs := rec.Result().Cookies()
		if len(cs) != 1 || cs[0].Name != SessionCookie || cs[0].MaxAge >= 0 || cs[0].Value != "" {
			t.Errorf("logout cookie %v", rec.Header()["Set-Cookie"])
		}
		// A copy of the cookie kept by someone else is dead too.
		wantLoginRedirect(t, e.get(t, "/", c))
		if rec := e.get(t, "/", other); rec.Code != 200 {
			t.Errorf("another session of the same key: %d", rec.Code)
		}
	})
}

func TestDashboardCrossOrigin(t *testing.T) {
	e := newDashEnv(t, nil)
	cross := func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") }
	rec := e.login(t, keyOne, cross)
	if rec.Code != http.StatusForbidden || len(rec.Result().Cookies()) != 0 {
		t.Errorf("cross-site login: %d %v", rec.Code, rec.Header()["Set-Cookie"])
	}
	c := e.mustLogin(t, keyOne)
	req := httptest.NewRequest(http.MethodPost, "/logout", nil)
	req.AddCookie(c)
	cross(req)
	if rec := serve(e, req); rec.Code != http.StatusForbidden {
		t.Errorf("cross-site logout: %d", rec.Code)
	}
	if rec := e.get(t, "/", c); rec.Code != 200 {
		t.Errorf("session after a refused cross-site logout: %d", rec.Code)
	}
	same := e.login(t, keyOne, func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "same-origin") })
	if same.Code != http.StatusSeeOther {
		t.Errorf("same-origin login: %d", same.Code)
	}
}

func TestDashboardBearer(t *testing.T) {
	e := newDashEnv(t, nil)
	rec := e.do(t, http.MethodGet, "/", keyTwo, nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `id="outbox-depth">7<`) {
		t.Fatalf("bearer: %d %s", rec.Code, rec.Body)
	}
	bad := e.do(t, http.MethodGet, "/", "wrong", nil)
	if bad.Code != http.StatusUnauthorized || !strings.Contains(bad.Header().Get("WWW-Authenticate"), "invalid_token") {
		t.Errorf("wrong bearer: %d %v", bad.Code, bad.Header())
	}
	wantHTML(t, bad)

	limited := newDashEnv(t, func(o *Options) { o.RatePerSecond, o.Burst = 1, 1 })
	if rec := limited.do(t, http.MethodGet, "/", keyOne, nil); rec.Code != 200 {
		t.Fatalf("first: %d", rec.Code)
	}
	if rec := limited.do(t, http.MethodGet, "/", keyOne, nil); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Errorf("second within the burst: %d %v", rec.Code, rec.Header())
	}
}

func TestDashboardDisabled(t *testing.T) {
	e := newDashEnv(t, func(o *Options) { o.APIKeysFile = "" })
	for _, rec := range []*httptest.ResponseRecorder{
		e.get(t, "/", nil), e.get(t, "/login", nil), e.login(t, keyOne),
		e.do(t, http.MethodGet, "/", keyOne, nil),
	} {
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "api_keys_file") {
			t.Errorf("without keys file: %d %s", rec.Code, rec.Body)
		}
	}
}

func TestDashboardStoreError(t *testing.T) {
	e := newDashEnv(t, nil)
	c := e.mustLogin(t, keyOne)
	e.store.err = errBoom
	rec := e.get(t, "/", c)
	if rec.Code != 500 || strings.Contains(rec.Body.String(), errBoom.Error()) {
		t.Errorf("store error: %d %s", rec.Code, rec.Body)
	}
	wantHTML(t, rec)
}

func TestDashboardChannelPaging(t *testing.T) {
	e := newDashEnv(t, nil)
	clear(e.store.chans)
	for i := range 450 {
		id := fmt.Sprintf("c%04d", i)
		e.store.chans[id] = tilecast.Channel{ID: id, URI: "https://push.example.org/" + id, Created: t0}
	}
	e.store.chans["c0449"] = tilecast.Channel{ID: "c0449", URI: "https://push.example.org/last", FailureStreak: 2}
	c := e.mustLogin(t, keyOne)
	rowRE := regexp.MustCompile(`<tr id="channel-(c\d{4})">`)
	tests := []struct {
		query       string
		rows        int
		first, last string
		text        string
	}{
		{"", 200, "c0449", "c0198", "450 channels; showing 1–200"},
		{"?page=2", 200, "c0199", "c0398", "showing 201–400"},
		{"?page=3", 50, "c0399", "c0448", "showing 401–450"},
		{"?page=99", 50, "c0399", "c0448", "page 3 of 3"},
		{"?page=0", 200, "c0449", "c0198", "page 1 of 3"},
		{"?page=abc", 200, "c0449", "c0198", "page 1 of 3"},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			body := e.get(t, "/"+tc.query, c).Body.String()
			m := rowRE.FindAllStringSubmatch(body, -1)
			if len(m) != tc.rows {
				t.Fatalf("%d rows, want %d", len(m), tc.rows)
			}
			if m[0][1] != tc.first || m[len(m)-1][1] != tc.last {
				t.Errorf("rows %s…%s, want %s…%s", m[0][1], m[len(m)-1][1], tc.first, tc.last)
			}
			if !strings.Contains(body, tc.text) {
				t.Errorf("page lacks %q", tc.text)
			}
		})
	}
	if body := e.get(t, "/?page=2", c).Body.String(); !strings.Contains(body, `href="/?page=1"`) || !strings.Contains(body, `href="/?page=3"`) {
		t.Error("page 2 lacks its links")
	}
}

func TestDashboardRoutesKeepJSONErrors(t *testing.T) {
	e := newDashEnv(t, nil)
	for _, r := range []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, "/", 405},
		{http.MethodGet, "/logout", 405},
		{http.MethodGet, "/dashboard", 404},
	} {
		rec := e.do(t, r.method, r.path, "", nil)
		if rec.Code != r.status {
			t.Errorf("%s %s: %d, want %d", r.method, r.path, rec.Code, r.status)
		}
		errorOf(t, rec)
	}
}

func TestDashboardCSPHash(t *testing.T) {
	// The hash must follow tileview's inline handler, or broken images show.
	var b strings.Builder
	if err := tileview.RenderTile(&b, tileview.Tile{Template: tileview.TemplateFlip, BackgroundImage: "https://e.org/i.png"}); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`onerror="([^"]*)"`).FindStringSubmatch(b.String())
	if m == nil {
		t.Fatal("tileview has no onerror handler any more: drop it from the CSP")
	}
	sum := sha256.Sum256([]byte(m[1]))
	if want := "sha256-" + base64.StdEncoding.EncodeToString(sum[:]); want != onErrorHash {
		t.Errorf("onErrorHash %s, want %s (handler %q)", onErrorHash, want, m[1])
	}
}

func TestViewTile(t *testing.T) {
	tests := []struct {
		name string
		in   notify.Tile
		want func(tileview.Tile) bool
	}{
		{"absent count", notify.Tile{Template: tilecast.TileFlip, Title: notify.Value("T")},
			func(v tileview.Tile) bool {
				return v.Count == -1 && v.Title == "T" && v.Template == tileview.TemplateFlip
			}},
		{"zero count", notify.Tile{Count: notify.Value("0")},
			func(v tileview.Tile) bool { return v.Count == 0 && v.Template == tileview.TemplateClassic }},
		{"count", notify.Tile{Template: tilecast.TileIconic, Count: notify.Value("42")},
			func(v tileview.Tile) bool { return v.Count == 42 && v.Template == tileview.TemplateIconic }},
		{"cleared is not shown", notify.Tile{Title: notify.Clear(), BackContent: notify.Field{Value: "x", State: notify.Cleared}},
			func(v tileview.Tile) bool { return v.Title == "" && v.BackContent == "" }},
		{"images the page cannot load", notify.Tile{
			BackgroundImage:     notify.Value("/Images/local.png"),
			BackBackgroundImage: notify.Value("isostore:/Shared/ShellContent/b.png"),
			IconImage:           notify.Value("javascript:alert(1)"),
			WideBackgroundImage: notify.Value("https://cdn.example.org/w.png")},
			func(v tileview.Tile) bool {
				return v.BackgroundImage == "" && v.BackBackgroundImage == "" && v.IconImage == "" &&
					v.WideBackgroundImage == "proxied:https://cdn.example.org/w.png"
			}},
		{"cycle images compact", notify.Tile{Template: tilecast.TileCycle, CycleImages: [9]notify.Field{
			notify.Value("http://e.org/1.png"), notify.Value("appdata:/2.png"), {}, notify.Value("https://e.org/4.png")}},
			func(v tileview.Tile) bool {
				return v.Template == tileview.TemplateCycle && len(v.CycleImages) == 2 &&
					v.CycleImages[0] == "proxied:http://e.org/1.png" && v.CycleImages[1] == "proxied:https://e.org/4.png"
			}},
		{"remote images left out", notify.Tile{Template: tilecast.TileCycle, BackgroundImage: notify.Value("https://e.org/b.png"),
			CycleImages: [9]notify.Field{notify.Value("https://e.org/drop.png"), notify.Value("https://e.org/1.png")}},
			func(v tileview.Tile) bool {
				return v.BackgroundImage == "" && len(v.CycleImages) == 1 && v.CycleImages[0] == "proxied:https://e.org/1.png"
			}},
		{"iconic text", notify.Tile{Template: tilecast.TileIconic, WideContent1: notify.Value("a"), WideContent3: notify.Value("c"),
			BackgroundColor: notify.Value("#FF112233")},
			func(v tileview.Tile) bool {
				return v.WideContent == [3]string{"a", "", "c"} && v.BackgroundColor == "#FF112233"
			}},
	}
	for _, tc := range tests {
		// The page links what image makes of a remote URL: here a marked
		// copy, "" (left out) for any URL with "b.png" or "drop".
		image := func(u string) string {
			if strings.Contains(u, "/b.png") || strings.Contains(u, "drop") {
				return ""
			}
			return "proxied:" + u
		}
		if got := viewTile(&tc.in, image); !tc.want(got) {
			t.Errorf("%s: %+v", tc.name, got)
		}
	}
}

func TestRelative(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                           "now",
		-500 * time.Millisecond:     "now",
		-42 * time.Second:           "42 s ago",
		5*time.Minute + time.Second: "in 5 min",
		-3 * time.Hour:              "3 h ago",
		47 * time.Hour:              "in 47 h",
		-72 * time.Hour:             "3 d ago",
	} {
		if got := relative(d); got != want {
			t.Errorf("relative(%v) = %q, want %q", d, got, want)
		}
	}
}
