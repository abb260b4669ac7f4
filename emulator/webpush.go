package emulator

// The emulator also plays a Web Push service (RFC 8030) and the browsers
// behind it. An emulated browser is created with POST /channels
// {"transport":"webpush"} and gets a full subscription back, as
// PushSubscription.toJSON() gives it: the endpoint http://<emulator>/webpush/{id}
// and keys the emulator made and keeps (the private key never leaves it).
//
// A push to the endpoint is checked the way push services and browsers
// check it, with code of the emulator's own (it never imports notify):
//
//   - method POST (405), a known subscription (404);
//   - a TTL header, whole seconds (400), a valid Urgency and Topic (400);
//   - a body of at most 4,096 bytes (413), Content-Encoding aes128gcm (400);
//   - VAPID (RFC 8292): "Authorization: vapid t=JWT, k=KEY" (401 when
//     missing or malformed); the JWT ES256-signed by k, aud the endpoint's
//     origin, exp in the future and at most 24 h ahead, sub a mailto: or
//     https: URI; k the browser's applicationServerKey when the browser was
//     created with one (403 otherwise, as Apple's BadJwtToken);
//   - the body decrypts with the browser's private key (RFC 8291), and a
//     plaintext in the shipped worker's JSON ({"kind":"toast"|"tile",…})
//     has the right member types (400: a real service cannot see this and
//     would accept the push, but the browser would drop it; the emulator
//     makes the sender's mistake visible instead).
//
// Then the browser's behaviour decides: healthy delivers at once (201
// with Location); offline holds the message (201) until the browser goes
// online again, drops it when its TTL runs out, and a newer message with
// the same Topic replaces a held one; unsubscribed answers 410, expired
// 404, ratelimited 429 with Retry-After, flaky 503 with probability p,
// slow waits first. A delivered toast becomes a notification (one with
// the same tag replaces it, as in a browser); a tile sets the app badge
// from its count and the latest tile content; anything else is data.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TransportWebPush is the "transport" of POST /channels that creates an
// emulated browser.
const TransportWebPush = "webpush"

// Behaviours of an emulated browser besides Healthy, Expired, Flaky and
// Slow.
const (
	Offline      = "offline"      // 201; messages held until the browser is online again
	Unsubscribed = "unsubscribed" // 410 Gone: the user revoked the permission
	RateLimited  = "ratelimited"  // 429 Too Many Requests with Retry-After
)

// Web Push limits.
const (
	// MaxWebPushBody is the largest body a push service must accept
	// (RFC 8030 §7.2); the emulator accepts no more.
	MaxWebPushBody = 4096
	// MaxVAPIDAhead is the latest exp a VAPID token may have (RFC 8292 §2).
	MaxVAPIDAhead = 24 * time.Hour
	// DefaultRetryAfter is the Retry-After of a ratelimited browser.
	DefaultRetryAfter = 30
	// maxHeld bounds the messages an offline browser has waiting.
	maxHeld = 100
)

// BrowserParams tune a browser's behaviour. Zero fields take the defaults.
type BrowserParams struct {
	FlakyP      float64 `json:"flaky_p,omitempty"`
	SlowMS      int     `json:"slow_ms,omitempty"`
	RetryAfterS int     `json:"retry_after_s,omitempty"`
	// ApplicationServerKey is the VAPID public key (base64url) the page
	// subscribed with (pushManager.subscribe's applicationServerKey):
	// pushes signed with another key are refused with 403. "" accepts any.
	ApplicationServerKey string `json:"application_server_key,omitempty"`
}

// webPushRequest holds the members POST /channels and
// /channels/{token}/behaviour take for browsers only (embedded in
// channelRequest, whose transport is "webpush").
type webPushRequest struct {
	RetryAfterS          int    `json:"retry_after_s"`
	ApplicationServerKey string `json:"application_server_key"`
}

