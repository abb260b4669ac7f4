// Package emulator plays the Microsoft Push Notification Service (MPNS) and
// the phones behind it, the Windows Push Notification Services (WNS,
// wns.go: token endpoints and Windows devices) and a Web Push service with
// browsers (webpush.go: VAPID, aes128gcm, Topic, TTL), for the demo, tests
// and benchmarks. It checks every
// push with its own parser (it never shares tilecast's notify code, so it
// catches the sender's mistakes instead of repeating them), answers with the
// status codes and X-…Status headers of protocols.md §1.5 according to each
// channel's behaviour, applies accepted pushes to the emulated phone's tile
// and toast history, and shows the phones on an HTML page.
package emulator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Behaviours a channel can have; each answers as protocols.md §1.5 says.
const (
	Healthy    = "healthy"    // 200 Received / Active / Connected
	Expired    = "expired"    // 404 Dropped / Expired / Disconnected
	Inactive   = "inactive"   // 412 Dropped / - / InActive
	QueueFull  = "queuefull"  // 200 QueueFull for the first N pushes, then healthy
	Suppressed = "suppressed" // 200 Suppressed / Active / Connected
	Flaky      = "flaky"      // 503 with probability p, otherwise healthy
	Slow       = "slow"       // waits, then healthy
)

// Defaults for behaviour parameters left at zero.
const (
	DefaultQueueFullN = 3
	DefaultFlakyP     = 0.5
	DefaultSlow       = 2 * time.Second
	// DailyCap is the MPNS limit of pushes per unauthenticated (http) channel
	// per UTC day; push 501 gets 406.
	DailyCap = 500
)

// History lengths kept per channel.
const (
	maxToasts   = 50 // the phone's action centre keeps a bounded list too
	maxRaw      = 50
	maxRejected = 50
)

// Options configure an Emulator. The zero value works.
type Options struct {
	// Now is the clock for the daily cap and history times (default time.Now).
	Now func() time.Time
	// Rand decides flaky failures; seed it for deterministic tests. It is
	// only used under the emulator's lock.
	Rand *mrand.Rand
	// Logger receives rejected pushes and channel changes (default: discard).
	Logger *slog.Logger
	// BaseURL is the emulator's own URL (e.g. http://127.0.0.1:8080), used to
	// build channel URIs. It may be set later with SetBaseURL; when empty the
	// HTTP API derives it from the request's Host.
	BaseURL string
	// Hosts are further host names (no port) the emulator answers to,
	// e.g. a container's service name. Host headers that are IP literals,
	// localhost or *.localhost, or the BaseURL's host are always accepted;
	// any other is refused, so a web page on a name the attacker rebinds to
	// the emulator's address cannot drive or read it (see Handler).
	Hosts []string

	// WNSClientID and WNSClientSecret are the credentials the WNS token
	// endpoints accept (wns.go); without a client id they refuse every
	// request. WNSTokenTTL is how long an issued access token lasts
	// (default DefaultWNSTokenTTL; short in tests).
	WNSClientID     string
	WNSClientSecret []byte
	WNSTokenTTL     time.Duration
}

// Params tune a behaviour. Zero fields take the defaults.
type Params struct {
	QueueFullN int     `json:"queuefull_n,omitempty"`
	FlakyP     float64 `json:"flaky_p,omitempty"`
	SlowMS     int     `json:"slow_ms,omitempty"`
	// HTTPS makes an authenticated channel: unthrottledthirdparty path and
	// no daily cap. The URI's scheme is the BaseURL's, so serve the
	// emulator over TLS for the sender to see an https URI.
	HTTPS bool `json:"https,omitempty"`
}

// Channel identifies one emulated phone channel.
type Channel struct {
	Token     string `json:"token"`
	URI       string `json:"uri"`
	Behaviour string `json:"behaviour"`
	Name      string `json:"name"`
	HTTPS     bool   `json:"https"`
}

// Counts are per-channel push outcomes.
type Counts struct {
	Total       int `json:"total"`
	Received    int `json:"received"`
	QueueFull   int `json:"queuefull"`
	Suppressed  int `json:"suppressed"`
	Expired     int `json:"expired"`
	Inactive    int `json:"inactive"`
	Throttled   int `json:"throttled"`   // 406, daily cap
	Unavailable int `json:"unavailable"` // 503
	Rejected    int `json:"rejected"`    // 400 / 405
}

