package webpush

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/netguard"
	"github.com/tilecast/tilecast/notify/pushhttp"
)

// Client defaults.
const (
	// DefaultTTL is the TTL sent when the deliverer passes none (ttl 0):
	// a day, the default time to live of a toast.
	DefaultTTL = 24 * time.Hour
	// DefaultPauseAfter is how many VAPID refusals (401/403) in a row from
	// one push service pause sending to it.
	DefaultPauseAfter = 10
	// DefaultPauseMin and DefaultPauseMax bound the pause; it doubles
	// each time the first push after a pause is refused again.
	DefaultPauseMin = time.Minute
	DefaultPauseMax = time.Hour
	// maxOrigins bounds the per-origin refusal records.
	maxOrigins = 1024
)

// ClientOptions configure NewClient. VAPID is required.
type ClientOptions struct {
	// VAPID signs every request ([push.webpush] vapid_private_key_file
	// and subject).
	VAPID *Signer

	// Timeout, Concurrency, AllowPrivate, Policy, RootCAs and UserAgent
	// configure the shared push client (see pushhttp.Options).
	Timeout      time.Duration
	Concurrency  int
	AllowPrivate bool
	Policy       netguard.Policy
	RootCAs      *x509.CertPool
	UserAgent    string

	// UrgencyToast and UrgencyTile are the Urgency of toasts (and raw
	// data) and of tiles (and badges) ([push.webpush] urgency_toast,
	// urgency_tile); "" means DefaultUrgency.
	UrgencyToast string
	UrgencyTile  string
	// FeedUrgency, when set, returns a feed's own urgency ([feed.webpush]
	// urgency), which wins over the kind's; "" means none. It is called
	// per push, so a config reload takes effect at once.
	FeedUrgency func(feed string) string
	// Pad pads every plaintext up to a multiple of Pad bytes ([push.webpush]
	// pad); 0 sends none.
	Pad int
	// DefaultTTL is sent as TTL when Push gets no ttl (0); 0 means
	// DefaultTTL.
	DefaultTTL time.Duration

	// Service, when set, names the push service an endpoint origin
	// belongs to: pushes to origins with the same name share one run of
	// refusals and one pause. A push service may answer on many hosts
	// (Edge's endpoints are spread over regional *.notify.windows.com
	// hosts), and a key or subject it refuses on one it refuses on all.
	// The daemon passes the [push.webpush] allowed_hosts pattern the host
	// matches. nil, or "" for an origin, keeps that origin a service of
	// its own.
	Service func(origin string) string

	// PauseAfter, PauseMin and PauseMax shape the pause after a run of
	// VAPID refusals (see Client); 0 means the Default of each.
	PauseAfter int
	PauseMin   time.Duration
	PauseMax   time.Duration

	// Logger receives the pause and recovery of a push service (never a
	// subscription or key); nil discards.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Client sends Web Push notifications through the shared push client
// (notify/pushhttp). It implements tilecast.Pusher and is safe for
// concurrent use.
//
// Each request is built at send time (NewRequest): encrypted for the
// subscription's current keys, signed (VAPID tokens are reused per push
// service), TTL the notification's remaining time to live.
//
// A VAPID refusal (401/403) fails that one notification. When one push
// service (an endpoint origin, or the origins ClientOptions.Service puts
// together) refuses PauseAfter pushes in a row,
// whichever channels they were for, the fault is the sender's key or
// subject, not the channels: the Client stops sending to that service for
// PauseMin and answers every push to it with VerdictRetry, a Wait until
// the pause ends and an error matching ErrPaused, so waiting
// notifications are kept instead of failed. After the pause one push
// goes through as a probe (others keep waiting): refused again, the pause
// doubles (up to PauseMax); accepted (any answer but 401/403 that shows
// the service took the authorization: 2xx, 404, 410, 413), sending
// resumes. Refusals of pushes that were already in flight when the pause
// began count in the run but do not lengthen the pause: only the probe's
// does, so the first pause is PauseMin however many pushes were in
// flight. Degraded reports the paused services for /healthz.
type Client struct {
	http *pushhttp.Client
	opts ClientOptions
	log  *slog.Logger
	now  func() time.Time

	mu      sync.Mutex
	origins map[string]*originState
}

// originState counts one push service's VAPID refusals.
type originState struct {
	streak      int           // 401/403 answers in a row
	lastStatus  int           // the last refusal's status
	tripped     bool          // paused, or probing after a pause
	pausedUntil time.Time     // no push before this
	backoff     time.Duration // the current pause length
	probing     bool          // the probe after a pause is in flight
}

var _ tilecast.Pusher = (*Client)(nil)

// ErrPaused marks a push not sent because its push service is paused
// after a run of VAPID refusals (see Client).
var ErrPaused = errors.New("paused after VAPID refusals")

// PausedError is the error of a push to a paused service.
type PausedError struct {
	Origin  string // the endpoint's origin, or its service's name (ClientOptions.Service)
	Until   time.Time
	Refused int // refusals in a row so far
}

func (e *PausedError) Error() string {
	return fmt.Sprintf("webpush: sending to %s paused until %s after %d VAPID refusals (401/403) in a row: check [push.webpush] vapid_private_key_file and subject",
		e.Origin, e.Until.UTC().Format(time.RFC3339), e.Refused)
}

// Unwrap lets callers use errors.Is(err, ErrPaused).
func (e *PausedError) Unwrap() error { return ErrPaused }

// Is makes a paused push match tilecast.ErrCircuitOpen: no request was
// made, so the deliverer postpones the notification until the pause ends
// without counting an attempt (tilecast.NotSent), and the Breaker does
// not count it as a failure of the push service's host.
func (e *PausedError) Is(target error) bool { return target == tilecast.ErrCircuitOpen }

// NewClient returns a Client built from opts.
func NewClient(opts ClientOptions) (*Client, error) {
	if opts.VAPID == nil {
		return nil, errors.New("webpush client: no VAPID signer")
	}
	for _, u := range []struct{ name, v string }{{"urgency_toast", opts.UrgencyToast}, {"urgency_tile", opts.UrgencyTile}} {
		if u.v != "" && !ValidUrgency(u.v) {
			return nil, fmt.Errorf("webpush client: %s %q: want very-low, low, normal or high", u.name, u.v)
		}
	}
	if opts.Pad < 0 || opts.Pad > MaxPlaintext {
		return nil, fmt.Errorf("webpush client: pad %d: want 0 to %d", opts.Pad, MaxPlaintext)
	}
	if opts.DefaultTTL <= 0 {
		opts.DefaultTTL = DefaultTTL
	}
	if opts.PauseAfter <= 0 {
		opts.PauseAfter = DefaultPauseAfter
	}
	if opts.PauseMin <= 0 {
		opts.PauseMin = DefaultPauseMin
	}
	if opts.PauseMax <= 0 {
		opts.PauseMax = DefaultPauseMax
	}
	opts.PauseMax = max(opts.PauseMax, opts.PauseMin)
	c := &Client{
		http: pushhttp.New(pushhttp.Options{
			Timeout:      opts.Timeout,
			Concurrency:  opts.Concurrency,
			AllowPrivate: opts.AllowPrivate,
			Policy:       opts.Policy,
			RootCAs:      opts.RootCAs,
			UserAgent:    opts.UserAgent,
		}),
		opts:    opts,
		log:     opts.Logger,
		now:     opts.Now,
		origins: map[string]*originState{},
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "webpush")
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.Close() }

// PublicKey returns the VAPID public key in base64url (for GET
// /v1/webpush/key).
func (c *Client) PublicKey() string { return c.opts.VAPID.Key().PublicKey() }

// Push sends n to channel ch, a Web Push channel: its URI is the
// subscription's endpoint, its Keys encrypt, its Expires ends it (see
// SubscriptionOf, PushSubscription). A channel without keys is
// VerdictFailed.
func (c *Client) Push(ctx context.Context, ch *tilecast.Channel, n *tilecast.Notification, ttl time.Duration) tilecast.Result {
	sub, err := SubscriptionOf(ch)
	if err != nil {
		return tilecast.Result{Verdict: tilecast.VerdictFailed, Err: err}
	}
	return c.PushSubscription(ctx, sub, n, ttl)
}

// RequestOptions returns the options Push builds n's request with: the
// urgency of n's feed or kind, the topic of a tile (TopicFor(n.Feed)),
// the padding and the signer. `tilecast send --dry-run` uses it to show
// exactly what Push would send.
func (c *Client) RequestOptions(n *tilecast.Notification) RequestOptions {
	o := RequestOptions{VAPID: c.opts.VAPID, Pad: c.opts.Pad, UserAgent: c.opts.UserAgent}
	switch n.Kind {
	case tilecast.KindTile, tilecast.KindBadge:
		o.Urgency = c.opts.UrgencyTile
		o.Topic = TopicFor(n.Feed)
	default:
		o.Urgency = c.opts.UrgencyToast
	}
	if c.opts.FeedUrgency != nil {
		if u := c.opts.FeedUrgency(n.Feed); u != "" {
			o.Urgency = u
		}
	}
	return o
}

// PushSubscription sends n (its Kind and plaintext Payload) to sub with
// what is left of its time to live (0: ClientOptions.DefaultTTL), and
// classifies the answer (Classify). It never returns an error: a
// subscription past its Expires is VerdictGone without a request; a
// network failure is VerdictRetry; a notification that cannot be requested (too
// large, unknown kind, bad urgency) or an address the guard refuses is
// VerdictFailed; a paused push service is VerdictRetry with a Wait (see
// Client).
func (c *Client) PushSubscription(ctx context.Context, sub Subscription, n *tilecast.Notification, ttl time.Duration) tilecast.Result {
	start := c.now()
	if !sub.Expires.IsZero() && !start.Before(sub.Expires) {
		// The browser said when the subscription ends; the push service
		// would answer 404 or 410 now.
		return tilecast.Result{Verdict: tilecast.VerdictGone,
			Err: fmt.Errorf("webpush: subscription expired at %s: %w", sub.Expires.UTC().Format(time.RFC3339), tilecast.ErrChannelExpired)}
	}
	origin, err := Origin(sub.Endpoint)
	if err != nil {
		return tilecast.Result{Verdict: tilecast.VerdictFailed, Err: fmt.Errorf("webpush: %w", err)}
	}
	if c.opts.Service != nil {
		if s := c.opts.Service(origin); s != "" {
			origin = s // the refusal run and pause are the service's
		}
	}
	probe, pe := c.admit(origin, start)
	if pe != nil {
		return tilecast.Result{Verdict: tilecast.VerdictRetry, Wait: max(pe.Until.Sub(start), time.Second), Err: pe}
	}
	if ttl <= 0 {
		ttl = c.opts.DefaultTTL
	}
	req, err := NewRequest(sub, n.Kind, n.Payload, ttl, c.RequestOptions(n))
	if err != nil {
		if probe {
			c.release(origin)
		}
		return tilecast.Result{Verdict: tilecast.VerdictFailed, Err: err}
	}
	resp, err := c.http.Do(ctx, req)
	var r tilecast.Result
	if err != nil {
		r = Classify(0, nil, nil, fmt.Errorf("webpush: %w", err), c.now())
		if pe := (*netguard.ProhibitedError)(nil); errors.As(err, &pe) {
			r.Verdict = tilecast.VerdictFailed // retrying would be refused again
		}
	} else {
		r = Classify(resp.Status, resp.Header, resp.Body, nil, c.now())
	}
	c.record(origin, r.Status, probe, c.now())
	r.Duration = c.now().Sub(start)
	return r
}

// admit decides whether a push to origin may be sent now: nil, or the
// reason it may not. After a pause it lets one probe through and says so
// (probe true): only the probe's refusal lengthens the pause, and only
// the probe's own end frees the way for the next probe, because a refusal
// of a push admitted before the pause began says nothing the refusals
// that caused it did not already say.
func (c *Client) admit(origin string, now time.Time) (probe bool, pe *PausedError) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.origins[origin]
	if st == nil || !st.tripped {
		return false, nil
	}
	switch {
	case now.Before(st.pausedUntil):
		return false, &PausedError{Origin: origin, Until: st.pausedUntil, Refused: st.streak}
	case st.probing:
		// The probe is out; the others wait a short pause for its answer.
		return false, &PausedError{Origin: origin, Until: now.Add(c.opts.PauseMin), Refused: st.streak}
	}
	st.probing = true
	return true, nil
}

