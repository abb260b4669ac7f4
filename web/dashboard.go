package web

// The dashboard is one read-only, server-rendered page at GET / on the API
// listener: feeds with their last fetch and next run, channels with their
// last outcome, the outbox, and each feed's current tile and toast drawn by
// tileview the way the emulator's phone view draws them.
//
// A browser logs in with an admin API key (POST /login) and gets a session
// cookie: an HMAC-signed token under a secret made at start, so a restart
// logs everyone out and no session is ever stored. The token names the key
// only by a keyed tag, so removing a key from the keys file (and SIGHUP)
// ends its sessions. Scripts may send the key as a bearer header instead.
// App keys are refused (403): the page lists every channel.

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/tileview"
)

// Dashboard settings.
const (
	// SessionCookie is the name of the dashboard's session cookie.
	SessionCookie = "tilecast_session"
	// SessionLifetime is how long a dashboard login lasts.
	SessionLifetime = 12 * time.Hour
	// DashboardPageSize is how many channels one dashboard page lists.
	DashboardPageSize = 200
	// DashboardRefresh is how often the page reloads itself.
	DashboardRefresh = 10 * time.Second
)

//go:embed assets
var assets embed.FS

// pages holds the dashboard and login templates; parsed once, only executed.
var pages = template.Must(template.ParseFS(assets, "assets/*.html"))

// dashboardCSP keeps hostile feed text inert even if escaping were ever
// bypassed: no script runs except tileview's one inline handler (which
// hides an image that failed to load, allowed by its hash), nothing loads
// but images from the daemon itself (tile previews go through
// /preview-image, see previewimage.go) and data: URLs, forms only post
// back here, and no other site may frame the page. default-src is 'none'
// rather than 'self': the page needs nothing else, not even its own
// scripts or style sheets (the CSS is inline).
const dashboardCSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; " +
	"script-src 'unsafe-hashes' '" + onErrorHash + "'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// onErrorHash is the CSP hash of tileview's onerror attribute value
// "this.hidden=true" (TestDashboardCSPHash recomputes it).
const onErrorHash = tileview.OnErrorHash

// Session token layout: version, expiry (Unix seconds), random nonce, key
// tag, then the HMAC-SHA256 of all of that.
const (
	tokenVersion = 1
	nonceLen     = 16
	tagLen       = 16
	payloadLen   = 1 + 8 + nonceLen + tagLen
	tokenLen     = payloadLen + sha256.Size
)

type dashboard struct {
	s      *Server
	secret [32]byte
	css    template.CSS
	// cop refuses cross-site POSTs: SameSite=Strict already keeps the
	// cookie off them, this also stops login CSRF.
	cop *http.CrossOriginProtection
	// images serves the tile previews' images (previewimage.go).
	images *previewImages

	mu      sync.Mutex
	revoked map[[nonceLen]byte]time.Time // logged-out sessions → their expiry
}

// dashboardRoutes registers the dashboard on mux.
func (s *Server) dashboardRoutes(mux *http.ServeMux) {
	d := &dashboard{
		s:       s,
		cop:     http.NewCrossOriginProtection(),
		revoked: map[[nonceLen]byte]time.Time{},
	}
	// Neither can fail: crypto/rand crashes the program rather than
	// return an error, and the file is embedded.
	rand.Read(d.secret[:])
	d.images = newPreviewImages(s.opts.PreviewImage, d.secret[:], s.log)
	css, _ := assets.ReadFile("assets/dashboard.css")
	d.css = template.CSS(string(css) + tileview.CSS())
	mux.HandleFunc("GET /{$}", d.serveDashboard)
	mux.HandleFunc("GET /login", d.serveLoginForm)
	mux.HandleFunc("POST /login", d.serveLogin)
	mux.HandleFunc("POST /logout", d.serveLogout)
	mux.HandleFunc("GET "+previewImagePath, d.servePreviewImage)
}