// BrowserSubscription is the subscription as PushSubscription.toJSON()
// gives it.
type BrowserSubscription struct {
	Endpoint       string `json:"endpoint"`
	ExpirationTime *int64 `json:"expirationTime"`
	Keys           struct {
		P256DH string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

// Browser identifies one emulated browser.
type Browser struct {
	Token        string              `json:"token"`
	Name         string              `json:"name"`
	Behaviour    string              `json:"behaviour"`
	Transport    string              `json:"transport"` // TransportWebPush
	Subscription BrowserSubscription `json:"subscription"`
}

// BrowserCounts are a browser's push outcomes.
type BrowserCounts struct {
	Total        int `json:"total"`
	Delivered    int `json:"delivered"`    // shown, badge set or data handed to the worker
	Held         int `json:"held"`         // accepted while offline
	Flushed      int `json:"flushed"`      // held messages delivered once back online (also in Delivered)
	Replaced     int `json:"replaced"`     // held messages a newer one with the same Topic replaced
	Dropped      int `json:"dropped"`      // held messages whose TTL ran out
	Unsubscribed int `json:"unsubscribed"` // 410
	Expired      int `json:"expired"`      // 404
	RateLimited  int `json:"ratelimited"`  // 429
	Unavailable  int `json:"unavailable"`  // 503
	Rejected     int `json:"rejected"`     // 400 401 403 405 413
}

// WebNotification is a notification the browser shows.
type WebNotification struct {
	Time  time.Time `json:"time"`
	Title string    `json:"title"`
	Body  string    `json:"body,omitempty"`
	URL   string    `json:"url,omitempty"`
	Icon  string    `json:"icon,omitempty"`
	Tag   string    `json:"tag,omitempty"`
}

// WebTile is the latest tile content the worker stored for the app.
type WebTile struct {
	Title   string    `json:"title,omitempty"`
	Body    string    `json:"body,omitempty"`
	Image   string    `json:"image,omitempty"`
	URL     string    `json:"url,omitempty"`
	Updated time.Time `json:"updated"`
}

// WebPushRecord is what the service saw of the last accepted push.
type WebPushRecord struct {
	Time      time.Time `json:"time"`
	TTL       int       `json:"ttl"`
	Urgency   string    `json:"urgency"` // "normal" when absent
	Topic     string    `json:"topic,omitempty"`
	Subject   string    `json:"sub"`
	Audience  string    `json:"aud"`
	Expires   time.Time `json:"exp"`
	BodyBytes int       `json:"body_bytes"`
	Plaintext string    `json:"plaintext"`
}

// HeldMessage is a message waiting for an offline browser.
type HeldMessage struct {
	Received time.Time `json:"received"`
	TTL      int       `json:"ttl"`
	Topic    string    `json:"topic,omitempty"`
	Urgency  string    `json:"urgency"`
	Kind     string    `json:"kind"` // toast, tile or data
}

// BrowserState is a snapshot of a browser.
type BrowserState struct {
	Browser
	Params        BrowserParams     `json:"params"`
	Counts        BrowserCounts     `json:"counts"`
	Badge         int               `json:"badge"`         // the app badge; -1 = never set, 0 = cleared
	Tile          *WebTile          `json:"tile"`          // nil until a tile with content
	Notifications []WebNotification `json:"notifications"` // latest first
	Data          []RawRecord       `json:"data"`          // latest first
	Held          []HeldMessage     `json:"held"`          // oldest first
	Last          *WebPushRecord    `json:"last_push"`
	Rejected      []Rejection       `json:"rejected"` // latest first
}

// webMessage is one accepted push, as the browser will get it.
type webMessage struct {
	received time.Time
	ttl      int
	topic    string
	urgency  string
	payload  webPayload
}

// webPayload is a decrypted plaintext as the shipped worker reads it.
type webPayload struct {
	kind  string // "toast", "tile" or "data"
	toast WebNotification
	tile  WebTile
	count *int
	raw   string
}

type browser struct {
	Browser
	params   BrowserParams
	priv     *ecdh.PrivateKey
	auth     []byte
	origin   string // the endpoint's origin: a token's aud
	seq      int
	msgSeq   int
	counts   BrowserCounts
	badge    int
	tile     *WebTile
	notes    []WebNotification // oldest first
	data     []RawRecord
	held     []webMessage
	last     *WebPushRecord
	rejected []Rejection
}

func checkBrowserParams(p BrowserParams) error {
	switch {
	case p.FlakyP < 0 || p.FlakyP > 1:
		return errors.New("flaky_p must be within 0..1")
	case p.SlowMS < 0 || p.SlowMS > 600_000:
		return errors.New("slow_ms must be within 0..600000")
	case p.RetryAfterS < 0 || p.RetryAfterS > 86400:
		return errors.New("retry_after_s must be within 0..86400")
	}
	if p.ApplicationServerKey != "" {
		if _, err := decodePoint(p.ApplicationServerKey); err != nil {
			return fmt.Errorf("application_server_key: %w", err)
		}
	}
	return nil
}

// decodePoint decodes a base64url (padded or not) uncompressed P-256 point.
func decodePoint(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, errors.New("not base64url")
	}
	if _, err := ecdh.P256().NewPublicKey(b); err != nil {
		return nil, errors.New("not an uncompressed P-256 point")
	}
	return b, nil
}

// CreateBrowser registers an emulated browser with a fresh subscription:
// a P-256 key pair and an authentication secret the emulator keeps.
func (e *Emulator) CreateBrowser(behaviour, name string, params ...BrowserParams) (Browser, error) {
	return e.createBrowser(behaviour, name, "", params...)
}

func (e *Emulator) createBrowser(behaviour, name, fallbackBase string, params ...BrowserParams) (Browser, error) {
	if behaviour == "" {
		behaviour = Healthy
	}
	if !validBrowserBehaviour(behaviour) {
		return Browser{}, fmt.Errorf("create browser: unknown behaviour %q (want %s)", behaviour, orList(browserBehaviours))
	}
	var p BrowserParams
	if len(params) > 0 {
		p = params[0]
	}
	if err := checkBrowserParams(p); err != nil {
		return Browser{}, fmt.Errorf("create browser: %w", err)
	}
	if name == "" {
		name = "browser " + behaviour
	}
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return Browser{}, fmt.Errorf("create browser: %w", err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	tok := newToken()

	e.mu.Lock()
	defer e.mu.Unlock()
	base := e.baseURL
	if base == "" {
		base = fallbackBase
	}
	endpoint := base + "/webpush/" + tok
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return Browser{}, fmt.Errorf("create browser: no base URL to build the endpoint from (%q)", base)
	}
	b := &browser{
		Browser: Browser{Token: tok, Name: name, Behaviour: behaviour, Transport: TransportWebPush},
		params:  p,
		priv:    priv,
		auth:    auth,
		origin:  u.Scheme + "://" + u.Host,
		badge:   -1,
	}
	b.Subscription.Endpoint = endpoint
	b.Subscription.Keys.P256DH = base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes())
	b.Subscription.Keys.Auth = base64.RawURLEncoding.EncodeToString(auth)
	e.seq++
	b.seq = e.seq
	if e.browsers == nil {
		e.browsers = make(map[string]*browser)
	}
	e.browsers[tok] = b
	e.changedLocked()
	e.log.Info("browser created", "channel", name, "behaviour", behaviour, "token", tok)
	return b.Browser, nil
}