// TileState is a tile as the phone currently shows it. The field maps hold
// only set fields, keyed by MPNS element name.
type TileState struct {
	Kind    string            `json:"kind"` // Tile (classic), FlipTile, IconicTile, CycleTile; "" = never updated
	Front   map[string]string `json:"front"`
	Back    map[string]string `json:"back"`
	Wide    map[string]string `json:"wide"`
	Count   int               `json:"count"` // -1 = never set
	Badge   bool              `json:"badge"` // count 1–99 is shown, 0 hides it
	Updated time.Time         `json:"updated,omitzero"`
}

// ToastRecord is one toast the phone received.
type ToastRecord struct {
	Time   time.Time `json:"time"`
	Text1  string    `json:"text1"`
	Text2  string    `json:"text2"`
	Param  string    `json:"param,omitempty"`
	Sound  string    `json:"sound,omitempty"`
	Silent bool      `json:"silent,omitempty"`
}

// RawRecord is one raw notification the app received.
type RawRecord struct {
	Time  time.Time `json:"time"`
	Class int       `json:"class,omitempty"`
	Body  string    `json:"body"`
}

// Rejection is a push the emulator refused, with why.
type Rejection struct {
	Time   time.Time `json:"time"`
	Status int       `json:"status"`
	Reason string    `json:"reason"`
}

// ChannelState is a snapshot of a channel and its phone.
type ChannelState struct {
	Channel
	Params      Params               `json:"params"`
	Counts      Counts               `json:"counts"`
	PushesToday int                  `json:"pushes_today"`
	Tile        TileState            `json:"tile"`
	Secondary   map[string]TileState `json:"secondary_tiles"`
	Toasts      []ToastRecord        `json:"toasts"` // latest first
	Raw         []RawRecord          `json:"raw"`    // latest first
	Rejected    []Rejection          `json:"rejected"`
}

// tile is the phone-side tile, one string per element.
type tile struct {
	kind    string
	fields  [nFields]string
	count   int
	updated time.Time
}

func newTile() *tile { return &tile{count: -1} }

type channel struct {
	Channel
	params    Params
	seq       int // creation order
	counts    Counts
	day       int64 // UTC day number of today
	today     int   // 200 answers in day
	qfSent    int   // QueueFull answers since the behaviour was set
	primary   *tile
	secondary map[string]*tile
	toasts    []ToastRecord // oldest first; reversed in snapshots
	raw       []RawRecord
	rejected  []Rejection
}

// Emulator is an MPNS service with emulated phones. It is safe for
// concurrent use.
type Emulator struct {
	now   func() time.Time
	log   *slog.Logger
	done  chan struct{}
	hosts map[string]bool // Options.Hosts, lower-cased

	mu       sync.Mutex
	rnd      *mrand.Rand
	baseURL  string
	channels map[string]*channel
	browsers map[string]*browser // Web Push (webpush.go); made on first use
	seq      int
	version  uint64 // bumped on every state change; the page polls it
	subs     map[chan struct{}]struct{}
	closed   bool
	wns      *wnsState // the Windows devices and access tokens (wns.go)

	bufs sync.Pool
}

// New returns an Emulator with no channels.
func New(opts Options) *Emulator {
	e := &Emulator{
		now:      opts.Now,
		log:      opts.Logger,
		rnd:      opts.Rand,
		baseURL:  strings.TrimSuffix(opts.BaseURL, "/"),
		channels: make(map[string]*channel),
		subs:     make(map[chan struct{}]struct{}),
		done:     make(chan struct{}),
		hosts:    make(map[string]bool),
		wns:      newWNSState(opts),
	}
	for _, h := range opts.Hosts {
		e.hosts[strings.ToLower(strings.TrimSuffix(h, "."))] = true
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.log = e.log.With("component", "emulator")
	if e.rnd == nil {
		var seed [16]byte
		_, _ = rand.Read(seed[:])
		e.rnd = mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	}
	e.bufs.New = func() any { return new(bytes.Buffer) }
	return e
}

// SetBaseURL sets the URL channel URIs are built from, once the caller
// knows where the emulator listens. Existing channels keep their URIs.
func (e *Emulator) SetBaseURL(u string) {
	e.mu.Lock()
	e.baseURL = strings.TrimSuffix(u, "/")
	e.mu.Unlock()
}

// Close ends the live-update streams of the phone view so an http.Server
// can shut down. The emulator keeps answering pushes.
func (e *Emulator) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed {
		e.closed = true
		close(e.done)
	}
}

