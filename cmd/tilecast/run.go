package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/tilecast/tilecast"

	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/schedule"
	"github.com/tilecast/tilecast/store"
	"github.com/tilecast/tilecast/store/postgres"
	"github.com/tilecast/tilecast/web"
)

// The daemon sweeps the delivery ledger an hour after it starts (so a
// daemon restarted often still does), then daily.
const (
	ledgerPruneFirst    = time.Hour
	ledgerPruneInterval = 24 * time.Hour
)

// shutdownGrace bounds how long `run` waits for running fetches on stop;
// sends in flight are bounded by push.timeout on top of it.
const shutdownGrace = 20 * time.Second

func cmdRun(ctx context.Context, e env) error {
	fs := newFlags(e, "run", "run --config FILE\n\n"+
		"Runs the daemon until SIGTERM or SIGINT. SIGHUP reloads the config: feeds,\n"+
		"[fetch] and [push] apply to the next fetch or send (a new fetcher and push\n"+
		"clients: MPNS, WNS with [push.wns], whose secret file is re-read, and Web Push\n"+
		"with [push.webpush]: subject, urgencies, pad and allowed_hosts apply);\n"+
		"state, log.*, http.listen, the [http] file paths, http.metrics_auth,\n"+
		"push.concurrency and push.webpush.vapid_private_key_file (the key the\n"+
		"subscriptions were made with, read once at start) are logged as needs\n"+
		"restart and keep their value, and so are secret files read from systemd\n"+
		"credentials ($CREDENTIALS_DIRECTORY).\n"+
		"/healthz is 503 for the daemon's own faults and 200 \"degraded\" when only a\n"+
		"service it sends to fails (a push host whose circuit is open, a WNS token\n"+
		"endpoint, refused credentials, a Web Push service paused after a run of\n"+
		"VAPID refusals).\n")
	cfgPath := fs.String("config", "", "config file (TOML)")
	instance := fs.String("instance", "", "with a PostgreSQL state: this daemon's name among the instances sharing it,\n"+
		"unique to it (default: host-PID; tilecast@.service gives host-N)")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	name := *instance
	if name == "" {
		name = defaultInstance("")
	}
	bot, db, log, err := openBot(cfg, e.stderr, name)
	if err != nil {
		return err
	}
	defer db.Close()
	return runDaemon(ctx, cfg, *cfgPath, bot, db, log, e.health)
}

