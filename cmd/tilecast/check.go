package main

import (
	"context"
	"fmt"
	"time"

	"github.com/tilecast/tilecast/schedule"
)

func cmdCheck(ctx context.Context, e env) error {
	fs := newFlags(e, "check", "check --config FILE")
	cfgPath := fs.String("config", "", "config file (TOML)")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: ok, %d feeds, state %s\n", *cfgPath, len(cfg.Feeds), cfg.State)
	now := time.Now().UTC()
	for _, f := range cfg.Feeds {
		kind := "global"
		if f.PerUser() {
			kind = "per-user"
		}
		var parts []string
		if f.Toast != nil {
			parts = append(parts, "toast")
		}
		if f.Tile != nil {
			parts = append(parts, f.Tile.Template+" tile")
		}
		fmt.Fprintf(e.stdout, "\nfeed %s (%s) %s\n  schedule %q  sends %v\n", f.Name, kind, f.URL, f.Schedule, parts)
		runs, err := schedule.NextRuns(f.Schedule, now, 5)
		if err != nil {
			return usagef("feed %s: schedule %q: %v", f.Name, f.Schedule, err)
		}
		for _, t := range runs {
			fmt.Fprintf(e.stdout, "  next %s\n", t.Format(time.RFC3339))
		}
	}
	return nil
}
