package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tilecast/tilecast/emulator"
)

// The daemon with [push.wns] whose secret the token endpoint refuses:
// WNS notifications wait unsent, /healthz says degraded (200, with the
// reason), never 503, systemd's watchdog keeps being fed for longer than
// the deliverer may go without a pass, and the deliverer keeps working for
// the other transports. A reload with the right secret builds a new WNS
// client and token source, and the waiting notifications are delivered.
func TestDaemonWNSDegradedThenReload(t *testing.T) {
	pings := fakeSystemd(t)
	const clientID = "ms-app://s-1-15-2-daemon-test"
	emu := emulator.New(emulator.Options{WNSClientID: clientID, WNSClientSecret: []byte("right-secret")})
	esrv := httptest.NewServer(emu.Handler())
	defer esrv.Close()
	defer emu.Close()
	emu.SetBaseURL(esrv.URL)
	// Two Windows devices and one worker: a send that waited for the
	// token endpoint instead of returning would hold the only worker with
	// the second device's toast still to hand out, so the dispatcher
	// would stop making passes and the watchdog stop being fed.
	var pcs []emulator.WindowsDevice
	for _, name := range []string{"pc", "laptop"} {
		pc, err := emu.CreateWindowsDevice(emulator.Healthy, name)
		if err != nil {
			t.Fatal(err)
		}
		pcs = append(pcs, pc)
	}
	phone, err := emu.CreateChannel(emulator.Healthy, "phone")
	if err != nil {
		t.Fatal(err)
	}
	feed := &growingFeed{}
	feed.add("First")
	fsrv := httptest.NewServer(feed)
	defer fsrv.Close()

	dir := t.TempDir()
	secretFile := filepath.Join(dir, "wns-secret")
	os.WriteFile(secretFile, []byte("wrong-secret\n"), 0o600)
	cfg := loopbackConfig(t, dir, "admin secret-key-1\n", fmt.Sprintf(`allowed_hosts = ["127.0.0.1"]
concurrency = 1
[push.wns]
client_id = %q
client_secret_file = %q
token_url = %q
[[feed]]
name = "news"
url = "%s/news.xml"
schedule = "@every 1s"
[feed.toast]
text2 = "{{.Item.Title}}"
`, clientID, secretFile, esrv.URL+emulator.WNSClassicTokenPath, fsrv.URL))

	// Limits the outage outlasts. pass is above the longest the deliverer
	// idles in a working daemon during it: until the next token try (2 s,
	// then 4 s, then 8 s after the first failure).
	lim := healthLimits{beat: 15 * time.Second, pass: 9 * time.Second, fetch: time.Minute}
	d := startDaemonLimits(t, cfg, &lim)
	regs := []string{`{"uri":"` + phone.URI + `","feeds":["news"]}`}
	for _, pc := range pcs {
		regs = append(regs, `{"uri":"`+pc.URI+`","transport":"wns","feeds":["news"]}`)
	}
	for _, reg := range regs {
		if code, body := d.call("POST", "/v1/channels", reg, "secret-key-1"); code != http.StatusCreated {
			t.Fatalf("register %s: %d %s", reg, code, body)
		}
	}
	waitFor(t, "the baseline fetch", func() bool { return strings.Contains(d.logs.String(), "msg=fetch feed=news") })
	feed.add("Second")

	// The Windows devices' toasts wait for a token.
	healthz := func() string {
		t.Helper()
		code, body := d.call("GET", "/healthz", "", "secret-key-1")
		if code != http.StatusOK {
			t.Fatalf("/healthz %d while only the WNS token endpoint fails: %s\n%s", code, body, d.logs.String())
		}
		return body
	}
	var body string
	waitFor(t, "/healthz degraded", func() bool {
		body = healthz()
		return strings.Contains(body, `"status":"degraded"`)
	})
	if !strings.Contains(body, "wns token endpoint failing") || strings.Contains(body, "wrong-secret") {
		t.Errorf("/healthz body %s: want the reason, never the secret", body)
	}
	// The outage is no fault of the daemon's: the watchdog is fed in every
	// second of it, for longer than the deliverer may go without a pass
	// (a deliverer stalled since the first failure stops it within the
	// window). Not much longer: the reload below must come before the
	// third token retry, 14 s after the first failure; after that one the
	// deliverer idles 16 s, more than pass.
	window := lim.pass + 2*time.Second
	for sec := 1; time.Duration(sec)*time.Second <= window; sec++ {
		before := strings.Count(pings(), "WATCHDOG=1")
		time.Sleep(time.Second)
		if after := strings.Count(pings(), "WATCHDOG=1"); after == before {
			t.Fatalf("no watchdog ping in second %d of the token endpoint's outage:\n%s", sec, d.logs.String())
		}
	}
	if body := healthz(); !strings.Contains(body, `"status":"degraded"`) {
		t.Fatalf("/healthz %s after %s of the outage, want degraded", body, window)
	}
	if strings.Contains(d.logs.String(), "watchdog not pinged") {
		t.Errorf("the watchdog missed a ping while the token endpoint failed:\n%s", d.logs.String())
	}

	// The phone got its toast meanwhile; the Windows devices none.
	waitFor(t, "the phone's toast", func() bool {
		st, _ := emu.Channel(phone.Token)
		return len(st.Toasts) == 1
	})
	for _, pc := range pcs {
		if st, _ := emu.WindowsDeviceState(pc.Token); len(st.Toasts) != 0 {
			t.Fatalf("toast delivered without a token: %+v", st.Toasts)
		}
	}
	if strings.Contains(d.logs.String(), "wrong-secret") {
		t.Error("the client secret is in the log")
	}

	// The right secret, and a reload: the new client gets a token and the
	// waiting toast goes out.
	os.WriteFile(secretFile, []byte("right-secret\n"), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "reload", func() bool { return strings.Contains(d.logs.String(), `msg="config reloaded"`) })
	waitFor(t, "the Windows toasts after the reload", func() bool {
		for _, pc := range pcs {
			if st, _ := emu.WindowsDeviceState(pc.Token); len(st.Toasts) != 1 {
				return false
			}
		}
		return true
	})
	waitFor(t, "/healthz ok", func() bool {
		code, b := d.call("GET", "/healthz", "", "secret-key-1")
		return code == http.StatusOK && strings.Contains(b, `"status":"ok"`)
	})
	// The push line is written when the outcome is recorded, which may
	// come a little after the device got the toast.
	delivered := regexp.MustCompile(`kind=toast .*outcome=delivered attempt=1 .*transport=wns`)
	waitFor(t, "the delivered WNS push line at attempt 1 (the waits for a token are no attempts)", func() bool {
		return delivered.MatchString(d.logs.String())
	})
	if code := d.stop(); code != exitOK {
		t.Errorf("exit %d\n%s", code, d.logs.String())
	}
}
