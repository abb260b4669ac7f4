package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
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

	cfg := loopbackConfig(t, t.TempDir(), "admin secret-key-1\n", fmt.Sprintf(`allowed_hosts = ["127.0.0.1"]
[[feed]]
name = "news"
url = "%s/news.xml"
schedule = "@every 1s"
[feed.toast]
text2 = "{{.Item.Title}}"
`, fsrv.URL))

	d := startDaemon(t, cfg)
	healthz := func() string {
		code, body := d.call("GET", "/healthz", "", "secret-key-1")
		if code != http.StatusOK {
			t.Fatalf("/healthz %d while only a push host fails: %s", code, body)
		}
		return body
	}
	// One more channel than it takes to open the circuit: every one of
	// them gets the toast, so the host fails often enough.
	for i := range tilecast.DefaultBreakerFailures + 1 {
		reg := fmt.Sprintf(`{"uri":"%s/ch%d","feeds":["news"]}`, push.URL, i)
		if code, body := d.call("POST", "/v1/channels", reg, "secret-key-1"); code != http.StatusCreated {
			t.Fatalf("register %s: %d %s", reg, code, body)
		}
	}
	waitFor(t, "the baseline fetch", func() bool { return strings.Contains(d.logs.String(), "msg=fetch feed=news") })
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
	if strings.Contains(d.logs.String(), "watchdog not pinged") {
		t.Errorf("the watchdog missed a ping while a push host failed:\n%s", d.logs.String())
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
	if delivered.Load() == 0 || !strings.Contains(d.logs.String(), "circuit closed") {
		t.Errorf("/healthz ok without a successful probe: %d delivered", delivered.Load())
	}

	if code := d.stop(); code != exitOK {
		t.Errorf("exit %d\n%s", code, d.logs.String())
	}
}
