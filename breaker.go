package tilecast

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrCircuitOpen is the Result.Err of a push the Breaker refused without
// making a request: the channel's host has been failing.
var ErrCircuitOpen = errors.New("circuit open: push host failing")

// Breaker defaults (reliability.md §3.3 "Per-host isolation").
const (
	DefaultBreakerFailures = 5
	DefaultBreakerInterval = 30 * time.Second
)

// BreakerOptions configure NewBreaker. The zero value takes the defaults.
type BreakerOptions struct {
	// Failures is how many consecutive failures (network errors, 5xx) of
	// one host open its circuit; zero means DefaultBreakerFailures.
	Failures int
	// Interval is the time between probes of an open host; zero means
	// DefaultBreakerInterval.
	Interval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger is told when a host's circuit opens and closes; nil discards.
	Logger *slog.Logger
	// Shared, when set, is the circuits' view shared with the other
	// instances on one state (design.md §10): a circuit this Breaker opens
	// is written there, hosts another instance opened are refused here
	// too until their probe time, and a probe that succeeds anywhere
	// closes the host for all. nil keeps every circuit in this process.
	Shared HostHealth
	// SharedRefresh is how long the shared view is used before it is read
	// again (one read per interval, not one per push); zero means
	// DefaultSharedRefresh.
	SharedRefresh time.Duration
}

// HostHealth is the open circuits shared by the instances of one state:
// the PostgreSQL store implements it. Host is the circuit key (the
// channel URI's lower-cased host:port).
type HostHealth interface {
	// HostOpened records that host's circuit is open until probeAt, the
	// time of its next probe (also to move that time after a failed
	// probe).
	HostOpened(ctx context.Context, host string, probeAt time.Time) error
	// HostClosed records that host answered a probe: closed for all.
	HostClosed(ctx context.Context, host string) error
	// OpenHosts returns every open host with its next probe time.
	OpenHosts(ctx context.Context) (map[string]time.Time, error)
}

// DefaultSharedRefresh is how long a Breaker uses the shared view of the
// open hosts before reading it again: short against a push rate of
// thousands a second, long against one statement per push.
const DefaultSharedRefresh = 3 * time.Second

// sharedTimeout bounds one read or write of the shared view: a database
// that hangs must not hold a push worker for the store's whole timeout.
const sharedTimeout = 5 * time.Second

// Breaker is a Pusher wrapper with one circuit per push host. A host that
// keeps failing would otherwise hold every push worker in its timeouts and
// starve the healthy hosts; once its circuit is open, pushes to it return
// at once (VerdictRetry, Wait = time to the next probe, ErrCircuitOpen)
// without a request, and one push per Interval goes through as a probe. A
// probe that succeeds closes the circuit. Hosts are independent. With
// BreakerOptions.Shared the open circuits are those of every instance on
// the state (read every few seconds, written on each transition). A
// Breaker is safe for concurrent use.
type Breaker struct {
	next     Pusher
	failures int
	interval time.Duration
	now      func() time.Time
	log      *slog.Logger

	shared  HostHealth
	refresh time.Duration

	mu    sync.Mutex
	hosts map[string]*circuit // only hosts with a failure streak

	// The shared view (with shared set): when it was last read, whether
	// a read is under way, and a sequence that orders reads after writes.
	readAt    time.Time
	reading   bool
	seq       uint64
	closed    map[string]uint64 // hosts closed here: the seq after the view was told (MaxUint64: not yet)
	sharedErr bool              // the last read or write failed (logged once per streak)
}

type circuit struct {
	fails     int
	open      bool
	probing   bool      // a probe is in flight
	nextProbe time.Time // open: the earliest time of the next probe
	// last is the last failure as Degraded tells it ("HTTP 503", "no
	// answer: …"); "" for a circuit another instance opened.
	last string
	// shared is the seq after which the shared view has this circuit
	// open: a read started later that lacks the host means another
	// instance closed it. 0: not (yet) written there.
	shared uint64
}

var (
	_ Pusher           = (*Breaker)(nil)
	_ DegradedReporter = (*Breaker)(nil)
)

// NewBreaker wraps next.
func NewBreaker(next Pusher, opts BreakerOptions) *Breaker {
	// seq starts at 1, not 0: a circuit learned from a read made before
	// this Breaker wrote anything takes that read's seq as its shared,
	// and 0 there would mean "not in the view", so a later read that
	// lacks the host (another instance's probe closed it) would never
	// close it here.
	b := &Breaker{next: next, failures: opts.Failures, interval: opts.Interval, now: opts.Now, log: opts.Logger,
		shared: opts.Shared, refresh: opts.SharedRefresh, hosts: make(map[string]*circuit), seq: 1}
	if b.refresh <= 0 {
		b.refresh = DefaultSharedRefresh
	}
	if b.failures <= 0 {
		b.failures = DefaultBreakerFailures
	}
	if b.interval <= 0 {
		b.interval = DefaultBreakerInterval
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	return b
}

// hostOf returns the circuit key of a channel URI: its lower-cased host:port.
func hostOf(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Host)
}

