package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tilecast/tilecast"
	"github.com/tilecast/tilecast/internal/logtest"
	"github.com/tilecast/tilecast/internal/pgtest"
	"github.com/tilecast/tilecast/store/postgres"
)

// holdingSink is a loopback MPNS push service that holds each request
// until the test releases it (in arrival order) or opens it, and then
// answers delivered.
type holdingSink struct {
	mu       sync.Mutex
	held     []chan struct{} // not yet released, in arrival order
	open     bool
	arrived  int
	answered map[string]int // by path: one channel each
}

func (s *holdingSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.arrived++
	var wait chan struct{}
	if !s.open {
		wait = make(chan struct{})
		s.held = append(s.held, wait)
	}
	s.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-r.Context().Done():
			return
		}
	}
	s.mu.Lock()
	s.answered[r.URL.Path]++
	s.mu.Unlock()
	w.Header().Set("X-NotificationStatus", "Received")
	w.Header().Set("X-SubscriptionStatus", "Active")
	w.Header().Set("X-DeviceConnectionStatus", "Connected")
	w.WriteHeader(http.StatusOK)
}

// counts returns how many requests arrived and how many are held.
func (s *holdingSink) counts() (arrived, held int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.arrived, len(s.held)
}

// release answers the n requests held longest.
func (s *holdingSink) release(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.held[:n] {
		close(c)
	}
	s.held = s.held[n:]
}

// openAll answers every held request and holds none from now on.
func (s *holdingSink) openAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.held {
		close(c)
	}
	s.held, s.open = nil, true
}

