package main

import (
	"context"
	"fmt"
	"io"
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
	"github.com/tilecast/tilecast/internal/logtest"
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
	keys := filepath.Join(dir, "api-keys")
	os.WriteFile(keys, []byte("admin secret-key-1\n"), 0o600)
	secretFile := filepath.Join(dir, "wns-secret")
	os.WriteFile(secretFile, []byte("wrong-secret\n"), 0o600)
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "tilecast.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`state = %q
[http]
listen = %q
api_keys_file = %q
[fetch]
allow_private = true
[push]
allow_private = true
allowed_hosts = ["127.0.0.1"]
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
`, filepath.Join(dir, "state.db"), addr, keys, clientID, secretFile, esrv.URL+emulator.WNSClassicTokenPath, fsrv.URL)), 0o600)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	logs := &logtest.Buffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", "--config", cfg}, strings.NewReader(""), io.Discard, logs) }()
	waitFor(t, "daemon start", func() bool { return strings.Contains(logs.String(), "tilecast running") })
	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer secret-key-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, reg := range []string{
		`{"uri":"` + pc.URI + `","transport":"wns","feeds":["news"]}`,
		`{"uri":"` + phone.URI + `","feeds":["news"]}`,
	} {
		if code, body := call("POST", "/v1/channels", reg); code != http.StatusCreated {
			t.Fatalf("register %s: %d %s", reg, code, body)
		}
	}
	waitFor(t, "the baseline fetch", func() bool { return strings.Contains(logs.String(), "msg=fetch feed=news") })
	feed.add("Second")

	// The phone gets it; the Windows device's toast waits for a token.
	waitFor(t, "the phone's toast", func() bool {
		st, _ := emu.Channel(phone.Token)
		return len(st.Toasts) == 1
	})
	var body string
	waitFor(t, "/healthz degraded", func() bool {
		var code int
		code, body = call("GET", "/healthz", "")
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
	if strings.Contains(logs.String(), "wrong-secret") {
		t.Error("the client secret is in the log")
	}

	// The right secret, and a reload: the new client gets a token and the
	// waiting toast goes out.
	os.WriteFile(secretFile, []byte("right-secret\n"), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "reload", func() bool { return strings.Contains(logs.String(), `msg="config reloaded"`) })
	waitFor(t, "the Windows toast after the reload", func() bool {
		st, _ := emu.WindowsDeviceState(pc.Token)
		return len(st.Toasts) == 1
	})
	waitFor(t, "/healthz ok", func() bool {
		code, b := call("GET", "/healthz", "")
		return code == http.StatusOK && strings.Contains(b, `"status":"ok"`)
	})
	// The push line is written when the outcome is recorded, which may
	// come a little after the device got the toast.
	delivered := regexp.MustCompile(`kind=toast .*outcome=delivered attempt=1 .*transport=wns`)
	waitFor(t, "the delivered WNS push line at attempt 1 (the waits for a token are no attempts)", func() bool {
		return delivered.MatchString(logs.String())
	})
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d\n%s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop")
	}
}
