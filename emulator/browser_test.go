package emulator_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/internal/browsertest"
	"github.com/tilecast/tilecast/notify/webpush"
)

func TestPhoneViewInBrowser(t *testing.T) {
	e, srv := start(t, emulator.Options{WNSClientID: wnsID, WNSClientSecret: []byte(wnsSecret)})
	imgs := browsertest.GradientServer(t)

	anna := mustCreate(t, e, emulator.Healthy)
	ben := mustCreate(t, e, emulator.QueueFull, emulator.Params{QueueFullN: 1})
	flip := tileBody(` Template="FlipTile"`,
		"<wp:BackgroundImage>"+imgs.URL+"/front.png</wp:BackgroundImage>"+
			"<wp:Count>7</wp:Count><wp:Title>Tilecast &lt;News&gt;</wp:Title>"+
			"<wp:BackBackgroundImage>/Images/missing.png</wp:BackBackgroundImage>"+
			"<wp:BackTitle>Back side</wp:BackTitle><wp:BackContent>Three new items</wp:BackContent>"+
			"<wp:SmallBackgroundImage>/Images/small-missing.png</wp:SmallBackgroundImage>"+
			"<wp:WideBackContent>Wide back: three new items from the feed</wp:WideBackContent>")
	for _, r := range []req{
		toastReq(toastBody("Older toast", "first")),
		tileReq(flip),
		toastReq(toastBody("Breaking news", "emulator renders toasts")),
	} {
		if resp := send(t, anna.URI, r); resp.StatusCode != 200 {
			t.Fatalf("push: %d %s", resp.StatusCode, resp.Header.Get("X-Emulator-Reason"))
		}
	}

	// ?poll: with SSE open, --virtual-time-budget would wait for the stream
	// forever; the server side of /events is covered by TestEventsAndState.
	// ben is queuefull with N=1: the first push is dropped, the rest land.
	for _, r := range []req{tileReq(golden(t, "g-iconictile")), tileReq(golden(t, "g-iconictile")), toastReq(toastBody("Second phone", "iconic tile below"))} {
		if resp := send(t, ben.URI, r); resp.StatusCode != 200 {
			t.Fatalf("push: %d %s", resp.StatusCode, resp.Header.Get("X-Emulator-Reason"))
		}
	}

	// A Web Push browser beside the phones: its notification, its app
	// icon with the badge and the stored tile content.
	laptop, err := e.CreateBrowser(emulator.Healthy, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	wp := newSender(t, nil)
	webToast, _ := webpush.ToastPayload(webpush.Toast{Title: "Web toast <b>", Body: "from Web Push", URL: "javascript:alert(1)"})
	seven := 7
	webTile, _ := webpush.TilePayload(webpush.Tile{Count: &seven, Title: "Web tile", Body: "tile body", Image: imgs.URL + "/web.png"})
	for _, p := range []struct {
		kind  tilecast.Kind
		plain []byte
	}{{tilecast.KindToast, webToast}, {tilecast.KindTile, webTile}} {
		if resp, body := wp.push(t, subscriptionOf(t, laptop), p.kind, string(p.plain), time.Hour, webpush.RequestOptions{}); resp.StatusCode != 201 {
			t.Fatalf("web push: %d %s", resp.StatusCode, body)
		}
	}

	// A Windows device: its Start menu (four sizes and the badge) and its
	// Action Center.
	pc := mustWindows(t, e, emulator.Healthy)
	wtok := mustToken(t, srv)
	for _, r := range []wreq{
		{typ: "wns/tile", body: `<tile><visual branding="name" displayName="Tilecast &lt;Start&gt;">` +
			`<binding template="TileSmall"><image placement="background" src="` + imgs.URL + `/small.png"/></binding>` +
			`<binding template="TileMedium"><image placement="background" src="` + imgs.URL + `/medium.png"/><text hint-style="caption">Medium item</text></binding>` +
			`<binding template="TileWide"><text hint-style="body">Wide item</text><text hint-style="captionSubtle">Wide summary</text></binding>` +
			`<binding template="TileLarge"><text hint-style="subtitle">Large item</text></binding></visual></tile>`},
		{typ: "wns/badge", body: `<badge value="7"/>`},
		{typ: "wns/toast", body: `<toast launch="/item?id=1"><visual><binding template="ToastGeneric"><text>Older Windows toast</text></binding></visual></toast>`},
		{typ: "wns/toast", body: `<toast><visual><binding template="ToastGeneric"><text>Windows toast</text><text>in the Action Center</text></binding></visual></toast>`},
	} {
		r.token = wtok
		if resp := r.send(t, pc.URI); resp.StatusCode != 200 {
			t.Fatalf("wns push: %d %s", resp.StatusCode, resp.Header.Get("X-WNS-Error-Description"))
		}
	}

	dom := string(browsertest.Run(t, "--dump-dom", srv.URL+"/?poll"))
	for _, want := range []string{
		"web push · healthy", "Web toast &lt;b&gt;", "from Web Push", // the notification, as text
		`<span class="app-badge">7</span>`, "<b>Web tile</b>", "tile body", `src="` + imgs.URL + `/web.png"`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q (Web Push browser)", want)
		}
	}
	for _, want := range []string{
		"win healthy", "Action Center", "Windows toast", "in the Action Center", "Older Windows toast",
		"Tilecast &lt;Start&gt;", "Medium item", "Wide summary", "Large item",
		`data-size="small"`, `data-size="medium"`, `data-size="wide"`, `data-size="large"`,
		`class="ws-badge">7<`, `<code>/item?id=1</code>`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q (Windows device)", want)
		}
	}
	if n := strings.Count(dom, `class="ws-badge">7<`); n != 4 {
		t.Errorf("badge drawn on %d sizes, want 4", n)
	}
	if i, j := strings.Index(dom, "Windows toast"), strings.Index(dom, "Older Windows toast"); i < 0 || j < 0 || i > j {
		t.Errorf("latest Windows toast not on top (positions %d, %d)", i, j)
	}
	for _, want := range []string{
		"Breaking news", "emulator renders toasts", // toast text
		"Tilecast &lt;News&gt;", // tile title, escaped as text
		"Back side", `class="tv-count">7<`, "tv-wide tv-back",
		"test queuefull", "Second phone", `data-template="IconicTile"`, "Line 2 &amp; more",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}
	// Under the page's Content-Security-Policy the pushed tile's remote
	// image loads, and tileview's inline onerror handler (allowed by its
	// hash) hides the one that does not exist.
	imgTag := regexp.MustCompile(`<img [^>]*>`)
	var front, missing int
	for _, tag := range imgTag.FindAllString(dom, -1) {
		hidden := regexp.MustCompile(` hidden[ =>]`).MatchString(tag)
		switch {
		case strings.Contains(tag, imgs.URL+"/front.png"):
			front++
			if hidden {
				t.Errorf("the tile's image did not load: %s", tag)
			}
		case strings.Contains(tag, imgs.URL+"/medium.png"):
			front++
			if hidden {
				t.Errorf("the Windows tile's image did not load: %s", tag)
			}
		case strings.Contains(tag, "/Images/missing.png"):
			missing++
			if !hidden {
				t.Errorf("the failed image is not hidden (onerror blocked?): %s", tag)
			}
		}
	}
	if front == 0 || missing == 0 {
		t.Errorf("found %d front and %d missing images in the DOM", front, missing)
	}
	if strings.Contains(dom, `href="javascript:`) {
		t.Error("a pushed javascript: URL became a link")
	}
	if strings.Contains(dom, "Loading phones") {
		t.Error("page still shows the loading placeholder: phone.js did not render")
	}
	if i, j := strings.Index(dom, "Breaking news"), strings.Index(dom, "Older toast"); i < 0 || j < 0 || i > j {
		t.Errorf("latest toast not on top (positions %d, %d)", i, j)
	}

	img, _ := browsertest.Screenshot(t, srv.URL+"/?poll", 1280, 900)
	// The failed small image and the toasts leave accent blocks: at least
	// one 40x40 tile's worth of accent pixels.
	browsertest.CheckDrawn(t, img, 1600)
}

