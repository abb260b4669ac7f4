// Package fetch downloads feeds with a conditional GET and parses them with
// gofeed into tilecast items. Every fetch is time-boxed, its body is capped
// (after transparent gzip decoding), redirects are limited, and dials to
// loopback, private and reserved addresses are refused after DNS resolution
// unless allowed (see netguard), because feed URLs (and the redirects they
// answer with) are not trusted. The same guarded transport checks remote
// tile images (CheckImage).
//
// # Memory budget
//
// gofeed builds trees whose size follows the number of elements, not the
// bytes: a 4 MiB document nested 300k deep peaks at about 90× its size
// (~360 MiB). Before gofeed runs, a pre-scan (xml.Decoder.RawToken, or a
// byte walk for JSON Feed) refuses documents nested deeper than 64 or with
// more than 100k elements, 100k attributes or 200k JSON nodes; a 10k-item
// RSS feed still passes. Measured by TestParseMemoryBudget, the worst
// accepted input then peaks at ≈ 8× max_body (items or flat children at the
// element limit), and a refused one at ≈ 2× its size. With max_body 4 MiB
// and parse concurrency 2: ~32 MiB per parse, ~64 MiB for two at once
// (budget asserted: 16× max_body per parse), on top of the two 4 MiB
// bodies held. Raising max_body raises the text-heavy cases (≈ 4–6×
// input) but not the element-bound ones.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/netguard"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultTimeout          = 20 * time.Second
	DefaultMaxBody          = 4 << 20
	DefaultMaxRedirects     = 5
	DefaultParseConcurrency = 2
	DefaultUserAgent        = "tilecast (+https://github.com/tilecast/tilecast)"
)

// maxDelay caps every "come back later" hint (Retry-After, max-age, Expires,
// <ttl>): a feed must not be able to silence itself for longer than a day.
const maxDelay = 24 * time.Hour

// Options configure a Client. Zero fields take the defaults above.
type Options struct {
	// Timeout bounds the whole request: connect, headers and body.
	Timeout time.Duration
	// MaxBody is the largest (decompressed) body accepted, in bytes.
	MaxBody int64
	// UserAgent is sent with every request,
	// e.g. "tilecast/1.2.0 (+https://github.com/tilecast/tilecast)".
	UserAgent string
	// AllowPrivate disables the dial-time guard (see netguard.Prohibited).
	AllowPrivate bool
	// Policy decides which addresses the guard refuses; nil means
	// netguard.Prohibited. Tests use it to let 127.0.0.2 play a public host.
	Policy netguard.Policy
	// Resolver resolves host names for every dial; nil means the default
	// resolver. The guard checks whatever it answers on that very dial, so
	// a name that re-resolves inward (DNS rebinding) is still refused.
	Resolver *net.Resolver
	// MaxRedirects is the number of redirects followed; negative follows none.
	MaxRedirects int
	// ParseConcurrency bounds how many feeds are parsed at once: gofeed may
	// need 50–100× the body size in memory for hostile input.
	ParseConcurrency int
	// Now is the clock used for NotBefore and Retry-After; time.Now if nil.
	Now func() time.Time
	// Logger receives debug lines, and a warning per refused tile image;
	// nothing is logged if nil.
	Logger *slog.Logger
}

// Client fetches feeds. It is safe for concurrent use.
type Client struct {
	opts   Options
	http   *http.Client
	sem    chan struct{}
	logger *slog.Logger

	images *imageCache

	// Test seam: a hook run before every parse.
	onParse func()
}

var _ tilecast.Fetcher = (*Client)(nil)

// New returns a Client with its own pooled transport. Proxy environment
// variables are ignored: through a proxy the guard would only see the
// proxy's address.
func New(opts Options) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.UserAgent == "" {
		opts.UserAgent = DefaultUserAgent
	}
	if opts.MaxRedirects == 0 {
		opts.MaxRedirects = DefaultMaxRedirects
	}
	if opts.ParseConcurrency <= 0 {
		opts.ParseConcurrency = DefaultParseConcurrency
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		opts:   opts,
		sem:    make(chan struct{}, opts.ParseConcurrency),
		logger: opts.Logger,
		images: newImageCache(imageCacheSize, imageCacheTTL),
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Resolver: opts.Resolver}
	if !opts.AllowPrivate {
		netguard.Dialer(dialer, opts.Policy)
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: opts.Timeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
	c.http = &http.Client{Transport: tr, CheckRedirect: c.checkRedirect}
	return c
}

