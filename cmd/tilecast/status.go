package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

func cmdStatus(ctx context.Context, e env) error {
	fs := newFlags(e, "status", "status --config FILE [--json]")
	cfgPath := fs.String("config", "", "config file (TOML)")
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
	stats, err := db.Stats()
	if err != nil {
		return err
	}
	states, err := db.FeedStates()
	if err != nil {
		return err
	}
	dead, err := db.DeadLetters(20)
	if err != nil {
		return err
	}
	if *asJSON {
		out := map[string]any{"stats": stats, "dead_letters": dead}
		feeds := map[string]any{}
		for k, st := range states {
			feeds[k.String()] = st
		}
		out["feeds"] = feeds
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(e.stdout, "channels %d   outbox %d   dead letters %d\n\n", stats.Channels, stats.OutboxDepth, stats.DeadLetters)
	keys := make([]string, 0, len(states))
	byKey := map[string]string{}
	for k, st := range states {
		flag := ""
		if st.Broken {
			flag = "  BROKEN since " + st.FailingSince.Format(time.RFC3339)
		}
		line := fmt.Sprintf("%-24s last fetch %s  %s%s", k.String(), fmtTime(st.LastFetch), st.LastResult, flag)
		keys = append(keys, k.String())
		byKey[k.String()] = line
	}
	sort.Strings(keys)
	fmt.Fprintln(e.stdout, "feeds:")
	for _, k := range keys {
		fmt.Fprintln(e.stdout, "  "+byKey[k])
	}
	if len(dead) > 0 {
		fmt.Fprintln(e.stdout, "\ndead letters (newest 20):")
		for _, d := range dead {
			fmt.Fprintf(e.stdout, "  %s channel %s feed %s %s: %s %s\n", fmtTime(d.Outcome.Time), d.Notification.ChannelID,
				d.Notification.Feed, d.Notification.Kind, d.Outcome.Action, d.Outcome.Error)
		}
	}
	return nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