// keyTag names an API key (by its SHA-256) inside a token without letting
// the token holder learn anything about the key.
func (d *dashboard) keyTag(digest [32]byte) []byte {
	m := hmac.New(sha256.New, d.secret[:])
	m.Write([]byte("tilecast dashboard key\x00"))
	m.Write(digest[:])
	return m.Sum(nil)[:tagLen]
}

func (d *dashboard) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, d.secret[:])
	m.Write([]byte("tilecast dashboard session\x00"))
	m.Write(payload)
	return m.Sum(nil)
}

// issue returns a session token for the key with the given digest.
func (d *dashboard) issue(digest [32]byte, now time.Time) string {
	tok := make([]byte, payloadLen, tokenLen)
	tok[0] = tokenVersion
	binary.BigEndian.PutUint64(tok[1:9], uint64(now.Add(SessionLifetime).Unix()))
	rand.Read(tok[9 : 9+nonceLen])
	copy(tok[9+nonceLen:], d.keyTag(digest))
	tok = append(tok, d.mac(tok)...)
	return base64.RawURLEncoding.EncodeToString(tok)
}

// session is a verified token.
type session struct {
	nonce   [nonceLen]byte
	expires time.Time
}

// verify checks a token's signature, expiry, revocation and that its key
// is still an admin key of the keys file.
func (d *dashboard) verify(token string, now time.Time) (session, bool) {
	if len(token) != base64.RawURLEncoding.EncodedLen(tokenLen) {
		return session{}, false
	}
	tok, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(tok) != tokenLen {
		return session{}, false
	}
	payload, sum := tok[:payloadLen], tok[payloadLen:]
	if !hmac.Equal(sum, d.mac(payload)) || payload[0] != tokenVersion {
		return session{}, false
	}
	var s session
	s.expires = time.Unix(int64(binary.BigEndian.Uint64(payload[1:9])), 0)
	if !now.Before(s.expires) {
		return session{}, false
	}
	copy(s.nonce[:], payload[9:9+nonceLen])
	tag := payload[9+nonceLen:]
	found := 0
	d.s.keysMu.RLock()
	for _, k := range d.s.keys {
		// Only admin keys log in, and a key turned into an app key (and
		// SIGHUP) ends its sessions.
		if k.role == RoleAdmin {
			found |= subtle.ConstantTimeCompare(tag, d.keyTag(k.sum))
		}
	}
	d.s.keysMu.RUnlock()
	if found == 0 {
		return session{}, false
	}
	d.mu.Lock()
	_, gone := d.revoked[s.nonce]
	d.mu.Unlock()
	return s, !gone
}

// cookieSession returns the request's valid session, if any.
func (d *dashboard) cookieSession(r *http.Request) (session, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return session{}, false
	}
	return d.verify(c.Value, d.s.now())
}

// revoke ends a session before its expiry (logout) and forgets sessions
// that have expired anyway, so the set stays small.
func (d *dashboard) revoke(s session, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for n, exp := range d.revoked {
		if !now.Before(exp) {
			delete(d.revoked, n)
		}
	}
	d.revoked[s.nonce] = s.expires
}

// setSessionCookie sets (or, with maxAge < 0, clears) the session cookie.
// It is Secure when the listener speaks TLS, and when the request came over
// TLS some other way (a test server, a wrapped listener).
func (d *dashboard) setSessionCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: d.s.TLSEnabled() || r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

// loginPage is the data of the login and message pages.
type loginPage struct {
	CSS     template.CSS
	Heading string
	Error   string
	Form    bool
}

