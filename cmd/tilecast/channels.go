package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
)

func cmdChannels(ctx context.Context, e env) error {
	sub := map[string]func(context.Context, env) error{
		"list":   cmdChannelsList,
		"add":    cmdChannelsAdd,
		"remove": cmdChannelsRemove,
	}
	if len(e.args) == 0 || e.args[0] == "-h" || e.args[0] == "--help" {
		fmt.Fprintln(e.stdout, "Usage: tilecast channels list|add|remove [flags]   (--help on each)")
		if len(e.args) == 0 {
			return usagef("channels: a subcommand is required")
		}
		return nil
	}
	run, ok := sub[e.args[0]]
	if !ok {
		return usagef("channels: unknown subcommand %q (list, add, remove)", e.args[0])
	}
	e.args = e.args[1:]
	return run(ctx, e)
}

func cmdChannelsAdd(ctx context.Context, e env) error {
	fs := newFlags(e, "channels add", "channels add --config FILE --uri URI [--user U] [--feed NAME]... [--device ID]")
	cfgPath := fs.String("config", "", "config file (TOML)")
	uri := fs.String("uri", "", "the device's push channel URI")
	user := fs.String("user", "", "user the channel belongs to (for per-user feeds)")
	device := fs.String("device", "", "stable install id: a new URI for it replaces the old channel")
	var feeds stringList
	fs.Var(&feeds, "feed", "subscribe to this feed (repeatable; none = every feed without {user})")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *uri == "" {
		return usagef("channels add: --uri is required")
	}
	if err := validateChannel(cfg, *uri, feeds); err != nil {
		return usageError{err}
	}
	db, err := openStore(cfg, time.Second)
	if err != nil {
		return err
	}
	defer db.Close()
	ch, created, err := db.AddChannel(tilecast.Channel{URI: *uri, User: *user, Feeds: feeds, Device: *device})
	if err != nil {
		return err
	}
	if created {
		// tile_on_subscribe: queue the current tile; the daemon sends it.
		bot, err := newBot(cfg, db, newLogger(cfg, e.stderr))
		if err != nil {
			return err
		}
		if err := bot.Subscribe(ch); err != nil {
			return err
		}
	}
	return printJSON(e, ch)
}

// validateChannel applies the registration rules: URI shape, allowed hosts, known feeds.
func validateChannel(cfg *config.Config, uri string, feeds []string) error {
	if err := tilecast.CheckChannelURI(uri, cfg.Push.AllowedHosts); err != nil {
		return err
	}
	known := map[string]bool{}
	for _, f := range cfg.Feeds {
		known[f.Name] = true
	}
	var errs []error
	for _, f := range feeds {
		if !known[f] {
			errs = append(errs, fmt.Errorf("unknown feed %q", f))
		}
	}
	return errors.Join(errs...)
}

func cmdChannelsList(ctx context.Context, e env) error {
	fs := newFlags(e, "channels list", "channels list --config FILE [--user U] [--json]")
	cfgPath := fs.String("config", "", "config file (TOML)")
	user := fs.String("user", "", "only this user's channels")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	db, err := openStore(cfg, time.Second)
	if err != nil {
		return err
	}
	defer db.Close()
	chs, err := db.Channels(*user)
	if err != nil {
		return err
	}
	if *asJSON {
		if chs == nil {
			chs = []tilecast.Channel{}
		}
		return printJSON(e, chs)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tFEEDS\tLAST OUTCOME\tURI")
	for _, c := range chs {
		feeds := "(all global)"
		if len(c.Feeds) > 0 {
			feeds = fmt.Sprint(c.Feeds)
		}
		last := c.LastOutcome
		if last == "" {
			last = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, orDash(c.User), feeds, last, c.URI)
	}
	return tw.Flush()
}

func cmdChannelsRemove(ctx context.Context, e env) error {
	fs := newFlags(e, "channels remove", "channels remove --config FILE (ID | --uri URI)")
	cfgPath := fs.String("config", "", "config file (TOML)")
	uri := fs.String("uri", "", "remove the channel with this URI")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	id := fs.Arg(0)
	if (id == "") == (*uri == "") {
		return usagef("channels remove: give either a channel ID or --uri")
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	db, err := openStore(cfg, time.Second)
	if err != nil {
		return err
	}
	defer db.Close()
	if *uri != "" {
		ch, err := db.ChannelByURI(*uri)
		if err != nil {
			return fmt.Errorf("channel %s: %w", *uri, err)
		}
		id = ch.ID
	}
	if err := db.RemoveChannel(id); err != nil {
		return fmt.Errorf("channel %s: %w", id, err)
	}
	fmt.Fprintln(e.stdout, "removed", id)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printJSON(e env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