// hostFailed reports whether r says the host (not the channel) is failing:
// a 5xx, or a request that got no answer (a network error or timeout,
// which the transports classify VerdictRetry). QueueFull, 429 and 4xx are
// answers from a working host; a push that was never sent (NotSent: the
// transport waits for its token endpoint, or has no sender) or that the
// transport refused before making a request (VerdictFailed without a
// status: a URI it will not send to, a payload over its limit) says
// nothing about the host.
func hostFailed(r Result) bool {
	if r.Status >= 500 {
		return true
	}
	return r.Status == 0 && r.Err != nil && r.Verdict == VerdictRetry && !errors.Is(r.Err, ErrCircuitOpen)
}

// Push sends n to ch unless the host of ch.URI has an open circuit and no
// probe is due.
func (b *Breaker) Push(ctx context.Context, ch *Channel, n *Notification, ttl time.Duration) Result {
	host := hostOf(ch.URI)
	if host == "" {
		return b.next.Push(ctx, ch, n, ttl)
	}
	if b.shared != nil {
		b.readShared(ctx)
	}
	b.mu.Lock()
	c := b.hosts[host]
	probe := false
	if c != nil && c.open {
		now := b.now()
		if c.probing || now.Before(c.nextProbe) {
			wait := c.nextProbe.Sub(now)
			if wait <= 0 {
				wait = b.interval // a probe is overdue but still in flight
			}
			b.mu.Unlock()
			return Result{Verdict: VerdictRetry, Wait: wait, Err: ErrCircuitOpen}
		}
		c.probing, probe = true, true
		c.nextProbe = now.Add(b.interval)
	}
	b.mu.Unlock()

	res := b.next.Push(ctx, ch, n, ttl)

	b.mu.Lock()
	c = b.hosts[host]
	if NotSent(res) {
		// No request was made: the host was not tried. A probe that
		// was not sent leaves the circuit as it was, for the next one.
		if probe && c != nil {
			c.probing = false
		}
		b.mu.Unlock()
		return res
	}
	if !hostFailed(res) {
		closed := false
		if c != nil {
			if c.open {
				b.log.Warn("push host recovered: circuit closed", "host", host)
				closed = b.shared != nil
				if closed {
					b.closing(host)
				}
			}
			delete(b.hosts, host)
		}
		b.mu.Unlock()
		if closed {
			b.writeShared(ctx, host, time.Time{}, nil)
		}
		return res
	}
	if c == nil {
		c = &circuit{}
		b.hosts[host] = c
	}
	c.fails++
	c.last = failure(res)
	write := false
	switch {
	case c.open && probe:
		c.probing = false
		c.nextProbe = b.now().Add(b.interval)
		write = true // the others wait for this next probe too
	case c.open:
		// A send that started before the circuit opened: the probe
		// schedule stands.
	case c.fails >= b.failures:
		c.open = true
		c.nextProbe = b.now().Add(b.interval)
		write = true
		b.log.Warn("push host failing: circuit open", "host", host, "failures", c.fails,
			"probe_every", b.interval, "error", errString(res.Err), "status", res.Status)
	}
	until := c.nextProbe
	b.mu.Unlock()
	if write && b.shared != nil {
		b.writeShared(ctx, host, until, c)
	}
	return res
}

// closing notes (b.mu held) that host's circuit closed here and the
// shared view is being told: a read of the view that started before it
// was told must not open the host again.
func (b *Breaker) closing(host string) {
	if b.closed == nil {
		b.closed = make(map[string]uint64)
	}
	b.closed[host] = math.MaxUint64
}

// writeShared tells the shared view that host is open until the time of
// its next probe (c is the circuit that opened), or, with a zero until,
// closed. It is called on transitions only (an open, a failed probe, a
// close), not per push. A failure is logged (once per streak): the
// circuit still works in this process.
func (b *Breaker) writeShared(ctx context.Context, host string, until time.Time, c *circuit) {
	// Not bound to the push's cancellation: the others should learn of
	// the transition even when this push was cut short.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
	var err error
	if until.IsZero() {
		err = b.shared.HostClosed(wctx, host)
	} else {
		err = b.shared.HostOpened(wctx, host, until)
	}
	cancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.noteShared(err)
	b.seq++
	switch {
	case until.IsZero():
		if err != nil {
			delete(b.closed, host)
		} else {
			b.closed[host] = b.seq
		}
	case err == nil && b.hosts[host] == c && c.open:
		c.shared = b.seq
	}
}