// ErrUnknownChannel is returned for a token the emulator never issued.
var ErrUnknownChannel = errors.New("emulator: unknown channel")

func checkParams(p Params) error {
	switch {
	case p.QueueFullN < 0:
		return errors.New("queuefull_n must be >= 0")
	case p.FlakyP < 0 || p.FlakyP > 1:
		return errors.New("flaky_p must be within 0..1")
	case p.SlowMS < 0 || p.SlowMS > 600_000:
		return errors.New("slow_ms must be within 0..600000")
	}
	return nil
}

func newToken() string {
	var b [30]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// CreateChannel registers a channel with the given behaviour; params, if
// given, tune it (only the first is used).
func (e *Emulator) CreateChannel(behaviour, name string, params ...Params) (Channel, error) {
	return e.createChannel(behaviour, name, "", params...)
}

func (e *Emulator) createChannel(behaviour, name, fallbackBase string, params ...Params) (Channel, error) {
	if behaviour == "" {
		behaviour = Healthy
	}
	if !validBehaviour(behaviour) {
		return Channel{}, fmt.Errorf("create channel: unknown behaviour %q (want %s)", behaviour, orList(phoneBehaviours))
	}
	var p Params
	if len(params) > 0 {
		p = params[0]
	}
	if err := checkParams(p); err != nil {
		return Channel{}, fmt.Errorf("create channel: %w", err)
	}
	if name == "" {
		name = behaviour
	}
	tok := newToken()
	e.mu.Lock()
	defer e.mu.Unlock()
	base := e.baseURL
	if base == "" {
		base = fallbackBase
	}
	path := "/throttledthirdparty/01.00/"
	if p.HTTPS {
		path = "/unthrottledthirdparty/01.00/"
	}
	e.seq++
	c := &channel{
		Channel:   Channel{Token: tok, URI: base + path + tok, Behaviour: behaviour, Name: name, HTTPS: p.HTTPS},
		params:    p,
		seq:       e.seq,
		primary:   newTile(),
		secondary: make(map[string]*tile),
	}
	e.channels[tok] = c
	e.changedLocked()
	e.log.Info("channel created", "channel", name, "behaviour", behaviour, "token", tok)
	return c.Channel, nil
}

// SetBehaviour switches a channel's behaviour (and params, when given).
func (e *Emulator) SetBehaviour(token, behaviour string, params ...Params) error {
	if !validBehaviour(behaviour) {
		return fmt.Errorf("set behaviour: unknown behaviour %q (want %s)", behaviour, orList(phoneBehaviours))
	}
	if len(params) > 0 {
		if err := checkParams(params[0]); err != nil {
			return fmt.Errorf("set behaviour: %w", err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.channels[token]
	if !ok {
		return ErrUnknownChannel
	}
	c.Behaviour = behaviour
	if len(params) > 0 {
		https := c.params.HTTPS // the URI cannot change
		c.params = params[0]
		c.params.HTTPS = https
	}
	c.qfSent = 0
	e.changedLocked()
	e.log.Info("channel behaviour changed", "channel", c.Name, "behaviour", behaviour)
	return nil
}

// Expire switches a channel to expired, as when the app uninstalls.
func (e *Emulator) Expire(token string) error { return e.SetBehaviour(token, Expired) }

// Channel returns a snapshot of one channel.
func (e *Emulator) Channel(token string) (ChannelState, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.channels[token]
	if !ok {
		return ChannelState{}, false
	}
	return e.snapshotLocked(c), true
}

// Channels returns snapshots of all channels in creation order.
func (e *Emulator) Channels() []ChannelState {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]ChannelState, 0, len(e.channels))
	for _, c := range e.sortedLocked() {
		out = append(out, e.snapshotLocked(c))
	}
	return out
}

func (e *Emulator) sortedLocked() []*channel {
	cs := make([]*channel, 0, len(e.channels))
	for _, c := range e.channels {
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].seq < cs[j].seq })
	return cs
}