// TestPhoneViewLiveUpdateKeepsPage drives the phone view in Chromium with
// its live-update stream open: a push redraws only what changed (the
// other phones keep their very nodes) and a scrolled toast list keeps its
// scroll position; every counter line adds up to its total; a lost
// emulator is shown in red, not in the "live" green.
func TestPhoneViewLiveUpdateKeepsPage(t *testing.T) {
	e, srv := start(t, emulator.Options{WNSClientID: wnsID, WNSClientSecret: []byte(wnsSecret)})
	anna := mustCreate(t, e, emulator.Healthy)
	ben := mustCreate(t, e, emulator.QueueFull, emulator.Params{QueueFullN: 2})
	for i := range 12 {
		if resp := send(t, anna.URI, toastReq(toastBody("Toast", fmt.Sprint("number ", i)))); resp.StatusCode != 200 {
			t.Fatalf("push: %d", resp.StatusCode)
		}
	}
	// A rejected push, queue-full answers and a received one: the counter
	// lines have several parts.
	send(t, anna.URI, req{target: "toast", class: "2", body: "<not xml"})
	for range 3 {
		send(t, ben.URI, tileReq(golden(t, "g-iconictile")))
	}
	pc := mustWindows(t, e, emulator.Healthy)
	(wreq{typ: "wns/badge", body: `<badge value="2"/>`}).send(t, pc.URI) // no token: 401
	(wreq{typ: "wns/badge", body: `<badge value="3"/>`, token: mustToken(t, srv)}).send(t, pc.URI)

	ctx := browsertest.Context(t, 1280, 900)
	browsertest.Navigate(t, ctx, srv.URL+"/")
	browsertest.Poll(t, ctx, "the phones", `document.querySelectorAll('#phones section.phone').length === 3 && document.getElementById('live').textContent === 'live'`, 30*time.Second)

	// Counters add up: pushes = the parts shown, and match the state.
	type line struct {
		Total int   `json:"total"`
		Parts []int `json:"parts"`
	}
	lines := browsertest.Eval[[]line](t, ctx, `Array.from(document.querySelectorAll('.counts[data-total]')).map(c => ({
		total: +c.dataset.total, parts: Array.from(c.querySelectorAll('.part')).map(p => +p.dataset.n)}))`)
	if len(lines) != 3 {
		t.Fatalf("%d counter lines, want 3", len(lines))
	}
	wantTotals := []int{e.Channels()[0].Counts.Total, e.Channels()[1].Counts.Total, e.WindowsDevices()[0].Counts.Total}
	for i, l := range lines {
		sum := 0
		for _, n := range l.Parts {
			sum += n
		}
		if sum != l.Total || l.Total != wantTotals[i] || len(l.Parts) < 2 {
			t.Errorf("counter line %d: total %d, parts %v (sum %d), emulator total %d", i, l.Total, l.Parts, sum, wantTotals[i])
		}
	}
	if wantTotals[0] != 13 || wantTotals[2] != 2 {
		t.Errorf("emulator totals %v, want 13 for anna and 2 for the PC", wantTotals)
	}

	// Scroll anna's toasts, mark the nodes, push, wait for the redraw.
	sel := `document.querySelector('section[data-token="` + anna.Token + `"] .toasts')`
	top := browsertest.Eval[float64](t, ctx, `(() => { const l = `+sel+`; l.scrollTop = 120; l.__mark = 1;
		document.querySelector('section[data-token="`+ben.Token+`"]').__mark = 1; return l.scrollTop; })()`)
	if top < 100 {
		t.Fatalf("toast list scrolled to %v: not scrollable?", top)
	}
	version := browsertest.Eval[string](t, ctx, `document.getElementById('phones').dataset.version`)
	if resp := send(t, anna.URI, toastReq(toastBody("Live", "update arrives"))); resp.StatusCode != 200 {
		t.Fatalf("push: %d", resp.StatusCode)
	}
	browsertest.Poll(t, ctx, "the live update", `document.getElementById('phones').dataset.version !== '`+version+`' && document.body.textContent.includes('update arrives')`, 30*time.Second)
	after := browsertest.Eval[float64](t, ctx, sel+`.scrollTop`)
	if after != top {
		t.Errorf("toast list scrollTop %v after the update, was %v", after, top)
	}
	if !browsertest.Eval[bool](t, ctx, sel+`.__mark === 1`) {
		t.Error("the toast list was replaced, not updated")
	}
	if !browsertest.Eval[bool](t, ctx, `document.querySelector('section[data-token="`+ben.Token+`"]').__mark === 1`) {
		t.Error("an unchanged phone was redrawn")
	}

	// The emulator goes away: the page says so, and not in green.
	e.Close()
	srv.CloseClientConnections()
	srv.Close()
	browsertest.Poll(t, ctx, "the unreachable notice", `document.getElementById('live').textContent === 'emulator unreachable'`, 30*time.Second)
	colour := browsertest.Eval[string](t, ctx, `getComputedStyle(document.getElementById('live')).color + ' on ' + getComputedStyle(document.getElementById('live')).backgroundColor`)
	if strings.Contains(colour, "rgb(136, 204, 136) ") || !strings.Contains(colour, "on rgb(162, 0, 37)") {
		t.Errorf("unreachable shown as %s, want white on red", colour)
	}
}

