package fetch

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast/internal/netguardtest"
)

func testImage() image.Image {
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range 8 {
		img.Set(i, i, color.RGBA{R: 200, A: 255})
	}
	return img
}

// imageBodies returns the test images by path: valid PNG and JPEG, a GIF,
// an HTML page named .png, a valid PNG padded to 81 KB (trailing bytes after
// IEND are ignored by decoders, so only the size is wrong) and one of
// exactly 80 KB.
func imageBodies(t testing.TB) map[string][]byte {
	t.Helper()
	var p, j, g bytes.Buffer
	if err := png.Encode(&p, testImage()); err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(&j, testImage(), nil); err != nil {
		t.Fatal(err)
	}
	if err := gif.Encode(&g, testImage(), nil); err != nil {
		t.Fatal(err)
	}
	pad := func(b []byte, n int) []byte { return append(bytes.Clone(b), make([]byte, n-len(b))...) }
	return map[string][]byte{
		"/ok.png":      p.Bytes(),
		"/ok.jpg":      j.Bytes(),
		"/anim.gif":    g.Bytes(),
		"/fake.png":    []byte("<!DOCTYPE html><html><body>not an image</body></html>"),
		"/big.png":     pad(p.Bytes(), 81<<10),
		"/limit.png":   pad(p.Bytes(), MaxImageBytes),
		"/chunked.png": pad(p.Bytes(), 81<<10),
	}
}

// imageServer serves imageBodies (with a lying Content-Type for all) and
// 404 for anything else, counting requests per path.
func imageServer(t testing.TB) (*httptest.Server, func(path string) int) {
	t.Helper()
	bodies := imageBodies(t)
	var mu sync.Mutex
	hits := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		mu.Unlock()
		b, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		if r.URL.Path == "/chunked.png" {
			w.Write(b[:100])
			w.(http.Flusher).Flush() // no Content-Length: the read cap must catch it
			b = b[100:]
		} else {
			w.Header().Set("Content-Length", itoa(len(b)))
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv, func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return hits[path]
	}
}

// logCounter counts warning records by their url attribute.
type logCounter struct {
	mu   sync.Mutex
	warn map[string]int
}

func (h *logCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *logCounter) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *logCounter) WithGroup(string) slog.Handler                { return h }
func (h *logCounter) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "url" {
			h.mu.Lock()
			h.warn[a.Value.String()]++
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

func TestCheckImage(t *testing.T) {
	srv, hits := imageServer(t)
	logs := &logCounter{warn: map[string]int{}}
	c := newClient(Options{Logger: slog.New(logs)})
	tests := []struct {
		path   string
		ok     bool
		reason string
	}{
		{"/ok.png", true, ""},
		{"/ok.jpg", true, ""},
		{"/limit.png", true, ""},
		{"/anim.gif", false, "image/gif"},
		{"/fake.png", false, "text/html"},
		{"/big.png", false, "content-length"},
		{"/chunked.png", false, "over 81920 bytes"},
		{"/missing.png", false, "http 404"},
	}
	for range 5 { // repeated checks are answered from the cache
		for _, tt := range tests {
			ok, reason := c.CheckImage(t.Context(), srv.URL+tt.path)
			if ok != tt.ok || !strings.Contains(reason, tt.reason) {
				t.Errorf("CheckImage(%s) = %v, %q; want %v, %q", tt.path, ok, reason, tt.ok, tt.reason)
			}
		}
	}
	for _, tt := range tests {
		if n := hits(tt.path); n != 1 {
			t.Errorf("%s requested %d times, want 1", tt.path, n)
		}
		wantWarn := 0
		if !tt.ok {
			wantWarn = 1
		}
		if n := logs.warn[srv.URL+tt.path]; n != wantWarn {
			t.Errorf("%s: %d warnings, want %d", tt.path, n, wantWarn)
		}
	}
}

func TestCheckImageLocalAndBadURLs(t *testing.T) {
	c := New(Options{})
	for _, u := range []string{"isostore:/Shared/ShellContent/tile.png", "appdata:/Assets/Tile.png", "ISOSTORE:/x.jpg"} {
		if ok, reason := c.CheckImage(t.Context(), u); !ok {
			t.Errorf("CheckImage(%s) = false, %q; local images are not fetched", u, reason)
		}
	}
	for _, u := range []string{"file:///etc/passwd", "ftp://x/y.png", "data:image/png;base64,AAAA", "%zz", "/relative.png"} {
		if ok, _ := c.CheckImage(t.Context(), u); ok {
			t.Errorf("CheckImage(%s) = true", u)
		}
	}
	if n := c.images.len(); n != 0 {
		t.Errorf("%d cache entries for URLs never fetched", n)
	}
}

// TestCheckImageGuarded: image fetches go through the SSRF guard.
func TestCheckImageGuarded(t *testing.T) {
	srv, accepted := netguardtest.CountingServer(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(imageBodies(t)["/ok.png"])
	}))
	c := New(Options{Policy: netguardtest.Tripwire(t)})
	ok, reason := c.CheckImage(t.Context(), srv.URL+"/ok.png")
	if ok || !strings.Contains(reason, "prohibited address 127.0.0.1") {
		t.Errorf("CheckImage on loopback = %v, %q; want refused by the guard", ok, reason)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("server accepted %d connections, want 0", n)
	}
}