func utcDay(t time.Time) int64 {
	s := t.Unix()
	d := s / 86400
	if s < 0 && s%86400 != 0 {
		d--
	}
	return d
}

func (e *Emulator) snapshotLocked(c *channel) ChannelState {
	s := ChannelState{
		Channel:   c.Channel,
		Params:    c.params,
		Counts:    c.counts,
		Tile:      c.primary.state(),
		Secondary: make(map[string]TileState, len(c.secondary)),
		Toasts:    reversed(c.toasts),
		Raw:       reversed(c.raw),
		Rejected:  reversed(c.rejected),
	}
	if utcDay(e.now()) == c.day {
		s.PushesToday = c.today
	}
	for id, t := range c.secondary {
		s.Secondary[id] = t.state()
	}
	return s
}

func reversed[T any](in []T) []T {
	out := make([]T, len(in))
	for i, v := range in {
		out[len(in)-1-i] = v
	}
	return out
}

// state groups the fields the way the page shows them.
func (t *tile) state() TileState {
	s := TileState{Kind: t.kind, Count: t.count, Badge: t.count > 0, Updated: t.updated,
		Front: map[string]string{}, Back: map[string]string{}, Wide: map[string]string{}}
	for f := field(0); f < nFields; f++ {
		v := t.fields[f]
		if v == "" || f == fCount {
			continue
		}
		switch f {
		case fBackBackgroundImage, fBackTitle, fBackContent:
			s.Back[f.String()] = v
		case fWideBackgroundImage, fWideBackContent, fWideBackBackgroundImage, fWideContent1, fWideContent2, fWideContent3:
			s.Wide[f.String()] = v
		default:
			s.Front[f.String()] = v
		}
	}
	return s
}

// apply merges a tile update the way the phone does: absent elements keep
// their value, Action="Clear" empties one, and Count 0 hides the badge.
func (t *tile) apply(p *push, now time.Time) {
	switch {
	case p.template != "":
		t.kind = p.template
	case t.kind == "":
		t.kind = "Tile"
	}
	for f := field(0); f < nFields; f++ {
		op := p.ops[f]
		if !op.set {
			continue
		}
		if f == fCount {
			if op.clear {
				t.count = 0
			} else {
				t.count = p.count
			}
			continue
		}
		t.fields[f] = op.value // "" when cleared
	}
	t.updated = now
}

// changedLocked wakes every live-update stream without blocking.
func (e *Emulator) changedLocked() {
	e.version++
	for ch := range e.subs {
		select {
		case ch <- struct{}{}:
		default: // already pending: updates coalesce
		}
	}
}

func (e *Emulator) subscribe() (chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	e.mu.Lock()
	e.subs[ch] = struct{}{}
	e.mu.Unlock()
	return ch, func() {
		e.mu.Lock()
		delete(e.subs, ch)
		e.mu.Unlock()
	}
}

// outcome is one answer of the emulated MPNS.
type outcome struct {
	status                       int
	notification, subscr, device string
}

// refuse answers a refused push, logs it and records why.
func (e *Emulator) refuse(w http.ResponseWriter, c *channel, status int, reason string) {
	w.Header().Set("X-Emulator-Reason", headerSafe(reason))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(reason + "\n"))
	name := ""
	if c != nil {
		name = c.Name
	}
	e.log.Warn("push rejected", "channel", name, "status", status, "reason", reason)
	if c == nil {
		return
	}
	e.mu.Lock()
	c.counts.Total++
	c.counts.Rejected++
	c.rejected = appendCapped(c.rejected, Rejection{Time: e.now(), Status: status, Reason: reason}, maxRejected)
	e.changedLocked()
	e.mu.Unlock()
}

// headerSafe keeps a reason usable as a header value.
func headerSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	if len(b) > 300 {
		b = b[:300]
	}
	return string(b)
}

func appendCapped[T any](s []T, v T, limit int) []T {
	if len(s) >= limit {
		copy(s, s[1:])
		s = s[:len(s)-1]
	}
	return append(s, v)
}

