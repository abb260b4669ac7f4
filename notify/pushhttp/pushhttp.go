// Package pushhttp is the HTTP client every push transport sends through
// (notify/mpns today; WNS and Web Push build on it too). It is net/http's
// client on an http.Transport configured for pushes:
//
//   - channel URIs are not trusted: the dial-time guard of netguard refuses
//     loopback, private and reserved addresses (unless allowed), proxy
//     variables are ignored (through a proxy the guard would only see the
//     proxy), and redirects are returned, never followed;
//   - HTTP/2 is negotiated on https (WNS and Web Push services speak it);
//   - a POST whose body may have been written is never sent again by the
//     client, on HTTP/1.1 as on HTTP/2: Do hands net/http no way to rewind
//     the body (see Do). A resend is the outbox's next attempt, counted
//     and logged by the deliverer;
//   - each request has its own deadline, and the answer body is read up to
//     MaxBody and drained, so the connection carries the next push.
//
// A Client is safe for concurrent use.
package pushhttp

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
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/netguard"
)

// Defaults applied by New to zero Options fields.
const (
	// DefaultTimeout bounds one push: connect, TLS, request, answer. It is
	// what Microsoft recommends for MPNS.
	DefaultTimeout = 15 * time.Second
	// DefaultConcurrency is the expected number of parallel pushes.
	DefaultConcurrency = 32
	// DefaultUserAgent is sent when neither the request nor Options name one
	// (net/http would otherwise send its own, Go-http-client/1.1).
	DefaultUserAgent = "tilecast (+https://github.com/tilecast/tilecast)"
)

// MaxBody is how much of an answer's body is read. Push services answer
// in the status line and headers (MPNS, WNS) or with a short JSON reason
// (Web Push); anything longer is cut, and its connection is not reused.
const MaxBody = 4 << 10

// maxHeaderBytes bounds an answer's header block; push answers carry a
// handful of short headers.
const maxHeaderBytes = 64 << 10

// idleTimeout is how long an unused connection is kept.
const idleTimeout = 90 * time.Second

// untilCloseGrace is how long Do waits, after the headers, for the end of
// an answer whose body ends only when the host closes the connection. A
// host that sends its reason and closes at once is done well within it; a
// host that keeps the connection open costs a push this much, not the
// push timeout.
const untilCloseGrace = 300 * time.Millisecond

// Options configure New. The zero value is usable: default timeout and
// concurrency, the guard on, system roots, no client certificate.
type Options struct {
	// Timeout bounds each push (push.timeout); 0 means DefaultTimeout.
	Timeout time.Duration
	// Concurrency is the expected number of parallel pushes
	// (push.concurrency); it sizes the pool of kept-alive connections.
	// 0 means DefaultConcurrency.
	Concurrency int
	// AllowPrivate lets pushes reach loopback, private, link-local and
	// other non-public addresses (push.allow_private). By default the
	// dialer refuses them after name resolution, with a
	// *netguard.ProhibitedError, so a channel URI whose name resolves
	// inward cannot probe the internal network.
	AllowPrivate bool
	// Policy decides which addresses the guard refuses; nil means
	// netguard.Prohibited. Tests use it to let 127.0.0.2 play a public host.
	Policy netguard.Policy
	// ClientCert is presented to https hosts that ask for one (the MPNS
	// authenticated web service). A plain http push has no TLS and never
	// carries it.
	ClientCert *tls.Certificate
	// RootCAs verifies https hosts; nil means the system roots.
	RootCAs *x509.CertPool
	// UserAgent is sent by requests that do not set their own; "" means
	// DefaultUserAgent.
	UserAgent string
}

// Client sends push requests. See the package documentation.
type Client struct {
	hc        *http.Client
	tr        *http.Transport
	timeout   time.Duration
	userAgent string
}

