package tilecast

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
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
}

// Breaker is a Pusher wrapper with one circuit per push host. A host that
// keeps failing would otherwise hold every push worker in its timeouts and
// starve the healthy hosts; once its circuit is open, pushes to it return
// at once (VerdictRetry, Wait = time to the next probe, ErrCircuitOpen)
// without a request, and one push per Interval goes through as a probe. A
// probe that succeeds closes the circuit. Hosts are independent. A Breaker
// is safe for concurrent use.
type Breaker struct {
	next     Pusher
	failures int
	interval time.Duration
	now      func() time.Time
	log      *slog.Logger

	mu    sync.Mutex
	hosts map[string]*circuit // only hosts with a failure streak
}

type circuit struct {
	fails     int
	open      bool
	probing   bool      // a probe is in flight
	nextProbe time.Time // open: the earliest time of the next probe
}

var _ Pusher = (*Breaker)(nil)

// NewBreaker wraps next.
func NewBreaker(next Pusher, opts BreakerOptions) *Breaker {
	b := &Breaker{next: next, failures: opts.Failures, interval: opts.Interval, now: opts.Now, log: opts.Logger,
		hosts: make(map[string]*circuit)}
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
	defer b.mu.Unlock()
	c = b.hosts[host]
	if NotSent(res) {
		// No request was made: the host was not tried. A probe that
		// was not sent leaves the circuit as it was, for the next one.
		if probe && c != nil {
			c.probing = false
		}
		return res
	}
	if !hostFailed(res) {
		if c != nil {
			if c.open {
				b.log.Warn("push host recovered: circuit closed", "host", host)
			}
			delete(b.hosts, host)
		}
		return res
	}
	if c == nil {
		c = &circuit{}
		b.hosts[host] = c
	}
	c.fails++
	switch {
	case c.open && probe:
		c.probing = false
		c.nextProbe = b.now().Add(b.interval)
	case c.open:
		// A send that started before the circuit opened: the probe
		// schedule stands.
	case c.fails >= b.failures:
		c.open = true
		c.nextProbe = b.now().Add(b.interval)
		b.log.Warn("push host failing: circuit open", "host", host, "failures", c.fails,
			"probe_every", b.interval, "error", errString(res.Err), "status", res.Status)
	}
	return res
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
