package tilecast

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Multi-transport plumbing (design.md §11). A channel names its transport
// (Channel.Transport); every part that depends on the protocol is chosen
// by it, from a map keyed by Transport, so that a transport is added by
// registering its parts rather than by editing the Bot:
//
//   - registration: InferTransport (when the registration names none) and
//     channeluri.CheckChannel (the URI rules of each transport);
//   - rendering: Bot.Renderers[t], a Renderer whose TileUpdate says what
//     one tile update is on that transport (MPNS: a tile carrying the
//     count; WNS: a tile and a badge notification);
//   - sending: NewPushMux(map[Transport]Pusher{…}), one Pusher per
//     transport, behind the Breaker;
//   - health: a Pusher that depends on a service tilecast only sends to
//     (an OAuth token endpoint, a push service) implements
//     DegradedReporter; PushMux.Degraded gathers them for /healthz, next
//     to the Breaker's (its open circuits, whatever the transport).

// ErrUnknownTransport marks a transport name tilecast does not know.
var ErrUnknownTransport = errors.New("unknown transport")

// ErrNoTransport is the Result.Err (with ErrCircuitOpen: not sent) of a
// push to a channel whose transport has no Pusher in the PushMux, such as
// a WNS channel while the config has no [push.wns] credentials.
var ErrNoTransport = errors.New("no sender configured for this transport")

// Transports returns the known transports in a stable order.
func Transports() []Transport {
	return []Transport{TransportMPNS, TransportWNS, TransportWebPush}
}

// ParseTransport checks a transport name as a user gives it ("wns",
// "MPNS", " webpush "): it returns the Transport, "" for an empty name
// (infer it), or an error wrapping ErrUnknownTransport.
func ParseTransport(s string) (Transport, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "", nil
	}
	for _, t := range Transports() {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("%w %.32q: want mpns, wns or webpush", ErrUnknownTransport, s)
}

// WNSHostSuffix is the domain of every WNS channel URI (and of Edge's Web
// Push endpoints, which come with keys).
const WNSHostSuffix = ".notify.windows.com"

// InferTransport returns the transport of a channel registered without
// one (design.md §11): a subscription with keys is Web Push (Edge's Web
// Push endpoints are on *.notify.windows.com too, so the keys decide
// first); a URI on *.notify.windows.com is WNS; anything else is MPNS,
// which is what every registration was before channels had a transport,
// so existing apps, scripts and API clients keep working. A URI that does
// not parse is MPNS here; the registration's URI check refuses it.
func InferTransport(uri string, hasKeys bool) Transport {
	if hasKeys {
		return TransportWebPush
	}
	if u, err := url.Parse(uri); err == nil && IsWNSHost(u.Hostname()) {
		return TransportWNS
	}
	return TransportMPNS
}

// IsWNSHost reports whether host (a name, no port) is under
// notify.windows.com, case and a trailing dot aside.
func IsWNSHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	return strings.HasSuffix(h, WNSHostSuffix) && len(h) > len(WNSHostSuffix)
}

// TransportOf returns ch's transport; a channel stored before channels
// had one (or built without one) is an MPNS channel.
func TransportOf(ch *Channel) Transport {
	if ch.Transport == "" {
		return TransportMPNS
	}
	return ch.Transport
}

// Rendered is one notification a Renderer made: its kind and payload.
type Rendered struct {
	Kind    Kind
	Payload []byte
}

// DegradedReporter is implemented by the parts of a transport that depend
// on a service tilecast only sends to — an OAuth token endpoint, a push
// service — so that its outage is reported by /healthz as degraded (200,
// with the reason) and never as a fault of the daemon (503), which would
// make systemd's watchdog restart a daemon that is working.
type DegradedReporter interface {
	// Degraded reports whether sends are impaired from outside and why.
	Degraded() (bool, string)
}

// NotSent reports whether r is a push that made no request (an open
// circuit, a transport waiting for its token endpoint or paused, no
// sender for the transport): its Err matches ErrCircuitOpen. The
// deliverer postpones such an entry without counting an attempt, and the
// Breaker does not count it against the host.
func NotSent(r Result) bool {
	return r.Status == 0 && errors.Is(r.Err, ErrCircuitOpen)
}

// Default hold of a notification whose transport has no sender.
const defaultNoTransportHold = 10 * time.Minute

