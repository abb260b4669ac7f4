package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tilecast/tilecast/emulator"
)

// The daemon with [push.webpush], end to end: a subscription that expired
// while it was down is removed at start; GET /v1/webpush/key serves the
// key without an API key; browsers registered through the API with their
// subscription receive a new item beside an MPNS phone, one push line
// each, the toast with [push.webpush] icon and the item's tag; a push
// service that refuses the VAPID key of a run of channels is paused and
// /healthz says degraded (200), not 503; no log line holds a
// subscription's keys; a reload applies a new subject, urgency and icon.
func TestDaemonWebPush(t *testing.T) {
	dir := t.TempDir()
	keyFile, pub := vapidKey(t, dir)

	emu := emulator.New(emulator.Options{})
	esrv := httptest.NewServer(emu.Handler())
	defer esrv.Close()
	defer emu.Close()
	emu.SetBaseURL(esrv.URL)
	// A second push service (another origin), whose browsers subscribed
	// with a key that is not tilecast's: it answers every push 403.
	other := emulator.New(emulator.Options{})
	osrv := httptest.NewServer(other.Handler())
	defer osrv.Close()
	defer other.Close()
	other.SetBaseURL(osrv.URL)

	feed := &growingFeed{}
	feed.add("First")
	fsrv := httptest.NewServer(feed)
	defer fsrv.Close()

	cfg := loopbackConfig(t, dir, "admin secret-key-1\n", fmt.Sprintf(`allowed_hosts = ["127.0.0.1"]
[push.webpush]
subject = "mailto:ops@tilecast.dev"
vapid_private_key_file = %q
allowed_hosts = ["127.0.0.1"]
icon = "/icons/app-192.png"
[[feed]]
name = "news"
url = "%s/news.xml"
schedule = "@every 1s"
[feed.toast]
text1 = "{{.Feed.Title}}"
text2 = "{{.Item.Title}}"
[feed.tile]
title = "News"
count = "{{.NewCount}}"
back_content = "{{.Item.Title}}"
`, keyFile, fsrv.URL))

	var secrets []string
	subJSON := func(br emulator.Browser) string {
		secrets = append(secrets, br.Subscription.Keys.P256DH, br.Subscription.Keys.Auth)
		b, _ := json.Marshal(br.Subscription)
		return string(b)
	}

	// Registered while the daemon is down, expiring a moment later.
	short, err := emu.CreateBrowser(emulator.Healthy, "short-lived")
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Second).UnixMilli()
	short.Subscription.ExpirationTime = &exp
	code, out, errs := runCLI(t, t.Context(), "channels", "add", "--config", cfg, "--subscription", subJSON(short))
	if code != exitOK {
		t.Fatalf("channels add: exit %d %s", code, errs)
	}
	var shortCh struct{ ID string }
	json.Unmarshal([]byte(out), &shortCh)
	time.Sleep(time.Until(time.UnixMilli(exp)) + 100*time.Millisecond)

	d := startDaemon(t, cfg)
	waitFor(t, "the expired channel's removal", func() bool {
		return strings.Contains(d.logs.String(), `msg="channel removed: subscription expired" channel=`+shortCh.ID)
	})

	if code, body := d.call("GET", "/v1/webpush/key", "", ""); code != http.StatusOK || !strings.Contains(body, pub) {
		t.Errorf("GET /v1/webpush/key: %d %s; want the public key %s", code, body, pub)
	}

	chrome, err := emu.CreateBrowser(emulator.Healthy, "chrome", emulator.BrowserParams{ApplicationServerKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	phone, err := emu.CreateChannel(emulator.Healthy, "phone")
	if err != nil {
		t.Fatal(err)
	}
	regs := []string{
		`{"subscription":` + subJSON(chrome) + `,"feeds":["news"],"user":"ana"}`,
		`{"uri":"` + phone.URI + `","feeds":["news"]}`,
	}
	for i := range 12 {
		br, err := other.CreateBrowser(emulator.Healthy, fmt.Sprintf("stale %d", i), emulator.BrowserParams{ApplicationServerKey: loadInteropKeys(t).VAPID.PublicKey})
		if err != nil {
			t.Fatal(err)
		}
		regs = append(regs, `{"subscription":`+subJSON(br)+`,"feeds":["news"]}`)
	}
	var chromeID string
	for i, reg := range regs {
		code, body := d.call("POST", "/v1/channels", reg, "secret-key-1")
		if code != http.StatusCreated {
			t.Fatalf("register %d: %d %s", i, code, body)
		}
		if i == 0 {
			var v struct {
				ID           string `json:"id"`
				Subscription struct {
					Origin string `json:"origin"`
				} `json:"subscription"`
			}
			json.Unmarshal([]byte(body), &v)
			chromeID = v.ID
			if v.Subscription.Origin != esrv.URL || strings.Contains(body, chrome.Subscription.Keys.Auth) {
				t.Errorf("registration answer %s: want the origin, never the keys", body)
			}
		}
	}
	waitFor(t, "the baseline fetch", func() bool { return strings.Contains(d.logs.String(), "msg=fetch feed=news") })
	feed.add("Harbour bridge reopens")

	waitFor(t, "chrome's notification and badge", func() bool {
		st, _ := emu.Browser(chrome.Token)
		return len(st.Notifications) == 1 && st.Tile != nil && st.Tile.Body == "Harbour bridge reopens"
	})
	st, _ := emu.Browser(chrome.Token)
	if st.Notifications[0].Body != "Harbour bridge reopens" || st.Badge != 1 {
		t.Errorf("chrome shows %+v, badge %d", st.Notifications, st.Badge)
	}
	// The item is g1 of the feed: its tag is printf g1 | sha256sum, cut.
	if n := st.Notifications[0]; n.Icon != "/icons/app-192.png" || n.Tag != "tilecast:news:711430f6164e9380" {
		t.Errorf("chrome's toast has icon %q tag %q; want [push.webpush] icon and the item's tag", n.Icon, n.Tag)
	}
	waitFor(t, "the phone's toast", func() bool {
		st, _ := emu.Channel(phone.Token)
		return len(st.Toasts) == 1
	})
	var body string
	waitFor(t, "/healthz degraded by the refusing push service", func() bool {
		var code int
		code, body = d.call("GET", "/healthz", "", "secret-key-1")
		if code != http.StatusOK {
			t.Fatalf("/healthz %d while only a push service refuses: %s", code, body)
		}
		return strings.Contains(body, `"status":"degraded"`)
	})
	if !strings.Contains(body, osrv.URL) || !strings.Contains(body, "refused VAPID") {
		t.Errorf("/healthz body %s: want the paused service and why", body)
	}
	// One push line per push: the item's toast and tile (and the tile on
	// subscribe, unless the item's tile replaced it while it waited); a
	// Web Push tile carries its count: no badge push.
	line := func(kind string) *regexp.Regexp {
		return regexp.MustCompile(`msg=push channel=` + chromeID + ` .* kind=` + kind + ` .*outcome=delivered .*transport=webpush`)
	}
	waitFor(t, "chrome's push lines", func() bool {
		l := d.logs.String()
		return line("toast").MatchString(l) && line("tile").MatchString(l)
	})
	l := d.logs.String()
	if n, tiles := len(line("toast").FindAllString(l, -1)), len(line("tile").FindAllString(l, -1)); n != 1 || tiles > 2 || line("badge").MatchString(l) {
		t.Errorf("chrome's push lines: %d toasts, %d tiles; want 1 toast, 1 or 2 tiles, no badge:\n%s", n, tiles, l)
	}
	if !strings.Contains(l, "configuration error") {
		t.Errorf("the VAPID refusals are not logged as a configuration error:\n%s", l)
	}
	for _, s := range secrets {
		if strings.Contains(l, s) {
			t.Errorf("the log holds a subscription key %q", s)
		}
	}
	// A reload applies the new subject, the feed's urgency and the new
	// icon to the next pushes; another key file needs a restart: the key
	// stays.
	key2, _ := vapidKey(t, t.TempDir())
	text, _ := os.ReadFile(cfg)
	text = []byte(strings.NewReplacer("mailto:ops@tilecast.dev", "https://ops.tilecast.dev/contact", keyFile, key2,
		"/icons/app-192.png", "https://cdn.tilecast.dev/app-v2.png").Replace(string(text)) + "[feed.webpush]\nurgency = \"high\"\n")
	os.WriteFile(cfg, text, 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "reload", func() bool { return strings.Contains(d.logs.String(), `msg="config reloaded"`) })
	if !regexp.MustCompile(`needs restart.*push\.webpush\.vapid_private_key_file|push\.webpush\.vapid_private_key_file.*needs restart`).MatchString(d.logs.String()) {
		t.Errorf("the new key file is not logged as needing a restart:\n%s", d.logs.String())
	}
	feed.add("Ferry timetable changes")
	waitFor(t, "the toast after the reload", func() bool {
		st, _ := emu.Browser(chrome.Token)
		return len(st.Notifications) == 2
	})
	st, _ = emu.Browser(chrome.Token)
	if l := st.Last; l == nil || l.Subject != "https://ops.tilecast.dev/contact" || l.Urgency != "high" || st.Counts.Rejected != 0 {
		t.Errorf("after the reload the service saw %+v (rejected %+v); want the new subject, urgency high, the old key", l, st.Rejected)
	}
	if n := st.Notifications[0]; n.Body != "Ferry timetable changes" || n.Icon != "https://cdn.tilecast.dev/app-v2.png" ||
		n.Tag != "tilecast:news:4d2f4b668cfc48e6" { // item g2
		t.Errorf("the latest toast after the reload: %+v; want the new icon and item g2's tag", n)
	}
	if code, body := d.call("GET", "/v1/webpush/key", "", ""); code != http.StatusOK || !strings.Contains(body, pub) {
		t.Errorf("GET /v1/webpush/key after the reload: %d %s; want the key read at start", code, body)
	}
	if code := d.stop(); code != exitOK {
		t.Errorf("exit %d\n%s", code, d.logs.String())
	}
}
