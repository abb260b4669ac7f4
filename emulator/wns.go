package emulator

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The emulator plays WNS as well as MPNS (protocols.md §3): a token
// endpoint for each of the two OAuth flows, and a notify endpoint per
// emulated Windows device (POST /channels {"transport":"wns"}).

// Behaviours of an emulated Windows device, besides Healthy, Flaky and
// Slow, which it shares with the phones.
const (
	Revoked   = "revoked"   // 410: the channel expired
	Unknown   = "unknown"   // 404: WNS does not know the channel
	Throttled = "throttled" // the first N pushes throttled (406, 429 or 200 channelthrottled), then healthy
	WrongApp  = "wrongapp"  // 403: the channel belongs to another app
)

// TransportWNS names an emulated Windows device in POST /channels.
const TransportWNS = "wns"

// WNS token endpoint paths: the classic flow's, and the Entra ID flow's
// for any tenant (so that both URLs keep their shape under token_url).
const (
	WNSClassicTokenPath = "/accesstoken.srf"
	wnsEntraTokenPath   = "/{tenant}/oauth2/v2.0/token"
	wnsNotifyPath       = "/w/"
)

// WNSEntraTokenPath returns the Entra ID token path for tenant.
func WNSEntraTokenPath(tenant string) string { return "/" + tenant + "/oauth2/v2.0/token" }

// Defaults of the WNS side.
const (
	DefaultWNSTokenTTL      = 24 * time.Hour
	DefaultThrottleN        = 3
	DefaultContinueAfterSec = 5
	maxWNSTokens            = 10000 // issued tokens remembered; the oldest are forgotten
)

// WNSParams tune a Windows device's behaviour. Zero fields take defaults.
type WNSParams struct {
	// ThrottleN is how many pushes Throttled refuses before it heals
	// (default 3).
	ThrottleN int `json:"throttle_n,omitempty"`
	// ThrottleStatus is how: 406 (default), 429, or 200 with
	// X-WNS-Status: channelthrottled.
	ThrottleStatus int `json:"throttle_status,omitempty"`
	// ContinueAfter is the X-WNS-CONTINUE-AFTER seconds sent with it (default 5).
	ContinueAfter int     `json:"continue_after,omitempty"`
	FlakyP        float64 `json:"flaky_p,omitempty"`
	SlowMS        int     `json:"slow_ms,omitempty"`
}

func checkWNSParams(p WNSParams) error {
	switch {
	case p.ThrottleN < 0:
		return errors.New("throttle_n must be >= 0")
	case p.ThrottleStatus != 0 && p.ThrottleStatus != 200 && p.ThrottleStatus != 406 && p.ThrottleStatus != 429:
		return errors.New("throttle_status must be 200, 406 or 429")
	case p.ContinueAfter < 0 || p.ContinueAfter > 86400:
		return errors.New("continue_after must be within 0..86400")
	case p.FlakyP < 0 || p.FlakyP > 1:
		return errors.New("flaky_p must be within 0..1")
	case p.SlowMS < 0 || p.SlowMS > 600_000:
		return errors.New("slow_ms must be within 0..600000")
	}
	return nil
}

// WindowsDevice identifies one emulated Windows device and its channel.
type WindowsDevice struct {
	Token     string `json:"token"`
	URI       string `json:"uri"`
	Behaviour string `json:"behaviour"`
	Name      string `json:"name"`
	Transport string `json:"transport"` // always "wns"
}

// WNSCounts are a device's push outcomes.
type WNSCounts struct {
	Total        int `json:"total"`
	Received     int `json:"received"`
	Unauthorized int `json:"unauthorized"` // 401: token missing, unknown or expired
	Throttled    int `json:"throttled"`
	Revoked      int `json:"revoked"`
	Unknown      int `json:"unknown"`
	WrongApp     int `json:"wrong_app"`
	Unavailable  int `json:"unavailable"`
	Rejected     int `json:"rejected"` // 400, 405, 413
}