// render executes a page template into a buffer first, so that a template
// error is a clean 500 rather than half a page.
func (d *dashboard) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		d.s.internalError(w, r, fmt.Errorf("render %s: %w", name, err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (d *dashboard) message(w http.ResponseWriter, r *http.Request, status int, heading, msg string, form bool) {
	d.render(w, r, status, "login", loginPage{CSS: d.css, Heading: heading, Error: msg, Form: form})
}

// disabled answers 503 when there is no keys file: nobody could log in.
func (d *dashboard) disabled(w http.ResponseWriter, r *http.Request) bool {
	if d.s.opts.APIKeysFile != "" {
		return false
	}
	d.message(w, r, http.StatusServiceUnavailable, "Dashboard disabled",
		"The dashboard needs an API key to log in with: set http.api_keys_file.", false)
	return true
}

func (d *dashboard) serveLoginForm(w http.ResponseWriter, r *http.Request) {
	if d.disabled(w, r) {
		return
	}
	if _, ok := d.cookieSession(r); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	d.message(w, r, http.StatusOK, "Log in to tilecast", "", true)
}

func (d *dashboard) serveLogin(w http.ResponseWriter, r *http.Request) {
	if err := d.cop.Check(r); err != nil {
		d.message(w, r, http.StatusForbidden, "Refused", "Cross-origin login refused.", false)
		return
	}
	if d.disabled(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	if err := r.ParseForm(); err != nil {
		status := http.StatusBadRequest
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			status = http.StatusRequestEntityTooLarge
		}
		d.message(w, r, status, "Log in to tilecast", "Malformed login form.", true)
		return
	}
	key, ok := d.s.match(strings.TrimSpace(r.PostForm.Get("key")))
	if !ok {
		// The key is a secret: never logged, not even when wrong.
		d.s.log.Warn("dashboard login refused", "remote", r.RemoteAddr)
		if d.throttled(w, r) {
			return
		}
		d.message(w, r, http.StatusUnauthorized, "Log in to tilecast", "Invalid API key.", true)
		return
	}
	if key.role != RoleAdmin {
		d.s.log.Warn("dashboard login refused: not an admin key", "remote", r.RemoteAddr)
		d.message(w, r, http.StatusForbidden, "Log in to tilecast", adminOnly, true)
		return
	}
	d.setSessionCookie(w, r, d.issue(key.sum, d.s.now()), int(SessionLifetime/time.Second))
	d.s.log.Info("dashboard login", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// throttled counts a wrong key against the source address, as the API
// does (a login form is a key-guessing path too), and answers 429 when
// the address has failed too often.
func (d *dashboard) throttled(w http.ResponseWriter, r *http.Request) bool {
	wait, ok := d.s.failedAuth(r)
	if ok {
		return false
	}
	w.Header().Set("Retry-After", strconv.Itoa(wait))
	d.message(w, r, http.StatusTooManyRequests, "Slow down",
		fmt.Sprintf("Too many failed logins from this address: retry in %d s.", wait), false)
	return true
}

func (d *dashboard) serveLogout(w http.ResponseWriter, r *http.Request) {
	if err := d.cop.Check(r); err != nil {
		d.message(w, r, http.StatusForbidden, "Refused", "Cross-origin logout refused.", false)
		return
	}
	if s, ok := d.cookieSession(r); ok {
		d.revoke(s, d.s.now())
	}
	d.setSessionCookie(w, r, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// adminOnly is the dashboard's refusal of an app key: the page lists every
// channel, which only an admin key may read.
const adminOnly = "The dashboard needs an admin key; this is an app key."

// authorized lets a request with a valid session cookie or admin bearer key
// through. Otherwise it answers: 401 for a bad bearer key (a script), a
// redirect to the login form for a browser.
func (d *dashboard) authorized(w http.ResponseWriter, r *http.Request) bool {
	if d.disabled(w, r) {
		return false
	}
	if _, ok := d.cookieSession(r); ok {
		return true
	}
	if token, ok := bearer(r); ok {
		key, ok := d.s.match(token)
		if !ok {
			if d.throttled(w, r) {
				return false
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="tilecast", error="invalid_token"`)
			d.message(w, r, http.StatusUnauthorized, "Log in to tilecast", "Invalid API key.", true)
			return false
		}
		if wait, ok := d.s.allow(key.sum); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(wait))
			d.message(w, r, http.StatusTooManyRequests, "Slow down",
				fmt.Sprintf("Rate limited: retry in %d s.", wait), false)
			return false
		}
		if key.role != RoleAdmin {
			d.message(w, r, http.StatusForbidden, "Refused", adminOnly, false)
			return false
		}
		return true
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return false
}

func (d *dashboard) serveDashboard(w http.ResponseWriter, r *http.Request) {
	if !d.authorized(w, r) {
		return
	}
	p, err := d.build(r)
	if err != nil {
		d.s.log.Error("dashboard failed", "err", err)
		d.message(w, r, http.StatusInternalServerError, "Dashboard unavailable",
			"The state could not be read; see the daemon's log.", false)
		return
	}
	d.render(w, r, http.StatusOK, "dashboard", p)
}

// dashPage is the data of the dashboard template.
type dashPage struct {
	now          time.Time
	NowISO       string
	NowText      string
	Refresh      int
	CSS          template.CSS
	Counts       tilecast.Counts
	FeedsBroken  int
	Feeds        []dashFeed
	Channels     []dashChannel
	ChannelCount int
	First, Last  int // 1-based positions of the channels shown
	Page, Pages  int
	PrevPage     int // 0: none
	NextPage     int // 0: none
	DailyCap     int
	Chart        activityChart // the last 24 hours (history.go)
}

// stamp is a time as the template shows it.
type stamp struct {
	T   time.Time
	ISO string
	Rel string
}

// At formats t for the page: relative to the page's time, with the
// absolute UTC time in the title.
func (p *dashPage) At(t time.Time) stamp {
	if t.IsZero() {
		return stamp{}
	}
	return stamp{T: t, ISO: t.UTC().Format(time.RFC3339), Rel: relative(t.Sub(p.now))}
}

// relative says how far d is from now in the largest whole unit.
func relative(d time.Duration) string {
	future := d > 0
	if d < 0 {
		d = -d
	}
	var s string
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		s = strconv.Itoa(int(d/time.Second)) + " s"
	case d < time.Hour:
		s = strconv.Itoa(int(d/time.Minute)) + " min"
	case d < 48*time.Hour:
		s = strconv.Itoa(int(d/time.Hour)) + " h"
	default:
		s = strconv.Itoa(int(d/(24*time.Hour))) + " d"
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// dashFeed is one configured feed. For a per-user feed the last fetch is
// the latest of any user's.
type dashFeed struct {
	Name, Schedule, Title string
	PerUser               bool
	Users, BrokenUsers    int
	HasState              bool
	LastUser              string
	LastFetch             time.Time
	LastResult            string
	LastSuccess           time.Time
	Failures              int
	NextRun               time.Time // when the feed is fetched next: the schedule's run, or the end of a hold
	Held                  bool      // NextRun is a backoff or Retry-After hold: the schedule's runs before it are skipped
	Broken                bool
	Preview               preview
}

// ResultText is the last fetch result in words.
func (f *dashFeed) ResultText() string { return resultWords(f.LastResult) }

// resultWords turns a fetch result or a send outcome as stored
// ("not_modified", "channel_removed") into words.
func resultWords(s string) string {
	switch s {
	case "ok":
		return "ok"
	case "not_modified":
		return "not modified (304)"
	case string(tilecast.ActionChannelRemoved):
		return "channel removed"
	}
	return strings.ReplaceAll(s, "_", " ")
}

// ResultClass is the CSS class of the last fetch result.
func (f *dashFeed) ResultClass() string {
	switch f.LastResult {
	case "ok", "not_modified":
		return "ok"
	case "":
		return "muted"
	}
	return "bad"
}

// preview is a feed's current toast and tile as HTML fragments from
// tileview, which escapes every feed-supplied string.
type preview struct {
	User  string // per-user feeds: whose data is shown
	Toast template.HTML
	Tile  template.HTML
	Err   string
	None  string // why there is nothing to show
}

// dashChannel is one channel row.
type dashChannel struct {
	ID, User, Device, Feeds, Host string
	Created                       time.Time
	LastOutcome                   string
	LastOutcomeAt                 time.Time
	FailureStreak                 int
	WaitUntil                     time.Time // a 406/412 rest, else the pending retry's time
	WaitReason                    string    // "rest" or "retry"
	SendsToday                    int
	Capped                        bool // held to tilecast.DailyCap
}

// OutcomeText is the last outcome in words.
func (c *dashChannel) OutcomeText() string { return resultWords(c.LastOutcome) }

// OutcomeClass is the CSS class of the last outcome.
func (c *dashChannel) OutcomeClass() string {
	switch tilecast.Action(c.LastOutcome) {
	case tilecast.ActionDelivered:
		return "ok"
	case tilecast.ActionRetry:
		return "warn"
	}
	return "bad"
}

// build reads the state and lays out the page.
func (d *dashboard) build(r *http.Request) (*dashPage, error) {
	s := d.s
	now := s.now()
	states, err := s.opts.Store.FeedStates()
	if err != nil {
		return nil, fmt.Errorf("feed states: %w", err)
	}
	counts, err := s.opts.Counts()
	if err != nil {
		return nil, fmt.Errorf("counts: %w", err)
	}
	chans, err := s.opts.Store.Channels("")
	if err != nil {
		return nil, fmt.Errorf("channels: %w", err)
	}
	p := &dashPage{
		now: now, NowISO: now.UTC().Format(time.RFC3339), NowText: now.UTC().Format("2006-01-02 15:04:05 UTC"),
		Refresh: int(DashboardRefresh / time.Second), CSS: d.css, Counts: counts, DailyCap: tilecast.DailyCap,
	}
	feeds := s.feeds()
	statuses, broken := tilecast.FeedStatuses(feeds, states)
	p.FeedsBroken = broken
	byName := make(map[string]*tilecast.Feed, len(feeds))
	for i := range feeds {
		if _, dup := byName[feeds[i].Name]; !dup {
			byName[feeds[i].Name] = &feeds[i]
		}
	}
	imgs := d.images.begin()
	for i := range statuses {
		p.Feeds = append(p.Feeds, d.feedRow(&statuses[i], byName[statuses[i].Name], states, imgs, now))
	}
	imgs.commit()
	names := make([]string, len(feeds))
	for i := range feeds {
		names[i] = feeds[i].Name
	}
	p.Chart = buildChart(s.metrics.history.snapshot(), names)
	d.channelPage(p, chans, r.URL.Query().Get("page"), now)
	return p, nil
}

func (d *dashboard) feedRow(fs *tilecast.FeedStatus, f *tilecast.Feed, states map[tilecast.FeedKey]tilecast.FeedState, imgs *imageRefs, now time.Time) dashFeed {
	row := dashFeed{Name: fs.Name, Schedule: fs.Schedule, PerUser: fs.PerUser, Broken: fs.Broken}
	if d.s.opts.NextRun != nil {
		row.NextRun = d.s.opts.NextRun(fs.Name)
	}
	// The state shown: the feed's own, or the most recently fetched user's.
	var shown *tilecast.FeedStateView
	if fs.State != nil {
		shown = fs.State
	}
	for i := range fs.Users {
		u := &fs.Users[i]
		row.Users++
		if u.Broken {
			row.BrokenUsers++
		}
		if shown == nil || u.LastFetch.After(shown.LastFetch) {
			shown = u
		}
	}
	if shown != nil {
		row.HasState = true
		row.LastUser = shown.User
		row.Title = shown.Title
		row.LastFetch, row.LastResult, row.LastSuccess = shown.LastFetch, shown.LastResult, shown.LastSuccess
		row.Failures = shown.Failures
		// A hold (backoff after failures, or the server's Retry-After)
		// beyond the schedule's next run: that run is skipped, so the next
		// fetch is the hold's end, and only that is shown.
		if !fs.PerUser && shown.NextFetch.After(now) && shown.NextFetch.After(row.NextRun) {
			row.NextRun, row.Held = shown.NextFetch, true
		}
	}
	row.Preview = d.preview(f, fs, states, imgs)
	return row
}

// preview renders the feed's current toast and tile from the data its
// last tile was made from; for a per-user feed, the most recently fetched
// user's that has any. Remote images are linked through imgs.
func (d *dashboard) preview(f *tilecast.Feed, fs *tilecast.FeedStatus, states map[tilecast.FeedKey]tilecast.FeedState, imgs *imageRefs) preview {
	var pv preview
	if f.Toast == nil && f.Tile == nil {
		pv.None = "This feed sends no toast and no tile."
		return pv
	}
	var data *tilecast.TemplateData
	if fs.PerUser {
		var last time.Time
		for _, u := range fs.Users {
			st := states[tilecast.FeedKey{Feed: fs.Name, User: u.User}]
			if st.Latest != nil && (data == nil || st.LastFetch.After(last)) {
				data, last, pv.User = st.Latest, st.LastFetch, u.User
			}
		}
	} else if st, ok := states[tilecast.FeedKey{Feed: fs.Name}]; ok {
		data = st.Latest
	}
	if data == nil {
		pv.None = "No tile yet: the feed has not produced one."
		return pv
	}
	toast, tile, err := notify.Preview(f, data)
	if err != nil {
		pv.Err = err.Error()
	}
	var buf bytes.Buffer
	if toast != nil {
		if err := tileview.RenderToast(&buf, tileview.Toast{Text1: toast.Text1, Text2: toast.Text2, Param: toast.Param}); err != nil {
			pv.Err = strings.TrimSpace(pv.Err + "\n" + err.Error())
		} else {
			pv.Toast = template.HTML(buf.String()) // escaped by tileview's html/template
		}
	}
	if tile != nil {
		buf.Reset()
		if err := tileview.RenderTile(&buf, viewTile(tile, imgs.ref)); err != nil {
			pv.Err = strings.TrimSpace(pv.Err + "\n" + err.Error())
		} else {
			pv.Tile = template.HTML(buf.String()) // escaped by tileview's html/template
		}
	}
	return pv
}

// viewTile maps notify's payload model onto tileview's: only present
// fields show, the count becomes a number (-1 when absent), images the
// dashboard cannot load (the app's own, relative or isostore URIs) are
// left out, and remote ones become what image makes of them (the
// daemon's own /preview-image URL, or "" to leave them out): the page
// never links a URL a feed chose.
func viewTile(t *notify.Tile, image func(remote string) string) tileview.Tile {
	val := func(f notify.Field) string {
		if f.State != notify.Present {
			return ""
		}
		return f.Value
	}
	img := func(f notify.Field) string {
		if u := remoteImage(val(f)); u != "" {
			return image(u)
		}
		return ""
	}
	v := tileview.Tile{
		Template:                tileTemplate(t.Template),
		Title:                   val(t.Title),
		Count:                   -1,
		BackgroundImage:         img(t.BackgroundImage),
		BackTitle:               val(t.BackTitle),
		BackContent:             val(t.BackContent),
		BackBackgroundImage:     img(t.BackBackgroundImage),
		SmallBackgroundImage:    img(t.SmallBackgroundImage),
		WideBackgroundImage:     img(t.WideBackgroundImage),
		WideBackContent:         val(t.WideBackContent),
		WideBackBackgroundImage: img(t.WideBackBackgroundImage),
		IconImage:               img(t.IconImage),
		SmallIconImage:          img(t.SmallIconImage),
		WideContent:             [3]string{val(t.WideContent1), val(t.WideContent2), val(t.WideContent3)},
		BackgroundColor:         val(t.BackgroundColor),
	}
	if n, err := strconv.Atoi(val(t.Count)); err == nil {
		v.Count = n
	}
	for _, f := range t.CycleImages {
		if u := img(f); u != "" {
			v.CycleImages = append(v.CycleImages, u)
		}
	}
	return v
}

// tileTemplate maps a config tile kind to the MPNS Template name.
func tileTemplate(kind string) string {
	switch kind {
	case tilecast.TileFlip:
		return tileview.TemplateFlip
	case tilecast.TileIconic:
		return tileview.TemplateIconic
	case tilecast.TileCycle:
		return tileview.TemplateCycle
	}
	return tileview.TemplateClassic
}

// remoteImage returns u when it is an absolute http(s) URL, else "".
func remoteImage(u string) string {
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return ""
	}
	return u
}

// retryAt is when a channel whose last outcome was a retry is tried
// again: its last ledger entry's time plus retry_in (zero when that is
// past or the ledger has no such entry). Only channels waiting on a retry
// are looked up, one short ledger read each.
func (d *dashboard) retryAt(ch *tilecast.Channel, now time.Time) time.Time {
	outs, _, err := d.s.opts.Store.OutcomesPage(tilecast.OutcomeFilter{Channel: ch.ID, Since: ch.LastOutcomeAt.Add(-time.Second)}, "", 20)
	if err != nil {
		return time.Time{}
	}
	for i := len(outs) - 1; i >= 0; i-- {
		if o := outs[i]; o.Action == tilecast.ActionRetry {
			if at := o.Time.Add(o.RetryIn); at.After(now) {
				return at
			}
			return time.Time{}
		}
	}
	return time.Time{}
}

// channelPage sorts the channels failing first (then by id, so the order
// is stable across refreshes) and keeps the requested page.
func (d *dashboard) channelPage(p *dashPage, chans []tilecast.Channel, pageParam string, now time.Time) {
	slices.SortFunc(chans, func(a, b tilecast.Channel) int {
		return cmp.Or(cmp.Compare(b.FailureStreak, a.FailureStreak), cmp.Compare(a.ID, b.ID))
	})
	p.ChannelCount = len(chans)
	p.Pages = max(1, (len(chans)+DashboardPageSize-1)/DashboardPageSize)
	page, err := strconv.Atoi(pageParam)
	if err != nil || page < 1 {
		page = 1
	}
	page = min(page, p.Pages)
	p.Page = page
	if page > 1 {
		p.PrevPage = page - 1
	}
	if page < p.Pages {
		p.NextPage = page + 1
	}
	lo := (page - 1) * DashboardPageSize
	hi := min(lo+DashboardPageSize, len(chans))
	p.First, p.Last = lo+1, hi
	today := now.UTC().Format(time.DateOnly)
	for i := lo; i < hi; i++ {
		ch := &chans[i]
		row := dashChannel{
			ID: ch.ID, User: ch.User, Device: ch.Device, Feeds: strings.Join(ch.Feeds, ", "),
			Created: ch.Created, LastOutcome: ch.LastOutcome, LastOutcomeAt: ch.LastOutcomeAt,
			FailureStreak: ch.FailureStreak, Capped: !ch.Authenticated(),
		}
		if u, err := url.Parse(ch.URI); err == nil {
			// The host only: a channel URI is a capability to push to a phone.
			row.Host = u.Host
		}
		switch {
		case ch.NextAllowedAt.After(now):
			row.WaitUntil, row.WaitReason = ch.NextAllowedAt, "rest"
		case ch.LastOutcome == string(tilecast.ActionRetry):
			if at := d.retryAt(ch, now); !at.IsZero() {
				row.WaitUntil, row.WaitReason = at, "retry"
			}
		}
		if ch.SendsDay == today {
			row.SendsToday = ch.SendsToday
		}
		p.Channels = append(p.Channels, row)
	}
}
