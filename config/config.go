// Package config loads tilecast's TOML configuration file (design.md §5) into
// a typed Config with every default applied, and validates all of it before
// the daemon starts: an invalid schedule, template or enum value fails at load
// time, never at tick time.
//
// Unknown keys are errors. All problems are reported at once, each as an
// *Error whose text is "FILE:LINE:COL: KEY.PATH: what is wrong".
//
// Two conventions the daemon relies on:
//   - Paths (state, http.api_keys_file, http.tls_*, http.user_token_*,
//     push.client_cert, push.client_key, push.wns.client_secret_file,
//     push.webpush.vapid_private_key_file) are kept as written. A relative
//     path is relative to the daemon's working directory, not to the config
//     file; under systemd use absolute paths. The files of secret keys
//     (SecretKeys) are read from systemd's $CREDENTIALS_DIRECTORY instead
//     when it holds a credential named like the path's last element
//     (credentials.go); Config.Credentials says which.
//   - Schedules run in UTC unless the spec starts with CRON_TZ=Zone (see
//     Schedule).
package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/template"
	"time"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/notify"
)

// Config is a loaded configuration file.
type Config struct {
	Path     string // the file it was loaded from (Parse: the name given)
	State    string // bbolt state file, or a PostgreSQL URL (IsDatabaseURL)
	Store    Store
	Log      Log
	HTTP     HTTP
	Fetch    Fetch
	Push     Push
	Defaults Defaults        // what each feed inherits; already applied to Feeds
	Feeds    []tilecast.Feed // in file order; names are unique

	// Credentials maps each secret key (SecretKeys) whose file was read
	// from systemd's $CREDENTIALS_DIRECTORY to the credential's name; the
	// key's field then holds the credential's path. nil when none was.
	// systemd hands credentials over at start only: a reload re-reads
	// the same copy, so a changed source file needs a restart.
	Credentials map[string]string
}

// Store is the [store] table.
type Store struct {
	// PasswordFile holds the PostgreSQL password (trailing newline
	// removed), read by the daemon; "" leaves it to the URL, PGPASSWORD
	// or ~/.pgpass.
	PasswordFile string
}

// IsDatabaseURL reports whether a state setting names a PostgreSQL
// database (postgres:// or postgresql://) rather than a bbolt file.
func IsDatabaseURL(state string) bool {
	return strings.HasPrefix(state, "postgres://") || strings.HasPrefix(state, "postgresql://")
}

// Log is the [log] table.
type Log struct {
	Level  string // "debug", "info", "warn" or "error"
	Format string // LogText or LogJSON
}

// SlogLevel returns Level as a slog.Level.
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Log formats.
const (
	LogText = "text"
	LogJSON = "json"
)

// HTTP is the [http] table: registration API, /healthz, /metrics, dashboard.
type HTTP struct {
	Listen      string // host:port; "" disables the HTTP server
	APIKeysFile string // one "admin KEY" or "app KEY" per line (a bare KEY is admin)
	// MetricsAuth is MetricsAuthNone (GET /metrics open) or
	// MetricsAuthAdmin (it needs an admin key, as a bearer token).
	MetricsAuth string
	// UserTokenKeyFile (HS256 secret) or UserTokenPublicKeyFile (PEM
	// RS256/ES256 public key), at most one: an app-key registration that
	// names a user must then carry a JWT for that user (X-User-Token).
	UserTokenKeyFile       string
	UserTokenPublicKeyFile string
	// TLSCert and TLSKey, both or neither: PEM certificate (chain) and
	// key of the listener, re-read on SIGHUP.
	TLSCert string
	TLSKey  string
	// TLSCAFile and TLSServerName are for the CLI's daemon client only:
	// the PEM CA (or the self-signed certificate itself) it trusts beside
	// the system roots, and the name it expects in the certificate
	// (default: the listen host, "localhost" for a wildcard listen).
	TLSCAFile     string
	TLSServerName string
}

// Values of http.metrics_auth.
const (
	MetricsAuthNone  = "none"
	MetricsAuthAdmin = "admin"
)

// Fetch is the [fetch] table.
type Fetch struct {
	Timeout      time.Duration
	MaxBody      int64 // bytes
	Concurrency  int
	AllowPrivate bool // allow loopback/private/link-local feed hosts
}

