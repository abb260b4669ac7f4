package web

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Throttling by source address: /v1 requests that carry no credentials or
// wrong ones (bad key, another scheme, malformed header)
// take a token from their source address's bucket; with the bucket empty
// such a request is answered 429 with Retry-After instead of 401, so a
// client guessing keys is slowed to the bucket's rate.
//
// Requests with valid credentials are never refused by this bucket and take
// nothing from it: they are limited by their key's bucket only. The
// credentials are therefore always checked, so a throttled guesser still
// learns when a guess is right; the defence against guessing is the key's
// length (ReloadKeys warns about short keys), and this limit bounds the
// work and log noise a guessing client causes. The other choice, refusing
// every request from a throttled address, would let one client with a stale
// key (after a key rotation, say) lock out an app fleet sharing its NAT
// address.
//
// The address is the peer of the TCP connection (r.RemoteAddr); a
// X-Forwarded-For header is not trusted. IPv6 clients are grouped by their
// /64, which one host usually owns whole. The number of tracked addresses is
// bounded: when the map is full, addresses whose bucket has refilled (idle
// ones) are dropped; if none has, a failing request from an untracked
// address is answered 429. That refuses nothing a valid key sends.

// Default limits for failed authentication per source address.
const (
	// DefaultAuthFailRate is the refill rate: one failure per 5 s.
	DefaultAuthFailRate = 0.2
	// DefaultAuthFailBurst failures are allowed before throttling, enough
	// for a person fixing a typo or a script trying its keys in turn.
	DefaultAuthFailBurst = 20
	// DefaultMaxTrackedAddrs bounds the addresses tracked at once.
	DefaultMaxTrackedAddrs = 10000
)

// addrLimiter is a bounded set of token buckets keyed by source address.
type addrLimiter struct {
	rate  rate.Limit
	burst int
	max   int

	mu        sync.Mutex
	buckets   map[netip.Addr]*rate.Limiter
	lastSweep time.Time
}

func newAddrLimiter(perSecond float64, burst, max int) *addrLimiter {
	return &addrLimiter{rate: rate.Limit(perSecond), burst: burst, max: max, buckets: map[netip.Addr]*rate.Limiter{}}
}

// sourceKey is the bucket key of a RemoteAddr: the IPv4 address, or the /64
// of an IPv6 one. Every unparsable address shares the zero key.
func sourceKey(remoteAddr string) netip.Addr {
	var a netip.Addr
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		a = ap.Addr()
	} else if a2, err := netip.ParseAddr(remoteAddr); err == nil {
		a = a2
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64) // cannot fail: 64 ≤ 128
		a = p.Addr()
	}
	return a
}

// allow takes a token for a failed authentication from remoteAddr at now.
// Refused, it returns the whole seconds to wait (≥ 1) and takes nothing.
func (l *addrLimiter) allow(remoteAddr string, now time.Time) (int, bool) {
	k := sourceKey(remoteAddr)
	l.mu.Lock()
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.sweep(now)
		}
		if len(l.buckets) >= l.max {
			l.mu.Unlock()
			return max(1, int(math.Ceil(1/float64(l.rate)))), false
		}
		b = rate.NewLimiter(l.rate, l.burst)
		l.buckets[k] = b
	}
	l.mu.Unlock()
	return take(b, now)
}

// sweep drops the buckets that are full again: they hold nothing a new
// bucket would not. It runs at most once a second of the server's clock, so
// a map full of throttled addresses does not cost a scan per request.
func (l *addrLimiter) sweep(now time.Time) {
	if d := now.Sub(l.lastSweep); !l.lastSweep.IsZero() && d >= 0 && d < time.Second {
		return
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
}

func (l *addrLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// take takes one token from b at now. When b is empty it returns the whole
// seconds to wait (≥ 1) and takes nothing, so a refused request does not
// push the client further behind.
func take(b *rate.Limiter, now time.Time) (int, bool) {
	res := b.ReserveN(now, 1)
	if !res.OK() {
		return 1, false
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return max(1, int(math.Ceil(d.Seconds()))), false
	}
	return 0, true
}