// SetBrowserBehaviour switches a browser's behaviour (and params, when
// given). Leaving offline delivers the held messages whose TTL has not
// run out, oldest first.
func (e *Emulator) SetBrowserBehaviour(token, behaviour string, params ...BrowserParams) error {
	if !validBrowserBehaviour(behaviour) {
		return fmt.Errorf("set behaviour: unknown browser behaviour %q (want %s)", behaviour, orList(browserBehaviours))
	}
	if len(params) > 0 {
		if err := checkBrowserParams(params[0]); err != nil {
			return fmt.Errorf("set behaviour: %w", err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	b, ok := e.browsers[token]
	if !ok {
		return ErrUnknownChannel
	}
	b.Behaviour = behaviour
	if len(params) > 0 {
		b.params = params[0]
	}
	if behaviour != Offline {
		e.flushLocked(b)
	}
	e.changedLocked()
	e.log.Info("browser behaviour changed", "channel", b.Name, "behaviour", behaviour)
	return nil
}

// flushLocked hands an online browser its held messages.
func (e *Emulator) flushLocked(b *browser) {
	now := e.now()
	for _, m := range b.held {
		if expired(m, now) {
			b.counts.Dropped++
			continue
		}
		b.applyLocked(m.payload, now)
		b.counts.Flushed++
	}
	b.held = nil
}

func expired(m webMessage, now time.Time) bool {
	return !now.Before(m.received.Add(time.Duration(m.ttl) * time.Second))
}

// Browser returns a snapshot of one browser.
func (e *Emulator) Browser(token string) (BrowserState, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	b, ok := e.browsers[token]
	if !ok {
		return BrowserState{}, false
	}
	return e.browserStateLocked(b), true
}

// Browsers returns snapshots of all browsers in creation order.
func (e *Emulator) Browsers() []BrowserState {
	e.mu.Lock()
	defer e.mu.Unlock()
	bs := make([]*browser, 0, len(e.browsers))
	for _, b := range e.browsers {
		bs = append(bs, b)
	}
	for i := 1; i < len(bs); i++ { // few browsers: insertion sort by creation
		for j := i; j > 0 && bs[j].seq < bs[j-1].seq; j-- {
			bs[j], bs[j-1] = bs[j-1], bs[j]
		}
	}
	out := make([]BrowserState, 0, len(bs))
	for _, b := range bs {
		out = append(out, e.browserStateLocked(b))
	}
	return out
}

func (e *Emulator) browserStateLocked(b *browser) BrowserState {
	s := BrowserState{
		Browser:       b.Browser,
		Params:        b.params,
		Counts:        b.counts,
		Badge:         b.badge,
		Notifications: reversed(b.notes),
		Data:          reversed(b.data),
		Held:          make([]HeldMessage, 0, len(b.held)),
		Rejected:      reversed(b.rejected),
	}
	if b.tile != nil {
		t := *b.tile
		s.Tile = &t
	}
	if b.last != nil {
		l := *b.last
		s.Last = &l
	}
	now := e.now()
	for _, m := range b.held {
		if !expired(m, now) {
			s.Held = append(s.Held, HeldMessage{Received: m.received, TTL: m.ttl, Topic: m.topic, Urgency: m.urgency, Kind: m.payload.kind})
		}
	}
	return s
}

// applyLocked is the browser's service worker handling one message.
func (b *browser) applyLocked(p webPayload, now time.Time) {
	b.counts.Delivered++
	switch p.kind {
	case "toast":
		n := p.toast
		n.Time = now
		if n.Tag != "" {
			for i := range b.notes {
				if b.notes[i].Tag == n.Tag {
					b.notes = append(b.notes[:i], b.notes[i+1:]...)
					break
				}
			}
		}
		b.notes = appendCapped(b.notes, n, maxToasts)
	case "tile":
		if p.count != nil {
			b.badge = *p.count
		}
		if t := p.tile; t.Title != "" || t.Body != "" || t.Image != "" || t.URL != "" {
			t.Updated = now
			b.tile = &t
		}
	default:
		b.data = appendCapped(b.data, RawRecord{Time: now, Body: p.raw}, maxRaw)
	}
}

// webPushRoutes registers the push endpoint and the browsers' listing.
func (e *Emulator) webPushRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/webpush/{token}", e.serveWebPush) // any method: 405 comes from here
	mux.HandleFunc("GET /browsers", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, e.Browsers())
	})
}