// Push is the [push] table.
type Push struct {
	Timeout      time.Duration
	Concurrency  int
	AllowedHosts []string // channel URI hosts accepted at registration: "host" or "*.suffix"
	AllowPrivate bool     // allow sending to loopback/private addresses
	Class        string   // ClassImmediate, Class450s or Class900s
	MaxAttempts  int
	ClientCert   string // PEM file; set together with ClientKey or not at all
	ClientKey    string
	WNS          *WNS    // [push.wns]; nil when the config has none (config/wns.go)
	WebPush      WebPush // [push.webpush] (webpush.go)
}

// Push classes: how long MPNS may batch a notification (X-NotificationClass).
const (
	ClassImmediate = "immediate"
	Class450s      = "450s"
	Class900s      = "900s"
)

// Defaults is the [defaults] table: the per-feed options every [[feed]]
// inherits unless it sets them itself.
type Defaults struct {
	Schedule        string
	FirstRun        string // tilecast.FirstRunBaseline or tilecast.FirstRunNotify
	MaxToasts       int
	FloodLimit      int
	ImageCheck      bool
	FallbackImage   string
	BrokenAfter     time.Duration
	TileOnSubscribe bool
	// TTL is each notification kind's time to live (toast_ttl, tile_ttl,
	// raw_ttl, badge_ttl); a notification whose feed was removed from the config
	// uses [defaults]'.
	TTL tilecast.TTL
}

// Limits that the config enforces.
const (
	maxToastsLimit  = 20 // max_toasts: 0..20
	maxConcurrency  = 1024
	maxAttempts     = 100
	maxBody         = 1 << 30
	maxCycleImages  = 9
	feedNameMaxLen  = 64
	certFileMaxSize = 1 << 20
)

// Default returns the configuration used for every key the file leaves out,
// with no feeds.
func Default() *Config {
	return &Config{
		State: "/var/lib/tilecast/state.db",
		Log:   Log{Level: "info", Format: LogText},
		HTTP:  HTTP{Listen: "127.0.0.1:8460", APIKeysFile: "/etc/tilecast/api-keys", MetricsAuth: MetricsAuthNone},
		Fetch: Fetch{Timeout: 20 * time.Second, MaxBody: 4 << 20, Concurrency: 8},
		Push: Push{
			Timeout:      15 * time.Second,
			Concurrency:  32,
			AllowedHosts: []string{"*.notify.live.net", "*.notify.windows.com"},
			Class:        ClassImmediate,
			MaxAttempts:  10,
			WebPush:      DefaultWebPush(),
		},
		Defaults: Defaults{
			Schedule:        "*/15 * * * *",
			FirstRun:        tilecast.FirstRunBaseline,
			MaxToasts:       3,
			FloodLimit:      20,
			ImageCheck:      true,
			BrokenAfter:     24 * time.Hour,
			TileOnSubscribe: true,
			TTL:             tilecast.DefaultTTL(),
		},
	}
}

// Load reads and validates the config file at path. Errors name path as
// given. Every error it returns is, or joins, *Error values.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return nil, &Error{File: path, Msg: "cannot read: " + msg, err: err}
	}
	return Parse(path, data)
}

