// Package web serves tilecast's HTTP side: the registration API under /v1
// (channels, status, delivery ledger; bearer keys with a role each, app or
// admin, checked on every route of one table (Routes); a per-key rate limit
// and a per-address limit on failed authentication; listings paged with
// limit, cursor and a Link header, streamed as JSON arrays), the dashboard, the
// unauthenticated /healthz, /metrics (open unless Options.MetricsRole) and
// the Prometheus metrics the daemon feeds.
//
// web never imports the store: it declares the few store methods it calls
// (Store) and cmd/tilecast passes the concrete *store.DB. Configuration that
// changes on SIGHUP (feeds, allowed hosts) is read through functions on every
// request, so a reload needs no call into web except Reload, which re-reads
// the files web was given (API keys, user token key, TLS certificate).
package web

import (
	"cmp"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tilecast/tilecast"
	"golang.org/x/time/rate"
)

// Limits of the HTTP server (reliability.md §4).
const (
	// MaxBody is the largest request body accepted; larger is 413.
	MaxBody = 16 << 10
	// MaxHeaderBytes bounds the request line and headers.
	MaxHeaderBytes = 16 << 10

	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 15 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 60 * time.Second
)

// Default per-key rate limit: a registering app fleet behind one key is
// bursty (app updates, mornings) but never needs more than this.
const (
	DefaultRatePerSecond = 20
	DefaultBurst         = 40
)

// Store is what web needs of the state file. *store.DB implements it.
type Store interface {
	// AddChannel registers ch deduplicated by URI; created is false when
	// the URI was known (its user, feeds and device are then replaced).
	AddChannel(ch tilecast.Channel) (saved tilecast.Channel, created bool, err error)
	// Channels lists the channels of user ("" = every channel), for the
	// dashboard.
	Channels(user string) ([]tilecast.Channel, error)
	// ChannelsPage and OutcomesPage return up to limit records after
	// cursor ("" = the first page) and the cursor of the next page (""
	// after the last). A cursor they did not hand out for that listing
	// is tilecast.ErrBadCursor.
	ChannelsPage(f tilecast.ChannelFilter, cursor string, limit int) ([]tilecast.Channel, string, error)
	OutcomesPage(f tilecast.OutcomeFilter, cursor string, limit int) ([]tilecast.Outcome, string, error)
	Channel(id string) (tilecast.Channel, error) // tilecast.ErrNotFound if unknown
	RemoveChannel(id string) error               // tilecast.ErrNotFound if unknown
	FeedStates() (map[tilecast.FeedKey]tilecast.FeedState, error)
}

