package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/channeluri"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/fetch"
	"github.com/tilecast/tilecast/notify"
	"github.com/tilecast/tilecast/notify/mpns"
	"github.com/tilecast/tilecast/notify/webpush"
	"github.com/tilecast/tilecast/notify/wns"
	"github.com/tilecast/tilecast/store"
	"github.com/tilecast/tilecast/store/postgres"
)

// userAgent names tilecast and its version in every feed request and push.
func userAgent() string {
	return "tilecast/" + version + " (+https://github.com/tilecast/tilecast)"
}

// loadConfig loads and validates the config; any problem is a usage error (exit 2).
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, usagef("--config FILE is required")
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

// newLogger builds the slog logger of log.level / log.format, writing to w (stderr).
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Log.SlogLevel()}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// stateStore is what the commands use of the state, whichever store
// keeps it: the bbolt file (*store.DB) or a PostgreSQL database
// (*postgres.DB). What only one of them has (bbolt's send log and
// backup, PostgreSQL's run lock) is asked of the concrete type.
type stateStore interface {
	tilecast.Store
	FeedStates() (map[tilecast.FeedKey]tilecast.FeedState, error)
	AddChannel(ch tilecast.Channel) (tilecast.Channel, bool, error)
	ImportChannels(chs []tilecast.Channel) (added, updated int, err error)
	ChannelByURI(uri string) (tilecast.Channel, error)
	RemoveChannel(id string) error
	Channels(user string) ([]tilecast.Channel, error)
	ChannelsPage(f tilecast.ChannelFilter, cursor string, limit int) ([]tilecast.Channel, string, error)
	ExpiredChannels(now time.Time, limit int) ([]tilecast.Channel, error)
	RemoveExpiredChannel(id string, now time.Time) (bool, error)
	OutcomesPage(f tilecast.OutcomeFilter, cursor string, limit int) ([]tilecast.Outcome, string, error)
	DeadLetters(limit int) ([]tilecast.DeadLetter, error)
	DeadLettersPage(cursor string, limit int) ([]tilecast.DeadLetter, string, error)
	Counts() (tilecast.Counts, error)
	PruneLedger() (int, error)
	Close() error
}

var (
	_ stateStore = (*store.DB)(nil)
	_ stateStore = (*postgres.DB)(nil)
)

// openStore opens the state: the bbolt file, logging what the open does
// to it (an upgrade's migration) and calling progress after each batch of
// a migration that rewrites it (nil: nothing), waiting at most timeout
// for its lock (a file held by a running daemon is a clear error, not a
// hang); or the PostgreSQL database of a postgres:// URL, migrating its
// schema likewise.
func openStore(cfg *config.Config, log *slog.Logger, timeout time.Duration, progress func(done, total int)) (stateStore, error) {
	if config.IsDatabaseURL(cfg.State) {
		return openDatabase(cfg, log, progress)
	}
	db, err := store.Open(cfg.State, store.Options{Timeout: timeout, Failpoint: failpointFromEnv(), Logger: log, Progress: progress})
	if err != nil {
		if errors.Is(err, tilecast.ErrStateLocked) {
			return nil, usageError{fmt.Errorf("%s: %w", cfg.State, err)}
		}
		return nil, err
	}
	return db, nil
}

// openDatabase opens the PostgreSQL state of cfg, with the password of
// [store] password_file when it is set.
func openDatabase(cfg *config.Config, log *slog.Logger, progress func(done, total int)) (*postgres.DB, error) {
	return openDatabaseAs(cfg, log, progress, postgres.Options{})
}

// openDatabaseAs is openDatabase with the instance options of a process
// that runs the Bot (postgres.Options.Instance and the lease fields).
func openDatabaseAs(cfg *config.Config, log *slog.Logger, progress func(done, total int), inst postgres.Options) (*postgres.DB, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A connection per concurrent fetch (their commits), plus the
	// deliverer's reads and writes, the API, the heartbeat and the run
	// lock's.
	conns := int32(max(8, cfg.Fetch.Concurrency+5))
	o := inst
	o.Failpoint, o.Logger, o.Progress, o.PasswordFile, o.MaxConns = failpointFromEnv(), log, progress, cfg.Store.PasswordFile, conns
	return postgres.Open(ctx, cfg.State, o)
}

// defaultInstance names a process among those sharing a database when
// `run --instance` is not given: its host and process ID.
func defaultInstance(suffix string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "tilecast"
	}
	return fmt.Sprintf("%s-%s%d", host, suffix, os.Getpid())
}

// duplicateSink passes the possible duplicates a database instance counts
// (leases a dead instance left) to the Bot's observer, and its wake-ups
// (new work another instance committed) to the Bot's deliverer, once the
// Bot is wired.
type duplicateSink struct {
	mu  sync.Mutex
	bot *tilecast.Bot
}

