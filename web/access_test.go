package web_test

// Who may do what (issue 15): admin and app keys on every route, over real
// HTTP against a real bbolt file.

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/logtest"
	"github.com/tilecast/tilecast/store"
	"github.com/tilecast/tilecast/web"
)

const (
	adminKey = "admin-key-9c1e5b7a3d2f4e6a8b0c"
	appKey   = "app-key-4f2a6c8e0b1d3f5a7c9e1b"
	wrongKey = "wrong-key-0000000000000000000000"
)

// accessEnv is a web.Server on a real store behind a real listener.
type accessEnv struct {
	db   *store.DB
	srv  *web.Server
	url  string
	logs *logtest.Buffer
	keys string // the keys file
}

// accessOptions returns the options of a server on a real store in a temp
// dir whose keys file holds keys. The log is kept at debug level so that
// nothing is missed by the tests that look for secrets in it.
func accessOptions(t *testing.T, keys string) web.Options {
	opts, _ := accessSetup(t, keys)
	return opts
}

func accessSetup(t *testing.T, keys string) (web.Options, *accessEnv) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	e := &accessEnv{db: db, logs: &logtest.Buffer{}, keys: filepath.Join(dir, "api-keys")}
	if err := os.WriteFile(e.keys, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := web.Options{
		Store:  db,
		Counts: db.Counts,
		Feeds: func() []tilecast.Feed {
			return []tilecast.Feed{{Name: "news", URL: "https://example.org/news.xml"}}
		},
		AllowedHosts: func() []string { return []string{"*.notify.live.net"} },
		APIKeysFile:  e.keys,
		Backup:       db.Snapshot,
		DeadLetters: func(cursor string, limit int) ([]web.DeadLetter, string, error) {
			ds, next, err := db.DeadLettersPage(cursor, limit)
			out := make([]web.DeadLetter, len(ds))
			for i, d := range ds {
				out[i] = web.DeadLetter(d)
			}
			return out, next, err
		},
		Registry: prometheus.NewRegistry(),
		Logger:   slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Burst:    1000,
	}
	return opts, e
}

// newAccessEnv starts a server (accessOptions) behind a real listener;
// edit adjusts the options.
func newAccessEnv(t *testing.T, keys string, edit func(*web.Options)) *accessEnv {
	t.Helper()
	opts, e := accessSetup(t, keys)
	if edit != nil {
		edit(&opts)
	}
	var err error
	e.srv, err = web.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(e.srv.Handler())
	t.Cleanup(ts.Close)
	e.url = ts.URL
	return e
}

const roleKeys = "# operators\nadmin " + adminKey + "\n\n# shipped in the app\napp   " + appKey + "\n"

// answer is a response read whole.
type answer struct {
	code int
	body []byte
	hdr  http.Header
}

// do sends one request; key "" sends none, hdr adds headers.
func (e *accessEnv) do(t *testing.T, method, path, key, body string, hdr ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, b, resp.Header}
}

// register adds a channel with the admin key and returns it.
func (e *accessEnv) register(t *testing.T, uri string) tilecast.Channel {
	t.Helper()
	a := e.do(t, http.MethodPost, "/v1/channels", adminKey, `{"uri":"`+uri+`"}`)
	if a.code != http.StatusCreated {
		t.Fatalf("register %s: %d %s", uri, a.code, a.body)
	}
	var ch tilecast.Channel
	if err := json.Unmarshal(a.body, &ch); err != nil {
		t.Fatal(err)
	}
	return ch
}

// path turns a route pattern into a request method and path for channel id.
func routePath(pattern, id string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	return method, strings.ReplaceAll(path, "{id}", id)
}

