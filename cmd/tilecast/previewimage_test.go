package main

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/fetch"
)

// TestPreviewImagesFollowReload: the dashboard's image fetcher applies
// fetch.allow_private of the config in force — a loopback image is refused
// while it is false, served once a reload turns it on, refused again when
// a reload turns it off.
func TestPreviewImagesFollowReload(t *testing.T) {
	var pngBytes bytes.Buffer
	if err := png.Encode(&pngBytes, image.NewGray(image.Rect(0, 0, 2, 2))); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write(pngBytes.Bytes())
	}))
	t.Cleanup(srv.Close)

	var mu sync.Mutex
	cfg := &config.Config{Fetch: config.Fetch{Timeout: 5 * time.Second}}
	current := func() *config.Config { mu.Lock(); defer mu.Unlock(); return cfg }
	reload := func(allowPrivate bool) {
		mu.Lock()
		cfg = &config.Config{Fetch: config.Fetch{Timeout: 5 * time.Second, AllowPrivate: allowPrivate}}
		mu.Unlock()
	}
	get := previewImages(current, slog.New(slog.DiscardHandler))

	for i, allow := range []bool{false, true, false} {
		if i > 0 {
			reload(allow)
		}
		data, ctype, err := get(t.Context(), srv.URL+"/tile.png")
		switch {
		case allow && (err != nil || ctype != "image/png" || !bytes.Equal(data, pngBytes.Bytes())):
			t.Errorf("step %d, allow_private on: %d bytes, %q, %v; want the PNG", i, len(data), ctype, err)
		case !allow && !errors.Is(err, fetch.ErrImageRefused):
			t.Errorf("step %d, allow_private off: %v; want the loopback image refused", i, err)
		}
	}
}
