package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Image check limits (design.md §3 "Images"): MPNS refuses tile images over
// 80 KB, and the phone shows only PNG and JPEG.
const (
	MaxImageBytes  = 80 << 10
	imageCacheTTL  = time.Hour
	imageCacheSize = 1000
)

// CheckImage reports whether the remote tile image at rawURL is usable: an
// http(s) URL that answers 2xx with at most MaxImageBytes of PNG or JPEG
// (by content sniffing, whatever Content-Type says). Each URL is fetched
// once per hour, through the same guarded transport as feeds, and
// concurrent checks of one URL share a single request; a refused image is
// logged once per fetch, not per send. Local phone URLs (isostore:,
// appdata:) are accepted without a fetch. reason says why an image was
// refused.
func (c *Client) CheckImage(ctx context.Context, rawURL string) (ok bool, reason string) {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil {
		return false, "bad url"
	}
	switch strings.ToLower(u.Scheme) {
	case "isostore", "appdata":
		return true, ""
	case "http", "https":
	default:
		return false, fmt.Sprintf("scheme %q not allowed", u.Scheme)
	}
	key := u.String()
	for {
		e, owner := c.images.claim(key, c.opts.Now())
		if owner {
			ok, reason = c.checkImage(ctx, u)
			if ctx.Err() != nil {
				// The caller gave up; that says nothing about the image.
				c.images.abandon(key, e)
				return false, reason
			}
			if !ok {
				c.logger.Warn("tile image refused", "url", u.Redacted(), "reason", reason)
			}
			c.images.fill(e, ok, reason, c.opts.Now().Add(c.images.ttl))
			return ok, reason
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return false, ctx.Err().Error()
		}
		if !e.abandoned {
			return e.ok, e.reason
		}
		// The owner's caller gave up before a result; try again.
	}
}

// ErrImageRefused marks an image Image would not return: the reason follows
// it in the error text.
var ErrImageRefused = errors.New("image refused")

// Image fetches the remote image at rawURL with CheckImage's rules — an
// http(s) URL, the guarded transport (loopback and private addresses
// refused unless AllowPrivate), a 2xx answer of at most MaxImageBytes
// whose content sniffs as PNG or JPEG — and returns its bytes and that
// sniffed type. It is what the dashboard shows tile previews through, so
// the admin's browser never fetches a URL a feed chose. Unlike
// CheckImage it does not cache: the caller keeps what it shows. A refusal
// wraps ErrImageRefused.
func (c *Client) Image(ctx context.Context, rawURL string) (data []byte, contentType string, err error) {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil {
		return nil, "", fmt.Errorf("%w: bad url", ErrImageRefused)
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return nil, "", fmt.Errorf("%w: scheme %q not allowed", ErrImageRefused, u.Scheme)
	}
	data, typ, reason := c.readImage(ctx, u)
	if reason != "" {
		return nil, "", fmt.Errorf("%w: %s: %s", ErrImageRefused, u.Redacted(), reason)
	}
	return data, typ, nil
}

// checkImage fetches u and judges the body.
func (c *Client) checkImage(ctx context.Context, u *url.URL) (bool, string) {
	_, _, reason := c.readImage(ctx, u)
	return reason == "", reason
}

// readImage fetches u and returns the body and its sniffed type, or why
// it is not a usable tile image.
func (c *Client) readImage(ctx context.Context, u *url.URL) (body []byte, typ, reason string) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, "", "bad url"
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	req.Header.Set("Accept", "image/png, image/jpeg")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, "", err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, "", "http " + fmt.Sprint(resp.StatusCode)
	}
	if resp.ContentLength > MaxImageBytes {
		return nil, "", fmt.Sprintf("content-length %d over %d bytes", resp.ContentLength, MaxImageBytes)
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, MaxImageBytes+1))
	if err != nil {
		return nil, "", "read: " + err.Error()
	}
	if len(body) > MaxImageBytes {
		return nil, "", fmt.Sprintf("over %d bytes", MaxImageBytes)
	}
	switch t := http.DetectContentType(body[:min(len(body), 512)]); t {
	case "image/png", "image/jpeg":
		return body, t, ""
	default:
		return nil, "", "content is " + t + ", want image/png or image/jpeg"
	}
}

// imageCache remembers image verdicts by URL for ttl, holding at most size
// entries. An entry whose done channel is open is a check in flight.
type imageCache struct {
	ttl  time.Duration
	size int

	mu      sync.Mutex
	entries map[string]*imageEntry
}

type imageEntry struct {
	done      chan struct{} // closed once ok, reason, expires and abandoned are set
	ok        bool
	reason    string
	expires   time.Time
	abandoned bool
}

func newImageCache(size int, ttl time.Duration) *imageCache {
	return &imageCache{ttl: ttl, size: size, entries: make(map[string]*imageEntry)}
}

// claim returns the live entry for key, or creates an in-flight one and
// reports that the caller owns it (and must fill or abandon it).
func (ic *imageCache) claim(key string, now time.Time) (*imageEntry, bool) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if e := ic.entries[key]; e != nil {
		select {
		case <-e.done:
			if now.Before(e.expires) {
				return e, false
			}
		default:
			return e, false // in flight
		}
	}
	if len(ic.entries) >= ic.size {
		ic.evict(now)
	}
	e := &imageEntry{done: make(chan struct{})}
	ic.entries[key] = e
	return e, true
}

// evict drops expired entries, and if none had expired the one expiring
// first. In-flight entries stay. Called with mu held.
func (ic *imageCache) evict(now time.Time) {
	var (
		oldestKey string
		oldest    time.Time
	)
	for k, e := range ic.entries {
		select {
		case <-e.done:
		default:
			continue
		}
		if !now.Before(e.expires) {
			delete(ic.entries, k)
			continue
		}
		if oldestKey == "" || e.expires.Before(oldest) {
			oldestKey, oldest = k, e.expires
		}
	}
	if len(ic.entries) >= ic.size && oldestKey != "" {
		delete(ic.entries, oldestKey)
	}
}

func (ic *imageCache) fill(e *imageEntry, ok bool, reason string, expires time.Time) {
	ic.mu.Lock()
	e.ok, e.reason, e.expires = ok, reason, expires
	ic.mu.Unlock()
	close(e.done)
}

func (ic *imageCache) abandon(key string, e *imageEntry) {
	ic.mu.Lock()
	e.abandoned = true
	if ic.entries[key] == e {
		delete(ic.entries, key)
	}
	ic.mu.Unlock()
	close(e.done)
}

// len reports the number of entries (tests).
func (ic *imageCache) len() int {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	return len(ic.entries)
}