// Parse validates a config document; name is used in error messages.
// Client certificate files named by the document are read to check them.
func Parse(name string, data []byte) (*Config, error) {
	if name == "" {
		name = "config"
	}
	var raw rawConfig
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	c := &checker{file: name}
	if err := dec.Decode(&raw); err != nil {
		var strict *toml.StrictMissingError
		if !errors.As(err, &strict) {
			// A syntax error or a table of the wrong shape stops the
			// decoder; nothing after it can be checked.
			return nil, decodeError(name, data, err)
		}
		c.ix = buildIndex(data)
		for i := range strict.Errors {
			c.unknown(&strict.Errors[i])
		}
	} else {
		c.ix = buildIndex(data)
	}
	if c.ix.tables["feed"] {
		// go-toml takes a lone [feed] as a one-element array, but then every
		// position inside it would be off; ask for what the docs show.
		c.errorf("feed", "write [[feed]], one per feed, not [feed]")
	}
	cfg := c.build(&raw)
	if err := c.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// decodeError turns a go-toml error into an *Error with a key path.
func decodeError(name string, data []byte, err error) error {
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		return &Error{File: name, Msg: err.Error(), err: err}
	}
	line, col := de.Position()
	e := &Error{File: name, Line: line, Col: col, Msg: strings.TrimPrefix(de.Error(), "toml: "), err: err}
	if len(de.Key()) > 0 {
		ix := buildIndex(data)
		e.Key = keyOf(ix, pos{line, col}, de.Key())
	}
	if e.Msg == "cannot store an array table in a struct" {
		e.Key = strings.Join(de.Key(), ".")
		e.Msg = fmt.Sprintf("expected a table ([%s]), got an array of tables ([[%s]])", e.Key, e.Key)
	}
	// "cannot decode TOML integer into struct field config.rawConfig.Log of
	// type config.rawLog" speaks Go; say what the file should contain.
	if rest, ok := strings.CutPrefix(e.Msg, "cannot decode TOML "); ok {
		got, _, _ := strings.Cut(rest, " into ")
		want := "a table"
		if strings.Contains(rest, "of type []") {
			want = "an array of tables ([[" + e.Key + "]])"
		}
		e.Msg = fmt.Sprintf("expected %s, got %s", want, article(got))
	}
	return e
}

// article puts "a" or "an" before a TOML type name.
func article(tomlType string) string {
	if tomlType != "" && strings.ContainsRune("aeiou", rune(tomlType[0])) {
		return "an " + tomlType
	}
	return "a " + tomlType
}

// keyOf names a go-toml error's key with array indexes, from its position.
func keyOf(ix *index, at pos, key toml.Key) string {
	if path, ok := ix.byPos[at]; ok {
		return path
	}
	path := ""
	for _, k := range key {
		path = joinKey(path, k)
	}
	return path
}

// unknown reports one key or table that the config does not have.
func (c *checker) unknown(de *toml.DecodeError) {
	line, col := de.Position()
	e := &Error{File: c.file, Line: line, Col: col, Key: keyOf(c.ix, pos{line, col}, de.Key()), err: de}
	switch msg := strings.TrimPrefix(de.Error(), "toml: "); msg {
	case "unknown field":
		e.Msg = "unknown key"
	case "missing table":
		e.Msg = "unknown table"
	default:
		e.Msg = msg
	}
	if s := suggest(e.Key); s != "" {
		e.Msg += ` (did you mean "` + s + `"?)`
	}
	c.errs = append(c.errs, e)
}

