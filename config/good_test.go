package config_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
)

func mustParse(t *testing.T, doc string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.toml", []byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

// TestDefaults checks every default, field by field, on a file that sets
// nothing but one feed.
func TestDefaults(t *testing.T) {
	cfg := mustParse(t, `
[[feed]]
name = "news"
url = "https://example.org/news.xml"
[feed.toast]
text1 = "{{.Item.Title}}"
`)
	checks := []struct {
		name      string
		got, want any
	}{
		{"Path", cfg.Path, "test.toml"},
		{"State", cfg.State, "/var/lib/tilecast/state.db"},
		{"Log.Level", cfg.Log.Level, "info"},
		{"Log.SlogLevel", cfg.Log.SlogLevel().String(), "INFO"},
		{"Log.Format", cfg.Log.Format, "text"},
		{"HTTP.Listen", cfg.HTTP.Listen, "127.0.0.1:8460"},
		{"HTTP.APIKeysFile", cfg.HTTP.APIKeysFile, "/etc/tilecast/api-keys"},
		{"Fetch.Timeout", cfg.Fetch.Timeout, 20 * time.Second},
		{"Fetch.MaxBody", cfg.Fetch.MaxBody, int64(4 << 20)},
		{"Fetch.Concurrency", cfg.Fetch.Concurrency, 8},
		{"Fetch.AllowPrivate", cfg.Fetch.AllowPrivate, false},
		{"Push.Timeout", cfg.Push.Timeout, 15 * time.Second},
		{"Push.Concurrency", cfg.Push.Concurrency, 32},
		{"Push.AllowedHosts", cfg.Push.AllowedHosts, []string{"*.notify.live.net", "*.notify.windows.com"}},
		{"Push.AllowPrivate", cfg.Push.AllowPrivate, false},
		{"Push.Class", cfg.Push.Class, "immediate"},
		{"Push.MaxAttempts", cfg.Push.MaxAttempts, 10},
		{"Push.ClientCert", cfg.Push.ClientCert, ""},
		{"Push.ClientKey", cfg.Push.ClientKey, ""},
		{"Push.WebPush", cfg.Push.WebPush, config.WebPush{
			AllowedHosts: []string{"fcm.googleapis.com", "*.push.services.mozilla.com", "*.push.apple.com", "*.notify.windows.com"},
			UrgencyToast: "normal", UrgencyTile: "low"}},
		{"Push.WebPush.Enabled", cfg.Push.WebPush.Enabled(), false},
		{"Defaults.Schedule", cfg.Defaults.Schedule, "*/15 * * * *"},
		{"Defaults.FirstRun", cfg.Defaults.FirstRun, "baseline"},
		{"Defaults.MaxToasts", cfg.Defaults.MaxToasts, 3},
		{"Defaults.FloodLimit", cfg.Defaults.FloodLimit, 20},
		{"Defaults.ImageCheck", cfg.Defaults.ImageCheck, true},
		{"Defaults.FallbackImage", cfg.Defaults.FallbackImage, ""},
		{"Defaults.BrokenAfter", cfg.Defaults.BrokenAfter, 24 * time.Hour},
		{"Defaults.TileOnSubscribe", cfg.Defaults.TileOnSubscribe, true},
		{"Defaults.TTL", cfg.Defaults.TTL, tilecast.TTL{tilecast.KindToast: 24 * time.Hour,
			tilecast.KindTile: 72 * time.Hour, tilecast.KindRaw: 24 * time.Hour, tilecast.KindBadge: 72 * time.Hour}},
		{"len(Feeds)", len(cfg.Feeds), 1},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	want := tilecast.Feed{
		Name: "news", URL: "https://example.org/news.xml", Schedule: "*/15 * * * *",
		FirstRun: "baseline", MaxToasts: 3, FloodLimit: 20, ImageCheck: true,
		BrokenAfter: 24 * time.Hour, TileOnSubscribe: true,
		TTL: tilecast.TTL{tilecast.KindToast: 24 * time.Hour, tilecast.KindTile: 72 * time.Hour, tilecast.KindRaw: 24 * time.Hour,
			tilecast.KindBadge: 72 * time.Hour},
		Toast: &tilecast.ToastSpec{Text1: "{{.Item.Title}}"},
	}
	if !reflect.DeepEqual(cfg.Feeds[0], want) {
		t.Errorf("feed = %+v\nwant %+v", cfg.Feeds[0], want)
	}
	// Default() is what an empty file gives, and the two share nothing.
	empty := mustParse(t, "")
	def := config.Default()
	def.Path = "test.toml"
	if !reflect.DeepEqual(empty, def) {
		t.Errorf("empty file = %+v\nDefault() = %+v", empty, def)
	}
	empty.Push.AllowedHosts[0] = "changed"
	if config.Default().Push.AllowedHosts[0] != "*.notify.live.net" {
		t.Errorf("Default() shares its AllowedHosts slice")
	}
	empty.Defaults.TTL[tilecast.KindToast] = time.Minute
	if config.Default().Defaults.TTL[tilecast.KindToast] != 24*time.Hour {
		t.Errorf("Default() shares its TTL map")
	}
}

// TestInheritance: a feed takes each option from [defaults] unless it sets
// it, and a [defaults] value replaces the built-in default.
func TestInheritance(t *testing.T) {
	cfg := mustParse(t, `
[defaults]
schedule = "@hourly"
first_run = "notify"
max_toasts = 0
flood_limit = 5
image_check = false
fallback_image = "appdata:/Assets/Fallback.png"
broken_after = "2h"
tile_on_subscribe = false
toast_ttl = "6h"
tile_ttl = "672h"
badge_ttl = "1h"

[[feed]]
name = "inherits"
url = "https://example.org/a.xml"
[feed.tile]

[[feed]]
name = "overrides"
url = "https://example.org/{user}/b.xml"
schedule = "30 6 * * 1-5"
first_run = "baseline"
max_toasts = 20
flood_limit = 100
image_check = true
fallback_image = ""
broken_after = "90m"
tile_on_subscribe = true
toast_ttl = "30m"
raw_ttl = "1s"
badge_ttl = "2h"
[feed.toast]
text2 = "x"
`)
	a, b := cfg.Feeds[0], cfg.Feeds[1]
	wantA := tilecast.Feed{
		Name: "inherits", URL: "https://example.org/a.xml", Schedule: "@hourly",
		FirstRun: "notify", MaxToasts: 0, FloodLimit: 5, ImageCheck: false,
		FallbackImage: "appdata:/Assets/Fallback.png", BrokenAfter: 2 * time.Hour, TileOnSubscribe: false,
		TTL: tilecast.TTL{tilecast.KindToast: 6 * time.Hour, tilecast.KindTile: 28 * 24 * time.Hour, tilecast.KindRaw: 24 * time.Hour,
			tilecast.KindBadge: time.Hour},
		Tile: &tilecast.TileSpec{Template: "flip"},
	}
	wantB := tilecast.Feed{
		Name: "overrides", URL: "https://example.org/{user}/b.xml", Schedule: "30 6 * * 1-5",
		FirstRun: "baseline", MaxToasts: 20, FloodLimit: 100, ImageCheck: true,
		FallbackImage: "", BrokenAfter: 90 * time.Minute, TileOnSubscribe: true,
		TTL: tilecast.TTL{tilecast.KindToast: 30 * time.Minute, tilecast.KindTile: 28 * 24 * time.Hour, tilecast.KindRaw: time.Second,
			tilecast.KindBadge: 2 * time.Hour},
		Toast: &tilecast.ToastSpec{Text2: "x"},
	}
	if !reflect.DeepEqual(a, wantA) {
		t.Errorf("inheriting feed = %+v\nwant %+v", a, wantA)
	}
	if !reflect.DeepEqual(b, wantB) {
		t.Errorf("overriding feed = %+v\nwant %+v", b, wantB)
	}
	if a.PerUser() || !b.PerUser() {
		t.Errorf("PerUser: %v, %v; want false, true", a.PerUser(), b.PerUser())
	}
}

func TestValues(t *testing.T) {
	cfg := mustParse(t, `
state = "state.db"
[log]
level = "debug"
format = "json"
[http]
listen = ""
[fetch]
max_body = "512KiB"
[push]
allowed_hosts = []
class = "900s"
[[feed]]
name = "all-tile-fields"
url = "http://example.org/c.xml"
[feed.tile]
template = "cycle"
id = "/Feed.xaml?name=c"
title = "{{.Feed.Title | printf \"%.10s\"}}"
count = "{{.NewCount}}"
small_background_image = "isostore:/Shared/ShellContent/small.png"
cycle_images = ["https://c.example.org/1.png", "{{.Item.Image}}"]
`)
	if cfg.Log.Level != "debug" || cfg.Log.SlogLevel().String() != "DEBUG" || cfg.Log.Format != "json" {
		t.Errorf("log = %+v", cfg.Log)
	}
	if cfg.State != "state.db" {
		t.Errorf("State = %q: relative paths are kept as written", cfg.State)
	}
	if cfg.HTTP.Listen != "" {
		t.Errorf(`HTTP.Listen = %q, want "" (disabled)`, cfg.HTTP.Listen)
	}
	if cfg.Fetch.MaxBody != 512<<10 {
		t.Errorf("MaxBody = %d, want %d", cfg.Fetch.MaxBody, 512<<10)
	}
	if cfg.Push.AllowedHosts == nil || len(cfg.Push.AllowedHosts) != 0 {
		t.Errorf("AllowedHosts = %#v, want an empty list", cfg.Push.AllowedHosts)
	}
	if cfg.Push.Class != config.Class900s {
		t.Errorf("Class = %q", cfg.Push.Class)
	}
	want := &tilecast.TileSpec{
		Template: "cycle", ID: "/Feed.xaml?name=c", Title: `{{.Feed.Title | printf "%.10s"}}`,
		Count: "{{.NewCount}}", SmallBackgroundImage: "isostore:/Shared/ShellContent/small.png",
		CycleImages: []string{"https://c.example.org/1.png", "{{.Item.Image}}"},
	}
	if !reflect.DeepEqual(cfg.Feeds[0].Tile, want) {
		t.Errorf("tile = %+v\nwant %+v", cfg.Feeds[0].Tile, want)
	}
	if cfg.Feeds[0].Toast != nil {
		t.Errorf("feed without [feed.toast] has a toast: %+v", cfg.Feeds[0].Toast)
	}
}

func TestSizes(t *testing.T) {
	tests := map[string]int64{
		`1`: 1, `4096`: 4096, `"4096"`: 4096, `"100B"`: 100, `"512KiB"`: 512 << 10,
		`"4MiB"`: 4 << 20, `"4 MiB"`: 4 << 20, `"1GiB"`: 1 << 30,
	}
	for in, want := range tests {
		cfg, err := config.Parse("s.toml", []byte("[fetch]\nmax_body = "+in+"\n"))
		if err != nil {
			t.Errorf("max_body = %s: %v", in, err)
			continue
		}
		if cfg.Fetch.MaxBody != want {
			t.Errorf("max_body = %s gave %d, want %d", in, cfg.Fetch.MaxBody, want)
		}
	}
	for _, in := range []string{`"2GiB"`, `"4mib"`, `"4 M"`, `"-1"`, `"MiB"`, `""`, `-5`, `"99999999999999999999"`, `"9999999999999GiB"`, `4.0`} {
		if _, err := config.Parse("s.toml", []byte("[fetch]\nmax_body = "+in+"\n")); err == nil {
			t.Errorf("max_body = %s was accepted", in)
		}
	}
}

// TestExample loads the documented example exactly as a user would.
func TestExample(t *testing.T) {
	cfg, err := config.Load("../config.example.toml")
	if err != nil {
		t.Fatalf("config.example.toml: %v", err)
	}
	if len(cfg.Feeds) != 2 {
		t.Fatalf("example has %d feeds, want 2", len(cfg.Feeds))
	}
	news, mentions := cfg.Feeds[0], cfg.Feeds[1]
	if news.PerUser() || news.Toast == nil || news.Tile == nil || news.Tile.Template != tilecast.TileFlip || news.WebPushUrgency != "high" {
		t.Errorf("first example feed should be global with a toast and a flip tile: %+v", news)
	}
	if !mentions.PerUser() || mentions.Toast == nil {
		t.Errorf("second example feed should be per-user with a toast: %+v", mentions)
	}
	// The example shows the defaults; it must not contradict Default().
	def := config.Default()
	if cfg.State != def.State || cfg.Log != def.Log || cfg.HTTP != def.HTTP || cfg.Fetch != def.Fetch ||
		!reflect.DeepEqual(cfg.Push, def.Push) || !reflect.DeepEqual(cfg.Defaults, def.Defaults) {
		t.Errorf("example's top-level values differ from Default():\n%+v\n%+v", cfg, def)
	}
}

func TestSchedule(t *testing.T) {
	from := time.Date(2025, time.March, 29, 23, 50, 0, 0, time.UTC)
	tests := []struct {
		spec string
		want []string // next runs after from, RFC 3339 UTC
	}{
		{"*/15 * * * *", []string{"2025-03-30T00:00:00Z", "2025-03-30T00:15:00Z"}},
		{"0 9 * * *", []string{"2025-03-30T09:00:00Z", "2025-03-31T09:00:00Z"}},
		{"CRON_TZ=UTC   0 9 * * 1", []string{"2025-03-31T09:00:00Z", "2025-04-07T09:00:00Z"}},
		{"@hourly", []string{"2025-03-30T00:00:00Z", "2025-03-30T01:00:00Z"}},
		{"@every 10m", []string{"2025-03-30T00:00:00Z", "2025-03-30T00:10:00Z"}},
		{"@every 1s", []string{"2025-03-29T23:50:01Z", "2025-03-29T23:50:02Z"}},
		// Berlin switches to summer time on 2025-03-30: 09:00 CET then CEST.
		{"CRON_TZ=Europe/Berlin 0 9 * * *", []string{"2025-03-30T07:00:00Z", "2025-03-31T07:00:00Z"}},
		{"TZ=America/New_York 0 9 * * *", []string{"2025-03-30T13:00:00Z", "2025-03-31T13:00:00Z"}},
		{"0 0 29 2 *", []string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
	}
	for _, tt := range tests {
		doc := fmt.Sprintf("[[feed]]\nname = \"f\"\nurl = \"https://example.org/\"\nschedule = %q\n[feed.toast]\ntext1 = \"x\"\n", tt.spec)
		cfg, err := config.Parse("s.toml", []byte(doc))
		if err != nil {
			t.Errorf("%q: %v", tt.spec, err)
			continue
		}
		runs, err := cfg.NextRuns("f", from, len(tt.want))
		if err != nil {
			t.Errorf("NextRuns(%q): %v", tt.spec, err)
			continue
		}
		var got []string
		for _, r := range runs {
			got = append(got, r.Format(time.RFC3339))
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("NextRuns(%q) = %v, want %v", tt.spec, got, tt.want)
		}
	}
	// A schedule without a zone does not depend on where the caller's clock is.
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	s, err := config.Schedule("0 9 * * *")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Next(from.In(berlin)).UTC().Format(time.RFC3339); got != "2025-03-30T09:00:00Z" {
		t.Errorf("Schedule(0 9 * * *).Next in Berlin = %s, want 09:00 UTC", got)
	}

	bad := []string{"", "   ", "* * * *", "* * * * * *", "99 * * * *", "0 0 30 2 *", "@every", "@every 0s",
		"@every -5m", "@every 500ms", "@every  x", "@fortnightly", "TZ=UTC", "CRON_TZ=", "CRON_TZ= * * * * *",
		"CRON_TZ=Local * * * * *", "CRON_TZ=No/Such_Zone * * * * *", "TZ=UTC TZ=UTC * * * * *", "TZ=UTC TZ=UTC",
		"60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *", "a b c d e", " 0 9 * * *", "@hourly ", " @hourly", "@every  5m", "@every 5m "}
	for _, spec := range bad {
		if _, err := config.Schedule(spec); err == nil {
			t.Errorf("Schedule(%q) accepted", spec)
		}
	}

	cfg := mustParse(t, "")
	if _, err := cfg.NextRuns("nope", from, 1); err == nil {
		t.Errorf("NextRuns of an unknown feed succeeded")
	}
}

// writeKeyPair writes a self-signed certificate and its key as PEM files.
func writeKeyPair(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestClientCert(t *testing.T) {
	dir := t.TempDir()
	certA, keyA := writeKeyPair(t, dir, "a")
	_, keyB := writeKeyPair(t, dir, "b")
	notPEM := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(notPEM, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	doc := func(cert, key string) string {
		return fmt.Sprintf("[push]\nclient_cert = %q\nclient_key = %q\n", cert, key)
	}

	cfg := mustParse(t, doc(certA, keyA))
	if cfg.Push.ClientCert != certA || cfg.Push.ClientKey != keyA {
		t.Errorf("Push = %+v", cfg.Push)
	}

	tests := []struct{ cert, key, want string }{
		{certA, keyB, "test.toml:2:15: push.client_cert: cannot use " + fmt.Sprintf("%q with %q", certA, keyB) + ": tls: private key does not match public key"},
		{notPEM, keyA, "test.toml:2:15: push.client_cert: cannot use " + fmt.Sprintf("%q with %q", notPEM, keyA) + ": tls: failed to find any PEM data in certificate input"},
		{certA, dir, "test.toml:3:14: push.client_key: cannot read " + fmt.Sprintf("%q", dir) + ": not a regular file"},
	}
	for _, tt := range tests {
		_, err := config.Parse("test.toml", []byte(doc(tt.cert, tt.key)))
		if err == nil || err.Error() != tt.want {
			t.Errorf("cert %s key %s: error\n%v\nwant\n%s", tt.cert, tt.key, err, tt.want)
		}
	}

	if os.Geteuid() != 0 { // root reads any file
		unreadable := filepath.Join(dir, "secret.key")
		if err := os.WriteFile(unreadable, []byte("x"), 0o000); err != nil {
			t.Fatal(err)
		}
		_, err := config.Parse("test.toml", []byte(doc(certA, unreadable)))
		if err == nil || !strings.Contains(err.Error(), "push.client_key: cannot read") {
			t.Errorf("unreadable key: %v", err)
		}
	}
}

// manyFeeds is a config with n feeds, as a large deployment has.
func manyFeeds(n int) []byte {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "[[feed]]\nname = \"f%d\"\nurl = \"https://example.org/%d.xml\"\nschedule = \"@every %dm\"\n", i, i, i%60+1)
		b.WriteString("[feed.toast]\ntext1 = \"{{.Feed.Title}}\"\ntext2 = \"{{.Item.Title}}\"\n")
		b.WriteString("[feed.tile]\ntitle = \"{{.Feed.Title}}\"\ncount = \"{{.NewCount}}\"\nback_content = \"{{.Item.Title}}\"\n\n")
	}
	return []byte(b.String())
}

func TestManyFeeds(t *testing.T) {
	cfg, err := config.Parse("many.toml", manyFeeds(1000))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Feeds) != 1000 || cfg.Feeds[999].Name != "f999" {
		t.Errorf("got %d feeds", len(cfg.Feeds))
	}
	// Positions stay right deep into a large file.
	doc := append(manyFeeds(1000), "[[feed]]\nname = \"f0\"\nurl = \"https://example.org/x\"\n[feed.toast]\ntext1 = \"x\"\n"...)
	_, err = config.Parse("many.toml", doc)
	want := `many.toml:12002:8: feed[1000].name: duplicate feed name "f0", first used by feed[0] at many.toml:2:8`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func BenchmarkParse(b *testing.B) {
	data := manyFeeds(1000)
	for b.Loop() {
		if _, err := config.Parse("many.toml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAccessKeys: issue 15's [http] keys load into Config, with the
// defaults when left out and the files checked.
func TestAccessKeys(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeKeyPair(t, dir, "tls")
	secret := filepath.Join(dir, "user-token.key")
	if err := os.WriteFile(secret, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if h := mustParse(t, "").HTTP; h.MetricsAuth != config.MetricsAuthNone || h.TLSCert != "" || h.UserTokenKeyFile != "" {
		t.Errorf("defaults: %+v", h)
	}
	h := mustParse(t, fmt.Sprintf("[http]\nmetrics_auth = \"admin\"\nuser_token_key_file = %q\ntls_cert = %q\ntls_key = %q\ntls_ca_file = %q\ntls_server_name = \"tilecast.example.org\"\n",
		secret, cert, key, cert)).HTTP
	if h.MetricsAuth != config.MetricsAuthAdmin || h.UserTokenKeyFile != secret || h.TLSCert != cert || h.TLSKey != key ||
		h.TLSCAFile != cert || h.TLSServerName != "tilecast.example.org" {
		t.Errorf("HTTP = %+v", h)
	}
	// A CA file without a certificate in it.
	_, err := config.Parse("test.toml", fmt.Appendf(nil, "[http]\ntls_cert = %q\ntls_key = %q\ntls_ca_file = %q\n", cert, key, secret))
	if err == nil || !strings.Contains(err.Error(), "test.toml:4:15: http.tls_ca_file: no PEM certificate") {
		t.Errorf("CA file without a certificate: %v", err)
	}
	// A listener pair that does not match.
	_, other := writeKeyPair(t, dir, "other")
	_, err = config.Parse("test.toml", fmt.Appendf(nil, "[http]\ntls_cert = %q\ntls_key = %q\n", cert, other))
	if err == nil || !strings.Contains(err.Error(), "test.toml:2:12: http.tls_cert: cannot use") {
		t.Errorf("mismatched pair: %v", err)
	}
}