// openBot builds the logger, opens the state (waiting at most 5 s for the
// lock of a file; taking the shared run lock of a database, which only a
// state copy holds against it) and wires a Bot; the caller closes the store.
//
// On a database the process is an instance named instance among those
// sharing it (design.md §10): it leases the entries it sends, about its
// send window at a time, and its scheduled runs claim their ticks.
func openBot(cfg *config.Config, stderr io.Writer, instance string) (*daemonBot, stateStore, *slog.Logger, error) {
	log := newLogger(cfg, stderr)
	var db stateStore
	var err error
	dups := &duplicateSink{}
	if config.IsDatabaseURL(cfg.State) {
		window := cfg.Push.Concurrency
		if window <= 0 {
			window = tilecast.DefaultPushConcurrency
		}
		db, err = openDatabaseAs(cfg, log, migrationProgress(log), postgres.Options{
			Instance: instance, LeaseBatch: 2 * window, PossibleDuplicates: dups.observe, Wake: dups.wake, Version: version})
	} else {
		db, err = openStore(cfg, log, 5*time.Second, migrationProgress(log))
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if pg, ok := db.(*postgres.DB); ok {
		if err := pg.Hold(context.Background(), false); err != nil {
			db.Close()
			return nil, nil, nil, err
		}
	}
	bot, err := newBot(cfg, db, log)
	if err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	if pg, ok := db.(*postgres.DB); ok {
		bot.Ticks = pg
		bot.Caps = pg
	}
	dups.set(bot.Bot)
	return bot, db, log, nil
}

// runDaemon schedules every feed, delivers continuously, serves the API
// (when http.listen is set) and reloads the config on SIGHUP, until ctx is
// cancelled (SIGINT/SIGTERM). Then it stops taking new work, lets running
// fetches and in-flight sends finish and be recorded, and returns; the
// caller closes the store. limits, when set, replaces the health limits
// (defaultHealthLimits).
func runDaemon(ctx context.Context, cfg *config.Config, cfgPath string, bot *daemonBot, db stateStore, log *slog.Logger,
	limits *healthLimits) error {
	sched := schedule.New(bot, log)
	if err := sched.Apply(cfg.Feeds); err != nil {
		return usageError{err}
	}

	var cur struct {
		sync.Mutex
		cfg *config.Config
	}
	cur.cfg = cfg
	current := func() *config.Config { cur.Lock(); defer cur.Unlock(); return cur.cfg }
	lim := defaultHealthLimits(db)
	if limits != nil {
		lim = *limits
	}
	health := func() error { return daemonHealth(ctx, current(), sched, bot.Bot, db, lim) }
	alive := func() error { return daemonAlive(ctx, current(), sched, bot.Bot, db, lim) }
	if pg, ok := db.(*postgres.DB); ok {
		health, alive = databaseHealth(ctx, current, sched, bot.Bot, pg, lim)
	}

	var api *web.Server
	var httpSrv *http.Server
	if cfg.HTTP.Listen != "" {
		// GET /v1/backup sends a bbolt file, spooled next to it first so
		// that a slow client holds no read transaction; a database is
		// backed up with pg_dump (nil: 501).
		var backup web.BackupFunc
		if b, ok := db.(*store.DB); ok {
			backup = b.Snapshot
		}
		var instances func() ([]tilecast.Instance, error)
		if pg, ok := db.(*postgres.DB); ok {
			instances = pg.Instances
		}
		var err error
		api, err = web.New(web.Options{
			Store:                  liveStates{db, bot.Bot},
			Counts:                 db.Counts,
			Feeds:                  func() []tilecast.Feed { return current().Feeds },
			AllowedHosts:           func() []string { return current().Push.AllowedHosts },
			AllowPrivate:           func() bool { return current().Push.AllowPrivate },
			TransportHosts:         func() map[tilecast.Transport][]string { return transportHosts(current()) },
			APIKeysFile:            cfg.HTTP.APIKeysFile,
			MetricsRole:            metricsRole(cfg.HTTP.MetricsAuth),
			UserTokenKeyFile:       cfg.HTTP.UserTokenKeyFile,
			UserTokenPublicKeyFile: cfg.HTTP.UserTokenPublicKeyFile,
			TLSCertFile:            cfg.HTTP.TLSCert,
			TLSKeyFile:             cfg.HTTP.TLSKey,
			Subscribe:              bot.Subscribe,
			Health:                 health,
			Degraded:               bot.Degraded,
			WebPushPublicKey:       bot.webPushPublicKey(),
			NextRun:                sched.Next,
			Instances:              instances,
			Backup:                 backup,
			PreviewImage:           previewImages(current, log.With("component", "dashboard")),
			DeadLetters: func(cursor string, limit int) ([]web.DeadLetter, string, error) {
				ds, next, err := db.DeadLettersPage(cursor, limit)
				out := make([]web.DeadLetter, len(ds))
				for i, d := range ds {
					out[i] = web.DeadLetter(d)
				}
				return out, next, err
			},
			Logger: log.With("component", "http"),
		})
		if err != nil {
			return fmt.Errorf("http api: %w", err)
		}
		bot.Observer = api.Metrics()
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http.listen: %w", err)
		}
		httpSrv = api.HTTPServer(cfg.HTTP.Listen)
		go func() {
			serve := httpSrv.Serve
			if httpSrv.TLSConfig != nil {
				// The certificate comes from TLSConfig.GetCertificate.
				serve = func(ln net.Listener) error { return httpSrv.ServeTLS(ln, "", "") }
			}
			if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server stopped", "error", err.Error())
			}
		}()
	}
	sched.Start(ctx)

	dctx, stopDeliver := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var deliverErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		deliverErr = bot.Deliver(dctx)
	}()

	// Deliveries a crash left half-enqueued (paged fan-outs) finish first.
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := bot.ResumeFanOuts(ctx); err != nil {
			log.Error("resume interrupted deliveries", "error", err.Error())
		}
	}()
	// Channels whose Web Push subscription expired go at start and then
	// hourly, sent to or not.
	wg.Add(1)
	go func() {
		defer wg.Done()
		bot.RunExpirySweeps(ctx, db, tilecast.ExpirySweepInterval)
	}()
	// Cron does not catch up on runs missed while the daemon was down:
	// fetch at once every feed whose last fetch is older than its schedule.
	sched.CatchUp(ctx, cfg.Feeds, db)

	// systemd: ready only now that config, store, listener and scheduler are up.
	sdNotify(log, daemon.SdNotifyReady)
	go watchdog(ctx, log, alive)
	wg.Add(1)
	go func() {
		defer wg.Done()
		pruneLedgers(ctx, db, log, ledgerPruneFirst, ledgerPruneInterval)
	}()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log.Info("tilecast running", "feeds", len(cfg.Feeds), "state", stateName(cfg.State), "listen", cfg.HTTP.Listen, "version", version)
	for {
		select {
		case <-hup:
			reload(cfgPath, current(), sched, bot, api, log, func(next *config.Config) {
				cur.Lock()
				cur.cfg = next
				cur.Unlock()
			})
		case <-ctx.Done():
			sdNotify(log, daemon.SdNotifyStopping)
			log.Info("stopping: no new work; waiting for running fetches and sends")
			if httpSrv != nil {
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				httpSrv.Shutdown(sctx)
				cancel()
			}
			if !sched.Stop(shutdownGrace) {
				log.Warn("shutdown grace expired with fetches still running")
			}
			stopDeliver()
			wg.Wait()
			log.Info("stopped")
			return deliverErr
		}
	}
}