// readShared reads the shared view of the open hosts when the last read
// is older than the refresh interval (one push reads it; the others go on
// with the view they have), and applies it: a host open there is open
// here until its probe time; a host this Breaker has open that the view
// no longer has was closed by another instance's probe.
func (b *Breaker) readShared(ctx context.Context) {
	b.mu.Lock()
	if b.reading || (!b.readAt.IsZero() && b.now().Sub(b.readAt) < b.refresh) {
		b.mu.Unlock()
		return
	}
	b.reading = true
	start := b.seq
	b.mu.Unlock()

	rctx, cancel := context.WithTimeout(ctx, sharedTimeout)
	open, err := b.shared.OpenHosts(rctx)
	cancel()

	b.mu.Lock()
	defer b.mu.Unlock()
	b.reading = false
	b.readAt = b.now()
	if err != nil && ctx.Err() != nil {
		return // the push was cancelled (a stop), not the view's fault
	}
	b.noteShared(err)
	if err != nil {
		return
	}
	for host, c := range b.hosts {
		if _, ok := open[host]; ok || !c.open || c.shared == 0 || c.shared > start {
			continue // open there, not open here, or told after this read began
		}
		delete(b.hosts, host)
		b.log.Warn("push host recovered on another instance: circuit closed", "host", host)
	}
	for host, at := range open {
		if s, ok := b.closed[host]; ok && s > start {
			continue // closed here after this read began
		}
		c := b.hosts[host]
		switch {
		case c == nil || !c.open:
			b.hosts[host] = &circuit{fails: b.failures, open: true, nextProbe: at, shared: start}
			b.log.Warn("push host failing on another instance: circuit open", "host", host,
				"probe_at", at.UTC().Format(time.RFC3339))
		case !c.probing && at.After(c.nextProbe):
			c.nextProbe = at // another instance's probe failed later than ours
		}
	}
	for host, s := range b.closed {
		if s <= start {
			delete(b.closed, host)
		}
	}
}

// noteShared logs (b.mu held) a failed read or write of the shared view
// once per streak, and its end.
func (b *Breaker) noteShared(err error) {
	switch {
	case err != nil && !b.sharedErr:
		b.sharedErr = true
		b.log.Warn("shared push host view unavailable: circuits are this instance's own until it is back",
			"error", err.Error())
	case err == nil && b.sharedErr:
		b.sharedErr = false
		b.log.Info("shared push host view back")
	}
}

// degradedHosts is how many open hosts Degraded names: the reason is one
// line of /healthz, which must stay short when a thousand hosts fail.
const degradedHosts = 3

// maxFailureText bounds the text of one host's last failure in Degraded.
const maxFailureText = 120

// Degraded reports whether some push host's circuit is open — the Breaker
// refuses to send to it until a probe succeeds — and why: the first few
// hosts (in name order) with their failures and next probe, and how many
// more. A push service that fails is outside the daemon: /healthz says
// degraded, never 503. With BreakerOptions.Shared the shared view is read
// first (at most once per SharedRefresh, as pushes do), so that every
// instance reports the hosts any of them opened, and stops when a probe
// anywhere closes them, even while it sends nothing itself.
func (b *Breaker) Degraded() (bool, string) {
	if b.shared != nil {
		// /healthz has no deadline of its own to pass on: readShared
		// bounds the read with sharedTimeout.
		b.readShared(context.Background())
	}
	now := b.now()
	b.mu.Lock()
	var open []string
	for host, c := range b.hosts {
		if c.open {
			open = append(open, host)
		}
	}
	slices.Sort(open)
	named := make([]string, 0, min(len(open), degradedHosts))
	for _, host := range open[:min(len(open), degradedHosts)] {
		named = append(named, host+" ("+b.hosts[host].describe(now)+")")
	}
	b.mu.Unlock()
	if len(open) == 0 {
		return false, ""
	}
	var sb strings.Builder
	if len(open) == 1 {
		sb.WriteString("push host failing, circuit open (sends held until a probe succeeds): ")
	} else {
		fmt.Fprintf(&sb, "%d push hosts failing, circuits open (sends held until a probe succeeds): ", len(open))
	}
	sb.WriteString(strings.Join(named, "; "))
	if more := len(open) - len(named); more > 0 {
		fmt.Fprintf(&sb, "; and %d more", more)
	}
	return true, sb.String()
}

// describe says (b.mu held) why c is open and until when, for Degraded.
func (c *circuit) describe(now time.Time) string {
	why := "opened by another instance"
	if c.last != "" {
		why = fmt.Sprintf("%d failures in a row, last: %s", c.fails, c.last)
	}
	switch {
	case c.probing:
		return why + "; probing now"
	case now.Before(c.nextProbe):
		return why + "; next probe " + c.nextProbe.UTC().Format(time.RFC3339)
	default:
		return why + "; probe due with the next send to it"
	}
}

// failure tells what a host failure r was, for Degraded: the status, or
// why no answer came. /healthz is open to anyone and a channel URI is a
// capability to push to a device, so a *url.Error's URL is left out (the
// transports already drop it) and the text is bounded.
func failure(r Result) string {
	if r.Status != 0 {
		return fmt.Sprintf("HTTP %d", r.Status)
	}
	err := r.Err
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := "no answer"
	if err != nil {
		msg += ": " + err.Error()
	}
	if len(msg) > maxFailureText {
		msg = strings.ToValidUTF8(msg[:maxFailureText], "") + "…"
	}
	return msg
}

// Open reports whether host's circuit is open (host as in the channel URI).
func (b *Breaker) Open(host string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.hosts[strings.ToLower(host)]
	return c != nil && c.open
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
