package mpns

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/netguard"
	"github.com/tilecast/tilecast/notify/pushhttp"
)

// Client defaults.
const (
	// DefaultTimeout is the per-request limit Microsoft recommends.
	DefaultTimeout = pushhttp.DefaultTimeout
	// DefaultConcurrency sizes the idle connection pool per push host.
	DefaultConcurrency = pushhttp.DefaultConcurrency
)

// ClientOptions configures a Client. The zero value is usable.
type ClientOptions struct {
	// Timeout bounds each request (push.timeout); 0 means DefaultTimeout.
	Timeout time.Duration
	// Concurrency is the expected number of parallel sends (push.concurrency);
	// it sizes the pool of kept-alive connections. 0 means DefaultConcurrency.
	Concurrency int
	// Class is the X-NotificationClass batching interval (push.class):
	// "immediate" (or ""), "450s" or "900s".
	Class string
	// AllowPrivate lets pushes reach loopback, private, link-local and
	// other non-public addresses (push.allow_private). By default the dialer
	// refuses them after DNS resolution, so a channel URI whose name
	// resolves inward cannot be used to probe the internal network; the
	// refusal is a *netguard.ProhibitedError and a VerdictFailed result.
	AllowPrivate bool
	// Policy decides which addresses the guard refuses; nil means
	// netguard.Prohibited. Tests use it to let 127.0.0.2 play a public host.
	Policy netguard.Policy
	// ClientCertFile and ClientKeyFile are a PEM certificate and key for an
	// authenticated web service; they are presented on https channels only
	// (a plain http push has no TLS to present them in).
	ClientCertFile string
	ClientKeyFile  string
	// RootCAs verifies https channel hosts; nil means the system roots. Set
	// it for a self-hosted MPNS-compatible receiver with a private CA.
	RootCAs *x509.CertPool
	// UserAgent is sent with every push; "" means pushhttp.DefaultUserAgent.
	UserAgent string
	// Now is the clock used for Retry-After dates and durations; nil means time.Now.
	Now func() time.Time
}

// Client sends MPNS notifications through the shared push client
// (notify/pushhttp). It implements tilecast.Pusher and is safe for
// concurrent use.
type Client struct {
	http *pushhttp.Client
	req  RequestOptions
	now  func() time.Time
}

var _ tilecast.Pusher = (*Client)(nil)

// NewClient returns a Client built from opts.
func NewClient(opts ClientOptions) (*Client, error) {
	if _, err := classIndex(opts.Class); err != nil {
		return nil, err
	}
	if (opts.ClientCertFile == "") != (opts.ClientKeyFile == "") {
		return nil, errors.New("mpns client: client certificate and key must be given together")
	}
	var cert *tls.Certificate
	if opts.ClientCertFile != "" {
		c, err := tls.LoadX509KeyPair(opts.ClientCertFile, opts.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("mpns client: load client certificate: %w", err)
		}
		cert = &c
	}
	c := &Client{
		http: pushhttp.New(pushhttp.Options{
			Timeout:      opts.Timeout,
			Concurrency:  opts.Concurrency,
			AllowPrivate: opts.AllowPrivate,
			Policy:       opts.Policy,
			ClientCert:   cert,
			RootCAs:      opts.RootCAs,
			UserAgent:    opts.UserAgent,
		}),
		req: RequestOptions{Class: opts.Class, UserAgent: opts.UserAgent},
		now: opts.Now,
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.Close() }

// Push POSTs n to ch's channel URI (the request built by NewRequest from
// n.Kind and n.Payload) and classifies the reply. MPNS has no time to
// live: ttl is ignored. It never returns an error: a network failure or
// timeout is a Result with VerdictRetry; a notification or URI that
// cannot be requested, or an address the guard refuses, is
// VerdictFailed.
func (c *Client) Push(ctx context.Context, ch *tilecast.Channel, n *tilecast.Notification, ttl time.Duration) tilecast.Result {
	start := c.now()
	req, err := NewRequest(ch.URI, n.Kind, n.Payload, c.req)
	if err != nil {
		return tilecast.Result{Verdict: tilecast.VerdictFailed, Err: err}
	}
	resp, err := c.http.Do(ctx, req)
	var r tilecast.Result
	if err != nil {
		r = Classify(0, nil, fmt.Errorf("mpns: %w", err), c.now())
		if pe := (*netguard.ProhibitedError)(nil); errors.As(err, &pe) {
			r.Verdict = tilecast.VerdictFailed // retrying would be refused again
		}
	} else {
		r = Classify(resp.Status, resp.Header, nil, c.now())
	}
	r.Duration = c.now().Sub(start)
	return r
}
