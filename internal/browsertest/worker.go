package browsertest

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// Worker is a page of tilecast's Web Push example (web/webpush) open in
// headless Chromium with its service worker registered, for tests that
// deliver push messages to the worker through the DevTools protocol
// (ServiceWorker.deliverPushMessage): pushManager.subscribe would need the
// browser vendor's push service, which is not reachable here.
//
// chromedp drives Chromium because the checks need the protocol:
// deliverPushMessage, the permission grant and evaluating promises in the
// page; --dump-dom (Run) cannot do any of them.
type Worker struct {
	ctx    context.Context
	origin string
	regID  serviceworker.RegistrationID
}

// Notification is what the worker's registration lists of one shown
// notification (getNotifications()).
type Notification struct {
	Title string `json:"title"`
	Body  string `json:"body"`
	Tag   string `json:"tag"`
	Icon  string `json:"icon"`
	URL   string `json:"url"` // data.url: what a click opens
}

// OpenWorker loads origin+page (the example page, which registers sw.js
// and resolves window.tilecastReady with the registration), grants the
// notification permission a user would give, and waits until the browser
// keeps the notifications the page shows. The browser stops when the test
// ends.
func OpenWorker(t testing.TB, origin, page string) *Worker {
	t.Helper()
	// Generous: the machine may be busy; nothing here asserts a duration.
	root, stop := context.WithTimeout(context.Background(), 3*time.Minute)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium(t)),
		chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,NativeNotifications,SystemNotifications"),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(root, opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		stop()
	})

	if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
		Permission: &browser.PermissionDescriptor{Name: "notifications"},
		Setting:    browser.PermissionSettingGranted,
		Origin:     origin,
	}); err != nil {
		t.Fatalf("grant notifications: %v", err)
	}
	registrations := chromedp.Events(ctx, serviceworker.WorkerRegistrationUpdated)
	if _, err := chromedp.Call(ctx, serviceworker.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("ServiceWorker.enable: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(origin+page)); err != nil {
		t.Fatal(err)
	}
	scope, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.tilecastReady.then(r => r.scope)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("the page did not register its worker: %v", err)
	}
	if scope != origin+page {
		t.Fatalf("worker scope %q, want %q", scope, origin+page)
	}
	w := &Worker{ctx: ctx, origin: origin}
	for ev, err := range registrations {
		if err != nil {
			t.Fatalf("waiting for the worker's registration: %v", err)
		}
		for _, r := range ev.Registrations {
			if r.ScopeURL == scope && !r.IsDeleted {
				w.regID = r.RegistrationID
			}
		}
		if w.regID != "" {
			break
		}
	}

	// Headless Chromium drops notifications shown in its first moments
	// (about one run in five here: showNotification resolves, yet
	// getNotifications never lists it, seemingly while its notification
	// platform starts). Wait until the browser keeps one the page shows,
	// then clear it, so what a test checks is the worker.
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
	return w
}

// Deliver hands plain to the worker as a push message's decrypted data.
func (w *Worker) Deliver(t testing.TB, plain []byte) {
	t.Helper()
	if _, err := chromedp.Call(w.ctx, serviceworker.DeliverPushMessage, serviceworker.DeliverPushMessageParams{
		Origin: w.origin, RegistrationID: w.regID, Data: string(plain),
	}); err != nil {
		t.Fatalf("deliverPushMessage: %v", err)
	}
}

