package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/netguard"
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
	if err := checkRunFiles(cfg); err != nil {
		return usageError{err}
	}
	fmt.Fprintf(e.stdout, "%s: ok, %s, state %s\n", *cfgPath, plural(len(cfg.Feeds), "feed", "feeds"), stateName(cfg.State))
	if config.IsDatabaseURL(cfg.State) && postgres.HasPassword(cfg.State) {
		fmt.Fprintf(e.stderr, "warning: %s: state: the URL holds a password: put it in [store] password_file, PGPASSWORD or ~/.pgpass "+
			"instead (tilecast never logs it, but a config file is read by more people and tools than a secret file)\n", cfg.Where("state"))
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
	checkPrivateHosts(e, cfg)
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

// checkRunFiles finds what `run` would refuse at start that the config
// alone cannot tell: the API keys file (when the API listens), the state
// file's directory and the PostgreSQL password file. Each problem is a
// config error at its key, so ExecStartPre=tilecast check fails where
// the daemon would (check runs as the daemon's user under the unit).
func checkRunFiles(cfg *config.Config) error {
	var errs []error
	if cfg.HTTP.Listen != "" && cfg.HTTP.APIKeysFile != "" {
		if _, err := web.ReadKeyFile(cfg.HTTP.APIKeysFile); err != nil {
			errs = append(errs, cfg.Problem("http.api_keys_file", "%v", err))
		}
	}
	if !config.IsDatabaseURL(cfg.State) {
		if err := stateWritable(cfg.State); err != nil {
			errs = append(errs, cfg.Problem("state", "%v", err))
		}
	}
	if pw := cfg.Store.PasswordFile; pw != "" {
		if b, err := os.ReadFile(pw); err != nil {
			errs = append(errs, cfg.Problem("store.password_file", "cannot read %q: %v", pw, pathErr(err)))
		} else if len(strings.TrimRight(string(b), "\r\n")) == 0 {
			errs = append(errs, cfg.Problem("store.password_file", "%q is empty", pw))
		}
	}
	return errors.Join(errs...)
}

// stateWritable checks that the bbolt state file can be opened for
// writing, or, when it does not exist yet, created: its directory exists
// and takes a new file (a probe file, removed at once).
func stateWritable(path string) error {
	if st, err := os.Stat(path); err == nil {
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%q is not a regular file", path)
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("state file %q is not writable: %v", path, pathErr(err))
		}
		return f.Close()
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("directory %q does not exist (create it, or let systemd's StateDirectory= do it)", dir)
	case err != nil:
		return fmt.Errorf("directory %q: %v", dir, pathErr(err))
	case !st.IsDir():
		return fmt.Errorf("%q is not a directory", dir)
	}
	probe, err := os.CreateTemp(dir, ".tilecast-check-*")
	if err != nil {
		return fmt.Errorf("directory %q is not writable: cannot create the state file there: %v", dir, pathErr(err))
	}
	probe.Close()
	return os.Remove(probe.Name())
}

// pathErr is an *fs.PathError's cause: the messages name the path already.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// checkPrivateHosts warns about push.allowed_hosts entries that name a
// loopback or private host while push.allow_private is off: registration
// would accept such a channel, but every push to it would be refused.
func checkPrivateHosts(e env, cfg *config.Config) {
	if cfg.Push.AllowPrivate {
		return
	}
	for i, h := range cfg.Push.AllowedHosts {
		if kind := privateHost(h); kind != "" {
			key := fmt.Sprintf("push.allowed_hosts[%d]", i)
			fmt.Fprintf(e.stderr, "warning: %s: %s: %q is %s, but push.allow_private is off: every push to it would be refused "+
				"(set push.allow_private = true for a local test service)\n", cfg.Where(key), key, h, kind)
		}
	}
}

// privateHost says what kind of non-public host an allowed_hosts entry
// names ("a loopback address", …), or "" for a public one. Names are not
// resolved: only IP literals and the localhost names are known private.
func privateHost(pattern string) string {
	name := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(pattern, "*."), "."))
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return "a loopback name"
	}
	ip, err := netip.ParseAddr(strings.Trim(name, "[]"))
	if err != nil {
		return ""
	}
	switch {
	case ip.Unmap().IsLoopback():
		return "a loopback address"
	case ip.Unmap().IsPrivate():
		return "a private address"
	case netguard.Prohibited(ip):
		return "a non-public address"
	}
	return ""
}

// plural is "1 feed", "2 feeds", "0 feeds".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// checkKeysFile warns, on stderr, about what in the API keys file an
// operator should fix: bare key lines (admin keys by default, but say so),
// short keys. A file that does not load is checkRunFiles' error when the
// API listens; without a listener only the CLI reads it: a warning.
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