// The daemon on PostgreSQL, through its real wiring (config, store, API,
// watchdog), with sends in flight when the database becomes unreachable
// for longer than the health limits: GET /v1/status lists the instance
// and its leases; during the outage /healthz is 503 (a load balancer
// sends API calls elsewhere) while the watchdog keeps pinging, though the
// full send window has stopped the dispatcher; once the database is
// back, /healthz is 200 and every entry is delivered, each once.
func TestDaemonThroughADatabaseOutage(t *testing.T) {
	dbURL := pgtest.New(t)
	proxy, viaProxy := newDBProxy(t, dbURL)
	notified := fakeSystemd(t)
	sink := &holdingSink{answered: map[string]int{}}
	psrv := httptest.NewServer(sink)
	defer psrv.Close()
	defer sink.openAll() // before psrv.Close, which waits for held requests
	fsrv := httptest.NewServer(&growingFeed{})
	defer fsrv.Close()

	addr := freeAddr(t)
	// 2 workers: a send window of 4, and Due leases 4 entries at a time.
	cfg := e2eConfigAPI(t, fsrv.URL, viaProxy, addr, "[push]\n", "[push]\nconcurrency = 2\n")
	// Long enough for the dispatcher's own retries (every 5 s while Due
	// fails), short enough to outlast in a test.
	lim := healthLimits{beat: 8 * time.Second, pass: 6 * time.Second, fetch: time.Minute, slack: 2 * time.Second}
	stuckAfter := max(lim.beat, lim.pass+lim.slack)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	logs := &logtest.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- cmdRun(ctx, env{args: []string{"--config", cfg, "--instance", "outage-1"}, stdin: strings.NewReader(""),
			stdout: io.Discard, stderr: logs, health: &lim})
	}()
	defer func() {
		sink.openAll() // held sends would keep it waiting for the push timeout
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v\n%s", err, logs.String())
			}
		case <-time.After(time.Minute):
			t.Error("the daemon did not stop")
		}
	}()
	waitFor(t, "READY=1", func() bool { return strings.Contains(notified(), "READY=1") })
	get := func(path string) (int, string) {
		t.Helper()
		return callAPI(t, addr, "GET", path, "", "secret-key-1")
	}
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz at start: %d %s", code, body)
	}

	// A tool's handle on the database itself (not through the proxy):
	// 12 entries, one per channel.
	tool, err := postgres.Open(t.Context(), dbURL, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tool.Close()
	const entries = 12
	var ns []tilecast.Notification
	for i := range entries {
		ch, _, err := tool.AddChannel(tilecast.Channel{URI: fmt.Sprintf("%s/phone-%d", psrv.URL, i)})
		if err != nil {
			t.Fatal(err)
		}
		ns = append(ns, tilecast.Notification{ChannelID: ch.ID, Feed: "news", ItemID: fmt.Sprint(i), Kind: tilecast.KindToast, Payload: []byte("t")})
	}
	if err := tool.Enqueue(ns); err != nil {
		t.Fatal(err)
	}

	// Both workers hold a push of the first lease batch.
	waitFor(t, "two pushes held", func() bool { _, held := sink.counts(); return held == 2 })
	code, body := get("/v1/status")
	var status struct{ Instances []tilecast.Instance }
	if err := json.Unmarshal([]byte(body), &status); code != http.StatusOK || err != nil {
		t.Fatalf("/v1/status: %d %s (%v)", code, body, err)
	}
	if len(status.Instances) != 1 || status.Instances[0].ID != "outage-1" || !status.Instances[0].Alive || status.Instances[0].Leases < 2 {
		t.Errorf("/v1/status instances: %+v, want outage-1 alive with at least the 2 entries it is sending leased", status.Instances)
	}
	// The first batch's last two go out and are held; the dispatcher
	// leases the second batch, and once a worker takes its first entry
	// it has the rest in hand.
	sink.release(2)
	waitFor(t, "the third and fourth pushes held", func() bool { arrived, held := sink.counts(); return arrived == 4 && held == 2 })
	sink.release(1)
	waitFor(t, "a push of the second batch", func() bool { arrived, _ := sink.counts(); return arrived == 5 })

	// The outage. The held pushes are answered, but their outcomes cannot
	// be recorded: the send window fills and the dispatcher stops.
	proxy.unplug()
	outage := time.Now()
	sink.openAll()
	waitFor(t, "the recorder to retry", func() bool { return strings.Contains(logs.String(), "record outcomes; retrying") })
	if code, body := get("/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz with the database down: %d %s, want 503", code, body)
	}
	time.Sleep(time.Until(outage.Add(stuckAfter + 2*time.Second)))
	// The watchdog still pings after every limit has passed. (A watchdog
	// that had stopped would not ping within waitFor's 20 s either.)
	pings := strings.Count(notified(), "WATCHDOG=1")
	waitFor(t, "watchdog pings after the limits passed", func() bool { return strings.Count(notified(), "WATCHDOG=1") >= pings+3 })
	if code, body := get("/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz after %s of outage: %d %s, want 503", time.Since(outage).Round(time.Second), code, body)
	}
	if l := logs.String(); strings.Contains(l, "watchdog not pinged") {
		t.Errorf("the watchdog was not pinged during the outage:\n%s", l)
	}
	// The dispatcher stopped: at most the first three entries were
	// recorded before the outage, and it sends no more than a send window
	// (4) of entries whose outcomes are not recorded.
	if arrived, _ := sink.counts(); arrived > 3+4 {
		t.Errorf("%d pushes by the end of the outage, want at most 7: the dispatcher went on past the send window", arrived)
	}

	proxy.plug()
	waitFor(t, "/healthz 200 again", func() bool { code, _ := get("/healthz"); return code == http.StatusOK })
	// The recorder's backoff grows to 30 s, so the last entries may wait
	// that long for its next try.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, err := tool.Counts()
		if err == nil && c.OutboxDepth == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox %d (%v) two minutes after the database came back\n%s", c.OutboxDepth, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.answered) != entries {
		t.Errorf("%d channels got a push, want %d", len(sink.answered), entries)
	}
	for path, n := range sink.answered {
		if n != 1 {
			t.Errorf("%s got %d pushes, want 1", path, n)
		}
	}
}