// Close drops the client's idle connections. A client replaced on a
// config reload is closed once its last fetch is done; Close does not
// wait for fetches in flight.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// checkRedirect limits hops, allows only http(s) and refuses to leave https
// for http once the chain used https.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	max := max(c.opts.MaxRedirects, 0)
	if len(via) > max {
		return fmt.Errorf("stopped after %d redirects", max)
	}
	if s := req.URL.Scheme; s != "http" && s != "https" {
		return fmt.Errorf("redirect to %q refused: scheme %q", req.URL.Redacted(), s)
	}
	if req.URL.Scheme == "http" {
		for _, r := range via {
			if r.URL.Scheme == "https" {
				return fmt.Errorf("redirect to %q refused: https to http downgrade", req.URL.Redacted())
			}
		}
	}
	c.logger.Debug("redirect", "from", via[len(via)-1].URL.Redacted(), "to", req.URL.Redacted())
	return nil
}

// Fetch performs a conditional GET of rawURL with v and parses the feed.
// A 304 returns NotModified with nothing parsed. Every failure is a
// *tilecast.FetchError.
func (c *Client) Fetch(ctx context.Context, rawURL string, v tilecast.Validators) (*tilecast.FeedResult, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, &tilecast.FetchError{Err: fmt.Errorf("parse url: %w", err)}
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, &tilecast.FetchError{Err: fmt.Errorf("url %q: scheme must be http or https", u.Redacted())}
	}

	body, resp, err := c.get(ctx, u, v)
	if err != nil {
		return nil, err
	}
	now := c.opts.Now()
	res := &tilecast.FeedResult{
		Status:     resp.StatusCode,
		Validators: validators(resp.StatusCode, resp.Header, v),
	}
	if resp.StatusCode == http.StatusNotModified {
		res.NotModified = true
		res.NotBefore = notBefore(resp.Header, 0, now)
		return res, nil
	}

	p, err := c.parse(ctx, body, resp.Request.URL) // the final URL, after redirects
	if err != nil {
		return nil, &tilecast.FetchError{Status: resp.StatusCode, Err: err}
	}
	res.Title, res.Link, res.Items = p.title, p.link, p.items
	res.NotBefore = notBefore(resp.Header, p.ttl, now)
	return res, nil
}

// parse runs parse under the semaphore that bounds concurrent parses.
func (c *Client) parse(ctx context.Context, body []byte, base *url.URL) (parsedFeed, error) {
	if err := c.acquire(ctx); err != nil {
		return parsedFeed{}, fmt.Errorf("wait for parser: %w", err)
	}
	defer func() { <-c.sem }()
	if c.onParse != nil {
		c.onParse()
	}
	p, err := parse(body, base)
	if err != nil {
		return parsedFeed{}, fmt.Errorf("parse feed: %w", err)
	}
	return p, nil
}

func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// get sends the request and reads the capped body of a 2xx response. The
// returned response's body is already closed. A 304 returns a nil body.
func (c *Client) get(ctx context.Context, u *url.URL, v tilecast.Validators) ([]byte, *http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, &tilecast.FetchError{Err: fmt.Errorf("new request: %w", err)}
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	req.Header.Set("Accept", "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5")
	// Accept-Encoding is left to the transport: it only decodes gzip
	// transparently when it added the header itself, and the body cap must
	// bound the decoded bytes.
	if v.ETag != "" {
		req.Header.Set("If-None-Match", v.ETag)
	}
	if v.LastModified != "" {
		req.Header.Set("If-Modified-Since", v.LastModified)
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, &tilecast.FetchError{Err: err}
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode == http.StatusNotModified:
		return nil, resp, nil
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		// Drain a little so the connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		fe := &tilecast.FetchError{Status: resp.StatusCode, Err: errors.New(statusText(resp.StatusCode))}
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			fe.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.opts.Now())
		}
		return nil, nil, fe
	}

	max := c.opts.MaxBody
	if resp.ContentLength > max {
		return nil, nil, &tilecast.FetchError{Status: resp.StatusCode,
			Err: fmt.Errorf("content-length %d over %d: %w", resp.ContentLength, max, tilecast.ErrBodyTooLarge)}
	}
	body, err := readCapped(resp.Body, max)
	if errors.Is(err, tilecast.ErrBodyTooLarge) {
		return nil, nil, &tilecast.FetchError{Status: resp.StatusCode, Err: err}
	}
	if err != nil {
		return nil, nil, &tilecast.FetchError{Err: fmt.Errorf("read body: %w", err)}
	}
	return body, resp, nil
}