// WindowsBinding is one size of a live tile as the Start menu shows it.
type WindowsBinding struct {
	Template string   `json:"template"`
	Texts    []string `json:"texts,omitempty"`
	Image    string   `json:"image,omitempty"` // the background (or first) image
}

// WindowsTile is a device's live tile: one binding per size it was given.
type WindowsTile struct {
	DisplayName string                    `json:"display_name,omitempty"`
	Sizes       map[string]WindowsBinding `json:"sizes"` // small, medium, wide, large
	Tag         string                    `json:"tag,omitempty"`
	Updated     time.Time                 `json:"updated,omitzero"`
}

// WindowsToast is one toast in the device's Action Center.
type WindowsToast struct {
	Time     time.Time `json:"time"`
	Template string    `json:"template"`
	Texts    []string  `json:"texts"`
	Launch   string    `json:"launch,omitempty"`
	Scenario string    `json:"scenario,omitempty"`
	Audio    string    `json:"audio,omitempty"`
	Silent   bool      `json:"silent,omitempty"`
	AppLogo  string    `json:"app_logo,omitempty"`
	Hero     string    `json:"hero,omitempty"`
	TTL      int       `json:"ttl,omitempty"` // X-WNS-TTL, seconds
}

// WindowsState is a snapshot of a Windows device.
type WindowsState struct {
	WindowsDevice
	Params   WNSParams      `json:"params"`
	Counts   WNSCounts      `json:"counts"`
	Tile     WindowsTile    `json:"tile"`
	Badge    string         `json:"badge"`  // as shown: "" none, "7", "99+", a glyph name
	Toasts   []WindowsToast `json:"toasts"` // latest first
	Raw      []RawRecord    `json:"raw"`    // latest first
	Rejected []Rejection    `json:"rejected"`
}

type windowsDevice struct {
	WindowsDevice
	params    WNSParams
	seq       int
	counts    WNSCounts
	throttled int // throttled answers since the behaviour was set
	tile      WindowsTile
	badge     string
	toasts    []WindowsToast
	raw       []RawRecord
	rejected  []Rejection
}

// wnsState is the WNS side of an Emulator, guarded by Emulator.mu.
type wnsState struct {
	clientID string
	secret   []byte
	ttl      time.Duration

	devices  map[string]*windowsDevice
	tokens   map[string]time.Time // access token → expiry
	order    []string             // tokens in issue order, to forget the oldest
	requests int                  // token requests answered 200
}

func newWNSState(o Options) *wnsState {
	s := &wnsState{clientID: o.WNSClientID, secret: bytes.Clone(o.WNSClientSecret), ttl: o.WNSTokenTTL,
		devices: make(map[string]*windowsDevice), tokens: make(map[string]time.Time)}
	if s.ttl <= 0 {
		s.ttl = DefaultWNSTokenTTL
	}
	return s
}

// CreateWindowsDevice registers an emulated Windows device with the given
// behaviour; params, if given, tune it (only the first is used).
func (e *Emulator) CreateWindowsDevice(behaviour, name string, params ...WNSParams) (WindowsDevice, error) {
	return e.createWindowsDevice(behaviour, name, "", params...)
}

func (e *Emulator) createWindowsDevice(behaviour, name, fallbackBase string, params ...WNSParams) (WindowsDevice, error) {
	if behaviour == "" {
		behaviour = Healthy
	}
	if !validWNSBehaviour(behaviour) {
		return WindowsDevice{}, fmt.Errorf("create windows device: unknown behaviour %q (want %s)", behaviour, orList(windowsBehaviours))
	}
	var p WNSParams
	if len(params) > 0 {
		p = params[0]
	}
	if err := checkWNSParams(p); err != nil {
		return WindowsDevice{}, fmt.Errorf("create windows device: %w", err)
	}
	if name == "" {
		name = "windows " + behaviour
	}
	tok := newToken()
	e.mu.Lock()
	defer e.mu.Unlock()
	base := e.baseURL
	if base == "" {
		base = fallbackBase
	}
	e.seq++
	d := &windowsDevice{
		WindowsDevice: WindowsDevice{Token: tok, URI: base + wnsNotifyPath + "?token=" + tok, Behaviour: behaviour, Name: name, Transport: TransportWNS},
		params:        p,
		seq:           e.seq,
		tile:          WindowsTile{Sizes: map[string]WindowsBinding{}},
	}
	e.wns.devices[tok] = d
	e.changedLocked()
	e.log.Info("windows device created", "channel", name, "behaviour", behaviour, "token", tok)
	return d.WindowsDevice, nil
}