// Eval evaluates expr (a value or a promise) in the page and returns its
// JSON.
func (w *Worker) Eval(t testing.TB, expr string) []byte {
	t.Helper()
	raw, err := chromedp.Run(w.ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return raw
}

// PollString evaluates expr (a promise of a string) until it is want.
//
// Chromium's getNotifications() deletes from its database every stored
// notification its platform does not report as displayed yet: a read
// while the worker is still showing one loses it for good. So a test
// reads Notifications only after the page shows what the worker told it
// (the example page writes the latest notification into #latest), and
// waits for that with PollString.
func (w *Worker) PollString(t testing.TB, what, expr, want string) {
	t.Helper()
	giveUp := time.After(time.Minute) // generous: the worker answers in milliseconds
	for {
		var got string
		raw := w.Eval(t, expr)
		if json.Unmarshal(raw, &got) == nil && got == want {
			return
		}
		select {
		case <-giveUp:
			t.Fatalf("%s: not after a minute; last value %s, want %q", what, raw, want)
		case <-w.ctx.Done():
			t.Fatalf("%s: gave up; last value %s", what, raw)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Latest is the expression PollString waits on: the example page's line
// about the latest notification the worker showed.
const Latest = `Promise.resolve(document.getElementById("latest").textContent)`

// Notifications lists the notifications the worker's registration shows.
func (w *Worker) Notifications(t testing.TB) []Notification {
	t.Helper()
	raw := w.Eval(t, `navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns =>
		ns.map(n => ({title: n.title, body: n.body, tag: n.tag, icon: n.icon, url: (n.data && n.data.url) || ""})))`)
	var ns []Notification
	if err := json.Unmarshal(raw, &ns); err != nil {
		t.Fatalf("notifications %s: %v", raw, err)
	}
	return ns
}

// StoredTile is the tile the worker keeps for the page (Cache API).
type StoredTile struct {
	Count *int   `json:"count"`
	Title string `json:"title"`
	Body  string `json:"body"`
	Image string `json:"image"`
	URL   string `json:"url"`
}

// Tile returns the tile the worker stored (window.tilecastTile()), and its
// JSON for messages.
func (w *Worker) Tile(t testing.TB) (StoredTile, []byte) {
	t.Helper()
	raw := w.Eval(t, `window.tilecastTile()`)
	var st StoredTile
	_ = json.Unmarshal(raw, &st) // a null or partial tile fails the caller's checks
	return st, raw
}

// Click plays a click on the shown notification with tag in the service
// worker and returns what its notificationclick handler did: "open URL"
// or "focus URL". Headless Chromium shows no notification to click and
// the DevTools protocol has no command for it, so the worker gets a
// NotificationEvent of its own notification, as the browser would
// dispatch it, with waitUntil and clients.openWindow recorded instead of
// acting (an untrusted event may not extend its lifetime, and a window
// needs a user's click); page.focus() likewise. The handler is the
// worker's own code, run in the worker.
func (w *Worker) Click(t testing.TB, tag string) string {
	t.Helper()
	targets, err := chromedp.Targets(w.ctx)
	if err != nil {
		t.Fatalf("list targets: %v", err)
	}
	var sw *target.Info
	for _, ti := range targets {
		if ti.Type == "service_worker" && strings.HasPrefix(ti.URL, w.origin+"/") {
			sw = ti
		}
	}
	if sw == nil {
		t.Fatalf("no service worker target of %s among %d targets", w.origin, len(targets))
	}
	swCtx, cancel := chromedp.NewContext(w.ctx, chromedp.WithTargetID(sw.TargetID))
	defer cancel()
	js := `(async () => {
		const ns = await self.registration.getNotifications({tag: ` + strconv.Quote(tag) + `});
		if (!ns.length) { return 'no notification'; }
		let did = 'nothing';
		self.clients.openWindow = async (u) => { did = 'open ' + u; return null; };
		const pages = await self.clients.matchAll({type: 'window', includeUncontrolled: true});
		for (const p of pages) { Object.defineProperty(p, 'focus', {value: async () => { did = 'focus ' + p.url; return p; }}); }
		const realMatch = self.clients.matchAll.bind(self.clients);
		self.clients.matchAll = async () => pages;
		const ev = new NotificationEvent('notificationclick', {notification: ns[0]});
		let life = Promise.resolve();
		ev.waitUntil = (p) => { life = p; };
		self.dispatchEvent(ev);
		await life;
		self.clients.matchAll = realMatch;
		delete self.clients.openWindow;
		return did;
	})()`
	did, err := chromedp.Run(swCtx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("click the notification %q in the worker: %v", tag, err)
	}
	return did
}