func (s *duplicateSink) observe(n int) {
	s.mu.Lock()
	b := s.bot
	s.mu.Unlock()
	if b != nil && b.Observer != nil {
		b.Observer.ObservePossibleDuplicates(n)
	}
}

func (s *duplicateSink) wake() {
	s.mu.Lock()
	b := s.bot
	s.mu.Unlock()
	if b != nil {
		b.Wake()
	}
}

func (s *duplicateSink) set(b *tilecast.Bot) {
	s.mu.Lock()
	s.bot = b
	s.mu.Unlock()
}

// stateName is cfg.State as logs and messages show it: a URL without its
// password.
func stateName(state string) string {
	if config.IsDatabaseURL(state) {
		return postgres.Redact(state)
	}
	return state
}

// newEncoder returns the MPNS payload encoder.
func newEncoder(*config.Config) *mpns.Encoder {
	return mpns.NewEncoder(mpns.EncoderOptions{})
}

// requestOptions are what the MPNS requests of the [push] section carry
// besides the notification: the ones newPusher's client sends, and the
// ones `send --dry-run` and `preview` print.
func requestOptions(cfg *config.Config) mpns.RequestOptions {
	return mpns.RequestOptions{Class: cfg.Push.Class, UserAgent: userAgent()}
}

// newPusher returns the MPNS client of the [push] section.
func newPusher(cfg *config.Config) (*mpns.Client, error) {
	ro := requestOptions(cfg)
	return mpns.NewClient(mpns.ClientOptions{
		Timeout:        cfg.Push.Timeout,
		Concurrency:    cfg.Push.Concurrency,
		Class:          ro.Class,
		ClientCertFile: cfg.Push.ClientCert,
		ClientKeyFile:  cfg.Push.ClientKey,
		AllowPrivate:   cfg.Push.AllowPrivate,
		UserAgent:      ro.UserAgent,
	})
}

