package wns

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/netguard"
	"github.com/tilecast/tilecast/notify/pushhttp"
)

// Backoff of the whole transport after WNS refused a freshly renewed token
// (the credentials themselves are not accepted): 1 min, doubling each time
// the probe after a pause is refused too, at most 30 min, until a send's
// token works again. The sends in flight when a pause begins are one
// incident with it, however many there are (push.concurrency), so their
// refusals do not lengthen it.
const (
	DefaultAuthBackoff    = time.Minute
	DefaultAuthBackoffMax = 30 * time.Minute
)

// ClientOptions configure a Client. Tokens is required.
type ClientOptions struct {
	// Tokens supplies the access token of every send.
	Tokens *TokenSource
	// AllowedHosts are channel hosts accepted besides *.notify.windows.com
	// ("host" or "*.suffix"), for the emulator and tests; they may be
	// http. A push to any other host is refused before a request is made,
	// so the access token never leaves for a host that is not WNS.
	AllowedHosts []string
	// Timeout bounds each request (push.timeout); 0 means pushhttp's default.
	Timeout time.Duration
	// Concurrency is the expected number of parallel sends (push.concurrency).
	Concurrency int
	// AllowPrivate lets pushes reach loopback and private addresses
	// (push.allow_private); Policy, when set, decides what the guard refuses.
	AllowPrivate bool
	Policy       netguard.Policy
	// RootCAs verifies WNS hosts; nil means the system roots.
	RootCAs *x509.CertPool
	// UserAgent is sent with every push; "" means pushhttp.DefaultUserAgent.
	UserAgent string
	// AuthBackoff and AuthBackoffMax bound the pause of all sends after a
	// renewed token was refused too; 0 means the defaults.
	AuthBackoff, AuthBackoffMax time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger is told when the transport pauses and resumes; nil discards.
	Logger *slog.Logger
}

// Client sends WNS notifications through the shared push client
// (notify/pushhttp) with the TokenSource's access token. It implements
// tilecast.Pusher and is safe for concurrent use.
type Client struct {
	http    *pushhttp.Client
	tokens  *TokenSource
	allowed []string
	ua      string
	base    time.Duration
	maxWait time.Duration
	now     func() time.Time
	log     *slog.Logger

	mu      sync.Mutex
	refused int       // incidents in a row: the pause's start and each refused probe
	until   time.Time // no send before this while refused > 0
	probing bool      // the one send that tries the token again is under way
	probeID uint64    // which admitted send is the probe, while probing
	nextID  uint64    // the last probeID handed out
	reason  string
}

var _ tilecast.Pusher = (*Client)(nil)

// NewClient returns a Client built from opts.
func NewClient(opts ClientOptions) (*Client, error) {
	if opts.Tokens == nil {
		return nil, errors.New("wns client: no token source")
	}
	c := &Client{
		http: pushhttp.New(pushhttp.Options{
			Timeout:      opts.Timeout,
			Concurrency:  opts.Concurrency,
			AllowPrivate: opts.AllowPrivate,
			Policy:       opts.Policy,
			RootCAs:      opts.RootCAs,
			UserAgent:    opts.UserAgent,
		}),
		tokens:  opts.Tokens,
		allowed: append([]string(nil), opts.AllowedHosts...),
		ua:      opts.UserAgent,
		base:    opts.AuthBackoff,
		maxWait: opts.AuthBackoffMax,
		now:     opts.Now,
		log:     opts.Logger,
	}
	if c.base <= 0 {
		c.base = DefaultAuthBackoff
	}
	if c.maxWait <= 0 {
		c.maxWait = DefaultAuthBackoffMax
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "wns")
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.Close() }

// NotSentError is the Result.Err of a push the Client did not make because
// the whole transport is waiting: for the token endpoint, or after WNS
// refused a freshly renewed token. It matches tilecast.ErrCircuitOpen
// (errors.Is), so the deliverer postpones the entry to Result.Wait without
// counting an attempt, as for an open circuit.
type NotSentError struct {
	Reason  string
	RetryAt time.Time
	Err     error // the token error, when that is the reason
}

