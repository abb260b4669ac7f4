package emulator_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tilecast/tilecast/emulator"
)

// guardReq is one request of the guard tests: the emulator listens on a
// real loopback socket, the Host and browser headers are set by hand the
// way a browser on a hostile page (or DNS rebinding) would send them.
type guardReq struct {
	method, path, body string
	host               string            // "" keeps the listener's address
	headers            map[string]string // Origin, Sec-Fetch-Site, …
}

func (g guardReq) do(t *testing.T, srv *httptest.Server) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(g.method, srv.URL+g.path, strings.NewReader(g.body))
	if err != nil {
		t.Fatal(err)
	}
	if g.host != "" {
		req.Host = g.host
	}
	for k, v := range g.headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestGuardRefusesForeignHostAndCrossOrigin(t *testing.T) {
	e, srv := start(t, emulator.Options{})
	ch := mustCreate(t, e, emulator.Healthy)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	own := srv.URL // http://127.0.0.1:PORT
	pushPath := strings.TrimPrefix(ch.URI, own)
	evilHost := "attacker.example:" + itoa(port) // a rebound name: it resolves to 127.0.0.1
	create := `{"behaviour":"expired","name":"planted"}`
	behaviour := `{"behaviour":"expired"}`
	toast := toastBody("Planted", "by a web page")
	pushHeaders := map[string]string{"Content-Type": "text/xml", "X-WindowsPhone-Target": "toast", "X-NotificationClass": "2"}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	refused := []struct {
		name string
		req  guardReq
		want string
	}{
		{"rebound host creates", guardReq{method: "POST", path: "/channels", body: create, host: evilHost}, "is not this emulator's"},
		{"rebound host changes a behaviour", guardReq{method: "POST", path: "/channels/" + ch.Token + "/behaviour", body: behaviour, host: evilHost}, "is not this emulator's"},
		{"rebound host expires", guardReq{method: "POST", path: "/channels/" + ch.Token + "/expire", host: evilHost}, "is not this emulator's"},
		{"rebound host reads the state", guardReq{method: "GET", path: "/state.json", host: evilHost}, "is not this emulator's"},
		{"rebound host reads a channel", guardReq{method: "GET", path: "/channels/" + ch.Token, host: evilHost}, "is not this emulator's"},
		{"rebound host pushes", guardReq{method: "POST", path: pushPath, body: toast, host: evilHost, headers: pushHeaders}, "is not this emulator's"},
		{"rebound host, same-origin Origin", guardReq{method: "POST", path: "/channels", body: create, host: evilHost,
			headers: map[string]string{"Origin": "http://" + evilHost}}, "is not this emulator's"},
		{"lookalike of localhost", guardReq{method: "POST", path: "/channels", body: create, host: "localhost.attacker.example"}, "is not this emulator's"},
		{"cross-origin create", guardReq{method: "POST", path: "/channels", body: create,
			headers: map[string]string{"Origin": "https://attacker.example"}}, "cross-origin request refused"},
		{"cross-origin behaviour", guardReq{method: "POST", path: "/channels/" + ch.Token + "/behaviour", body: behaviour,
			headers: map[string]string{"Origin": "http://localhost:" + itoa(port+1)}}, "cross-origin request refused"},
		{"cross-origin expire, fetch metadata only", guardReq{method: "POST", path: "/channels/" + ch.Token + "/expire",
			headers: map[string]string{"Sec-Fetch-Site": "cross-site"}}, "cross-origin request refused"},
		{"opaque origin", guardReq{method: "POST", path: "/channels", body: create,
			headers: map[string]string{"Origin": "null"}}, "cross-origin request refused"},
		{"cross-origin push from a page", guardReq{method: "POST", path: pushPath, body: toast,
			headers: with(pushHeaders, "Origin", "https://attacker.example", "Sec-Fetch-Site", "cross-site")}, "cross-origin request refused"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := tc.req.do(t, srv)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, tc.want) {
				t.Errorf("%d %s; want 403 with %q", resp.StatusCode, body, tc.want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			wantSecurityHeaders(t, resp)
		})
	}
	// Nothing the refused requests tried happened.
	if n := len(e.Channels()); n != 1 {
		t.Errorf("%d channels after the refused requests, want 1", n)
	}
	st, _ := e.Channel(ch.Token)
	if st.Behaviour != emulator.Healthy || st.Counts.Total != 0 || len(st.Toasts) != 0 {
		t.Errorf("channel changed by refused requests: %+v", st)
	}

	accepted := []struct {
		name   string
		req    guardReq
		status int
	}{
		{"curl: no Origin", guardReq{method: "POST", path: "/channels", body: `{"name":"curl"}`}, http.StatusCreated},
		{"own page: same-origin Origin", guardReq{method: "POST", path: "/channels", body: `{"name":"page"}`,
			headers: map[string]string{"Origin": own, "Sec-Fetch-Site": "same-origin"}}, http.StatusCreated},
		{"own origin without fetch metadata", guardReq{method: "POST", path: "/channels/" + ch.Token + "/behaviour", body: `{"behaviour":"healthy"}`,
			headers: map[string]string{"Origin": own}}, http.StatusOK},
		{"localhost by name", guardReq{method: "POST", path: "/channels", body: `{"name":"localhost"}`, host: "localhost:" + itoa(port),
			headers: map[string]string{"Origin": "http://localhost:" + itoa(port)}}, http.StatusCreated},
		{"a name under localhost", guardReq{method: "GET", path: "/state.json", host: "emu.localhost:" + itoa(port)}, http.StatusOK},
		{"IPv6 loopback literal", guardReq{method: "GET", path: "/state.json", host: "[::1]:" + itoa(port)}, http.StatusOK},
		{"a LAN address literal", guardReq{method: "GET", path: "/channels", host: "192.168.1.20:" + itoa(port)}, http.StatusOK},
		{"the daemon's push: no Origin", guardReq{method: "POST", path: pushPath, body: toast, headers: pushHeaders}, http.StatusOK},
		{"the page's read", guardReq{method: "GET", path: "/state.json", headers: map[string]string{"Sec-Fetch-Site": "same-origin"}}, http.StatusOK},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := tc.req.do(t, srv)
			if resp.StatusCode != tc.status {
				t.Errorf("%d %s; want %d", resp.StatusCode, body, tc.status)
			}
			wantSecurityHeaders(t, resp)
		})
	}
}