// TestRouteRoles walks the server's own route table: with no key or a
// wrong one every route is 401, an app key is 403 naming the role on every
// admin route, an admin key is served everywhere, and an app key is served
// on an app route only with the channel's URI in X-Channel-URI.
func TestRouteRoles(t *testing.T) {
	for _, metrics := range []web.Role{0, web.RoleAdmin} {
		appRoutes := map[string]web.Role{
			"POST /v1/channels":              web.RoleApp,
			"GET /v1/channels/{id}":          web.RoleApp,
			"DELETE /v1/channels/{id}":       web.RoleApp,
			"GET /v1/channels/{id}/outcomes": web.RoleApp,
		}
		e := newAccessEnv(t, roleKeys, func(o *web.Options) { o.MetricsRole = metrics })
		routes := e.srv.Routes()
		if metrics != 0 && routes[len(routes)-1].Pattern != "GET /metrics" {
			t.Fatalf("metrics behind a key, but GET /metrics is not in the route table")
		}
		admin, app := 0, 0
		for _, rt := range routes {
			// What an app key may do is fixed by design.md §11; every
			// other route, a new one included, must be admin only.
			want, ok := appRoutes[rt.Pattern]
			if !ok {
				want = web.RoleAdmin
			}
			if rt.Role != want || rt.ByURI != (want == web.RoleApp && strings.Contains(rt.Pattern, "{id}")) {
				t.Errorf("%s: role %v, by uri %v; want role %v", rt.Pattern, rt.Role, rt.ByURI, want)
			}
			delete(appRoutes, rt.Pattern)
		}
		if len(appRoutes) != 0 {
			t.Errorf("app routes missing from the table: %v", appRoutes)
		}
		for i, rt := range routes {
			uri := "https://db3.notify.live.net/throttledthirdparty/01.00/route" + string(rune('a'+i))
			ch := e.register(t, uri)
			method, path := routePath(rt.Pattern, ch.ID)
			body := ""
			if method == http.MethodPost {
				body = `{"uri":"` + uri + `x"}`
			}
			for _, key := range []string{"", wrongKey} {
				if a := e.do(t, method, path, key, body); a.code != http.StatusUnauthorized {
					t.Errorf("%s with key %q: %d, want 401", rt.Pattern, key, a.code)
				}
			}
			switch rt.Role {
			case web.RoleAdmin:
				admin++
				a := e.do(t, method, path, appKey, body, web.ChannelURIHeader, uri)
				var refused struct{ Error, Role string }
				if a.code != http.StatusForbidden || json.Unmarshal(a.body, &refused) != nil ||
					refused.Role != "admin" || !strings.Contains(refused.Error, "needs an admin key") {
					t.Errorf("%s with the app key: %d %s; want 403 naming role admin", rt.Pattern, a.code, a.body)
				}
			case web.RoleApp:
				app++
				if rt.ByURI {
					for _, hdr := range [][]string{
						nil, // no header
						{web.ChannelURIHeader, uri + "-other"},
						{web.ChannelURIHeader, "not a uri"},
						{web.ChannelURIHeader, uri, web.ChannelURIHeader, uri}, // twice
					} {
						a := e.do(t, method, path, appKey, body, hdr...)
						want := `{"error":"channel \"` + ch.ID + `\" not found"}` + "\n"
						if a.code != http.StatusNotFound || string(a.body) != want {
							t.Errorf("%s, app key, headers %q: %d %s; want 404 %s", rt.Pattern, hdr, a.code, a.body, want)
						}
					}
					// Another spelling of the same URI is the same channel.
					spelled := strings.Replace(uri, "db3.notify.live.net", "DB3.Notify.Live.Net:443", 1)
					if a := e.do(t, method, path, appKey, body, web.ChannelURIHeader, spelled); a.code/100 != 2 {
						t.Errorf("%s, app key with the channel's uri: %d %s", rt.Pattern, a.code, a.body)
					}
					if method == http.MethodDelete {
						ch = e.register(t, uri)
					}
				} else if a := e.do(t, method, path, appKey, body); a.code/100 != 2 {
					t.Errorf("%s with the app key: %d %s", rt.Pattern, a.code, a.body)
				}
			default:
				t.Errorf("%s: role %v", rt.Pattern, rt.Role)
			}
			_, path = routePath(rt.Pattern, ch.ID)
			if method == http.MethodPost {
				body = `{"uri":"` + uri + `y"}`
			}
			if a := e.do(t, method, path, adminKey, body); a.code/100 != 2 {
				t.Errorf("%s with the admin key: %d %s", rt.Pattern, a.code, a.body)
			}
		}
		if admin == 0 || app == 0 {
			t.Fatalf("route table has %d admin and %d app routes", admin, app)
		}
		if metrics == 0 {
			if a := e.do(t, http.MethodGet, "/metrics", "", ""); a.code != http.StatusOK {
				t.Errorf("open /metrics: %d", a.code)
			}
		}
		if a := e.do(t, http.MethodGet, "/healthz", "", ""); a.code != http.StatusOK {
			t.Errorf("/healthz: %d", a.code)
		}
		logs := e.logs.String()
		if !strings.Contains(logs, "channel registered") {
			t.Fatalf("the log was not captured:\n%s", logs)
		}
		assertNoSecrets(t, logs, adminKey, appKey, wrongKey)
	}
}