// readCapped reads r to the end, but never more than max+1 bytes: one byte
// over max proves the body too large, so an endless or bomb-sized
// (decompressed) stream costs at most max+1 bytes of memory.
func readCapped(r io.Reader, max int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("body over %d bytes: %w", max, tilecast.ErrBodyTooLarge)
	}
	return body, nil
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return strings.ToLower(t)
	}
	return "unexpected status"
}

// validators returns the validators to store after a response. A 200
// replaces them (one without an ETag must not keep a stale one); a 304 may
// omit some, so it only updates those it carries.
func validators(status int, h http.Header, old tilecast.Validators) tilecast.Validators {
	next := tilecast.Validators{ETag: h.Get("ETag"), LastModified: h.Get("Last-Modified")}
	if status == http.StatusNotModified {
		if next.ETag == "" {
			next.ETag = old.ETag
		}
		if next.LastModified == "" {
			next.LastModified = old.LastModified
		}
	}
	return next
}

// parseRetryAfter reads a Retry-After value (delay-seconds or HTTP-date) and
// returns the time it names, capped at now+24h; zero when absent, invalid or
// already past.
func parseRetryAfter(s string, now time.Time) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	var t time.Time
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		if n > uint64(maxDelay/time.Second) {
			n = uint64(maxDelay / time.Second)
		}
		if n == 0 {
			return time.Time{}
		}
		t = now.Add(time.Duration(n) * time.Second)
	} else if d, err := http.ParseTime(s); err == nil {
		t = d
	} else {
		return time.Time{}
	}
	return clampDelay(t, now)
}

// clampDelay returns t capped at now+24h, or zero if t is not after now.
func clampDelay(t, now time.Time) time.Time {
	if !t.After(now) {
		return time.Time{}
	}
	if limit := now.Add(maxDelay); t.After(limit) {
		return limit
	}
	return t
}

// notBefore is the latest of Cache-Control max-age (less Age), Expires and
// the RSS <ttl>, capped at now+24h; zero when none says anything.
func notBefore(h http.Header, ttl time.Duration, now time.Time) time.Time {
	var best time.Time
	later := func(t time.Time) {
		if t = clampDelay(t, now); t.After(best) {
			best = t
		}
	}
	if maxAge, ok := cacheMaxAge(h.Values("Cache-Control")); ok {
		// Age is how long the response already sat in a cache.
		if age, err := strconv.ParseInt(strings.TrimSpace(h.Get("Age")), 10, 64); err == nil && age > 0 {
			maxAge = max(maxAge-age, 0)
		}
		later(now.Add(time.Duration(min(maxAge, int64(maxDelay/time.Second))) * time.Second))
	}
	if e := h.Get("Expires"); e != "" {
		if t, err := http.ParseTime(e); err == nil {
			later(t)
		}
	}
	if ttl > 0 {
		later(now.Add(min(ttl, maxDelay)))
	}
	return best
}

// cacheMaxAge returns the max-age directive's seconds. no-store and no-cache
// mean the response says nothing about freshness.
func cacheMaxAge(values []string) (int64, bool) {
	var (
		maxAge int64
		found  bool
	)
	for _, v := range values {
		for d := range strings.SplitSeq(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return 0, false
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(val), `"`), 10, 64)
				if err != nil || n < 0 {
					continue
				}
				maxAge, found = n, true
			}
		}
	}
	return maxAge, found
}
