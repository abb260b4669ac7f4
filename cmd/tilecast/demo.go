package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/demo"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/notify/webpush"
	"github.com/tilecast/tilecast/web"
)

// demoConfig is the config the demo runs on; the %s are the state file,
// the API's address and keys file ("" and "": off), the WNS client id, its
// secret file and the emulator's token URL, the VAPID key file, and the
// sample feed server (twice). It is written to the demo's temp dir, so
// SIGHUP reloads work there as they do for a real deployment.
const demoConfig = `# tilecast demo config (generated)
state = %q

[log]
level = "info"

[http]
listen = %q
api_keys_file = %q

[fetch]
allow_private = true   # the sample feed is on loopback

[push]
allow_private = true   # so is the emulator
allowed_hosts = ["127.0.0.1"]
concurrency = 8

[push.wns]             # the emulator's token endpoint, with the demo's own credentials
client_id = %q
client_secret_file = %q
token_url = %q

[push.webpush]         # the emulated browsers' push service, with the demo's own VAPID key
subject = "mailto:demo@tilecast.dev"
vapid_private_key_file = %q
allowed_hosts = ["127.0.0.1"]

[defaults]
first_run = "baseline"
max_toasts = 2

[[feed]]
name = "news"
url = "%s/news.xml"
schedule = "@every 3s"
[feed.toast]
text1 = "{{.Feed.Title}}"
text2 = "{{.Item.Title}}"
param = "/Item.xaml?id={{.Item.ID | urlquery}}"
[feed.tile]
template = "flip"
title = "News"
count = "{{.NewCount}}"
back_title = "{{.Feed.Title}}"
back_content = "{{.Item.Title}}"
wide_back_content = "{{.Item.Summary}}"

[[feed]]
name = "inbox"
url = "%s/users/{user}/inbox.xml"
schedule = "@every 5s"
[feed.toast]
text1 = "Inbox"
text2 = "{{.Item.Title}}"
[feed.tile]
id = "/Inbox.xaml"     # a secondary tile: the news feed keeps the primary one
template = "iconic"
title = "Inbox of {{.User}}"
count = "{{.NewCount}}"
wide_content1 = "{{.Item.Title}}"
`

// demoWindows are the emulated Windows devices (WNS): name, device id,
// user, feeds, and whether its channel expires (410) after
// demoExpireAfter updates.
var demoWindows = []struct {
	name, device, user string
	feeds              []string
	expires            bool
}{
	{"Alice's PC", "alice-pc", "alice", []string{"news", "inbox"}, false},
	{"Old laptop", "old-laptop", "", nil, true},
}

// demoBrowsers are the emulated browsers (Web Push): name, device id,
// user, feeds, and whether the user unsubscribes (410) after
// demoExpireAfter updates.
var demoBrowsers = []struct {
	name, device, user string
	feeds              []string
	unsubscribes       bool
}{
	{"Alice's browser", "alice-browser", "alice", []string{"news", "inbox"}, false},
	{"Web app on a tablet", "tablet-web-app", "", nil, true},
}

// demoRetryBase is the demo's first retry delay (then 2×, 4×, …): seconds
// rather than the daemon's 4 minutes, so retries show within the demo.
const demoRetryBase = 3 * time.Second

// demoExpireAfter is how many feed updates (--every) the expiring Windows
// device and the unsubscribing browser show before their channel ends.
const demoExpireAfter = 4

// demoWNSClientID is the package SID the demo's emulator and daemon share.
const demoWNSClientID = "ms-app://s-1-15-2-1111111111-2222222222-3333333333-444444444-555555555-666666666-777777777"

// demoPhones are the emulated channels: behaviour, name, device id (the
// `device_id` of their push lines and the phone view's name), user, feeds.
var demoPhones = []struct {
	behaviour, name, device, user string
	feeds                         []string
}{
	{emulator.Healthy, "Alice's phone", "alice-phone", "alice", []string{"news", "inbox"}},
	{emulator.Healthy, "Bob's phone", "bob-phone", "bob", []string{"news", "inbox"}},
	{emulator.Healthy, "Kiosk", "kiosk", "", nil},
	{emulator.Expired, "Uninstalled app", "uninstalled-app", "", nil},
	{emulator.Inactive, "Phone in a drawer", "drawer-phone", "", nil},
	{emulator.QueueFull, "Busy phone", "busy-phone", "", nil},
	{emulator.Flaky, "Flaky network", "flaky-phone", "", nil},
}

