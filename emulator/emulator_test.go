package emulator_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast/emulator"
)

// clock is an injectable, settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func start(t *testing.T, opts emulator.Options) (*emulator.Emulator, *httptest.Server) {
	t.Helper()
	e := emulator.New(opts)
	srv := httptest.NewServer(e.Handler())
	e.SetBaseURL(srv.URL)
	t.Cleanup(srv.Close)
	t.Cleanup(e.Close) // runs first: ends SSE streams so srv.Close does not wait
	return e, srv
}

func mustCreate(t *testing.T, e *emulator.Emulator, behaviour string, p ...emulator.Params) emulator.Channel {
	t.Helper()
	ch, err := e.CreateChannel(behaviour, "test "+behaviour, p...)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func golden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".body"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const toastTpl = `<?xml version="1.0" encoding="utf-8"?><wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>%s</wp:Text1><wp:Text2>%s</wp:Text2></wp:Toast></wp:Notification>`

func toastBody(t1, t2 string) string { return fmt.Sprintf(toastTpl, t1, t2) }

const tileTpl = `<?xml version="1.0" encoding="utf-8"?><wp:Notification xmlns:wp="WPNotification"><wp:Tile%s>%s</wp:Tile></wp:Notification>`

func tileBody(attrs, inner string) string { return fmt.Sprintf(tileTpl, attrs, inner) }

// req describes one push.
type req struct {
	method string
	target string // "" = header absent
	class  string // "" = header absent
	ctype  string
	extra  map[string]string
	body   string
}

func toastReq(body string) req { return req{target: "toast", class: "2", body: body} }
func tileReq(body string) req  { return req{target: "token", class: "1", body: body} }

func (r req) build(t testing.TB, uri string) *http.Request {
	t.Helper()
	m := r.method
	if m == "" {
		m = http.MethodPost
	}
	hr, err := http.NewRequest(m, uri, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	ct := r.ctype
	if ct == "" {
		ct = "text/xml"
	}
	hr.Header.Set("Content-Type", ct)
	if r.target != "" {
		hr.Header.Set("X-WindowsPhone-Target", r.target)
	}
	if r.class != "" {
		hr.Header.Set("X-NotificationClass", r.class)
	}
	for k, v := range r.extra {
		hr.Header.Set(k, v)
	}
	return hr
}

// send pushes over real HTTP.
func send(t testing.TB, uri string, r req) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(r.build(t, uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// serve pushes through the handler without a socket (fast loops).
func serve(t testing.TB, h http.Handler, uri string, r req) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	hr := r.build(t, uri)
	hr.RequestURI = hr.URL.RequestURI()
	h.ServeHTTP(rec, hr)
	return rec
}

func TestRejectsMalformed(t *testing.T) {
	e, _ := start(t, emulator.Options{})
	ch := mustCreate(t, e, emulator.Healthy)
	okToast := toastBody("a", "b")
	tests := []struct {
		name   string
		r      req
		status int
		reason string
	}{
		{"GET", req{method: http.MethodGet}, 405, "POST"},
		{"wrong target header", req{target: "tile", class: "1", body: tileBody("", "<wp:Title>x</wp:Title>")}, 400, "X-WindowsPhone-Target"},
		{"missing target on toast (class 2)", req{class: "2", body: okToast}, 400, "X-NotificationClass"},
		{"missing target on toast (no class)", req{body: okToast}, 400, "missing X-WindowsPhone-Target"},
		{"target present on raw", req{target: "toast", class: "3", body: "hello"}, 400, "X-NotificationClass"},
		{"target present on raw body", req{target: "toast", body: "hello raw"}, 400, "not XML"},
		{"bad class", req{target: "toast", class: "5", body: okToast}, 400, "X-NotificationClass"},
		{"class not a number", req{target: "token", class: "one", body: tileBody("", "")}, 400, "X-NotificationClass"},
		{"tile class on toast", req{target: "toast", class: "1", body: okToast}, 400, "X-NotificationClass"},
		{"wrong content type", req{target: "toast", class: "2", ctype: "application/json", body: okToast}, 400, "Content-Type"},
		{"wrong charset", req{target: "toast", class: "2", ctype: "text/xml; charset=iso-8859-1", body: okToast}, 400, "charset"},
		{"non-XML", toastReq("this is not xml"), 400, "not XML"},
		{"unclosed element", toastReq(`<wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>a</wp:Toast></wp:Notification>`), 400, "malformed XML"},
		{"invalid UTF-8", toastReq(toastBody("a\xff", "b")), 400, "UTF-8"},
		{"latin1 declaration", toastReq(`<?xml version="1.0" encoding="iso-8859-1"?><wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>a</wp:Text1></wp:Toast></wp:Notification>`), 400, "malformed XML"},
		{"wrong namespace", toastReq(`<wp:Notification xmlns:wp="urn:WPNotification"><wp:Toast><wp:Text1>a</wp:Text1></wp:Toast></wp:Notification>`), 400, "namespace"},
		{"undeclared prefix", toastReq(`<wp:Notification><wp:Toast><wp:Text1>a</wp:Text1></wp:Toast></wp:Notification>`), 400, "namespace"},
		{"child without namespace", toastReq(`<wp:Notification xmlns:wp="WPNotification"><Toast><wp:Text1>a</wp:Text1></Toast></wp:Notification>`), 400, "namespace"},
		{"unknown toast element", toastReq(`<wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>a</wp:Text1><wp:Text3>c</wp:Text3></wp:Toast></wp:Notification>`), 400, "unknown element wp:Text3"},
		{"unknown tile element", tileReq(tileBody("", "<wp:Subtitle>x</wp:Subtitle>")), 400, "unknown element wp:Subtitle"},
		{"flip element on classic tile", tileReq(tileBody("", "<wp:WideBackContent>x</wp:WideBackContent>")), 400, "unknown element wp:WideBackContent"},
		{"iconic element on flip tile", tileReq(tileBody(` Template="FlipTile"`, "<wp:WideContent1>x</wp:WideContent1>")), 400, "unknown element wp:WideContent1"},
		{"cycle image on iconic", tileReq(tileBody(` Template="IconicTile"`, "<wp:CycleImage1>x</wp:CycleImage1>")), 400, "unknown element wp:CycleImage1"},
		{"bad Template", tileReq(tileBody(` Template="FancyTile"`, "<wp:Title>x</wp:Title>")), 400, "Template"},
		{"unknown tile attribute", tileReq(tileBody(` Colour="red"`, "<wp:Title>x</wp:Title>")), 400, "attribute"},
		{"bad Action", tileReq(tileBody("", `<wp:Title Action="Remove"></wp:Title>`)), 400, "Action"},
		{"Action on toast", toastReq(`<wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1 Action="Clear">a</wp:Text1></wp:Toast></wp:Notification>`), 400, "attribute"},
		{"count 150", tileReq(tileBody("", "<wp:Count>150</wp:Count>")), 400, "Count"},
		{"count negative", tileReq(tileBody("", "<wp:Count>-1</wp:Count>")), 400, "Count"},
		{"count text", tileReq(tileBody("", "<wp:Count>three</wp:Count>")), 400, "Count"},
		{"bad colour", tileReq(tileBody(` Template="IconicTile"`, "<wp:BackgroundColor>blue</wp:BackgroundColor>")), 400, "BackgroundColor"},
		{"duplicate element", tileReq(tileBody("", "<wp:Title>a</wp:Title><wp:Title>b</wp:Title>")), 400, "twice"},
		{"nested element", tileReq(tileBody("", "<wp:Title><wp:Count>1</wp:Count></wp:Title>")), 400, "inside"},
		{"toast body with tile target", tileReq(okToast), 400, "X-WindowsPhone-Target"},
		{"tile body with toast target", toastReq(tileBody("", "<wp:Title>x</wp:Title>")), 400, "X-WindowsPhone-Target"},
		{"empty toast", toastReq(`<wp:Notification xmlns:wp="WPNotification"><wp:Toast></wp:Toast></wp:Notification>`), 400, "neither Text1 nor Text2"},
		{"empty notification", toastReq(`<wp:Notification xmlns:wp="WPNotification"></wp:Notification>`), 400, "no wp:Toast"},
		{"two roots", toastReq(okToast + "<x/>"), 400, "after the root"},
		{"doctype", toastReq(`<!DOCTYPE x><wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>a</wp:Text1></wp:Toast></wp:Notification>`), 400, "DOCTYPE"},
		{"bad Version", toastReq(`<wp:Notification xmlns:wp="WPNotification" Version="3"><wp:Toast><wp:Text1>a</wp:Text1></wp:Toast></wp:Notification>`), 400, "Version"},
		{"empty body", toastReq(""), 400, "empty"},
		{"oversize typed", toastReq(toastBody("big", strings.Repeat("x", 3000))), 400, "payload"},
		{"oversize raw", req{class: "3", body: strings.Repeat("r", 1025)}, 400, "payload"},
		{"headers over 1 KB", req{target: "toast", class: "2", body: okToast, extra: map[string]string{"X-Padding": strings.Repeat("p", 1000)}}, 400, "headers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := send(t, ch.URI, tt.r)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (body %q)", resp.StatusCode, tt.status, body)
			}
			reason := resp.Header.Get("X-Emulator-Reason")
			if !strings.Contains(reason, tt.reason) {
				t.Errorf("X-Emulator-Reason = %q, want it to contain %q", reason, tt.reason)
			}
			if !strings.Contains(string(body), tt.reason) {
				t.Errorf("body = %q, want it to contain %q", body, tt.reason)
			}
			if got := resp.Header.Get("X-NotificationStatus"); got != "" {
				t.Errorf("X-NotificationStatus = %q on a rejected push", got)
			}
			st, _ := e.Channel(ch.Token)
			if len(st.Rejected) == 0 || !strings.Contains(st.Rejected[0].Reason, tt.reason) {
				t.Errorf("latest rejection = %+v, want reason containing %q", st.Rejected, tt.reason)
			}
		})
	}
	st, _ := e.Channel(ch.Token)
	if st.Counts.Received != 0 || len(st.Toasts) != 0 || st.Tile.Kind != "" || st.PushesToday != 0 {
		t.Errorf("rejected pushes changed the phone: %+v", st)
	}
	if st.Counts.Rejected != len(tests) {
		t.Errorf("rejected count = %d, want %d", st.Counts.Rejected, len(tests))
	}
}

