package web

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/chromedp"

	"github.com/tilecast/tilecast/internal/browsertest"
	"github.com/tilecast/tilecast/notify/webpush"
)

// shownNotification is what getNotifications() tells about one.
type shownNotification struct {
	Title string `json:"title"`
	Body  string `json:"body"`
	Tag   string `json:"tag"`
	URL   string `json:"url"`
}

// storedTile is the tile the worker keeps in the Cache API.
type storedTile struct {
	Count *int   `json:"count"`
	Title string `json:"title"`
	Body  string `json:"body"`
	Image string `json:"image"`
	URL   string `json:"url"`
}

// TestWebPushWorkerInBrowser loads the example page from a real
// web.Server in headless Chromium, lets it register sw.js, and delivers
// plaintexts built by notify/webpush — what a browser has after
// decrypting, as the emulator does — through the DevTools protocol's
// ServiceWorker.deliverPushMessage (pushManager.subscribe would need the
// browser vendor's push service). The worker must show the toast and
// store the tile's badge count and content for the page.
//
// chromedp drives Chromium here because the checks need the protocol:
// deliverPushMessage, the permission grant and evaluating promises in the
// page; --dump-dom (internal/browsertest.Run) cannot do any of them.
func TestWebPushWorkerInBrowser(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.WebPushPublicKey = testVAPIDPublic })
	srv := httptest.NewServer(e.handler)
	t.Cleanup(srv.Close)

	// Generous: the machine may be busy; nothing here asserts a duration.
	root, stop := context.WithTimeout(context.Background(), 3*time.Minute)
	defer stop()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browsertest.Chromium(t)),
		chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,NativeNotifications,SystemNotifications"),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(root, opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()

	// The permission a user would give when the page asks.
	if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
		Permission: &browser.PermissionDescriptor{Name: "notifications"},
		Setting:    browser.PermissionSettingGranted,
		Origin:     srv.URL,
	}); err != nil {
		t.Fatalf("grant notifications: %v", err)
	}
	registrations := chromedp.Events(ctx, serviceworker.WorkerRegistrationUpdated)
	if _, err := chromedp.Call(ctx, serviceworker.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("ServiceWorker.enable: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+WebPushPath)); err != nil {
		t.Fatal(err)
	}
	scope, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.tilecastReady.then(r => r.scope)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("the page did not register its worker: %v", err)
	}
	if scope != srv.URL+WebPushPath {
		t.Fatalf("worker scope %q", scope)
	}
	var regID serviceworker.RegistrationID
	for ev, err := range registrations {
		if err != nil {
			t.Fatalf("waiting for the worker's registration: %v", err)
		}
		for _, r := range ev.Registrations {
			if r.ScopeURL == scope && !r.IsDeleted {
				regID = r.RegistrationID
			}
		}
		if regID != "" {
			break
		}
	}

	deliver := func(plain []byte) {
		t.Helper()
		if _, err := chromedp.Call(ctx, serviceworker.DeliverPushMessage, serviceworker.DeliverPushMessageParams{
			Origin: srv.URL, RegistrationID: regID, Data: string(plain),
		}); err != nil {
			t.Fatalf("deliverPushMessage: %v", err)
		}
	}
	// poll evaluates expr (a promise of JSON) until done accepts it.
	poll := func(what, expr string, done func(raw []byte) bool) []byte {
		t.Helper()
		giveUp := time.After(time.Minute) // generous: the worker answers in milliseconds
		for {
			raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if done(raw) {
				return raw
			}
			select {
			case <-giveUp:
				t.Fatalf("%s: not after a minute; last value %s", what, raw)
			case <-ctx.Done():
				t.Fatalf("%s: gave up; last value %s", what, raw)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	const notesJS = `navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns =>
		ns.map(n => ({title: n.title, body: n.body, tag: n.tag, url: (n.data && n.data.url) || ""})))`
	notes := func(raw []byte) []shownNotification {
		var ns []shownNotification
		if err := json.Unmarshal(raw, &ns); err != nil {
			t.Fatalf("notifications %s: %v", raw, err)
		}
		return ns
	}
	find := func(ns []shownNotification, tag string, title string) *shownNotification {
		for i := range ns {
			if ns[i].Tag == tag && (title == "" || ns[i].Title == title) {
				return &ns[i]
			}
		}
		return nil
	}

	// Headless Chromium drops notifications shown in its first moments
	// (about one run in five here: showNotification resolves, yet
	// getNotifications never lists it, seemingly while its notification
	// platform starts). Wait until the browser keeps one the page shows,
	// then clear it, so what is checked below is the worker.
	ready, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(async () => {
		const r = await navigator.serviceWorker.ready;
		for (let i = 0; i < 120; i++) {
			await r.showNotification('probe', {tag: 'probe'});
			const ns = await r.getNotifications({tag: 'probe'});
			if (ns.length) { ns.forEach(n => n.close()); return true; }
			await new Promise(res => setTimeout(res, 250));
		}
		return false;
	})()`, chromedp.EvalAwaitPromise))
	if err != nil || !ready {
		t.Fatalf("the browser never lists a notification the page shows (%v)", err)
	}

	// Chromium's getNotifications() deletes from its database every stored
	// notification its platform does not report as displayed yet: a read
	// while the worker is still showing one loses it for good (about one
	// run in five when this test polled it). So nothing reads notifications
	// until the page has the worker's message that it showed them; the
	// page shows that message, and the test waits for it in the DOM.
	// isString accepts a result that is the JSON string want.
	isString := func(want string) func([]byte) bool {
		return func(raw []byte) bool {
			var got string
			return json.Unmarshal(raw, &got) == nil && got == want
		}
	}
	latestJS := `Promise.resolve(document.getElementById("latest").textContent)`
	stored := func(raw []byte) storedTile {
		var st storedTile
		_ = json.Unmarshal(raw, &st)
		return st
	}
	const tileJS = `window.tilecastTile()`
	readNotes := func() []shownNotification {
		t.Helper()
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](notesJS, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		return notes(raw)
	}

	// A toast: shown as a notification whose click opens its url.
	toast, err := webpush.ToastPayload(webpush.Toast{Title: "Daily News", Body: "Storm <watch> & more", URL: "/item?id=42", Tag: "item-42"})
	if err != nil {
		t.Fatal(err)
	}
	deliver(toast)
	poll("the page hears of the toast", latestJS, isString("Latest notification: Daily News · Storm <watch> & more"))
	n := find(readNotes(), "item-42", "")
	if n == nil {
		t.Fatal("the worker showed no notification for the toast")
	}
	if n.Title != "Daily News" || n.Body != "Storm <watch> & more" || n.URL != srv.URL+"/item?id=42" {
		t.Errorf("toast shown as %+v", *n)
	}

	// A tile: the worker stores count and content, and the page shows them.
	seven := 7
	tile, err := webpush.TilePayload(webpush.Tile{Count: &seven, Title: "News", Body: "Seven new items", Image: "https://cdn.example.org/t.png", URL: "/news"})
	if err != nil {
		t.Fatal(err)
	}
	deliver(tile)
	poll("the page shows the tile", `Promise.resolve(JSON.stringify([document.getElementById("badge").textContent,
		document.getElementById("badge").hidden, document.getElementById("tile-title").textContent]))`,
		isString(`["7",false,"News"]`))
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](tileJS, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if st := stored(raw); st.Count == nil || *st.Count != 7 || st.Title != "News" || st.Body != "Seven new items" ||
		st.Image != "https://cdn.example.org/t.png" || st.URL != "/news" {
		t.Errorf("stored tile %s", raw)
	}
	ns := readNotes()
	if n := find(ns, "tilecast-tile", "News"); n == nil || n.Body != "Seven new items" || n.URL != srv.URL+"/news" {
		t.Errorf("tile notification missing or wrong: %+v", ns)
	}
	if find(ns, "item-42", "Daily News") == nil {
		t.Errorf("the toast is gone after the tile: %+v", ns)
	}

	// A badge (count only) clears the count and keeps the content.
	deliver(webpush.BadgePayload(0))
	poll("the page shows the cleared badge", `Promise.resolve(document.getElementById("badge").hidden)`,
		func(raw []byte) bool { return string(raw) == "true" })
	raw, err = chromedp.Run(ctx, chromedp.Evaluate[[]byte](tileJS, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if st := stored(raw); st.Count == nil || *st.Count != 0 || st.Title != "News" || st.Body != "Seven new items" {
		t.Errorf("badge update: stored tile %s", raw)
	}

	// Something that is not the worker's JSON is left alone: a toast
	// after it is the next thing the page hears of.
	deliver([]byte("opaque app data"))
	after, _ := webpush.ToastPayload(webpush.Toast{Title: "After data"})
	deliver(after)
	poll("the toast after the data", latestJS, isString("Latest notification: After data"))
	raw, err = chromedp.Run(ctx, chromedp.Evaluate[[]byte](tileJS, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if st := stored(raw); st.Count == nil || *st.Count != 0 || st.Title != "News" {
		t.Errorf("data changed the tile: %s", raw)
	}
	if find(readNotes(), "", "After data") == nil {
		t.Error("the toast after the data was not shown")
	}
}
