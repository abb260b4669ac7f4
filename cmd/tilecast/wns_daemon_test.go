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

	"github.com/tilecast/tilecast/emulator"
)

// The daemon with [push.wns] whose secret the token endpoint refuses:
// WNS notifications wait unsent, /healthz says degraded (200, with the
// reason), never 503, and the deliverer keeps working for the other
// transports. A reload with the right secret builds a new WNS client and
// token source, and the waiting notifications are delivered.
func TestDaemonWNSDegradedThenReload(t *testing.T) {
	const clientID = "ms-app://s-1-15-2-daemon-test"
	emu := emulator.New(emulator.Options{WNSClientID: clientID, WNSClientSecret: []byte("right-secret")})
	esrv := httptest.NewServer(emu.Handler())
	defer esrv.Close()
	defer emu.Close()
	emu.SetBaseURL(esrv.URL)
	pc, err := emu.CreateWindowsDevice(emulator.Healthy, "pc")
	if err != nil {
		t.Fatal(err)
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

	d := startDaemon(t, cfg)
	for _, reg := range []string{
		`{"uri":"` + pc.URI + `","transport":"wns","feeds":["news"]}`,
		`{"uri":"` + phone.URI + `","feeds":["news"]}`,
	} {
		if code, body := d.call("POST", "/v1/channels", reg, "secret-key-1"); code != http.StatusCreated {
			t.Fatalf("register %s: %d %s", reg, code, body)
		}
	}
	waitFor(t, "the baseline fetch", func() bool { return strings.Contains(d.logs.String(), "msg=fetch feed=news") })
	feed.add("Second")

	// The phone gets it; the Windows device's toast waits for a token.
	waitFor(t, "the phone's toast", func() bool {
		st, _ := emu.Channel(phone.Token)
		return len(st.Toasts) == 1
	})
	var body string
	waitFor(t, "/healthz degraded", func() bool {
		var code int
		code, body = d.call("GET", "/healthz", "", "secret-key-1")
		if code != http.StatusOK {
			t.Fatalf("/healthz %d while only the WNS token endpoint fails: %s", code, body)
		}
		return strings.Contains(body, `"status":"degraded"`)
	})
	if !strings.Contains(body, "wns token endpoint failing") || strings.Contains(body, "wrong-secret") {
		t.Errorf("/healthz body %s: want the reason, never the secret", body)
	}
	if st, _ := emu.WindowsDeviceState(pc.Token); len(st.Toasts) != 0 {
		t.Fatalf("toast delivered without a token: %+v", st.Toasts)
	}
	if strings.Contains(d.logs.String(), "wrong-secret") {
		t.Error("the client secret is in the log")
	}

	// The right secret, and a reload: the new client gets a token and the
	// waiting toast goes out.
	os.WriteFile(secretFile, []byte("right-secret\n"), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "reload", func() bool { return strings.Contains(d.logs.String(), `msg="config reloaded"`) })
	waitFor(t, "the Windows toast after the reload", func() bool {
		st, _ := emu.WindowsDeviceState(pc.Token)
		return len(st.Toasts) == 1
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