func TestUnknownToken(t *testing.T) {
	_, srv := start(t, emulator.Options{})
	resp := send(t, srv.URL+"/throttledthirdparty/01.00/nosuchtoken", toastReq(toastBody("a", "b")))
	if resp.StatusCode != 404 || resp.Header.Get("X-SubscriptionStatus") != "Expired" || resp.Header.Get("X-NotificationStatus") != "Dropped" {
		t.Errorf("got %d %v", resp.StatusCode, resp.Header)
	}
}

// goldenReqs are the mpns@2.1.3 captures with the headers that module sent.
func goldenReqs(t *testing.T) map[string]req {
	return map[string]req{
		"a-toast":           toastReq(golden(t, "a-toast")),
		"b-fliptile":        tileReq(golden(t, "b-fliptile")),
		"c-raw":             {class: "3", body: golden(t, "c-raw")},
		"d-classic-tile":    tileReq(golden(t, "d-classic-tile")),
		"e-tile-clear-null": tileReq(golden(t, "e-tile-clear-null")),
		"g-iconictile":      tileReq(golden(t, "g-iconictile")),
	}
}

func TestGoldensAccepted(t *testing.T) {
	e, _ := start(t, emulator.Options{})
	for name, r := range goldenReqs(t) {
		t.Run(name, func(t *testing.T) {
			ch := mustCreate(t, e, emulator.Healthy)
			resp := send(t, ch.URI, r)
			if resp.StatusCode != 200 || resp.Header.Get("X-NotificationStatus") != "Received" {
				t.Fatalf("status %d, reason %q", resp.StatusCode, resp.Header.Get("X-Emulator-Reason"))
			}
		})
	}
}

