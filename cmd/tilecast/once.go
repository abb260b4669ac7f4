package main

import (
	"context"
	"errors"

	"github.com/tilecast/tilecast"
)

func cmdOnce(ctx context.Context, e env) error {
	fs := newFlags(e, "once", "once --config FILE [--feed NAME]")
	cfgPath := fs.String("config", "", "config file (TOML)")
	feedName := fs.String("feed", "", "only this feed (default: every feed)")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	feeds := cfg.Feeds
	if *feedName != "" {
		f, err := feedByName(cfg, *feedName)
		if err != nil {
			return err
		}
		feeds = []tilecast.Feed{*f}
	}
	// On a database shared with running daemons, `once` is one more
	// instance: it sends only what it leased, and fetches what it asks.
	bot, db, _, err := openBot(cfg, e.stderr, defaultInstance("once-"))
	if err != nil {
		return err
	}
	defer db.Close()
	// Fetch every feed now (ignoring backoff: the operator asked), then send
	// what is due. Channels that failed are in the log; that is not an error.
	errs := []error{bot.ResumeFanOuts(ctx)}
	for i := range feeds {
		if err := bot.RunFeedNow(ctx, &feeds[i]); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, bot.DeliverDue(ctx))
	return errors.Join(errs...)
}