func (e *NotSentError) Error() string {
	msg := "wns: not sent: " + e.Reason
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *NotSentError) Unwrap() error { return e.Err }

// Is reports tilecast.ErrCircuitOpen as a match (see NotSentError).
func (e *NotSentError) Is(target error) bool { return target == tilecast.ErrCircuitOpen }

// Degraded reports whether WNS sends are impaired by something outside
// tilecast — the token endpoint failing, or WNS refusing the credentials —
// and why, for /healthz's "degraded" (never a reason to restart).
func (c *Client) Degraded() (bool, string) {
	c.mu.Lock()
	refused, until, reason := c.refused, c.until, c.reason
	c.mu.Unlock()
	if refused > 0 {
		return true, fmt.Sprintf("wns: access token refused by WNS after renewal (%s); sends paused until %s",
			reason, until.UTC().Format(time.RFC3339))
	}
	return c.tokens.Degraded()
}

// Push POSTs n to ch's channel URI with the current access token and
// classifies the answer (Classify). On a 401 it renews the token and sends
// once more within the same call (Result.TokenRefreshed); if that is
// refused too, the notification fails with WNS's description and every
// send pauses (AuthBackoff, doubling) until one probe's token works. ttl
// is sent as X-WNS-TTL, and n.Feed's Tag as X-WNS-Tag for tiles and
// badges. It never returns an error: see Classify and NotSentError.
func (c *Client) Push(ctx context.Context, ch *tilecast.Channel, n *tilecast.Notification, ttl time.Duration) tilecast.Result {
	start := c.now()
	if err := CheckChannelURI(ch.URI, c.allowed); err != nil {
		return tilecast.Result{Verdict: tilecast.VerdictFailed, Err: fmt.Errorf("wns: %w", err)}
	}
	opts := RequestOptions{TTL: ttl, Tag: Tag(n.Feed), UserAgent: c.ua}
	// A notification WNS cannot take is refused before a token is asked for.
	if _, _, _, err := checkRequest(n.Kind, n.Payload, opts); err != nil {
		return tilecast.Result{Verdict: tilecast.VerdictFailed, Err: err}
	}
	probe, res, ok := c.admit(start)
	if !ok {
		return res
	}
	r := c.pushAuthorized(ctx, ch, n, opts)
	c.settle(probe, &r)
	r.Duration = c.now().Sub(start)
	return r
}

// admit decides whether a send may go out while the transport is paused:
// not before the pause ends, then one probe at a time. probe is the
// probe's ticket (0: not the probe) for settle.
func (c *Client) admit(now time.Time) (probe uint64, res tilecast.Result, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refused == 0 {
		return 0, tilecast.Result{}, true
	}
	if now.Before(c.until) || c.probing {
		wait := c.until.Sub(now)
		if wait <= 0 {
			wait = c.base // the probe is still out
		}
		return 0, tilecast.Result{Verdict: tilecast.VerdictRetry, Wait: wait,
			Err: &NotSentError{Reason: "WNS refused the access token after renewal; all sends paused", RetryAt: now.Add(wait)}}, false
	}
	c.nextID++
	c.probing, c.probeID = true, c.nextID
	return c.probeID, tilecast.Result{}, true
}

