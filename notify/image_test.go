package notify_test

import (
	"bytes"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/fetch"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
)

// imageServer serves a PNG, a JPEG, a GIF, HTML pretending to be a PNG and
// an 81 KB PNG, 404 for anything else, and counts requests per path.
func imageServer(t *testing.T) (*httptest.Server, func(string) int) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	img.Set(1, 1, color.RGBA{G: 255, A: 255})
	var p, j, g bytes.Buffer
	if err := png.Encode(&p, img); err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(&j, img, nil); err != nil {
		t.Fatal(err)
	}
	if err := gif.Encode(&g, img, nil); err != nil {
		t.Fatal(err)
	}
	big := append(bytes.Clone(p.Bytes()), make([]byte, 81<<10-p.Len())...)
	bodies := map[string][]byte{
		"/a.png": p.Bytes(), "/b.jpg": j.Bytes(), "/c.gif": g.Bytes(),
		"/fake.png": []byte("<html><body>login required</body></html>"), "/big.png": big,
	}
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
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv, func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return hits[path]
	}
}

func imageFeed(check bool, fallback string) *tilecast.Feed {
	return &tilecast.Feed{
		Name:          "photos",
		ImageCheck:    check,
		FallbackImage: fallback,
		Tile: &tilecast.TileSpec{
			Template:             tilecast.TileFlip,
			Title:                "{{.Item.Title}}",
			BackgroundImage:      "{{.Item.Image}}",
			SmallBackgroundImage: "appdata:/Assets/Small.png",
		},
	}
}

func imageData(url string) *tilecast.TemplateData {
	return &tilecast.TemplateData{Item: tilecast.Item{ID: "1", Title: "Photo", Image: url}}
}

// element returns the text of <wp:name> in body and whether it is present.
func element(body []byte, name string) (string, bool) {
	s := string(body)
	open, end := "<wp:"+name+">", "</wp:"+name+">"
	i := strings.Index(s, open)
	if i < 0 {
		return "", false
	}
	j := strings.Index(s[i:], end)
	return s[i+len(open) : i+j], true
}

func TestRendererImageCheck(t *testing.T) {
	srv, hits := imageServer(t)
	checker := fetch.New(fetch.Options{AllowPrivate: true})
	r := notify.NewRenderer(&mpns.Encoder{}, notify.RendererOptions{Images: checker})
	const fallback = "appdata:/Assets/Fallback.png"
	tests := []struct {
		path     string
		fallback string
		want     string // "" = element left out; "=" = the image itself
	}{
		{"/a.png", fallback, "="},
		{"/b.jpg", fallback, "="},
		{"/c.gif", fallback, fallback},
		{"/fake.png", fallback, fallback},
		{"/big.png", fallback, fallback},
		{"/missing.png", fallback, fallback},
		{"/c.gif", "", ""},
		{"/big.png", "", ""},
	}
	for round := range 10 { // many renders, one request per image URL
		for _, tt := range tests {
			url := srv.URL + tt.path
			req, err := r.Tile(imageFeed(true, tt.fallback), imageData(url))
			if err != nil {
				t.Fatalf("Tile(%s): %v", tt.path, err)
			}
			got, present := element(req, "BackgroundImage")
			want := tt.want
			if want == "=" {
				want = url
			}
			if present != (want != "") || got != want {
				t.Fatalf("round %d, %s (fallback %q): BackgroundImage = %q (present %v), want %q",
					round, tt.path, tt.fallback, got, present, want)
			}
			if small, _ := element(req, "SmallBackgroundImage"); small != "appdata:/Assets/Small.png" {
				t.Errorf("local image changed to %q", small)
			}
		}
	}
	for _, p := range []string{"/a.png", "/b.jpg", "/c.gif", "/fake.png", "/big.png", "/missing.png"} {
		if n := hits(p); n != 1 {
			t.Errorf("%s requested %d times across 10 rounds, want 1", p, n)
		}
	}
}

func TestRendererImageCheckOff(t *testing.T) {
	srv, hits := imageServer(t)
	checker := fetch.New(fetch.Options{AllowPrivate: true})
	url := srv.URL + "/c.gif"
	for _, r := range []*notify.Renderer{
		notify.NewRenderer(&mpns.Encoder{}, notify.RendererOptions{Images: checker}), // feed has image_check off
		notify.NewRenderer(&mpns.Encoder{}),                                          // no checker
	} {
		req, err := r.Tile(imageFeed(false, "appdata:/F.png"), imageData(url))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := element(req, "BackgroundImage"); got != url {
			t.Errorf("BackgroundImage = %q, want %q unchecked", got, url)
		}
	}
	// With the check on but no checker, nothing is fetched either.
	if _, err := notify.NewRenderer(&mpns.Encoder{}).Tile(imageFeed(true, ""), imageData(url)); err != nil {
		t.Fatal(err)
	}
	if n := hits("/c.gif"); n != 0 {
		t.Errorf("%d image requests, want 0", n)
	}
}

func TestRendererImageCheckCycle(t *testing.T) {
	srv, hits := imageServer(t)
	r := notify.NewRenderer(&mpns.Encoder{}, notify.RendererOptions{Images: fetch.New(fetch.Options{AllowPrivate: true})})
	f := &tilecast.Feed{Name: "cycle", ImageCheck: true, Tile: &tilecast.TileSpec{
		Template: tilecast.TileCycle,
		Title:    "Cycle",
		CycleImages: []string{
			srv.URL + "/c.gif", srv.URL + "/a.png", "isostore:/Shared/ShellContent/1.jpg",
			srv.URL + "/fake.png", srv.URL + "/b.jpg",
		},
	}}
	req, err := r.Tile(f, imageData(""))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{srv.URL + "/a.png", "isostore:/Shared/ShellContent/1.jpg", srv.URL + "/b.jpg"}
	for i, w := range want {
		if got, _ := element(req, "CycleImage"+strconv.Itoa(i+1)); got != w {
			t.Errorf("CycleImage%d = %q, want %q", i+1, got, w)
		}
	}
	if got, ok := element(req, "CycleImage4"); ok {
		t.Errorf("CycleImage4 = %q, want it left out (refused images close ranks)", got)
	}
	if n := hits("/c.gif"); n != 1 {
		t.Errorf("/c.gif requested %d times", n)
	}
}