func TestPhoneState(t *testing.T) {
	e, _ := start(t, emulator.Options{})
	ch := mustCreate(t, e, emulator.Healthy)
	g := goldenReqs(t)
	for _, name := range []string{"a-toast", "b-fliptile", "c-raw", "d-classic-tile"} {
		if resp := send(t, ch.URI, g[name]); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, resp.Header.Get("X-Emulator-Reason"))
		}
	}
	st, _ := e.Channel(ch.Token)
	if len(st.Toasts) != 1 || st.Toasts[0].Text1 != "Hello & <welcome>" || st.Toasts[0].Text2 != `Ünïcode "quotes"` || st.Toasts[0].Param != "/Item.xaml?id=42&x=1" {
		t.Errorf("toasts = %+v", st.Toasts)
	}
	if len(st.Raw) != 1 || st.Raw[0].Body != `<root><item id="42">new & shiny</item></root>` || st.Raw[0].Class != 3 {
		t.Errorf("raw = %+v", st.Raw)
	}
	sec, ok := st.Secondary["/SecondaryPage.xaml?feed=7&x=1"]
	if !ok || sec.Kind != "FlipTile" || sec.Front["Title"] != "Feed <Title>" || sec.Count != 3 || !sec.Badge ||
		sec.Wide["WideBackContent"] != "Wide back content" || sec.Back["BackTitle"] != `Back "title"` {
		t.Errorf("secondary tile = %+v", st.Secondary)
	}
	p := st.Tile
	if p.Kind != "Tile" || p.Front["Title"] != "Classic <tile>" || p.Count != 7 || !p.Badge || p.Back["BackBackgroundImage"] != "/Images/TileBack.png" {
		t.Errorf("primary after classic = %+v", p)
	}

	// Field by field: e clears Count and the back, sets Title, keeps the rest.
	if resp := send(t, ch.URI, g["e-tile-clear-null"]); resp.StatusCode != 200 {
		t.Fatal(resp.Header.Get("X-Emulator-Reason"))
	}
	st, _ = e.Channel(ch.Token)
	p = st.Tile
	if p.Front["Title"] != "Only title" || p.Front["BackgroundImage"] != "/Images/Tile.png" {
		t.Errorf("kept/updated fields wrong: %+v", p)
	}
	if p.Count != 0 || p.Badge {
		t.Errorf("count after Action=Clear = %d badge %v, want 0 hidden", p.Count, p.Badge)
	}
	if len(p.Back) != 0 {
		t.Errorf("back not cleared: %+v", p.Back)
	}

	// Absent elements keep their value; Count 0 hides the badge.
	r := tileReq(tileBody(` Template="FlipTile"`, "<wp:Count>4</wp:Count><wp:WideBackContent>wide</wp:WideBackContent>"))
	send(t, ch.URI, r)
	send(t, ch.URI, tileReq(tileBody("", "<wp:Count>0</wp:Count>")))
	st, _ = e.Channel(ch.Token)
	p = st.Tile
	if p.Kind != "FlipTile" || p.Front["Title"] != "Only title" || p.Wide["WideBackContent"] != "wide" || p.Count != 0 || p.Badge {
		t.Errorf("after flip update + count 0: %+v", p)
	}
	send(t, ch.URI, tileReq(tileBody("", `<wp:Title Action="Clear"/>`)))
	st, _ = e.Channel(ch.Token)
	if _, ok := st.Tile.Front["Title"]; ok {
		t.Errorf("self-closing Action=Clear kept Title: %+v", st.Tile)
	}
	view := st.Tile.View()
	if view.Template != "FlipTile" || view.BackgroundImage != "/Images/Tile.png" || view.WideBackContent != "wide" {
		t.Errorf("View() = %+v", view)
	}
}