// SetWindowsBehaviour switches a device's behaviour (and params, when given).
func (e *Emulator) SetWindowsBehaviour(token, behaviour string, params ...WNSParams) error {
	if !validWNSBehaviour(behaviour) {
		return fmt.Errorf("set behaviour: unknown windows behaviour %q (want %s)", behaviour, orList(windowsBehaviours))
	}
	if len(params) > 0 {
		if err := checkWNSParams(params[0]); err != nil {
			return fmt.Errorf("set behaviour: %w", err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.wns.devices[token]
	if !ok {
		return ErrUnknownChannel
	}
	d.Behaviour = behaviour
	if len(params) > 0 {
		d.params = params[0]
	}
	d.throttled = 0
	e.changedLocked()
	e.log.Info("windows device behaviour changed", "channel", d.Name, "behaviour", behaviour)
	return nil
}

// WindowsDeviceState returns a snapshot of one Windows device.
func (e *Emulator) WindowsDeviceState(token string) (WindowsState, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.wns.devices[token]
	if !ok {
		return WindowsState{}, false
	}
	return d.snapshot(), true
}

// WindowsDevices returns snapshots of all Windows devices in creation order.
func (e *Emulator) WindowsDevices() []WindowsState {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]WindowsState, 0, len(e.wns.devices))
	for _, d := range e.wns.devices {
		out = append(out, d.snapshot())
	}
	for i := 1; i < len(out); i++ { // insertion sort by creation: few devices
		for j := i; j > 0 && e.wns.devices[out[j].Token].seq < e.wns.devices[out[j-1].Token].seq; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// WNSTokenRequests reports how many access tokens the token endpoint issued.
func (e *Emulator) WNSTokenRequests() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.wns.requests
}

// ExpireWNSTokens makes every access token issued so far expire now, as
// when WNS rotates its keys: the next push with one gets 401.
func (e *Emulator) ExpireWNSTokens() {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	for tok := range e.wns.tokens {
		e.wns.tokens[tok] = now
	}
	e.log.Info("wns access tokens expired", "count", len(e.wns.tokens))
}

func (d *windowsDevice) snapshot() WindowsState {
	s := WindowsState{
		WindowsDevice: d.WindowsDevice,
		Params:        d.params,
		Counts:        d.counts,
		Tile:          d.tile,
		Badge:         d.badge,
		Toasts:        reversed(d.toasts),
		Raw:           reversed(d.raw),
		Rejected:      reversed(d.rejected),
	}
	s.Tile.Sizes = make(map[string]WindowsBinding, len(d.tile.Sizes))
	for k, v := range d.tile.Sizes {
		s.Tile.Sizes[k] = v
	}
	return s
}

// serveWNSToken is both flows' token endpoint: it checks the grant, the
// scope of the flow and the client id and secret the emulator was
// started with, and issues a token that expires after WNSTokenTTL.
func (e *Emulator) serveWNSToken(w http.ResponseWriter, r *http.Request) {
	entra := r.PathValue("tenant") != ""
	oauthError := func(status int, code, desc string) {
		e.log.Warn("wns token request refused", "error", code, "reason", desc)
		writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		oauthError(http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(http.StatusBadRequest, "invalid_request", "bad form body")
		return
	}
	f := r.PostForm
	wantScope := "notify.windows.com"
	if entra {
		wantScope = "https://wns.windows.com/.default"
	}
	switch {
	case f.Get("grant_type") != "client_credentials":
		oauthError(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be client_credentials")
		return
	case f.Get("scope") != wantScope && !(!entra && f.Get("scope") == "s.notify.live.net"):
		oauthError(http.StatusBadRequest, "invalid_scope", fmt.Sprintf("scope must be %s for this endpoint", wantScope))
		return
	}
	e.mu.Lock()
	s := e.wns
	idOK := s.clientID != "" && subtle.ConstantTimeCompare([]byte(f.Get("client_id")), []byte(s.clientID)) == 1
	secretOK := len(s.secret) > 0 && subtle.ConstantTimeCompare([]byte(f.Get("client_secret")), s.secret) == 1
	e.mu.Unlock()
	if !idOK || !secretOK {
		status := http.StatusBadRequest // the classic endpoint's answer
		if entra {
			status = http.StatusUnauthorized
		}
		desc := "client id or secret not accepted"
		if s.clientID == "" {
			desc = "this emulator was started without a WNS client id (--wns-client-id)"
		}
		oauthError(status, "invalid_client", desc)
		return
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	tok := "EmuT" + hex.EncodeToString(b[:])
	e.mu.Lock()
	now := e.now()
	s.tokens[tok] = now.Add(s.ttl)
	s.order = append(s.order, tok)
	if len(s.order) > maxWNSTokens {
		delete(s.tokens, s.order[0])
		s.order = s.order[1:]
	}
	s.requests++
	e.changedLocked()
	e.mu.Unlock()
	secs := int64((s.ttl + time.Second - 1) / time.Second)
	e.log.Info("wns access token issued", "flow", map[bool]string{true: "entra", false: "classic"}[entra], "expires_in", s.ttl)
	w.Header().Set("Cache-Control", "no-store")
	if entra {
		// The Entra sample answers with strings; senders must take both.
		n := strconv.FormatInt(secs, 10)
		writeJSON(w, http.StatusOK, map[string]string{"token_type": "Bearer", "expires_in": n, "ext_expires_in": n, "access_token": tok})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": secs})
}

// wnsAnswer is one answer of the emulated WNS.
type wnsAnswer struct {
	status        int
	notification  string // X-WNS-Status
	description   string // X-WNS-Error-Description
	continueAfter int
	authenticate  string // WWW-Authenticate
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))
}

// writeWNS answers like WNS: the status, X-WNS-Status, the error
// description, and the identifiers Microsoft asks for in support cases.
func (e *Emulator) writeWNS(w http.ResponseWriter, a wnsAnswer, device string) {
	h := w.Header()
	h.Set("X-WNS-Msg-ID", randomHex(8))
	h.Set("X-WNS-Debug-Trace", "EMU"+randomHex(6))
	h.Set("MS-CV", randomHex(8)+".0")
	if a.notification != "" {
		h.Set("X-WNS-Status", a.notification)
	}
	if device != "" {
		h.Set("X-WNS-DeviceConnectionStatus", device)
	}
	if a.description != "" {
		h.Set("X-WNS-Error-Description", headerSafe(a.description))
	}
	if a.continueAfter > 0 {
		h.Set("X-WNS-CONTINUE-AFTER", strconv.Itoa(a.continueAfter))
	}
	if a.authenticate != "" {
		h.Set("WWW-Authenticate", a.authenticate)
	}
	w.WriteHeader(a.status)
}

// refuseWNS answers a push the emulator refused and records why.
func (e *Emulator) refuseWNS(w http.ResponseWriter, d *windowsDevice, a wnsAnswer, count func(*WNSCounts)) {
	e.writeWNS(w, a, "")
	name := ""
	if d != nil {
		name = d.Name
	}
	e.log.Warn("wns push refused", "channel", name, "status", a.status, "reason", a.description)
	if d == nil {
		return
	}
	e.mu.Lock()
	d.counts.Total++
	count(&d.counts)
	d.rejected = appendCapped(d.rejected, Rejection{Time: e.now(), Status: a.status, Reason: a.description}, maxRejected)
	e.changedLocked()
	e.mu.Unlock()
}

func countRejected(c *WNSCounts)     { c.Rejected++ }
func countUnauthorized(c *WNSCounts) { c.Unauthorized++ }

// wnsHeaders are the request headers WNS defines; any other X-WNS-*
// header is refused, so a misspelt one is noticed.
var wnsHeaders = map[string]func(string) bool{
	"X-Wns-Type":             nil,
	"X-Wns-Ttl":              isUint,
	"X-Wns-Tag":              func(s string) bool { return len(s) >= 1 && len(s) <= 16 && isAlnum(s) },
	"X-Wns-Group":            func(s string) bool { return len(s) >= 1 && len(s) <= 16 },
	"X-Wns-Cache-Policy":     oneOf("cache", "no-cache"),
	"X-Wns-Requestforstatus": isBool,
	"X-Wns-Suppresspopup":    isBool,
	"X-Wns-Match":            nil,
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// serveWNSPush is a Windows device's notify endpoint: authenticate like
// WNS, validate like WNS and the device, then answer as the device's
// behaviour says.
func (e *Emulator) serveWNSPush(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	e.mu.Lock()
	d := e.wns.devices[token]
	e.mu.Unlock()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		e.refuseWNS(w, d, wnsAnswer{status: http.StatusMethodNotAllowed, description: "only POST is allowed"}, countRejected)
		return
	}
	if a, ok := e.checkBearer(r); !ok {
		e.refuseWNS(w, d, a, countUnauthorized)
		return
	}
	if d == nil {
		e.writeWNS(w, wnsAnswer{status: http.StatusNotFound, description: "The channel URI is not valid or is not recognized by WNS."}, "")
		return
	}
	typ, err := wnsType(r.Header.Get("X-WNS-Type"))
	if err == nil {
		err = checkWNSHeaders(r, typ)
	}
	if err != nil {
		e.refuseWNSErr(w, d, err)
		return
	}
	if r.ContentLength > wnsMaxPayload {
		e.refuseWNS(w, d, wnsAnswer{status: http.StatusRequestEntityTooLarge,
			description: fmt.Sprintf("The notification payload of %d bytes exceeds the 5000 byte size limit.", r.ContentLength)}, countRejected)
		return
	}
	buf := e.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer e.bufs.Put(buf)
	n, err := buf.ReadFrom(io.LimitReader(r.Body, wnsMaxPayload+1))
	if err != nil {
		e.log.Warn("wns push read failed", "channel", d.Name, "err", err)
		http.Error(w, "read body failed", http.StatusBadRequest)
		return
	}
	switch {
	case n > wnsMaxPayload:
		e.refuseWNS(w, d, wnsAnswer{status: http.StatusRequestEntityTooLarge, description: "The notification payload exceeds the 5000 byte size limit."}, countRejected)
		return
	case n == 0:
		e.refuseWNS(w, d, wnsAnswer{status: http.StatusBadRequest, description: "empty payload"}, countRejected)
		return
	}
	p, err := parseWNS(typ, buf.Bytes())
	if err != nil {
		e.refuseWNSErr(w, d, err)
		return
	}

	e.mu.Lock()
	behaviour, slow := d.Behaviour, d.params.SlowMS
	e.mu.Unlock()
	if behaviour == Slow {
		wait := DefaultSlow
		if slow > 0 {
			wait = time.Duration(slow) * time.Millisecond
		}
		if !sleepCtx(r.Context(), wait) {
			return
		}
	}
	a := e.deliverWNS(d, p, r.Header)
	device := ""
	if r.Header.Get("X-WNS-RequestForStatus") == "true" && a.status == http.StatusOK {
		device = "connected"
	}
	e.writeWNS(w, a, device)
}

func (e *Emulator) refuseWNSErr(w http.ResponseWriter, d *windowsDevice, err error) {
	var re *rejectError
	if !errors.As(err, &re) {
		re = &rejectError{status: http.StatusBadRequest, reason: err.Error()}
	}
	e.refuseWNS(w, d, wnsAnswer{status: re.status, description: re.reason}, countRejected)
}

// checkBearer checks the Authorization header against the tokens issued.
func (e *Emulator) checkBearer(r *http.Request) (wnsAnswer, bool) {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || tok == "" {
		return wnsAnswer{status: http.StatusUnauthorized, description: "missing bearer access token",
			authenticate: `Bearer error="invalid_request",error_description="Missing token"`}, false
	}
	e.mu.Lock()
	exp, known := e.wns.tokens[tok]
	now := e.now()
	e.mu.Unlock()
	switch {
	case !known:
		return wnsAnswer{status: http.StatusUnauthorized, description: "Invalid token",
			authenticate: `Bearer error="invalid_token",error_description="Invalid token"`}, false
	case !now.Before(exp):
		return wnsAnswer{status: http.StatusUnauthorized, description: "Token expired",
			authenticate: `Bearer error="invalid_request",error_description="Token expired"`}, false
	}
	return wnsAnswer{}, true
}

// checkWNSHeaders checks Content-Type for typ, the framing WNS needs and
// every X-WNS-* header.
func checkWNSHeaders(r *http.Request, typ string) error {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	want := "text/xml"
	if typ == "raw" {
		want = "application/octet-stream"
	}
	switch {
	case ct == "":
		return reject("missing Content-Type, want %s", want)
	case err != nil:
		return reject("bad Content-Type %q: %v", ct, err)
	case mt != want:
		return reject("Content-Type is %q for wns/%s, want %s", mt, typ, want)
	case params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8"):
		return reject("Content-Type charset is %q, want utf-8", params["charset"])
	case r.ContentLength < 0:
		return reject("chunked transfer encoding is not supported: send Content-Length")
	}
	for name, vs := range r.Header {
		if !strings.HasPrefix(name, "X-Wns-") {
			continue
		}
		check, ok := wnsHeaders[name]
		if !ok {
			return reject("unknown header %s", name)
		}
		if len(vs) > 1 {
			return reject("%s sent %d times", name, len(vs))
		}
		if check != nil && !check(vs[0]) {
			return reject("bad value %q for %s", vs[0], name)
		}
	}
	if r.Header.Get("X-WNS-Tag") != "" && typ != "tile" && typ != "badge" && typ != "toast" {
		return reject("X-WNS-Tag on wns/%s", typ)
	}
	return nil
}

// deliverWNS decides the answer for a valid push and updates the device.
func (e *Emulator) deliverWNS(d *windowsDevice, p *wnsPayload, h http.Header) wnsAnswer {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	d.counts.Total++
	defer e.changedLocked()
	switch d.Behaviour {
	case Revoked:
		d.counts.Revoked++
		return wnsAnswer{status: http.StatusGone, notification: "dropped", description: "The channel expired."}
	case Unknown:
		d.counts.Unknown++
		return wnsAnswer{status: http.StatusNotFound, description: "The channel URI is not valid or is not recognized by WNS."}
	case WrongApp:
		d.counts.WrongApp++
		return wnsAnswer{status: http.StatusForbidden, description: "The cloud service is not authorized to send a notification to this URI even though they are authenticated."}
	case Throttled:
		n := d.params.ThrottleN
		if n == 0 {
			n = DefaultThrottleN
		}
		if d.throttled < n {
			d.throttled++
			d.counts.Throttled++
			after := d.params.ContinueAfter
			if after == 0 {
				after = DefaultContinueAfterSec
			}
			switch d.params.ThrottleStatus {
			case http.StatusOK:
				return wnsAnswer{status: http.StatusOK, notification: "channelthrottled", continueAfter: after}
			case http.StatusTooManyRequests:
				return wnsAnswer{status: http.StatusTooManyRequests, description: "Too many requests.", continueAfter: after}
			}
			return wnsAnswer{status: http.StatusNotAcceptable, description: "The cloud service exceeded its throttle limit.", continueAfter: after}
		}
	case Flaky:
		prob := d.params.FlakyP
		if prob == 0 {
			prob = DefaultFlakyP
		}
		if e.rnd.Float64() < prob {
			d.counts.Unavailable++
			return wnsAnswer{status: http.StatusServiceUnavailable, description: "The server is currently unavailable."}
		}
	}
	d.counts.Received++
	ttl, _ := strconv.Atoi(h.Get("X-WNS-TTL"))
	switch p.typ {
	case "toast":
		b := p.bindings[0]
		t := WindowsToast{Time: now, Template: b.template, Texts: b.texts, Launch: p.launch, Scenario: p.scenario,
			Audio: p.audio, Silent: p.silent, TTL: ttl}
		for _, img := range b.images {
			switch img.placement {
			case "appLogoOverride":
				t.AppLogo = img.src
			case "hero":
				t.Hero = img.src
			case "", "inline":
				if t.AppLogo == "" && b.template != "ToastGeneric" {
					t.AppLogo = img.src // a Windows 8 toast's image is its logo
				}
			}
		}
		d.toasts = appendCapped(d.toasts, t, maxToasts)
	case "tile":
		// A tile notification replaces the whole tile; sizes it does not
		// carry show the app's default (nothing, here).
		tile := WindowsTile{Sizes: map[string]WindowsBinding{}, Tag: h.Get("X-WNS-Tag"), Updated: now, DisplayName: p.visualName}
		for _, b := range p.bindings {
			wb := WindowsBinding{Template: b.template, Texts: b.texts}
			for _, img := range b.images {
				if wb.Image == "" || img.placement == "background" || img.placement == "peek" {
					wb.Image = img.src
				}
			}
			if b.displayName != "" {
				tile.DisplayName = b.displayName
			}
			tile.Sizes[wnsTemplates[b.template].size] = wb
		}
		d.tile = tile
	case "badge":
		d.badge = badgeShown(p.badge)
	case "raw":
		d.raw = appendCapped(d.raw, RawRecord{Time: now, Body: string(p.raw)}, maxRaw)
	}
	return wnsAnswer{status: http.StatusOK, notification: "received"}
}

// createRequest is the body of POST /channels for a Windows device.
type wnsCreateRequest struct {
	Transport string `json:"transport"`
	Behaviour string `json:"behaviour"`
	Name      string `json:"name"`
	WNSParams
}

// serveCreateWNS creates a Windows device from a POST /channels body.
func (e *Emulator) serveCreateWNS(w http.ResponseWriter, r *http.Request, body []byte) {
	var req wnsCreateRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		apiError(w, http.StatusBadRequest, fmt.Errorf("decode request: %w", err))
		return
	}
	dev, err := e.createWindowsDevice(req.Behaviour, req.Name, "http://"+r.Host, req.WNSParams)
	if err != nil {
		apiError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusCreated, dev)
}

// requestTransport reads the transport a POST /channels body names ("" for none).
func requestTransport(body []byte) (string, error) {
	var peek struct {
		Transport string `json:"transport"`
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return "", nil
	}
	if err := json.Unmarshal(body, &peek); err != nil {
		return "", fmt.Errorf("decode request: %w", err)
	}
	return peek.Transport, nil
}

// serveWindowsChannel answers /channels/{token}[/expire|/behaviour] for a
// Windows device, reporting false when token is not one (an MPNS channel).
func (e *Emulator) serveWindowsChannel(w http.ResponseWriter, r *http.Request, action string) bool {
	token := r.PathValue("token")
	if _, ok := e.WindowsDeviceState(token); !ok {
		return false
	}
	switch action {
	case "expire":
		if err := e.SetWindowsBehaviour(token, Revoked); err != nil {
			apiError(w, http.StatusBadRequest, err)
			return true
		}
	case "behaviour":
		var req struct {
			Behaviour string `json:"behaviour"`
			WNSParams
		}
		if err := decodeRequest(r, &req); err != nil {
			apiError(w, http.StatusBadRequest, err)
			return true
		}
		var params []WNSParams
		if req.WNSParams != (WNSParams{}) {
			params = append(params, req.WNSParams)
		}
		if err := e.SetWindowsBehaviour(token, req.Behaviour, params...); err != nil {
			apiError(w, http.StatusBadRequest, err)
			return true
		}
	}
	s, _ := e.WindowsDeviceState(token)
	writeJSON(w, http.StatusOK, s)
	return true
}
