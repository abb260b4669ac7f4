package mpns

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/netguard"
)

// Client defaults.
const (
	// DefaultTimeout is the per-request limit Microsoft recommends.
	DefaultTimeout = 15 * time.Second
	// DefaultConcurrency sizes the idle connection pool per push host.
	DefaultConcurrency = 32
	// maxResponseBody is how much of a response body is read (and thrown
	// away) so that the connection can be reused; MPNS answers carry
	// everything in the status line and headers.
	maxResponseBody = 4 << 10
)

// ClientOptions configures a Client. The zero value is usable.
type ClientOptions struct {
	// Timeout bounds each request (push.timeout); 0 means DefaultTimeout.
	Timeout time.Duration
	// HTTPClient, when set, is used as is (its Transport, its redirect
	// policy) instead of the client's own connection pool. It cannot be
	// combined with the TLS or dial options below.
	HTTPClient *http.Client
	// Concurrency is the expected number of parallel sends (push.concurrency);
	// it sizes the pool of kept-alive connections. 0 means DefaultConcurrency.
	Concurrency int
	// AllowPrivate lets pushes reach loopback, private, link-local and
	// other non-public addresses (push.allow_private). By default the dialer
	// refuses them after DNS resolution, so a channel URI whose name
	// resolves inward cannot be used to probe the internal network; the
	// refusal is a *netguard.ProhibitedError and a VerdictFailed result.
	AllowPrivate bool
	// Policy decides which addresses the guard refuses; nil means
	// netguard.Prohibited. Tests use it to let 127.0.0.2 play a public host.
	Policy netguard.Policy
	// DialContext replaces the dialer of the built transport; the
	// AllowPrivate guard is then the caller's business.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// ClientCertFile and ClientKeyFile are a PEM certificate and key for an
	// authenticated web service; they are presented on https channels only
	// (TLS client certificates are never sent over plain http).
	ClientCertFile string
	ClientKeyFile  string
	// RootCAs verifies https channel hosts; nil means the system roots. Set
	// it for a self-hosted MPNS-compatible receiver with a private CA.
	RootCAs *x509.CertPool
	// UserAgent is sent when not empty.
	UserAgent string
	// Now is the clock used for Retry-After dates and durations; nil means time.Now.
	Now func() time.Time
}

// Client sends MPNS requests. It implements tilecast.Pusher and is safe for
// concurrent use. It keeps its own pool of HTTP/1.1 connections per push
// host (transport.go says why not net/http's client); up to
// ClientOptions.Concurrency + 1/4 stay open per host between requests.
type Client struct {
	tr        *transport   // the pushes' connections
	hc        *http.Client // instead of tr when ClientOptions.HTTPClient is set
	timeout   time.Duration
	userAgent string
	now       func() time.Time
}

var _ tilecast.Pusher = (*Client)(nil)

// NewClient returns a Client built from opts.
func NewClient(opts ClientOptions) (*Client, error) {
	c := &Client{timeout: opts.Timeout, userAgent: opts.UserAgent, now: opts.Now}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	if (opts.ClientCertFile == "") != (opts.ClientKeyFile == "") {
		return nil, errors.New("mpns client: client certificate and key must be given together")
	}
	if opts.HTTPClient != nil {
		if opts.ClientCertFile != "" || opts.RootCAs != nil || opts.DialContext != nil {
			return nil, errors.New("mpns client: TLS and dial options need the built transport, not HTTPClient")
		}
		c.hc = opts.HTTPClient
		return c, nil
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: opts.RootCAs}
	if opts.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.ClientCertFile, opts.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("mpns client: load client certificate: %w", err)
		}
		tlsConf.Certificates = []tls.Certificate{cert}
	}
	n := opts.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	dial := opts.DialContext
	if dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		if !opts.AllowPrivate {
			netguard.Dialer(d, opts.Policy)
		}
		dial = d.DialContext
	}
	// Channel URIs are contacted directly, never via $HTTP_PROXY, and a
	// redirect is reported, not followed: a push must reach the channel
	// URI it was registered with.
	c.tr = &transport{
		dial:        dial,
		tlsConf:     tlsConf,
		maxIdleHost: n + n/4, // every worker may hit the same MPNS host
		maxIdle:     4 * n,
		idleTimeout: defaultIdleTimeout,
	}
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() {
	if c.hc != nil {
		c.hc.CloseIdleConnections()
		return
	}
	c.tr.closeIdle()
}

