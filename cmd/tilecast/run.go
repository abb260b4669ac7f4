package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
)

// shutdownGrace bounds how long `run` waits for running fetches on stop;
// sends in flight are bounded by push.timeout on top of it.
const shutdownGrace = 20 * time.Second

func cmdRun(ctx context.Context, e env) error {
	fs := newFlags(e, "run", "run --config FILE")
	cfgPath := fs.String("config", "", "config file (TOML)")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg, e.stderr)
	db, err := openStore(cfg, 5*time.Second)
	if err != nil {
		return err
	}
	defer db.Close()
	bot, err := newBot(cfg, db, log)
	if err != nil {
		return err
	}
	return runDaemon(ctx, cfg, *cfgPath, bot, db, log)
}

// daemonStore is what runDaemon reads from the store besides the Bot's needs.
type daemonStore interface {
	FeedState(k tilecast.FeedKey) (tilecast.FeedState, bool, error)
}

// runDaemon schedules every feed, delivers continuously and reloads the
// config on SIGHUP, until ctx is cancelled (SIGINT/SIGTERM). Then it stops
// taking new work, lets running fetches and in-flight sends finish, and
// returns; the caller closes the store.
func runDaemon(ctx context.Context, cfg *config.Config, cfgPath string, bot *tilecast.Bot, db daemonStore, log *slog.Logger) error {
	sched := newScheduler(ctx, bot, log)
	if err := sched.apply(cfg.Feeds); err != nil {
		return usageError{err}
	}
	sched.start()

	dctx, stopDeliver := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var deliverErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		deliverErr = bot.Deliver(dctx)
	}()

	// Cron does not catch up on runs missed while the daemon was down:
	// fetch at once every feed whose last fetch is older than its schedule.
	catchUp(ctx, &wg, cfg.Feeds, bot, db, log)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log.Info("tilecast running", "feeds", len(cfg.Feeds), "state", cfg.State, "version", version)
	for {
		select {
		case <-hup:
			next, err := config.Load(cfgPath)
			if err != nil {
				log.Error("config reload rejected; the running config stays", "error", err.Error())
				continue
			}
			if err := sched.apply(next.Feeds); err != nil {
				log.Error("config reload failed", "error", err.Error())
				continue
			}
			bot.SetFeeds(next.Feeds)
			cfg.Feeds = next.Feeds
			log.Info("config reloaded", "feeds", len(next.Feeds))
		case <-ctx.Done():
			log.Info("stopping: no new work; waiting for running fetches and sends")
			if !sched.stop(shutdownGrace) {
				log.Warn("shutdown grace expired with fetches still running")
			}
			stopDeliver()
			wg.Wait()
			log.Info("stopped")
			return deliverErr
		}
	}
}

func catchUp(ctx context.Context, wg *sync.WaitGroup, feeds []tilecast.Feed, bot *tilecast.Bot, db daemonStore, log *slog.Logger) {
	now := time.Now()
	for i := range feeds {
		f := &feeds[i]
		st, ok, err := db.FeedState(tilecast.FeedKey{Feed: f.Name})
		if err != nil {
			log.Error("read feed state", "feed", f.Name, "error", err.Error())
			continue
		}
		if ok && !f.PerUser() {
			runs, err := nextRuns(f.Schedule, st.LastFetch, 1)
			if err != nil || len(runs) == 0 || runs[0].After(now) {
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := bot.RunFeed(ctx, f); err != nil {
				log.Error("feed run failed", "feed", f.Name, "error", err.Error())
			}
		}()
	}
}