// Options configure New.
type Options struct {
	Store Store // required
	// Counts returns the store's running counts (required; the daemon
	// passes store.DB.Counts). /healthz's Health, /metrics, /v1/status and
	// the dashboard read them instead of counting: they cost the same for
	// any number of channels.
	Counts func() (tilecast.Counts, error)
	// Feeds returns the current feed config; it changes on reload.
	Feeds func() []tilecast.Feed
	// Instances, when set, lists the daemons sharing a PostgreSQL state
	// with their leases; GET /v1/status includes them.
	Instances func() ([]tilecast.Instance, error)
	// NextRun, when set, returns when the scheduler next runs the named
	// feed (zero: not scheduled); the dashboard shows it.
	NextRun func(feed string) time.Time
	// AllowedHosts returns push.allowed_hosts; nil allows no host.
	AllowedHosts func() []string
	// AllowPrivate returns push.allow_private: with it a registration
	// that names transport wns may use a host of AllowedHosts outside
	// *.notify.windows.com (the emulator). nil means false.
	AllowPrivate func() bool
	// TransportHosts, when set, returns the host lists of the transports
	// that have their own ([push.webpush] allowed_hosts), which replace
	// AllowedHosts for their channels (channeluri.Rules).
	TransportHosts func() map[tilecast.Transport][]string
	// APIKeysFile holds one key per line, "admin KEY" or "app KEY" (see
	// ReadKeyFile). "" disables the /v1 API (503); a path that cannot be
	// read is an error from New.
	APIKeysFile string
	// MetricsRole is the role of the key GET /metrics needs; 0 leaves it
	// open, as /healthz always is.
	MetricsRole Role
	// UserTokenKeyFile (an HS256 secret) or UserTokenPublicKeyFile (a PEM
	// RS256 or ES256 public key), at most one, turn on user tokens: an
	// app-key registration that names a user must carry an X-User-Token
	// JWT whose sub is that user (see LoadUserTokenKey). Both "": off.
	UserTokenKeyFile       string
	UserTokenPublicKeyFile string
	// TLSCertFile and TLSKeyFile, both or neither, are the listener's PEM
	// certificate (chain) and key: HTTPServer then serves TLS, and Reload
	// re-reads them (see TLSConfig).
	TLSCertFile string
	TLSKeyFile  string
	// Subscribe, when set, is called once for each newly created channel
	// (tile_on_subscribe). Its error is logged; the channel stays registered.
	Subscribe func(tilecast.Channel) error
	// Health reports why the daemon is unhealthy (nil: healthy): its own
	// faults, answered 503. A nil Health always reports healthy.
	Health func() error
	// Degraded, when set, reports whether a service the daemon only sends
	// to (a push service, an OAuth token endpoint) is failing, and why:
	// /healthz then answers 200 with status "degraded" and the reason,
	// never 503, so that systemd does not restart a daemon that works
	// (tilecast.DegradedReporter).
	Degraded func() (bool, string)
	// WebPushPublicKey is the VAPID public key (base64url) served at GET
	// /v1/webpush/key for the page's pushManager.subscribe; "" answers
	// 404 there (Web Push not configured). See webpush.go.
	WebPushPublicKey string
	// Backup, when set, takes a consistent snapshot of the state file
	// (store.DB.Snapshot) for GET /v1/backup; nil answers 501 (a
	// PostgreSQL state: pg_dump backs it up).
	Backup BackupFunc
	// PreviewImage, when set, fetches a remote tile image for the
	// dashboard's previews (fetch.Client.Image: the SSRF guard, size and
	// type checks of image_check); the page links only the daemon's own
	// /preview-image. nil leaves remote images out of the previews.
	PreviewImage PreviewImageFunc
	// DeadLetters, when set, pages the dead letters, newest first, for
	// GET /v1/deadletters (see DeadLetter and Store's pages; the daemon
	// passes store.DB.DeadLettersPage); nil answers 501.
	DeadLetters func(cursor string, limit int) ([]DeadLetter, string, error)
	// Registry is served on /metrics; nil makes a fresh one.
	Registry *prometheus.Registry
	// Metrics are the counters the daemon feeds. nil registers new ones on
	// Registry (read them back with Server.Metrics); a value made with
	// NewMetrics must have been registered on this same Registry.
	Metrics *Metrics
	Logger  *slog.Logger // nil discards
	// RatePerSecond and Burst are the token bucket of each API key; ≤ 0
	// means DefaultRatePerSecond and DefaultBurst.
	RatePerSecond float64
	Burst         int
	// AuthFailRatePerSecond and AuthFailBurst are the token bucket of each
	// source address (IPv6: each /64) for /v1 requests with missing or
	// wrong credentials; an empty bucket turns their 401 into 429. ≤ 0
	// means DefaultAuthFailRate and DefaultAuthFailBurst.
	AuthFailRatePerSecond float64
	AuthFailBurst         int
	// MaxTrackedAddrs bounds the source addresses tracked for failed
	// authentication; ≤ 0 means DefaultMaxTrackedAddrs.
	MaxTrackedAddrs int
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout
	// override the timeouts of HTTPServer; ≤ 0 means the package constant
	// of the same name. Tests shorten them.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	Now               func() time.Time // nil: time.Now; also the clock of sessions and rate limits
}

// Server is the HTTP handler set. It is safe for concurrent use.
type Server struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	reg     *prometheus.Registry
	metrics *Metrics
	handler http.Handler

	keysMu sync.RWMutex
	keys   []apiKey // SHA-256 and role of each API key

	limitMu  sync.Mutex
	limiters map[[32]byte]*rate.Limiter // per API key digest

	failures *addrLimiter // failed authentication per source address

	// userKey verifies user tokens; nil when they are off. Swapped whole
	// on Reload.
	userKey atomic.Pointer[UserTokenKey]
	// cert is the listener's certificate, swapped whole on Reload; nil
	// without TLS.
	cert atomic.Pointer[tls.Certificate]
}