// PushMuxOptions configure NewPushMux. The zero value works.
type PushMuxOptions struct {
	// Missing says, per transport without a Pusher, why and what to do
	// ("no [push.wns] credentials in the config"), for the log and for
	// Degraded.
	Missing map[Transport]string
	// Hold is how long a notification for a transport without a Pusher
	// waits before it is looked at again (default 10 min); its time to
	// live still runs, so it expires rather than piles up.
	Hold time.Duration
	// Logger is told, at most once per Hold per transport, that
	// notifications are held; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// PushMux is the Pusher of a daemon that speaks several transports: it
// sends each notification through the Pusher of its channel's transport
// (TransportOf). A notification for a transport with no Pusher is not
// sent: its Result matches ErrNoTransport and ErrCircuitOpen, so the
// deliverer holds it (Wait = Hold) without an attempt, and Degraded says
// so. It is safe for concurrent use.
type PushMux struct {
	pushers map[Transport]Pusher
	missing map[Transport]string
	hold    time.Duration
	log     *slog.Logger
	now     func() time.Time

	mu   sync.Mutex
	held map[Transport]*heldSends
}

type heldSends struct {
	count  int       // pushes held since the last log line
	last   time.Time // last push held
	logged time.Time // last log line
}

var (
	_ Pusher           = (*PushMux)(nil)
	_ DegradedReporter = (*PushMux)(nil)
)

// NewPushMux returns a PushMux sending through pushers (nil entries are
// left out).
func NewPushMux(pushers map[Transport]Pusher, opts PushMuxOptions) *PushMux {
	m := &PushMux{pushers: make(map[Transport]Pusher, len(pushers)), missing: opts.Missing, hold: opts.Hold,
		log: opts.Logger, now: opts.Now, held: make(map[Transport]*heldSends)}
	for t, p := range pushers {
		if p != nil {
			m.pushers[t] = p
		}
	}
	if m.hold <= 0 {
		m.hold = defaultNoTransportHold
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m
}

// Pusher returns the Pusher of transport t, nil when there is none.
func (m *PushMux) Pusher(t Transport) Pusher { return m.pushers[t] }

// Push sends n through the Pusher of ch's transport.
func (m *PushMux) Push(ctx context.Context, ch *Channel, n *Notification, ttl time.Duration) Result {
	t := TransportOf(ch)
	if p := m.pushers[t]; p != nil {
		return p.Push(ctx, ch, n, ttl)
	}
	why := m.why(t)
	now := m.now()
	m.mu.Lock()
	h := m.held[t]
	if h == nil {
		h = &heldSends{}
		m.held[t] = h
	}
	h.count++
	h.last = now
	logIt := h.logged.IsZero() || now.Sub(h.logged) >= m.hold
	count := h.count
	if logIt {
		h.logged, h.count = now, 0
	}
	m.mu.Unlock()
	if logIt {
		m.log.Warn("notifications held: no sender for their transport", "transport", string(t), "held", count,
			"retry_in", m.hold, "reason", why)
	}
	return Result{Verdict: VerdictRetry, Wait: m.hold,
		Err: fmt.Errorf("%s: %w (%s): %w", t, ErrNoTransport, why, ErrCircuitOpen)}
}

func (m *PushMux) why(t Transport) string {
	if r := m.missing[t]; r != "" {
		return r
	}
	return "tilecast has no " + string(t) + " sender configured"
}

// Degraded reports what impairs sending, transport by transport: the
// reasons of the Pushers that implement DegradedReporter, and the
// transports whose notifications were held for want of a Pusher within
// the last two Holds. It never counts as the daemon's own fault.
func (m *PushMux) Degraded() (bool, string) {
	var reasons []string
	ts := make([]Transport, 0, len(m.pushers))
	for t := range m.pushers {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	for _, t := range ts {
		if d, ok := m.pushers[t].(DegradedReporter); ok {
			if bad, why := d.Degraded(); bad {
				reasons = append(reasons, why)
			}
		}
	}
	now := m.now()
	m.mu.Lock()
	var held []Transport
	for t, h := range m.held {
		if now.Sub(h.last) < 2*m.hold {
			held = append(held, t)
		}
	}
	m.mu.Unlock()
	slices.Sort(held)
	for _, t := range held {
		reasons = append(reasons, fmt.Sprintf("%s: notifications held, %s", t, m.why(t)))
	}
	return len(reasons) > 0, strings.Join(reasons, "; ")
}