// servePush is the MPNS endpoint: validate like MPNS and the phone, then
// answer as the channel's behaviour says.
func (e *Emulator) servePush(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	e.mu.Lock()
	c := e.channels[token]
	e.mu.Unlock()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		e.refuse(w, c, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed, MPNS takes POST only", r.Method))
		return
	}
	if c == nil {
		h := w.Header()
		h.Set("X-SubscriptionStatus", "Expired")
		h.Set("X-NotificationStatus", "Dropped")
		w.WriteHeader(http.StatusNotFound)
		return
	}

	kind, class, err := checkHeaders(r)
	if err != nil {
		e.refuseErr(w, c, err)
		return
	}
	buf := e.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer e.bufs.Put(buf)
	if err := readBody(r, kind, buf); err != nil {
		e.refuseErr(w, c, err)
		return
	}
	var p push
	p.class = class
	if err := parsePayload(kind, buf.Bytes(), &p); err != nil {
		e.refuseErr(w, c, err)
		return
	}

	e.mu.Lock()
	behaviour, slow := c.Behaviour, c.params.SlowMS
	e.mu.Unlock()
	if behaviour == Slow {
		d := DefaultSlow
		if slow > 0 {
			d = time.Duration(slow) * time.Millisecond
		}
		if !sleepCtx(r.Context(), d) {
			return // the sender gave up; nothing was delivered
		}
	}

	o := e.deliver(c, &p)
	h := w.Header()
	if o.notification != "" {
		h.Set("X-NotificationStatus", o.notification)
	}
	if o.subscr != "" {
		h.Set("X-SubscriptionStatus", o.subscr)
	}
	if o.device != "" {
		h.Set("X-DeviceConnectionStatus", o.device)
	}
	w.WriteHeader(o.status)
}

func (e *Emulator) refuseErr(w http.ResponseWriter, c *channel, err error) {
	var re *rejectError
	if errors.As(err, &re) {
		e.refuse(w, c, re.status, re.reason)
		return
	}
	// Reading the body failed: the sender went away mid-request.
	e.log.Warn("push read failed", "channel", c.Name, "err", err)
	http.Error(w, "read body failed", http.StatusBadRequest)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// deliver decides the answer for a valid push and updates the phone.
func (e *Emulator) deliver(c *channel, p *push) outcome {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	c.counts.Total++
	defer e.changedLocked()

	switch c.Behaviour {
	case Expired:
		c.counts.Expired++
		return outcome{http.StatusNotFound, "Dropped", "Expired", "Disconnected"}
	case Inactive:
		c.counts.Inactive++
		return outcome{http.StatusPreconditionFailed, "Dropped", "", "InActive"}
	}
	if day := utcDay(now); day != c.day {
		c.day, c.today = day, 0
	}
	if !c.HTTPS && c.today >= DailyCap {
		c.counts.Throttled++
		return outcome{http.StatusNotAcceptable, "Dropped", "Active", "Connected"}
	}
	switch c.Behaviour {
	case QueueFull:
		n := c.params.QueueFullN
		if n == 0 {
			n = DefaultQueueFullN
		}
		if c.qfSent < n {
			c.qfSent++
			c.today++
			c.counts.QueueFull++
			return outcome{http.StatusOK, "QueueFull", "Active", "Connected"}
		}
	case Suppressed:
		c.today++
		c.counts.Suppressed++
		return outcome{http.StatusOK, "Suppressed", "Active", "Connected"}
	case Flaky:
		prob := c.params.FlakyP
		if prob == 0 {
			prob = DefaultFlakyP
		}
		if e.rnd.Float64() < prob {
			c.counts.Unavailable++
			return outcome{status: http.StatusServiceUnavailable}
		}
	}
	c.today++
	c.counts.Received++
	switch p.kind {
	case kindToast:
		c.toasts = appendCapped(c.toasts, ToastRecord{Time: now, Text1: p.text1, Text2: p.text2, Param: p.param, Sound: p.sound, Silent: p.silent}, maxToasts)
	case kindTile:
		t := c.primary
		if p.id != "" {
			if t = c.secondary[p.id]; t == nil {
				t = newTile()
				c.secondary[p.id] = t
			}
		}
		t.apply(p, now)
	case kindRaw:
		c.raw = appendCapped(c.raw, RawRecord{Time: now, Class: p.class, Body: string(p.raw)}, maxRaw)
	}
	return outcome{http.StatusOK, "Received", "Active", "Connected"}
}