// TestGuardAllowedHosts: BaseURL's host and Options.Hosts are accepted
// names; others are not.
func TestGuardAllowedHosts(t *testing.T) {
	e := emulator.New(emulator.Options{BaseURL: "http://emu.test:8461", Hosts: []string{"Tilecast-Emulator."}})
	h := e.Handler()
	for host, want := range map[string]int{
		"emu.test:8461":             http.StatusOK,
		"EMU.test":                  http.StatusOK,
		"tilecast-emulator:8461":    http.StatusOK,
		"tilecast-emulator.":        http.StatusOK,
		"other.test:8461":           http.StatusForbidden,
		"emu.test.attacker.example": http.StatusForbidden,
		"":                          http.StatusForbidden,
	} {
		req := httptest.NewRequest(http.MethodGet, "/channels", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %q: %d, want %d", host, rec.Code, want)
		}
	}
}

// TestSecurityHeaders: every kind of answer carries the framing and
// content-type headers, with an explicit Content-Type.
func TestSecurityHeaders(t *testing.T) {
	e, srv := start(t, emulator.Options{})
	ch := mustCreate(t, e, emulator.Healthy)
	for path, ctype := range map[string]string{
		"/":                     "text/html; charset=utf-8",
		"/state.json":           "application/json; charset=utf-8",
		"/channels":             "application/json; charset=utf-8",
		"/channels/" + ch.Token: "application/json; charset=utf-8",
		"/channels/nope":        "application/json; charset=utf-8",
		"/assets/phone.js":      "text/javascript; charset=utf-8",
		"/assets/phone.css":     "text/css; charset=utf-8",
		"/assets/tileview.css":  "text/css; charset=utf-8",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Content-Type"); got != ctype {
			t.Errorf("%s: Content-Type %q, want %q", path, got, ctype)
		}
		wantSecurityHeaders(t, resp)
	}
	resp := send(t, ch.URI, req{method: http.MethodGet})
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("GET on a push endpoint: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	wantSecurityHeaders(t, resp)
	var created map[string]any
	r, body := guardReq{method: "POST", path: "/channels", body: `{}`}.do(t, srv)
	if err := json.Unmarshal([]byte(body), &created); err != nil || r.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", r.StatusCode, body)
	}
	wantSecurityHeaders(t, r)
}

func wantSecurityHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	h := resp.Header
	csp := h.Get("Content-Security-Policy")
	if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" ||
		h.Get("Referrer-Policy") != "no-referrer" || !strings.Contains(csp, "frame-ancestors 'none'") ||
		!strings.Contains(csp, "default-src 'self'") {
		t.Errorf("%s %s: security headers missing: %v", resp.Request.Method, resp.Request.URL.Path, h)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
