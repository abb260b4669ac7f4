package web

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/fetch"
	"github.com/tilecast/tilecast/internal/netguardtest"
)

// tilePNG is a small valid PNG.
func tilePNG(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	img.Set(1, 1, color.RGBA{R: 255, A: 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// imageHost serves a PNG at /tile.png and /wide.png, an HTML page at
// /page.png, 81 KiB at /big.png, and counts requests per path.
type imageHost struct {
	mu   sync.Mutex
	hits map[string]int
}

func (h *imageHost) handler(t testing.TB) http.Handler {
	pngBytes := tilePNG(t)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.hits[r.URL.Path]++
		h.mu.Unlock()
		w.Header().Set("Content-Type", "image/png") // whatever the body is
		switch r.URL.Path {
		case "/tile.png", "/wide.png":
			w.Write(pngBytes)
		case "/page.png":
			w.Write([]byte("<!doctype html><html><body><script>alert(1)</script></body></html>"))
		case "/big.png":
			w.Write(append(bytes.Clone(pngBytes), make([]byte, 81<<10)...))
		default:
			http.NotFound(w, r)
		}
	})
}

func (h *imageHost) count(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hits[path]
}

// frontPath is the path of the news tile's front image; tests change it.
type frontPath struct {
	mu   sync.Mutex
	path string
}

func (f *frontPath) get() string  { f.mu.Lock(); defer f.mu.Unlock(); return f.path }
func (f *frontPath) set(p string) { f.mu.Lock(); f.path = p; f.mu.Unlock() }

// imageFeeds are dashFeeds whose news tile shows images from base: the
// front, the wide face, and the back (the app's own image).
func imageFeeds(base string, front *frontPath) func() []tilecast.Feed {
	return func() []tilecast.Feed {
		fs := dashFeeds()
		fs[0].Tile.BackgroundImage = base + front.get()
		fs[0].Tile.WideBackgroundImage = base + "/wide.png"
		fs[0].Tile.BackBackgroundImage = "isostore:/Shared/ShellContent/back.png" // the app's own: left out
		return fs
	}
}

var imgSrc = regexp.MustCompile(`<img[^>]* src="([^"]*)"`)

// imageSrcs returns the src of every <img> of the page, unescaped.
func imageSrcs(body string) []string {
	var out []string
	for _, m := range imgSrc.FindAllStringSubmatch(body, -1) {
		out = append(out, strings.ReplaceAll(m[1], "&amp;", "&"))
	}
	return out
}

func TestDashboardLinksNoFeedImage(t *testing.T) {
	const cdn = "https://cdn.example.org"
	for _, tc := range []struct {
		name  string
		proxy bool
	}{{"proxied", true}, {"no proxy: left out", false}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDashEnv(t, func(o *Options) {
				o.Feeds = imageFeeds(cdn, &frontPath{path: "/tile.png"})
				if tc.proxy {
					o.PreviewImage = func(context.Context, string) ([]byte, string, error) {
						return nil, "", errors.New("not fetched in this test")
					}
				}
			})
			rec := e.get(t, "/", e.mustLogin(t, keyOne))
			body := rec.Body.String()
			if strings.Contains(body, "cdn.example.org") || strings.Contains(body, "isostore") {
				t.Errorf("the page names a feed-chosen image URL:\n%s", between(t, body, "preview-news", "</section>"))
			}
			srcs := imageSrcs(body)
			if !tc.proxy {
				if len(srcs) != 0 {
					t.Errorf("images linked without a proxy: %q", srcs)
				}
				return
			}
			ids := map[string]bool{}
			for _, s := range srcs {
				id, ok := strings.CutPrefix(s, "/preview-image?id=")
				if !ok || !regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`).MatchString(id) {
					t.Errorf("img src %q is not the daemon's own /preview-image?id=ID", s)
				}
				ids[id] = true
			}
			if len(ids) != 2 { // the front and the wide image
				t.Errorf("%d distinct images linked, want 2: %q", len(ids), srcs)
			}
			csp := rec.Header().Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "img-src 'self' data:;", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "http:") || strings.Contains(csp, "https:") {
				t.Errorf("Content-Security-Policy %q still admits remote images", csp)
			}
		})
	}
}

// proxyEnv is a dashboard whose previews show images of an image host
// through the real fetcher.
type proxyEnv struct {
	*env
	host   *imageHost
	base   string
	front  *frontPath
	cookie *http.Cookie
}

func newProxyEnv(t *testing.T, front string, opts fetch.Options) *proxyEnv {
	host := &imageHost{hits: map[string]int{}}
	srv := httptest.NewServer(host.handler(t))
	t.Cleanup(srv.Close)
	fetcher := fetch.New(opts)
	fp := &frontPath{path: front}
	e := newDashEnv(t, func(o *Options) {
		o.Feeds = imageFeeds(srv.URL, fp)
		o.PreviewImage = fetcher.Image
	})
	return &proxyEnv{env: e, host: host, base: srv.URL, front: fp, cookie: e.mustLogin(t, keyOne)}
}

// frontImage renders the dashboard and returns the link of the news
// tile's front image.
func (p *proxyEnv) frontImage(t *testing.T) string {
	t.Helper()
	body := p.get(t, "/", p.cookie).Body.String()
	srcs := imageSrcs(between(t, body, "preview-news", "</section>"))
	if len(srcs) == 0 {
		t.Fatal("news preview links no image")
	}
	// tileview draws the front (small, medium, wide faces) before the wide image.
	return srcs[0]
}

func TestPreviewImageServed(t *testing.T) {
	p := newProxyEnv(t, "/tile.png", fetch.Options{AllowPrivate: true})
	src := p.frontImage(t)
	if n := p.host.count("/tile.png"); n != 0 {
		t.Fatalf("rendering the page fetched the image %d times; only a request for it should", n)
	}
	want := tilePNG(t)
	for i := range 3 {
		rec := p.get(t, src, p.cookie)
		if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), want) {
			t.Fatalf("GET %s: %d, %d bytes; want 200 with the PNG", src, rec.Code, rec.Body.Len())
		}
		h := rec.Header()
		if h.Get("Content-Type") != "image/png" || h.Get("X-Content-Type-Options") != "nosniff" ||
			!strings.HasPrefix(h.Get("Cache-Control"), "private") || h.Get("Content-Security-Policy") == "" {
			t.Errorf("request %d: headers %v", i, h)
		}
	}
	if n := p.host.count("/tile.png"); n != 1 {
		t.Errorf("image fetched %d times for 3 requests, want 1 (kept)", n)
	}
	p.clock.Add(previewImageTTL)
	if rec := p.get(t, src, p.cookie); rec.Code != http.StatusOK {
		t.Fatalf("after the TTL: %d", rec.Code)
	}
	if n := p.host.count("/tile.png"); n != 2 {
		t.Errorf("image fetched %d times after the TTL, want 2", n)
	}

	// Not logged in: no image, no fetch.
	p.clock.Add(previewImageTTL)
	rec := p.get(t, src, nil)
	if rec.Code == http.StatusOK || rec.Header().Get("Content-Type") == "image/png" {
		t.Errorf("without a session: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec := p.do(t, http.MethodGet, src, "wrong-key", nil); rec.Code != http.StatusUnauthorized {
		t.Errorf("with a wrong key: %d, want 401", rec.Code)
	}
	if n := p.host.count("/tile.png"); n != 2 {
		t.Errorf("unauthenticated requests fetched the image (%d fetches)", n)
	}
}

func TestPreviewImageOnlyCurrentPreviews(t *testing.T) {
	p := newProxyEnv(t, "/tile.png", fetch.Options{AllowPrivate: true})
	src := p.frontImage(t)
	for _, bad := range []string{
		"/preview-image",
		"/preview-image?id=",
		"/preview-image?id=AAAAAAAAAAAAAAAAAAAAAA",
		"/preview-image?u=" + p.base + "/tile.png",
		"/preview-image?id=" + strings.TrimPrefix(src, "/preview-image?id=") + "x",
	} {
		if rec := p.get(t, bad, p.cookie); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", bad, rec.Code)
		}
	}
	if n := p.host.count("/page.png") + p.host.count("/tile.png"); n != 0 {
		t.Errorf("refused ids made %d fetches", n)
	}

	// The feed's tile now shows another image: the old id is refused, the
	// new one served.
	p.front.set("/page.png")
	if rec := p.get(t, src, p.cookie); rec.Code != http.StatusOK {
		t.Fatalf("before the page is rendered again the old id still works: %d", rec.Code)
	}
	newSrc := p.frontImage(t)
	if newSrc == src {
		t.Fatal("a different image got the same id")
	}
	if rec := p.get(t, src, p.cookie); rec.Code != http.StatusNotFound {
		t.Errorf("GET %s after the image left the previews: %d, want 404", src, rec.Code)
	}
	if rec := p.get(t, newSrc, p.cookie); rec.Code != http.StatusBadGateway {
		t.Errorf("GET %s (an HTML page): %d, want 502", newSrc, rec.Code)
	}

	// No tile data at all: no image may be fetched.
	p.store.states[tilecast.FeedKey{Feed: "news"}] = tilecast.FeedState{LastResult: "ok"}
	p.get(t, "/", p.cookie)
	if rec := p.get(t, newSrc, p.cookie); rec.Code != http.StatusNotFound {
		t.Errorf("GET %s with no previews: %d, want 404", newSrc, rec.Code)
	}
	if n := p.host.count("/tile.png"); n != 1 {
		t.Errorf("/tile.png fetched %d times, want 1", n)
	}
}

func TestPreviewImageRefusals(t *testing.T) {
	for _, tc := range []struct{ front, why string }{
		{"/page.png", "an HTML page served as image/png"},
		{"/big.png", "81 KiB, over image_check's 80 KB"},
		{"/missing.png", "a 404"},
	} {
		t.Run(tc.front, func(t *testing.T) {
			p := newProxyEnv(t, tc.front, fetch.Options{AllowPrivate: true})
			src := p.frontImage(t)
			for range 2 {
				rec := p.get(t, src, p.cookie)
				if rec.Code != http.StatusBadGateway || rec.Header().Get("Content-Type") == "image/png" ||
					bytes.Contains(rec.Body.Bytes(), []byte("<script")) {
					t.Errorf("%s: %d %q %q; want 502 and none of its body", tc.why, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
				}
			}
			if n := p.host.count(tc.front); n != 1 {
				t.Errorf("%s fetched %d times for 2 requests, want 1 (the refusal is kept)", tc.front, n)
			}
		})
	}
}

// TestPreviewImageGuarded: with fetch.allow_private false the proxy is no
// way into the daemon's network: an image on loopback is refused at the
// dial, and nothing reaches the server.
func TestPreviewImageGuarded(t *testing.T) {
	host := &imageHost{hits: map[string]int{}}
	srv, accepted := netguardtest.CountingServer(t, "127.0.0.1:0", host.handler(t))
	fetcher := fetch.New(fetch.Options{Policy: netguardtest.Tripwire(t), Timeout: 5 * time.Second})
	e := newDashEnv(t, func(o *Options) {
		o.Feeds = imageFeeds(srv.URL, &frontPath{path: "/tile.png"})
		o.PreviewImage = fetcher.Image
	})
	p := &proxyEnv{env: e, host: host, base: srv.URL, cookie: e.mustLogin(t, keyOne)}
	src := p.frontImage(t)
	if rec := p.get(t, src, p.cookie); rec.Code != http.StatusBadGateway {
		t.Errorf("loopback image: %d, want 502", rec.Code)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the loopback server accepted %d connections", n)
	}
}

// TestPreviewImageBounded: one rendering links at most maxPreviewImages
// distinct images; the rest are left out.
func TestPreviewImageBounded(t *testing.T) {
	fetchFn := func(context.Context, string) ([]byte, string, error) { return tilePNG(t), "image/png", nil }
	imgs := newPreviewImages(fetchFn, []byte("secret"), slog.New(slog.DiscardHandler))
	refs := imgs.begin()
	var linked int
	for i := range maxPreviewImages + 10 {
		u := "https://cdn.example.org/" + strings.Repeat("i", i+1) + ".png"
		if r := refs.ref(u); r != "" {
			linked++
			if again := refs.ref(u); again != r {
				t.Fatalf("the same URL got two links: %q, %q", r, again)
			}
		}
	}
	if linked != maxPreviewImages {
		t.Errorf("%d images linked, want %d", linked, maxPreviewImages)
	}
	refs.commit()
	// Every linked image is fetched and kept; the cache holds no more.
	for id := range imgs.urls {
		if _, _, err := imgs.get(t.Context(), id, t0); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(imgs.entries); n != maxPreviewImages {
		t.Errorf("%d images kept, want %d", n, maxPreviewImages)
	}
	// The next rendering shows one image: the others are forgotten.
	refs = imgs.begin()
	refs.ref("https://cdn.example.org/i.png")
	refs.commit()
	if n := len(imgs.entries); n != 1 {
		t.Errorf("%d images kept after the previews changed, want 1", n)
	}
}