// TestAppKeyCannotTellChannelsApart: for an app key, a channel whose URI
// it does not hold answers exactly as a channel that does not exist.
func TestAppKeyCannotTellChannelsApart(t *testing.T) {
	e := newAccessEnv(t, roleKeys, nil)
	const uri = "https://db3.notify.live.net/throttledthirdparty/01.00/victim"
	ch := e.register(t, uri)
	wrong := e.do(t, http.MethodGet, "/v1/channels/"+ch.ID, appKey, "", web.ChannelURIHeader, uri+"-guess")
	if a := e.do(t, http.MethodDelete, "/v1/channels/"+ch.ID, appKey, "", web.ChannelURIHeader, uri+"-guess"); a.code != http.StatusNotFound {
		t.Fatalf("delete with a wrong uri: %d", a.code)
	}
	if got, err := e.db.Channel(ch.ID); err != nil || got.URI != uri {
		t.Fatalf("the channel after a refused delete: %+v, %v", got, err)
	}
	if a := e.do(t, http.MethodDelete, "/v1/channels/"+ch.ID, adminKey, ""); a.code != http.StatusNoContent {
		t.Fatalf("admin delete: %d", a.code)
	}
	gone := e.do(t, http.MethodGet, "/v1/channels/"+ch.ID, appKey, "", web.ChannelURIHeader, uri)
	if wrong.code != http.StatusNotFound || gone.code != wrong.code || !bytes.Equal(gone.body, wrong.body) {
		t.Errorf("wrong uri: %d %s; unknown id: %d %s; want the same 404", wrong.code, wrong.body, gone.code, gone.body)
	}
	for _, k := range []string{"Content-Type", "Content-Length", "WWW-Authenticate", "Allow"} {
		if gone.hdr.Get(k) != wrong.hdr.Get(k) {
			t.Errorf("header %s: %q vs %q", k, wrong.hdr.Get(k), gone.hdr.Get(k))
		}
	}
}

// TestAppKeyRegistersAndUpdates: an app key posting a known URI again
// updates it (200), as an admin key does.
func TestAppKeyRegistersAndUpdates(t *testing.T) {
	e := newAccessEnv(t, roleKeys, nil)
	const uri = "https://db3.notify.live.net/throttledthirdparty/01.00/mine"
	if a := e.do(t, http.MethodPost, "/v1/channels", appKey, `{"uri":"`+uri+`"}`); a.code != http.StatusCreated {
		t.Fatalf("register: %d %s", a.code, a.body)
	}
	a := e.do(t, http.MethodPost, "/v1/channels", appKey, `{"uri":"`+uri+`","user":"ann","feeds":["news"]}`)
	var ch tilecast.Channel
	if a.code != http.StatusOK || json.Unmarshal(a.body, &ch) != nil || ch.User != "ann" || len(ch.Feeds) != 1 {
		t.Fatalf("re-register: %d %s", a.code, a.body)
	}
	a = e.do(t, http.MethodGet, "/v1/channels/"+ch.ID+"/outcomes", appKey, "", web.ChannelURIHeader, uri)
	if a.code != http.StatusOK || strings.TrimSpace(string(a.body)) != "[]" {
		t.Errorf("own outcomes: %d %s", a.code, a.body)
	}
	assertNoSecrets(t, e.logs.String(), adminKey, appKey)
}

// TestBareKeyIsAdmin: a keys file from before roles keeps working, every
// key in it an admin key.
func TestBareKeyIsAdmin(t *testing.T) {
	e := newAccessEnv(t, adminKey+"\n", nil)
	for _, path := range []string{"/v1/status", "/v1/channels", "/v1/outcomes"} {
		if a := e.do(t, http.MethodGet, path, adminKey, ""); a.code != http.StatusOK {
			t.Errorf("%s with a bare key: %d %s", path, a.code, a.body)
		}
	}
}