func TestToastHistory(t *testing.T) {
	e, srv := start(t, emulator.Options{})
	ch := mustCreate(t, e, emulator.Healthy, emulator.Params{HTTPS: true})
	h := srv.Config.Handler
	for i := range 55 {
		if rec := serve(t, h, ch.URI, toastReq(toastBody(fmt.Sprintf("toast %d", i), "x"))); rec.Code != 200 {
			t.Fatal(rec.Code, rec.Header())
		}
	}
	st, _ := e.Channel(ch.Token)
	if len(st.Toasts) != 50 {
		t.Fatalf("history length %d, want 50", len(st.Toasts))
	}
	for i, want := range map[int]string{0: "toast 54", 1: "toast 53", 49: "toast 5"} {
		if st.Toasts[i].Text1 != want {
			t.Errorf("toasts[%d] = %q, want %q", i, st.Toasts[i].Text1, want)
		}
	}
}

func TestBehaviours(t *testing.T) {
	e, _ := start(t, emulator.Options{})
	tests := []struct {
		behaviour           string
		status              int
		notif, subscr, conn string
		delivered           bool
	}{
		{emulator.Healthy, 200, "Received", "Active", "Connected", true},
		{emulator.Expired, 404, "Dropped", "Expired", "Disconnected", false},
		{emulator.Inactive, 412, "Dropped", "", "InActive", false},
		{emulator.QueueFull, 200, "QueueFull", "Active", "Connected", false},
		{emulator.Suppressed, 200, "Suppressed", "Active", "Connected", false},
		{emulator.Slow, 200, "Received", "Active", "Connected", true},
		{emulator.Flaky, 503, "", "", "", false}, // p = 1: always fails
	}
	for _, tt := range tests {
		t.Run(tt.behaviour, func(t *testing.T) {
			ch := mustCreate(t, e, tt.behaviour, emulator.Params{SlowMS: 1, FlakyP: 1})
			resp := send(t, ch.URI, toastReq(toastBody("hi", "there")))
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			for h, want := range map[string]string{"X-NotificationStatus": tt.notif, "X-SubscriptionStatus": tt.subscr, "X-DeviceConnectionStatus": tt.conn} {
				if got := resp.Header.Get(h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
			st, _ := e.Channel(ch.Token)
			if got := len(st.Toasts) == 1; got != tt.delivered {
				t.Errorf("toast delivered = %v, want %v", got, tt.delivered)
			}
			if st.Counts.Total != 1 {
				t.Errorf("total = %d", st.Counts.Total)
			}
		})
	}
}

func TestQueueFullThenReceived(t *testing.T) {
	e, _ := start(t, emulator.Options{})
	for _, n := range []int{0, 2} { // 0 = default 3
		want := n
		if want == 0 {
			want = emulator.DefaultQueueFullN
		}
		ch := mustCreate(t, e, emulator.QueueFull, emulator.Params{QueueFullN: n})
		for i := range want + 2 {
			resp := send(t, ch.URI, toastReq(toastBody("q", fmt.Sprint(i))))
			exp := "QueueFull"
			if i >= want {
				exp = "Received"
			}
			if got := resp.Header.Get("X-NotificationStatus"); resp.StatusCode != 200 || got != exp {
				t.Errorf("N=%d push %d: %d %s, want 200 %s", want, i+1, resp.StatusCode, got, exp)
			}
		}
		st, _ := e.Channel(ch.Token)
		if len(st.Toasts) != 2 || st.Counts.QueueFull != want || st.PushesToday != want+2 {
			t.Errorf("N=%d: toasts %d queuefull %d today %d", want, len(st.Toasts), st.Counts.QueueFull, st.PushesToday)
		}
	}
}

func TestFlakySeeded(t *testing.T) {
	const seed1, seed2 = 42, 7
	e, srv := start(t, emulator.Options{Rand: mrand.New(mrand.NewPCG(seed1, seed2))})
	ch := mustCreate(t, e, emulator.Flaky) // default p = 0.5
	ref := mrand.New(mrand.NewPCG(seed1, seed2))
	var fails, oks int
	for i := range 40 {
		wantFail := ref.Float64() < emulator.DefaultFlakyP
		rec := serve(t, srv.Config.Handler, ch.URI, toastReq(toastBody("f", fmt.Sprint(i))))
		switch {
		case wantFail && rec.Code != 503:
			t.Fatalf("push %d: %d, want 503", i, rec.Code)
		case !wantFail && (rec.Code != 200 || rec.Header().Get("X-NotificationStatus") != "Received"):
			t.Fatalf("push %d: %d, want 200 Received", i, rec.Code)
		}
		if wantFail {
			fails++
		} else {
			oks++
		}
	}
	st, _ := e.Channel(ch.Token)
	if fails == 0 || oks == 0 || st.Counts.Unavailable != fails || len(st.Toasts) != oks {
		t.Errorf("fails %d oks %d counts %+v toasts %d", fails, oks, st.Counts, len(st.Toasts))
	}
}

func TestSlowHonoursContext(t *testing.T) {
	e, srv := start(t, emulator.Options{})
	ch := mustCreate(t, e, emulator.Slow, emulator.Params{SlowMS: 600_000})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	hr := toastReq(toastBody("s", "s")).build(t, ch.URI).WithContext(ctx)
	hr.RequestURI = hr.URL.RequestURI()
	srv.Config.Handler.ServeHTTP(httptest.NewRecorder(), hr) // would block 10 minutes if ctx were ignored
	st, _ := e.Channel(ch.Token)
	if st.Counts.Total != 0 || len(st.Toasts) != 0 {
		t.Errorf("cancelled slow push was delivered: %+v", st.Counts)
	}
}

func TestDailyCap(t *testing.T) {
	clk := &clock{t: time.Date(2026, 3, 1, 23, 30, 0, 0, time.UTC)}
	e, srv := start(t, emulator.Options{Now: clk.Now})
	h := srv.Config.Handler
	httpCh := mustCreate(t, e, emulator.Healthy)
	httpsCh := mustCreate(t, e, emulator.Healthy, emulator.Params{HTTPS: true})
	if !strings.Contains(httpsCh.URI, "/unthrottledthirdparty/01.00/") {
		t.Errorf("https channel URI %s", httpsCh.URI)
	}
	for i := 1; i <= emulator.DailyCap; i++ {
		for _, ch := range []emulator.Channel{httpCh, httpsCh} {
			if rec := serve(t, h, ch.URI, toastReq(toastBody("n", fmt.Sprint(i)))); rec.Code != 200 {
				t.Fatalf("push %d to %s: %d", i, ch.Name, rec.Code)
			}
		}
	}
	rec := serve(t, h, httpCh.URI, toastReq(toastBody("n", "501")))
	if rec.Code != 406 || rec.Header().Get("X-NotificationStatus") != "Dropped" ||
		rec.Header().Get("X-SubscriptionStatus") != "Active" || rec.Header().Get("X-DeviceConnectionStatus") != "Connected" {
		t.Errorf("push 501: %d %v, want 406 Dropped/Active/Connected", rec.Code, rec.Header())
	}
	if rec := serve(t, h, httpsCh.URI, toastReq(toastBody("n", "501"))); rec.Code != 200 {
		t.Errorf("https push 501: %d, want 200 (no cap)", rec.Code)
	}
	st, _ := e.Channel(httpCh.Token)
	if st.PushesToday != emulator.DailyCap || st.Counts.Throttled != 1 || st.Toasts[0].Text2 != "500" {
		t.Errorf("state: today %d counts %+v", st.PushesToday, st.Counts)
	}

	clk.Set(time.Date(2026, 3, 2, 0, 0, 1, 0, time.UTC)) // next UTC day
	if st, _ := e.Channel(httpCh.Token); st.PushesToday != 0 {
		t.Errorf("pushes today on new day = %d", st.PushesToday)
	}
	if rec := serve(t, h, httpCh.URI, toastReq(toastBody("n", "new day"))); rec.Code != 200 {
		t.Errorf("first push of the new day: %d", rec.Code)
	}
}

func TestExpireSwitch(t *testing.T) {
	e, srv := start(t, emulator.Options{})
	ch := mustCreate(t, e, emulator.Healthy)
	if resp := send(t, ch.URI, toastReq(toastBody("a", "b"))); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	resp, err := http.Post(srv.URL+"/channels/"+ch.Token+"/expire", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("expire: %d", resp.StatusCode)
	}
	resp = send(t, ch.URI, toastReq(toastBody("a", "b")))
	if resp.StatusCode != 404 || resp.Header.Get("X-SubscriptionStatus") != "Expired" {
		t.Errorf("after expire: %d %v", resp.StatusCode, resp.Header)
	}
	// A malformed push to an expired channel is still a 400: validation first.
	if resp := send(t, ch.URI, toastReq("junk")); resp.StatusCode != 400 {
		t.Errorf("malformed to expired: %d", resp.StatusCode)
	}
}

func postJSON(t *testing.T, url string, v any) (*http.Response, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(v)
	resp, err := http.Post(url, "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

func TestChannelAPI(t *testing.T) {
	e, srv := start(t, emulator.Options{})
	resp, out := postJSON(t, srv.URL+"/channels", map[string]any{"behaviour": "queuefull", "name": "Anna's phone", "queuefull_n": 1})
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %v", resp.StatusCode, out)
	}
	tok, _ := out["token"].(string)
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{40}$`).MatchString(tok) {
		t.Errorf("token %q is not 40 URL-safe characters", tok)
	}
	if out["uri"] != srv.URL+"/throttledthirdparty/01.00/"+tok || out["behaviour"] != "queuefull" || out["name"] != "Anna's phone" {
		t.Errorf("create answer %v", out)
	}
	send(t, out["uri"].(string), toastReq(toastBody("1", "x")))
	send(t, out["uri"].(string), toastReq(toastBody("2", "x")))

	r, err := http.Get(srv.URL + "/channels/" + tok)
	if err != nil {
		t.Fatal(err)
	}
	var st emulator.ChannelState
	if err := json.NewDecoder(r.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if st.Counts.QueueFull != 1 || st.Counts.Received != 1 || len(st.Toasts) != 1 || st.Toasts[0].Text1 != "2" || st.PushesToday != 2 {
		t.Errorf("state %+v", st)
	}

	resp, out = postJSON(t, srv.URL+"/channels/"+tok+"/behaviour", map[string]any{"behaviour": "inactive"})
	if resp.StatusCode != 200 || out["behaviour"] != "inactive" {
		t.Errorf("behaviour change: %d %v", resp.StatusCode, out)
	}
	if resp := send(t, st.URI, toastReq(toastBody("3", "x"))); resp.StatusCode != 412 {
		t.Errorf("after switch to inactive: %d", resp.StatusCode)
	}

	for _, bad := range []map[string]any{{"behaviour": "sleepy"}, {"behaviour": "flaky", "flaky_p": 2}, {"colour": "red"}} {
		if resp, out := postJSON(t, srv.URL+"/channels", bad); resp.StatusCode != 400 {
			t.Errorf("create %v: %d %v", bad, resp.StatusCode, out)
		}
	}
	if resp, _ := postJSON(t, srv.URL+"/channels/nope/behaviour", map[string]any{"behaviour": "healthy"}); resp.StatusCode != 404 {
		t.Errorf("behaviour on unknown: %d", resp.StatusCode)
	}
	if r, _ := http.Get(srv.URL + "/channels/nope"); r.StatusCode != 404 {
		t.Errorf("GET unknown: %d", r.StatusCode)
	}

	mustCreate(t, e, emulator.Healthy)
	r, err = http.Get(srv.URL + "/channels")
	if err != nil {
		t.Fatal(err)
	}
	var list []emulator.ChannelState
	if err := json.NewDecoder(r.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if len(list) != 2 || list[0].Token != tok || len(e.Channels()) != 2 {
		t.Errorf("list = %+v", list)
	}
}

func TestConcurrentPushes(t *testing.T) {
	e, srv := start(t, emulator.Options{})
	ch := mustCreate(t, e, emulator.Healthy, emulator.Params{HTTPS: true})
	const workers, each = 8, 150
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				var r req
				if i%2 == 0 {
					r = toastReq(toastBody(fmt.Sprintf("w%d", w), fmt.Sprint(i)))
				} else {
					r = tileReq(tileBody(` Template="FlipTile"`, fmt.Sprintf("<wp:Count>%d</wp:Count><wp:Title>w%d</wp:Title>", i%100, w)))
				}
				if rec := serve(t, srv.Config.Handler, ch.URI, r); rec.Code != 200 {
					t.Errorf("push: %d %s", rec.Code, rec.Header().Get("X-Emulator-Reason"))
					return
				}
			}
		})
	}
	wg.Wait()
	st, _ := e.Channel(ch.Token)
	if st.Counts.Received != workers*each || st.PushesToday != workers*each {
		t.Errorf("counts %+v today %d", st.Counts, st.PushesToday)
	}
}

func TestEventsAndState(t *testing.T) {
	e, srv := start(t, emulator.Options{})
	ch := mustCreate(t, e, emulator.Healthy)
	resp, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	next := func() string {
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "data: ") {
				return l
			}
		}
		t.Fatal("stream ended", sc.Err())
		return ""
	}
	first := next()
	send(t, ch.URI, toastReq(toastBody("&lt;b&gt;evt&lt;/b&gt;", "x")))
	if second := next(); second == first {
		t.Errorf("no new version after push: %s", second)
	}

	r, err := http.Get(srv.URL + "/state.json")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var state struct {
		Version uint64
		Phones  []struct {
			Token      string `json:"token"`
			ToastsHTML string `json:"toasts_html"`
		}
	}
	if err := json.NewDecoder(r.Body).Decode(&state); err != nil {
		t.Fatal(err)
	}
	if len(state.Phones) != 1 || !strings.Contains(state.Phones[0].ToastsHTML, "&lt;b&gt;evt&lt;/b&gt;") {
		t.Errorf("state = %+v", state)
	}
	page, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if !strings.Contains(string(body), `src="assets/phone.js"`) {
		t.Errorf("page lacks script: %s", body)
	}
	for _, a := range []string{"/assets/phone.js", "/assets/phone.css", "/assets/tileview.css"} {
		r, err := http.Get(srv.URL + a)
		if err != nil || r.StatusCode != 200 {
			t.Errorf("%s: %v %v", a, err, r.StatusCode)
		}
		r.Body.Close()
	}
}

func BenchmarkPush(b *testing.B) {
	e := emulator.New(emulator.Options{})
	h := e.Handler()
	ch, err := e.CreateChannel(emulator.Healthy, "bench", emulator.Params{HTTPS: true})
	if err != nil {
		b.Fatal(err)
	}
	body := tileBody(` Template="FlipTile"`, "<wp:BackgroundImage>http://example.com/a.png</wp:BackgroundImage><wp:Count>3</wp:Count><wp:Title>Bench</wp:Title><wp:BackContent>content &amp; more</wp:BackContent>")
	b.ReportAllocs()
	for b.Loop() {
		if rec := serve(b, h, ch.URI, tileReq(body)); rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
