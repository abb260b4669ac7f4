package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/logtest"
)

// The daemon sending to an MPNS push host that answers 503: once the
// host's circuit opens, /healthz answers 200 "degraded" naming the host
// (never 503: the push service is not the daemon), and the systemd
// watchdog keeps being pinged. When the host answers again, the next
// probe closes the circuit and /healthz is "ok" again.
func TestDaemonBreakerDegradedHealthz(t *testing.T) {
	pings := fakeSystemd(t)
	var failing atomic.Bool
	var delivered atomic.Int64
	failing.Store(true)
	push := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		delivered.Add(1)
		w.Header().Set("X-NotificationStatus", "Received")
		w.Header().Set("X-SubscriptionStatus", "Active")
		w.Header().Set("X-DeviceConnectionStatus", "Connected")
	}))
	defer push.Close()
	pushHost := strings.TrimPrefix(push.URL, "http://")
	feed := &growingFeed{}
	feed.add("First")
	fsrv := httptest.NewServer(feed)
	defer fsrv.Close()

	dir := t.TempDir()
	keys := filepath.Join(dir, "api-keys")
	if err := os.WriteFile(keys, []byte("admin secret-key-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "tilecast.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`state = %q
[http]
listen = %q
api_keys_file = %q
[fetch]
allow_private = true
[push]
allow_private = true
allowed_hosts = ["127.0.0.1"]
[[feed]]
name = "news"
url = "%s/news.xml"
schedule = "@every 1s"
[feed.toast]
text2 = "{{.Item.Title}}"
`, filepath.Join(dir, "state.db"), addr, keys, fsrv.URL)), 0o600); err != nil {
		t.Fatal(err)
	}

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
	healthz := func() string {
		code, body := call("GET", "/healthz", "")
		if code != http.StatusOK {
			t.Fatalf("/healthz %d while only a push host fails: %s", code, body)
		}
		return body
	}
	// One more channel than it takes to open the circuit: every one of
	// them gets the toast, so the host fails often enough.
	for i := range tilecast.DefaultBreakerFailures + 1 {
		reg := fmt.Sprintf(`{"uri":"%s/ch%d","feeds":["news"]}`, push.URL, i)
		if code, body := call("POST", "/v1/channels", reg); code != http.StatusCreated {
			t.Fatalf("register %s: %d %s", reg, code, body)
		}
	}
	waitFor(t, "the baseline fetch", func() bool { return strings.Contains(logs.String(), "msg=fetch feed=news") })
	if body := healthz(); !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("/healthz before any failure: %s", body)
	}
	feed.add("Second")

	var body string
	waitFor(t, "/healthz degraded by the open circuit", func() bool {
		body = healthz()
		return strings.Contains(body, `"status":"degraded"`)
	})
	if !strings.Contains(body, pushHost) || !strings.Contains(body, "circuit open") || !strings.Contains(body, "HTTP 503") ||
		!strings.Contains(body, "next probe") {
		t.Errorf("/healthz %s: want the host, its 503 and the next probe", body)
	}
	// Degraded is no fault of the daemon's: the watchdog is still fed.
	before := strings.Count(pings(), "WATCHDOG=1")
	waitFor(t, "watchdog pings while degraded", func() bool { return strings.Count(pings(), "WATCHDOG=1") >= before+3 })
	if body := healthz(); !strings.Contains(body, `"status":"degraded"`) {
		t.Fatalf("the circuit closed early (nothing was sent to the host since): %s", body)
	}
	if strings.Contains(logs.String(), "watchdog not pinged") {
		t.Errorf("the watchdog missed a ping while a push host failed:\n%s", logs.String())
	}

	// The host answers again. A new item is held by the open circuit until
	// the probe time (tilecast.DefaultBreakerInterval after it opened),
	// when one send probes the host, which closes the circuit.
	failing.Store(false)
	feed.add("Third")
	deadline := time.Now().Add(tilecast.DefaultBreakerInterval + 30*time.Second)
	for body = healthz(); !strings.Contains(body, `"status":"ok"`); body = healthz() {
		if time.Now().After(deadline) {
			t.Fatalf("/healthz still %s after the probe time with the host answering", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if delivered.Load() == 0 || !strings.Contains(logs.String(), "circuit closed") {
		t.Errorf("/healthz ok without a successful probe: %d delivered", delivered.Load())
	}

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