// build checks every value and applies the defaults.
func (c *checker) build(raw *rawConfig) *Config {
	cfg := Default()

	cfg.State = c.str("state", raw.State, cfg.State)
	if cfg.State == "" {
		c.errorf("state", "must not be empty")
	}
	if IsDatabaseURL(cfg.State) {
		// The URL may hold a password: no message quotes it.
		if _, err := url.Parse(cfg.State); err != nil {
			c.errorf("state", "not a valid PostgreSQL URL (postgres://user@host/database?sslmode=…)")
		}
	} else if strings.Contains(cfg.State, "://") {
		c.errorf("state", "a URL must be postgres:// or postgresql:// (PostgreSQL); anything else is the path of a bbolt file")
	}
	cfg.Store.PasswordFile = c.secretPath("store.password_file", c.str("store.password_file", raw.Store.PasswordFile, ""))
	if cfg.Store.PasswordFile != "" && !IsDatabaseURL(cfg.State) {
		c.errorf("store.password_file", "is for a PostgreSQL state (state = \"postgres://…\"); the state here is a bbolt file")
	}

	cfg.Path = c.file
	cfg.Log.Level = c.enum("log.level", raw.Log.Level, cfg.Log.Level, "debug", "info", "warn", "error")
	cfg.Log.Format = c.enum("log.format", raw.Log.Format, LogText, LogText, LogJSON)

	cfg.HTTP.Listen = c.str("http.listen", raw.HTTP.Listen, cfg.HTTP.Listen)
	if l := cfg.HTTP.Listen; l != "" {
		if _, _, err := net.SplitHostPort(l); err != nil {
			c.errorf("http.listen", `bad address %q: want HOST:PORT such as "127.0.0.1:8460", or "" to disable`, l)
		}
	}
	cfg.HTTP.APIKeysFile = c.secretPath("http.api_keys_file", c.str("http.api_keys_file", raw.HTTP.APIKeysFile, cfg.HTTP.APIKeysFile))
	c.access(&raw.HTTP, &cfg.HTTP)

	f := &raw.Fetch
	cfg.Fetch.Timeout = c.duration("fetch.timeout", f.Timeout, cfg.Fetch.Timeout)
	cfg.Fetch.MaxBody = c.size("fetch.max_body", f.MaxBody, cfg.Fetch.MaxBody, maxBody)
	cfg.Fetch.Concurrency = c.integer("fetch.concurrency", f.Concurrency, cfg.Fetch.Concurrency, 1, maxConcurrency)
	cfg.Fetch.AllowPrivate = c.boolean("fetch.allow_private", f.AllowPrivate, cfg.Fetch.AllowPrivate)

	p := &raw.Push
	cfg.Push.Timeout = c.duration("push.timeout", p.Timeout, cfg.Push.Timeout)
	cfg.Push.Concurrency = c.integer("push.concurrency", p.Concurrency, cfg.Push.Concurrency, 1, maxConcurrency)
	cfg.Push.AllowedHosts = c.strs("push.allowed_hosts", p.AllowedHosts, cfg.Push.AllowedHosts, c.hostPattern)
	cfg.Push.AllowPrivate = c.boolean("push.allow_private", p.AllowPrivate, cfg.Push.AllowPrivate)
	cfg.Push.Class = c.enum("push.class", p.Class, cfg.Push.Class, ClassImmediate, Class450s, Class900s)
	cfg.Push.MaxAttempts = c.integer("push.max_attempts", p.MaxAttempts, cfg.Push.MaxAttempts, 1, maxAttempts)
	cfg.Push.ClientCert = c.str("push.client_cert", p.ClientCert, "")
	cfg.Push.ClientKey = c.secretPath("push.client_key", c.str("push.client_key", p.ClientKey, ""))
	c.keyPair("push.client_cert", "push.client_key", cfg.Push.ClientCert, cfg.Push.ClientKey)
	cfg.Push.WNS = c.pushWNS(p.WNS, cfg.Push.AllowPrivate)
	c.webPush(&p.WebPush, &cfg.Push.WebPush)

	cfg.Defaults = c.options("defaults", &raw.Defaults, &cfg.Defaults)

	names := map[string]int{} // feed name → index of its first use
	for i := range raw.Feed {
		feed := c.feed(i, &raw.Feed[i], &cfg.Defaults, &cfg.Push.WebPush)
		if first, dup := names[feed.Name]; dup {
			c.errorf(fmt.Sprintf("feed[%d].name", i), "duplicate feed name %q, first used by feed[%d] at %s",
				feed.Name, first, c.where(fmt.Sprintf("feed[%d].name", first)))
		} else if feed.Name != "" {
			names[feed.Name] = i
		}
		cfg.Feeds = append(cfg.Feeds, feed)
	}
	cfg.Credentials = c.creds
	return cfg
}

// options checks the per-feed options of [defaults] (key "defaults") or of
// one [[feed]], each falling back to def.
func (c *checker) options(key string, r *rawDefaults, def *Defaults) Defaults {
	var o Defaults
	o.Schedule = def.Schedule
	if r.Schedule != nil {
		o.Schedule = c.str(key+".schedule", r.Schedule, def.Schedule)
		if _, ok := r.Schedule.(string); ok {
			if _, err := Schedule(o.Schedule); err != nil {
				c.errorf(key+".schedule", "bad cron spec %q: %v", o.Schedule, err)
			}
		}
	}
	o.FirstRun = c.enum(key+".first_run", r.FirstRun, def.FirstRun, tilecast.FirstRunBaseline, tilecast.FirstRunNotify)
	o.MaxToasts = c.integer(key+".max_toasts", r.MaxToasts, def.MaxToasts, 0, maxToastsLimit)
	o.FloodLimit = c.integer(key+".flood_limit", r.FloodLimit, def.FloodLimit, 1, math.MaxInt)
	o.ImageCheck = c.boolean(key+".image_check", r.ImageCheck, def.ImageCheck)
	o.FallbackImage = c.str(key+".fallback_image", r.FallbackImage, def.FallbackImage)
	if r.FallbackImage != nil {
		if strings.Contains(o.FallbackImage, "{{") {
			c.errorf(key+".fallback_image", "must be a fixed URL, not a template")
		} else {
			c.imageURL(key+".fallback_image", o.FallbackImage)
		}
	}
	o.BrokenAfter = c.duration(key+".broken_after", r.BrokenAfter, def.BrokenAfter)
	o.TileOnSubscribe = c.boolean(key+".tile_on_subscribe", r.TileOnSubscribe, def.TileOnSubscribe)
	o.TTL = tilecast.TTL{}
	for _, k := range r.ttls() {
		o.TTL[k.kind] = c.ttl(key+"."+k.name, k.raw, def.TTL.Of(k.kind))
	}
	return o
}