func TestCheckImageCacheTTLAndSize(t *testing.T) {
	srv, hits := imageServer(t)
	now := testNow
	var mu sync.Mutex
	c := newClient(Options{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	c.CheckImage(t.Context(), srv.URL+"/ok.png")
	advance(imageCacheTTL - time.Second)
	c.CheckImage(t.Context(), srv.URL+"/ok.png")
	if n := hits("/ok.png"); n != 1 {
		t.Fatalf("%d requests within the TTL, want 1", n)
	}
	advance(time.Second)
	c.CheckImage(t.Context(), srv.URL+"/ok.png")
	if n := hits("/ok.png"); n != 2 {
		t.Fatalf("%d requests after the TTL, want 2", n)
	}

	// The cache never holds more than its size.
	c.images = newImageCache(3, imageCacheTTL)
	for i := range 10 {
		c.CheckImage(t.Context(), srv.URL+"/ok.png?v="+itoa(i))
		if n := c.images.len(); n > 3 {
			t.Fatalf("cache holds %d entries, size 3", n)
		}
	}
}

// TestCheckImageConcurrent: simultaneous checks of one URL share a request.
func TestCheckImageConcurrent(t *testing.T) {
	release := make(chan struct{})
	var requests atomic.Int64
	body := imageBodies(t)["/ok.png"]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		<-release
		w.Write(body)
	}))
	defer srv.Close()
	c := newClient(Options{})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if ok, reason := c.CheckImage(t.Context(), srv.URL+"/x.png"); !ok {
				t.Errorf("CheckImage = false, %q", reason)
			}
		})
	}
	for requests.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests for 20 concurrent checks, want 1", n)
	}

	// A caller that gives up does not poison the cache.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if ok, _ := c.CheckImage(ctx, srv.URL+"/y.png"); ok {
		t.Error("cancelled check reported ok")
	}
	if ok, reason := c.CheckImage(t.Context(), srv.URL+"/y.png"); !ok {
		t.Errorf("check after a cancelled one = false, %q", reason)
	}
}

// TestImage: Image returns the bytes and sniffed type of what CheckImage
// accepts, refuses what it refuses, and is not cached.
func TestImage(t *testing.T) {
	srv, hits := imageServer(t)
	bodies := imageBodies(t)
	c := newClient(Options{})
	tests := []struct {
		path, typ, reason string
	}{
		{"/ok.png", "image/png", ""},
		{"/ok.jpg", "image/jpeg", ""},
		{"/limit.png", "image/png", ""},
		{"/anim.gif", "", "content is image/gif"},
		{"/fake.png", "", "content is text/html"},
		{"/big.png", "", "content-length 82944 over 81920 bytes"},
		{"/chunked.png", "", "over 81920 bytes"},
		{"/missing.png", "", "http 404"},
	}
	for _, tt := range tests {
		data, typ, err := c.Image(t.Context(), srv.URL+tt.path)
		if tt.reason == "" {
			if err != nil || typ != tt.typ || !bytes.Equal(data, bodies[tt.path]) {
				t.Errorf("Image(%s) = %d bytes, %q, %v; want %d bytes of %s", tt.path, len(data), typ, err, len(bodies[tt.path]), tt.typ)
			}
			continue
		}
		if !errors.Is(err, ErrImageRefused) || !strings.Contains(err.Error(), tt.reason) || data != nil {
			t.Errorf("Image(%s) = %d bytes, %v; want ErrImageRefused with %q", tt.path, len(data), err, tt.reason)
		}
	}
	c.Image(t.Context(), srv.URL+"/ok.png")
	if n := hits("/ok.png"); n != 2 {
		t.Errorf("/ok.png requested %d times by two Image calls, want 2", n)
	}
	for _, u := range []string{"isostore:/Shared/x.png", "file:///etc/passwd", "data:image/png;base64,AAAA", "%zz"} {
		if _, _, err := c.Image(t.Context(), u); !errors.Is(err, ErrImageRefused) {
			t.Errorf("Image(%s) = %v, want ErrImageRefused", u, err)
		}
	}
}

// TestImageGuarded: Image goes through the SSRF guard.
func TestImageGuarded(t *testing.T) {
	srv, accepted := netguardtest.CountingServer(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(imageBodies(t)["/ok.png"])
	}))
	c := New(Options{Policy: netguardtest.Tripwire(t)})
	_, _, err := c.Image(t.Context(), srv.URL+"/ok.png")
	if !errors.Is(err, ErrImageRefused) || !strings.Contains(err.Error(), "prohibited address 127.0.0.1") {
		t.Errorf("Image on loopback = %v; want refused by the guard", err)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("server accepted %d connections, want 0", n)
	}
}