// Push POSTs req to the channel uri and classifies the reply. It never
// returns an error: a network failure or timeout is a Result with
// VerdictRetry, a URI that cannot be requested is VerdictFailed.
func (c *Client) Push(ctx context.Context, uri string, req tilecast.Request) tilecast.Result {
	if c.hc != nil {
		return c.pushHTTP(ctx, uri, req)
	}
	start := c.now()
	t, err := parseTarget(uri)
	if err == nil {
		err = checkRequest(&req, c.userAgent)
	}
	if err != nil {
		return tilecast.Result{Verdict: tilecast.VerdictFailed, Err: err}
	}
	// Deadlines are on the wall clock whatever c.now says: they are the
	// sockets'.
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	var a answer
	if err = ctx.Err(); err == nil {
		a, err = c.tr.roundTrip(ctx, &t, &req, c.userAgent, deadline)
	}
	if err != nil {
		switch {
		case ctx.Err() != nil:
			if !errors.Is(err, ctx.Err()) {
				err = fmt.Errorf("%w: %w", ctx.Err(), err)
			}
			err = fmt.Errorf("mpns: post: %w", err)
		case isTimeout(err) || !time.Now().Before(deadline):
			// Past the deadline the parser may report the cut-off
			// answer instead of the timeout that cut it.
			err = fmt.Errorf("mpns: post: no answer within %s: %w: %w", c.timeout, context.DeadlineExceeded, err)
		default:
			err = fmt.Errorf("mpns: post: %w", err)
		}
		r := Classify(0, nil, err, c.now())
		if pe := (*netguard.ProhibitedError)(nil); errors.As(err, &pe) {
			r.Verdict = tilecast.VerdictFailed // retrying would be refused again
		}
		r.Duration = c.now().Sub(start)
		return r
	}
	r := Classify(a.status, a.header, nil, c.now())
	r.Duration = c.now().Sub(start)
	return r
}

// pushHTTP is Push through the caller's http.Client.
func (c *Client) pushHTTP(ctx context.Context, uri string, req tilecast.Request) tilecast.Result {
	start := c.now()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, bytes.NewReader(req.Body))
	if err != nil {
		return tilecast.Result{Verdict: tilecast.VerdictFailed, Err: fmt.Errorf("mpns: bad channel uri: %w", err)}
	}
	if !strings.EqualFold(hreq.URL.Scheme, "http") && !strings.EqualFold(hreq.URL.Scheme, "https") {
		return tilecast.Result{Verdict: tilecast.VerdictFailed, Err: fmt.Errorf("mpns: channel uri scheme %q not supported", hreq.URL.Scheme)}
	}
	hreq.ContentLength = int64(len(req.Body))
	hreq.Header = make(http.Header, len(req.Headers)+1)
	for _, h := range req.Headers {
		if strings.EqualFold(h.Name, "Content-Length") || strings.EqualFold(h.Name, "Host") {
			continue // net/http writes these from ContentLength and the URL
		}
		// Keep the names as written (X-WindowsPhone-Target, not the
		// canonical X-Windowsphone-Target): header names are
		// case-insensitive, but the wire should look like the mpns module's.
		hreq.Header[h.Name] = append(hreq.Header[h.Name], h.Value)
	}
	if c.userAgent != "" {
		hreq.Header.Set("User-Agent", c.userAgent)
	}
	resp, err := c.hc.Do(hreq)
	if err != nil {
		r := Classify(0, nil, fmt.Errorf("mpns: post: %w", err), c.now())
		if pe := (*netguard.ProhibitedError)(nil); errors.As(err, &pe) {
			r.Verdict = tilecast.VerdictFailed // retrying would be refused again
		}
		r.Duration = c.now().Sub(start)
		return r
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
	resp.Body.Close()
	r := Classify(resp.StatusCode, resp.Header, nil, c.now())
	r.Duration = c.now().Sub(start)
	return r
}