// TestKeysReloadChangesRole: a key rewritten from admin to app on SIGHUP
// (ReloadKeys) loses the admin routes at once.
func TestKeysReloadChangesRole(t *testing.T) {
	e := newAccessEnv(t, roleKeys, nil)
	if a := e.do(t, http.MethodGet, "/v1/status", adminKey, ""); a.code != http.StatusOK {
		t.Fatalf("before: %d", a.code)
	}
	if err := os.WriteFile(e.keys, []byte("app "+adminKey+"\nadmin "+appKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.ReloadKeys(); err != nil {
		t.Fatal(err)
	}
	if a := e.do(t, http.MethodGet, "/v1/status", adminKey, ""); a.code != http.StatusForbidden {
		t.Errorf("demoted key: %d, want 403", a.code)
	}
	if a := e.do(t, http.MethodGet, "/v1/status", appKey, ""); a.code != http.StatusOK {
		t.Errorf("promoted key: %d, want 200", a.code)
	}
	// A broken file leaves the keys in place; its error names the line,
	// never the text.
	if err := os.WriteFile(e.keys, []byte("admin "+adminKey+"\nroot "+appKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := e.srv.ReloadKeys()
	if err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Fatalf("reload of a bad file: %v, want an error naming line 2", err)
	}
	assertNoSecrets(t, err.Error(), adminKey, appKey, "root")
	if a := e.do(t, http.MethodGet, "/v1/status", appKey, ""); a.code != http.StatusOK {
		t.Errorf("after a failed reload: %d, want the old keys", a.code)
	}
	assertNoSecrets(t, e.logs.String(), adminKey, appKey)
}

// TestDashboardNeedsAdmin: the dashboard lists every channel, so an app
// key can neither log in nor read it with a bearer header.
func TestDashboardNeedsAdmin(t *testing.T) {
	e := newAccessEnv(t, roleKeys, nil)
	if a := e.do(t, http.MethodGet, "/", appKey, ""); a.code != http.StatusForbidden {
		t.Errorf("dashboard with the app key: %d, want 403", a.code)
	}
	if a := e.do(t, http.MethodGet, "/", adminKey, ""); a.code != http.StatusOK {
		t.Errorf("dashboard with the admin key: %d, want 200", a.code)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		key    string
		status int
	}{{appKey, http.StatusForbidden}, {adminKey, http.StatusSeeOther}} {
		req, _ := http.NewRequest(http.MethodPost, e.url+"/login", strings.NewReader("key="+tc.key))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || (tc.status == http.StatusForbidden) != (len(resp.Cookies()) == 0) {
			t.Errorf("login: %d with %d cookies, want %d", resp.StatusCode, len(resp.Cookies()), tc.status)
		}
	}
	assertNoSecrets(t, e.logs.String(), adminKey, appKey)
}

// assertNoSecrets fails when text contains any of secrets.
func assertNoSecrets(t *testing.T, text string, secrets ...string) {
	t.Helper()
	if text == "" {
		return
	}
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%q appears in:\n%s", s, text)
		}
	}
}

// TestRegistrationFieldsExact: encoding/json would fill uri from "URI",
// "Uri" or "u\u017fer" (a long s folds to s), and keep the last of two "uri"
// keys; the API refuses each with 400 naming the key, and stores nothing.
func TestRegistrationFieldsExact(t *testing.T) {
	e := newAccessEnv(t, roleKeys, nil)
	const uri = "https://db3.notify.live.net/throttledthirdparty/01.00/exact"
	for _, tc := range []struct {
		name, body, msg string
	}{
		{"upper case", `{"URI":"` + uri + `"}`, `unknown field "URI": want uri, user, feeds, device`},
		{"mixed case", `{"uri":"` + uri + `","User":"ann"}`, `unknown field "User"`},
		{"unicode case fold", `{"uri":"` + uri + `","u\u017fer":"ann"}`, `unknown field "uſer"`},
		{"duplicate", `{"uri":"` + uri + `","uri":"https://evil.example/x"}`, `duplicate field "uri"`},
		{"duplicate after a case variant", `{"user":"a","uri":"` + uri + `","user":"b"}`, `duplicate field "user"`},
		{"escaped duplicate", `{"uri":"` + uri + `","\u0075ri":"` + uri + `"}`, `duplicate field "uri"`},
		{"nested duplicate", `{"uri":"` + uri + `","feeds":[{"a":1,"a":2}]}`, `duplicate field "a"`},
		{"unknown", `{"uri":"` + uri + `","colour":"red"}`, `unknown field "colour"`},
	} {
		for _, key := range []string{appKey, adminKey} {
			a := e.do(t, http.MethodPost, "/v1/channels", key, tc.body)
			var eb struct{ Error string }
			if a.code != http.StatusBadRequest || json.Unmarshal(a.body, &eb) != nil || !strings.Contains(eb.Error, tc.msg) {
				t.Errorf("%s: %d %s; want 400 with %q", tc.name, a.code, a.body, tc.msg)
			}
		}
	}
	if chs, err := e.db.Channels(""); err != nil || len(chs) != 0 {
		t.Errorf("stored %v, %v; want nothing", chs, err)
	}
	// The same fields spelled right register.
	if a := e.do(t, http.MethodPost, "/v1/channels", appKey, `{"uri":"`+uri+`","user":"ann","feeds":["news"],"device":"d"}`); a.code != http.StatusCreated {
		t.Errorf("exact names: %d %s", a.code, a.body)
	}
}
