package web

import (
	"net/http/httptest"
	"testing"

	"github.com/tilecast/tilecast/internal/browsertest"
	"github.com/tilecast/tilecast/notify/webpush"
)

// TestWebPushWorkerInBrowser loads the example page from a real
// web.Server in headless Chromium, lets it register sw.js, and delivers
// plaintexts built by notify/webpush — what a browser has after
// decrypting — covering every field the worker reads (cmd/tilecast's
// TestDaemonWebPushInBrowser delivers what a running daemon sent). The
// worker must show the toast and store the tile's badge count and
// content for the page, and leave data that is not its JSON alone.
func TestWebPushWorkerInBrowser(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.WebPushPublicKey = testVAPIDPublic })
	srv := httptest.NewServer(e.handler)
	t.Cleanup(srv.Close)
	w := browsertest.OpenWorker(t, srv.URL, WebPushPath)

	find := func(ns []browsertest.Notification, tag string, title string) *browsertest.Notification {
		for i := range ns {
			if ns[i].Tag == tag && (title == "" || ns[i].Title == title) {
				return &ns[i]
			}
		}
		return nil
	}

	// A toast: shown as a notification whose click opens its url.
	toast, err := webpush.ToastPayload(webpush.Toast{Title: "Daily News", Body: "Storm <watch> & more", URL: "/item?id=42",
		Icon: "/icon-192.png", Tag: "item-42"})
	if err != nil {
		t.Fatal(err)
	}
	w.Deliver(t, toast)
	w.PollString(t, "the page hears of the toast", browsertest.Latest, "Latest notification: Daily News · Storm <watch> & more")
	n := find(w.Notifications(t), "item-42", "")
	if n == nil {
		t.Fatal("the worker showed no notification for the toast")
	}
	if n.Title != "Daily News" || n.Body != "Storm <watch> & more" || n.URL != srv.URL+"/item?id=42" || n.Icon != srv.URL+"/icon-192.png" {
		t.Errorf("toast shown as %+v", *n)
	}

	// A tile: the worker stores count and content, and the page shows them.
	seven := 7
	tile, err := webpush.TilePayload(webpush.Tile{Count: &seven, Title: "News", Body: "Seven new items", Image: "https://cdn.example.org/t.png", URL: "/news"})
	if err != nil {
		t.Fatal(err)
	}
	w.Deliver(t, tile)
	w.PollString(t, "the page shows the tile", `Promise.resolve(JSON.stringify([document.getElementById("badge").textContent,
		document.getElementById("badge").hidden, document.getElementById("tile-title").textContent]))`, `["7",false,"News"]`)
	if st, raw := w.Tile(t); st.Count == nil || *st.Count != 7 || st.Title != "News" || st.Body != "Seven new items" ||
		st.Image != "https://cdn.example.org/t.png" || st.URL != "/news" {
		t.Errorf("stored tile %s", raw)
	}
	ns := w.Notifications(t)
	if n := find(ns, "tilecast-tile", "News"); n == nil || n.Body != "Seven new items" || n.URL != srv.URL+"/news" {
		t.Errorf("tile notification missing or wrong: %+v", ns)
	}
	if find(ns, "item-42", "Daily News") == nil {
		t.Errorf("the toast is gone after the tile: %+v", ns)
	}

	// A badge (count only) clears the count and keeps the content.
	w.Deliver(t, webpush.BadgePayload(0))
	w.PollString(t, "the page shows the cleared badge", `Promise.resolve(String(document.getElementById("badge").hidden))`, "true")
	if st, raw := w.Tile(t); st.Count == nil || *st.Count != 0 || st.Title != "News" || st.Body != "Seven new items" {
		t.Errorf("badge update: stored tile %s", raw)
	}

	// Something that is not the worker's JSON is left alone: a toast
	// after it is the next thing the page hears of.
	w.Deliver(t, []byte("opaque app data"))
	after, _ := webpush.ToastPayload(webpush.Toast{Title: "After data"})
	w.Deliver(t, after)
	w.PollString(t, "the toast after the data", browsertest.Latest, "Latest notification: After data")
	if st, raw := w.Tile(t); st.Count == nil || *st.Count != 0 || st.Title != "News" {
		t.Errorf("data changed the tile: %s", raw)
	}
	if find(w.Notifications(t), "", "After data") == nil {
		t.Error("the toast after the data was not shown")
	}

	// A click opens the toast's url; one whose url is an open page of
	// the app focuses that page instead of opening a second.
	if did := w.Click(t, "item-42"); did != "open "+srv.URL+"/item?id=42" {
		t.Errorf("click on the toast: %s", did)
	}
	home, _ := webpush.ToastPayload(webpush.Toast{Title: "Home", URL: WebPushPath, Tag: "home"})
	w.Deliver(t, home)
	w.PollString(t, "the toast for the open page", browsertest.Latest, "Latest notification: Home")
	if did := w.Click(t, "home"); did != "focus "+srv.URL+WebPushPath {
		t.Errorf("click on a toast for the open page: %s", did)
	}
}