// newWNSClient returns the WNS client of [push.wns] (its access tokens
// from the configured flow) and the http.Client of its token requests;
// nil, nil without [push.wns]. The secret is read here, at start and on
// each reload, and is never logged. shared, when set (a PostgreSQL
// state), is where the instances share their access tokens.
func newWNSClient(cfg *config.Config, log *slog.Logger, shared wns.TokenCache) (*wns.Client, *http.Client, error) {
	w := cfg.Push.WNS
	if w == nil {
		return nil, nil, nil
	}
	secret, err := wns.ReadSecret(w.ClientSecretFile)
	if err != nil {
		return nil, nil, fmt.Errorf("push.wns.client_secret_file: %w", err)
	}
	hc := wns.NewTokenClient(wns.TokenClientOptions{})
	tokens, err := wns.NewTokenSource(w.Credentials(secret), wns.TokenOptions{
		HTTPClient: hc,
		// An http token URL is refused by the config unless
		// allow_private is set (the emulator).
		AllowHTTP: cfg.Push.AllowPrivate,
		Logger:    log,
		Shared:    shared,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("push.wns: %w", err)
	}
	client, err := wns.NewClient(wns.ClientOptions{
		Tokens: tokens,
		// Other hosts than *.notify.windows.com only where the
		// registration accepts them: with allow_private (the emulator).
		AllowedHosts: wnsAllowedHosts(cfg),
		Timeout:      cfg.Push.Timeout,
		Concurrency:  cfg.Push.Concurrency,
		AllowPrivate: cfg.Push.AllowPrivate,
		UserAgent:    userAgent(),
		Logger:       log,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("push.wns: %w", err)
	}
	return client, hc, nil
}

// wnsAllowedHosts are the hosts besides *.notify.windows.com that WNS
// sends may go to: push.allowed_hosts when push.allow_private is set (the
// emulator, tests), else none.
func wnsAllowedHosts(cfg *config.Config) []string {
	if !cfg.Push.AllowPrivate {
		return nil
	}
	return cfg.Push.AllowedHosts
}

// loadVAPIDKey reads [push.webpush] vapid_private_key_file; nil, nil when
// Web Push is not configured. The daemon reads it once, at start: it is
// the key every subscription was made with and the one GET
// /v1/webpush/key serves, so a reload keeps it (the file's path needs a
// restart, and a file rewritten in place is not read again).
func loadVAPIDKey(cfg *config.Config) (*webpush.VAPIDKey, error) {
	if !cfg.Push.WebPush.Enabled() {
		return nil, nil
	}
	k, err := webpush.LoadVAPIDKey(cfg.Push.WebPush.VAPIDPrivateKeyFile)
	if err != nil {
		return nil, fmt.Errorf("push.webpush.vapid_private_key_file: %w", err)
	}
	return k, nil
}

// newWebPushClient returns the Web Push client of [push.webpush], signing
// with key (nil: read from the config's file); nil, nil without
// [push.webpush]. Each feed's [feed.webpush] urgency is read from cfg.
func newWebPushClient(cfg *config.Config, log *slog.Logger, key *webpush.VAPIDKey) (*webpush.Client, error) {
	w := cfg.Push.WebPush
	if !w.Enabled() {
		return nil, nil
	}
	if key == nil {
		var err error
		if key, err = loadVAPIDKey(cfg); err != nil {
			return nil, err
		}
	}
	signer, err := webpush.NewSigner(key, w.Subject, webpush.SignerOptions{})
	if err != nil {
		return nil, fmt.Errorf("push.webpush: %w", err)
	}
	urgency := make(map[string]string, len(cfg.Feeds))
	for _, f := range cfg.Feeds {
		if f.WebPushUrgency != "" {
			urgency[f.Name] = f.WebPushUrgency
		}
	}
	c, err := webpush.NewClient(webpush.ClientOptions{
		VAPID:        signer,
		Timeout:      cfg.Push.Timeout,
		Concurrency:  cfg.Push.Concurrency,
		AllowPrivate: cfg.Push.AllowPrivate,
		UserAgent:    userAgent(),
		UrgencyToast: w.UrgencyToast,
		UrgencyTile:  w.UrgencyTile,
		FeedUrgency:  func(feed string) string { return urgency[feed] },
		Pad:          w.Pad,
		Service:      webPushService(w.AllowedHosts),
		Logger:       log,
	})
	if err != nil {
		return nil, fmt.Errorf("push.webpush: %w", err)
	}
	return c, nil
}

// webPushService names the push service of an endpoint origin for the
// Web Push client's refusal pause: the wildcard pattern of allowed (the
// [push.webpush] allowed_hosts) its host matches, so that all of a
// service's hosts (Edge's regional *.notify.windows.com) pause together;
// "" (the origin itself) for a host an exact pattern names.
//
// It is asked on every push, and matching puts each pattern through IDNA
// (~5 µs for the default four), so each origin's answer is kept: the
// origins are the push services' hosts, a few dozen. A reload builds a
// new client, and with it a new function for the new allowed_hosts.
func webPushService(allowed []string) func(origin string) string {
	const keep = 1024 // origins remembered; more are matched each time
	var mu sync.Mutex
	known := map[string]string{}
	return func(origin string) string {
		mu.Lock()
		name, ok := known[origin]
		mu.Unlock()
		if ok {
			return name
		}
		if u, err := url.Parse(origin); err == nil {
			if p, ok := channeluri.MatchingPattern(u.Hostname(), allowed); ok && strings.HasPrefix(p, "*.") {
				name = p
			}
		}
		mu.Lock()
		if len(known) < keep {
			known[origin] = name
		}
		mu.Unlock()
		return name
	}
}

// pushers are the push clients of the [push] section, one per transport
// it configures, behind one tilecast.PushMux: MPNS always, WNS with
// [push.wns], Web Push with [push.webpush]. A reload builds a new set and
// closes the old one once its sends are done.
type pushers struct {
	mux     *tilecast.PushMux
	closers []func()
}

// newPushers builds the clients of cfg's [push] section; Web Push signs
// with vapid, the key read at start (nil: read it from the config); WNS
// shares its access tokens through tokens (nil: its own).
func newPushers(cfg *config.Config, log *slog.Logger, vapid *webpush.VAPIDKey, tokens wns.TokenCache) (*pushers, error) {
	m, err := newPusher(cfg)
	if err != nil {
		return nil, err
	}
	p := &pushers{closers: []func(){m.Close}}
	byTransport := map[tilecast.Transport]tilecast.Pusher{tilecast.TransportMPNS: m}
	missing := map[tilecast.Transport]string{
		tilecast.TransportWNS:     "the config has no [push.wns] credentials (client_id, client_secret_file)",
		tilecast.TransportWebPush: "the config has no [push.webpush] (subject, vapid_private_key_file)",
	}
	w, hc, err := newWNSClient(cfg, log, tokens)
	if err != nil {
		p.Close()
		return nil, err
	}
	if w != nil {
		byTransport[tilecast.TransportWNS] = w
		p.closers = append(p.closers, w.Close, hc.CloseIdleConnections)
		delete(missing, tilecast.TransportWNS)
	}
	wp, err := newWebPushClient(cfg, log, vapid)
	if err != nil {
		p.Close()
		return nil, err
	}
	if wp != nil {
		byTransport[tilecast.TransportWebPush] = wp
		p.closers = append(p.closers, wp.Close)
		delete(missing, tilecast.TransportWebPush)
	}
	p.mux = tilecast.NewPushMux(byTransport, tilecast.PushMuxOptions{Missing: missing, Logger: log})
	return p, nil
}

// Close releases every client's idle connections.
func (p *pushers) Close() {
	for _, c := range p.closers {
		c()
	}
}

// newRenderers returns the renderer of each transport's channels: MPNS
// payloads from newEncoder, WNS payloads with each feed's [feed.wns]
// options, Web Push JSON for the shipped service worker (one push per tile
// update, the count inside; toasts with each feed's icon, which the config
// loader resolved from [feed.webpush] and [push.webpush] icon into the
// feed, so a reload applies it without new renderers). images checks tile
// images (image_check) for all three.
func newRenderers(cfg *config.Config, images notify.ImageChecker) (*notify.Renderer, map[tilecast.Transport]tilecast.Renderer) {
	m := notify.NewRenderer(newEncoder(cfg), notify.RendererOptions{Images: images})
	return m, map[tilecast.Transport]tilecast.Renderer{
		tilecast.TransportMPNS:    m,
		tilecast.TransportWNS:     wns.NewRenderer(notify.RendererOptions{Images: images}),
		tilecast.TransportWebPush: webpush.NewRenderer(nil, notify.RendererOptions{Images: images}),
	}
}

// newFetcher returns the feed fetcher of the [fetch] section.
func newFetcher(cfg *config.Config, log *slog.Logger) *fetch.Client {
	return fetch.New(fetch.Options{
		Timeout:      cfg.Fetch.Timeout,
		MaxBody:      cfg.Fetch.MaxBody,
		UserAgent:    userAgent(),
		AllowPrivate: cfg.Fetch.AllowPrivate,
		Logger:       log,
	})
}

// newBot wires the concrete parts into a Bot. The fetcher and the push
// client are held for a reload to replace (daemonBot.applyReload).
func newBot(cfg *config.Config, db stateStore, log *slog.Logger) (*daemonBot, error) {
	vapid, err := loadVAPIDKey(cfg)
	if err != nil {
		return nil, err
	}
	// On PostgreSQL the instances share what they learn of the push
	// services (design.md §10): the hosts whose circuit is open and the
	// WNS access tokens. A bbolt state is one process's: nothing to share.
	var tokens wns.TokenCache
	var hosts tilecast.HostHealth
	if pg, ok := db.(*postgres.DB); ok {
		tokens, hosts = pg, pg
	}
	ps, err := newPushers(cfg, log, vapid, tokens)
	if err != nil {
		return nil, err
	}
	// The send log counts possible duplicates after a crash. A bbolt
	// state has one next to its file; a PostgreSQL state has none (the
	// leases instances leave will count them).
	var sendLog tilecast.SendLog
	if b, ok := db.(*store.DB); ok {
		l, err := b.SendLog()
		if err != nil {
			ps.Close()
			return nil, err
		}
		sendLog = l
	}
	d := &daemonBot{
		fetcher: tilecast.NewReloadable(newFetcher(cfg, log), (*fetch.Client).Close),
		pushers: tilecast.NewReloadable(ps, (*pushers).Close),
		vapid:   vapid,
		tokens:  tokens,
	}
	d.breaker = tilecast.NewBreaker(livePusher{d.pushers}, tilecast.BreakerOptions{Logger: log, Shared: hosts})
	fetcher := liveFetcher{d.fetcher} // also checks tile images, through the same guarded transport
	mpnsRenderer, renderers := newRenderers(cfg, fetcher)
	counted := &errorCountingStore{Store: db}
	d.Bot = &tilecast.Bot{
		Fetcher:          fetcher,
		Renderer:         mpnsRenderer,
		Renderers:        renderers,
		Pusher:           d.breaker,
		Store:            counted,
		Logger:           log,
		PushConcurrency:  cfg.Push.Concurrency,
		FetchConcurrency: cfg.Fetch.Concurrency,
		MaxAttempts:      cfg.Push.MaxAttempts,
		Failpoint:        failpointFromEnv(),
		SendLog:          sendLog,
	}
	counted.bot = d.Bot
	d.SetFeeds(cfg.Feeds)
	d.SetDefaultTTL(cfg.Defaults.TTL)
	return d, nil
}

// feedByName finds a configured feed.
func feedByName(cfg *config.Config, name string) (*tilecast.Feed, error) {
	for i := range cfg.Feeds {
		if cfg.Feeds[i].Name == name {
			return &cfg.Feeds[i], nil
		}
	}
	return nil, usagef("no feed named %q in %s", name, cfg.Path)
}