// TestPhoneViewLayout renders a demo-like phone view — phones with toasts,
// a flip tile and an iconic secondary tile, a Windows device and a
// browser — at 400 and 1,400 px: every card and tile fits the window (no
// sideways scroll), and the secondary tile is shown on its own. With
// TILECAST_SCREENSHOTS=1 it saves the screenshots under docs/.
func TestPhoneViewLayout(t *testing.T) {
	e, srv := start(t, emulator.Options{WNSClientID: wnsID, WNSClientSecret: []byte(wnsSecret)})
	imgs := browsertest.GradientServer(t)
	alice, err := e.CreateChannel(emulator.Healthy, "Alice's phone (device_id alice-phone)")
	if err != nil {
		t.Fatal(err)
	}
	for i, title := range []string{"Harbour bridge reopens after repairs", "Local team wins the cup in extra time", "Library extends opening hours"} {
		send(t, alice.URI, toastReq(toastBody("Harbour Town News", title)))
		send(t, alice.URI, toastReq(toastBody("Inbox", fmt.Sprintf("Message %d for alice", i+1))))
	}
	send(t, alice.URI, tileReq(tileBody(` Template="FlipTile"`, "<wp:BackgroundImage>"+imgs.URL+"/front.png</wp:BackgroundImage>"+
		"<wp:Count>3</wp:Count><wp:Title>News</wp:Title><wp:BackTitle>Harbour Town News</wp:BackTitle>"+
		"<wp:BackContent>Library extends opening hours</wp:BackContent>"+
		"<wp:WideBackContent>The central library will now stay open until 10 pm on weekdays, and on Sundays from noon to six, the council said on Monday.</wp:WideBackContent>")))
	send(t, alice.URI, tileReq(tileBody(` Template="IconicTile" Id="/Inbox.xaml"`, "<wp:Count>3</wp:Count><wp:Title>Inbox of alice</wp:Title>"+
		"<wp:WideContent1>Message 3 for alice</wp:WideContent1><wp:WideContent2>You have three new messages from Bob</wp:WideContent2>")))
	busy, err := e.CreateChannel(emulator.QueueFull, "Busy phone (device_id busy-phone)", emulator.Params{QueueFullN: 1})
	if err != nil {
		t.Fatal(err)
	}
	send(t, busy.URI, toastReq(toastBody("Harbour Town News", "Storm warning for the coast tonight")))
	send(t, busy.URI, toastReq(toastBody("Harbour Town News", "Storm warning for the coast tonight")))
	pc, err := e.CreateWindowsDevice(emulator.Healthy, "Alice's PC (device_id alice-pc)")
	if err != nil {
		t.Fatal(err)
	}
	tok := mustToken(t, srv)
	(wreq{typ: "wns/tile", token: tok, body: `<tile><visual branding="name" displayName="News">` +
		`<binding template="TileSmall"><image placement="background" src="` + imgs.URL + `/small.png"/></binding>` +
		`<binding template="TileMedium"><text hint-style="caption">Library extends opening hours</text></binding>` +
		`<binding template="TileWide"><text hint-style="body">Library extends opening hours</text><text hint-style="captionSubtle">Open until 10 pm on weekdays</text></binding>` +
		`<binding template="TileLarge"><text hint-style="subtitle">Library extends opening hours</text></binding></visual></tile>`}).send(t, pc.URI)
	(wreq{typ: "wns/badge", token: tok, body: `<badge value="3"/>`}).send(t, pc.URI)
	(wreq{typ: "wns/toast", token: tok, body: `<toast><visual><binding template="ToastGeneric"><text>Harbour Town News</text><text>Library extends opening hours</text></binding></visual></toast>`}).send(t, pc.URI)
	if _, err := e.CreateBrowser(emulator.Healthy, "Alice's laptop"); err != nil {
		t.Fatal(err)
	}

	type layout struct {
		Inner  int   `json:"inner"`
		Scroll int   `json:"scroll"`
		Rights []int `json:"rights"`
	}
	for _, width := range []int{400, 1400} {
		ctx := browsertest.Context(t, width, 1500) // tall enough for a phone with both its tiles
		browsertest.Navigate(t, ctx, srv.URL+"/?poll")
		browsertest.Poll(t, ctx, "the devices", `document.querySelectorAll('#phones section.phone').length === 4 && Array.from(document.images).every(i => i.complete)`, 30*time.Second)
		l := browsertest.Eval[layout](t, ctx, `({inner: window.innerWidth, scroll: document.documentElement.scrollWidth,
			rights: Array.from(document.querySelectorAll('section.phone, .tv-face, .ws-tile')).map(n => Math.ceil(n.getBoundingClientRect().right))})`)
		if l.Inner != width {
			t.Fatalf("window is %d px wide, want %d", l.Inner, width)
		}
		if l.Scroll > l.Inner {
			t.Errorf("%d px: page scrolls sideways: scrollWidth %d", width, l.Scroll)
		}
		for i, r := range l.Rights {
			if r > l.Inner {
				t.Errorf("%d px: element %d ends at %d px, beyond the window", width, i, r)
			}
		}
		if len(l.Rights) < 10 {
			t.Errorf("%d px: only %d cards and tiles measured", width, len(l.Rights))
		}
		if !browsertest.Eval[bool](t, ctx, `Array.from(document.querySelectorAll('h3')).some(h => h.textContent === 'secondary tile /Inbox.xaml · IconicTile')`) {
			t.Errorf("%d px: the secondary tile has no heading of its own", width)
		}
		// The wide tiles show their short texts whole: no line of the
		// iconic tile is cut, nor the flip tile's back content.
		cut := browsertest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll('.tv-wide .tv-lines span, .tv-wide .tv-content, .tv-wide .tv-title'))
			.filter(n => n.scrollWidth > n.clientWidth + 1 || n.scrollHeight > n.clientHeight + 1).map(n => n.textContent)`)
		if len(cut) > 0 {
			t.Errorf("%d px: wide tile texts cut: %q", width, cut)
		}
		if n := browsertest.Eval[int](t, ctx, `document.querySelectorAll('.tv-wide .tv-lines span').length`); n != 2 {
			t.Errorf("%d px: the wide iconic tile shows %d lines, want 2", width, n)
		}
		browsertest.SaveScreenshot(t, "..", fmt.Sprintf("phone-view-%d.png", width), browsertest.CapturePNG(t, ctx))
	}
}
