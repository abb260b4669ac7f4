package emulator_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast/emulator"
)

const (
	wnsID     = "ms-app://s-1-15-2-1111-emulator"
	wnsSecret = "emu+secret/=1"
)

func startWNS(t *testing.T, clk *clock) (*emulator.Emulator, *httptest.Server) {
	t.Helper()
	opts := emulator.Options{WNSClientID: wnsID, WNSClientSecret: []byte(wnsSecret), WNSTokenTTL: time.Hour}
	if clk != nil {
		opts.Now = clk.Now
	}
	return start(t, opts)
}

// tokenAt asks the token endpoint at path with a form.
func tokenAt(t *testing.T, srv *httptest.Server, path string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(srv.URL+path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("token answer: %v", err)
	}
	return resp.StatusCode, out
}

func classicForm(id, secret, scope string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}, "scope": {scope}}
}

func mustToken(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	status, out := tokenAt(t, srv, emulator.WNSClassicTokenPath, classicForm(wnsID, wnsSecret, "notify.windows.com"))
	tok, _ := out["access_token"].(string)
	if status != 200 || tok == "" {
		t.Fatalf("token: %d %v", status, out)
	}
	return tok
}

func mustWindows(t *testing.T, e *emulator.Emulator, behaviour string, p ...emulator.WNSParams) emulator.WindowsDevice {
	t.Helper()
	d, err := e.CreateWindowsDevice(behaviour, "win "+behaviour, p...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// wreq is one push to a Windows device.
type wreq struct {
	method, typ, ctype, token, body string
	extra                           map[string]string
}

func (r wreq) send(t *testing.T, uri string) *http.Response {
	t.Helper()
	m := r.method
	if m == "" {
		m = http.MethodPost
	}
	hr, err := http.NewRequest(m, uri, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if r.typ != "" {
		hr.Header["X-WNS-Type"] = []string{r.typ}
	}
	ct := r.ctype
	if ct == "" {
		ct = "text/xml"
		if r.typ == "wns/raw" {
			ct = "application/octet-stream"
		}
	}
	if ct != "-" {
		hr.Header.Set("Content-Type", ct)
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.extra {
		hr.Header[k] = []string{v}
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func wnsGolden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "wns-"+name+".body"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const genericToast = `<toast launch="/x?a=1"><visual><binding template="ToastGeneric"><text>Title</text><text>Body &amp; more</text></binding></visual></toast>`

func TestWNSTokenEndpoint(t *testing.T) {
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	e, srv := startWNS(t, clk)
	status, out := tokenAt(t, srv, emulator.WNSClassicTokenPath, classicForm(wnsID, wnsSecret, "notify.windows.com"))
	if status != 200 || out["token_type"] != "bearer" || out["expires_in"] != float64(3600) {
		t.Errorf("classic: %d %v", status, out)
	}
	// The Entra flow answers with strings, as Microsoft's sample does.
	form := classicForm(wnsID, wnsSecret, "https://wns.windows.com/.default")
	status, out = tokenAt(t, srv, emulator.WNSEntraTokenPath("contoso.onmicrosoft.com"), form)
	if status != 200 || out["token_type"] != "Bearer" || out["expires_in"] != "3600" {
		t.Errorf("entra: %d %v", status, out)
	}
	tests := []struct {
		name   string
		path   string
		form   url.Values
		status int
		code   string
	}{
		{"wrong secret", emulator.WNSClassicTokenPath, classicForm(wnsID, "nope", "notify.windows.com"), 400, "invalid_client"},
		{"wrong id", emulator.WNSClassicTokenPath, classicForm("ms-app://other", wnsSecret, "notify.windows.com"), 400, "invalid_client"},
		{"entra wrong secret", emulator.WNSEntraTokenPath("t"), classicForm(wnsID, "nope", "https://wns.windows.com/.default"), 401, "invalid_client"},
		{"classic scope on entra", emulator.WNSEntraTokenPath("t"), classicForm(wnsID, wnsSecret, "notify.windows.com"), 400, "invalid_scope"},
		{"entra scope with a stray slash", emulator.WNSEntraTokenPath("t"), classicForm(wnsID, wnsSecret, "https://wns.windows.com/.default/"), 400, "invalid_scope"},
		{"no grant", emulator.WNSClassicTokenPath, url.Values{"client_id": {wnsID}, "client_secret": {wnsSecret}, "scope": {"notify.windows.com"}}, 400, "unsupported_grant_type"},
	}
	for _, tt := range tests {
		status, out := tokenAt(t, srv, tt.path, tt.form)
		if status != tt.status || out["error"] != tt.code {
			t.Errorf("%s: %d %v, want %d %s", tt.name, status, out, tt.status, tt.code)
		}
	}
	if n := e.WNSTokenRequests(); n != 2 {
		t.Errorf("%d tokens issued, want 2", n)
	}

	// Tokens expire: a push with one gets 401 "Token expired".
	d := mustWindows(t, e, emulator.Healthy)
	tok := mustToken(t, srv)
	if resp := (wreq{typ: "wns/toast", token: tok, body: genericToast}).send(t, d.URI); resp.StatusCode != 200 {
		t.Fatalf("fresh token: %d %s", resp.StatusCode, resp.Header.Get("X-WNS-Error-Description"))
	}
	clk.Set(clk.Now().Add(time.Hour))
	resp := (wreq{typ: "wns/toast", token: tok, body: genericToast}).send(t, d.URI)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Token expired") {
		t.Errorf("expired token: %d %v", resp.StatusCode, resp.Header)
	}
	for name, tk := range map[string]string{"unknown": "made-up", "missing": ""} {
		if resp := (wreq{typ: "wns/toast", token: tk, body: genericToast}).send(t, d.URI); resp.StatusCode != 401 {
			t.Errorf("%s token: %d", name, resp.StatusCode)
		}
	}
	// ExpireWNSTokens ends every token at once (tokens expiring mid fan-out).
	tok = mustToken(t, srv)
	e.ExpireWNSTokens()
	if resp := (wreq{typ: "wns/toast", token: tok, body: genericToast}).send(t, d.URI); resp.StatusCode != 401 {
		t.Errorf("after ExpireWNSTokens: %d", resp.StatusCode)
	}
	st, _ := e.WindowsDeviceState(d.Token)
	if st.Counts.Unauthorized != 4 || st.Counts.Received != 1 {
		t.Errorf("counts %+v", st.Counts)
	}

	// Without a client id the endpoint refuses everything, and says why.
	_, srv2 := start(t, emulator.Options{})
	status, out = tokenAt(t, srv2, emulator.WNSClassicTokenPath, classicForm("", "", "notify.windows.com"))
	if status != 400 || !strings.Contains(out["error_description"].(string), "--wns-client-id") {
		t.Errorf("unconfigured: %d %v", status, out)
	}
}

func TestWNSAcceptsGoldens(t *testing.T) {
	e, srv := startWNS(t, nil)
	d := mustWindows(t, e, emulator.Healthy)
	tok := mustToken(t, srv)
	for name, typ := range map[string]string{
		"toast-ToastText02-with-token-fetch": "wns/toast",
		"tile-TileWideText09-cached-token":   "wns/tile",
		"tile-multi-binding":                 "wns/tile",
		"badge-numeric":                      "wns/badge",
		"raw":                                "wns/raw",
	} {
		resp := (wreq{typ: typ, token: tok, body: wnsGolden(t, name)}).send(t, d.URI)
		if resp.StatusCode != 200 || resp.Header.Get("X-WNS-Status") != "received" {
			t.Errorf("%s: %d %s", name, resp.StatusCode, resp.Header.Get("X-WNS-Error-Description"))
		}
	}
}

func TestWNSRejectsMalformed(t *testing.T) {
	e, srv := startWNS(t, nil)
	d := mustWindows(t, e, emulator.Healthy)
	tok := mustToken(t, srv)
	big := `<toast><visual><binding template="ToastGeneric"><text>` + strings.Repeat("x", 5000) + `</text></binding></visual></toast>`
	tests := []struct {
		name   string
		r      wreq
		status int
		reason string
	}{
		{"GET", wreq{method: "GET", typ: "wns/toast"}, 405, "only POST"},
		{"no type", wreq{body: genericToast}, 400, "missing X-WNS-Type"},
		{"bad type", wreq{typ: "wns/flip", body: genericToast}, 400, "X-WNS-Type"},
		{"raw as xml", wreq{typ: "wns/raw", ctype: "text/xml", body: "x"}, 400, "Content-Type"},
		{"toast as octets", wreq{typ: "wns/toast", ctype: "application/octet-stream", body: genericToast}, 400, "Content-Type"},
		{"no content type", wreq{typ: "wns/toast", ctype: "-", body: genericToast}, 400, "Content-Type"},
		{"too large", wreq{typ: "wns/toast", body: big}, 413, "5000"},
		{"empty", wreq{typ: "wns/toast"}, 400, "empty"},
		{"not xml", wreq{typ: "wns/toast", body: "<toast>"}, 400, "malformed"},
		{"tile body as toast", wreq{typ: "wns/toast", body: wnsGolden(t, "tile-multi-binding")}, 400, "<tile>"},
		{"mpns body", wreq{typ: "wns/toast", body: golden(t, "a-toast")}, 400, "namespace"},
		{"doctype", wreq{typ: "wns/toast", body: `<!DOCTYPE toast><toast/>`}, 400, "DOCTYPE"},
		{"unknown toast attribute", wreq{typ: "wns/toast", body: `<toast lunch="x"><visual><binding template="ToastGeneric"><text>a</text></binding></visual></toast>`}, 400, "lunch"},
		{"generic toast without text", wreq{typ: "wns/toast", body: `<toast><visual><binding template="ToastGeneric"></binding></visual></toast>`}, 400, "at least one <text>"},
		{"legacy text id over its slots", wreq{typ: "wns/toast", body: `<toast><visual><binding template="ToastText01"><text id="2">a</text></binding></visual></toast>`}, 400, "slots"},
		{"tile template in a toast", wreq{typ: "wns/toast", body: `<toast><visual><binding template="TileWideText09"><text id="1">a</text></binding></visual></toast>`}, 400, "not a toast template"},
		{"unknown template", wreq{typ: "wns/tile", body: `<tile><visual><binding template="TileHuge"><text>a</text></binding></visual></tile>`}, 400, "TileHuge"},
		{"two wide bindings", wreq{typ: "wns/tile", body: `<tile><visual><binding template="TileWide"><text>a</text></binding><binding template="TileWideText09"><text id="1">b</text></binding></visual></tile>`}, 400, "two bindings"},
		{"bad branding", wreq{typ: "wns/tile", body: `<tile><visual branding="loud"><binding template="TileSmall"><text>a</text></binding></visual></tile>`}, 400, "branding"},
		{"javascript image", wreq{typ: "wns/tile", body: `<tile><visual><binding template="TileMedium"><image src="javascript:alert(1)"/></binding></visual></tile>`}, 400, "src"},
		{"bad badge", wreq{typ: "wns/badge", body: `<badge value="lots"/>`}, 400, "badge value"},
		{"negative badge", wreq{typ: "wns/badge", body: `<badge value="-1"/>`}, 400, "badge value"},
		{"bad sound", wreq{typ: "wns/toast", body: `<toast><visual><binding template="ToastGeneric"><text>a</text></binding></visual><audio src="ms-winsoundevent:Notification.Beep"/></toast>`}, 400, "system sound"},
		{"looping short toast", wreq{typ: "wns/toast", body: `<toast><visual><binding template="ToastGeneric"><text>a</text></binding></visual><audio src="ms-winsoundevent:Notification.Looping.Call" loop="true"/></toast>`}, 400, "looping"},
		{"unknown header", wreq{typ: "wns/toast", body: genericToast, extra: map[string]string{"X-WNS-Tll": "60"}}, 400, "unknown header"},
		{"bad ttl", wreq{typ: "wns/toast", body: genericToast, extra: map[string]string{"X-WNS-TTL": "1h"}}, 400, "X-Wns-Ttl"},
		{"long tag", wreq{typ: "wns/tile", body: wnsGolden(t, "tile-multi-binding"), extra: map[string]string{"X-WNS-Tag": "abcdefghijklmnopq"}}, 400, "X-Wns-Tag"},
		{"bad cache policy", wreq{typ: "wns/tile", body: wnsGolden(t, "tile-multi-binding"), extra: map[string]string{"X-WNS-Cache-Policy": "always"}}, 400, "Cache-Policy"},
		{"tag on raw", wreq{typ: "wns/raw", body: "x", extra: map[string]string{"X-WNS-Tag": "abc"}}, 400, "X-WNS-Tag on wns/raw"},
	}
	for _, tt := range tests {
		tt.r.token = tok
		resp := tt.r.send(t, d.URI)
		if resp.StatusCode != tt.status || !strings.Contains(resp.Header.Get("X-WNS-Error-Description"), tt.reason) {
			t.Errorf("%s: %d %q, want %d containing %q", tt.name, resp.StatusCode, resp.Header.Get("X-WNS-Error-Description"), tt.status, tt.reason)
		}
		if resp.Header.Get("X-WNS-Msg-ID") == "" || resp.Header.Get("MS-CV") == "" {
			t.Errorf("%s: no X-WNS-Msg-ID / MS-CV", tt.name)
		}
	}
	st, _ := e.WindowsDeviceState(d.Token)
	if st.Counts.Rejected != len(tests) || st.Counts.Received != 0 || len(st.Rejected) != len(tests) {
		t.Errorf("counts %+v, %d rejections recorded", st.Counts, len(st.Rejected))
	}
}

func TestWNSBehaviours(t *testing.T) {
	e, srv := startWNS(t, nil)
	tok := mustToken(t, srv)
	toast := wreq{typ: "wns/toast", token: tok, body: genericToast, extra: map[string]string{"X-WNS-RequestForStatus": "true"}}
	type ans struct {
		status        int
		notification  string
		continueAfter string
	}
	tests := []struct {
		behaviour string
		params    emulator.WNSParams
		want      []ans
	}{
		{emulator.Healthy, emulator.WNSParams{}, []ans{{200, "received", ""}}},
		{emulator.Revoked, emulator.WNSParams{}, []ans{{410, "dropped", ""}}},
		{emulator.Unknown, emulator.WNSParams{}, []ans{{404, "", ""}}},
		{emulator.WrongApp, emulator.WNSParams{}, []ans{{403, "", ""}}},
		{emulator.Throttled, emulator.WNSParams{ThrottleN: 2}, []ans{{406, "", "5"}, {406, "", "5"}, {200, "received", ""}}},
		{emulator.Throttled, emulator.WNSParams{ThrottleN: 1, ThrottleStatus: 429, ContinueAfter: 30}, []ans{{429, "", "30"}, {200, "received", ""}}},
		{emulator.Throttled, emulator.WNSParams{ThrottleN: 1, ThrottleStatus: 200}, []ans{{200, "channelthrottled", "5"}, {200, "received", ""}}},
		{emulator.Flaky, emulator.WNSParams{FlakyP: 1}, []ans{{503, "", ""}}},
	}
	for _, tt := range tests {
		d := mustWindows(t, e, tt.behaviour, tt.params)
		for i, w := range tt.want {
			resp := toast.send(t, d.URI)
			if resp.StatusCode != w.status || resp.Header.Get("X-WNS-Status") != w.notification || resp.Header.Get("X-WNS-CONTINUE-AFTER") != w.continueAfter {
				t.Errorf("%s %+v push %d: %d %q %q, want %+v", tt.behaviour, tt.params, i, resp.StatusCode,
					resp.Header.Get("X-WNS-Status"), resp.Header.Get("X-WNS-CONTINUE-AFTER"), w)
			}
			if w.status == 200 && w.notification == "received" && resp.Header.Get("X-WNS-DeviceConnectionStatus") != "connected" {
				t.Errorf("%s: no device status though requested", tt.behaviour)
			}
		}
	}
	// A channel token the emulator never issued is 404, after the auth check.
	if resp := toast.send(t, srv.URL+"/w/?token=nope"); resp.StatusCode != 404 {
		t.Errorf("unknown device: %d", resp.StatusCode)
	}
	if err := e.SetWindowsBehaviour("nope", emulator.Healthy); err == nil {
		t.Error("behaviour set on an unknown device")
	}
	if _, err := e.CreateWindowsDevice("queuefull", "x"); err == nil {
		t.Error("an MPNS behaviour accepted for a Windows device")
	}
}

func TestWNSDeviceState(t *testing.T) {
	e, srv := startWNS(t, nil)
	d := mustWindows(t, e, emulator.Healthy)
	tok := mustToken(t, srv)
	adaptive := `<tile><visual branding="name" displayName="News &amp; more"><binding template="TileSmall"><image placement="background" src="https://x.org/s.png"/></binding>` +
		`<binding template="TileMedium"><image placement="background" src="https://x.org/m.png"/><text hint-style="caption" hint-wrap="true">Newest item</text></binding>` +
		`<binding template="TileWide"><text hint-style="body">Newest item</text><text hint-style="captionSubtle">Its summary</text></binding>` +
		`<binding template="TileLarge"><group><subgroup hint-weight="1"><text>In a group</text></subgroup></group></binding></visual></tile>`
	for _, r := range []wreq{
		{typ: "wns/toast", body: `<toast><visual><binding template="ToastGeneric"><text>First</text></binding></visual></toast>`},
		{typ: "wns/tile", body: adaptive, extra: map[string]string{"X-WNS-Tag": "news", "X-WNS-TTL": "600"}},
		{typ: "wns/badge", body: `<badge value="7"/>`},
		{typ: "wns/toast", body: `<toast launch="/i?1" scenario="reminder"><visual><binding template="ToastGeneric"><text>Second</text><text>body</text>` +
			`<image placement="appLogoOverride" src="ms-appx:///logo.png"/><image placement="hero" src="https://x.org/h.png"/></binding></visual><audio silent="true"/></toast>`, extra: map[string]string{"X-WNS-TTL": "60"}},
		{typ: "wns/raw", body: `{"n":1}`},
	} {
		r.token = tok
		if resp := r.send(t, d.URI); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", r.typ, resp.StatusCode, resp.Header.Get("X-WNS-Error-Description"))
		}
	}
	st, _ := e.WindowsDeviceState(d.Token)
	if st.Tile.DisplayName != "News & more" || st.Tile.Tag != "news" || len(st.Tile.Sizes) != 4 {
		t.Errorf("tile %+v", st.Tile)
	}
	if m := st.Tile.Sizes["medium"]; m.Image != "https://x.org/m.png" || len(m.Texts) != 1 || m.Texts[0] != "Newest item" {
		t.Errorf("medium %+v", m)
	}
	if l := st.Tile.Sizes["large"]; len(l.Texts) != 1 || l.Texts[0] != "In a group" {
		t.Errorf("large %+v", l)
	}
	if st.Badge != "7" {
		t.Errorf("badge %q", st.Badge)
	}
	if len(st.Toasts) != 2 || st.Toasts[0].Texts[0] != "Second" || st.Toasts[0].Hero != "https://x.org/h.png" ||
		st.Toasts[0].AppLogo != "ms-appx:///logo.png" || !st.Toasts[0].Silent || st.Toasts[0].Scenario != "reminder" || st.Toasts[0].TTL != 60 {
		t.Errorf("toasts %+v", st.Toasts)
	}
	if len(st.Raw) != 1 || st.Raw[0].Body != `{"n":1}` {
		t.Errorf("raw %+v", st.Raw)
	}
	// A legacy tile replaces the whole tile; badge none (and 0) clear it.
	for _, r := range []wreq{
		{typ: "wns/tile", body: wnsGolden(t, "tile-multi-binding")},
		{typ: "wns/badge", body: `<badge value="none"/>`},
	} {
		r.token = tok
		r.send(t, d.URI)
	}
	st, _ = e.WindowsDeviceState(d.Token)
	if len(st.Tile.Sizes) != 2 || st.Tile.Sizes["wide"].Template != "TileWideText09" || st.Tile.Sizes["medium"].Texts[0] != "Hello" || st.Badge != "" {
		t.Errorf("after the legacy tile: %+v badge %q", st.Tile, st.Badge)
	}
	for v, shown := range map[string]string{"0": "", "150": "99+", "alert": "alert", "42": "42"} {
		(wreq{typ: "wns/badge", token: tok, body: `<badge value="` + v + `"/>`}).send(t, d.URI)
		if st, _ := e.WindowsDeviceState(d.Token); st.Badge != shown {
			t.Errorf("badge %s shows %q, want %q", v, st.Badge, shown)
		}
	}
}

func TestWNSChannelAPI(t *testing.T) {
	e, srv := startWNS(t, nil)
	resp, out := postJSON(t, srv.URL+"/channels", map[string]any{"transport": "wns", "behaviour": "throttled", "name": "Ben's PC",
		"throttle_n": 1, "continue_after": 9})
	if resp.StatusCode != 201 || out["transport"] != "wns" || out["behaviour"] != "throttled" {
		t.Fatalf("create: %d %v", resp.StatusCode, out)
	}
	tok := out["token"].(string)
	if out["uri"] != srv.URL+"/w/?token="+tok {
		t.Errorf("uri %v", out["uri"])
	}
	r := wreq{typ: "wns/toast", token: mustToken(t, srv), body: genericToast}
	if resp := r.send(t, out["uri"].(string)); resp.StatusCode != 406 || resp.Header.Get("X-WNS-CONTINUE-AFTER") != "9" {
		t.Errorf("throttled push: %d %v", resp.StatusCode, resp.Header)
	}
	g, err := http.Get(srv.URL + "/channels/" + tok)
	if err != nil {
		t.Fatal(err)
	}
	var st emulator.WindowsState
	if err := json.NewDecoder(g.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	g.Body.Close()
	if st.Name != "Ben's PC" || st.Counts.Throttled != 1 || st.Params.ContinueAfter != 9 {
		t.Errorf("state %+v", st)
	}
	resp, out = postJSON(t, srv.URL+"/channels/"+tok+"/behaviour", map[string]any{"behaviour": "wrongapp"})
	if resp.StatusCode != 200 || out["behaviour"] != "wrongapp" {
		t.Errorf("behaviour: %d %v", resp.StatusCode, out)
	}
	resp, out = postJSON(t, srv.URL+"/channels/"+tok+"/expire", nil)
	if resp.StatusCode != 200 || out["behaviour"] != "revoked" {
		t.Errorf("expire: %d %v", resp.StatusCode, out)
	}
	if resp := r.send(t, st.URI); resp.StatusCode != 410 {
		t.Errorf("after expire: %d", resp.StatusCode)
	}
	for _, bad := range []map[string]any{
		{"transport": "wns", "behaviour": "queuefull"},
		{"transport": "wns", "throttle_status": 500},
		{"transport": "wns", "queuefull_n": 1},
		{"transport": "carrier-pigeon"},
	} {
		if resp, out := postJSON(t, srv.URL+"/channels", bad); resp.StatusCode != 400 {
			t.Errorf("create %v: %d %v", bad, resp.StatusCode, out)
		}
	}
	if resp, out := postJSON(t, srv.URL+"/channels", map[string]any{"transport": "mpns", "behaviour": "healthy"}); resp.StatusCode != 201 {
		t.Errorf("explicit mpns: %d %v", resp.StatusCode, out)
	}
	g, err = http.Get(srv.URL + "/channels")
	if err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	if err := json.NewDecoder(g.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	g.Body.Close()
	if len(list) != 2 || list[1]["transport"] != "wns" || len(e.WindowsDevices()) != 1 || len(e.Channels()) != 1 {
		t.Errorf("list %v", list)
	}
}

// TestWNSState: /state.json carries the Windows devices with their Start
// menu and Action Center rendered, and text from pushes is escaped.
func TestWNSState(t *testing.T) {
	e, srv := startWNS(t, nil)
	d := mustWindows(t, e, emulator.Healthy)
	tok := mustToken(t, srv)
	(wreq{typ: "wns/toast", token: tok, body: `<toast><visual><binding template="ToastGeneric"><text>&lt;script&gt;x&lt;/script&gt;</text></binding></visual></toast>`}).send(t, d.URI)
	(wreq{typ: "wns/badge", token: tok, body: `<badge value="12"/>`}).send(t, d.URI)
	r, err := http.Get(srv.URL + "/state.json")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var st struct {
		Windows []struct {
			Token            string `json:"token"`
			StartHTML        string `json:"start_html"`
			ActionCenterHTML string `json:"action_center_html"`
		} `json:"windows"`
	}
	if err := json.NewDecoder(r.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if len(st.Windows) != 1 || st.Windows[0].Token != d.Token {
		t.Fatalf("windows %+v", st.Windows)
	}
	w := st.Windows[0]
	if strings.Contains(w.ActionCenterHTML, "<script>") || !strings.Contains(w.ActionCenterHTML, "&lt;script&gt;") {
		t.Errorf("toast text not escaped: %s", w.ActionCenterHTML)
	}
	if strings.Count(w.StartHTML, `class="ws-badge">12<`) != 4 {
		t.Errorf("badge not on all four sizes: %s", w.StartHTML)
	}
	for _, size := range []string{"small", "medium", "wide", "large"} {
		if !strings.Contains(w.StartHTML, `data-size="`+size+`"`) {
			t.Errorf("no %s tile in %s", size, w.StartHTML)
		}
	}
}

// TestWNSConcurrentTokens: pushes and token requests at once stay
// consistent (run with -race).
func TestWNSConcurrentTokens(t *testing.T) {
	e, srv := startWNS(t, nil)
	d := mustWindows(t, e, emulator.Healthy)
	tokens := make([]string, 8)
	for i := range tokens {
		tokens[i] = mustToken(t, srv)
	}
	done := make(chan int, len(tokens))
	for i, tok := range tokens {
		go func() {
			ok := 0
			for j := range 5 {
				hr, _ := http.NewRequest(http.MethodPost, d.URI, strings.NewReader(`<badge value="`+strconv.Itoa(i*10+j)+`"/>`))
				hr.Header.Set("Content-Type", "text/xml")
				hr.Header.Set("X-WNS-Type", "wns/badge")
				hr.Header.Set("Authorization", "Bearer "+tok)
				if resp, err := http.DefaultClient.Do(hr); err == nil {
					if resp.StatusCode == 200 {
						ok++
					}
					resp.Body.Close()
				}
			}
			done <- ok
		}()
	}
	total := 0
	for range tokens {
		total += <-done
	}
	st, _ := e.WindowsDeviceState(d.Token)
	if total != 40 || st.Counts.Received != 40 || e.WNSTokenRequests() != 8 {
		t.Errorf("%d ok, counts %+v, %d tokens", total, st.Counts, e.WNSTokenRequests())
	}
}
