package web

// The dashboard's tile previews show images a feed chose. Had the page
// linked them, every admin who opened it would make a request of the
// feed's choosing — to an intranet address, or to a tracker that learns
// when and from where the dashboard is read. So the page only ever links
// /preview-image?id=ID, and the daemon fetches the image itself: through
// Options.PreviewImage (the fetcher's guarded transport, with image_check's
// size and type rules), only for a logged-in dashboard, and only for an id
// it put in the previews it rendered last — not an open proxy. An id is a
// keyed hash of the URL, so it reveals nothing and stays the same across
// refreshes (the browser's cache works); what was fetched is kept for
// previewImageTTL.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// PreviewImageFunc fetches a remote tile image for the dashboard with the
// fetcher's rules and returns its bytes and content type (fetch.Client.Image).
type PreviewImageFunc func(ctx context.Context, url string) (data []byte, contentType string, err error)

// Limits of the preview image proxy.
const (
	// previewImageTTL is how long a fetched (or refused) image is kept.
	previewImageTTL = 10 * time.Minute
	// maxPreviewImages bounds the distinct images one rendering of the
	// previews links (later ones are left out): with image_check's 80 KB
	// cap, the cache holds at most about 10 MB.
	maxPreviewImages = 128
	// previewImagePath is where the dashboard serves them.
	previewImagePath = "/preview-image"
)

// errUnknownImage is an id that is not in the current previews.
var errUnknownImage = errors.New("not an image of the current previews")

// previewImages maps the ids of the last rendered previews to their URLs
// and keeps what was fetched for them.
type previewImages struct {
	fetch  PreviewImageFunc // nil: previews show no remote images
	secret []byte
	log    *slog.Logger

	mu      sync.Mutex
	urls    map[string]string       // id → URL, of the last rendering
	entries map[string]*imageResult // id → fetched (or in flight)
}

type imageResult struct {
	done    chan struct{} // closed when the fields below are set
	data    []byte
	ctype   string
	err     error
	expires time.Time
}

func newPreviewImages(fetch PreviewImageFunc, secret []byte, log *slog.Logger) *previewImages {
	return &previewImages{fetch: fetch, secret: secret, log: log, urls: map[string]string{}, entries: map[string]*imageResult{}}
}

// imageRefs collects the images one rendering of the previews links.
type imageRefs struct {
	p    *previewImages
	urls map[string]string
}

// begin starts a rendering of the previews.
func (p *previewImages) begin() *imageRefs {
	return &imageRefs{p: p, urls: map[string]string{}}
}

// ref returns the dashboard's own URL for the remote image u, or "" when
// the image is left out (no fetcher, or the rendering links too many).
func (r *imageRefs) ref(u string) string {
	if r.p.fetch == nil || u == "" {
		return ""
	}
	id := r.p.id(u)
	if _, ok := r.urls[id]; !ok {
		if len(r.urls) >= maxPreviewImages {
			return ""
		}
		r.urls[id] = u
	}
	return previewImagePath + "?id=" + id
}

// commit makes the rendering's images the ones that may be fetched, and
// forgets what was kept for images no longer shown.
func (r *imageRefs) commit() {
	p := r.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.urls = r.urls
	for id := range p.entries {
		if _, ok := p.urls[id]; !ok {
			delete(p.entries, id)
		}
	}
}

func (p *previewImages) id(u string) string {
	m := hmac.New(sha256.New, p.secret)
	m.Write([]byte("tilecast preview image\x00"))
	m.Write([]byte(u))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// get returns the image with the given id: errUnknownImage unless the last
// rendering linked it, else the kept result or a new fetch. Concurrent
// requests for one id share one fetch, which runs to its own timeout even
// if the browser that asked goes away: its result is kept for the next.
func (p *previewImages) get(ctx context.Context, id string, now time.Time) ([]byte, string, error) {
	p.mu.Lock()
	u, ok := p.urls[id]
	if !ok {
		p.mu.Unlock()
		return nil, "", errUnknownImage
	}
	e := p.entries[id]
	if e != nil {
		select {
		case <-e.done:
			if !now.Before(e.expires) {
				e = nil
			}
		default: // in flight
		}
	}
	if e == nil {
		e = &imageResult{done: make(chan struct{})}
		p.entries[id] = e
		go p.load(context.WithoutCancel(ctx), u, e, now)
	}
	p.mu.Unlock()
	select {
	case <-e.done:
		return e.data, e.ctype, e.err
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
}

func (p *previewImages) load(ctx context.Context, u string, e *imageResult, now time.Time) {
	data, ctype, err := p.fetch(ctx, u)
	if err != nil {
		// Once per fetch, not per request: the refusal is kept too.
		p.log.Warn("preview image refused", "err", err)
	}
	p.mu.Lock()
	e.data, e.ctype, e.err, e.expires = data, ctype, err, now.Add(previewImageTTL)
	p.mu.Unlock()
	close(e.done)
}

// servePreviewImage answers GET /preview-image?id=ID for a logged-in
// dashboard: the image, 404 for an id not in the current previews, 502
// for an image the fetcher refused.
func (d *dashboard) servePreviewImage(w http.ResponseWriter, r *http.Request) {
	if !d.authorized(w, r) {
		return
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Referrer-Policy", "no-referrer")
	data, ctype, err := d.images.get(r.Context(), r.URL.Query().Get("id"), d.s.now())
	switch {
	case errors.Is(err, errUnknownImage):
		h.Set("Cache-Control", "no-store")
		http.Error(w, "unknown image: only images of the current previews are served", http.StatusNotFound)
		return
	case r.Context().Err() != nil:
		return // the browser went away
	case err != nil:
		h.Set("Cache-Control", "no-store")
		http.Error(w, "image refused", http.StatusBadGateway)
		return
	}
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("Cache-Control", "private, max-age="+strconv.Itoa(int(previewImageTTL/time.Second)))
	_, _ = w.Write(data)
}