// New returns a Client built from opts.
func New(opts Options) *Client {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	n := opts.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	dialer := &net.Dialer{Timeout: min(timeout, 10*time.Second), KeepAlive: 30 * time.Second}
	if !opts.AllowPrivate {
		netguard.Dialer(dialer, opts.Policy)
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: opts.RootCAs}
	if opts.ClientCert != nil {
		tlsConf.Certificates = []tls.Certificate{*opts.ClientCert}
	}
	tr := &http.Transport{
		Proxy:           nil, // the guard must see the channel's own address
		DialContext:     dialer.DialContext,
		TLSClientConfig: tlsConf,
		// A custom dialer and TLS config turn net/http's HTTP/2 off unless
		// asked for.
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: timeout,
		// A push body is small: send it with the headers, never wait for
		// 100 Continue.
		ExpectContinueTimeout: 0,
		// No Accept-Encoding: gzip. The request carries exactly the
		// transport's headers (the MPNS goldens compare the header set),
		// and answers are too short to compress.
		DisableCompression: true,
		// Every worker may push to the same host (a fan-out to one MPNS
		// or WNS front end); a quarter more absorbs the churn of
		// connections the host closes.
		MaxIdleConnsPerHost:    n + n/4,
		MaxIdleConns:           4 * n,
		IdleConnTimeout:        idleTimeout,
		MaxResponseHeaderBytes: maxHeaderBytes,
	}
	hc := &http.Client{
		Transport: tr,
		// A push must reach the URI the channel registered; a 3xx is
		// returned as the answer and classified as a failed push.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Client{hc: hc, tr: tr, timeout: timeout, userAgent: ua}
}

// Timeout is the per-push deadline.
func (c *Client) Timeout() time.Duration { return c.timeout }

// UserAgent is the User-Agent sent by requests that set none.
func (c *Client) UserAgent() string { return c.userAgent }

// Close closes the idle connections. The Client stays usable.
func (c *Client) Close() { c.tr.CloseIdleConnections() }

// Response is a push answer as far as the transports need it.
type Response struct {
	Status int         // HTTP status code
	Proto  string      // "HTTP/1.1", "HTTP/2.0"
	Header http.Header // canonical names, as net/http parsed them
	// Body is at most MaxBody bytes of the answer's body. For an HTTP/1.x
	// answer delimited by the end of its connection it is what arrived
	// within a short grace after the headers (see Do).
	Body []byte
}

// NewPost returns a POST of body to uri with its length set, for a
// transport to add its headers to. It refuses a URI that is not an
// absolute http or https URL with a host.
//
// The request has a GetBody, for its builder: Dump uses it to leave the
// body in place for a later Do. Do does not pass it on to net/http, which
// would use it to resend the push by itself (see Do).
func NewPost(uri string, body []byte) (*http.Request, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("bad channel uri: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("channel uri scheme %q not supported (want http or https)", u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("channel uri %q has no host", uri)
	}
	req, err := http.NewRequest(http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("bad channel uri: %w", err)
	}
	return req, nil
}

// Do sends req with ctx and the push deadline and reads the answer.
//
// The answer body is read up to MaxBody. A body of known length or
// chunked that ends within it is drained, and the connection is reused;
// a longer one is cut and its connection closed. An HTTP/1.x answer with
// neither Content-Length nor chunking ends only when the host closes the
// connection. Do reads such a body, for the reason a push service may
// give in it, but for at most a short grace after the headers (300 ms): a
// host that keeps the connection open would otherwise hold the push until
// the deadline. Do keeps what arrived, and the connection is dropped. A
// body that fails after the status and headers arrived does not fail the
// push: the answer is in them.
//
// An error means no answer arrived: the connection failed, the deadline
// passed, ctx ended, or the guard refused the address (a
// *netguard.ProhibitedError in the chain). When the request had been
// written in full, tilecast.ErrSentUnanswered is in the chain too: the
// host may have acted on it.
//
// A request whose body may have been written is not sent again, by Do or
// by net/http: the host may have acted on it, and a resend is the outbox's
// next attempt, counted and logged. So the request handed to net/http has
// no GetBody, whoever built req. With one, net/http's HTTP/2 transport
// resends a request it wrote in full when the host resets its stream
// (PROTOCOL_ERROR, REFUSED_STREAM) or leaves it out of a GOAWAY; without
// one, that push fails with an error. net/http still retries, on another
// connection, a request that never started because its connection was
// already unusable: its body was not read. On HTTP/1.1 net/http replays no
// POST once written; without GetBody it also gives up on one whose write
// failed before any byte left on a reused connection, and that push fails
// too (the outbox tries again). Redirects, the other use of GetBody, are
// not followed.
func (c *Client) Do(ctx context.Context, req *http.Request) (Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// Whether the whole request left: an error after that may come after
	// the push service acted on it (tilecast.ErrSentUnanswered).
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
		if i.Err == nil {
			wrote.Store(true)
		}
	}})
	req = req.WithContext(ctx) // a shallow copy: req itself keeps its GetBody
	req.GetBody = nil
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header = req.Header.Clone()
		if req.Header == nil {
			req.Header = http.Header{}
		}
		req.Header["User-Agent"] = []string{c.userAgent}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		err = c.doError(ctx, err)
		if wrote.Load() {
			err = fmt.Errorf("%w; %w", err, tilecast.ErrSentUnanswered)
		}
		return Response{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 100 {
		// net/http reads "000" as status 0, which is no answer at all.
		return Response{}, fmt.Errorf("post: malformed answer: status %03d", resp.StatusCode)
	}
	r := Response{Status: resp.StatusCode, Proto: resp.Proto, Header: resp.Header}
	if resp.ContentLength == 0 {
		return r, nil // the common push answer: nothing to read, no buffer
	}
	if untilClose(resp) {
		// Ending the request's context ends the read (net/http closes the
		// connection); ReadAll keeps what arrived before.
		grace := time.AfterFunc(untilCloseGrace, cancel)
		defer grace.Stop()
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if len(body) > MaxBody {
		body = body[:MaxBody] // not at EOF: Close drops the connection
	}
	if len(body) > 0 {
		r.Body = body
	}
	return r, nil
}

// untilClose reports whether resp's body is delimited by the end of its
// connection: HTTP/1.x with no Content-Length and no chunking. (HTTP/2
// frames its bodies; an unknown length there is no reason to stop.)
func untilClose(resp *http.Response) bool {
	if resp.ProtoMajor != 1 || resp.ContentLength >= 0 {
		return false
	}
	for _, te := range resp.TransferEncoding {
		if te == "chunked" {
			return false
		}
	}
	return true
}

// doError says why no answer arrived, keeping the cause in the chain
// (context errors, *netguard.ProhibitedError).
func (c *Client) doError(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // "Post <uri>": the caller names the channel
	}
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			// Ours or the caller's deadline: either way no answer in time.
			if !errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
			}
			return fmt.Errorf("post: no answer within %s: %w", c.timeout, err)
		}
		if !errors.Is(err, cerr) {
			err = fmt.Errorf("%w: %w", cerr, err)
		}
	}
	return fmt.Errorf("post: %w", err)
}

// Dump writes req in HTTP/1.1 wire form — the request line, Host,
// User-Agent, Content-Length and the other headers as net/http writes
// them, a blank line and the body — for `tilecast send --dry-run` and
// `tilecast preview`. A request without a User-Agent shows userAgent, as
// Do would send it. req's body is rewound for a later Do.
func Dump(w io.Writer, req *http.Request, userAgent string) error {
	r := req.Clone(context.Background())
	if _, ok := r.Header["User-Agent"]; !ok && userAgent != "" {
		r.Header["User-Agent"] = []string{userAgent}
	}
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return fmt.Errorf("dump request: %w", err)
		}
		r.Body = body
	}
	if err := r.Write(w); err != nil {
		return fmt.Errorf("dump request: %w", err)
	}
	return nil
}
