package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/internal/browsertest"
	"github.com/tilecast/tilecast/web"
)

// TestDaemonWebPushInBrowser is the Web Push issue's browser test: a
// running daemon sends a feed's new item to an emulated browser, the
// emulator (playing the push service) decrypts what tilecast built, and
// headless Chromium, which loaded the example page from the same daemon
// and registered its sw.js, gets those plaintexts through the DevTools
// protocol's deliverPushMessage. The worker must show the toast with the
// item and a url on the daemon's origin, and store the tile's badge
// count and content for the page.
func TestDaemonWebPushInBrowser(t *testing.T) {
	dir := t.TempDir()
	keyFile, pub := vapidKey(t, dir)

	emu := emulator.New(emulator.Options{})
	defer emu.Close()
	// The plaintexts the emulator decrypted, in the order it accepted
	// them: pushes to the browser are served one at a time so that each
	// one's record is read before the next can replace it.
	var (
		mu       sync.Mutex
		plains   [][]byte
		endpoint string // the browser's endpoint path, set once it exists
		token    string
	)
	eh := emu.Handler()
	esrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if endpoint == "" || r.URL.Path != endpoint {
			eh.ServeHTTP(w, r)
			return
		}
		before, _ := emu.Browser(token)
		eh.ServeHTTP(w, r)
		after, _ := emu.Browser(token)
		if after.Last != nil && (before.Last == nil || after.Last.Time != before.Last.Time || after.Counts != before.Counts) {
			plains = append(plains, []byte(after.Last.Plaintext))
		}
	}))
	defer esrv.Close()
	emu.SetBaseURL(esrv.URL)
	chrome, err := emu.CreateBrowser(emulator.Healthy, "chrome", emulator.BrowserParams{ApplicationServerKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(chrome.Subscription.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	endpoint, token = u.Path, chrome.Token
	mu.Unlock()

	feed := &growingFeed{}
	feed.add("First")
	fsrv := httptest.NewServer(feed)
	defer fsrv.Close()

	cfg := loopbackConfig(t, dir, "app secret-key-1\n", fmt.Sprintf(`[push.webpush]
subject = "mailto:ops@tilecast.dev"
vapid_private_key_file = %q
allowed_hosts = ["127.0.0.1"]
[[feed]]
name = "news"
url = "%s/news.xml"
schedule = "@every 1s"
[feed.toast]
text1 = "{{.Feed.Title}}"
text2 = "{{.Item.Title}}"
param = "/item?id={{.Item.ID | urlquery}}"
[feed.tile]
title = "News"
count = "{{.NewCount}}"
back_content = "{{.Item.Title}}"
`, keyFile, fsrv.URL))

	d := startDaemon(t, cfg)
	defer d.stop() // before the servers close

	sub, _ := json.Marshal(chrome.Subscription)
	reg := `{"subscription":` + string(sub) + `,"feeds":["news"]}`
	if code, body := d.call("POST", "/v1/channels", reg, "secret-key-1"); code != http.StatusCreated {
		t.Fatalf("register the subscription: %d %s", code, body)
	}
	waitFor(t, "the baseline fetch", func() bool { return strings.Contains(d.logs.String(), "msg=fetch feed=news") })
	feed.add("Harbour bridge reopens")
	waitFor(t, "the emulated browser's toast and tile", func() bool {
		st, _ := emu.Browser(chrome.Token)
		return len(st.Notifications) == 1 && st.Tile != nil && st.Tile.Body == "Harbour bridge reopens"
	})
	mu.Lock()
	got := plains
	mu.Unlock()
	// A channel that joins gets the feed's current tile at once ("First"),
	// then the new item's toast and tile.
	kinds := map[string]int{}
	for _, p := range got {
		var m struct{ Kind string }
		if err := json.Unmarshal(p, &m); err != nil {
			t.Fatalf("decrypted push %q is not the worker's JSON: %v", p, err)
		}
		kinds[m.Kind]++
	}
	if kinds["toast"] != 1 || kinds["tile"] < 1 {
		t.Fatalf("the push service decrypted %q, want one toast and the tiles", got)
	}

	origin := "http://" + d.addr
	w := browsertest.OpenWorker(t, origin, web.WebPushPath)
	for _, p := range got {
		w.Deliver(t, p)
	}
	// The page shows what the worker told it last; wait for the tile,
	// which went after the toast whatever order the two were sent in.
	w.PollString(t, "the page shows the tile", `Promise.resolve(JSON.stringify([document.getElementById("badge").textContent,
		document.getElementById("tile-title").textContent]))`, `["1","News"]`)
	if st, raw := w.Tile(t); st.Count == nil || *st.Count != 1 || st.Title != "News" || st.Body != "Harbour bridge reopens" {
		t.Errorf("the worker stored the tile %s", raw)
	}
	var toast *browsertest.Notification
	ns := w.Notifications(t)
	for i := range ns {
		if ns[i].Title == "Town News" {
			toast = &ns[i]
		}
	}
	if toast == nil {
		t.Fatalf("no toast among the shown notifications %+v", ns)
	}
	if toast.Body != "Harbour bridge reopens" || toast.URL != origin+"/item?id=g1" {
		t.Errorf("toast shown as %+v", *toast)
	}
}