// release ends a probe that sent nothing. Only the probe calls it: a push
// admitted before the pause must not free the probe's slot while the
// probe is out.
func (c *Client) release(origin string) {
	c.mu.Lock()
	if st := c.origins[origin]; st != nil {
		st.probing = false
	}
	c.mu.Unlock()
}

// record updates origin's refusal count with one answer's status (0: no
// answer); probe is what admit said of the push.
func (c *Client) record(origin string, status int, probe bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.origins[origin]
	// The probe's record may have been dropped meanwhile (another push was
	// accepted) and a new pause begun by other pushes; that pause has no
	// probe out until admit lets one through, so this answer is not it.
	probe = probe && st != nil && st.probing
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		if st == nil {
			if len(c.origins) >= maxOrigins {
				c.pruneLocked()
			}
			st = &originState{}
			c.origins[origin] = st
		}
		st.streak++
		st.lastStatus = status
		switch {
		case st.tripped && probe:
			// The probe was refused again: pause longer.
			st.backoff = min(2*st.backoff, c.opts.PauseMax)
			st.pausedUntil = now.Add(st.backoff)
			st.probing = false
			c.log.Warn("push service still refuses VAPID: sending stays paused", "origin", origin,
				"status", status, "refused", st.streak, "paused_for", st.backoff)
		case st.tripped:
			// A push sent before the pause began, answered only now (with
			// push.concurrency pushes in flight, dozens arrive together):
			// it counts in the streak but is no news, so it must not
			// lengthen the pause the way a refused probe does.
		case st.streak >= c.opts.PauseAfter:
			st.tripped = true
			st.backoff = c.opts.PauseMin
			st.pausedUntil = now.Add(st.backoff)
			c.log.Error("push service refuses VAPID: sending to it paused; check [push.webpush] vapid_private_key_file and subject",
				"origin", origin, "status", status, "refused", st.streak, "paused_for", st.backoff)
		}
	case st == nil:
	case status >= 200 && status <= 299, status == http.StatusNotFound, status == http.StatusGone,
		status == http.StatusRequestEntityTooLarge:
		// The service took the authorization.
		if st.tripped {
			c.log.Info("push service accepts VAPID again: sending resumed", "origin", origin, "status", status)
		}
		delete(c.origins, origin)
	case probe:
		// The probe got no answer, or one that says nothing about the
		// authorization: the next push may probe again.
		st.probing = false
	}
}

// pruneLocked drops the refusal records of services that are not paused.
func (c *Client) pruneLocked() {
	for o, st := range c.origins {
		if !st.tripped {
			delete(c.origins, o)
		}
	}
}

// Degraded reports whether sending to some push service is paused after a
// run of VAPID refusals, and why (for /healthz's "degraded"). It stays
// degraded until a push to that service is accepted again.
func (c *Client) Degraded() (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var reasons []string
	for o, st := range c.origins {
		if !st.tripped {
			continue
		}
		reasons = append(reasons, fmt.Sprintf("web push service %s refused VAPID (http %d) %d times in a row, sending paused until %s",
			o, st.lastStatus, st.streak, st.pausedUntil.UTC().Format(time.RFC3339)))
	}
	if len(reasons) == 0 {
		return false, ""
	}
	sort.Strings(reasons)
	return true, strings.Join(reasons, "; ") + ": check [push.webpush] vapid_private_key_file and subject"
}