// serveCreateBrowser answers POST /channels {"transport":"webpush",…}.
func (e *Emulator) serveCreateBrowser(w http.ResponseWriter, r *http.Request, req channelRequest) {
	if req.QueueFullN != 0 || req.HTTPS {
		apiError(w, http.StatusBadRequest, errors.New("queuefull_n and https are MPNS channel params; a browser takes flaky_p, slow_ms, retry_after_s and application_server_key"))
		return
	}
	b, err := e.createBrowser(req.Behaviour, req.Name, "http://"+r.Host, req.browserParams())
	if err != nil {
		apiError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusCreated, b)
}

func (req channelRequest) browserParams() BrowserParams {
	return BrowserParams{FlakyP: req.FlakyP, SlowMS: req.SlowMS, RetryAfterS: req.RetryAfterS, ApplicationServerKey: req.ApplicationServerKey}
}

// isBrowser reports whether token names a browser.
func (e *Emulator) isBrowser(token string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.browsers[token]
	return ok
}

// serveBrowserBehaviour answers POST /channels/{token}/behaviour (and
// /expire) for a browser.
func (e *Emulator) serveBrowserBehaviour(w http.ResponseWriter, token string, req channelRequest) {
	var params []BrowserParams
	if p := req.browserParams(); p != (BrowserParams{}) {
		params = append(params, p)
	}
	if err := e.SetBrowserBehaviour(token, req.Behaviour, params...); err != nil {
		apiError(w, http.StatusBadRequest, err)
		return
	}
	s, _ := e.Browser(token)
	writeJSON(w, http.StatusOK, s)
}