// metricsRole maps http.metrics_auth to the role GET /metrics needs.
func metricsRole(auth string) web.Role {
	if auth == config.MetricsAuthAdmin {
		return web.RoleAdmin
	}
	return 0
}

// reload is SIGHUP: it loads the config at path and puts it into effect
// (set gets the config the daemon now runs with). Keys that cannot change
// while the daemon runs (config.NeedsRestart) keep their running value and
// are logged as needs restart; everything else applies to the next fetch,
// send or request (config.ApplyReload). A config that does not load, a
// push client that cannot be built from it, or feeds the scheduler
// refuses change nothing.
func reload(path string, running *config.Config, sched *schedule.Scheduler, bot *daemonBot, api *web.Server,
	log *slog.Logger, set func(*config.Config)) {
	loaded, err := config.Load(path)
	if err != nil {
		log.Error("config reload rejected; the running config stays", "error", err.Error())
		return
	}
	next, restart := config.ApplyReload(running, loaded)
	// The push clients first: their certificate files and the WNS
	// client secret must load before anything changes.
	pusher, err := newPushers(next, bot.Logger, bot.vapid, bot.tokens)
	if err != nil {
		log.Error("config reload failed; the running config stays", "error", err.Error())
		return
	}
	if err := sched.Apply(next.Feeds); err != nil {
		pusher.Close()
		log.Error("config reload failed; the running config stays", "error", err.Error())
		return
	}
	for _, k := range restart {
		log.Warn("needs restart", "key", k)
	}
	// systemd copies credentials (LoadCredential=) once, at start: a
	// reload re-reads that copy, so a changed secret file takes effect
	// after a restart only. Said on every reload: the daemon cannot see
	// whether the source changed.
	for _, k := range slices.Sorted(maps.Keys(loaded.Credentials)) {
		log.Warn("needs restart", "key", k, "credential", loaded.Credentials[k],
			"reason", "systemd passes credentials at start only")
	}
	bot.applyReload(next, pusher)
	set(next)
	if api != nil {
		// The API's files (keys, user token key, TLS pair) are re-read.
		if err := api.Reload(); err != nil {
			log.Error("http reload failed; what failed stays as it was", "error", err.Error())
		}
	}
	log.Info("config reloaded", "feeds", len(next.Feeds))
}

