package config

import (
	"reflect"
	"strings"
)

// Reload says what a running daemon does with a changed key on SIGHUP.
type Reload int

const (
	// Applies: the new value takes effect for the next fetch, send or
	// request (the fetcher and push client are rebuilt, feeds and keys
	// re-read).
	Applies Reload = iota + 1
	// NeedsRestart: the daemon keeps the value it started with and logs
	// msg="needs restart" key=<name> until it is restarted.
	NeedsRestart
	// CLIOnly: read by the CLI's commands only; the daemon never uses it.
	CLIOnly
)

func (r Reload) String() string {
	switch r {
	case Applies:
		return "applies"
	case NeedsRestart:
		return "needs restart"
	case CLIOnly:
		return "cli only"
	}
	return "unclassified"
}

// reloadRule is how one key reloads: its class and the field holding its
// value, so ApplyReload can compare and keep it.
type reloadRule struct {
	reload Reload
	field  func(c *Config) any // a pointer to the key's field in c
}

// reloadRules classifies every key of the file (schemaKeys), so that a new
// key cannot be added without deciding what a reload does with it (the
// test checks the table against schemaKeys). A table whose entry is here
// covers every key under it: [defaults] and [[feed]] are applied whole by
// re-reading the feeds. Tables left out ("log", "http", …) only hold keys.
func reloadRules() map[string]reloadRule {
	return map[string]reloadRule{
		// Where the state lives and what the process logs: fixed at start.
		"state":               {NeedsRestart, func(c *Config) any { return &c.State }},
		"store.password_file": {NeedsRestart, func(c *Config) any { return &c.Store.PasswordFile }},
		"log.level":           {NeedsRestart, func(c *Config) any { return &c.Log.Level }},
		"log.format":          {NeedsRestart, func(c *Config) any { return &c.Log.Format }},

		// The listener is bound at start. The files named below are
		// re-read on SIGHUP; their paths (and the metrics role) are
		// taken at start only.
		"http.listen":                     {NeedsRestart, func(c *Config) any { return &c.HTTP.Listen }},
		"http.api_keys_file":              {NeedsRestart, func(c *Config) any { return &c.HTTP.APIKeysFile }},
		"http.metrics_auth":               {NeedsRestart, func(c *Config) any { return &c.HTTP.MetricsAuth }},
		"http.user_token_key_file":        {NeedsRestart, func(c *Config) any { return &c.HTTP.UserTokenKeyFile }},
		"http.user_token_public_key_file": {NeedsRestart, func(c *Config) any { return &c.HTTP.UserTokenPublicKeyFile }},
		"http.tls_cert":                   {NeedsRestart, func(c *Config) any { return &c.HTTP.TLSCert }},
		"http.tls_key":                    {NeedsRestart, func(c *Config) any { return &c.HTTP.TLSKey }},
		"http.tls_ca_file":                {CLIOnly, func(c *Config) any { return &c.HTTP.TLSCAFile }},
		"http.tls_server_name":            {CLIOnly, func(c *Config) any { return &c.HTTP.TLSServerName }},

		// A new fetcher for the next fetch; the per-user run limit for
		// the next run.
		"fetch.timeout":       {Applies, func(c *Config) any { return &c.Fetch.Timeout }},
		"fetch.max_body":      {Applies, func(c *Config) any { return &c.Fetch.MaxBody }},
		"fetch.concurrency":   {Applies, func(c *Config) any { return &c.Fetch.Concurrency }},
		"fetch.allow_private": {Applies, func(c *Config) any { return &c.Fetch.AllowPrivate }},

		// A new push client (certificate files re-read) for the next
		// send; allowed_hosts for the next registration; max_attempts
		// for the next recorded result.
		"push.timeout":       {Applies, func(c *Config) any { return &c.Push.Timeout }},
		"push.allowed_hosts": {Applies, func(c *Config) any { return &c.Push.AllowedHosts }},
		"push.allow_private": {Applies, func(c *Config) any { return &c.Push.AllowPrivate }},
		"push.class":         {Applies, func(c *Config) any { return &c.Push.Class }},
		"push.max_attempts":  {Applies, func(c *Config) any { return &c.Push.MaxAttempts }},
		"push.client_cert":   {Applies, func(c *Config) any { return &c.Push.ClientCert }},
		"push.client_key":    {Applies, func(c *Config) any { return &c.Push.ClientKey }},
		// WNS credentials: a new token source with the new push client
		// (the secret file re-read).
		"push.wns": {Applies, func(c *Config) any { return &c.Push.WNS }},
		// Web Push: a new client and signer with the new push client.
		// The VAPID key is what every subscription was made with and
		// what /v1/webpush/key serves: fixed at start.
		"push.webpush.subject":                {Applies, func(c *Config) any { return &c.Push.WebPush.Subject }},
		"push.webpush.vapid_private_key_file": {NeedsRestart, func(c *Config) any { return &c.Push.WebPush.VAPIDPrivateKeyFile }},
		"push.webpush.allowed_hosts":          {Applies, func(c *Config) any { return &c.Push.WebPush.AllowedHosts }},
		"push.webpush.urgency_toast":          {Applies, func(c *Config) any { return &c.Push.WebPush.UrgencyToast }},
		"push.webpush.urgency_tile":           {Applies, func(c *Config) any { return &c.Push.WebPush.UrgencyTile }},
		"push.webpush.pad":                    {Applies, func(c *Config) any { return &c.Push.WebPush.Pad }},
		// The icon is copied into every feed that has none of its own
		// (tilecast.Feed.WebPushIcon), and the feeds are swapped on
		// SIGHUP: the next toasts rendered carry the new one.
		"push.webpush.icon": {Applies, func(c *Config) any { return &c.Push.WebPush.Icon }},
		// The number of send workers (and the crash window sized by it)
		// is fixed when delivery starts.
		"push.concurrency": {NeedsRestart, func(c *Config) any { return &c.Push.Concurrency }},

		// Feeds are rescheduled and swapped whole.
		"defaults": {Applies, func(c *Config) any { return &c.Defaults }},
		"feed":     {Applies, func(c *Config) any { return &c.Feeds }},
	}
}

// ReloadOf returns how a running daemon reloads key, a dotted path as
// the file has it ("push.timeout", "feed.tile.title"); false for a key
// the file cannot contain.
func ReloadOf(key string) (Reload, bool) {
	rules := reloadRules()
	for k := key; ; {
		if r, ok := rules[k]; ok {
			return r.reload, true
		}
		i := strings.LastIndexByte(k, '.')
		if i < 0 {
			return 0, false
		}
		k = k[:i]
	}
}

// Keys returns every key the file may contain, as dotted paths without
// array indexes, tables included ("push", "feed", "feed.tile.title").
func Keys() []string { return schemaKeys() }

// ApplyReload returns the config a daemon running with running continues
// with after loading next: next, except that every NeedsRestart key keeps
// its running value. restart names those whose value next changes (in
// the order of Keys), for the daemon to log. running and next are not
// modified.
func ApplyReload(running, next *Config) (applied *Config, restart []string) {
	out := *next
	rules := reloadRules()
	for _, key := range schemaKeys() {
		r, ok := rules[key]
		if !ok || r.reload != NeedsRestart {
			continue
		}
		now := reflect.ValueOf(r.field(running)).Elem()
		dst := reflect.ValueOf(r.field(&out)).Elem()
		if !reflect.DeepEqual(now.Interface(), dst.Interface()) {
			restart = append(restart, key)
			dst.Set(now)
		}
	}
	return &out, restart
}