// New checks opts, reads the API keys file and registers the metrics.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("web: no store")
	}
	if opts.Counts == nil {
		return nil, errors.New("web: no counts function")
	}
	if opts.MetricsRole != 0 && !opts.MetricsRole.valid() {
		return nil, fmt.Errorf("web: metrics role %v is not a role", opts.MetricsRole)
	}
	s := &Server{
		opts:     opts,
		log:      cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		now:      opts.Now,
		reg:      opts.Registry,
		metrics:  opts.Metrics,
		limiters: map[[32]byte]*rate.Limiter{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.opts.RatePerSecond <= 0 {
		s.opts.RatePerSecond = DefaultRatePerSecond
	}
	if s.opts.Burst <= 0 {
		s.opts.Burst = DefaultBurst
	}
	o := &s.opts
	if o.AuthFailRatePerSecond <= 0 {
		o.AuthFailRatePerSecond = DefaultAuthFailRate
	}
	for _, f := range []struct {
		v *int
		d int
	}{
		{&o.AuthFailBurst, DefaultAuthFailBurst},
		{&o.MaxTrackedAddrs, DefaultMaxTrackedAddrs},
	} {
		if *f.v <= 0 {
			*f.v = f.d
		}
	}
	for _, f := range []struct {
		v *time.Duration
		d time.Duration
	}{
		{&o.ReadHeaderTimeout, ReadHeaderTimeout},
		{&o.ReadTimeout, ReadTimeout},
		{&o.WriteTimeout, WriteTimeout},
		{&o.IdleTimeout, IdleTimeout},
	} {
		if *f.v <= 0 {
			*f.v = f.d
		}
	}
	s.failures = newAddrLimiter(o.AuthFailRatePerSecond, o.AuthFailBurst, o.MaxTrackedAddrs)
	if opts.APIKeysFile != "" {
		if err := s.ReloadKeys(); err != nil {
			return nil, err
		}
	}
	if err := s.reloadUserTokenKey(); err != nil {
		return nil, err
	}
	if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
		return nil, errors.New("web: set both TLS certificate and key files, or neither")
	}
	if err := s.reloadTLS(); err != nil {
		return nil, err
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	if s.metrics == nil {
		m, err := newMetrics(s.reg)
		if err != nil {
			return nil, fmt.Errorf("web: register metrics: %w", err)
		}
		s.metrics = m
	}
	if opts.Now != nil { // the chart's hours follow the server's clock (tests)
		s.metrics.history.mu.Lock()
		s.metrics.history.now = opts.Now
		s.metrics.history.mu.Unlock()
	}
	if err := s.reg.Register(newGauges(s)); err != nil {
		return nil, fmt.Errorf("web: register gauges: %w", err)
	}
	s.handler = s.routes()
	return s, nil
}

// Metrics returns the counters the daemon feeds (ObserveFetch, ObservePush).
func (s *Server) Metrics() *Metrics { return s.metrics }

// Handler returns the handler of every route.
func (s *Server) Handler() http.Handler { return s.handler }

// HTTPServer returns a server for addr with the timeouts and header limit
// that keep slow or oversized clients from tying it up (reliability.md §4).
// With TLS configured its TLSConfig is set: serve it with ServeTLS(ln, "", "").
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		TLSConfig:         s.TLSConfig(),
		Addr:              addr,
		Handler:           s.handler,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.Routes() {
		s.handle(mux, rt)
	}
	s.dashboardRoutes(mux) // GET /, /login, POST /login, /logout
	s.webPushRoutes(mux)   // GET /webpush/, /v1/webpush/key
	mux.HandleFunc("GET /healthz", s.healthz)
	if s.opts.MetricsRole == 0 {
		mux.Handle("GET /metrics", s.metricsHandler())
	}
	return s.common(mux)
}

// metricsHandler serves the registry in Prometheus text format.
func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		// A store error at scrape time leaves the gauges out but keeps
		// the counters, rather than failing the whole scrape.
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// common sets the headers every answer carries, turns the mux's plain-text
// 404 and 405 into JSON errors and turns a panic into a logged 500.
func (s *Server) common(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { // net/http's own way to abort a response
					panic(v)
				}
				s.log.Error("http handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		handler, pattern := mux.Handler(r)
		if pattern == "" {
			// No route: let the mux decide between 404, 405 (with Allow)
			// and a redirect, then answer in JSON.
			cw := &captureWriter{header: http.Header{}}
			handler.ServeHTTP(cw, r)
			if allow := cw.header.Get("Allow"); allow != "" {
				h.Set("Allow", allow)
			}
			if loc := cw.header.Get("Location"); loc != "" {
				h.Set("Location", loc)
			}
			status := cmp.Or(cw.status, http.StatusNotFound)
			writeError(w, status, http.StatusText(status))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// captureWriter records the status and headers of the mux's own error
// answers and discards their text body.
type captureWriter struct {
	header http.Header
	status int
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
}
func (c *captureWriter) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return len(b), nil
}

// healthz answers 503 for the daemon's own faults (Health), 200 "degraded"
// with the reason when only a service it sends to fails (Degraded), else
// 200 "ok".
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if s.opts.Health != nil {
		if err := s.opts.Health(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
			return
		}
	}
	if s.opts.Degraded != nil {
		if bad, why := s.opts.Degraded(); bad {
			writeJSON(w, http.StatusOK, map[string]string{"status": "degraded", "reason": why})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// errorBody is every error answer.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own types are written; a marshal error is a bug.
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// internalError logs err (never sent to the client: it may name paths) and answers 500.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("http request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error")
}
