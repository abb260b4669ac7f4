package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/fetch"
	"github.com/tilecast/tilecast/internal/browsertest"
)

// TestDashboardInBrowser renders the dashboard in headless Chromium. The
// command line cannot log in, so the test server adds the bearer key to
// every request (header auth is one of the two real ways in); the login
// flow itself is covered by TestDashboardLogin.
func TestDashboardInBrowser(t *testing.T) {
	imgs := browsertest.GradientServer(t)
	// The tile image is fetched by the daemon (the gradient server is on
	// loopback, so the fetcher allows private addresses here), never by
	// the browser: the CSP would block it.
	fetcher := fetch.New(fetch.Options{AllowPrivate: true, Timeout: 10 * time.Second})
	var proxied atomic.Int64
	e := newDashEnv(t, func(o *Options) {
		o.Feeds = func() []tilecast.Feed {
			fs := dashFeeds()
			fs[0].Tile.BackgroundImage = imgs.URL + "/tile.png"
			return fs
		}
		o.PreviewImage = func(ctx context.Context, u string) ([]byte, string, error) {
			data, ctype, err := fetcher.Image(ctx, u)
			if err == nil && u == imgs.URL+"/tile.png" {
				proxied.Add(1)
			}
			return data, ctype, err
		}
	})
	st := e.store.states[tilecast.FeedKey{Feed: "news"}]
	st.Latest.Item.Title = `<img src=x onerror=alert(1)> & more`
	e.store.states[tilecast.FeedKey{Feed: "news"}] = st

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+keyOne)
		e.handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	dom := string(browsertest.Run(t, "--dump-dom", srv.URL+"/"))
	for _, want := range []string{
		`id="feed-news"`, "<b>news</b>", `id="feed-weather"`, // feed names
		`<span class="tv-title">Daily News</span>`,                        // the rendered tile title
		`<b>Daily News</b> &lt;img src=x onerror=alert(1)&gt; &amp; more`, // toast, hostile text as text
		`data-template="IconicTile"`, `id="outbox-depth">7<`, `<span class="flag">broken</span>`,
		`<img class="tv-img" src="/preview-image?id=`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}
	if strings.Contains(dom, `<img src="x"`) {
		t.Error("hostile item title became an element")
	}
	if strings.Contains(dom, imgs.URL) {
		t.Error("the page links the feed's image URL")
	}
	// The proxied image loaded: tileview's onerror handler would have
	// hidden it, and the daemon fetched it.
	if regexp.MustCompile(`<img class="tv-img" src="/preview-image[^>]* hidden[ =>]`).MatchString(dom) {
		t.Errorf("the proxied tile image failed to load in the browser:\n%s", dom)
	}
	if proxied.Load() == 0 {
		t.Error("the browser never asked the daemon for the tile image")
	}

	img, _ := browsertest.Screenshot(t, srv.URL+"/", 1280, 1000)
	// Tiles and toasts are drawn in the accent colour: at least one small
	// tile's worth of it (the real pixel count is far higher).
	browsertest.CheckDrawn(t, img, 1600)
}