// settle updates the pause after a send: an answer other than 401 proves
// the token works; a refused renewed token starts the pause, and the
// probe's refusal doubles it. Any other refusal during a pause is of a
// send admitted before the pause began (admit lets none but the probe
// through): with push.concurrency sends in flight, dozens arrive together
// and say nothing the one that began the pause did not, so they must not
// lengthen it (as in notify/webpush's record).
//
// The pause is logged as a warning, once per incident: the Bot logs the
// refused sends as one configuration error per run of refusals
// (credentialWatch), which is the error line; repeating it per send would
// bury the log.
func (c *Client) settle(probe uint64, r *tilecast.Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The probe's pause may have ended meanwhile (another send's token
	// worked) and a new one begun; that pause has no probe out until admit
	// lets one through, so this answer is not its probe.
	isProbe := probe != 0 && c.probing && c.probeID == probe
	if isProbe {
		c.probing = false
	}
	switch {
	case r.TokenRefreshed && r.Status == http.StatusUnauthorized:
		if c.refused > 0 && !isProbe {
			return // in flight before the pause began: the same incident
		}
		c.refused++
		wait := c.maxWait
		if c.refused <= 30 {
			wait = min(c.base*time.Duration(1<<(c.refused-1)), c.maxWait)
		}
		c.until = c.now().Add(wait)
		var se *StatusError
		if errors.As(r.Err, &se) {
			c.reason = se.Description
		}
		if c.reason == "" {
			c.reason = "401"
		}
		c.log.Warn("wns refused a renewed access token: check the WNS credentials; pausing all WNS sends",
			"retry_in", wait, "refusals", c.refused, "error", r.Err.Error())
	case r.Status != 0 && r.Status != http.StatusUnauthorized && c.refused > 0:
		c.log.Info("wns accepts the access token again: sends resume", "refusals", c.refused)
		c.refused, c.until, c.reason, c.probing = 0, time.Time{}, "", false
	}
}

// pushAuthorized sends with the current token and, on a 401, once more
// with a renewed one.
func (c *Client) pushAuthorized(ctx context.Context, ch *tilecast.Channel, n *tilecast.Notification, opts RequestOptions) tilecast.Result {
	tok, err := c.tokens.Token(ctx)
	if err != nil {
		return c.noToken(err)
	}
	r := c.send(ctx, ch, n, opts, tok)
	if r.Status != http.StatusUnauthorized {
		return r
	}
	c.tokens.Invalidate(tok)
	tok2, err := c.tokens.Token(ctx)
	if err != nil {
		// The first request went out and was refused: an attempt, to be
		// retried once the token endpoint answers.
		nr := c.noToken(err)
		r.Verdict, r.Wait = tilecast.VerdictRetry, nr.Wait
		r.Err = fmt.Errorf("wns: 401, and renewing the access token failed: %w", err)
		return r
	}
	r2 := c.send(ctx, ch, n, opts, tok2)
	r2.TokenRefreshed = true
	if r2.Status == http.StatusUnauthorized {
		c.tokens.Invalidate(tok2)
		if se, ok := r2.Err.(*StatusError); ok {
			se.credentials = true
			se.Reason = "access token refused again after renewal: check the WNS credentials"
		}
	}
	return r2
}

// noToken is the Result of a send that could not get a token.
func (c *Client) noToken(err error) tilecast.Result {
	var te *TokenError
	wait := c.base
	if errors.As(err, &te) {
		if d := te.RetryAt.Sub(c.now()); d > 0 {
			wait = d
		}
	}
	return tilecast.Result{Verdict: tilecast.VerdictRetry, Wait: wait,
		Err: &NotSentError{Reason: "no WNS access token", RetryAt: c.now().Add(wait), Err: err}}
}

// send makes one request with tok and classifies the answer.
func (c *Client) send(ctx context.Context, ch *tilecast.Channel, n *tilecast.Notification, opts RequestOptions, tok string) tilecast.Result {
	opts.Token = tok
	req, err := NewRequest(ch.URI, n.Kind, n.Payload, opts)
	if err != nil {
		return tilecast.Result{Verdict: tilecast.VerdictFailed, Err: err}
	}
	resp, err := c.http.Do(ctx, req)
	if err != nil {
		r := Classify(0, nil, fmt.Errorf("wns: %w", err), c.now())
		if pe := (*netguard.ProhibitedError)(nil); errors.As(err, &pe) {
			r.Verdict = tilecast.VerdictFailed // retrying would be refused again
		}
		return r
	}
	return Classify(resp.Status, resp.Header, nil, c.now())
}
