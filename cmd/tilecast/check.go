package main

import (
	"context"
	"fmt"
	"time"

	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/schedule"
	"github.com/tilecast/tilecast/store/postgres"
	"github.com/tilecast/tilecast/web"
)

func cmdCheck(ctx context.Context, e env) error {
	fs := newFlags(e, "check", "check --config FILE\n\n"+
		"Loads and checks the config (every key; the user token keys; the VAPID key file\n"+
		"and subject of [push.webpush]), warns about the API keys file, and prints the\n"+
		"VAPID public key (with Web Push) and each feed with its next 5 run times.\n")
	cfgPath := fs.String("config", "", "config file (TOML)")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if _, err := web.LoadUserTokenKey(cfg.HTTP.UserTokenKeyFile, cfg.HTTP.UserTokenPublicKeyFile); err != nil {
		return usageError{err}
	}
	fmt.Fprintf(e.stdout, "%s: ok, %d feeds, state %s\n", *cfgPath, len(cfg.Feeds), stateName(cfg.State))
	if config.IsDatabaseURL(cfg.State) && postgres.HasPassword(cfg.State) {
		fmt.Fprintf(e.stderr, "warning: %s: state: the URL holds a password: put it in [store] password_file, PGPASSWORD or ~/.pgpass "+
			"instead (tilecast never logs it, but a config file is read by more people and tools than a secret file)\n", *cfgPath)
	}
	checkKeysFile(e, cfg.HTTP.APIKeysFile)
	if cfg.Push.WebPush.Enabled() {
		// The config load checked subject and key; show which key, so an
		// operator can compare it with the page's applicationServerKey.
		k, err := loadVAPIDKey(cfg)
		if err != nil {
			return usageError{err}
		}
		fmt.Fprintf(e.stdout, "web push: subject %s, VAPID public key %s\n", cfg.Push.WebPush.Subject, k.PublicKey())
	}
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

// checkKeysFile warns, on stderr, about what in the API keys file an
// operator should fix: bare key lines (admin keys by default, but say so),
// short keys, a file that does not load. The daemon may run as another
// user than check, so an unreadable file is a warning, not a failure.
// Warnings name the file and line, never a key.
func checkKeysFile(e env, path string) {
	if path == "" {
		return
	}
	keys, err := web.ReadKeyFile(path)
	if err != nil {
		fmt.Fprintf(e.stderr, "warning: %v\n", err)
		return
	}
	admins := 0
	for _, k := range keys {
		if k.Bare {
			fmt.Fprintf(e.stderr, "warning: %s:%d: a key without a role is an admin key: write \"admin KEY\", or \"app KEY\" for a key shipped in apps\n", path, k.Line)
		}
		if k.Short() {
			fmt.Fprintf(e.stderr, "warning: %s:%d: short key: use at least 128 random bits (e.g. openssl rand -base64 24)\n", path, k.Line)
		}
		if k.Role == web.RoleAdmin {
			admins++
		}
	}
	if len(keys) > 0 && admins == 0 {
		fmt.Fprintf(e.stderr, "warning: %s has no admin key: status, channels, outcomes and backup cannot use the daemon's API\n", path)
	}
}
