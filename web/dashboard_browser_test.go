package web

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
)

// chromiumPath fails (never skips) when the browser is missing: the page
// is only proven by rendering it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found; install it with: apt-get update && apt-get install -y chromium")
	return ""
}

// headless runs Chromium with its network confined to loopback.
func headless(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars",
		"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
		"--user-data-dir=" + t.TempDir(),
		// Less than DashboardRefresh: the page must not reload mid-dump.
		"--virtual-time-budget=5000",
	}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\nstderr:\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

// gradientServer serves a gradient PNG for the tile's background image.
func gradientServer(t *testing.T) *httptest.Server {
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for y := range 64 {
		for x := range 64 {
			img.Set(x, y, color.RGBA{uint8(x * 4), uint8(y * 4), 120, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(buf.Bytes())
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestDashboardInBrowser renders the dashboard in headless Chromium. The
// command line cannot log in, so the test server adds the bearer key to
// every request (header auth is one of the two real ways in); the login
// flow itself is covered by TestDashboardLogin.
func TestDashboardInBrowser(t *testing.T) {
	bin := chromiumPath(t)
	imgs := gradientServer(t)
	e := newDashEnv(t, func(o *Options) {
		o.Feeds = func() []tilecast.Feed {
			fs := dashFeeds()
			fs[0].Tile.BackgroundImage = imgs.URL + "/tile.png"
			return fs
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

	dom := string(headless(t, bin, "--dump-dom", srv.URL+"/"))
	for _, want := range []string{
		`id="feed-news"`, "<b>news</b>", `id="feed-weather"`, // feed names
		`<span class="tv-title">Daily News</span>`,                        // the rendered tile title
		`<b>Daily News</b> &lt;img src=x onerror=alert(1)&gt; &amp; more`, // toast, hostile text as text
		`data-template="IconicTile"`, `id="outbox-depth">7<`, `<span class="flag">broken</span>`,
		`src="` + imgs.URL + `/tile.png"`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}
	if strings.Contains(dom, `<img src="x"`) {
		t.Error("hostile item title became an element")
	}

	shot := filepath.Join(t.TempDir(), "dashboard.png")
	headless(t, bin, "--screenshot="+shot, "--window-size=1280,1000", srv.URL+"/")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode screenshot: %v", err)
	}
	b := img.Bounds()
	if b.Dx() != 1280 || b.Dy() != 1000 {
		t.Errorf("screenshot is %v, want 1280x1000", b)
	}
	colours := map[color.RGBA]int{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			colours[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
		}
	}
	if len(colours) <= 20 {
		t.Errorf("screenshot has %d colours: looks blank", len(colours))
	}
	// Tiles and toasts are drawn in the accent colour: at least one small
	// tile's worth of it (the real pixel count is far higher).
	accent := 0
	for c, n := range colours {
		if closeTo(c, color.RGBA{0x1b, 0xa1, 0xe2, 0xff}) {
			accent += n
		}
	}
	if accent < 1600 {
		t.Errorf("only %d accent-coloured pixels; tiles not drawn", accent)
	}
}

func closeTo(a, b color.RGBA) bool {
	d := func(x, y uint8) int {
		if x > y {
			return int(x - y)
		}
		return int(y - x)
	}
	return d(a.R, b.R) <= 3 && d(a.G, b.G) <= 3 && d(a.B, b.B) <= 3
}