func cmdDemo(ctx context.Context, e env) error {
	fs := newFlags(e, "demo", "demo [--seconds N] [--keep] [--listen ADDR] [--api ADDR] [--every D]\n\n"+
		"Runs everything on embedded defaults, with no config and no network: the MPNS,\n"+
		"WNS and Web Push emulator (its own WNS client id and secret, a fresh VAPID key),\n"+
		"a sample feed server and the daemon, pushing to emulated phones (MPNS), Windows\n"+
		"devices (WNS: one healthy, one whose channel expires) and browsers (Web Push: one\n"+
		"healthy, one whose user unsubscribes). The printed phone view shows each phone's\n"+
		"toasts, its primary tile (news) and secondary tile (inbox), each Windows device's\n"+
		"Start tile, badge and Action Center, and each browser's notifications and app\n"+
		"badge. The daemon's dashboard and API listen on loopback too, with an admin key\n"+
		"made up for this run and printed (--api \"\" turns them off).\n"+
		"Feeds are fetched every few seconds and failed sends retried after 3, 6, 12 s …\n"+
		"(a real daemon waits 4, 8, 16 … minutes), so everything shows within a minute.\n")
	seconds := fs.Int("seconds", 0, "stop by itself after N seconds (0: run until Ctrl-C)")
	keep := fs.Bool("keep", false, "keep the temp dir with the state file and config")
	listen := fs.String("listen", "127.0.0.1:0", "emulator address (phone view)")
	apiAddr := fs.String("api", "127.0.0.1:0", "dashboard and API address (\"\": off)")
	every := fs.Duration("every", 4*time.Second, "how often the sample feeds gain an item")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	if *every < time.Second {
		return usagef("demo: --every must be at least 1s")
	}
	if *seconds > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*seconds)*time.Second)
		defer cancel()
	}
	dir, err := os.MkdirTemp("", "tilecast-demo-")
	if err != nil {
		return err
	}
	if *keep {
		defer fmt.Fprintf(e.stdout, "kept %s (state.db, demo.toml)\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	log := slog.New(slog.NewTextHandler(e.stderr, nil))

	// The demo's own WNS credentials: the emulator's token endpoint
	// accepts them, the daemon reads the secret from a file as it would
	// in production.
	secret := []byte(rand.Text())
	secretFile := filepath.Join(dir, "wns-secret")
	if err := os.WriteFile(secretFile, append(secret, '\n'), 0o600); err != nil {
		return err
	}
	// A VAPID key of the demo's own, as `tilecast vapid generate` makes it.
	vapidFile := filepath.Join(dir, "vapid.pem")
	vapid, err := webpush.GenerateKey(vapidFile)
	if err != nil {
		return err
	}
	emu, emuURL, stopEmu, err := startEmulatorWith(*listen, slog.New(slog.DiscardHandler),
		emulator.Options{WNSClientID: demoWNSClientID, WNSClientSecret: secret})
	if err != nil {
		return err
	}
	defer stopEmu()
	feedURL, stopFeeds, err := serveLoopback(demo.NewFeeds(*every, nil))
	if err != nil {
		return err
	}
	defer stopFeeds()

	// The dashboard and API: a fixed address for the config (port 0 is
	// resolved to a free one here) and a keys file with one admin key,
	// made up for this run and printed.
	var apiURL, adminKey, keysFile string
	if *apiAddr != "" {
		addr, err := resolvePort(*apiAddr)
		if err != nil {
			return usagef("demo: --api: %v", err)
		}
		*apiAddr, apiURL, adminKey = addr, "http://"+addr, rand.Text()
		keysFile = filepath.Join(dir, "api-keys")
		if err := os.WriteFile(keysFile, []byte("admin "+adminKey+"\n"), 0o600); err != nil {
			return err
		}
	}

	cfgPath := filepath.Join(dir, "demo.toml")
	text := fmt.Sprintf(demoConfig, filepath.Join(dir, "state.db"), *apiAddr, keysFile, demoWNSClientID, secretFile,
		emuURL+emulator.WNSClassicTokenPath, vapidFile, feedURL, feedURL)
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return fmt.Errorf("demo config: %w", err) // a bug: the embedded config must load
	}
	db, err := openStore(cfg, log, time.Second, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	bot, err := newBot(cfg, db, log)
	if err != nil {
		return err
	}
	bot.RetryBase = demoRetryBase // show retries within the demo, not after 4 minutes

	for _, p := range demoPhones {
		ch, err := emu.CreateChannel(p.behaviour, demoName(p.name, p.device))
		if err != nil {
			return err
		}
		if _, _, err := db.AddChannel(tilecast.Channel{URI: ch.URI, User: p.user, Feeds: p.feeds, Device: p.device}); err != nil {
			return err
		}
	}
	for _, w := range demoWindows {
		d, err := emu.CreateWindowsDevice(emulator.Healthy, demoName(w.name, w.device))
		if err != nil {
			return err
		}
		// The emulator is not on *.notify.windows.com: the transport is
		// named, as push.allow_private requires.
		if _, _, err := db.AddChannel(tilecast.Channel{URI: d.URI, User: w.user, Feeds: w.feeds,
			Device: w.device, Transport: tilecast.TransportWNS}); err != nil {
			return err
		}
		if w.expires {
			t := time.AfterFunc(demoExpireAfter**every, func() { _ = emu.SetWindowsBehaviour(d.Token, emulator.Revoked) })
			defer t.Stop()
		}
	}
	for _, b := range demoBrowsers {
		// Subscribed with the demo's key, as a page does with GET
		// /v1/webpush/key: the emulator refuses pushes signed otherwise.
		br, err := emu.CreateBrowser(emulator.Healthy, demoName(b.name, b.device),
			emulator.BrowserParams{ApplicationServerKey: vapid.PublicKey()})
		if err != nil {
			return err
		}
		doc, err := json.Marshal(br.Subscription)
		if err != nil {
			return err
		}
		ch := tilecast.Channel{User: b.user, Feeds: b.feeds, Device: b.device}
		if err := web.ApplySubscription(&ch, doc, true, time.Now()); err != nil {
			return fmt.Errorf("demo browser %s: %w", b.name, err)
		}
		if _, _, err := db.AddChannel(ch); err != nil {
			return err
		}
		if b.unsubscribes {
			t := time.AfterFunc(demoExpireAfter**every, func() { _ = emu.SetBrowserBehaviour(br.Token, emulator.Unsubscribed) })
			defer t.Stop()
		}
	}
	fmt.Fprintf(e.stdout, "tilecast demo: %d emulated phones, %d Windows devices and %d browsers, feeds on %s, state in %s\n",
		len(demoPhones), len(demoWindows), len(demoBrowsers), feedURL, dir)
	fmt.Fprintf(e.stdout, "phone view: %s/ (phones, each Windows device's Start tile, badge and Action Center, each browser's\n"+
		"  notifications and app badge; %s/?poll for headless browsers and screenshots, which wait on the live updates otherwise)\n",
		emuURL, emuURL)
	if apiURL != "" {
		fmt.Fprintf(e.stdout, "dashboard:  %s/ (log in with the admin key %s, made up for this run)\n", apiURL, adminKey)
		fmt.Fprintf(e.stdout, "API:        curl -H 'Authorization: Bearer %s' %s/v1/status\n", adminKey, apiURL)
	} else {
		fmt.Fprintln(e.stdout, "dashboard and API: off (--api \"\")")
	}
	fmt.Fprintf(e.stdout, "fast schedule: feeds are fetched every 3-5 s and a failed send is retried after %s, %s, %s …\n"+
		"  (a real daemon retries after 4, 8, 16 … minutes), so retries show within the demo\n",
		demoRetryBase, 2*demoRetryBase, 4*demoRetryBase)
	fmt.Fprintln(e.stdout, "one `push` line per send follows on stderr (device_id names the phone); Ctrl-C stops")
	err = runDaemon(ctx, cfg, cfgPath, bot, db, log, e.health)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(ctx.Err(), context.Canceled) {
		fmt.Fprintln(e.stdout, "demo stopped")
	}
	return err
}

// demoName is a device's name in the phone view: its name and the device
// id its push lines carry, so the log and the page name it alike.
func demoName(name, device string) string {
	return name + " (device_id " + device + ")"
}

// resolvePort turns "host:0" into host and a port free right now, so the
// config can name it; any other address is returned as is.
func resolvePort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if port != "0" {
		return addr, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// serveLoopback serves h on a free loopback port.
func serveLoopback(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