// webPushError is a refused push: autopush-like JSON with the status.
type webPushError struct {
	Code   int    `json:"code"`
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

// refuseWebPush answers a refused push and records why.
func (e *Emulator) refuseWebPush(w http.ResponseWriter, b *browser, status int, reason string) {
	w.Header().Set("X-Emulator-Reason", headerSafe(reason))
	writeJSON(w, status, webPushError{Code: status, Error: http.StatusText(status), Reason: reason})
	name := ""
	if b != nil {
		name = b.Name
	}
	e.log.Warn("push rejected", "channel", name, "status", status, "reason", reason)
	if b == nil {
		return
	}
	e.mu.Lock()
	b.counts.Total++
	b.counts.Rejected++
	b.rejected = appendCapped(b.rejected, Rejection{Time: e.now(), Status: status, Reason: reason}, maxRejected)
	e.changedLocked()
	e.mu.Unlock()
}

// serveWebPush is the push endpoint of one subscription.
func (e *Emulator) serveWebPush(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	b := e.browsers[r.PathValue("token")]
	e.mu.Unlock()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		e.refuseWebPush(w, b, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: a push is a POST", r.Method))
		return
	}
	if b == nil {
		e.refuseWebPush(w, nil, http.StatusNotFound, "no such subscription")
		return
	}
	msg, status, reason := e.checkWebPush(r, b)
	if status != 0 {
		e.refuseWebPush(w, b, status, reason)
		return
	}

	e.mu.Lock()
	behaviour, slow := b.Behaviour, b.params.SlowMS
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

	e.mu.Lock()
	defer e.mu.Unlock()
	defer e.changedLocked()
	now := e.now()
	b.counts.Total++
	switch b.Behaviour {
	case Unsubscribed:
		b.counts.Unsubscribed++
		writeJSON(w, http.StatusGone, webPushError{Code: http.StatusGone, Error: "Gone", Reason: "push subscription has unsubscribed or expired"})
		return
	case Expired:
		b.counts.Expired++
		writeJSON(w, http.StatusNotFound, webPushError{Code: http.StatusNotFound, Error: "Not Found", Reason: "subscription expired"})
		return
	case RateLimited:
		b.counts.RateLimited++
		after := b.params.RetryAfterS
		if after == 0 {
			after = DefaultRetryAfter
		}
		w.Header().Set("Retry-After", strconv.Itoa(after))
		writeJSON(w, http.StatusTooManyRequests, webPushError{Code: http.StatusTooManyRequests, Error: "Too Many Requests", Reason: "rate limited"})
		return
	case Flaky:
		p := b.params.FlakyP
		if p == 0 {
			p = DefaultFlakyP
		}
		if e.rnd.Float64() < p {
			b.counts.Unavailable++
			writeJSON(w, http.StatusServiceUnavailable, webPushError{Code: http.StatusServiceUnavailable, Error: "Service Unavailable", Reason: "try again"})
			return
		}
	}
	b.msgSeq++
	if b.Behaviour == Offline {
		b.counts.Held++
		e.holdLocked(b, msg, now)
	} else {
		b.applyLocked(msg.payload, now)
	}
	h := w.Header()
	h.Set("Location", fmt.Sprintf("%s/webpush/%s/messages/%d", b.origin, b.Token, b.msgSeq))
	h.Set("TTL", strconv.Itoa(msg.ttl))
	w.WriteHeader(http.StatusCreated)
}

// holdLocked keeps msg for an offline browser: messages whose TTL ran out
// are dropped, a held message with the same Topic is replaced, and a TTL
// of 0 is never held (RFC 8030 §5.2: deliver now or not at all).
func (e *Emulator) holdLocked(b *browser, msg webMessage, now time.Time) {
	kept := b.held[:0]
	for _, m := range b.held {
		switch {
		case expired(m, now):
			b.counts.Dropped++
		case msg.topic != "" && m.topic == msg.topic:
			b.counts.Replaced++
		default:
			kept = append(kept, m)
		}
	}
	b.held = kept
	if msg.ttl == 0 {
		b.counts.Dropped++
		return
	}
	if len(b.held) >= maxHeld {
		b.held = b.held[1:]
		b.counts.Dropped++
	}
	b.held = append(b.held, msg)
}

// checkWebPush validates one push and decrypts it. A non-zero status is a
// refusal with its reason. On success b.last records what was seen (the
// caller sets its time).
func (e *Emulator) checkWebPush(r *http.Request, b *browser) (webMessage, int, string) {
	var msg webMessage
	ttls := r.Header.Values("TTL")
	if len(ttls) == 0 {
		return msg, http.StatusBadRequest, "missing TTL header (RFC 8030 §5.2)"
	}
	ttl, err := strconv.ParseUint(strings.TrimSpace(ttls[0]), 10, 31)
	if len(ttls) > 1 || err != nil {
		return msg, http.StatusBadRequest, fmt.Sprintf("TTL %q: want one header of whole seconds", ttls)
	}
	msg.ttl = int(ttl)
	msg.urgency = "normal"
	if u := r.Header.Values("Urgency"); len(u) > 0 {
		switch u[0] {
		case "very-low", "low", "normal", "high":
			msg.urgency = u[0]
		default:
			return msg, http.StatusBadRequest, fmt.Sprintf("Urgency %q: want very-low, low, normal or high", u[0])
		}
	}
	if t := r.Header.Values("Topic"); len(t) > 0 {
		if !validTopic(t[0]) {
			return msg, http.StatusBadRequest, fmt.Sprintf("Topic %q: want 1 to 32 characters of the URL-safe base64 alphabet", t[0])
		}
		msg.topic = t[0]
	}
	if r.ContentLength > MaxWebPushBody {
		return msg, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes, more than %d", r.ContentLength, MaxWebPushBody)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxWebPushBody+1))
	if err != nil {
		return msg, http.StatusBadRequest, "reading the body: " + err.Error()
	}
	if len(body) > MaxWebPushBody {
		return msg, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of more than %d bytes", MaxWebPushBody)
	}

	e.mu.Lock()
	origin, appKey := b.origin, b.params.ApplicationServerKey
	e.mu.Unlock()
	claims, k, status, reason := e.checkVAPID(r.Header.Values("Authorization"), origin)
	if status != 0 {
		return msg, status, reason
	}
	if appKey != "" && strings.TrimRight(appKey, "=") != k {
		return msg, http.StatusForbidden, "VAPID key is not the applicationServerKey this subscription was made with"
	}

	plain := ""
	if len(body) == 0 {
		msg.payload = webPayload{kind: "data"}
	} else {
		if ce := r.Header.Get("Content-Encoding"); ce != "aes128gcm" {
			return msg, http.StatusBadRequest, fmt.Sprintf("Content-Encoding %q: want aes128gcm", ce)
		}
		p, err := decryptWebPush(body, b.priv, b.auth)
		if err != nil {
			return msg, http.StatusBadRequest, "the browser cannot decrypt the message: " + err.Error()
		}
		plain = string(p)
		if msg.payload, err = parseWebPayload(p); err != nil {
			return msg, http.StatusBadRequest, "payload: " + err.Error()
		}
	}
	e.mu.Lock()
	b.last = &WebPushRecord{Time: e.now(), TTL: msg.ttl, Urgency: msg.urgency, Topic: msg.topic, Subject: claims.sub, Audience: claims.aud,
		Expires: claims.exp, BodyBytes: len(body), Plaintext: plain}
	e.mu.Unlock()
	msg.received = e.now()
	return msg, 0, ""
}

func validTopic(t string) bool {
	if t == "" || len(t) > 32 {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

type vapidClaims struct {
	aud, sub string
	exp      time.Time
}

// checkVAPID verifies "Authorization: vapid t=JWT, k=KEY" (RFC 8292 §3):
// 401 when it is missing or not that scheme, 403 when the token is not
// ES256-signed by k or its claims are wrong. It returns k as sent.
func (e *Emulator) checkVAPID(values []string, origin string) (vapidClaims, string, int, string) {
	var c vapidClaims
	if len(values) != 1 {
		return c, "", http.StatusUnauthorized, "missing Authorization: vapid t=…, k=… (RFC 8292)"
	}
	scheme, params, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !strings.EqualFold(scheme, "vapid") {
		return c, "", http.StatusUnauthorized, fmt.Sprintf("Authorization scheme %q: want vapid (RFC 8292)", scheme)
	}
	var tok, k string
	for _, p := range strings.Split(params, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "t":
			tok = strings.TrimSpace(value)
		case "k":
			k = strings.TrimRight(strings.TrimSpace(value), "=")
		}
	}
	if tok == "" || k == "" {
		return c, "", http.StatusUnauthorized, "Authorization: vapid needs t= (the JWT) and k= (the public key)"
	}
	point, err := decodePoint(k)
	if err != nil {
		return c, "", http.StatusUnauthorized, "vapid k: " + err.Error()
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return c, "", http.StatusUnauthorized, "vapid k: " + err.Error()
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
	if err != nil {
		return c, "", http.StatusForbidden, "BadJwtToken: " + err.Error()
	}
	aud, _ := claims["aud"].(string)
	if aud != origin {
		return c, "", http.StatusForbidden, fmt.Sprintf("BadJwtToken: aud %q, want the endpoint's origin %q", claims["aud"], origin)
	}
	expNum, ok := claims["exp"].(float64)
	if !ok {
		return c, "", http.StatusForbidden, "BadJwtToken: exp missing or not a number"
	}
	exp := time.Unix(int64(expNum), 0)
	now := e.now()
	switch {
	case !exp.After(now):
		return c, "", http.StatusForbidden, fmt.Sprintf("ExpiredJwtToken: exp %s is past", exp.UTC().Format(time.RFC3339))
	case exp.Sub(now) > MaxVAPIDAhead:
		return c, "", http.StatusForbidden, fmt.Sprintf("BadJwtToken: exp %s ahead, more than 24 h", exp.Sub(now).Round(time.Second))
	}
	sub, _ := claims["sub"].(string)
	if low := strings.ToLower(sub); !(strings.HasPrefix(low, "mailto:") && strings.Contains(sub, "@") || strings.HasPrefix(low, "https://")) ||
		strings.HasPrefix(low, "mailto:mailto:") {
		return c, "", http.StatusForbidden, fmt.Sprintf("BadJwtToken: sub %q: want mailto:ADDRESS or an https: URL", sub)
	}
	return vapidClaims{aud: aud, sub: sub, exp: exp}, k, 0, ""
}

// decryptWebPush opens an aes128gcm push message (RFC 8188, RFC 8291)
// with the browser's key and secret: one record, padding removed.
func decryptWebPush(body []byte, priv *ecdh.PrivateKey, auth []byte) ([]byte, error) {
	const header = 16 + 4 + 1 + 65
	if len(body) < header+17 {
		return nil, fmt.Errorf("%d bytes, shorter than the aes128gcm header and one record", len(body))
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), body[20]
	if idlen != 65 {
		return nil, fmt.Errorf("key id of %d bytes: RFC 8291 puts the sender's 65-byte public key there", idlen)
	}
	if rs < 18 || uint64(len(body)-header) > uint64(rs) {
		return nil, fmt.Errorf("record size %d for %d bytes: a push message is one record", rs, len(body)-header)
	}
	senderKey := body[21:header]
	sender, err := ecdh.P256().NewPublicKey(senderKey)
	if err != nil {
		return nil, errors.New("the key id is not a P-256 public key")
	}
	secret, err := priv.ECDH(sender)
	if err != nil {
		return nil, err
	}
	info := append(append([]byte("WebPush: info\x00"), priv.PublicKey().Bytes()...), senderKey...)
	ikm, err := hkdf.Key(sha256.New, secret, auth, string(info), 32)
	if err != nil {
		return nil, err
	}
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	rec, err := gcm.Open(nil, nonce, body[header:], nil)
	if err != nil {
		return nil, errors.New("AES-GCM authentication failed: not encrypted for this subscription's keys")
	}
	end := len(rec) - 1
	for end >= 0 && rec[end] == 0 {
		end--
	}
	if end < 0 || rec[end] != 2 {
		return nil, errors.New("the record does not end in the last-record delimiter 0x02")
	}
	return rec[:end], nil
}

// parseWebPayload reads a plaintext as the shipped service worker does:
// a JSON object whose kind is toast or tile is checked member by member;
// anything else is data for a worker of the app's own.
func parseWebPayload(p []byte) (webPayload, error) {
	var probe struct {
		Kind *string `json:"kind"`
	}
	if json.Unmarshal(p, &probe) != nil || probe.Kind == nil || (*probe.Kind != "toast" && *probe.Kind != "tile") {
		return webPayload{kind: "data", raw: string(p)}, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(p, &m); err != nil {
		return webPayload{}, err
	}
	str := func(name string) (string, error) {
		raw, ok := m[name]
		if !ok {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%s: want a string, got %s", name, raw)
		}
		return s, nil
	}
	known := map[string][]string{
		"toast": {"kind", "title", "body", "url", "icon", "tag"},
		"tile":  {"kind", "count", "title", "body", "image", "url"},
	}[*probe.Kind]
	for name := range m {
		found := false
		for _, k := range known {
			found = found || k == name
		}
		if !found {
			return webPayload{}, fmt.Errorf("%s has no member %q (the worker reads %s)", *probe.Kind, name, strings.Join(known, ", "))
		}
	}
	out := webPayload{kind: *probe.Kind}
	var err error
	var fields map[string]*string
	if out.kind == "toast" {
		fields = map[string]*string{"title": &out.toast.Title, "body": &out.toast.Body, "url": &out.toast.URL, "icon": &out.toast.Icon, "tag": &out.toast.Tag}
	} else {
		fields = map[string]*string{"title": &out.tile.Title, "body": &out.tile.Body, "image": &out.tile.Image, "url": &out.tile.URL}
	}
	for name, dst := range fields {
		if *dst, err = str(name); err != nil {
			return webPayload{}, err
		}
	}
	if out.kind == "toast" && out.toast.Title == "" && out.toast.Body == "" {
		return webPayload{}, errors.New("a toast without title and body shows nothing")
	}
	if raw, ok := m["count"]; ok {
		n, err := strconv.Atoi(string(raw))
		if err != nil || n < 0 {
			return webPayload{}, fmt.Errorf("count: want an integer ≥ 0, got %s", raw)
		}
		out.count = &n
	}
	return out, nil
}
