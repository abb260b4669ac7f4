package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
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

	img, _ := browsertest.Screenshot(t, srv.URL+"/", 1280, 2200) // tall: the chart comes before the tiles
	// Tiles and toasts are drawn in the accent colour: at least one small
	// tile's worth of it (the real pixel count is far higher).
	browsertest.CheckDrawn(t, img, 1600)
}

// TestDashboardLayoutInBrowser renders the dashboard, with a day of
// activity in its chart, at 400 and 1,400 px: the page never scrolls
// sideways (wide tables scroll in their own box), the charts are drawn
// at a readable size within the window, and the numbers' tables show.
// With TILECAST_SCREENSHOTS=1 it saves the screenshots under docs/.
func TestDashboardLayoutInBrowser(t *testing.T) {
	e := newDashEnv(t, nil)
	observeDay(e)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+keyOne)
		e.handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	type layout struct {
		Inner      int     `json:"inner"`
		Scroll     int     `json:"scroll"`
		ChartW     float64 `json:"chart_w"`
		ChartH     float64 `json:"chart_h"`
		ChartRight float64 `json:"chart_right"`
		FetchH     float64 `json:"fetch_h"`
		TableRows  int     `json:"table_rows"`
	}
	for _, width := range []int{400, 1400} {
		ctx := browsertest.Context(t, width, 1100)
		browsertest.Navigate(t, ctx, srv.URL+"/")
		browsertest.Poll(t, ctx, "the dashboard", `document.getElementById('sends-chart') !== null`, 30*time.Second)
		l := browsertest.Eval[layout](t, ctx, `(() => { const c = document.getElementById('sends-chart').getBoundingClientRect();
			return {inner: innerWidth, scroll: document.documentElement.scrollWidth, chart_w: c.width, chart_h: c.height, chart_right: c.right,
				fetch_h: document.getElementById('fetch-chart').getBoundingClientRect().height,
				table_rows: document.querySelectorAll('#sends-table tbody tr').length}; })()`)
		if l.Inner != width {
			t.Fatalf("window %d px, want %d", l.Inner, width)
		}
		if l.Scroll > l.Inner {
			t.Errorf("%d px: page scrolls sideways (scrollWidth %d)", width, l.Scroll)
		}
		if l.ChartRight > float64(l.Inner) || l.ChartW < 300 || l.ChartH < 75 || l.FetchH < 50 {
			t.Errorf("%d px: sends chart %.0f×%.0f ending at %.0f, fetch chart %.0f high", width, l.ChartW, l.ChartH, l.ChartRight, l.FetchH)
		}
		if l.TableRows != 3 {
			t.Errorf("%d px: sends table shows %d rows, want 3", width, l.TableRows)
		}
		browsertest.SaveScreenshot(t, "..", "dashboard-"+strconv.Itoa(width)+".png", browsertest.CapturePNG(t, ctx))
	}
}