// heartbeat is the part of the scheduler health reads.
type heartbeat interface{ LastBeat() time.Time }

// healthLimits are how long the daemon's loops may go without progress
// before /healthz and the watchdog count them stuck. Tests shorten them
// (env.health) to outlast them in seconds rather than minutes.
type healthLimits struct {
	beat  time.Duration // the scheduler's heartbeat (it beats every 10 s)
	pass  time.Duration // the deliverer: a pass, a dispatch, or a store retry on time
	fetch time.Duration // a fetch, on top of twice fetch.timeout
	// slack is how long a store call may wait on top of pass and fetch
	// (a database's timeout): a loop waiting for an unreachable database
	// is not stuck.
	slack time.Duration
}

// defaultHealthLimits are the limits of a daemon on db.
func defaultHealthLimits(db stateStore) healthLimits {
	lim := healthLimits{beat: time.Minute, pass: 2 * time.Minute, fetch: time.Minute}
	if _, ok := db.(*postgres.DB); ok {
		lim.slack = postgres.DefaultTimeout
	}
	return lim
}

// daemonHealth is /healthz for a bbolt state: daemonAlive, and the
// deliverer is not waiting for the store to record send outcomes.
func daemonHealth(ctx context.Context, cfg *config.Config, sched heartbeat, bot *tilecast.Bot, db interface {
	Counts() (tilecast.Counts, error)
}, lim healthLimits) error {
	if err := daemonAlive(ctx, cfg, sched, bot, db, lim); err != nil {
		return err
	}
	return recordHealth(bot)
}