// ttl checks a time to live: a positive duration of at most
// tilecast.MaxTTL.
func (c *checker) ttl(key string, v any, def time.Duration) time.Duration {
	before := len(c.errs)
	d := c.duration(key, v, def)
	if len(c.errs) == before && d > tilecast.MaxTTL {
		c.errorf(key, "time to live %q is longer than 28 days (\"672h\"): push services keep a message about four weeks at most", v)
		return def
	}
	return d
}

// feed checks one [[feed]] and applies the defaults to it, and w's (the
// checked [push.webpush]) icon unless the feed has its own.
func (c *checker) feed(i int, r *rawFeed, def *Defaults, w *WebPush) tilecast.Feed {
	key := fmt.Sprintf("feed[%d]", i)
	before := len(c.errs)

	var f tilecast.Feed
	f.Name = c.str(key+".name", r.Name, "")
	if r.Name == nil {
		c.errorf(key+".name", "missing: every feed needs a name")
	} else if _, ok := r.Name.(string); ok && !validName(f.Name) {
		c.errorf(key+".name", `bad name %q: use 1 to %d characters of a-z, 0-9, "_" and "-"`, f.Name, feedNameMaxLen)
	}
	f.URL = c.str(key+".url", r.URL, "")
	if r.URL == nil {
		c.errorf(key+".url", "missing: every feed needs a url")
	} else if _, ok := r.URL.(string); ok {
		c.feedURL(key+".url", f.URL)
	}

	o := c.options(key, &r.rawDefaults, def)
	f.Schedule, f.FirstRun, f.MaxToasts, f.FloodLimit = o.Schedule, o.FirstRun, o.MaxToasts, o.FloodLimit
	f.ImageCheck, f.FallbackImage, f.BrokenAfter, f.TileOnSubscribe = o.ImageCheck, o.FallbackImage, o.BrokenAfter, o.TileOnSubscribe
	f.TTL = o.TTL

	var templates []field
	if r.Toast != nil {
		f.Toast, templates = c.toast(key+".toast", r.Toast)
	}
	if r.Tile != nil {
		var tf []field
		f.Tile, tf = c.tile(key+".tile", r.Tile)
		templates = append(templates, tf...)
	}
	if r.Toast == nil && r.Tile == nil {
		c.errorf(key, "sends nothing: add a [feed.toast] table, a [feed.tile] table or both")
	}
	f.WNS = c.feedWNS(key, r.WNS, &templates)
	c.feedWebPush(key, r.WebPush, w, &f)

	// Catch template syntax errors here even while notify's own check is a
	// stub; leave everything else about templates to notify.CheckFeed.
	for _, t := range templates {
		c.template(t.key, t.src)
	}
	if len(c.errs) == before {
		if err := notify.CheckFeed(&f); err != nil {
			k, msg := key, err.Error()
			if field, rest, ok := strings.Cut(msg, ": "); ok && isFieldPath(field) {
				k, msg = key+"."+field, templateMsg(field, sourceOf(templates, key+"."+field), rest)
			}
			c.errorf(k, "%s", msg)
		}
	}
	return f
}

// field is one template source and its key path.
type field struct{ key, src string }

func sourceOf(fields []field, key string) string {
	for _, f := range fields {
		if f.key == key {
			return f.src
		}
	}
	return ""
}