// daemonAlive is the watchdog's condition for a bbolt state: the
// scheduler ticks, no fetch is stuck, the deliverer makes passes (or
// retries a write the store refuses: a restart would not free a full
// disk), the store answers.
func daemonAlive(ctx context.Context, cfg *config.Config, sched heartbeat, bot *tilecast.Bot, db interface {
	Counts() (tilecast.Counts, error)
}, lim healthLimits) error {
	if err := loopHealth(ctx, cfg, sched, bot, lim); err != nil {
		return err
	}
	if _, err := db.Counts(); err != nil { // one record: no scan of the file
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// loopHealth is the daemon's own loops' part of health: the scheduler
// ticks, no fetch is stuck, the deliverer runs (delivererHealth).
func loopHealth(ctx context.Context, cfg *config.Config, sched heartbeat, bot *tilecast.Bot, lim healthLimits) error {
	if ctx.Err() != nil {
		return errors.New("stopping")
	}
	if age := time.Since(sched.LastBeat()); age > lim.beat {
		return fmt.Errorf("scheduler has not ticked for %s", age.Round(time.Second))
	}
	oldest, lastPass := bot.Progress()
	if limit := 2*cfg.Fetch.Timeout + lim.fetch + lim.slack; oldest > limit {
		return fmt.Errorf("a fetch has been running for %s", oldest.Round(time.Second))
	}
	return delivererHealth(bot, lastPass, lim.pass+lim.slack)
}

// delivererHealth fails when the deliverer has made no pass for longer
// than limit, unless its recorder is retrying a write the store refused
// and that retry is not overdue by more than limit either. A full send
// window of unrecorded results stops the dispatcher during a store
// outage, but that deliverer is working and the store is the problem;
// one whose push never returns or that deadlocked neither passes nor
// retries, and stops the watchdog.
func delivererHealth(bot *tilecast.Bot, lastPass time.Time, limit time.Duration) error {
	age := time.Since(lastPass)
	if age <= limit {
		return nil
	}
	w := bot.StoreWait()
	if w.Since.IsZero() {
		return fmt.Errorf("the deliverer has not run for %s", age.Round(time.Second))
	}
	if late := time.Since(w.RetryAt); late > limit {
		return fmt.Errorf("the deliverer has not run for %s: it waits for the store since %s and its retry is %s overdue",
			age.Round(time.Second), w.Since.UTC().Format(time.RFC3339), late.Round(time.Second))
	}
	return nil
}

// recordHealth fails /healthz while the deliverer waits for the store to
// record send outcomes: nothing is delivered meanwhile, though the
// watchdog stays fed.
func recordHealth(bot *tilecast.Bot) error {
	if w := bot.StoreWait(); !w.Since.IsZero() {
		return fmt.Errorf("store: send outcomes not recorded since %s: %w", w.Since.UTC().Format(time.RFC3339), w.Err)
	}
	return nil
}

// databaseHealth is /healthz (health) and the watchdog's condition
// (alive) on a PostgreSQL state. /healthz is 503 while the database does
// not answer or does not record send outcomes, so a load balancer sends
// API calls to another instance; the watchdog stays fed while the
// daemon's own loops run, since restarting the process does not bring a
// database back.
func databaseHealth(ctx context.Context, cfg func() *config.Config, sched heartbeat, bot *tilecast.Bot, db *postgres.DB,
	lim healthLimits) (health, alive func() error) {
	alive = func() error { return loopHealth(ctx, cfg(), sched, bot, lim) }
	health = func() error {
		if err := alive(); err != nil {
			return err
		}
		if err := db.Ping(ctx, databasePingTimeout); err != nil {
			return err
		}
		return recordHealth(bot)
	}
	return health, alive
}

// databasePingTimeout bounds the database check of /healthz.
const databasePingTimeout = 5 * time.Second

// pruneLedgers runs PruneLedger first after first, then every interval,
// until ctx is done: a channel's ledger is pruned when its sends are
// recorded, this drops what no write touches any more (the ledgers of
// removed channels) and payloads nothing references. With several
// instances each prunes; the deletes are idempotent.
func pruneLedgers(ctx context.Context, db interface{ PruneLedger() (int, error) }, log *slog.Logger, first, interval time.Duration) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			t.Reset(interval)
			n, err := db.PruneLedger()
			if err != nil {
				log.Error("prune the delivery ledger", "error", err.Error())
				continue
			}
			log.Info("delivery ledger pruned", "dropped", n)
		}
	}
}

// startExtension is how much longer systemd is asked to wait for start-up
// after each batch of a state file migration.
const startExtension = 30 * time.Second

// migrationProgress is store.Options.Progress for the daemon: a migration
// that rewrites a large state file at start can outlast systemd's start
// timeout (TimeoutStartSec), so each committed batch extends it
// (EXTEND_TIMEOUT_USEC) and says how far it is (STATUS). Outside systemd
// it does nothing.
func migrationProgress(log *slog.Logger) func(done, total int) {
	return func(done, total int) {
		sdNotify(log, fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d\nSTATUS=migrating the state file: %d of %d records",
			startExtension.Microseconds(), done, total))
	}
}

// sdNotify tells systemd about a state change; outside systemd it does nothing.
func sdNotify(log *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Warn("sd_notify failed", "state", state, "error", err.Error())
	}
}

// watchdog pings systemd at half its WatchdogSec, but only while the daemon
// makes progress, so a process that is alive but stuck gets restarted.
func watchdog(ctx context.Context, log *slog.Logger, health func() error) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := health(); err != nil {
				log.Warn("watchdog not pinged: no progress", "error", err.Error())
				continue
			}
			sdNotify(log, daemon.SdNotifyWatchdog)
		}
	}
}

// liveStates is the state file as the API and dashboard read it, with the
// fetches that wrote nothing (304s, unchanged 200s) laid over the stored
// feed states, so "last fetch" is the last fetch, not the last write.
type liveStates struct {
	stateStore
	bot *tilecast.Bot
}

func (l liveStates) FeedStates() (map[tilecast.FeedKey]tilecast.FeedState, error) {
	states, err := l.stateStore.FeedStates()
	if err == nil {
		l.bot.OverlayFetches(states)
	}
	return states, err
}