func validName(s string) bool {
	if s == "" || len(s) > feedNameMaxLen {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// isFieldPath reports whether s looks like "toast.text1" or "tile.cycle_images[2]",
// the field names notify.CheckFeed puts in front of its errors.
func isFieldPath(s string) bool {
	head, rest, ok := strings.Cut(s, ".")
	if !ok || (head != "toast" && head != "tile") || rest == "" {
		return false
	}
	return !strings.ContainsAny(rest, " :\t")
}

// feedURL checks a feed URL: absolute http(s), {user} the only placeholder,
// and only where it can be escaped (tilecast.CheckFeedURL).
func (c *checker) feedURL(key, s string) {
	probe := strings.ReplaceAll(s, "{user}", "user")
	if strings.ContainsAny(probe, "{}") {
		c.errorf(key, "bad url %q: {user} is the only placeholder", s)
		return
	}
	// Where {user} stands first: in the scheme or port it would also
	// make the probe below fail, with a vaguer message.
	if err := tilecast.CheckFeedURL(s); err != nil {
		c.errorf(key, "bad url %q: %v", s, err)
		return
	}
	u, err := url.Parse(probe)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.errorf(key, "bad url %q: must be an absolute http or https URL", s)
	}
}

// template parses one template source with the functions feeds may use.
func (c *checker) template(key, src string) {
	if src == "" {
		return
	}
	if _, err := template.New(key).Funcs(notify.Funcs()).Parse(src); err != nil {
		c.errorf(key, "%s", templateMsg(key, src, err.Error()))
	}
}

// templateMsg shortens a text/template error about the template named name:
// "template: NAME:LINE[:COL]: [executing "NAME" at <X>: ]msg" becomes
// "bad template: [<X>: ]msg", with "line N: " kept for multi-line sources.
// Any other error text is returned unchanged.
func templateMsg(name, src, msg string) string {
	rest, ok := strings.CutPrefix(msg, "template: "+name+":")
	if !ok {
		return msg
	}
	loc, rest, ok := strings.Cut(rest, ": ")
	line, _, _ := strings.Cut(loc, ":")
	if !ok || line == "" || strings.Trim(line, "0123456789") != "" {
		return msg
	}
	rest = strings.TrimPrefix(rest, fmt.Sprintf("executing %q at ", name))
	if strings.Contains(src, "\n") {
		rest = "line " + line + ": " + rest
	}
	return "bad template: " + rest
}

func (c *checker) toast(key string, r *rawToast) (*tilecast.ToastSpec, []field) {
	before := len(c.errs)
	t := &tilecast.ToastSpec{
		Text1: c.str(key+".text1", r.Text1, ""),
		Text2: c.str(key+".text2", r.Text2, ""),
		Param: c.str(key+".param", r.Param, ""),
	}
	if t.Text1 == "" && t.Text2 == "" && len(c.errs) == before {
		c.errorf(key, "a toast needs text1, text2 or both")
	}
	return t, []field{{key + ".text1", t.Text1}, {key + ".text2", t.Text2}, {key + ".param", t.Param}}
}

// tileField is one tile key, the TileSpec field it fills, whether it is an
// image location and which templates show it.
type tileField struct {
	name  string
	raw   any
	dst   *string
	image bool
	in    []string
}

// tileFields lists the string keys of a tile. Which template shows which
// field follows the property lists of the mpns module, plus CycleTile
// (protocols.md §1).
func tileFields(t *tilecast.TileSpec, r *rawTile) []tileField {
	all := []string{tilecast.TileClassic, tilecast.TileFlip, tilecast.TileIconic, tilecast.TileCycle}
	classicFlip := []string{tilecast.TileClassic, tilecast.TileFlip}
	flip := []string{tilecast.TileFlip}
	iconic := []string{tilecast.TileIconic}
	flipCycle := []string{tilecast.TileFlip, tilecast.TileCycle}
	return []tileField{
		{"id", r.ID, &t.ID, false, all},
		{"title", r.Title, &t.Title, false, all},
		{"count", r.Count, &t.Count, false, all},
		{"background_image", r.BackgroundImage, &t.BackgroundImage, true, classicFlip},
		{"back_title", r.BackTitle, &t.BackTitle, false, classicFlip},
		{"back_content", r.BackContent, &t.BackContent, false, classicFlip},
		{"back_background_image", r.BackBackgroundImage, &t.BackBackgroundImage, true, classicFlip},
		{"small_background_image", r.SmallBackgroundImage, &t.SmallBackgroundImage, true, flipCycle},
		{"wide_background_image", r.WideBackgroundImage, &t.WideBackgroundImage, true, flip},
		{"wide_back_content", r.WideBackContent, &t.WideBackContent, false, flip},
		{"wide_back_background_image", r.WideBackBackgroundImage, &t.WideBackBackgroundImage, true, flip},
		{"icon_image", r.IconImage, &t.IconImage, true, iconic},
		{"small_icon_image", r.SmallIconImage, &t.SmallIconImage, true, iconic},
		{"wide_content1", r.WideContent1, &t.WideContent1, false, iconic},
		{"wide_content2", r.WideContent2, &t.WideContent2, false, iconic},
		{"wide_content3", r.WideContent3, &t.WideContent3, false, iconic},
		{"background_color", r.BackgroundColor, &t.BackgroundColor, false, iconic},
	}
}

func (c *checker) tile(key string, r *rawTile) (*tilecast.TileSpec, []field) {
	t := &tilecast.TileSpec{}
	before := len(c.errs)
	t.Template = c.enum(key+".template", r.Template, tilecast.TileFlip,
		tilecast.TileFlip, tilecast.TileClassic, tilecast.TileIconic, tilecast.TileCycle)
	// Which fields fit is only worth saying when the template is known.
	knownTemplate := len(c.errs) == before
	var templates []field
	for _, tf := range tileFields(t, r) {
		k := key + "." + tf.name
		*tf.dst = c.str(k, tf.raw, "")
		if tf.raw == nil {
			continue
		}
		if knownTemplate && !slices.Contains(tf.in, t.Template) {
			c.errorf(k, "not shown by the %q tile template (only by %s)", t.Template, quoteList(tf.in))
		}
		if tf.image {
			c.imageURL(k, *tf.dst)
		}
		templates = append(templates, field{k, *tf.dst})
	}
	if r.BackgroundColor != nil && t.BackgroundColor != "" && !strings.Contains(t.BackgroundColor, "{{") && !isARGB(t.BackgroundColor) {
		c.errorf(key+".background_color", `bad color %q: want hex ARGB such as "#FF1BA1E2"`, t.BackgroundColor)
	}

	k := key + ".cycle_images"
	t.CycleImages = c.strs(k, r.CycleImages, nil, func(ek, s string) {
		c.imageURL(ek, s)
		templates = append(templates, field{ek, s})
	})
	switch {
	case !knownTemplate:
	case r.CycleImages != nil && t.Template != tilecast.TileCycle:
		c.errorf(k, "not shown by the %q tile template (only by \"cycle\")", t.Template)
	case t.Template == tilecast.TileCycle && len(t.CycleImages) == 0:
		c.errorf(k, "the cycle template needs 1 to %d images", maxCycleImages)
	case len(t.CycleImages) > maxCycleImages:
		c.errorf(k, "%d images: the cycle template shows at most %d", len(t.CycleImages), maxCycleImages)
	}
	return t, templates
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func isARGB(s string) bool {
	if len(s) != 9 || s[0] != '#' {
		return false
	}
	for _, r := range s[1:] {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}

// hostPattern checks one push.allowed_hosts entry: a host name or IP, or
// "*." followed by a domain suffix.
func (c *checker) hostPattern(key, h string) {
	name := strings.TrimPrefix(h, "*.")
	if net.ParseIP(name) != nil {
		return
	}
	if name == "" || strings.ContainsAny(name, "*/:@?#[] \t") || strings.HasPrefix(name, ".") {
		c.errorf(key, `bad host pattern %q: want a host name such as "db3.notify.live.net" or a suffix such as "*.notify.live.net"`, h)
	}
}

// keyPair checks a certificate and key pair (push.client_cert and
// push.client_key, http.tls_cert and http.tls_key): both or neither, and
// readable as a TLS key pair now rather than at first use.
func (c *checker) keyPair(certKey, keyKey, cert, key string) {
	switch {
	case cert == "" && key == "":
		return
	case cert == "":
		c.errorf(certKey, "missing: %s is set, so %s must be too", keyKey, leaf(certKey))
		return
	case key == "":
		c.errorf(keyKey, "missing: %s is set, so %s must be too", certKey, leaf(keyKey))
		return
	}
	okCert := c.pemFile(certKey, cert)
	okKey := c.pemFile(keyKey, key)
	if okCert && okKey {
		if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
			c.errorf(certKey, "cannot use %q with %q: %v", cert, key, err)
		}
	}
}

// leaf is the last part of a dotted key: "client_cert" of "push.client_cert".
func leaf(key string) string { return key[strings.LastIndexByte(key, '.')+1:] }

// access checks the [http] keys of issue 15: who may read /metrics, the
// user token key, the listener's TLS files and the CLI's TLS trust.
func (c *checker) access(r *rawHTTP, h *HTTP) {
	h.MetricsAuth = c.enum("http.metrics_auth", r.MetricsAuth, h.MetricsAuth, MetricsAuthNone, MetricsAuthAdmin)
	if h.MetricsAuth == MetricsAuthAdmin && h.APIKeysFile == "" {
		c.errorf("http.metrics_auth", `"admin" needs an admin key from http.api_keys_file, which is ""`)
	}

	h.UserTokenKeyFile = c.secretPath("http.user_token_key_file", c.str("http.user_token_key_file", r.UserTokenKeyFile, ""))
	h.UserTokenPublicKeyFile = c.str("http.user_token_public_key_file", r.UserTokenPublicKeyFile, "")
	switch {
	case h.UserTokenKeyFile != "" && h.UserTokenPublicKeyFile != "":
		c.errorf("http.user_token_public_key_file", "set this or http.user_token_key_file (at %s), not both: a key pins one algorithm",
			c.where("http.user_token_key_file"))
	case h.UserTokenKeyFile != "":
		c.pemFile("http.user_token_key_file", h.UserTokenKeyFile)
	case h.UserTokenPublicKeyFile != "":
		c.pemFile("http.user_token_public_key_file", h.UserTokenPublicKeyFile)
	}

	h.TLSCert = c.str("http.tls_cert", r.TLSCert, "")
	h.TLSKey = c.secretPath("http.tls_key", c.str("http.tls_key", r.TLSKey, ""))
	c.keyPair("http.tls_cert", "http.tls_key", h.TLSCert, h.TLSKey)

	h.TLSCAFile = c.str("http.tls_ca_file", r.TLSCAFile, "")
	h.TLSServerName = c.str("http.tls_server_name", r.TLSServerName, "")
	for _, k := range []struct{ key, v string }{{"http.tls_ca_file", h.TLSCAFile}, {"http.tls_server_name", h.TLSServerName}} {
		if k.v != "" && h.TLSCert == "" {
			c.errorf(k.key, "set without http.tls_cert: the daemon's listener does not speak TLS")
		}
	}
	if h.TLSCAFile != "" && c.pemFile("http.tls_ca_file", h.TLSCAFile) {
		if data, err := os.ReadFile(h.TLSCAFile); err == nil && !x509.NewCertPool().AppendCertsFromPEM(data) {
			c.errorf("http.tls_ca_file", "no PEM certificate in %q", h.TLSCAFile)
		}
	}
	if n := h.TLSServerName; n != "" && net.ParseIP(n) == nil &&
		(strings.ContainsAny(n, "/:@?#[]* \t") || strings.HasPrefix(n, ".") || strings.HasSuffix(n, ".")) {
		c.errorf("http.tls_server_name", `bad name %q: want the host name the certificate names, such as "tilecast.example.org"`, n)
	}
}

// pemFile checks that path is a readable regular file of PEM size; anything
// else (a directory, a FIFO, /dev/zero) must not hang or swamp the loader.
func (c *checker) pemFile(key, path string) bool {
	st, err := os.Stat(path)
	if err == nil && !st.Mode().IsRegular() {
		err = errors.New("not a regular file")
	} else if err == nil && st.Size() > certFileMaxSize {
		err = errors.New("too large for a PEM file")
	}
	if err == nil {
		var f *os.File
		if f, err = os.Open(path); err == nil {
			err = f.Close()
		}
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		c.errorf(key, "cannot read %q: %v", path, err)
		return false
	}
	return true
}
